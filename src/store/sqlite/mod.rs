//! The SQLite store.
//!
//! # A failed write leaves no trace on the connection
//!
//! sqlx counts transaction depth per connection and only lowers the count when `COMMIT` or
//! `ROLLBACK` succeeds. When a write fails with a full disk, an I/O error or a lock, SQLite
//! itself may already have rolled the transaction back; the `ROLLBACK` that sqlx then sends
//! when the `Transaction` is dropped fails ("no transaction is active"), the count stays at 1,
//! and the connection goes back to the pool looking healthy. Every later `begin_with` on it
//! fails with "attempted to call begin_with at non-zero transaction depth", for good. The pools
//! here therefore check each connection as it comes back and again as it is handed out, and
//! discard any that sqlx still counts inside a transaction (closing it makes SQLite roll back
//! whatever may be left); the pool opens a fresh one, and the failure is reported to the
//! store's health.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use sqlx::Connection as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

mod directory;
mod grants;
mod monitor;
mod nodes;
mod outbox;
mod retention;
mod search;
mod segments;
mod sessions;
mod transfers;
mod web;

use super::StoreError;
use crate::health::{Component, Health};

/// Schema versions, applied in order inside one transaction each.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/0001_grants.sql"),
    include_str!("../../../migrations/0002_sessions.sql"),
    include_str!("../../../migrations/0003_reviews.sql"),
    include_str!("../../../migrations/0004_alerts.sql"),
    include_str!("../../../migrations/0005_nodes.sql"),
    include_str!("../../../migrations/0006_web.sql"),
    include_str!("../../../migrations/0007_directory.sql"),
    include_str!("../../../migrations/0008_file_ops.sql"),
    include_str!("../../../migrations/0009_holds.sql"),
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
    /// The grant watch's own connection (see [`SqliteStore::watch_pool`]).
    watch: SqlitePool,
    path: PathBuf,
    /// Device and inode of the file opened, so a file deleted or replaced under the running
    /// bastion is noticed (its connections would go on writing to the unlinked file).
    identity: Option<FileId>,
    /// Where faults are reported, once the bastion has set it (see [`SqliteStore::monitor`]).
    health: Arc<OnceLock<Health>>,
    /// The text index of recordings, in a file of its own (see [`search`]).
    search: search::SearchDb,
    /// Times the writer connection came back to its pool: a write ended (see
    /// [`SqliteStore::writes_ended`]).
    writes_ended: Arc<AtomicU64>,
}

