//! The russh adapter: turns callbacks on one client connection into calls on Gatehouse.
//!
//! It holds no policy. It authenticates (through `auth`), answers channel requests in the order
//! they arrive (one request per channel; no remote forwarding, agent, X11 or subsystem but
//! `sftp`), hands each accepted session channel to its own task in `channel`, and each
//! `direct-tcpip` channel (`ssh -L`, `ssh -W`) to its own task in `forward::tunnel`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::events::{Event, EventKind};
use russh::keys::Certificate;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet};

use super::auth::{self, Identity};
use super::connection::ConnectionContext;
use super::user_slots::UserSlot;
use super::{channel, env};
use crate::bastion::Bastion;

/// Per-channel bookkeeping the handler needs to answer requests.
#[derive(Default)]
struct ChannelState {
    /// A shell, exec or subsystem request was made; any further one is refused.
    request_taken: bool,
}

/// One client connection.
pub struct ConnectionHandler {
    bastion: Arc<Bastion>,
    peer: Option<SocketAddr>,
    identity: Option<Arc<Identity>>,
    channels: HashMap<ChannelId, ChannelState>,
    channels_opened: usize,
    context: ConnectionContext,
    /// The user's connection slot, held for as long as the connection lives.
    slot: Option<UserSlot>,
    /// Why a login that succeeded is refused anyway (over the per-user limit): sent as the
    /// disconnect message once russh has answered the login.
    refusal: Option<String>,
}

impl ConnectionHandler {
    /// A handler for a new connection described by `context`.
    pub fn new(bastion: Arc<Bastion>, context: ConnectionContext) -> ConnectionHandler {
        ConnectionHandler {
            bastion,
            peer: context.peer,
            identity: None,
            channels: HashMap::new(),
            channels_opened: 0,
            context,
            slot: None,
            refusal: None,
        }
    }

    fn publickey_only() -> Auth {
        let mut methods = MethodSet::empty();
        methods.push(MethodKind::PublicKey);
        Auth::Reject {
            proceed_with_methods: Some(methods),
            partial_success: false,
        }
    }

    fn accept(
        &mut self,
        result: Result<(Arc<crate::policy::User>, auth::Method), String>,
        login: &str,
    ) -> Auth {
        let (user, method) = match result {
            Ok(pair) => pair,
            Err(why) => {
                self.context.outcome.failed_attempt();
                self.login_refused(login, why);
                return Self::publickey_only();
            }
        };
        // Logged in: never penalised, whatever happens next.
        self.context.outcome.logged_in();
        self.context.authenticated.notify_one();
        match self.context.user_slots.take(&user.name) {
            Ok(slot) => self.slot = Some(slot),
            Err(over) => {
                // The login itself succeeded: answer it, then disconnect with the reason
                // (`auth_succeeded`), which the client shows, rather than a bare "Permission
                // denied" that would send the user looking at their keys.
                let why = format!("too many connections for {} ({over})", user.name);
                self.login_refused(login, why.clone());
                self.refusal = Some(format!("gatehouse: {why}"));
                return Auth::Accept;
            }
        }
        self.bastion.events.emit(Event {
            user: Some(user.name.clone()),
            detail: Some(serde_json::json!({
                "peer": self.peer.map(|p| p.to_string()),
                "method": method.to_string(),
            })),
            ..Event::new(EventKind::Login)
        });
        self.identity = Some(Arc::new(Identity {
            user,
            method,
            peer: self.peer,
        }));
        Auth::Accept
    }

    /// Answers a request that starts the channel: the first one wins, the rest are refused.
    fn take_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<bool, russh::Error> {
        let state = self.channels.entry(channel).or_default();
        if state.request_taken {
            session.channel_failure(channel)?;
            return Ok(false);
        }
        state.request_taken = true;
        session.channel_success(channel)?;
        Ok(true)
    }

    /// Whether any role the user is a member of allows file transfer: the `sftp` subsystem is
    /// refused outright otherwise. Which targets and paths is decided per request.
    fn may_transfer_files(&self) -> bool {
        let Some(identity) = &self.identity else {
            return false;
        };
        let policy = self.bastion.policy();
        let Some(user) = policy.user(&identity.user.name) else {
            return false;
        };
        policy
            .roles()
            .any(|r| r.files.is_some() && r.has_member(user))
    }

    fn login_refused(&self, login: &str, why: String) {
        self.bastion.events.emit(Event {
            user: Some(login.chars().take(64).collect()),
            reason: Some(why),
            detail: Some(serde_json::json!({ "peer": self.peer.map(|p| p.to_string()) })),
            ..Event::new(EventKind::LoginRefused)
        });
    }

