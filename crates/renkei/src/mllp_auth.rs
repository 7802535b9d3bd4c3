//! Who an MLLP connection speaks for. Each sending facility is bound (`[[mllp_sender]]`) to
//! the TLS client certificates it presents (SHA-256 fingerprints, the certificate chained to
//! `mllp_client_ca`) and/or to the addresses its messages come from inside an IPsec VPN. A
//! message whose MSH-4 names another facility is refused by the intake use case.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use renkei_app::intake::HlSender;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// One sending facility and what identifies its connections.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sender {
    /// The facility's 10-digit code.
    pub facility: String,
    /// Addresses or networks (`10.1.2.3`, `10.1.2.0/24`, IPv6 too).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// SHA-256 fingerprints of its TLS client certificates (hex, colons and case ignored).
    #[serde(default)]
    pub certificates: Vec<String>,
}

/// A fingerprint as compared: lower-case hex without separators.
fn normalise(fingerprint: &str) -> String {
    fingerprint
        .trim()
        .trim_start_matches("sha256:")
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_ascii_lowercase()
}

impl Sender {
    /// The addresses as networks; an error names the one that is not an address.
    pub fn networks(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.addresses
            .iter()
            .map(|a| {
                a.parse::<ipnet::IpNet>()
                    .or_else(|_| a.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("mllp_sender の addresses「{a}」は IP アドレスでもネットワーク（CIDR）でもありません"))
            })
            .collect()
    }

    /// Checks the entry; the error names what is wrong.
    pub fn check(&self) -> Result<(), String> {
        renkei_core::facility::FacilityCode::parse(&self.facility)
            .map_err(|e| format!("mllp_sender の facility「{}」: {e}", self.facility))?;
        self.networks()?;
        if let Some(bad) = self.certificates.iter().find(|c| normalise(c).len() != 64) {
            return Err(format!(
                "mllp_sender の certificates「{bad}」は SHA-256 の指紋（16進数64桁）ではありません"
            ));
        }
        if self.addresses.is_empty() && self.certificates.is_empty() {
            return Err(format!(
                "mllp_sender「{}」には addresses か certificates を指定してください",
                self.facility
            ));
        }
        Ok(())
    }
}

/// Who a connection from `peer`, with this client certificate (DER) if any, speaks for. A
/// certificate bound to a facility decides; otherwise the address. Off loopback, and wherever
/// senders are configured, MSH-4 must name that facility.
pub fn identify(senders: &[Sender], peer: SocketAddr, cert: Option<&[u8]>) -> HlSender {
    let ip = peer.ip();
    let by_cert = cert.and_then(|der| {
        let fingerprint = hex::encode(Sha256::digest(der));
        senders
            .iter()
            .find(|s| s.certificates.iter().any(|c| normalise(c) == fingerprint))
    });
    let by_address = || {
        senders.iter().find(|s| {
            s.networks()
                .unwrap_or_default()
                .iter()
                .any(|n| n.contains(&ip))
        })
    };
    HlSender {
        peer: peer.to_string(),
        facility_code: by_cert.or_else(by_address).map(|s| s.facility.clone()),
        must_match: !ip.is_loopback() || !senders.is_empty(),
    }
}

/// The MLLP listener's TLS acceptor when senders present client certificates: the server's
/// certificate and key, and client certificates verified against `client_ca` (a connection
/// without one is still accepted, and then identified by its address).
pub fn acceptor_with_client_ca(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<tokio_rustls::TlsAcceptor> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("TLS 証明書 {} を読めません", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("TLS 秘密鍵 {} を読めません", key.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(client_ca)
        .with_context(|| format!("mllp_client_ca {} を読めません", client_ca.display()))?
    {
        let ca =
            ca.with_context(|| format!("mllp_client_ca {} を読めません", client_ca.display()))?;
        roots.add(ca).with_context(|| {
            format!(
                "mllp_client_ca {} は CA 証明書ではありません",
                client_ca.display()
            )
        })?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .context("クライアント証明書の検証を設定できません")?;
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context(
            "MLLP の TLS 設定を作れません（証明書と秘密鍵が対応しているか確認してください）",
        )?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(addresses: &[&str], certificates: &[&str]) -> Sender {
        Sender {
            facility: "3411234564".into(),
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            certificates: certificates.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_certificate_decides_before_the_address() {
        let der = b"not really DER, only hashed";
        let fp = hex::encode(Sha256::digest(der)).to_uppercase();
        let with_colons: String = fp
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        let senders = vec![
            sender(&[], &[&with_colons]),
            Sender {
                facility: "3410100113".into(),
                ..sender(&["10.0.0.0/8"], &[])
            },
        ];
        let peer: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        assert_eq!(
            identify(&senders, peer, Some(der)).facility_code.as_deref(),
            Some("3411234564")
        );
        let by_address = identify(&senders, peer, None);
        assert_eq!(by_address.facility_code.as_deref(), Some("3410100113"));
        assert!(by_address.must_match);
        let stranger = identify(&senders, "192.0.2.1:1".parse().unwrap(), Some(b"other"));
        assert_eq!(stranger.facility_code, None);
        assert!(!identify(&[], "127.0.0.1:1".parse().unwrap(), None).must_match);
    }

    #[test]
    fn bad_entries_are_named() {
        assert!(sender(&["10.0.0.1"], &[]).check().is_ok());
        assert!(
            sender(&["nowhere"], &[])
                .check()
                .unwrap_err()
                .contains("nowhere")
        );
        assert!(sender(&[], &["abcd"]).check().unwrap_err().contains("abcd"));
        assert!(sender(&[], &[]).check().is_err());
    }
}