/// Device and inode number of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The file now at `path`, if any.
    pub(super) fn of(path: &Path) -> std::io::Result<FileId> {
        let meta = std::fs::metadata(path)?;
        Ok(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
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
            .foreign_keys(true)
            // The database file is never memory-mapped (SQLite's default, stated so it stays
            // so): a mapped file that another process truncates kills the process with
            // SIGBUS instead of returning an error.
            .pragma("mmap_size", "0");
        // The file is created once, here. The pools' connections never create it: one opened
        // after the file was deleted would otherwise start an empty database at the same
        // path, and every statement would fail on a missing table instead of the deletion
        // being reported.
        sqlx::Connection::close(
            <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options).await?,
        )
        .await?;
        let options = options.create_if_missing(false);
        let health: Arc<OnceLock<Health>> = Arc::default();
        let writes_ended: Arc<AtomicU64> = Arc::default();
        let writer = pool_options(1, &health, Some(writes_ended.clone()))
            .connect_with(options.clone())
            .await?;
        let watch = pool_options(1, &health, None)
            .connect_with(options.clone())
            .await?;
        let pool = pool_options(8, &health, None).connect_with(options).await?;
        let search = search::SearchDb::open(path).await?;
        let store = SqliteStore {
            pool,
            writer,
            watch,
            path: path.to_owned(),
            identity: FileId::of(path).ok(),
            health,
            search,
            writes_ended,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Device and inode of the file this store opened.
    pub(super) fn identity(&self) -> Option<FileId> {
        self.identity
    }

    /// Reports a store fault to the bastion's health, if it is watching.
    pub(super) fn report_fault(&self, reason: String) {
        match self.health.get() {
            Some(health) => health.fault(Component::Store, reason),
            None => tracing::error!(%reason, "store fault"),
        }
    }

    /// Starts reporting this store's faults to `health` (once; later calls keep the first).
    pub(super) fn watch_with(&self, health: &Health) {
        let _ = self.health.set(health.clone());
    }

    /// The read-only connections, for the store's own modules' queries.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The connection the grant watch confirms its view with (the revision and the grants
    /// changed since). It is its own, outside [`SqliteStore::pool`]: a flood of logins queued
    /// for the read connections on a starved machine would otherwise keep the confirmation
    /// waiting past `[cluster] lost_grace`, and the bastion would take a busy store for a lost
    /// one and close every running session.
    pub fn watch_pool(&self) -> &SqlitePool {
        &self.watch
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
    ///
    /// Whatever happens to the transaction (commit, rollback, an error, a drop half-way), the
    /// connection goes back to the pool outside any transaction or not at all (see the module
    /// documentation), so one failed write never blocks the next.
    pub async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    /// How many writes have ended (committed, failed or dropped) on the writer connection since
    /// the store opened: the store's monitor tells a write queue that moves slowly from writes
    /// that do not land.
    pub(super) fn writes_ended(&self) -> u64 {
        self.writes_ended.load(Ordering::Relaxed)
    }

    /// A small real write (it changes nothing), to learn whether writes land: the store's
    /// monitor runs it to notice a full disk, a read-only file or a lock, and to see the store
    /// recover.
    pub(super) async fn probe_write(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE schema_version SET version = version \
             WHERE version = (SELECT MAX(version) FROM schema_version)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let tx = self.begin_write().await?;
        apply_migrations(tx, MIGRATIONS).await
    }
}

/// Brings a database up to `migrations` in the write transaction `tx` (begun with
/// `BEGIN IMMEDIATE`): each one not yet recorded in `schema_version` runs, and is recorded, in
/// that transaction, so a failure leaves the schema as it was.
pub(super) async fn apply_migrations(
    mut tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    migrations: &[&str],
) -> Result<(), StoreError> {
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
        .fetch_one(&mut *tx)
        .await?;
    let current = current.unwrap_or(0) as usize;
    for (i, sql) in migrations.iter().enumerate().skip(current) {
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

impl super::Backend for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    fn monitor(&self, health: &Health) -> tokio::task::JoinHandle<()> {
        self.watch_health(health)
    }

    fn diagnose(&self) -> Option<String> {
        let reason = self.same_file().and_then(|()| self.writable()).err()?;
        self.report_fault(reason.clone());
        Some(reason)
    }
}

/// Options for one of the store's pools: connections that come back from a failed transaction
/// are discarded (and the failure reported) rather than handed out again. Each connection that
/// comes back is counted in `returns`, if given.
fn pool_options(
    max: u32,
    health: &Arc<OnceLock<Health>>,
    returns: Option<Arc<AtomicU64>>,
) -> SqlitePoolOptions {
    let on_release = health.clone();
    let on_acquire = health.clone();
    SqlitePoolOptions::new()
        .max_connections(max)
        // A burst of session starts queues briefly for a connection, which is expected and
        // not worth a warning.
        .acquire_slow_threshold(std::time::Duration::from_secs(5))
        .after_release(move |conn, _| {
            if let Some(returns) = &returns {
                returns.fetch_add(1, Ordering::Relaxed);
            }
            let health = on_release.clone();
            // A dropped transaction may still have its rollback queued on the connection's
            // worker; the depth then still reads 1 and a connection that would have come
            // clean is discarded too. That happens only after a failure, and it never keeps
            // a bad one, so no round trip is spent on every release to wait for it.
            Box::pin(async move { Ok(still_clean(conn, &health, "returned to the pool")) })
        })
        .before_acquire(move |conn, _| {
            let health = on_acquire.clone();
            Box::pin(async move { Ok(still_clean(conn, &health, "about to be used")) })
        })
}

/// Whether `conn` is outside any transaction; when it is not, reports the fault and says so,
/// and the pool closes the connection.
fn still_clean(
    conn: &sqlx::SqliteConnection,
    health: &OnceLock<Health>,
    when: &'static str,
) -> bool {
    if !conn.is_in_transaction() {
        return true;
    }
    let reason = "a write failed and its transaction could not be closed; the connection was \
                  discarded"
        .to_owned();
    tracing::warn!(
        when,
        "a database connection left inside a failed transaction was discarded"
    );
    if let Some(health) = health.get() {
        health.fault(Component::Store, reason);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite rolls a transaction back by itself on a full disk or an I/O error; sqlx's later
    /// `ROLLBACK` then fails and its depth count stays at 1. A raw `ROLLBACK` inside the
    /// transaction reproduces exactly that state.
    #[tokio::test]
    async fn a_transaction_rolled_back_under_sqlx_does_not_wedge_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
        let health = Health::default();
        store.watch_with(&health);
        for _ in 0..3 {
            let mut tx = store.begin_write().await.unwrap();
            sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
            assert!(tx.commit().await.is_err(), "nothing left to commit");
            // The next write must not fail with "begin_with at non-zero transaction depth".
            store.probe_write().await.unwrap();
        }
        assert!(
            health.is_faulty(Component::Store),
            "the failure was reported"
        );
    }

    /// The same through a dropped transaction (an error returned half-way, `?`).
    #[tokio::test]
    async fn a_dropped_failed_transaction_does_not_wedge_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
        {
            let mut tx = store.begin_write().await.unwrap();
            sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
        }
        store.probe_write().await.unwrap();
        store.probe_write().await.unwrap();
    }

    /// A login flood holding every read connection (as 1,000 logins at once on a starved
    /// machine did, for over 10 s) must not keep the grant watch from confirming its view.
    #[tokio::test]
    async fn the_grant_watch_is_answered_while_every_read_connection_is_taken() {
        use std::time::Duration;

        use crate::grants::store::GrantStore;

        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(store.pool().acquire().await.unwrap());
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(300), store.pool().acquire())
                .await
                .is_err(),
            "the read pool should be exhausted for this test to mean anything"
        );
        let confirmed = tokio::time::timeout(Duration::from_secs(2), async {
            let rev = store.revision().await?;
            store.changed_since(rev).await
        })
        .await
        .expect("the watch waited behind the read pool")
        .unwrap();
        assert!(confirmed.is_empty());
        drop(held);
    }
}
