//! Upload throughput and memory of a 700 MB consultation case, end to end: the release server
//! on loopback with its default store (SQLite, files on local disk), a logged-in user, 35 files
//! of 20 MB sent over tus in 16 MiB PATCH requests as the browser sends them. Prints MB/s and the
//! growth of the server's peak resident memory, beside the disk's own speed for the same writes
//! (`std::fs`: the same chunks synced, the same renames, without HTTP, database or audit).
//! `RENKEI_BENCH_DIR` picks the disk (default: the system's temporary directory).
//!
//! Run: `cargo bench -p renkei --bench upload` (aim: ≥ 200 MB/s, < 64 MiB memory growth).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

const PASSWORD: &str = "Bench-Upload-2026";
const FILE: usize = 20 * 1024 * 1024;
const FILES: usize = 35;
const CHUNK: usize = 16 * 1024 * 1024;

fn renkei(data: &std::path::Path, args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_renkei"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("RENKEI_FIXED_CLOCK", "2026-11-21T00:00:00Z")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn id_of(out: &str) -> String {
    let at = out.find("id=").unwrap() + 3;
    out[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect()
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

fn value_after(html: &str, key: &str) -> String {
    let at = html.find(key).unwrap_or_else(|| panic!("no {key}")) + key.len();
    html[at..].split(['"', '<']).next().unwrap().to_string()
}

fn totp(secret: &str) -> String {
    use totp_rs::{Algorithm, Builder, Secret};
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_secret(Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap()
        .generate(1_795_219_200)
        .to_string()
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir_in(
        std::env::var("RENKEI_BENCH_DIR")
            .unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
    )
    .unwrap();
    let data = dir.path();
    let f = id_of(&renkei(
        data,
        &[
            "admin",
            "create-facility",
            "--type",
            "clinic",
            "--name",
            "ベンチ診療所",
        ],
    ));
    let h = id_of(&renkei(
        data,
        &[
            "admin",
            "create-facility",
            "--type",
            "hospital",
            "--name",
            "ベンチ病院",
        ],
    ));
    for (fac, login) in [(&f, "bench.dr"), (&h, "bench.rad")] {
        renkei(
            data,
            &[
                "admin",
                "create-user",
                "--facility-id",
                fac,
                "--login-id",
                login,
                "--name",
                "ベンチ",
                "--profession",
                "doctor",
                "--role",
                "staff",
                "--password",
                PASSWORD,
            ],
        );
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_renkei"))
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RENKEI_FIXED_CLOCK", "2026-11-21T00:00:00Z")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    while !line.contains("listening on") {
        line.clear();
        out.read_line(&mut line).unwrap();
    }
    let base = line
        .split("listening on ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    std::thread::spawn(move || for _ in out.lines() {});
    let pid = child.id();

    let c = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let page = c
        .get(format!("{base}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = value_after(&page, "name=\"csrf\" value=\"");
    let page = c
        .post(format!("{base}/login"))
        .form(&[
            ("login_id", "bench.dr"),
            ("password", PASSWORD),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let secret = value_after(&page, "id=\"totp-secret\">").replace(char::is_whitespace, "");
    let csrf = value_after(&page, "name=\"csrf\" value=\"");
    c.post(format!("{base}/login/enrol"))
        .form(&[("code", totp(&secret).as_str()), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    let page = c
        .get(format!("{base}/cases/new"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = value_after(&page, "name=\"csrf\" value=\"");
    let r = c
        .post(format!("{base}/cases"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("title", "ベンチマーク"),
            ("logins", "bench.rad"),
        ])
        .send()
        .await
        .unwrap();
    let case = r.url().path().trim_start_matches("/cases/").to_string();

    let body: Vec<u8> = (0..FILE).map(|i| (i * 131 % 251) as u8).collect();
    // Each phase starts with nothing left to write back from the one before.
    let _ = Command::new("sync").status();
    let rss_before = status_kib(pid, "VmRSS:");
    let started = Instant::now();
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for n in 0..FILES {
        let r = c
            .post(format!("{base}/uploads"))
            .header("Tus-Resumable", "1.0.0")
            .header("X-CSRF-Token", &csrf)
            .header("Upload-Length", FILE.to_string())
            .header(
                "Upload-Metadata",
                format!(
                    "filename {},target {}",
                    b64(&format!("slice{n:02}.dcm")),
                    b64(&format!("case:{case}"))
                ),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let url = format!("{base}{}", r.headers()["location"].to_str().unwrap());
        let mut offset = 0;
        while offset < FILE {
            let end = (offset + CHUNK).min(FILE);
            let r = c
                .patch(&url)
                .header("Tus-Resumable", "1.0.0")
                .header("X-CSRF-Token", &csrf)
                .header("Upload-Offset", offset.to_string())
                .header("Content-Type", "application/offset+octet-stream")
                .body(body[offset..end].to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 204);
            offset = end;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let total = (FILE * FILES) as f64;
    let peak = status_kib(pid, "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();

    // The peer: the disk doing the same writes without HTTP, database or audit trail: each file
    // written in 16 MiB chunks, each chunk synced, then renamed into place and the folder synced.
    let staging = data.join("peer-staging");
    let store = data.join("peer-files");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::create_dir_all(&store).unwrap();
    let _ = Command::new("sync").status();
    let started = Instant::now();
    for n in 0..FILES {
        let path = staging.join(format!("{n}.part"));
        let mut file = std::fs::File::create(&path).unwrap();
        for chunk in body.chunks(CHUNK) {
            file.write_all(chunk).unwrap();
            file.sync_data().unwrap();
        }
        std::fs::rename(&path, store.join(n.to_string())).unwrap();
        std::fs::File::open(&store).unwrap().sync_all().unwrap();
    }
    let disk = started.elapsed().as_secs_f64();

    println!(
        "upload of a {:.0} MB case ({FILES} files of 20 MB, tus PATCH of 16 MiB, loopback, local disk):",
        total / 1e6
    );
    println!(
        "  renkei           {:>7.1} MB/s  ({secs:.2} s)",
        total / 1e6 / secs
    );
    println!(
        "  disk (std::fs)   {:>7.1} MB/s  ({disk:.2} s)  the same writes, syncs and renames, no HTTP",
        total / 1e6 / disk
    );
    println!(
        "  server memory: resident before {:.1} MiB, peak {:.1} MiB, growth {:.1} MiB",
        rss_before as f64 / 1024.0,
        peak as f64 / 1024.0,
        (peak.saturating_sub(rss_before)) as f64 / 1024.0
    );
}
