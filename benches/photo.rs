//! Photo ingest against libjpeg-turbo, side by side in one run (issue 20).
//!
//! Inputs (generated, seeded, in `target/tmp/photo-bench/`): a 12 MP
//! (4000×3000) phone-style JPEG, a 3 MP (2000×1500) JPEG and a 3 MP PNG.
//! For each, the time to turn it into what the station stores (at most
//! 1600 px, JPEG quality 85):
//!
//! - **libjpeg-turbo**: `djpeg [-scale 1/2] | pamscale -xyfit 1600 1600 |
//!   cjpeg -quality 85` (PNG: `pngtopnm | pamscale | cjpeg`), the same
//!   output size and quality; and the issue's `djpeg -scale 1/2 | cjpeg`
//!   (2000×1500, no resize) for the 12 MP one;
//! - **yizhan in-process**: `photo::process` (decode, orient, resize,
//!   encode, SHA-256);
//! - **yizhan over HTTP**: `POST /api/v1/parcels/{id}/photos` on the real
//!   daemon (also the durable write and the row), and the daemon's peak
//!   memory (VmHWM) before and after one 12 MP photo, and its resident
//!   memory once idle again.
//!
//! Medians of `--runs N` (default 9). `cargo bench --bench photo`; needs
//! `djpeg`/`cjpeg` (libjpeg-turbo-progs) and `pamscale`/`pngtopnm`
//! (netpbm). Figures: docs/PERFORMANCE.md, "Photos".

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(9usize);
    // --only ingest|stages|memory|checkin: one part (under qemu, memory alone).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let part = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("photo-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let inputs = make_inputs(&dir);
    let twelve = std::fs::read(&inputs[0].path).unwrap();
    if part("ingest") {
        ingest(&dir, &inputs, runs);
    }
    if part("stages") {
        stages(&twelve, runs);
    }
    if part("memory") {
        Daemon::start(&dir, &[]).memory_report(&twelve);
    }
    if part("checkin") {
        checkin_flushes(&dir, runs.max(9));
    }
}

/// Goal 1: the time to turn each input into what the station stores.
fn ingest(dir: &Path, inputs: &[Input], runs: usize) {
    println!("photo ingest, medians of {runs} (ms):\n");
    println!(
        "libjpeg-turbo: `djpeg [-scale 1/2] | cjpeg -quality 85` (PNG: `pngtopnm | cjpeg`), as a\n\
         pipe (two processes: on two cores decode and encode overlap) and pinned to one core\n\
         (`taskset -c 0`, like for like: yizhan's ingest is one thread); ratio = yizhan / one core.\n"
    );
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>10} {:>7} {:>10}",
        "input", "turbo pipe", "turbo 1cpu", "yizhan", "yiz HTTP", "ratio", "before"
    );
    let daemon = Daemon::start(dir, &[]);
    for input in inputs {
        let bytes = std::fs::read(&input.path).unwrap();
        let turbo = median(runs, || time_shell(&input.turbo));
        let turbo_one = median(runs, || {
            time_shell(&format!("taskset -c 0 bash -c '{}'", input.turbo))
        });
        let ours = median(runs, || {
            let t = Instant::now();
            let p = yizhan::photo::process(&bytes, 1600).expect("a photo");
            assert!(p.width.max(p.height) <= 1600);
            t.elapsed()
        });
        let http = median(runs, || daemon.upload(&bytes));
        let before = median(runs, || {
            let t = Instant::now();
            before_process(&bytes, 1600);
            t.elapsed()
        });
        println!(
            "{:<22} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>6.2}x {:>10.1}",
            input.name,
            ms(turbo),
            ms(turbo_one),
            ms(ours),
            ms(http),
            ms(ours) / ms(turbo_one),
            ms(before)
        );
        if let Some(resized) = &input.issue_command {
            let t = median(runs, || time_shell(resized));
            println!(
                "{:<22} {:>10.1}   (pipe, with netpbm's pamscale to 1600 px between)",
                "",
                ms(t)
            );
        }
    }
}

/// The pipeline before issue 20, for comparison in the same run: the
/// `image` crate's full-size decode, its Triangle resize and its encoder.
fn before_process(bytes: &[u8], max_px: u32) -> Vec<u8> {
    use image::ImageDecoder;
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .unwrap();
    reader.no_limits();
    let mut decoder = reader.into_decoder().unwrap();
    let orientation = decoder.orientation().ok();
    let mut img = image::DynamicImage::from_decoder(decoder).unwrap();
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    let img = img.resize(max_px, max_px, image::imageops::FilterType::Triangle);
    let rgb = img.to_rgb8();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
        .encode_image(&rgb)
        .unwrap();
    jpeg
}

