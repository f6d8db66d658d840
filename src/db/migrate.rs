//! Embedded, numbered schema migrations.
//!
//! Each migration runs in its own transaction together with the bump of
//! `PRAGMA user_version`, so a crash leaves the schema at one version or the
//! next, never between. Landed migrations are never edited. An existing
//! database is backed up (online backup API) before it is migrated, and a
//! database newer than this binary is refused rather than touched.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior, backup::Backup};

use super::DbError;

/// A schema migration: its version, a name for messages, and its SQL.
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration this binary knows, oldest first, versions 1..=N.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_init",
        sql: include_str!("../../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_sync",
        sql: include_str!("../../migrations/0002_sync.sql"),
    },
    Migration {
        version: 3,
        name: "0003_counter",
        sql: include_str!("../../migrations/0003_counter.sql"),
    },
    Migration {
        version: 4,
        name: "0004_backlog",
        sql: include_str!("../../migrations/0004_backlog.sql"),
    },
    Migration {
        version: 5,
        name: "0005_delivery_queue",
        sql: include_str!("../../migrations/0005_delivery_queue.sql"),
    },
    Migration {
        version: 6,
        name: "0006_print_jobs",
        sql: include_str!("../../migrations/0006_print_jobs.sql"),
    },
    Migration {
        version: 7,
        name: "0007_self_service_keys",
        sql: include_str!("../../migrations/0007_self_service_keys.sql"),
    },
    Migration {
        version: 8,
        name: "0008_verification",
        sql: include_str!("../../migrations/0008_verification.sql"),
    },
    Migration {
        version: 9,
        name: "0009_waybill_pools",
        sql: include_str!("../../migrations/0009_waybill_pools.sql"),
    },
];

/// The schema version this binary writes.
pub fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Brings the database on `conn` up to [`latest_version`].
pub(super) fn run(conn: &mut Connection, path: &Path, backup_dir: &Path) -> Result<(), DbError> {
    let current = user_version(conn)?;
    let latest = latest_version();
    if current > latest {
        return Err(DbError::SchemaTooNew {
            path: path.to_owned(),
            found: current,
            supported: latest,
        });
    }
    if current == latest {
        return Ok(());
    }
    if current > 0 {
        backup_before_migration(conn, backup_dir, current)?;
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        apply(conn, m)?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied schema migration"
        );
    }
    Ok(())
}

fn apply(conn: &mut Connection, m: &Migration) -> Result<(), DbError> {
    let err = |source| DbError::Migration {
        version: m.version,
        name: m.name,
        source,
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Exclusive)
        .map_err(err)?;
    tx.execute_batch(m.sql).map_err(err)?;
    tx.pragma_update(None, "user_version", m.version)
        .map_err(err)?;
    tx.commit().map_err(err)
}

fn user_version(conn: &Connection) -> Result<u32, DbError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

fn backup_before_migration(conn: &Connection, dir: &Path, from: u32) -> Result<(), DbError> {
    crate::durable::create_dir_all(dir)
        .map_err(|e| DbError::Backup(format!("{}: {e}", dir.display())))?;
    let stamp = crate::clock::now().format("%Y%m%dT%H%M%SZ");
    let target = dir.join(format!("pre-migration-v{from}-{stamp}.db"));
    backup_to(conn, &target).map_err(|e| DbError::Backup(format!("{}: {e}", target.display())))?;
    // On disk, name and all, before the migration it guards commits.
    crate::durable::flush_written(&target)
        .map_err(|e| DbError::Backup(format!("{}: {e}", target.display())))?;
    tracing::info!(backup = %target.display(), from, "backed up the database before migrating");
    Ok(())
}

