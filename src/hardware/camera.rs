//! The kiosk's own camera (`[hardware.camera]`, V4L2): frames captured on a
//! thread of their own, looked through for return codes a few times a
//! second (`decode = true`, self-service), and the latest one kept for a
//! parcel photo on request (`POST …/photos?source=camera`).
//!
//! Capture is MJPEG where the camera offers it (each frame is a JPEG), else
//! YUYV. Everything after the capture — turning a frame into grey levels or
//! a JPEG, finding codes, deciding them — works on [`Frame`]s and is tested
//! on real frames; the V4L2 capture itself needs a device (docs/KIOSK.md
//! says what was tested where).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::{GrayImage, RgbImage};
use tokio::sync::{mpsc, watch};

use super::lines::Rereads;
use super::{DeviceState, POLL, pause, report};
use crate::config::CameraConfig;
use crate::parcel::Channel;
use crate::station::Station;

/// The camera's name in `/healthz` and metrics.
pub const NAME: &str = "camera";

/// Frames looked at per second at most (decoding one takes tens of ms).
const FRAME_EVERY: Duration = Duration::from_millis(300);
/// A photo on request uses a frame at most this old.
pub const FRESH: Duration = Duration::from_secs(2);
/// The capture size asked for (the camera may give another).
const WANT: (u32, u32) = (1280, 720);

/// How a frame's bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFormat {
    /// A whole JPEG per frame.
    Mjpeg,
    /// YUV 4:2:2, two bytes per pixel: Y0 U Y1 V.
    Yuyv { stride: u32 },
}

/// One captured frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub format: FrameFormat,
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
    pub at: Instant,
}

impl Frame {
    /// Grey levels, for finding codes.
    pub fn to_gray(&self) -> Result<GrayImage, String> {
        match self.format {
            FrameFormat::Mjpeg => {
                image::load_from_memory_with_format(&self.data, image::ImageFormat::Jpeg)
                    .map(|i| i.to_luma8())
                    .map_err(|e| format!("not a JPEG frame: {e}"))
            }
            FrameFormat::Yuyv { stride } => {
                let (w, h) = (self.width, self.height);
                let need = stride as usize * h as usize;
                if self.data.len() < need || (stride as usize) < 2 * w as usize {
                    return Err(format!(
                        "a YUYV frame of {} bytes is short for {w}x{h}",
                        self.data.len()
                    ));
                }
                // Luma is every other byte.
                Ok(GrayImage::from_fn(w, h, |x, y| {
                    image::Luma([self.data[(y * stride + 2 * x) as usize]])
                }))
            }
        }
    }

    /// The frame as a JPEG file, for the photo path (which re-encodes it
    /// like any upload).
    pub fn to_jpeg(&self) -> Result<Vec<u8>, String> {
        match self.format {
            FrameFormat::Mjpeg => Ok(self.data.clone()),
            FrameFormat::Yuyv { stride } => {
                let rgb = yuyv_to_rgb(&self.data, self.width, self.height, stride)?;
                let mut out = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95)
                    .encode_image(&rgb)
                    .map_err(|e| e.to_string())?;
                Ok(out)
            }
        }
    }
}

fn yuyv_to_rgb(data: &[u8], w: u32, h: u32, stride: u32) -> Result<RgbImage, String> {
    if data.len() < stride as usize * h as usize || !w.is_multiple_of(2) {
        return Err("a YUYV frame of the wrong size".into());
    }
    let clamp = |v: f32| v.clamp(0.0, 255.0) as u8;
    Ok(RgbImage::from_fn(w, h, |x, y| {
        let i = (y * stride + (x & !1) * 2) as usize;
        let luma = f32::from(data[i + if x % 2 == 0 { 0 } else { 2 }]);
        let (u, v) = (
            f32::from(data[i + 1]) - 128.0,
            f32::from(data[i + 3]) - 128.0,
        );
        image::Rgb([
            clamp(luma + 1.402 * v),
            clamp(luma - 0.344 * u - 0.714 * v),
            clamp(luma + 1.772 * u),
        ])
    }))
}

/// Runs the camera until `stop`: capture on a thread, codes decided here.
pub(super) async fn run(station: Station, cfg: CameraConfig, mut stop: watch::Receiver<bool>) {
    let (frames_tx, mut frames) = mpsc::channel::<Arc<Frame>>(1);
    let capture = {
        let (station, device, stop) = (station.clone(), cfg.device.clone(), stop.clone());
        std::thread::Builder::new()
            .name("yizhan-camera".into())
            .spawn(move || capture_loop(&station, &device, &frames_tx, &stop))
    };
    if let Err(e) = capture {
        report(
            &station,
            NAME,
            DeviceState::Error,
            Some(format!("cannot start the capture thread: {e}")),
        );
        return;
    }
    let mut rereads = Rereads::default();
    loop {
        let frame = tokio::select! {
            f = frames.recv() => match f {
                Some(f) => f,
                None => return,
            },
            () = super::stopped(&mut stop) => return,
        };
        if cfg.decode {
            look_for_codes(&station, frame, &mut rereads).await;
        }
    }
}

/// Decides the return codes in one frame, as a self-service scanner would.
pub async fn look_for_codes(station: &Station, frame: Arc<Frame>, rereads: &mut Rereads) {
    let found =
        tokio::task::spawn_blocking(move || frame.to_gray().map(|g| crate::decode::find_codes(&g)))
            .await;
    let codes = match found {
        Ok(Ok(codes)) => codes,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "a camera frame could not be read");
            return;
        }
        Err(_) => return,
    };
    for code in codes {
        if rereads.is_new(&code.text, Instant::now()) {
            super::scanner::dispatch(station, NAME, Channel::SelfService, code.text).await;
        }
    }
}