/// What each change of issue 20 bought: the 12 MP photo's stages, the old
/// way (`image`: full decode, Triangle resize of 12 MP, its encoder) and
/// the new (`jpeg-decoder` at 1/2 scale, `fast_image_resize` bilinear of
/// 3 MP, `jpeg-encoder`), and a quarter turn of the picture before and
/// after the resize (an EXIF-rotated phone photo).
fn stages(bytes: &[u8], runs: usize) {
    use fast_image_resize::images::{TypedImage, TypedImageRef};
    use fast_image_resize::pixels::U8x3;
    let time = |f: &mut dyn FnMut()| {
        median(runs, || {
            let t = Instant::now();
            f();
            t.elapsed()
        })
    };
    let full = image::load_from_memory(bytes).unwrap().to_rgb8();
    let old_decode = time(&mut || {
        image::load_from_memory(bytes).unwrap();
    });
    let decode_half = || {
        let mut d = jpeg_decoder::Decoder::new(std::io::Cursor::new(bytes));
        d.read_info().unwrap();
        let (w, h) = d.scale(1600, u16::MAX).unwrap();
        image::RgbImage::from_raw(u32::from(w), u32::from(h), d.decode().unwrap()).unwrap()
    };
    let half = decode_half();
    let new_decode = time(&mut || {
        decode_half();
    });
    let old_resize = time(&mut || {
        image::imageops::resize(&full, 1600, 1200, image::imageops::FilterType::Triangle);
    });
    let fir = |src: &image::RgbImage| {
        let view =
            TypedImageRef::<U8x3>::from_buffer(src.width(), src.height(), src.as_raw()).unwrap();
        let mut out = vec![0u8; 1600 * 1200 * 3];
        let mut dst = TypedImage::<U8x3>::from_buffer(1600, 1200, &mut out).unwrap();
        let options = fast_image_resize::ResizeOptions::new().resize_alg(
            fast_image_resize::ResizeAlg::Convolution(fast_image_resize::FilterType::Bilinear),
        );
        fast_image_resize::Resizer::new()
            .resize_typed(&view, &mut dst, &options)
            .unwrap();
        image::RgbImage::from_raw(1600, 1200, out).unwrap()
    };
    let small = fir(&half);
    let new_resize = time(&mut || {
        fir(&half);
    });
    let turn_full = time(&mut || {
        image::imageops::rotate90(&full);
    });
    let turn_small = time(&mut || {
        image::imageops::rotate90(&small);
    });
    let old_encode = time(&mut || {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
            .encode_image(&small)
            .unwrap();
    });
    let new_encode = time(&mut || {
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 85)
            .encode(small.as_raw(), 1600, 1200, jpeg_encoder::ColorType::Rgb)
            .unwrap();
    });
    println!("\n12 MP photo by stage, medians of {runs} (ms): before -> now\n");
    for (stage, before, now) in [
        (
            "decode (full -> 1/2 scale in the DCT)",
            old_decode,
            new_decode,
        ),
        (
            "resize to 1600 px (12 MP Triangle -> 3 MP SIMD bilinear)",
            old_resize,
            new_resize,
        ),
        (
            "quarter turn (of 12 MP -> of the 1.9 MP result)",
            turn_full,
            turn_small,
        ),
        ("encode q85 (image -> jpeg-encoder)", old_encode, new_encode),
    ] {
        println!("{stage:<58} {:>7.1} -> {:>6.1}", ms(before), ms(now));
    }
}

struct Input {
    name: &'static str,
    path: PathBuf,
    turbo: String,
    issue_command: Option<String>,
}

/// A seeded image that compresses like a phone photo: smooth light,
/// texture, edges, sensor noise.
fn phone_photo(w: u32, h: u32) -> image::RgbImage {
    let mut rng = fastrand::Rng::with_seed(u64::from(w));
    image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let light = 120.0 + 80.0 * (fx * 3.1).sin() * (fy * 2.3).cos();
        let texture = 10.0 * ((x as f32 * 0.21).sin() + (y as f32 * 0.17).cos());
        let edge = if ((x / 97) + (y / 61)) % 5 == 0 {
            60.0
        } else {
            0.0
        };
        let noise = rng.f32() * 7.0;
        let v = |k: f32| (light + texture * k + edge + noise).clamp(0.0, 255.0) as u8;
        image::Rgb([v(1.0), v(0.8), v(0.6)])
    })
}

