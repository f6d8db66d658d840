//! Validation of what a clerk submits with an acceptance.

use std::collections::HashMap;

use serde::Deserialize;

use super::CheckinError;
use super::inspect::{Answer, Submitted};
use crate::carrier::{self, Carriers};
use crate::manifest::Item;
use crate::parcel::Condition;
use crate::parcel::store::{Changes, TickedItem};

/// Heaviest parcel a station takes, in grams.
const MAX_WEIGHT_G: i64 = 100_000;

/// `POST /api/v1/parcels/{id}/accept`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptInput {
    /// The courier label's number; empty with `waybill_source: "pool"`.
    #[serde(default)]
    pub waybill_no: String,
    /// `"pool"`: the parcel has no label; take the next e-waybill number
    /// of its carrier from the pool (SPEC §2.5).
    #[serde(default)]
    pub waybill_source: Option<WaybillSource>,
    #[serde(default)]
    pub carrier: Option<String>,
    #[serde(default)]
    pub weight_g: Option<i64>,
    #[serde(default)]
    pub condition: Option<Condition>,
    #[serde(default)]
    pub note: Option<String>,
    /// The items actually in the parcel, where the manifest lists them.
    #[serde(default)]
    pub items: Option<Vec<ItemTick>>,
    #[serde(default)]
    pub clerk_id: Option<String>,
    /// Answers to the merchant's checklist by check id (SPEC §2.5).
    #[serde(default)]
    pub checks: Option<HashMap<String, Answer>>,
    /// Item barcodes scanned at the counter, one per item in the parcel.
    #[serde(default)]
    pub gtins: Option<Vec<String>>,
}

/// Where the waybill number comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaybillSource {
    /// The courier's own label, scanned (the default).
    Label,
    /// The station's pool of e-waybill numbers.
    Pool,
}

/// One ticked line: this many of this SKU are in the parcel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemTick {
    pub sku: String,
    pub qty: u32,
}

/// Most item barcodes one acceptance scans.
const MAX_GTINS: usize = 500;

impl AcceptInput {
    /// Takes out what the merchant's checks read (the checklist answers and
    /// the item barcodes), leaving the fields of the parcel.
    pub fn take_checks(&mut self) -> Result<Submitted, CheckinError> {
        let gtins = self.gtins.take().unwrap_or_default();
        if gtins.len() > MAX_GTINS {
            return Err(CheckinError::invalid(
                "invalid_field",
                format!("at most {MAX_GTINS} gtins per parcel"),
            ));
        }
        let gtins = gtins
            .into_iter()
            .map(|g| bounded_text("gtin", g, 32))
            .collect::<Result<_, _>>()?;
        Ok(Submitted {
            checks: self.checks.take(),
            gtins,
        })
    }

    /// Checks every field and turns it into the changes to store.
    pub fn into_changes(
        self,
        carriers: &Carriers,
        expected: &[Item],
    ) -> Result<Changes, CheckinError> {
        let waybill = carrier::normalise_waybill(&self.waybill_no).ok_or_else(|| {
            CheckinError::invalid(
                "invalid_waybill",
                format!(
                    "waybill_no {:?} must be 8-32 letters or digits",
                    self.waybill_no
                ),
            )
        })?;
        let carrier = match self
            .carrier
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            Some(given) => carriers.code_of(given),
            None => carriers
                .detect(&waybill)
                .map(|c| c.code.clone())
                .ok_or_else(|| {
                    CheckinError::invalid(
                        "unknown_carrier",
                        format!("no carrier matches waybill {waybill}; give the carrier"),
                    )
                })?,
        };
        if let Some(w) = self.weight_g
            && !(1..=MAX_WEIGHT_G).contains(&w)
        {
            return Err(CheckinError::invalid(
                "invalid_weight",
                format!("weight_g {w} must be 1 to {MAX_WEIGHT_G}"),
            ));
        }
        let items = self.items.map(|t| tick(expected, t)).transpose()?;
        Ok(Changes {
            waybill_no: Some(waybill),
            carrier: Some(bounded_text("carrier", carrier, 32)?),
            weight_g: self.weight_g,
            condition: Some(self.condition.unwrap_or_default()),
            note: self
                .note
                .map(|n| bounded_text("note", n, 500))
                .transpose()?,
            items,
            clerk_id: self
                .clerk_id
                .map(|c| bounded_text("clerk_id", c, 64))
                .transpose()?,
            ..Changes::default()
        })
    }
}

