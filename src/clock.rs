//! Wall-clock time for events, and whether to trust it.
//!
//! Kiosks without a battery-backed clock can boot offline with a wrong time.
//! An event's `occurred_at` is still the kiosk's best knowledge of when it
//! happened at the counter, but the envelope then says `clock_trusted:false`
//! (SPEC §5): when the kernel reports the clock unsynchronised, or when the
//! clock reads earlier than the last committed event (checked by the outbox).

use std::sync::OnceLock;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// A lab and test hook: `YIZHAN_CLOCK_OFFSET_S=<seconds>` shifts every time
/// the daemon reads by that much (negative: the past), to see how it
/// behaves on a kiosk that booted with a wrong clock, or months later,
/// without touching the machine's clock. Unset on kiosks.
pub const OFFSET_VAR: &str = "YIZHAN_CLOCK_OFFSET_S";

fn offset() -> chrono::Duration {
    static OFFSET: OnceLock<chrono::Duration> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        std::env::var(OFFSET_VAR)
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .and_then(chrono::Duration::try_seconds)
            .unwrap_or_default()
    })
}

/// The time, as the daemon knows it (the system clock, plus the
/// [`OFFSET_VAR`] hook when set).
pub fn now() -> DateTime<Utc> {
    Utc::now() + offset()
}

/// Whether the clock can be trusted, and if not why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trust {
    pub trusted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Trust {
    /// Judges `now` against the OS (`synced`) and the last committed
    /// event's time.
    pub fn judge(now: DateTime<Utc>, synced: bool, last_event_at: Option<&str>) -> Trust {
        let now_text = format(now);
        let behind = last_event_at.filter(|last| now_text.as_str() < *last);
        let reason = match (synced, behind) {
            (false, _) => Some(
                "the OS reports the clock as not synchronised (no NTP yet?): events are marked clock_trusted:false"
                    .to_owned(),
            ),
            (true, Some(last)) => Some(format!(
                "the clock reads {now_text}, earlier than the last event ({last}): events are marked clock_trusted:false"
            )),
            (true, None) => None,
        };
        Trust {
            trusted: reason.is_none(),
            reason,
        }
    }
}

/// How the kiosk decides whether its clock is synchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockCheck {
    /// Ask the kernel (`adjtimex`): NTP/timesyncd clears `STA_UNSYNC`.
    Kernel,
    /// Assume the clock is synchronised (lab machines, tests).
    Off,
}

/// The event clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    check: ClockCheck,
}

impl Clock {
    pub fn new(check: ClockCheck) -> Clock {
        Clock { check }
    }

    /// Now, and whether the OS vouches for it.
    pub fn now(&self) -> (DateTime<Utc>, bool) {
        let synced = match self.check {
            ClockCheck::Kernel => kernel_clock_synchronised(),
            ClockCheck::Off => true,
        };
        (now(), synced)
    }
}

/// Formats a timestamp the way every record and envelope carries it:
/// RFC 3339, UTC, milliseconds, `Z` (fixed width, so it also sorts as text).
pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Now, formatted with [`format`].
pub fn now_string() -> String {
    format(now())
}

/// Parses a timestamp written by [`format`] (or any RFC 3339 time).
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Asks the kernel whether the system clock is synchronised.
///
/// `adjtimex` with `modes == 0` only reads the kernel's NTP state; it returns
/// `TIME_ERROR` while `STA_UNSYNC` is set, which is exactly what
/// `timedatectl`'s "System clock synchronized" reports.
#[allow(unsafe_code)]
fn kernel_clock_synchronised() -> bool {
    // SAFETY: `timex` is plain old data for which all-zero bytes are a valid
    // value (modes = 0 asks for a read only).
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer handed to adjtimex is to a live, exclusively
    // borrowed local of the type it expects.
    let state = unsafe { libc::adjtimex(&mut tx) };
    state >= 0 && state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_fixed_width_millis_utc() {
        let t = parse("2026-11-22T10:00:00.1+08:00").unwrap();
        assert_eq!(format(t), "2026-11-22T02:00:00.100Z");
    }

    #[test]
    fn trust_names_why_not() {
        let t = parse("2026-11-22T10:00:00Z").unwrap();
        assert!(Trust::judge(t, true, Some("2026-11-22T09:00:00.000Z")).trusted);
        let unsynced = Trust::judge(t, false, None);
        assert!(!unsynced.trusted && unsynced.reason.unwrap().contains("not synchronised"));
        let behind = Trust::judge(t, true, Some("2026-11-23T00:00:00.000Z"));
        assert!(
            behind
                .reason
                .unwrap()
                .contains("earlier than the last event")
        );
    }

    #[test]
    fn off_always_trusts() {
        assert!(Clock::new(ClockCheck::Off).now().1);
    }

    #[test]
    fn kernel_check_answers_consistently() {
        // The value depends on the host's NTP state; the call must answer the
        // same twice in a row rather than fail.
        assert_eq!(kernel_clock_synchronised(), kernel_clock_synchronised());
    }
}
