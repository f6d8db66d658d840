//! The station: everything a running kiosk holds open (configuration,
//! database, photo store, device key, metrics), behind one cheap handle the
//! API, the CLI and the benchmarks share.
//!
//! # Lifecycle
//! [`Station::open`] creates the data directory, opens and migrates the
//! database, loads (or on first start creates) the device key, and repairs
//! the photo store (orphan files from an interrupted write are removed,
//! rows without files are reported). [`Station::housekeeping`] discards
//! drafts older than an hour; the daemon runs it on a timer.

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use tokio::sync::{broadcast, watch};

use crate::clerk::{Sessions, Throttle};
use crate::config::Config;
use crate::db::{self, Db, DbError, Durability};
use crate::hardware::Devices;
use crate::identity::{self, IdentityError};
use crate::metrics::Metrics;
pub use crate::notice::Notice;
use crate::outbox::{Commits, EventSource};
use crate::parcel::store;
use crate::photo::store::{PhotoStore, Report};

/// Drafts promise nothing and are discarded after this long (SPEC §3).
pub const DRAFT_TTL: Duration = Duration::from_secs(3600);

/// The station could not start.
#[derive(Debug, thiserror::Error)]
pub enum StationError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// A cheap, cloneable handle to the running station.
#[derive(Clone)]
pub struct Station {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    db: Db,
    photos: PhotoStore,
    events: EventSource,
    key: SigningKey,
    metrics: Metrics,
    /// Bumped after every commit that appended events, so that delivery
    /// starts at once instead of at its next timer.
    commits: Commits,
    /// Logged-in clerks and wrong-PIN throttling.
    sessions: Sessions,
    throttle: Throttle,
    /// The operator's bearer token for this run (the daemon writes it to
    /// `operator.token` in the data directory, readable by its user only).
    operator_token: String,
    /// What the kiosk screen is told as it happens (`GET /api/v1/stream`).
    notices: broadcast::Sender<Notice>,
    /// The kiosk's devices: their states, recent scans, the camera's frame.
    devices: Devices,
    /// Whether the clock can be trusted, as last checked.
    clock: std::sync::Mutex<Option<crate::clock::Trust>>,
    /// Pictures decoded at once (bounds the memory photos take).
    photo_slots: crate::photo::Slots,
}

