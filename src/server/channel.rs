//! The life of one session channel: collect its pty and env, take its one request, then answer a
//! verb or run a session through the decision, the certificate and the bridge.

use std::sync::Arc;
use std::time::Duration;

use russh::server::{Handle, Msg};
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tracing::warn;

use super::auth::Identity;
use super::command::{self, Command};
use super::dial::Dialer;
use super::shell::RestrictedShell;
use super::verbs::{self, Reply};
use super::{bridge, env};
use crate::access::{self, Allowed, SessionRequest};
use crate::bastion::Bastion;
use crate::events::{Event, EventKind};
use crate::grants::{self, watch::GrantLifetime};
use crate::upstream::{PtyRequest, Start};

/// Exit status of an access denial.
pub const EXIT_DENIED: u32 = 126;
/// Exit status when the target cannot be reached or refuses the session.
pub const EXIT_TARGET: u32 = 255;

/// How long a client may take between opening a channel and sending its request.
const REQUEST_WAIT: Duration = Duration::from_secs(60);

/// The request that starts a channel.
enum Request {
    Shell,
    Exec(Vec<u8>),
}

/// One session channel and what it needs to run.
pub struct SessionChannel {
    bastion: Arc<Bastion>,
    identity: Arc<Identity>,
    channel: Channel<Msg>,
    handle: Handle,
}

/// The channel's state once its request arrived.
struct Opened {
    read: ChannelReadHalf,
    write: ChannelWriteHalf<Msg>,
    pty: Option<PtyRequest>,
    env: Vec<(String, String)>,
}

impl SessionChannel {
    /// Wraps an accepted channel.
    pub fn new(
        bastion: Arc<Bastion>,
        identity: Arc<Identity>,
        channel: Channel<Msg>,
        handle: Handle,
    ) -> SessionChannel {
        SessionChannel {
            bastion,
            identity,
            channel,
            handle,
        }
    }

    /// Runs the channel to its end.
    pub async fn run(self) {
        let SessionChannel {
            bastion,
            identity,
            channel,
            handle,
        } = self;
        let (mut read, write) = channel.split();
        let mut pty = None;
        let mut env_vars = Vec::new();
        let request = tokio::time::timeout(REQUEST_WAIT, async {
            while let Some(msg) = read.wait().await {
                match msg {
                    ChannelMsg::RequestPty {
                        term,
                        col_width,
                        row_height,
                        pix_width,
                        pix_height,
                        terminal_modes,
                        ..
                    } => {
                        pty = Some(PtyRequest {
                            term,
                            cols: col_width,
                            rows: row_height,
                            pix_width,
                            pix_height,
                            modes: terminal_modes,
                        });
                    }
                    ChannelMsg::WindowChange {
                        col_width,
                        row_height,
                        ..
                    } => {
                        if let Some(p) = pty.as_mut() {
                            p.cols = col_width;
                            p.rows = row_height;
                        }
                    }
                    ChannelMsg::SetEnv {
                        variable_name,
                        variable_value,
                        ..
                    } if env::allowed(&variable_name, &variable_value) && env_vars.len() < 16 => {
                        env_vars.push((variable_name, variable_value));
                    }
                    ChannelMsg::RequestShell { .. } => return Some(Request::Shell),
                    ChannelMsg::Exec { command, .. } => return Some(Request::Exec(command)),
                    ChannelMsg::RequestSubsystem { .. } | ChannelMsg::Close | ChannelMsg::Eof => {
                        return None;
                    }
                    _ => {}
                }
            }
            None
        })
        .await;
        let Ok(Some(request)) = request else {
            let _ = write.close().await;
            return;
        };
        let opened = Opened {
            read,
            write,
            pty,
            env: env_vars,
        };
        match request {
            Request::Shell => {
                let policy = bastion.policy();
                let reply = if opened.pty.is_some() {
                    verbs::lobby(&policy, &identity)
                } else {
                    Reply::ok(verbs::help_text())
                };
                finish(&opened, reply).await;
            }
            Request::Exec(raw) => match command::parse(&raw, opened.pty.is_some()) {
                Err(usage) => finish(&opened, Reply::usage(&usage.0)).await,
                Ok(Command::Verb { name, rest }) => {
                    let reply = verbs::dispatch(&bastion, &identity, name, &rest).await;
                    finish(&opened, reply).await;
                }
                Ok(Command::Session(request)) => {
                    session(bastion, identity, handle, opened, request).await
                }
            },
        }
    }
}

