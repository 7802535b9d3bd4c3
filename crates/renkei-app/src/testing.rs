//! Test support (feature `testing`): an API client's key pair and signed assertions, for the
//! use-case and end-to-end tests of the OAuth token endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

use crate::api::{ASSERTION_TYPE, TokenRequest};

/// A client's key pair: the private key (PKCS#8) for signing, the public one as a JWK Set.
pub struct ClientKey {
    pkcs8: Vec<u8>,
    pub jwks: String,
}

impl ClientKey {
    pub fn generate(kid: &str) -> ClientKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref(); // 0x04 || x || y
        let (x, y) = point[1..].split_at(48);
        let jwks = serde_json::json!({ "keys": [{
            "kty": "EC", "crv": "P-384", "kid": kid, "alg": "ES384", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)
        }]})
        .to_string();
        ClientKey {
            pkcs8: pkcs8.as_ref().to_vec(),
            jwks,
        }
    }

    /// A signed client assertion.
    pub fn assertion(&self, kid: &str, client_id: &str, aud: &str, exp: i64, jti: &str) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES384);
        header.kid = Some(kid.into());
        let claims = serde_json::json!({
            "iss": client_id, "sub": client_id, "aud": aud, "exp": exp, "jti": jti
        });
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8),
        )
        .unwrap()
    }
}

pub fn token_request(assertion: String, scope: &str) -> TokenRequest {
    TokenRequest {
        grant_type: "client_credentials".into(),
        scope: scope.into(),
        client_assertion_type: ASSERTION_TYPE.into(),
        client_assertion: assertion,
        ..TokenRequest::default()
    }
}
