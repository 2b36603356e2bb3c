//! The user CA and the per-session certificates it signs.
//!
//! For each session Gatehouse makes a fresh Ed25519 key in memory (never on disk) and a
//! certificate that lets exactly that session log in to exactly one account on the target, for a
//! couple of minutes, with its key id naming the person, the grant and the session, so that the
//! target's own sshd log says who was there.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::{Algorithm, Certificate, PrivateKey};

use crate::access::{Allowed, Permit};
use crate::grants::Timestamp;

/// How far back a certificate's validity starts, to absorb clock skew between bastion and target.
pub const BACKDATE: Duration = Duration::from_secs(30);

/// The user CA.
pub struct Ca {
    key: PrivateKey,
    cert_ttl: Duration,
    source_address: Option<String>,
}

/// The session-specific parts of one certificate; everything else (principal, key id,
/// `force-command`, the end of validity) comes from the [`Permit`].
#[derive(Debug, Clone, Copy)]
pub struct CertRequest<'a> {
    /// The session, named in the key id (`gatehouse:<user>:<grant-id>:<session-id>`).
    pub session_id: &'a str,
    /// Whether the session may have a pty on the target (`permit-pty`).
    pub pty: bool,
}

/// A session's private key and its certificate; lives in memory for one connection attempt.
pub struct SessionCredential {
    /// The fresh private key.
    pub key: PrivateKey,
    /// The signed certificate.
    pub certificate: Certificate,
}

