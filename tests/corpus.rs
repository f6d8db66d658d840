//! A seeded generator of camera frames showing codes, for the decoder's
//! tests and its benchmark against `zbarimg` (`cargo bench --bench decode`).
//!
//! Each frame is 1280×720, as the kiosk camera sees a customer's code: the
//! code shapes of SPEC §4 (signed YZR1 tokens, return URLs, plain return
//! numbers as QR codes; courier waybills as Code 128 on paper labels) shown
//! on a phone screen or on paper, rotated through 360°, tilted, and made
//! hard in one way or another — small, blurred, noisy, dim, low contrast,
//! with glare, JPEG-compressed, on a cluttered background. The same seed
//! gives the same frames.

#![allow(dead_code)]

use image::{GrayImage, Luma};

pub const WIDTH: u32 = 1280;
pub const HEIGHT: u32 = 720;

/// What makes a frame hard (one per frame, on top of a random rotation and
/// a mild tilt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hardship {
    /// Only rotation and a mild tilt.
    Plain,
    /// Tilted up to ~40° out of plane.
    Tilted,
    /// Small in the frame: 1.6–2.6 pixels per module.
    Small,
    Blurred,
    Noisy,
    Dim,
    LowContrast,
    Glare,
    /// Saved as a JPEG of quality 15–35.
    Jpeg,
    /// Shapes and text-like marks all around.
    Cluttered,
}

pub const HARDSHIPS: [Hardship; 10] = [
    Hardship::Plain,
    Hardship::Tilted,
    Hardship::Small,
    Hardship::Blurred,
    Hardship::Noisy,
    Hardship::Dim,
    Hardship::LowContrast,
    Hardship::Glare,
    Hardship::Jpeg,
    Hardship::Cluttered,
];

impl Hardship {
    pub fn name(self) -> &'static str {
        match self {
            Hardship::Plain => "plain",
            Hardship::Tilted => "tilted",
            Hardship::Small => "small",
            Hardship::Blurred => "blurred",
            Hardship::Noisy => "noisy",
            Hardship::Dim => "dim",
            Hardship::LowContrast => "low contrast",
            Hardship::Glare => "glare",
            Hardship::Jpeg => "jpeg q15-35",
            Hardship::Cluttered => "cluttered",
        }
    }
}

/// Where the code is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    Phone,
    Paper,
}

/// One generated frame and what is on it.
pub struct Sample {
    pub jpeg: Vec<u8>,
    /// Every code in the frame.
    pub codes: Vec<String>,
    pub hardship: Hardship,
    pub medium: Medium,
    pub code128: bool,
}

/// `n` frames from `seed`, the hardships in turn.
pub fn generate(seed: u64, n: usize) -> Vec<Sample> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|i| frame(&mut rng, HARDSHIPS[i % HARDSHIPS.len()]))
        .collect()
}

/// One frame with `hardship`.
pub fn frame(rng: &mut fastrand::Rng, hardship: Hardship) -> Sample {
    let medium = if rng.bool() {
        Medium::Phone
    } else {
        Medium::Paper
    };
    // Waybill labels are paper; a third of the paper frames are labels.
    let code128 = medium == Medium::Paper && rng.u8(..3) == 0;
    let text = if code128 {
        format!("SF{:013}", rng.u64(..10_000_000_000_000))
    } else {
        return_code(rng)
    };
    let module_px = match hardship {
        Hardship::Small => 1.6 + rng.f32() * 1.0,
        _ => 3.0 + rng.f32() * 4.0,
    };
    let card = card(rng, &text, code128, medium, module_px);
    let mut frame = background(rng, hardship == Hardship::Cluttered);
    let tilt = match hardship {
        Hardship::Tilted => 0.25 + rng.f32() * 0.35,
        _ => rng.f32() * 0.12,
    };
    let angle = rng.f32() * std::f32::consts::TAU;
    place(&mut frame, &card, angle, tilt, rng);
    spoil(rng, &mut frame, hardship);
    let quality = if hardship == Hardship::Jpeg {
        15 + rng.u8(..21)
    } else {
        85
    };
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, quality)
        .encode_image(&frame)
        .expect("encode a frame");
    Sample {
        jpeg,
        codes: vec![text],
        hardship,
        medium,
        code128,
    }
}

