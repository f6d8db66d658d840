//! `yizhan run`: the long-running daemon.
//!
//! # Lifecycle
//! 0. Bind the API's address, then lock the data directory
//!    ([`lock::DataLock`]): a start that cannot serve, or a second daemon
//!    on the same data directory, stops here with nothing written.
//! 1. Open the station (database migrated, device key, photo repair).
//! 2. Bind the API; only then is the daemon ready (`READY=1` to systemd,
//!    then `WATCHDOG=1` pings while the loop turns and the database answers).
//! 3. Serve, with housekeeping on a timer and the sync tasks delivering to
//!    the platform, until SIGTERM or SIGINT.
//! 4. On the first signal stop accepting connections and let requests in
//!    flight finish (up to [`GRACE`]); a second signal, or the grace running
//!    out, stops at once. Every acknowledged request has already committed.
//! 5. Stop the timers, the device tasks and the sync tasks (MQTT says
//!    goodbye), checkpoint the WAL and close the database.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::config::Config;
use crate::station::{Station, StationError};

pub mod lock;

/// How long in-flight requests get to finish after the first signal.
pub const GRACE: Duration = Duration::from_secs(10);
/// How often stale drafts are swept.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(300);
/// How often the clock's trustworthiness is looked at (a kiosk that booted
/// offline gets NTP when the network comes).
const CLOCK_EVERY: Duration = Duration::from_secs(30);

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Station(#[from] StationError),
    #[error("cannot listen on {addr}: {source}{}", holder_words(.holder))]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
        /// The yizhan already running on this data directory, if that is
        /// who has the port.
        holder: Option<String>,
    },
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error("the API server failed: {0}")]
    Serve(std::io::Error),
    #[error("cannot start delivery to the platform: {0}")]
    Sync(crate::sync::SyncError),
    #[error("cannot write the operator token {path}: {source}")]
    OperatorToken {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("opening the station did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn holder_words(holder: &Option<String>) -> String {
    match holder {
        Some(h) => format!(
            "; another yizhan is running on this data directory ({h}): stop it first (systemctl stop yizhan)"
        ),
        None => "; another program has this port: set api.listen".to_owned(),
    }
}

/// The CLI's reports for `diagnostics.upload`, given the address the API
/// serves on.
pub type DiagnosticsProbe =
    std::sync::Arc<dyn Fn(std::net::SocketAddr) -> serde_json::Value + Send + Sync>;

/// Runs the daemon until a signal asks it to stop.
///
/// `diagnostics` adds the CLI's reports to `diagnostics.upload`.
pub async fn run(config: Config, diagnostics: Option<DiagnosticsProbe>) -> Result<(), DaemonError> {
    // Signals are caught from the very start: a SIGTERM while the station
    // opens or the tasks start is a request to stop cleanly, never the
    // default "die at once".
    let stops = stop_on_signals();
    tracing::info!(data_dir = %config.storage.data_dir.display(), listen = %config.api.listen, "starting");
    let addr = config.api.listen;
    // Nothing is written before the address is ours and the data directory
    // is locked: a second daemon, or one that cannot serve, leaves the
    // running one's database, key and operator token untouched.
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Bind {
            addr,
            source,
            holder: lock::DataLock::holder(&config.storage.data_dir),
        })?;
    let serving = listener.local_addr().map_err(DaemonError::Serve)?;
    let data_lock = lock::DataLock::acquire(&config.storage.data_dir, serving)?;
    let station = tokio::task::spawn_blocking(move || Station::open(config)).await??;
    let path = station.config().operator_token_path();
    write_operator_token(&path, station.operator_token())
        .map_err(|source| DaemonError::OperatorToken { path, source })?;
    let served = run_serving(station, listener, stops, diagnostics).await;
    drop(data_lock);
    served
}

/// Writes this run's operator token, readable by the daemon's user only
/// (replacing the last run's: a token dies with its daemon).
fn write_operator_token(path: &std::path::Path, token: &str) -> std::io::Result<()> {
    crate::durable::write_file(path, token.as_bytes(), 0o600)
}

/// Runs an opened station on a bound listener until a stop is requested
/// (tests and benchmarks hold their own [`StopRequests`] sender).
pub async fn run_on(
    station: Station,
    listener: TcpListener,
    stops: StopRequests,
) -> Result<(), DaemonError> {
    run_serving(station, listener, stops, None).await
}

