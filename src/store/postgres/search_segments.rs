//! Segments of the PostgreSQL text index: writing a builder's postings, merging segments (one
//! node at a time), and the reads a query makes ([`PostingReader`]).

use async_trait::async_trait;
use sqlx::Row;

use super::PgStore;
use crate::search::grams::encode_keys;
use crate::search::segment::{merge_rows, merged_text_bytes, segment_keys};
use crate::store::StoreError;
use crate::store::postings::PostingReader;
use crate::store::search::{SEQ_BITS, SegmentData, SegmentInfo};

/// Postings written by one statement.
const GRAMS_PER_INSERT: usize = 5000;

/// The advisory lock merges take, so two nodes never merge the same segments at once.
const MERGE_LOCK: i64 = 0x6761_7465_7365_6731;

impl PgStore {
    pub(super) async fn unsealed_final(
        &self,
        sessions: &[String],
    ) -> Result<Vec<(i64, String)>, StoreError> {
        // Each unsealed row of the sessions, unless it is the last of its stream in a session
        // not wholly indexed (that row still grows).
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT c.key, c.text FROM search_chunks c \
             JOIN search_sessions s ON s.no = c.session_no \
             WHERE c.seg IS NULL AND s.session_id = ANY($1) AND (s.complete OR EXISTS \
             (SELECT 1 FROM search_chunks n WHERE n.key > c.key \
              AND n.key <= ((c.key >> {SEQ_BITS}) << {SEQ_BITS}) + {max}))",
            max = (1i64 << SEQ_BITS) - 1
        )))
        .bind(sessions)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("text")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    pub(super) async fn seal_segment(&self, segment: &SegmentData) -> Result<i64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let seg: i64 = sqlx::query_scalar(
            "INSERT INTO search_segments (text_bytes, keys) VALUES ($1, $2) RETURNING seg",
        )
        .bind(i64::try_from(segment.text_bytes).unwrap_or(i64::MAX))
        .bind(encode_keys(&segment.keys))
        .fetch_one(&mut *tx)
        .await?;
        insert_grams(&mut tx, seg, &segment.postings).await?;
        sqlx::query("UPDATE search_chunks SET seg = $1 WHERE key = ANY($2) AND seg IS NULL")
            .bind(seg)
            .bind(&segment.keys)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(seg)
    }

    pub(super) async fn segment_list(&self) -> Result<Vec<SegmentInfo>, StoreError> {
        sqlx::query("SELECT seg, text_bytes FROM search_segments")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                Ok(SegmentInfo {
                    seg: r.try_get("seg")?,
                    text_bytes: r.try_get::<i64, _>("text_bytes")?.max(0) as u64,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    pub(super) async fn merge_segments(&self, segs: &[i64]) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MERGE_LOCK)
            .execute(&mut *tx)
            .await?;
        let parts =
            sqlx::query("SELECT seg, text_bytes, keys FROM search_segments WHERE seg = ANY($1)")
                .bind(segs)
                .fetch_all(&mut *tx)
                .await?;
        if parts.len() != segs.len() {
            return Ok(None);
        }
        let mut keys = Vec::new();
        let mut text_bytes = 0u64;
        for part in &parts {
            keys.extend(segment_keys(part.try_get("seg")?, part.try_get("keys")?)?);
            text_bytes += part.try_get::<i64, _>("text_bytes")?.max(0) as u64;
        }
        keys.sort_unstable();
        keys.dedup();
        let mut live: Vec<i64> =
            sqlx::query_scalar("SELECT key FROM search_chunks WHERE key = ANY($1)")
                .bind(&keys)
                .fetch_all(&mut *tx)
                .await?;
        live.sort_unstable();
        let seg: i64 = sqlx::query_scalar(
            "INSERT INTO search_segments (text_bytes, keys) VALUES ($1, $2) RETURNING seg",
        )
        .bind(merged_text_bytes(text_bytes, keys.len(), live.len()) as i64)
        .bind(encode_keys(&live))
        .fetch_one(&mut *tx)
        .await?;
        // A range of grams at a time (by first byte), so memory stays a fraction of the merge.
        for first in 0i32..256 {
            let rows: Vec<(u32, Vec<u8>)> = sqlx::query(
                "SELECT gram, keys FROM search_grams WHERE seg = ANY($1) \
                 AND gram BETWEEN $2 AND $3 ORDER BY gram",
            )
            .bind(segs)
            .bind(first << 16)
            .bind((first << 16) | 0xffff)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get::<i32, _>("gram")? as u32, r.try_get("keys")?)))
            .collect::<Result<_, sqlx::Error>>()?;
            insert_grams(&mut tx, seg, &merge_rows(&rows, &live)?).await?;
        }
        for table in ["search_grams", "search_segments"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE seg = ANY($1)"
            )))
            .bind(segs)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Some(seg))
    }
}

async fn insert_grams(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    seg: i64,
    postings: &[(u32, Vec<u8>)],
) -> Result<(), StoreError> {
    for batch in postings.chunks(GRAMS_PER_INSERT) {
        let grams: Vec<i32> = batch.iter().map(|(g, _)| *g as i32).collect();
        let keys: Vec<&[u8]> = batch.iter().map(|(_, k)| k.as_slice()).collect();
        sqlx::query(
            "INSERT INTO search_grams (seg, gram, keys) \
             SELECT $1, g, k FROM UNNEST($2::INTEGER[], $3::BYTEA[]) AS t (g, k)",
        )
        .bind(seg)
        .bind(&grams)
        .bind(&keys)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl PostingReader for PgStore {
    async fn postings(&self, grams: &[u32]) -> Result<Vec<(i64, u32, Vec<u8>)>, StoreError> {
        let grams: Vec<i32> = grams.iter().map(|&g| g as i32).collect();
        sqlx::query(
            "SELECT g.seg, g.gram, g.keys FROM search_grams g \
             WHERE g.seg = ANY(ARRAY(SELECT seg FROM search_segments)) AND g.gram = ANY($1)",
        )
        .bind(&grams)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get("seg")?,
                r.try_get::<i32, _>("gram")? as u32,
                r.try_get("keys")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(StoreError::from)
    }

    async fn verify(&self, keys: &[i64], needle: &str) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT key FROM search_chunks WHERE key = ANY($1) AND strpos(text, $2) > 0",
        )
        .bind(keys)
        .bind(needle)
        .fetch_all(self.pool())
        .await?)
    }

    async fn unsealed_first(&self, needle: &str) -> Result<Vec<i64>, StoreError> {
        let keys: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT MIN(key) FROM search_chunks WHERE seg IS NULL AND strpos(text, $1) > 0 \
             GROUP BY key >> {SEQ_BITS}"
        )))
        .bind(needle)
        .fetch_all(self.pool())
        .await?;
        Ok(keys)
    }
}
