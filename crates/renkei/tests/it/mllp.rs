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
    let url = format!("sqlite://{}", d.join("renkei.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let n: (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM clinical_messages WHERE source = 'mllp'")
                .fetch_one(&pool)
                .await
                .unwrap();
        pool.close().await;
        n.0
    })
}

#[test]
fn stores_then_acknowledges_and_rejects_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    id_of(&renkei(
        d,
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
    let server = start(
        d,
        &["--listen", "127.0.0.1:0", "--mllp-listen", "127.0.0.1:0"],
    );
    let mllp = server.others.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(mllp.starts_with("mllp://"), "{mllp}");
    let addr = mllp.trim_start_matches("mllp://").to_string();
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
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    id_of(&renkei(
        d,
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
    let server = start(
        d,
        &["--listen", "127.0.0.1:0", "--mllp-listen", "127.0.0.1:0"],
    );
    let addr = server
        .others
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .trim_start_matches("mllp://")
        .to_string();
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