/// `n` different 12 MP phone photos: a station stores a photo it already
/// has once (by hash), so a bench of check-ins needs a new one each time.
fn distinct_photos(n: usize) -> Vec<Vec<u8>> {
    let base = phone_photo(4000, 3000);
    (0..n)
        .map(|i| {
            let mut img = base.clone();
            // A 64x64 patch whose place and shade differ per photo.
            let (px, py) = ((i as u32 * 131) % 3900, (i as u32 * 71) % 2900);
            for y in py..py + 64 {
                for x in px..px + 64 {
                    img.put_pixel(x, y, image::Rgb([(i * 37 % 256) as u8, 20, 200]));
                }
            }
            let mut bytes = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 92)
                .encode_image(&img)
                .unwrap();
            bytes
        })
        .collect()
}

/// The bench's inputs, written once under `dir`.
fn make_inputs(dir: &Path) -> Vec<Input> {
    let mut out = Vec::new();
    for (name, w, h, png) in [
        ("12 MP JPEG 4000x3000", 4000, 3000, false),
        ("3 MP JPEG 2000x1500", 2000, 1500, false),
        ("3 MP PNG 2000x1500", 2000, 1500, true),
    ] {
        let path = dir.join(format!("{w}x{h}.{}", if png { "png" } else { "jpg" }));
        if !path.exists() {
            let img = phone_photo(w, h);
            let mut bytes = Vec::new();
            if png {
                image::DynamicImage::ImageRgb8(img)
                    .write_to(
                        &mut std::io::Cursor::new(&mut bytes),
                        image::ImageFormat::Png,
                    )
                    .unwrap();
            } else {
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 92)
                    .encode_image(&img)
                    .unwrap();
            }
            std::fs::write(&path, bytes).unwrap();
        }
        let p = path.display();
        let out_file = dir.join("turbo-out.jpg");
        let o = out_file.display();
        // libjpeg-turbo's tools cannot resize but by 1/2, 1/4, 1/8: the
        // yardstick decodes (at half scale where the target allows) and
        // encodes at quality 85 without resizing, i.e. 2000x1500 pixels
        // where yizhan encodes 1600x1200 after its resize. The same output
        // size needs a resizer between them; netpbm's pamscale is shown for
        // that, but it is slow and not libjpeg-turbo.
        let turbo = if png {
            format!("pngtopnm {p} | cjpeg -quality 85 > {o}")
        } else if w >= 3200 {
            format!("djpeg -scale 1/2 {p} | cjpeg -quality 85 > {o}")
        } else {
            format!("djpeg {p} | cjpeg -quality 85 > {o}")
        };
        let issue_command = Some(if png {
            format!("pngtopnm {p} | pamscale -xyfit 1600 1600 | cjpeg -quality 85 > {o}")
        } else if w >= 3200 {
            format!("djpeg -scale 1/2 {p} | pamscale -xyfit 1600 1600 | cjpeg -quality 85 > {o}")
        } else {
            format!("djpeg {p} | pamscale -xyfit 1600 1600 | cjpeg -quality 85 > {o}")
        });
        let size = std::fs::metadata(&path).unwrap().len();
        println!("input {name}: {} KiB", size / 1024);
        out.push(Input {
            name,
            path,
            turbo,
            issue_command,
        });
    }
    println!();
    out
}

fn time_shell(cmd: &str) -> Duration {
    let t = Instant::now();
    let status = Command::new("bash")
        .args(["-c", &format!("set -o pipefail; {cmd}")])
        .stderr(Stdio::null())
        .status()
        .expect("sh");
    assert!(
        status.success(),
        "{cmd} failed (install libjpeg-turbo-progs and netpbm)"
    );
    t.elapsed()
}