/// A frame with no code at all (a counter, a hand, a bag): what the
/// customer screen's camera sends most of the time.
pub fn empty_frame(rng: &mut fastrand::Rng) -> Vec<u8> {
    let frame = background(rng, true);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
        .encode_image(&frame)
        .expect("encode a frame");
    jpeg
}

/// A return code of one of the SPEC §4 shapes.
fn return_code(rng: &mut fastrand::Rng) -> String {
    let rn = format!("RT-2026{:04}-{:05}", rng.u32(100..1300), rng.u32(..100_000));
    match rng.u8(..3) {
        0 => rn,
        1 => format!("https://returns.example.com/r/{rn}?src=app"),
        _ => {
            // The shape and length of a signed token (the bytes need not
            // verify: this is about reading them off a picture).
            let b64 = |n: usize, rng: &mut fastrand::Rng| -> String {
                const A: &[u8] =
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                (0..n).map(|_| A[rng.usize(..64)] as char).collect()
            };
            format!("YZR1.{}.{}", b64(110, rng), b64(86, rng))
        }
    }
}

/// The code on its medium: a phone screen (dark bezel, bright screen) or
/// a sheet of paper, as a picture with the code `module_px` per module.
fn card(
    rng: &mut fastrand::Rng,
    text: &str,
    code128: bool,
    medium: Medium,
    module_px: f32,
) -> GrayImage {
    let code = if code128 {
        code128_image(text, module_px)
    } else {
        qr_image(text, module_px)
    };
    let (cw, ch) = code.dimensions();
    let margin = (cw.max(ch) as f32 * 0.25) as u32 + 8;
    let (w, h) = (
        cw + 2 * margin,
        ch + 2 * margin + if medium == Medium::Phone { margin } else { 0 },
    );
    let paper = 215 + rng.u8(..35);
    let mut card = GrayImage::from_pixel(w, h, Luma([paper]));
    if medium == Medium::Phone {
        // Bezel and a status bar.
        let bezel = (margin / 3).max(4);
        for (x, y, p) in card.enumerate_pixels_mut() {
            if x < bezel || y < bezel || x >= w - bezel || y >= h - bezel {
                *p = Luma([20]);
            } else if y < bezel + margin / 3 {
                *p = Luma([60]);
            }
        }
    } else {
        // Paper grain.
        for p in card.pixels_mut() {
            p.0[0] = p.0[0].saturating_sub(rng.u8(..12));
        }
    }
    image::imageops::overlay(
        &mut card,
        &code,
        i64::from(margin),
        i64::from(
            margin
                + if medium == Medium::Phone {
                    margin / 2
                } else {
                    0
                },
        ),
    );
    card
}

fn qr_image(text: &str, module_px: f32) -> GrayImage {
    let code = qrcode::QrCode::new(text.as_bytes()).expect("a QR code");
    let n = code.width();
    let colors = code.to_colors();
    let side = (n as f32 * module_px).ceil() as u32;
    GrayImage::from_fn(side, side, |x, y| {
        let (mx, my) = (
            (x as f32 / module_px) as usize,
            (y as f32 / module_px) as usize,
        );
        let dark = mx < n && my < n && colors[my * n + mx] == qrcode::Color::Dark;
        Luma([if dark { 15 } else { 250 }])
    })
}

fn code128_image(text: &str, module_px: f32) -> GrayImage {
    use rxing::Writer;
    let bits = rxing::MultiFormatWriter
        .encode(text, &rxing::BarcodeFormat::CODE_128, 0, 0)
        .expect("a Code 128 barcode");
    let modules = bits.width();
    let w = (modules as f32 * module_px * 1.2).ceil() as u32;
    let h = (w as f32 * 0.3) as u32;
    GrayImage::from_fn(w, h, |x, _| {
        let m = (x as f32 / (module_px * 1.2)) as u32;
        Luma([if m < modules && bits.get(m, 0) {
            15
        } else {
            250
        }])
    })
}

