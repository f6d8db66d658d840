//! Parcel rows in SQLite.
//!
//! Every state change goes through [`transition`], which asks
//! [`State::apply`] whether it is legal and then updates the row under a
//! `WHERE state = <from>` guard, so two racing requests cannot both move the
//! same parcel. The caller appends the outbox event in the same transaction.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::{Deserialize, Serialize};

use super::{Action, Channel, Condition, ParcelId, State, TransitionError};
use crate::clock;
use crate::code::Source;
use crate::db::DbError;
use crate::parcel::verification::Verification;
use crate::photo::{Kind, Photo};

/// An item of the return as ticked by the clerk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickedItem {
    pub sku: String,
    pub name: String,
    /// What the manifest says the return holds.
    pub qty_expected: u32,
    /// What is actually in the parcel.
    pub qty: u32,
}

/// A parcel as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Parcel {
    pub id: ParcelId,
    pub return_no: String,
    pub merchant_id: Option<String>,
    pub order_no: Option<String>,
    pub state: State,
    pub channel: Channel,
    pub provisional: bool,
    pub source: String,
    pub waybill_no: Option<String>,
    pub carrier: Option<String>,
    pub weight_g: Option<i64>,
    pub condition: Option<Condition>,
    pub note: Option<String>,
    pub items: Option<Vec<TickedItem>>,
    /// Some ticked items are fewer than the manifest lists.
    pub partial: bool,
    pub clerk_id: Option<String>,
    pub reject_reason: Option<String>,
    pub hold_reason: Option<String>,
    pub receipt_id: Option<String>,
    pub receipt_at: Option<String>,
    pub custody_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub photos: Vec<Photo>,
    /// What the clerk found against the merchant's rules, if it asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    /// `pool` when the waybill number came from the station's pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waybill_source: Option<String>,
}

/// A parcel that failed to load or change.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no parcel {0}")]
    NotFound(ParcelId),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(
        "parcel {0} was changed by another request at the same moment; reload it and try again"
    )]
    Conflict(ParcelId),
    #[error("return {0} already has a parcel in custody")]
    ReturnInCustody(String),
    #[error("waybill {0} is already in custody")]
    WaybillInCustody(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.into())
    }
}

/// A new draft from an accepted scan.
#[derive(Debug, Clone)]
pub struct NewDraft {
    pub return_no: String,
    pub merchant_id: Option<String>,
    pub order_no: Option<String>,
    pub channel: Channel,
    pub provisional: bool,
    pub source: Source,
    /// Self-service drafts: the secret the customer's screen holds.
    pub access_key: Option<String>,
}

/// The fields a transition may set besides the state.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub waybill_no: Option<String>,
    pub carrier: Option<String>,
    pub weight_g: Option<i64>,
    pub condition: Option<Condition>,
    pub note: Option<String>,
    pub items: Option<Vec<TickedItem>>,
    pub clerk_id: Option<String>,
    pub reject_reason: Option<String>,
    pub hold_reason: Option<String>,
    /// A receipt id to issue, if the parcel has none yet.
    pub receipt_id: Option<String>,
    pub verification: Option<Verification>,
    pub waybill_source: Option<String>,
}

pub fn insert_draft(tx: &Transaction<'_>, d: &NewDraft) -> Result<ParcelId, DbError> {
    let id = ParcelId::new();
    let now = clock::now_string();
    tx.prepare_cached(
        "INSERT INTO parcels (id, return_no, merchant_id, order_no, state, channel, provisional,
                              source, access_key, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'draft', ?5, ?6, ?7, ?8, ?9, ?9)",
    )?
    .execute(params![
        id.as_str(),
        d.return_no,
        d.merchant_id,
        d.order_no,
        d.channel.as_str(),
        d.provisional,
        d.source.as_str(),
        d.access_key,
        now
    ])?;
    Ok(id)
}

/// The open self-service draft of a return, if there is one: its id and
/// key (a rescan at the kiosk reuses it).
pub fn open_self_draft(
    c: &Connection,
    return_no: &str,
) -> Result<Option<(ParcelId, String)>, DbError> {
    let row: Option<(String, Option<String>)> = c
        .prepare_cached(
            "SELECT id, access_key FROM parcels
             WHERE return_no = ?1 AND state = 'draft' AND channel = 'self'
             ORDER BY created_at DESC LIMIT 1",
        )?
        .query_row([return_no], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(id, key)| Some((ParcelId::parse(&id)?, key?))))
}

