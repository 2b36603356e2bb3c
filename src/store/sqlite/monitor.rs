//! Watches the database for faults and for their end, and reports both to the bastion's
//! health, so new sessions are refused while the store cannot account for them and allowed
//! again, without a restart, once it can.
//!
//! Once a second it checks that the file at the database's path is still the file it opened
//! (a deleted or replaced file would otherwise go unnoticed: the open connections keep
//! writing to the unlinked one), that the files could be opened for writing (not immutable,
//! not on a read-only mount) and that their file system has room. Every few seconds, and
//! every second while the store is faulty, it makes a small real write, which notices a full
//! disk, a read-only or immutable file and a lock held by another process, and sees them go
//! away.
//!
//! The probe write queues for the one writer connection like every other write. Under a burst
//! (a thousand logins on a starved machine) it may wait longer than [`PROBE_LIMIT`] behind
//! writes that do land; that is a busy store, not a broken one, and refusing sessions for it
//! would turn load into an outage. So a probe past its limit is a fault only if no other write
//! ended meanwhile; while the queue moves it waits on, at most [`PROBE_QUEUE_LIMIT`].

use std::time::Duration;

use tokio::task::JoinHandle;

use super::{FileId, SqliteStore};
use crate::fscheck;
use crate::health::{Component, Health};

/// How often the file's identity is checked.
const TICK: Duration = Duration::from_secs(1);

/// Ticks between probe writes while the store is healthy.
const PROBE_EVERY: u32 = 5;

/// Longest a probe write may take, with no other write ending meanwhile, before the store counts
/// as faulty (the busy timeout is 5 s).
const PROBE_LIMIT: Duration = Duration::from_secs(10);

/// Longest a probe write may wait behind writes that do end before the store counts as faulty.
const PROBE_QUEUE_LIMIT: Duration = Duration::from_secs(60);

impl SqliteStore {
    /// Starts reporting this store's faults to `health` and watching for new ones and for
    /// recovery. Runs until the runtime stops.
    pub(super) fn watch_health(&self, health: &Health) -> JoinHandle<()> {
        self.watch_with(health);
        let store = self.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n: u32 = 0;
            loop {
                tick.tick().await;
                n = n.wrapping_add(1);
                if let Err(reason) = store.same_file().and_then(|()| store.writable()) {
                    health.fault(Component::Store, reason);
                    continue;
                }
                if health.is_faulty(Component::Store) || n.is_multiple_of(PROBE_EVERY) {
                    match store.probe(PROBE_LIMIT, PROBE_QUEUE_LIMIT).await {
                        Ok(()) => health.clear(Component::Store),
                        Err(reason) => health.fault(Component::Store, reason),
                    }
                }
            }
        })
    }

    /// Makes the probe write; `Err` with the reason if it fails, or takes longer than `limit`
    /// with no other write ending meanwhile, or longer than `queue_limit` in all.
    pub(super) async fn probe(&self, limit: Duration, queue_limit: Duration) -> Result<(), String> {
        let started = tokio::time::Instant::now();
        let write = self.probe_write();
        tokio::pin!(write);
        let mut ended = self.writes_ended();
        loop {
            match tokio::time::timeout(limit, &mut write).await {
                Ok(result) => return result.map_err(|e| format!("a write failed: {e}")),
                Err(_) if self.writes_ended() == ended => {
                    return Err(format!(
                        "a write did not finish within {limit:?}, and no other write ended \
                         meanwhile"
                    ));
                }
                Err(_) if started.elapsed() >= queue_limit => {
                    return Err(format!(
                        "a write waited more than {queue_limit:?} behind other writes"
                    ));
                }
                // Writes ahead of it are landing: the store is busy, not broken.
                Err(_) => ended = self.writes_ended(),
            }
        }
    }

    /// `Ok` when the database, its write-ahead log and shared-memory file and their directory
    /// could be opened for writing now and their file system has room. A connection keeps
    /// writing through its open file after the file was made immutable; the next connection
    /// to open it would fail.
    pub(super) fn writable(&self) -> Result<(), String> {
        let path = self.path();
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let beside = |suffix: &str| {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            std::path::PathBuf::from(name)
        };
        let (wal, shm) = (beside("-wal"), beside("-shm"));
        for file in [path, wal.as_path(), shm.as_path(), dir] {
            if file.exists()
                && let Err(e) = fscheck::may_write(file)
            {
                return Err(format!("{} cannot be written: {e}", file.display()));
            }
        }
        fscheck::has_room(dir)
            .map_err(|e| format!("the file system holding {}: {e}", path.display()))
    }

    /// `Ok` when the database's path still names the file that was opened.
    pub(super) fn same_file(&self) -> Result<(), String> {
        let path = self.path().display();
        match (FileId::of(self.path()), self.identity()) {
            (Ok(now), Some(opened)) if now == opened => Ok(()),
            (Ok(_), Some(_)) => Err(format!(
                "the database file {path} was replaced while in use (writes would not reach \
                 it); restart the bastion once the right file is in place"
            )),
            (Ok(_), None) => Ok(()),
            (Err(e), _) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "the database file {path} was deleted while in use (writes would be lost); \
                 restore it from a backup and restart the bastion"
            )),
            (Err(e), _) => Err(format!("the database file {path}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_deleted_database_is_a_fault() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::open(&path).await.unwrap();
        assert!(store.same_file().is_ok());
        store.probe_write().await.unwrap();
        std::fs::remove_file(&path).unwrap();
        let why = store.same_file().unwrap_err();
        assert!(why.contains("was deleted"), "{why}");
    }

    /// Writes queued ahead of the probe (the pool hands its connection out in turn), each
    /// holding the writer for `hold`.
    async fn queue_writes(
        store: &SqliteStore,
        count: usize,
        hold: Duration,
    ) -> Vec<JoinHandle<()>> {
        let writes = (0..count)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let tx = store.begin_write().await.unwrap();
                    tokio::time::sleep(hold).await;
                    tx.commit().await.unwrap();
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        writes
    }

    #[tokio::test]
    async fn a_probe_behind_writes_that_land_is_busy_not_faulty() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
        let limit = Duration::from_millis(200);
        // Ten writes of 100 ms ahead: the probe waits about a second, five times its limit.
        let writes = queue_writes(&store, 10, Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        store.probe(limit, Duration::from_secs(30)).await.unwrap();
        assert!(started.elapsed() > limit * 3, "{:?}", started.elapsed());
        for w in writes {
            w.await.unwrap();
        }
        // Writes that land but keep the probe waiting past the whole limit are a fault.
        let writes = queue_writes(&store, 10, Duration::from_millis(100)).await;
        let why = store.probe(limit, limit * 2).await.unwrap_err();
        assert!(why.contains("behind other writes"), "{why}");
        for w in writes {
            w.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_probe_behind_a_write_that_never_ends_is_a_fault() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
        let _held = store.begin_write().await.unwrap();
        let why = store
            .probe(Duration::from_millis(200), Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(why.contains("no other write ended"), "{why}");
    }

    #[tokio::test]
    async fn a_deleted_database_is_never_recreated_by_a_new_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let _held = store.pool().acquire().await.unwrap();
        std::fs::remove_file(&path).unwrap();
        // The pool's idle connection is held, so this one must open the path anew.
        assert!(store.pool().acquire().await.is_err());
        assert!(!path.exists(), "a new connection created an empty database");
        use crate::store::Backend;
        let why = store.diagnose().expect("the deletion is diagnosed");
        assert!(why.contains("was deleted"), "{why}");
    }
}
