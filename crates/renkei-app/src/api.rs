//! API access for systems: OAuth 2.0 client credentials as in SMART Backend Services. A client
//! is registered by the operator with its public keys (a JWK Set), the facility it acts for and
//! the scopes it may have; it obtains a short-lived bearer token by posting a JWT signed with
//! its private key (`client_assertion`, RS384 or ES384), and presents the token on each call.
//! Every issue, refusal and use is audited.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use renkei_core::audit::AuditOutcome;
use renkei_core::user::Role;
use renkei_store::api::{ApiClient, NewApiClient};

use crate::secrets::{digest, token};
use crate::{Actor, App, AppError, Result};

/// How long an access token lives (SMART Backend Services: five minutes at most).
pub const TOKEN_SECONDS: i64 = 300;
/// The furthest in the future a client assertion may expire.
pub const ASSERTION_MAX_SECONDS: i64 = 300;
/// Clock skew tolerated on assertion times.
const LEEWAY_SECONDS: i64 = 60;

/// The resource types a scope can name (besides `*`).
pub const SCOPE_TYPES: &[&str] = &[
    "Patient",
    "Encounter",
    "Condition",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationAdministration",
    "MedicationDispense",
    "Observation",
    "DiagnosticReport",
    "Procedure",
    "ImagingStudy",
    "DocumentReference",
    "Binary",
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Consent",
    "AuditEvent",
];

/// Whether a scope can be given: `system/<type or *>.<permissions>`, with SMART v2
/// permissions (`c` create, `r` read, `s` search; `rs`, `crs`) or v1's `read`. Creating is
/// what a facility's system needs to submit its records over FHIR.
pub fn known_scope(scope: &str) -> bool {
    let Some((kind, permissions)) = scope
        .strip_prefix("system/")
        .or_else(|| scope.strip_prefix("user/"))
        .and_then(|r| r.split_once('.'))
    else {
        return false;
    };
    let smart_v2 = !permissions.is_empty()
        && permissions.len() <= 5
        // Letters of "cruds", each once, in that order ("rs", "crs", "cruds").
        && permissions
            .chars()
            .try_fold(0usize, |at, c| {
                "cruds"[at..].find(c).map(|i| at + i + 1)
            })
            .is_some();
    (kind == "*" || SCOPE_TYPES.contains(&kind)) && (smart_v2 || permissions == "read")
}

/// Examples of scopes, for messages.
pub const KNOWN_SCOPES: &[&str] = &[
    "system/Patient.rs",
    "system/Observation.rs",
    "system/*.rs",
    "system/*.read",
];

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A token request as posted to the token endpoint (form fields).
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct TokenRequest {
    #[serde(default)]
    pub grant_type: String,
    #[serde(default)]
    pub scope: String,
    #[serde(default)]
    pub client_assertion_type: String,
    #[serde(default)]
    pub client_assertion: String,
    /// Authorization code grant (an app acting for a portal user).
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub redirect_uri: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub code_verifier: String,
}

/// The token endpoint's answer (RFC 6749 §5.1).
#[derive(Clone, Debug, serde::Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
}

/// An OAuth error (RFC 6749 §5.2): `error` is the code, `description` says what was wrong
/// without revealing whether a client exists.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OAuthError {
    pub error: &'static str,
    #[serde(rename = "error_description")]
    pub description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: &str) -> Self {
        OAuthError {
            error,
            description: description.to_string(),
        }
    }
}

/// A system calling the API with a valid token.
#[derive(Clone, Debug)]
pub struct ApiCaller {
    pub client: ApiClient,
    pub scopes: Vec<String>,
    /// The caller as the audit trail records it.
    pub actor: Actor,
}

impl ApiCaller {
    /// Whether a granted scope allows `interaction` (`r` read, `s` search) on `resource`.
    pub fn may(&self, resource: &str, interaction: char) -> bool {
        self.scopes
            .iter()
            .any(|s| scope_allows(s, resource, interaction))
    }
}

