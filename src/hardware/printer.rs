//! The receipt printer's task: prints queued jobs in order, each once, and
//! tells what the printer says about itself (`DLE EOT`).
//!
//! # One job
//! 1. Connect (TCP 9100, the device file, or the serial port).
//! 2. Ask its status: offline, cover open or out of paper leaves the job
//!    queued and the state on `/healthz` and the screen.
//! 3. Write the job's bytes, then ask the status again: the answer comes
//!    after the printer has read them. Only then is the job marked printed.
//!
//! A printer that does not answer status queries at all (some USB device
//! files cannot be read) still prints: its state reads "ok, status not
//! reported". Failures retry with backoff, up to [`RETRY_MAX`]; a check-in
//! never waits for any of this.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{DeviceState, pause, report};
use crate::backoff::Backoff;
use crate::checkin::CheckinError;
use crate::config::{PrinterConfig, PrinterLink};
use crate::counter::CounterError;
use crate::db::{DbError, Durability};
use crate::parcel::ParcelId;
use crate::print::escpos::status;
use crate::print::store::{self, Job, Takes};
use crate::print::{self as layout, JobKind, ReceiptLook};
use crate::station::Station;

/// The printer's name in `/healthz` and metrics.
pub const NAME: &str = "printer";
/// The label printer's (`[hardware.label_printer]`).
pub const LABEL_NAME: &str = "label_printer";

/// One printer: its name and the jobs it takes.
#[derive(Debug, Clone, Copy)]
pub struct Device {
    pub name: &'static str,
    pub takes: Takes,
}

/// How long connecting, and each status answer, may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long writing one job may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Retry delays after a failed try grow to this.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// With nothing to print, the printer's status is looked at this often so
/// that "out of paper" shows before the next receipt.
const IDLE_CHECK: Duration = Duration::from_secs(15);

/// Where the printer is, for `/healthz`.
pub fn describe(link: &PrinterLink) -> String {
    match link {
        PrinterLink::Tcp(addr) => format!("tcp://{addr}"),
        PrinterLink::Device(path) => path.display().to_string(),
        PrinterLink::Serial { path, baud } => format!("{} @ {baud}", path.display()),
    }
}

/// Why a try did not print.
#[derive(Debug)]
struct Fault {
    state: DeviceState,
    detail: String,
}

impl Fault {
    fn offline(detail: impl Into<String>) -> Fault {
        Fault {
            state: DeviceState::Offline,
            detail: detail.into(),
        }
    }
}

/// Prints `device`'s queued jobs until `stop`.
pub(super) async fn run(
    station: Station,
    device: Device,
    cfg: PrinterConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut committed = station.watch_events();
    let mut backoff = Backoff::new(Duration::from_millis(500), RETRY_MAX);
    let takes = device.takes;
    // A reprint wakes the receipt printer; the label printer hears of its
    // jobs when they commit.
    let woken = || async {
        if takes == Takes::LabelsOnly {
            std::future::pending::<()>().await;
        }
        station.devices().printer_woken().await;
    };
    loop {
        let next = station
            .db()
            .read(move |c| Ok::<_, DbError>((store::next(c, takes)?, store::queued(c, takes)?)))
            .await;
        let job = match next {
            Ok((job, queued)) => {
                station
                    .devices()
                    .set_queued(device.name, u64::try_from(queued).unwrap_or(0));
                job
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the print queue; will retry");
                if pause(backoff.next_delay(), &mut stop).await {
                    return;
                }
                continue;
            }
        };
        let Some(job) = job else {
            // Idle: keep the printer's state fresh, wait for work.
            let checked = check_only(&cfg.link).await;
            show(&station, device.name, checked);
            tokio::select! {
                _ = committed.changed() => {}
                () = woken() => {}
                () = tokio::time::sleep(IDLE_CHECK) => {}
                () = super::stopped(&mut stop) => return,
            }
            continue;
        };
        let delay = match print_job(&station, device.name, &cfg, &job).await {
            Ok(()) => {
                backoff.reset();
                continue;
            }
            Err(()) => backoff.next_delay(),
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = woken() => {}
            () = super::stopped(&mut stop) => return,
        }
    }
}