impl Station {
    /// Opens everything the station needs; see the module docs.
    pub fn open(config: Config) -> Result<Station, StationError> {
        let dir = &config.storage.data_dir;
        crate::durable::create_dir_all(dir).map_err(|source| StationError::DataDir {
            path: dir.clone(),
            source,
        })?;
        let db = Db::open(&config.db_path(), &config.backups_dir())?;
        let key = identity::load_or_create(&config.key_path())?;
        let photos = PhotoStore::new(config.photos_dir(), config.storage.min_free_mb);
        let report = db.with_writer_blocking(|c| photos.check(c, true))?;
        log_repair(&report);
        if let Err(e) = photos.lay_out() {
            // Not fatal (a full disk, say): each photo makes its own
            // directory when it needs one.
            tracing::warn!(dir = %photos.dir().display(), error = %e, "cannot lay out the photo directory");
        }
        let events = EventSource {
            station_id: config.station.id.clone(),
            device_id: config.station.device_id.clone(),
            clock: crate::clock::Clock::new(config.station.clock_check),
        };
        let idle = Duration::from_secs(u64::from(config.api.session_idle_min) * 60);
        let photo_slots = crate::photo::Slots::new(config.storage.photo_workers);
        let operator_token = crate::clerk::new_token()
            .map_err(|e| StationError::Identity(IdentityError::Random(e)))?;
        let station = Station {
            inner: Arc::new(Inner {
                config,
                db,
                photos,
                events,
                key,
                metrics: Metrics::default(),
                commits: Commits::default(),
                sessions: Sessions::new(idle),
                throttle: Throttle::default(),
                operator_token,
                notices: broadcast::channel(256).0,
                devices: Devices::default(),
                clock: std::sync::Mutex::new(None),
                photo_slots,
            }),
        };
        station.discard_stale_drafts_blocking()?;
        Ok(station)
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn photos(&self) -> &PhotoStore {
        &self.inner.photos
    }

    pub fn events(&self) -> &EventSource {
        &self.inner.events
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Tells delivery that new events are committed.
    pub fn events_committed(&self) {
        self.inner.commits.bump();
    }

    /// Follows [`Station::events_committed`].
    pub fn watch_events(&self) -> watch::Receiver<u64> {
        self.inner.commits.watch()
    }

    /// The commit signal itself, for delivery (which holds no station).
    pub fn commits(&self) -> &Commits {
        &self.inner.commits
    }

    /// The decoding slots for photos and camera frames.
    pub fn photo_slots(&self) -> &crate::photo::Slots {
        &self.inner.photo_slots
    }

    /// The kiosk's devices (SPEC §10).
    pub fn devices(&self) -> &Devices {
        &self.inner.devices
    }

    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    pub fn throttle(&self) -> &Throttle {
        &self.inner.throttle
    }

    /// The operator's bearer token for this run (scripts on the kiosk read
    /// it from `operator.token`; benchmarks take it from here).
    pub fn operator_token(&self) -> &str {
        &self.inner.operator_token
    }

    /// Tells the screen (nobody listening is fine).
    pub fn notify(&self, notice: Notice) {
        let _ = self.inner.notices.send(notice);
    }

    /// Follows [`Station::notify`].
    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.inner.notices.subscribe()
    }

    /// Where notices go, for tasks that hold no station.
    pub fn notice_sender(&self) -> broadcast::Sender<Notice> {
        self.inner.notices.clone()
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.inner.key
    }

    /// The device public key receipts verify against.
    pub fn public_key(&self) -> VerifyingKey {
        self.inner.key.verifying_key()
    }

    /// Looks at the clock (the OS's word and the last event's time): logs
    /// once when it stops, or starts again, being trustworthy, and tells
    /// the screen. Events carry the same verdict (`clock_trusted`).
    pub async fn check_clock(&self) -> Result<crate::clock::Trust, DbError> {
        let last = self.db().read(crate::outbox::last_occurred_at).await?;
        let (now, synced) = self.events().clock.now();
        let trust = crate::clock::Trust::judge(now, synced, last.as_deref());
        let before = {
            let mut state = self.inner.clock.lock().unwrap_or_else(|e| e.into_inner());
            state.replace(trust.clone())
        };
        if before.as_ref().map(|t| t.trusted) != Some(trust.trusted) {
            match (&before, trust.trusted) {
                (_, false) => tracing::warn!(
                    reason = trust.reason.as_deref().unwrap_or(""),
                    "the clock cannot be trusted; events are marked clock_trusted:false until it is synchronised"
                ),
                (Some(_), true) => tracing::info!("the clock is trusted again"),
                (None, true) => {}
            }
            self.notify(Notice::Clock {
                trusted: trust.trusted,
            });
        }
        Ok(trust)
    }

    /// The clock's verdict as last checked (`None` before the first check).
    pub fn clock_trust(&self) -> Option<crate::clock::Trust> {
        self.inner
            .clock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Periodic upkeep: discards stale drafts and their unused photos, and
    /// purges photo files whose upload was confirmed long enough ago.
    pub async fn housekeeping(&self) -> Result<(), DbError> {
        let station = self.clone();
        tokio::task::spawn_blocking(move || {
            station.discard_stale_drafts_blocking()?;
            station.purge_uploaded_photos_blocking()?;
            station.prune_events_blocking()
        })
        .await
        .map_err(DbError::from)?
    }

    /// SPEC §9: photo files may go `storage.photo_retention_days` after
    /// their upload was confirmed; their rows (and metadata) stay.
    pub fn purge_uploaded_photos_blocking(&self) -> Result<(), DbError> {
        let days = i64::from(self.inner.config.storage.photo_retention_days);
        let cutoff = crate::clock::format(crate::clock::now() - chrono::Duration::days(days));
        let due = self
            .inner
            .db
            .read_blocking(|c| crate::photo::store::purgeable(c, &cutoff))?;
        if due.is_empty() {
            return Ok(());
        }
        let photos = self.inner.photos.clone();
        let purged = self.inner.db.with_writer_blocking(|conn| {
            // Rows first, in one transaction: a crash after it leaves files
            // that purged rows still name (harmless), never a live row
            // without its file. Still holding the writer while the files
            // go, so no request can attach one of these hashes in between.
            let at = crate::clock::now_string();
            db::transaction(conn, Durability::Full, |tx| {
                due.iter()
                    .try_for_each(|sha| crate::photo::store::mark_purged(tx, sha, &at))
            })?;
            for sha in &due {
                if let Err(e) = photos.remove(sha) {
                    tracing::warn!(sha256 = %sha, error = %e, "could not remove a purged photo file");
                }
            }
            Ok::<_, DbError>(due.len())
        })?;
        if purged > 0 {
            tracing::info!(
                photos = purged,
                retention_days = days,
                "purged uploaded photo files"
            );
        }
        Ok(())
    }

    /// SPEC §5: delivered events are kept `storage.event_retention_days`,
    /// then pruned, oldest first, in short transactions (see
    /// [`crate::outbox::prune_delivered`]). Their pages are reused by new
    /// events, so the database file stops growing.
    pub fn prune_events_blocking(&self) -> Result<(), DbError> {
        let days = i64::from(self.inner.config.storage.event_retention_days);
        let cutoff = crate::clock::format(crate::clock::now() - chrono::Duration::days(days));
        let mut total = 0;
        loop {
            // Relaxed: a pruning lost to a power cut is done again, harmlessly.
            let n = self.inner.db.write_blocking(Durability::Relaxed, |tx| {
                crate::outbox::prune_delivered(tx, &cutoff)
            })?;
            total += n;
            if n < crate::outbox::PRUNE_BATCH {
                break;
            }
        }
        if total > 0 {
            tracing::info!(
                events = total,
                retention_days = days,
                "pruned delivered events past their retention"
            );
        }
        Ok(())
    }

    fn discard_stale_drafts_blocking(&self) -> Result<(), DbError> {
        let cutoff = crate::clock::format(crate::clock::now() - DRAFT_TTL);
        let photos = self.inner.photos.clone();
        let (n, files) = self.inner.db.with_writer_blocking(|conn| {
            let (n, unused) =
                db::transaction(conn, Durability::Full, |tx| store::discard_drafts(tx, &cutoff))?;
            // Still holding the writer: no request can attach these hashes
            // between the row delete above and the file delete here.
            for sha in &unused {
                if let Err(e) = photos.remove(sha) {
                    tracing::warn!(sha256 = %sha, error = %e, "could not remove an unused photo file");
                }
            }
            Ok::<_, DbError>((n, unused.len()))
        })?;
        if n > 0 {
            tracing::info!(
                drafts = n,
                photo_files = files,
                "discarded drafts older than an hour"
            );
        }
        Ok(())
    }
}

fn log_repair(report: &Report) {
    if !report.orphan_files.is_empty() || report.temp_files > 0 {
        tracing::warn!(
            orphan_files = report.orphan_files.len(),
            temp_files = report.temp_files,
            "removed photo files no record names (an interrupted write)"
        );
    }
    if !report.missing_files.is_empty() {
        tracing::error!(
            missing = report.missing_files.len(),
            first = %report.missing_files[0],
            "photo records whose files are missing: restore the photo directory from a backup"
        );
    }
}
