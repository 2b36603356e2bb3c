//! The SSH client side: one connection from the bastion to a target for one session.
//!
//! The target must prove its identity with a pinned host key or a host certificate from the
//! configured host CA (never trust on first use), and the bastion logs in with the session's
//! fresh key and certificate. Nothing here decides *whether* to connect, and nothing here can be
//! reached without a decision: opening a connection takes a [`Permit`], and the request that
//! starts something on the target (shell or exec) takes a [`Confirmed`] permit, one checked
//! against its grant as just read, after everything slow about the setup is done.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use russh::client::{self, AuthResult};
use russh::keys::ssh_key::certificate::CertType;
use std::borrow::Cow;

use russh::cipher;
use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PublicKeyOrCertificate};
use russh::{Channel, ChannelMsg, Pty};

use crate::access::{Allowed, Confirmed, Permit};
use crate::ca::SessionCredential;
use crate::policy::{HostTrust, Target};

pub mod pool;
pub mod startups;

use startups::StartupSlot;

/// Why a target could not be used. The session prints it as `gatehouse: target NAME: …` and
/// exits 255.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP connect, key exchange or authentication took too long.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The host key did not match what the policy pins.
    #[error("host key verification failed: {0}")]
    HostKey(String),
    /// The target refused the certificate.
    #[error(
        "the target refused the session certificate for {login:?} (is the Gatehouse CA in its TrustedUserCAKeys, and {login:?} an allowed principal?)"
    )]
    AuthRefused {
        /// The account asked for.
        login: String,
    },
    /// The target refused the pty, shell or exec request.
    #[error("the target refused the {0} request")]
    RequestRefused(&'static str),
    /// Anything else on the wire.
    #[error("{0}")]
    Ssh(String),
    /// The permit starts nothing on the target itself (the restricted shell runs each line
    /// under a permit of its own).
    #[error("this session starts nothing on the target")]
    NothingToStart,
    /// Too many connections to this target were starting up for the whole wait.
    #[error(
        "busy: no free connection slot within {waited:?} ([upstream] max_startups = {max_startups} per target)"
    )]
    Busy {
        /// How long the session waited.
        waited: Duration,
        /// The configured slots per target.
        max_startups: usize,
    },
}

/// The terminal a client asked for, passed on to the target unchanged.
#[derive(Debug, Clone)]
pub struct PtyRequest {
    /// `TERM`.
    pub term: String,
    /// Columns.
    pub cols: u32,
    /// Rows.
    pub rows: u32,
    /// Pixel width.
    pub pix_width: u32,
    /// Pixel height.
    pub pix_height: u32,
    /// Terminal modes.
    pub modes: Vec<(Pty, u32)>,
}

/// An open session channel on a target, with the connection that carries it.
pub struct UpstreamChannel {
    /// The session channel.
    pub channel: Channel<client::Msg>,
    /// Keeps the connection alive; dropping it closes the connection.
    pub connection: client::Handle<HostVerifier>,
    /// Messages the target sent before answering the last request, to be handled first.
    pub early: Vec<ChannelMsg>,
}

/// Checks the target's host key against the policy and remembers why it refused.
pub struct HostVerifier {
    target: Arc<Target>,
    refusal: Arc<Mutex<Option<String>>>,
}

impl HostVerifier {
    fn verdict(&self, offered: &PublicKeyOrCertificate) -> Result<(), String> {
        match (&self.target.trust, offered) {
            (HostTrust::Pinned(keys), PublicKeyOrCertificate::PublicKey { key, .. }) => {
                if keys.iter().any(|k| k.key_data() == key.key_data()) {
                    Ok(())
                } else {
                    Err(format!(
                        "the target offered {} {}, which is not a pinned host key",
                        key.algorithm(),
                        key.fingerprint(HashAlg::Sha256)
                    ))
                }
            }
            (HostTrust::Pinned(_), PublicKeyOrCertificate::Certificate(_)) => {
                Err("the target offered a host certificate but the policy pins host keys".into())
            }
            (HostTrust::Ca(ca), PublicKeyOrCertificate::Certificate(cert)) => {
                if cert.cert_type() != CertType::Host {
                    return Err("the target offered a user certificate as its host key".into());
                }
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                let fp = ca.fingerprint(HashAlg::Sha256);
                cert.validate_at(now, [&fp]).map_err(|e| {
                    format!("the host certificate is not valid for the configured host CA: {e}")
                })?;
                let names = [self.target.address.as_str(), self.target.name.as_str()];
                if cert
                    .valid_principals()
                    .iter()
                    .any(|p| names.contains(&p.as_str()))
                {
                    Ok(())
                } else {
                    Err(format!(
                        "the host certificate names {:?}, not {:?}",
                        cert.valid_principals(),
                        self.target.address
                    ))
                }
            }
            (HostTrust::Ca(_), PublicKeyOrCertificate::PublicKey { key, .. }) => Err(format!(
                "the target offered a plain host key ({}) but the policy expects a host certificate",
                key.fingerprint(HashAlg::Sha256)
            )),
        }
    }
}

