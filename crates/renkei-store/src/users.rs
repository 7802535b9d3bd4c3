//! Users and their credentials: password hash, TOTP secret, recovery codes, lockout state.

use renkei_core::audit::AuditEvent;

use crate::{
    NewUser, Result, Store, StoreError, User, UserProfile, exec_db, exec_tx, with_db, with_tx,
};

const COLUMNS: &str = "id, facility_id, login_id, name, name_kana, profession, role, password_hash, must_change_password, totp_secret, totp_enabled, totp_last_step, failed_logins, locked_until, emergency, active, last_login_at, created_at, updated_at";

/// The rule name reported when a facility has no account left.
pub const ACCOUNT_LIMIT: &str = "account_limit";

impl Store {
    /// Creates a user unless the facility has used up its account limit (active users count).
    pub async fn create_user(&self, u: &NewUser, at: i64, mut audit: AuditEvent) -> Result<User> {
        let mut tx = self.begin().await?;
        let limit: Option<(i64, i64)> = with_tx!(&mut tx, |c| {
            sqlx::query_as(
                "SELECT f.max_accounts, (SELECT COUNT(*) FROM users u WHERE u.facility_id = f.id AND u.active = TRUE)
                 FROM facilities f WHERE f.id = $1",
            )
            .bind(u.facility_id)
            .fetch_optional(&mut *c)
            .await
        })?;
        let Some((max, used)) = limit else {
            return Err(StoreError::NotFound);
        };
        if used >= max {
            return Err(StoreError::Conflict(ACCOUNT_LIMIT.to_string()));
        }
        let id: (i64,) = with_tx!(&mut tx, |c| {
            sqlx::query_as(
                "INSERT INTO users (facility_id, login_id, name, name_kana, profession, role, password_hash, must_change_password, emergency, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
            )
            .bind(u.facility_id)
            .bind(&u.login_id)
            .bind(&u.name)
            .bind(&u.name_kana)
            .bind(&u.profession)
            .bind(&u.role)
            .bind(&u.password_hash)
            .bind(u.must_change_password)
            .bind(u.emergency)
            .bind(at)
            .fetch_one(&mut *c)
            .await
        })?;
        audit.target = format!("user:{}", id.0);
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        self.user(id.0).await
    }

