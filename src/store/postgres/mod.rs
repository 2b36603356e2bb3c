//! The PostgreSQL store: several Gatehouse nodes share one database.
//!
//! Every node opens its own pool on the same database and behaves exactly as on SQLite; what
//! SQLite gets from being one file with one writer, PostgreSQL gets from locks:
//!
//! - Grant writes take one transaction-level advisory lock ([`GRANT_LOCK`]), so they run one at
//!   a time across every node, exactly like SQLite's `BEGIN IMMEDIATE` (see [`grants`]).
//! - The alert outbox claims rows with `FOR UPDATE SKIP LOCKED`, so two nodes never attempt
//!   the same delivery and never wait for each other.
//! - Reviews and node losses are single conditional statements: a second node's
//!   `INSERT … ON CONFLICT DO NOTHING` or `UPDATE … WHERE state = 'up'` waits for the first to
//!   commit and then finds nothing to do.
//! - Sign-in links are spent, and token revocations taken, the same way (see [`web`]).
//! - Migrations run in one transaction behind another advisory lock ([`MIGRATION_LOCK`]), so
//!   nodes that start together apply each one once.
//!
//! # Failing fast, recovering by itself
//!
//! A node whose database is away must refuse sessions at once rather than hang them: every
//! connection is acquired within [`ACQUIRE_TIMEOUT`] (which bounds opening a new one too), and
//! the [monitor](monitor) marks the store faulty within a second or two. Connections broken by
//! a server restart are found by a ping before each is handed out and replaced, so the node
//! recovers, without a restart, as soon as the server answers again.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::Notify;

mod directory;
mod grants;
mod listen;
mod monitor;
mod nodes;
mod outbox;
mod retention;
mod search;
mod search_segments;
mod sessions;
mod transfers;
mod web;

use super::StoreError;
use crate::health::{Component, Health};

/// Schema versions, applied in order, all in the one transaction that holds
/// [`MIGRATION_LOCK`].
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_schema.sql"),
    include_str!("../../../migrations/postgres/0002_web.sql"),
    include_str!("../../../migrations/postgres/0003_directory.sql"),
    include_str!("../../../migrations/postgres/0004_file_ops.sql"),
    include_str!("../../../migrations/postgres/0005_holds.sql"),
    include_str!("../../../migrations/postgres/0006_search.sql"),
    include_str!("../../../migrations/postgres/0007_search_gram_marks.sql"),
];

/// The advisory lock key held while the schema is brought up to date ("gatehouse" migrations).
const MIGRATION_LOCK: i64 = 0x6761_7465_6d69_6731;

/// The advisory lock key every grant write holds until it commits (see [`grants`]).
pub(crate) const GRANT_LOCK: i64 = 0x6761_7465_6772_6e74;

/// Longest wait for a pooled connection, including opening a new one: a node whose database
/// is away refuses a session after this long instead of hanging it.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Connections per node. Grant writes use at most one at a time (they queue in the process
/// first, see [`PgStore::grant_turn`]), so the rest serve session starts and reads.
const POOL_SIZE: u32 = 10;

/// Server settings on every connection: a lock not granted within this long fails the
/// statement (a node that hangs while holding the grant lock does not stall the others for
/// good), and a session that sits in an open transaction this long (a node that died or lost
/// its network mid-write) is ended by the server, which releases its locks.
const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("lock_timeout", "15s"),
    ("idle_in_transaction_session_timeout", "60s"),
];

/// A PostgreSQL database shared by the nodes of a cluster.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The grant watch's own connection (see [`PgStore::watch_pool`]).
    watch: PgPool,
    /// How to connect, for the listener of grant changes and the monitor's diagnosis.
    options: PgConnectOptions,
    /// The URL without its password, for logs.
    shown: String,
    /// Where faults are reported, once the bastion has set it (see [`PgStore::monitor`]).
    health: Arc<OnceLock<Health>>,
    /// Grant writes of this process, one at a time (see [`PgStore::grant_turn`]).
    grant_writer: Arc<tokio::sync::Mutex<()>>,
    /// Woken when a grant changed anywhere; the listener starts on first use.
    changes: Arc<OnceLock<Arc<Notify>>>,
}

