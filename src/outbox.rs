//! The outbox of SPEC §5: every committed transition appends one event in
//! the same SQLite transaction as the state change.
//!
//! # Invariants
//! - `seq` comes from the `event_seq` counter bumped inside the writing
//!   transaction, so committed events number 1, 2, 3… with no gaps, and a
//!   rolled-back transaction takes its number with it.
//! - `event_id` is a fresh ULID: the platform's idempotency key.
//! - `occurred_at` is the counter time; `clock_trusted` is false when the OS
//!   says the clock is unsynchronised or when it reads earlier than the last
//!   committed event.
//! - Events are deleted only by [`prune_delivered`], and only a prefix of
//!   them: delivered at least `storage.event_retention_days` ago (SPEC §5),
//!   never an undelivered or dead-lettered one, never the last. The
//!   `pruned_through` counter records where the kept range starts, so a gap
//!   anywhere else is still an error for `yizhan db check`. Delivery state
//!   is otherwise the sync side's business.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::Value;

use crate::clock::{self, Clock};
use crate::db::DbError;
use crate::parcel::ParcelId;

mod event;

pub use event::Event;

/// Who is writing events: the station and device identity, and its clock.
#[derive(Debug, Clone)]
pub struct EventSource {
    pub station_id: String,
    pub device_id: String,
    pub clock: Clock,
}

/// Word that events were committed, so that delivery starts at once
/// instead of at its next timer. Cheap to clone; every clone bumps and
/// follows the same counter.
#[derive(Debug, Clone)]
pub struct Commits(std::sync::Arc<tokio::sync::watch::Sender<u64>>);

impl Default for Commits {
    fn default() -> Self {
        Commits(std::sync::Arc::new(tokio::sync::watch::channel(0).0))
    }
}