impl client::Handler for HostVerifier {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match self.verdict(offered) {
            Ok(()) => Ok(true),
            Err(why) => {
                *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                Ok(false)
            }
        }
    }
}

/// The client configuration for connections to targets trusted as `trust` says.
pub fn client_config(trust: &HostTrust) -> Arc<client::Config> {
    // AES-GCM first: with AES instructions it costs a fraction of ChaCha20-Poly1305, and the
    // bastion decrypts and re-encrypts every byte. Targets without it still get ChaCha20.
    const CIPHERS: &[cipher::Name] = &[
        cipher::AES_256_GCM,
        cipher::AES_128_GCM,
        cipher::CHACHA20_POLY1305,
        cipher::AES_256_CTR,
        cipher::AES_128_CTR,
    ];
    // A target trusted through a host CA must be asked for its certificate; a pinned target
    // must present the plain key that is pinned.
    const HOST_CERTIFICATES: &[Algorithm] = &[
        Algorithm::Ed25519,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        },
        Algorithm::Rsa {
            hash: Some(HashAlg::Sha256),
        },
    ];
    let host_key_certificates: &'static [Algorithm] = match trust {
        HostTrust::Ca(_) => HOST_CERTIFICATES,
        HostTrust::Pinned(_) => &[],
    };
    Arc::new(client::Config {
        // Wide windows keep bulk transfers from stalling on round trips; flow control still
        // bounds what is buffered.
        window_size: 8 * 1024 * 1024,
        maximum_packet_size: 32 * 1024,
        nodelay: true,
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        // The server side's key exchanges, MACs and compression: no DH group under 3072 bits,
        // encrypt-then-MAC only, no compression.
        preferred: russh::Preferred {
            cipher: Cow::Borrowed(CIPHERS),
            host_key_certificates: Cow::Borrowed(host_key_certificates),
            ..crate::server::transport::preferred()
        },
        ..Default::default()
    })
}

/// A connection to a target whose host key has been verified, not yet logged in. Holding one
/// grants nothing: the session's certificate is presented only in `login`.
pub struct Connected {
    handle: client::Handle<HostVerifier>,
    opened_at: std::time::Instant,
    /// How long the session waited for this connection (a slot, the dial, the key exchange;
    /// next to nothing for a prepared one): the first part of its connect time.
    waited: Duration,
    /// Held until the session has authenticated: until then sshd counts the connection
    /// against its `MaxStartups`. A prepared connection gives it back while it waits.
    startup: Option<StartupSlot>,
}

impl Connected {
    /// How long ago the connection was made.
    pub fn age(&self) -> Duration {
        self.opened_at.elapsed()
    }

    /// The connection, for a session that waited `waited` to get it.
    pub(crate) fn waited(mut self, waited: Duration) -> Connected {
        self.waited = waited;
        self
    }

    /// The connection without its start-up slot, to wait in the pool without holding a slot
    /// a session may need.
    pub fn without_startup_slot(mut self) -> Connected {
        self.startup = None;
        self
    }

    /// Whether the target has closed it meanwhile.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Closes it politely.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "not needed", "en")
            .await;
    }
}

/// Opens a TCP connection to `target` and completes the key exchange, verifying its host key.
/// The connection keeps `startup` until it has authenticated. Reached only through the pool,
/// whose public door takes a [`Permit`].
async fn connect(
    target: Arc<Target>,
    timeout: Duration,
    startup: StartupSlot,
) -> Result<Connected, UpstreamError> {
    let config = client_config(&target.trust);
    let refusal = Arc::new(Mutex::new(None));
    let verifier = HostVerifier {
        target: target.clone(),
        refusal: refusal.clone(),
    };
    let addr = (target.address.clone(), target.port);
    match tokio::time::timeout(timeout, client::connect(config, addr, verifier)).await {
        Err(_) => Err(UpstreamError::Timeout(timeout)),
        Ok(Ok(handle)) => Ok(Connected {
            handle,
            opened_at: std::time::Instant::now(),
            waited: Duration::ZERO,
            startup: Some(startup),
        }),
        Ok(Err(e)) => match refusal.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(why) => Err(UpstreamError::HostKey(why)),
            None => Err(UpstreamError::Ssh(describe(&e))),
        },
    }
}

/// A session channel on a target, logged in and with its pty and locale set, on which nothing
/// has been started yet: the last point at which a session can still be stopped with nothing
/// run on the target.
pub struct Ready {
    channel: Channel<client::Msg>,
    connection: client::Handle<HostVerifier>,
    early: Vec<ChannelMsg>,
}

