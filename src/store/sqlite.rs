//! The SQLite store.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::StoreError;

/// Schema versions, applied in order inside one transaction each.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_grants.sql"),
    include_str!("../../migrations/0002_sessions.sql"),
    include_str!("../../migrations/0003_reviews.sql"),
    include_str!("../../migrations/0004_alerts.sql"),
];

/// A SQLite database file.
///
/// Reads go to a pool of connections that run side by side (WAL). Writes go to one connection of
/// their own: SQLite lets one writer at a time in any case, and writers of one process that
/// contend for its lock wait in the busy handler's sleeps (up to 100 ms each), which under a
/// burst of session starts added seconds. Queued for one connection, each write waits only for
/// the writes before it.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(dir)
                .map_err(|source| StoreError::Io {
                    path: dir.display().to_string(),
                    source,
                })?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(5))
            .foreign_keys(true);
        // A burst of session starts queues briefly for a connection, which is expected and not
        // worth a warning.
        let slow = std::time::Duration::from_secs(5);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_slow_threshold(slow)
            .connect_with(options.clone())
            .await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_slow_threshold(slow)
            .connect_with(options)
            .await?;
        let store = SqliteStore {
            pool,
            writer,
            path: path.to_owned(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The read-only connections, for the store's own modules' queries.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The one connection that writes, for every statement or transaction that changes
    /// something (including read-then-write transactions, so their reads see the latest
    /// committed state and they never have to upgrade a read lock).
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// Begins a write transaction on the writer connection with `BEGIN IMMEDIATE`: it takes
    /// the database's write lock at once, so a read inside it can never be outdated by a
    /// commit from another process (the operator CLI) before it writes.
    pub async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
            .fetch_one(&mut *tx)
            .await?;
        let current = current.unwrap_or(0) as usize;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
            // Migrations are compile-time constants of this crate.
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO schema_version (version) VALUES (?)")
                .bind((i + 1) as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
