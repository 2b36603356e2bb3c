//! Segments of the SQLite text index: writing a builder's postings, merging segments, and the
//! reads a query makes ([`PostingReader`]).

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::Row;

use super::SqliteStore;
use crate::search::grams::encode_keys;
use crate::search::segment::{merge_rows, merged_text_bytes, segment_keys};
use crate::store::StoreError;
use crate::store::postings::{PostingReader, VERIFY_BATCH, session_no};
use crate::store::search::{SEQ_BITS, SegmentData, SegmentInfo};

/// Postings written by one statement (three parameters each, well under SQLite's limit).
const GRAMS_PER_INSERT: usize = 2000;

/// `?, ?, …` for `n` parameters.
pub(super) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

impl SqliteStore {
    pub(super) async fn unsealed_final(
        &self,
        sessions: &[String],
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let db = self.search_db();
        let wanted: HashSet<i64> = self.numbered(Some(sessions)).await?.into_keys().collect();
        let complete: HashSet<i64> =
            sqlx::query_scalar("SELECT no FROM sessions WHERE complete = 1")
                .fetch_all(&db.readers)
                .await?
                .into_iter()
                .collect();
        let unsealed: Vec<i64> = sqlx::query_scalar(
            "SELECT key FROM chunks INDEXED BY chunks_unsealed WHERE seg IS NULL",
        )
        .fetch_all(&db.readers)
        .await?;
        let mut out = Vec::new();
        for key in unsealed {
            let no = session_no(key);
            if !wanted.contains(&no) {
                continue;
            }
            if !complete.contains(&no) {
                // The last row of a stream still growing is not final.
                let last: i64 =
                    sqlx::query_scalar("SELECT MAX(key) FROM chunks WHERE key BETWEEN ? AND ?")
                        .bind(key)
                        .bind(((key >> SEQ_BITS) << SEQ_BITS) | ((1 << SEQ_BITS) - 1))
                        .fetch_one(&db.readers)
                        .await?;
                if last == key {
                    continue;
                }
            }
            let text: Option<String> = sqlx::query_scalar("SELECT text FROM chunks WHERE key = ?")
                .bind(key)
                .fetch_optional(&db.readers)
                .await?;
            out.extend(text.map(|text| (key, text)));
        }
        Ok(out)
    }

    pub(super) async fn seal_segment(&self, segment: &SegmentData) -> Result<i64, StoreError> {
        let mut tx = self
            .search_db()
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await?;
        let seg = sqlx::query("INSERT INTO segments (text_bytes, keys) VALUES (?, ?)")
            .bind(i64::try_from(segment.text_bytes).unwrap_or(i64::MAX))
            .bind(encode_keys(&segment.keys))
            .execute(&mut *tx)
            .await?
            .last_insert_rowid();
        insert_grams(&mut tx, seg, &segment.postings).await?;
        for batch in segment.keys.chunks(VERIFY_BATCH) {
            let sql = format!(
                "UPDATE chunks SET seg = ? WHERE key IN ({}) AND seg IS NULL",
                placeholders(batch.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(seg);
            for key in batch {
                query = query.bind(key);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(seg)
    }

    pub(super) async fn segment_list(&self) -> Result<Vec<SegmentInfo>, StoreError> {
        sqlx::query("SELECT seg, text_bytes FROM segments")
            .fetch_all(&self.search_db().readers)
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
        let mut tx = self
            .search_db()
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await?;
        let list = placeholders(segs.len());
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT seg, text_bytes, keys FROM segments WHERE seg IN ({list})"
        )));
        for seg in segs {
            query = query.bind(seg);
        }
        let parts = query.fetch_all(&mut *tx).await?;
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
        let mut live = Vec::with_capacity(keys.len());
        for batch in keys.chunks(VERIFY_BATCH) {
            let sql = format!(
                "SELECT key FROM chunks WHERE key IN ({}) ORDER BY key",
                placeholders(batch.len())
            );
            let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
            for key in batch {
                query = query.bind(key);
            }
            live.extend(query.fetch_all(&mut *tx).await?);
        }
        let seg = sqlx::query("INSERT INTO segments (text_bytes, keys) VALUES (?, ?)")
            .bind(merged_text_bytes(text_bytes, keys.len(), live.len()) as i64)
            .bind(encode_keys(&live))
            .execute(&mut *tx)
            .await?
            .last_insert_rowid();
        // A range of grams at a time (by first byte), so memory stays a fraction of the merge.
        for first in 0u32..256 {
            let sql = format!(
                "SELECT gram, keys FROM grams WHERE seg IN ({list}) AND gram BETWEEN ? AND ? \
                 ORDER BY gram"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for s in segs {
                query = query.bind(s);
            }
            let rows: Vec<(u32, Vec<u8>)> = query
                .bind(i64::from(first << 16))
                .bind(i64::from((first << 16) | 0xffff))
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| Ok((r.try_get::<i64, _>("gram")? as u32, r.try_get("keys")?)))
                .collect::<Result<_, sqlx::Error>>()?;
            insert_grams(&mut tx, seg, &merge_rows(&rows, &live)?).await?;
        }
        for table in ["grams", "segments"] {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE seg IN ({list})"
            )));
            for s in segs {
                query = query.bind(s);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Some(seg))
    }
}

async fn insert_grams(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    seg: i64,
    postings: &[(u32, Vec<u8>)],
) -> Result<(), StoreError> {
    for batch in postings.chunks(GRAMS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO grams (seg, gram, keys) VALUES {}",
            vec!["(?, ?, ?)"; batch.len()].join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (gram, keys) in batch {
            query = query.bind(seg).bind(i64::from(*gram)).bind(keys.as_slice());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

#[async_trait]
impl PostingReader for SqliteStore {
    async fn postings(&self, grams: &[u32]) -> Result<Vec<(i64, u32, Vec<u8>)>, StoreError> {
        let sql = format!(
            "SELECT seg, gram, keys FROM grams \
             WHERE seg IN (SELECT seg FROM segments) AND gram IN ({})",
            placeholders(grams.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for gram in grams {
            query = query.bind(i64::from(*gram));
        }
        query
            .fetch_all(&self.search_db().readers)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("seg")?,
                    r.try_get::<i64, _>("gram")? as u32,
                    r.try_get("keys")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn verify(&self, keys: &[i64], needle: &str) -> Result<Vec<i64>, StoreError> {
        // The text is read and searched here: SQLite's `instr` compares at every character,
        // about ten times slower than a vectorised substring search.
        let sql = format!(
            "SELECT key, text FROM chunks WHERE key IN ({})",
            placeholders(keys.len())
        );
        let mut query = sqlx::query_as::<_, (i64, String)>(sqlx::AssertSqlSafe(sql));
        for key in keys {
            query = query.bind(key);
        }
        let finder = memchr::memmem::Finder::new(needle);
        Ok(query
            .fetch_all(&self.search_db().readers)
            .await?
            .into_iter()
            .filter(|(_, text)| finder.find(text.as_bytes()).is_some())
            .map(|(key, _)| key)
            .collect())
    }

    async fn unsealed_first(&self, needle: &str) -> Result<Vec<i64>, StoreError> {
        let rows: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT MIN(key) FROM chunks INDEXED BY chunks_unsealed \
             WHERE seg IS NULL AND instr(text, ?) > 0 GROUP BY key >> {SEQ_BITS}"
        )))
        .bind(needle)
        .fetch_all(&self.search_db().readers)
        .await?;
        Ok(rows)
    }
}