fn scope_allows(scope: &str, resource: &str, interaction: char) -> bool {
    // `system/` for a system acting for its facility, `user/` for an app acting for a person:
    // either way the record is decided for the actor the token carries.
    let Some(rest) = scope
        .strip_prefix("system/")
        .or_else(|| scope.strip_prefix("user/"))
    else {
        return false;
    };
    let Some((kind, permissions)) = rest.split_once('.') else {
        return false;
    };
    if kind != "*" && kind != resource {
        return false;
    }
    match permissions {
        "read" | "*" => true,
        p => p.chars().all(|c| "cruds".contains(c)) && !p.is_empty() && p.contains(interaction),
    }
}

#[derive(serde::Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    jti: String,
}

/// What the operator registers.
#[derive(Clone, Debug, Default)]
pub struct ClientInput {
    pub client_id: String,
    pub name: String,
    pub facility_id: i64,
    /// The public keys as a JWK Set (JSON).
    pub jwks: String,
    /// Space-separated, from [`KNOWN_SCOPES`].
    pub scopes: String,
    pub cross_facility: bool,
    /// The profession the client reads as (`doctor`, `pharmacist`, …; empty is `clerk`).
    pub profession: String,
    /// For an app used by portal users (authorization code with PKCE): where it receives codes,
    /// space-separated HTTPS URLs (HTTP only on loopback). Such an app needs no keys.
    pub redirect_uris: String,
}

impl App {
    /// Registers an API client (operator only). The keys must parse as a JWK Set of RSA or EC
    /// public keys; the scopes must be known.
    pub async fn register_api_client(
        &self,
        actor: &Actor,
        input: &ClientInput,
    ) -> Result<ApiClient> {
        actor.require_operator()?;
        let client_id = input.client_id.trim();
        if client_id.is_empty()
            || client_id.len() > 64
            || !client_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        {
            return Err(AppError::Invalid(
                "クライアントIDは英数字と - . _ で 64 文字以内にしてください".into(),
            ));
        }
        let redirects: Vec<&str> = input.redirect_uris.split_whitespace().collect();
        for r in &redirects {
            let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
                .iter()
                .any(|p| r.starts_with(p));
            if !(r.starts_with("https://") || loopback) || r.len() > 500 || r.contains('#') {
                return Err(AppError::Invalid(format!(
                    "リダイレクト URI「{r}」は https:// で始めてください（# は使えません）"
                )));
            }
        }
        let set: JwkSet = if input.jwks.trim().is_empty() && !redirects.is_empty() {
            // A public app (PKCE): no keys.
            JwkSet { keys: Vec::new() }
        } else {
            serde_json::from_str(&input.jwks)
                .map_err(|e| AppError::Invalid(format!("公開鍵（JWK Set）を読めません: {e}")))?
        };
        if set.keys.is_empty() && redirects.is_empty() {
            return Err(AppError::Invalid(
                "公開鍵（JWK Set）に鍵がありません".into(),
            ));
        }
        for key in &set.keys {
            DecodingKey::from_jwk(key)
                .map_err(|e| AppError::Invalid(format!("公開鍵（JWK）を使えません: {e}")))?;
        }
        let scopes: Vec<&str> = input.scopes.split_whitespace().collect();
        if scopes.is_empty() {
            return Err(AppError::Invalid("スコープを指定してください".into()));
        }
        if let Some(unknown) = scopes.iter().find(|s| !known_scope(s)) {
            return Err(AppError::Invalid(format!(
                "スコープ「{unknown}」は使えません（system/<リソース型または*>.rs の形で。例: {}）",
                KNOWN_SCOPES.join(" ")
            )));
        }
        // A system acts for its facility (system/ scopes, client credentials); an app acts for a
        // logged-in person (user/ scopes, authorization code): never both.
        let prefix = if redirects.is_empty() {
            "system/"
        } else {
            "user/"
        };
        if let Some(other) = scopes.iter().find(|s| !s.starts_with(prefix)) {
            return Err(AppError::Invalid(format!(
                "スコープ「{other}」は使えません（{}は {prefix} のスコープだけです）",
                if redirects.is_empty() {
                    "システム連携"
                } else {
                    "利用者が使うアプリ"
                }
            )));
        }
        let profession = input.profession.trim();
        let profession = if profession.is_empty() {
            "clerk"
        } else {
            profession
        };
        if renkei_core::user::Profession::from_key(profession).is_none() {
            return Err(AppError::Invalid(format!(
                "職種「{profession}」は使えません"
            )));
        }
        self.store.facility(input.facility_id).await?;
        let event = self.event(
            actor,
            "api.client.register",
            format!("client:{client_id}"),
            AuditOutcome::Success,
            &scopes.join(" "),
        );
        self.store
            .create_api_client(
                &NewApiClient {
                    client_id: client_id.to_string(),
                    name: input.name.trim().to_string(),
                    facility_id: input.facility_id,
                    jwks: input.jwks.clone(),
                    scopes: scopes.join(" "),
                    cross_facility: input.cross_facility,
                    profession: profession.to_string(),
                    redirect_uris: redirects.join(" "),
                },
                self.now().0,
                event,
            )
            .await
            .map_err(|e| match e {
                renkei_store::StoreError::Conflict(_) => {
                    AppError::Conflict("このクライアントIDはすでに登録されています".into())
                }
                other => other.into(),
            })
    }

