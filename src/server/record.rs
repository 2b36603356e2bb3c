//! A session's recording, as the session sees it: every byte shown to the user is recorded
//! before it is sent, and a recording that cannot be written ends the session (fail closed),
//! unless the operator chose `recordings.on_failure = "allow"`.
//!
//! The recorder sits behind a mutex because both directions of a bridged session write to it;
//! every call is short and never held across an await.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use tracing::error;

use crate::config::{OnFailure, RecordingsConfig};
use crate::recording::{CastHeader, Recorder, RecorderConfig, RecordingError, RecordingSummary};

/// Why the session must close because of its recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingFault(pub String);

/// The recording of one session.
pub struct SessionRecording {
    recorder: Mutex<Option<Recorder>>,
    on_failure: OnFailure,
    path: Option<PathBuf>,
    session_id: String,
}

impl SessionRecording {
    /// Creates the recording file. With `on_failure = "deny"` a failure is returned (the session
    /// must be refused); with `"allow"` it is logged and the session goes on unrecorded.
    pub fn start(
        config: &RecordingsConfig,
        session_id: &str,
        header: CastHeader,
        record_input: bool,
    ) -> Result<SessionRecording, RecordingFault> {
        let settings = RecorderConfig {
            max_bytes: config.max_bytes,
            record_input,
            ..RecorderConfig::default()
        };
        let created = std::fs::create_dir_all(&config.dir)
            .map_err(|e| format!("{}: {e}", config.dir.display()))
            .and_then(|()| {
                Recorder::create(&config.dir, session_id, Utc::now(), header, settings)
                    .map_err(|e| e.to_string())
            });
        match created {
            Ok(recorder) => Ok(SessionRecording {
                path: Some(recorder.path().to_owned()),
                recorder: Mutex::new(Some(recorder)),
                on_failure: config.on_failure,
                session_id: session_id.to_owned(),
            }),
            Err(why) if config.on_failure == OnFailure::Allow => {
                error!(session = session_id, error = %why, "RECORDING FAILED: the session runs UNRECORDED (recordings.on_failure = \"allow\")");
                Ok(SessionRecording {
                    recorder: Mutex::new(None),
                    on_failure: config.on_failure,
                    path: None,
                    session_id: session_id.to_owned(),
                })
            }
            Err(why) => Err(RecordingFault(format!(
                "the session cannot be recorded ({why})"
            ))),
        }
    }

    /// Where the recording is, if there is one.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    /// How often [`SessionRecording::tick`] must be called.
    pub fn tick_period(&self) -> Duration {
        self.with(|r| Ok(r.tick_period()))
            .ok()
            .flatten()
            .unwrap_or(Duration::from_millis(500))
    }

    /// Records output shown to the user.
    pub fn output(&self, data: &[u8]) -> Result<(), RecordingFault> {
        self.with(|r| r.output(data)).map(drop)
    }

    /// Records input typed by the user (a no-op unless input is recorded).
    pub fn input(&self, data: &[u8]) -> Result<(), RecordingFault> {
        self.with(|r| r.input(data)).map(drop)
    }

    /// Records a terminal resize.
    pub fn resize(&self, cols: u32, rows: u32) -> Result<(), RecordingFault> {
        self.with(|r| r.resize(cols, rows)).map(drop)
    }

    /// Records a marker (a denial in the restricted shell, a command, the grant ending).
    pub fn marker(&self, label: &str) -> Result<(), RecordingFault> {
        self.with(|r| r.marker(label)).map(drop)
    }

    /// Flushes what is due, so that data reaches the disk within a second.
    pub fn tick(&self) -> Result<(), RecordingFault> {
        self.with(|r| r.tick()).map(drop)
    }

    /// [`SessionRecording::finish`] off the async runtime: syncing a large file can take a
    /// second, and no session's bytes should wait behind it.
    pub async fn finish_in_background(self) -> Option<RecordingSummary> {
        tokio::task::spawn_blocking(move || self.finish())
            .await
            .ok()
            .flatten()
    }

    /// [`SessionRecording::start`] off the async runtime (it creates and syncs the file).
    pub async fn start_in_background(
        config: RecordingsConfig,
        session_id: String,
        header: CastHeader,
        record_input: bool,
    ) -> Result<SessionRecording, RecordingFault> {
        tokio::task::spawn_blocking(move || {
            SessionRecording::start(&config, &session_id, header, record_input)
        })
        .await
        .unwrap_or_else(|e| {
            Err(RecordingFault(format!(
                "the recording could not be started ({e})"
            )))
        })
    }

    /// Writes the rest, syncs, and returns the summary (hash, sizes).
    pub fn finish(self) -> Option<RecordingSummary> {
        let recorder = self
            .recorder
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())?;
        match recorder.finish() {
            Ok(summary) => Some(summary),
            Err(e) => {
                error!(session = %self.session_id, error = %e, "the recording could not be finished");
                None
            }
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Recorder) -> Result<T, RecordingError>,
    ) -> Result<Option<T>, RecordingFault> {
        let mut guard = self.recorder.lock().unwrap_or_else(|p| p.into_inner());
        let Some(recorder) = guard.as_mut() else {
            return Ok(None);
        };
        match f(recorder) {
            Ok(value) => Ok(Some(value)),
            Err(e) if self.on_failure == OnFailure::Allow => {
                error!(session = %self.session_id, error = %e, "RECORDING FAILED: the rest of the session runs UNRECORDED (recordings.on_failure = \"allow\")");
                *guard = None;
                Ok(None)
            }
            Err(RecordingError::LimitReached { limit }) => Err(RecordingFault(format!(
                "the recording reached its size limit ({limit} bytes)"
            ))),
            Err(e) => Err(RecordingFault(format!("the recording failed ({e})"))),
        }
    }
}
