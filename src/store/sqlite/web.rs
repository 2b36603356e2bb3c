//! Sign-in links, browser sessions and API tokens in SQLite. Every write, including the checks
//! that mark a credential used, goes through the one writer connection, so the conditional
//! statements that spend a link or touch a session run one at a time across the process, and
//! SQLite's write lock does the same across processes.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::SqliteStore;
use crate::credentials::{LinkOutcome, NewToken, NewWebSession, TokenRecord, WebSession};
use crate::grants::Timestamp;
use crate::store::StoreError;
use crate::store::web::{WebAuth, idle_cutoff, is_duplicate, link_refusal};

/// The columns of a [`TokenRecord`], in every query that reads one.
const TOKEN_COLUMNS: &str =
    "id, user, scope, created_by, created_at, expires_at, last_used_at, revoked_at";

fn token_from_row(row: &SqliteRow) -> Result<TokenRecord, StoreError> {
    let scope: String = row.try_get("scope")?;
    Ok(TokenRecord {
        id: row.try_get("id")?,
        user: row.try_get("user")?,
        scope: scope
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("token scope {scope:?}")))?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

#[async_trait]
impl WebAuth for SqliteStore {
    async fn create_login_link(
        &self,
        hash: &str,
        user: &str,
        created_at: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO web_login_links (hash, user, created_at, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(hash)
        .bind(user)
        .bind(created_at)
        .bind(expires_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn consume_login_link(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<LinkOutcome, StoreError> {
        let spent: Option<String> = sqlx::query_scalar(
            "UPDATE web_login_links SET used_at = ?1 \
             WHERE hash = ?2 AND used_at IS NULL AND expires_at > ?1 RETURNING user",
        )
        .bind(now)
        .bind(hash)
        .fetch_optional(self.writer())
        .await?;
        if let Some(user) = spent {
            return Ok(LinkOutcome::SignedIn { user });
        }
        let used: Option<Option<Timestamp>> =
            sqlx::query_scalar("SELECT used_at FROM web_login_links WHERE hash = ?")
                .bind(hash)
                .fetch_optional(self.writer())
                .await?;
        Ok(link_refusal(used))
    }

    async fn create_web_session(&self, s: &NewWebSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO web_sessions (hash, user, method, csrf, created_at, last_seen, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
        )
        .bind(&s.hash)
        .bind(&s.user)
        .bind(&s.method)
        .bind(&s.csrf)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn web_session(
        &self,
        hash: &str,
        now: Timestamp,
        idle: Duration,
    ) -> Result<Option<WebSession>, StoreError> {
        let row = sqlx::query(
            "UPDATE web_sessions SET last_seen = MAX(last_seen, ?1) \
             WHERE hash = ?2 AND ended_at IS NULL AND expires_at > ?1 AND last_seen >= ?3 \
             RETURNING user, method, csrf, created_at, last_seen, expires_at",
        )
        .bind(now)
        .bind(hash)
        .bind(idle_cutoff(now, idle))
        .fetch_optional(self.writer())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(WebSession {
            user: row.try_get("user")?,
            method: row.try_get("method")?,
            csrf: row.try_get("csrf")?,
            created_at: row.try_get("created_at")?,
            last_seen: row.try_get("last_seen")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    async fn end_web_session(&self, hash: &str, now: Timestamp) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE web_sessions SET ended_at = ? WHERE hash = ? AND ended_at IS NULL")
                .bind(now)
                .bind(hash)
                .execute(self.writer())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn end_web_sessions_of(&self, user: &str, now: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE web_sessions SET ended_at = ?1 \
             WHERE user = ?2 AND ended_at IS NULL AND expires_at > ?1",
        )
        .bind(now)
        .bind(user)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    async fn create_token(&self, t: &NewToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, hash, user, scope, created_by, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.id)
        .bind(&t.hash)
        .bind(&t.user)
        .bind(t.scope.as_str())
        .bind(&t.created_by)
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(self.writer())
        .await
        .map_err(|e| match is_duplicate(&e) {
            true => StoreError::Conflict(format!("a token {} exists already", t.id)),
            false => e.into(),
        })?;
        Ok(())
    }

    async fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE ?1 IS NULL OR user = ?1 \
             ORDER BY created_at, id"
        )))
        .bind(user)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(self.writer())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn token_by_hash(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE api_tokens SET last_used_at = MAX(COALESCE(last_used_at, ?1), ?1) \
             WHERE hash = ?2 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?1) \
             RETURNING {TOKEN_COLUMNS}"
        )))
        .bind(now)
        .bind(hash)
        .fetch_optional(self.writer())
        .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn forget_web_before(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let links = sqlx::query("DELETE FROM web_login_links WHERE expires_at < ?")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        let sessions =
            sqlx::query("DELETE FROM web_sessions WHERE expires_at < ?1 OR ended_at < ?1")
                .bind(before)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(links.rows_affected() + sessions.rows_affected())
    }
}
