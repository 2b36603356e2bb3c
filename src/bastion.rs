//! The state every connection shares: configuration, the current policy, the CA.
//!
//! The policy sits behind a lock holding an `Arc`, so a reload swaps it in one step and every
//! session sees either the old policy or the new one, never a mixture.

use std::sync::{Arc, RwLock};

use russh::keys::ssh_key::Fingerprint;
use russh::keys::{HashAlg, PublicKey};

use crate::ca::Ca;
use crate::config::Config;
use crate::events::Events;
use crate::grants::store::GrantStore;
use crate::grants::watch::GrantWatch;
use crate::health::Health;
use crate::policy::{self, Policy};
use crate::store::sessions::SessionIndex;
use crate::upstream::pool::WarmPool;
use crate::upstream::startups::StartupLimiter;

/// Shared state of one running bastion.
pub struct Bastion {
    /// The configuration it started with.
    pub config: Config,
    /// Signs per-session certificates.
    pub ca: Ca,
    /// CAs whose user certificates may log in to the bastion.
    pub trusted_user_cas: Vec<Fingerprint>,
    /// Connections to targets, with one kept ready per recently used target.
    pub upstream: Arc<WarmPool>,
    /// Grants.
    pub grants: Arc<dyn GrantStore>,
    /// The session index.
    pub sessions: Arc<dyn SessionIndex>,
    /// Sessions waiting on their grants.
    pub watch: Arc<GrantWatch>,
    /// Where decisions and state changes are reported.
    pub events: Events,
    /// Whether the store and the audit log work; new sessions are refused while not.
    pub health: Health,
    policy: RwLock<Arc<Policy>>,
}

impl Bastion {
    /// Assembles the shared state. `trusted_user_ca_keys` in the config must parse.
    pub fn new(
        config: Config,
        ca: Ca,
        policy: Policy,
        grants: Arc<dyn GrantStore>,
        sessions: Arc<dyn SessionIndex>,
        events: Events,
    ) -> anyhow::Result<Bastion> {
        let mut trusted_user_cas = Vec::new();
        for line in &config.ca.trusted_user_ca_keys {
            let key = PublicKey::from_openssh(line.trim()).map_err(|e| {
                anyhow::anyhow!(
                    "ca.trusted_user_ca_keys: {line:?} is not an OpenSSH public key: {e}"
                )
            })?;
            trusted_user_cas.push(key.fingerprint(HashAlg::Sha256));
        }
        let upstream = WarmPool::new(
            config.upstream.connect_timeout,
            config.upstream.prewarm,
            StartupLimiter::new(config.upstream.max_startups, config.upstream.startup_wait),
        );
        Ok(Bastion {
            config,
            ca,
            trusted_user_cas,
            upstream,
            grants,
            sessions,
            watch: Arc::new(GrantWatch::default()),
            events,
            health: Health::default(),
            policy: RwLock::new(Arc::new(policy)),
        })
    }

    /// The desk through which SSH verbs decide on grants.
    pub fn desk(&self) -> crate::grants::desk::GrantDesk<'_> {
        crate::grants::desk::GrantDesk {
            store: self.grants.as_ref(),
            events: &self.events,
            watch: Some(&self.watch),
            request_ttl: self.config.request_ttl,
        }
    }

    /// The policy in force now.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the policy directory; on any error the old policy stays in force.
    pub fn reload_policy(&self) -> Result<Arc<Policy>, policy::LoadError> {
        let fresh = Arc::new(policy::load_dir(&self.config.policies)?);
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        Ok(fresh)
    }
}
