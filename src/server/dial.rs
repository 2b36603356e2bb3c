//! From a `Permit` to an open channel on the target: the session's certificate, then the
//! connection. The only way the server reaches a target, so nothing dials without a permit.

use crate::access::Permit;
use crate::bastion::Bastion;
use crate::ca::CertRequest;
use crate::upstream::{self, PtyRequest, SessionSpec, Start, UpstreamChannel};

/// Opens channels on the permitted target for one session.
pub struct Dialer<'a> {
    /// Shared state (CA, upstream client config, timeouts).
    pub bastion: &'a Bastion,
    /// What is allowed.
    pub permit: &'a Permit,
    /// The session, named in the certificate's key id.
    pub session_id: &'a str,
    /// Locale variables to pass on.
    pub env: &'a [(String, String)],
}

impl Dialer<'_> {
    /// Signs a certificate for `start` (with `permit-pty` when `pty` is given and
    /// `force-command` for an exec) and opens the channel. The error is the text that follows
    /// `gatehouse: target NAME: `.
    pub async fn open(
        &self,
        start: Start<'_>,
        pty: Option<&PtyRequest>,
    ) -> Result<UpstreamChannel, String> {
        let role = self.permit.role();
        // The connection first: it may queue for a start-up slot, and the certificate's
        // lifetime should start when it is about to be used.
        let connected = self
            .bastion
            .upstream
            .get(self.permit.target())
            .await
            .map_err(|e| e.to_string())?;
        let force_command = match start {
            Start::Exec(command) => Some(command),
            Start::Shell => None,
        };
        let credential = self
            .bastion
            .ca
            .issue(&CertRequest {
                login: &role.login,
                key_id: self.permit.key_id(self.session_id),
                pty: pty.is_some(),
                force_command,
            })
            .map_err(|e| e.to_string())?;
        let spec = SessionSpec {
            login: &role.login,
            pty,
            env: self.env,
            start,
        };
        let channel = upstream::start(
            connected,
            credential,
            spec,
            self.bastion.config.upstream.connect_timeout,
        )
        .await
        .map_err(|e| e.to_string())?;
        self.bastion.upstream.prepare_next(self.permit.target());
        Ok(channel)
    }
}
