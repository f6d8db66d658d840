//! USB HID scanners in keyboard mode, read from their evdev node: the
//! kernel's `input_event` records turned into text as a US keyboard types
//! it (the scanners' default layout), Enter ending a scan.
//!
//! The device is grabbed (`EVIOCGRAB`) so that its key presses reach this
//! daemon only, not whatever window has the focus. The grab ends when the
//! file is closed.

use std::os::fd::AsFd;

/// `EV_KEY`: a key changed state.
const EV_KEY: u16 = 1;
const KEY_LEFTSHIFT: u16 = 42;
const KEY_RIGHTSHIFT: u16 = 54;
const KEY_CAPSLOCK: u16 = 58;
const KEY_ENTER: u16 = 28;
const KEY_KPENTER: u16 = 96;

/// The size of one `struct input_event` as this platform's kernel writes it
/// (24 bytes on 64-bit, 16 on 32-bit ARM with a 32-bit `time_t`).
pub const EVENT_SIZE: usize = std::mem::size_of::<libc::input_event>();

/// One decoded record: type, code, value (the timestamp is not needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputEvent {
    pub kind: u16,
    pub code: u16,
    pub value: i32,
}

impl InputEvent {
    /// Reads the record at the start of `raw` (`EVENT_SIZE` bytes); the
    /// type, code and value are its last eight bytes, in native order.
    pub fn parse(raw: &[u8]) -> Option<InputEvent> {
        let tail = raw.get(EVENT_SIZE.checked_sub(8)?..EVENT_SIZE)?;
        Some(InputEvent {
            kind: u16::from_ne_bytes([tail[0], tail[1]]),
            code: u16::from_ne_bytes([tail[2], tail[3]]),
            value: i32::from_ne_bytes([tail[4], tail[5], tail[6], tail[7]]),
        })
    }

    /// The record as the kernel writes it (zero timestamp); for tests and
    /// recordings.
    pub fn to_bytes(self) -> Vec<u8> {
        let mut raw = vec![0u8; EVENT_SIZE];
        let tail = &mut raw[EVENT_SIZE - 8..];
        tail[0..2].copy_from_slice(&self.kind.to_ne_bytes());
        tail[2..4].copy_from_slice(&self.code.to_ne_bytes());
        tail[4..8].copy_from_slice(&self.value.to_ne_bytes());
        raw
    }
}

/// Key presses to text, with shift and caps lock. Produces the bytes a
/// serial scanner would send (Enter becomes `\r`), so both kinds share one
/// framer.
#[derive(Debug, Default)]
pub struct Keyboard {
    left_shift: bool,
    right_shift: bool,
    caps: bool,
    /// Bytes from records split across reads.
    pending: Vec<u8>,
}

impl Keyboard {
    /// Feeds raw bytes read from the device; returns the text they typed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(bytes);
        let whole = self.pending.len() / EVENT_SIZE * EVENT_SIZE;
        let events: Vec<InputEvent> = self
            .pending
            .drain(..whole)
            .collect::<Vec<u8>>()
            .chunks_exact(EVENT_SIZE)
            .filter_map(InputEvent::parse)
            .collect();
        events.into_iter().filter_map(|ev| self.event(ev)).collect()
    }

    /// One event: the byte it types, if any.
    pub fn event(&mut self, ev: InputEvent) -> Option<u8> {
        if ev.kind != EV_KEY {
            return None;
        }
        let pressed = ev.value == 1;
        match ev.code {
            KEY_LEFTSHIFT => self.left_shift = ev.value != 0,
            KEY_RIGHTSHIFT => self.right_shift = ev.value != 0,
            KEY_CAPSLOCK if pressed => self.caps = !self.caps,
            KEY_ENTER | KEY_KPENTER if pressed => return Some(b'\r'),
            code if pressed => return self.char_of(code),
            _ => {}
        }
        None
    }

    fn char_of(&self, code: u16) -> Option<u8> {
        let (plain, shifted) = us_key(code)?;
        let shift = self.left_shift || self.right_shift;
        let c = if shift { shifted } else { plain };
        // Caps lock flips letters only.
        Some(if self.caps && plain.is_ascii_lowercase() {
            if shift { plain } else { shifted }
        } else {
            c
        })
    }
}

