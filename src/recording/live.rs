//! A recording fed from async code and written on the I/O pool.
//!
//! The session's task never touches the file. Each event goes into a small bounded queue and a
//! pool thread encodes it, appends it to the file with `write(2)`, and reports how far the file
//! has got. A caller that awaits [`LiveRecording::output`] therefore knows, when it returns
//! `Ok`, that those bytes are in the recording file (in the page cache, synced at the end), and
//! may show them to the user; a write that fails or does not complete within the stall timeout
//! returns an error instead, before the bytes go anywhere.
//!
//! While one recording's write is stuck in the kernel (a frozen disk), its pool thread is stuck
//! with it; every other recording, and every task of the async runtime, goes on.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{oneshot, watch};

use super::cast::CastHeader;
use super::pool::IoPool;
use super::writer::{Recorder, RecorderConfig, RecordingError, RecordingSummary};

/// Most bytes of events waiting for the writer. Callers wait for each event before sending the
/// next, so the queue holds a chunk or two; the bound only stops a caller that does not wait.
pub const MAX_QUEUED_BYTES: usize = 1 << 20;

/// Most events waiting for the writer, for the same reason.
pub const MAX_QUEUED_EVENTS: usize = 1024;

/// Why an event was not recorded. Every variant means that the bytes concerned are not known to
/// be in the recording, so they must not be shown.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The recording reached its configured maximum size.
    #[error("the recording reached its size limit ({limit} bytes)")]
    LimitReached {
        /// The configured maximum.
        limit: u64,
    },
    /// Writing the file failed (full disk, I/O error); nothing more can be appended.
    #[error("the recording failed ({0})")]
    Failed(Arc<RecordingError>),
    /// The writer did not get the event into the file within the stall timeout.
    #[error(
        "the recording stalled: nothing was written to it for {}",
        humantime::format_duration(*.0)
    )]
    Stalled(Duration),
    /// More events are waiting than the queue holds.
    #[error("the recording fell behind (its queue is full)")]
    QueueFull,
    /// The writer went away (it panicked); nothing more will be written.
    #[error("the recording writer stopped")]
    WriterGone,
}

/// Why a recording could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The recordings directory could not be created.
    #[error("{}: {source}", dir.display())]
    Dir {
        /// The recordings directory.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be created or its header written.
    #[error(transparent)]
    Recorder(#[from] RecordingError),
    /// An earlier recording write has been stuck longer than the stall timeout, so this one
    /// would be too: refused at once rather than after another wait.
    #[error(
        "the recordings disk is not responding: a write has been waiting for {}",
        humantime::format_duration(round_to_ms(*.0))
    )]
    NotResponding(Duration),
    /// Creating the file did not complete within the stall timeout.
    #[error(
        "the recordings disk is not responding: creating the recording took longer than {}",
        humantime::format_duration(*.0)
    )]
    Stalled(Duration),
    /// The creating thread went away.
    #[error("the recording writer stopped")]
    WriterGone,
}

/// How a finish ended: in time, or still under way after the stall timeout.
pub enum Finishing {
    /// The recording is synced and hashed (or finishing it failed).
    Done(Result<RecordingSummary, WriteError>),
    /// Finishing takes longer than the stall timeout; the result comes when it is done.
    Late(LateFinish),
}

/// A finish still under way (its disk stalls); the session may end without waiting for it.
pub struct LateFinish(oneshot::Receiver<Result<RecordingSummary, WriteError>>);

impl LateFinish {
    /// Waits, without a bound, for the finish to complete.
    pub async fn wait(self) -> Result<RecordingSummary, WriteError> {
        self.0.await.unwrap_or(Err(WriteError::WriterGone))
    }
}

/// Output queued with [`LiveRecording::queue_output`], not yet known to be in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    seq: u64,
    deadline: tokio::time::Instant,
}

/// An asciicast recording written on the I/O pool; see the module documentation.
pub struct LiveRecording {
    shared: Arc<Shared>,
    path: PathBuf,
    record_input: bool,
    stall_timeout: Duration,
    finished: bool,
}