fn median(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let _warm = f();
    let mut v: Vec<Duration> = (0..runs).map(|_| f()).collect();
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Goal 3: the flushes of one whole check-in (scan, one 12 MP photo,
/// accept), counted and attributed by scripts/slow-fsync.c's log, and the
/// check-in's latency on a fast disk and with every flush 5 ms slower
/// (`SLOW_FSYNC_US=5000`, a kiosk's SD card), next to its floor: the
/// flushes it must do, times 5 ms.
fn checkin_flushes(dir: &Path, runs: usize) {
    let shim = dir.join("slow-fsync.so");
    let built = Command::new("gcc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(&shim)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/slow-fsync.c"))
        .arg("-ldl")
        .status();
    // gcc is a requirement of this bench (as of .ci/run): no silent skip.
    assert!(
        built.is_ok_and(|s| s.success()),
        "gcc could not build scripts/slow-fsync.c: install build-essential"
    );
    println!(
        "\nwhole check-in (scan, one new 12 MP photo, accept; one at a time; medians of {runs}), \
         flushes from scripts/slow-fsync.c's log:\n"
    );
    // YIZHAN_BENCH_BASELINE: an older build's binary, measured alongside.
    let baseline = std::env::var("YIZHAN_BENCH_BASELINE").ok();
    let mut builds = vec![("this build", None)];
    if let Some(b) = baseline.as_deref() {
        builds.push(("baseline", Some(b)));
    }
    println!(
        "{:<12} {:<14} {:>12} {:>9}   flushes per check-in, by file",
        "build", "SLOW_FSYNC_US", "check-in ms", "flushes"
    );
    let photos = distinct_photos(2 * builds.len() * (3 + runs));
    let mut photos = photos.iter();
    for (build, slow_us) in builds.iter().flat_map(|b| [(b, 0u64), (b, 5000)]) {
        let (build, bin) = *build;
        let log = dir.join(format!("flushes-{slow_us}.log"));
        let _ = std::fs::remove_file(&log);
        let daemon = Daemon::start_bin(
            dir,
            &[
                ("LD_PRELOAD", shim.display().to_string()),
                ("SLOW_FSYNC_US", slow_us.to_string()),
                ("SLOW_FSYNC_LOG", log.display().to_string()),
            ],
            bin,
        );
        let lines = || std::fs::read_to_string(&log).unwrap_or_default();
        // Warm-up: the first photos also create their hash's directory.
        for _ in 0..3 {
            daemon.checkin(photos.next().expect("enough photos"));
        }
        let mut times = Vec::new();
        let mut counts: std::collections::BTreeMap<&'static str, usize> = Default::default();
        let mut total = 0;
        for _ in 0..runs {
            let seen = lines().len();
            times.push(daemon.checkin(photos.next().expect("enough photos")));
            for line in lines()[seen..].lines() {
                *counts.entry(flush_target(line)).or_default() += 1;
                total += 1;
            }
        }
        times.sort();
        let per = |n: usize| n as f64 / runs as f64;
        let detail: Vec<String> = counts
            .iter()
            .map(|(k, n)| format!("{k} {:.2}", per(*n)))
            .collect();
        println!(
            "{:<12} {:<14} {:>12.1} {:>9.2}   {}",
            build,
            slow_us,
            ms(times[times.len() / 2]),
            per(total),
            detail.join(", ")
        );
    }
    println!(
        "floor with SLOW_FSYNC_US=5000: the photo file, its directory and the accept's commit \
         must be flushed (SPEC §3, §5, §9): 3 x 5 ms = 15 ms over the fast-disk check-in"
    );
}

/// Which file a slow-fsync log line flushed, by its role.
fn flush_target(line: &str) -> &'static str {
    let path = line.split_once(' ').map_or(line, |(_, p)| p);
    let name = Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    if path.ends_with(".db-wal") {
        "database log"
    } else if path.ends_with(".db") {
        "database file (checkpoint)"
    } else if path.contains("/photos/tmp/") {
        "photo file"
    } else if path.ends_with("/photos") {
        "photos directory (a new hash directory)"
    } else if path.contains("/photos/") && name.len() == 2 {
        "photo's directory"
    } else {
        "other"
    }
}

/// The real daemon, for the HTTP path and its memory.
struct Daemon {
    child: std::process::Child,
    base: String,
    token: String,
    http: reqwest::blocking::Client,
    n: std::sync::atomic::AtomicUsize,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// The daemon on its own data directory under `dir`, with `env` added.
    fn start(dir: &Path, env: &[(&str, String)]) -> Daemon {
        Daemon::start_bin(dir, env, None)
    }

