//! API clients (systems calling the FHIR endpoints with OAuth 2.0 client credentials), their
//! access tokens (stored as hashes) and the assertion IDs already used (replay protection).

use renkei_core::audit::AuditEvent;

use crate::{Result, Store, StoreError, exec_db, exec_tx, with_db, with_tx};

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiClient {
    pub id: i64,
    pub client_id: String,
    pub name: String,
    /// The facility the client acts for.
    pub facility_id: i64,
    /// The client's public keys, a JWK Set (JSON).
    pub jwks: String,
    /// Scopes the client may be granted, space-separated.
    pub scopes: String,
    /// May see identifiers and persons beyond its own facility's patients (a regional gateway,
    /// a neighbouring network), as decided by the operator.
    pub cross_facility: bool,
    pub active: bool,
    pub created_at: i64,
    /// The profession whose rights the client reads the record with (`clerk` by default).
    pub profession: String,
    /// Where an app acting for portal users receives authorization codes (space-separated);
    /// empty for a system client.
    pub redirect_uris: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewApiClient {
    pub client_id: String,
    pub name: String,
    pub facility_id: i64,
    pub jwks: String,
    pub scopes: String,
    pub cross_facility: bool,
    pub profession: String,
    pub redirect_uris: String,
}

/// A valid access token: who holds it and what it grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiToken {
    pub client: ApiClient,
    pub scopes: String,
    pub expires_at: i64,
    /// The portal user the token acts for (an app used by a person), if any.
    pub user_id: Option<i64>,
}

/// An authorization code being redeemed.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct OAuthCode {
    pub client_id: i64,
    pub user_id: i64,
    pub scopes: String,
    pub redirect_uri: String,
    pub challenge: String,
    pub expires_at: i64,
}

const CLIENT: &str = "id, client_id, name, facility_id, jwks, scopes, cross_facility, active, created_at, profession, redirect_uris";

impl Store {
    pub async fn create_api_client(
        &self,
        c: &NewApiClient,
        at: i64,
        audit: AuditEvent,
    ) -> Result<ApiClient> {
        let mut tx = self.begin().await?;
        let id: (i64,) = with_tx!(&mut tx, |conn| {
            sqlx::query_as("INSERT INTO api_clients (client_id, name, facility_id, jwks, scopes, cross_facility, active, created_at, profession, redirect_uris) VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $8, $9) RETURNING id")
                .bind(&c.client_id)
                .bind(&c.name)
                .bind(c.facility_id)
                .bind(&c.jwks)
                .bind(&c.scopes)
                .bind(c.cross_facility)
                .bind(at)
                .bind(&c.profession)
                .bind(&c.redirect_uris)
                .fetch_one(&mut *conn)
                .await
        })
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict("client_id".into()),
            other => other,
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        self.one_by(
            &format!("SELECT {CLIENT} FROM api_clients WHERE id = $1"),
            id.0,
        )
        .await
    }

    pub async fn api_client(&self, client_id: &str) -> Result<Option<ApiClient>> {
        self.optional_by(
            &format!("SELECT {CLIENT} FROM api_clients WHERE client_id = $1"),
            client_id.to_string(),
        )
        .await
    }

