//! Finding codes in camera frames: yizhan's decoder against `zbarimg`
//! (Debian `zbar-tools`) on the same frames, side by side.
//!
//! The frames come from the seeded generator in `tests/corpus.rs`: 1280×720
//! JPEGs of the SPEC §4 code shapes on phone screens and paper, rotated,
//! tilted, small, blurred, noisy, dim, low-contrast, with glare,
//! JPEG-compressed, cluttered. A frame counts as read when every code on it
//! was found. Times are per frame, single-threaded, from the JPEG file's
//! bytes to the codes (zbarimg: its whole run over every frame in one
//! process, divided by the number of frames, so its start-up is spread
//! out). Each of yizhan's decoder passes is measured on its own too, to
//! show what it adds.
//!
//! `cargo bench --bench decode` (`-- --frames N --seed S`, or `--quick`).
//! Figures and how to read them: docs/PERFORMANCE.md, "Decoding codes in
//! frames".

#[path = "../tests/corpus.rs"]
mod corpus;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use yizhan::decode::{self, Passes};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let quick = args.iter().any(|a| a == "--quick");
    let frames = arg("--frames").unwrap_or(if quick { 40 } else { 400 }) as usize;
    let seed = arg("--seed").unwrap_or(2026);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("decode-corpus");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    let started = Instant::now();
    let samples = corpus::generate(seed, frames);
    let mut files = Vec::new();
    let mut index = String::from("frame\thardship\tmedium\tsymbology\tcodes\n");
    for (i, s) in samples.iter().enumerate() {
        let f = dir.join(format!("{i:04}.jpg"));
        std::fs::write(&f, &s.jpeg).expect("write a frame");
        files.push(f);
        index.push_str(&format!(
            "{i:04}.jpg\t{}\t{:?}\t{}\t{}\n",
            s.hardship.name(),
            s.medium,
            if s.code128 { "code128" } else { "qr" },
            s.codes.join(" ")
        ));
    }
    // What is on each frame, for looking at the failures by hand.
    std::fs::write(dir.join("index.tsv"), index).expect("write the index");
    println!(
        "corpus: {frames} frames 1280x720 (seed {seed}) in {} in {:.1} s",
        dir.display(),
        started.elapsed().as_secs_f64()
    );

    let mut runs: Vec<(&str, Outcome)> = Vec::new();
    match zbarimg(&files, &samples) {
        Some(z) => runs.push(("zbarimg 0.23 (baseline)", z)),
        None => println!("zbarimg not found (apt-get install zbar-tools): no baseline"),
    }
    let variants = [
        (
            "yizhan: rxing only",
            Passes {
                rxing: true,
                rqrr: false,
                half: false,
            },
        ),
        (
            "yizhan: rqrr only",
            Passes {
                rxing: false,
                rqrr: true,
                half: false,
            },
        ),
        ("yizhan: rxing + rqrr (product)", Passes::PRODUCT),
        (
            "yizhan: rxing + rqrr + half size",
            Passes {
                rxing: true,
                rqrr: true,
                half: true,
            },
        ),
    ];
    for (name, passes) in variants {
        runs.push((name, ours(&samples, passes)));
    }
    report(&samples, &runs);
    empty_frames(seed, if quick { 10 } else { 60 }, &variants, &dir);
}

/// Time per frame with no code in it (the customer screen's camera sends a
/// few a second while nobody holds a code up).
fn empty_frames(seed: u64, n: usize, variants: &[(&str, Passes)], dir: &Path) {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xE);
    let frames: Vec<Vec<u8>> = (0..n).map(|_| corpus::empty_frame(&mut rng)).collect();
    println!("\nframes with no code ({n}), ms/frame:");
    let files: Vec<PathBuf> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let path = dir.join(format!("empty-{i:04}.jpg"));
            std::fs::write(&path, f).expect("write a frame");
            path
        })
        .collect();
    let t = Instant::now();
    if let Ok(out) = std::process::Command::new("zbarimg")
        .args([
            "--quiet",
            "--xml",
            "-Sdisable",
            "-Sqrcode.enable",
            "-Scode128.enable",
        ])
        .args(&files)
        .output()
    {
        let ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
        let found: usize = parse_zbar_xml(&String::from_utf8_lossy(&out.stdout))
            .values()
            .map(Vec::len)
            .sum();
        println!(
            "  {:<32} {ms:>6.1}  (false reads: {found})",
            "zbarimg 0.23 (baseline)"
        );
    }
    for (name, passes) in variants {
        let t = Instant::now();
        let mut found = 0;
        for f in &frames {
            let g = yizhan::photo::decode_gray(f).expect("a frame");
            found += decode::find_codes_with(&g, *passes).len();
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
        println!("  {name:<32} {ms:>6.1}  (false reads: {found})");
    }
}

