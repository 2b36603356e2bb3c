//! The bastion's audit writer: records are handed over without waiting for the disk, and a
//! dedicated thread appends whatever has queued up in one batch with one sync.
//!
//! Sessions never wait for the audit log, yet a line reaches the disk within one sync (a few
//! milliseconds) of being emitted, so a crash loses at most what was queued in that instant.
//! A log that cannot be written is reported loudly on every failure; records are kept queued
//! and retried rather than dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Map, Value};

use super::AuditLog;

/// Most records written in one batch.
const BATCH: usize = 512;

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
    /// The writer thread is gone.
    #[error("the audit writer has stopped")]
    Stopped,
}

/// A handle for queueing records; cheap to clone.
#[derive(Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<Job>,
}

/// Owns the writer thread; dropping it (after every [`AuditWriter`]) drains the queue.
pub struct AuditThread {
    handle: Option<JoinHandle<()>>,
}

impl AuditWriter {
    /// Starts the writer thread for `log`.
    pub fn start(log: AuditLog) -> (AuditWriter, AuditThread) {
        let (tx, rx) = mpsc::channel::<Job>();
        let handle = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || run(log, rx))
            .expect("spawn the audit writer thread");
        (
            AuditWriter { tx },
            AuditThread {
                handle: Some(handle),
            },
        )
    }

    /// Queues a record; never blocks.
    pub fn record(&self, event: &str, fields: Map<String, Value>) {
        if self.tx.send(Job::Record(event.to_owned(), fields)).is_err() {
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
    /// are durable; on `Err` they are not in the log and never will be, so the caller can undo
    /// the change they describe. Records queued before this call are written first.
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
        if self.tx.send(job).is_err() {
            return Err(DurableError::Stopped);
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
                // The thread is writing them right now: its answer is the truth.
                match answer.await {
                    Ok(outcome) => Ok(outcome?),
                    Err(_) => Err(DurableError::Stopped),
                }
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

fn run(log: AuditLog, rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut waiting = Vec::new();
    let mut durable = Vec::new();
    while let Ok(first) = rx.recv() {
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
        while let Err(e) = log.append_batch(&batch) {
            tracing::error!(error = %e, queued = batch.len(), "AUDIT LOG WRITE FAILED; retrying");
            std::thread::sleep(Duration::from_millis(500));
        }
        batch.clear();
        for job in durable.drain(..) {
            write_durable(&log, job);
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Writes one waiter's records unless it gave up, and tells it how that went; never retries,
/// because the waiter undoes its change on failure.
fn write_durable(log: &AuditLog, job: Durable) {
    if job
        .claim
        .compare_exchange(OPEN, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    let outcome = log.append_batch(&job.records).map(|_| ());
    if let Err(e) = &outcome {
        tracing::error!(error = %e, "AUDIT LOG WRITE FAILED; the change it records is refused");
    }
    let _ = job.done.send(outcome);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_records_are_all_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (writer, thread) = AuditWriter::start(AuditLog::open(&path).unwrap());
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let mut fields = Map::new();
                        fields.insert("n".into(), Value::from(i));
                        writer.record(&format!("test.{t}"), fields);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        drop(writer);
        thread.finish();
        let report = crate::audit::verify(&path).unwrap();
        assert_eq!(report.lines, 200);
    }

    fn one(event: &str) -> Vec<(String, Map<String, Value>)> {
        vec![(event.to_owned(), Map::new())]
    }

    #[tokio::test]
    async fn a_durable_record_is_on_disk_when_it_returns_and_absent_when_it_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (writer, thread) = AuditWriter::start(AuditLog::open(&path).unwrap());
        writer.record("test.queued", Map::new());
        writer
            .record_durable(one("test.durable"), Duration::from_secs(5))
            .await
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let queued = text.find("test.queued").unwrap();
        assert!(queued < text.find("test.durable").unwrap(), "in order");
        // A line appended behind the log's back: the log refuses to write after it, and the
        // durable record says so instead of being retried later.
        std::fs::write(&path, format!("{text}{{\"forged\":1}}\n")).unwrap();
        let refused = writer
            .record_durable(one("test.refused"), Duration::from_secs(5))
            .await;
        assert!(
            matches!(refused, Err(DurableError::Write(_))),
            "{refused:?}"
        );
        drop(writer);
        thread.finish();
        assert!(
            !std::fs::read_to_string(&path)
                .unwrap()
                .contains("test.refused")
        );
    }
}
