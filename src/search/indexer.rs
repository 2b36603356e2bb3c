//! The background indexer: follows the recordings being written, catches up on those whose
//! index is behind their file, and commits rows and progress at least once a second.
//!
//! It runs on a thread of its own, never on the async runtime's. The recorder's only part is
//! to keep an atomic at the length of what it has written ([`Indexer::watch`]); the indexer
//! reads the new lines from the file (still in the page cache) when it next looks, so the
//! session's path pays nothing for indexing, a slow index never holds a session back, and
//! nothing is lost when the indexer falls behind: the file is the source and the index says how
//! far it has got. The same reading serves the catch-up at start-up, after a crash, and
//! `gatehouse sessions reindex`.
//!
//! Rows that are final go on to a [`SegmentBuilder`] once committed, which the indexer seals
//! into a segment when it is big or old enough, and at shutdown ([`super::segment`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use super::feed::SessionFeed;
use super::segment::{self, SegmentBuilder};
use super::tail::Tail;
use crate::store::Store;
use crate::store::search::{IndexBatch, IndexProgress};

/// Longest time new text waits before it is committed.
pub const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// How often the indexer looks at the recordings it follows.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// Bytes of one recording read per look, so one busy session does not starve the others.
const READ_BUDGET: usize = 8 << 20;

/// Rows held before a commit comes early.
const BATCH_BYTES: usize = 16 << 20;

/// Wait before sealing again after sealing failed.
const SEAL_RETRY: Duration = Duration::from_secs(30);

/// One recording the indexer reads.
struct Job {
    tail: Tail,
    feed: Option<SessionFeed>,
    /// The writer's length of the file, while the recording is being written.
    tap: Option<Arc<AtomicU64>>,
    /// Read since the last commit.
    dirty: bool,
    /// Wholly read and not written any more.
    complete: bool,
}

struct Shared {
    store: Store,
    runtime: Handle,
    new_jobs: Mutex<Vec<(String, Job)>>,
    stop: AtomicBool,
    wake: (Mutex<bool>, std::sync::Condvar),
    /// Sessions waiting for catch-up, oldest first, and how many there were.
    backlog: Mutex<(Vec<Behind>, usize)>,
    /// Final rows left unsealed by the last run, to seal.
    adopted: Mutex<Vec<(i64, String)>>,
}

/// A recording to catch up on: its session, file and the offset indexed so far.
type Behind = (String, PathBuf, u64);

/// The process's indexer; see the module documentation.
#[derive(Clone)]
pub struct Indexer {
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

static RUNNING: OnceLock<Indexer> = OnceLock::new();

/// The indexer of this process, once `serve` has started it.
pub fn running() -> Option<&'static Indexer> {
    RUNNING.get()
}

impl Indexer {
    /// Starts the indexer on its own thread, with `runtime` to reach the store. It becomes the
    /// process's ([`running`]) if none is yet.
    pub fn start(store: Store, runtime: Handle) -> Indexer {
        let shared = Arc::new(Shared {
            store,
            runtime,
            new_jobs: Mutex::default(),
            stop: AtomicBool::new(false),
            wake: (Mutex::new(false), std::sync::Condvar::new()),
            backlog: Mutex::default(),
            adopted: Mutex::default(),
        });
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("gatehouse-index".into())
            .spawn(move || run(&for_thread))
            .ok();
        if thread.is_none() {
            tracing::error!(
                "the text index thread could not start; search will miss new sessions until a restart"
            );
        }
        let indexer = Indexer {
            shared,
            thread: Arc::new(Mutex::new(thread)),
        };
        let _ = RUNNING.set(indexer.clone());
        indexer
    }

    /// Follows a recording being written: the writer keeps the returned atomic at the length of
    /// the file it has written, and drops it when the recording ends.
    pub fn watch(&self, session_id: &str, path: &Path) -> Arc<AtomicU64> {
        let tap = Arc::new(AtomicU64::new(0));
        let job = Job {
            tail: Tail::new(path, 0),
            feed: None,
            tap: Some(tap.clone()),
            dirty: false,
            complete: false,
        };
        lock(&self.shared.new_jobs).push((session_id.to_owned(), job));
        tap
    }