/// Logs in on a verified connection with `credential`, signed for `permit`, as the permit's
/// login, opens a session channel and asks for `pty` (if any) and the locale variables `env`.
/// Starts nothing: see [`Ready::start`].
pub(crate) async fn login(
    connected: Connected,
    permit: &Permit,
    credential: SessionCredential,
    pty: Option<&PtyRequest>,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<Ready, UpstreamError> {
    let login = permit.role().login.as_str();
    let mut connection = connected.handle;
    let startup = connected.startup;
    let mut early = Vec::new();
    let waited = connected.waited;
    let steps = async {
        let authenticating = std::time::Instant::now();
        let auth = connection
            .authenticate_openssh_cert(login, Arc::new(credential.key), credential.certificate)
            .await
            .map_err(|e| UpstreamError::Ssh(describe(&e)))?;
        drop(startup);
        if !matches!(auth, AuthResult::Success) {
            return Err(UpstreamError::AuthRefused {
                login: login.to_owned(),
            });
        }
        crate::metrics::upstream_connected(waited + authenticating.elapsed());
        let mut channel = connection
            .channel_open_session()
            .await
            .map_err(|e| UpstreamError::Ssh(describe(&e)))?;
        if let Some(pty) = pty {
            channel
                .request_pty(
                    true,
                    &pty.term,
                    pty.cols,
                    pty.rows,
                    pty.pix_width,
                    pty.pix_height,
                    &pty.modes,
                )
                .await
                .map_err(|e| UpstreamError::Ssh(describe(&e)))?;
            await_reply(&mut channel, "pty", &mut early).await?;
        }
        for (name, value) in env {
            // Targets that do not accept the variable answer with a failure we do not wait for.
            let _ = channel.set_env(false, name.as_str(), value.as_str()).await;
        }
        Ok(channel)
    };
    let channel = tokio::time::timeout(timeout, steps)
        .await
        .map_err(|_| UpstreamError::Timeout(timeout))??;
    Ok(Ready {
        channel,
        connection,
        early,
    })
}

impl Ready {
    /// Sends the request that starts what the confirmed permit allows (a shell, or exactly its
    /// command) and waits for the target's answer.
    pub(crate) async fn start(
        self,
        confirmed: &Confirmed<'_>,
        timeout: Duration,
    ) -> Result<UpstreamChannel, UpstreamError> {
        let Ready {
            mut channel,
            connection,
            mut early,
        } = self;
        let steps = async {
            match confirmed.permit().allowed() {
                Allowed::Shell => {
                    channel
                        .request_shell(true)
                        .await
                        .map_err(|e| UpstreamError::Ssh(describe(&e)))?;
                    await_reply(&mut channel, "shell", &mut early).await
                }
                Allowed::Exec { command } => {
                    channel
                        .exec(true, command.as_str())
                        .await
                        .map_err(|e| UpstreamError::Ssh(describe(&e)))?;
                    await_reply(&mut channel, "exec", &mut early).await
                }
                Allowed::Files => {
                    channel
                        .request_subsystem(true, "sftp")
                        .await
                        .map_err(|e| UpstreamError::Ssh(describe(&e)))?;
                    await_reply(&mut channel, "sftp subsystem", &mut early).await
                }
                Allowed::RestrictedShell | Allowed::Forward { .. } => {
                    Err(UpstreamError::NothingToStart)
                }
            }
        };
        tokio::time::timeout(timeout, steps)
            .await
            .map_err(|_| UpstreamError::Timeout(timeout))??;
        Ok(UpstreamChannel {
            channel,
            connection,
            early,
        })
    }

    /// Closes the connection without starting anything.
    pub(crate) async fn abandon(self, why: &str) {
        let _ = self.channel.close().await;
        let _ = self
            .connection
            .disconnect(russh::Disconnect::ByApplication, why, "en")
            .await;
    }
}

/// Waits for the target's answer to a request sent with `want_reply`, keeping anything else the
/// target sent meanwhile in `early` so that no byte is lost.
async fn await_reply(
    channel: &mut Channel<client::Msg>,
    what: &'static str,
    early: &mut Vec<ChannelMsg>,
) -> Result<(), UpstreamError> {
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Success) => return Ok(()),
            Some(ChannelMsg::Failure) => return Err(UpstreamError::RequestRefused(what)),
            Some(ChannelMsg::Close) | Some(ChannelMsg::Eof) | None => {
                return Err(UpstreamError::Ssh(format!(
                    "the target closed the channel during the {what} request"
                )));
            }
            Some(ChannelMsg::WindowAdjusted { .. }) => continue,
            Some(other) => early.push(other),
        }
    }
}

fn describe(e: &russh::Error) -> String {
    match e {
        russh::Error::IO(io) => io.to_string(),
        russh::Error::Disconnect => "the target closed the connection".into(),
        other => other.to_string(),
    }
}
