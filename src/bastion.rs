//! The state every connection shares: configuration, the current policy, the CA.
//!
//! The policy sits behind a lock holding an `Arc`, so a reload swaps it in one step and every
//! session sees either the old policy or the new one, never a mixture. It is composed of two
//! sources: the policy files, and the directory's last good state (`[directory]`). A change of
//! either (a reload, a directory sync) goes through one path, which swaps the composed policy
//! in and then re-evaluates the live sessions and the grants against it: sessions register
//! before their last look at the policy, and the policy is swapped before the sessions are
//! listed, so no session falls between the two.

use std::sync::{Arc, RwLock};

use russh::keys::ssh_key::Fingerprint;
use russh::keys::{HashAlg, PublicKey};

use crate::ca::Ca;
use crate::config::Config;
use crate::directory::snapshot::Snapshot;
use crate::events::{Event, EventKind, Events};
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
    /// What the policy in force is composed of; changed only under `policy_change`.
    sources: std::sync::Mutex<Sources>,
    /// One change of policy at a time, each with its re-evaluation.
    policy_change: tokio::sync::Mutex<()>,
}

/// The sources of the policy in force.
struct Sources {
    /// The policy files.
    files: Arc<Policy>,
    /// The directory's last good state, when `[directory]` is set and a sync has succeeded.
    directory: Option<Arc<Snapshot>>,
}

impl Sources {
    /// The policy files with the directory's users added; what the two disagree on is logged
    /// (and reported by `gatehouse check`).
    fn compose(&self) -> Policy {
        let Some(snapshot) = &self.directory else {
            return (*self.files).clone();
        };
        let (policy, conflicts) = self.files.with_directory(snapshot);
        for c in conflicts {
            tracing::warn!(user = %c.user, "{}", c.message);
        }
        policy
    }
}

/// Why the policy in force changed: the grants it ends are ended by this actor, and the users
/// it removes are reported with this reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyCause {
    /// The policy files were (re)loaded.
    Files,
    /// A directory sync changed who is in the directory.
    Directory,
}