impl PgStore {
    /// Connects to the database named by `url` (`postgres://` or `postgresql://`, with any of
    /// libpq's URL parameters such as `sslmode`) and brings its schema up to date.
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        let options = options
            .application_name("gatehouse")
            .options(SESSION_SETTINGS.iter().copied());
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A connection the server dropped (a restart) is found and replaced before use.
            .test_before_acquire(true)
            // A burst of session starts may queue briefly for a connection.
            .acquire_slow_threshold(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await?;
        let watch = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(true)
            .connect_lazy_with(options.clone());
        let store = PgStore {
            pool,
            watch,
            shown: shown(&options),
            options,
            health: Arc::default(),
            grant_writer: Arc::default(),
            changes: Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The connection pool, for the store's own modules' queries.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The connection the grant watch confirms its view with (the revision and the grants
    /// changed since), outside [`PgStore::pool`]: a burst of session starts holding every
    /// pooled connection would otherwise time the confirmation out, and after
    /// `[cluster] lost_grace` the node would take a busy pool for a lost database and close
    /// every running session.
    pub(crate) fn watch_pool(&self) -> &PgPool {
        &self.watch
    }

    /// Waits for this process's turn to write grants. The advisory lock already makes grant
    /// writes take turns across nodes; queueing them here first means that a burst of them
    /// (break-glass logins at once) holds one pooled connection waiting for the lock instead
    /// of all of them, which would starve session starts.
    pub(crate) async fn grant_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.grant_writer.lock().await
    }

    /// Reports a store fault to the bastion's health, if it is watching.
    pub(crate) fn report_fault(&self, reason: String) {
        match self.health.get() {
            Some(health) => health.fault(Component::Store, reason),
            None => tracing::error!(%reason, "store fault"),
        }
    }

    /// Starts reporting this store's faults to `health` (once; later calls keep the first).
    fn watch_with(&self, health: &Health) {
        let _ = self.health.set(health.clone());
    }

    /// Brings the schema up to date in one transaction, behind an advisory lock: of nodes
    /// starting at the same moment on a fresh database, one creates the tables and the others
    /// wait, then find them there.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
            .fetch_one(&mut *tx)
            .await?;
        let current = current.unwrap_or(0);
        if current > MIGRATIONS.len() as i64 {
            return Err(StoreError::Corrupt(format!(
                "the database has schema version {current}, newer than this Gatehouse knows ({}); \
                 upgrade this node",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            // Migrations are compile-time constants of this crate.
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind((i + 1) as i64)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl super::Backend for PgStore {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn monitor(&self, health: &Health) -> tokio::task::JoinHandle<()> {
        self.watch_health(health)
    }

    fn grant_changes(&self) -> Option<Arc<Notify>> {
        // The listener is a task: without a runtime to run it, there is no push (the grant
        // watch still polls).
        tokio::runtime::Handle::try_current().ok()?;
        Some(
            self.changes
                .get_or_init(|| listen::spawn(&self.options, &self.shown))
                .clone(),
        )
    }
}

/// The database as logs show it: `postgres://USER@HOST:PORT/DB`, never with a password.
fn shown(options: &PgConnectOptions) -> String {
    let host = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => options.get_host().to_owned(),
    };
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        host,
        options.get_port(),
        options.get_database().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shown_url_has_no_password() {
        let options: PgConnectOptions =
            "postgresql://gh:s3cret@db.internal:6432/gatehouse?sslmode=require"
                .parse()
                .unwrap();
        let text = shown(&options);
        assert_eq!(text, "postgres://gh@db.internal:6432/gatehouse");
        assert!(!text.contains("s3cret"));
    }
}
