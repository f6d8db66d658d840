//! A fake ESC/POS network printer (port 9100) for the printer tests: it
//! parses the byte stream as a printer would, answers `DLE EOT` status
//! queries as the test sets them, and keeps every document it "printed"
//! (from `ESC @` to the cut) as text lines and raster images.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use image::GrayImage;

/// What the printer says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ready,
    PaperOut,
    CoverOpen,
    /// Accepts connections and bytes, never answers a status query.
    Silent,
}

/// One printed document.
#[derive(Debug, Clone, Default)]
pub struct Printed {
    /// Text lines, decoded from GB18030.
    pub lines: Vec<String>,
    /// Raster images (`GS v 0`), black = 0.
    pub rasters: Vec<GrayImage>,
}

impl Printed {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The Code 128 barcodes in its images, decoded (read across each
    /// image's middle row: runs of black and white, in modules).
    pub fn code128s(&self) -> Vec<String> {
        self.rasters
            .iter()
            .filter_map(|img| {
                let y = img.height() / 2;
                let mut runs: Vec<(bool, u32)> = Vec::new();
                for x in 0..img.width() {
                    let black = img.get_pixel(x, y)[0] < 128;
                    match runs.last_mut() {
                        Some((b, n)) if *b == black => *n += 1,
                        _ => runs.push((black, 1)),
                    }
                }
                while runs.first().is_some_and(|r| !r.0) {
                    runs.remove(0);
                }
                while runs.last().is_some_and(|r| !r.0) {
                    runs.pop();
                }
                let module = runs.iter().map(|r| r.1).min()?;
                let bars: Vec<code128::Bar> = runs
                    .chunks(2)
                    .map(|pair| code128::Bar {
                        width: (pair[0].1 / module) as u8,
                        space: pair.get(1).map_or(0, |s| (s.1 / module) as u8),
                    })
                    .collect();
                code128::decode_str(&bars).ok()
            })
            .collect()
    }

    /// The QR codes in its images, decoded.
    pub fn qr_codes(&self) -> Vec<String> {
        self.rasters
            .iter()
            .flat_map(|img| {
                let mut prepared = rqrr::PreparedImage::prepare(img.clone());
                prepared
                    .detect_grids()
                    .into_iter()
                    .filter_map(|g| g.decode().ok().map(|(_, text)| text))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

struct Shared {
    status: Mutex<Status>,
    docs: Mutex<Vec<Printed>>,
    stop: AtomicBool,
    connections: AtomicUsize,
}

pub struct FakePrinter {
    pub port: u16,
    shared: Arc<Shared>,
}

impl FakePrinter {
    /// A printer listening on `port` (pick one with `free_port`, so that
    /// the station can be configured before the printer is "switched on").
    pub fn start_on(port: u16) -> FakePrinter {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("printer port");
        let shared = Arc::new(Shared {
            status: Mutex::new(Status::Ready),
            docs: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                s.connections.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        FakePrinter { port, shared }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn set_status(&self, status: Status) {
        *self.shared.status.lock().unwrap() = status;
    }

    pub fn printed(&self) -> Vec<Printed> {
        self.shared.docs.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FakePrinter {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(mut conn: TcpStream, s: &Shared) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = Vec::new();
    let mut doc: Option<Printed> = None;
    let mut text: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if s.stop.load(Ordering::SeqCst) {
            return;
        }
        match conn.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return,
        }
        while let Some((cmd, used)) = parse(&buf) {
            buf.drain(..used);
            match cmd {
                Cmd::Reset => {
                    doc = Some(Printed::default());
                    text.clear();
                }
                Cmd::Status(n) => {
                    let status = *s.status.lock().unwrap();
                    if let Some(b) = answer(status, n) {
                        let _ = conn.write_all(&[b]);
                    }
                }
                Cmd::Text(b) => text.push(b),
                Cmd::LineFeed => {
                    let (line, _, _) = encoding_rs::GB18030.decode(&text);
                    if let Some(d) = doc.as_mut() {
                        d.lines.push(line.into_owned());
                    }
                    text.clear();
                }
                Cmd::Raster(img) => {
                    if let Some(d) = doc.as_mut() {
                        d.rasters.push(img);
                    }
                }
                Cmd::Cut => {
                    if let Some(d) = doc.take() {
                        s.docs.lock().unwrap().push(d);
                    }
                }
                Cmd::Other => {}
            }
        }
    }
}

fn answer(status: Status, n: u8) -> Option<u8> {
    let base = 0x12;
    match (status, n) {
        (Status::Silent, _) => None,
        (Status::Ready, _) => Some(base),
        (_, 1) => Some(base | 0x08),
        (Status::PaperOut, 2) => Some(base | 0x20),
        (Status::CoverOpen, 2) => Some(base | 0x04),
        (Status::PaperOut, 4) => Some(base | 0x60),
        _ => Some(base),
    }
}

enum Cmd {
    Reset,
    Status(u8),
    Text(u8),
    LineFeed,
    Raster(GrayImage),
    Cut,
    Other,
}

/// The command at the start of `buf` and its length; `None` until it is
/// complete.
fn parse(buf: &[u8]) -> Option<(Cmd, usize)> {
    let b0 = *buf.first()?;
    let need = |n: usize| (buf.len() >= n).then_some(());
    Some(match b0 {
        0x1B => {
            need(2)?;
            match buf[1] {
                b'@' => (Cmd::Reset, 2),
                b'a' | b'E' | b'd' | b't' => {
                    need(3)?;
                    (Cmd::Other, 3)
                }
                other => panic!("unexpected ESC {other:#x}"),
            }
        }
        0x1C => {
            need(2)?;
            (Cmd::Other, 2)
        }
        0x10 => {
            need(3)?;
            assert_eq!(buf[1], 0x04, "DLE must be DLE EOT");
            (Cmd::Status(buf[2]), 3)
        }
        0x1D => {
            need(2)?;
            match buf[1] {
                b'!' => {
                    need(3)?;
                    (Cmd::Other, 3)
                }
                b'V' => {
                    need(3)?;
                    let len = if buf[2] == 65 || buf[2] == 66 { 4 } else { 3 };
                    need(len)?;
                    (Cmd::Cut, len)
                }
                b'v' => {
                    need(8)?;
                    let xb = usize::from(u16::from_le_bytes([buf[4], buf[5]]));
                    let h = usize::from(u16::from_le_bytes([buf[6], buf[7]]));
                    let len = 8 + xb * h;
                    need(len)?;
                    let data = &buf[8..len];
                    let img = GrayImage::from_fn((xb * 8) as u32, h as u32, |x, y| {
                        let byte = data[y as usize * xb + x as usize / 8];
                        let black = byte & (0x80 >> (x % 8)) != 0;
                        image::Luma([if black { 0 } else { 255 }])
                    });
                    (Cmd::Raster(img), len)
                }
                other => panic!("unexpected GS {other:#x}"),
            }
        }
        0x0A => (Cmd::LineFeed, 1),
        b => (Cmd::Text(b), 1),
    })
}
