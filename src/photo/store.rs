//! Photo files on disk, content-addressed under `<data_dir>/photos`.
//!
//! # Invariants
//! - A file is durable before any row names it: written to `tmp/`, fsync'd,
//!   renamed into `ab/<sha256>.jpg`, then the directory fsync'd.
//! - A row's file exists unless the row says it was purged. Files no row
//!   names (a crash between file and row, a discarded draft) are orphans;
//!   [`PhotoStore::check`] removes them at start and `yizhan db check`
//!   reports them.
//! - The file is written and flushed *without* the database writer
//!   ([`PhotoStore::prepare`]: two fsyncs that would otherwise hold up every
//!   other check-in's commit). Files are only removed while holding the
//!   writer, and every removal bumps a counter; under the writer,
//!   [`PhotoStore::confirm`] checks that no removal happened since the
//!   prepare began (else it writes the file again), so a concurrent
//!   clean-up cannot delete a file a new row is about to name.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;
use serde::Serialize;

use super::PhotoError;
use crate::db::DbError;

/// The photo directory and its free-space floor.
#[derive(Debug, Clone)]
pub struct PhotoStore {
    dir: PathBuf,
    min_free_bytes: u64,
    /// Files removed so far (see the module's invariants).
    removals: Arc<AtomicU64>,
}

/// A photo file made durable outside the writer ([`PhotoStore::prepare`]),
/// to be confirmed under it ([`PhotoStore::confirm`]).
#[derive(Debug)]
#[must_use = "a prepared photo must be confirmed under the writer"]
pub struct Prepared {
    removals: u64,
}

/// What a consistency check found (and, for `repair`, fixed).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Files no row names.
    pub orphan_files: Vec<String>,
    /// Rows (not purged) whose file is missing.
    pub missing_files: Vec<String>,
    /// Leftover temporary files from interrupted writes.
    pub temp_files: usize,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.orphan_files.is_empty() && self.missing_files.is_empty() && self.temp_files == 0
    }
}

