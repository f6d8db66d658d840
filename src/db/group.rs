//! Group commit: concurrent writes share one transaction and one fsync.
//!
//! Every async write pushes a job onto a queue; if no blocking thread is
//! draining the queue, it starts one. The drainer takes everything queued
//! so far into one `BEGIN IMMEDIATE … COMMIT`, each job inside its own
//! savepoint, and goes on until the queue is empty:
//! a job that fails rolls back alone and gets its error at once; the others
//! get their results only after the shared commit is on disk. With one
//! writer at a time this is exactly the old one-transaction-per-write path;
//! with several counters and kiosks busy at once, they stop queueing behind
//! each other's fsyncs.
//!
//! # Invariants
//! - No caller sees `Ok` before the transaction holding its changes
//!   committed (with `synchronous=FULL` if any job in it asked for
//!   [`Durability::Full`]).
//! - Jobs run in queue order; each sees the changes of those before it.
//! - A panicking job is rolled back like a failing one; its caller gets
//!   [`DbError::Task`].

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::{set_synchronous, DbError, Durability};

/// Most jobs one commit carries; the rest wait for the next.
const MAX_BATCH: usize = 256;

/// What a job hands back once it has run: how to deliver its result when
/// the commit is known.
pub(super) type Finish = Box<dyn FnOnce(Result<(), &DbError>) + Send>;

/// A job's work: runs against the shared transaction, and either reports
/// its own failure at once (`None`) or returns its finisher.
pub(super) type Run = Box<dyn FnOnce(&Transaction<'_>) -> Option<Finish> + Send>;

/// A queued write.
pub(super) struct Job {
    pub durability: Durability,
    pub run: Run,
}

/// The jobs waiting for the writer, and whether a thread is draining them.
#[derive(Default)]
pub(super) struct Queue(Mutex<Pending>);

#[derive(Default)]
struct Pending {
    jobs: VecDeque<Job>,
    draining: bool,
}

impl Queue {
    /// Queues a job; `true` means no thread is draining and the caller
    /// must start one (with [`drain`]).
    pub fn push(&self, job: Job) -> bool {
        let mut p = self.lock();
        p.jobs.push_back(job);
        !std::mem::replace(&mut p.draining, true)
    }

    /// The next batch; empty means the drainer is done (and the flag is
    /// cleared under the same lock, so no job is ever left behind).
    fn take(&self) -> Vec<Job> {
        let mut p = self.lock();
        let n = p.jobs.len().min(MAX_BATCH);
        if n == 0 {
            p.draining = false;
        }
        p.jobs.drain(..n).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // Pushing and draining cannot panic half-way; a poisoned queue is
        // still a consistent one.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs batches until the queue is empty. One drainer at a time (the
/// caller whose [`Queue::push`] returned `true`); it takes the writer for
/// each batch, so blocking writers (CLI, start-up) interleave between
/// batches.
pub(super) fn drain(writer: &Mutex<Connection>, queue: &Queue, committed: &dyn Fn()) {
    // If anything below panics, fail what is queued rather than leave the
    // flag set with nobody draining.
    struct Guard<'a>(&'a Queue);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let mut p = self.0.lock();
                p.jobs.clear();
                p.draining = false;
            }
        }
    }
    let _guard = Guard(queue);
    loop {
        let jobs = queue.take();
        if jobs.is_empty() {
            return;
        }
        // A panic inside a job is caught in `run_batch`; one while holding
        // this lock leaves no transaction open, so a poisoned lock is fine.
        let mut conn = writer.lock().unwrap_or_else(|e| e.into_inner());
        run_batch(&mut conn, jobs);
        drop(conn);
        committed();
    }
}

fn run_batch(conn: &mut Connection, jobs: Vec<Job>) {
    let relaxed = jobs.iter().all(|j| j.durability == Durability::Relaxed);
    let mut done: Vec<Finish> = Vec::with_capacity(jobs.len());
    let result = (|| -> Result<(), DbError> {
        if relaxed {
            set_synchronous(conn, "NORMAL")?;
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // A job alone needs no savepoint: if it fails, the whole
        // transaction is its own to roll back (dropping `tx` does). Skipping
        // it spares two statements and the copy of every page it changes
        // into the savepoint's journal.
        let alone = jobs.len() == 1;
        for job in jobs {
            if !alone {
                tx.prepare_cached("SAVEPOINT job")?.execute([])?;
            }
            match catch_unwind(AssertUnwindSafe(|| (job.run)(&tx))) {
                Ok(Some(finish)) => {
                    if !alone {
                        tx.prepare_cached("RELEASE job")?.execute([])?;
                    }
                    done.push(finish);
                }
                // The job failed (and has told its caller) or panicked
                // (its caller sees the dropped reply): undo its changes.
                Ok(None) | Err(_) if alone => {
                    tx.rollback()?;
                    return Ok(());
                }
                Ok(None) | Err(_) => tx.execute_batch("ROLLBACK TO job; RELEASE job")?,
            }
        }
        tx.commit()?;
        Ok(())
    })();
    if relaxed {
        if let Err(e) = set_synchronous(conn, "FULL") {
            tracing::error!(error = %e, "could not restore synchronous=FULL");
        }
    }
    match &result {
        Ok(()) => done.into_iter().for_each(|f| f(Ok(()))),
        Err(e) => {
            // Nothing was committed; jobs not yet run are dropped, and
            // their callers see the dropped reply as a failed write.
            tracing::error!(error = %e, "group commit failed; every write in it is refused");
            done.into_iter().for_each(|f| f(Err(e)));
        }
    }
}
