//! Slow and greedy peers on the HTTP listener: header-read, idle and TLS-handshake timeouts,
//! and connection caps per peer address. Each limit is set low in the configuration so that
//! the test sees it act.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::*;

/// Starts a server with `config` (TOML) and returns it with its `host:port`.
fn serve_with(d: &Path, config: &str, extra: &[&str]) -> (Server, String) {
    let path = d.join("renkei.toml");
    std::fs::write(&path, config).unwrap();
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--config",
        path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let server = start(d, &args);
    let addr = server
        .base
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .to_string();
    (server, addr)
}

/// How long until the server closes `s` (EOF, a reset, or an answer such as 408 followed by
/// EOF); panics after `within`.
fn closed_within(what: &str, s: &mut TcpStream, within: Duration) -> Duration {
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return started.elapsed(),
        }
        assert!(
            started.elapsed() < within,
            "{what}: still open after {within:?}"
        );
    }
}

#[test]
fn half_sent_headers_and_silent_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    bootstrap(dir.path());
    let (_server, addr) = serve_with(dir.path(), "http_header_seconds = 1\n", &[]);
    let mut half = TcpStream::connect(&addr).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let mut silent = TcpStream::connect(&addr).unwrap();
    closed_within("half-sent headers", &mut half, Duration::from_secs(6));
    closed_within("a silent connection", &mut silent, Duration::from_secs(6));
    // A kept-alive connection waiting for its next request is closed the same way.
    let mut kept = TcpStream::connect(&addr).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    closed_within("a kept-alive connection", &mut kept, Duration::from_secs(6));
}

#[test]
fn a_trickled_body_is_cut_off_when_nothing_moves() {
    let dir = tempfile::tempdir().unwrap();
    bootstrap(dir.path());
    let (_server, addr) = serve_with(
        dir.path(),
        "http_header_seconds = 30\nhttp_idle_seconds = 1\n",
        &[],
    );
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nlogin_id=",
    )
    .unwrap();
    let took = closed_within("a trickled body", &mut s, Duration::from_secs(8));
    assert!(took < Duration::from_secs(8), "{took:?}");
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    bootstrap(dir.path());
    let (server, addr) = serve_with(
        dir.path(),
        "http_header_seconds = 60\nhttp_max_connections_per_peer = 3\n",
        &[],
    );
    let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // Let the server accept the three before the fourth arrives.
    std::thread::sleep(Duration::from_millis(300));
    let mut fourth = TcpStream::connect(&addr).unwrap();
    let took = closed_within(
        "a connection over the cap",
        &mut fourth,
        Duration::from_secs(3),
    );
    assert!(took < Duration::from_secs(3));
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        reqwest::StatusCode::OK,
        "free again once they close"
    );
    assert!(
        server.logs().contains("too many from this address"),
        "{}",
        server.logs()
    );
}

#[test]
fn a_tls_handshake_that_never_comes_is_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    bootstrap(dir.path());
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (c, k) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
    let (_server, addr) = serve_with(
        dir.path(),
        "tls_handshake_seconds = 1\n",
        &[
            "--tls-cert",
            c.to_str().unwrap(),
            "--tls-key",
            k.to_str().unwrap(),
        ],
    );
    let mut s = TcpStream::connect(&addr).unwrap();
    closed_within("a TLS handshake", &mut s, Duration::from_secs(6));
}
