//! The delivery queues in SQLite: which events and photos still have to go
//! up, and the marks that record what the platform confirmed.
//!
//! # Invariants
//! - The outbox table is the source of truth, never the MQTT client's
//!   memory: an event is pending until a PUBACK (or an HTTPS `accepted` /
//!   `duplicates`) for it has been recorded here.
//! - An event is pending exactly while its `seq` is in `outbox_pending`
//!   (migration 0005). Delivery and dead-lettering take it out, an
//!   operator's retry puts it back; the event's own row is rewritten only
//!   for what must be kept per event (an HTTPS delivery's time, a failure,
//!   a dead letter), never for an MQTT delivery.
//! - Marks are written in batches; losing a batch of marks (power cut) only
//!   means those events are sent again, which the platform de-duplicates.
//! - Nothing here deletes an event.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
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
        "SELECT p.seq, b.body FROM outbox_pending p JOIN event_bodies b ON b.seq = p.seq
         WHERE p.seq > ?1 AND p.seq <= ?2 ORDER BY p.seq LIMIT ?3",
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
/// how many were newly marked. The events leave `outbox_pending` and the
/// time is kept once per run of consecutive `seq`s that left it, so a batch
/// of thousands of acks writes a few pages, not every event's row. Only
/// `seq`s still pending form runs: an event delivered twice (a resend) or
/// given up on meanwhile is not recorded again, and runs never overlap.
pub fn mark_delivered(tx: &Transaction<'_>, seqs: &[i64], at: &str) -> Result<usize, DbError> {
    let mut taken = Vec::with_capacity(seqs.len());
    {
        let mut take = tx.prepare_cached(
            "DELETE FROM outbox_pending WHERE seq BETWEEN ?1 AND ?2 RETURNING seq",
        )?;
        for (first, last) in runs(seqs) {
            let rows = take.query_map(params![first, last], |r| r.get::<_, i64>(0))?;
            for seq in rows {
                taken.push(seq?);
            }
        }
    }
    let mut record = tx.prepare_cached(
        "INSERT INTO delivery_runs (first_seq, last_seq, delivered_at) VALUES (?1, ?2, ?3)",
    )?;
    for (first, last) in runs(&taken) {
        record.execute(params![first, last, at])?;
    }
    note_delivery(tx, taken.len(), at)?;
    Ok(taken.len())
}

/// `seqs` (any order, duplicates allowed) as ascending runs of consecutive
/// numbers, `(first, last)` inclusive.
fn runs(seqs: &[i64]) -> Vec<(i64, i64)> {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for seq in sorted {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == seq => *last = seq,
            _ => runs.push((seq, seq)),
        }
    }
    runs
}

/// Takes the event `event_id` out of the pending queue; its `seq` if it
/// was pending.
fn take_pending(tx: &Transaction<'_>, event_id: &str) -> Result<Option<i64>, DbError> {
    Ok(tx
        .prepare_cached(
            "DELETE FROM outbox_pending
             WHERE seq = (SELECT seq FROM events WHERE event_id = ?1) RETURNING seq",
        )?
        .query_row([event_id], |r| r.get(0))
        .optional()?)
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
         WHERE seq = ?1",
    )?;
    let mut n = 0;
    for id in ids {
        if let Some(seq) = take_pending(tx, id)? {
            n += stmt.execute(params![seq, at])?;
        }
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
         WHERE seq = ?1",
    )?;
    let mut n = 0;
    for (id, reason) in refused {
        if let Some(seq) = take_pending(tx, id)? {
            n += stmt.execute(params![seq, at, truncate(reason)])?;
        }
    }
    Ok(n)
}

