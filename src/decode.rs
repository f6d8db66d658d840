//! Finding codes in a picture (SPEC §10, camera): every QR code and Code 128
//! barcode in a frame, for `POST /api/v1/scans/image` and the kiosk camera.
//!
//! Two decoders, both permissively licensed (no zbar: its ports are LGPL):
//! `rxing` (a port of ZXing) finds several QR codes and 1-D barcodes per
//! frame; `rqrr` (a port of quirc) finds QR codes ZXing's detector misses
//! at steep angles. What each adds, and what it costs, is measured against
//! `zbarimg` by `cargo bench --bench decode` (docs/PERFORMANCE.md,
//! "Decoding codes in frames").

use std::collections::HashSet;

use image::GrayImage;
use rxing::common::HybridBinarizer;
use rxing::multi::{GenericMultipleBarcodeReader, MultipleBarcodeReader};
use rxing::{
    BarcodeFormat, BinaryBitmap, DecodeHints, Luma8LuminanceSource, MultiUseMultiFormatReader,
};
use serde::Serialize;

/// The symbologies looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Symbology {
    Qr,
    Code128,
}

/// One code found in a frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    pub text: String,
    pub symbology: Symbology,
}

/// Which decoders to run; the benchmark compares them, the product uses
/// [`Passes::PRODUCT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passes {
    /// rxing on the frame as it is.
    pub rxing: bool,
    /// rqrr (QR only) when rxing found no QR code.
    pub rqrr: bool,
    /// Both again on the frame at half size when nothing was found (large,
    /// blurred codes binarise better smaller).
    pub half: bool,
}

impl Passes {
    /// rxing, then rqrr when rxing found no QR code. The half-size pass is
    /// left out: on the benchmark corpus it read 1 frame in 400 more and
    /// cost 18 % more time per frame, most of it on frames with no code
    /// (docs/PERFORMANCE.md).
    pub const PRODUCT: Passes = Passes {
        rxing: true,
        rqrr: true,
        half: false,
    };
}

/// Every QR code and Code 128 barcode in `img`, QR codes first, each text
/// once.
pub fn find_codes(img: &GrayImage) -> Vec<Found> {
    find_codes_with(img, Passes::PRODUCT)
}

/// [`find_codes`] with a chosen set of passes.
pub fn find_codes_with(img: &GrayImage, passes: Passes) -> Vec<Found> {
    let mut found = search(img, passes);
    if found.is_empty() && passes.half && img.width() >= 400 {
        let half = image::imageops::resize(
            img,
            img.width() / 2,
            img.height() / 2,
            image::imageops::FilterType::Triangle,
        );
        found = search(&half, passes);
    }
    // QR codes first (return codes), then barcodes; each text once.
    found.sort_by_key(|f| f.symbology != Symbology::Qr);
    let mut seen = HashSet::new();
    found.retain(|f| seen.insert(f.text.clone()));
    found
}

fn search(img: &GrayImage, passes: Passes) -> Vec<Found> {
    let mut found = Vec::new();
    if passes.rxing {
        found.extend(with_rxing(img));
    }
    if passes.rqrr && !found.iter().any(|f| f.symbology == Symbology::Qr) {
        found.extend(with_rqrr(img));
    }
    found
}

fn with_rxing(img: &GrayImage) -> Vec<Found> {
    let (w, h) = img.dimensions();
    let Ok(source) = Luma8LuminanceSource::new(img.as_raw().clone(), w, h) else {
        return Vec::new();
    };
    let hints = DecodeHints {
        TryHarder: Some(true),
        PossibleFormats: Some(HashSet::from([
            BarcodeFormat::QR_CODE,
            BarcodeFormat::CODE_128,
        ])),
        ..DecodeHints::default()
    };
    let mut reader = GenericMultipleBarcodeReader::new(MultiUseMultiFormatReader::default());
    let mut bitmap = BinaryBitmap::new(HybridBinarizer::new(source));
    reader
        .decode_multiple_with_hints(&mut bitmap, &hints)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| {
            let symbology = match r.getBarcodeFormat() {
                BarcodeFormat::QR_CODE => Symbology::Qr,
                BarcodeFormat::CODE_128 => Symbology::Code128,
                _ => return None,
            };
            Some(Found {
                text: r.getText().to_owned(),
                symbology,
            })
        })
        .collect()
}

fn with_rqrr(img: &GrayImage) -> Vec<Found> {
    let mut prepared = rqrr::PreparedImage::prepare(img.clone());
    prepared
        .detect_grids()
        .into_iter()
        .filter_map(|g| g.decode().ok())
        .map(|(_, text)| Found {
            text,
            symbology: Symbology::Qr,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    /// A QR code drawn on a grey frame at (x, y), `scale` pixels per module.
    fn frame_with_qr(text: &str, x: u32, y: u32, scale: u32) -> GrayImage {
        let code = qrcode::QrCode::new(text.as_bytes()).unwrap();
        let qr = code
            .render::<Luma<u8>>()
            .module_dimensions(scale, scale)
            .build();
        let mut frame = GrayImage::from_pixel(640, 480, Luma([170]));
        image::imageops::overlay(&mut frame, &qr, i64::from(x), i64::from(y));
        frame
    }

    #[test]
    fn finds_a_qr_code_in_a_frame() {
        let found = find_codes(&frame_with_qr("RT-20261122-0001", 100, 60, 6));
        assert_eq!(
            found,
            vec![Found {
                text: "RT-20261122-0001".into(),
                symbology: Symbology::Qr
            }]
        );
    }

    #[test]
    fn an_empty_frame_has_no_codes() {
        assert!(find_codes(&GrayImage::from_pixel(320, 240, Luma([128]))).is_empty());
        assert!(find_codes(&GrayImage::new(1, 1)).is_empty());
    }
}
