//! Delivery to the merchant platform (SPEC §5, §6): the outbox drained over
//! MQTT or HTTPS, photos uploaded on their own queue, the manifest pulled,
//! platform commands applied, presence published.
//!
//! # Tasks
//! - [`mqtt::run`]: the MQTT session (events up, commands down, presence),
//!   reconnecting with capped exponential backoff and jitter.
//! - [`events_https`]: event batches over HTTPS when `events_via` is
//!   `https`, or `auto` while MQTT is not connected.
//! - [`photos`]: content-addressed photo uploads; never in the events' way.
//! - [`manifest`]: pulls at start, on an interval and on `manifest.refresh`.
//!
//! [`ctx`] holds what they share; [`view`] what the API and presence show;
//! this file starts and stops them.
//! - [`drain::record_acks`]: batches delivery marks into few transactions.
//!
//! # Invariants
//! - The check-in path never waits for sync: sync reads on its own SQLite
//!   connection and writes short, relaxed transactions through the shared
//!   group-commit writer (never an fsync of its own per event).
//! - An event is pending until the platform confirmed it, whatever happens
//!   to connections, processes or the broker's memory; nothing is ever given
//!   up on because the network was down: retries never stop, they only
//!   slow down to `sync.retry_max_s`.
//! - Every retry loop is woken by a timer, by a reconnect, by new commits
//!   and right after a success.

pub mod commands;
mod ctx;
mod diagnostics;
mod drain;
mod events_https;
mod https;
mod manifest;
mod mqtt;
mod photos;
pub mod queue;
mod state;
mod tls;
mod view;

use std::time::Duration;

use tokio::sync::watch;

pub(crate) use ctx::Ctx;
pub use ctx::{Deps, HealthProbe, Probe};
pub use mqtt::Topics;
pub use state::{Live, SyncState};
pub use view::{SyncView, view};

use crate::config::EventsVia;
use crate::db::DbError;
use https::Platform;

