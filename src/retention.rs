//! Retention: recordings whose session ended more than `[recordings] keep` ago are deleted,
//! with their index rows and everything derived from them, one audit line each.
//!
//! Each node sweeps at start and then every [`SWEEP_EVERY`], and only for the sessions it ran
//! (its `[cluster] node_name`): with PostgreSQL the nodes share the index but each holds its
//! own recordings, so the node that has the file is the one that deletes it. A deletion goes
//! through [`Retention::forget_session`], which locks the session's row, checks again that it
//! has ended long enough ago and is not on legal hold, and only then deletes the file and
//! writes the `recording.deleted` line, before the rows' deletion commits. So a session on
//! hold, or still running, is never deleted, and two sweeps never delete one session twice.
//!
//! Nothing here stops the bastion: a file that cannot be deleted (or a line that cannot be
//! written) leaves the session indexed, is logged, and is tried again at the next sweep. A file
//! already gone is recorded as such (`"file": "missing"`), so a sweep interrupted between the
//! deletion and its line finishes the job the next time.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tracing::{info, warn};

use crate::bastion::Bastion;
use crate::events::{Event, EventKind, Events};
use crate::grants::Timestamp;
use crate::store::Store;
use crate::store::retention::{Expiry, Seal, SealError};
use crate::store::sessions::SessionRecord;

/// How often a running node sweeps (besides once at start).
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Sessions read per query; a sweep goes on while pages come back full and make progress.
const PAGE: u32 = 500;

/// What one node keeps: where its recordings are, for how long, and which sessions are its own.
#[derive(Debug, Clone)]
pub struct Keep {
    /// `[recordings] dir`: only files under it are ever deleted.
    pub dir: PathBuf,
    /// `[recordings] keep`.
    pub keep: Duration,
    /// `[cluster] node_name`.
    pub node: String,
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Sessions deleted (each with its `recording.deleted` line).
    pub deleted: Vec<String>,
    /// Sessions that could not be deleted this time, with why; tried again next sweep.
    pub failed: Vec<(String, String)>,
}

/// What became of a session's recording file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileFate {
    /// It was deleted now.
    Deleted,
    /// It was already gone (deleted by an earlier, interrupted sweep, or by hand).
    Missing,
    /// The session had no recording (file and forward sessions).
    None,
}

impl FileFate {
    fn word(self) -> &'static str {
        match self {
            FileFate::Deleted => "deleted",
            FileFate::Missing => "missing",
            FileFate::None => "none",
        }
    }
}

/// The text of `keep` as the audit line's reason gives it: `retention 400d`.
pub fn reason(keep: Duration) -> String {
    format!("retention {}", crate::duration::format(keep))
}

/// Deletes every session of `keep.node` that ended more than `keep.keep` before `now` and is
/// not on hold, writing one `recording.deleted` line each through `events`.
pub async fn sweep(store: &Store, events: &Events, keep: &Keep, now: Timestamp) -> SweepReport {
    let expiry = Expiry {
        node: keep.node.clone(),
        ended_before: now.saturating_sub(i64::try_from(keep.keep.as_secs()).unwrap_or(i64::MAX)),
    };
    let seal = Deletion {
        events,
        dir: &keep.dir,
        reason: reason(keep.keep),
    };
    let mut report = SweepReport::default();
    loop {
        let page = match store.expired(&expiry, PAGE).await {
            Ok(page) => page,
            Err(e) => {
                warn!(error = %e, "retention: cannot list the sessions past their keep; trying again at the next sweep");
                return report;
            }
        };
        let mut progress = false;
        for session in &page {
            if report.failed.iter().any(|(id, _)| id == &session.id) {
                continue;
            }
            match store.forget_session(&session.id, &expiry, &seal).await {
                Ok(Some(_)) => {
                    progress = true;
                    report.deleted.push(session.id.clone());
                    // Its text goes from the search index too (a search only lists sessions
                    // still in the session index, so a failure here keeps rows, shows nothing).
                    if let Err(e) = store
                        .index_forget(Some(std::slice::from_ref(&session.id)))
                        .await
                    {
                        warn!(session = %session.id, error = %e,
                            "retention: the session's rows in the text index could not be deleted");
                    }
                }
                // Held, or forgotten by someone else, since the page was read.
                Ok(None) => {}
                Err(e) => {
                    warn!(session = %session.id, recording = ?session.recording, error = %e,
                        "retention: the session was not deleted; trying again at the next sweep");
                    report.failed.push((session.id.clone(), e.to_string()));
                }
            }
        }
        if page.len() < PAGE as usize || !progress {
            return report;
        }
    }
}

