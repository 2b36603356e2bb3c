//! People from the organisation's directory (LDAP): who they are, their SSH keys and their
//! groups, kept in step with the directory so that leaving the team ends access by itself.
//!
//! * [`ldap`] reads the directory (TLS, paged searches, all or nothing);
//! * [`snapshot`] turns what it read into users, leaving out what is malformed;
//! * [`sync`] decides whether a read may be put in force (the `max_removal` guard) and keeps
//!   it as the last good state in the store, shared by every node;
//! * [`follow`] runs in `gatehouse serve`: it syncs on an interval and puts every new state in
//!   force on this node, which ends the grants and sessions of whoever lost their access.
//!
//! The policy in force is the policy files with the directory's users added
//! ([`crate::policy::Policy::with_directory`]).

pub mod follow;
pub mod ldap;
pub mod snapshot;
pub mod sync;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::config::Config;
use crate::policy::{self, Policy};
use crate::store::Store;
use snapshot::Snapshot;

/// The policy groups the directory may fill (`[directory] groups`): roles may name them even
/// when no user in the policy files is in them.
pub fn outside_groups(config: &Config) -> BTreeSet<String> {
    config
        .directory
        .iter()
        .flat_map(|d| d.groups.values().cloned())
        .collect()
}

/// Why the policy in force could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum PolicyInForceError {
    /// The policy files did not load.
    #[error("{0}")]
    Files(#[from] policy::LoadError),
    /// The directory's stored state could not be read.
    #[error("the directory's last good state: {0}")]
    Stored(#[from] sync::SyncError),
}

/// The directory's last good state from the store, when `[directory]` is set and a sync has
/// succeeded.
pub async fn stored_snapshot(
    config: &Config,
    store: &Store,
) -> Result<Option<Arc<Snapshot>>, sync::SyncError> {
    if config.directory.is_none() {
        return Ok(None);
    }
    let record = store.directory().await?;
    Ok(sync::parse_stored(record.snapshot.as_deref())?.map(Arc::new))
}

/// The policy in force: the policy files, with the directory's users from the store's last
/// good state. Operator commands use it, so that they see the same people as the server.
pub async fn policy_in_force(config: &Config, store: &Store) -> Result<Policy, PolicyInForceError> {
    let files = policy::load_dir_with_groups(&config.policies, &outside_groups(config))?;
    Ok(match stored_snapshot(config, store).await? {
        Some(snapshot) => files.with_directory(&snapshot).0,
        None => files,
    })
}
