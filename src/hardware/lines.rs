//! Turning a scanner's byte stream into scans: line framing with a length
//! cap and a timeout for half lines, what counts as a code, and the re-read
//! rule.

use std::time::{Duration, Instant};

/// The longest scan (SPEC §4: longer inputs are malformed anyway).
pub const MAX_LINE: usize = 2048;

/// A half line older than this is a broken read, not the start of a scan:
/// scanners send a whole code in one burst.
pub const PARTIAL_TIMEOUT: Duration = Duration::from_secs(1);

/// The same code from the same scanner within this long is one scan
/// (continuous-mode scanners re-read a code while it stays in view).
pub const REREAD_WINDOW: Duration = Duration::from_secs(2);

/// What a scanner's bytes amounted to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A code to decide.
    Code(String),
    /// More than [`MAX_LINE`] bytes without a line end; dropped.
    TooLong(usize),
    /// A line that is not text (binary noise, a misconfigured baud rate).
    NotText(usize),
}

/// Splits bytes at CR, LF or CRLF (an empty line between CR and LF, or a
/// blank line, is no scan).
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    /// Bytes dropped from the line being read once it passed the cap.
    overflow: usize,
    started: Option<Instant>,
}

impl Framer {
    /// Feeds bytes; returns the lines they completed, and a too-long line
    /// as soon as it passes the cap (once per line).
    pub fn push(&mut self, bytes: &[u8], now: Instant) -> Vec<Line> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\r' || b == b'\n' {
                if let Some(line) = self.end() {
                    out.push(line);
                }
                continue;
            }
            if self.started.is_none() {
                self.started = Some(now);
            }
            if self.overflow > 0 {
                self.overflow += 1;
            } else if self.buf.len() == MAX_LINE {
                self.overflow = self.buf.len() + 1;
                self.buf.clear();
                out.push(Line::TooLong(self.overflow));
            } else {
                self.buf.push(b);
            }
        }
        out
    }

    /// Drops a half line that has waited longer than [`PARTIAL_TIMEOUT`];
    /// returns how many bytes it held.
    pub fn expire(&mut self, now: Instant) -> Option<usize> {
        let started = self.started?;
        if now.duration_since(started) < PARTIAL_TIMEOUT {
            return None;
        }
        let n = self.buf.len() + self.overflow;
        self.reset();
        Some(n)
    }

    /// When the half line being read expires, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.started.map(|t| t + PARTIAL_TIMEOUT)
    }

    fn end(&mut self) -> Option<Line> {
        let line = if self.overflow > 0 {
            // Already reported when it passed the cap.
            None
        } else if self.buf.is_empty() {
            None
        } else {
            Some(classify(&self.buf))
        };
        self.reset();
        line
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.overflow = 0;
        self.started = None;
    }
}

/// A code is printable text; anything with control characters or invalid
/// UTF-8 is noise.
fn classify(bytes: &[u8]) -> Line {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => match s.trim() {
            "" => Line::NotText(bytes.len()),
            code => Line::Code(code.to_owned()),
        },
        _ => Line::NotText(bytes.len()),
    }
}

/// The re-read rule: a code seen again within [`REREAD_WINDOW`] of its last
/// sighting is the same scan (the window slides while it stays in view).
#[derive(Debug, Default)]
pub struct Rereads {
    last: Option<(String, Instant)>,
}

impl Rereads {
    /// Whether `code` is a new scan.
    pub fn is_new(&mut self, code: &str, now: Instant) -> bool {
        let repeat = self
            .last
            .as_ref()
            .is_some_and(|(c, at)| c == code && now.duration_since(*at) < REREAD_WINDOW);
        self.last = Some((code.to_owned(), now));
        !repeat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> Line {
        Line::Code(s.to_owned())
    }

    #[test]
    fn cr_lf_and_crlf_each_end_one_scan() {
        let now = Instant::now();
        let mut f = Framer::default();
        let cases: [(&[u8], Vec<Line>); 5] = [
            (b"RT-1\r", vec![code("RT-1")]),
            (b"RT-2\n", vec![code("RT-2")]),
            (b"RT-3\r\n", vec![code("RT-3")]),
            (b"RT-4\r\nRT-5\n\n\r", vec![code("RT-4"), code("RT-5")]),
            (b"RT-", vec![]),
        ];
        for (bytes, want) in cases {
            assert_eq!(f.push(bytes, now), want, "{bytes:?}");
        }
        // The half line completes with the next bytes.
        assert_eq!(f.push(b"6\r", now), vec![code("RT-6")]);
    }

    #[test]
    fn a_line_past_the_cap_is_reported_once_and_never_scanned() {
        let now = Instant::now();
        let mut f = Framer::default();
        let long = vec![b'A'; 3 * 1024];
        assert_eq!(f.push(&long, now), vec![Line::TooLong(MAX_LINE + 1)]);
        assert_eq!(f.push(&long, now), vec![], "reported once");
        assert_eq!(f.push(b"\r", now), vec![], "its end is no scan");
        assert_eq!(f.push(b"RT-7\r", now), vec![code("RT-7")]);
    }

    #[test]
    fn binary_noise_is_not_a_code() {
        let now = Instant::now();
        let mut f = Framer::default();
        assert_eq!(
            f.push(b"\x00\x01\xff\xfe\x1b[2J\r", now),
            vec![Line::NotText(8)]
        );
        assert_eq!(f.push(b"   \r", now), vec![Line::NotText(3)]);
        assert_eq!(
            f.push(b"\xe9\xa9\xbf\xe7\xab\x99\r", now),
            vec![code("驿站")]
        );
    }

    #[test]
    fn a_half_line_expires() {
        let t0 = Instant::now();
        let mut f = Framer::default();
        assert!(f.push(b"RT-8", t0).is_empty());
        assert_eq!(f.expire(t0 + Duration::from_millis(100)), None);
        assert_eq!(f.deadline(), Some(t0 + PARTIAL_TIMEOUT));
        assert_eq!(f.expire(t0 + PARTIAL_TIMEOUT), Some(4));
        assert_eq!(f.push(b"9\r", t0 + PARTIAL_TIMEOUT), vec![code("9")]);
    }

    #[test]
    fn rereads_within_two_seconds_are_one_scan() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut r = Rereads::default();
        assert!(r.is_new("A", t0));
        assert!(!r.is_new("A", t0 + ms(500)));
        // Still in view: the window slides.
        assert!(!r.is_new("A", t0 + ms(2300)));
        assert!(r.is_new("B", t0 + ms(2400)));
        assert!(r.is_new("A", t0 + ms(2500)), "another code came between");
        assert!(
            r.is_new("A", t0 + ms(5000)),
            "out of view for more than 2 s"
        );
    }
}
