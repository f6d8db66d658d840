//! Parcel photos (SPEC §9): prove the upload is an image, re-encode it to a
//! bounded JPEG without metadata, and name it by the SHA-256 of what is
//! stored.
//!
//! Decoding runs with memory limits, so a decompression bomb is refused
//! rather than allowed to take the kiosk down. EXIF orientation is applied
//! before the metadata is dropped, so a phone photo stays upright.

pub mod store;

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// JPEG quality of stored photos: label text stays legible at 1600 px.
const JPEG_QUALITY: u8 = 85;
/// Largest decoded side accepted, whatever the file size.
const MAX_DECODED_SIDE: u32 = 12_000;
/// Memory the decoder may allocate for one image.
const MAX_DECODE_ALLOC: u64 = 512 * 1024 * 1024;

/// Pictures decoded at once (photos and camera frames): each can take a
/// few tens of MiB while it is decoded, so a kiosk with little memory must
/// not decode many at a time. The rest wait for a slot, up to
/// [`SLOT_WAIT`], then are answered 503 `busy` (try again).
#[derive(Debug, Clone)]
pub struct Slots {
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    count: usize,
}

/// How long a photo waits for a decoding slot before it is refused.
pub const SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Memory one decode may take at its peak, for sizing the slots: a 12 MP
/// photo decoded at half scale, resized and encoded (measured: docs/
/// PERFORMANCE.md, "Photos").
const PER_DECODE: u64 = 48 << 20;

impl Slots {
    /// `configured` slots, or (0) one per 256 MiB of the machine's memory,
    /// at least 1 and at most the number of cores.
    pub fn new(configured: u32) -> Slots {
        let count = match configured {
            0 => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                let by_memory = mem_total_bytes().map_or(1, |m| (m / (256 << 20)) as usize);
                by_memory.clamp(1, cores)
            }
            n => n as usize,
        };
        Slots {
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(count)),
            count,
        }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// The most memory the decodes can take together.
    pub fn bound_bytes(&self) -> u64 {
        self.count as u64 * PER_DECODE
    }

    /// Runs `f` (a decode) on the blocking pool once a slot is free.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, SlotError> {
        self.run_within(SLOT_WAIT, f).await
    }

    /// [`Slots::run`], waiting at most `wait` for a slot.
    pub async fn run_within<T: Send + 'static>(
        &self,
        wait: std::time::Duration,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, SlotError> {
        let permit = tokio::time::timeout(wait, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| SlotError::Busy)?
            .map_err(|_| SlotError::Busy)?;
        let out = tokio::task::spawn_blocking(move || {
            let out = f();
            // The pictures' buffers went back to the allocator; hand the
            // memory back to the system so a kiosk's resident size returns
            // to idle (glibc keeps freed heap otherwise).
            release_memory();
            drop(permit);
            out
        })
        .await?;
        Ok(out)
    }
}

/// Why a decode did not run.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("the station is busy with other photos; try again in a moment")]
    Busy,
    #[error("the decoding task did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The machine's memory (`MemTotal` of /proc/meminfo).
fn mem_total_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Two malloc arenas for the daemon instead of glibc's eight per core:
/// photos are large allocations freed on other threads than they were made
/// on, and every extra arena keeps some of them resident (measured: 45 MiB
/// resident after eight 12 MP uploads with the default, 16 MiB with two;
/// docs/PERFORMANCE.md, "Photos"). Call before threads are started.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a glibc tunable; it is called before the
    // daemon starts its threads.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns freed heap memory to the operating system (glibc only).
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas; it takes no
    // pointers and is safe to call from any thread at any time.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

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
    #[error(
        "storage is nearly full ({free_mb} MiB free, floor {min_mb} MiB): photos are refused until space is freed"
    )]
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
///
/// # How (issue 20, docs/PERFORMANCE.md "Photos")
/// A JPEG at least twice as large as the target is decoded at 1/2, 1/4 or
/// 1/8 scale in the DCT domain (libjpeg's trick, in `jpeg-decoder`): a
/// 12 MP phone photo becomes 3 MP without ever being 12 MP in memory. The
/// rest is resized with a SIMD convolution (`fast_image_resize`), rotated
/// upright, and encoded by `jpeg-encoder`. Only the resized picture is
/// rotated: fewer pixels to move.
pub fn process(bytes: &[u8], max_px: u32) -> Result<Processed, PhotoError> {
    let format = sniff(bytes)?;
    let (rgb, orientation) = match format {
        ImageFormat::Jpeg => decode_jpeg(bytes, max_px)?,
        _ => (decode(bytes, format)?.into_rgb8(), None),
    };
    let rgb = fit(rgb, max_px)?;
    let rgb = match orientation {
        Some(o) if o != image::metadata::Orientation::NoTransforms => {
            let mut img = DynamicImage::ImageRgb8(rgb);
            img.apply_orientation(o);
            img.into_rgb8()
        }
        _ => rgb,
    };
    let jpeg = encode_jpeg(&rgb)?;
    let sha256 = hex::encode(Sha256::digest(&jpeg));
    Ok(Processed {
        jpeg,
        sha256,
        width: rgb.width(),
        height: rgb.height(),
    })
}

