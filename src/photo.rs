//! Parcel photos (SPEC §9): prove the upload is an image, re-encode it to a
//! bounded JPEG without metadata, and name it by the SHA-256 of what is
//! stored.
//!
//! Decoding runs with memory limits, so a decompression bomb is refused
//! rather than allowed to take the kiosk down. EXIF orientation is applied
//! before the metadata is dropped, so a phone photo stays upright.

pub mod store;

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// JPEG quality of stored photos: label text stays legible at 1600 px.
const JPEG_QUALITY: u8 = 85;
/// Largest decoded side accepted, whatever the file size.
const MAX_DECODED_SIDE: u32 = 12_000;
/// Memory the decoder may allocate for one image.
const MAX_DECODE_ALLOC: u64 = 512 * 1024 * 1024;

/// What the photo shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Label,
    Parcel,
    Damage,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Label => "label",
            Kind::Parcel => "parcel",
            Kind::Damage => "damage",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "label" => Some(Kind::Label),
            "parcel" => Some(Kind::Parcel),
            "damage" => Some(Kind::Damage),
            _ => None,
        }
    }
}

/// A stored photo as events and the API describe it (SPEC §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Photo {
    pub sha256: String,
    pub bytes: u64,
    pub width: u32,
    pub height: u32,
    pub kind: Kind,
}

/// Why an upload is not a photo we can keep.
#[derive(Debug, thiserror::Error)]
pub enum PhotoError {
    #[error("the photo is empty")]
    Empty,
    #[error("the photo is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("only JPEG and PNG photos are accepted")]
    UnsupportedFormat,
    #[error("the file is not a readable image: {0}")]
    Undecodable(String),
    #[error("the image is {width}x{height} pixels; the limit is {MAX_DECODED_SIDE} per side")]
    TooManyPixels { width: u32, height: u32 },
    #[error("storage is nearly full ({free_mb} MiB free, floor {min_mb} MiB): photos are refused until space is freed")]
    StorageFull { free_mb: u64, min_mb: u64 },
    #[error("photo storage failed: {0}")]
    Io(#[from] std::io::Error),
}

impl PhotoError {
    /// The uploader sent something we cannot use (as opposed to the
    /// station failing to store it).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, PhotoError::StorageFull { .. } | PhotoError::Io(_))
    }
}

/// A re-encoded photo ready to store.
#[derive(Debug, Clone)]
pub struct Processed {
    pub jpeg: Vec<u8>,
    pub sha256: String,
    pub width: u32,
    pub height: u32,
}

/// Decodes `bytes` (JPEG or PNG), applies EXIF orientation, bounds the
/// longest side to `max_px`, and re-encodes to a metadata-free JPEG.
pub fn process(bytes: &[u8], max_px: u32) -> Result<Processed, PhotoError> {
    let format = sniff(bytes)?;
    let img = decode(bytes, format)?;
    let img = if img.width().max(img.height()) > max_px {
        img.resize(max_px, max_px, FilterType::Triangle)
    } else {
        img
    };
    let rgb = img.to_rgb8();
    let mut jpeg = Vec::with_capacity(rgb.len() / 8);
    JpegEncoder::new_with_quality(&mut jpeg, JPEG_QUALITY)
        .encode_image(&rgb)
        .map_err(|e| PhotoError::Undecodable(e.to_string()))?;
    let sha256 = hex::encode(Sha256::digest(&jpeg));
    Ok(Processed {
        jpeg,
        sha256,
        width: rgb.width(),
        height: rgb.height(),
    })
}

/// Decodes `bytes` (JPEG or PNG, within the same limits as photos) to grey
/// levels: a camera frame to look for codes in.
pub fn decode_gray(bytes: &[u8]) -> Result<image::GrayImage, PhotoError> {
    let format = sniff(bytes)?;
    Ok(decode(bytes, format)?.into_luma8())
}

