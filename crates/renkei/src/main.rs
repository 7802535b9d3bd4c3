//! `renkei`: the one binary of the Renkei regional health information exchange.

mod config;
mod demo;
mod fhir_bench;
mod generate;
mod import;
mod intake;
mod jahis_watch;
mod mllp;
mod serve;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use renkei_app::directory::{FacilityInput, UserInput};
use renkei_app::{Actor, App};
use renkei_core::audit::AuditKey;
use renkei_core::time::{Clock, FixedClock, SystemClock, Timestamp};
use renkei_store::Store;

use crate::config::{FileConfig, Overrides, Settings};

/// See the note on `mimalloc` in this crate's Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Renkei — 地域医療連携ネットワーク (regional health information exchange).
#[derive(Parser, Debug)]
#[command(name = "renkei", version, about, long_about = None)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "RENKEI_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the embedded database, the file store and the audit key.
    #[arg(long, global = true, env = "RENKEI_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH (default: DATA_DIR/renkei.db) or postgres://USER@HOST/DB.
    #[arg(long, global = true, env = "RENKEI_DATABASE_URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the web server (portal and APIs).
    Serve(ServeArgs),
    /// Administer the provider directory from the server's shell.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Work with the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Import clinical data.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Development tools: synthetic data for benchmarks and demonstrations.
    #[command(subcommand)]
    Dev(DevCommand),
}