    pub async fn api_clients(&self, actor: &Actor) -> Result<Vec<ApiClient>> {
        actor.require_operator()?;
        Ok(self.store.api_clients().await?)
    }

    /// Turns a client off (its tokens end at once) or on again. Operator only; audited.
    pub async fn set_api_client_active(&self, actor: &Actor, id: i64, active: bool) -> Result<()> {
        actor.require_operator()?;
        let event = self.event(
            actor,
            if active {
                "api.client.enable"
            } else {
                "api.client.disable"
            },
            format!("client:{id}"),
            AuditOutcome::Success,
            "",
        );
        self.store.set_api_client_active(id, active, event).await?;
        self.token_cache.clear();
        Ok(())
    }

    /// The token endpoint: checks the signed assertion against the client's registered keys
    /// and issues a bearer token for the requested scopes (all registered scopes when none are
    /// asked for). `token_url` is this endpoint's public URL, which the assertion's `aud`
    /// must name. Refusals are audited and never say whether a client exists.
    pub async fn issue_token(
        &self,
        request: &TokenRequest,
        token_url: &str,
        peer: &str,
    ) -> std::result::Result<TokenResponse, OAuthError> {
        let refused = |why: &str| OAuthError::new("invalid_client", why);
        if request.grant_type == "authorization_code" {
            return self.exchange_code(request, peer).await;
        }
        if request.grant_type != "client_credentials" {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "grant_type must be client_credentials or authorization_code",
            ));
        }
        if request.client_assertion_type != ASSERTION_TYPE || request.client_assertion.is_empty() {
            return Err(OAuthError::new(
                "invalid_request",
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer, with a client_assertion",
            ));
        }
        let header = jsonwebtoken::decode_header(&request.client_assertion)
            .map_err(|_| refused("client_assertion is not a JWT"))?;
        if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
            return Err(refused(
                "client_assertion must be signed with RS384 or ES384",
            ));
        }
        // The issuer names the client; its signature is checked below with the client's keys.
        let mut unverified = Validation::new(header.alg);
        unverified.insecure_disable_signature_validation();
        unverified.validate_exp = false;
        unverified.validate_aud = false;
        unverified.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<AssertionClaims>(
            &request.client_assertion,
            &DecodingKey::from_secret(&[]),
            &unverified,
        )
        .map_err(|_| refused("client_assertion must carry iss, sub, exp and jti"))?
        .claims;
        let client = match self.store.api_client(&claims.iss).await {
            Ok(Some(c)) if c.active => c,
            Ok(_) => {
                self.audit_token_refusal(&claims.iss, peer, "unknown or inactive client")
                    .await;
                return Err(refused("client authentication failed"));
            }
            Err(_) => return Err(OAuthError::new("server_error", "try again later")),
        };
        let verified =
            self.verify_assertion(&client, &request.client_assertion, &header, token_url);
        let claims = match verified {
            Ok(()) if claims.sub == claims.iss => claims,
            Ok(()) => {
                self.audit_token_refusal(&client.client_id, peer, "sub differs from iss")
                    .await;
                return Err(refused("client authentication failed"));
            }
            Err(why) => {
                self.audit_token_refusal(&client.client_id, peer, why).await;
                return Err(refused("client authentication failed"));
            }
        };
        let now = self.now().0 / 1_000_000;
        let why = if claims.exp + LEEWAY_SECONDS < now {
            Some("assertion expired")
        } else if claims.exp > now + ASSERTION_MAX_SECONDS + LEEWAY_SECONDS {
            Some("assertion expires too far in the future")
        } else if claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECONDS) {
            Some("assertion not yet valid")
        } else if claims.jti.is_empty() || claims.jti.len() > 256 {
            Some("assertion jti missing")
        } else {
            None
        };
        if let Some(why) = why {
            self.audit_token_refusal(&client.client_id, peer, why).await;
            return Err(refused("client authentication failed"));
        }
        match self
            .store
            .use_assertion(client.id, &claims.jti, claims.exp, now)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                self.audit_token_refusal(&client.client_id, peer, "assertion replayed")
                    .await;
                return Err(refused("client authentication failed"));
            }
            Err(_) => return Err(OAuthError::new("server_error", "try again later")),
        }
        let allowed: Vec<&str> = client.scopes.split_whitespace().collect();
        let requested: Vec<&str> = request.scope.split_whitespace().collect();
        let granted: Vec<&str> = if requested.is_empty() {
            allowed.clone()
        } else if requested.iter().all(|s| allowed.contains(s)) {
            requested
        } else {
            self.audit_token_refusal(&client.client_id, peer, "scope not allowed")
                .await;
            return Err(OAuthError::new(
                "invalid_scope",
                "a requested scope is not allowed for this client",
            ));
        };
        let access_token =
            token().map_err(|_| OAuthError::new("server_error", "try again later"))?;
        let scope = granted.join(" ");
        let actor = client_actor(&client, peer);
        let event = self.event(
            &actor,
            "api.token.issue",
            format!("client:{}", client.client_id),
            AuditOutcome::Success,
            &scope,
        );
        let issued_at = self.now().0;
        self.store
            .store_api_token(
                &digest(&access_token),
                (client.id, None),
                &scope,
                (issued_at, issued_at + TOKEN_SECONDS * 1_000_000),
                event,
            )
            .await
            .map_err(|_| OAuthError::new("server_error", "try again later"))?;
        Ok(TokenResponse {
            access_token,
            token_type: "bearer",
            expires_in: TOKEN_SECONDS,
            scope,
        })
    }

    fn verify_assertion(
        &self,
        client: &ApiClient,
        assertion: &str,
        header: &jsonwebtoken::Header,
        token_url: &str,
    ) -> std::result::Result<(), &'static str> {
        let set: JwkSet =
            serde_json::from_str(&client.jwks).map_err(|_| "stored keys unreadable")?;
        let keys: Vec<_> = match &header.kid {
            Some(kid) => set
                .keys
                .iter()
                .filter(|k| k.common.key_id.as_deref() == Some(kid))
                .collect(),
            None => set.keys.iter().collect(),
        };
        if keys.is_empty() {
            return Err("no registered key with that kid");
        }
        let mut validation = Validation::new(header.alg);
        // Times are checked against the application clock by the caller.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        validation.set_audience(&[token_url]);
        validation.set_issuer(&[client.client_id.as_str()]);
        for key in keys {
            let Ok(decoding) = DecodingKey::from_jwk(key) else {
                continue;
            };
            match jsonwebtoken::decode::<serde_json::Value>(assertion, &decoding, &validation) {
                Ok(_) => return Ok(()),
                Err(e) => match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                        return Err("aud is not this token endpoint");
                    }
                    jsonwebtoken::errors::ErrorKind::InvalidIssuer => return Err("iss mismatch"),
                    _ => continue,
                },
            }
        }
        Err("signature does not verify with the registered keys")
    }

    async fn audit_token_refusal(&self, client_id: &str, peer: &str, why: &str) {
        let actor = Actor {
            login_id: format!("client:{client_id}"),
            name: String::new(),
            client: peer.to_string(),
            ..Actor::system("api")
        };
        let mut actor = actor;
        actor.role = Role::Staff;
        let event = self.event(
            &actor,
            "api.token.issue",
            format!("client:{client_id}"),
            AuditOutcome::Denied,
            why,
        );
        if let Err(e) = self.append_audit(event).await {
            tracing::error!(error = %e, "could not audit a refused token request");
        }
    }

    /// The caller holding a bearer token, or `Unauthenticated` (unknown, expired, or its client
    /// turned off).
    pub async fn api_caller(&self, bearer: &str, peer: &str) -> Result<ApiCaller> {
        let key = digest(bearer.trim());
        let now = self.now().0;
        if let Some(mut caller) = self.token_cache.get(&key, now) {
            caller.actor.client = peer.to_string();
            return Ok(caller);
        }
        let found = self
            .store
            .api_token(&key, now)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        let actor = match found.user_id {
            // An app acting for a person: the person's own facility, profession and rights.
            Some(user) => {
                let u = self.store.user(user).await?;
                if !u.active {
                    return Err(AppError::Unauthenticated);
                }
                let mut a = self.actor_of(&u, peer);
                a.login_id = format!("{} via client:{}", u.login_id, found.client.client_id);
                a
            }
            None => client_actor(&found.client, peer),
        };
        let caller = ApiCaller {
            actor,
            scopes: found
                .scopes
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            client: found.client,
        };
        self.token_cache
            .put(key, caller.clone(), found.expires_at, now);
        Ok(caller)
    }
}