/// Copies the live database on `conn` to `target` with SQLite's online
/// backup API; safe while other connections write.
pub fn backup_to(conn: &Connection, target: &Path) -> Result<(), rusqlite::Error> {
    let mut dst = Connection::open(target)?;
    Backup::new(conn, &mut dst)?.run_to_completion(256, Duration::from_millis(5), None)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    #[test]
    fn versions_are_consecutive_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.name);
        }
    }

    #[test]
    fn upgrades_from_every_older_schema() {
        for start in 0..latest_version() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("y.db");
            let mut conn = Connection::open(&path).unwrap();
            for m in MIGRATIONS.iter().take(start as usize) {
                apply(&mut conn, m).unwrap();
            }
            drop(conn);
            let db = Db::open(&path, &dir.path().join("backups")).unwrap();
            let v: u32 = db.read_blocking(user_version).unwrap();
            assert_eq!(v, latest_version(), "from {start}");
            let backups = std::fs::read_dir(dir.path().join("backups")).map_or(0, |d| d.count());
            assert_eq!(
                backups,
                usize::from(start > 0),
                "backup taken only for an existing schema"
            );
        }
    }

    #[test]
    fn events_written_by_schema_1_keep_their_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.db");
        let mut conn = Connection::open(&path).unwrap();
        apply(&mut conn, &MIGRATIONS[0]).unwrap();
        conn.execute(
            "INSERT INTO events (seq, event_id, type, parcel_id, occurred_at, body)
             VALUES (1, 'E1', 'parcel.dropped', 'P1', '2026-01-01T00:00:00.000Z', '{\"seq\":1}')",
            [],
        )
        .unwrap();
        drop(conn);
        let db = Db::open(&path, &dir.path().join("backups")).unwrap();
        let e = db
            .read_blocking(|c| crate::outbox::get(c, "E1"))
            .unwrap()
            .expect("event kept");
        assert_eq!(e.envelope, serde_json::json!({"seq": 1}));
        assert_eq!(e.delivered_at, None);
    }

    #[test]
    fn schema_4_carries_the_last_delivery_time_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.db");
        let mut conn = Connection::open(&path).unwrap();
        for m in &MIGRATIONS[..3] {
            apply(&mut conn, m).unwrap();
        }
        for (seq, delivered) in [(1, Some("2026-01-02T00:00:00.000Z")), (2, None)] {
            conn.execute(
                "INSERT INTO events (seq, event_id, type, parcel_id, occurred_at, delivered_at)
                 VALUES (?1, ?1, 'parcel.dropped', 'P1', '2026-01-01T00:00:00.000Z', ?2)",
                rusqlite::params![seq, delivered],
            )
            .unwrap();
        }
        drop(conn);
        let db = Db::open(&path, &dir.path().join("backups")).unwrap();
        let b = db.read_blocking(crate::outbox::backlog).unwrap();
        assert_eq!(
            b.last_delivered_at.as_deref(),
            Some("2026-01-02T00:00:00.000Z")
        );
        assert_eq!(b.pending_events, 1);
    }

    #[test]
    fn schema_5_queues_exactly_the_pending_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.db");
        let mut conn = Connection::open(&path).unwrap();
        for m in &MIGRATIONS[..4] {
            apply(&mut conn, m).unwrap();
        }
        let rows: [(i64, Option<&str>, Option<&str>); 4] = [
            (1, Some("2026-01-02T00:00:00.000Z"), None),
            (2, None, None),
            (3, None, Some("2026-01-03T00:00:00.000Z")),
            (4, None, None),
        ];
        for (seq, delivered, dead) in rows {
            conn.execute(
                "INSERT INTO events (seq, event_id, type, parcel_id, occurred_at, delivered_at, dead_at)
                 VALUES (?1, ?1, 'parcel.dropped', 'P1', '2026-01-01T00:00:00.000Z', ?2, ?3)",
                rusqlite::params![seq, delivered, dead],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO event_bodies (seq, body) VALUES (?1, '{}')",
                [seq],
            )
            .unwrap();
        }
        drop(conn);
        let db = Db::open(&path, &dir.path().join("backups")).unwrap();
        let pending: Vec<i64> = db
            .read_blocking(|c| crate::outbox::list(c, crate::outbox::Filter::Pending, 10))
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(pending, [2, 4]);
        let b = db.read_blocking(crate::outbox::backlog).unwrap();
        assert_eq!((b.pending_events, b.dead_letters), (2, 1));
        let first = db
            .read_blocking(|c| crate::outbox::get(c, "1"))
            .unwrap()
            .unwrap();
        assert_eq!(
            first.delivered_at.as_deref(),
            Some("2026-01-02T00:00:00.000Z")
        );
    }

    #[test]
    fn newer_schema_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", latest_version() + 1)
            .unwrap();
        drop(conn);
        let err = Db::open(&path, dir.path()).err().expect("must refuse");
        assert!(
            matches!(err, DbError::SchemaTooNew { found, .. } if found == latest_version() + 1)
        );
        assert!(err.to_string().contains("newer than this yizhan knows"));
    }
}
