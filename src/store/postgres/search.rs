//! The text index in PostgreSQL: the same rows and segments as on SQLite, so a search on any
//! node finds the sessions recorded on every node. Rows' text is checked with `strpos`; the
//! segments are written and read in [`super::search_segments`].

use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

use std::collections::{HashMap, HashSet};

use super::PgStore;
use crate::store::search::{
    ChunkRow, FileHit, IndexBatch, IndexProgress, SEQ_BITS, SearchIndex, SegmentData, SegmentInfo,
    row_key, split_key,
};
use crate::store::{StoreError, postings};

const ROW: &str = "c.key, c.text, c.events, c.after_gap, c.gap_after, s.session_id";

fn chunk_from(row: &PgRow) -> Result<ChunkRow, StoreError> {
    let (_, stream, seq) = split_key(row.try_get("key")?)?;
    Ok(ChunkRow {
        session_id: row.try_get("session_id")?,
        stream,
        seq,
        text: row.try_get("text")?,
        events: row.try_get("events")?,
        after_gap: row.try_get("after_gap")?,
        gap_after: row.try_get("gap_after")?,
    })
}

impl PgStore {
    /// The number and id of every indexed session, or of those named.
    pub(super) async fn numbered(
        &self,
        within: Option<&[String]>,
    ) -> Result<HashMap<i64, String>, StoreError> {
        let rows = match within {
            Some(ids) => {
                sqlx::query("SELECT no, session_id FROM search_sessions WHERE session_id = ANY($1)")
                    .bind(ids)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                sqlx::query("SELECT no, session_id FROM search_sessions")
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter()
            .map(|r| Ok((r.try_get("no")?, r.try_get("session_id")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

#[async_trait]
impl SearchIndex for PgStore {
    async fn index_commit(&self, batch: &IndexBatch) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.pool().begin().await?;
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
                "INSERT INTO search_sessions (session_id, indexed_bytes, complete) \
                 VALUES ($1, 0, FALSE) ON CONFLICT (session_id) DO NOTHING",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let no: i64 =
                sqlx::query_scalar("SELECT no FROM search_sessions WHERE session_id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            numbers.insert(id.clone(), no);
        }
        let mut keys = Vec::with_capacity(batch.rows.len());
        for row in &batch.rows {
            let no = numbers[&row.session_id];
            let key = row_key(no, row.stream, row.seq);
            keys.push(key);
            sqlx::query(
                "INSERT INTO search_chunks (key, session_no, text, events, after_gap, gap_after) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key) DO UPDATE SET seg = NULL, \
                 text = EXCLUDED.text, events = EXCLUDED.events, \
                 after_gap = EXCLUDED.after_gap, gap_after = EXCLUDED.gap_after",
            )
            .bind(key)
            .bind(no)
            .bind(&row.text)
            .bind(&row.events)
            .bind(row.after_gap)
            .bind(row.gap_after)
            .execute(&mut *tx)
            .await?;
        }
        for p in &batch.progress {
            sqlx::query(
                "UPDATE search_sessions SET indexed_bytes = $1, complete = $2 WHERE session_id = $3",
            )
            .bind(i64::try_from(p.indexed_bytes).unwrap_or(i64::MAX))
            .bind(p.complete)
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
        let rows = match sessions {
            Some(ids) => {
                sqlx::query(
                    "SELECT session_id, indexed_bytes, complete FROM search_sessions \
                     WHERE session_id = ANY($1)",
                )
                .bind(ids)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query("SELECT session_id, indexed_bytes, complete FROM search_sessions")
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter()
            .map(|row| {
                Ok(IndexProgress {
                    session_id: row.try_get("session_id")?,
                    indexed_bytes: row.try_get::<i64, _>("indexed_bytes")?.max(0) as u64,
                    complete: row.try_get("complete")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn index_last_rows(&self, session_id: &str) -> Result<Vec<ChunkRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT ON (c.key >> {SEQ_BITS}) {ROW} FROM search_chunks c \
             JOIN search_sessions s ON s.no = c.session_no WHERE s.session_id = $1 \
             ORDER BY c.key >> {SEQ_BITS}, c.key DESC"
        )))
        .bind(session_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(chunk_from).collect()
    }

    async fn index_forget(&self, sessions: Option<&[String]>) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        match sessions {
            None => {
                for table in ["search_grams", "search_segments", "search_chunks"] {
                    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("DELETE FROM search_sessions")
                    .execute(&mut *tx)
                    .await?;
            }
            Some(ids) => {
                sqlx::query(
                    "DELETE FROM search_chunks WHERE session_no IN \
                     (SELECT no FROM search_sessions WHERE session_id = ANY($1))",
                )
                .bind(ids)
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM search_sessions WHERE session_id = ANY($1)")
                    .bind(ids)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn index_first_rows(
        &self,
        needle: &str,
        within: Option<&[String]>,
    ) -> Result<Vec<ChunkRow>, StoreError> {
        let wanted = self.numbered(within).await?;
        if needle.len() < crate::search::grams::GRAM_BYTES {
            // Trigrams cannot find it: the first matching row of each stream, row by row.
            let query = format!(
                "SELECT DISTINCT ON (c.key >> {SEQ_BITS}) {ROW} FROM search_chunks c \
                 JOIN search_sessions s ON s.no = c.session_no \
                 WHERE strpos(c.text, $1) > 0 AND s.no = ANY($2) \
                 ORDER BY c.key >> {SEQ_BITS}, c.key"
            );
            let numbers: Vec<i64> = wanted.keys().copied().collect();
            let rows = sqlx::query(sqlx::AssertSqlSafe(query))
                .bind(needle)
                .bind(&numbers)
                .fetch_all(self.pool())
                .await?;
            return rows.iter().map(chunk_from).collect();
        }
        let numbers: HashSet<i64> = wanted.keys().copied().collect();
        let keys = postings::first_keys(self, needle, &numbers).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ROW} FROM search_chunks c JOIN search_sessions s ON s.no = c.session_no \
             WHERE c.key = ANY($1)"
        )))
        .bind(&keys)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(chunk_from).collect()
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

    async fn file_path_hits(&self, needle: &str) -> Result<Vec<FileHit>, StoreError> {
        let rows = sqlx::query(
            "SELECT session_id, MIN(at_ms) AS at_ms FROM file_ops \
             WHERE strpos(path, $1) > 0 OR strpos(COALESCE(to_path, ''), $1) > 0 \
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

    async fn index_bytes(&self) -> Result<u64, StoreError> {
        let bytes: i64 = sqlx::query_scalar(
            "SELECT pg_total_relation_size('search_chunks') + pg_total_relation_size('search_sessions') \
             + pg_total_relation_size('search_segments') + pg_total_relation_size('search_grams')",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(bytes.max(0) as u64)
    }
}
