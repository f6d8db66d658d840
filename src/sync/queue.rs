//! The delivery queues in SQLite: which events and photos still have to go
//! up, and the marks that record what the platform confirmed.
//!
//! # Invariants
//! - The outbox table is the source of truth, never the MQTT client's
//!   memory: an event is pending until a PUBACK (or an HTTPS `accepted` /
//!   `duplicates`) for it has been recorded here.
//! - Marks are written in batches; losing a batch of marks (power cut) only
//!   means those events are sent again, which the platform de-duplicates.
//! - Nothing here deletes an event.

use rusqlite::{params, Connection, Transaction};
use serde::Serialize;

use crate::db::DbError;

/// An event ready to send: its `seq` and the envelope JSON.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub seq: i64,
    pub body: String,
}

/// Pending events with `after < seq <= upto`, oldest first.
pub fn pending_events(
    conn: &Connection,
    after: i64,
    upto: i64,
    limit: usize,
) -> Result<Vec<Outgoing>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.seq, b.body FROM events e JOIN event_bodies b ON b.seq = e.seq
         WHERE e.seq > ?1 AND e.seq <= ?2 AND e.delivered_at IS NULL AND e.dead_at IS NULL
         ORDER BY e.seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![after, upto, limit as i64], |r| {
        Ok(Outgoing {
            seq: r.get(0)?,
            body: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The highest `seq` committed so far.
pub fn last_seq(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn.query_row(
        "SELECT value FROM counters WHERE name = 'event_seq'",
        [],
        |r| r.get(0),
    )?)
}

/// Records delivery of `seqs` (in any order, duplicates allowed); returns
/// how many were newly marked. Acks mostly arrive in order, so the seqs are
/// folded into runs of consecutive numbers, one statement per run.
pub fn mark_delivered(tx: &Transaction<'_>, seqs: &[i64], at: &str) -> Result<usize, DbError> {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut stmt = tx.prepare_cached(
        "UPDATE events SET delivered_at = ?3, attempts = attempts + 1, last_error = NULL
         WHERE seq BETWEEN ?1 AND ?2 AND delivered_at IS NULL",
    )?;
    let mut n = 0;
    let mut i = 0;
    while i < sorted.len() {
        let first = sorted[i];
        let mut last = first;
        while i + 1 < sorted.len() && sorted[i + 1] == last + 1 {
            i += 1;
            last = sorted[i];
        }
        n += stmt.execute(params![first, last, at])?;
        i += 1;
    }
    note_delivery(tx, n, at)?;
    Ok(n)
}

/// Keeps the time of the last delivery for the backlog view (one row, not
/// a MAX over every event).
fn note_delivery(tx: &Transaction<'_>, n: usize, at: &str) -> Result<(), DbError> {
    if n > 0 {
        tx.prepare_cached(
            "INSERT INTO meta (key, value) VALUES ('last_delivered_at', ?1)
             ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)",
        )?
        .execute([at])?;
    }
    Ok(())
}

/// Records delivery by `event_id` (the HTTPS answer names ids).
pub fn mark_delivered_ids(
    tx: &Transaction<'_>,
    ids: &[String],
    at: &str,
) -> Result<usize, DbError> {
    let mut stmt = tx.prepare_cached(
        "UPDATE events SET delivered_at = ?2, attempts = attempts + 1, last_error = NULL
         WHERE event_id = ?1 AND delivered_at IS NULL",
    )?;
    let mut n = 0;
    for id in ids {
        n += stmt.execute(params![id, at])?;
    }
    note_delivery(tx, n, at)?;
    Ok(n)
}

/// Moves events the platform refused for good to the dead-letter list.
pub fn mark_dead(
    tx: &Transaction<'_>,
    refused: &[(String, String)],
    at: &str,
) -> Result<usize, DbError> {
    let mut stmt = tx.prepare_cached(
        "UPDATE events SET dead_at = ?2, dead_reason = ?3, attempts = attempts + 1
         WHERE event_id = ?1 AND delivered_at IS NULL AND dead_at IS NULL",
    )?;
    let mut n = 0;
    for (id, reason) in refused {
        n += stmt.execute(params![id, at, truncate(reason)])?;
    }
    Ok(n)
}

/// Notes a failed attempt on `seqs` (the events stay pending).
pub fn note_failure(tx: &Transaction<'_>, seqs: &[i64], error: &str) -> Result<(), DbError> {
    let mut stmt = tx.prepare_cached(
        "UPDATE events SET attempts = attempts + 1, last_error = ?2
         WHERE seq = ?1 AND delivered_at IS NULL",
    )?;
    for seq in seqs {
        stmt.execute(params![seq, truncate(error)])?;
    }
    Ok(())
}

/// What an operator's retry re-queued.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Requeued {
    pub events: usize,
    pub photos: usize,
}

