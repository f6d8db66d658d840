//! The SQLite database: opening it, its pragmas, migrations, and the one
//! place where blocking SQLite work meets async code.
//!
//! # Invariants
//! - One writer connection, serialised by a mutex; every write runs in a
//!   transaction through [`Db::write`] (or [`Db::write_blocking`] from the CLI).
//!   Async writes run on a writer thread of its own, and concurrent ones
//!   share one commit ([`group`]: group commit). The thread ends with the
//!   last handle, after the writes already queued.
//! - WAL with `synchronous=FULL`: a commit made with [`Durability::Full`] is on
//!   disk when it returns. Drafts, which promise nothing (SPEC §3), may use
//!   [`Durability::Relaxed`]; the next full commit flushes them too.
//! - Readers use their own connections, so a scan decision never waits
//!   behind an fsync.
//! - Checkpoints run on their own thread and connection ([`checkpointer`]),
//!   a moment after the commit that grows the WAL to ~4 MB, so no check-in
//!   pays for copying the WAL into the database file nor for a checkpoint's
//!   two fsyncs; the writer checkpoints only as a backstop when the WAL has
//!   grown far beyond that.
//! - The bundled SQLite is at least 3.51.3 (the WAL-reset corruption fix);
//!   anything older is refused at open.

mod checkpointer;
mod group;
mod migrate;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub use migrate::{MIGRATIONS, backup_to, latest_version};

/// The oldest SQLite we accept: 3.51.3 fixes WAL-reset database corruption.
pub const MIN_SQLITE_VERSION: i32 = 3_051_003;

/// How long a connection waits for a lock held by another process (the CLI
/// beside the daemon) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;

/// Read connections kept open beside the writer.
const READERS: usize = 2;

/// How long [`Db::checkpoint`] retries while another checkpoint (the
/// background one, or another process's) holds the checkpoint lock. SQLite
/// reports that at once, without calling the busy handler.
const CHECKPOINT_RETRY: Duration = Duration::from_secs(5);

/// What went wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("SQLite {found} is too old: yizhan needs {needed} or newer (WAL-reset corruption fix)")]
    SqliteTooOld { found: String, needed: String },
    #[error(
        "the database at {path} has schema version {found}, newer than this yizhan knows ({supported}); run a newer yizhan or restore a backup"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("cannot open the database at {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: u32,
        name: &'static str,
        source: rusqlite::Error,
    },
    #[error("backup before migration failed: {0}")]
    Backup(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The shared commit of a group failed; `code` is SQLite's, so that a
    /// full disk or a busy database reads the same as in a statement.
    #[error("commit failed: {message}")]
    Commit {
        code: Option<rusqlite::ErrorCode>,
        message: String,
    },
    /// A blocking database task panicked or was cancelled.
    #[error("a database task did not finish: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// A value could not be turned into the JSON stored for it.
    #[error("cannot encode {what} as JSON: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
    /// A thread the database needs could not start.
    #[error("cannot start the {name} thread: {source}")]
    Spawn {
        name: &'static str,
        source: std::io::Error,
    },
    /// A write whose job panicked, or whose group's commit was lost before
    /// it answered.
    #[error("the write was abandoned (it panicked or its batch failed)")]
    Abandoned,
    /// A directory whose files rows name (the photo store) cannot be read.
    #[error("cannot read {path}: {source}")]
    Files {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the WAL could not be emptied within {waited:?}: another connection (a reader or a checkpoint) kept it busy"
    )]
    CheckpointBusy { waited: Duration },
}

impl DbError {
    /// SQLite's primary error code, when SQLite reported this error.
    pub fn sqlite_code(&self) -> Option<rusqlite::ErrorCode> {
        match self {
            DbError::Sqlite(e) | DbError::Open { source: e, .. } => e.sqlite_error_code(),
            DbError::Migration { source: e, .. } => e.sqlite_error_code(),
            DbError::Commit { code, .. } => *code,
            DbError::SqliteTooOld { .. }
            | DbError::SchemaTooNew { .. }
            | DbError::Backup(_)
            | DbError::Join(_)
            | DbError::Encode { .. }
            | DbError::Spawn { .. }
            | DbError::Abandoned
            | DbError::Files { .. }
            | DbError::CheckpointBusy { .. } => None,
        }
    }
}

