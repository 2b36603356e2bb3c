//! `breakglass TARGET --reason TEXT [-- COMMAND…]`: emergency access that works at once and is
//! impossible to hide.
//!
//! A member of a `break_glass` role covering the target gets an active grant for the role's
//! `max_duration` without approval. Before the session starts, a critical alert goes to every
//! sink (Gatehouse waits a few seconds for them, never longer, and a sink that is down never
//! blocks the emergency), a banner tells the user what is happening, and the session is
//! recorded with input and queued for review. Uses are rate-limited per user.

use std::sync::Arc;

use russh::server::Handle;

use super::auth::Identity;
use super::channel::{Opened, finish, session};
use super::verbs::Reply;
use super::verbs::args::{self, Takes};
use crate::access::{Action, SessionRequest};
use crate::bastion::Bastion;
use crate::events::{Event, EventKind};
use crate::grants::desk::BreakGlass;
use crate::grants::{self, GrantError};
use crate::outcome::DenialClass;
use crate::policy::Role;

/// The shortest reason accepted: an emergency needs words, not "x".
pub const MIN_REASON_CHARS: usize = 10;

/// Splits the raw arguments at the first unquoted ` -- `: options before it, the command (as
/// typed, for the session) after it.
pub fn split_command(raw: &[u8]) -> (&[u8], Option<&[u8]>) {
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b'\\' => i += 1,
            None if b == b'-'
                && raw.get(i + 1) == Some(&b'-')
                && (i == 0 || matches!(raw[i - 1], b' ' | b'\t'))
                && raw.get(i + 2).is_none_or(|c| matches!(c, b' ' | b'\t')) =>
            {
                let rest = raw.get(i + 3..).unwrap_or(&[]);
                let start = rest
                    .iter()
                    .position(|&c| c != b' ' && c != b'\t')
                    .unwrap_or(rest.len());
                let before = &raw[..i];
                let end = before
                    .iter()
                    .rposition(|&c| c != b' ' && c != b'\t')
                    .map_or(0, |e| e + 1);
                return (
                    &before[..end],
                    Some(&rest[start..]).filter(|r| !r.is_empty()),
                );
            }
            None => {}
        }
        i += 1;
    }
    (raw, None)
}

