//! One barcode scanner: open it (a tty at its baud rate, or an evdev node
//! grabbed), read scans until it goes away, and look for it again every
//! [`POLL`] until it is back.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Instant;

use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use super::evdev::{self, Keyboard};
use super::lines::{Framer, Line, Rereads};
use super::{CodeType, DeviceScan, DeviceState, POLL, pause, report};
use crate::config::{ScannerConfig, ScannerKind};
use crate::parcel::Channel;
use crate::station::{Notice, Station};

/// Why a scanner stopped being read.
enum Ended {
    Stopped,
    Gone(String),
}

/// Reads `cfg`'s scanner until `stop`, re-opening it whenever it returns.
pub(super) async fn run(station: Station, cfg: ScannerConfig, mut stop: watch::Receiver<bool>) {
    loop {
        match open(&cfg) {
            Ok((fd, note)) => {
                report(&station, &cfg.name, DeviceState::Ok, note);
                match read(&station, &cfg, fd, &mut stop).await {
                    Ended::Stopped => return,
                    Ended::Gone(why) => {
                        report(&station, &cfg.name, DeviceState::Missing, Some(why));
                    }
                }
            }
            Err(e) => {
                let state = if e.kind() == std::io::ErrorKind::NotFound {
                    DeviceState::Missing
                } else {
                    DeviceState::Error
                };
                report(&station, &cfg.name, state, Some(open_error(&cfg, &e)));
            }
        }
        if pause(POLL, &mut stop).await {
            return;
        }
    }
}

fn open_error(cfg: &ScannerConfig, e: &std::io::Error) -> String {
    let hint = match e.kind() {
        std::io::ErrorKind::NotFound => "not plugged in, or a wrong path",
        std::io::ErrorKind::PermissionDenied => {
            "no permission: the daemon's user needs the group of the device (dialout for serial, input for evdev)"
        }
        _ => "cannot be used",
    };
    format!("{}: {e} ({hint})", cfg.path.display())
}

/// Opens the device for non-blocking reads. Returns a note for the
/// operator when it works in a reduced way (an evdev path that cannot be
/// grabbed because it is not an input device, such as a recording).
fn open(cfg: &ScannerConfig) -> std::io::Result<(AsyncFd<File>, Option<String>)> {
    if cfg.kind == ScannerKind::Serial {
        return Ok((open_serial(&cfg.path, cfg.baud)?, None));
    }
    let file = open_device(&cfg.path)?;
    let note = match cfg.kind {
        ScannerKind::Serial => None,
        ScannerKind::Evdev => {
            use std::os::unix::fs::FileTypeExt;
            if !file.metadata()?.file_type().is_char_device() {
                // A recording (a FIFO or file), as the tests feed it: there
                // is nothing to grab.
                Some("not an input device: read as a recording, not grabbed".to_owned())
            } else {
                match evdev::grab(&file) {
                    Ok(()) => None,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        return Err(std::io::Error::other(
                            "another program has grabbed this scanner",
                        ));
                    }
                    Err(e) => {
                        return Err(std::io::Error::other(format!(
                            "cannot grab the scanner (EVIOCGRAB): {e}; is this an input event device?"
                        )));
                    }
                }
            }
        }
    };
    Ok((super::async_fd(file)?, note))
}

/// A device file opened for non-blocking reads (never as our terminal).
fn open_device(path: &std::path::Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// A serial device (a scanner, the scale) raw at `baud`, registered for
/// non-blocking reads.
pub(super) fn open_serial(path: &std::path::Path, baud: u32) -> std::io::Result<AsyncFd<File>> {
    let file = open_device(path)?;
    configure_tty(&file, baud)?;
    super::async_fd(file)
}

/// Raw mode at `baud`: bytes as they come, no echo, no line editing.
///
/// Through the C library's `tcgetattr`/`tcsetattr` (the `TCGETS` ioctls)
/// rather than rustix's, which uses `TCGETS2`: qemu-user, where CI runs the
/// ARM builds, answers that one with `ENOSYS`.
pub(super) fn configure_tty(file: &File, baud: u32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let speed = match baud {
        1200 => libc::B1200,
        2400 => libc::B2400,
        4800 => libc::B4800,
        9600 => libc::B9600,
        19_200 => libc::B19200,
        38_400 => libc::B38400,
        57_600 => libc::B57600,
        115_200 => libc::B115200,
        230_400 => libc::B230400,
        460_800 => libc::B460800,
        500_000 => libc::B500000,
        576_000 => libc::B576000,
        921_600 => libc::B921600,
        1_000_000 => libc::B1000000,
        // Config validation allows only the rates above.
        other => {
            return Err(std::io::Error::other(format!(
                "unsupported baud rate {other}"
            )));
        }
    };
    let fd = file.as_raw_fd();
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            let e = std::io::Error::last_os_error();
            Err(if e.raw_os_error() == Some(libc::ENOTTY) {
                std::io::Error::other("not a serial port (kind = \"serial\" needs a tty)")
            } else {
                e
            })
        }
    };
    // SAFETY: `termios` is plain data that `tcgetattr` fills in whole
    // before it is read; `fd` is open for the duration (borrowed from
    // `file`), and these calls touch no other memory.
    #[allow(unsafe_code)]
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        check(libc::tcgetattr(fd, &mut t))?;
        libc::cfmakeraw(&mut t);
        check(libc::cfsetispeed(&mut t, speed))?;
        check(libc::cfsetospeed(&mut t, speed))?;
        t.c_cc[libc::VMIN] = 1;
        t.c_cc[libc::VTIME] = 0;
        check(libc::tcsetattr(fd, libc::TCSANOW, &t))
    }
}

