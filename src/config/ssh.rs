//! `[ssh]`: what the bastion's own SSH server offers its users on the wire, where an operator
//! wants it narrower than the built-in set.
//!
//! Only `ciphers` can be set. The built-in offer is russh's (ChaCha20-Poly1305 first, then
//! AES-GCM and AES-CTR); an operator whose clients all have AES instructions can offer AES-GCM
//! alone, which costs both the bastion and the clients a fraction of ChaCha20-Poly1305 per byte.
//! The server's order never decides anything in SSH (the client's first match wins), so a list
//! can only narrow what clients may pick. Names outside the built-in set (CBC modes, 3DES,
//! `none`) are refused at their `file:line`, so a setting can never widen the offer.

use russh::cipher;
use serde::{Deserialize, Deserializer};

/// Every cipher a `ciphers` list may name, in the order the bastion offers them by default.
pub const CIPHERS: &[cipher::Name] = &[
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_GCM,
    cipher::AES_128_GCM,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];

/// The ciphers offered when `[ssh] ciphers` is left out: russh's defaults, which the transport
/// tests audit (AES-128-GCM is allowed in a list but not offered by default, as before).
pub const DEFAULT_CIPHERS: &[cipher::Name] = &[
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_GCM,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];

/// The `[ssh]` section, resolved.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// The ciphers the SSH server offers its users, in the order written.
    pub ciphers: Vec<cipher::Name>,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            ciphers: DEFAULT_CIPHERS.to_vec(),
        }
    }
}

/// `[ssh]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSsh {
    #[serde(default, deserialize_with = "deserialize_ciphers")]
    ciphers: Option<Vec<cipher::Name>>,
}

impl RawSsh {
    /// The section with its defaults filled in.
    pub(super) fn resolve(self) -> SshConfig {
        match self.ciphers {
            Some(ciphers) => SshConfig { ciphers },
            None => SshConfig::default(),
        }
    }
}

/// Reads `ciphers = [...]` while the file is parsed, so a bad list is reported at its line.
fn deserialize_ciphers<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<cipher::Name>>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    parse_ciphers(&names)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The ciphers a list names, or the message that says what is wrong with it.
pub fn parse_ciphers(names: &[String]) -> Result<Vec<cipher::Name>, String> {
    if names.is_empty() {
        return Err(
            "ssh.ciphers: the list is empty; no client could connect (leave it out \
                    for the built-in set)"
                .to_owned(),
        );
    }
    let mut ciphers: Vec<cipher::Name> = Vec::with_capacity(names.len());
    for name in names {
        let Some(found) = CIPHERS.iter().find(|c| c.as_ref() == name.as_str()) else {
            let known: Vec<&str> = CIPHERS.iter().map(|c| c.as_ref()).collect();
            return Err(format!(
                "ssh.ciphers: {name:?} is not one the bastion offers; choose from {}",
                known.join(", ")
            ));
        };
        if ciphers.contains(found) {
            return Err(format!("ssh.ciphers: {name:?} is listed twice"));
        }
        ciphers.push(*found);
    }
    Ok(ciphers)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, ConfigError};

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gatehouse.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path)
    }

    #[test]
    fn the_default_is_the_audited_set() {
        let c = Config::defaults_in(Path::new("/srv"));
        assert_eq!(c.ssh.ciphers, DEFAULT_CIPHERS);
        assert_eq!(
            russh::Preferred::default().cipher.as_ref(),
            DEFAULT_CIPHERS,
            "russh's own defaults moved: check what the bastion offers"
        );
    }

    #[test]
    fn a_list_narrows_the_offer_in_its_order() {
        let c = load("[ssh]\nciphers = [\"aes128-gcm@openssh.com\", \"aes256-gcm@openssh.com\"]\n")
            .unwrap();
        assert_eq!(c.ssh.ciphers, [cipher::AES_128_GCM, cipher::AES_256_GCM]);
    }

    #[test]
    fn weak_unknown_repeated_or_no_ciphers_are_refused_at_their_line() {
        for (list, says) in [
            ("[\"aes128-cbc\"]", "is not one the bastion offers"),
            ("[\"none\"]", "is not one the bastion offers"),
            ("[\"3des-cbc\"]", "is not one the bastion offers"),
            (
                "[\"AES256-GCM@openssh.com\"]",
                "is not one the bastion offers",
            ),
            ("[\"aes256-ctr\", \"aes256-ctr\"]", "is listed twice"),
            ("[]", "the list is empty"),
        ] {
            let err = load(&format!(
                "listen = \"127.0.0.1:2222\"\n[ssh]\nciphers = {list}\n"
            ))
            .unwrap_err();
            match &err {
                ConfigError::Parse { line, message, .. } => {
                    assert_eq!(*line, 3, "{list}: {err}");
                    assert!(message.contains(says), "{list}: {err}");
                }
                other => panic!("{list}: {other}"),
            }
        }
    }
}
