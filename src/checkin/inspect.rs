//! The merchant's checks at the counter (预检, SPEC §2.5): what the
//! manifest asks of this return, what the clerk found, whether the parcel
//! may be taken, and the `verification` block `parcel.accepted` carries so
//! that the platform can release a fast refund on a clean check.

use std::collections::{BTreeMap, HashMap};

use super::CheckinError;
use crate::manifest::{Freight, ReturnEntry};
use crate::parcel::store::TickedItem;
pub use crate::parcel::verification::{Answer, Flag, ItemFound, Verification, WeightCheck};

/// Default tolerance on the expected weight, in percent.
pub const DEFAULT_WEIGHT_TOLERANCE_PCT: u32 = 15;

/// What an acceptance sends for the checks alone.
#[derive(Debug, Default)]
pub struct Submitted {
    /// Answers to the checklist by check id.
    pub checks: Option<HashMap<String, Answer>>,
    /// Item barcodes scanned.
    pub gtins: Vec<String>,
}

/// What the clerk submitted that the checks read.
#[derive(Debug, Default)]
pub struct Found<'a> {
    /// Answers to the checklist by check id.
    pub checks: Option<HashMap<String, Answer>>,
    /// Item barcodes scanned, one per item in the parcel.
    pub gtins: Vec<String>,
    /// The tick list, where the clerk ticked instead of scanning.
    pub ticks: Option<&'a [TickedItem]>,
    /// The courier the waybill belongs to (given or detected).
    pub carrier: Option<&'a str>,
    pub weight_g: Option<i64>,
}

/// Applies the merchant's rules of `entry` to what the clerk found: a
/// refusal (`freight_collect`, `wrong_carrier`, `check_failed`), or the
/// verification to record. `None` when the entry asks for nothing (or
/// there is no entry): such a parcel is taken as it always was.
pub fn inspect(
    entry: Option<&ReturnEntry>,
    found: Found<'_>,
) -> Result<Option<Verification>, CheckinError> {
    let Some(entry) = entry.filter(|e| applies(e)) else {
        if found.checks.as_ref().is_some_and(|c| !c.is_empty()) {
            return Err(CheckinError::invalid(
                "invalid_checks",
                "this return has no checklist: send no checks",
            ));
        }
        return Ok(None);
    };
    let rules = &entry.rules;
    if rules.freight == Some(Freight::Collect) && !rules.collect_allowed {
        return Err(freight_collect());
    }
    if let (Some(want), Some(got)) = (&rules.carrier, found.carrier)
        && !want.eq_ignore_ascii_case(got)
    {
        return Err(CheckinError::refused(
            "wrong_carrier",
            format!("the merchant ships this return with {want}, not {got}: use a {want} waybill"),
        ));
    }
    let checks = answers(entry, found.checks)?;
    let mut flags = Vec::new();
    if checks.values().any(|a| *a == Answer::No) {
        flags.push(Flag::CheckFailed);
    }
    let (items, unexpected) = items_found(entry, &found.gtins, found.ticks);
    if items
        .iter()
        .any(|i| i.found.is_some_and(|f| f < i.expected))
    {
        flags.push(Flag::MissingItem);
    }
    if !unexpected.is_empty() {
        flags.push(Flag::UnexpectedItem);
    }
    let weight = rules.weight_g.map(|expected_g| {
        let pct = rules
            .weight_tolerance_pct
            .unwrap_or(DEFAULT_WEIGHT_TOLERANCE_PCT);
        let ok = found
            .weight_g
            .is_some_and(|m| (m - expected_g).abs() * 100 <= expected_g * i64::from(pct));
        WeightCheck {
            expected_g,
            measured_g: found.weight_g,
            ok,
        }
    });
    if weight.as_ref().is_some_and(|w| !w.ok) {
        flags.push(Flag::WeightMismatch);
    }
    Ok(Some(Verification {
        return_type: rules.return_type,
        items,
        checks,
        freight: rules.freight,
        weight,
        flags,
        unexpected,
    }))
}

/// Whether `code` is an item barcode: a GTIN-8, -12 (UPC-A), -13 (EAN-13)
/// or -14 with a valid GS1 check digit.
pub fn is_gtin(code: &str) -> bool {
    let digits: Vec<u32> = code.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != code.len() || ![8, 12, 13, 14].contains(&digits.len()) {
        return false;
    }
    let (body, check) = digits.split_at(digits.len() - 1);
    // From the right: weights 3, 1, 3, 1…
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { d * 3 } else { *d })
        .sum();
    (10 - sum % 10) % 10 == check[0]
}

/// Whether the merchant asks the counter to check anything of this entry.
pub fn applies(entry: &ReturnEntry) -> bool {
    entry.rules.any() || entry.items.iter().any(|i| i.gtin.is_some())
}

