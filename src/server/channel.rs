//! The life of one session channel: collect its pty and env, take its one request, then answer a
//! verb, or decide a session and hand the permit to `session`.

use std::sync::Arc;
use std::time::Duration;

use russh::server::{Handle, Msg};
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};

use super::auth::Identity;
use super::command::{self, Command};
use super::ends::SessionEnds;
use super::env;
use super::verbs::{self, Reply};
use crate::access::{self, Allowed, SessionRequest};
use crate::bastion::Bastion;
use crate::events::{Event, EventKind};
use crate::grants::{self, watch::GrantLifetime};
use crate::outcome::DenialClass;
use crate::upstream::PtyRequest;

/// How long a client may take between opening a channel and sending its request.
const REQUEST_WAIT: Duration = Duration::from_secs(60);

/// The request that starts a channel.
enum Request {
    Shell,
    Exec(Vec<u8>),
    /// The `sftp` subsystem (accepted only for users whose roles allow file transfer).
    Sftp,
}

/// One session channel and what it needs to run.
pub struct SessionChannel {
    bastion: Arc<Bastion>,
    identity: Arc<Identity>,
    channel: Channel<Msg>,
    handle: Handle,
    ends: Arc<SessionEnds>,
}

/// The channel's state once its request arrived.
pub(super) struct Opened {
    /// What the user sends.
    pub read: ChannelReadHalf,
    /// What the user receives.
    pub write: ChannelWriteHalf<Msg>,
    /// The terminal the user asked for.
    pub pty: Option<PtyRequest>,
    /// Locale variables to pass on.
    pub env: Vec<(String, String)>,
    /// Where a session registers its end, so that a shutdown can write it if the session cannot.
    pub ends: Arc<SessionEnds>,
}

impl SessionChannel {
    /// Wraps an accepted channel.
    pub fn new(
        bastion: Arc<Bastion>,
        identity: Arc<Identity>,
        channel: Channel<Msg>,
        handle: Handle,
        ends: Arc<SessionEnds>,
    ) -> SessionChannel {
        SessionChannel {
            bastion,
            identity,
            channel,
            handle,
            ends,
        }
    }

    /// Runs the channel to its end.
    pub async fn run(self) {
        let SessionChannel {
            bastion,
            identity,
            channel,
            handle,
            ends,
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
                    ChannelMsg::RequestSubsystem { name, .. } if name == "sftp" => {
                        return Some(Request::Sftp);
                    }
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
            ends,
        };
        match request {
            Request::Shell => {
                let policy = bastion.policy();
                let reply = if opened.pty.is_some() {
                    verbs::lobby(&policy, &identity)
                } else {
                    Reply::ok(verbs::help_text())
                };
                finish(&opened.write, opened.pty.is_some(), reply).await;
            }
            Request::Sftp => {
                let Opened {
                    read, write, ends, ..
                } = opened;
                crate::files::serve(bastion, identity, read, write, ends).await;
            }
            Request::Exec(raw) if crate::files::legacy_scp(&raw) => {
                bastion.events.emit(Event {
                    user: Some(identity.user.name.clone()),
                    reason: Some(crate::files::LEGACY_SCP.to_owned()),
                    denial: Some(DenialClass::Policy),
                    ..Event::new(EventKind::SessionDenied)
                });
                let reply = Reply::denied(crate::files::LEGACY_SCP, None);
                finish(&opened.write, opened.pty.is_some(), reply).await;
            }
            Request::Exec(raw) => match command::parse(&raw, opened.pty.is_some()) {
                Err(usage) => {
                    finish(&opened.write, opened.pty.is_some(), Reply::usage(&usage.0)).await
                }
                Ok(Command::Verb {
                    name: "breakglass",
                    rest,
                }) => super::breakglass::run(bastion, identity, handle, opened, &rest).await,
                Ok(Command::Verb { name, rest }) => {
                    let reply = verbs::dispatch(&bastion, &identity, name, &rest).await;
                    finish(&opened.write, opened.pty.is_some(), reply).await;
                }
                Ok(Command::Session(request)) => {
                    session(bastion, identity, handle, opened, request, None).await
                }
            },
        }
    }
}

/// Decides a session request and, when permitted, runs the session; with `only_grant`, under
/// that grant or not at all (break-glass runs under the grant it just created). How long the
/// decision took, from here to the permit or the denial, goes to the metrics.
pub(super) async fn session(
    bastion: Arc<Bastion>,
    identity: Arc<Identity>,
    handle: Handle,
    opened: Opened,
    request: SessionRequest,
    only_grant: Option<i64>,
) {
    let deciding = std::time::Instant::now();
    let refuse = |denial: access::Denial| {
        crate::metrics::decision_took(deciding.elapsed());
        deny(&bastion, &opened, &identity, &request, denial)
    };
    let policy = bastion.policy();
    let now = grants::now();
    // The user as the current policy knows them (a user removed since login, or whose login
    // key was withdrawn, has no access) and their grants; a store that cannot answer denies.
    let (user, mut held) = match bastion.standing(&identity, &policy, now).await {
        Ok(standing) => standing,
        Err(denial) => {
            refuse(denial).await;
            return;
        }
    };
    held.retain(|g| only_grant.is_none_or(|id| g.id == id));
    let permit = match access::decide(&policy, &user, &held, &request, now) {
        // A session stands only while the key it logged in with is listed: a key removed
        // from the directory or the policy ends it (and refuses a new channel on the old
        // connection, at the confirmation below).
        Ok(permit) => permit.logged_in_with(identity.method.key_fingerprint()),
        Err(denial) => {
            refuse(denial).await;
            return;
        }
    };
    // Watch the grant and register the session before the last look at the grant and the
    // policy, so that no revocation or reload falls between the two.
    let session_id = uuid::Uuid::now_v7().to_string();
    let interactive = !matches!(permit.allowed(), Allowed::Exec { .. });
    let lifetime = GrantLifetime::new(&bastion.watch, &permit, &session_id, interactive, now);
    if let Err(lapse) = super::dial::confirm(&bastion, &permit).await {
        refuse(access::Denial::new(lapse.denial_class(), lapse.to_string())).await;
        return;
    }
    crate::metrics::decision_took(deciding.elapsed());
    super::session::run(&bastion, handle, opened, permit, session_id, lifetime, now).await;
}

/// Refuses a session: reports the denial and answers `gatehouse: denied: …` with exit 126.
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
        denial: Some(denial.class),
        ..Event::new(EventKind::SessionDenied)
    });
    let reply = Reply::denied(&denial.reason, denial.hint.as_deref());
    finish(&opened.write, opened.pty.is_some(), reply).await;
}

/// Sends a reply and closes the channel. On a pty, line ends become CR LF so text lines up.
pub(super) async fn finish(write: &ChannelWriteHalf<Msg>, pty: bool, reply: Reply) {
    let fix = |text: String| {
        if pty && !text.contains("\r\n") {
            text.replace('\n', "\r\n")
        } else {
            text
        }
    };
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