/// Decides, connects and bridges one session on a target.
async fn session(
    bastion: Arc<Bastion>,
    identity: Arc<Identity>,
    handle: Handle,
    opened: Opened,
    request: SessionRequest,
) {
    let policy = bastion.policy();
    // The user as the current policy knows them: a user removed since login has no access.
    let Some(user) = policy.user(&identity.user.name).cloned() else {
        deny(
            &bastion,
            &opened,
            &identity,
            &request,
            access::Denial::new("your account is no longer in the policy"),
        )
        .await;
        return;
    };
    let now = grants::now();
    // Fail closed: a store that cannot answer is a denial.
    let held = match bastion.grants.live_for_user(&user.name, now).await {
        Ok(held) => held,
        Err(e) => {
            deny(
                &bastion,
                &opened,
                &identity,
                &request,
                access::Denial::new(format!("grants cannot be checked now ({e})")),
            )
            .await;
            return;
        }
    };
    let permit = match access::decide(&policy, &user, &held, &request, now) {
        Ok(permit) => permit,
        Err(denial) => {
            deny(&bastion, &opened, &identity, &request, denial).await;
            return;
        }
    };
    // Watch the grant before the last look at it, so that no revocation falls between the two.
    let interactive = !matches!(permit.allowed(), Allowed::Exec { .. });
    let mut lifetime = GrantLifetime::new(
        &bastion.watch,
        permit.grant_id(),
        permit.expires_at(),
        interactive,
        now,
    );
    match bastion.grants.get(permit.grant_id()).await {
        Ok(Some(grant)) if grant.is_live(grants::now()) => {}
        _ => {
            deny(
                &bastion,
                &opened,
                &identity,
                &request,
                access::Denial::new(format!("grant {} ended just now", permit.grant_id())),
            )
            .await;
            return;
        }
    }
    let session_id = uuid::Uuid::now_v7().to_string();
    let event = |kind| Event {
        user: Some(user.name.clone()),
        target: Some(permit.target().name.clone()),
        role: Some(permit.role().name.clone()),
        grant_id: Some(permit.grant_id()),
        session_id: Some(session_id.clone()),
        ..Event::new(kind)
    };
    let Opened {
        mut read,
        write,
        pty,
        env,
    } = opened;
    let dialer = Dialer {
        bastion: &bastion,
        permit: &permit,
        session_id: &session_id,
        env: &env,
    };
    let detail = match permit.allowed() {
        Allowed::RestrictedShell => {
            bastion.events.emit(event(EventKind::SessionStarted));
            let outcome = RestrictedShell::new(&mut read, &write, dialer, &mut lifetime)
                .run()
                .await;
            Event {
                reason: outcome.grant_ended.clone(),
                detail: Some(serde_json::json!({
                    "commands_run": outcome.commands_run,
                    "commands_denied": outcome.commands_denied,
                })),
                ..event(EventKind::SessionEnded)
            }
        }
        allowed => {
            let (start, upstream_pty) = match allowed {
                Allowed::Exec { command } => (
                    Start::Exec(command.as_str()),
                    pty.as_ref().filter(|_| permit.role().exec_pty),
                ),
                _ => (Start::Shell, pty.as_ref()),
            };
            let upstream = match dialer.open(start, upstream_pty).await {
                Ok(u) => u,
                Err(e) => {
                    warn!(session = %session_id, target = %permit.target().name, error = %e, "target unavailable");
                    let opened = Opened {
                        read,
                        write,
                        pty,
                        env: Vec::new(),
                    };
                    target_failed(&opened, &permit.target().name, &e).await;
                    return;
                }
            };
            bastion.events.emit(event(EventKind::SessionStarted));
            let outcome = bridge::run(read, write, handle, upstream, &mut lifetime).await;
            Event {
                reason: outcome.grant_ended.clone(),
                detail: Some(serde_json::json!({
                    "exit_status": outcome.exit_status,
                    "exit_signal": outcome.exit_signal,
                    "bytes_in": outcome.bytes_in,
                    "bytes_out": outcome.bytes_out,
                    "user_left": outcome.user_left,
                })),
                ..event(EventKind::SessionEnded)
            }
        }
    };
    bastion.events.emit(detail);
}

async fn deny(
    bastion: &Bastion,
    opened: &Opened,
    identity: &Identity,
    request: &SessionRequest,
    denial: access::Denial,
) {
    bastion.events.emit(Event {
        user: Some(identity.user.name.clone()),
        target: Some(request.target.clone()),
        role: request.role.clone(),
        reason: Some(denial.reason.clone()),
        ..Event::new(EventKind::SessionDenied)
    });
    let mut text = format!("gatehouse: denied: {}\n", denial.reason);
    if let Some(hint) = &denial.hint {
        text.push_str(&format!("gatehouse: hint: {hint}\n"));
    }
    finish(
        opened,
        Reply {
            stderr: text,
            status: EXIT_DENIED,
            ..Reply::default()
        },
    )
    .await;
}

async fn target_failed(opened: &Opened, target: &str, why: &str) {
    let reply = Reply {
        stderr: format!("gatehouse: target {target}: {why}\n"),
        status: EXIT_TARGET,
        ..Reply::default()
    };
    finish(opened, reply).await;
}

/// Sends a reply and closes the channel. On a pty, line ends become CR LF so text lines up.
async fn finish(opened: &Opened, reply: Reply) {
    let fix = |text: String| {
        if opened.pty.is_some() && !text.contains("\r\n") {
            text.replace('\n', "\r\n")
        } else {
            text
        }
    };
    let write = &opened.write;
    if !reply.stdout.is_empty() {
        let _ = write.data_bytes(fix(reply.stdout).into_bytes()).await;
    }
    if !reply.stderr.is_empty() {
        let _ = write
            .extended_data_bytes(1, fix(reply.stderr).into_bytes())
            .await;
    }
    let _ = write.exit_status(reply.status).await;
    let _ = write.eof().await;
    let _ = write.close().await;
}
