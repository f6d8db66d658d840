//! The kiosk's own devices (SPEC §10): barcode scanners, the camera and the
//! receipt printer. The daemon owns them, so a scan never depends on the
//! browser having keyboard focus and the screen only shows what the daemon
//! saw.
//!
//! # Invariants
//! - Every device is optional. A missing, unplugged or failing device is a
//!   warning in the log (once per change), a state in [`Devices`]
//!   (`/healthz`, `yizhan status`, metrics, the screen), and is opened again
//!   when it comes back: never a crash, never a blocked check-in.
//! - A scan from a device is decided exactly as `POST /api/v1/scans` with
//!   the device's channel ([`Station::scan_from`]), then announced on the
//!   stream with the device's name; its answer is kept for the screen to
//!   fetch ([`Devices::scan`]) rather than broadcast.
//!
//! # Tasks
//! One per scanner ([`scanner::run`]), one for the scale ([`scale::run`]), one for the printer
//! ([`printer::run`]) and one for the camera ([`camera::run`]), on the
//! daemon's runtime (the camera's capture on a thread of its own), all
//! stopped by [`HardwareHandle::stop`].

pub mod camera;
pub mod evdev;
pub mod lines;
pub mod printer;
pub mod scale;
mod scanner;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use crate::checkin::ScanAnswer;
use crate::parcel::Channel;
use crate::print::store::Takes;
use crate::station::{Notice, Station};

/// How often a missing device's path is looked at again.
pub const POLL: Duration = Duration::from_secs(1);

/// Device scans kept for the screen to fetch by id.
const RECENT_SCANS: usize = 64;

/// What a device is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Configured, not tried yet (the first moments after start).
    Starting,
    /// Open and working.
    Ok,
    /// Not there (unplugged, wrong path): looked for again every second.
    Missing,
    /// There but unusable (permissions, grabbed by another program, not a
    /// serial port…): tried again every second.
    Error,
    /// A printer that does not answer (off, unplugged, network down).
    Offline,
    /// A printer out of paper.
    PaperOut,
    /// A printer whose cover is open.
    CoverOpen,
}

impl DeviceState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Starting => "starting",
            DeviceState::Ok => "ok",
            DeviceState::Missing => "missing",
            DeviceState::Error => "error",
            DeviceState::Offline => "offline",
            DeviceState::PaperOut => "paper_out",
            DeviceState::CoverOpen => "cover_open",
        }
    }

    pub fn is_ok(self) -> bool {
        self == DeviceState::Ok
    }
}

/// One device as `/healthz` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeviceStatus {
    /// `scanner`, `printer` or `camera`.
    pub kind: &'static str,
    /// Its path or address.
    pub at: String,
    pub state: DeviceState,
    /// What went wrong, in words for the operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When it entered this state.
    pub since: String,
    /// Printers: jobs waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued: Option<u64>,
}

/// What a scanned code was taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeType {
    /// A return code, decided per SPEC §4.
    Return,
    /// A courier waybill (clerk scanners only): fills the check-in in
    /// progress, the handover list or a bag.
    Waybill,
    /// An item's own barcode (clerk scanners only): ticks the item at the
    /// check-in's items step.
    Item,
}

/// A scan from a device, kept for the screen to fetch.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceScan {
    pub scan_id: String,
    pub device: String,
    pub channel: Channel,
    pub code_type: CodeType,
    /// Waybill scans: the normalised number and its carrier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waybill_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// Item scans: the GTIN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gtin: Option<String>,
    /// Return scans: the answer of `POST /api/v1/scans`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<ScanAnswer>,
    pub at: String,
}