impl Commits {
    /// New events are committed.
    pub fn bump(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Follows [`Commits::bump`].
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// The envelope exactly as it goes over the wire (SPEC §5).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Envelope {
    pub event_id: String,
    pub station_id: String,
    pub device_id: String,
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: String,
    pub clock_trusted: bool,
    pub parcel_id: String,
    pub return_no: String,
    pub data: Value,
}

/// Appends one event inside `tx` and returns its envelope.
pub fn append(
    tx: &Transaction<'_>,
    source: &EventSource,
    event: &Event,
    parcel_id: &ParcelId,
    return_no: &str,
) -> Result<Envelope, DbError> {
    let data = event.data().map_err(|source| DbError::Encode {
        what: "an event's data",
        source,
    })?;
    let (now, synced) = source.clock.now();
    let occurred_at = clock::format(now);
    // Bump, then read back: `RETURNING` would build a temporary table on
    // every run, dearer than one more read of a cached page.
    tx.prepare_cached("UPDATE counters SET value = value + 1 WHERE name = 'event_seq'")?
        .execute([])?;
    let seq: i64 = tx.prepare_cached(SEQ)?.query_row([], |r| r.get(0))?;
    let last: Option<String> = tx
        .prepare_cached("SELECT occurred_at FROM events ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    // Fixed-width UTC text compares like the times it names.
    let behind = last.is_some_and(|last| occurred_at < last);
    let envelope = Envelope {
        event_id: ulid::Ulid::new().to_string(),
        station_id: source.station_id.clone(),
        device_id: source.device_id.clone(),
        seq,
        kind: event.kind().to_owned(),
        occurred_at,
        clock_trusted: synced && !behind,
        parcel_id: parcel_id.to_string(),
        return_no: return_no.to_owned(),
        data,
    };
    let body = serde_json::to_string(&envelope).map_err(|source| DbError::Encode {
        what: "an event",
        source,
    })?;
    tx.prepare_cached(
        "INSERT INTO events (seq, event_id, type, parcel_id, occurred_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        seq,
        envelope.event_id,
        envelope.kind,
        envelope.parcel_id,
        envelope.occurred_at,
    ])?;
    tx.prepare_cached("INSERT INTO event_bodies (seq, body) VALUES (?1, ?2)")?
        .execute(params![seq, body])?;
    tx.prepare_cached("INSERT INTO outbox_pending (seq) VALUES (?1)")?
        .execute([seq])?;
    Ok(envelope)
}

/// Most events deleted by one [`prune_delivered`] transaction: short
/// transactions, so check-ins never wait long behind a pruning.
pub const PRUNE_BATCH: usize = 500;

/// Deletes the oldest delivered events, up to [`PRUNE_BATCH`]: those at the
/// front of the outbox (from `pruned_through + 1` on) that were delivered
/// before `cutoff`, stopping at the first that was not (undelivered, a
/// dead letter, delivered since, or the very last event). Returns how many
/// went.
pub fn prune_delivered(tx: &Transaction<'_>, cutoff: &str) -> Result<usize, DbError> {
    let from = pruned_through(tx)?;
    let max: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?;
    let mut stmt = tx.prepare_cached(
        "SELECT e.seq, e.dead_at IS NOT NULL,
                EXISTS (SELECT 1 FROM outbox_pending p WHERE p.seq = e.seq),
                COALESCE(e.delivered_at,
                         (SELECT r.delivered_at FROM delivery_runs r
                          WHERE r.first_seq <= e.seq AND r.last_seq >= e.seq
                          ORDER BY r.first_seq DESC LIMIT 1))
         FROM events e WHERE e.seq > ?1 AND e.seq < ?2 ORDER BY e.seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![from, max, PRUNE_BATCH as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, bool>(1)?,
            r.get::<_, bool>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    let mut through = from;
    for row in rows {
        let (seq, dead, pending, delivered_at) = row?;
        let old_enough = delivered_at.is_some_and(|at| at.as_str() < cutoff);
        // Only a prefix goes: the kept range stays one run of seq.
        if seq != through + 1 || dead || pending || !old_enough {
            break;
        }
        through = seq;
    }
    if through == from {
        return Ok(0);
    }
    tx.prepare_cached("DELETE FROM event_bodies WHERE seq <= ?1")?
        .execute([through])?;
    let n = tx
        .prepare_cached("DELETE FROM events WHERE seq <= ?1")?
        .execute([through])?;
    tx.prepare_cached("DELETE FROM delivery_runs WHERE last_seq <= ?1")?
        .execute([through])?;
    tx.prepare_cached(
        "INSERT INTO counters (name, value) VALUES ('pruned_through', ?1)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )?
    .execute([through])?;
    Ok(n)
}

/// The last `seq` pruned (0: none): the kept events start after it.
pub fn pruned_through(c: &Connection) -> Result<i64, DbError> {
    Ok(
        c.prepare_cached("SELECT value FROM counters WHERE name = 'pruned_through'")?
            .query_row([], |r| r.get(0))
            .optional()?
            .unwrap_or(0),
    )
}

/// When the last committed event happened (the clock must not read
/// earlier).
pub fn last_occurred_at(c: &Connection) -> Result<Option<String>, DbError> {
    Ok(
        c.prepare_cached("SELECT occurred_at FROM events ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| r.get(0))
            .optional()?,
    )
}

/// An outbox row with its delivery state.
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub seq: i64,
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub parcel_id: Option<String>,
    pub occurred_at: String,
    pub delivered_at: Option<String>,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub dead_at: Option<String>,
    pub dead_reason: Option<String>,
    pub envelope: Value,
}

/// Which events to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Not yet delivered and not dead, oldest first.
    Pending,
    /// Given up on by the platform, waiting for an operator.
    Dead,
    /// Everything, newest first.
    All,
}

/// An event's columns; its delivery time is its own (confirmed by event id
/// over HTTPS) or its run's (confirmed over MQTT, migration 0005).
const RECORD_COLUMNS: &str = "e.seq, event_id, type, parcel_id, occurred_at,
     COALESCE(e.delivered_at,
              (SELECT CASE WHEN r.last_seq >= e.seq THEN r.delivered_at END
               FROM delivery_runs r WHERE r.first_seq <= e.seq
               ORDER BY r.first_seq DESC LIMIT 1)),
     attempts, last_error, dead_at, dead_reason, b.body";

const JOIN_BODY: &str = "JOIN event_bodies b ON b.seq = e.seq";

/// Lists up to `limit` events matching `filter`.
pub fn list(conn: &Connection, filter: Filter, limit: u32) -> Result<Vec<EventRecord>, DbError> {
    let clause = match filter {
        Filter::Pending => "WHERE e.seq IN (SELECT seq FROM outbox_pending) ORDER BY e.seq ASC",
        Filter::Dead => "WHERE dead_at IS NOT NULL ORDER BY e.seq ASC",
        Filter::All => "ORDER BY e.seq DESC",
    };
    let sql = format!("SELECT {RECORD_COLUMNS} FROM events e {JOIN_BODY} {clause} LIMIT ?1");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([limit], record)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One event by `seq` or `event_id`.
pub fn get(conn: &Connection, key: &str) -> Result<Option<EventRecord>, DbError> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM events e {JOIN_BODY} WHERE event_id = ?1 OR e.seq = ?2"
    );
    let seq = key.parse::<i64>().unwrap_or(-1);
    Ok(conn.query_row(&sql, params![key, seq], record).optional()?)
}

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRecord> {
    let body: String = r.get(10)?;
    Ok(EventRecord {
        seq: r.get(0)?,
        event_id: r.get(1)?,
        kind: r.get(2)?,
        parcel_id: r.get(3)?,
        occurred_at: r.get(4)?,
        delivered_at: r.get(5)?,
        attempts: r.get(6)?,
        last_error: r.get(7)?,
        dead_at: r.get(8)?,
        dead_reason: r.get(9)?,
        envelope: serde_json::from_str(&body).unwrap_or(Value::String(body)),
    })
}

/// How far behind delivery is.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Backlog {
    pub pending_events: i64,
    pub oldest_pending_at: Option<String>,
    pub oldest_pending_s: Option<i64>,
    pub dead_letters: i64,
    pub last_seq: i64,
    pub last_delivered_at: Option<String>,
}

/// The last `seq` handed out.
const SEQ: &str = "SELECT value FROM counters WHERE name = 'event_seq'";

/// What [`backlog`] asks: pending count, the oldest pending event's time,
/// dead letters, the last `seq`, the last delivery. The event first in line
/// is the one that has waited longest (events go out in `seq` order; a
/// clock set back cannot make a later one look older).
const BACKLOG_QUERIES: [&str; 5] = [
    "SELECT COUNT(*) FROM outbox_pending",
    "SELECT e.occurred_at FROM outbox_pending p JOIN events e ON e.seq = p.seq
     ORDER BY p.seq LIMIT 1",
    "SELECT COUNT(*) FROM events WHERE dead_at IS NOT NULL",
    SEQ,
    "SELECT value FROM meta WHERE key = 'last_delivered_at'",
];

/// Counts of the outbox for status, metrics and the API. Every screen and
/// scrape reads these, so none of them walks the whole events table: the
/// pending count walks only the pending queue (migration 0005), the rest
/// are single index or row lookups (migration 0004).
pub fn backlog(conn: &Connection) -> Result<Backlog, DbError> {
    let [pending, oldest, dead, last_seq, last_delivered] = BACKLOG_QUERIES;
    let pending_events: i64 = conn.prepare_cached(pending)?.query_row([], |r| r.get(0))?;
    let oldest_pending_at: Option<String> = conn
        .prepare_cached(oldest)?
        .query_row([], |r| r.get(0))
        .optional()?;
    let dead_letters: i64 = conn.prepare_cached(dead)?.query_row([], |r| r.get(0))?;
    let last_seq: i64 = conn.prepare_cached(last_seq)?.query_row([], |r| r.get(0))?;
    let last_delivered_at: Option<String> = conn
        .prepare_cached(last_delivered)?
        .query_row([], |r| r.get(0))
        .optional()?;
    let oldest_pending_s = oldest_pending_at
        .as_deref()
        .and_then(clock::parse)
        .map(|t| (crate::clock::now() - t).num_seconds().max(0));
    Ok(Backlog {
        pending_events,
        oldest_pending_at,
        oldest_pending_s,
        dead_letters,
        last_seq,
        last_delivered_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ClockCheck;
    use crate::db::{Db, Durability};

    fn source() -> EventSource {
        EventSource {
            station_id: "ST-1".into(),
            device_id: "k1".into(),
            clock: Clock::new(ClockCheck::Off),
        }
    }

    fn append_one(db: &Db) -> Result<Envelope, DbError> {
        db.write_blocking(Durability::Full, |tx| {
            append(
                tx,
                &source(),
                &Event::Held {
                    reason: "test".into(),
                },
                &ParcelId::new(),
                "RT1",
            )
        })
    }

    #[test]
    fn seq_is_gap_free_even_across_rollbacks() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("y.db"), dir.path()).unwrap();
        append_one(&db).unwrap();
        // A transaction that appends and then fails must give its seq back.
        let failed: Result<(), DbError> = db.write_blocking(Durability::Full, |tx| {
            append(
                tx,
                &source(),
                &Event::Held {
                    reason: "test".into(),
                },
                &ParcelId::new(),
                "RT2",
            )?;
            Err(DbError::Abandoned)
        });
        assert!(failed.is_err());
        let second = append_one(&db).unwrap();
        assert_eq!(second.seq, 2);
        let all = db.read_blocking(|c| list(c, Filter::Pending, 10)).unwrap();
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(all[1].envelope["event_id"], second.event_id);
    }

    #[test]
    fn pruning_takes_only_the_old_delivered_prefix_and_never_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("y.db"), dir.path()).unwrap();
        for _ in 0..10 {
            append_one(&db).unwrap();
        }
        let prune = |cutoff: &str| {
            db.write_blocking(Durability::Full, |tx| prune_delivered(tx, cutoff))
                .unwrap()
        };
        db.write_blocking(Durability::Full, |tx| -> Result<(), DbError> {
            crate::sync::queue::mark_delivered(
                tx,
                &[1, 2, 3, 4, 5, 6],
                "2026-01-01T00:00:00.000Z",
            )?;
            crate::sync::queue::mark_delivered(tx, &[7], "2026-06-01T00:00:00.000Z")?;
            crate::sync::queue::mark_delivered(tx, &[10], "2026-01-01T00:00:00.000Z")?;
            tx.execute("DELETE FROM outbox_pending WHERE seq = 8", [])?;
            tx.execute("UPDATE events SET dead_at = 'x' WHERE seq = 8", [])?;
            Ok(())
        })
        .unwrap();
        assert_eq!(prune("2025-12-31T00:00:00.000Z"), 0, "nothing old enough");
        assert_eq!(prune("2026-03-01T00:00:00.000Z"), 6, "1-6; 7 is too recent");
        assert_eq!(db.read_blocking(pruned_through).unwrap(), 6);
        assert_eq!(
            prune("2027-01-01T00:00:00.000Z"),
            1,
            "7; then 8 is a dead letter"
        );
        db.write_blocking(Durability::Full, |tx| -> Result<(), DbError> {
            tx.execute("UPDATE events SET dead_at = NULL, delivered_at = '2026-01-02T00:00:00.000Z' WHERE seq = 8", [])?;
            Ok(())
        })
        .unwrap();
        assert_eq!(prune("2027-01-01T00:00:00.000Z"), 1, "8; then 9 is pending");
        db.write_blocking(Durability::Full, |tx| {
            crate::sync::queue::mark_delivered(tx, &[9], "2026-01-01T00:00:00.000Z")
        })
        .unwrap();
        assert_eq!(
            prune("2027-01-01T00:00:00.000Z"),
            1,
            "9, never the last (10)"
        );
        let left: Vec<i64> = db
            .read_blocking(|c| -> Result<Vec<i64>, DbError> {
                let mut st = c.prepare("SELECT seq FROM events")?;
                let rows = st.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .unwrap();
        assert_eq!(left, [10]);
        assert_eq!(db.read_blocking(pruned_through).unwrap(), 9);
    }

    /// Pruned pages are reused: a station that keeps pruning what it
    /// delivered keeps a database of the same size, however long it runs.
    #[test]
    fn the_file_stops_growing_once_events_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.db");
        let db = Db::open(&path, dir.path()).unwrap();
        let mut sizes = Vec::new();
        for round in 0..4 {
            for _ in 0..2000 {
                append_one(&db).unwrap();
            }
            let last = db
                .read_blocking(|c| -> Result<i64, DbError> {
                    Ok(c.query_row("SELECT MAX(seq) FROM events", [], |r| r.get(0))?)
                })
                .unwrap();
            let seqs: Vec<i64> = (1..=last).collect();
            db.write_blocking(Durability::Full, |tx| {
                crate::sync::queue::mark_delivered(tx, &seqs, "2026-01-01T00:00:00.000Z")
            })
            .unwrap();
            while db
                .write_blocking(Durability::Full, |tx| {
                    prune_delivered(tx, "2027-01-01T00:00:00.000Z")
                })
                .unwrap()
                > 0
            {}
            db.checkpoint().unwrap();
            sizes.push(std::fs::metadata(&path).unwrap().len());
            assert_eq!(
                db.read_blocking(pruned_through).unwrap(),
                last - 1,
                "round {round}"
            );
        }
        // The first round sized the file; the others reused its pages.
        assert!(
            sizes[3] <= sizes[1] + sizes[1] / 20,
            "the file kept growing: {sizes:?}"
        );
    }

