//! Group commit: concurrent writes share one transaction and one fsync.
//!
//! Every async write pushes a job onto a queue that one long-lived writer
//! thread drains (a thread of its own rather than a hop through tokio's
//! blocking pool, whose shared lock every read also takes). The thread
//! takes everything queued so far into one `BEGIN IMMEDIATE … COMMIT`,
//! each job inside its own savepoint, and sleeps when the queue is empty:
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
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Condvar, Mutex, MutexGuard};

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::{DbError, Durability, set_synchronous};

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

/// The jobs waiting for the writer thread.
#[derive(Default)]
pub(super) struct Queue {
    pending: Mutex<Pending>,
    ready: Condvar,
}

#[derive(Default)]
struct Pending {
    jobs: VecDeque<Job>,
    /// The writer thread is asleep on `ready` and must be woken.
    idle: bool,
    /// No more jobs will come: drain what is queued and end.
    stop: bool,
}

impl Queue {
    /// Queues a job, waking the writer thread only if it sleeps (a busy
    /// one finds the job when its batch is done, at no system call).
    pub fn push(&self, job: Job) {
        let mut p = self.lock();
        p.jobs.push_back(job);
        if std::mem::take(&mut p.idle) {
            self.ready.notify_one();
        }
    }

    /// Ends [`run`] once everything queued so far has been written.
    pub fn stop(&self) {
        let mut p = self.lock();
        p.stop = true;
        self.ready.notify_one();
    }

    /// The next batch, waiting for one; `None` once stopped and empty.
    fn next_batch(&self) -> Option<Vec<Job>> {
        let mut p = self.lock();
        loop {
            let n = p.jobs.len().min(MAX_BATCH);
            if n > 0 {
                return Some(p.jobs.drain(..n).collect());
            }
            if p.stop {
                return None;
            }
            p.idle = true;
            p = self.ready.wait(p).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Pushing and taking cannot panic half-way; a poisoned queue is
        // still a consistent one.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The writer thread's loop: runs batches as they come until the queue is
/// stopped and empty. It takes the writer for each batch, so blocking
/// writers (CLI, start-up) interleave between batches.
pub(super) fn run(writer: &Mutex<Connection>, queue: &Queue, committed: &dyn Fn()) {
    while let Some(jobs) = queue.next_batch() {
        // A job's own panic is caught in `run_batch`; anything else that
        // panics loses this batch (its callers see their replies dropped)
        // but not the thread, or every later write would wait forever.
        let batch = catch_unwind(AssertUnwindSafe(|| {
            // A panic while holding this lock leaves no transaction open
            // (it rolls back on drop), so a poisoned lock is fine.
            let mut conn = writer.lock().unwrap_or_else(|e| e.into_inner());
            run_batch(&mut conn, jobs);
        }));
        if batch.is_err() {
            tracing::error!("a group commit panicked; its writes were refused");
        }
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
    if relaxed && let Err(e) = set_synchronous(conn, "FULL") {
        tracing::error!(error = %e, "could not restore synchronous=FULL");
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
