//! Delivery to the merchant platform (SPEC §5, §6): the outbox drained over
//! MQTT or HTTPS, photos uploaded on their own queue, the manifest pulled,
//! platform commands applied, presence published.
//!
//! # Tasks
//! - [`mqtt::run`]: the MQTT session (events up, commands down, presence),
//!   reconnecting with capped exponential backoff and jitter.
//! - `events_over_https`: event batches over HTTPS when `events_via` is
//!   `https`, or `auto` while MQTT is not connected.
//! - `photos`: content-addressed photo uploads; never in the events' way.
//! - `manifest`: pulls at start, on an interval and on `manifest.refresh`.
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
mod drain;
mod https;
mod mqtt;
pub mod queue;
mod state;
mod tls;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

pub use mqtt::Topics;
pub use state::{Live, SyncState};

use crate::backoff::Backoff;
use crate::config::{Config, EventsVia};
use crate::db::{self, Db, DbError, Durability};
use crate::notice::Notice;
use crate::outbox::{Backlog, Commits, EventSource};
use crate::photo::store::PhotoStore;
use https::Platform;
use queue::{PhotoBacklog, PhotoMark};

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

/// What delivery needs from the station, and nothing more: sync is built
/// and tested from these parts, without a whole station.
#[derive(Clone)]
pub struct Deps {
    config: Arc<Config>,
    db: Db,
    events: EventSource,
    photos: PhotoStore,
    commits: Commits,
    notices: tokio::sync::broadcast::Sender<Notice>,
}