/// The tick list against the manifest: every SKU must be one the return
/// lists, at most the quantity it lists; SKUs not ticked count as absent.
fn tick(expected: &[Item], ticks: Vec<ItemTick>) -> Result<Vec<TickedItem>, CheckinError> {
    if expected.is_empty() {
        return Err(CheckinError::invalid(
            "invalid_items",
            "the manifest lists no items for this return",
        ));
    }
    let mut got: HashMap<String, u32> = HashMap::new();
    for t in ticks {
        let Some(item) = expected.iter().find(|i| i.sku == t.sku) else {
            return Err(CheckinError::invalid(
                "invalid_items",
                format!("sku {:?} is not in this return", t.sku),
            ));
        };
        if t.qty > item.qty {
            return Err(CheckinError::invalid(
                "invalid_items",
                format!(
                    "sku {} qty {} is more than the {} returned",
                    t.sku, t.qty, item.qty
                ),
            ));
        }
        if got.insert(t.sku.clone(), t.qty).is_some() {
            return Err(CheckinError::invalid(
                "invalid_items",
                format!("sku {} is ticked twice", t.sku),
            ));
        }
    }
    Ok(expected
        .iter()
        .map(|i| TickedItem {
            sku: i.sku.clone(),
            name: i.name.clone(),
            qty_expected: i.qty,
            qty: got.get(&i.sku).copied().unwrap_or(0),
        })
        .collect())
}

/// Trims `value` and checks it is non-empty and at most `max` characters.
pub fn bounded_text(field: &str, value: String, max: usize) -> Result<String, InvalidField> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(InvalidField {
            field: field.to_owned(),
            max,
        });
    }
    Ok(v.to_owned())
}

/// A text field that is empty, too long or has control characters (an
/// `invalid_field` at the API).
#[derive(Debug, thiserror::Error)]
#[error("{field} must be 1 to {max} printable characters")]
pub struct InvalidField {
    pub field: String,
    pub max: usize,
}

impl From<InvalidField> for CheckinError {
    fn from(e: InvalidField) -> Self {
        CheckinError::invalid("invalid_field", e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn items() -> Vec<Item> {
        vec![
            Item {
                sku: "A".into(),
                name: "Shoe".into(),
                qty: 2,
                gtin: None,
            },
            Item {
                sku: "B".into(),
                name: "Box".into(),
                qty: 1,
                gtin: None,
            },
        ]
    }

    fn input(waybill: &str) -> AcceptInput {
        AcceptInput {
            waybill_no: waybill.into(),
            ..AcceptInput::default()
        }
    }

    #[test]
    fn detects_carrier_or_takes_the_given_one() {
        let carriers = Config::defaults().unwrap().carriers;
        let c = input("sf1234567890123")
            .into_changes(&carriers, &[])
            .unwrap();
        assert_eq!(
            (c.waybill_no.as_deref(), c.carrier.as_deref()),
            (Some("SF1234567890123"), Some("SF"))
        );
        let given = AcceptInput {
            carrier: Some("dhl".into()),
            ..input("ABCDEFGH12")
        };
        assert_eq!(
            given
                .into_changes(&carriers, &[])
                .unwrap()
                .carrier
                .as_deref(),
            Some("DHL")
        );
    }

    #[test]
    fn refuses_bad_fields_with_codes() {
        let carriers = Config::defaults().unwrap().carriers;
        let cases = [
            (input("SF1"), "invalid_waybill"),
            (input("ABCDEFGH12"), "unknown_carrier"),
            (
                AcceptInput {
                    weight_g: Some(0),
                    ..input("SF1234567890123")
                },
                "invalid_weight",
            ),
            (
                AcceptInput {
                    note: Some("x".repeat(501)),
                    ..input("SF1234567890123")
                },
                "invalid_field",
            ),
            (
                AcceptInput {
                    items: Some(vec![ItemTick {
                        sku: "Z".into(),
                        qty: 1,
                    }]),
                    ..input("SF1234567890123")
                },
                "invalid_items",
            ),
            (
                AcceptInput {
                    items: Some(vec![ItemTick {
                        sku: "A".into(),
                        qty: 3,
                    }]),
                    ..input("SF1234567890123")
                },
                "invalid_items",
            ),
        ];
        for (i, (inp, want)) in cases.into_iter().enumerate() {
            match inp.into_changes(&carriers, &items()) {
                Err(CheckinError::Invalid { code, .. }) => assert_eq!(code, want, "case {i}"),
                other => panic!("case {i}: {other:?}"),
            }
        }
    }

    #[test]
    fn partial_returns_are_recorded() {
        let t = tick(
            &items(),
            vec![ItemTick {
                sku: "A".into(),
                qty: 1,
            }],
        )
        .unwrap();
        assert_eq!(
            t.iter()
                .map(|i| (i.sku.as_str(), i.qty, i.qty_expected))
                .collect::<Vec<_>>(),
            [("A", 1, 2), ("B", 0, 1)]
        );
    }
}