fn background(rng: &mut fastrand::Rng, cluttered: bool) -> GrayImage {
    let base = 60 + rng.u8(..120);
    let mut frame = GrayImage::from_fn(WIDTH, HEIGHT, |x, y| {
        // A soft gradient, as a counter top under a lamp.
        Luma([base.saturating_add(((x + y) / 40) as u8)])
    });
    if cluttered {
        for _ in 0..60 {
            let (x0, y0) = (rng.u32(..WIDTH), rng.u32(..HEIGHT));
            let (w, h) = (rng.u32(4..160), rng.u32(2..90));
            let v = rng.u8(..);
            let stripes = rng.bool();
            for y in y0..(y0 + h).min(HEIGHT) {
                for x in x0..(x0 + w).min(WIDTH) {
                    if !stripes || (x / 3) % 2 == 0 {
                        frame.put_pixel(x, y, Luma([v]));
                    }
                }
            }
        }
    }
    frame
}

/// Draws `card` into `frame`: centred somewhere, rotated by `angle`, its
/// top edge pushed back by `tilt` (perspective), filling 30–60 % of the
/// frame's height (or less for small codes).
fn place(frame: &mut GrayImage, card: &GrayImage, angle: f32, tilt: f32, rng: &mut fastrand::Rng) {
    let (cw, ch) = (card.width() as f32, card.height() as f32);
    let fit = (HEIGHT as f32 * 0.9 / cw.max(ch)).min(1.0);
    let scale = fit * (0.85 + rng.f32() * 0.15);
    let (hw, hh) = (cw * scale / 2.0, ch * scale / 2.0);
    let reach = hw.max(hh) * 1.1;
    let cx = reach + rng.f32() * (WIDTH as f32 - 2.0 * reach).max(1.0);
    let cy = (HEIGHT as f32 / 2.0) + (rng.f32() - 0.5) * (HEIGHT as f32 - 2.0 * reach).max(0.0);
    // Corners of the card (tl, tr, br, bl) before rotation; the top edge
    // narrower and nearer the middle: seen from below at an angle.
    let corners = [
        (-hw * (1.0 - tilt), -hh * (1.0 - tilt * 0.6)),
        (hw * (1.0 - tilt), -hh * (1.0 - tilt * 0.6)),
        (hw, hh),
        (-hw, hh),
    ];
    let (s, c) = angle.sin_cos();
    let quad: Vec<(f32, f32)> = corners
        .iter()
        .map(|(x, y)| (cx + x * c - y * s, cy + x * s + y * c))
        .collect();
    let to_quad = square_to_quad(&quad);
    let Some(from_frame) = invert(&to_quad) else {
        return;
    };
    let xs = quad.iter().map(|p| p.0);
    let ys = quad.iter().map(|p| p.1);
    let x0 = xs.clone().fold(f32::MAX, f32::min).max(0.0) as u32;
    let x1 = (xs.fold(f32::MIN, f32::max).min(WIDTH as f32 - 1.0)) as u32;
    let y0 = ys.clone().fold(f32::MAX, f32::min).max(0.0) as u32;
    let y1 = (ys.fold(f32::MIN, f32::max).min(HEIGHT as f32 - 1.0)) as u32;
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (u, v) = apply(&from_frame, x as f32 + 0.5, y as f32 + 0.5);
            if (0.0..1.0).contains(&u) && (0.0..1.0).contains(&v) {
                let p = bilinear(card, u * cw, v * ch);
                frame.put_pixel(x, y, Luma([p]));
            }
        }
    }
}

type M3 = [[f32; 3]; 3];

/// The homography taking the unit square to `q` (Heckbert's closed form).
fn square_to_quad(q: &[(f32, f32)]) -> M3 {
    let (x0, y0) = q[0];
    let (x1, y1) = q[1];
    let (x2, y2) = q[2];
    let (x3, y3) = q[3];
    let (dx1, dx2, dx3) = (x1 - x2, x3 - x2, x0 - x1 + x2 - x3);
    let (dy1, dy2, dy3) = (y1 - y2, y3 - y2, y0 - y1 + y2 - y3);
    let den = dx1 * dy2 - dx2 * dy1;
    let g = (dx3 * dy2 - dx2 * dy3) / den;
    let h = (dx1 * dy3 - dx3 * dy1) / den;
    [
        [x1 - x0 + g * x1, x3 - x0 + h * x3, x0],
        [y1 - y0 + g * y1, y3 - y0 + h * y3, y0],
        [g, h, 1.0],
    ]
}

