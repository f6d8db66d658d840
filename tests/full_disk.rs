//! A really full disk (SPEC §12, issue 19): the data directory on a small
//! tmpfs, and on a loop-mounted ext4, filled by check-ins with photos and
//! then by a filler file until the photo store, the WAL and the checkpoint
//! all hit `ENOSPC`. Every refusal is a 507 with nothing half-saved, the
//! daemon stays up, and once space is freed check-ins work again with
//! every acknowledged one intact.
//!
//! These tests mount file systems: they run as root (CI does).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::util::TestStation;

/// A file system mounted for one test; unmounted when dropped.
struct Mount {
    dir: tempfile::TempDir,
    kind: &'static str,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a mount command");
    assert!(
        out.status.success(),
        "{cmd:?} failed (these tests need root, as CI runs them): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Mount {
    fn tmpfs(size_mb: u32) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(dir.path()));
        Mount { dir, kind: "tmpfs" }
    }

    /// An ext4 file system in a file, loop-mounted, no blocks reserved.
    fn ext4(size_mb: u32) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("fs.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        run(Command::new("truncate")
            .arg("-s")
            .arg(format!("{size_mb}M"))
            .arg(&image));
        run(Command::new("mkfs.ext4")
            .args(["-q", "-m", "0"])
            .arg(&image));
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mnt));
        Mount { dir, kind: "ext4" }
    }

    fn path(&self) -> PathBuf {
        match self.kind {
            "ext4" => self.dir.path().join("mnt"),
            _ => self.dir.path().to_owned(),
        }
    }

    /// Grows a tmpfs in place.
    fn grow(&self, size_mb: u32) {
        run(Command::new("mount")
            .args(["-o", &format!("remount,size={size_mb}m")])
            .arg(self.path()));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// A photo that stays large as a JPEG: noise.
fn noisy_png(seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let img = image::RgbImage::from_fn(640, 480, |_, _| {
        image::Rgb([rng.u8(..), rng.u8(..), rng.u8(..)])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// Fills what is left of the file system with a file.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0xA5u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let small = vec![0x5Au8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
    path
}

/// What the station acknowledged: parcel id → the photo's sha256.
type Acked = HashMap<String, String>;

/// One check-in with a photo; `Ok` with what was acknowledged, `Err` with
/// the refusal's status and code (asserted to be a 507 by the callers).
fn checkin(st: &TestStation, n: u64) -> Result<(String, String), (u16, String)> {
    let refused = |code: u16, body: &Value| {
        Err((
            code,
            body["error"]["code"].as_str().unwrap_or("").to_owned(),
        ))
    };
    let (code, scan) = st.post(
        "/api/v1/scans",
        json!({"code": format!("RT-FULL-{n:05}"), "channel": "clerk"}),
    );
    if code != 200 {
        return refused(code, &scan);
    }
    let id = scan["parcel_id"].as_str().unwrap().to_owned();
    let (code, photo) = st.post_bytes(
        &format!("/api/v1/parcels/{id}/photos?kind=label"),
        noisy_png(n),
    );
    if code != 201 {
        return refused(code, &photo);
    }
    let (code, body) = st.post(
        &format!("/api/v1/parcels/{id}/accept"),
        json!({"waybill_no": format!("SF{:013}", n)}),
    );
    if code != 200 {
        return refused(code, &body);
    }
    Ok((id, photo["sha256"].as_str().unwrap().to_owned()))
}

fn assert_507(n: u64, (code, what): &(u16, String)) {
    assert_eq!(*code, 507, "check-in {n}: {code} {what}, not a 507");
    assert!(what == "disk_full" || what == "storage_full", "{what}");
}

/// Every acknowledged check-in is there: accepted, its photo row and file
/// (with the right SHA-256); `db check` is clean.
fn verify(st: &TestStation, acked: &Acked) {
    let db = st.db();
    for (id, sha) in acked {
        let state: String = db
            .query_row("SELECT state FROM parcels WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap_or_else(|e| panic!("acknowledged parcel {id} missing: {e}"));
        assert_eq!(state, "accepted");
        let file = st
            .data_dir()
            .join("photos")
            .join(&sha[..2])
            .join(format!("{sha}.jpg"));
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(&hex::encode(Sha256::digest(&bytes)), sha);
    }
    // A refused accept left its draft a draft, with no event.
    let accepted_events: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM events WHERE type = 'parcel.accepted'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        accepted_events as usize,
        acked.len(),
        "an event for each, no more"
    );
    let check = st.cli_json(&["db", "check"]);
    assert_eq!(check["seq_gaps"], 0, "{check}");
    assert_eq!(check["integrity"][0], "ok", "{check}");
}

/// Fills the disk, checks every refusal, frees space with `free`, checks
/// the station works again and kept everything.
fn fill_refuse_free(mount: &Mount, free: impl FnOnce(&Path)) {
    let data = mount.path().join("data");
    let mut st = TestStation::create(&format!(
        "[storage]\ndata_dir = \"{}\"\nmin_free_mb = 0\n",
        data.display()
    ));
    // Room an operator can free later (old backups, say).
    let reserve = mount.path().join("old-backup");
    std::fs::write(&reserve, vec![7u8; 6 << 20]).unwrap();
    st.spawn();
    let mut acked = Acked::new();
    let mut refusals = Vec::new();
    let mut n = 0;
    // Photos until the photo store is full.
    while refusals.len() < 3 && n < 400 {
        match checkin(&st, n) {
            Ok((id, sha)) => {
                acked.insert(id, sha);
            }
            Err(e) => {
                assert_507(n, &e);
                refusals.push(e);
            }
        }
        n += 1;
    }
    assert!(
        refusals.len() >= 3,
        "the disk never filled ({} check-ins)",
        acked.len()
    );
    assert!(acked.len() >= 5, "some fitted before: {}", acked.len());
    // Then the last bytes, so that the database itself has no room: the
    // WAL cannot grow and the checkpoint cannot grow the file.
    let filler = fill(mount.path().as_path());
    let mut db_full = 0;
    for _ in 0..200 {
        let (code, body) = st.post(
            "/api/v1/scans",
            json!({"code": format!("RT-FULL-{n:05}"), "channel": "clerk"}),
        );
        n += 1;
        match code {
            200 => continue,
            507 => {
                assert_eq!(body["error"]["code"], "disk_full", "{body}");
                assert!(
                    body["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("nothing was saved"),
                    "{body}"
                );
                db_full += 1;
                if db_full >= 3 {
                    break;
                }
            }
            other => panic!("a scan on a full disk answered {other}: {body}"),
        }
    }
    assert!(db_full >= 3, "the database never hit the full disk");
    // The daemon stayed up and says so.
    let (code, _) = st.get("/healthz");
    assert_eq!(code, 200);
    // Space comes back: check-ins work again.
    std::fs::remove_file(&filler).unwrap();
    std::fs::remove_file(&reserve).unwrap();
    free(mount.path().as_path());
    let again = (0..20)
        .find_map(|k| checkin(&st, n + k).ok())
        .expect("check-ins work again once space is freed");
    acked.insert(again.0, again.1);
    verify(&st, &acked);
    // And after a kill -9, all of it is still there.
    st.kill9();
    st.spawn();
    verify(&st, &acked);
    assert!(st.terminate());
}

#[test]
fn a_full_tmpfs_refuses_with_507_and_recovers() {
    let mount = Mount::tmpfs(16);
    fill_refuse_free(&mount, |_| mount.grow(40));
}

#[test]
fn a_full_ext4_refuses_with_507_and_recovers() {
    let mount = Mount::ext4(20);
    fill_refuse_free(&mount, |_| {});
}