impl Deps {
    pub fn new(
        config: Config,
        db: Db,
        events: EventSource,
        photos: PhotoStore,
        commits: Commits,
        notices: tokio::sync::broadcast::Sender<Notice>,
    ) -> Deps {
        Deps {
            config: Arc::new(config),
            db,
            events,
            photos,
            commits,
            notices,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn events(&self) -> &EventSource {
        &self.events
    }

    pub fn photos(&self) -> &PhotoStore {
        &self.photos
    }

    /// Tells every follower (the screen, delivery itself) that events were
    /// committed.
    pub fn events_committed(&self) {
        self.commits.bump();
    }

    pub fn watch_events(&self) -> watch::Receiver<u64> {
        self.commits.watch()
    }

    /// Tells the screen (nobody listening is fine).
    pub fn notify(&self, notice: Notice) {
        let _ = self.notices.send(notice);
    }
}

/// What every sync task shares.
#[derive(Clone)]
pub(crate) struct Ctx {
    deps: Deps,
    state: SyncState,
    topics: Topics,
    acks: mpsc::UnboundedSender<i64>,
    /// Sync's own read connection, so that it never takes a reader from
    /// the API.
    reader: Arc<Mutex<Connection>>,
    /// The daemon's runtime: writes are started there, so that the group
    /// commit they may lead runs at full priority (a check-in sharing the
    /// commit must not wait on the low-priority sync thread).
    main: tokio::runtime::Handle,
}

impl Ctx {
    /// The shared context and the receiving end of its acks. Must be
    /// called inside the daemon's runtime.
    fn new(
        deps: &Deps,
        state: &SyncState,
    ) -> Result<(Ctx, mpsc::UnboundedReceiver<i64>), SyncError> {
        let reader = db::open_connection(deps.db().path(), true)?;
        let (acks, acks_rx) = mpsc::unbounded_channel();
        let ctx = Ctx {
            deps: deps.clone(),
            state: state.clone(),
            topics: Topics::new(&deps.config().station.id),
            acks,
            reader: Arc::new(Mutex::new(reader)),
            main: tokio::runtime::Handle::try_current()
                .map_err(|e| SyncError::Runtime(e.to_string()))?,
        };
        Ok((ctx, acks_rx))
    }

    async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || {
            // A panic cannot leave a read connection in a bad state.
            let conn = reader.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn)
        })
        .await?
    }

    /// A write through the station's group-commit writer, started on the
    /// daemon's runtime.
    async fn write<T, E, F>(&self, durability: Durability, f: F) -> Result<T, E>
    where
        F: FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let db = self.deps.db().clone();
        self.on_main(async move { db.write(durability, f).await })
            .await?
    }

    /// Runs `fut` on the daemon's runtime and waits for it.
    async fn on_main<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, DbError> {
        Ok(self.main.spawn(fut).await?)
    }

    fn backoff(&self) -> Backoff {
        let s = &self.deps.config().sync;
        Backoff::new(
            Duration::from_millis(s.retry_initial_ms),
            Duration::from_secs(s.retry_max_s),
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
    if let Some(m) = cfg.mqtt.as_ref().filter(|m| m.tls) {
        // Fail at start, naming the file, rather than in a retry loop.
        tls::client_config(&m.tls_files)?;
    }
    let (ctx, acks_rx) = Ctx::new(deps, &state)?;
    let timeout = Duration::from_secs(cfg.timeout_s);
    let platform = cfg
        .https
        .as_ref()
        .map(|h| Platform::new(h, &deps.config().station.id, timeout))
        .transpose()?;
    // The ack recorder outlives the other tasks: it ends only once they
    // have (so no PUBACK that arrived is left unrecorded), on `finish`.
    let (finish, finish_rx) = tokio::sync::oneshot::channel();
    let recorder = drain::record_acks(ctx.clone(), acks_rx, finish_rx);
    let mut tasks: Vec<(&'static str, Task)> = Vec::new();
    if let Some(m) = cfg.mqtt.clone() {
        // Presence and commands use MQTT whatever carries the events.
        let events = cfg.events_via != EventsVia::Https;
        tasks.push((
            "mqtt",
            Box::pin(mqtt::run(ctx.clone(), m, events, stop_rx.clone())),
        ));
    }
    if let Some(platform) = platform {
        let via = if cfg.mqtt.is_none() {
            EventsVia::Https
        } else {
            cfg.events_via
        };
        if via != EventsVia::Mqtt {
            tasks.push((
                "events over https",
                Box::pin(events_over_https(
                    ctx.clone(),
                    platform.clone(),
                    via,
                    stop_rx.clone(),
                )),
            ));
        }
        tasks.push((
            "photos",
            Box::pin(photos(ctx.clone(), platform.clone(), stop_rx.clone())),
        ));
        tasks.push((
            "manifest",
            Box::pin(manifest(ctx, platform, stop_rx.clone())),
        ));
    } else {
        tracing::warn!(
            "sync.https.base_url is not set: photos will not upload and the manifest will not be pulled"
        );
    }
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let mut stop_all = stop_rx;
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
                stopped(&mut stop_all).await;
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
    Ok(SyncHandle {
        state,
        stop,
        done: Some(done),
    })
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

/// Event batches over HTTPS.
async fn events_over_https(
    ctx: Ctx,
    platform: Platform,
    via: EventsVia,
    mut stop: watch::Receiver<bool>,
) {
    let batch = ctx.deps.config().sync.batch_size as usize;
    let cap = ctx.deps.config().sync.max_bytes_per_s;
    let mut mqtt_up = ctx.state.watch_mqtt();
    let mut committed = ctx.deps.watch_events();
    let mut backoff = ctx.backoff();
    // Events committed after this task started are "live" (see drain).
    let mark = ctx.read(queue::last_seq).await.unwrap_or(0);
    let mut selector = drain::Selector::new(mark, cap);
    loop {
        if *stop.borrow() {
            return;
        }
        if via == EventsVia::Auto && *mqtt_up.borrow_and_update() {
            tokio::select! {
                _ = mqtt_up.changed() => continue,
                () = stopped(&mut stop) => return,
            }
        }
        // Each round starts from the head: nothing is in flight between
        // rounds, and delivered events are marked before the next one.
        selector.rewind();
        let pick = match selector.next(&ctx, batch).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox; will retry");
                if pause(backoff.next_delay(), &mut stop).await {
                    return;
                }
                continue;
            }
        };
        if pick.events.is_empty() {
            let wait = match pick.wait_until {
                Some(t) => t.saturating_duration_since(std::time::Instant::now()),
                None => Duration::from_secs(5),
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = committed.changed() => {}
                _ = mqtt_up.changed() => {}
                () = stopped(&mut stop) => return,
            }
            continue;
        }
        let bodies: Vec<&str> = pick.events.iter().map(|e| e.body.as_str()).collect();
        match platform.post_events(&bodies).await {
            Ok(answer) => {
                backoff.reset();
                ctx.state.update(|l| {
                    l.https_reachable = Some(true);
                    l.https_last_error = None;
                });
                let at = crate::clock::now_string();
                let mut delivered = answer.accepted;
                delivered.extend(answer.duplicates);
                let refused: Vec<(String, String)> = answer
                    .rejected
                    .into_iter()
                    .map(|r| (r.event_id, r.reason))
                    .collect();
                if !refused.is_empty() {
                    tracing::error!(count = refused.len(), first = %refused[0].0, reason = %refused[0].1, "the platform refused events; they are dead letters now (yizhan outbox dead)");
                }
                let stamp = at.clone();
                let written = ctx
                    .write(Durability::Relaxed, move |tx| {
                        let n = queue::mark_delivered_ids(tx, &delivered, &stamp)?;
                        queue::mark_dead(tx, &refused, &stamp)?;
                        Ok::<_, DbError>(n)
                    })
                    .await;
                match written {
                    Ok(n) => ctx.state.delivered(n, at),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not record deliveries; will resend");
                        if pause(backoff.next_delay(), &mut stop).await {
                            return;
                        }
                    }
                }
            }
            Err(e) => {
                let seqs: Vec<i64> = pick.events.iter().map(|e| e.seq).collect();
                let text = e.to_string();
                let _ = ctx
                    .write(Durability::Relaxed, move |tx| {
                        queue::note_failure(tx, &seqs, &text)
                    })
                    .await;
                ctx.state.update(|l| {
                    l.https_reachable = Some(false);
                    l.https_last_error = Some(e.to_string());
                });
                let delay = if e.is_refusal() {
                    backoff.max()
                } else {
                    backoff.next_delay()
                };
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "event batch not delivered; will retry");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = mqtt_up.changed(), if via == EventsVia::Auto => {}
                    () = stopped(&mut stop) => return,
                }
            }
        }
    }
}

