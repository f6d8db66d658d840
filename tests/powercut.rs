//! Power cuts, really (SPEC §12, issue 19): a FUSE file system that loses
//! what was not flushed, the way a power cut does, mounted over the data
//! directory, and a test that cuts the power at random moments while two
//! clients check parcels in with photos.
//!
//! # The file system
//! Everything lives in memory, twice: as it is now, and as it is on
//! "disk". A file's bytes reach the disk at its `fsync`/`fdatasync`; a
//! name (create, rename, unlink, mkdir) at its directory's `fsync` — the
//! practice of LazyFS and SQLite's own crash tests. A cut keeps only what
//! is on disk, optionally with a random prefix of each file's unflushed
//! writes (a disk that wrote some of its cache before the lights went out),
//! and the file system is mounted again. Nothing is cached by the kernel
//! across a cut: it is a new mount.
//!
//! These tests mount file systems: they run as root (CI does).

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, Request, WriteFlags,
};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::util::{TestStation, png};

const ROOT: u64 = 1;
/// Attributes and names may be cached this long (changes all pass through
/// this file system, and a cut is a new mount).
const TTL: Duration = Duration::from_secs(1);

/// An unflushed change to a file's bytes.
#[derive(Debug, Clone)]
enum Op {
    Write(u64, Vec<u8>),
    Truncate(u64),
}

fn apply(data: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write(off, bytes) => {
            let end = *off as usize + bytes.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[*off as usize..end].copy_from_slice(bytes);
        }
        Op::Truncate(len) => data.resize(*len as usize, 0),
    }
}

#[derive(Debug, Clone)]
enum Content {
    File {
        now: Vec<u8>,
        disk: Vec<u8>,
        unflushed: Vec<Op>,
    },
    Dir {
        now: BTreeMap<OsString, u64>,
        disk: BTreeMap<OsString, u64>,
    },
}

#[derive(Debug, Clone)]
struct Node {
    content: Content,
    perm: u16,
    mtime: SystemTime,
}

/// The file system's state, shared with the test that cuts the power.
#[derive(Debug)]
pub struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    /// fsync and fsyncdir calls seen (for the report).
    pub flushes: usize,
}

