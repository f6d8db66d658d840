//! The manifest: the platform's list of returns authorised (or cancelled)
//! for this station (SPEC §4, §6.2), kept in SQLite.
//!
//! Entries arrive in the §6.2 JSON shape, from the platform or from
//! `yizhan manifest import FILE.json`; importing is an upsert by return
//! number, so replaying a file or a page changes nothing.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Deserializer, Serialize};

use crate::clock;
use crate::db::DbError;
use crate::return_no::ReturnNo;

/// Whether the platform still wants the parcel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnStatus {
    Authorized,
    Cancelled,
}

impl ReturnStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReturnStatus::Authorized => "authorized",
            ReturnStatus::Cancelled => "cancelled",
        }
    }
}

/// One line of the return's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub sku: String,
    #[serde(default)]
    pub name: String,
    pub qty: u32,
    /// The item's own barcode (GTIN/EAN): scanning it at the counter
    /// ticks the item (SPEC §2.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtin: Option<String>,
}

/// An authorised (or cancelled) return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReturnEntry {
    pub return_no: String,
    pub merchant_id: String,
    #[serde(default)]
    pub order_no: Option<String>,
    pub status: ReturnStatus,
    /// Unix seconds; the JSON may carry seconds or an RFC 3339 time.
    #[serde(default, deserialize_with = "expiry")]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub phone_last4: Option<String>,
    #[serde(default)]
    pub items: Vec<Item>,
    /// What the merchant asks of the station for this return.
    #[serde(flatten)]
    pub rules: Rules,
}

/// What the merchant asks of the station for one return, beyond its items
/// (SPEC §2.5); stored as JSON with the entry. An entry without rules is
/// checked in exactly as before they existed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rules {
    /// The customer may see the items' names at the kiosk (otherwise only
    /// a clerk does).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub customer_sees_items: bool,
    /// 退货 / 换货 / 部分退货, shown to the clerk.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub return_type: Option<ReturnType>,
    /// The merchant's checklist, answered yes / no / n.a. at accept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freight: Option<Freight>,
    /// A freight-collect (到付) parcel may be taken.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub collect_allowed: bool,
    /// The designated courier (a carrier code): another's waybill is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// Expected weight in grams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_g: Option<i64>,
    /// How far the measured weight may be off, in percent (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_tolerance_pct: Option<u32>,
    /// Where the parcel goes: the receiver on an e-waybill label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<Warehouse>,
}

/// The merchant's returns warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Warehouse {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    pub address: String,
}

impl Rules {
    /// Whether the merchant asks the counter to check anything.
    pub fn any(&self) -> bool {
        self.return_type.is_some()
            || !self.checks.is_empty()
            || self.freight.is_some()
            || self.carrier.is_some()
            || self.weight_g.is_some()
    }
}

/// What kind of return it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnType {
    Return,
    Exchange,
    Partial,
}

/// One line of the merchant's checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub id: String,
    /// The words the clerk reads (the merchant's language).
    #[serde(default)]
    pub label: String,
    /// A "no" refuses the parcel (`check_failed`); otherwise it is a flag.
    #[serde(default)]
    pub required: bool,
}

/// Who pays the courier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Freight {
    Prepaid,
    SenderPays,
    /// 到付: the merchant pays on delivery.
    Collect,
}

/// A manifest document or page (SPEC §6.2).
#[derive(Debug, Clone, Deserialize)]
pub struct ManifestPage {
    pub returns: Vec<ReturnEntry>,
    #[serde(default)]
    pub cursor: Option<String>,
    /// Blocks of e-waybill numbers for the station's pools (SPEC §2.5).
    #[serde(default)]
    pub waybill_pools: Vec<crate::pool::Block>,
}

/// Why a manifest could not be taken in.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("manifest entry {index} ({return_no:?}): {problem}")]
    Entry {
        index: usize,
        return_no: String,
        problem: String,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for ManifestError {
    fn from(e: rusqlite::Error) -> Self {
        ManifestError::Db(e.into())
    }
}

fn expiry<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(i64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Secs(s)) => Ok(Some(s)),
        Some(Raw::Text(t)) => clock::parse(&t)
            .map(|t| Some(t.timestamp()))
            .ok_or_else(|| {
                serde::de::Error::custom(format!("expires_at {t:?} is not an RFC 3339 time"))
            }),
    }
}