    pub async fn update_user_profile(
        &self,
        id: i64,
        p: &UserProfile,
        at: i64,
        audit: AuditEvent,
    ) -> Result<User> {
        let mut tx = self.begin().await?;
        let done = exec_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE users SET name = $1, name_kana = $2, profession = $3, role = $4, emergency = $5, active = $6, updated_at = $7 WHERE id = $8",
            )
            .bind(&p.name)
            .bind(&p.name_kana)
            .bind(&p.profession)
            .bind(&p.role)
            .bind(p.emergency)
            .bind(p.active)
            .bind(at)
            .bind(id)
            .execute(&mut *c)
            .await
        })?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        if !p.active {
            exec_tx!(&mut tx, |c| sqlx::query(
                "DELETE FROM sessions WHERE user_id = $1"
            )
            .bind(id)
            .execute(&mut *c)
            .await)?;
        }
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        self.user(id).await
    }

    pub async fn user(&self, id: i64) -> Result<User> {
        self.one_by(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"), id)
            .await
    }

    pub async fn user_by_login(&self, login_id: &str) -> Result<Option<User>> {
        self.optional_by(
            &format!("SELECT {COLUMNS} FROM users WHERE login_id = $1"),
            login_id.to_string(),
        )
        .await
    }

    /// Users of one facility, or of all when `facility_id` is `None`, by login ID.
    pub async fn list_users(&self, facility_id: Option<i64>) -> Result<Vec<User>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM users WHERE ($1 IS NULL OR facility_id = $1) ORDER BY facility_id, login_id"
        );
        with_db!(&self.db, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(facility_id)
        .fetch_all(pool)
        .await)
        .map_err(StoreError::from)
    }

    /// Sets a new password hash, clears the lockout and ends the user's sessions but `keep_session`.
    pub async fn set_password(
        &self,
        id: i64,
        password_hash: &str,
        must_change: bool,
        keep_session: Option<&str>,
        at: i64,
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let done = exec_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE users SET password_hash = $1, must_change_password = $2, failed_logins = 0, locked_until = NULL, updated_at = $3 WHERE id = $4",
            )
            .bind(password_hash)
            .bind(must_change)
            .bind(at)
            .bind(id)
            .execute(&mut *c)
            .await
        })?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        exec_tx!(&mut tx, |c| {
            sqlx::query(
                "DELETE FROM sessions WHERE user_id = $1 AND ($2 IS NULL OR token_hash <> $2)",
            )
            .bind(id)
            .bind(keep_session)
            .execute(&mut *c)
            .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// Records a failed login: the new failure count and, when the limit is reached, the lock.
    pub async fn record_login_failure(
        &self,
        id: i64,
        failed_logins: i64,
        locked_until: Option<i64>,
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("UPDATE users SET failed_logins = $1, locked_until = $2 WHERE id = $3")
                .bind(failed_logins)
                .bind(locked_until)
                .bind(id)
                .execute(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// Completes a login in one transaction: the session moves to its logged-in stage under a
    /// new token, the failure count resets, and the login's audit event is written.
    pub async fn complete_login(
        &self,
        old_hash: &str,
        new_hash: &str,
        stage: &str,
        user_id: i64,
        at: i64,
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let moved = exec_tx!(&mut tx, |c| {
            sqlx::query("UPDATE sessions SET token_hash = $1, stage = $2, last_seen_at = $3 WHERE token_hash = $4 AND user_id = $5")
                .bind(new_hash)
                .bind(stage)
                .bind(at)
                .bind(old_hash)
                .bind(user_id)
                .execute(&mut *c)
                .await
        })?;
        if moved == 0 {
            return Err(StoreError::NotFound);
        }
        exec_tx!(&mut tx, |c| {
            sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = $1 WHERE id = $2")
                .bind(at)
                .bind(user_id)
                .execute(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// Stores a TOTP secret awaiting confirmation (not yet enabled).
    pub async fn set_pending_totp_secret(&self, id: i64, secret: &str) -> Result<()> {
        exec_db!(&self.db, |pool| {
            sqlx::query("UPDATE users SET totp_secret = $1, totp_enabled = FALSE WHERE id = $2")
                .bind(secret)
                .bind(id)
                .execute(pool)
                .await
        })?;
        Ok(())
    }

    /// Enables the confirmed TOTP secret and replaces the recovery codes, with the audit event.
    pub async fn enable_totp(
        &self,
        id: i64,
        step: i64,
        recovery_hashes: &[String],
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("UPDATE users SET totp_enabled = TRUE, totp_last_step = $1 WHERE id = $2 AND totp_secret IS NOT NULL")
                .bind(step)
                .bind(id)
                .execute(&mut *c)
                .await
        })?;
        self.replace_recovery_codes_in(&mut tx, id, recovery_hashes)
            .await?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// Clears the second factor (lost device); the user enrols again at next login.
    pub async fn reset_totp(&self, id: i64, audit: AuditEvent) -> Result<()> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("UPDATE users SET totp_secret = NULL, totp_enabled = FALSE, totp_last_step = 0 WHERE id = $1")
                .bind(id)
                .execute(&mut *c)
                .await
        })?;
        exec_tx!(&mut tx, |c| sqlx::query(
            "DELETE FROM recovery_codes WHERE user_id = $1"
        )
        .bind(id)
        .execute(&mut *c)
        .await)?;
        exec_tx!(&mut tx, |c| sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1"
        )
        .bind(id)
        .execute(&mut *c)
        .await)?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// Accepts a TOTP time step only if it is later than the last one used (no replay).
    pub async fn claim_totp_step(&self, id: i64, step: i64) -> Result<bool> {
        let done = exec_db!(&self.db, |pool| {
            sqlx::query(
                "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1",
            )
            .bind(step)
            .bind(id)
            .execute(pool)
            .await
        })?;
        Ok(done == 1)
    }

    /// Marks an unused recovery code as used; false when no such unused code exists.
    pub async fn use_recovery_code(&self, user_id: i64, code_hash: &str, at: i64) -> Result<bool> {
        let done = exec_db!(&self.db, |pool| {
            sqlx::query("UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL")
                .bind(at)
                .bind(user_id)
                .bind(code_hash)
                .execute(pool)
                .await
        })?;
        Ok(done >= 1)
    }

    pub async fn unused_recovery_codes(&self, user_id: i64) -> Result<i64> {
        let n: (i64,) = with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
            )
            .bind(user_id)
            .fetch_one(pool)
            .await
        })?;
        Ok(n.0)
    }

    pub async fn replace_recovery_codes(
        &self,
        user_id: i64,
        hashes: &[String],
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        self.replace_recovery_codes_in(&mut tx, user_id, hashes)
            .await?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    async fn replace_recovery_codes_in(
        &self,
        tx: &mut crate::Tx,
        user_id: i64,
        hashes: &[String],
    ) -> Result<()> {
        exec_tx!(tx, |c| sqlx::query(
            "DELETE FROM recovery_codes WHERE user_id = $1"
        )
        .bind(user_id)
        .execute(&mut *c)
        .await)?;
        for h in hashes {
            exec_tx!(tx, |c| {
                sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                    .bind(user_id)
                    .bind(h)
                    .execute(&mut *c)
                    .await
            })?;
        }
        Ok(())
    }
}
