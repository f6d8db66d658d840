//! The device's own Ed25519 key, which signs receipts (SPEC §8).
//!
//! Created on first start in `<data_dir>/device.key` (32 raw seed bytes,
//! mode 0600, written durably) and never rotated implicitly: a receipt
//! printed last month must still verify. `yizhan identity` shows the public
//! half for the platform to trust.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

/// The key file could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("device key {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "device key {path} is {len} bytes, expected 32; restore it from a backup (receipts signed with it must keep verifying)"
    )]
    Corrupt { path: PathBuf, len: usize },
    #[error("no randomness for a new device key: {0}")]
    Random(#[source] getrandom::Error),
}

/// Loads the device key from `path`, creating it on first start.
pub fn load_or_create(path: &Path) -> Result<SigningKey, IdentityError> {
    let io_err = |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    };
    match fs::read(path) {
        Ok(bytes) => {
            let seed: [u8; 32] =
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| IdentityError::Corrupt {
                        path: path.to_owned(),
                        len: bytes.len(),
                    })?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(IdentityError::Random)?;
            write_new(path, &seed).map_err(io_err)?;
            tracing::info!(path = %path.display(), "created the device signing key");
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(io_err(e)),
    }
}

/// Reads the public key without creating anything (for the CLI).
pub fn public_key(path: &Path) -> Result<Option<VerifyingKey>, IdentityError> {
    if !path.exists() {
        return Ok(None);
    }
    load_or_create(path).map(|k| Some(k.verifying_key()))
}

fn write_new(path: &Path, seed: &[u8; 32]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        crate::durable::create_dir_all(dir)?;
    }
    // Whole or not at all, and never replacing a key another process made.
    crate::durable::write_new(path, seed, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_once_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        assert!(public_key(&path).unwrap().is_none());
        let a = load_or_create(&path).unwrap();
        let b = load_or_create(&path).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(public_key(&path).unwrap(), Some(a.verifying_key()));
    }

    #[test]
    fn corrupt_key_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        fs::write(&path, b"short").unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(IdentityError::Corrupt { len: 5, .. })
        ));
        assert_eq!(fs::read(&path).unwrap(), b"short");
    }
}
