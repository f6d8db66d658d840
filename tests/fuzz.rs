//! Fuzzing the parsers of everything a user or the platform can send
//! (issue 19): return codes (SPEC §4), manifest and command JSON, the
//! configuration TOML, photos and camera frames, and the HTTP API as a
//! whole. 0 panics, 0 5xx.
//!
//! A small mutation fuzzer, on the stable toolchain (CI has no other):
//! each target starts from seed inputs, mutates them (bit flips, byte
//! insertions and deletions, splices, truncations, repeats, interesting
//! values) for `YIZHAN_FUZZ_SECS` (30 in CI; the soak runs longer), and
//! calls the product's own function under `catch_unwind`. Every input that
//! ever crashed is kept in `tests/fuzz-corpus/<target>/` and replayed first;
//! a new crash is written to `target/fuzz-crashes/<target>/` and fails the
//! test with its path, to be added there.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::util::{TestStation, platform_key, png, yzr1};

fn budget() -> Duration {
    let secs = std::env::var("YIZHAN_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target)
}

/// Bytes that make parsers think.
const INTERESTING: &[&[u8]] = &[
    b"\0",
    b"\xff\xff\xff\xff",
    b"\"",
    b"\\u0000",
    b"{",
    b"}",
    b"[",
    b"]",
    b"=",
    b"\n[",
    b"9999999999999999999999",
    b"-1",
    b"1e309",
    b"NaN",
    b"%",
    b"YZR1.",
    b"..",
    b"\xe9\xa9\xbf",
    b"\xed\xa0\x80",
];

fn mutate(rng: &mut fastrand::Rng, input: &[u8], pool: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.usize(1..6) {
        let len = out.len();
        match rng.u8(..8) {
            0 if len > 0 => {
                let i = rng.usize(..len);
                out[i] ^= 1 << rng.u8(..8);
            }
            1 => {
                let i = rng.usize(..=len);
                out.insert(i, rng.u8(..));
            }
            2 if len > 0 => {
                let i = rng.usize(..len);
                let n = rng.usize(1..=(len - i).min(16));
                out.drain(i..i + n);
            }
            3 if len > 0 => out.truncate(rng.usize(..len)),
            4 => {
                let i = rng.usize(..=len);
                let word = INTERESTING[rng.usize(..INTERESTING.len())];
                out.splice(i..i, word.iter().copied());
            }
            5 if !pool.is_empty() => {
                // Splice in a piece of another input.
                let other = &pool[rng.usize(..pool.len())];
                if !other.is_empty() {
                    let a = rng.usize(..other.len());
                    let b = rng.usize(a..=other.len());
                    let i = rng.usize(..=len);
                    out.splice(i..i, other[a..b].iter().copied());
                }
            }
            6 if len > 0 && len < 1 << 16 => {
                // Repeat a piece.
                let a = rng.usize(..len);
                let b = rng.usize(a..=len.min(a + 64));
                let piece = out[a..b].to_vec();
                for _ in 0..rng.usize(1..8) {
                    out.extend_from_slice(&piece);
                }
            }
            _ => {
                let i = rng.usize(..=len);
                out.insert(i, b" {}[]\":,=.-_/\n"[rng.usize(..14)]);
            }
        }
    }
    out
}

/// Runs `target` on the kept crashes, then on mutations of `seeds` until
/// the budget is spent. Returns how many inputs were tried.
fn fuzz(name: &str, seeds: Vec<Vec<u8>>, target: impl Fn(&[u8])) -> usize {
    let mut pool = seeds;
    if let Ok(dir) = std::fs::read_dir(corpus_dir(name)) {
        for f in dir.flatten() {
            let bytes = std::fs::read(f.path()).unwrap();
            run_one(name, &target, &bytes);
            pool.push(bytes);
        }
    }
    for s in pool.clone() {
        run_one(name, &target, &s);
    }
    let mut rng = fastrand::Rng::with_seed(
        std::env::var("YIZHAN_FUZZ_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(19),
    );
    let deadline = Instant::now() + budget();
    let mut tried = 0;
    while Instant::now() < deadline {
        let pick = rng.usize(..pool.len());
        let base = pool[pick].clone();
        let input = mutate(&mut rng, &base, &pool);
        run_one(name, &target, &input);
        tried += 1;
        // Keep some inputs as new bases, so mutations go deeper.
        if rng.u8(..16) == 0 && pool.len() < 512 && input.len() < 1 << 20 {
            pool.push(input);
        }
    }
    eprintln!("SOAK fuzz target={name} inputs={tried} panics=0");
    tried
}

fn run_one(name: &str, target: &impl Fn(&[u8]), input: &[u8]) {
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| target(input)));
    if result.is_err() {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("fuzz-crashes")
            .join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(hex::encode(&Sha256::digest(input)[..8]));
        std::fs::write(&file, input).unwrap();
        panic!(
            "fuzz target {name} panicked on {} (keep it: copy it into tests/fuzz-corpus/{name}/)",
            file.display()
        );
    }
}

