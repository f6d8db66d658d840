//! What the sync tasks share: [`Deps`], the station's parts delivery
//! needs, and [`Ctx`], those plus sync's own state, read connection and
//! ack channel.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, watch};

use super::{SyncError, SyncState, Topics};
use crate::backoff::Backoff;
use crate::config::Config;
use crate::db::{self, Db, DbError, Durability};
use crate::notice::Notice;
use crate::outbox::{Commits, EventSource};
use crate::photo::store::PhotoStore;

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
    health: Option<HealthProbe>,
    diagnostics: Option<Probe>,
}

/// A report the station makes about itself, as a JSON object whose keys
/// join a larger document.
pub type Probe = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// A probe's report, or an empty object where there is no probe.
fn report(probe: Option<&Probe>) -> serde_json::Value {
    probe.map_or_else(|| serde_json::json!({}), |probe| probe())
}

/// What the station tells the fleet about its own health in the retained
/// status (devices, clock, disk). Cheap: it runs at every status.
pub type HealthProbe = Probe;

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
            health: None,
            diagnostics: None,
        }
    }

    /// With the reports `diagnostics.upload` sends (`status --json`, `db
    /// check`); the probe may block.
    pub fn with_diagnostics(mut self, probe: Probe) -> Deps {
        self.diagnostics = Some(probe);
        self
    }

    /// The station's reports for `diagnostics.upload` (blocking; an empty
    /// object without a probe).
    pub fn diagnostics(&self) -> serde_json::Value {
        report(self.diagnostics.as_ref())
    }

    /// With the station's health in the retained status.
    pub fn with_health(mut self, probe: HealthProbe) -> Deps {
        self.health = Some(probe);
        self
    }

    /// The station's health now (an empty object without a probe).
    pub fn health(&self) -> serde_json::Value {
        report(self.health.as_ref())
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
    pub(super) deps: Deps,
    pub(super) state: SyncState,
    pub(super) topics: Topics,
    pub(super) acks: mpsc::UnboundedSender<i64>,
    /// Sync's own read connection, so that it never takes a reader from
    /// the API.
    pub(super) reader: Arc<Mutex<Connection>>,
    /// The daemon's runtime: writes are started there, so that the group
    /// commit they may lead runs at full priority (a check-in sharing the
    /// commit must not wait on the low-priority sync thread).
    pub(super) main: tokio::runtime::Handle,
}

impl Ctx {
    /// The shared context and the receiving end of its acks. Must be
    /// called inside the daemon's runtime.
    pub(super) fn new(
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

    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, DbError>
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
    pub(super) async fn write<T, E, F>(&self, durability: Durability, f: F) -> Result<T, E>
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
    pub(super) async fn on_main<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, DbError> {
        Ok(self.main.spawn(fut).await?)
    }

    pub(super) fn backoff(&self) -> Backoff {
        let s = &self.deps.config().sync;
        Backoff::new(
            Duration::from_millis(s.retry_initial_ms),
            Duration::from_secs(s.retry_max_s),
        )
    }
}
