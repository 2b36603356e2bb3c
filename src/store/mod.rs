//! Durable state: grants, approvals, the session index and file-session transcripts, the text
//! index of recordings, reviews, legal holds, the alert outbox, the node registry, web sign-in
//! and API tokens, and the directory's last
//! good state.
//!
//! One node uses SQLite (WAL mode), the embedded default. Several nodes share PostgreSQL. Both
//! implement the same traits ([`Backend`]), and nothing above this module knows which one it
//! has. Migrations are applied when the store opens, so a fresh database needs no setup step.

pub mod directory;
pub mod nodes;
pub mod outbox;
mod postgres;
pub mod postings;
pub mod retention;
pub mod search;
pub mod sessions;
mod sqlite;
pub mod transfers;
pub mod web;

use std::sync::Arc;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::grants::store::GrantStore;
use crate::health::Health;
use directory::DirectoryStore;
use nodes::NodeRegistry;
use outbox::AlertOutbox;
pub use postgres::PgStore;
use retention::Retention;
use search::SearchIndex;
use sessions::SessionIndex;
pub use sqlite::SqliteStore;
use transfers::FileTranscripts;
use web::WebAuth;

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
pub trait Backend:
    GrantStore
    + SessionIndex
    + AlertOutbox
    + NodeRegistry
    + WebAuth
    + DirectoryStore
    + FileTranscripts
    + Retention
    + SearchIndex
{
    /// The store for logs and messages (no password).
    fn describe(&self) -> String;

    /// Starts watching the database for faults and their end, reporting both to `health`.
    fn monitor(&self, health: &Health) -> JoinHandle<()>;

    /// Why the database cannot be used right now, if a fault the monitor watches for is
    /// present already, so a failed operation can be explained by its cause (a deleted file)
    /// rather than by its symptom (a missing table), before the next tick of the monitor.
    fn diagnose(&self) -> Option<String> {
        None
    }

    /// Woken when another process (or node) changed a grant, if the database can push that;
    /// the grant watch still polls the revision, so a missed push only delays.
    fn grant_changes(&self) -> Option<Arc<Notify>> {
        None
    }
}

/// An open store, shared by everything in the process.
pub type Store = Arc<dyn Backend>;

/// Opens the store named by a config `store` URL (`sqlite://PATH`, or `postgres://…` /
/// `postgresql://…` for a database shared by several nodes) and brings its schema up to date.
pub async fn open(url: &str) -> Result<Store, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PgStore::open(url).await?));
    }
    match url.strip_prefix("sqlite://") {
        Some(path) if !path.is_empty() => Ok(Arc::new(
            SqliteStore::open(std::path::Path::new(path)).await?,
        )),
        _ => Err(StoreError::Url(without_password(url))),
    }
}

/// `url` with the password of its user info (if any) masked, for messages and logs.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    match authority[..at].split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_in_urls() {
        assert_eq!(
            without_password("mysql://gh:s3cret@db:3306/x"),
            "mysql://gh:***@db:3306/x"
        );
        assert_eq!(
            without_password("postgres://gh@db/x?a=b@c"),
            "postgres://gh@db/x?a=b@c"
        );
        assert_eq!(without_password("sqlite://"), "sqlite://");
    }

    #[tokio::test]
    async fn an_unsupported_url_is_refused_without_its_password() {
        let err = open("mysql://gh:s3cret@db/x").await.err().unwrap();
        assert!(matches!(err, StoreError::Url(_)), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
