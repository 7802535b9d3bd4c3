//! Login sessions, stored server-side by the hash of their token.

use crate::{Result, SessionRecord, Store, exec_db};

impl Store {
    pub async fn create_session(&self, s: &SessionRecord) -> Result<()> {
        exec_db!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, stage, csrf_token, client, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&s.token_hash)
            .bind(s.user_id)
            .bind(&s.stage)
            .bind(&s.csrf_token)
            .bind(&s.client)
            .bind(s.created_at)
            .bind(s.last_seen_at)
            .execute(pool)
            .await
        })?;
        Ok(())
    }

    pub async fn session(&self, token_hash: &str) -> Result<Option<SessionRecord>> {
        self.optional_by(
            "SELECT token_hash, user_id, stage, csrf_token, client, created_at, last_seen_at FROM sessions WHERE token_hash = $1",
            token_hash.to_string(),
        )
        .await
    }

    pub async fn touch_session(&self, token_hash: &str, at: i64) -> Result<()> {
        exec_db!(&self.db, |pool| {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
                .bind(at)
                .bind(token_hash)
                .execute(pool)
                .await
        })?;
        Ok(())
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        exec_db!(&self.db, |pool| sqlx::query(
            "DELETE FROM sessions WHERE token_hash = $1"
        )
        .bind(token_hash)
        .execute(pool)
        .await)?;
        Ok(())
    }

    /// Removes sessions idle since before `before`; returns how many.
    pub async fn purge_idle_sessions(&self, before: i64) -> Result<u64> {
        let done = exec_db!(&self.db, |pool| sqlx::query(
            "DELETE FROM sessions WHERE last_seen_at < $1"
        )
        .bind(before)
        .execute(pool)
        .await)?;
        Ok(done)
    }
}
