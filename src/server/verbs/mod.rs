//! The bastion's own commands, the first word of `ssh bastion VERB …`.
//!
//! Each verb is a function from the caller and its arguments to a [`Reply`]; the channel prints
//! it and exits with its status.

pub mod args;
pub mod explain;
pub mod grants;
pub mod info;
pub mod web;

use crate::bastion::Bastion;
use crate::server::auth::Identity;

pub use info::{lobby, targets, whoami};

/// Exit status for a malformed verb.
pub const EXIT_USAGE: u32 = 2;
/// Exit status of an access denial.
pub const EXIT_DENIED: u32 = 126;

/// What a verb prints and how it exits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// Text for stdout.
    pub stdout: String,
    /// Text for stderr.
    pub stderr: String,
    /// Exit status.
    pub status: u32,
}

impl Reply {
    /// Success with text on stdout.
    pub fn ok(stdout: impl Into<String>) -> Reply {
        Reply {
            stdout: stdout.into(),
            ..Reply::default()
        }
    }

    /// An access denial: `gatehouse: denied: …` and an optional hint on stderr, exit 126.
    pub fn denied(reason: &str, hint: Option<&str>) -> Reply {
        let mut stderr = format!("gatehouse: denied: {reason}\n");
        if let Some(hint) = hint {
            stderr.push_str(&format!("gatehouse: hint: {hint}\n"));
        }
        Reply {
            stderr,
            status: EXIT_DENIED,
            ..Reply::default()
        }
    }

    /// A failure that is neither a denial nor a usage error (exit 1).
    pub fn failed(message: &str) -> Reply {
        Reply {
            stderr: format!("gatehouse: {message}\n"),
            status: 1,
            ..Reply::default()
        }
    }

    /// A usage error: the message and the usage text on stderr, exit 2.
    pub fn usage(message: &str) -> Reply {
        Reply {
            stderr: format!("gatehouse: {message}\n\n{}", help_text()),
            status: EXIT_USAGE,
            ..Reply::default()
        }
    }
}

/// The usage text printed by `help` and with usage errors.
pub fn help_text() -> String {
    "\
usage: ssh bastion COMMAND

  TARGET [COMMAND...]          open a session (no command: interactive, needs ssh -t)
  TARGET:ROLE [COMMAND...]     the same, naming the role
  targets [--json]             targets you may request, and what you hold now
  grants [--all] [--json]      your grants (approvers also see pending requests)
  request TARGET --role ROLE --for DURATION --reason TEXT
  approve ID [--comment TEXT]  deny ID --reason TEXT  revoke ID [--reason TEXT]
  breakglass TARGET --reason TEXT [-- COMMAND...]
  explain TARGET[:ROLE] [--json] [-- COMMAND...]
                               why you may or may not open that session now
  web                          a one-time link that signs you in to the web console
  whoami                       who the bastion thinks you are
  help                         this text

Durations: 90s, 15m, 2h, 1h30m.
"
    .to_owned()
}

/// Runs verb `name` with its raw arguments for `identity`.
pub async fn dispatch(bastion: &Bastion, identity: &Identity, name: &str, rest: &[u8]) -> Reply {
    let Ok(rest) = std::str::from_utf8(rest) else {
        return Reply::usage("arguments must be valid UTF-8");
    };
    let policy = bastion.policy();
    // The user as the current policy knows them: someone removed since login, or whose login
    // key was withdrawn, may do nothing.
    let user = match identity.current_user(&policy) {
        Ok(user) => user,
        Err(why) => return Reply::denied(why, None),
    };
    match name {
        "help" => Reply::ok(help_text()),
        "whoami" => whoami(identity),
        "targets" => match args::parse(rest, &[("json", args::Takes::Nothing)]) {
            Ok(a) if a.positional.is_empty() => targets(&policy, &user, a.has("json")),
            Ok(_) => Reply::usage("targets takes only --json"),
            Err(e) => Reply::usage(&e),
        },
        "lobby" => lobby(&policy, identity),
        "version" => Reply::ok(format!("gatehouse {}\n", env!("CARGO_PKG_VERSION"))),
        "request" => grants::request(bastion, &policy, &user, rest).await,
        "approve" | "deny" | "revoke" => grants::decide(bastion, &policy, &user, name, rest).await,
        "grants" => grants::list(bastion, &policy, &user, rest).await,
        "explain" => explain::run(bastion, &policy, &user, rest).await,
        "web" if rest.trim().is_empty() => web::sign_in_link(bastion, &user).await,
        "web" => Reply::usage("web takes no arguments"),
        other => Reply {
            stderr: format!("gatehouse: {other}: not available on this bastion\n"),
            status: EXIT_USAGE,
            ..Reply::default()
        },
    }
}
