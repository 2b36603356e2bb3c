//! Which recordings the index is behind on, and rebuilding a session's rows from its file
//! (`gatehouse sessions reindex`), with the same reading as live indexing ([`super::tail`] and
//! [`super::feed`]), so both give the same rows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::feed::SessionFeed;
use super::segment::{self, SegmentBuilder};
use super::tail::Tail;
use crate::store::search::{IndexBatch, IndexProgress};
use crate::store::sessions::{SessionFilter, SessionRecord};
use crate::store::{Store, StoreError};

/// Bytes of a recording read between two commits of a rebuild.
const REBUILD_STEP: usize = 32 << 20;

/// Sessions recorded by this node (`node`; sessions with no node count as this node's) whose
/// recording file is here, newest last.
pub async fn local_sessions(store: &Store, node: &str) -> Result<Vec<SessionRecord>, StoreError> {
    let mut sessions = store
        .sessions(&SessionFilter {
            limit: Some(u32::MAX),
            ..SessionFilter::default()
        })
        .await?;
    sessions.retain(|s| {
        (s.node.is_empty() || s.node == node)
            && s.recording
                .as_deref()
                .is_some_and(|p| Path::new(p).exists())
    });
    sessions.reverse();
    Ok(sessions)
}

/// The recordings of this node, of sessions started before `before` (Unix seconds; later ones
/// are followed live), that are not wholly indexed, oldest first, with the offset to go on
/// from: those made before the index existed, and those a crash interrupted.
pub async fn behind(
    store: &Store,
    node: &str,
    before: crate::grants::Timestamp,
) -> Result<Vec<(String, PathBuf, u64)>, StoreError> {
    let progress: HashMap<String, IndexProgress> = store
        .index_progress(None)
        .await?
        .into_iter()
        .map(|p| (p.session_id.clone(), p))
        .collect();
    Ok(local_sessions(store, node)
        .await?
        .into_iter()
        .filter(|s| s.started_at <= before)
        .filter_map(|s| {
            let offset = match progress.get(&s.id) {
                Some(p) if p.complete => return None,
                Some(p) => p.indexed_bytes,
                None => 0,
            };
            let path = PathBuf::from(s.recording?);
            Some((s.id, path, offset))
        })
        .collect())
}

/// Forgets a session's rows and indexes its recording again from the start, handing its final
/// rows to `builder` (the caller seals it, see [`seal_due`]); returns the bytes read.
pub async fn rebuild(
    store: &Store,
    session_id: &str,
    path: &Path,
    builder: &mut SegmentBuilder,
) -> Result<u64, RebuildError> {
    store
        .index_forget(Some(std::slice::from_ref(&session_id.to_owned())))
        .await?;
    let mut tail = Tail::new(path, 0);
    let mut feed = SessionFeed::default();
    loop {
        let limit = tail.file_len()?;
        let read = tail.read(limit, REBUILD_STEP, &mut feed)?;
        let done = read == 0 || tail.offset() >= limit;
        let mut batch = IndexBatch::default();
        if done {
            feed.finish();
        }
        feed.take_rows(session_id, &mut batch.rows);
        batch.progress.push(IndexProgress {
            session_id: session_id.to_owned(),
            indexed_bytes: tail.offset(),
            complete: done,
        });
        let keys = store.index_commit(&batch).await?;
        for (row, key) in batch.rows.iter().zip(keys) {
            if done || feed.is_final(row) {
                builder.add(key, &row.text);
            }
        }
        seal_due(store, builder).await?;
        if done {
            return Ok(tail.offset());
        }
    }
}

/// Seals the builder if it is big or old enough.
pub async fn seal_due(store: &Store, builder: &mut SegmentBuilder) -> Result<(), StoreError> {
    if builder.is_due() {
        segment::seal(store, builder).await?;
    }
    Ok(())
}

/// Why a session's rows could not be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The recording could not be read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