/// Open self-service drafts (counted against `station.max_self_drafts`).
pub fn open_self_drafts(c: &Connection) -> Result<i64, DbError> {
    Ok(
        c.prepare_cached(
            "SELECT COUNT(*) FROM parcels WHERE state = 'draft' AND channel = 'self'",
        )?
        .query_row([], |r| r.get(0))?,
    )
}

/// Whether `key` is parcel `id`'s self-service key.
pub fn key_matches(c: &Connection, id: &ParcelId, key: &str) -> Result<bool, DbError> {
    let stored: Option<Option<String>> = c
        .prepare_cached("SELECT access_key FROM parcels WHERE id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()?;
    let Some(Some(stored)) = stored else {
        return Ok(false);
    };
    // Compared as digests: nothing learned from timing.
    use sha2::Digest;
    Ok(sha2::Sha256::digest(stored.as_bytes()) == sha2::Sha256::digest(key.as_bytes()))
}

/// Moves parcel `id` by `action`, applying `changes`; returns the parcel as
/// it is after the change.
pub fn transition(
    tx: &Transaction<'_>,
    id: &ParcelId,
    action: Action,
    changes: Changes,
) -> Result<Parcel, StoreError> {
    let before = get(tx, id)?.ok_or_else(|| StoreError::NotFound(id.clone()))?;
    transition_from(tx, before, action, changes)
}

/// [`transition`] for a caller that has just loaded the parcel in the same
/// transaction (the state guard in the `UPDATE` still applies).
pub fn transition_from(
    tx: &Transaction<'_>,
    before: Parcel,
    action: Action,
    changes: Changes,
) -> Result<Parcel, StoreError> {
    let id = &before.id;
    let to = before.state.apply(action)?;
    let now = clock::now_string();
    let custody_at = match (before.state.in_custody(), to.in_custody()) {
        (false, true) => Some(now.clone()),
        _ => before.custody_at.clone(),
    };
    let items = changes
        .items
        .as_ref()
        .map(|i| serde_json::to_string(i).unwrap_or_default());
    // Plain data: serialising cannot fail.
    let verification = changes
        .verification
        .as_ref()
        .map(|v| serde_json::to_string(v).unwrap_or_default());
    // No `RETURNING`: SQLite builds a temporary table for an UPDATE's
    // returned rows on every run, which cost more than reading the row
    // back by its primary key (measured: docs/PERFORMANCE.md).
    let updated = tx
        .prepare_cached(
            "UPDATE parcels SET state = ?2, updated_at = ?3, custody_at = ?4,
               waybill_no = COALESCE(?5, waybill_no), carrier = COALESCE(?6, carrier),
               weight_g = COALESCE(?7, weight_g), condition = COALESCE(?8, condition),
               note = COALESCE(?9, note), items = COALESCE(?10, items),
               clerk_id = COALESCE(?11, clerk_id), reject_reason = COALESCE(?12, reject_reason),
               hold_reason = COALESCE(?13, hold_reason),
               receipt_id = COALESCE(receipt_id, ?14),
               receipt_at = CASE WHEN receipt_id IS NULL AND ?14 IS NOT NULL THEN ?3 ELSE receipt_at END,
               verification = COALESCE(?16, verification),
               waybill_source = COALESCE(?17, waybill_source)
             WHERE id = ?1 AND state = ?15",
        )?
        .execute(params![
            id.as_str(),
            to.as_str(),
            now,
            custody_at,
            changes.waybill_no,
            changes.carrier,
            changes.weight_g,
            changes.condition.map(Condition::as_str),
            changes.note,
            items,
            changes.clerk_id,
            changes.reject_reason,
            changes.hold_reason,
            changes.receipt_id,
            before.state.as_str(),
            verification,
            changes.waybill_source,
        ]);
    match updated {
        Ok(1) => {}
        // The guard on `state` matched nothing: someone else moved it first.
        Ok(_) => return Err(StoreError::Conflict(id.clone())),
        Err(e) if is_unique_violation(&e, "parcels.return_no") => {
            return Err(StoreError::ReturnInCustody(before.return_no));
        }
        Err(e) if is_unique_violation(&e, "parcels.waybill_no") => {
            return Err(StoreError::WaybillInCustody(
                changes.waybill_no.unwrap_or_default(),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let mut after = get_row(tx, id)?.ok_or_else(|| StoreError::Conflict(id.clone()))?;
    // A transition never changes photos.
    after.photos = before.photos;
    Ok(after)
}

fn is_unique_violation(e: &rusqlite::Error, column: &str) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, Some(msg))
        if f.code == rusqlite::ErrorCode::ConstraintViolation && msg.contains(column))
}

const COLUMNS: &str = "id, return_no, merchant_id, order_no, state, channel, provisional, source,
    waybill_no, carrier, weight_g, condition, note, items, clerk_id, reject_reason, hold_reason,
    receipt_id, receipt_at, custody_at, created_at, updated_at, verification, waybill_source";

fn row(r: &Row<'_>) -> rusqlite::Result<Parcel> {
    let text = |i: usize| -> rusqlite::Result<String> { r.get(i) };
    let items: Option<Vec<TickedItem>> = r
        .get::<_, Option<String>>(13)?
        .and_then(|s| serde_json::from_str(&s).ok());
    let partial = items
        .as_ref()
        .is_some_and(|i| i.iter().any(|t| t.qty < t.qty_expected));
    Ok(Parcel {
        id: ParcelId(text(0)?),
        return_no: text(1)?,
        merchant_id: r.get(2)?,
        order_no: r.get(3)?,
        // The CHECK constraints in the schema admit only these spellings.
        state: text(4)?.parse().unwrap_or(State::Draft),
        channel: Channel::parse(&text(5)?).unwrap_or(Channel::Clerk),
        provisional: r.get(6)?,
        source: text(7)?,
        waybill_no: r.get(8)?,
        carrier: r.get(9)?,
        weight_g: r.get(10)?,
        condition: r.get::<_, Option<String>>(11)?.map(|c| {
            if c == "damaged" {
                Condition::Damaged
            } else {
                Condition::Intact
            }
        }),
        note: r.get(12)?,
        items,
        partial,
        clerk_id: r.get(14)?,
        reject_reason: r.get(15)?,
        hold_reason: r.get(16)?,
        receipt_id: r.get(17)?,
        receipt_at: r.get(18)?,
        custody_at: r.get(19)?,
        created_at: text(20)?,
        updated_at: text(21)?,
        verification: r
            .get::<_, Option<String>>(22)?
            .and_then(|s| serde_json::from_str(&s).ok()),
        waybill_source: r.get(23)?,
        photos: Vec::new(),
    })
}

/// One parcel with its photos.
pub fn get(conn: &Connection, id: &ParcelId) -> Result<Option<Parcel>, DbError> {
    let Some(mut parcel) = get_row(conn, id)? else {
        return Ok(None);
    };
    parcel.photos = photos(conn, id)?;
    Ok(Some(parcel))
}

/// The parcel row alone, without its photos.
fn get_row(conn: &Connection, id: &ParcelId) -> Result<Option<Parcel>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM parcels WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id.as_str()], row)
        .optional()?)
}

