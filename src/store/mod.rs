//! Durable state: grants, approvals, the session index, reviews, the alert outbox and the node
//! registry.
//!
//! One node uses SQLite (WAL mode), the embedded default. Several nodes share PostgreSQL. Both
//! implement the same traits ([`Backend`]), and nothing above this module knows which one it
//! has. Migrations are applied when the store opens, so a fresh database needs no setup step.

pub mod nodes;
pub mod outbox;
pub mod sessions;
mod sqlite;

use std::sync::Arc;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::grants::store::GrantStore;
use crate::health::Health;
use nodes::NodeRegistry;
use outbox::AlertOutbox;
use sessions::SessionIndex;
pub use sqlite::SqliteStore;

/// Errors from the store. Callers on the way to an access decision treat any of them as a denial.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL is not one Gatehouse supports.
    #[error("unsupported store URL {0:?} (use sqlite://PATH or postgres://USER@HOST/DB)")]
    Url(String),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The change conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// What is stored cannot be read back (a value this version does not know).
    #[error("unreadable stored value: {0}")]
    Corrupt(String),
    /// Creating the database's directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Everything Gatehouse keeps in a database, whichever database it is.
pub trait Backend: GrantStore + SessionIndex + AlertOutbox + NodeRegistry {
    /// The store for logs and messages (no password).
    fn describe(&self) -> String;

    /// Starts watching the database for faults and their end, reporting both to `health`.
    fn monitor(&self, health: &Health) -> JoinHandle<()>;

    /// Woken when another process (or node) changed a grant, if the database can push that;
    /// the grant watch still polls the revision, so a missed push only delays.
    fn grant_changes(&self) -> Option<Arc<Notify>> {
        None
    }
}

/// An open store, shared by everything in the process.
pub type Store = Arc<dyn Backend>;

/// Opens the store named by a config `store` URL and brings its schema up to date.
pub async fn open(url: &str) -> Result<Store, StoreError> {
    match url.strip_prefix("sqlite://") {
        Some(path) if !path.is_empty() => Ok(Arc::new(
            SqliteStore::open(std::path::Path::new(path)).await?,
        )),
        _ => Err(StoreError::Url(url.to_owned())),
    }
}
