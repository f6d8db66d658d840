//! Log output via `tracing`: human-readable (coloured on a terminal) or one
//! JSON object per line. Nothing secret is ever a field.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// How many of the last log lines are kept in memory for
/// `diagnostics.upload` (docs/PROTOCOL.md §2.3).
pub const RECENT_LINES: usize = 200;

static RECENT: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

/// The last [`RECENT_LINES`] log lines, oldest first (without colours).
pub fn recent() -> Vec<String> {
    RECENT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect()
}

fn remember(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let mut recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
    for line in text.lines().filter(|l| !l.is_empty()) {
        if recent.len() == RECENT_LINES {
            recent.pop_front();
        }
        recent.push_back(line.to_owned());
    }
}

/// Writes each log record to stderr and keeps a copy in [`recent`].
struct Tee;

/// One record: buffered, then written out and remembered whole.
struct TeeRecord(Vec<u8>);

impl Write for TeeRecord {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for TeeRecord {
    fn drop(&mut self) {
        let _ = std::io::stderr().write_all(&self.0);
        remember(&self.0);
    }
}

impl<'a> MakeWriter<'a> for Tee {
    type Writer = TeeRecord;

    fn make_writer(&'a self) -> Self::Writer {
        TeeRecord(Vec::with_capacity(256))
    }
}

/// Installs the global subscriber; later calls are no-ops.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Tee);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_only() {
        for i in 0..RECENT_LINES + 5 {
            drop(TeeRecord(format!("line {i}\n").into_bytes()));
        }
        let recent = recent();
        assert_eq!(recent.len(), RECENT_LINES);
        assert_eq!(
            recent.last().map(String::as_str),
            Some(&*format!("line {}", RECENT_LINES + 4))
        );
    }
}
