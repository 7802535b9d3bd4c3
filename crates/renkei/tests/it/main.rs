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
mod slow_peers;
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

/// A file or folder under the repository's `fixtures/` (public samples with their provenance);
/// fails, naming it, when it is missing.
pub fn fixture(rel: &str) -> PathBuf {
    let p = workspace_root().join("fixtures").join(rel);
    assert!(
        p.exists(),
        "fixture missing: {} (part of the repository)",
        p.display()
    );
    p
}

/// A temporary data directory holding the seeded demo region. Seeding takes seconds in a debug
/// build, and many times that on a busy machine, so it is done once per build of the binary:
/// the first test to ask seeds a template under the target directory (`renkei dev seed-demo`,
/// with a lock that the tests of other processes wait on), and every test gets a copy of it.
/// `serve --demo` on the copy finds the region and only prints its users.
pub fn demo_dir() -> tempfile::TempDir {
    let template = demo_template();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&template, dir.path());
    dir
}

fn demo_template() -> PathBuf {
    let meta = std::fs::metadata(bin()).unwrap();
    let built = meta
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let stamp = format!("{}-{built}", meta.len());
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("renkei-demo");
    std::fs::create_dir_all(&root).unwrap();
    let lock = std::fs::File::create(root.join("lock")).unwrap();
    lock.lock().unwrap();
    let template = root.join(&stamp);
    if !template.join(".seeded").exists() {
        // Templates of earlier builds.
        for entry in std::fs::read_dir(&root).unwrap().map_while(Result::ok) {
            if entry.path().is_dir() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let o = renkei(&template, &["dev", "seed-demo"]);
        assert!(
            o.status.success(),
            "seeding the demo failed: {}{}",
            stdout(&o),
            stderr(&o)
        );
        std::fs::write(template.join(".seeded"), "").unwrap();
    }
    template
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().map_while(Result::ok) {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != ".seeded" {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Runs `f` with a pool on a data directory's SQLite database (on a runtime of its own), for
/// tests that look at or tamper with what was stored.
pub fn on_sqlite<T, F: std::future::Future<Output = T>>(
    d: &Path,
    f: impl FnOnce(sqlx::SqlitePool) -> F,
) -> T {
    let url = format!("sqlite://{}", d.join("renkei.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let out = f(pool.clone()).await;
        pool.close().await;
        out
    })
}

/// The values of a one-column query (as text).
pub fn sqlite_texts(d: &Path, sql: &str) -> Vec<String> {
    let sql = sql.to_string();
    on_sqlite(d, |pool| async move {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(&pool)
            .await
            .unwrap()
    })
}

/// A date `YYYY-MM-DD` in the Japanese-era form `GYYMMDD` (昭和 and later).
fn era(iso: &str) -> String {
    let y: i32 = iso[..4].parse().unwrap();
    let md = iso[5..].replace('-', "");
    let (g, base) = match iso {
        d if d >= "2019-05-01" => ('R', 2018),
        d if d >= "1989-01-08" => ('H', 1988),
        _ => ('S', 1925),
    };
    format!("{g}{:02}{md}", y - base)
}

/// A JAHIS text (a public fixture) with its patient record (record 1) replaced by the person
/// holding `common_id` in a data directory, living at `address`, with the birth date in the
/// era form: what the pharmacy of that card-holder would export.
pub fn for_card_holder(d: &Path, common_id: &str, jahis: &str, address: &str) -> String {
    // On a thread of its own: callers may be inside a runtime.
    let sql = format!(
        "SELECT kanji_name || '|' || kana_name || '|' || birth_date || '|' || sex FROM persons WHERE common_id = '{common_id}'"
    );
    let person = std::thread::scope(|s| s.spawn(|| sqlite_texts(d, &sql)).join().unwrap());
    let fields: Vec<&str> = person[0].split('|').collect();
    let sex = if fields[3] == "M" { "1" } else { "2" };
    jahis
        .lines()
        .map(|l| {
            if l.starts_with("1,") {
                format!(
                    "1,{},{sex},{},,{address},,,,,{}",
                    fields[0],
                    era(fields[2]),
                    fields[1]
                )
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
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

/// How long a test waits for the server's ready line: far more than it takes on a busy machine
/// (a debug build starts in well under a second once the demo is seeded), far less than
/// nextest's limit.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

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
    let base = rx.recv_timeout(READY_TIMEOUT).unwrap_or_else(|_| {
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
