//! One daemon per data directory: an exclusive `flock` on
//! `<data_dir>/yizhan.lock`, taken before anything else is written there
//! (migrations, device key, operator token) and held for the daemon's life.
//! The kernel releases it when the process ends, however it ends, so a
//! `kill -9` or a power cut leaves no stale lock behind.
//!
//! The file holds the holder's pid and address, so a second `yizhan run`
//! can say which daemon already serves this station. The CLI's commands do
//! not take the lock: they work beside the daemon, as before.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "yizhan.lock";

/// Why the data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another yizhan is already running on this data directory ({dir}): {holder}; stop it first (systemctl stop yizhan), or give this one its own storage.data_dir"
    )]
    Held { dir: PathBuf, holder: String },
    #[error("cannot lock the data directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct DataLock {
    _file: File,
}

impl DataLock {
    /// Creates the data directory if needed and takes its lock, recording
    /// this process and the address it serves on.
    pub fn acquire(dir: &Path, serving: SocketAddr) -> Result<DataLock, LockError> {
        let io = |source| LockError::Io {
            dir: dir.to_owned(),
            source,
        };
        crate::durable::create_dir_all(dir).map_err(io)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(LockError::Held {
                    dir: dir.to_owned(),
                    holder: describe(&mut file),
                });
            }
            Err(e) => return Err(io(e.into())),
        }
        let record = format!("pid {} listening on {serving}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(record.as_bytes()))
            .map_err(io)?;
        Ok(DataLock { _file: file })
    }

    /// Who holds the lock on `dir` now, if anyone (for a start that failed
    /// on its port: was it another yizhan on this station?).
    pub fn holder(dir: &Path) -> Option<String> {
        let mut file = File::open(dir.join(LOCK_FILE)).ok()?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared) {
            // Nobody holds it: a left-over file, no daemon.
            Ok(()) => None,
            Err(_) => Some(describe(&mut file)),
        }
    }
}

fn describe(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    match text.trim() {
        "" => "a process that has not said which yet (starting)".to_owned(),
        t => t.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_the_second_learns_who() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(DataLock::holder(&data), None, "no file yet");
        let first = DataLock::acquire(&data, addr).unwrap();
        let held = DataLock::acquire(&data, addr).unwrap_err().to_string();
        let pid = format!("pid {} listening on 127.0.0.1:8080", std::process::id());
        assert!(held.contains(&pid), "{held}");
        assert_eq!(DataLock::holder(&data), Some(pid));
        drop(first);
        assert_eq!(DataLock::holder(&data), None, "released");
        DataLock::acquire(&data, addr).unwrap();
    }
}
