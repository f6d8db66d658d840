//! Background checkpoints: copying the WAL back into the database file off
//! the commit path.
//!
//! SQLite's default checkpoints run inside whichever commit pushes the WAL
//! past 1 000 pages, so every few hundred check-ins one of them also copies
//! 4 MB and fsyncs the database file (milliseconds here, far more on a
//! kiosk's SD card). Instead, a hook on the writer ([`Checkpointer::watch`])
//! notes the WAL's size after every commit; once it reaches
//! [`CHECKPOINT_PAGES`], the commit pings this thread, and a moment later it
//! runs a `PASSIVE` checkpoint on its own connection, which never blocks the
//! writer or the readers. The hook checkpoints in the writer itself only as
//! a backstop, at [`BACKSTOP_PAGES`], in case this thread falls behind.
//!
//! Why not after every commit: a checkpoint flushes the WAL and the database
//! file, two more fsyncs, and a counter that checks in one parcel every
//! minute would pay them for every parcel (`cargo bench --bench photo --
//! --only checkin` counted 3.4 flushes per check-in that way, and about 3.0
//! after; docs/PERFORMANCE.md). Holding up to 4 MB of WAL costs a reader
//! nothing measurable, and a clean stop empties it ([`super::Db::checkpoint`]).
//!
//! Only the first due commit after a checkpoint wakes the thread; the ones
//! during its gathering moment find the ping already queued and cost the
//! committer no wake-up (a context switch per check-in, measured).
//!
//! # Invariants
//! - Durability does not depend on this thread: a commit is on disk in the
//!   WAL before it returns; a checkpoint only moves it.
//! - The thread ends when the database handle is dropped (its sender goes),
//!   and the drop waits for it, so the connection is closed with the rest.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::hooks::Wal;

use super::DbError;

/// How long commits are gathered before a checkpoint: at most a few
/// checkpoints a second however busy the counter is.
const GATHER: Duration = Duration::from_millis(200);

/// The WAL size at which this thread checkpoints: SQLite's own default
/// point (~4 MB at 4 KiB pages).
pub const CHECKPOINT_PAGES: i64 = 1_000;

/// The writer's own checkpoint, if this thread falls behind (~32 MB of WAL
/// at 4 KiB pages).
pub const BACKSTOP_PAGES: i64 = 8_000;

