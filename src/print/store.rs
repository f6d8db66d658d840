//! The `print_jobs` table: queue, take in order, mark.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::JobKind;
use crate::db::DbError;

/// A job waiting for the printer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    pub ref_id: String,
    pub attempts: i64,
}

/// Queues a job inside the caller's transaction; returns its id.
pub fn enqueue(tx: &Transaction<'_>, kind: JobKind, ref_id: &str) -> Result<i64, DbError> {
    tx.prepare_cached("INSERT INTO print_jobs (kind, ref_id, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![kind.as_str(), ref_id, crate::clock::now_string()])?;
    Ok(tx.last_insert_rowid())
}

/// Which jobs a printer takes: all of them, or (with a label printer) the
/// receipt printer everything but labels and the label printer labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    All,
    AllButLabels,
    LabelsOnly,
}

impl Takes {
    fn code(self) -> i64 {
        match self {
            Takes::All => 0,
            Takes::AllButLabels => 1,
            Takes::LabelsOnly => 2,
        }
    }
}

/// The jobs of `takes` still to print (`?1`: [`Takes::code`]).
const WAITING: &str = "printed_at IS NULL AND failed_at IS NULL
     AND (?1 = 0 OR (?1 = 1 AND kind <> 'label') OR (?1 = 2 AND kind = 'label'))";

/// The first job still to print of those `takes` names.
pub fn next(c: &Connection, takes: Takes) -> Result<Option<Job>, DbError> {
    let row = c
        .prepare_cached(&format!(
            "SELECT id, kind, ref_id, attempts FROM print_jobs WHERE {WAITING} ORDER BY id LIMIT 1"
        ))?
        .query_row([takes.code()], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
    Ok(row.and_then(|(id, kind, ref_id, attempts)| {
        Some(Job {
            id,
            kind: JobKind::parse(&kind)?,
            ref_id,
            attempts,
        })
    }))
}

/// Jobs still to print of those `takes` names.
pub fn queued(c: &Connection, takes: Takes) -> Result<i64, DbError> {
    Ok(
        c.prepare_cached(&format!("SELECT COUNT(*) FROM print_jobs WHERE {WAITING}"))?
            .query_row([takes.code()], |r| r.get(0))?,
    )
}

/// The job's bytes reached the printer.
pub fn mark_printed(tx: &Transaction<'_>, id: i64) -> Result<(), DbError> {
    tx.prepare_cached(
        "UPDATE print_jobs SET printed_at = ?2, attempts = attempts + 1, last_error = NULL WHERE id = ?1",
    )?
    .execute(params![id, crate::clock::now_string()])?;
    Ok(())
}

/// A try that did not print; it stays first in line.
pub fn note_failure(tx: &Transaction<'_>, id: i64, error: &str) -> Result<(), DbError> {
    tx.prepare_cached(
        "UPDATE print_jobs SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
    )?
    .execute(params![id, error])?;
    Ok(())
}

/// A job that can never print (what it names is gone): the queue moves on.
pub fn mark_failed(tx: &Transaction<'_>, id: i64, error: &str) -> Result<(), DbError> {
    tx.prepare_cached("UPDATE print_jobs SET failed_at = ?2, last_error = ?3 WHERE id = ?1")?
        .execute(params![id, crate::clock::now_string(), error])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, Durability};

    #[test]
    fn jobs_come_out_in_order_until_printed_or_failed() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("y.db"), dir.path()).unwrap();
        let w = |f: &dyn Fn(&Transaction<'_>) -> Result<(), DbError>| {
            db.write_blocking(Durability::Full, |tx| f(tx)).unwrap()
        };
        w(&|tx| {
            enqueue(tx, JobKind::Receipt, "p1")?;
            enqueue(tx, JobKind::Handover, "h1")?;
            enqueue(tx, JobKind::Receipt, "p2").map(|_| ())
        });
        let next = || db.read_blocking(|c| next(c, Takes::All)).unwrap().unwrap();
        let first = next();
        assert_eq!(
            (first.kind, first.ref_id.as_str()),
            (JobKind::Receipt, "p1")
        );
        w(&|tx| note_failure(tx, first.id, "offline"));
        assert_eq!(next().attempts, 1, "a failed try keeps it first");
        w(&|tx| mark_printed(tx, first.id));
        let second = next();
        assert_eq!(second.ref_id, "h1");
        w(&|tx| mark_failed(tx, second.id, "gone"));
        assert_eq!(next().ref_id, "p2");
        assert_eq!(db.read_blocking(|c| queued(c, Takes::All)).unwrap(), 1);
    }

    #[test]
    fn a_label_printer_takes_the_labels_and_the_other_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("y.db"), dir.path()).unwrap();
        db.write_blocking(Durability::Full, |tx| {
            enqueue(tx, JobKind::Label, "p1")?;
            enqueue(tx, JobKind::Receipt, "p1").map(|_| ())
        })
        .unwrap();
        let first = |takes| {
            db.read_blocking(move |c| next(c, takes))
                .unwrap()
                .map(|j| j.kind)
        };
        assert_eq!(first(Takes::All), Some(JobKind::Label));
        assert_eq!(first(Takes::AllButLabels), Some(JobKind::Receipt));
        assert_eq!(first(Takes::LabelsOnly), Some(JobKind::Label));
        let count = |takes| db.read_blocking(move |c| queued(c, takes)).unwrap();
        assert_eq!(
            (
                count(Takes::All),
                count(Takes::AllButLabels),
                count(Takes::LabelsOnly)
            ),
            (2, 1, 1)
        );
    }
}
