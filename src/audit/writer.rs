//! The bastion's audit writer: records are handed over without waiting for the disk, and a
//! dedicated thread appends whatever has queued up in one batch with one sync.
//!
//! Sessions never wait for the audit log, yet a line reaches the disk within one sync (a few
//! milliseconds) of being emitted, so a crash loses at most what was queued in that instant.
//!
//! # When the log cannot be written
//!
//! Nothing is dropped. A batch that fails (full disk, read-only or immutable file, the file
//! deleted or replaced) is kept and tried again, with backoff, until it lands; records emitted
//! meanwhile queue behind it, so the log keeps their order and its chain stays valid (a write
//! cut short is cut back before the retry, see [`AuditLog::append_batch`]). The queue is
//! bounded ([`QUEUE_LIMIT`]): past it, whoever emits waits for the disk rather than the
//! bastion holding unbounded memory. Each failure is logged; with a [`Health`] attached the
//! fault is reported there (new sessions are refused) and cleared by the first batch that
//! lands. Before each batch, and once a second while idle, the thread also checks that the
//! file is still the one at the log's path, that it could be opened for writing (not made
//! immutable, not on a read-only mount) and that its file system has room, so a fault is
//! noticed before a line is lost to it, and an idle bastion notices it before the next
//! session rather than after it. Records handed to [`AuditWriter::record_durable`] are the
//! exception to retrying: they are tried once, after the records queued before them, and
//! their waiter undoes the change they describe if that fails or takes too long.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Map, Value};

use super::{AuditError, AuditLog};
use crate::fscheck;
use crate::health::{Component, Health};

/// Most records written in one batch.
const BATCH: usize = 512;

/// Records that may wait for the disk before [`AuditWriter::record`] blocks its caller.
pub const QUEUE_LIMIT: usize = 16_384;

/// How often an idle writer checks that the log is still writable.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// First wait before a failed batch is tried again; doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);

/// Longest wait between two tries of a failed batch.
const RETRY_MAX: Duration = Duration::from_secs(1);

/// What the writer thread is asked to do.
enum Job {
    Record(String, Map<String, Value>),
    /// Answer once everything queued before this is on disk.
    Flush(mpsc::Sender<()>),
    /// Write these records now, synced, and answer with the outcome (see
    /// [`AuditWriter::record_durable`]).
    Durable(Durable),
}

/// Records whose writer waits for them, and may give up waiting.
struct Durable {
    records: Vec<(String, Map<String, Value>)>,
    /// [`OPEN`] until the thread claims it for writing ([`CLAIMED`]) or the waiter gives up
    /// ([`ABANDONED`]); whoever moves it first decides whether the records are written.
    claim: Arc<AtomicU8>,
    done: tokio::sync::oneshot::Sender<Result<(), super::AuditError>>,
}

const OPEN: u8 = 0;
const CLAIMED: u8 = 1;
const ABANDONED: u8 = 2;

/// Why records handed to [`AuditWriter::record_durable`] are not in the audit log.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// The log refused or failed the write.
    #[error(transparent)]
    Write(#[from] super::AuditError),
    /// The writer did not get to the records in time (it is stuck on earlier ones); they will
    /// never be written.
    #[error("the audit log did not take the record within {0:?}")]
    TimedOut(Duration),
    /// The queue is full: the log has not been writable for a while. The records are not
    /// queued.
    #[error("the audit queue is full ({QUEUE_LIMIT} records wait for the log)")]
    QueueFull,
    /// The writer had begun writing the records but did not finish within the time given. The
    /// caller must treat them as not written; they may still reach the log later.
    #[error("the audit log did not finish writing the record within {0:?}")]
    Unfinished(Duration),
    /// The writer thread is gone.
    #[error("the audit writer has stopped")]
    Stopped,
}

/// A handle for queueing records; cheap to clone.
#[derive(Clone)]
pub struct AuditWriter {
    tx: mpsc::SyncSender<Job>,
}

/// Owns the writer thread; dropping it (after every [`AuditWriter`]) drains the queue.
pub struct AuditThread {
    handle: Option<JoinHandle<()>>,
}