impl PhotoStore {
    pub fn new(dir: PathBuf, min_free_mb: u64) -> PhotoStore {
        PhotoStore {
            dir,
            min_free_bytes: min_free_mb * 1024 * 1024,
            removals: Arc::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the photo with this hash lives.
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(&sha256[..2]).join(format!("{sha256}.jpg"))
    }

    /// Refuses new photos below the free-space floor.
    pub fn check_free_space(&self) -> Result<(), PhotoError> {
        crate::durable::create_dir_all(&self.dir)?;
        let st = rustix::fs::statvfs(&self.dir).map_err(io::Error::from)?;
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        if free < self.min_free_bytes {
            return Err(PhotoError::StorageFull {
                free_mb: free / (1024 * 1024),
                min_mb: self.min_free_bytes / (1024 * 1024),
            });
        }
        Ok(())
    }

    /// Makes the file for `sha256` durable, without the writer.
    pub fn prepare(&self, sha256: &str, jpeg: &[u8]) -> Result<Prepared, PhotoError> {
        let removals = self.removals.load(Ordering::SeqCst);
        self.ensure(sha256, jpeg)?;
        Ok(Prepared { removals })
    }

    /// With the writer held, before a row names `sha256`: the prepared file
    /// is still there and durable, or is written again (no flush at all in
    /// the usual case).
    pub fn confirm(&self, sha256: &str, jpeg: &[u8], prepared: Prepared) -> Result<(), PhotoError> {
        if self.removals.load(Ordering::SeqCst) == prepared.removals {
            return Ok(());
        }
        self.ensure(sha256, jpeg)
    }

    /// Makes the file for `sha256` durable on disk, unless it already is.
    pub fn ensure(&self, sha256: &str, jpeg: &[u8]) -> Result<(), PhotoError> {
        let target = self.path(sha256);
        if target.exists() {
            // Written before, maybe by a request that died between the
            // rename and the directory's fsync: make sure the name is on
            // disk before a row names it.
            return Ok(sync_dir(target.parent().unwrap_or(&self.dir))?);
        }
        let tmp_dir = self.dir.join("tmp");
        crate::durable::create_dir_all(&tmp_dir)?;
        let tmp = tmp_dir.join(format!("{}.part", ulid::Ulid::new()));
        let written = crate::durable::write_synced(&tmp, jpeg, 0o644).and_then(|()| {
            let parent = target.parent().unwrap_or(&self.dir);
            crate::durable::create_dir_all(parent)?;
            fs::rename(&tmp, &target)?;
            sync_dir(parent)
        });
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        Ok(written?)
    }

    /// Creates the 256 hash directories (`00` to `ff`) and `tmp/` ahead of
    /// time, with one flush of the photo directory for all of them, so that
    /// no check-in pays for a new directory's flush (the first photo of each
    /// hash prefix would otherwise, for the first thousand-odd photos).
    pub fn lay_out(&self) -> io::Result<()> {
        crate::durable::create_dir_all(&self.dir)?;
        let mut created = false;
        for name in (0..=255u8)
            .map(|b| format!("{b:02x}"))
            .chain(["tmp".into()])
        {
            match fs::create_dir(self.dir.join(name)) {
                Ok(()) => created = true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        if created {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Deletes the file for `sha256` (a missing file is not an error).
    pub fn remove(&self, sha256: &str) -> io::Result<()> {
        self.removals.fetch_add(1, Ordering::SeqCst);
        match fs::remove_file(self.path(sha256)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Compares files with rows; with `fix`, removes orphans and temp files.
    pub fn check(&self, conn: &Connection, fix: bool) -> Result<Report, DbError> {
        let io_err = |source: io::Error| DbError::Files {
            path: self.dir.clone(),
            source,
        };
        let (on_disk, temps) = self.list_files().map_err(io_err)?;
        let mut stmt = conn.prepare("SELECT sha256, purged_at IS NOT NULL FROM photos")?;
        let rows: Vec<(String, bool)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let known: HashSet<&str> = rows.iter().map(|(s, _)| s.as_str()).collect();
        let mut report = Report {
            orphan_files: on_disk
                .iter()
                .filter(|s| !known.contains(s.as_str()))
                .cloned()
                .collect(),
            missing_files: rows
                .iter()
                .filter(|(s, purged)| !purged && !on_disk.contains(s))
                .map(|(s, _)| s.clone())
                .collect(),
            temp_files: temps.len(),
        };
        report.orphan_files.sort();
        if fix {
            for sha in &report.orphan_files {
                self.remove(sha).map_err(io_err)?;
            }
            for tmp in &temps {
                fs::remove_file(tmp).map_err(io_err)?;
            }
        }
        Ok(report)
    }

    /// The hashes of stored photo files, and any temp files.
    fn list_files(&self) -> io::Result<(HashSet<String>, Vec<PathBuf>)> {
        let mut photos = HashSet::new();
        let mut temps = Vec::new();
        let Ok(top) = fs::read_dir(&self.dir) else {
            return Ok((photos, temps));
        };
        for sub in top {
            let sub = sub?.path();
            if !sub.is_dir() {
                continue;
            }
            let is_tmp = sub.file_name().is_some_and(|n| n == "tmp");
            for f in fs::read_dir(&sub)? {
                let path = f?.path();
                match path.file_stem().and_then(|s| s.to_str()) {
                    _ if is_tmp => temps.push(path),
                    Some(stem) if is_sha256(stem) => {
                        photos.insert(stem.to_owned());
                    }
                    _ => {}
                }
            }
        }
        Ok((photos, temps))
    }
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

use crate::durable::sync_dir;

/// Photo files whose upload was confirmed before `cutoff`, not yet purged
/// (SPEC §9: their files may go, their rows stay).
pub fn purgeable(conn: &Connection, cutoff: &str) -> Result<Vec<String>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT sha256 FROM photos WHERE uploaded_at IS NOT NULL AND uploaded_at < ?1
           AND purged_at IS NULL LIMIT 1000",
    )?;
    let rows = stmt.query_map([cutoff], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records that a photo's file was purged.
pub fn mark_purged(tx: &rusqlite::Transaction<'_>, sha256: &str, at: &str) -> Result<(), DbError> {
    tx.execute(
        "UPDATE photos SET purged_at = ?2 WHERE sha256 = ?1",
        rusqlite::params![sha256, at],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, Durability};

    #[test]
    fn ensure_is_idempotent_and_repair_removes_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("y.db"), dir.path()).unwrap();
        let store = PhotoStore::new(dir.path().join("photos"), 0);
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        store.ensure(&a, b"one").unwrap();
        store.ensure(&a, b"one").unwrap();
        store.ensure(&b, b"two").unwrap();
        fs::write(store.dir().join("tmp").join("x.part"), b"half").unwrap();
        db.write_blocking(Durability::Full, |tx| -> Result<(), DbError> {
            tx.execute(
                "INSERT INTO photos (sha256, bytes, width, height, created_at) VALUES (?1, 3, 1, 1, 'now'), (?2, 3, 1, 1, 'now')",
                [&a, &"c".repeat(64)],
            )?;
            Ok(())
        })
        .unwrap();
        let report = db.read_blocking(|c| store.check(c, true)).unwrap();
        assert_eq!(report.orphan_files, vec![b.clone()]);
        assert_eq!(report.missing_files, vec!["c".repeat(64)]);
        assert_eq!(report.temp_files, 1);
        assert!(!store.path(&b).exists());
        assert_eq!(fs::read(store.path(&a)).unwrap(), b"one");
        let again = db.read_blocking(|c| store.check(c, false)).unwrap();
        assert!(again.orphan_files.is_empty() && again.temp_files == 0);
    }

    #[test]
    fn a_removal_between_prepare_and_confirm_writes_the_file_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = PhotoStore::new(dir.path().join("photos"), 0);
        let a = "a".repeat(64);
        let prepared = store.prepare(&a, b"one").unwrap();
        store.confirm(&a, b"one", prepared).unwrap();
        let prepared = store.prepare(&a, b"one").unwrap();
        // A clean-up under the writer (a purge, a failed attach) meanwhile.
        store.clone().remove(&a).unwrap();
        assert!(!store.path(&a).exists());
        store.confirm(&a, b"one", prepared).unwrap();
        assert_eq!(fs::read(store.path(&a)).unwrap(), b"one");
    }

    #[test]
    fn the_layout_is_made_once_and_photos_land_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = PhotoStore::new(dir.path().join("photos"), 0);
        store.lay_out().unwrap();
        let dirs = fs::read_dir(store.dir()).unwrap().count();
        assert_eq!(dirs, 257, "00..ff and tmp");
        // Again: nothing to do, nothing fails.
        store.lay_out().unwrap();
        let sha = "ff".repeat(32);
        store.ensure(&sha, b"jpeg").unwrap();
        assert_eq!(fs::read(store.path(&sha)).unwrap(), b"jpeg");
        assert_eq!(fs::read_dir(store.dir()).unwrap().count(), 257);
    }

    #[test]
    fn free_space_floor_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let store = PhotoStore::new(dir.path().join("photos"), u64::MAX / (1024 * 1024 * 2));
        let err = store.check_free_space().unwrap_err();
        assert!(matches!(err, PhotoError::StorageFull { .. }), "{err}");
        assert!(
            PhotoStore::new(dir.path().join("p"), 0)
                .check_free_space()
                .is_ok()
        );
    }
}