/// Parses and checks a manifest document; every entry is normalised
/// (return numbers upper case) or the whole document is refused.
pub fn parse(json: &[u8]) -> Result<ManifestPage, ManifestError> {
    let mut page: ManifestPage = serde_json::from_slice(json)?;
    for (index, entry) in page.returns.iter_mut().enumerate() {
        let original = entry.return_no.clone();
        let problem = |problem: String| ManifestError::Entry {
            index,
            return_no: original.clone(),
            problem,
        };
        entry.return_no = ReturnNo::parse(&entry.return_no)
            .ok_or_else(|| problem("return_no must be 6-40 of A-Z, 0-9 and '-'".into()))?
            .into();
        if entry.merchant_id.trim().is_empty() {
            return Err(problem("merchant_id is empty".into()));
        }
        if let Some(p) = &entry.phone_last4
            && (p.len() != 4 || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(problem(format!("phone_last4 {p:?} is not 4 digits")));
        }
        let mut skus = HashSet::new();
        if let Some(dup) = entry.items.iter().find(|i| !skus.insert(i.sku.as_str())) {
            return Err(problem(format!("item sku {:?} is listed twice", dup.sku)));
        }
        check_rules(entry).map_err(problem)?;
    }
    page.waybill_pools = std::mem::take(&mut page.waybill_pools)
        .into_iter()
        .enumerate()
        .map(|(index, b)| {
            b.checked().map_err(|problem| ManifestError::Entry {
                index,
                return_no: "waybill_pools".into(),
                problem,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(page)
}

/// The merchant's rules of one entry make sense (and are normalised: GTINs
/// and the carrier code trimmed, the carrier upper case).
fn check_rules(entry: &mut ReturnEntry) -> Result<(), String> {
    let mut gtins = HashSet::new();
    for item in &mut entry.items {
        if let Some(g) = &mut item.gtin {
            *g = g.trim().to_owned();
            if g.is_empty() || g.len() > 32 || !g.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!(
                    "item {:?} gtin {g:?} is not 1-32 letters or digits",
                    item.sku
                ));
            }
            if !gtins.insert(g.clone()) {
                return Err(format!("gtin {g:?} is on two items"));
            }
        }
    }
    let rules = &mut entry.rules;
    let mut ids = HashSet::new();
    for c in &rules.checks {
        if c.id.trim().is_empty() || c.id.len() > 64 {
            return Err(format!("check id {:?} must be 1-64 characters", c.id));
        }
        if !ids.insert(c.id.as_str()) {
            return Err(format!("check {:?} is listed twice", c.id));
        }
    }
    if let Some(c) = &mut rules.carrier {
        *c = c.trim().to_ascii_uppercase();
        if c.is_empty() {
            return Err("carrier is empty".into());
        }
    }
    if let Some(w) = rules.weight_g
        && !(1..=100_000).contains(&w)
    {
        return Err(format!("weight_g {w} must be 1 to 100000"));
    }
    if let Some(t) = rules.weight_tolerance_pct
        && t > 100
    {
        return Err(format!("weight_tolerance_pct {t} must be 0 to 100"));
    }
    Ok(())
}

/// Upserts every entry of `page` inside `tx`; returns how many were written.
pub fn upsert(tx: &Transaction<'_>, entries: &[ReturnEntry]) -> Result<usize, DbError> {
    let now = clock::now_string();
    let mut stmt = tx.prepare_cached(
        "INSERT INTO returns (return_no, merchant_id, order_no, status, expires_at, phone_last4,
                              items, rules, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (return_no) DO UPDATE SET
           merchant_id = excluded.merchant_id, order_no = excluded.order_no,
           status = excluded.status, expires_at = excluded.expires_at,
           phone_last4 = excluded.phone_last4, items = excluded.items,
           rules = excluded.rules, updated_at = excluded.updated_at",
    )?;
    for e in entries {
        let encode = |source| DbError::Encode {
            what: "a manifest entry",
            source,
        };
        let items = serde_json::to_string(&e.items).map_err(encode)?;
        let rules = serde_json::to_string(&e.rules).map_err(encode)?;
        stmt.execute(params![
            e.return_no,
            e.merchant_id,
            e.order_no,
            e.status.as_str(),
            e.expires_at,
            e.phone_last4,
            items,
            rules,
            now
        ])?;
    }
    Ok(entries.len())
}

/// Records the platform's manifest cursor.
pub fn set_cursor(tx: &Transaction<'_>, cursor: &str) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('manifest_cursor', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [cursor],
    )?;
    Ok(())
}

const ENTRY_COLUMNS: &str =
    "return_no, merchant_id, order_no, status, expires_at, phone_last4, items, rules";

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReturnEntry> {
    let status: String = r.get(3)?;
    let items: String = r.get(6)?;
    let rules: String = r.get(7)?;
    Ok(ReturnEntry {
        return_no: r.get(0)?,
        merchant_id: r.get(1)?,
        order_no: r.get(2)?,
        status: if status == "cancelled" {
            ReturnStatus::Cancelled
        } else {
            ReturnStatus::Authorized
        },
        expires_at: r.get(4)?,
        phone_last4: r.get(5)?,
        // Written by `upsert` from a Vec<Item>, so it parses; an empty list
        // is the safe reading of anything else.
        items: serde_json::from_str(&items).unwrap_or_default(),
        rules: serde_json::from_str(&rules).unwrap_or_default(),
    })
}

/// The manifest entry for a return number, if the platform sent one.
pub fn get(conn: &Connection, return_no: &str) -> Result<Option<ReturnEntry>, DbError> {
    let sql = format!("SELECT {ENTRY_COLUMNS} FROM returns WHERE return_no = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([return_no], entry)
        .optional()?)
}

/// The manual lookup of SPEC §2.1: by return number, order number or the
/// last 4 digits of the customer's phone; only authorised returns that are
/// not yet dropped off (no live parcel), at most `limit`.
pub fn lookup(conn: &Connection, query: &str, limit: u32) -> Result<Vec<ReturnEntry>, DbError> {
    let q = query.trim();
    let upper = q.to_ascii_uppercase();
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM returns r
         WHERE (r.return_no = ?1 OR r.order_no = ?2 OR r.order_no = ?1 OR r.phone_last4 = ?2)
           AND r.status = 'authorized'
           AND NOT EXISTS (SELECT 1 FROM parcels p WHERE p.return_no = r.return_no
                           AND p.state IN ('dropped', 'accepted', 'handed_over', 'held'))
         ORDER BY r.return_no LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![upper, q, limit], entry)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How many entries the manifest holds, and its cursor.
pub fn summary(conn: &Connection) -> Result<(i64, Option<String>), DbError> {
    let n = conn.query_row("SELECT COUNT(*) FROM returns", [], |r| r.get(0))?;
    let cursor = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'manifest_cursor'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok((n, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_platform_shape() {
        let page = parse(
            br#"{"returns":[{"return_no":"rt-000123","merchant_id":"M1","order_no":"O9",
            "status":"authorized","expires_at":"2030-01-01T00:00:00Z","phone_last4":"1234",
            "items":[{"sku":"A","name":"Shoe","qty":2}]},
            {"return_no":"RT000124","merchant_id":"M1","status":"cancelled","expires_at":1900000000}],
            "cursor":"c1"}"#,
        )
        .unwrap();
        assert_eq!(page.returns[0].return_no, "RT-000123");
        assert_eq!(page.returns[0].expires_at, Some(1_893_456_000));
        assert_eq!(page.returns[1].expires_at, Some(1_900_000_000));
        assert_eq!(page.cursor.as_deref(), Some("c1"));
    }

    #[test]
    fn refuses_bad_entries_by_index() {
        let cases: [(&[u8], &str); 5] = [
            (br#"{"returns":[{"return_no":"x","merchant_id":"M","status":"authorized"}]}"#, "entry 0"),
            (br#"{"returns":[{"return_no":"RT000001","merchant_id":" ","status":"authorized"}]}"#, "merchant_id"),
            (br#"{"returns":[{"return_no":"RT000001","merchant_id":"M","status":"lost"}]}"#, "unknown variant"),
            (br#"{"returns":[{"return_no":"RT000001","merchant_id":"M","status":"authorized","phone_last4":"12a4"}]}"#, "phone_last4"),
            (br#"{"returns":[{"return_no":"RT000001","merchant_id":"M","status":"authorized","items":[{"sku":"A","qty":1},{"sku":"A","qty":1}]}]}"#, "twice"),
        ];
        for (json, want) in cases {
            let err = parse(json).unwrap_err().to_string();
            assert!(err.contains(want), "{err} should mention {want}");
        }
    }
}