/// Photo uploads: oldest first, one at a time, retried with backoff.
async fn photos(ctx: Ctx, platform: Platform, mut stop: watch::Receiver<bool>) {
    let mut committed = ctx.deps.watch_events();
    let mut backoff = ctx.backoff();
    loop {
        let batch = match ctx.read(|c| queue::pending_photos(c, 16)).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the photo queue; will retry");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(10)) => {}
                _ = committed.changed() => {}
                () = stopped(&mut stop) => return,
            }
            continue;
        }
        let mut failed = None;
        for photo in batch {
            if *stop.borrow() {
                return;
            }
            let path = ctx.deps.photos().path(&photo.sha256);
            let mark = match tokio::fs::read(&path).await {
                Err(e) => PhotoMark::Dead(format!("file {} unreadable: {e}", path.display())),
                Ok(jpeg) => match platform.put_photo(&photo.sha256, jpeg).await {
                    Ok(()) => PhotoMark::Uploaded,
                    Err(e) if e.is_refusal() => PhotoMark::Dead(e.to_string()),
                    Err(e) => PhotoMark::Failed(e.to_string()),
                },
            };
            let sha = photo.sha256.clone();
            let m = mark.clone();
            let at = crate::clock::now_string();
            if let Err(e) = ctx
                .deps
                .db()
                .write(Durability::Relaxed, move |tx| {
                    queue::mark_photo(tx, &sha, &m, &at)
                })
                .await
            {
                tracing::warn!(error = %e, "could not record a photo upload; will upload again");
            }
            match mark {
                PhotoMark::Uploaded => {
                    backoff.reset();
                    ctx.state.update(|l| l.photos_uploaded += 1);
                }
                PhotoMark::Dead(reason) => {
                    tracing::error!(sha256 = %photo.sha256, reason = %reason, "photo refused for good; a dead letter now (yizhan outbox dead)")
                }
                PhotoMark::Failed(error) => {
                    failed = Some(error);
                    break;
                }
            }
        }
        if let Some(error) = failed {
            let delay = backoff.next_delay();
            tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "photo upload failed; will retry");
            if pause(delay, &mut stop).await {
                return;
            }
        }
    }
}