    #[test]
    fn clock_behind_the_last_event_is_untrusted() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("y.db"), dir.path()).unwrap();
        assert!(append_one(&db).unwrap().clock_trusted);
        db.write_blocking(Durability::Full, |tx| -> Result<(), DbError> {
            tx.execute(
                "UPDATE events SET occurred_at = '2999-01-01T00:00:00.000Z'",
                [],
            )?;
            Ok(())
        })
        .unwrap();
        assert!(!append_one(&db).unwrap().clock_trusted);
    }

    #[test]
    fn backlog_counts_pending() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("y.db"), dir.path()).unwrap();
        for _ in 0..3 {
            append_one(&db).unwrap();
        }
        let b = db.read_blocking(backlog).unwrap();
        assert_eq!((b.pending_events, b.last_seq, b.dead_letters), (3, 3, 0));
        assert!(b.oldest_pending_s.is_some());
        let got = db.read_blocking(|c| get(c, "2")).unwrap().unwrap();
        assert_eq!(got.seq, 2);
        assert_eq!(b.last_delivered_at, None);

        // One delivered, one refused for good: counts and times follow.
        let (first, refused) = db
            .read_blocking(|c| -> Result<_, DbError> {
                let id = |seq: i64| {
                    c.query_row("SELECT event_id FROM events WHERE seq = ?1", [seq], |r| {
                        r.get::<_, String>(0)
                    })
                };
                Ok((id(1)?, id(3)?))
            })
            .unwrap();
        db.write_blocking(Durability::Full, |tx| -> Result<(), DbError> {
            crate::sync::queue::mark_delivered(tx, &[1], "2026-01-02T00:00:00.000Z")?;
            crate::sync::queue::mark_delivered_ids(tx, &[first], "2026-01-03T00:00:00.000Z")?;
            crate::sync::queue::mark_dead(
                tx,
                &[(refused, "bad".into())],
                "2026-01-04T00:00:00.000Z",
            )?;
            Ok(())
        })
        .unwrap();
        let b = db.read_blocking(backlog).unwrap();
        assert_eq!((b.pending_events, b.dead_letters), (1, 1));
        // Marking seq 1 again by id changed nothing: the time stays.
        assert_eq!(
            b.last_delivered_at.as_deref(),
            Some("2026-01-02T00:00:00.000Z")
        );
        let oldest = db
            .read_blocking(|c| -> Result<String, DbError> {
                Ok(
                    c.query_row("SELECT occurred_at FROM events WHERE seq = 2", [], |r| {
                        r.get(0)
                    })?,
                )
            })
            .unwrap();
        assert_eq!(b.oldest_pending_at, Some(oldest), "first in line");
    }

    #[test]
    fn backlog_never_scans_the_whole_events_table() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("y.db"), dir.path()).unwrap();
        db.read_blocking(|c| -> Result<(), DbError> {
            for sql in BACKLOG_QUERIES {
                let plan: Vec<String> = c
                    .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?
                    .query_map([], |r| r.get(3))?
                    .collect::<Result<_, _>>()?;
                let plan = plan.join("; ");
                assert!(
                    !plan.contains("SCAN events") || plan.contains("INDEX"),
                    "{sql}: {plan}"
                );
            }
            Ok(())
        })
        .unwrap();
    }
}
