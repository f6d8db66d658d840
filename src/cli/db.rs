//! `yizhan db check|backup`.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::{CliError, DbCommand, Output, open_db};
use crate::config::Config;
use crate::db::{self, DbError};
use crate::photo::store::{PhotoStore, Report};

#[derive(Serialize)]
struct CheckReport {
    integrity: Vec<String>,
    foreign_key_violations: i64,
    events: i64,
    /// Events up to this `seq` were pruned after their retention (SPEC §5).
    pruned_through: i64,
    last_seq: i64,
    seq_gaps: i64,
    photos: Report,
}

impl CheckReport {
    fn ok(&self) -> bool {
        self.integrity == ["ok"]
            && self.foreign_key_violations == 0
            && self.seq_gaps == 0
            && self.photos.is_clean()
    }
}

pub fn run(config: &Config, cmd: DbCommand, out: Output) -> Result<()> {
    let db = open_db(config, false)?;
    match cmd {
        DbCommand::Check => check(config, &db, out),
        DbCommand::Backup { file } => backup(&db, &file, out),
    }
}

fn check(config: &Config, db: &db::Db, out: Output) -> Result<()> {
    let report = check_report(config, db)?;
    let human = |r: &CheckReport| {
        println!("integrity:    {}", r.integrity.join("; "));
        println!("foreign keys: {} violation(s)", r.foreign_key_violations);
        println!(
            "events:       {} stored (seq {} to {}), {} gap(s)",
            r.events,
            r.pruned_through + 1,
            r.last_seq,
            r.seq_gaps
        );
        println!(
            "photos:       {} orphan file(s), {} missing file(s), {} temp file(s)",
            r.photos.orphan_files.len(),
            r.photos.missing_files.len(),
            r.photos.temp_files
        );
    };
    if report.ok() {
        return out.print(&report, human);
    }
    out.print_failed(
        &report,
        CliError::CheckFailed(
            "database check found problems (orphan and temp files are removed at the next daemon start)"
                .to_owned(),
        ),
        human,
    )
}

/// What `yizhan db check` finds, with `ok` (`diagnostics.upload` sends it).
pub fn check_json(config: &Config, db: &db::Db) -> Result<serde_json::Value> {
    let report = check_report(config, db)?;
    let ok = report.ok();
    let mut v = serde_json::to_value(report)?;
    v["ok"] = ok.into();
    Ok(v)
}

fn check_report(config: &Config, db: &db::Db) -> Result<CheckReport> {
    let photos = PhotoStore::new(config.photos_dir(), config.storage.min_free_mb);
    let report = db.read_blocking(|c| -> Result<CheckReport, DbError> {
        let mut stmt = c.prepare("PRAGMA integrity_check")?;
        let integrity = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        let foreign_key_violations =
            c.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })?;
        let (events, first, last): (i64, i64, i64) = c.query_row(
            "SELECT COUNT(*), COALESCE(MIN(seq), 1), COALESCE(MAX(seq), 0) FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let last_seq = c.query_row(
            "SELECT value FROM counters WHERE name = 'event_seq'",
            [],
            |r| r.get(0),
        )?;
        // Delivered events are pruned from the front, never from the
        // middle: the kept ones run from `pruned_through + 1` to the last.
        let pruned_through = crate::outbox::pruned_through(c)?;
        let first = if events == 0 {
            first
        } else {
            first.min(pruned_through + 1)
        };
        let seq_gaps = (last - first + 1 - events) + (last_seq - last);
        Ok(CheckReport {
            integrity,
            foreign_key_violations,
            events,
            pruned_through,
            last_seq,
            seq_gaps,
            photos: photos.check(c, false)?,
        })
    })?;
    Ok(report)
}

fn backup(db: &db::Db, file: &Path, out: Output) -> Result<()> {
    if file.exists() {
        return Err(CliError::BadArgument(format!(
            "{} already exists; choose a new file name",
            file.display()
        ))
        .into());
    }
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(CliError::BadArgument(format!(
            "cannot write {}: the directory {} does not exist",
            file.display(),
            dir.display()
        ))
        .into());
    }
    db.read_blocking(|c| db::backup_to(c, file).map_err(DbError::from))
        .with_context(|| format!("backup to {} failed", file.display()))?;
    // A backup is for the day the card dies: on disk before we say done.
    crate::durable::flush_written(file)
        .with_context(|| format!("cannot flush the backup {}", file.display()))?;
    let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    out.print(
        &serde_json::json!({ "backup": file.display().to_string(), "bytes": bytes }),
        |_| {
            println!("backed up to {} ({bytes} bytes)", file.display());
        },
    )
}