/// Notes a failed attempt on `seqs` (the events stay pending).
pub fn note_failure(tx: &Transaction<'_>, seqs: &[i64], error: &str) -> Result<(), DbError> {
    let mut stmt = tx.prepare_cached(
        "UPDATE events SET attempts = attempts + 1, last_error = ?2
         WHERE seq = ?1 AND seq IN (SELECT seq FROM outbox_pending)",
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
    // Back in the queue first, while `dead_at` still says which ones.
    tx.execute(
        "INSERT INTO outbox_pending (seq)
         SELECT seq FROM events WHERE dead_at IS NOT NULL AND (?1 IS NULL OR seq = ?1)",
        [seq],
    )?;
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

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(500) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ClockCheck};
    use crate::db::{Db, Durability};
    use crate::outbox::{self, Event, EventSource, Filter};
    use crate::parcel::ParcelId;

    /// A database with `n` events, seq 1..=n.
    fn outbox_of(n: usize) -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("y.db"), dir.path()).unwrap();
        let source = EventSource {
            station_id: "ST-1".into(),
            device_id: "k1".into(),
            clock: Clock::new(ClockCheck::Off),
        };
        db.write_blocking(Durability::Full, |tx| -> Result<(), DbError> {
            for _ in 0..n {
                outbox::append(
                    tx,
                    &source,
                    &Event::Held {
                        reason: "test".into(),
                    },
                    &ParcelId::new(),
                    "RT1",
                )?;
            }
            Ok(())
        })
        .unwrap();
        (dir, db)
    }

    fn pending_seqs(db: &Db) -> Vec<i64> {
        db.read_blocking(|c| pending_events(c, 0, i64::MAX, 1000))
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect()
    }

    fn count(db: &Db, sql: &str) -> i64 {
        db.read_blocking(|c| -> Result<i64, DbError> { Ok(c.query_row(sql, [], |r| r.get(0))?) })
            .unwrap()
    }

    #[test]
    fn seqs_fold_into_runs() {
        assert_eq!(runs(&[]), []);
        assert_eq!(runs(&[7, 3, 4, 5, 5, 9, 8]), [(3, 5), (7, 9)]);
        assert_eq!(runs(&[2, 1]), [(1, 2)]);
        assert_eq!(runs(&[10, 1]), [(1, 1), (10, 10)]);
    }

    #[test]
    fn mqtt_delivery_takes_events_out_of_the_queue_without_rewriting_them() {
        let (_dir, db) = outbox_of(600);
        let acked: Vec<i64> = (1..=500).filter(|s| s % 100 != 0).collect();
        let n = db
            .write_blocking(Durability::Relaxed, |tx| {
                mark_delivered(tx, &acked, "2026-01-02T00:00:00.000Z")
            })
            .unwrap();
        assert_eq!(n, 495);
        assert_eq!(
            pending_seqs(&db),
            [100, 200, 300, 400, 500]
                .into_iter()
                .chain(501..=600)
                .collect::<Vec<_>>()
        );
        // One row per run, none per event; the events' rows are untouched.
        assert_eq!(count(&db, "SELECT COUNT(*) FROM delivery_runs"), 5);
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM events WHERE delivered_at IS NOT NULL OR attempts > 0"
            ),
            0
        );
        // Each event still tells when it was delivered, or that it was not.
        let shown = |key: &str| {
            db.read_blocking(|c| outbox::get(c, key))
                .unwrap()
                .unwrap()
                .delivered_at
        };
        for seq in ["1", "99", "101", "450", "499"] {
            assert_eq!(
                shown(seq).as_deref(),
                Some("2026-01-02T00:00:00.000Z"),
                "seq {seq}"
            );
        }
        for seq in ["100", "500", "501"] {
            assert_eq!(shown(seq), None, "seq {seq}");
        }
        let listed: Vec<i64> = db
            .read_blocking(|c| outbox::list(c, Filter::Pending, 3))
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(listed, [100, 200, 300]);

        // A resend's PUBACK counts nothing and adds no run; runs never overlap.
        let again = db
            .write_blocking(Durability::Relaxed, |tx| {
                mark_delivered(
                    tx,
                    &(95..=105).collect::<Vec<_>>(),
                    "2026-01-03T00:00:00.000Z",
                )
            })
            .unwrap();
        assert_eq!(again, 1, "only seq 100 was still pending");
        assert_eq!(shown("100").as_deref(), Some("2026-01-03T00:00:00.000Z"));
        assert_eq!(shown("99").as_deref(), Some("2026-01-02T00:00:00.000Z"));
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM delivery_runs a JOIN delivery_runs b
                 ON a.first_seq < b.first_seq AND a.last_seq >= b.first_seq"
            ),
            0
        );
        assert_eq!(outbox_backlog(&db), 104);
    }

    fn outbox_backlog(db: &Db) -> i64 {
        db.read_blocking(outbox::backlog).unwrap().pending_events
    }

    #[test]
    fn dead_letters_leave_the_queue_and_a_retry_puts_them_back() {
        let (_dir, db) = outbox_of(3);
        let id = |seq: i64| {
            db.read_blocking(|c| outbox::get(c, &seq.to_string()))
                .unwrap()
                .unwrap()
                .event_id
        };
        let (id2, id3) = (id(2), id(3));
        db.write_blocking(Durability::Full, |tx| -> Result<(), DbError> {
            mark_dead(tx, &[(id2, "refused".into())], "2026-01-02T00:00:00.000Z")?;
            mark_delivered_ids(tx, std::slice::from_ref(&id3), "2026-01-02T00:00:00.000Z")?;
            // Neither a dead nor a delivered event can be given up on again.
            assert_eq!(
                mark_dead(tx, &[(id3, "late".into())], "2026-01-03T00:00:00.000Z")?,
                0
            );
            Ok(())
        })
        .unwrap();
        assert_eq!(pending_seqs(&db), [1]);
        // A PUBACK for the dead event (sent before it died) does not revive
        // it as delivered.
        let n = db
            .write_blocking(Durability::Relaxed, |tx| {
                mark_delivered(tx, &[2], "2026-01-04T00:00:00.000Z")
            })
            .unwrap();
        assert_eq!(n, 0);
        let requeued = db
            .write_blocking(Durability::Full, |tx| retry_dead(tx, None))
            .unwrap();
        assert_eq!(requeued.events, 1);
        assert_eq!(pending_seqs(&db), [1, 2]);
        assert_eq!(outbox_backlog(&db), 2);
    }
}
