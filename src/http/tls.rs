//! The console's TLS certificate: loaded from the configured files, or generated once (a
//! self-signed certificate for the loopback names and this host) so that a fresh install
//! serves HTTPS at once; `init` and `serve` print its SHA-256 fingerprint so a browser's
//! warning can be checked against it.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::http::TlsFiles;
use crate::keys::Origin;

/// Errors loading or creating the certificate.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not what it should be.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key file is readable by group or others.
    #[error(
        "{path}: permissions {mode:o} are too open; the key must be readable by its owner only (chmod 600)"
    )]
    TooOpen {
        /// The key file.
        path: String,
        /// Its mode bits.
        mode: u32,
    },
    /// The certificate could not be generated or used.
    #[error("TLS: {0}")]
    Tls(String),
}

/// A certificate chain and key, ready to serve.
pub struct Certificate {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Certificate {
    /// The SHA-256 fingerprint of the leaf certificate, as browsers show it
    /// (`AB:CD:…`).
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.chain[0])
    }

    /// A rustls server configuration serving this certificate over HTTP/2 and HTTP/1.1.
    pub fn server_config(self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain, self.key)
            .map_err(|e| TlsError::Tls(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The SHA-256 fingerprint of a DER certificate, colon-separated upper-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Loads the certificate and key at `files`, or, when neither exists, generates a
/// self-signed pair there (key mode 0600 in a 0700 directory, created exclusively).
pub fn load_or_create(files: &TlsFiles) -> Result<(Certificate, Origin), TlsError> {
    match (files.cert.exists(), files.key.exists()) {
        (false, false) => create(files).map(|c| (c, Origin::Created)),
        (true, true) => load(files).map(|c| (c, Origin::Loaded)),
        (true, false) => Err(missing(&files.key)),
        (false, true) => Err(missing(&files.cert)),
    }
}

fn missing(path: &Path) -> TlsError {
    TlsError::Format {
        path: path.display().to_string(),
        reason: "missing, while its certificate or key exists; restore it or remove both to \
                 have a new pair generated"
            .into(),
    }
}

fn load(files: &TlsFiles) -> Result<Certificate, TlsError> {
    let key_path = files.key.display().to_string();
    let mode = std::fs::metadata(&files.key)
        .map_err(|source| TlsError::Io {
            path: key_path.clone(),
            source,
        })?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::TooOpen {
            path: key_path,
            mode,
        });
    }
    let cert_path = files.cert.display().to_string();
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Format {
            path: cert_path.clone(),
            reason: format!("not a PEM certificate chain: {e}"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Format {
            path: cert_path,
            reason: "holds no certificate".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Format {
        path: key_path,
        reason: format!("not a PEM private key: {e}"),
    })?;
    let certificate = Certificate { chain, key };
    // A key that does not match the certificate fails here, at start, not at the first
    // browser's handshake.
    let check = Certificate {
        chain: certificate.chain.clone(),
        key: certificate.key.clone_key(),
    };
    check.server_config().map_err(|e| TlsError::Format {
        path: files.key.display().to_string(),
        reason: format!("does not go with {}: {e}", files.cert.display()),
    })?;
    Ok(certificate)
}

fn create(files: &TlsFiles) -> Result<Certificate, TlsError> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
    if let Some(host) = crate::config::cluster::host_name() {
        names.push(host);
    }
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| TlsError::Tls(e.to_string()))?;
    let mut params =
        rcgen::CertificateParams::new(names).map_err(|e| TlsError::Tls(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Gatehouse console");
    let now = std::time::SystemTime::now();
    params.not_before = now.into();
    params.not_after = (now + std::time::Duration::from_secs(825 * 24 * 3600)).into();
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Tls(e.to_string()))?;
    write_new(&files.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&files.cert, cert.pem().as_bytes(), 0o644)?;
    Ok(Certificate {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    })
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let io = |source| TlsError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> TlsFiles {
        TlsFiles {
            cert: dir.join("keys/http.crt"),
            key: dir.join("keys/http.key"),
        }
    }

    #[test]
    fn generates_once_then_loads_the_same_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        let (made, origin) = load_or_create(&files).unwrap();
        assert_eq!(origin, Origin::Created);
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (loaded, origin) = load_or_create(&files).unwrap();
        assert_eq!(origin, Origin::Loaded);
        assert_eq!(made.fingerprint(), loaded.fingerprint());
        assert_eq!(made.fingerprint().len(), 32 * 3 - 1);
        loaded.server_config().unwrap();
    }

    #[test]
    fn refuses_an_open_key_a_lone_file_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        load_or_create(&files).unwrap();
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(&files),
            Err(TlsError::TooOpen { .. })
        ));
        std::fs::remove_file(&files.key).unwrap();
        let e = load_or_create(&files).err().unwrap().to_string();
        assert!(e.contains("missing"), "{e}");
        std::fs::write(&files.key, "not a key").unwrap();
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = load_or_create(&files).err().unwrap().to_string();
        assert!(e.contains("not a PEM private key"), "{e}");
    }

    #[test]
    fn refuses_a_key_that_does_not_match() {
        let dir = tempfile::tempdir().unwrap();
        let one = files(&dir.path().join("one"));
        let two = files(&dir.path().join("two"));
        load_or_create(&one).unwrap();
        load_or_create(&two).unwrap();
        let mixed = TlsFiles {
            cert: one.cert,
            key: two.key,
        };
        let e = load_or_create(&mixed).err().unwrap().to_string();
        assert!(e.contains("does not go with"), "{e}");
    }
}
