//! A permitted session, from its recording to its end: index it, record it, reach the target
//! (or serve the restricted shell), and when it ends, seal the recording and complete the index.

use russh::server::Handle;
use tracing::warn;

use super::bridge;
use super::channel::{Opened, finish};
use super::dial::{DialError, Dialer};
use super::record::{RecordingFault, Sealed, SessionRecording};
use super::shell::RestrictedShell;
use super::verbs::Reply;
use crate::access::{Allowed, Permit};
use crate::bastion::Bastion;
use crate::events::{Event, EventKind};
use crate::grants::{self, watch::GrantLifetime};
use crate::health::{Component, NotReady};
use crate::outcome::{DenialClass, EndClass, Ending};
use crate::recording::CastHeader;
use crate::store::sessions::{SessionEnd, SessionRecord, complete_in_background};
use crate::upstream::PtyRequest;

/// Exit status when the target cannot be reached or refuses the session.
pub const EXIT_TARGET: u32 = 255;

/// Runs a permitted session to its end.
pub(super) async fn run(
    bastion: &Bastion,
    handle: Handle,
    opened: Opened,
    permit: Permit,
    session_id: String,
    mut lifetime: GrantLifetime,
    now: grants::Timestamp,
) {
    let event = |kind| Event {
        user: Some(permit.user().name.clone()),
        target: Some(permit.target().name.clone()),
        role: Some(permit.role().name.clone()),
        grant_id: Some(permit.grant_id()),
        session_id: Some(session_id.clone()),
        ..Event::new(kind)
    };

    // No session that the store or the audit log could not account for (fail closed).
    if let Err(why) = bastion.health.check() {
        return refuse(
            bastion,
            &opened,
            event(EventKind::SessionDenied),
            unready_class(&why),
            why.to_string(),
        )
        .await;
    }
    // No recording, no session (unless the operator chose otherwise), and no unindexed session.
    let recording = match SessionRecording::start_in_background(
        bastion.config.recordings.clone(),
        session_id.clone(),
        cast_header(&permit, opened.pty.as_ref(), now),
        permit.role().record_input || permit.break_glass(),
    )
    .await
    {
        Ok(recording) => recording,
        Err(RecordingFault(why)) => {
            return refuse(
                bastion,
                &opened,
                event(EventKind::SessionDenied),
                DenialClass::RecordingUnavailable,
                why,
            )
            .await;
        }
    };
    let record = SessionRecord {
        id: session_id.clone(),
        node: bastion.config.cluster.node_name.clone(),
        user: permit.user().name.clone(),
        target: permit.target().name.clone(),
        role: permit.role().name.clone(),
        grant_id: permit.grant_id(),
        kind: kind(&permit).to_owned(),
        command: match permit.allowed() {
            Allowed::Exec { command } => Some(command.clone()),
            _ => None,
        },
        break_glass: permit.break_glass(),
        started_at: now,
        ended_at: None,
        bytes_in: None,
        bytes_out: None,
        exit_status: None,
        end_reason: None,
        recording: recording.path().map(|p| p.display().to_string()),
        sha256: None,
    };
    if let Err(e) = bastion.sessions.started(&record).await {
        let _ = recording.finish_in_background().await;
        let why = bastion.store_unavailable("the session cannot be indexed", &e);
        return refuse(
            bastion,
            &opened,
            event(EventKind::SessionDenied),
            DenialClass::StoreUnavailable,
            why,
        )
        .await;
    }
    // From here on the session has an index row, so it must get an end, if need be from the
    // shutdown drain (see `ends`).
    let open_end = opened
        .ends
        .open(&session_id, event(EventKind::SessionEnded));

    let Opened {
        mut read,
        write,
        pty,
        env,
        ..
    } = opened;
    let dialer = Dialer {
        bastion,
        session_id: &session_id,
        env: &env,
    };
    let (mut end, ending, detail) = match permit.allowed() {
        Allowed::RestrictedShell => {
            open_end.started();
            bastion.events.emit(Event {
                detail: unsafe_rules(&permit),
                ..event(EventKind::SessionStarted)
            });
            let outcome = RestrictedShell::new(
                &mut read,
                &write,
                dialer,
                &permit,
                &mut lifetime,
                &recording,
            )
            .run()
            .await;
            let detail = serde_json::json!({
                "commands_run": outcome.commands_run,
                "commands_denied": outcome.commands_denied,
            });
            let ending = Ending {
                class: outcome.closed_as.unwrap_or(EndClass::Normal),
                started: true,
            };
            (
                SessionEnd {
                    end_reason: outcome.closed,
                    ..SessionEnd::default()
                },
                ending,
                detail,
            )
        }
        allowed => {
            let upstream_pty = match allowed {
                Allowed::Exec { .. } => pty.as_ref().filter(|_| permit.role().exec_pty),
                _ => pty.as_ref(),
            };
            match dialer.open(&permit, upstream_pty).await {
                Err(DialError::Lapsed(lapse)) => {
                    // Nothing ran on the target: the grant ended or the policy changed while
                    // the session was being set up.
                    warn!(session = %session_id, target = %permit.target().name, reason = %lapse, "session refused during setup");
                    let why = lapse.to_string();
                    let reply = Reply::denied(&why, None);
                    let _ = recording.output(reply.stderr.clone()).await;
                    bastion.events.emit(Event {
                        reason: Some(why.clone()),
                        denial: Some(lapse.denial_class()),
                        ..event(EventKind::SessionDenied)
                    });
                    finish(&write, pty.is_some(), reply).await;
                    let end = SessionEnd {
                        exit_status: Some(super::bridge::EXIT_GRANT_ENDED),
                        end_reason: Some(format!("refused during setup: {why}")),
                        ..SessionEnd::default()
                    };
                    let ending = Ending {
                        class: EndClass::Refused,
                        started: false,
                    };
                    (end, ending, serde_json::json!({ "refused": why }))
                }
                Err(DialError::Target(e)) => {
                    warn!(session = %session_id, target = %permit.target().name, error = %e, "target unavailable");
                    let text = format!("gatehouse: target {}: {e}\n", permit.target().name);
                    let _ = recording.output(text.clone()).await;
                    let reply = Reply {
                        stderr: text,
                        status: EXIT_TARGET,
                        ..Reply::default()
                    };
                    finish(&write, pty.is_some(), reply).await;
                    let end = SessionEnd {
                        exit_status: Some(EXIT_TARGET),
                        end_reason: Some(format!("target unavailable: {e}")),
                        ..SessionEnd::default()
                    };
                    let ending = Ending {
                        class: EndClass::TargetUnavailable,
                        started: false,
                    };
                    (end, ending, serde_json::json!({ "error": e }))
                }
                Ok(upstream) => {
                    open_end.started();
                    bastion.events.emit(Event {
                        detail: unsafe_rules(&permit),
                        ..event(EventKind::SessionStarted)
                    });
                    let outcome =
                        bridge::run(read, write, handle, upstream, &mut lifetime, &recording).await;
                    let end = SessionEnd {
                        bytes_in: outcome.bytes_in,
                        bytes_out: outcome.bytes_out,
                        exit_status: outcome.exit_status,
                        end_reason: outcome
                            .grant_ended
                            .clone()
                            .or(outcome.recording_failed.clone()),
                        ..SessionEnd::default()
                    };
                    let detail = serde_json::json!({
                        "exit_status": outcome.exit_status,
                        "exit_signal": outcome.exit_signal,
                        "bytes_in": outcome.bytes_in,
                        "bytes_out": outcome.bytes_out,
                        "user_left": outcome.user_left,
                    });
                    let ending = Ending {
                        class: outcome.closed_as.unwrap_or(EndClass::Normal),
                        started: true,
                    };
                    (end, ending, detail)
                }
            }
        }
    };

    end.ended_at = grants::now();
    let sealed = recording.finish_in_background().await;
    let summary = sealed.summary().cloned();
    end.sha256 = summary.as_ref().map(|s| s.sha256.clone());
    if !open_end.claim() {
        // The shutdown drain gave up waiting and has written this end already.
        return;
    }
    // Retried until it lands; the session does not wait for it.
    complete_in_background(bastion.sessions.clone(), session_id.clone(), end.clone());
    if let Sealed::Late(late) = sealed {
        late.index_when_done(bastion.sessions.clone(), end.clone());
    }
    let mut detail = detail;
    if let (Some(summary), serde_json::Value::Object(map)) = (&summary, &mut detail) {
        map.insert(
            "recording".into(),
            serde_json::json!(summary.path.display().to_string()),
        );
        map.insert("recording_sha256".into(), serde_json::json!(summary.sha256));
    }
    bastion.events.emit(Event {
        reason: end.end_reason.clone(),
        detail: Some(detail),
        ending: Some(ending),
        ..event(EventKind::SessionEnded)
    });
}

