//! Durable state: grants, approvals and the session index.
//!
//! SQLite (WAL mode) is the embedded default. Migrations are applied when the store opens, so a
//! fresh data directory needs no setup step.

mod monitor;
pub mod sessions;
mod sqlite;

pub use sqlite::SqliteStore;

/// Errors from the store. Callers on the way to an access decision treat any of them as a denial.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL is not one Gatehouse supports.
    #[error("unsupported store URL {0:?} (use sqlite://PATH)")]
    Url(String),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The change conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// Creating the database's directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Opens the store named by a config `store` URL.
pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
    match url.strip_prefix("sqlite://") {
        Some(path) if !path.is_empty() => SqliteStore::open(std::path::Path::new(path)).await,
        _ => Err(StoreError::Url(url.to_owned())),
    }
}
