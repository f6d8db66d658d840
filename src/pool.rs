//! E-waybill number pools (电子面单号段, SPEC §2.5): blocks of a carrier's
//! numbers the platform hands the station, so that a parcel without a
//! courier label gets a real waybill offline.
//!
//! # Invariants
//! - A number is taken inside the acceptance's own transaction
//!   ([`take`]): it is used by a committed parcel, or still free.
//! - A number once known is never added again, used or not ([`add`]):
//!   never the same number twice.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::carrier;
use crate::clock;
use crate::db::DbError;

/// Most numbers one block may carry.
pub const MAX_BLOCK: usize = 10_000;

/// One block of numbers, as the platform sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    /// The carrier's code (`SF`, `YTO`…).
    pub carrier: String,
    pub numbers: Vec<String>,
    /// The platform's id of the block (for its own bookkeeping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_id: Option<String>,
}

impl Block {
    /// Checks and normalises the block: a carrier code, at most
    /// [`MAX_BLOCK`] numbers, each a waybill number (upper case).
    pub fn checked(mut self) -> Result<Block, String> {
        self.carrier = self.carrier.trim().to_ascii_uppercase();
        if self.carrier.is_empty()
            || self.carrier.len() > 32
            || !self.carrier.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(format!(
                "carrier {:?} must be 1-32 letters or digits",
                self.carrier
            ));
        }
        if self.numbers.is_empty() || self.numbers.len() > MAX_BLOCK {
            return Err(format!("numbers must be 1 to {MAX_BLOCK} waybill numbers"));
        }
        for n in &mut self.numbers {
            *n = carrier::normalise_waybill(n)
                .ok_or_else(|| format!("{n:?} is not a waybill number (8-32 letters or digits)"))?;
        }
        if let Some(b) = &self.block_id
            && (b.is_empty() || b.len() > 128)
        {
            return Err("block_id must be 1-128 characters".into());
        }
        Ok(self)
    }
}

/// Adds a block's numbers; returns how many were new (a number already
/// known, free or used, is left as it is).
pub fn add(tx: &Transaction<'_>, block: &Block) -> Result<usize, DbError> {
    let now = clock::now_string();
    let mut stmt = tx.prepare_cached(
        "INSERT INTO waybill_pool (waybill_no, carrier, block_id, added_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (waybill_no) DO NOTHING",
    )?;
    let mut added = 0;
    for n in &block.numbers {
        added += stmt.execute(params![n, block.carrier, block.block_id, now])?;
    }
    Ok(added)
}

/// Takes the next free number of `carrier` for `parcel_id`, oldest block
/// first; `None` when the pool is empty. Call it in the transaction that
/// records the parcel's acceptance.
pub fn take(
    tx: &Transaction<'_>,
    carrier: &str,
    parcel_id: &str,
) -> Result<Option<String>, DbError> {
    let next: Option<String> = tx
        .prepare_cached(
            "SELECT waybill_no FROM waybill_pool WHERE carrier = ?1 AND parcel_id IS NULL
             ORDER BY added_at, waybill_no LIMIT 1",
        )?
        .query_row([carrier], |r| r.get(0))
        .optional()?;
    let Some(n) = next else { return Ok(None) };
    tx.prepare_cached(
        "UPDATE waybill_pool SET parcel_id = ?2, used_at = ?3 WHERE waybill_no = ?1 AND parcel_id IS NULL",
    )?
    .execute(params![n, parcel_id, clock::now_string()])?;
    Ok(Some(n))
}

/// One carrier's pool as the screen, `/healthz`, metrics and the retained
/// status show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Level {
    pub carrier: String,
    pub remaining: i64,
    /// Fewer free numbers than `station.waybill_low_water`.
    pub low: bool,
}

/// Every carrier's pool against the low-water mark.
pub fn levels(conn: &Connection, low_water: u32) -> Result<Vec<Level>, DbError> {
    Ok(remaining(conn)?
        .into_iter()
        .map(|(carrier, remaining)| Level {
            low: remaining < i64::from(low_water),
            carrier,
            remaining,
        })
        .collect())
}

/// Free numbers per carrier (carriers with none left included).
pub fn remaining(conn: &Connection) -> Result<Vec<(String, i64)>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT carrier, SUM(parcel_id IS NULL) FROM waybill_pool GROUP BY carrier ORDER BY carrier",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, Durability};

    fn block(carrier: &str, numbers: &[&str]) -> Block {
        Block {
            carrier: carrier.into(),
            numbers: numbers.iter().map(|n| (*n).to_owned()).collect(),
            block_id: None,
        }
    }

    #[test]
    fn blocks_are_checked() {
        let ok = block(" sf ", &["sf 1000 0000 0001"]).checked().unwrap();
        assert_eq!(
            (ok.carrier.as_str(), ok.numbers[0].as_str()),
            ("SF", "SF100000000001")
        );
        assert!(block("", &["SF1000000000001"]).checked().is_err());
        assert!(block("SF", &[]).checked().is_err());
        assert!(
            block("SF", &["short"])
                .checked()
                .unwrap_err()
                .contains("short")
        );
    }

    #[tokio::test]
    async fn numbers_are_taken_once_in_order_and_never_added_twice() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("y.db"), &dir.path().join("b")).unwrap();
        let first = block("SF", &["SF1000000000002", "SF1000000000001"]);
        let n = db
            .write(Durability::Full, move |tx| add(tx, &first))
            .await
            .unwrap();
        assert_eq!(n, 2);
        let got = db
            .write(Durability::Full, |tx| {
                Ok::<_, DbError>((
                    take(tx, "SF", "p1")?,
                    take(tx, "SF", "p2")?,
                    take(tx, "SF", "p3")?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(
            got,
            (
                Some("SF1000000000001".into()),
                Some("SF1000000000002".into()),
                None
            )
        );
        // The same numbers again (a repeated command): nothing new, and
        // the used ones stay used.
        let again = block("SF", &["SF1000000000001", "SF1000000000003"]);
        let n = db
            .write(Durability::Full, move |tx| add(tx, &again))
            .await
            .unwrap();
        assert_eq!(n, 1);
        let left = db.read(remaining).await.unwrap();
        assert_eq!(left, vec![("SF".to_owned(), 1)]);
    }
}
