//! A small ESC/POS document builder: the commands every 58/80 mm thermal
//! printer understands (Epson's, and the Chinese clones' with `FS &` for
//! double-byte text), nothing more.
//!
//! Images (the receipt's QR code) go as a raster bit image (`GS v 0`):
//! every printer prints it the same, where `GS ( k` QR support varies.

use encoding_rs::Encoding;
use qrcode::QrCode;

const ESC: u8 = 0x1B;
const GS: u8 = 0x1D;
const FS: u8 = 0x1C;
const LF: u8 = 0x0A;

/// Dots per character of font A (12 × 24): a line holds `width / 12`
/// single-width characters; CJK characters take two.
pub const FONT_A_DOTS: u32 = 12;

/// Text alignment (`ESC a n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left = 0,
    Center = 1,
}

/// An ESC/POS byte stream under construction.
#[derive(Debug)]
pub struct Doc {
    buf: Vec<u8>,
    encoding: &'static Encoding,
    width_dots: u32,
}

impl Doc {
    /// Resets the printer, and selects double-byte text for the Chinese
    /// encodings (`FS &`) or cancels it for the others (`FS .`).
    pub fn new(encoding: &'static Encoding, width_dots: u32) -> Doc {
        let mut buf = vec![ESC, b'@'];
        let chinese = [encoding_rs::GB18030, encoding_rs::GBK, encoding_rs::BIG5];
        buf.extend_from_slice(if chinese.contains(&encoding) {
            &[FS, b'&']
        } else {
            &[FS, b'.']
        });
        Doc {
            buf,
            encoding,
            width_dots,
        }
    }

    /// Single-width characters per line.
    pub fn columns(&self) -> usize {
        (self.width_dots / FONT_A_DOTS) as usize
    }

    pub fn align(&mut self, a: Align) -> &mut Doc {
        self.buf.extend_from_slice(&[ESC, b'a', a as u8]);
        self
    }

    pub fn bold(&mut self, on: bool) -> &mut Doc {
        self.buf.extend_from_slice(&[ESC, b'E', u8::from(on)]);
        self
    }

    /// Character size: `1` normal, `2` double width and height.
    pub fn size(&mut self, times: u8) -> &mut Doc {
        let n = times.clamp(1, 8) - 1;
        self.buf.extend_from_slice(&[GS, b'!', (n << 4) | n]);
        self
    }

    /// One line of text in the printer's encoding (the printer wraps a
    /// line longer than the paper).
    pub fn line(&mut self, text: &str) -> &mut Doc {
        self.buf.extend(encode(self.encoding, text));
        self.buf.push(LF);
        self
    }

    /// A rule across the paper.
    pub fn rule(&mut self) -> &mut Doc {
        let rule = "-".repeat(self.columns());
        self.line(&rule)
    }

    /// Feeds `n` lines.
    pub fn feed(&mut self, n: u8) -> &mut Doc {
        self.buf.extend_from_slice(&[ESC, b'd', n]);
        self
    }

    /// A black-and-white image, `rows` of `width` pixels, `true` = black.
    pub fn raster(&mut self, width: usize, rows: &[Vec<bool>]) -> &mut Doc {
        let bytes_per_row = width.div_ceil(8);
        let height = rows.len();
        self.buf.extend_from_slice(&[GS, b'v', b'0', 0]);
        self.buf.extend_from_slice(
            &u16::try_from(bytes_per_row)
                .unwrap_or(u16::MAX)
                .to_le_bytes(),
        );
        self.buf
            .extend_from_slice(&u16::try_from(height).unwrap_or(u16::MAX).to_le_bytes());
        for row in rows {
            let mut packed = vec![0u8; bytes_per_row];
            for (x, _) in row.iter().enumerate().filter(|(_, black)| **black) {
                packed[x / 8] |= 0x80 >> (x % 8);
            }
            self.buf.extend_from_slice(&packed);
        }
        self.buf.push(LF);
        self
    }

    /// `text` as a Code 128 barcode `height` dots tall, as wide as the
    /// paper allows (at least 2 dots a module, quiet zones included).
    pub fn code128(&mut self, text: &str, height: usize) -> &mut Doc {
        let code = code128::Code128::encode(text.as_bytes());
        let module = (self.width_dots as usize / code.len()).clamp(2, 4);
        let width = code.len() * module;
        let mut row = vec![false; width];
        for bar in code.bar_coordinates() {
            let from = bar.x as usize * module;
            let to = from + usize::from(bar.width) * module;
            for px in row.iter_mut().take(to).skip(from) {
                *px = true;
            }
        }
        let rows = vec![row; height];
        self.raster(width, &rows)
    }