/// The command rules acknowledged as unsafe that the session may use, for its `session.started`
/// audit line: the rule that allowed an exec command, or every such rule of a restricted shell's
/// role. `None` when there are none.
fn unsafe_rules(permit: &Permit) -> Option<serde_json::Value> {
    let allow = &permit.role().allow;
    let rules: Vec<&crate::policy::rules::CommandRule> = match permit.allowed() {
        Allowed::Exec { command } if permit.role().shell != crate::policy::ShellMode::Full => {
            allow.unsafe_rule_for(command).into_iter().collect()
        }
        Allowed::RestrictedShell => allow.unsafe_rules().collect(),
        _ => Vec::new(),
    };
    let listed: Vec<serde_json::Value> = rules
        .iter()
        .map(|r| serde_json::json!({ "rule": r.source(), "unsafe": r.unsafe_reason() }))
        .collect();
    (!listed.is_empty()).then(|| serde_json::json!({ "unsafe_rules": listed }))
}

/// The class of a refusal while the bastion is not ready: the store first, since without it
/// nothing can be checked at all.
fn unready_class(why: &NotReady) -> DenialClass {
    if why.faults.iter().any(|f| f.component == Component::Store) {
        DenialClass::StoreUnavailable
    } else {
        DenialClass::AuditUnavailable
    }
}