const PHOTOS: &str = "SELECT p.sha256, p.bytes, p.width, p.height, pp.kind
     FROM parcel_photos pp JOIN photos p ON p.sha256 = pp.sha256
     WHERE pp.parcel_id = ?1 ORDER BY pp.added_at, pp.rowid";

/// The photos of a parcel, in the order they were added.
pub fn photos(conn: &Connection, id: &ParcelId) -> Result<Vec<Photo>, DbError> {
    let mut stmt = conn.prepare_cached(PHOTOS)?;
    let rows = stmt.query_map([id.as_str()], |r| {
        Ok(Photo {
            sha256: r.get(0)?,
            bytes: r.get::<_, i64>(1)?.max(0) as u64,
            width: r.get(2)?,
            height: r.get(3)?,
            kind: Kind::parse(&r.get::<_, String>(4)?).unwrap_or(Kind::Parcel),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Parcels, newest first, optionally in one state; photos are not loaded.
pub fn list(conn: &Connection, state: Option<State>, limit: u32) -> Result<Vec<Parcel>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM parcels WHERE (?1 IS NULL OR state = ?1)
         ORDER BY created_at DESC, id DESC LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![state.map(State::as_str), limit], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Whether a return already has a live parcel (dropped, accepted, held or
/// handed over).
pub fn return_in_custody(conn: &Connection, return_no: &str) -> Result<bool, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM parcels WHERE return_no = ?1
             AND state IN ('dropped', 'accepted', 'handed_over', 'held') LIMIT 1",
        )?
        .exists([return_no])?)
}

/// Parcels per state.
pub fn counts(conn: &Connection) -> Result<Vec<(State, i64)>, DbError> {
    let mut stmt = conn.prepare_cached("SELECT state, COUNT(*) FROM parcels GROUP BY state")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (state, n) = row?;
        if let Ok(state) = state.parse() {
            out.push((state, n));
        }
    }
    Ok(out)
}

/// Parcels in custody since before `cutoff` (RFC 3339): overdue for pickup.
pub fn overdue(conn: &Connection, cutoff: &str) -> Result<i64, DbError> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM parcels WHERE state IN ('dropped', 'accepted', 'held')
         AND custody_at < ?1",
        [cutoff],
        |r| r.get(0),
    )?)
}