#[test]
fn fuzz_return_codes() {
    let mut keys = yizhan::code::TrustedKeys::default();
    keys.0.insert("k1".into(), platform_key().verifying_key());
    let token = yzr1(
        json!({"rn": "RT-FUZZ-0001", "mid": "M1", "exp": 4_102_444_800u64, "sid": "*", "kid": "k1"}),
        &platform_key(),
    );
    let seeds: Vec<Vec<u8>> = [
        token.as_str(),
        "RT-20261122-0001",
        "https://returns.example.com/r/RT-9?x=1",
        "http://r.example/x?rn=RT-0000001&y=2",
        "YZK1.e30.AAAA",
        "",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz("code", seeds, |input| {
        let _ = yizhan::code::parse(input, &keys, "ST-0001");
    });
}

#[test]
fn fuzz_manifest_json() {
    let seeds = vec![
        json!({"returns": [{"return_no": "RT-000001", "merchant_id": "M1", "order_no": "O-1",
            "status": "authorized", "expires_at": 1_795_500_000, "phone_last4": "1234",
            "items": [{"sku": "S1", "name": "鞋", "qty": 2}]}], "cursor": "c1"})
        .to_string()
        .into_bytes(),
        br#"{"returns":[]}"#.to_vec(),
    ];
    fuzz("manifest", seeds, |input| {
        let _ = yizhan::manifest::parse(input);
    });
}

#[test]
fn fuzz_platform_commands() {
    let seeds: Vec<Vec<u8>> = [
        json!({"command_id": "c1", "type": "return.cancelled", "data": {"return_no": "RT-000001"}}),
        json!({"command_id": "c2", "type": "return.unknown", "data": {"return_no": "RT-000001"}}),
        json!({"command_id": "c3", "type": "parcel.status", "data": {"return_no": "RT-000001", "status": "refunded", "at": "2026-11-22T10:00:00Z"}}),
        json!({"command_id": "c4", "type": "return.authorized", "data": {"return": {"return_no": "RT-000002", "merchant_id": "M1", "status": "authorized"}}}),
        json!({"command_id": "c5", "type": "manifest.refresh", "data": {}}),
    ]
    .iter()
    .map(|v| v.to_string().into_bytes())
    .collect();
    fuzz("command", seeds, |input| {
        let _ = yizhan::sync::commands::check(input);
    });
}

#[test]
fn fuzz_configuration() {
    let seeds: Vec<Vec<u8>> = vec![
        yizhan::config::DEFAULT_TOML.as_bytes().to_vec(),
        b"[station]\nid = \"ST-9\"\npickup_sla_h = 12\n[api]\nlisten = \"0.0.0.0:1\"\n".to_vec(),
        b"[[hardware.scanners]]\nname = \"c\"\nkind = \"serial\"\npath = \"/dev/x\"\nchannel = \"clerk\"\n[hardware.printer]\nkind = \"tcp\"\naddress = \"h:9100\"\n".to_vec(),
        b"[sync.mqtt]\nurl = \"mqtts://b:8883\"\n[sync.https]\nbase_url = \"https://p\"\n".to_vec(),
    ];
    fuzz("config", seeds, |input| {
        if let Ok(text) = std::str::from_utf8(input) {
            let _ = yizhan::config::Config::from_toml(text);
        }
    });
}

#[test]
fn fuzz_photos() {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
        .encode_image(&image::RgbImage::from_pixel(
            24,
            16,
            image::Rgb([10, 200, 30]),
        ))
        .unwrap();
    let seeds = vec![png(16, 12, 1), jpeg];
    fuzz("photo", seeds, |input| {
        let _ = yizhan::photo::process(input, 1600);
    });
}

#[test]
fn fuzz_camera_frames() {
    let code = qrcode::QrCode::new(b"RT-FRAME-FUZZ")
        .unwrap()
        .render::<image::Luma<u8>>()
        .module_dimensions(3, 3)
        .build();
    let mut frame = image::GrayImage::from_pixel(160, 120, image::Luma([200]));
    image::imageops::overlay(&mut frame, &code, 20, 10);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
        .encode_image(&frame)
        .unwrap();
    fuzz("frame", vec![jpeg], |input| {
        if let Ok(gray) = yizhan::photo::decode_gray(input) {
            let _ = yizhan::decode::find_codes(&gray);
        }
    });
}

/// The HTTP API as a whole: random requests to every endpoint, mutated
/// bodies and paths; every answer is below 500 and the daemon stays up.
#[test]
fn fuzz_the_api_never_answers_5xx() {
    let st = TestStation::start();
    let id = st.draft("RT-FUZZAPI-01", "clerk");
    let endpoints: Vec<(&str, String)> = vec![
        ("POST", "/api/v1/scans".into()),
        ("POST", "/api/v1/scans/image?channel=self".into()),
        ("POST", format!("/api/v1/parcels/{id}/photos?kind=label")),
        ("POST", format!("/api/v1/parcels/{id}/accept")),
        ("POST", format!("/api/v1/parcels/{id}/reject")),
        ("POST", format!("/api/v1/parcels/{id}/drop")),
        ("POST", "/api/v1/sessions".into()),
        ("POST", "/api/v1/bags".into()),
        ("POST", "/api/v1/handovers".into()),
        ("GET", "/api/v1/returns?q=RT".into()),
        ("GET", format!("/api/v1/parcels/{id}")),
        ("GET", "/api/v1/returns/RT-FUZZAPI-01/progress".into()),
        ("GET", "/api/v1/parcels?state=accepted&limit=5".into()),
    ];
    let bodies: Vec<Vec<u8>> = vec![
        json!({"code": "RT-FUZZAPI-02", "channel": "clerk"}).to_string().into_bytes(),
        json!({"waybill_no": "SF1234567890123", "weight_g": 100, "items": [{"sku": "A", "qty": 1}]})
            .to_string()
            .into_bytes(),
        json!({"courier": "W", "carrier": "SF", "waybill_nos": ["SF1234567890123"]}).to_string().into_bytes(),
        json!({"clerk_id": "wei", "pin": "1234"}).to_string().into_bytes(),
        png(8, 8, 3),
    ];
    let mut rng = fastrand::Rng::with_seed(20261201);
    let deadline = Instant::now() + budget();
    let mut tried = 0;
    while Instant::now() < deadline {
        let (method, path) = &endpoints[rng.usize(..endpoints.len())];
        let pick = rng.usize(..bodies.len());
        let body = mutate(&mut rng, &bodies[pick], &bodies);
        let path = if rng.u8(..8) == 0 {
            String::from_utf8_lossy(&mutate(&mut rng, path.as_bytes(), &[]))
                .chars()
                .filter(|c| !c.is_control() && *c != ' ' && *c != '#')
                .collect::<String>()
        } else {
            path.clone()
        };
        let url = format!(
            "{}{}",
            st.base,
            if path.starts_with('/') { &path } else { "/" }
        );
        let Ok(method) = method.parse::<reqwest::Method>() else {
            continue;
        };
        let Ok(r) = st.client.request(method, url).body(body).send() else {
            continue;
        };
        let status = r.status().as_u16();
        assert!(
            status < 500,
            "{path:.100}: {status} {}",
            r.text().unwrap_or_default()
        );
        tried += 1;
    }
    let (code, _) = st.get("/healthz");
    assert_eq!(code, 200);
    eprintln!("SOAK fuzz target=api requests={tried} 5xx=0");
}
