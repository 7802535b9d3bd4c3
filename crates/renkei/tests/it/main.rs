//! End-to-end tests of the `renkei` binary: the command line, the server on port 0 over HTTP and
//! HTTPS, login with a second factor, and the audit trail. Every server runs on a fixed clock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod architecture;
mod cli;
mod fhir;
mod files;
mod jahis_watch;
mod mllp;
mod server;
mod webhooks;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const FIXED_CLOCK: &str = "2026-11-21T00:00:00Z";
pub const FIXED_UNIX: u64 = 1_795_219_200;
pub const OPERATOR_PASSWORD: &str = "Renkei-Operator-2026";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_renkei")
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the binary with a data directory and the fixed clock.
pub fn renkei(data: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("RENKEI_FIXED_CLOCK", FIXED_CLOCK)
        .env_remove("RENKEI_DATABASE_URL")
        .env_remove("RENKEI_CONFIG")
        .output()
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn id_of(o: &Output) -> i64 {
    let out = stdout(o);
    assert!(o.status.success(), "command failed: {out}\n{}", stderr(o));
    let at = out.find("id=").unwrap() + 3;
    out[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap()
}

/// An operator facility and user: returns the operator's facility ID.
pub fn bootstrap(data: &Path) -> i64 {
    let f = id_of(&renkei(
        data,
        &[
            "admin",
            "create-facility",
            "--type",
            "operator",
            "--name",
            "広島県医師会 事務局",
        ],
    ));
    let fs = f.to_string();
    id_of(&renkei(
        data,
        &[
            "admin",
            "create-user",
            "--facility-id",
            &fs,
            "--login-id",
            "admin",
            "--name",
            "事務局 太郎",
            "--profession",
            "operator",
            "--role",
            "operator",
            "--password",
            OPERATOR_PASSWORD,
        ],
    ));
    f
}

/// A running server; killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    pub stderr_path: PathBuf,
    /// Other `… listening on ADDR` lines (the MLLP listener), in order.
    pub others: std::sync::mpsc::Receiver<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

/// Starts `renkei serve` with `extra` arguments on 127.0.0.1:0 and waits for its address.
pub fn start(data: &Path, extra: &[&str]) -> Server {
    start_with(data, extra, true)
}

/// As [`start`], with the system clock instead of the fixed one when `fixed_clock` is false
/// (for what must see time pass, such as retries).
pub fn start_with(data: &Path, extra: &[&str], fixed_clock: bool) -> Server {
    let stderr_path = data.join("server.stderr");
    let mut command = Command::new(bin());
    if fixed_clock {
        command.env("RENKEI_FIXED_CLOCK", FIXED_CLOCK);
    } else {
        command.env_remove("RENKEI_FIXED_CLOCK");
    }
    let mut child = command
        .arg("--data-dir")
        .arg(data)
        .arg("serve")
        .args(extra)
        .env_remove("RENKEI_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(at) = line.find("listening on ") {
                let _ = tx.send(line[at + 13..].trim().to_string());
            }
        }
    });
    let started = Instant::now();
    let base = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            panic!(
                "server did not start in {:?}: {}",
                started.elapsed(),
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            )
        });
    Server {
        child,
        base,
        stderr_path,
        others: rx,
    }
}

pub fn totp(secret: &str, unix: u64) -> String {
    use totp_rs::{Algorithm, Builder, Secret};
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap();
    totp.generate(unix).to_string()
}

/// The value of `<input … name="NAME" value="…">` or the text of `<code id="ID">…</code>`.
pub fn input_value(html: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no input {name} in {html}"))
        + key.len();
    html[at..].split('"').next().unwrap().to_string()
}

pub fn code_text(html: &str, id: &str) -> String {
    let key = format!("id=\"{id}\">");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no #{id} in {html}"))
        + key.len();
    html[at..].split('<').next().unwrap().trim().to_string()
}