impl PolicyCause {
    /// The actor named in `ended_by` and in audit lines.
    pub fn actor(self) -> &'static str {
        match self {
            PolicyCause::Files => "policy",
            PolicyCause::Directory => "directory",
        }
    }
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
            policy: RwLock::new(Arc::new(policy.clone())),
            sources: std::sync::Mutex::new(Sources {
                files: Arc::new(policy),
                directory: None,
            }),
            policy_change: tokio::sync::Mutex::new(()),
        })
    }

    /// Starts with the directory's last good state as well as the policy files, before anything
    /// is served, so the first re-evaluation does not take access from the directory's people.
    pub fn with_directory(self, snapshot: Option<Arc<Snapshot>>) -> Bastion {
        let composed = {
            let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
            sources.directory = snapshot;
            sources.compose()
        };
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(composed);
        self
    }

    /// The reason a session is refused because the store failed on `what`: the cause the
    /// store can name (a deleted database file) when it can, otherwise the error itself.
    pub fn store_unavailable(&self, what: &str, error: &dyn std::fmt::Display) -> String {
        match self.store.diagnose() {
            Some(cause) => format!("store unavailable: {cause}"),
            None => format!("store unavailable: {what} ({error})"),
        }
    }

    /// What every decision on an open connection starts from: the user as `policy` (the policy
    /// in force) knows them now, still holding the key they logged in with, and their live
    /// grants. Fails closed: a user gone from the policy, a withdrawn key, or a store that
    /// cannot answer is a denial.
    pub async fn standing(
        &self,
        identity: &crate::server::auth::Identity,
        policy: &Policy,
        now: crate::grants::Timestamp,
    ) -> Result<(Arc<policy::User>, Vec<crate::grants::Grant>), crate::access::Denial> {
        use crate::access::Denial;
        use crate::outcome::DenialClass;
        let user = identity
            .current_user(policy)
            .map_err(|why| Denial::new(DenialClass::Policy, why))?;
        let held = self
            .grants
            .live_for_user(&user.name, now)
            .await
            .map_err(|e| {
                Denial::new(
                    DenialClass::StoreUnavailable,
                    self.store_unavailable("grants cannot be checked now", &e),
                )
            })?;
        Ok((user, held))
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

    /// Re-reads the policy directory and applies it with the directory's state (see
    /// [`Bastion::apply`]); on any error the old policy stays in force and nothing is
    /// re-evaluated.
    pub async fn reload_policy(&self) -> Result<(Arc<Policy>, Reevaluation), policy::LoadError> {
        let outside = crate::directory::outside_groups(&self.config);
        let files = Arc::new(policy::load_dir_with_groups(
            &self.config.policies,
            &outside,
        )?);
        let _one_at_a_time = self.policy_change.lock().await;
        let composed = {
            let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
            sources.files = files;
            Arc::new(sources.compose())
        };
        let report = self.apply(composed.clone(), PolicyCause::Files, None).await;
        Ok((composed, report))
    }

    /// Puts a new directory state in force with the policy files, and applies it.
    pub async fn apply_directory(&self, snapshot: Arc<Snapshot>) -> Reevaluation {
        let _one_at_a_time = self.policy_change.lock().await;
        let composed = {
            let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
            sources.directory = Some(snapshot.clone());
            Arc::new(sources.compose())
        };
        self.apply(composed, PolicyCause::Directory, Some(&snapshot))
            .await
    }

    /// Applies the policy in force again: at start-up, so that grants written under an older
    /// policy (while the bastion was down) that it no longer gives are ended.
    pub async fn reapply_policy(&self) -> Reevaluation {
        let _one_at_a_time = self.policy_change.lock().await;
        let policy = self.policy();
        let cause = PolicyCause::Files;
        reevaluate(
            &policy,
            self.grants.as_ref(),
            &self.watch,
            &self.desk(),
            cause.actor(),
        )
        .await
    }

    /// Puts `policy` in force, then closes the live sessions and ends the grants it no longer
    /// gives, and reports each person it no longer has (`user.removed`). Every source of policy
    /// comes through here, so that a change of who may hold what always reaches what already
    /// runs. The caller holds `policy_change`.
    async fn apply(
        &self,
        policy: Arc<Policy>,
        cause: PolicyCause,
        directory: Option<&Snapshot>,
    ) -> Reevaluation {
        let before = std::mem::replace(
            &mut *self.policy.write().unwrap_or_else(|p| p.into_inner()),
            policy.clone(),
        );
        let report = reevaluate(
            &policy,
            self.grants.as_ref(),
            &self.watch,
            &self.desk(),
            cause.actor(),
        )
        .await;
        for gone in before.users().filter(|u| policy.user(&u.name).is_none()) {
            let reason = match (cause, directory) {
                (PolicyCause::Directory, Some(d)) if d.disabled.contains(&gone.name) => {
                    "the account is disabled in the directory"
                }
                (PolicyCause::Directory, _) => "no longer in the directory",
                (PolicyCause::Files, _) => "no longer in the policy files",
            };
            self.events.emit(Event {
                user: Some(gone.name.clone()),
                actor: Some(cause.actor().into()),
                reason: Some(reason.into()),
                detail: Some(serde_json::json!({ "defined_at": gone.source.to_string() })),
                ..Event::new(EventKind::UserRemoved)
            });
            // The console already refuses them (it looks people up in the policy in force on
            // every request); their browser sessions end too, so none outlives a return.
            if let Err(e) = self
                .store
                .end_web_sessions_of(&gone.name, crate::grants::now())
                .await
            {
                tracing::warn!(user = %gone.name, error = %e, "cannot end the browser sessions of a removed user");
            }
        }
        report
    }
}