#[derive(Subcommand, Debug)]
enum DevCommand {
    /// Write a synthetic SS-MIX2 standardized storage (ISO-2022-JP): demographics, allergies,
    /// diagnoses, monthly visits with prescriptions and labs, admissions with injections.
    GenerateSsmix2 {
        /// Output folder (the storage root); created if missing.
        out: PathBuf,
        #[arg(long, default_value_t = 100)]
        patients: usize,
        /// Years of history per patient.
        #[arg(long, default_value_t = 2)]
        years: u32,
        /// The same seed gives the same storage.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Seed the FHIR benchmark (benches/fhir/run.sh): a hospital, card-holders with lab results
    /// (stored through the FHIR write path), an API client "bench" with the given public keys,
    /// and the same data as FHIR transaction Bundles for the peer server.
    SeedFhirBench {
        #[arg(long, default_value_t = 10_000)]
        patients: usize,
        /// Lab results per patient.
        #[arg(long, default_value_t = 10)]
        per_patient: usize,
        /// The client's public keys (a JWK Set).
        #[arg(long)]
        jwks: PathBuf,
        /// Where the patient list and the peer's Bundles go.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ImportCommand {
    /// Import an SS-MIX2 standardized storage for a disclosing facility. Bad files are reported
    /// and skipped; the exit status is 1 when any file failed. Re-running imports only what changed.
    Ssmix2 {
        /// The storage root (the folder holding the 3-character patient-ID folders).
        root: PathBuf,
        /// The facility's 10-digit medical-institution code.
        #[arg(long)]
        facility: String,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Import a pharmacy's medication-notebook files (JAHIS 電子版お薬手帳, Shift_JIS or UTF-8)
    /// for the patient holding an HM card. Re-importing the same dispensing changes nothing;
    /// the exit status is 1 when any file was refused.
    Jahis {
        /// The files exported by the receipt computer.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The pharmacy's 10-digit code.
        #[arg(long)]
        facility: String,
        /// The patient's HM card: the QR payload or the common ID. Without it, each file's
        /// card-holder is the common ID its name starts with (`34000000018_…`), or the one patient
        /// this pharmacy has linked by card whose name, birth date and sex match the file.
        #[arg(long)]
        card: Option<String>,
    },
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to listen on; plain HTTP is allowed only on a loopback address.
    #[arg(long, env = "RENKEI_LISTEN")]
    listen: Option<String>,
    /// PEM certificate chain for HTTPS.
    #[arg(long, env = "RENKEI_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    #[arg(long, env = "RENKEI_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Seed a demo region on first start (when the directory is empty) and print how to log in.
    #[arg(long)]
    demo: bool,
    /// Also receive HL7 v2 over MLLP on this address (the HL7 port is 2575). With a TLS
    /// certificate configured, MLLP uses TLS too.
    #[arg(long, env = "RENKEI_MLLP_LISTEN")]
    mllp_listen: Option<String>,
    /// Allow plain (unencrypted) MLLP on a non-loopback address: only inside an IPsec VPN.
    #[arg(long)]
    mllp_allow_plain: bool,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Register a facility.
    CreateFacility(CreateFacilityArgs),
    /// Register a user; prints a temporary password unless --password is given.
    CreateUser(CreateUserArgs),
    /// Issue a new temporary password for a user (also unlocks the account).
    ResetPassword {
        /// The user's login ID.
        #[arg(long)]
        login_id: String,
    },
    /// Load the national medical-institution code list (CSV, or the published ZIP containing it).
    ImportFacilities {
        /// all_med_inst_cd.csv or 202508_all_med_inst_cd.zip
        file: PathBuf,
    },
    /// Register a medication-notebook app that receives new dispensings by webhook; prints the
    /// secret its receiver verifies signatures with (shown once).
    CreateMedicationApp {
        #[arg(long)]
        name: String,
        /// Where deliveries are POSTed (https://…; http only on loopback).
        #[arg(long)]
        url: String,
    },
    /// Link a registered medication-notebook app to a card-holder (at the patient's request).
    SubscribeMedicationApp {
        /// The 10-digit code of the facility doing it.
        #[arg(long)]
        facility: String,
        /// The patient's HM card: the QR payload or the common ID.
        #[arg(long)]
        card: String,
        #[arg(long)]
        app: i64,
    },
    /// Register a system that calls the API (PIXm, PDQm) with OAuth client credentials: it
    /// signs its token requests with a private key whose public half is given here (a JWK Set).
    CreateClient(CreateClientArgs),
}

#[derive(Args, Debug)]
struct CreateClientArgs {
    /// The client's ID (the `iss` and `sub` of its assertions): letters, digits, - . _
    #[arg(long)]
    client_id: String,
    #[arg(long)]
    name: String,
    /// The 10-digit code of the facility the client acts for.
    #[arg(long)]
    facility: String,
    /// A file holding the client's public keys as a JWK Set (RS384 or ES384 keys). Not needed
    /// for an app used by portal users (--redirect-uri), which proves itself with PKCE.
    #[arg(long)]
    jwks: Option<PathBuf>,
    /// For an app that acts for logged-in portal users (SMART App Launch): where it receives
    /// authorization codes; give it once per URI. Its scopes are then user/… scopes.
    #[arg(long = "redirect-uri")]
    redirect_uri: Vec<String>,
    /// Space-separated scopes, e.g. "system/Patient.rs".
    #[arg(long, default_value = "system/Patient.rs")]
    scope: String,
    /// May see every facility's patients and identifiers (a regional gateway or a neighbouring
    /// network), not only its own facility's.
    #[arg(long)]
    cross_facility: bool,
    /// The profession whose rights the client reads the record with (doctor, pharmacist, nurse,
    /// …); clerk, the default, sees no clinical data unless the operator's rights allow it.
    #[arg(long, default_value = "clerk")]
    profession: String,
}

#[derive(Args, Debug)]
struct CreateFacilityArgs {
    /// operator, hospital, clinic, dental, pharmacy, home_care, care_facility or lab_centre.
    #[arg(long = "type")]
    facility_type: String,
    #[arg(long)]
    name: String,
    /// 10-digit medical-institution code (医療機関コード).
    #[arg(long, default_value = "")]
    code: String,
    #[arg(long, default_value = "")]
    name_kana: String,
    #[arg(long, default_value = "")]
    postal_code: String,
    #[arg(long, default_value = "")]
    address: String,
    #[arg(long, default_value = "")]
    phone: String,
    /// The facility discloses its records (開示施設).
    #[arg(long)]
    discloses: bool,
    /// The facility issues HM cards.
    #[arg(long)]
    issues_hm_card: bool,
    /// The facility issues hospital-only disclosure cards (診療情報開示カード).
    #[arg(long)]
    issues_disclosure_card: bool,
    #[arg(long, default_value_t = 20)]
    max_accounts: i64,
}

#[derive(Args, Debug)]
struct CreateUserArgs {
    #[arg(long)]
    facility_id: i64,
    #[arg(long)]
    login_id: String,
    #[arg(long)]
    name: String,
    #[arg(long, default_value = "")]
    name_kana: String,
    /// doctor, dentist, pharmacist, nurse, care_manager, physical_therapist, clerk, operator, …
    #[arg(long)]
    profession: String,
    /// operator, facility_admin or staff.
    #[arg(long, default_value = "staff")]
    role: String,
    /// Mark as an emergency account (非常時用アカウント).
    #[arg(long)]
    emergency: bool,
    /// Set this password (not required to change). Without it a temporary password is printed.
    #[arg(long, env = "RENKEI_NEW_USER_PASSWORD", hide_env_values = true)]
    password: Option<String>,
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Check the whole hash chain: reports modified, deleted or inserted events; exit 1 if any.
    Verify,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RENKEI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("エラー: 非同期ランタイムを起動できません: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("エラー: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn settings(cli: &Cli, serve: Option<&ServeArgs>) -> Result<Settings> {
    let file = FileConfig::load(cli.config.as_deref())?;
    let o = Overrides {
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
        listen: serve.and_then(|s| s.listen.clone()),
        tls_cert: serve.and_then(|s| s.tls_cert.clone()),
        tls_key: serve.and_then(|s| s.tls_key.clone()),
    };
    config::resolve(file, o)
}

/// The clock: the system clock, or a fixed instant from `RENKEI_FIXED_CLOCK` (RFC 3339) for
/// reproducible tests and demonstrations.
fn clock() -> Result<Arc<dyn Clock>> {
    match std::env::var("RENKEI_FIXED_CLOCK") {
        Ok(text) => {
            let at = Timestamp::parse_rfc3339(&text).with_context(|| {
                format!("RENKEI_FIXED_CLOCK「{text}」は RFC 3339 の日時ではありません")
            })?;
            tracing::warn!(at = %at.rfc3339(), "the clock is fixed (RENKEI_FIXED_CLOCK): for tests only");
            Ok(Arc::new(FixedClock::new(at)))
        }
        Err(_) => Ok(Arc::new(SystemClock)),
    }
}

/// Reads the audit key, creating it (32 random bytes, owner-only) on first use.
fn audit_key(path: &std::path::Path) -> Result<AuditKey> {
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("ディレクトリ {} を作成できません", dir.display()))?;
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("乱数を取得できません: {e}"))?;
        let hex_key: String = key.iter().map(|b| format!("{b:02x}")).collect();
        write_private(path, hex_key.as_bytes())
            .with_context(|| format!("監査鍵 {} を作成できません", path.display()))?;
        tracing::info!(path = %path.display(), "created a new audit key: back it up with the database");
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("監査鍵 {} を読めません", path.display()))?;
    let text = text.trim();
    let bytes = (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .with_context(|| format!("監査鍵 {} は16進数の文字列ではありません", path.display()))?;
    AuditKey::new(bytes).map_err(|e| anyhow::anyhow!(e))
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Opens the store and the application for `settings`.
async fn open(settings: &Settings) -> Result<App> {
    if settings.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!(
                "データディレクトリ {} を作成できません",
                settings.data_dir.display()
            )
        })?;
        std::fs::create_dir_all(settings.data_dir.join("files")).with_context(|| {
            format!(
                "ファイル保存先 {} を作成できません",
                settings.data_dir.join("files").display()
            )
        })?;
    }
    let key = audit_key(&settings.audit_key_file)?;
    let store = Store::open(&settings.database_url, key).await.map_err(|e| {
        anyhow::anyhow!("データベースを開けません（{}）: {e}。--database-url と、データベースが起動しているかを確認してください", redact(&settings.database_url))
    })?;
    let objects = renkei_store::objects::Objects::open(&settings.file_store, &settings.upload_dir)
        .map_err(|e| anyhow::anyhow!("ファイルの保存先を開けません: {e}"))?;
    tracing::info!(store = %objects.describe(), "file store");
    let app = App::new(store, clock()?, settings.app.clone()).with_objects(objects);
    let rekeyed = app
        .refresh_person_keys()
        .await
        .map_err(|e| anyhow::anyhow!("地域共通IDの検索キーを更新できません: {e}"))?;
    if rekeyed > 0 {
        tracing::info!(rekeyed, "person search keys refreshed");
    }
    Ok(app)
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Serve(args) => {
            let settings = settings(&cli, Some(args))?;
            let mllp = match &args.mllp_listen {
                Some(text) => Some(text.parse::<std::net::SocketAddr>().map_err(|_| {
                    anyhow::anyhow!(
                        "MLLP の待ち受けアドレス「{text}」を解釈できません（例: 0.0.0.0:2575）"
                    )
                })?),
                None => None,
            };
            serve::serve(settings, args.demo, mllp, args.mllp_allow_plain).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin(cmd) => {
            let settings = settings(&cli, None)?;
            let app = open(&settings).await?;
            let result = admin(&app, cmd).await;
            app.shutdown().await;
            result.map(|_| ExitCode::SUCCESS)
        }
        Command::Import(ImportCommand::Ssmix2 {
            root,
            facility,
            json,
        }) => {
            let settings = settings(&cli, None)?;
            let app = open(&settings).await?;
            let result = intake::import_ssmix2(&app, root, facility, *json).await;
            app.shutdown().await;
            match result? {
                true => Ok(ExitCode::SUCCESS),
                false => Ok(ExitCode::from(1)),
            }
        }
        Command::Import(ImportCommand::Jahis {
            files,
            facility,
            card,
        }) => {
            let settings = settings(&cli, None)?;
            let app = open(&settings).await?;
            let system = Actor::system("cli");
            let facility_id = app.facility_id_by_code(&system, facility).await?;
            let actor = Actor {
                facility_id: Some(facility_id),
                ..system
            };
            let mut read = Vec::with_capacity(files.len());
            for f in files {
                let bytes =
                    std::fs::read(f).with_context(|| format!("{} を読めません", f.display()))?;
                read.push((f.display().to_string(), bytes));
            }
            let report = match card {
                Some(card) => app.import_medication(&actor, card, &read).await,
                None => {
                    let mut total = renkei_app::medication::MedicationReport::default();
                    for (name, bytes) in &read {
                        match app.import_medication_file(&actor, name, bytes).await {
                            Ok(r) => total.absorb(r),
                            Err(renkei_app::AppError::Invalid(m)) => {
                                total.errors.push((name.clone(), m))
                            }
                            Err(e) => {
                                app.shutdown().await;
                                return Err(e.into());
                            }
                        }
                    }
                    Ok(total)
                }
            };
            app.shutdown().await;
            let report = report?;
            println!(
                "調剤 {} 件を登録しました（登録済み {} 件）",
                report.dispensings_stored, report.dispensings_unchanged
            );
            for (file, warning) in &report.warnings {
                eprintln!("注意 {file}: {warning}");
            }
            for (file, error) in &report.errors {
                eprintln!("エラー {file}: {error}");
            }
            Ok(if report.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Dev(DevCommand::SeedFhirBench {
            patients,
            per_patient,
            jwks,
            out,
        }) => {
            let jwks = std::fs::read_to_string(jwks)
                .with_context(|| format!("公開鍵ファイル {} を読めません", jwks.display()))?;
            let settings = settings(&cli, None)?;
            let app = open(&settings).await?;
            let result = fhir_bench::seed(&app, *patients, *per_patient, &jwks, out).await;
            app.shutdown().await;
            result?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dev(DevCommand::GenerateSsmix2 {
            out,
            patients,
            years,
            seed,
        }) => {
            std::fs::create_dir_all(out)
                .with_context(|| format!("{} を作成できません", out.display()))?;
            let started = std::time::Instant::now();
            let files = generate::generate(out, *patients, *years, *seed, (2026, 11, 20))?;
            println!(
                "SS-MIX2 ストレージを生成しました: {} に {files} ファイル（患者 {patients} 人、{years} 年分、{:.1} 秒）",
                out.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCommand::Verify) => {
            let settings = settings(&cli, None)?;
            let app = open(&settings).await?;
            let key = audit_key(&settings.audit_key_file)?;
            let report = app.verify_audit(key, |_| {}).await?;
            app.shutdown().await;
            if report.is_intact() {
                println!(
                    "監査ログは改ざんされていません: {} 件を検証しました (audit trail intact)",
                    report.checked
                );
                Ok(ExitCode::SUCCESS)
            } else {
                println!(
                    "監査ログの整合性に問題があります: {} 件中 {} 件の問題 (audit trail NOT intact)",
                    report.checked,
                    report.problems.len()
                );
                for p in &report.problems {
                    println!("  - {p}");
                }
                Ok(ExitCode::from(1))
            }
        }
    }
}

async fn admin(app: &App, cmd: &AdminCommand) -> Result<()> {
    let actor = Actor::system("cli");
    match cmd {
        AdminCommand::CreateFacility(a) => {
            let input = FacilityInput {
                code: a.code.clone(),
                facility_type: a.facility_type.clone(),
                name: a.name.clone(),
                name_kana: a.name_kana.clone(),
                postal_code: a.postal_code.clone(),
                address: a.address.clone(),
                phone: a.phone.clone(),
                discloses: a.discloses,
                issues_hm_card: a.issues_hm_card,
                issues_disclosure_card: a.issues_disclosure_card,
                max_accounts: a.max_accounts.to_string(),
                active: true,
            };
            let (f, warning) = app.create_facility(&actor, &input).await?;
            if let Some(w) = warning {
                eprintln!("警告: {w}");
            }
            println!(
                "施設を登録しました: id={} oid={} ({})",
                f.id,
                f.oid,
                f.type_label()
            );
        }
        AdminCommand::CreateUser(a) => {
            let input = UserInput {
                facility_id: a.facility_id,
                login_id: a.login_id.clone(),
                name: a.name.clone(),
                name_kana: a.name_kana.clone(),
                profession: a.profession.clone(),
                role: a.role.clone(),
                emergency: a.emergency,
                active: true,
            };
            match &a.password {
                Some(p) => {
                    let u = app
                        .create_user_with_password(&actor, &input, p, false)
                        .await?;
                    println!("利用者を登録しました: id={} login_id={}", u.id, u.login_id);
                }
                None => {
                    let (u, temp) = app.create_user(&actor, &input).await?;
                    println!("利用者を登録しました: id={} login_id={}", u.id, u.login_id);
                    println!("仮パスワード: {temp}（初回ログイン時に変更が必要です）");
                }
            }
        }
        AdminCommand::ResetPassword { login_id } => {
            let id = app.user_id_by_login(&actor, login_id).await?;
            let temp = app.reset_password(&actor, id).await?;
            println!("仮パスワードを発行しました: login_id={login_id}");
            println!("仮パスワード: {temp}（次回ログイン時に変更が必要です）");
        }
        AdminCommand::ImportFacilities { file } => {
            import::import_facilities(app, &actor, file).await?;
        }
        AdminCommand::CreateMedicationApp { name, url } => {
            let (id, secret) = app.register_medication_app(&actor, name, url).await?;
            println!("お薬手帳アプリを登録しました: id={id}");
            println!("署名の鍵: {secret}（この表示の後は確認できません）");
        }
        AdminCommand::SubscribeMedicationApp {
            facility,
            card,
            app: app_id,
        } => {
            let facility_id = app.facility_id_by_code(&actor, facility).await?;
            let at = Actor {
                facility_id: Some(facility_id),
                ..actor.clone()
            };
            app.subscribe_medication_app(&at, card, *app_id).await?;
            println!("お薬手帳アプリ {app_id} を連携しました");
        }
        AdminCommand::CreateClient(a) => {
            let jwks = match &a.jwks {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("公開鍵ファイル {} を読めません", path.display()))?,
                None => String::new(),
            };
            let facility_id = app.facility_id_by_code(&actor, &a.facility).await?;
            let client = app
                .register_api_client(
                    &actor,
                    &renkei_app::api::ClientInput {
                        client_id: a.client_id.clone(),
                        name: a.name.clone(),
                        facility_id,
                        jwks,
                        scopes: a.scope.clone(),
                        cross_facility: a.cross_facility,
                        profession: a.profession.clone(),
                        redirect_uris: a.redirect_uri.join(" "),
                    },
                )
                .await?;
            println!(
                "APIクライアントを登録しました: client_id={} scope=\"{}\"{}",
                client.client_id,
                client.scopes,
                if client.cross_facility {
                    "（全施設の患者を参照可）"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}
