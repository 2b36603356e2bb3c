//! File transfer under the same grants: SFTP (and `scp`, which speaks SFTP since OpenSSH 9)
//! with path rules and a transcript of every operation.
//!
//! A role allows it with `files = { read = […], write = […], hash = … }` ([`rules`]). Over
//! SFTP the bastion shows one tree whose first segment is the target ([`path`]); each target
//! used is a session of kind `files` under the user's live grant ([`link`]), reached with the
//! session's certificate over the target's own SFTP server ([`remote`]). Every request is
//! decoded exactly ([`wire`]), checked on the path the target resolves it to (`check`),
//! answered (`requests` for paths, `relay` for handles) and recorded ([`transcript`]);
//! [`proxy`] runs one session. The legacy scp protocol is refused ([`legacy_scp`]).

mod check;
pub mod digest;
pub mod handles;
pub mod link;
pub mod path;
pub mod proxy;
mod relay;
pub mod remote;
mod requests;
pub mod rules;
pub mod transcript;
pub mod wire;

pub use proxy::serve;
pub use rules::{Access, FileRules, PathPattern};

/// What `scp -O` is told: the legacy protocol runs a shell command on the far side, which the
/// bastion will not do.
pub const LEGACY_SCP: &str =
    "the legacy scp protocol (scp -O) is not supported; use scp without -O, which uses SFTP";

/// Whether an exec request is the legacy scp protocol (`scp -t …` to upload, `scp -f …` to
/// download), which `scp -O` sends.
pub fn legacy_scp(command: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(command) else {
        return false;
    };
    let mut words = text.split_ascii_whitespace();
    if words.next() != Some("scp") {
        return false;
    }
    words.any(|w| w.starts_with('-') && !w.starts_with("--") && w.contains(['t', 'f']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legacy_scp_protocol_is_recognised() {
        assert!(legacy_scp(b"scp -f /web-01/var/log/x"));
        assert!(legacy_scp(b"scp -v -t /web-01/srv/upload/"));
        assert!(legacy_scp(b"scp -pr -t -- /x"));
        assert!(!legacy_scp(b"scp"));
        assert!(!legacy_scp(b"web-01 scp -f x"));
        assert!(!legacy_scp(b"scpx -f x"));
        assert!(!legacy_scp(b"scp \xff -f"));
    }
}