/// Puts dead letters back in the queue: one event by `seq`, or every dead
/// event and photo.
pub fn retry_dead(tx: &Transaction<'_>, seq: Option<i64>) -> Result<Requeued, DbError> {
    let events = match seq {
        Some(seq) => tx.execute(
            "UPDATE events SET dead_at = NULL, last_error = 'dead letter: ' || dead_reason,
                    dead_reason = NULL
             WHERE seq = ?1 AND dead_at IS NOT NULL",
            [seq],
        )?,
        None => tx.execute(
            "UPDATE events SET dead_at = NULL, last_error = 'dead letter: ' || dead_reason,
                    dead_reason = NULL
             WHERE dead_at IS NOT NULL",
            [],
        )?,
    };
    let photos = if seq.is_none() {
        tx.execute(
            "UPDATE photos SET upload_dead_at = NULL WHERE upload_dead_at IS NOT NULL",
            [],
        )?
    } else {
        0
    };
    Ok(Requeued { events, photos })
}

/// A photo waiting for upload.
#[derive(Debug, Clone, Serialize)]
pub struct PhotoUpload {
    pub sha256: String,
    pub bytes: i64,
    pub attempts: i64,
    pub error: Option<String>,
    pub dead_at: Option<String>,
}

/// Photos not yet uploaded, oldest first. Only photos of parcels that left
/// `draft` go up: a draft promises nothing and may be discarded.
pub fn pending_photos(conn: &Connection, limit: usize) -> Result<Vec<PhotoUpload>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT sha256, bytes, upload_attempts, upload_error, upload_dead_at FROM photos ph
         WHERE uploaded_at IS NULL AND upload_dead_at IS NULL AND purged_at IS NULL
           AND EXISTS (SELECT 1 FROM parcel_photos pp JOIN parcels p ON p.id = pp.parcel_id
                       WHERE pp.sha256 = ph.sha256 AND p.state <> 'draft')
         ORDER BY created_at LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], photo_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Photos the platform refused for good.
pub fn dead_photos(conn: &Connection, limit: usize) -> Result<Vec<PhotoUpload>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT sha256, bytes, upload_attempts, upload_error, upload_dead_at FROM photos
         WHERE upload_dead_at IS NOT NULL ORDER BY upload_dead_at LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], photo_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn photo_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PhotoUpload> {
    Ok(PhotoUpload {
        sha256: r.get(0)?,
        bytes: r.get(1)?,
        attempts: r.get(2)?,
        error: r.get(3)?,
        dead_at: r.get(4)?,
    })
}

/// How a photo upload ended.
#[derive(Debug, Clone)]
pub enum PhotoMark {
    Uploaded,
    Failed(String),
    Dead(String),
}

pub fn mark_photo(
    tx: &Transaction<'_>,
    sha256: &str,
    mark: &PhotoMark,
    at: &str,
) -> Result<(), DbError> {
    match mark {
        PhotoMark::Uploaded => tx.execute(
            "UPDATE photos SET uploaded_at = ?2, upload_attempts = upload_attempts + 1,
                    upload_error = NULL WHERE sha256 = ?1",
            params![sha256, at],
        )?,
        PhotoMark::Failed(e) => tx.execute(
            "UPDATE photos SET upload_attempts = upload_attempts + 1, upload_error = ?2
             WHERE sha256 = ?1",
            params![sha256, truncate(e)],
        )?,
        PhotoMark::Dead(e) => tx.execute(
            "UPDATE photos SET upload_attempts = upload_attempts + 1, upload_error = ?2,
                    upload_dead_at = ?3 WHERE sha256 = ?1",
            params![sha256, truncate(e), at],
        )?,
    };
    Ok(())
}

/// Photo queue counts for status and metrics.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct PhotoBacklog {
    pub pending_photos: i64,
    pub dead_photos: i64,
    pub uploaded_photos: i64,
}

pub fn photo_backlog(conn: &Connection) -> Result<PhotoBacklog, DbError> {
    Ok(conn.query_row(
        "SELECT
           COUNT(*) FILTER (WHERE uploaded_at IS NULL AND upload_dead_at IS NULL
                            AND purged_at IS NULL),
           COUNT(*) FILTER (WHERE upload_dead_at IS NOT NULL),
           COUNT(*) FILTER (WHERE uploaded_at IS NOT NULL)
         FROM photos",
        [],
        |r| {
            Ok(PhotoBacklog {
                pending_photos: r.get(0)?,
                dead_photos: r.get(1)?,
                uploaded_photos: r.get(2)?,
            })
        },
    )?)
}

/// The event and photo backlogs together (status, presence, the API).
pub fn backlogs(conn: &Connection) -> Result<(crate::outbox::Backlog, PhotoBacklog), DbError> {
    Ok((crate::outbox::backlog(conn)?, photo_backlog(conn)?))
}

/// Photo files whose upload was confirmed before `cutoff`, not yet purged.
pub fn purgeable_photos(conn: &Connection, cutoff: &str) -> Result<Vec<String>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT sha256 FROM photos WHERE uploaded_at IS NOT NULL AND uploaded_at < ?1
           AND purged_at IS NULL LIMIT 1000",
    )?;
    let rows = stmt.query_map([cutoff], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn mark_purged(tx: &Transaction<'_>, sha256: &str, at: &str) -> Result<(), DbError> {
    tx.execute(
        "UPDATE photos SET purged_at = ?2 WHERE sha256 = ?1",
        params![sha256, at],
    )?;
    Ok(())
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(500) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
