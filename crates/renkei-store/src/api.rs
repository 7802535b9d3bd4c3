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
}

/// A valid access token: who holds it and what it grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiToken {
    pub client: ApiClient,
    pub scopes: String,
    pub expires_at: i64,
}

const CLIENT: &str = "id, client_id, name, facility_id, jwks, scopes, cross_facility, active, created_at, profession";

impl Store {
    pub async fn create_api_client(
        &self,
        c: &NewApiClient,
        at: i64,
        audit: AuditEvent,
    ) -> Result<ApiClient> {
        let mut tx = self.begin().await?;
        let id: (i64,) = with_tx!(&mut tx, |conn| {
            sqlx::query_as("INSERT INTO api_clients (client_id, name, facility_id, jwks, scopes, cross_facility, active, created_at, profession) VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $8) RETURNING id")
                .bind(&c.client_id)
                .bind(&c.name)
                .bind(c.facility_id)
                .bind(&c.jwks)
                .bind(&c.scopes)
                .bind(c.cross_facility)
                .bind(at)
                .bind(&c.profession)
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
        client: i64,
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
            sqlx::query("INSERT INTO api_tokens (token_hash, client_id, scopes, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(token_hash)
                .bind(client)
                .bind(scopes)
                .bind(issued_at)
                .bind(expires_at)
                .execute(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// The token with this hash, if it is unexpired and its client active.
    pub async fn api_token(&self, token_hash: &str, now: i64) -> Result<Option<ApiToken>> {
        let row: Option<(i64, String, i64)> = with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT t.client_id, t.scopes, t.expires_at FROM api_tokens t JOIN api_clients c ON c.id = t.client_id WHERE t.token_hash = $1 AND t.expires_at > $2 AND c.active = TRUE")
                .bind(token_hash)
                .bind(now)
                .fetch_optional(pool)
                .await
        })?;
        let Some((client, scopes, expires_at)) = row else {
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
        }))
    }
}