/// The devices' states and recent scans: a cheap, cloneable registry.
#[derive(Clone, Default)]
pub struct Devices {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    states: Mutex<BTreeMap<String, DeviceStatus>>,
    scans: Mutex<VecDeque<DeviceScan>>,
    /// Wakes the printer task (a reprint was queued).
    printer: tokio::sync::Notify,
    /// The camera's latest frame.
    frame: Mutex<Option<Arc<camera::Frame>>>,
    /// The scale's latest stable reading, and when it came.
    weight: Mutex<Option<(i64, std::time::Instant)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing held under these locks can be left half-changed by a panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Devices {
    /// Adds a device in state `state` (replacing one of the same name).
    pub fn register(&self, name: &str, kind: &'static str, at: String, state: DeviceState) {
        lock(&self.inner.states).insert(
            name.to_owned(),
            DeviceStatus {
                kind,
                at,
                state,
                detail: None,
                since: crate::clock::now_string(),
                queued: None,
            },
        );
    }

    /// Sets a device's state; true when the state (not only its words)
    /// changed, so callers log and announce transitions once.
    pub fn set(&self, name: &str, state: DeviceState, detail: Option<String>) -> bool {
        let mut states = lock(&self.inner.states);
        let Some(d) = states.get_mut(name) else {
            return false;
        };
        let changed = d.state != state;
        if changed {
            d.since = crate::clock::now_string();
        }
        d.state = state;
        d.detail = detail;
        changed
    }

    /// A printer's queue length.
    pub fn set_queued(&self, name: &str, queued: u64) {
        if let Some(d) = lock(&self.inner.states).get_mut(name) {
            d.queued = Some(queued);
        }
    }

    /// Every device by name.
    pub fn snapshot(&self) -> BTreeMap<String, DeviceStatus> {
        lock(&self.inner.states).clone()
    }

    /// Keeps a device scan for the screen (the oldest go first).
    pub fn remember(&self, scan: DeviceScan) {
        let mut scans = lock(&self.inner.scans);
        if scans.len() == RECENT_SCANS {
            scans.pop_front();
        }
        scans.push_back(scan);
    }

    /// Tells the printer task there is a new job.
    pub fn wake_printer(&self) {
        self.inner.printer.notify_one();
    }

    pub(crate) async fn printer_woken(&self) {
        self.inner.printer.notified().await;
    }

    /// Keeps the camera's latest frame.
    pub(crate) fn keep_frame(&self, frame: Arc<camera::Frame>) {
        *lock(&self.inner.frame) = Some(frame);
    }

    /// The camera's latest frame, if it is at most [`camera::FRESH`] old.
    pub fn fresh_frame(&self) -> Option<Arc<camera::Frame>> {
        lock(&self.inner.frame)
            .as_ref()
            .filter(|f| f.at.elapsed() <= camera::FRESH)
            .cloned()
    }

    /// Keeps the scale's reading (only a stable one counts as a weight).
    pub(crate) fn keep_weight(&self, r: scale::Reading) {
        let mut w = lock(&self.inner.weight);
        if r.stable {
            *w = Some((r.grams, std::time::Instant::now()));
        } else {
            // The parcel is moving: the last stable weight is not its own.
            *w = None;
        }
    }

    /// The scale's stable reading of the last [`scale::FRESH`], in grams.
    pub fn fresh_weight(&self) -> Option<i64> {
        lock(&self.inner.weight)
            .filter(|(_, at)| at.elapsed() <= scale::FRESH)
            .map(|(g, _)| g)
            .filter(|g| *g > 0)
    }

    /// A recent device scan by id.
    pub fn scan(&self, scan_id: &str) -> Option<DeviceScan> {
        lock(&self.inner.scans)
            .iter()
            .find(|s| s.scan_id == scan_id)
            .cloned()
    }
}

/// Sets a device's state and, on a change, logs it and tells the screen.
pub(crate) fn report(
    station: &Station,
    name: &str,
    state: DeviceState,
    detail: Option<String>,
) -> bool {
    let changed = station.devices().set(name, state, detail.clone());
    if changed {
        let detail = detail.unwrap_or_default();
        if state.is_ok() {
            tracing::info!(device = name, "device ready");
        } else {
            tracing::warn!(device = name, state = state.as_str(), detail = %detail, "device not usable; will keep trying");
        }
        station.notify(Notice::Device {
            device: name.to_owned(),
            state,
        });
    }
    changed
}

/// The running device tasks.
pub struct HardwareHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<(String, tokio::task::JoinHandle<()>)>,
}