/// Whether a write transaction must be on disk before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync'd before returning: every state change and its event.
    Full,
    /// Durable at the next full commit or checkpoint: drafts only.
    Relaxed,
}

/// A cheap, cloneable handle to the station database.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    shared: Arc<Shared>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    writer_thread: Option<JoinHandle<()>>,
}

/// What the writer thread shares with the handle.
struct Shared {
    writer: Mutex<Connection>,
    queue: group::Queue,
    checkpoints: checkpointer::Checkpointer,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Writes already queued are finished first (their callers are
        // waiting); then the thread ends and the connections close.
        self.shared.queue.stop();
        if let Some(thread) = self.writer_thread.take() {
            // A job holding the last handle would otherwise wait for itself.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

impl Db {
    /// Opens (creating if needed) and migrates the database at `path`.
    /// Before a migration of an existing database a backup is written to
    /// `backup_dir`.
    pub fn open(path: &Path, backup_dir: &Path) -> Result<Db, DbError> {
        check_sqlite_version()?;
        let mut writer = open_connection(path, false)?;
        migrate::run(&mut writer, path, backup_dir)?;
        let readers = (0..READERS)
            .map(|_| open_connection(path, true).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let checkpoints = checkpointer::Checkpointer::start(open_connection(path, false)?)?;
        checkpoints
            .watch(&mut writer)
            .map_err(|source| DbError::Open {
                path: path.to_owned(),
                source,
            })?;
        let shared = Arc::new(Shared {
            writer: Mutex::new(writer),
            queue: group::Queue::default(),
            checkpoints,
        });
        let for_thread = Arc::clone(&shared);
        let writer_thread = std::thread::Builder::new()
            .name("yizhan-writer".into())
            .spawn(move || {
                let s = &*for_thread;
                group::run(&s.writer, &s.queue, &|| s.checkpoints.committed());
            })
            .map_err(|source| DbError::Spawn {
                name: "writer",
                source,
            })?;
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                shared,
                readers,
                next_reader: AtomicUsize::new(0),
                writer_thread: Some(writer_thread),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` in a write transaction on the writer thread and returns
    /// once that transaction committed. Writes arriving together share one
    /// transaction and one fsync, each in its own savepoint (see [`group`]).
    pub async fn write<T, E, F>(&self, durability: Durability, f: F) -> Result<T, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let run = move |tx: &Transaction<'_>| -> Option<group::Finish> {
            match f(tx) {
                Ok(value) => Some(Box::new(move |commit: Result<(), &DbError>| {
                    let result = match commit {
                        Ok(()) => Ok(value),
                        Err(e) => Err(E::from(DbError::Commit {
                            code: e.sqlite_code(),
                            message: e.to_string(),
                        })),
                    };
                    let _ = reply.send(result);
                })),
                Err(e) => {
                    let _ = reply.send(Err(e));
                    None
                }
            }
        };
        self.inner.shared.queue.push(group::Job {
            durability,
            run: Box::new(run),
        });
        answer.await.map_err(|_| E::from(DbError::Abandoned))?
    }

    /// Runs `f` with a read connection off the async threads.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let db = self.clone();
        spawn(move || db.read_blocking(f)).await
    }

    /// Runs `f` with the writer connection itself, for work that spans more
    /// than one transaction or must hold the writer while touching files.
    pub async fn with_writer<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let db = self.clone();
        spawn(move || db.with_writer_blocking(f)).await
    }

    /// [`Db::with_writer`] for synchronous callers.
    pub fn with_writer_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut Connection) -> Result<T, E>,
    {
        let result = f(&mut self.writer());
        self.inner.shared.checkpoints.committed();
        result
    }

    /// [`Db::write`] for synchronous callers (the CLI, tests).
    pub fn write_blocking<T, E, F>(&self, durability: Durability, f: F) -> Result<T, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T, E>,
        E: From<DbError>,
    {
        let result = transaction(&mut self.writer(), durability, f);
        self.inner.shared.checkpoints.committed();
        result
    }

    /// [`Db::read`] for synchronous callers.
    pub fn read_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E>,
        E: From<DbError>,
    {
        f(&self.reader())
    }

    /// Checkpoints the WAL into the main file; called at clean shutdown so
    /// the next start (or a copy of the file) needs no recovery.
    ///
    /// A checkpoint already running elsewhere (the background thread's, or
    /// another process's) makes SQLite give up at once, reporting busy; this
    /// retries for up to [`CHECKPOINT_RETRY`] and is an error if the WAL is
    /// still not emptied, never a quiet success.
    pub fn checkpoint(&self) -> Result<(), DbError> {
        self.checkpoint_within(CHECKPOINT_RETRY)
    }

    fn checkpoint_within(&self, retry: Duration) -> Result<(), DbError> {
        let deadline = std::time::Instant::now() + retry;
        loop {
            // Readers are waited for by the busy handler, another
            // checkpoint is not: SQLite says busy at once.
            let busy: i64 =
                self.writer()
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
            if busy == 0 {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(DbError::CheckpointBusy { waited: retry });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction open (it
        // rolls back on drop), so a poisoned lock is still a usable one.
        self.inner
            .shared
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        let readers = &self.inner.readers;
        for conn in readers {
            if let Ok(guard) = conn.try_lock() {
                return guard;
            }
        }
        let i = self.inner.next_reader.fetch_add(1, Ordering::Relaxed) % readers.len();
        readers[i].lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `f` in an immediate transaction on `conn` with the given durability.
pub fn transaction<T, E, F>(conn: &mut Connection, durability: Durability, f: F) -> Result<T, E>
where
    F: FnOnce(&Transaction<'_>) -> Result<T, E>,
    E: From<DbError>,
{
    let relaxed = durability == Durability::Relaxed;
    if relaxed {
        set_synchronous(conn, "NORMAL")?;
    }
    let result = (|| {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(DbError::from)?;
        let value = f(&tx)?;
        tx.commit().map_err(DbError::from)?;
        Ok(value)
    })();
    if relaxed {
        set_synchronous(conn, "FULL")?;
    }
    result
}

fn set_synchronous(conn: &Connection, level: &str) -> Result<(), DbError> {
    conn.pragma_update(None, "synchronous", level)?;
    Ok(())
}

async fn spawn<T, E, F>(f: F) -> Result<T, E>
where
    F: FnOnce() -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| E::from(DbError::Join(e)))?
}

fn check_sqlite_version() -> Result<(), DbError> {
    let found = rusqlite::version_number();
    if found < MIN_SQLITE_VERSION {
        return Err(DbError::SqliteTooOld {
            found: rusqlite::version().to_owned(),
            needed: "3.51.3".to_owned(),
        });
    }
    Ok(())
}

/// Opens one connection with the pragmas every station connection gets
/// (WAL, `synchronous=FULL`, foreign keys, busy timeout). Public so the
/// benchmark's bare-SQLite baseline runs on exactly the same settings.
pub fn open_connection(path: &Path, read_only: bool) -> Result<Connection, DbError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let open_err = |source| DbError::Open {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    // Every hot statement stays prepared (rusqlite keeps 16 by default,
    // fewer than the check-in path alone uses).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Plans must not depend on bound values: without this SQLite marks
    // some statements to be re-planned whenever a parameter is rebound (the
    // parcel-photos join was compiled afresh on every call, ~8 % of an
    // accept's CPU). Our queries are planned by their indexes, never by
    // their values.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(open_err)?;
    if !read_only {
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .map_err(open_err)?;
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_err)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh database with one table `t` of the given columns.
    fn db_with_table(columns: &str) -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("y.db"), dir.path()).unwrap();
        db.write_blocking(Durability::Full, |tx| {
            tx.execute_batch(&format!("CREATE TABLE t ({columns})"))
                .map_err(DbError::from)
        })
        .unwrap();
        (dir, db)
    }

    /// Every `n` stored in `t`, in order.
    fn stored(db: &Db) -> Vec<i64> {
        db.read_blocking(|c| -> Result<Vec<i64>, DbError> {
            let mut st = c.prepare("SELECT n FROM t ORDER BY n")?;
            let rows = st.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .unwrap()
    }

    #[test]
    fn bundled_sqlite_has_the_wal_reset_fix() {
        assert!(
            rusqlite::version_number() >= MIN_SQLITE_VERSION,
            "{}",
            rusqlite::version()
        );
    }

    /// Many writes at once share commits; a failing or panicking one is
    /// rolled back alone and the others land.
    #[test]
    fn group_commit_isolates_failing_jobs() {
        let (_dir, db) = db_with_table("n INTEGER PRIMARY KEY");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let results = rt.block_on(async {
            let tasks: Vec<_> = (0..200i64)
                .map(|n| {
                    let db = db.clone();
                    tokio::spawn(async move {
                        db.write(Durability::Full, move |tx| -> Result<(), DbError> {
                            tx.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
                            match n % 10 {
                                3 => Err(DbError::Abandoned),
                                7 => panic!("job {n} panics"),
                                _ => Ok(()),
                            }
                        })
                        .await
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        let ok: Vec<i64> = (0..200).filter(|n| results[*n as usize].is_ok()).collect();
        assert_eq!(ok.len(), 160, "every 10th fails, every 10th panics");
        assert!(results[3].is_err() && results[7].is_err());
        let stored = stored(&db);
        assert_eq!(stored, ok, "exactly the acknowledged writes are stored");
        // The queue is idle again and still works.
        rt.block_on(db.write(Durability::Full, |tx| {
            tx.execute("INSERT INTO t (n) VALUES (1000)", [])
                .map_err(DbError::from)
        }))
        .unwrap();
    }

    /// A commit that fails keeps SQLite's error code (so that a full disk
    /// reads as one), leaves nothing behind, and the writer goes on. The
    /// failure is a deferred foreign key, which SQLite checks at COMMIT.
    #[test]
    fn a_failed_commit_keeps_sqlites_error_code() {
        let (_dir, db) = db_with_table("n INTEGER PRIMARY KEY");
        db.write_blocking(Durability::Full, |tx| {
            tx.execute_batch(
                "CREATE TABLE child (parent INTEGER REFERENCES t (n) DEFERRABLE INITIALLY DEFERRED)",
            )
            .map_err(DbError::from)
        })
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt
            .block_on(db.write(Durability::Full, |tx| -> Result<(), DbError> {
                tx.execute("INSERT INTO child (parent) VALUES (1)", [])?;
                Ok(())
            }))
            .unwrap_err();
        assert!(matches!(err, DbError::Commit { .. }), "{err:?}");
        assert_eq!(
            err.sqlite_code(),
            Some(rusqlite::ErrorCode::ConstraintViolation)
        );
        rt.block_on(db.write(Durability::Full, |tx| {
            tx.execute("INSERT INTO t (n) VALUES (1)", [])
                .map_err(DbError::from)
        }))
        .unwrap();
        assert_eq!(stored(&db), vec![1]);
        let children: i64 = db
            .read_blocking(|c| {
                c.query_row("SELECT count(*) FROM child", [], |r| r.get(0))
                    .map_err(DbError::from)
            })
            .unwrap();
        assert_eq!(children, 0, "the failed commit left nothing");
    }

    /// One write at a time runs without a savepoint; one that fails or
    /// panics still leaves nothing behind, and the writer goes on.
    #[test]
    fn a_lone_failing_write_leaves_nothing() {
        let (_dir, db) = db_with_table("n INTEGER PRIMARY KEY");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let insert = |n: i64| {
            db.write(Durability::Full, move |tx| -> Result<(), DbError> {
                tx.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
                match n {
                    1 => Err(DbError::Abandoned),
                    2 => panic!("job {n} panics"),
                    _ => Ok(()),
                }
            })
        };
        rt.block_on(async {
            assert!(insert(1).await.is_err());
            assert!(insert(2).await.is_err());
            insert(3).await.unwrap();
        });
        let stored = stored(&db);
        assert_eq!(stored, [3]);
    }

    /// The writer thread ends with the last handle, even when that handle
    /// goes away inside a write on the thread itself (a caller that gave
    /// up waiting, whose job held a handle): no self-join, no leak.
    #[test]
    fn the_writer_thread_ends_with_the_last_handle() {
        use std::sync::mpsc::channel;
        let (dir, db) = db_with_table("n INTEGER");
        let wal = dir.path().join("y.db-wal");
        assert!(wal.exists());

        // Hold the writer connection from another thread so the queued
        // job below cannot run yet.
        let (entered_tx, entered) = channel();
        let (release, released) = channel::<()>();
        let (gone_tx, gone) = channel();
        let holder = db.clone();
        let holding = std::thread::spawn(move || {
            holder
                .with_writer_blocking(|_| -> Result<(), DbError> {
                    entered_tx.send(()).unwrap();
                    let _ = released.recv();
                    Ok(())
                })
                .unwrap();
            drop(holder);
            gone_tx.send(()).unwrap();
        });
        entered.recv().unwrap();

        // Queue a job that owns a handle, then abandon its caller.
        let last = db.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let write = db.write(Durability::Full, move |tx| -> Result<(), DbError> {
                // Wait until every other handle is gone, so this is the last.
                gone.recv().unwrap();
                tx.execute("INSERT INTO t VALUES (1)", [])?;
                drop(last);
                Ok(())
            });
            let mut write = std::pin::pin!(write);
            // One poll queues the job; then the caller gives up.
            tokio::select! {
                biased;
                _ = &mut write => panic!("the writer is held; the job cannot have run"),
                () = std::future::ready(()) => {}
            }
        });
        drop(db);
        release.send(()).unwrap();
        holding.join().unwrap();

        // The thread ran the job, dropped the last handle, ended, and with
        // it the last connection closed (which removes the WAL).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while wal.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer thread never ended"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let conn = Connection::open(dir.path().join("y.db")).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "the abandoned write still committed");
    }

    #[test]
    fn pragmas_are_wal_full_and_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("y.db"), dir.path()).unwrap();
        db.read_blocking(|c| -> Result<(), DbError> {
            let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            let sync: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
            let fk: i64 = c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
            assert_eq!((mode.as_str(), sync, fk), ("wal", 2, 1));
            Ok(())
        })
        .unwrap();
    }

    /// The final checkpoint of a clean stop once ran into the background
    /// checkpoint, was told "busy" and still reported the database closed
    /// cleanly, with the WAL left full (CI, stop 15).
    #[test]
    fn checkpoint_waits_out_another_checkpoint_and_never_passes_busy_for_done() {
        let (dir, db) = db_with_table("n INTEGER PRIMARY KEY");
        let path = dir.path().join("y.db");
        let insert = |n: i64| {
            db.write_blocking(Durability::Full, |tx| -> Result<(), DbError> {
                tx.execute("INSERT INTO t (n) VALUES (?1)", [n])?;
                Ok(())
            })
            .unwrap();
        };
        insert(1);
        // A reader holds a snapshot older than the WAL's end...
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        insert(2);
        // ...so another connection's TRUNCATE checkpoint holds the
        // checkpoint lock while its busy handler waits for that reader.
        let other = std::thread::spawn({
            let path = path.clone();
            move || {
                let c = Connection::open(&path).unwrap();
                c.busy_timeout(Duration::from_secs(30)).unwrap();
                // A probe's or the background thread's checkpoint may hold
                // the lock for a moment first.
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                loop {
                    let busy: i64 = c
                        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                        .unwrap();
                    if busy == 0 || std::time::Instant::now() > deadline {
                        return busy;
                    }
                }
            }
        });
        let probe = Connection::open(&path).unwrap();
        let held = || -> bool {
            probe
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0))
                .unwrap()
                == 1
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !held() {
            assert!(
                std::time::Instant::now() < deadline,
                "the other checkpoint never took the lock"
            );
        }
        // While it is held, ours is an error, not a quiet success.
        let err = db
            .checkpoint_within(Duration::from_millis(100))
            .unwrap_err();
        assert!(matches!(err, DbError::CheckpointBusy { .. }), "{err}");
        // Once the other one finishes, ours retries and empties the WAL.
        let ours = std::thread::spawn({
            let db = db.clone();
            let wal = path.with_extension("db-wal");
            move || {
                let done = db.checkpoint();
                (done, std::fs::metadata(&wal).map(|m| m.len()))
            }
        });
        reader.execute_batch("COMMIT").unwrap();
        let (done, wal_len) = ours.join().unwrap();
        assert!(done.is_ok(), "{done:?}");
        assert_eq!(wal_len.unwrap(), 0, "checkpointed means the WAL is empty");
        assert_eq!(other.join().unwrap(), 0);
    }

    #[test]
    fn relaxed_write_restores_full_synchronous() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("y.db"), dir.path()).unwrap();
        db.write_blocking(Durability::Relaxed, |tx| -> Result<(), DbError> {
            tx.execute("INSERT INTO meta VALUES ('a', 'b')", [])?;
            Ok(())
        })
        .unwrap();
        let sync: i64 = db
            .writer()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2);
    }
}
