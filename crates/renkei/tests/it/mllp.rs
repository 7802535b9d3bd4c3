//! The MLLP listener: store, then ACK; duplicates acknowledged once stored; rejections say why;
//! many senders at once.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::*;

const HOSPITAL: &str = "3411234564";

/// An ADT^A08 from the hospital, in UTF-8 (MSH-18 says so).
fn adt(control: &str, name: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|HIS|{HOSPITAL}|RENKEI|RENKEI|20261121090000||ADT^A08^ADT_A01|{control}|P|2.5||||||UNICODE UTF-8\rEVN||20261121090000\rPID|0001||P{control}^^^^PI||{name}^太郎^^^^^L^I||19480405|M\rPV1|0001|O\r"
    )
    .into_bytes()
}

/// A data directory with the sending hospital registered.
fn with_hospital() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    id_of(&renkei(
        dir.path(),
        &[
            "admin",
            "create-facility",
            "--type",
            "hospital",
            "--name",
            "登呂病院",
            "--code",
            HOSPITAL,
            "--discloses",
        ],
    ));
    dir
}

/// Starts the server with MLLP on a free port (`extra` after `serve`); returns the server and
/// the MLLP listener's URL (`mllp://…` or `mllp+tls://…`).
fn serve_mllp(d: &Path, extra: &[&str]) -> (Server, String) {
    let mut args = vec!["--listen", "127.0.0.1:0", "--mllp-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = start(d, &args);
    let url = server.others.recv_timeout(Duration::from_secs(10)).unwrap();
    (server, url)
}

/// `host:port` of a listener URL.
fn address(url: &str) -> String {
    url.split("://").nth(1).unwrap_or(url).to_string()
}

fn exchange(stream: &mut TcpStream, message: &[u8]) -> String {
    let mut framed = vec![0x0b];
    framed.extend_from_slice(message);
    framed.extend_from_slice(&[0x1c, 0x0d]);
    stream.write_all(&framed).unwrap();
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(&[0x1c, 0x0d]) {
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            1,
            "connection closed before the ACK"
        );
        reply.push(byte[0]);
    }
    String::from_utf8_lossy(&reply[1..reply.len() - 2]).into_owned()
}

fn count_messages(d: &Path) -> i64 {
    sqlite_texts(
        d,
        "SELECT CAST(COUNT(*) AS TEXT) FROM clinical_messages WHERE source = 'mllp'",
    )[0]
    .parse()
    .unwrap()
}

#[test]
fn stores_then_acknowledges_and_rejects_with_reasons() {
    let dir = with_hospital();
    let d = dir.path();
    let (server, mllp) = serve_mllp(d, &[]);
    assert!(mllp.starts_with("mllp://"), "{mllp}");
    let addr = address(&mllp);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();

    let ack = exchange(&mut s, &adt("C0001", "患者"));
    assert!(ack.contains("MSA|AA|C0001"), "{ack}");
    assert!(
        ack.starts_with("MSH|^~\\&|RENKEI|RENKEI|HIS|3411234564|"),
        "sender and receiver swapped: {ack}"
    );
    // Sent again (a lost ACK): acknowledged, not stored twice.
    let again = exchange(&mut s, &adt("C0001", "患者"));
    assert!(again.contains("MSA|AA|C0001"), "{again}");
    assert_eq!(count_messages(d), 1);

    // Unknown sender, unknown type, not HL7 at all: AR with an ERR that says why.
    let unknown = exchange(
        &mut s,
        &String::from_utf8(adt("C0002", "患者"))
            .unwrap()
            .replace(HOSPITAL, "3499999999")
            .into_bytes(),
    );
    assert!(
        unknown.contains("MSA|AR|C0002") && unknown.contains("ERR|") && unknown.contains("MSH-4"),
        "{unknown}"
    );
    let odd_type = String::from_utf8(adt("C0003", "患者"))
        .unwrap()
        .replace("ADT^A08^ADT_A01", "QRY^A19");
    let reply = exchange(&mut s, odd_type.as_bytes());
    assert!(
        reply.contains("MSA|AR|C0003") && reply.contains("200^"),
        "{reply}"
    );
    let garbage = exchange(&mut s, b"hello");
    assert!(
        garbage.contains("MSA|AR|") && garbage.contains("not an HL7 v2 message"),
        "{garbage}"
    );
    assert_eq!(count_messages(d), 1, "nothing rejected was stored");
    // The connection is still usable after rejections.
    assert!(exchange(&mut s, &adt("C0004", "患者")).contains("MSA|AA|C0004"));
    assert!(
        !server.logs().contains("患者"),
        "no patient data in the log"
    );
}