    /// Reports a refused channel or request (forwarding, agent, X11, subsystems).
    fn refuse(&mut self, what: &str, channel: Option<ChannelId>) {
        self.bastion.events.emit(Event {
            user: self.identity.as_ref().map(|i| i.user.name.clone()),
            reason: Some(format!("{what} is not allowed")),
            detail: Some(serde_json::json!({
                "peer": self.peer.map(|p| p.to_string()),
                "channel": channel.map(|c| format!("{c:?}")),
            })),
            denial: Some(crate::outcome::DenialClass::Policy),
            ..Event::new(EventKind::SessionDenied)
        });
    }
}

impl russh::server::Handler for ConnectionHandler {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Self::publickey_only())
    }

    async fn auth_password(&mut self, _user: &str, _password: &str) -> Result<Auth, Self::Error> {
        // Passwords are never accepted; trying one is a failed login.
        self.context.outcome.failed_attempt();
        Ok(Self::publickey_only())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // A certificate is offered under its subject key, which no policy lists; when user CAs
        // are trusted, let it proceed to the full check once its signature is verified.
        let policy = self.bastion.policy();
        match auth::by_key(&policy, user, offer.public_key) {
            Ok(_) => return Ok(Auth::Accept),
            Err(_) if !self.bastion.trusted_user_cas.is_empty() => return Ok(Auth::Accept),
            Err(why) => {
                self.context.outcome.failed_attempt();
                self.login_refused(user, why);
            }
        }
        Ok(Self::publickey_only())
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        if let Some(why) = &self.refusal {
            session.disconnect(russh::Disconnect::TooManyConnections, why, "en")?;
        }
        Ok(())
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let policy = self.bastion.policy();
        let result = auth::by_key(&policy, user, key.public_key);
        Ok(self.accept(result, user))
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &Certificate,
    ) -> Result<Auth, Self::Error> {
        let policy = self.bastion.policy();
        let result =
            auth::by_certificate(&policy, &self.bastion.trusted_user_cas, user, certificate);
        Ok(self.accept(result, user))
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(identity) = self.identity.clone() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        if self.channels_opened >= self.bastion.config.limits.max_channels_per_connection {
            self.refuse("a session channel over the per-connection limit", None);
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        // Counted from here until the channel's task ends: the idle timeout and the shutdown
        // drain wait on it. None once the bastion is shutting down.
        let Some(counted) = self.context.drain.start_channel(&self.context.activity) else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        self.channels_opened += 1;
        self.channels.insert(channel.id(), ChannelState::default());
        reply.accept().await;
        let task = channel::SessionChannel::new(
            self.bastion.clone(),
            identity,
            channel,
            session.handle(),
            self.context.drain.ends.clone(),
        );
        tokio::spawn(async move {
            let _counted = counted;
            task.run().await;
        });
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Decided, connected and answered by its own task (see `forward::tunnel`), counted like
        // a session channel while it runs.
        let Some(identity) = self.identity.clone() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        if self.channels_opened >= self.bastion.config.limits.max_channels_per_connection {
            self.refuse("a forward over the per-connection channel limit", None);
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        let Some(counted) = self.context.drain.start_channel(&self.context.activity) else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        self.channels_opened += 1;
        let request = crate::forward::tunnel::Request {
            host: host.to_owned(),
            port,
        };
        let bastion = self.bastion.clone();
        let ends = self.context.drain.ends.clone();
        tokio::spawn(async move {
            let _counted = counted;
            crate::forward::tunnel::run(bastion, identity, channel, reply, request, ends).await;
        });
        Ok(())
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse("unix socket forwarding", None);
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse("an X11 channel", None);
        reply
            .reject(ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.refuse(&format!("remote forwarding of {address:?}:{port}"), None);
        Ok(false)
    }

    async fn streamlocal_forward(
        &mut self,
        _path: &str,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.refuse("remote unix socket forwarding", None);
        Ok(false)
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.refuse("agent forwarding", Some(channel));
        Ok(false)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse("X11 forwarding", Some(channel));
        session.channel_failure(channel)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channels.get(&channel).is_some_and(|s| s.request_taken) {
            return session.channel_failure(channel);
        }
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let taken = self.channels.get(&channel).is_some_and(|s| s.request_taken);
        if !taken && env::allowed(name, value) {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.take_request(channel, session).map(drop)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.take_request(channel, session).map(drop)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "sftp" && self.may_transfer_files() {
            return self.take_request(channel, session).map(drop);
        }
        self.refuse(&format!("subsystem {name:?}"), Some(channel));
        self.channels.entry(channel).or_default().request_taken = true;
        session.channel_failure(channel)
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        Ok(())
    }
}