/// A JPEG, at the smallest DCT scale (1, 1/2, 1/4, 1/8) that still covers
/// `max_px`; with its EXIF orientation.
fn decode_jpeg(
    bytes: &[u8],
    max_px: u32,
) -> Result<(RgbImage, Option<image::metadata::Orientation>), PhotoError> {
    let bad = |e: jpeg_decoder::Error| PhotoError::Undecodable(e.to_string());
    let mut d = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    d.set_max_decoding_buffer_size(MAX_DECODE_ALLOC as usize);
    d.read_info().map_err(bad)?;
    let info = d
        .info()
        .ok_or_else(|| PhotoError::Undecodable("no image in the JPEG".into()))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    if width == 0 || height == 0 {
        return Err(PhotoError::Undecodable("a JPEG of no pixels".into()));
    }
    if width.max(height) > MAX_DECODED_SIDE {
        return Err(PhotoError::TooManyPixels { width, height });
    }
    // The longest side decides the scale (the decoder picks the smallest
    // scale at which either side reaches what is asked); the other follows.
    let ask = clamp_u16(max_px);
    let (ask_w, ask_h) = if width >= height {
        (ask, u16::MAX)
    } else {
        (u16::MAX, ask)
    };
    let (w, h) = d.scale(ask_w, ask_h).map_err(bad)?;
    let pixels = d.decode().map_err(bad)?;
    let orientation = d
        .exif_data()
        .and_then(image::metadata::Orientation::from_exif_chunk);
    let (w, h) = (u32::from(w), u32::from(h));
    let n = w as usize * h as usize;
    let rgb: Vec<u8> = match d.info().map(|i| i.pixel_format) {
        Some(jpeg_decoder::PixelFormat::RGB24) => pixels,
        Some(jpeg_decoder::PixelFormat::L8) => pixels.iter().flat_map(|&l| [l, l, l]).collect(),
        Some(jpeg_decoder::PixelFormat::L16) => pixels
            .chunks_exact(2)
            .flat_map(|l| [l[0], l[0], l[0]])
            .collect(),
        Some(jpeg_decoder::PixelFormat::CMYK32) => pixels
            .chunks_exact(4)
            .flat_map(|p| {
                // Adobe's inverted CMYK, as phones and scanners write it.
                let k = u16::from(p[3]);
                [p[0], p[1], p[2]].map(|c| (u16::from(c) * k / 255) as u8)
            })
            .collect(),
        None => return Err(PhotoError::Undecodable("no pixel format".into())),
    };
    if rgb.len() < n * 3 {
        return Err(PhotoError::Undecodable("the JPEG decoded short".into()));
    }
    let img = RgbImage::from_raw(w, h, rgb)
        .ok_or_else(|| PhotoError::Undecodable("the JPEG decoded short".into()))?;
    Ok((img, orientation))
}