/// Renders and prints one job and records the outcome; `Err` when it is
/// to be tried again later.
async fn print_job(
    station: &Station,
    name: &'static str,
    cfg: &PrinterConfig,
    job: &Job,
) -> Result<(), ()> {
    let bytes = match render(station, cfg, job).await {
        Ok(b) => b,
        Err(Render::Gone(why)) => {
            tracing::error!(job = job.id, kind = job.kind.as_str(), ref_id = %job.ref_id, reason = %why, "a print job can never print; skipped");
            let id = job.id;
            let _ = station
                .db()
                .write(Durability::Full, move |tx| store::mark_failed(tx, id, &why))
                .await;
            return Ok(());
        }
        Err(Render::Later(why)) => {
            tracing::warn!(job = job.id, error = %why, "cannot prepare a print job; will retry");
            return Err(());
        }
    };
    let id = job.id;
    match send(&cfg.link, &bytes).await {
        Ok(note) => {
            let marked = station
                .db()
                .write(Durability::Full, move |tx| store::mark_printed(tx, id))
                .await;
            if let Err(e) = marked {
                // Printed but not recorded: it prints again rather than never.
                tracing::error!(job = id, error = %e, "printed, but could not record it; it may print twice");
                return Err(());
            }
            tracing::info!(job = id, kind = job.kind.as_str(), ref_id = %job.ref_id, bytes = bytes.len(), "printed");
            show(station, name, Ok(note));
            Ok(())
        }
        Err(fault) => {
            let text = fault.detail.clone();
            let _ = station
                .db()
                .write(Durability::Relaxed, move |tx| {
                    store::note_failure(tx, id, &text)
                })
                .await;
            show(station, name, Err(fault));
            Err(())
        }
    }
}

fn show(station: &Station, name: &str, outcome: Result<Option<String>, Fault>) {
    match outcome {
        Ok(note) => report(station, name, DeviceState::Ok, note),
        Err(f) => report(station, name, f.state, Some(f.detail)),
    };
}

/// Why a job's bytes could not be made.
enum Render {
    /// What it names is gone: it can never print.
    Gone(String),
    /// The database did not answer: try again.
    Later(String),
}

async fn render(station: &Station, cfg: &PrinterConfig, job: &Job) -> Result<Vec<u8>, Render> {
    let station_name = &station.config().station.name;
    match job.kind {
        JobKind::Receipt => {
            let id = ParcelId::parse(&job.ref_id)
                .ok_or_else(|| Render::Gone(format!("{:?} is not a parcel id", job.ref_id)))?;
            let parcel = station.parcel(&id).await.map_err(gone_or_later)?;
            let receipt = station.receipt(&parcel).map_err(gone_or_later)?;
            let look = ReceiptLook {
                station_name,
                token: &receipt.token,
            };
            Ok(layout::receipt(cfg, &parcel, &look))
        }
        JobKind::Label => {
            let id = ParcelId::parse(&job.ref_id)
                .ok_or_else(|| Render::Gone(format!("{:?} is not a parcel id", job.ref_id)))?;
            let parcel = station.parcel(&id).await.map_err(gone_or_later)?;
            let rn = parcel.return_no.clone();
            let entry = station
                .db()
                .read(move |c| crate::manifest::get(c, &rn))
                .await
                .map_err(|e| Render::Later(e.to_string()))?;
            let warehouse = entry.and_then(|e| e.rules.warehouse);
            Ok(layout::label(
                cfg,
                &parcel,
                station_name,
                warehouse.as_ref(),
            ))
        }
        JobKind::Handover => {
            let h = station
                .find_handover(job.ref_id.clone())
                .await
                .map_err(|e| match e {
                    CounterError::Db(_) | CounterError::Corrupt(_) => Render::Later(e.to_string()),
                    other => Render::Gone(other.to_string()),
                })?;
            Ok(layout::handover_slip(cfg, &h, station_name))
        }
    }
}

fn gone_or_later(e: CheckinError) -> Render {
    match e {
        CheckinError::Db(_) | CheckinError::Internal(_) => Render::Later(e.to_string()),
        other => Render::Gone(other.to_string()),
    }
}

/// Only the printer's status (when idle).
async fn check_only(link: &PrinterLink) -> Result<Option<String>, Fault> {
    let mut conn = Conn::open(link).await?;
    conn.check().await
}

/// One job's bytes to the printer; `Ok` with a note for the operator once
/// they are written (and, where the printer answers, read by it).
async fn send(link: &PrinterLink, bytes: &[u8]) -> Result<Option<String>, Fault> {
    let mut conn = Conn::open(link).await?;
    let note = conn.check().await?;
    tokio::time::timeout(WRITE_TIMEOUT, conn.write_all(bytes))
        .await
        .map_err(|_| Fault::offline("the printer stopped taking data"))?
        .map_err(|e| Fault::offline(format!("writing to the printer failed: {e}")))?;
    if note.is_none() {
        // It answered before: it must answer after our bytes as well.
        conn.ask(1)
            .await
            .map_err(|e| Fault::offline(format!("no answer after printing: {e}")))?;
    }
    conn.close().await;
    Ok(note)
}

/// A connection to the printer.
enum Conn {
    Tcp(TcpStream),
    File(AsyncFd<File>),
}

