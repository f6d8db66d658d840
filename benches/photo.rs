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

use serde_json::{json, Value};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(9usize);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("photo-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let inputs = make_inputs(&dir);
    println!("photo ingest, medians of {runs} (ms):\n");
    println!(
        "{:<26} {:>14} {:>16} {:>12} {:>9}",
        "input", "libjpeg-turbo", "yizhan process", "yizhan HTTP", "ratio"
    );
    let daemon = Daemon::start(&dir);
    for input in &inputs {
        let bytes = std::fs::read(&input.path).unwrap();
        let turbo = median(runs, || time_shell(&input.turbo));
        let ours = median(runs, || {
            let t = Instant::now();
            let p = yizhan::photo::process(&bytes, 1600).expect("a photo");
            assert!(p.width.max(p.height) <= 1600);
            t.elapsed()
        });
        let http = median(runs, || daemon.upload(&bytes));
        println!(
            "{:<26} {:>14.1} {:>16.1} {:>12.1} {:>8.2}x",
            input.name,
            ms(turbo),
            ms(ours),
            ms(http),
            ms(ours) / ms(turbo)
        );
        if let Some(issue) = &input.issue_command {
            let t = median(runs, || time_shell(issue));
            println!(
                "{:<26} {:>14.1}   (djpeg -scale 1/2 | cjpeg, 2000x1500, no resize)",
                "",
                ms(t)
            );
        }
    }
    daemon.memory_report(&std::fs::read(&inputs[0].path).unwrap());
}

struct Input {
    name: &'static str,
    path: PathBuf,
    turbo: String,
    issue_command: Option<String>,
}

/// Seeded inputs that compress like phone photos: smooth light, texture,
/// edges, sensor noise.
fn make_inputs(dir: &Path) -> Vec<Input> {
    let photo = |w: u32, h: u32| {
        let mut rng = fastrand::Rng::with_seed(u64::from(w));
        image::RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let light = 120.0 + 80.0 * (fx * 3.1).sin() * (fy * 2.3).cos();
            let texture = 25.0 * ((x as f32 * 0.21).sin() + (y as f32 * 0.17).cos());
            let edge = if ((x / 97) + (y / 61)) % 5 == 0 {
                60.0
            } else {
                0.0
            };
            let noise = rng.f32() * 18.0;
            let v = |k: f32| (light + texture * k + edge + noise).clamp(0.0, 255.0) as u8;
            image::Rgb([v(1.0), v(0.8), v(0.6)])
        })
    };
    let mut out = Vec::new();
    for (name, w, h, png) in [
        ("12 MP JPEG 4000x3000", 4000, 3000, false),
        ("3 MP JPEG 2000x1500", 2000, 1500, false),
        ("3 MP PNG 2000x1500", 2000, 1500, true),
    ] {
        let path = dir.join(format!("{w}x{h}.{}", if png { "png" } else { "jpg" }));
        if !path.exists() {
            let img = photo(w, h);
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
        let turbo = if png {
            format!("pngtopnm {p} | pamscale -xyfit 1600 1600 | cjpeg -quality 85 > {o}")
        } else if w >= 3200 {
            format!("djpeg -scale 1/2 {p} | pamscale -xyfit 1600 1600 | cjpeg -quality 85 > {o}")
        } else {
            format!("djpeg {p} | pamscale -xyfit 1600 1600 | cjpeg -quality 85 > {o}")
        };
        let issue_command =
            (w >= 3200).then(|| format!("djpeg -scale 1/2 {p} | cjpeg -quality 85 > {o}"));
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
    let status = Command::new("sh")
        .args(["-c", &format!("set -o pipefail 2>/dev/null; {cmd}")])
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

/// The real daemon, for the HTTP path and its memory.
struct Daemon {
    child: std::process::Child,
    base: String,
    token: String,
    http: reqwest::blocking::Client,
    n: std::cell::Cell<usize>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(dir: &Path) -> Daemon {
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
        let child = Command::new(env!("CARGO_BIN_EXE_yizhan"))
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
            n: std::cell::Cell::new(0),
            _dir: tmp,
        }
    }

    /// One photo on a new draft; the time of the photo request alone.
    fn upload(&self, bytes: &[u8]) -> Duration {
        let n = self.n.get();
        self.n.set(n + 1);
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

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Peak memory before and after one 12 MP photo (in a fresh daemon, so
    /// the earlier uploads do not count), and resident memory after.
    fn memory_report(&self, photo: &[u8]) {
        let fresh = Daemon::start(self._dir.path().parent().unwrap());
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
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