/// Opens the camera (again whenever it goes away) and streams frames:
/// every frame becomes the latest (for photos), one every
/// [`FRAME_EVERY`] goes to the decoder.
fn capture_loop(
    station: &Station,
    device: &Path,
    frames: &mpsc::Sender<Arc<Frame>>,
    stop: &watch::Receiver<bool>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build();
    let Ok(rt) = rt else { return };
    let mut stop_wait = stop.clone();
    loop {
        if *stop.borrow() {
            return;
        }
        match stream(station, device, frames, stop) {
            Ok(()) => return,
            Err(e) => {
                let state = if e.kind() == std::io::ErrorKind::NotFound {
                    DeviceState::Missing
                } else {
                    DeviceState::Error
                };
                report(
                    station,
                    NAME,
                    state,
                    Some(format!("{}: {e}", device.display())),
                );
            }
        }
        if rt.block_on(pause(POLL, &mut stop_wait)) {
            return;
        }
    }
}

/// One capture session; `Ok` when stopped, an error when the camera
/// failed or went away.
fn stream(
    station: &Station,
    device: &Path,
    frames: &mpsc::Sender<Arc<Frame>>,
    stop: &watch::Receiver<bool>,
) -> std::io::Result<()> {
    use linuxvideo::format::{PixFormat, PixelFormat};
    use linuxvideo::{BufType, Device};
    let dev = Device::open(device)?;
    let offered: Vec<PixelFormat> = dev
        .formats(BufType::VIDEO_CAPTURE)
        .filter_map(|f| f.ok().map(|f| f.pixel_format()))
        .collect();
    let want = if offered.contains(&PixelFormat::MJPG) {
        PixelFormat::MJPG
    } else if offered.contains(&PixelFormat::YUYV) {
        PixelFormat::YUYV
    } else {
        return Err(std::io::Error::other(format!(
            "the camera offers neither MJPEG nor YUYV (it offers {offered:?})"
        )));
    };
    let capture = dev.video_capture(PixFormat::new(WANT.0, WANT.1, want))?;
    let (width, height, chosen, line) = {
        let f = capture.format();
        (f.width(), f.height(), f.pixel_format(), f.bytes_per_line())
    };
    let format = match chosen {
        f if f == PixelFormat::MJPG || f == PixelFormat::JPEG => FrameFormat::Mjpeg,
        f if f == PixelFormat::YUYV => FrameFormat::Yuyv {
            stride: line.max(width * 2),
        },
        other => {
            return Err(std::io::Error::other(format!(
                "the camera chose {other:?}, which is neither MJPEG nor YUYV"
            )));
        }
    };
    let mut stream = capture.into_stream()?;
    report(
        station,
        NAME,
        DeviceState::Ok,
        Some(format!("{width}x{height} {chosen:?}")),
    );
    let mut last_sent = Instant::now() - FRAME_EVERY;
    while !*stop.borrow() {
        let data = stream.dequeue(|buf| Ok(buf.to_vec()))?;
        let frame = Arc::new(Frame {
            format,
            width,
            height,
            data,
            at: Instant::now(),
        });
        station.devices().keep_frame(frame.clone());
        if last_sent.elapsed() >= FRAME_EVERY && frames.try_send(frame).is_ok() {
            last_sent = Instant::now();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A YUYV frame whose luma is `img` (neutral chroma).
    pub fn yuyv_of(img: &GrayImage) -> Frame {
        let (w, h) = img.dimensions();
        let mut data = Vec::with_capacity((w * h * 2) as usize);
        for y in 0..h {
            for x in 0..w {
                data.push(img.get_pixel(x, y)[0]);
                data.push(128);
            }
        }
        Frame {
            format: FrameFormat::Yuyv { stride: w * 2 },
            width: w,
            height: h,
            data,
            at: Instant::now(),
        }
    }

    #[test]
    fn yuyv_frames_give_their_luma_and_a_jpeg() {
        let img = GrayImage::from_fn(64, 32, |x, y| image::Luma([(x * 4 + y) as u8]));
        let frame = yuyv_of(&img);
        assert_eq!(frame.to_gray().unwrap(), img);
        let jpeg = frame.to_jpeg().unwrap();
        let back = image::load_from_memory(&jpeg).unwrap().to_luma8();
        assert_eq!(back.dimensions(), (64, 32));
        let short = Frame {
            data: vec![0; 10],
            ..frame
        };
        assert!(short.to_gray().is_err());
    }

    #[test]
    fn a_yuyv_frame_showing_a_code_decodes() {
        let code = qrcode::QrCode::new(b"RT-CAMERA-0001").unwrap();
        let qr = code
            .render::<image::Luma<u8>>()
            .module_dimensions(8, 8)
            .build();
        let mut img = GrayImage::from_pixel(640, 360, image::Luma([200]));
        image::imageops::overlay(&mut img, &qr, 200, 60);
        let gray = yuyv_of(&img).to_gray().unwrap();
        let found = crate::decode::find_codes(&gray);
        assert_eq!(found[0].text, "RT-CAMERA-0001");
    }

    #[test]
    fn mjpeg_frames_are_jpegs() {
        let img = GrayImage::from_pixel(32, 16, image::Luma([90]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode_image(&img)
            .unwrap();
        let frame = Frame {
            format: FrameFormat::Mjpeg,
            width: 32,
            height: 16,
            data: jpeg.clone(),
            at: Instant::now(),
        };
        assert_eq!(frame.to_gray().unwrap().dimensions(), (32, 16));
        assert_eq!(frame.to_jpeg().unwrap(), jpeg);
        let broken = Frame {
            data: b"not a jpeg".to_vec(),
            ..frame
        };
        assert!(broken.to_gray().is_err());
    }
}