/// What one decoder did on the corpus.
struct Outcome {
    /// Per frame: read (every code found).
    read: Vec<bool>,
    /// Per frame, milliseconds (zbarimg: the mean, for every frame).
    ms: Vec<f64>,
}

fn ours(samples: &[corpus::Sample], passes: Passes) -> Outcome {
    let mut read = Vec::with_capacity(samples.len());
    let mut ms = Vec::with_capacity(samples.len());
    for s in samples {
        let t = Instant::now();
        let found = yizhan::photo::decode_gray(&s.jpeg)
            .map(|g| decode::find_codes_with(&g, passes))
            .unwrap_or_default();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        read.push(s.codes.iter().all(|c| found.iter().any(|f| &f.text == c)));
    }
    Outcome { read, ms }
}

/// zbarimg over every frame in one run, QR and Code 128 only (as ours).
fn zbarimg(files: &[PathBuf], samples: &[corpus::Sample]) -> Option<Outcome> {
    let t = Instant::now();
    let out = std::process::Command::new("zbarimg")
        .args([
            "--quiet",
            "--xml",
            "-Sdisable",
            "-Sqrcode.enable",
            "-Scode128.enable",
        ])
        .args(files)
        .output()
        .ok()?;
    let per_frame = t.elapsed().as_secs_f64() * 1000.0 / files.len() as f64;
    let xml = String::from_utf8_lossy(&out.stdout);
    let found = parse_zbar_xml(&xml);
    let read = files
        .iter()
        .zip(samples)
        .map(|(f, s)| {
            let got = found.get(f.as_path()).cloned().unwrap_or_default();
            s.codes.iter().all(|c| got.contains(c))
        })
        .collect();
    Some(Outcome {
        read,
        ms: vec![per_frame; files.len()],
    })
}

/// `<source href='…'>` … `<data><![CDATA[…]]></data>` per file.
fn parse_zbar_xml(xml: &str) -> BTreeMap<&Path, Vec<String>> {
    let mut out = BTreeMap::new();
    for source in xml.split("<source href='").skip(1) {
        let Some((href, rest)) = source.split_once('\'') else {
            continue;
        };
        let codes = rest
            .split("<data><![CDATA[")
            .skip(1)
            .filter_map(|d| d.split_once("]]></data>").map(|(text, _)| text.to_owned()))
            .collect();
        out.insert(Path::new(href), codes);
    }
    out
}

fn report(samples: &[corpus::Sample], runs: &[(&str, Outcome)]) {
    println!(
        "\n{:<32} {:>8} {:>9} {:>9}",
        "decoder", "read", "ms/frame", "p90 ms"
    );
    for (name, o) in runs {
        let n = o.read.iter().filter(|r| **r).count();
        let mut sorted = o.ms.clone();
        sorted.sort_by(f64::total_cmp);
        let mean = sorted.iter().sum::<f64>() / sorted.len().max(1) as f64;
        let p90 = sorted
            .get(sorted.len() * 9 / 10)
            .copied()
            .unwrap_or_default();
        println!(
            "{name:<32} {:>7.1}% {mean:>9.1} {p90:>9.1}",
            100.0 * n as f64 / o.read.len().max(1) as f64
        );
    }
    println!("\nread, by what makes the frame hard:");
    print!("{:<14}", "");
    for (name, _) in runs {
        print!(" {:>10}", short(name));
    }
    println!();
    for h in corpus::HARDSHIPS {
        print!("{:<14}", h.name());
        for (_, o) in runs {
            let (mut n, mut of) = (0, 0);
            for (s, r) in samples.iter().zip(&o.read) {
                if s.hardship == h {
                    of += 1;
                    n += usize::from(*r);
                }
            }
            print!(" {:>10}", format!("{n}/{of}"));
        }
        println!();
    }
    for (label, pick) in [
        ("QR on phone", (corpus::Medium::Phone, false)),
        ("QR on paper", (corpus::Medium::Paper, false)),
        ("Code 128", (corpus::Medium::Paper, true)),
    ] {
        print!("{label:<14}");
        for (_, o) in runs {
            let (mut n, mut of) = (0, 0);
            for (s, r) in samples.iter().zip(&o.read) {
                if (s.medium, s.code128) == pick {
                    of += 1;
                    n += usize::from(*r);
                }
            }
            print!(" {:>10}", format!("{n}/{of}"));
        }
        println!();
    }
}

fn short(name: &str) -> &str {
    match name {
        n if n.starts_with("zbarimg") => "zbarimg",
        "yizhan: rxing only" => "rxing",
        "yizhan: rqrr only" => "rqrr",
        "yizhan: rxing + rqrr (product)" => "yizhan",
        _ => "+half",
    }
}