impl HardwareHandle {
    /// Stops every device task and waits (briefly) for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for (name, task) in self.tasks {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!(device = %name, "a device task did not stop in time; abandoned");
            }
        }
    }
}

/// Starts a task for every configured device. Must be called inside the
/// daemon's runtime.
pub fn start(station: &Station) -> HardwareHandle {
    let (stop, stop_rx) = watch::channel(false);
    let hw = station.config().hardware.clone();
    let mut tasks = Vec::new();
    for s in hw.scanners {
        station.devices().register(
            &s.name,
            "scanner",
            s.path.display().to_string(),
            DeviceState::Starting,
        );
        let name = s.name.clone();
        let task = tokio::spawn(scanner::run(station.clone(), s, stop_rx.clone()));
        tasks.push((name, task));
    }
    // With a label printer, labels go there and everything else to the
    // receipt printer; without one, the receipt printer takes all.
    let labels_apart = hw.label_printer.is_some();
    let printers = [
        (
            hw.printer,
            printer::Device {
                name: printer::NAME,
                takes: if labels_apart {
                    Takes::AllButLabels
                } else {
                    Takes::All
                },
            },
        ),
        (
            hw.label_printer,
            printer::Device {
                name: printer::LABEL_NAME,
                takes: Takes::LabelsOnly,
            },
        ),
    ];
    for (cfg, device) in printers {
        let Some(p) = cfg else { continue };
        station.devices().register(
            device.name,
            "printer",
            printer::describe(&p.link),
            DeviceState::Starting,
        );
        let task = tokio::spawn(printer::run(station.clone(), device, p, stop_rx.clone()));
        tasks.push((device.name.to_owned(), task));
    }
    if let Some(c) = hw.camera {
        station.devices().register(
            camera::NAME,
            "camera",
            c.device.display().to_string(),
            DeviceState::Starting,
        );
        let task = tokio::spawn(camera::run(station.clone(), c, stop_rx.clone()));
        tasks.push((camera::NAME.to_owned(), task));
    }
    if let Some(c) = hw.scale {
        station.devices().register(
            scale::NAME,
            "scale",
            c.path.display().to_string(),
            DeviceState::Starting,
        );
        let task = tokio::spawn(scale::run(station.clone(), c, stop_rx.clone()));
        tasks.push((scale::NAME.to_owned(), task));
    }
    HardwareHandle { stop, tasks }
}

/// Registers a device file with the runtime for non-blocking reads and
/// writes.
pub(crate) fn async_fd(
    file: std::fs::File,
) -> std::io::Result<tokio::io::unix::AsyncFd<std::fs::File>> {
    // SAFETY: a `File` owns its descriptor: it is open and refers to the
    // same file description until the `File` is dropped, which happens only
    // when the `AsyncFd` that owns it is dropped.
    #[allow(unsafe_code)]
    unsafe { tokio::io::unix::AsyncFd::register(file) }
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Resolves once `stop` is set.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here.
    let _ = stop.wait_for(|s| *s).await;
}

/// Waits for `d`, or until `stop`; true when stopped.
pub(crate) async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        () = stopped(stop) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_change_once_and_scans_are_kept_briefly() {
        let d = Devices::default();
        d.register("counter", "scanner", "/dev/x".into(), DeviceState::Missing);
        assert!(!d.set("counter", DeviceState::Missing, Some("gone".into())));
        assert!(d.set("counter", DeviceState::Ok, None));
        assert!(!d.set("nobody", DeviceState::Ok, None));
        assert_eq!(d.snapshot()["counter"].state, DeviceState::Ok);
        for i in 0..RECENT_SCANS + 1 {
            d.remember(DeviceScan {
                scan_id: format!("s{i}"),
                device: "counter".into(),
                channel: Channel::Clerk,
                code_type: CodeType::Waybill,
                waybill_no: None,
                carrier: None,
                gtin: None,
                answer: None,
                at: String::new(),
            });
        }
        assert!(d.scan("s0").is_none(), "the oldest went");
        assert!(d.scan(&format!("s{RECENT_SCANS}")).is_some());
    }
}