/// Refuses a permitted session that cannot be recorded or indexed (fail closed).
async fn refuse(
    bastion: &Bastion,
    opened: &Opened,
    denied: Event,
    class: DenialClass,
    why: String,
) {
    bastion.events.emit(Event {
        reason: Some(why.clone()),
        denial: Some(class),
        ..denied
    });
    finish(
        &opened.write,
        opened.pty.is_some(),
        Reply::denied(&why, None),
    )
    .await;
}

/// The kind of session, as indexed.
fn kind(permit: &Permit) -> &'static str {
    match permit.allowed() {
        Allowed::Exec { .. } => "exec",
        Allowed::Shell => "shell",
        Allowed::RestrictedShell => "restricted",
        Allowed::Files => "files",
        Allowed::Forward { .. } => "forward",
    }
}

/// The recording's header: terminal size, time, command and a title naming person, target,
/// role and grant.
///
/// A pty request of zero columns or rows gives no size (RFC 4254 6.2: zero dimensions are to be
/// ignored; `ssh -tt` from a script sends them): the recording then says 80×24, as terminals
/// assume, rather than a one-cell screen on which a player shows nothing.
fn cast_header(permit: &Permit, pty: Option<&PtyRequest>, now: grants::Timestamp) -> CastHeader {
    let dimension = |given: u32, default: u16| match given {
        0 => default,
        n => n.min(u32::from(u16::MAX)) as u16,
    };
    let (width, height) = pty
        .map(|p| (dimension(p.cols, 80), dimension(p.rows, 24)))
        .unwrap_or((80, 24));
    let command = match permit.allowed() {
        Allowed::Exec { command } => Some(command.clone()),
        Allowed::Shell | Allowed::RestrictedShell | Allowed::Files | Allowed::Forward { .. } => {
            None
        }
    };
    let mut env = std::collections::BTreeMap::new();
    if let Some(p) = pty {
        env.insert("TERM".to_owned(), p.term.clone());
    }
    CastHeader {
        width,
        height,
        timestamp: now,
        command,
        title: Some(format!(
            "{}@{} [{}] grant {}",
            permit.user().name,
            permit.target().name,
            permit.role().name,
            permit.grant_id()
        )),
        env,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Fault;

    fn unready(components: &[Component]) -> NotReady {
        NotReady {
            faults: components
                .iter()
                .map(|&component| Fault {
                    component,
                    reason: "broken".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_bastion_that_is_not_ready_refuses_for_the_store_first() {
        assert_eq!(
            unready_class(&unready(&[Component::Store])),
            DenialClass::StoreUnavailable
        );
        assert_eq!(
            unready_class(&unready(&[Component::AuditLog])),
            DenialClass::AuditUnavailable
        );
        assert_eq!(
            unready_class(&unready(&[Component::AuditLog, Component::Store])),
            DenialClass::StoreUnavailable
        );
    }
}