#[test]
fn many_senders_at_once() {
    let dir = with_hospital();
    let d = dir.path();
    let (_server, mllp) = serve_mllp(d, &[]);
    let addr = address(&mllp);
    let senders: Vec<_> = (0..16)
        .map(|sender| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                for n in 0..10 {
                    let control = format!("S{sender:02}N{n:02}");
                    let ack = exchange(&mut s, &adt(&control, "並行"));
                    assert!(ack.contains(&format!("MSA|AA|{control}")), "{ack}");
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    assert_eq!(count_messages(d), 160);
}

#[test]
fn plain_mllp_off_loopback_needs_tls_or_an_explicit_choice() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(bin())
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--mllp-listen",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--mllp-allow-plain"), "{}", stderr(&o));
}

#[test]
fn limits_on_size_and_idle_senders() {
    let dir = with_hospital();
    let d = dir.path();
    let config = d.join("renkei.toml");
    std::fs::write(
        &config,
        "mllp_max_message_bytes = 300\nmllp_idle_seconds = 1\nmllp_frame_seconds = 1\n",
    )
    .unwrap();
    let (_server, mllp) = serve_mllp(d, &["--config", config.to_str().unwrap()]);
    let addr = address(&mllp);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Too large: refused with a reason, the connection stays usable.
    let big = String::from_utf8(adt("BIG01", "患者"))
        .unwrap()
        .replace("PV1|0001|O", &format!("PV1|0001|O|{}", "x".repeat(400)));
    let reply = exchange(&mut s, big.as_bytes());
    assert!(
        reply.contains("MSA|AR|") && reply.contains("longer than the limit of 300 bytes"),
        "{reply}"
    );
    assert!(exchange(&mut s, &adt("OK001", "患者")).contains("MSA|AA|OK001"));
    // An idle connection is closed by the server.
    std::thread::sleep(Duration::from_millis(2500));
    let mut byte = [0u8; 1];
    assert_eq!(
        s.read(&mut byte).unwrap_or(0),
        0,
        "closed after the idle limit"
    );
    // A sender that starts a message and stalls is cut off too.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    slow.write_all(b"\x0bMSH|^~\\&|HIS|").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        slow.read(&mut byte).unwrap_or(0),
        0,
        "closed after the frame deadline"
    );
}

/// A sender that trickles a message one byte at a time does not hold it open: the deadline
/// runs from the message's first byte, not from the last read.
#[test]
fn a_trickled_message_meets_an_absolute_deadline() {
    let dir = with_hospital();
    let d = dir.path();
    let config = d.join("renkei.toml");
    std::fs::write(&config, "mllp_frame_seconds = 2\nmllp_idle_seconds = 60\n").unwrap();
    let (_server, mllp) = serve_mllp(d, &["--config", config.to_str().unwrap()]);
    let mut slow = TcpStream::connect(address(&mllp)).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = std::time::Instant::now();
    let message = adt("SLOW1", "患者");
    let mut framed = vec![0x0b];
    framed.extend_from_slice(&message);
    let mut closed_at = None;
    for byte in framed.iter().take(40) {
        if slow.write_all(&[*byte]).is_err() {
            closed_at = Some(started.elapsed());
            break;
        }
        let mut b = [0u8; 1];
        match slow.read(&mut b) {
            Ok(0) => {
                closed_at = Some(started.elapsed());
                break;
            }
            Ok(_) => panic!("an answer to half a message"),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed_at = Some(started.elapsed());
                break;
            }
        }
    }
    let closed_at = closed_at.expect("the trickling sender was never cut off");
    assert!(
        closed_at < Duration::from_secs(6),
        "cut off after {closed_at:?}, not near the 2 s deadline"
    );
}

/// One address cannot take every slot: its connections beyond its share are closed at once,
/// and the ones it has keep working.
#[test]
fn one_peer_cannot_take_every_connection() {
    let dir = with_hospital();
    let d = dir.path();
    let config = d.join("renkei.toml");
    std::fs::write(&config, "mllp_max_connections_per_peer = 2\n").unwrap();
    let (_server, mllp) = serve_mllp(d, &["--config", config.to_str().unwrap()]);
    let addr = address(&mllp);
    let mut first = TcpStream::connect(&addr).unwrap();
    let _second = TcpStream::connect(&addr).unwrap();
    let mut third = TcpStream::connect(&addr).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut byte = [0u8; 1];
    let closed = match third.read(&mut byte) {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    };
    assert!(closed, "the third is closed at once, not left waiting");
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(exchange(&mut first, &adt("PEER1", "患者")).contains("MSA|AA|PEER1"));
}

