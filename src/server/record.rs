//! A session's recording, as the session sees it: every byte shown to the user is in the
//! recording file before it is sent, and a recording that cannot be written, or that stalls
//! longer than `[recordings] stall_timeout`, ends the session (fail closed), unless the operator
//! chose `recordings.on_failure = "allow"`. The size limit (`max_bytes`) ends the session
//! whatever `on_failure` says: it bounds the session, it is not a failure.
//!
//! All file I/O happens on the recording I/O pool ([`crate::recording::pool`]); the calls here
//! only queue events and wait, with a bound, for the writer to report them written.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use chrono::Utc;
use tracing::{error, info};

use crate::config::{OnFailure, RecordingsConfig};
use crate::recording::{
    CastHeader, Finishing, IoPool, LateFinish, LiveRecording, Queued, RecorderConfig,
    RecordingSummary, WriteError,
};
use crate::store::sessions::{SessionEnd, SessionIndex, complete_in_background};

/// Why the session must close because of its recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingFault(pub String);

/// The recording of one session.
pub struct SessionRecording {
    live: Option<LiveRecording>,
    /// With `on_failure = "allow"`: the recording failed and the session goes on unrecorded.
    abandoned: AtomicBool,
    on_failure: OnFailure,
    path: Option<PathBuf>,
    session_id: String,
}

/// What became of the recording when its session ended.
pub enum Sealed {
    /// Synced and hashed.
    Done(RecordingSummary),
    /// Its disk stalls: the summary comes once finishing completes (the session's end is
    /// indexed without a hash meanwhile).
    Late(LateSeal),
    /// Nothing to seal: the session ran unrecorded, or the recording failed.
    Nothing,
}

impl Sealed {
    /// The summary, if the recording was sealed in time.
    pub fn summary(&self) -> Option<&RecordingSummary> {
        match self {
            Sealed::Done(summary) => Some(summary),
            Sealed::Late(_) | Sealed::Nothing => None,
        }
    }
}

/// A recording whose finish outlasted the stall timeout.
pub struct LateSeal {
    finish: LateFinish,
    session_id: String,
}

impl LateSeal {
    /// Waits, without a bound, until the recording is synced and hashed.
    pub async fn wait(self) -> Option<RecordingSummary> {
        match self.finish.wait().await {
            Ok(summary) => Some(summary),
            Err(e) => {
                error!(session = %self.session_id, error = %e, "the recording could not be finished");
                None
            }
        }
    }

    /// Completes the session's index row with the hash once the recording is finished, in
    /// the background: the session's end (`end`, already indexed) does not wait for the disk.
    pub fn index_when_done(self, sessions: Arc<dyn SessionIndex>, mut end: SessionEnd) {
        tokio::spawn(async move {
            let session_id = self.session_id.clone();
            let Some(summary) = self.wait().await else {
                return;
            };
            info!(session = %session_id, sha256 = %summary.sha256, "the recording was finished late; its hash goes into the index now");
            end.sha256 = Some(summary.sha256);
            complete_in_background(sessions, session_id, end);
        });
    }
}

impl SessionRecording {
    /// Creates the recording file on the recording I/O pool, waiting at most `stall_timeout`.
    /// With `on_failure = "deny"` a failure is returned (the session must be refused); with
    /// `"allow"` it is logged and the session goes on unrecorded.
    pub async fn start_in_background(
        config: RecordingsConfig,
        session_id: String,
        header: CastHeader,
        record_input: bool,
    ) -> Result<SessionRecording, RecordingFault> {
        let settings = RecorderConfig {
            max_bytes: config.max_bytes,
            record_input,
            ..RecorderConfig::default()
        };
        let created = LiveRecording::create(
            IoPool::global(),
            &config.dir,
            &session_id,
            Utc::now(),
            header,
            settings,
            config.stall_timeout,
        )
        .await;
        let live = match created {
            Ok(live) => {
                if let Some(indexer) = crate::search::indexer::running() {
                    live.report_length_to(indexer.watch(&session_id, live.path()));
                }
                Some(live)
            }
            Err(why) if config.on_failure == OnFailure::Allow => {
                error!(session = %session_id, error = %why, "RECORDING FAILED: the session runs UNRECORDED (recordings.on_failure = \"allow\")");
                None
            }
            Err(why) => {
                error!(session = %session_id, error = %why, "the session cannot be recorded: refused");
                return Err(RecordingFault(format!(
                    "the session cannot be recorded ({why})"
                )));
            }
        };
        Ok(SessionRecording {
            path: live.as_ref().map(|l| l.path().to_owned()),
            live,
            abandoned: AtomicBool::new(false),
            on_failure: config.on_failure,
            session_id,
        })
    }