    pub async fn api_clients(&self) -> Result<Vec<ApiClient>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {CLIENT} FROM api_clients ORDER BY id"
            )))
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// Turns a client on or off; turning it off also ends its tokens.
    pub async fn set_api_client_active(
        &self,
        id: i64,
        active: bool,
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let n = exec_tx!(&mut tx, |c| {
            sqlx::query("UPDATE api_clients SET active = $1 WHERE id = $2")
                .bind(active)
                .bind(id)
                .execute(&mut *c)
                .await
        })?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        if !active {
            exec_tx!(&mut tx, |c| {
                sqlx::query("DELETE FROM api_tokens WHERE client_id = $1")
                    .bind(id)
                    .execute(&mut *c)
                    .await
            })?;
        }
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// Records a client assertion's `jti`; `false` when it was used before (a replay). Expired
    /// entries are dropped on the way.
    pub async fn use_assertion(
        &self,
        client: i64,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool> {
        exec_db!(&self.db, |pool| {
            sqlx::query("DELETE FROM api_assertions WHERE expires_at < $1")
                .bind(now)
                .execute(pool)
                .await
        })?;
        let n = exec_db!(&self.db, |pool| {
            sqlx::query("INSERT INTO api_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(client)
                .bind(jti)
                .bind(expires_at)
                .execute(pool)
                .await
        })?;
        Ok(n == 1)
    }

    /// Stores an issued token (its hash) with the audit event of its issue.
    pub async fn store_api_token(
        &self,
        token_hash: &str,
        (client, user): (i64, Option<i64>),
        scopes: &str,
        (issued_at, expires_at): (i64, i64),
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("DELETE FROM api_tokens WHERE expires_at < $1")
                .bind(issued_at)
                .execute(&mut *c)
                .await
        })?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("INSERT INTO api_tokens (token_hash, client_id, scopes, issued_at, expires_at, user_id) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(token_hash)
                .bind(client)
                .bind(scopes)
                .bind(issued_at)
                .bind(expires_at)
                .bind(user)
                .execute(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// The token with this hash, if it is unexpired and its client active.
    pub async fn api_token(&self, token_hash: &str, now: i64) -> Result<Option<ApiToken>> {
        let row: Option<(i64, String, i64, Option<i64>)> = with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT t.client_id, t.scopes, t.expires_at, t.user_id FROM api_tokens t JOIN api_clients c ON c.id = t.client_id WHERE t.token_hash = $1 AND t.expires_at > $2 AND c.active = TRUE")
                .bind(token_hash)
                .bind(now)
                .fetch_optional(pool)
                .await
        })?;
        let Some((client, scopes, expires_at, user_id)) = row else {
            return Ok(None);
        };
        let client: ApiClient = self
            .one_by(
                &format!("SELECT {CLIENT} FROM api_clients WHERE id = $1"),
                client,
            )
            .await?;
        Ok(Some(ApiToken {
            client,
            scopes,
            expires_at,
            user_id,
        }))
    }

    /// Stores an authorization code (its hash) for a user's approval, with its audit event.
    pub async fn store_oauth_code(
        &self,
        code_hash: &str,
        code: &OAuthCode,
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("DELETE FROM oauth_codes WHERE expires_at < $1")
                .bind(code.expires_at - 3600 * 1_000_000)
                .execute(&mut *c)
                .await
        })?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("INSERT INTO oauth_codes (code_hash, client_id, user_id, scopes, redirect_uri, challenge, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(code_hash)
                .bind(code.client_id)
                .bind(code.user_id)
                .bind(&code.scopes)
                .bind(&code.redirect_uri)
                .bind(&code.challenge)
                .bind(code.expires_at)
                .execute(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// Takes an authorization code once: the code if it was unused and unexpired (it is used
    /// from now on), otherwise `None`.
    pub async fn take_oauth_code(&self, code_hash: &str, now: i64) -> Result<Option<OAuthCode>> {
        let mut tx = self.begin().await?;
        let n = exec_tx!(&mut tx, |c| {
            sqlx::query("UPDATE oauth_codes SET used = TRUE WHERE code_hash = $1 AND used = FALSE AND expires_at > $2")
                .bind(code_hash)
                .bind(now)
                .execute(&mut *c)
                .await
        })?;
        if n == 0 {
            tx.commit().await?;
            return Ok(None);
        }
        let code: OAuthCode = with_tx!(&mut tx, |c| {
            sqlx::query_as("SELECT client_id, user_id, scopes, redirect_uri, challenge, expires_at FROM oauth_codes WHERE code_hash = $1")
                .bind(code_hash)
                .fetch_one(&mut *c)
                .await
        })?;
        tx.commit().await?;
        Ok(Some(code))
    }
}
