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
    let Some(rest) = scope.strip_prefix("system/") else {
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
        let set: JwkSet = serde_json::from_str(&input.jwks)
            .map_err(|e| AppError::Invalid(format!("公開鍵（JWK Set）を読めません: {e}")))?;
        if set.keys.is_empty() {
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
        Ok(self.store.set_api_client_active(id, active, event).await?)
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
        if request.grant_type != "client_credentials" {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "grant_type must be client_credentials",
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
                client.id,
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
        if let Err(e) = self.store.append_audit(event).await {
            tracing::error!(error = %e, "could not audit a refused token request");
        }
    }

    /// The caller holding a bearer token, or `Unauthenticated` (unknown, expired, or its client
    /// turned off).
    pub async fn api_caller(&self, bearer: &str, peer: &str) -> Result<ApiCaller> {
        let found = self
            .store
            .api_token(&digest(bearer.trim()), self.now().0)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        Ok(ApiCaller {
            actor: client_actor(&found.client, peer),
            scopes: found
                .scopes
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            client: found.client,
        })
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
    fn scopes_follow_smart_v1_and_v2() {
        assert!(scope_allows("system/Patient.rs", "Patient", 'r'));
        assert!(scope_allows("system/Patient.rs", "Patient", 's'));
        assert!(!scope_allows("system/Patient.r", "Patient", 's'));
        assert!(scope_allows("system/Patient.read", "Patient", 's'));
        assert!(scope_allows("system/*.rs", "Observation", 's'));
        assert!(!scope_allows("system/Observation.rs", "Patient", 'r'));
        assert!(!scope_allows("user/Patient.rs", "Patient", 'r'));
        assert!(!scope_allows("system/Patient.", "Patient", 'r'));
        assert!(!scope_allows("system/Patient.rx", "Patient", 'r'));
    }
}
