//! The text index in SQLite: a database file of its own next to the store (`NAME.search.db`),
//! so that indexing never holds the write lock that grant decisions wait for. Rows are in
//! `chunks`; the trigram postings of sealed rows are in `grams`, by segment (written and merged
//! in [`super::segments`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use super::SqliteStore;
use super::segments::placeholders;
use crate::store::search::{
    ChunkRow, FileHit, IndexBatch, IndexProgress, SEQ_BITS, SearchIndex, SegmentData, SegmentInfo,
    TextStream, row_key, split_key,
};
use crate::store::{StoreError, postings};

/// Schema versions of the index file.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/search/0001_chunks.sql"),
    include_str!("../../../migrations/search/0002_gram_marks.sql"),
];

/// The index database: one connection writes, a few read.
#[derive(Clone)]
pub(super) struct SearchDb {
    pub(super) writer: SqlitePool,
    pub(super) readers: SqlitePool,
    path: PathBuf,
}

/// Rows written by one statement (five parameters each, well under SQLite's limit).
const ROWS_PER_INSERT: usize = 500;

/// `data/gatehouse.db` → `data/gatehouse.search.db`.
pub(super) fn path_next_to(store: &Path) -> PathBuf {
    let stem = store
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "gatehouse".into());
    store.with_file_name(format!("{stem}.search.db"))
}

impl SearchDb {
    /// Opens (creating) the index next to the store file and brings its schema up to date.
    pub(super) async fn open(store: &Path) -> Result<SearchDb, StoreError> {
        let path = path_next_to(store);
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(10))
            .pragma("mmap_size", "0");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let db = SearchDb {
            writer,
            readers,
            path,
        };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        super::apply_migrations(tx, MIGRATIONS).await
    }

    /// The index's number of a session, if it has one.
    async fn session_no(&self, session_id: &str) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT no FROM sessions WHERE session_id = ?")
                .bind(session_id)
                .fetch_optional(&self.readers)
                .await?,
        )
    }

    /// The first row of one session's stream at or after `from` whose text contains `needle`,
    /// read row by row.
    async fn scan_first(
        &self,
        needle: &str,
        from: i64,
        to: i64,
    ) -> Result<Option<(i64, SqliteRow)>, StoreError> {
        let row = sqlx::query(
            "SELECT key, text, events, after_gap, gap_after FROM chunks \
             WHERE key BETWEEN ?1 AND ?2 AND instr(text, ?3) > 0 ORDER BY key LIMIT 1",
        )
        .bind(from)
        .bind(to)
        .bind(needle)
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|r| (r.get::<i64, _>("key"), r)))
    }
}

fn chunk_from(row: &SqliteRow, session_id: &str) -> Result<ChunkRow, StoreError> {
    let (_, stream, seq) = split_key(row.try_get("key")?)?;
    Ok(ChunkRow {
        session_id: session_id.to_owned(),
        stream,
        seq,
        text: row.try_get("text")?,
        events: row.try_get("events")?,
        after_gap: row.try_get::<i64, _>("after_gap")? != 0,
        gap_after: row.try_get::<i64, _>("gap_after")? != 0,
    })
}

/// The keys of one session's stream.
fn stream_range(no: i64, stream: TextStream) -> (i64, i64) {
    (
        row_key(no, stream, 0),
        row_key(no, stream, crate::store::search::MAX_SEQ),
    )
}

impl SqliteStore {
    pub(super) fn search_db(&self) -> &SearchDb {
        &self.search
    }

    /// The number and id of every indexed session, or of those named.
    pub(super) async fn numbered(
        &self,
        within: Option<&[String]>,
    ) -> Result<HashMap<i64, String>, StoreError> {
        let sessions: Vec<(i64, String)> = sqlx::query("SELECT no, session_id FROM sessions")
            .fetch_all(&self.search_db().readers)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("no")?, r.try_get("session_id")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(match within {
            Some(ids) => {
                let ids: HashSet<&String> = ids.iter().collect();
                sessions
                    .into_iter()
                    .filter(|(_, id)| ids.contains(id))
                    .collect()
            }
            None => sessions.into_iter().collect(),
        })
    }
}

