//! The SSH transport Gatehouse offers its clients: which algorithms, and the russh settings.
//!
//! The lists are narrower than russh's defaults, for what an auditor (such as `ssh-audit`)
//! rightly flags:
//! * no compression at all: compression before authentication exposes the decompressor to
//!   anyone who can connect, and a bastion's traffic gains little from it;
//! * only encrypt-then-MAC MACs (the AEAD ciphers carry their own); encrypt-and-MAC
//!   (`hmac-sha2-*` without `-etm`) authenticates the plaintext, not what was sent;
//! * no Diffie-Hellman group under 3072 bits (no `group14`, no group exchange, which lets the
//!   client ask for small groups); the hybrid post-quantum and X25519 exchanges come first,
//!   then the 4096- and 8192-bit groups for clients that have nothing else.
//!
//! The same lists apply to the bastion's own connections to targets (see
//! [`crate::upstream::client_config`]), which keeps AES-GCM first for speed.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PrivateKey};
use russh::{MethodKind, MethodSet, cipher, compression, kex, mac};

/// Key exchanges, best first. The `ext-info` and strict-kex markers are not exchanges but
/// must be listed for russh to announce them (each side sends only its own).
pub const KEX: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::DH_G16_SHA512,
    kex::DH_G18_SHA512,
    kex::EXTENSION_SUPPORT_AS_CLIENT,
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

/// MACs for the ciphers that need one: encrypt-then-MAC only.
pub const MACS: &[mac::Name] = &[mac::HMAC_SHA512_ETM, mac::HMAC_SHA256_ETM];

/// No compression, before or after authentication.
pub const COMPRESSION: &[compression::Name] = &[compression::NONE];

/// Host key types, best first: no `ssh-rsa` (RSA signatures over SHA-1).
pub const HOST_KEYS: &[Algorithm] = &[
    Algorithm::Ed25519,
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP256,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP384,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP521,
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha256),
    },
];

/// The algorithm preferences of both sides of the bastion: russh's default ciphers, narrowed
/// by [`KEX`], [`HOST_KEYS`], [`MACS`] and [`COMPRESSION`]. The server side then takes its
/// ciphers from `[ssh] ciphers` (see [`ssh_config`]).
pub fn preferred() -> russh::Preferred {
    russh::Preferred {
        kex: Cow::Borrowed(KEX),
        key: Cow::Borrowed(HOST_KEYS),
        mac: Cow::Borrowed(MACS),
        compression: Cow::Borrowed(COMPRESSION),
        ..russh::Preferred::default()
    }
}

/// The russh server configuration Gatehouse runs with, offering `ciphers` (`[ssh] ciphers`,
/// already limited to the audited set by the config).
pub fn ssh_config(host_key: PrivateKey, ciphers: &[cipher::Name]) -> Arc<russh::server::Config> {
    let mut methods = MethodSet::empty();
    methods.push(MethodKind::PublicKey);
    Arc::new(russh::server::Config {
        server_id: russh::SshId::Standard(
            format!("SSH-2.0-Gatehouse_{}", env!("CARGO_PKG_VERSION")).into(),
        ),
        methods,
        keys: vec![host_key],
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: 6,
        // Sessions live as long as their grant; dead peers are found by keepalives instead.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        window_size: 8 * 1024 * 1024,
        maximum_packet_size: 32 * 1024,
        nodelay: true,
        preferred: russh::Preferred {
            cipher: Cow::Owned(ciphers.to_vec()),
            ..preferred()
        },
        ..russh::server::Config::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_weak_algorithm_is_offered() {
        let p = preferred();
        assert_eq!(&*p.compression, &[compression::NONE]);
        for m in p.mac.iter() {
            assert!(m.as_ref().ends_with("-etm@openssh.com"), "{m:?}");
        }
        for k in p.kex.iter() {
            let name = k.as_ref();
            assert!(
                !name.contains("group1-") && !name.contains("group14"),
                "{name}"
            );
            assert!(!name.contains("group-exchange"), "{name}");
            assert!(!name.contains("sha1"), "{name}");
        }
        assert!(p.kex.contains(&kex::CURVE25519));
        assert!(!p.key.contains(&Algorithm::Rsa { hash: None }));
    }
}
