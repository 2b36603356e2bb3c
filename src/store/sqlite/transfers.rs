//! File-session transcripts in SQLite.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use crate::store::StoreError;
use crate::store::transfers::{FileOp, FileTranscripts};

fn from_row(row: &SqliteRow) -> Result<FileOp, sqlx::Error> {
    Ok(FileOp {
        session_id: row.try_get("session_id")?,
        seq: row.try_get("seq")?,
        at_ms: row.try_get("at_ms")?,
        op: row.try_get("op")?,
        path: row.try_get("path")?,
        to_path: row.try_get("to_path")?,
        bytes: row.try_get("bytes")?,
        result: row.try_get("result")?,
        sha256: row.try_get("sha256")?,
    })
}

#[async_trait]
impl FileTranscripts for SqliteStore {
    async fn file_op(&self, op: &FileOp) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO file_ops (session_id, seq, at_ms, op, path, to_path, bytes, result, sha256) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&op.session_id)
        .bind(op.seq)
        .bind(op.at_ms)
        .bind(&op.op)
        .bind(&op.path)
        .bind(&op.to_path)
        .bind(op.bytes)
        .bind(&op.result)
        .bind(&op.sha256)
        .execute(self.writer())
        .await
        .inspect_err(|e| self.report_fault(format!("a file operation could not be indexed: {e}")))?;
        Ok(())
    }

    async fn file_ops(&self, session_id: &str) -> Result<Vec<FileOp>, StoreError> {
        let rows = sqlx::query("SELECT * FROM file_ops WHERE session_id = ? ORDER BY seq")
            .bind(session_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    async fn sessions_with_file_path(&self, text: &str) -> Result<Vec<String>, StoreError> {
        let ids = sqlx::query_scalar(
            "SELECT DISTINCT session_id FROM file_ops \
             WHERE instr(path, ?1) > 0 OR instr(COALESCE(to_path, ''), ?1) > 0",
        )
        .bind(text)
        .fetch_all(self.pool())
        .await?;
        Ok(ids)
    }
}
