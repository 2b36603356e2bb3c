//! The bastion's own long-lived keys on disk: its SSH host key and its user CA.
//!
//! A missing key is generated (Ed25519) and written with mode 0600 in a directory of mode 0700,
//! created exclusively so that two processes starting at once never overwrite each other's key.
//! An existing key file that others can read is refused: a CA key that leaked is a fleet that
//! leaked.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use russh::keys::{Algorithm, PrivateKey, ssh_key::LineEnding};

/// Errors loading or creating a key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read, created or written.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not an OpenSSH private key we can use.
    #[error("{path}: not a usable OpenSSH private key: {reason}")]
    Format {
        /// The key file.
        path: String,
        /// What the parser said.
        reason: String,
    },
    /// The file is readable by group or others.
    #[error(
        "{path}: permissions {mode:o} are too open; the key must be readable by its owner only (chmod 600)"
    )]
    TooOpen {
        /// The key file.
        path: String,
        /// Its mode bits.
        mode: u32,
    },
}

/// What [`load_or_create`] did, so `serve` can log what it created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The key existed.
    Loaded,
    /// The key was generated now.
    Created,
}

/// Loads the OpenSSH private key at `path`, or generates an Ed25519 key there if there is none.
pub fn load_or_create(path: &Path, comment: &str) -> Result<(PrivateKey, Origin), KeyError> {
    let shown = path.display().to_string();
    let io = |source| KeyError::Io {
        path: shown.clone(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::TooOpen { path: shown, mode });
            }
            let key = PrivateKey::read_openssh_file(path).map_err(|e| KeyError::Format {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            if key.is_encrypted() {
                return Err(KeyError::Format {
                    path: shown,
                    reason: "it is encrypted with a passphrase".into(),
                });
            }
            Ok((key, Origin::Loaded))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(io)?;
            }
            let mut key =
                PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(|e| {
                    KeyError::Format {
                        path: shown.clone(),
                        reason: e.to_string(),
                    }
                })?;
            key.set_comment(comment);
            let text = key
                .to_openssh(LineEnding::LF)
                .map_err(|e| KeyError::Format {
                    path: shown.clone(),
                    reason: e.to_string(),
                })?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
            file.write_all(text.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok((key, Origin::Created))
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_0600_then_loads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/user_ca");
        let (created, origin) = load_or_create(&path, "test").unwrap();
        assert_eq!(origin, Origin::Created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        let (loaded, origin) = load_or_create(&path, "test").unwrap();
        assert_eq!(origin, Origin::Loaded);
        assert_eq!(created.public_key(), loaded.public_key());
    }

    #[test]
    fn refuses_a_key_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        load_or_create(&path, "test").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(&path, "test"),
            Err(KeyError::TooOpen { .. })
        ));
    }
}