impl Conn {
    async fn open(link: &PrinterLink) -> Result<Conn, Fault> {
        match link {
            PrinterLink::Tcp(addr) => {
                match tokio::time::timeout(ANSWER_TIMEOUT, TcpStream::connect(addr.as_str())).await
                {
                    Ok(Ok(s)) => {
                        let _ = s.set_nodelay(true);
                        Ok(Conn::Tcp(s))
                    }
                    Ok(Err(e)) => Err(Fault::offline(format!(
                        "cannot reach {addr}: {e} (off, unplugged, or another address?)"
                    ))),
                    Err(_) => Err(Fault::offline(format!(
                        "{addr} did not answer (off or unreachable)"
                    ))),
                }
            }
            PrinterLink::Device(path) => open_file(path, None),
            PrinterLink::Serial { path, baud } => open_file(path, Some(*baud)),
        }
    }

    /// Asks the status; `Ok(None)` when all is well, `Ok(Some(note))` when
    /// it prints but something is worth saying, a fault when it cannot.
    async fn check(&mut self) -> Result<Option<String>, Fault> {
        let printer = match self.ask(1).await {
            Ok(b) => b,
            // Nothing to read on this link (a one-way USB device file):
            // print blind.
            Err(_) if matches!(self, Conn::File(_)) => {
                return Ok(Some("status not reported by the printer".into()));
            }
            Err(e) => return Err(Fault::offline(format!("no status answer: {e}"))),
        };
        if status::offline(printer) {
            let cause = self.ask(2).await.unwrap_or(0);
            return Err(if status::cover_open(cause) {
                Fault {
                    state: DeviceState::CoverOpen,
                    detail: "the printer's cover is open".into(),
                }
            } else if status::paper_end_stop(cause) {
                Fault {
                    state: DeviceState::PaperOut,
                    detail: "the printer is out of paper".into(),
                }
            } else {
                Fault::offline("the printer reports itself offline")
            });
        }
        let paper = self.ask(4).await.unwrap_or(0x12);
        if status::paper_end(paper) {
            return Err(Fault {
                state: DeviceState::PaperOut,
                detail: "the printer is out of paper".into(),
            });
        }
        Ok(status::paper_near_end(paper).then(|| "paper roll nearly empty".to_owned()))
    }

    /// One `DLE EOT n` and its answer byte.
    async fn ask(&mut self, n: u8) -> std::io::Result<u8> {
        self.write_all(&status::query(n)).await?;
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, self.read_byte())
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
        if status::valid(answer) {
            Ok(answer)
        } else {
            Err(std::io::Error::other(format!(
                "not a status byte: {answer:#04x}"
            )))
        }
    }

    async fn write_all(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => s.write_all(bytes).await,
            Conn::File(fd) => {
                while !bytes.is_empty() {
                    let mut ready = fd.writable().await?;
                    match ready.try_io(|f| f.get_ref().write(bytes)) {
                        Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                        Ok(Ok(n)) => bytes = &bytes[n..],
                        Ok(Err(e)) => return Err(e),
                        Err(_would_block) => {}
                    }
                }
                Ok(())
            }
        }
    }

    async fn read_byte(&mut self) -> std::io::Result<u8> {
        let mut b = [0u8; 1];
        match self {
            Conn::Tcp(s) => {
                s.read_exact(&mut b).await?;
            }
            Conn::File(fd) => loop {
                let mut ready = fd.readable().await?;
                match ready.try_io(|f| f.get_ref().read(&mut b)) {
                    Ok(Ok(0)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    Ok(Ok(_)) => break,
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => {}
                }
            },
        }
        Ok(b[0])
    }

    async fn close(self) {
        if let Conn::Tcp(mut s) = self {
            let _ = s.shutdown().await;
        }
    }
}

fn open_file(path: &std::path::Path, baud: Option<u32>) -> Result<Conn, Fault> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| Fault {
            state: if e.kind() == std::io::ErrorKind::NotFound {
                DeviceState::Missing
            } else {
                DeviceState::Error
            },
            detail: format!(
                "{}: {e} (unplugged? the daemon's user needs the lp or dialout group)",
                path.display()
            ),
        })?;
    if let Some(baud) = baud {
        super::scanner::configure_tty(&file, baud).map_err(|e| Fault {
            state: DeviceState::Error,
            detail: format!("{}: {e}", path.display()),
        })?;
    }
    super::async_fd(file).map(Conn::File).map_err(|e| Fault {
        state: DeviceState::Error,
        detail: format!("{}: {e}", path.display()),
    })
}

impl Station {
    /// Queues a reprint of a parcel's receipt (`POST
    /// /api/v1/parcels/{id}/receipt/print`); returns the job id.
    pub async fn reprint_receipt(&self, id: &ParcelId) -> Result<i64, CheckinError> {
        if self.config().hardware.printer.is_none() {
            return Err(CheckinError::refused(
                "no_printer",
                "no printer is configured ([hardware.printer])",
            ));
        }
        let parcel = self.parcel(id).await?;
        self.receipt(&parcel)?;
        let id = id.clone();
        let job = self
            .db()
            .write(Durability::Full, move |tx| {
                store::enqueue(tx, JobKind::Receipt, id.as_str()).map_err(CheckinError::from)
            })
            .await?;
        self.devices().wake_printer();
        Ok(job)
    }
}