/// Why no certificate was signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The key or the certificate could not be made.
    #[error("cannot sign the session certificate: {0}")]
    Key(String),
    /// The permit's grant has already ended: a certificate would outlive it.
    #[error("grant {0} has ended; no certificate is signed for it")]
    GrantEnded(i64),
}

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

    /// Makes a fresh key and signs a certificate for what `permit` allows: its role's login as
    /// the only principal, its command as `force-command`, and a validity that ends after
    /// `cert_ttl` or at the end of the permit's grant, whichever comes first, so that no
    /// certificate outlives its grant.
    pub(crate) fn issue(
        &self,
        permit: &Permit,
        request: &CertRequest<'_>,
    ) -> Result<SessionCredential, SignError> {
        let err = |e: russh::keys::ssh_key::Error| SignError::Key(e.to_string());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let (valid_after, valid_before) =
            validity(now.as_secs(), self.cert_ttl, permit.expires_at())
                .ok_or(SignError::GrantEnded(permit.grant_id()))?;
        let mut rng = rand::rng();
        let key = PrivateKey::random(&mut rng, Algorithm::Ed25519).map_err(err)?;
        let mut builder =
            Builder::new_with_random_nonce(&mut rng, key.public_key(), valid_after, valid_before)
                .map_err(err)?;
        builder
            .serial(serial())
            .map_err(err)?
            .cert_type(CertType::User)
            .map_err(err)?
            .key_id(permit.key_id(request.session_id))
            .map_err(err)?
            .valid_principal(permit.role().login.as_str())
            .map_err(err)?;
        if request.pty {
            builder.extension("permit-pty", "").map_err(err)?;
        }
        let forced = match permit.allowed() {
            Allowed::Exec { command } => Some(command.as_str()),
            // The target's own SFTP server, and nothing else, whatever the session asks for.
            Allowed::Files => Some("internal-sftp"),
            _ => None,
        };
        if let Some(command) = forced {
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

/// A certificate's validity (after, before) in Unix seconds at `now`: backdated for clock skew,
/// ending `ttl` later or when the grant ends (`grant_end`), whichever is first; `None` when the
/// grant has already ended.
fn validity(now: u64, ttl: Duration, grant_end: Timestamp) -> Option<(u64, u64)> {
    let grant_end = u64::try_from(grant_end).ok().filter(|&end| end > now)?;
    let before = now.saturating_add(ttl.as_secs()).min(grant_end);
    Some((now.saturating_sub(BACKDATE.as_secs()), before))
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
    use crate::access::{Action, SessionRequest, decide};
    use crate::grants::{Grant, GrantState};
    use crate::testing::sample_policy;

    fn ca() -> Ca {
        let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
        Ca::new(key, Duration::from_secs(120), None)
    }

    fn unix_now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    /// A permit from `decide` for alice on web-01 in `role`, whose grant ends at `expires_at`.
    fn permit(role: &str, action: Action, expires_at: i64) -> Permit {
        let policy = sample_policy();
        let alice = policy.user("alice").unwrap();
        let grant = Grant {
            id: 17,
            user: "alice".into(),
            role: role.into(),
            target: "web-01".into(),
            reason: "INC-1".into(),
            duration: Duration::from_secs(3600),
            state: GrantState::Active,
            break_glass: false,
            requested_at: 0,
            activated_at: Some(0),
            expires_at: Some(expires_at),
            ended_at: None,
            ended_by: None,
            end_reason: None,
            approvals: vec![],
        };
        let request = SessionRequest {
            target: "web-01".into(),
            role: Some(role.into()),
            action,
        };
        decide(&policy, alice, &[grant], &request, unix_now()).unwrap()
    }

    fn request(pty: bool) -> CertRequest<'static> {
        CertRequest {
            session_id: "0190",
            pty,
        }
    }

    #[test]
    fn exec_certificates_force_the_permitted_command_and_deny_pty() {
        let ca = ca();
        let permit = permit(
            "web-read",
            Action::Exec(b"systemctl status nginx".to_vec()),
            unix_now() + 3600,
        );
        let cred = ca.issue(&permit, &request(false)).unwrap();
        let cert = &cred.certificate;
        assert_eq!(cert.valid_principals(), ["ops".to_string()]);
        assert_eq!(cert.key_id(), "gatehouse:alice:17:0190");
        assert_eq!(cert.cert_type(), CertType::User);
        assert!(cert.extensions().is_empty(), "no pty, no forwarding");
        assert_eq!(
            cert.critical_options()
                .get("force-command")
                .map(String::as_str),
            Some("'systemctl' 'status' 'nginx'")
        );
        assert_eq!(cert.public_key(), cred.key.public_key().key_data());
        let fp = ca.key.public_key().fingerprint(Default::default());
        let now = unix_now() as u64;
        cert.validate_at(now, [&fp]).unwrap();
        assert!(cert.valid_before() - cert.valid_after() == 150);
        assert!(cert.validate_at(now + 200, [&fp]).is_err(), "short-lived");
    }

    #[test]
    fn interactive_certificates_permit_a_pty_only() {
        let permit = permit(
            "web-ops",
            Action::Interactive { pty: true },
            unix_now() + 3600,
        );
        let cred = ca().issue(&permit, &request(true)).unwrap();
        let ext: Vec<_> = cred.certificate.extensions().keys().cloned().collect();
        assert_eq!(ext, ["permit-pty"]);
        assert!(cred.certificate.critical_options().is_empty());
    }

    #[test]
    fn no_certificate_outlives_its_grant() {
        let ca = ca();
        let ends = unix_now() + 45;
        let permit = permit("web-ops", Action::Exec(b"uptime".to_vec()), ends);
        let cert = ca.issue(&permit, &request(false)).unwrap().certificate;
        assert_eq!(
            cert.valid_before(),
            ends as u64,
            "capped at the grant's end"
        );
        let fp = ca.key.public_key().fingerprint(Default::default());
        assert!(cert.validate_at(ends as u64 - 1, [&fp]).is_ok());
        assert!(cert.validate_at(ends as u64, [&fp]).is_err());
    }

    #[test]
    fn validity_ends_at_the_ttl_or_the_grant_whichever_is_first() {
        let ttl = Duration::from_secs(120);
        assert_eq!(validity(1000, ttl, 5000), Some((970, 1120)));
        assert_eq!(validity(1000, ttl, 1060), Some((970, 1060)));
        assert_eq!(validity(1000, ttl, 1001), Some((970, 1001)));
        assert_eq!(validity(1000, ttl, 1000), None, "ended now");
        assert_eq!(validity(1000, ttl, 10), None, "ended long ago");
        assert_eq!(validity(1000, ttl, -5), None);
    }

    #[test]
    fn every_session_gets_a_new_key_and_serial() {
        let ca = ca();
        let permit = permit("web-ops", Action::Exec(b"ls".to_vec()), unix_now() + 600);
        let a = ca.issue(&permit, &request(false)).unwrap();
        let b = ca.issue(&permit, &request(false)).unwrap();
        assert_ne!(a.key.public_key(), b.key.public_key());
        assert_ne!(a.certificate.serial(), b.certificate.serial());
    }
}