impl AuditWriter {
    /// Starts the writer thread for `log`; faults are only logged.
    pub fn start(log: AuditLog) -> (AuditWriter, AuditThread) {
        Self::start_with(log, None)
    }

    /// Starts the writer thread for `log`, reporting faults to `health` when given (the
    /// server does this when `[audit] on_failure = "deny"`).
    pub fn start_with(log: AuditLog, health: Option<Health>) -> (AuditWriter, AuditThread) {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE_LIMIT);
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                Thread {
                    log,
                    health,
                    idle_fault: None,
                }
                .run(rx)
            })
            .expect("spawn the audit writer thread");
        (
            AuditWriter { tx },
            AuditThread {
                handle: Some(handle),
            },
        )
    }

    /// Queues a record. Returns at once unless [`QUEUE_LIMIT`] records are already waiting
    /// for a log that cannot be written; then it waits until there is room.
    pub fn record(&self, event: &str, fields: Map<String, Value>) {
        let job = match self.tx.try_send(Job::Record(event.to_owned(), fields)) {
            Ok(()) => return,
            Err(TrySendError::Full(job)) => {
                tracing::error!(
                    event,
                    limit = QUEUE_LIMIT,
                    "the audit queue is full: waiting for the audit log to be writable"
                );
                job
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!(
                    event,
                    "the audit writer has stopped; this record is not in the audit log"
                );
                return;
            }
        };
        if self.tx.send(job).is_err() {
            tracing::error!(
                event,
                "the audit writer has stopped; this record is not in the audit log"
            );
        }
    }
}

impl AuditWriter {
    /// Waits (at most `limit`) until everything queued before this call is on disk; used at
    /// shutdown.
    pub fn flush(&self, limit: Duration) -> bool {
        let (done, wait) = mpsc::channel();
        self.tx.send(Job::Flush(done)).is_ok() && wait.recv_timeout(limit).is_ok()
    }
}

impl AuditWriter {
    /// Writes `records` and waits until they are synced to disk, at most `limit`. On `Ok` they
    /// are durable; on `Err` the caller must undo the change they describe. `Err` means they are
    /// not in the log, except [`DurableError::Unfinished`]: the writer was already writing them
    /// when the time ran out, and they may land later, recording a change that did not happen
    /// (never the reverse: a change without its line). Records queued before this call are
    /// written first.
    pub async fn record_durable(
        &self,
        records: Vec<(String, Map<String, Value>)>,
        limit: Duration,
    ) -> Result<(), DurableError> {
        let claim = Arc::new(AtomicU8::new(OPEN));
        let (done, mut answer) = tokio::sync::oneshot::channel();
        let job = Job::Durable(Durable {
            records,
            claim: claim.clone(),
            done,
        });
        // Never wait for room in a full queue: the log has not been writable for a while,
        // and the caller is better told at once.
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(DurableError::QueueFull),
            Err(TrySendError::Disconnected(_)) => return Err(DurableError::Stopped),
        }
        match tokio::time::timeout(limit, &mut answer).await {
            Ok(Ok(outcome)) => Ok(outcome?),
            Ok(Err(_)) => Err(DurableError::Stopped),
            Err(_) => {
                if claim
                    .compare_exchange(OPEN, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Err(DurableError::TimedOut(limit));
                }
                // The thread is writing them right now, stuck on a slow or frozen disk. Waiting
                // for it would hold the caller's transaction (and the store's only writer) for
                // as long as the disk stays stuck, so the caller gets its refusal now; the line
                // may still land later, describing a change that did not happen.
                Err(DurableError::Unfinished(limit))
            }
        }
    }
}

