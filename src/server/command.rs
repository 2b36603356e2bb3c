//! The first word of an SSH command: a verb, or a target with an optional role.
//!
//! The OpenSSH client joins its arguments with spaces, so the exec request is one string. Only the
//! first word is split off here; what follows is handed on untouched, so that the command rules
//! see exactly the bytes the user sent.

use crate::access::{Action, SessionRequest};
use crate::policy::VERBS;

/// What an exec request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A bastion verb (`grants`, `request`, …) with the raw rest of the line.
    Verb {
        /// The verb.
        name: &'static str,
        /// Everything after the verb, unparsed.
        rest: Vec<u8>,
    },
    /// A session on a target.
    Session(SessionRequest),
}

/// Why the first word could not be understood (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Splits an exec request into its first word and the rest.
pub fn parse(raw: &[u8], pty: bool) -> Result<Command, UsageError> {
    let trimmed = trim_start(raw);
    let end = trimmed
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(trimmed.len());
    let (first, rest) = trimmed.split_at(end);
    let rest = trim_start(rest);
    let first = std::str::from_utf8(first)
        .map_err(|_| UsageError("the first word is not valid UTF-8".into()))?;
    if first.is_empty() {
        return Err(UsageError("empty command".into()));
    }
    if let Some(&name) = VERBS.iter().find(|&&v| v == first) {
        return Ok(Command::Verb {
            name,
            rest: rest.to_vec(),
        });
    }
    let (target, role) = match first.split_once(':') {
        Some((t, r)) => (t, Some(r)),
        None => (first, None),
    };
    if !crate::policy::valid_target_name(target) {
        return Err(UsageError(format!(
            "{} is neither a verb nor a target name",
            shown(first)
        )));
    }
    if let Some(role) = role
        && !crate::policy::valid_role_name(role)
    {
        return Err(UsageError(format!("{} is not a role name", shown(role))));
    }
    let action = if rest.is_empty() {
        Action::Interactive { pty }
    } else {
        Action::Exec(rest.to_vec())
    };
    Ok(Command::Session(SessionRequest {
        target: target.to_owned(),
        role: role.map(str::to_owned),
        action,
    }))
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Quotes user text for a message so that control characters cannot reach the terminal.
pub fn shown(text: &str) -> String {
    let short: String = text.chars().take(64).collect();
    format!("{short:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_target_role_and_command() {
        let c = parse(b"web-01:web-ops  systemctl status nginx", false).unwrap();
        assert_eq!(
            c,
            Command::Session(SessionRequest {
                target: "web-01".into(),
                role: Some("web-ops".into()),
                action: Action::Exec(b"systemctl status nginx".to_vec()),
            })
        );
        let c = parse(b"web-01", true).unwrap();
        assert!(matches!(
            c,
            Command::Session(SessionRequest {
                action: Action::Interactive { pty: true },
                ..
            })
        ));
    }

    #[test]
    fn verbs_win_and_keep_the_rest_raw() {
        assert_eq!(
            parse(b"request web-01 --for 1h", false).unwrap(),
            Command::Verb {
                name: "request",
                rest: b"web-01 --for 1h".to_vec()
            }
        );
        assert_eq!(
            parse(b"grants", false).unwrap(),
            Command::Verb {
                name: "grants",
                rest: vec![]
            }
        );
    }

    #[test]
    fn garbage_is_a_usage_error() {
        for bad in [
            &b""[..],
            b"   ",
            b"Web-01 ls",
            b"web-01:Bad ls",
            b"\xff ls",
            b"a;b",
        ] {
            assert!(parse(bad, false).is_err(), "{bad:?}");
        }
    }
}