/// The US layout: key code → (plain, shifted).
fn us_key(code: u16) -> Option<(u8, u8)> {
    const ROWS: [(u16, &[u8], &[u8]); 4] = [
        (2, b"1234567890-=", b"!@#$%^&*()_+"),
        (16, b"qwertyuiop[]", b"QWERTYUIOP{}"),
        (30, b"asdfghjkl;'`", b"ASDFGHJKL:\"~"),
        (43, b"\\zxcvbnm,./", b"|ZXCVBNM<>?"),
    ];
    for (first, plain, shifted) in ROWS {
        if let Some(i) = code.checked_sub(first).map(usize::from)
            && i < plain.len()
        {
            return Some((plain[i], shifted[i]));
        }
    }
    let keypad = match code {
        57 => b' ',
        55 => b'*',
        71 => b'7',
        72 => b'8',
        73 => b'9',
        74 => b'-',
        75 => b'4',
        76 => b'5',
        77 => b'6',
        78 => b'+',
        79 => b'1',
        80 => b'2',
        81 => b'3',
        82 => b'0',
        83 => b'.',
        98 => b'/',
        _ => return None,
    };
    Some((keypad, keypad))
}

/// Takes the device for this process alone (`EVIOCGRAB`). Fails with
/// `ENOTTY` on something that is not an input device, `EBUSY` when another
/// program holds the grab.
pub fn grab(fd: impl AsFd) -> std::io::Result<()> {
    // _IOW('E', 0x90, int): the argument is the integer 1, passed by value.
    const EVIOCGRAB: rustix::ioctl::Opcode =
        rustix::ioctl::opcode::write::<libc::c_int>(b'E', 0x90);
    // SAFETY: EVIOCGRAB takes an integer argument by value and touches no
    // user memory; the descriptor is borrowed for the call only.
    #[allow(unsafe_code)]
    unsafe { rustix::ioctl::ioctl(fd, rustix::ioctl::IntegerSetter::<EVIOCGRAB>::new_usize(1)) }
        .map_err(std::io::Error::from)
}

/// The records a scanner in keyboard mode sends for `text`: shift held
/// around upper-case letters and symbols, a `SYN_REPORT` after each key,
/// Enter at the end. Recordings for tests; `None` if `text` holds a
/// character the US layout cannot type.
pub fn recording(text: &str) -> Option<Vec<u8>> {
    let mut raw = Vec::new();
    let key = |code: u16, value: i32| {
        InputEvent {
            kind: EV_KEY,
            code,
            value,
        }
        .to_bytes()
    };
    // SYN_REPORT after each key, as the kernel does.
    let syn = InputEvent {
        kind: 0,
        code: 0,
        value: 0,
    }
    .to_bytes();
    for b in text.bytes().chain(std::iter::once(b'\r')) {
        let (code, shift) = if b == b'\r' {
            (KEY_ENTER, false)
        } else {
            (1..=120).find_map(|c| match us_key(c) {
                Some((p, _)) if p == b => Some((c, false)),
                Some((_, s)) if s == b => Some((c, true)),
                _ => None,
            })?
        };
        if shift {
            raw.extend(key(KEY_LEFTSHIFT, 1));
        }
        raw.extend(key(code, 1));
        raw.extend(&syn);
        raw.extend(key(code, 0));
        if shift {
            raw.extend(key(KEY_LEFTSHIFT, 0));
        }
        raw.extend(&syn);
    }
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_events_type_codes_with_shift() {
        for text in [
            "RT-20261122-0001",
            "https://r.example.com/r/RT-9?x=1&y=%20",
            "YZR1.eyJybiI6IlJUIn0.sig_-+/=",
            "sf1234567890123",
        ] {
            let mut kb = Keyboard::default();
            assert_eq!(
                kb.feed(&recording(text).unwrap()),
                format!("{text}\r").into_bytes()
            );
        }
    }

    #[test]
    fn records_split_across_reads_are_joined() {
        let raw = recording("RT-1").unwrap();
        let mut kb = Keyboard::default();
        let mut out = Vec::new();
        for chunk in raw.chunks(7) {
            out.extend(kb.feed(chunk));
        }
        assert_eq!(out, b"RT-1\r");
    }

    #[test]
    fn caps_lock_flips_letters_only() {
        let mut kb = Keyboard::default();
        let press = |code| InputEvent {
            kind: EV_KEY,
            code,
            value: 1,
        };
        assert_eq!(kb.event(press(KEY_CAPSLOCK)), None);
        assert_eq!(kb.event(press(30)), Some(b'A'));
        assert_eq!(kb.event(press(2)), Some(b'1'));
        // Autorepeat and releases type nothing.
        assert_eq!(
            kb.event(InputEvent {
                value: 2,
                ..press(30)
            }),
            None
        );
        assert_eq!(
            kb.event(InputEvent {
                value: 0,
                ..press(30)
            }),
            None
        );
    }

    #[test]
    fn grabbing_something_that_is_not_an_input_device_fails_cleanly() {
        let f = tempfile::tempfile().unwrap();
        assert!(grab(&f).is_err());
    }
}