struct Shared {
    pool: IoPool,
    inbox: Mutex<Inbox>,
    progress: watch::Sender<Progress>,
    /// Only the pool job that drains the inbox takes this, one at a time.
    recorder: Mutex<Option<Recorder>>,
}

#[derive(Default)]
struct Inbox {
    events: VecDeque<(u64, Op)>,
    last_seq: u64,
    queued_bytes: usize,
    /// A drain job is queued or running; it takes whatever arrives meanwhile.
    scheduled: bool,
}

/// How far the file has got: every event up to `written` is in it.
#[derive(Clone, Default)]
struct Progress {
    written: u64,
    error: Option<WriteError>,
}

enum Op {
    Output(Bytes),
    Input(Bytes),
    Resize(u32, u32),
    Marker(String),
    Finish(oneshot::Sender<Result<RecordingSummary, WriteError>>),
    Close,
}

impl LiveRecording {
    /// Creates `dir/YYYY/MM/DD/<session_id>.cast` on a pool thread (see [`Recorder::create`]),
    /// waiting at most `stall_timeout`; refuses at once while another recording write has been
    /// stuck for longer than that.
    pub async fn create(
        pool: &IoPool,
        dir: &Path,
        session_id: &str,
        started: DateTime<Utc>,
        header: CastHeader,
        cfg: RecorderConfig,
        stall_timeout: Duration,
    ) -> Result<LiveRecording, CreateError> {
        if let Some(waiting) = pool.stalled_for().filter(|w| *w >= stall_timeout) {
            return Err(CreateError::NotResponding(waiting));
        }
        let record_input = cfg.record_input;
        let (reply, created) = oneshot::channel();
        let job_pool = pool.clone();
        let dir = dir.to_owned();
        let session_id = session_id.to_owned();
        pool.spawn(move || {
            let busy = job_pool.busy();
            let result = std::fs::create_dir_all(&dir)
                .map_err(|source| CreateError::Dir {
                    dir: dir.clone(),
                    source,
                })
                .and_then(|()| Ok(Recorder::create(&dir, &session_id, started, header, cfg)?));
            drop(busy);
            if let Err(Ok(late)) = reply.send(result) {
                // Nobody waits any more (the session was refused as stalled): leave no
                // recording without a session behind.
                let path = late.path().to_owned();
                drop(late);
                let _ = std::fs::remove_file(path);
            }
        });
        let recorder = match tokio::time::timeout(stall_timeout, created).await {
            Err(_) => return Err(CreateError::Stalled(stall_timeout)),
            Ok(Err(_)) => return Err(CreateError::WriterGone),
            Ok(Ok(result)) => result?,
        };
        let path = recorder.path().to_owned();
        Ok(LiveRecording {
            shared: Arc::new(Shared {
                pool: pool.clone(),
                inbox: Mutex::new(Inbox::default()),
                progress: watch::Sender::new(Progress::default()),
                recorder: Mutex::new(Some(recorder)),
            }),
            path,
            record_input,
            stall_timeout,
            finished: false,
        })
    }

    /// Where the recording is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps `tap` at the length written to the file (see [`Recorder::report_length_to`]).
    pub fn report_length_to(&self, tap: std::sync::Arc<std::sync::atomic::AtomicU64>) {
        if let Some(recorder) = lock(&self.shared.recorder).as_mut() {
            recorder.report_length_to(tap);
        }
    }

    /// Records output; returns once it is in the file.
    pub async fn output(&self, data: Bytes) -> Result<(), WriteError> {
        let len = data.len();
        let seq = self.submit(Op::Output(data), len)?;
        self.written(seq).await
    }

    /// Queues output without waiting, for a caller that keeps reading while earlier chunks are
    /// written: show the bytes only once [`LiveRecording::wait_queued`] says they are in the
    /// file.
    pub fn queue_output(&self, data: Bytes) -> Result<Queued, WriteError> {
        let len = data.len();
        let seq = self.submit(Op::Output(data), len)?;
        Ok(Queued {
            seq,
            deadline: tokio::time::Instant::now() + self.stall_timeout,
        })
    }