/// Attaches a stored photo to a parcel (idempotent for the same photo and
/// kind); returns whether it was new.
pub fn attach_photo(tx: &Transaction<'_>, id: &ParcelId, photo: &Photo) -> Result<bool, DbError> {
    let now = clock::now_string();
    tx.prepare_cached(
        "INSERT INTO photos (sha256, bytes, width, height, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (sha256) DO NOTHING",
    )?
    .execute(params![
        photo.sha256,
        photo.bytes as i64,
        photo.width,
        photo.height,
        now
    ])?;
    let added = tx
        .prepare_cached(
            "INSERT INTO parcel_photos (parcel_id, sha256, kind, added_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![id.as_str(), photo.sha256, photo.kind.as_str(), now])?;
    Ok(added == 1)
}

/// Deletes drafts created before `cutoff` and the photo rows only they
/// used; returns the hashes whose files may now be removed.
pub fn discard_drafts(tx: &Transaction<'_>, cutoff: &str) -> Result<(usize, Vec<String>), DbError> {
    let n = tx.execute(
        "DELETE FROM parcels WHERE state = 'draft' AND created_at < ?1",
        [cutoff],
    )?;
    let unused = unreferenced_photos(tx)?;
    Ok((n, unused))
}

/// Deletes photo rows no parcel names and returns their hashes.
pub fn unreferenced_photos(tx: &Transaction<'_>) -> Result<Vec<String>, DbError> {
    let mut stmt = tx.prepare(
        "DELETE FROM photos WHERE NOT EXISTS
           (SELECT 1 FROM parcel_photos pp WHERE pp.sha256 = photos.sha256)
         RETURNING sha256",
    )?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;
    use rusqlite::config::DbConfig;

    use super::*;
    use crate::db::{Db, Durability};

    /// How often the cached photos query was compiled again while it was
    /// run for three different parcels.
    fn photos_recompiled(conn: &Connection) -> i32 {
        for _ in 0..3 {
            photos(conn, &ParcelId::new()).unwrap();
        }
        let st = conn.prepare_cached(PHOTOS).unwrap();
        st.get_status(StatementStatus::RePrepare)
    }

    /// Every accept loads the parcel's photos; SQLite used to compile that
    /// join again for every new parcel id (its plan was marked as depending
    /// on the bound value), which cost ~8 % of an accept. Station
    /// connections plan by schema only.
    #[test]
    fn hot_queries_are_not_recompiled_per_binding() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("y.db"), dir.path()).unwrap();
        let n = db
            .write_blocking(Durability::Full, |tx| {
                Ok::<_, DbError>(photos_recompiled(tx))
            })
            .unwrap();
        assert_eq!(n, 0, "station connection");
        let n = db
            .read_blocking(|c| Ok::<_, DbError>(photos_recompiled(c)))
            .unwrap();
        assert_eq!(n, 0, "reader connection");

        // The same query on a connection with SQLite's default is
        // recompiled: this test can tell the difference.
        let plain = Connection::open(db.path()).unwrap();
        plain
            .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, false)
            .unwrap();
        assert!(photos_recompiled(&plain) > 0, "default connection");
    }
}