fn clamp_u16(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

/// The size `width`×`height` is resized to so that its longest side is at
/// most `max_px` (unchanged if it already is).
fn fitted(width: u32, height: u32, max_px: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_px {
        return (width, height);
    }
    let scale = |v: u32| {
        let exact = f64::from(v) * f64::from(max_px) / f64::from(longest);
        (exact.round() as u32).max(1)
    };
    (scale(width), scale(height))
}

/// Resizes to fit `max_px` with a SIMD bilinear convolution. The typed
/// call builds the resizer for RGB8 only (the untyped one matches on every
/// pixel type and linked all of them: ~0.5 MiB of the binary).
fn fit(rgb: RgbImage, max_px: u32) -> Result<RgbImage, PhotoError> {
    use fast_image_resize::images::{TypedImage, TypedImageRef};
    use fast_image_resize::pixels::U8x3;
    use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
    let (w, h) = rgb.dimensions();
    let (nw, nh) = fitted(w, h, max_px);
    if (nw, nh) == (w, h) {
        return Ok(rgb);
    }
    let failed = |e: &dyn std::fmt::Display| PhotoError::Undecodable(format!("cannot resize: {e}"));
    let src = TypedImageRef::<U8x3>::from_buffer(w, h, rgb.as_raw()).map_err(|e| failed(&e))?;
    let mut out = vec![0u8; nw as usize * nh as usize * 3];
    let mut dst = TypedImage::<U8x3>::from_buffer(nw, nh, &mut out).map_err(|e| failed(&e))?;
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize_typed(&src, &mut dst, &options)
        .map_err(|e| failed(&e))?;
    RgbImage::from_raw(nw, nh, out).ok_or_else(|| failed(&"the resized picture is short"))
}

fn encode_jpeg(rgb: &RgbImage) -> Result<Vec<u8>, PhotoError> {
    let (w, h) = (clamp_u16(rgb.width()), clamp_u16(rgb.height()));
    let mut jpeg = Vec::with_capacity(rgb.len() / 8);
    jpeg_encoder::Encoder::new(&mut jpeg, JPEG_QUALITY)
        .encode(rgb.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| PhotoError::Undecodable(format!("cannot encode: {e}")))?;
    Ok(jpeg)
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
    use image::codecs::jpeg::JpegEncoder;
    use image::{ImageEncoder, Rgb};

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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn decodes_beyond_the_slots_wait_then_are_refused() {
        let slots = Slots::new(1);
        assert_eq!(slots.count(), 1);
        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let busy = slots.clone();
        let first = tokio::spawn(async move {
            busy.run(move || {
                started_tx.send(()).unwrap();
                released.recv().unwrap();
                1
            })
            .await
        });
        tokio::task::spawn_blocking(move || started.recv().unwrap())
            .await
            .unwrap();
        let second = slots
            .run_within(std::time::Duration::from_millis(50), || 2)
            .await;
        assert!(matches!(second, Err(SlotError::Busy)), "{second:?}");
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(slots.run(|| 3).await.unwrap(), 3, "the slot is free again");
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

    /// A JPEG of `w`×`h` carrying an EXIF orientation tag.
    fn jpeg_oriented(w: u32, h: u32, orientation: u16) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, _| Rgb([(x % 256) as u8, 100, 50]));
        let mut plain = Vec::new();
        JpegEncoder::new(&mut plain).encode_image(&img).unwrap();
        // A minimal big-endian TIFF with one IFD entry: Orientation (0x0112).
        let mut tiff = b"Exif\0\0MM\0*\0\0\0\x08\0\x01".to_vec();
        tiff.extend_from_slice(&[0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1]);
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let len = (tiff.len() + 2) as u16;
        let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&tiff);
        out.extend_from_slice(&plain[2..]);
        out
    }

    #[test]
    fn phone_photos_are_turned_upright_and_shrunk() {
        // Orientation 6: the camera was turned; the stored photo is upright
        // (width and height swapped).
        let p = process(&jpeg_oriented(4000, 3000, 6), 1600).unwrap();
        assert_eq!((p.width, p.height), (1200, 1600));
        let p = process(&jpeg_oriented(400, 300, 1), 1600).unwrap();
        assert_eq!((p.width, p.height), (400, 300));
        let back = image::load_from_memory(&p.jpeg).unwrap();
        assert_eq!(back.width(), 400);
    }

    #[test]
    fn jpegs_of_every_size_fit_exactly() {
        for (w, h, want) in [
            (4000, 3000, (1600, 1200)),
            (3000, 4000, (1200, 1600)),
            (2000, 1500, (1600, 1200)),
            (1601, 10, (1600, 10)),
            (12_000, 9, (1600, 2)),
            (800, 600, (800, 600)),
        ] {
            let img = RgbImage::from_pixel(w, h, Rgb([90, 90, 90]));
            let mut jpeg = Vec::new();
            JpegEncoder::new(&mut jpeg).encode_image(&img).unwrap();
            let p = process(&jpeg, 1600).unwrap();
            assert_eq!((p.width, p.height), want, "{w}x{h}");
        }
        // Grey-scale JPEGs too.
        let grey = image::GrayImage::from_pixel(3200, 2400, image::Luma([77]));
        let mut jpeg = Vec::new();
        JpegEncoder::new(&mut jpeg).encode_image(&grey).unwrap();
        assert_eq!(process(&jpeg, 1600).unwrap().width, 1600);
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