/// Manifest pulls: at start, every `manifest_interval_s`, on refresh.
async fn manifest(ctx: Ctx, platform: Platform, mut stop: watch::Receiver<bool>) {
    let interval = Duration::from_secs(ctx.deps.config().sync.manifest_interval_s);
    let mut backoff = ctx.backoff();
    loop {
        let wait = match pull_manifest(&ctx, &platform).await {
            Ok(n) => {
                backoff.reset();
                tracing::info!(returns = n, "manifest pulled");
                ctx.state.update(|l| {
                    l.manifest_last_pull_at = Some(crate::clock::now_string());
                    l.manifest_last_error = None;
                });
                interval
            }
            Err(e) => {
                let delay = backoff.next_delay().min(interval);
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "manifest pull failed; will retry");
                ctx.state
                    .update(|l| l.manifest_last_error = Some(e.to_string()));
                delay
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = ctx.state.manifest_refresh_requested() => {}
            () = stopped(&mut stop) => return,
        }
    }
}

/// Pulls pages until the platform has nothing newer; returns the number of
/// returns taken in. Each page and its cursor commit together.
async fn pull_manifest(ctx: &Ctx, platform: &Platform) -> Result<usize, SyncError> {
    const MAX_PAGES: usize = 1000;
    let mut total = 0;
    for _ in 0..MAX_PAGES {
        let cursor = ctx
            .read(|c| crate::manifest::summary(c).map(|(_, cursor)| cursor))
            .await?;
        let raw = platform.manifest_page(cursor.as_deref()).await?;
        let page = crate::manifest::parse(&raw).map_err(|e| SyncError::Protocol(e.to_string()))?;
        let n = page.returns.len();
        let next = page.cursor.clone();
        let source = ctx.deps.events().clone();
        let held = ctx
            .write(Durability::Full, move |tx| {
                crate::manifest::upsert(tx, &page.returns)?;
                let mut held = 0;
                for r in &page.returns {
                    if r.status == crate::manifest::ReturnStatus::Cancelled {
                        held += commands::hold_cancelled(tx, &source, &r.return_no)?;
                    }
                }
                if let Some(c) = &page.cursor {
                    crate::manifest::set_cursor(tx, c)?;
                }
                Ok::<_, commands::CommandError>(held)
            })
            .await?;
        if held > 0 {
            ctx.deps.events_committed();
        }
        total += n;
        if n == 0 || next.is_none() || next == cursor {
            return Ok(total);
        }
    }
    Ok(total)
}

/// The retained presence message (SPEC §6.1).
async fn presence(ctx: &Ctx, online: bool) -> String {
    let counts = ctx.read(queue::backlogs).await;
    let (backlog, photos) = counts.unwrap_or_default();
    serde_json::json!({
        "online": online,
        "version": env!("CARGO_PKG_VERSION"),
        "pending_events": backlog.pending_events,
        "pending_photos": photos.pending_photos,
        "oldest_pending_s": backlog.oldest_pending_s.unwrap_or(0),
        "at": crate::clock::now_string(),
    })
    .to_string()
}

/// Everything `GET /api/v1/sync` and `yizhan status` show.
#[derive(Debug, Clone, Serialize)]
pub struct SyncView {
    pub configured: bool,
    pub events_via: &'static str,
    pub mqtt_configured: bool,
    pub https_configured: bool,
    /// The station can reach the platform over some transport now.
    pub online: bool,
    #[serde(flatten)]
    pub live: Live,
    #[serde(flatten)]
    pub backlog: Backlog,
    #[serde(flatten)]
    pub photos: PhotoBacklog,
}

/// The view for a running station: its database and configuration, and
/// what the sync tasks report.
pub async fn view(db: &Db, config: &Config, state: &SyncState) -> Result<SyncView, DbError> {
    let (backlog, photos) = db.read(queue::backlogs).await?;
    let cfg = &config.sync;
    let live = state.snapshot();
    Ok(SyncView {
        configured: cfg.enabled(),
        events_via: cfg.events_via.as_str(),
        mqtt_configured: cfg.mqtt.is_some(),
        https_configured: cfg.https.is_some(),
        online: live.mqtt_connected || live.https_reachable == Some(true),
        live,
        backlog,
        photos,
    })
}