fn invert(m: &M3) -> Option<M3> {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if det.abs() < 1e-9 {
        return None;
    }
    let inv = |a: f32| a / det;
    Some([
        [
            inv(m[1][1] * m[2][2] - m[1][2] * m[2][1]),
            inv(m[0][2] * m[2][1] - m[0][1] * m[2][2]),
            inv(m[0][1] * m[1][2] - m[0][2] * m[1][1]),
        ],
        [
            inv(m[1][2] * m[2][0] - m[1][0] * m[2][2]),
            inv(m[0][0] * m[2][2] - m[0][2] * m[2][0]),
            inv(m[0][2] * m[1][0] - m[0][0] * m[1][2]),
        ],
        [
            inv(m[1][0] * m[2][1] - m[1][1] * m[2][0]),
            inv(m[0][1] * m[2][0] - m[0][0] * m[2][1]),
            inv(m[0][0] * m[1][1] - m[0][1] * m[1][0]),
        ],
    ])
}

fn apply(m: &M3, x: f32, y: f32) -> (f32, f32) {
    let w = m[2][0] * x + m[2][1] * y + m[2][2];
    (
        (m[0][0] * x + m[0][1] * y + m[0][2]) / w,
        (m[1][0] * x + m[1][1] * y + m[1][2]) / w,
    )
}

fn bilinear(img: &GrayImage, x: f32, y: f32) -> u8 {
    let (w, h) = (img.width() as f32 - 1.0, img.height() as f32 - 1.0);
    let (x, y) = ((x - 0.5).clamp(0.0, w), (y - 0.5).clamp(0.0, h));
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let px = |xx: f32, yy: f32| f32::from(img.get_pixel(xx.min(w) as u32, yy.min(h) as u32)[0]);
    let top = px(x0, y0) * (1.0 - fx) + px(x0 + 1.0, y0) * fx;
    let bottom = px(x0, y0 + 1.0) * (1.0 - fx) + px(x0 + 1.0, y0 + 1.0) * fx;
    (top * (1.0 - fy) + bottom * fy).round() as u8
}

/// The frame's hardship, applied.
fn spoil(rng: &mut fastrand::Rng, frame: &mut GrayImage, hardship: Hardship) {
    match hardship {
        Hardship::Blurred => {
            *frame = image::imageops::blur(frame, 1.2 + rng.f32() * 1.3);
        }
        Hardship::Noisy => {
            let sigma = 12.0 + rng.f32() * 18.0;
            for p in frame.pixels_mut() {
                // Sum of uniforms: close enough to Gaussian noise.
                let n = (rng.f32() + rng.f32() + rng.f32() - 1.5) * 2.0 * sigma;
                p.0[0] = (f32::from(p.0[0]) + n).clamp(0.0, 255.0) as u8;
            }
        }
        Hardship::Dim => {
            let k = 0.22 + rng.f32() * 0.2;
            for p in frame.pixels_mut() {
                p.0[0] = (f32::from(p.0[0]) * k) as u8;
            }
        }
        Hardship::LowContrast => {
            let (lo, span) = (80.0 + rng.f32() * 40.0, 45.0 + rng.f32() * 30.0);
            for p in frame.pixels_mut() {
                p.0[0] = (lo + f32::from(p.0[0]) / 255.0 * span) as u8;
            }
        }
        Hardship::Glare => {
            let (gx, gy) = (rng.f32() * WIDTH as f32, rng.f32() * HEIGHT as f32);
            let r = 120.0 + rng.f32() * 220.0;
            let strength = 120.0 + rng.f32() * 100.0;
            for (x, y, p) in frame.enumerate_pixels_mut() {
                let d = ((x as f32 - gx).powi(2) + (y as f32 - gy).powi(2)).sqrt() / r;
                if d < 1.0 {
                    let add = strength * (1.0 - d * d);
                    p.0[0] = (f32::from(p.0[0]) + add).min(255.0) as u8;
                }
            }
        }
        Hardship::Plain
        | Hardship::Tilted
        | Hardship::Small
        | Hardship::Jpeg
        | Hardship::Cluttered => {}
    }
}