/// Refused at the scan too, before a draft opens (SPEC §2.5).
pub fn freight_collect() -> CheckinError {
    CheckinError::refused(
        "freight_collect",
        "the merchant does not take this return freight-collect (到付): the sender pays, or the merchant allows collect",
    )
}

/// Every check of the list answered, a required one not "no".
fn answers(
    entry: &ReturnEntry,
    given: Option<HashMap<String, Answer>>,
) -> Result<BTreeMap<String, Answer>, CheckinError> {
    let mut given = given.unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut missing = Vec::new();
    let mut failed = Vec::new();
    for check in &entry.rules.checks {
        match given.remove(&check.id) {
            Some(a) => {
                if check.required && a == Answer::No {
                    failed.push(check.id.as_str());
                }
                out.insert(check.id.clone(), a);
            }
            None => missing.push(check.id.as_str()),
        }
    }
    if let Some(extra) = given.keys().next() {
        return Err(CheckinError::invalid(
            "invalid_checks",
            format!("check {extra:?} is not on this return's checklist"),
        ));
    }
    if !missing.is_empty() {
        return Err(CheckinError::invalid(
            "checks_unanswered",
            format!("answer every check (yes, no or na): {}", missing.join(", ")),
        ));
    }
    if !failed.is_empty() {
        return Err(CheckinError::refused(
            "check_failed",
            format!(
                "the merchant requires {}: the parcel cannot be taken; reject it",
                failed.join(", ")
            ),
        ));
    }
    Ok(out)
}