    /// Whether queued output is in the file already (without waiting).
    pub fn is_written(&self, queued: &Queued) -> bool {
        self.shared.progress.borrow().written >= queued.seq
    }

    /// Waits until queued output is in the file, it failed, or the stall timeout (counted from
    /// when it was queued) passed.
    pub async fn wait_queued(&self, queued: &Queued) -> Result<(), WriteError> {
        self.written_by(queued.seq, queued.deadline).await
    }

    /// Records input (returns at once when input is not recorded).
    pub async fn input(&self, data: Bytes) -> Result<(), WriteError> {
        if !self.record_input {
            return Ok(());
        }
        let len = data.len();
        let seq = self.submit(Op::Input(data), len)?;
        self.written(seq).await
    }

    /// Records a terminal resize.
    pub async fn resize(&self, cols: u32, rows: u32) -> Result<(), WriteError> {
        let seq = self.submit(Op::Resize(cols, rows), 16)?;
        self.written(seq).await
    }

    /// Records a marker.
    pub async fn marker(&self, label: &str) -> Result<(), WriteError> {
        let seq = self.submit(Op::Marker(label.to_owned()), label.len())?;
        self.written(seq).await
    }

    /// Queues output without waiting for it: for the bastion's own last words to a session
    /// whose recording may be the reason it closes.
    pub fn note(&self, data: Bytes) {
        let len = data.len();
        let _ = self.submit(Op::Output(data), len);
    }

    /// Writes the rest, syncs and hashes the file on the pool, waiting at most the stall
    /// timeout for it.
    pub async fn finish(mut self) -> Finishing {
        self.finished = true;
        let (reply, mut done) = oneshot::channel();
        self.submit_always(Op::Finish(reply));
        match tokio::time::timeout(self.stall_timeout, &mut done).await {
            Ok(result) => Finishing::Done(result.unwrap_or(Err(WriteError::WriterGone))),
            Err(_) => Finishing::Late(LateFinish(done)),
        }
    }

    /// Queues an event within the queue's bounds; fails at once if the recording already failed.
    fn submit(&self, op: Op, bytes: usize) -> Result<u64, WriteError> {
        if let Some(error) = self.shared.progress.borrow().error.clone() {
            return Err(error);
        }
        let mut inbox = lock(&self.shared.inbox);
        if inbox.events.len() >= MAX_QUEUED_EVENTS
            || inbox.queued_bytes.saturating_add(bytes) > MAX_QUEUED_BYTES
        {
            return Err(WriteError::QueueFull);
        }
        inbox.queued_bytes += bytes;
        Ok(self.push(inbox, op))
    }

    /// Queues the end of the recording, whatever the bounds.
    fn submit_always(&self, op: Op) {
        let inbox = lock(&self.shared.inbox);
        self.push(inbox, op);
    }

    fn push(&self, mut inbox: MutexGuard<'_, Inbox>, op: Op) -> u64 {
        inbox.last_seq += 1;
        let seq = inbox.last_seq;
        inbox.events.push_back((seq, op));
        if !inbox.scheduled {
            inbox.scheduled = true;
            drop(inbox);
            let shared = Arc::clone(&self.shared);
            self.shared.pool.spawn(move || drain(&shared));
        }
        seq
    }

    /// Waits until event `seq` is in the file, it failed, or the stall timeout passed.
    async fn written(&self, seq: u64) -> Result<(), WriteError> {
        self.written_by(seq, tokio::time::Instant::now() + self.stall_timeout)
            .await
    }

    /// Waits until event `seq` is in the file, it failed, or `deadline` passed.
    async fn written_by(&self, seq: u64, deadline: tokio::time::Instant) -> Result<(), WriteError> {
        let mut progress = self.shared.progress.subscribe();
        let waited = tokio::time::timeout_at(
            deadline,
            progress.wait_for(|p| p.written >= seq || p.error.is_some()),
        )
        .await;
        match waited {
            Err(_) => Err(WriteError::Stalled(self.stall_timeout)),
            Ok(Err(_)) => Err(WriteError::WriterGone),
            Ok(Ok(p)) if p.written >= seq => Ok(()),
            Ok(Ok(p)) => Err(p.error.clone().unwrap_or(WriteError::WriterGone)),
        }
    }
}