    /// Where the recording is, if there is one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Records output shown to the user; returns once it is in the recording file, so the
    /// caller may then show it.
    pub async fn output(&self, data: impl Into<Bytes>) -> Result<(), RecordingFault> {
        match self.recorder() {
            Some(live) => self.judge(live.output(data.into()).await),
            None => Ok(()),
        }
    }

    /// Queues output without waiting for it, for a caller that reads on meanwhile; `None` when
    /// the session runs unrecorded. Show the bytes only once [`SessionRecording::confirm`]
    /// (or [`SessionRecording::is_written`]) says they are in the file.
    pub fn queue_output(&self, data: Bytes) -> Result<Option<Queued>, RecordingFault> {
        let Some(live) = self.recorder() else {
            return Ok(None);
        };
        match live.queue_output(data) {
            Ok(queued) => Ok(Some(queued)),
            Err(e) => self.judge(Err(e)).map(|()| None),
        }
    }

    /// Whether queued output is in the file already (or the session runs unrecorded now).
    pub fn is_written(&self, queued: &Queued) -> bool {
        self.recorder().is_none_or(|live| live.is_written(queued))
    }

    /// Waits until queued output is in the file, at most the stall timeout after it was queued.
    pub async fn confirm(&self, queued: &Queued) -> Result<(), RecordingFault> {
        match self.recorder() {
            Some(live) => self.judge(live.wait_queued(queued).await),
            None => Ok(()),
        }
    }

    /// Records input typed by the user (a no-op unless input is recorded); returns once it is
    /// in the file, so the caller may then pass it on.
    pub async fn input(&self, data: impl Into<Bytes>) -> Result<(), RecordingFault> {
        match self.recorder() {
            Some(live) => self.judge(live.input(data.into()).await),
            None => Ok(()),
        }
    }

    /// Records a terminal resize.
    pub async fn resize(&self, cols: u32, rows: u32) -> Result<(), RecordingFault> {
        match self.recorder() {
            Some(live) => self.judge(live.resize(cols, rows).await),
            None => Ok(()),
        }
    }

    /// Records a marker (a denial in the restricted shell, a command, the grant ending).
    pub async fn marker(&self, label: &str) -> Result<(), RecordingFault> {
        match self.recorder() {
            Some(live) => self.judge(live.marker(label).await),
            None => Ok(()),
        }
    }

    /// Records the bastion's own last words to the user without waiting: they are shown
    /// whether or not the recording still works (it may be why the session closes).
    pub fn note(&self, text: &str) {
        if let Some(live) = self.recorder() {
            live.note(Bytes::copy_from_slice(text.as_bytes()));
        }
    }

    /// Writes the rest, syncs and hashes the file on the I/O pool, waiting at most the stall
    /// timeout: a session never waits on a stalled disk to end.
    pub async fn finish_in_background(self) -> Sealed {
        let Some(live) = self.live else {
            return Sealed::Nothing;
        };
        match live.finish().await {
            Finishing::Done(Ok(summary)) => Sealed::Done(summary),
            Finishing::Done(Err(e)) => {
                error!(session = %self.session_id, error = %e, "the recording could not be finished");
                Sealed::Nothing
            }
            Finishing::Late(finish) => {
                error!(session = %self.session_id, "the recording is not finished within the stall timeout: its hash is indexed when the disk responds again");
                Sealed::Late(LateSeal {
                    finish,
                    session_id: self.session_id,
                })
            }
        }
    }

    /// The recording, unless the session runs unrecorded.
    fn recorder(&self) -> Option<&LiveRecording> {
        self.live
            .as_ref()
            .filter(|_| !self.abandoned.load(Ordering::Relaxed))
    }

    /// What a recording error means for the session.
    fn judge(&self, result: Result<(), WriteError>) -> Result<(), RecordingFault> {
        let e = match result {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        match e {
            // The limit bounds the session; "allow" is about failures.
            WriteError::LimitReached { .. } => Err(RecordingFault(e.to_string())),
            _ if self.on_failure == OnFailure::Allow => {
                if !self.abandoned.swap(true, Ordering::Relaxed) {
                    error!(session = %self.session_id, error = %e, "RECORDING FAILED: the rest of the session runs UNRECORDED (recordings.on_failure = \"allow\")");
                }
                Ok(())
            }
            _ => {
                error!(session = %self.session_id, error = %e, "the recording failed: closing the session");
                Err(RecordingFault(e.to_string()))
            }
        }
    }
}