    /// Queues recordings to index from the given offsets (the catch-up at start-up).
    pub fn catch_up(&self, sessions: Vec<Behind>) {
        if sessions.is_empty() {
            return;
        }
        tracing::info!(
            sessions = sessions.len(),
            "recordings not wholly indexed (made before the index, or during a crash): indexing them in the background"
        );
        let mut backlog = lock(&self.shared.backlog);
        backlog.1 += sessions.len();
        backlog.0.extend(sessions.into_iter().rev());
        drop(backlog);
        self.wake();
    }

    /// Seals final rows a previous run left unsealed (read at start-up, see
    /// [`crate::store::search::SearchIndex::index_unsealed`]).
    pub fn adopt(&self, rows: Vec<(i64, String)>) {
        if rows.is_empty() {
            return;
        }
        lock(&self.shared.adopted).extend(rows);
        self.wake();
    }

    /// Commits what has been read, seals it, and stops the thread, waiting at most `limit`.
    pub fn stop(&self, limit: Duration) {
        self.shared.stop.store(true, Ordering::Release);
        self.wake();
        let Some(thread) = lock(&self.thread).take() else {
            return;
        };
        let deadline = Instant::now() + limit;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            tracing::warn!("the text index did not commit in time; the next start catches up");
        }
    }

    fn wake(&self) {
        let (flag, condvar) = &self.shared.wake;
        *lock(flag) = true;
        condvar.notify_one();
    }
}

fn run(shared: &Shared) {
    let mut jobs: HashMap<String, Job> = HashMap::new();
    let mut pending = IndexBatch::default();
    // Whether each pending row is final.
    let mut finals: Vec<bool> = Vec::new();
    let mut builder = SegmentBuilder::default();
    let mut seal_after = Instant::now();
    let mut last_commit = Instant::now();
    let mut catching_up: Option<String> = None;
    loop {
        let stopping = shared.stop.load(Ordering::Acquire);
        for (id, job) in lock(&shared.new_jobs).drain(..) {
            jobs.insert(id, job);
        }
        if catching_up.as_ref().is_none_or(|id| !jobs.contains_key(id)) {
            catching_up = next_backlog(shared, &mut jobs);
        }
        let mut batch_bytes: usize = pending.rows.iter().map(|r| r.text.len()).sum();
        let mut more = false;
        let mut unreadable = Vec::new();
        for (id, job) in &mut jobs {
            match step(shared, id, job) {
                Ok(behind) => more |= behind,
                Err(e) => {
                    tracing::warn!(session = %id, path = %job.tail.path().display(), error = %e,
                        "a recording could not be read for the index; the next start tries again");
                    unreadable.push(id.clone());
                }
            }
            if job.dirty {
                batch_bytes += job.feed.as_ref().map_or(0, SessionFeed::held_bytes);
            }
        }
        for id in unreadable {
            jobs.remove(&id);
        }
        let due = last_commit.elapsed() >= COMMIT_EVERY || batch_bytes >= BATCH_BYTES;
        if due || stopping {
            collect(&mut jobs, &mut pending, &mut finals);
            if !pending.rows.is_empty() || !pending.progress.is_empty() {
                match shared.runtime.block_on(shared.store.index_commit(&pending)) {
                    Ok(keys) => {
                        for ((row, key), &last) in pending.rows.iter().zip(keys).zip(&finals) {
                            if last {
                                builder.add(key, &row.text);
                            }
                        }
                        pending = IndexBatch::default();
                        finals.clear();
                        jobs.retain(|_, job| !job.complete);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the text index could not be written; trying again");
                    }
                }
            }
            last_commit = Instant::now();
        }
        for (key, text) in lock(&shared.adopted).drain(..) {
            builder.add(key, &text);
        }
        let sealing = builder.is_due() || (stopping && !builder.is_empty());
        if sealing
            && (stopping || Instant::now() >= seal_after)
            && let Err(e) = shared
                .runtime
                .block_on(segment::seal(&shared.store, &mut builder))
        {
            tracing::warn!(error = %e, "the text index could not seal a segment; its rows are searched by their text until it can");
            seal_after = Instant::now() + SEAL_RETRY;
        }
        if stopping {
            return;
        }
        // Straight on while a recording has more to read than one look takes.
        wait(shared, if more { Duration::ZERO } else { LOOK_EVERY });
    }
}