async fn run_serving(
    station: Station,
    listener: TcpListener,
    stops: StopRequests,
    diagnostics: Option<DiagnosticsProbe>,
) -> Result<(), DaemonError> {
    let addr = listener.local_addr().map_err(DaemonError::Serve)?;
    tracing::info!(%addr, station_id = %station.config().station.id, version = env!("CARGO_PKG_VERSION"), "api listening");
    let (stop_tx, stop_rx) = watch::channel(false);
    let housekeeping = tokio::spawn(housekeeping(station.clone(), stop_rx.clone()));
    let clock = tokio::spawn(watch_clock(station.clone(), stop_rx.clone()));
    let mut deps = sync_deps(&station);
    if let Some(probe) = diagnostics {
        deps = deps.with_diagnostics(std::sync::Arc::new(move || probe(addr)));
    }
    let sync = crate::sync::start(&deps).map_err(DaemonError::Sync)?;
    let hardware = crate::hardware::start(&station);
    let watchdog = crate::systemd::watchdog_interval()
        .map(|every| tokio::spawn(watchdog(station.clone(), every, stop_rx.clone())));
    // The database is open and the API listens: ready.
    crate::systemd::notify("READY=1\nSTATUS=serving");
    let mut draining = stop_rx.clone();
    let mut first = stops.clone();
    let graceful = async move {
        // A closed channel is a stop too: whoever could ask is gone.
        let _ = first.wait_for(|n| *n >= 1).await;
        let _ = stop_tx.send(true);
    };
    let mut second = stops;
    let state = crate::api::AppState {
        station: station.clone(),
        sync: sync.state().clone(),
    };
    let server = crate::api::serve(state, listener, graceful);
    tokio::pin!(server);
    let served = tokio::select! {
        r = &mut server => r,
        () = async {
            let _ = draining.wait_for(|s| *s).await;
            tracing::info!(grace_s = GRACE.as_secs(), "shutting down: finishing requests in flight (signal again to stop now)");
            tokio::select! {
                () = tokio::time::sleep(GRACE) => tracing::warn!("grace period over; stopping with requests still open"),
                _ = second.wait_for(|n| *n >= 2) => tracing::warn!("second signal; stopping now"),
            }
        } => Ok(()),
    };
    crate::systemd::notify("STOPPING=1\nSTATUS=stopping");
    for task in [housekeeping, clock] {
        task.abort();
        let _ = task.await;
    }
    if let Some(w) = watchdog {
        w.abort();
        let _ = w.await;
    }
    hardware.stop().await;
    sync.stop().await;
    close(&station).await;
    served.map_err(DaemonError::Serve)
}

/// What delivery needs from the station (it holds no station itself).
pub fn sync_deps(station: &Station) -> crate::sync::Deps {
    crate::sync::Deps::new(
        station.config().clone(),
        station.db().clone(),
        station.events().clone(),
        station.photos().clone(),
        station.commits().clone(),
        station.notice_sender(),
    )
    .with_health(health_probe(station.clone()))
}

/// The retained status's view of the kiosk (docs/PROTOCOL.md §2.2): each
/// device's state, whether the clock is trusted, and the free disk under
/// the data directory.
fn health_probe(station: Station) -> crate::sync::HealthProbe {
    std::sync::Arc::new(move || {
        let devices: serde_json::Map<String, serde_json::Value> = station
            .devices()
            .snapshot()
            .into_iter()
            .map(|(name, d)| {
                let mut v = serde_json::json!({"kind": d.kind, "state": d.state.as_str()});
                if let Some(detail) = d.detail {
                    v["detail"] = detail.into();
                }
                (name, v)
            })
            .collect();
        let data_dir = &station.config().storage.data_dir;
        let free = rustix::fs::statvfs(data_dir)
            .ok()
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize));
        serde_json::json!({
            "devices": devices,
            "clock_trusted": station.clock_trust().map(|t| t.trusted),
            "free_disk_bytes": free,
        })
    })
}

async fn housekeeping(station: Station, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = station.housekeeping().await {
                    tracing::warn!(error = %e, "housekeeping failed; will retry");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

async fn watch_clock(station: Station, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(CLOCK_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = station.check_clock().await {
                    tracing::warn!(error = %e, "cannot check the clock; will retry");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// Pings the systemd watchdog while the runtime turns and the database
/// answers; a hung loop or a wedged database stops the pings and systemd
/// restarts the service.
async fn watchdog(station: Station, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let alive = station.db().read(|c| {
                    c.query_row("SELECT 1", [], |_| Ok(())).map_err(crate::db::DbError::from)
                });
                match tokio::time::timeout(every, alive).await {
                    Ok(Ok(())) => {
                        crate::systemd::notify("WATCHDOG=1");
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "database check failed; not pinging the watchdog"),
                    Err(_) => tracing::error!("database check timed out; not pinging the watchdog"),
                }
            }
            _ = stop.changed() => return,
        }
    }
}

async fn close(station: &Station) {
    let db = station.db().clone();
    match tokio::task::spawn_blocking(move || db.checkpoint()).await {
        Ok(Ok(())) => tracing::info!("database closed cleanly"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "final checkpoint failed; the WAL will be replayed at next start")
        }
        Err(e) => tracing::warn!(error = %e, "final checkpoint task failed"),
    }
}

/// How many stops have been asked for so far: the first asks for a
/// graceful stop, the second for an immediate one.
pub type StopRequests = watch::Receiver<u32>;

/// Installs the SIGTERM and SIGINT handlers now and counts the signals.
/// Must be called inside the runtime.
pub fn stop_on_signals() -> StopRequests {
    use tokio::signal::unix::{SignalKind, signal};
    let (count, stops) = watch::channel(0);
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        Some(()) = term.recv() => {}
                        Some(()) = int.recv() => {}
                        else => return,
                    }
                    count.send_modify(|n| *n += 1);
                }
            });
        }
        _ => {
            tracing::warn!("cannot install signal handlers; only Ctrl-C will stop the daemon");
            tokio::spawn(async move {
                while tokio::signal::ctrl_c().await.is_ok() {
                    count.send_modify(|n| *n += 1);
                }
            });
        }
    }
    stops
}