/// Each item with how many were found: by the barcodes scanned if any,
/// else by the tick list; and the barcodes that are no item of the return.
fn items_found(
    entry: &ReturnEntry,
    gtins: &[String],
    ticks: Option<&[TickedItem]>,
) -> (Vec<ItemFound>, Vec<String>) {
    let mut counted: HashMap<&str, u32> = HashMap::new();
    let mut unexpected = Vec::new();
    for g in gtins {
        let g = g.trim();
        match entry.items.iter().find(|i| i.gtin.as_deref() == Some(g)) {
            Some(item) => *counted.entry(item.sku.as_str()).or_default() += 1,
            None => unexpected.push(g.to_owned()),
        }
    }
    let items = entry
        .items
        .iter()
        .map(|i| {
            let found = if !gtins.is_empty() {
                Some(counted.get(i.sku.as_str()).copied().unwrap_or(0))
            } else {
                ticks.and_then(|t| t.iter().find(|t| t.sku == i.sku).map(|t| t.qty))
            };
            ItemFound {
                sku: i.sku.clone(),
                gtin: i.gtin.clone(),
                expected: i.qty,
                found,
            }
        })
        .collect();
    (items, unexpected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Check, Item, ReturnStatus, ReturnType, Rules};

    fn entry(rules: Rules) -> ReturnEntry {
        ReturnEntry {
            return_no: "RT-1".into(),
            merchant_id: "M".into(),
            order_no: None,
            status: ReturnStatus::Authorized,
            expires_at: None,
            phone_last4: None,
            items: vec![
                Item {
                    sku: "A".into(),
                    name: "Shoe".into(),
                    qty: 2,
                    gtin: Some("6901234567892".into()),
                },
                Item {
                    sku: "B".into(),
                    name: "Box".into(),
                    qty: 1,
                    gtin: Some("6901234567908".into()),
                },
            ],
            rules,
        }
    }

    fn checks() -> Vec<Check> {
        vec![
            Check {
                id: "tags_attached".into(),
                label: "吊牌完好".into(),
                required: true,
            },
            Check {
                id: "outer_box_intact".into(),
                label: "外包装完好".into(),
                required: false,
            },
        ]
    }

    fn answers(pairs: &[(&str, Answer)]) -> Option<HashMap<String, Answer>> {
        Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect())
    }

    fn code(e: CheckinError) -> &'static str {
        match e {
            CheckinError::Refused { code, .. } | CheckinError::Invalid { code, .. } => code,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn item_barcodes_are_told_by_their_check_digit() {
        for ok in [
            "6901234567892",
            "4006381333931",
            "96385074",
            "036000291452",
            "10614141000415",
        ] {
            assert!(is_gtin(ok), "{ok}");
        }
        for bad in [
            "6901234567893",
            "690123456789",
            "SF1234567890123",
            "1234567",
            "69012345678921",
            "",
        ] {
            assert!(!is_gtin(bad), "{bad}");
        }
    }

    #[test]
    fn an_entry_without_rules_is_taken_as_before() {
        let mut e = entry(Rules::default());
        for i in &mut e.items {
            i.gtin = None;
        }
        assert_eq!(inspect(Some(&e), Found::default()).unwrap(), None);
        assert_eq!(inspect(None, Found::default()).unwrap(), None);
        let stray = Found {
            checks: answers(&[("x", Answer::Yes)]),
            ..Found::default()
        };
        assert_eq!(
            code(inspect(Some(&e), stray).unwrap_err()),
            "invalid_checks"
        );
    }

    #[test]
    fn a_clean_parcel_is_verified_without_flags() {
        let e = entry(Rules {
            return_type: Some(ReturnType::Exchange),
            checks: checks(),
            freight: Some(Freight::Prepaid),
            carrier: Some("SF".into()),
            weight_g: Some(1000),
            ..Rules::default()
        });
        let found = Found {
            checks: answers(&[
                ("tags_attached", Answer::Yes),
                ("outer_box_intact", Answer::Na),
            ]),
            gtins: vec![
                "6901234567892".into(),
                "6901234567892".into(),
                "6901234567908".into(),
            ],
            carrier: Some("sf"),
            weight_g: Some(1150),
            ..Found::default()
        };
        let v = inspect(Some(&e), found).unwrap().unwrap();
        assert_eq!(v.flags, vec![]);
        assert_eq!(v.items[0].found, Some(2));
        assert_eq!(v.items[1].found, Some(1));
        assert_eq!(v.weight.as_ref().map(|w| w.ok), Some(true));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["type"], "exchange");
        assert_eq!(json["checks"]["outer_box_intact"], "na");
        assert_eq!(
            json["weight"],
            serde_json::json!({"expected_g": 1000, "measured_g": 1150, "ok": true})
        );
    }

    #[test]
    fn refusals_carry_their_reason() {
        let collect = entry(Rules {
            freight: Some(Freight::Collect),
            ..Rules::default()
        });
        assert_eq!(
            code(inspect(Some(&collect), Found::default()).unwrap_err()),
            "freight_collect"
        );
        let allowed = entry(Rules {
            freight: Some(Freight::Collect),
            collect_allowed: true,
            ..Rules::default()
        });
        assert!(inspect(Some(&allowed), Found::default()).unwrap().is_some());

        let sf = entry(Rules {
            carrier: Some("SF".into()),
            ..Rules::default()
        });
        let yto = Found {
            carrier: Some("YTO"),
            ..Found::default()
        };
        assert_eq!(code(inspect(Some(&sf), yto).unwrap_err()), "wrong_carrier");

        let listed = entry(Rules {
            checks: checks(),
            ..Rules::default()
        });
        let unanswered = Found {
            checks: answers(&[("tags_attached", Answer::Yes)]),
            ..Found::default()
        };
        assert_eq!(
            code(inspect(Some(&listed), unanswered).unwrap_err()),
            "checks_unanswered"
        );
        let failed = Found {
            checks: answers(&[
                ("tags_attached", Answer::No),
                ("outer_box_intact", Answer::Yes),
            ]),
            ..Found::default()
        };
        assert_eq!(
            code(inspect(Some(&listed), failed).unwrap_err()),
            "check_failed"
        );
        let unknown = Found {
            checks: answers(&[
                ("tags_attached", Answer::Yes),
                ("outer_box_intact", Answer::Yes),
                ("smells_nice", Answer::Yes),
            ]),
            ..Found::default()
        };
        assert_eq!(
            code(inspect(Some(&listed), unknown).unwrap_err()),
            "invalid_checks"
        );
    }

    #[test]
    fn what_is_off_is_flagged() {
        let e = entry(Rules {
            checks: checks(),
            weight_g: Some(1000),
            weight_tolerance_pct: Some(10),
            ..Rules::default()
        });
        let found = Found {
            checks: answers(&[
                ("tags_attached", Answer::Yes),
                ("outer_box_intact", Answer::No),
            ]),
            gtins: vec!["6901234567892".into(), "4006381333931".into()],
            weight_g: Some(1101),
            ..Found::default()
        };
        let v = inspect(Some(&e), found).unwrap().unwrap();
        assert_eq!(
            v.flags,
            vec![
                Flag::CheckFailed,
                Flag::MissingItem,
                Flag::UnexpectedItem,
                Flag::WeightMismatch
            ]
        );
        assert_eq!(v.unexpected, vec!["4006381333931".to_owned()]);
        assert_eq!((v.items[0].found, v.items[1].found), (Some(1), Some(0)));
        // No weight given where one is expected: a mismatch to look at.
        let none = Found {
            checks: answers(&[
                ("tags_attached", Answer::Yes),
                ("outer_box_intact", Answer::Yes),
            ]),
            ..Found::default()
        };
        let v = inspect(Some(&e), none).unwrap().unwrap();
        assert_eq!(v.flags, vec![Flag::WeightMismatch]);
        assert_eq!(v.items[0].found, None, "neither scanned nor ticked");
    }
}