impl AuditThread {
    /// Waits until everything queued so far has been written (all writers must be dropped).
    pub fn finish(mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// The writer thread's state.
struct Thread {
    log: AuditLog,
    health: Option<Health>,
    /// What the last idle check found wrong, so it is logged once, not every second.
    idle_fault: Option<String>,
}

impl Thread {
    fn run(mut self, rx: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut waiting = Vec::new();
        let mut durable = Vec::new();
        loop {
            let first = match rx.recv_timeout(IDLE_CHECK) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    self.idle_check();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Record(event, fields) => batch.push((event, fields)),
                    Job::Flush(done) => waiting.push(done),
                    Job::Durable(job) => durable.push(job),
                }
                if batch.len() < BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.write(&batch);
            }
            batch.clear();
            for job in durable.drain(..) {
                self.write_durable(job);
            }
            for done in waiting.drain(..) {
                let _ = done.send(());
            }
        }
    }

    /// Writes `batch`, trying again until it lands.
    fn write(&mut self, batch: &[(String, Map<String, Value>)]) {
        let mut wait = RETRY_FIRST;
        loop {
            let result = writable(&self.log).and_then(|()| self.log.append_batch(batch));
            match result {
                Ok(_) => {
                    self.healthy();
                    return;
                }
                Err(e) => {
                    self.failed(&e, batch.len());
                    if let AuditError::Moved { .. } = e {
                        self.reopen();
                    }
                }
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(RETRY_MAX);
        }
    }

    /// After the log was deleted or replaced: continues in the log now at its path, if there
    /// is one that opens (an operator's `gatehouse audit reanchor` makes one that records the
    /// gap). A missing log is not created here, so a deletion is never papered over.
    fn reopen(&mut self) {
        let path = self.log.path().to_owned();
        if !path.exists() {
            return;
        }
        match AuditLog::open(&path) {
            Ok(log) => {
                tracing::warn!(path = %path.display(), "continuing in the audit log now at the path");
                self.log = log;
            }
            Err(e) => tracing::error!(error = %e, "the audit log at the path cannot be continued"),
        }
    }

    /// Writes one waiter's records unless it gave up, and tells it how that went; never
    /// retries, because the waiter undoes its change on failure.
    fn write_durable(&mut self, job: Durable) {
        if job
            .claim
            .compare_exchange(OPEN, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let outcome = writable(&self.log)
            .and_then(|()| self.log.append_batch(&job.records))
            .map(|_| ());
        match &outcome {
            Ok(()) => self.healthy(),
            Err(e) => {
                crate::metrics::audit_write_failed();
                tracing::error!(error = %e, "AUDIT LOG WRITE FAILED; the change it records is refused");
                if let Some(health) = &self.health {
                    health.fault(Component::AuditLog, e.to_string());
                }
            }
        }
        let _ = job.done.send(outcome);
    }

    /// Between batches: whether the next one could land (see [`writable`]).
    fn idle_check(&mut self) {
        match writable(&self.log) {
            Ok(()) => {
                if self.idle_fault.take().is_some() {
                    tracing::info!("the audit log can be written again");
                }
                self.healthy();
            }
            Err(e) => {
                let text = e.to_string();
                if self.idle_fault.as_ref() != Some(&text) {
                    tracing::error!(error = %text, "the audit log cannot be written");
                    self.idle_fault = Some(text.clone());
                }
                if let Some(health) = &self.health {
                    health.fault(Component::AuditLog, text);
                }
            }
        }
    }

    fn failed(&self, e: &AuditError, queued: usize) {
        crate::metrics::audit_write_failed();
        tracing::error!(error = %e, queued, "AUDIT LOG WRITE FAILED; retrying");
        if let Some(health) = &self.health {
            health.fault(Component::AuditLog, e.to_string());
        }
    }

    fn healthy(&self) {
        if let Some(health) = &self.health {
            health.clear(Component::AuditLog);
        }
    }
}

/// Checks, without writing a line, that the next append can land: the path still names the
/// file, a fresh open for writing would be allowed (not immutable, not a read-only mount), and
/// its file system has room.
fn writable(log: &AuditLog) -> Result<(), AuditError> {
    log.still_at_path()?;
    let path = log.path();
    fscheck::may_write(path).map_err(AuditError::io("write to", path))?;
    fscheck::has_room(path).map_err(AuditError::io("append to", path))?;
    Ok(())
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
