//! The counter scale (`[hardware.scale]`, SPEC §2.5): a serial scale that
//! sends its reading as lines, the common "ST,GS,+000.850kg" style (status
//! `ST` stable / `US` unstable, `GS` gross / `NT` net, signed weight and
//! unit). The latest stable reading is kept for an acceptance without a
//! typed weight, and shown on the clerk screen.

use std::fs::File;
use std::io::Read;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use super::lines::{Framer, Line};
use super::{DeviceState, POLL, pause, report};
use crate::config::ScaleConfig;
use crate::station::{Notice, Station};

/// The scale's name in `/healthz`, metrics and the screen.
pub const NAME: &str = "scale";

/// How long a stable reading stands for the parcel on the scale: a
/// reading older than this is not used (the parcel may be gone).
pub const FRESH: Duration = Duration::from_secs(10);

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub grams: i64,
    pub stable: bool,
}

/// Parses one line of the scale: `ST,GS,+000.850kg`, `US,NT,-0.010 kg`,
/// `ST,GS,+  850 g`… `None` for anything else (a status line, noise).
pub fn parse(line: &str) -> Option<Reading> {
    let mut fields = line.trim().split(',').map(str::trim);
    let status = fields.next()?;
    let stable = match status.to_ascii_uppercase().as_str() {
        "ST" => true,
        "US" => false,
        _ => return None,
    };
    // Gross or net: either is the parcel's weight (a tare was set by hand).
    let _kind = fields.next()?;
    let value: String = fields.next()?.chars().filter(|c| *c != ' ').collect();
    if fields.next().is_some() {
        return None;
    }
    let lower = value.to_ascii_lowercase();
    let (number, factor) = if let Some(n) = lower.strip_suffix("kg") {
        (n, 1000.0)
    } else if let Some(n) = lower.strip_suffix('g') {
        (n, 1.0)
    } else {
        return None;
    };
    if number.is_empty()
        || !number
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'+' | b'-'))
    {
        return None;
    }
    let x: f64 = number.parse().ok()?;
    if !x.is_finite() {
        return None;
    }
    Some(Reading {
        grams: (x * factor).round() as i64,
        stable,
    })
}

/// Reads the scale until `stop`, re-opening it whenever it returns.
pub(super) async fn run(station: Station, cfg: ScaleConfig, mut stop: watch::Receiver<bool>) {
    loop {
        match super::scanner::open_serial(&cfg.path, cfg.baud) {
            Ok(fd) => {
                report(&station, NAME, DeviceState::Ok, None);
                match read(&station, fd, &mut stop).await {
                    None => return,
                    Some(why) => {
                        report(&station, NAME, DeviceState::Missing, Some(why));
                    }
                }
            }
            Err(e) => {
                let state = if e.kind() == std::io::ErrorKind::NotFound {
                    DeviceState::Missing
                } else {
                    DeviceState::Error
                };
                let detail = format!("{}: {e}", cfg.path.display());
                report(&station, NAME, state, Some(detail));
            }
        }
        if pause(POLL, &mut stop).await {
            return;
        }
    }
}

/// Reads lines until the scale goes away (`Some(why)`) or `stop` (`None`).
async fn read(
    station: &Station,
    fd: AsyncFd<File>,
    stop: &mut watch::Receiver<bool>,
) -> Option<String> {
    let mut framer = Framer::default();
    let mut buf = [0u8; 1024];
    let mut last: Option<Reading> = None;
    loop {
        tokio::select! {
            ready = fd.readable() => {
                let mut guard = match ready {
                    Ok(g) => g,
                    Err(e) => return Some(e.to_string()),
                };
                let n = match guard.try_io(|f| f.get_ref().read(&mut buf)) {
                    Ok(Ok(0)) => return Some("the scale closed (unplugged)".into()),
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => return Some(format!("read failed: {e} (unplugged?)")),
                    Err(_would_block) => continue,
                };
                for line in framer.push(&buf[..n], Instant::now()) {
                    let Line::Code(text) = line else { continue };
                    let Some(reading) = parse(&text) else { continue };
                    station.devices().keep_weight(reading);
                    // Scales repeat their reading many times a second: the
                    // screen hears of changes only.
                    if last != Some(reading) {
                        last = Some(reading);
                        station.notify(Notice::Weight {
                            grams: reading.grams,
                            stable: reading.stable,
                        });
                    }
                }
            }
            () = super::stopped(stop) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_common_line_formats() {
        let cases = [
            ("ST,GS,+000.850kg", Some((850, true))),
            ("US,GS,+000.851kg", Some((851, false))),
            ("ST,NT,+0.010 kg", Some((10, true))),
            ("ST,GS,+  1250 g", Some((1250, true))),
            ("st,gs,-000.005kg\r", Some((-5, true))),
            ("OL,GS,+999.999kg", None),
            ("ST,GS,+000.850lb", None),
            ("ST,GS", None),
            ("ST,GS,kg", None),
            ("ST,GS,+1e9kg", None),
            ("hello", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line).map(|r| (r.grams, r.stable)), want, "{line:?}");
        }
    }
}