/// Reads what is new in one recording; whether it has more to read at once.
fn step(shared: &Shared, id: &str, job: &mut Job) -> std::io::Result<bool> {
    if job.complete {
        return Ok(false);
    }
    if job.feed.is_none() {
        job.feed = Some(resume(shared, id, &mut job.tail));
    }
    let feed = job.feed.as_mut().expect("just set");
    let (limit, writing) = match &job.tap {
        Some(tap) => {
            // Read the writer's count before whether it is gone: a writer that drops its tap
            // has stored its final length first.
            let gone = Arc::strong_count(tap) == 1;
            if gone {
                // Pairs with the release of the writer's drop of its handle.
                std::sync::atomic::fence(Ordering::Acquire);
            }
            (tap.load(Ordering::Acquire), !gone)
        }
        None => (job.tail.file_len()?, false),
    };
    if job.tail.offset() < limit {
        let read = job.tail.read(limit, READ_BUDGET, feed)?;
        job.dirty |= read > 0;
        if read > 0 && job.tail.offset() < limit {
            return Ok(true);
        }
    }
    if !writing {
        job.complete = true;
        job.dirty = true;
        if job.tail.bad_lines > 0 || feed.bad_events > 0 {
            tracing::warn!(session = %id, bad_lines = job.tail.bad_lines, bad_events = feed.bad_events,
                "some lines of a recording are not events; they are not searchable");
        }
    }
    Ok(false)
}

/// The feed of a session the index already has rows of: its last rows and offset.
fn resume(shared: &Shared, id: &str, tail: &mut Tail) -> SessionFeed {
    if tail.offset() == 0 {
        return SessionFeed::default();
    }
    match shared.runtime.block_on(shared.store.index_last_rows(id)) {
        Ok(rows) => SessionFeed::resume(&rows),
        Err(e) => {
            tracing::warn!(session = %id, error = %e, "the index's last rows could not be read; indexing goes on without overlap");
            SessionFeed::default()
        }
    }
}

/// Takes the rows and progress of every job read since the last commit, and whether each row is
/// final.
fn collect(jobs: &mut HashMap<String, Job>, batch: &mut IndexBatch, finals: &mut Vec<bool>) {
    for (id, job) in jobs.iter_mut().filter(|(_, job)| job.dirty) {
        if let Some(feed) = job.feed.as_mut() {
            if job.complete {
                feed.finish();
            }
            let from = batch.rows.len();
            feed.take_rows(id, &mut batch.rows);
            finals.extend(
                batch.rows[from..]
                    .iter()
                    .map(|row| job.complete || feed.is_final(row)),
            );
        }
        batch.progress.retain(|p| &p.session_id != id);
        batch.progress.push(IndexProgress {
            session_id: id.clone(),
            indexed_bytes: job.tail.offset(),
            complete: job.complete,
        });
        job.dirty = false;
    }
}

/// Starts the next catch-up job, logging progress.
fn next_backlog(shared: &Shared, jobs: &mut HashMap<String, Job>) -> Option<String> {
    let mut backlog = lock(&shared.backlog);
    loop {
        let (id, path, offset) = backlog.0.pop()?;
        if jobs.contains_key(&id) {
            continue;
        }
        let done = backlog.1 - backlog.0.len();
        if done.is_multiple_of(100) || backlog.0.is_empty() {
            tracing::info!(done, of = backlog.1, "catching up on the text index");
        }
        jobs.insert(
            id.clone(),
            Job {
                tail: Tail::new(&path, offset),
                feed: None,
                tap: None,
                dirty: offset == 0,
                complete: false,
            },
        );
        return Some(id);
    }
}

fn wait(shared: &Shared, timeout: Duration) {
    let (flag, condvar) = &shared.wake;
    let mut woken = lock(flag);
    if !*woken && !timeout.is_zero() {
        woken = condvar
            .wait_timeout(woken, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    *woken = false;
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