impl Drop for LiveRecording {
    /// A recording dropped without [`LiveRecording::finish`] (its session task ended early)
    /// is closed on the pool, never here: closing flushes, and a flush may block.
    fn drop(&mut self) {
        if !self.finished {
            self.submit_always(Op::Close);
        }
    }
}

/// The pool job of one recording: applies queued events in order and writes them out, until
/// the queue is empty.
fn drain(shared: &Shared) {
    loop {
        let batch = {
            let mut inbox = lock(&shared.inbox);
            if inbox.events.is_empty() {
                inbox.scheduled = false;
                return;
            }
            inbox.queued_bytes = 0;
            std::mem::take(&mut inbox.events)
        };
        let mut recorder = lock(&shared.recorder);
        let mut batch_state = BatchState::default();
        let mut busy = Some(shared.pool.busy());
        for (seq, op) in batch {
            match op {
                Op::Finish(reply) => {
                    batch_state.write_out(recorder.as_mut());
                    publish(shared, &mut batch_state);
                    // Syncing a large file may take a while; that is not a stall.
                    busy = None;
                    let result = match recorder.take() {
                        Some(done) => done.finish().map_err(|e| WriteError::Failed(Arc::new(e))),
                        None => Err(WriteError::WriterGone),
                    };
                    let _ = reply.send(result);
                }
                Op::Close => {
                    batch_state.write_out(recorder.as_mut());
                    drop(recorder.take());
                }
                event => {
                    if busy.is_none() {
                        busy = Some(shared.pool.busy());
                    }
                    batch_state.apply(recorder.as_mut(), seq, event);
                }
            }
        }
        batch_state.write_out(recorder.as_mut());
        drop(busy);
        drop(recorder);
        publish(shared, &mut batch_state);
    }
}

/// What one batch got to: events applied (encoded, perhaps partly written) and written.
#[derive(Default)]
struct BatchState {
    applied: Option<u64>,
    written: Option<u64>,
    error: Option<WriteError>,
}

impl BatchState {
    fn apply(&mut self, recorder: Option<&mut Recorder>, seq: u64, op: Op) {
        if self.error.is_some() {
            return;
        }
        let Some(recorder) = recorder else {
            self.error = Some(WriteError::WriterGone);
            return;
        };
        let result = match &op {
            Op::Output(data) => recorder.output(data),
            Op::Input(data) => recorder.input(data),
            Op::Resize(cols, rows) => recorder.resize(*cols, *rows),
            Op::Marker(label) => recorder.marker(label),
            Op::Finish(_) | Op::Close => Ok(()),
        };
        match result {
            Ok(()) => self.applied = Some(seq),
            Err(RecordingError::LimitReached { limit }) => {
                // Everything before this event was written along with the limit marker.
                if self.applied.is_some() {
                    self.written = self.applied.take();
                }
                self.error = Some(WriteError::LimitReached { limit });
            }
            Err(e) => self.error = Some(WriteError::Failed(Arc::new(e))),
        }
    }

    /// Writes what was applied; only then does it count as written.
    fn write_out(&mut self, recorder: Option<&mut Recorder>) {
        if self.error.is_some() || self.applied.is_none() {
            return;
        }
        let Some(recorder) = recorder else {
            self.error = Some(WriteError::WriterGone);
            return;
        };
        match recorder.write_out() {
            Ok(()) => self.written = self.applied.take(),
            Err(e) => self.error = Some(WriteError::Failed(Arc::new(e))),
        }
    }
}

fn publish(shared: &Shared, state: &mut BatchState) {
    let written = state.written.take();
    let error = state.error.clone();
    if written.is_none() && error.is_none() {
        return;
    }
    shared.progress.send_modify(|p| {
        if let Some(seq) = written {
            p.written = p.written.max(seq);
        }
        if p.error.is_none() {
            p.error = error;
        }
    });
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Durations in messages: whole milliseconds are enough.
fn round_to_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().min(u128::from(u64::MAX)) as u64)
}

#[cfg(test)]
mod tests;
