//! The user CA and the per-session certificates it signs.
//!
//! For each session Gatehouse makes a fresh Ed25519 key in memory (never on disk) and a
//! certificate that lets exactly that session log in to exactly one account on the target, for a
//! couple of minutes, with its key id naming the person, the grant and the session, so that the
//! target's own sshd log says who was there.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::{Algorithm, Certificate, PrivateKey};

/// How far back a certificate's validity starts, to absorb clock skew between bastion and target.
pub const BACKDATE: Duration = Duration::from_secs(30);

/// The user CA.
pub struct Ca {
    key: PrivateKey,
    cert_ttl: Duration,
    source_address: Option<String>,
}

/// What one certificate is for; built by the session from its `Permit`.
#[derive(Debug, Clone)]
pub struct CertRequest<'a> {
    /// Account on the target (the certificate's only principal).
    pub login: &'a str,
    /// `gatehouse:<user>:<grant-id>:<session-id>`.
    pub key_id: String,
    /// Whether the session may have a pty on the target (`permit-pty`).
    pub pty: bool,
    /// The exact command the target must run (`force-command`), for exec sessions.
    pub force_command: Option<&'a str>,
}

/// A session's private key and its certificate; lives in memory for one connection attempt.
pub struct SessionCredential {
    /// The fresh private key.
    pub key: PrivateKey,
    /// The signed certificate.
    pub certificate: Certificate,
}

/// Errors signing a certificate.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign the session certificate: {0}")]
pub struct SignError(String);

impl Ca {
    /// Wraps a loaded CA key.
    pub fn new(key: PrivateKey, cert_ttl: Duration, source_address: Option<String>) -> Ca {
        Ca {
            key,
            cert_ttl,
            source_address,
        }
    }

    /// The line a target puts in its `TrustedUserCAKeys` file.
    pub fn public_key_line(&self) -> String {
        self.key
            .public_key()
            .to_openssh()
            .unwrap_or_else(|e| format!("# cannot encode the CA key: {e}"))
    }

    /// Makes a fresh key and signs a certificate for it.
    pub fn issue(&self, request: &CertRequest<'_>) -> Result<SessionCredential, SignError> {
        let err = |e: russh::keys::ssh_key::Error| SignError(e.to_string());
        let mut rng = rand::rng();
        let key = PrivateKey::random(&mut rng, Algorithm::Ed25519).map_err(err)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let valid_after = now.saturating_sub(BACKDATE).as_secs();
        let valid_before = (now + self.cert_ttl).as_secs();
        let mut builder =
            Builder::new_with_random_nonce(&mut rng, key.public_key(), valid_after, valid_before)
                .map_err(err)?;
        builder
            .serial(serial())
            .map_err(err)?
            .cert_type(CertType::User)
            .map_err(err)?
            .key_id(request.key_id.clone())
            .map_err(err)?
            .valid_principal(request.login)
            .map_err(err)?;
        if request.pty {
            builder.extension("permit-pty", "").map_err(err)?;
        }
        if let Some(command) = request.force_command {
            builder
                .critical_option("force-command", command)
                .map_err(err)?;
        }
        if let Some(source) = &self.source_address {
            builder
                .critical_option("source-address", source.as_str())
                .map_err(err)?;
        }
        let certificate = builder.sign(&self.key).map_err(err)?;
        Ok(SessionCredential { key, certificate })
    }
}

/// A certificate serial: random, non-zero, so serials never repeat in practice across restarts
/// or bastion nodes without any shared counter.
fn serial() -> u64 {
    loop {
        let n: u64 = rand::random();
        if n != 0 {
            return n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> Ca {
        let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
        Ca::new(key, Duration::from_secs(120), None)
    }

    #[test]
    fn exec_certificates_force_the_command_and_deny_pty() {
        let ca = ca();
        let cred = ca
            .issue(&CertRequest {
                login: "ops",
                key_id: "gatehouse:alice:17:0190".into(),
                pty: false,
                force_command: Some("'uptime'"),
            })
            .unwrap();
        let cert = &cred.certificate;
        assert_eq!(cert.valid_principals(), ["ops".to_string()]);
        assert_eq!(cert.key_id(), "gatehouse:alice:17:0190");
        assert_eq!(cert.cert_type(), CertType::User);
        assert!(cert.extensions().is_empty(), "no pty, no forwarding");
        assert_eq!(
            cert.critical_options()
                .get("force-command")
                .map(String::as_str),
            Some("'uptime'")
        );
        assert_eq!(cert.public_key(), cred.key.public_key().key_data());
        let fp = ca.key.public_key().fingerprint(Default::default());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        cert.validate_at(now, [&fp]).unwrap();
        assert!(cert.valid_before() - cert.valid_after() == 150);
        assert!(cert.validate_at(now + 200, [&fp]).is_err(), "short-lived");
    }

    #[test]
    fn interactive_certificates_permit_a_pty_only() {
        let cred = ca()
            .issue(&CertRequest {
                login: "ops",
                key_id: "k".into(),
                pty: true,
                force_command: None,
            })
            .unwrap();
        let ext: Vec<_> = cred.certificate.extensions().keys().cloned().collect();
        assert_eq!(ext, ["permit-pty"]);
        assert!(cred.certificate.critical_options().is_empty());
    }

    #[test]
    fn every_session_gets_a_new_key_and_serial() {
        let ca = ca();
        let req = CertRequest {
            login: "ops",
            key_id: "k".into(),
            pty: false,
            force_command: None,
        };
        let a = ca.issue(&req).unwrap();
        let b = ca.issue(&req).unwrap();
        assert_ne!(a.key.public_key(), b.key.public_key());
        assert_ne!(a.certificate.serial(), b.certificate.serial());
    }
}
