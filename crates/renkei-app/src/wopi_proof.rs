//! WOPI proof keys: every request an office server makes to the WOPI host is signed with the
//! key it publishes in its discovery document (`<proof-key modulus=… exponent=…
//! oldmodulus=… oldexponent=…/>`), so a stolen access token is not enough to read or write a
//! file from elsewhere. The signed bytes (MS-WOPI §2.2.2 "Proof keys"): the access token, the
//! request URL in upper case and the request's timestamp (`X-WOPI-TimeStamp`, .NET ticks), each
//! behind its length as a 4-byte big-endian integer. RSA PKCS#1 v1.5 with SHA-256.
//!
//! Accepted: `X-WOPI-Proof` under the current key, `X-WOPI-ProofOld` under the current key, or
//! `X-WOPI-Proof` under the old key (a key rotation in progress). A timestamp more than 20
//! minutes away from now is refused.

use base64::Engine as _;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};

/// The office server's published keys (modulus and exponent, big-endian bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofKeys {
    pub current: (Vec<u8>, Vec<u8>),
    pub old: Option<(Vec<u8>, Vec<u8>)>,
}

/// What a WOPI request carried for its proof.
#[derive(Clone, Debug, Default)]
pub struct Proof<'a> {
    pub access_token: &'a str,
    /// The URL as the office server requested it (scheme, host, path and query).
    pub url: &'a str,
    /// `X-WOPI-TimeStamp`.
    pub timestamp: &'a str,
    /// `X-WOPI-Proof`, `X-WOPI-ProofOld` (Base64).
    pub proof: &'a str,
    pub proof_old: &'a str,
}

/// .NET ticks (100 ns since 0001-01-01) at the Unix epoch.
const EPOCH_TICKS: i128 = 621_355_968_000_000_000;
/// How far a request's timestamp may be from now.
const MAX_AGE_SECONDS: i128 = 20 * 60;
/// The discovery document is read only up to this size.
const MAX_DISCOVERY_BYTES: usize = 4 * 1024 * 1024;

/// The value of `name="…"` inside `tag` (an element's start tag, as text).
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    tag.get(at..)?.split('"').next()
}

fn base64_bytes(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .filter(|b| !b.is_empty())
}

/// The proof keys of a WOPI discovery document; the error says what is missing.
pub fn parse_discovery(xml: &str) -> Result<ProofKeys, String> {
    if xml.len() > MAX_DISCOVERY_BYTES {
        return Err("the discovery document is too large".into());
    }
    let start = xml
        .find("<proof-key")
        .ok_or("the discovery document has no proof-key")?;
    let tag = xml
        .get(start..)
        .and_then(|t| t.split('>').next())
        .unwrap_or_default();
    let pair = |m: &str, e: &str| -> Option<(Vec<u8>, Vec<u8>)> {
        Some((
            base64_bytes(attribute(tag, m)?)?,
            base64_bytes(attribute(tag, e)?)?,
        ))
    };
    let current = pair("modulus", "exponent").ok_or("the proof-key has no modulus/exponent")?;
    Ok(ProofKeys {
        current,
        old: pair("oldmodulus", "oldexponent"),
    })
}

/// The bytes the office server signed.
pub fn signed_bytes(access_token: &str, url: &str, ticks: i64) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [
        access_token.as_bytes(),
        url.to_uppercase().as_bytes(),
        &ticks.to_be_bytes(),
    ] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn verifies(key: &(Vec<u8>, Vec<u8>), message: &[u8], signature_b64: &str) -> bool {
    let Some(signature) = base64_bytes(signature_b64) else {
        return false;
    };
    RsaPublicKeyComponents {
        n: &key.0,
        e: &key.1,
    }
    .verify(&RSA_PKCS1_2048_8192_SHA256, message, &signature)
    .is_ok()
}

/// Whether `proof` is signed by the office server and fresh at `now_unix_seconds`.
pub fn verify(keys: &ProofKeys, proof: &Proof<'_>, now_unix_seconds: i64) -> bool {
    let Ok(ticks) = proof.timestamp.trim().parse::<i64>() else {
        return false;
    };
    let at = (i128::from(ticks) - EPOCH_TICKS) / 10_000_000;
    if (at - i128::from(now_unix_seconds)).abs() > MAX_AGE_SECONDS {
        return false;
    }
    let message = signed_bytes(proof.access_token, proof.url, ticks);
    verifies(&keys.current, &message, proof.proof)
        || verifies(&keys.current, &message, proof.proof_old)
        || keys
            .old
            .as_ref()
            .is_some_and(|old| verifies(old, &message, proof.proof))
}

/// The .NET ticks of a Unix time (for tests and for clients of this module).
pub fn ticks_of(unix_seconds: i64) -> i64 {
    i64::try_from(i128::from(unix_seconds) * 10_000_000 + EPOCH_TICKS).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_bytes_follow_ms_wopi() {
        let b = signed_bytes("tok", "https://h/wopi/files/1?access_token=tok", 5);
        assert_eq!(&b[..4], &3u32.to_be_bytes());
        assert_eq!(&b[4..7], b"tok");
        let url = "HTTPS://H/WOPI/FILES/1?ACCESS_TOKEN=TOK";
        assert_eq!(&b[7..11], &(url.len() as u32).to_be_bytes());
        assert_eq!(&b[11..11 + url.len()], url.as_bytes());
        assert_eq!(&b[b.len() - 12..b.len() - 8], &8u32.to_be_bytes());
        assert_eq!(&b[b.len() - 8..], &5i64.to_be_bytes());
    }

    #[test]
    fn discovery_keys_are_read_and_bad_documents_named() {
        let xml = r#"<wopi-discovery><net-zone/><proof-key oldvalue="x" oldmodulus="AQID" oldexponent="AQAB" modulus="BAUG" exponent="AQAB" value="y"/></wopi-discovery>"#;
        let keys = parse_discovery(xml).unwrap();
        assert_eq!(keys.current, (vec![4, 5, 6], vec![1, 0, 1]));
        assert_eq!(keys.old, Some((vec![1, 2, 3], vec![1, 0, 1])));
        assert!(parse_discovery("<wopi-discovery/>").is_err());
        assert!(parse_discovery(r#"<proof-key modulus="" exponent="AQAB"/>"#).is_err());
    }

    #[test]
    fn a_stale_or_unsigned_request_is_refused() {
        let keys = ProofKeys {
            current: (vec![1; 256], vec![1, 0, 1]),
            old: None,
        };
        let now = 1_795_219_200;
        let fresh = ticks_of(now).to_string();
        let proof = Proof {
            access_token: "t",
            url: "https://h/wopi/files/1",
            timestamp: &fresh,
            proof: "AAAA",
            proof_old: "",
        };
        assert!(!verify(&keys, &proof, now), "a signature that is not one");
        let stale = ticks_of(now - 21 * 60).to_string();
        assert!(!verify(
            &keys,
            &Proof {
                timestamp: &stale,
                ..proof.clone()
            },
            now
        ));
        assert!(!verify(
            &keys,
            &Proof {
                timestamp: "x",
                ..proof
            },
            now
        ));
    }
}
