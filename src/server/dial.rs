//! From a `Permit` to a started channel on the target: the connection, the session's
//! certificate, the login, and the request that starts the shell or the command. The only way
//! the server reaches a target, so nothing dials without a permit.
//!
//! Setting up a session can take seconds (a queue for a start-up slot, a slow network, a slow
//! target), and a grant may be revoked, or the policy reloaded, meanwhile. So the grant is read
//! again from the store (not from a cache) and the permit confirmed against it and against the
//! policy in force twice: once the connection is ready, before the certificate is signed, and
//! once more after the login, immediately before the shell or exec request is sent. A revoke
//! written at any moment before that request leaves means the target runs nothing, and a store
//! that cannot answer is a refusal. The certificate itself never outlives the grant.
//! Because every dial goes through here, exec sessions, interactive shells, each line of the
//! restricted shell and break-glass sessions all get the same checks.

use crate::access::{Confirmed, Lapse, Permit};
use crate::bastion::Bastion;
use crate::ca::{CertRequest, SignError};
use crate::grants;
use crate::upstream::{self, PtyRequest, UpstreamChannel};

/// Why a dial started nothing on the target.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The grant ended, could not be checked, or the policy no longer gives the session
    /// (a denial: exit 126).
    #[error("{0}")]
    Lapsed(Lapse),
    /// The target could not be reached or refused the session; the text follows
    /// `gatehouse: target NAME: ` (exit 255).
    #[error("{0}")]
    Target(String),
}

/// Opens channels on permitted targets for one session.
pub(crate) struct Dialer<'a> {
    /// Shared state (CA, upstream client config, timeouts, the store and the policy).
    pub bastion: &'a Bastion,
    /// The session, named in the certificate's key id.
    pub session_id: &'a str,
    /// Locale variables to pass on.
    pub env: &'a [(String, String)],
}

impl Dialer<'_> {
    /// Starts what `permit` allows on its target: a shell (with `pty`) or exactly its command
    /// (with `pty` only when given, and `force-command` in the certificate).
    pub(crate) async fn open(
        &self,
        permit: &Permit,
        pty: Option<&PtyRequest>,
    ) -> Result<UpstreamChannel, DialError> {
        let bastion = self.bastion;
        let timeout = bastion.config.upstream.connect_timeout;
        let target = |e: upstream::UpstreamError| DialError::Target(e.to_string());
        // The connection first: it may queue for a start-up slot, and the certificate's
        // lifetime should start when it is about to be used.
        let connected = bastion.upstream.get(permit).await.map_err(target)?;
        if let Err(lapse) = confirm(bastion, permit).await {
            connected.close().await;
            return Err(DialError::Lapsed(lapse));
        }
        let request = CertRequest {
            session_id: self.session_id,
            pty: pty.is_some(),
        };
        let credential = match bastion.ca.issue(permit, &request) {
            Ok(credential) => credential,
            Err(e) => {
                connected.close().await;
                return Err(match e {
                    SignError::GrantEnded(_) => DialError::Lapsed(Lapse::GrantEnded(e.to_string())),
                    SignError::Key(_) => DialError::Target(e.to_string()),
                });
            }
        };
        let ready = upstream::login(connected, permit, credential, pty, self.env, timeout)
            .await
            .map_err(target)?;
        // The last look, with nothing slow left between it and the request that starts
        // something on the target.
        let channel = match confirm(bastion, permit).await {
            Ok(confirmed) => ready.start(&confirmed, timeout).await.map_err(target)?,
            Err(lapse) => {
                ready.abandon("the session's grant ended").await;
                return Err(DialError::Lapsed(lapse));
            }
        };
        bastion.upstream.prepare_next(permit);
        Ok(channel)
    }
}

/// Confirms `permit` against its grant read from the store now and the policy in force now.
/// A store that cannot answer is a refusal.
pub(crate) async fn confirm<'p>(
    bastion: &Bastion,
    permit: &'p Permit,
) -> Result<Confirmed<'p>, Lapse> {
    let fresh = bastion
        .grants
        .get(permit.grant_id())
        .await
        .map_err(|e| Lapse::Unchecked(e.to_string()))?;
    permit.confirm(&bastion.policy(), fresh.as_ref(), grants::now())
}