#[test]
fn mllp_over_tls() {
    let dir = with_hospital();
    let d = dir.path();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(d.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(d.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let c = d.join("cert.pem").to_string_lossy().into_owned();
    let k = d.join("key.pem").to_string_lossy().into_owned();
    let (_server, mllp) = serve_mllp(d, &["--tls-cert", &c, "--tls-key", &k]);
    assert!(mllp.starts_with("mllp+tls://"), "{mllp}");
    let addr = address(&mllp);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), "localhost".try_into().unwrap())
            .unwrap();
    let tcp = TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut framed = vec![0x0b];
    framed.extend_from_slice(&adt("TLS01", "患者"));
    framed.extend_from_slice(&[0x1c, 0x0d]);
    tls.write_all(&framed).unwrap();
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(&[0x1c, 0x0d]) {
        assert_eq!(tls.read(&mut byte).unwrap(), 1);
        reply.push(byte[0]);
    }
    assert!(String::from_utf8_lossy(&reply).contains("MSA|AA|TLS01"));
}

#[test]
fn adt_a40_merges_the_prior_patient_id() {
    let dir = with_hospital();
    let d = dir.path();
    let (_server, mllp) = serve_mllp(d, &[]);
    let addr = address(&mllp);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Records under the old ID P-OLD, then the hospital merges P-OLD into P-NEW.
    let lab = format!(
        "MSH|^~\\&|HIS|{HOSPITAL}|RENKEI|RENKEI|20261121090000||OUL^R22^OUL_R22|L1|P|2.5||||||UNICODE UTF-8\rPID|0001||P-OLD^^^^PI||患者^太郎\rSPM|1|||023^血清^JC10\rOBX|1|NM|3D010000001926101^グルコース^JC10||105|mg/dL|73-109||||F|||20261121\r"
    );
    assert!(exchange(&mut s, lab.as_bytes()).contains("MSA|AA|L1"));
    let a40 = format!(
        "MSH|^~\\&|HIS|{HOSPITAL}|RENKEI|RENKEI|20261121100000||ADT^A40^ADT_A39|M1|P|2.5||||||UNICODE UTF-8\rEVN||20261121100000\rPID|0001||P-NEW^^^^PI||患者^太郎||19480405|M\rMRG|P-OLD^^^^PI\r"
    );
    assert!(exchange(&mut s, a40.as_bytes()).contains("MSA|AA|M1"));
    assert!(
        exchange(&mut s, a40.as_bytes()).contains("MSA|AA|M1"),
        "re-sent: acknowledged, applied once"
    );
    let no_mrg = a40.replace("MRG|P-OLD^^^^PI\r", "").replace("|M1|", "|M2|");
    assert!(exchange(&mut s, no_mrg.as_bytes()).contains("MSA|AR|M2"));
    let url = format!("sqlite://{}", d.join("renkei.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (old, new, merges): (i64, i64, i64) = rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let count = |sql: &'static str| {
            let pool = pool.clone();
            async move { sqlx::query_as::<_, (i64,)>(sql).fetch_one(&pool).await.unwrap().0 }
        };
        let old = count("SELECT COUNT(*) FROM clinical_items WHERE patient_local_id = 'P-OLD'").await;
        let new = count("SELECT COUNT(*) FROM clinical_items WHERE patient_local_id = 'P-NEW' AND category = 'lab_result'").await;
        let merges = count("SELECT COUNT(*) FROM patient_merges").await;
        (old, new, merges)
    });
    assert_eq!((old, new, merges), (0, 1, 1));
}

fn audit_details(d: &Path, action: &str) -> Vec<String> {
    sqlite_texts(
        d,
        &format!(
            "SELECT target || ' ' || detail FROM audit_events WHERE action = '{action}' ORDER BY seq"
        ),
    )
}