/// Reads scans until the device goes away or `stop`.
async fn read(
    station: &Station,
    cfg: &ScannerConfig,
    fd: AsyncFd<File>,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let mut framer = Framer::default();
    let mut rereads = Rereads::default();
    let mut keyboard = Keyboard::default();
    let mut buf = [0u8; 4096];
    loop {
        let expiry = framer.deadline();
        let expired = async {
            match expiry {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ready = fd.readable() => {
                let mut guard = match ready {
                    Ok(g) => g,
                    Err(e) => return Ended::Gone(e.to_string()),
                };
                let n = match guard.try_io(|f| f.get_ref().read(&mut buf)) {
                    Ok(Ok(0)) => return Ended::Gone("the device closed (unplugged)".into()),
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => return Ended::Gone(format!("read failed: {e} (unplugged?)")),
                    Err(_would_block) => continue,
                };
                let text = match cfg.kind {
                    ScannerKind::Serial => buf[..n].to_vec(),
                    ScannerKind::Evdev => keyboard.feed(&buf[..n]),
                };
                for line in framer.push(&text, Instant::now()) {
                    handle(station, cfg, line, &mut rereads).await;
                }
            }
            () = expired => {
                if let Some(bytes) = framer.expire(Instant::now()) {
                    tracing::warn!(device = %cfg.name, bytes, "a scan without a line end was discarded (check the scanner's suffix: CR or LF)");
                }
            }
            () = super::stopped(stop) => return Ended::Stopped,
        }
    }
}

async fn handle(station: &Station, cfg: &ScannerConfig, line: Line, rereads: &mut Rereads) {
    match line {
        Line::Code(code) => {
            if rereads.is_new(&code, Instant::now()) {
                dispatch(station, &cfg.name, cfg.channel, code).await;
            }
        }
        Line::TooLong(bytes) => tracing::warn!(
            device = %cfg.name,
            bytes,
            max = super::lines::MAX_LINE,
            "the scanner sent more than the longest code without a line end; discarded, not scanned"
        ),
        Line::NotText(bytes) => tracing::warn!(
            device = %cfg.name,
            bytes,
            "the scanner sent a line that is not text (noise, or a wrong baud rate); ignored"
        ),
    }
}

/// Decides one code from a scanner, keeps the answer, then tells the
/// screen (which fetches it: the stream carries no return details). On a
/// clerk scanner a courier waybill is not a return code: it goes to the
/// screen as a waybill for whatever the clerk is doing.
pub(super) async fn dispatch(station: &Station, device: &str, channel: Channel, code: String) {
    let (waybill, item) = match channel {
        Channel::Clerk => match station.waybill_scanned(&code).await {
            Some(w) => (Some(w), None),
            None => (None, station.item_scanned(&code).await),
        },
        Channel::SelfService => (None, None),
    };
    let mut scan = DeviceScan {
        scan_id: ulid::Ulid::new().to_string(),
        device: device.to_owned(),
        channel,
        code_type: CodeType::Waybill,
        waybill_no: None,
        carrier: None,
        gtin: None,
        answer: None,
        at: crate::clock::now_string(),
    };
    match (waybill, item) {
        (Some((waybill_no, carrier)), _) => {
            scan.waybill_no = Some(waybill_no);
            scan.carrier = carrier;
        }
        (None, Some(gtin)) => {
            scan.code_type = CodeType::Item;
            scan.gtin = Some(gtin);
        }
        (None, None) => match station.decide_scan(code.into_bytes(), channel).await {
            Ok(answer) => {
                scan.code_type = CodeType::Return;
                scan.answer = Some(answer);
            }
            Err(e) => {
                tracing::warn!(device, error = %e, "a scan could not be decided");
                return;
            }
        },
    }
    station.metrics().device_scan(device);
    tracing::info!(device, scan_id = %scan.scan_id, code_type = ?scan.code_type, "scan from a device");
    let notice = Notice::DeviceScan {
        scan_id: scan.scan_id.clone(),
        device: scan.device.clone(),
        channel: scan.channel,
        code_type: scan.code_type,
        decision: scan.answer.as_ref().map(|a| a.decision),
        reason: scan.answer.as_ref().and_then(|a| a.reason),
    };
    station.devices().remember(scan);
    station.notify(notice);
}