/// The handle the database keeps: pings the thread and stops it on drop.
pub struct Checkpointer {
    ping: Option<SyncSender<()>>,
    stop: Arc<AtomicBool>,
    /// Pages in the WAL after the writer's last commit (its hook).
    wal_pages: Arc<AtomicI64>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Checkpointer {
    /// Starts the thread with its own read-write connection.
    pub fn start(conn: Connection) -> Result<Checkpointer, DbError> {
        let (ping, pings) = sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("yizhan-checkpoint".into())
            .spawn(move || run(&conn, &pings, &stopping))
            .map_err(|source| DbError::Spawn {
                name: "checkpoint",
                source,
            })?;
        Ok(Checkpointer {
            ping: Some(ping),
            stop,
            wal_pages: Arc::new(AtomicI64::new(0)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Hooks the writer's commits: each records the WAL's size here, and
    /// past [`BACKSTOP_PAGES`] checkpoints in the writer itself. The hook
    /// replaces SQLite's automatic checkpoint (`wal_autocheckpoint`).
    pub fn watch(&self, writer: &mut Connection) -> rusqlite::Result<()> {
        let wal_pages = Arc::clone(&self.wal_pages);
        writer.wal_hook(Some(move |wal: &mut Wal, pages: std::ffi::c_int| {
            let pages = i64::from(pages);
            wal_pages.store(pages, Ordering::Relaxed);
            if pages >= BACKSTOP_PAGES {
                // PASSIVE: copies what no reader needs and never waits. The
                // commit has happened either way; an error here is not its.
                if let Err(e) = wal.checkpoint() {
                    tracing::warn!(error = %e, pages, "the writer's backstop checkpoint failed");
                }
            }
            Ok(())
        }))
    }

    /// Whether the WAL has grown to [`CHECKPOINT_PAGES`] since the last
    /// checkpoint.
    pub fn due(&self) -> bool {
        self.wal_pages.load(Ordering::Relaxed) >= CHECKPOINT_PAGES
    }

    /// Something was committed: checkpoint soon if the WAL is due.
    pub fn committed(&self) {
        if !self.due() {
            return;
        }
        if let Some(ping) = &self.ping {
            // Full means a checkpoint is already due; gone means the thread
            // ended (it logged why) and the writer's backstop takes over.
            match ping.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // An idle thread sees the channel close; a gathering one, the flag
        // (checked after every wake-up, and `unpark` before `park` is not lost).
        self.stop.store(true, Ordering::Release);
        self.ping = None;
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(thread) = thread {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, pings: &Receiver<()>, stop: &AtomicBool) {
    while pings.recv().is_ok() {
        // Gather the commits of the next moment without taking their pings
        // (a waiting receiver would be woken by each); a handle going away
        // ends the wait at once (the CLI does not linger on exit).
        let deadline = Instant::now() + GATHER;
        while !stop.load(Ordering::Acquire) {
            match deadline.checked_duration_since(Instant::now()) {
                Some(left) => std::thread::park_timeout(left),
                None => break,
            }
        }
        // This checkpoint covers every commit pinged so far.
        while pings.try_recv().is_ok() {}
        checkpoint(conn);
        if stop.load(Ordering::Acquire) {
            return;
        }
    }
}

fn checkpoint(conn: &Connection) {
    // (busy, frames in the WAL, frames checkpointed)
    let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    match result {
        Ok((_, wal, done)) => tracing::trace!(wal, done, "checkpoint"),
        Err(e) => {
            tracing::warn!(error = %e, "background checkpoint failed; the writer's own will catch up")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Db, DbError, Durability};
    use std::time::{Duration, Instant};

    fn wal_frames(db: &Db) -> (i64, i64) {
        db.with_writer_blocking(|c| -> Result<(i64, i64), DbError> {
            // A PASSIVE checkpoint with nothing to do reports the WAL as is.
            Ok(c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })?)
        })
        .unwrap()
    }

    /// One commit of `rows` rows of ~1 KB into a new table.
    fn fill(db: &Db, rows: usize) {
        db.write_blocking(Durability::Full, |tx| -> Result<(), DbError> {
            tx.execute_batch("CREATE TABLE t (v TEXT)")?;
            for i in 0..rows {
                tx.execute("INSERT INTO t VALUES (?1)", [format!("{i:01000}")])?;
            }
            Ok(())
        })
        .unwrap();
    }

    fn db_size(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    /// Small commits leave the WAL alone: no checkpoint (two more fsyncs)
    /// per check-in.
    #[test]
    fn small_commits_are_not_checkpointed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.db");
        let db = Db::open(&path, dir.path()).unwrap();
        db.write_blocking(Durability::Full, |tx| -> Result<(), DbError> {
            Ok(tx.execute_batch("CREATE TABLE t (v TEXT)")?)
        })
        .unwrap();
        let before = db_size(&path);
        for i in 0..20 {
            db.write_blocking(Durability::Full, |tx| -> Result<(), DbError> {
                tx.execute("INSERT INTO t VALUES (?1)", [format!("{i:0500}")])?;
                Ok(())
            })
            .unwrap();
        }
        let checkpoints = &db.inner.shared.checkpoints;
        let pages = checkpoints
            .wal_pages
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(pages > 0, "the hook saw the commits");
        assert!(!checkpoints.due(), "{pages} pages are not due");
        // Nothing was pinged, so nothing can have copied the WAL since.
        assert_eq!(db_size(&path), before, "the database file was not written");
    }

    #[test]
    fn commits_are_checkpointed_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("y.db"), dir.path()).unwrap();
        let path = dir.path().join("y.db");
        let size = || db_size(&path);
        let before = size();
        // ~5 MB: past CHECKPOINT_PAGES, short of the writer's backstop.
        fill(&db, 5_000);
        assert!(db.inner.shared.checkpoints.due());
        // The rows reach the database file itself without anyone asking.
        let deadline = Instant::now() + Duration::from_secs(10);
        while size() <= before + 1_000_000 {
            assert!(Instant::now() < deadline, "no background checkpoint");
            std::thread::sleep(Duration::from_millis(20));
        }
        let (wal, done) = wal_frames(&db);
        assert_eq!(wal, done, "every frame checkpointed");
    }

    /// A WAL past the backstop is checkpointed by the writer's own hook,
    /// whatever the thread does.
    #[test]
    fn the_writer_checkpoints_past_the_backstop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("y.db");
        let db = Db::open(&path, dir.path()).unwrap();
        let before = db_size(&path);
        // ~40 MB in one commit: the hook runs after it, in the writer.
        fill(&db, 40_000);
        // Synchronous: the file has grown by the time the commit returns.
        assert!(
            db_size(&path) > before + 30_000_000,
            "{} bytes",
            db_size(&path)
        );
    }

    #[test]
    fn dropping_the_database_stops_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("y.db"), dir.path()).unwrap();
        db.write_blocking(Durability::Full, |tx| -> Result<(), DbError> {
            Ok(tx.execute_batch("CREATE TABLE t (v TEXT)")?)
        })
        .unwrap();
        // The drop joins the thread: returning at all means it ended, and
        // it does not sit out the gathering delay first.
        let start = Instant::now();
        drop(db);
        assert!(start.elapsed() < super::GATHER, "{:?}", start.elapsed());
    }
}