/// Bearer tokens looked up in the last [`TokenCache::SECONDS`], by digest, with the caller
/// each stands for: most API calls then skip the two lookups. Turning a client off or changing
/// a user on this server empties it at once; on another server of a cluster, the change
/// reaches a token already cached within [`TokenCache::SECONDS`]. No entry outlives its token.
#[derive(Default)]
pub struct TokenCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, (ApiCaller, i64, i64)>>,
}

impl TokenCache {
    /// How long a looked-up token is trusted without looking again.
    pub const SECONDS: i64 = 10;
    /// Entries kept at most (a flood of distinct tokens empties it rather than growing it).
    const MAX: usize = 10_000;

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (ApiCaller, i64, i64)>> {
        match self.entries.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn get(&self, key: &str, now: i64) -> Option<ApiCaller> {
        let entries = self.lock();
        let (caller, expires_at, cached_at) = entries.get(key)?;
        let fresh =
            now < *expires_at && now >= *cached_at && now - cached_at < Self::SECONDS * 1_000_000;
        fresh.then(|| caller.clone())
    }

    fn put(&self, key: String, caller: ApiCaller, expires_at: i64, now: i64) {
        let mut entries = self.lock();
        if entries.len() >= Self::MAX {
            entries.retain(|_, (_, e, c)| now < *e && now - *c < Self::SECONDS * 1_000_000);
            if entries.len() >= Self::MAX {
                entries.clear();
            }
        }
        entries.insert(key, (caller, expires_at, now));
    }

    /// Forgets every token (a client or user changed).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}

/// The audit identity of a client: its id, acting for its facility.
fn client_actor(client: &ApiClient, peer: &str) -> Actor {
    Actor {
        user_id: None,
        login_id: format!("client:{}", client.client_id),
        name: client.name.clone(),
        facility_id: Some(client.facility_id),
        profession: Some(client.profession.clone()),
        role: Role::Staff,
        emergency: false,
        client: peer.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_token_lasts_neither_past_its_expiry_nor_past_the_cache_time() {
        let client = ApiClient {
            id: 1,
            client_id: "c".into(),
            name: String::new(),
            facility_id: 1,
            jwks: String::new(),
            scopes: String::new(),
            cross_facility: false,
            active: true,
            created_at: 0,
            profession: "clerk".into(),
            redirect_uris: String::new(),
        };
        let caller = ApiCaller {
            actor: client_actor(&client, "x"),
            scopes: Vec::new(),
            client,
        };
        let s = 1_000_000;
        let cache = TokenCache::default();
        cache.put("a".into(), caller.clone(), 100 * s, 95 * s);
        assert!(cache.get("a", 96 * s).is_some());
        assert!(cache.get("a", 100 * s).is_none(), "the token expired");
        cache.put("b".into(), caller.clone(), 1000 * s, 0);
        assert!(cache.get("b", (TokenCache::SECONDS - 1) * s).is_some());
        assert!(
            cache.get("b", TokenCache::SECONDS * s).is_none(),
            "looked up again"
        );
        assert!(cache.get("b", -s).is_none(), "a clock that went back");
        cache.clear();
        assert!(cache.get("a", 96 * s).is_none());
    }

    #[test]
    fn scopes_follow_smart_v1_and_v2() {
        assert!(scope_allows("system/Patient.rs", "Patient", 'r'));
        assert!(scope_allows("system/Patient.rs", "Patient", 's'));
        assert!(!scope_allows("system/Patient.r", "Patient", 's'));
        assert!(scope_allows("system/Patient.read", "Patient", 's'));
        assert!(scope_allows("system/*.rs", "Observation", 's'));
        assert!(!scope_allows("system/Observation.rs", "Patient", 'r'));
        assert!(scope_allows("user/Patient.rs", "Patient", 'r'));
        assert!(!scope_allows("patient/Patient.rs", "Patient", 'r'));
        assert!(!scope_allows("system/Patient.", "Patient", 'r'));
        assert!(!scope_allows("system/Patient.rx", "Patient", 'r'));
    }
}

/// What an app asks for at `/oauth/authorize` (SMART App Launch, standalone).
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct AuthorizeRequest {
    #[serde(default)]
    pub response_type: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub redirect_uri: String,
    #[serde(default)]
    pub scope: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub code_challenge: String,
    #[serde(default)]
    pub code_challenge_method: String,
}

/// What the approval screen shows.
#[derive(Clone, Debug)]
pub struct AuthorizeView {
    pub client_name: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub redirect_uri: String,
}

/// How long an authorization code lives.
pub const CODE_SECONDS: i64 = 60;

/// base64url (no padding) of SHA-256: the PKCE S256 challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine;
    use sha2::{Digest, Sha256};
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl App {
    /// Checks an authorization request from an app before a logged-in user approves it.
    /// Errors are for the user's screen (the redirect URI is not trusted until checked).
    pub async fn authorize_request(
        &self,
        actor: &Actor,
        r: &AuthorizeRequest,
    ) -> Result<AuthorizeView> {
        actor.user_id.ok_or(AppError::Forbidden)?;
        let client = match self.store.api_client(r.client_id.trim()).await? {
            Some(c) if c.active && !c.redirect_uris.is_empty() => c,
            _ => {
                return Err(AppError::Invalid(
                    "このアプリは登録されていません（client_id を確認してください）".into(),
                ));
            }
        };
        if !client
            .redirect_uris
            .split_whitespace()
            .any(|u| u == r.redirect_uri)
        {
            return Err(AppError::Invalid(
                "リダイレクト URI がアプリの登録と一致しません".into(),
            ));
        }
        if r.response_type != "code" {
            return Err(AppError::Invalid(
                "response_type は code にしてください".into(),
            ));
        }
        if r.code_challenge_method != "S256"
            || !(43..=128).contains(&r.code_challenge.len())
            || !r
                .code_challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(AppError::Invalid(
                "PKCE（code_challenge と code_challenge_method=S256）が必要です".into(),
            ));
        }
        if r.state.len() > 500 {
            return Err(AppError::Invalid("state が長すぎます".into()));
        }
        let allowed: Vec<&str> = client.scopes.split_whitespace().collect();
        let mut scopes: Vec<String> = r
            .scope
            .split_whitespace()
            // SMART launch scopes (openid, launch/patient …) are not offered: only data scopes.
            .filter(|s| s.starts_with("user/"))
            .map(str::to_string)
            .collect();
        if scopes.is_empty() {
            scopes = allowed
                .iter()
                .filter(|s| s.starts_with("user/"))
                .map(|s| s.to_string())
                .collect();
        }
        if scopes.is_empty() || scopes.iter().any(|s| !allowed.contains(&s.as_str())) {
            return Err(AppError::Invalid(
                "このアプリに許可されていない範囲（scope）が求められています".into(),
            ));
        }
        Ok(AuthorizeView {
            client_name: client.name,
            client_id: client.client_id,
            scopes,
            redirect_uri: r.redirect_uri.clone(),
        })
    }

    /// The user approves (or refuses) the app: the URL to send the browser back to, with a
    /// single-use code valid for [`CODE_SECONDS`] (or `error=access_denied`). Audited.
    pub async fn authorize_decision(
        &self,
        actor: &Actor,
        r: &AuthorizeRequest,
        approve: bool,
    ) -> Result<String> {
        let view = self.authorize_request(actor, r).await?;
        let user = actor.user_id.ok_or(AppError::Forbidden)?;
        let client = self
            .store
            .api_client(&view.client_id)
            .await?
            .ok_or(AppError::NotFound)?;
        let sep = if r.redirect_uri.contains('?') {
            '&'
        } else {
            '?'
        };
        let state = if r.state.is_empty() {
            String::new()
        } else {
            format!("&state={}", url_encode(&r.state))
        };
        if !approve {
            self.append_audit(self.event(
                actor,
                "api.authorize",
                format!("client:{}", client.client_id),
                AuditOutcome::Denied,
                "refused by the user",
            ))
            .await?;
            return Ok(format!("{}{sep}error=access_denied{state}", r.redirect_uri));
        }
        let code = token()?;
        let event = self.event(
            actor,
            "api.authorize",
            format!("client:{}", client.client_id),
            AuditOutcome::Success,
            &view.scopes.join(" "),
        );
        self.store
            .store_oauth_code(
                &digest(&code),
                &renkei_store::api::OAuthCode {
                    client_id: client.id,
                    user_id: user,
                    scopes: view.scopes.join(" "),
                    redirect_uri: r.redirect_uri.clone(),
                    challenge: r.code_challenge.clone(),
                    expires_at: self.now().0 + CODE_SECONDS * 1_000_000,
                },
                event,
            )
            .await?;
        Ok(format!("{}{sep}code={code}{state}", r.redirect_uri))
    }

    /// The token endpoint's authorization-code grant: the code once, from the app it was
    /// issued to, at the same redirect URI, with the PKCE verifier.
    async fn exchange_code(
        &self,
        request: &TokenRequest,
        peer: &str,
    ) -> std::result::Result<TokenResponse, OAuthError> {
        let grant = |why: &str| OAuthError::new("invalid_grant", why);
        let code = match self
            .store
            .take_oauth_code(&digest(request.code.trim()), self.now().0)
            .await
        {
            Ok(Some(c)) => c,
            Ok(None) => {
                self.audit_token_refusal(&request.client_id, peer, "unknown, used or expired code")
                    .await;
                return Err(grant("the code is unknown, used or expired"));
            }
            Err(_) => return Err(OAuthError::new("server_error", "try again later")),
        };
        let client = match self.store.api_client(request.client_id.trim()).await {
            Ok(Some(c)) if c.active && c.id == code.client_id => c,
            Ok(_) => {
                self.audit_token_refusal(&request.client_id, peer, "code of another client")
                    .await;
                return Err(grant("the code was not issued to this client"));
            }
            Err(_) => return Err(OAuthError::new("server_error", "try again later")),
        };
        if request.redirect_uri != code.redirect_uri {
            self.audit_token_refusal(&client.client_id, peer, "redirect_uri differs")
                .await;
            return Err(grant("redirect_uri differs from the authorization request"));
        }
        if pkce_challenge(request.code_verifier.trim()) != code.challenge {
            self.audit_token_refusal(&client.client_id, peer, "PKCE verifier does not match")
                .await;
            return Err(grant("code_verifier does not match the code_challenge"));
        }
        let user = match self.store.user(code.user_id).await {
            Ok(u) if u.active => u,
            _ => return Err(grant("the user can no longer sign in")),
        };
        let access_token =
            token().map_err(|_| OAuthError::new("server_error", "try again later"))?;
        let mut actor = self.actor_of(&user, peer);
        actor.login_id = format!("{} via client:{}", user.login_id, client.client_id);
        let event = self.event(
            &actor,
            "api.token.issue",
            format!("client:{}", client.client_id),
            AuditOutcome::Success,
            &code.scopes,
        );
        let issued_at = self.now().0;
        self.store
            .store_api_token(
                &digest(&access_token),
                (client.id, Some(user.id)),
                &code.scopes,
                (issued_at, issued_at + TOKEN_SECONDS * 1_000_000),
                event,
            )
            .await
            .map_err(|_| OAuthError::new("server_error", "try again later"))?;
        Ok(TokenResponse {
            access_token,
            token_type: "bearer",
            expires_in: TOKEN_SECONDS,
            scope: code.scopes,
        })
    }
}

/// Percent-encodes a query value.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
