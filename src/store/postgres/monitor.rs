//! Watches the database for faults and for their end, and reports both to the bastion's
//! health, so a node refuses new sessions while PostgreSQL cannot account for them and allows
//! them again, without a restart, once it can.
//!
//! Once a second it makes a small real write (it changes nothing) within [`PROBE_LIMIT`]: a
//! write notices what a read would not, such as a server that went read-only (a standby after
//! a failover, a full disk) or a lock that never comes.

use std::time::Duration;

use sqlx::Connection as _;
use tokio::task::JoinHandle;

use super::PgStore;
use crate::health::{Component, Health};

/// How often the database is probed.
const TICK: Duration = Duration::from_secs(1);

/// Longest a probe may take before the store counts as faulty (acquiring a connection alone
/// may take up to the pool's acquire timeout of 3 s).
const PROBE_LIMIT: Duration = Duration::from_secs(4);

/// Longest the direct connection that explains a pool time-out may take.
const DIAGNOSE_LIMIT: Duration = Duration::from_secs(2);

impl PgStore {
    /// Starts reporting this store's faults to `health` and probing for new ones and for
    /// recovery. Runs until the runtime stops.
    pub(super) fn watch_health(&self, health: &Health) -> JoinHandle<()> {
        self.watch_with(health);
        let store = self.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match tokio::time::timeout(PROBE_LIMIT, store.probe_write()).await {
                    Ok(Ok(())) => health.clear(Component::Store),
                    Ok(Err(e)) => {
                        let why = store.explain(e).await;
                        health.fault(Component::Store, format!("cannot reach PostgreSQL: {why}"));
                    }
                    Err(_) => health.fault(
                        Component::Store,
                        format!(
                            "cannot reach PostgreSQL: a write did not finish within {PROBE_LIMIT:?}"
                        ),
                    ),
                }
            }
        })
    }

    /// A small real write that changes nothing, to learn whether writes land.
    pub(crate) async fn probe_write(&self) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE schema_version SET version = version \
             WHERE version = (SELECT MAX(version) FROM schema_version)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Why a probe failed, in words an operator can act on. The pool reports a server that
    /// refuses connections only as a time-out; one direct connection attempt says why.
    async fn explain(&self, e: sqlx::Error) -> String {
        if !matches!(e, sqlx::Error::PoolTimedOut) {
            return e.to_string();
        }
        let attempt = sqlx::PgConnection::connect_with(&self.options);
        match tokio::time::timeout(DIAGNOSE_LIMIT, attempt).await {
            Ok(Err(cause)) => format!("{e} ({cause})"),
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                e.to_string()
            }
            Err(_) => format!("{e} (no answer within {DIAGNOSE_LIMIT:?})"),
        }
    }
}