impl State {
    fn new() -> State {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node {
                content: Content::Dir {
                    now: BTreeMap::new(),
                    disk: BTreeMap::new(),
                },
                perm: 0o755,
                mtime: SystemTime::now(),
            },
        );
        State {
            nodes,
            next_ino: ROOT + 1,
            flushes: 0,
        }
    }

    /// What a power cut leaves: what was on disk, from the root down, each
    /// file with `keep(n)` of its `n` unflushed changes applied.
    fn after_cut(&self, keep: &mut dyn FnMut(usize) -> usize) -> State {
        let mut out = State {
            nodes: HashMap::new(),
            next_ino: self.next_ino,
            flushes: self.flushes,
        };
        let mut todo = vec![ROOT];
        while let Some(ino) = todo.pop() {
            let Some(node) = self.nodes.get(&ino) else {
                continue;
            };
            let content = match &node.content {
                Content::File {
                    disk, unflushed, ..
                } => {
                    let mut data = disk.clone();
                    for op in &unflushed[..keep(unflushed.len())] {
                        apply(&mut data, op);
                    }
                    Content::File {
                        now: data.clone(),
                        disk: data,
                        unflushed: Vec::new(),
                    }
                }
                Content::Dir { disk, .. } => {
                    todo.extend(disk.values().copied());
                    Content::Dir {
                        now: disk.clone(),
                        disk: disk.clone(),
                    }
                }
            };
            out.nodes.insert(
                ino,
                Node {
                    content,
                    ..node.clone()
                },
            );
        }
        out
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let n = self.nodes.get(&ino)?;
        let (kind, size) = match &n.content {
            Content::File { now, .. } => (FileType::RegularFile, now.len() as u64),
            Content::Dir { now, .. } => (FileType::Directory, now.len() as u64),
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: n.mtime,
            mtime: n.mtime,
            ctime: n.mtime,
            crtime: n.mtime,
            kind,
            perm: n.perm,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn dir(&mut self, ino: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        match self.nodes.get_mut(&ino).map(|n| &mut n.content) {
            Some(Content::Dir { now, .. }) => Ok(now),
            Some(_) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn add(
        &mut self,
        parent: u64,
        name: &OsStr,
        content: Content,
        perm: u16,
    ) -> Result<u64, Errno> {
        if self.dir(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                content,
                perm,
                mtime: SystemTime::now(),
            },
        );
        self.dir(parent)?.insert(name.to_owned(), ino);
        Ok(ino)
    }

    fn change(&mut self, ino: u64, op: Op) -> Result<(), Errno> {
        match self.nodes.get_mut(&ino) {
            Some(Node {
                content: Content::File { now, unflushed, .. },
                mtime,
                ..
            }) => {
                apply(now, &op);
                unflushed.push(op);
                *mtime = SystemTime::now();
                Ok(())
            }
            Some(_) => Err(Errno::EISDIR),
            None => Err(Errno::ENOENT),
        }
    }
}

fn new_file() -> Content {
    Content::File {
        now: Vec::new(),
        disk: Vec::new(),
        unflushed: Vec::new(),
    }
}

/// The FUSE side.
pub struct CrashFs(Arc<Mutex<State>>);

impl CrashFs {
    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Filesystem for CrashFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut st = self.st();
        let ino = match st.dir(parent.0) {
            Ok(d) => d.get(name).copied(),
            Err(e) => return reply.error(e),
        };
        match ino.and_then(|i| st.attr(i)) {
            Some(a) => reply.entry(&TTL, &a, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.st().attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = self.st();
        if let Some(len) = size
            && let Err(e) = st.change(ino.0, Op::Truncate(len))
        {
            return reply.error(e);
        }
        if let (Some(m), Some(n)) = (mode, st.nodes.get_mut(&ino.0)) {
            n.perm = (m & 0o7777) as u16;
        }
        match st.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let mut st = self.st();
        match st.add(parent.0, name, new_file(), (mode & 0o7777) as u16) {
            Ok(ino) => reply.entry(&TTL, &st.attr(ino).unwrap(), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let mut st = self.st();
        let dir = Content::Dir {
            now: BTreeMap::new(),
            disk: BTreeMap::new(),
        };
        match st.add(parent.0, name, dir, (mode & 0o7777) as u16) {
            Ok(ino) => reply.entry(&TTL, &st.attr(ino).unwrap(), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.st().dir(parent.0).map(|d| d.remove(name)) {
            Ok(Some(_)) => reply.ok(),
            Ok(None) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = self.st();
        let Some(ino) = st.dir(parent.0).ok().and_then(|d| d.get(name).copied()) else {
            return reply.error(Errno::ENOENT);
        };
        if st.dir(ino).map(|d| !d.is_empty()).unwrap_or(true) {
            return reply.error(Errno::ENOTEMPTY);
        }
        let _ = st.dir(parent.0).map(|d| d.remove(name));
        reply.ok();
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut st = self.st();
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            return reply.error(Errno::EINVAL);
        }
        let Some(ino) = st.dir(parent.0).ok().and_then(|d| d.get(name).copied()) else {
            return reply.error(Errno::ENOENT);
        };
        match st.dir(newparent.0) {
            Ok(d) if flags.contains(RenameFlags::RENAME_NOREPLACE) && d.contains_key(newname) => {
                return reply.error(Errno::EEXIST);
            }
            Ok(_) => {}
            Err(e) => return reply.error(e),
        }
        let _ = st.dir(parent.0).map(|d| d.remove(name));
        let _ = st
            .dir(newparent.0)
            .map(|d| d.insert(newname.to_owned(), ino));
        reply.ok();
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let mut st = self.st();
        match st.dir(newparent.0) {
            Ok(d) if d.contains_key(newname) => return reply.error(Errno::EEXIST),
            Ok(d) => {
                d.insert(newname.to_owned(), ino.0);
            }
            Err(e) => return reply.error(e),
        }
        match st.attr(ino.0) {
            Some(a) => reply.entry(&TTL, &a, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let st = self.st();
        match st.nodes.get(&ino.0).map(|n| &n.content) {
            Some(Content::File { now, .. }) => {
                let start = (offset as usize).min(now.len());
                let end = (start + size as usize).min(now.len());
                reply.data(&now[start..end]);
            }
            Some(_) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.st().change(ino.0, Op::Write(offset, data.to_vec())) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() flushes nothing to disk: only fsync does.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.st();
        st.flushes += 1;
        if let Some(Node {
            content:
                Content::File {
                    now,
                    disk,
                    unflushed,
                },
            ..
        }) = st.nodes.get_mut(&ino.0)
        {
            *disk = now.clone();
            unflushed.clear();
        }
        reply.ok();
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut st = self.st();
        let entries: Vec<(OsString, u64)> = match st.dir(ino.0) {
            Ok(d) => d.iter().map(|(n, i)| (n.clone(), *i)).collect(),
            Err(e) => return reply.error(e),
        };
        let mut all = vec![
            (OsString::from("."), ino.0, FileType::Directory),
            (OsString::from(".."), ROOT, FileType::Directory),
        ];
        for (name, i) in entries {
            let kind = st.attr(i).map_or(FileType::RegularFile, |a| a.kind);
            all.push((name, i, kind));
        }
        for (k, (name, i, kind)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(i), (k + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.st();
        st.flushes += 1;
        if let Some(Node {
            content: Content::Dir { now, disk },
            ..
        }) = st.nodes.get_mut(&ino.0)
        {
            *disk = now.clone();
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 22, 1 << 21, 1 << 21, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = self.st();
        let existing = match st.dir(parent.0) {
            Ok(d) => d.get(name).copied(),
            Err(e) => return reply.error(e),
        };
        let ino = match existing {
            Some(_) if flags & libc::O_EXCL != 0 => return reply.error(Errno::EEXIST),
            Some(ino) => {
                if flags & libc::O_TRUNC != 0 {
                    let _ = st.change(ino, Op::Truncate(0));
                }
                ino
            }
            None => match st.add(parent.0, name, new_file(), (mode & 0o7777) as u16) {
                Ok(ino) => ino,
                Err(e) => return reply.error(e),
            },
        };
        let attr = st.attr(ino).unwrap();
        reply.created(
            &TTL,
            &attr,
            Generation(0),
            FileHandle(0),
            FopenFlags::empty(),
        );
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let mut st = self.st();
        let len = match st.nodes.get(&ino.0).map(|n| &n.content) {
            Some(Content::File { now, .. }) => now.len() as u64,
            _ => return reply.error(Errno::ENOENT),
        };
        let end = offset + length;
        if end > len {
            let _ = st.change(ino.0, Op::Truncate(end));
        }
        reply.ok();
    }
}

/// A [`CrashFs`] mounted over a directory, and power cuts.
pub struct PowerCut {
    pub mountpoint: PathBuf,
    _dir: tempfile::TempDir,
    state: Arc<Mutex<State>>,
    session: Option<fuser::BackgroundSession>,
    rng: fastrand::Rng,
    /// Cuts that kept a random part of the unflushed writes.
    pub partial_cuts: usize,
}

impl PowerCut {
    pub fn mount(seed: u64) -> PowerCut {
        let dir = tempfile::tempdir().unwrap();
        let mountpoint = dir.path().join("disk");
        std::fs::create_dir(&mountpoint).unwrap();
        let mut p = PowerCut {
            mountpoint,
            _dir: dir,
            state: Arc::new(Mutex::new(State::new())),
            session: None,
            rng: fastrand::Rng::with_seed(seed),
            partial_cuts: 0,
        };
        p.mount_again();
        p
    }

    fn mount_again(&mut self) {
        let mut config = fuser::Config::default();
        config.mount_options = vec![fuser::MountOption::FSName("yizhan-powercut".into())];
        config.acl = fuser::SessionACL::All;
        let session = fuser::spawn_mount(CrashFs(self.state.clone()), &self.mountpoint, &config)
            .expect("mount the power-cut file system (needs /dev/fuse and root, as in CI)");
        self.session = Some(session);
    }

    /// The power goes: whatever was not flushed is lost (sometimes with a
    /// random prefix of each file's unflushed writes kept), and the disk is
    /// mounted again. Whoever used it must be dead already.
    pub fn cut(&mut self) {
        let partial = self.rng.bool();
        self.cut_with(partial);
    }

    /// A cut that keeps a random prefix of the unflushed writes or not.
    pub fn cut_with(&mut self, partial: bool) {
        if let Some(s) = self.session.take() {
            s.umount_and_join()
                .expect("unmount the power-cut file system");
        }
        self.partial_cuts += usize::from(partial);
        let rng = &mut self.rng;
        let mut keep = |n: usize| if partial { rng.usize(0..=n) } else { 0 };
        let after = {
            let st = self.state.lock().unwrap();
            st.after_cut(&mut keep)
        };
        *self.state.lock().unwrap() = after;
        self.mount_again();
    }

    pub fn flushes(&self) -> usize {
        self.state.lock().unwrap().flushes
    }
}

impl Drop for PowerCut {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}

/// Acknowledged check-ins: parcel id → its photo's sha256.
type Acked = Arc<Mutex<HashMap<String, String>>>;

/// Checks parcels in (scan, photo, accept) until `stop`; records every
/// accept that answered 200.
fn client(
    base: String,
    token: String,
    worker: usize,
    acked: Acked,
    stop: Arc<AtomicBool>,
    n: Arc<AtomicUsize>,
) {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let post = |path: &str| http.post(format!("{base}{path}")).bearer_auth(&token);
    while !stop.load(Ordering::SeqCst) {
        let k = n.fetch_add(1, Ordering::SeqCst);
        let step = || -> Option<(String, String)> {
            let scan: serde_json::Value = post("/api/v1/scans")
                .json(&json!({"code": format!("RT-CUT-{worker}-{k:06}"), "channel": "clerk"}))
                .send()
                .ok()?
                .json()
                .ok()?;
            let id = scan["parcel_id"].as_str()?.to_owned();
            let photo = post(&format!("/api/v1/parcels/{id}/photos?kind=label"))
                .body(png(40 + (k % 60) as u32, 30, k as u8))
                .send()
                .ok()?;
            if photo.status() != 201 {
                return None;
            }
            let photo: serde_json::Value = photo.json().ok()?;
            let accept = post(&format!("/api/v1/parcels/{id}/accept"))
                .json(&json!({"waybill_no": format!("SF{:013}", k)}))
                .send()
                .ok()?;
            (accept.status() == 200)
                .then(|| (id, photo["sha256"].as_str().unwrap_or("").to_owned()))
        };
        if let Some((id, sha)) = step() {
            acked.lock().unwrap().insert(id, sha);
        }
    }
}

/// Everything acknowledged is there with its photo, and the database and
/// photo store are consistent.
fn verify(st: &TestStation, acked: &HashMap<String, String>, round: usize) {
    let db = st.db();
    for (id, sha) in acked {
        let state: String = db
            .query_row("SELECT state FROM parcels WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap_or_else(|e| panic!("after cut {round}: acknowledged parcel {id} lost ({e})"));
        assert_eq!(state, "accepted", "after cut {round}: {id}");
        let named: i64 = db
            .query_row(
                "SELECT COUNT(*) FROM parcel_photos WHERE parcel_id = ?1 AND sha256 = ?2",
                [id, sha],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(named, 1, "after cut {round}: {id} lost its photo row");
        let file = st
            .data_dir()
            .join("photos")
            .join(&sha[..2])
            .join(format!("{sha}.jpg"));
        let bytes = std::fs::read(&file)
            .unwrap_or_else(|e| panic!("after cut {round}: {} lost: {e}", file.display()));
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            *sha,
            "after cut {round}: {id}'s photo is damaged"
        );
    }
    let check = st.cli_json(&["db", "check"]);
    assert_eq!(check["integrity"][0], "ok", "after cut {round}: {check}");
    assert_eq!(check["seq_gaps"], 0, "after cut {round}: {check}");
    assert_eq!(
        check["photos"]["missing_files"].as_array().map(Vec::len),
        Some(0),
        "after cut {round}: {check}"
    );
}

/// How many cuts: `YIZHAN_POWER_CUTS` (the soak sets hundreds), 20 in CI.
fn cuts() -> usize {
    std::env::var("YIZHAN_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

#[test]
fn power_cuts_lose_no_acknowledged_check_in() {
    let seed = std::env::var("YIZHAN_POWER_CUT_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(19);
    let mut disk = PowerCut::mount(seed);
    let data = disk.mountpoint.join("data");
    let mut st = TestStation::create(&format!(
        "[storage]\ndata_dir = \"{}\"\nmin_free_mb = 0\n",
        data.display()
    ));
    let acked: Acked = Arc::default();
    let counter = Arc::new(AtomicUsize::new(0));
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xC0FFEE);
    let rounds = cuts();
    let mut seen: std::collections::HashSet<String> = Default::default();
    for round in 0..rounds {
        st.spawn();
        // Every check-in acknowledged since the last cut, and a sample of
        // the older ones (all of them every 50 cuts): the soak's hundreds
        // of cuts do not take quadratic time.
        let all = acked.lock().unwrap().clone();
        let full = round % 50 == 0;
        let sample: HashMap<String, String> = all
            .into_iter()
            .filter(|(id, _)| full || !seen.contains(id) || rng.u8(..) < 8)
            .collect();
        seen.extend(sample.keys().cloned());
        verify(&st, &sample, round);
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let (base, token, acked, stop, n) = (
                    st.base.clone(),
                    st.token.clone(),
                    acked.clone(),
                    stop.clone(),
                    counter.clone(),
                );
                std::thread::spawn(move || client(base, token, w, acked, stop, n))
            })
            .collect();
        // The cut comes at a random moment of the work.
        std::thread::sleep(Duration::from_millis(rng.u64(150..700)));
        st.kill9();
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.join().unwrap();
        }
        disk.cut();
    }
    st.spawn();
    verify(&st, &acked.lock().unwrap(), rounds);
    let total = acked.lock().unwrap().len();
    eprintln!(
        "SOAK powercut cuts={rounds} partial={} acknowledged={total} lost=0 flushes={}",
        disk.partial_cuts,
        disk.flushes()
    );
    assert!(total >= rounds, "too little work between the cuts: {total}");
    assert!(st.terminate());
}

/// The file system itself: flushed data and names survive a cut, the rest
/// does not.
#[test]
fn the_power_cut_file_system_keeps_only_what_was_flushed() {
    let mut disk = PowerCut::mount(7);
    let root = disk.mountpoint.clone();
    let flushed = root.join("flushed");
    let named_only = root.join("named-only");
    std::fs::write(&flushed, b"kept").unwrap();
    std::fs::File::open(&flushed).unwrap().sync_all().unwrap();
    std::fs::write(&named_only, b"lost bytes").unwrap();
    yizhan::durable::sync_dir(&root).unwrap();
    std::fs::write(root.join("never-named"), b"x").unwrap();
    std::fs::File::open(root.join("never-named"))
        .unwrap()
        .sync_all()
        .unwrap();
    let sub = root.join("sub");
    std::fs::create_dir(&sub).unwrap();
    yizhan::durable::write_file(&sub.join("file"), b"durable", 0o644).unwrap();
    // sub's own name was never flushed into the root: it goes, with its file.
    disk.cut_with(false);
    assert_eq!(std::fs::read(&flushed).unwrap(), b"kept");
    assert_eq!(
        std::fs::read(&named_only).unwrap(),
        b"",
        "named, bytes never flushed"
    );
    assert!(
        !root.join("never-named").exists(),
        "flushed bytes, name never flushed"
    );
    assert!(!sub.exists(), "a directory whose name was never flushed");
    // The product's helper does it right.
    yizhan::durable::create_dir_all(&root.join("a/b")).unwrap();
    yizhan::durable::write_file(&root.join("a/b/c"), b"kept too", 0o644).unwrap();
    disk.cut_with(false);
    assert_eq!(std::fs::read(root.join("a/b/c")).unwrap(), b"kept too");
}