/// Sweeps at start and then every [`SWEEP_EVERY`], when `[recordings] keep` is set.
pub fn spawn(bastion: Arc<Bastion>) -> Option<tokio::task::JoinHandle<()>> {
    let keep = Keep {
        dir: bastion.config.recordings.dir.clone(),
        keep: bastion.config.recordings.keep?,
        node: bastion.config.cluster.node_name.clone(),
    };
    info!(keep = %crate::duration::format(keep.keep), "recordings are deleted once past their keep");
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let report = sweep(&bastion.store, &bastion.events, &keep, crate::grants::now()).await;
            if !report.deleted.is_empty() || !report.failed.is_empty() {
                info!(
                    deleted = report.deleted.len(),
                    failed = report.failed.len(),
                    "retention sweep"
                );
            }
        }
    }))
}

/// The seal of a deletion: the recording's file goes first, then its durable audit line. If
/// the line cannot be written the rows stay, and the next sweep finds the file missing and
/// writes the line then.
struct Deletion<'a> {
    events: &'a Events,
    dir: &'a Path,
    reason: String,
}

#[async_trait]
impl Seal for Deletion<'_> {
    async fn seal(&self, session: &SessionRecord) -> Result<(), SealError> {
        let fate = match &session.recording {
            None => FileFate::None,
            Some(path) => {
                let dir = self.dir.to_owned();
                let path = PathBuf::from(path);
                tokio::task::spawn_blocking(move || remove_recording(&dir, &path))
                    .await
                    .map_err(|e| SealError(format!("the deletion did not finish: {e}")))?
                    .map_err(SealError)?
            }
        };
        let line = deleted_event(session, fate, &self.reason);
        self.events
            .record_durable(std::slice::from_ref(&line))
            .await
            .map_err(|e| SealError(e.to_string()))
    }
}

/// The `recording.deleted` line of `session`.
fn deleted_event(session: &SessionRecord, fate: FileFate, reason: &str) -> Event {
    let ended = session.ended_at.and_then(|t| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    });
    Event {
        user: Some(session.user.clone()),
        target: Some(session.target.clone()),
        role: Some(session.role.clone()),
        grant_id: Some(session.grant_id),
        session_id: Some(session.id.clone()),
        reason: Some(reason.to_owned()),
        detail: Some(serde_json::json!({
            "ended_at": session.ended_at,
            "ended": ended,
            "recording": session.recording,
            "recording_sha256": session.sha256,
            "file": fate.word(),
            "kind": session.kind,
            "node": session.node,
        })),
        ..Event::new(EventKind::RecordingDeleted)
    }
}

/// Deletes the recording at `path`, which must be a regular file under `dir` (a path from the
/// index is never trusted to point anywhere else), then the day, month and year directories it
/// leaves empty.
fn remove_recording(dir: &Path, path: &Path) -> Result<FileFate, String> {
    let inside = path.is_absolute() == dir.is_absolute()
        && path.starts_with(dir)
        && path
            .components()
            .all(|c| !matches!(c, Component::ParentDir));
    if !inside {
        return Err(format!(
            "{} is not under the recordings directory {}; it is left alone",
            path.display(),
            dir.display()
        ));
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(FileFate::Missing),
        Err(e) => return Err(format!("{}: {e}", path.display())),
        Ok(meta) if !meta.file_type().is_file() => {
            return Err(format!(
                "{} is not a regular file; it is left alone",
                path.display()
            ));
        }
        Ok(_) => {}
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(FileFate::Missing),
        Err(e) => return Err(format!("cannot delete {}: {e}", path.display())),
    }
    // Empty date directories go too; one still in use (or not empty) simply stays.
    let mut parent = path.parent();
    while let Some(p) = parent.filter(|p| *p != dir && p.starts_with(dir)) {
        if std::fs::remove_dir(p).is_err() {
            break;
        }
        parent = p.parent();
    }
    Ok(FileFate::Deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_under_the_directory_are_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("recordings");
        let day = dir.join("2025/01/02");
        std::fs::create_dir_all(&day).unwrap();
        let cast = day.join("a.cast");
        std::fs::write(&cast, "x").unwrap();
        let other = day.join("b.cast");
        std::fs::write(&other, "y").unwrap();
        assert_eq!(remove_recording(&dir, &cast), Ok(FileFate::Deleted));
        assert!(!cast.exists() && day.exists(), "a day still in use stays");
        assert_eq!(remove_recording(&dir, &cast), Ok(FileFate::Missing));
        assert_eq!(remove_recording(&dir, &other), Ok(FileFate::Deleted));
        assert!(!dir.join("2025").exists(), "empty date directories go");
        assert!(dir.exists(), "the recordings directory stays");

        let outside = tmp.path().join("precious");
        std::fs::write(&outside, "z").unwrap();
        for bad in [outside.clone(), dir.join("../precious")] {
            assert!(remove_recording(&dir, &bad).is_err(), "{}", bad.display());
        }
        std::os::unix::fs::symlink(&outside, dir.join("link.cast")).unwrap();
        assert!(remove_recording(&dir, &dir.join("link.cast")).is_err());
        assert!(outside.exists());
    }

    #[test]
    fn the_reason_names_the_keep_as_configured() {
        assert_eq!(reason(Duration::from_secs(400 * 86_400)), "retention 400d");
    }
}