fn sniff(bytes: &[u8]) -> Result<ImageFormat, PhotoError> {
    match bytes {
        [] => Err(PhotoError::Empty),
        [0xFF, 0xD8, 0xFF, ..] => Ok(ImageFormat::Jpeg),
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Ok(ImageFormat::Png),
        _ => Err(PhotoError::UnsupportedFormat),
    }
}

fn decode(bytes: &[u8], format: ImageFormat) -> Result<DynamicImage, PhotoError> {
    let undecodable = |e: image::ImageError| PhotoError::Undecodable(e.to_string());
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODED_SIDE);
    limits.max_image_height = Some(MAX_DECODED_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| too_big_or(e, undecodable))?;
    let (width, height) = decoder.dimensions();
    if width.max(height) > MAX_DECODED_SIDE {
        return Err(PhotoError::TooManyPixels { width, height });
    }
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| too_big_or(e, undecodable))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(img)
}

fn too_big_or(e: image::ImageError, other: impl Fn(image::ImageError) -> PhotoError) -> PhotoError {
    match e {
        image::ImageError::Limits(l) => {
            PhotoError::Undecodable(format!("image too large to decode: {l}"))
        }
        e => other(e),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use image::{ImageEncoder, Rgb, RgbImage};

    /// A small real PNG of the given size.
    pub fn png(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, y| Rgb([x as u8, y as u8, 128]));
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&img, width, height, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    }

    /// A JPEG carrying an EXIF APP1 segment with a GPS-looking marker.
    fn jpeg_with_exif() -> Vec<u8> {
        let img = RgbImage::from_pixel(40, 20, Rgb([10, 200, 30]));
        let mut plain = Vec::new();
        JpegEncoder::new(&mut plain).encode_image(&img).unwrap();
        let mut app1 = b"Exif\0\0MM\0*\0\0\0\x08\0\0GPSLatitude=31.2304".to_vec();
        let len = (app1.len() + 2) as u16;
        let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
        out.extend_from_slice(&len.to_be_bytes());
        out.append(&mut app1);
        out.extend_from_slice(&plain[2..]);
        out
    }

    #[test]
    fn reencodes_and_bounds_size() {
        let p = process(&png(3000, 1000), 1600).unwrap();
        assert_eq!((p.width, p.height), (1600, 533));
        assert_eq!(&p.jpeg[..3], &[0xFF, 0xD8, 0xFF]);
        assert_eq!(p.sha256, hex::encode(Sha256::digest(&p.jpeg)));
        let small = process(&png(10, 20), 1600).unwrap();
        assert_eq!((small.width, small.height), (10, 20));
    }

    #[test]
    fn strips_metadata() {
        let input = jpeg_with_exif();
        assert!(input.windows(4).any(|w| w == b"Exif"));
        let p = process(&input, 1600).unwrap();
        assert!(!p.jpeg.windows(4).any(|w| w == b"Exif"));
        assert!(!p.jpeg.windows(3).any(|w| w == b"GPS"));
    }

    #[test]
    fn refuses_what_is_not_a_photo() {
        let mut truncated = png(50, 50);
        truncated.truncate(60);
        let gif = b"GIF89a\x01\x00\x01\x00".to_vec();
        let cases: [(&[u8], &str); 4] = [
            (b"", "empty"),
            (&gif, "only JPEG and PNG"),
            (b"\xFF\xD8\xFFnot really a jpeg", "not a readable image"),
            (&truncated, "not a readable image"),
        ];
        for (input, want) in cases {
            let err = process(input, 1600).unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
            assert!(err.is_bad_input());
        }
    }

    #[test]
    fn refuses_decompression_bombs() {
        // A valid PNG header claiming 20000x20000 pixels.
        let mut png = png(1, 1);
        png[16..20].copy_from_slice(&20_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&20_000u32.to_be_bytes());
        let err = process(&png, 1600).unwrap_err();
        assert!(err.is_bad_input(), "{err}");
    }
}
