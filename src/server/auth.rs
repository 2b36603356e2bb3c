//! Who is connecting: a public key listed for a user in the policy, or an OpenSSH user
//! certificate from a CA the config trusts, naming the user as a principal.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use russh::keys::ssh_key::Fingerprint;
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{Certificate, HashAlg, PublicKey};

use crate::policy::{Policy, User};

/// How the user proved who they are.
#[derive(Debug, Clone)]
pub enum Method {
    /// A public key listed in the policy.
    Key(String),
    /// A user certificate: its key id and serial.
    Certificate {
        /// The certificate's key id.
        key_id: String,
        /// Its serial.
        serial: u64,
    },
}

impl Method {
    /// The key's SHA-256 fingerprint, for a login with a listed key.
    pub fn key_fingerprint(&self) -> Option<String> {
        match self {
            Method::Key(fp) => Some(fp.clone()),
            Method::Certificate { .. } => None,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::Key(fp) => write!(f, "public key {fp}"),
            Method::Certificate { key_id, serial } => {
                write!(f, "certificate {key_id:?} (serial {serial})")
            }
        }
    }
}

/// An authenticated person on one connection.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The user as the policy knew them at login.
    pub user: Arc<User>,
    /// How they logged in.
    pub method: Method,
    /// Where they came from.
    pub peer: Option<SocketAddr>,
}

impl Identity {
    /// The user as `policy` knows them now, if this login still stands: the user is still in
    /// the policy and, for a login with a key, the key is still listed for them. Every channel
    /// and verb asks, so a key removed from the directory or the policy files acts on a
    /// connection that is already open (an OpenSSH shared connection, say) from its next
    /// request on.
    pub fn current_user(&self, policy: &Policy) -> Result<Arc<User>, &'static str> {
        let user = policy
            .user(&self.user.name)
            .ok_or("your account is no longer in the policy")?;
        if let Some(fp) = self.method.key_fingerprint()
            && !user.lists_key(&fp)
        {
            return Err("the key you logged in with is no longer listed for you");
        }
        Ok(user.clone())
    }
}

/// Whether `key` may authenticate as `login`.
pub fn by_key(
    policy: &Policy,
    login: &str,
    key: &PublicKey,
) -> Result<(Arc<User>, Method), String> {
    let user = policy
        .user(login)
        .ok_or_else(|| format!("unknown user {login:?}"))?;
    if user.keys.iter().any(|k| k.key_data() == key.key_data()) {
        Ok((
            user.clone(),
            Method::Key(key.fingerprint(HashAlg::Sha256).to_string()),
        ))
    } else {
        Err(format!(
            "key {} is not listed for {login:?}",
            key.fingerprint(HashAlg::Sha256)
        ))
    }
}

/// Whether `cert` may authenticate as `login`: signed by a trusted CA, a user certificate, valid
/// now, naming `login` as a principal, and `login` is a user in the policy (for their groups).
pub fn by_certificate(
    policy: &Policy,
    trusted: &[Fingerprint],
    login: &str,
    cert: &Certificate,
) -> Result<(Arc<User>, Method), String> {
    if trusted.is_empty() {
        return Err("no user CA is trusted".into());
    }
    if cert.cert_type() != CertType::User {
        return Err("not a user certificate".into());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    cert.validate_at(now, trusted)
        .map_err(|e| format!("certificate not valid: {e}"))?;
    if let Some(option) = cert.critical_options().keys().next() {
        // force-command and source-address cannot be honoured faithfully by a bastion that
        // runs its own verbs; refusing is the fail-closed reading of an unknown restriction.
        return Err(format!(
            "certificate carries critical option {option:?}, which Gatehouse does not accept"
        ));
    }
    if !cert.valid_principals().iter().any(|p| p == login) {
        return Err(format!(
            "certificate does not name {login:?} as a principal"
        ));
    }
    let user = policy
        .user(login)
        .ok_or_else(|| format!("unknown user {login:?}"))?;
    Ok((
        user.clone(),
        Method::Certificate {
            key_id: cert.key_id().to_owned(),
            serial: cert.serial(),
        },
    ))
}