    /// [`Daemon::start`] with another binary than this build's.
    fn start_bin(dir: &Path, env: &[(&str, String)], bin: Option<&str>) -> Daemon {
        let tmp = tempfile::tempdir_in(dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = tmp.path().join("yizhan.toml");
        std::fs::write(
            &config,
            format!(
                "[station]\nclock_check = \"off\"\n[storage]\ndata_dir = {:?}\nmin_free_mb = 0\n[api]\nlisten = \"127.0.0.1:{port}\"\n[log]\nlevel = \"warn\"\n",
                tmp.path().join("data")
            ),
        )
        .unwrap();
        // YIZHAN_BENCH_BIN / YIZHAN_BENCH_RUNNER: another build (the
        // aarch64 one under qemu-aarch64, for its memory).
        let bin = bin.map(str::to_owned).unwrap_or_else(|| {
            std::env::var("YIZHAN_BENCH_BIN")
                .unwrap_or_else(|_| env!("CARGO_BIN_EXE_yizhan").to_owned())
        });
        let runner = std::env::var("YIZHAN_BENCH_RUNNER").unwrap_or_default();
        let mut words = runner.split_whitespace();
        let mut cmd = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let child = cmd
            .envs(env.iter().map(|(k, v)| (*k, v)))
            .arg("--config")
            .arg(&config)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let start = Instant::now();
        while http.get(format!("{base}/healthz")).send().is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let token = std::fs::read_to_string(tmp.path().join("data/operator.token")).unwrap();
        Daemon {
            child,
            base,
            token,
            http,
            n: std::sync::atomic::AtomicUsize::new(0),
            _dir: tmp,
        }
    }

    /// One photo on a new draft; the time of the photo request alone.
    fn upload(&self, bytes: &[u8]) -> Duration {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let scan: Value = self
            .http
            .post(format!("{}/api/v1/scans", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"code": format!("RT-PHOTO-{n:06}"), "channel": "clerk"}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let id = scan["parcel_id"].as_str().unwrap();
        let t = Instant::now();
        let r = self
            .http
            .post(format!(
                "{}/api/v1/parcels/{id}/photos?kind=label",
                self.base
            ))
            .bearer_auth(&self.token)
            .body(bytes.to_vec())
            .send()
            .unwrap();
        let took = t.elapsed();
        assert_eq!(r.status(), 201, "{}", r.text().unwrap_or_default());
        took
    }

    /// One whole check-in: scan, one photo, accept; its time.
    fn checkin(&self, photo: &[u8]) -> Duration {
        let n = self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let post = |path: String, body: reqwest::blocking::Body| {
            let kind = if path.contains("/photos") {
                "image/jpeg"
            } else {
                "application/json"
            };
            let r = self
                .http
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .header("content-type", kind)
                .body(body)
                .send()
                .unwrap();
            let status = r.status();
            let v: Value = r.json().unwrap_or_default();
            assert!(status.is_success(), "{path}: {status} {v}");
            v
        };
        let t = Instant::now();
        let scan = post(
            "/api/v1/scans".into(),
            json!({"code": format!("RT-CHECKIN-{n:06}"), "channel": "clerk"})
                .to_string()
                .into(),
        );
        let id = scan["parcel_id"].as_str().unwrap().to_owned();
        post(
            format!("/api/v1/parcels/{id}/photos?kind=label"),
            photo.to_vec().into(),
        );
        post(
            format!("/api/v1/parcels/{id}/accept"),
            json!({"waybill_no": format!("SF{n:012}")})
                .to_string()
                .into(),
        );
        t.elapsed()
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Peak memory before and after one 12 MP photo (call it on a fresh
    /// daemon, so no earlier upload counts), and resident memory after.
    fn memory_report(&self, photo: &[u8]) {
        let fresh = self;
        let before = fresh.status_kib("VmHWM:");
        fresh.upload(photo);
        let after = fresh.status_kib("VmHWM:");
        std::thread::sleep(Duration::from_secs(2));
        let idle = fresh.status_kib("VmRSS:");
        println!(
            "\ndaemon memory, one 12 MP photo: peak {} -> {} MiB (+{:.1} MiB); resident 2 s later {:.1} MiB",
            before / 1024,
            after / 1024,
            (after - before) as f64 / 1024.0,
            idle as f64 / 1024.0
        );
        // Eight at once: the decoding slots keep the peak bounded.
        let health = fresh.health();
        let slots = health["photos"]["decoded_at_once"].as_u64().unwrap_or(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| fresh.upload(photo));
            }
        });
        let eight = fresh.status_kib("VmHWM:");
        std::thread::sleep(Duration::from_secs(2));
        let idle = fresh.status_kib("VmRSS:");
        println!(
            "eight 12 MP photos at once ({slots} decoded at a time): peak {} MiB (+{:.1} MiB over idle); resident 2 s later {:.1} MiB",
            eight / 1024,
            (eight - before) as f64 / 1024.0,
            idle as f64 / 1024.0
        );
    }

    fn health(&self) -> Value {
        self.http
            .get(format!("{}/healthz", self.base))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