/// Why a sync step failed. Every one of these is retried.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("TLS set-up failed: {0}")]
    Tls(String),
    #[error("{0}")]
    Credentials(String),
    #[error("cannot reach the platform: {0}")]
    Network(String),
    #[error("the platform answered {status}: {body}")]
    Status {
        status: u16,
        retryable: bool,
        body: String,
    },
    #[error("the platform's answer broke the contract: {0}")]
    Protocol(String),
    #[error("cannot start the sync tasks: {0}")]
    Runtime(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Command(#[from] commands::CommandError),
}

impl SyncError {
    fn from_reqwest(e: reqwest::Error) -> SyncError {
        // The URL holds no secret (the token travels in a header), but
        // strip it anyway to keep log lines short.
        SyncError::Network(e.without_url().to_string())
    }

    /// A 4xx other than 408/429: retrying at once will not help.
    fn is_refusal(&self) -> bool {
        matches!(
            self,
            SyncError::Status {
                retryable: false,
                ..
            }
        )
    }
}

/// The running sync tasks and what they report.
pub struct SyncHandle {
    state: SyncState,
    stop: watch::Sender<bool>,
    done: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl SyncHandle {
    /// What the tasks report (connections, last delivery…), for the API.
    pub fn state(&self) -> &SyncState {
        &self.state
    }

    /// Stops every task (MQTT says goodbye first) and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Some(done) = self.done
            && tokio::time::timeout(Duration::from_secs(10), done)
                .await
                .is_err()
        {
            tracing::warn!("the sync tasks did not stop in time");
        }
    }
}

type Task = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Starts the sync tasks the configuration asks for (none when no platform
/// is configured). Must be called inside the daemon's runtime: database
/// writes go back to it (see [`Ctx::on_main`]).
///
/// The tasks run on a runtime of their own, on one worker thread at a
/// lower CPU priority (nice 10; threads it starts inherit it): on a
/// two-core kiosk a week of backlog draining can never take the CPU from
/// the counter.
pub fn start(deps: &Deps) -> Result<SyncHandle, SyncError> {
    let (stop, stop_rx) = watch::channel(false);
    let state = SyncState::default();
    let cfg = deps.config().sync.clone();
    if !cfg.enabled() {
        tracing::info!(
            "no platform configured (sync.mqtt.url, sync.https.base_url): working offline, keeping every event"
        );
        return Ok(SyncHandle {
            state,
            stop,
            done: None,
        });
    }
    if let Some(m) = cfg
        .mqtt
        .as_ref()
        .filter(|m| m.brokers.iter().any(|b| b.tls))
    {
        // Fail at start, naming the file, rather than in a retry loop.
        tls::client_config(&m.tls_files)?;
    }
    let (ctx, acks_rx) = Ctx::new(deps, &state)?;
    // The ack recorder outlives the other tasks: it ends only once they
    // have (so no PUBACK that arrived is left unrecorded), on `finish`.
    let (finish, finish_rx) = tokio::sync::oneshot::channel();
    let recorder = Box::pin(drain::record_acks(ctx.clone(), acks_rx, finish_rx));
    let tasks = tasks(&ctx, &stop_rx)?;
    let done = run_low_priority(tasks, recorder, finish, stop_rx)?;
    Ok(SyncHandle {
        state,
        stop,
        done: Some(done),
    })
}

/// The tasks the configuration asks for, by name.
fn tasks(ctx: &Ctx, stop: &watch::Receiver<bool>) -> Result<Vec<(&'static str, Task)>, SyncError> {
    let cfg = &ctx.deps.config().sync;
    let mut tasks: Vec<(&'static str, Task)> = Vec::new();
    if let Some(m) = cfg.mqtt.clone() {
        // Presence and commands use MQTT whatever carries the events.
        let events = cfg.events_via != EventsVia::Https;
        let run = mqtt::run(ctx.clone(), m, events, stop.clone());
        tasks.push(("mqtt", Box::pin(run)));
    }
    let Some(h) = &cfg.https else {
        tracing::warn!(
            "sync.https.base_url is not set: photos will not upload and the manifest will not be pulled"
        );
        return Ok(tasks);
    };
    let timeout = Duration::from_secs(cfg.timeout_s);
    let platform = Platform::new(h, &ctx.deps.config().station.id, timeout)?;
    let via = if cfg.mqtt.is_none() {
        EventsVia::Https
    } else {
        cfg.events_via
    };
    if via != EventsVia::Mqtt {
        let run = events_https::events_over_https(ctx.clone(), platform.clone(), via, stop.clone());
        tasks.push(("events over https", Box::pin(run)));
    }
    let run = photos::photos(ctx.clone(), platform.clone(), stop.clone());
    tasks.push(("photos", Box::pin(run)));
    let run = manifest::manifest(ctx.clone(), platform, stop.clone());
    tasks.push(("manifest", Box::pin(run)));
    Ok(tasks)
}

/// Runs the tasks and the ack recorder on a runtime of their own, on one
/// lower-priority thread, until `stop`; then ends the tasks, lets the
/// recorder write what they reported, and answers on the returned channel.
fn run_low_priority(
    tasks: Vec<(&'static str, Task)>,
    recorder: Task,
    finish: tokio::sync::oneshot::Sender<()>,
    mut stop: watch::Receiver<bool>,
) -> Result<tokio::sync::oneshot::Receiver<()>, SyncError> {
    let (done_tx, done) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("yizhan-sync".into())
        .spawn(move || {
            if let Err(e) = rustix::process::setpriority_process(None, 10) {
                tracing::debug!(error = %e, "cannot lower the sync thread's priority");
            }
            let rt = match tokio::runtime::Builder::new_multi_thread()
                // One worker: the MQTT event loop, the session and the
                // ack recorder hand each other every event; on one thread
                // that is a local wake, on two a cross-thread one each
                // time (measured: drain +10 %, docs/PERFORMANCE.md).
                // Outbox reads run on the blocking pool.
                .worker_threads(1)
                .thread_name("yizhan-sync")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the sync runtime; nothing will be delivered");
                    return;
                }
            };
            rt.block_on(async move {
                let recorder = tokio::spawn(recorder);
                let handles: Vec<_> = tasks
                    .into_iter()
                    .map(|(name, task)| (name, tokio::spawn(task)))
                    .collect();
                stopped(&mut stop).await;
                let started = std::time::Instant::now();
                for (name, h) in handles {
                    join_or_abandon(name, h).await;
                }
                // Every task that could report a PUBACK has ended: record
                // what they reported, then end.
                let _ = finish.send(());
                join_or_abandon("acks", recorder).await;
                tracing::info!(
                    took_ms = started.elapsed().as_millis() as u64,
                    "sync stopped"
                );
            });
            let _ = done_tx.send(());
        })
        .map_err(|e| SyncError::Runtime(e.to_string()))?;
    Ok(done)
}

/// How long stopping waits for each sync task before abandoning it (one
/// stuck in a network call, say; everything it did is in the outbox).
const TASK_STOP: Duration = Duration::from_secs(5);

/// Waits up to [`TASK_STOP`] for a stopping task to end; logs it by name if
/// it has to be left behind.
async fn join_or_abandon(name: &'static str, task: tokio::task::JoinHandle<()>) {
    if tokio::time::timeout(TASK_STOP, task).await.is_err() {
        tracing::warn!(task = name, "a sync task did not stop in time; abandoned");
    }
}

/// Resolves once `stop` is set.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here.
    let _ = stop.wait_for(|s| *s).await;
}

/// Waits for `d`, or until `stop`; true when stopped.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        () = stopped(stop) => true,
    }
}