    /// `text` as a QR code about `share` of the paper wide (at least 3
    /// dots per module, with its quiet zone).
    pub fn qr(&mut self, text: &str, share: f32) -> Result<&mut Doc, qrcode::types::QrError> {
        let code = QrCode::new(text.as_bytes())?;
        let modules = code.width();
        let colors = code.to_colors();
        const QUIET: usize = 4;
        let span = modules + 2 * QUIET;
        let target = (self.width_dots as f32 * share) as usize;
        let scale = (target / span).max(3);
        let width = span * scale;
        let mut rows = Vec::with_capacity(width);
        for y in 0..span {
            let row: Vec<bool> = (0..span)
                .flat_map(|x| {
                    let dark = (QUIET..QUIET + modules).contains(&x)
                        && (QUIET..QUIET + modules).contains(&y)
                        && colors[(y - QUIET) * modules + (x - QUIET)] == qrcode::Color::Dark;
                    std::iter::repeat_n(dark, scale)
                })
                .collect();
            for _ in 0..scale {
                rows.push(row.clone());
            }
        }
        Ok(self.raster(width, &rows))
    }

    /// Feeds past the cutter and cuts (partially: the slip stays on the
    /// roll until torn).
    pub fn cut(&mut self) -> &mut Doc {
        self.buf.extend_from_slice(&[GS, b'V', 66, 3]);
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Encodes `text`; a character the encoding lacks prints as `?` (never an
/// HTML character reference, which is what `Encoding::encode` would put).
pub fn encode(encoding: &'static Encoding, text: &str) -> Vec<u8> {
    use encoding_rs::EncoderResult;
    let mut encoder = encoding.new_encoder();
    let mut out = Vec::with_capacity(text.len() * 2);
    let mut rest = text;
    let mut chunk = [0u8; 256];
    loop {
        let (result, read, written) =
            encoder.encode_from_utf8_without_replacement(rest, &mut chunk, true);
        out.extend_from_slice(&chunk[..written]);
        rest = &rest[read..];
        match result {
            EncoderResult::InputEmpty => return out,
            EncoderResult::OutputFull => {}
            EncoderResult::Unmappable(_) => out.push(b'?'),
        }
    }
}

/// Status queries (`DLE EOT n`) and what their answers mean.
pub mod status {
    /// Asks for the printer status (n = 1), offline cause (2) or paper
    /// sensor (4).
    pub fn query(n: u8) -> [u8; 3] {
        [0x10, 0x04, n]
    }

    /// Whether `b` is a status byte at all: bits 1 and 4 set, 0 and 7
    /// clear.
    pub fn valid(b: u8) -> bool {
        b & 0x93 == 0x12
    }

    /// n = 1: the printer is offline.
    pub fn offline(b: u8) -> bool {
        b & 0x08 != 0
    }

    /// n = 2: the cover is open.
    pub fn cover_open(b: u8) -> bool {
        b & 0x04 != 0
    }

    /// n = 2: printing stopped because the paper ran out.
    pub fn paper_end_stop(b: u8) -> bool {
        b & 0x20 != 0
    }

    /// n = 4: the roll is near its end.
    pub fn paper_near_end(b: u8) -> bool {
        b & 0x0C != 0
    }

    /// n = 4: no paper.
    pub fn paper_end(b: u8) -> bool {
        b & 0x60 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_text_is_gb18030_and_unmappable_is_a_question_mark() {
        assert_eq!(
            encode(encoding_rs::GB18030, "驿站 A"),
            b"\xe6\xe4\xd5\xbe A"
        );
        assert_eq!(encode(encoding_rs::WINDOWS_1252, "驿A"), b"?A");
        let long = "退".repeat(500);
        assert_eq!(encode(encoding_rs::GB18030, &long).len(), 1000);
    }

    #[test]
    fn documents_start_with_a_reset_and_chinese_mode() {
        let mut d = Doc::new(encoding_rs::GB18030, 576);
        d.line("x").cut();
        let b = d.into_bytes();
        assert_eq!(&b[..4], &[ESC, b'@', FS, b'&']);
        assert_eq!(&b[b.len() - 4..], &[GS, b'V', 66, 3]);
        assert_eq!(Doc::new(encoding_rs::UTF_8, 384).columns(), 32);
    }

    #[test]
    fn raster_rows_are_packed_msb_first() {
        let mut d = Doc::new(encoding_rs::UTF_8, 384);
        let before = d.buf.len();
        d.raster(
            10,
            &[vec![
                true, false, false, false, false, false, false, false, false, true,
            ]],
        );
        let r = &d.buf[before..];
        assert_eq!(&r[..8], &[GS, b'v', b'0', 0, 2, 0, 1, 0]);
        assert_eq!(&r[8..10], &[0x80, 0x40]);
    }

    #[test]
    fn status_bytes() {
        assert!(status::valid(0x12) && !status::valid(0x00) && !status::valid(0xFF));
        assert!(status::offline(0x1A) && !status::offline(0x12));
        assert!(status::paper_end(0x72) && status::paper_near_end(0x1E));
    }
}