/// A connection speaks for the facility its address is bound to (`[[mllp_sender]]`): a
/// message naming another facility in MSH-4 is refused. A control ID re-sent with other
/// content is refused, never a silent replacement. Every message is audited.
#[test]
fn a_sender_speaks_only_for_itself_and_cannot_rewrite_a_message() {
    let dir = with_hospital();
    let d = dir.path();
    let config = d.join("renkei.toml");
    std::fs::write(
        &config,
        "[[mllp_sender]]\nfacility = \"3410100113\"\naddresses = [\"127.0.0.0/8\"]\n",
    )
    .unwrap();
    {
        let (_server, mllp) = serve_mllp(d, &["--config", config.to_str().unwrap()]);
        let mut s = TcpStream::connect(address(&mllp)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let reply = exchange(&mut s, &adt("IMP01", "患者"));
        assert!(
            reply.contains("MSA|AR|IMP01") && reply.contains("not authenticated"),
            "{reply}"
        );
    }
    assert_eq!(count_messages(d), 0, "nothing stored for an impostor");
    std::fs::write(
        &config,
        format!("[[mllp_sender]]\nfacility = \"{HOSPITAL}\"\naddresses = [\"127.0.0.1\"]\n"),
    )
    .unwrap();
    let (_server, mllp) = serve_mllp(d, &["--config", config.to_str().unwrap()]);
    let mut s = TcpStream::connect(address(&mllp)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(exchange(&mut s, &adt("CHG01", "患者")).contains("MSA|AA|CHG01"));
    assert!(
        exchange(&mut s, &adt("CHG01", "患者")).contains("MSA|AA|CHG01"),
        "the same again"
    );
    let changed = exchange(&mut s, &adt("CHG01", "別人"));
    assert!(
        changed.contains("MSA|AR|CHG01") && changed.contains("already received with other content"),
        "{changed}"
    );
    assert_eq!(count_messages(d), 1);
    let audited = audit_details(d, "intake.hl7.receive");
    let want = [
        format!("facility:{HOSPITAL}/control:IMP01 rejected;not_the_sender"),
        format!("facility:{HOSPITAL}/control:CHG01 stored;"),
        format!("facility:{HOSPITAL}/control:CHG01 duplicate;"),
        format!("facility:{HOSPITAL}/control:CHG01 rejected;changed_resend"),
    ];
    assert_eq!(audited, want);
}

/// A client certificate, chained to the configured CA, binds a TLS connection to its facility:
/// the hospital's certificate sends for the hospital; a connection without one (from an
/// address no sender is bound to) is refused.
#[test]
fn a_client_certificate_speaks_for_its_facility() {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    use sha2::Digest;
    let dir = with_hospital();
    let d = dir.path();
    // The network's CA, the server's certificate and the hospital's client certificate.
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, &ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["toro-his".to_string()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client_params.signed_by(&client_key, &issuer).unwrap();
    std::fs::write(d.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(d.join("cert.pem"), server.pem()).unwrap();
    std::fs::write(d.join("key.pem"), server_key.serialize_pem()).unwrap();
    let fingerprint = hex::encode(sha2::Sha256::digest(client.der()));
    let config = d.join("renkei.toml");
    std::fs::write(
        &config,
        format!(
            "mllp_client_ca = \"{}\"\n\n[[mllp_sender]]\nfacility = \"{HOSPITAL}\"\ncertificates = [\"{fingerprint}\"]\n",
            d.join("ca.pem").display()
        ),
    )
    .unwrap();
    let (c, k) = (d.join("cert.pem"), d.join("key.pem"));
    let (_server, mllp) = serve_mllp(
        d,
        &[
            "--tls-cert",
            c.to_str().unwrap(),
            "--tls-key",
            k.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let send = |with_cert: bool, control: &str| {
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots.clone());
        let config = if with_cert {
            let key =
                rustls::pki_types::PrivateKeyDer::try_from(client_key.serialize_der()).unwrap();
            builder
                .with_client_auth_cert(vec![client.der().clone()], key)
                .unwrap()
        } else {
            builder.with_no_client_auth()
        };
        let conn = rustls::ClientConnection::new(
            std::sync::Arc::new(config),
            "localhost".try_into().unwrap(),
        )
        .unwrap();
        let tcp = TcpStream::connect(address(&mllp)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut framed = vec![0x0b];
        framed.extend_from_slice(&adt(control, "患者"));
        framed.extend_from_slice(&[0x1c, 0x0d]);
        tls.write_all(&framed).unwrap();
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while !reply.ends_with(&[0x1c, 0x0d]) {
            assert_eq!(tls.read(&mut byte).unwrap(), 1);
            reply.push(byte[0]);
        }
        String::from_utf8_lossy(&reply).into_owned()
    };
    let signed = send(true, "CRT01");
    assert!(signed.contains("MSA|AA|CRT01"), "{signed}");
    let anonymous = send(false, "CRT02");
    assert!(
        anonymous.contains("MSA|AR|CRT02") && anonymous.contains("not authenticated"),
        "{anonymous}"
    );
}