/// Runs `breakglass` on a channel: checks, grant, alert, banner, then the session.
pub(super) async fn run(
    bastion: Arc<Bastion>,
    identity: Arc<Identity>,
    handle: Handle,
    opened: Opened,
    raw: &[u8],
) {
    let pty = opened.pty.is_some();
    let (options, command) = split_command(raw);
    let Ok(options) = std::str::from_utf8(options) else {
        return finish(
            &opened.write,
            pty,
            Reply::usage("arguments must be valid UTF-8"),
        )
        .await;
    };
    let parsed = match args::parse(options, &[("reason", Takes::Text)]) {
        Ok(a) => a,
        Err(e) => return finish(&opened.write, pty, Reply::usage(&e)).await,
    };
    let [target_name] = parsed.positional.as_slice() else {
        return finish(
            &opened.write,
            pty,
            Reply::usage("breakglass needs exactly one TARGET"),
        )
        .await;
    };
    let Some(reason) = parsed.get("reason") else {
        return finish(
            &opened.write,
            pty,
            Reply::usage("breakglass needs --reason TEXT (what is broken, and the incident)"),
        )
        .await;
    };
    let reason = match grants::check_text("reason", reason, MIN_REASON_CHARS) {
        Ok(r) => r,
        Err(e) => return finish(&opened.write, pty, Reply::usage(&e.to_string())).await,
    };
    let policy = bastion.policy();
    let denied = |class: DenialClass, why: String| {
        bastion.events.emit(Event {
            user: Some(identity.user.name.clone()),
            target: Some(target_name.clone()),
            reason: Some(why.clone()),
            detail: Some(serde_json::json!({ "breakglass": true, "breakglass_reason": reason })),
            denial: Some(class),
            ..Event::new(EventKind::SessionDenied)
        });
        Reply::denied(&why, None)
    };
    let user = match identity.current_user(&policy) {
        Ok(user) => user,
        Err(why) => {
            return finish(&opened.write, pty, denied(DenialClass::Policy, why.into())).await;
        }
    };
    let role: Option<Arc<Role>> = policy
        .target(target_name)
        .and_then(|t| policy.roles_for(&user, t).find(|r| r.break_glass).cloned());
    let Some(role) = role else {
        return finish(
            &opened.write,
            pty,
            denied(
                DenialClass::Policy,
                format!("you are not a member of an emergency role covering {target_name:?}"),
            ),
        )
        .await;
    };
    let now = grants::now();
    let limits = &bastion.config.breakglass;
    // The rate limit is counted and the grant created in one transaction, so parallel logins
    // cannot all slip under it.
    let decided = bastion
        .desk()
        .break_glass(&BreakGlass {
            user: &user.name,
            role: &role.name,
            target: target_name,
            reason: &reason,
            duration: role.max_duration,
            max_uses: limits.max_uses,
            window: limits.window,
            now,
        })
        .await;
    let (grant, activated) = match decided {
        Ok(done) => done,
        // The only refusal the break-glass step makes is its rate limit.
        Err(GrantError::Denied(why)) => {
            return finish(
                &opened.write,
                pty,
                denied(DenialClass::BreakglassLimit, why),
            )
            .await;
        }
        Err(e) => {
            let class = match e {
                GrantError::Audit(_) => DenialClass::AuditUnavailable,
                GrantError::Store(_) => DenialClass::StoreUnavailable,
                _ => DenialClass::Other,
            };
            return finish(
                &opened.write,
                pty,
                denied(
                    class,
                    format!("the emergency grant could not be stored ({e})"),
                ),
            )
            .await;
        }
    };
    let id = grant.id;
    // Loud before anything reaches the target; bounded, so a dead sink never blocks the fix.
    let notified = bastion
        .events
        .alert_critical(&activated, limits.alert_wait)
        .await;
    let banner = format!(
        "\r\n*** BREAK-GLASS: grant {id}, role {}, on {target_name}, until {} ***\r\n\
         *** Every alert sink was notified ({notified}). This session is recorded keystroke by keystroke ***\r\n\
         *** and will be reviewed by someone else. Reason: {} ***\r\n\r\n",
        role.name,
        super::verbs::grants::when(grant.expires_at.unwrap_or(now)),
        reason.escape_debug(),
    );
    let _ = opened
        .write
        .extended_data_bytes(1, banner.into_bytes())
        .await;
    let action = match command {
        Some(command) => Action::Exec(command.to_vec()),
        None => Action::Interactive { pty },
    };
    let request = SessionRequest {
        target: target_name.clone(),
        role: Some(role.name.clone()),
        action,
    };
    // Exactly the grant created above, never another live one of the same role.
    session(bastion, identity, handle, opened, request, Some(id)).await;
}

#[cfg(test)]
mod tests {
    use super::split_command;

    #[test]
    fn the_command_follows_the_first_unquoted_double_dash() {
        assert_eq!(
            split_command(b"db-01 --reason primary down -- systemctl restart pg"),
            (
                &b"db-01 --reason primary down"[..],
                Some(&b"systemctl restart pg"[..])
            )
        );
        assert_eq!(
            split_command(b"db-01 --reason 'a -- b' -- ls"),
            (&b"db-01 --reason 'a -- b'"[..], Some(&b"ls"[..]))
        );
        assert_eq!(
            split_command(b"db-01 --reason down hard"),
            (&b"db-01 --reason down hard"[..], None)
        );
        assert_eq!(
            split_command(b"db-01 --reason down --"),
            (&b"db-01 --reason down"[..], None)
        );
        assert_eq!(
            split_command(b"db-01 --reason x--y z"),
            (&b"db-01 --reason x--y z"[..], None)
        );
    }
}
