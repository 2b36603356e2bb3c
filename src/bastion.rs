//! The state every connection shares: configuration, the current policy, the CA.
//!
//! The policy sits behind a lock holding an `Arc`, so a reload swaps it in one step and every
//! session sees either the old policy or the new one, never a mixture. Every change of policy
//! goes through [`Bastion::apply_policy`], which then re-evaluates the live sessions and the
//! grants against it: sessions register before their last look at the policy, and the policy is
//! swapped before the sessions are listed, so no session falls between the two.

use std::sync::{Arc, RwLock};

use russh::keys::ssh_key::Fingerprint;
use russh::keys::{HashAlg, PublicKey};

use crate::ca::Ca;
use crate::config::Config;
use crate::events::Events;
use crate::grants::store::GrantStore;
use crate::grants::watch::{GrantWatch, Reevaluation, reevaluate};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::policy::{self, Policy};
use crate::store::Store;
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
    /// Everything kept in the database, whichever it is.
    pub store: Store,
    /// Grants (the store, seen as a grant store).
    pub grants: Arc<dyn GrantStore>,
    /// The session index (the store, seen as one).
    pub sessions: Arc<dyn SessionIndex>,
    /// Sessions waiting on their grants.
    pub watch: Arc<GrantWatch>,
    /// Where decisions and state changes are reported.
    pub events: Events,
    /// Whether the store and the audit log work; new sessions are refused while not.
    pub health: Health,
    /// The metrics, for `/metrics` to render: set by `serve`, `None` where nothing is measured
    /// (operator commands, tests that do not ask for them).
    pub metrics: Option<Metrics>,
    policy: RwLock<Arc<Policy>>,
    /// One change of policy at a time, each with its re-evaluation.
    policy_change: tokio::sync::Mutex<()>,
}

impl Bastion {
    /// Assembles the shared state. `trusted_user_ca_keys` in the config must parse.
    pub fn new(
        config: Config,
        ca: Ca,
        policy: Policy,
        store: Store,
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
            grants: store.clone(),
            sessions: store.clone(),
            store,
            watch: Arc::new(GrantWatch::default()),
            events,
            health: Health::default(),
            metrics: None,
            policy: RwLock::new(Arc::new(policy)),
            policy_change: tokio::sync::Mutex::new(()),
        })
    }

    /// The reason a session is refused because the store failed on `what`: the cause the
    /// store can name (a deleted database file) when it can, otherwise the error itself.
    pub fn store_unavailable(&self, what: &str, error: &dyn std::fmt::Display) -> String {
        match self.store.diagnose() {
            Some(cause) => format!("store unavailable: {cause}"),
            None => format!("store unavailable: {what} ({error})"),
        }
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

    /// Re-reads the policy directory and applies it (see [`Bastion::apply_policy`]); on any
    /// error the old policy stays in force and nothing is re-evaluated.
    pub async fn reload_policy(&self) -> Result<(Arc<Policy>, Reevaluation), policy::LoadError> {
        let fresh = Arc::new(policy::load_dir(&self.config.policies)?);
        let report = self.apply_policy(fresh.clone()).await;
        Ok((fresh, report))
    }

    /// Puts `policy` in force, then closes the live sessions and ends the grants it no longer
    /// gives. Every source of policy (a reload, a directory sync) comes through here, so that a
    /// change of who may hold what always reaches what already runs.
    pub async fn apply_policy(&self, policy: Arc<Policy>) -> Reevaluation {
        let _one_at_a_time = self.policy_change.lock().await;
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = policy.clone();
        reevaluate(&policy, self.grants.as_ref(), &self.watch, &self.desk()).await
    }
}