#[async_trait]
impl SearchIndex for SqliteStore {
    async fn index_commit(&self, batch: &IndexBatch) -> Result<Vec<i64>, StoreError> {
        let db = self.search_db();
        let mut tx = db.writer.begin_with("BEGIN IMMEDIATE").await?;
        let mut numbers = std::collections::HashMap::new();
        let ids = batch
            .progress
            .iter()
            .map(|p| &p.session_id)
            .chain(batch.rows.iter().map(|r| &r.session_id));
        for id in ids {
            if numbers.contains_key(id) {
                continue;
            }
            sqlx::query(
                "INSERT INTO sessions (session_id, indexed_bytes, complete) VALUES (?, 0, 0) \
                 ON CONFLICT (session_id) DO NOTHING",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let no: i64 = sqlx::query_scalar("SELECT no FROM sessions WHERE session_id = ?")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            numbers.insert(id.clone(), no);
        }
        let keys: Vec<i64> = batch
            .rows
            .iter()
            .map(|row| row_key(numbers[&row.session_id], row.stream, row.seq))
            .collect();
        // Many rows a statement: a row costs a round trip to the database's thread otherwise,
        // and rows are short where repeated lines were left out. Later rows of the same key
        // replace earlier ones, in order.
        for (rows, keys) in batch
            .rows
            .chunks(ROWS_PER_INSERT)
            .zip(keys.chunks(ROWS_PER_INSERT))
        {
            let sql = format!(
                "INSERT INTO chunks (key, seg, text, events, after_gap, gap_after) VALUES {} \
                 ON CONFLICT (key) DO UPDATE SET seg = NULL, text = excluded.text, \
                 events = excluded.events, after_gap = excluded.after_gap, \
                 gap_after = excluded.gap_after",
                vec!["(?, NULL, ?, ?, ?, ?)"; rows.len()].join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (row, key) in rows.iter().zip(keys) {
                query = query
                    .bind(key)
                    .bind(&row.text)
                    .bind(&row.events)
                    .bind(row.after_gap as i64)
                    .bind(row.gap_after as i64);
            }
            query.execute(&mut *tx).await?;
        }
        for p in &batch.progress {
            sqlx::query("UPDATE sessions SET indexed_bytes = ?, complete = ? WHERE session_id = ?")
                .bind(i64::try_from(p.indexed_bytes).unwrap_or(i64::MAX))
                .bind(p.complete as i64)
                .bind(&p.session_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(keys)
    }

    async fn index_progress(
        &self,
        sessions: Option<&[String]>,
    ) -> Result<Vec<IndexProgress>, StoreError> {
        let rows = sqlx::query("SELECT session_id, indexed_bytes, complete FROM sessions")
            .fetch_all(&self.search_db().readers)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let session_id: String = row.try_get("session_id")?;
            if sessions.is_some_and(|wanted| !wanted.contains(&session_id)) {
                continue;
            }
            out.push(IndexProgress {
                session_id,
                indexed_bytes: row.try_get::<i64, _>("indexed_bytes")?.max(0) as u64,
                complete: row.try_get::<i64, _>("complete")? != 0,
            });
        }
        Ok(out)
    }

    async fn index_last_rows(&self, session_id: &str) -> Result<Vec<ChunkRow>, StoreError> {
        let db = self.search_db();
        let Some(no) = db.session_no(session_id).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for stream in TextStream::ALL {
            let (from, to) = stream_range(no, stream);
            let row = sqlx::query(
                "SELECT key, text, events, after_gap, gap_after FROM chunks \
                 WHERE key BETWEEN ? AND ? ORDER BY key DESC LIMIT 1",
            )
            .bind(from)
            .bind(to)
            .fetch_optional(&db.readers)
            .await?;
            if let Some(row) = row {
                out.push(chunk_from(&row, session_id)?);
            }
        }
        Ok(out)
    }

    async fn index_forget(&self, sessions: Option<&[String]>) -> Result<(), StoreError> {
        let db = self.search_db();
        let mut tx = db.writer.begin_with("BEGIN IMMEDIATE").await?;
        let Some(sessions) = sessions else {
            for table in ["grams", "segments", "chunks"] {
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM sessions")
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(());
        };
        for id in sessions {
            let no: Option<i64> =
                sqlx::query_scalar("SELECT no FROM sessions WHERE session_id = ?")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(no) = no else { continue };
            // Postings of these keys stay until a merge leaves them out: a candidate whose row
            // is gone is no hit.
            let (from, to) = (no << (SEQ_BITS + 2), ((no + 1) << (SEQ_BITS + 2)) - 1);
            sqlx::query("DELETE FROM chunks WHERE key BETWEEN ? AND ?")
                .bind(from)
                .bind(to)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM sessions WHERE no = ?")
                .bind(no)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn index_first_rows(
        &self,
        needle: &str,
        within: Option<&[String]>,
    ) -> Result<Vec<ChunkRow>, StoreError> {
        let db = self.search_db();
        let wanted = self.numbered(within).await?;
        let mut out = Vec::new();
        if needle.len() < crate::search::grams::GRAM_BYTES {
            // Trigrams cannot find it: each stream is read row by row up to its first match.
            for (&no, id) in &wanted {
                for stream in TextStream::ALL {
                    let (from, to) = stream_range(no, stream);
                    if let Some((_, row)) = db.scan_first(needle, from, to).await? {
                        out.push(chunk_from(&row, id)?);
                    }
                }
            }
            return Ok(out);
        }
        let numbers: HashSet<i64> = wanted.keys().copied().collect();
        let keys = postings::first_keys(self, needle, &numbers).await?;
        for batch in keys.chunks(postings::VERIFY_BATCH) {
            let sql = format!(
                "SELECT key, text, events, after_gap, gap_after FROM chunks WHERE key IN ({})",
                placeholders(batch.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for key in batch {
                query = query.bind(key);
            }
            for row in query.fetch_all(&db.readers).await? {
                let key: i64 = row.try_get("key")?;
                if let Some(id) = wanted.get(&postings::session_no(key)) {
                    out.push(chunk_from(&row, id)?);
                }
            }
        }
        Ok(out)
    }

    async fn file_path_hits(&self, needle: &str) -> Result<Vec<FileHit>, StoreError> {
        let rows = sqlx::query(
            "SELECT session_id, MIN(at_ms) AS at_ms FROM file_ops \
             WHERE instr(path, ?1) > 0 OR instr(COALESCE(to_path, ''), ?1) > 0 \
             GROUP BY session_id",
        )
        .bind(needle)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FileHit {
                    session_id: r.try_get("session_id")?,
                    at_ms: r.try_get("at_ms")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn index_unsealed(&self, sessions: &[String]) -> Result<Vec<(i64, String)>, StoreError> {
        self.unsealed_final(sessions).await
    }

    async fn index_seal(&self, segment: &SegmentData) -> Result<i64, StoreError> {
        self.seal_segment(segment).await
    }

    async fn index_segments(&self) -> Result<Vec<SegmentInfo>, StoreError> {
        self.segment_list().await
    }

    async fn index_merge(&self, segs: &[i64]) -> Result<Option<i64>, StoreError> {
        self.merge_segments(segs).await
    }

    async fn index_bytes(&self) -> Result<u64, StoreError> {
        let db = self.search_db();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&db.writer)
            .await?;
        Ok(std::fs::metadata(&db.path).map(|m| m.len()).unwrap_or(0))
    }
}
