//! Files and directories that survive a power cut: the one place that knows
//! which flushes that takes.
//!
//! A file's bytes are on disk after its own `fsync`; its name (a create, a
//! rename, a new directory) only after its *directory's* `fsync`. A power
//! cut loses whatever was not flushed, so every write here is: write a
//! temporary file, `fsync` it, rename it into place, `fsync` the directory.
//! Readers see the old content or the new, never a part. The power-cut test
//! file system (tests/powercut.rs) holds the product to exactly these rules.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Flushes a directory: the names created, renamed or removed in it so far
/// are on disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Flushes a file that something else wrote in place (SQLite's backup
/// API): its bytes, then its name in its directory.
pub fn flush_written(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()?;
    sync_dir(parent_of(path))
}

/// `mkdir -p`, durably: each directory it creates is flushed into its
/// parent, so a power cut cannot take a directory (and what was written
/// into it) away.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        create_dir_all(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        // Created meanwhile by someone else: theirs to flush, ours to use.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    sync_dir(parent.unwrap_or(Path::new(".")))
}

/// Replaces `path` with `bytes`, atomically and durably, with `mode` for a
/// new file.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = temp_beside(path);
    let result = write_synced(&tmp, bytes, mode)
        .and_then(|()| fs::rename(&tmp, path))
        .and_then(|()| sync_dir(parent_of(path)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` with `bytes`, atomically and durably; fails with
/// `AlreadyExists` rather than replace a file someone else created.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = temp_beside(path);
    let result = write_synced(&tmp, bytes, mode)
        // A hard link does not replace: the one place this is atomic.
        .and_then(|()| fs::hard_link(&tmp, path))
        .and_then(|()| sync_dir(parent_of(path)));
    let _ = fs::remove_file(&tmp);
    result
}

/// Writes `bytes` to a new file at `path` and flushes it (its name is the
/// caller's to make durable).
pub fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn temp_beside(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    parent_of(path).join(format!(".{name}.{}.tmp", ulid::Ulid::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_and_new_files_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        create_dir_all(&deep).unwrap();
        create_dir_all(&deep).unwrap();
        let f = deep.join("key");
        write_new(&f, b"one", 0o600).unwrap();
        let again = write_new(&f, b"two", 0o600).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&f).unwrap(), b"one");
        write_file(&f, b"three", 0o600).unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"three");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let left: Vec<_> = fs::read_dir(&deep).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
    }
}
