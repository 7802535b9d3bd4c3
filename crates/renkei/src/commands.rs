//! One function per subcommand. Each checks its arguments first ([`crate::checks`]), then opens
//! the region — creating it only where the command may start one ([`Open`]) — and closes it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use renkei_app::directory::{FacilityInput, UserInput};
use renkei_app::{Actor, App, AppError};

use crate::args::{
    AdminCommand, AuditCommand, Cli, Command, CreateClientArgs, CreateFacilityArgs, CreateUserArgs,
    DevCommand, ImportCommand,
};
use crate::{Open, checks, open, settings};

pub async fn run(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Serve(args) => {
            let settings = settings(cli, Some(args))?;
            let mllp = match &args.mllp_listen {
                Some(text) => Some(text.parse::<std::net::SocketAddr>().map_err(|_| {
                    anyhow::anyhow!(
                        "MLLP の待ち受けアドレス「{text}」を解釈できません（例: 0.0.0.0:2575）"
                    )
                })?),
                None => None,
            };
            crate::serve::serve(settings, args.demo, mllp, args.mllp_allow_plain).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin(cmd) => admin(cli, cmd).await,
        Command::Import(ImportCommand::Ssmix2 {
            root,
            facility,
            json,
        }) => import_ssmix2(cli, root, facility, *json).await,
        Command::Import(ImportCommand::Jahis {
            files,
            facility,
            card,
            name_changed,
        }) => {
            let options = renkei_app::medication::MedicationOptions {
                name_change_confirmed: *name_changed,
            };
            import_jahis(cli, files, facility, card.as_deref(), options).await
        }
        Command::Dev(cmd) => dev(cli, cmd).await,
        Command::Audit(AuditCommand::Verify) => audit_verify(cli).await,
    }
}

/// Runs `f` on the opened region and closes it whatever `f` returns.
async fn with_app<T>(cli: &Cli, mode: Open, f: impl AsyncFnOnce(&App) -> Result<T>) -> Result<T> {
    let settings = settings(cli, None)?;
    let app = open(&settings, mode).await?;
    let result = f(&app).await;
    anchor_quietly(&app, &settings.audit_key_file).await;
    app.shutdown().await;
    result
}

/// Anchors the chain beside the key as a command closes; a failure is logged, not fatal.
async fn anchor_quietly(app: &App, key_file: &Path) {
    let written = match crate::audit_key(key_file) {
        Ok(key) => crate::anchor::write(app, &key, &crate::anchor::path_for(key_file)).await,
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        tracing::warn!(error = %e, "the audit anchor could not be written");
    }
}

fn exit_status(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// A lookup by a value the user typed that found nothing, said with the value.
fn not_found(what: String) -> impl FnOnce(AppError) -> anyhow::Error {
    move |e| match e {
        AppError::NotFound => anyhow::anyhow!("{what}"),
        other => other.into(),
    }
}

async fn import_ssmix2(cli: &Cli, root: &Path, facility: &str, json: bool) -> Result<ExitCode> {
    checks::facility_code(facility)?;
    checks::ssmix2_root(root)?;
    let ok = with_app(cli, Open::Existing, async |app| {
        crate::intake::import_ssmix2(app, root, facility, json).await
    })
    .await?;
    Ok(exit_status(ok))
}

async fn import_jahis(
    cli: &Cli,
    files: &[PathBuf],
    facility: &str,
    card: Option<&str>,
    options: renkei_app::medication::MedicationOptions,
) -> Result<ExitCode> {
    checks::facility_code(facility)?;
    let mut read = Vec::with_capacity(files.len());
    for f in files {
        checks::file(f, "お薬手帳ファイル")?;
        let bytes = std::fs::read(f).with_context(|| format!("{} を読めません", f.display()))?;
        read.push((f.display().to_string(), bytes));
    }
    let report = with_app(cli, Open::Existing, async |app| {
        let system = Actor::system("cli");
        let facility_id = app.facility_id_by_code(&system, facility).await?;
        let actor = Actor {
            facility_id: Some(facility_id),
            ..system
        };
        Ok(match card {
            Some(card) => {
                app.import_medication_with(&actor, card, &read, options)
                    .await?
            }
            None => import_jahis_by_name(app, &actor, &read).await?,
        })
    })
    .await?;
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
    for p in &report.pending {
        let missing: Vec<String> = p.missing().iter().map(i64::to_string).collect();
        println!(
            "分割QRコード（データID {}）: {} / {} 部分を受け付けました。残りの部分 {} を {} までに読み込んでください（そろうまで登録されません）",
            p.data_id,
            p.received.len(),
            p.total,
            missing.join("・"),
            renkei_core::time::Timestamp(p.expires_at).jst_minutes()
        );
    }
    for e in &report.expired {
        eprintln!("エラー {e}");
    }
    Ok(exit_status(
        report.errors.is_empty() && report.expired.is_empty(),
    ))
}

/// Without `--card`: each file's card-holder from its name or its patient record.
async fn import_jahis_by_name(
    app: &App,
    actor: &Actor,
    read: &[(String, Vec<u8>)],
) -> Result<renkei_app::medication::MedicationReport> {
    let mut total = renkei_app::medication::MedicationReport::default();
    for (name, bytes) in read {
        match app.import_medication_file(actor, name, bytes).await {
            Ok(r) => total.absorb(r),
            Err(AppError::Invalid(m)) => total.errors.push((name.clone(), m)),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(total)
}

async fn audit_verify(cli: &Cli) -> Result<ExitCode> {
    let settings = settings(cli, None)?;
    let anchor_file = crate::anchor::path_for(&settings.audit_key_file);
    let report = with_app(cli, Open::Existing, async |app| {
        let key = crate::audit_key(&settings.audit_key_file)?;
        // Read before this command's own anchor is written at close.
        let anchor = crate::anchor::read(&key, &anchor_file)?;
        if anchor.is_none() {
            println!(
                "注意: 監査アンカー {} がありません。末尾から削除された監査ログは検出できません",
                anchor_file.display()
            );
        }
        Ok(app.verify_audit_anchored(key, anchor, |_| {}).await?)
    })
    .await?;
    if report.is_intact() {
        println!(
            "監査ログは改ざんされていません: {} 件を検証しました (audit trail intact)",
            report.checked
        );
        return Ok(ExitCode::SUCCESS);
    }
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

async fn dev(cli: &Cli, cmd: &DevCommand) -> Result<ExitCode> {
    match cmd {
        DevCommand::SeedFhirBench {
            patients,
            per_patient,
            jwks,
            out,
        } => {
            checks::file(jwks, "公開鍵ファイル")?;
            let jwks = std::fs::read_to_string(jwks)
                .with_context(|| format!("公開鍵ファイル {} を読めません", jwks.display()))?;
            with_app(cli, Open::CreateIfMissing, async |app| {
                crate::fhir_bench::seed(app, *patients, *per_patient, &jwks, out).await
            })
            .await?;
        }
        DevCommand::GenerateSsmix2 {
            out,
            patients,
            years,
            seed,
        } => {
            std::fs::create_dir_all(out)
                .with_context(|| format!("{} を作成できません", out.display()))?;
            let started = std::time::Instant::now();
            let files = crate::generate::generate(out, *patients, *years, *seed, (2026, 11, 20))?;
            println!(
                "SS-MIX2 ストレージを生成しました: {} に {files} ファイル（患者 {patients} 人、{years} 年分、{:.1} 秒）",
                out.display(),
                started.elapsed().as_secs_f64()
            );
        }
        DevCommand::SeedDemo => {
            let settings = settings(cli, None)?;
            with_app(cli, Open::CreateIfMissing, async |app| {
                crate::demo::seed_if_empty(app, &settings.data_dir).await
            })
            .await?;
        }
        DevCommand::Totp { login_id } => dev_totp(cli, login_id).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `renkei dev totp LOGIN`: the current code of a demo user.
async fn dev_totp(cli: &Cli, login_id: &str) -> Result<()> {
    checks::login_id(login_id)?;
    let settings = settings(cli, None)?;
    if !settings.data_dir.join(crate::demo::DEMO_MARKER).exists() {
        anyhow::bail!(
            "{} はデモ地域（renkei serve --demo）のデータディレクトリではありません。renkei dev totp はデモの利用者にだけ使えます",
            settings.data_dir.display()
        );
    }
    let (_, code, seconds) = with_app(cli, Open::Existing, async |app| {
        app.current_totp_code(&Actor::system("cli"), login_id)
            .await
            .map_err(not_found(format!(
                "ログインID「{login_id}」の二要素認証を登録した利用者はいません"
            )))
    })
    .await?;
    println!("{code}");
    eprintln!("（あと {seconds} 秒有効）");
    Ok(())
}

async fn admin(cli: &Cli, cmd: &AdminCommand) -> Result<ExitCode> {
    match cmd {
        AdminCommand::CreateFacility(a) => create_facility(cli, a).await?,
        AdminCommand::CreateUser(a) => create_user(cli, a).await?,
        AdminCommand::ResetPassword { login_id } => reset_password(cli, login_id).await?,
        AdminCommand::ImportFacilities { file } => {
            checks::file(file, "医療機関コードの一覧")?;
            with_app(cli, Open::CreateIfMissing, async |app| {
                crate::import::import_facilities(app, &Actor::system("cli"), file).await
            })
            .await?;
        }
        AdminCommand::CreateMedicationApp { name, url } => {
            with_app(cli, Open::Existing, async |app| {
                let (id, secret) = app
                    .register_medication_app(&Actor::system("cli"), name, url)
                    .await?;
                println!("お薬手帳アプリを登録しました: id={id}");
                println!("署名の鍵: {secret}（この表示の後は確認できません）");
                Ok(())
            })
            .await?;
        }
        AdminCommand::SubscribeMedicationApp {
            facility,
            card,
            app: app_id,
        } => subscribe_medication_app(cli, facility, card, *app_id).await?,
        AdminCommand::CreateClient(a) => create_client(cli, a).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn create_facility(cli: &Cli, a: &CreateFacilityArgs) -> Result<()> {
    checks::facility_type(&a.facility_type)?;
    checks::optional_facility_code(&a.code)?;
    checks::positive(a.max_accounts, "--max-accounts")?;
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
    with_app(cli, Open::CreateIfMissing, async |app| {
        let (f, warning) = app.create_facility(&Actor::system("cli"), &input).await?;
        if let Some(w) = warning {
            eprintln!("警告: {w}");
        }
        println!(
            "施設を登録しました: id={} oid={} ({})",
            f.id,
            f.oid,
            f.type_label()
        );
        Ok(())
    })
    .await
}

async fn create_user(cli: &Cli, a: &CreateUserArgs) -> Result<()> {
    checks::login_id(&a.login_id)?;
    checks::profession(&a.profession)?;
    checks::role(&a.role)?;
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
    let missing = format!(
        "施設 id={} は登録されていません（admin create-facility が表示した id を --facility-id に指定してください）",
        a.facility_id
    );
    with_app(cli, Open::Existing, async |app| {
        let actor = Actor::system("cli");
        let (u, temp) = match &a.password {
            Some(p) => (
                app.create_user_with_password(&actor, &input, p, false)
                    .await
                    .map_err(not_found(missing))?,
                None,
            ),
            None => {
                let (u, temp) = app
                    .create_user(&actor, &input)
                    .await
                    .map_err(not_found(missing))?;
                (u, Some(temp))
            }
        };
        println!("利用者を登録しました: id={} login_id={}", u.id, u.login_id);
        if let Some(temp) = temp {
            println!("仮パスワード: {temp}（初回ログイン時に変更が必要です）");
        }
        Ok(())
    })
    .await
}

async fn reset_password(cli: &Cli, login_id: &str) -> Result<()> {
    checks::login_id(login_id)?;
    with_app(cli, Open::Existing, async |app| {
        let actor = Actor::system("cli");
        let id = app
            .user_id_by_login(&actor, login_id)
            .await
            .map_err(not_found(format!(
                "ログインID「{login_id}」の利用者は登録されていません（大文字と小文字は区別しません）"
            )))?;
        let temp = app.reset_password(&actor, id).await?;
        println!("仮パスワードを発行しました: login_id={login_id}");
        println!("仮パスワード: {temp}（次回ログイン時に変更が必要です）");
        Ok(())
    })
    .await
}

async fn subscribe_medication_app(
    cli: &Cli,
    facility: &str,
    card: &str,
    app_id: i64,
) -> Result<()> {
    checks::facility_code(facility)?;
    checks::positive(app_id, "--app")?;
    with_app(cli, Open::Existing, async |app| {
        let actor = Actor::system("cli");
        let facility_id = app.facility_id_by_code(&actor, facility).await?;
        let at = Actor {
            facility_id: Some(facility_id),
            ..actor
        };
        app.subscribe_medication_app(&at, card, app_id)
            .await
            .map_err(not_found(format!(
                "お薬手帳アプリ id={app_id} またはこの HM カードは登録されていません"
            )))?;
        println!("お薬手帳アプリ {app_id} を連携しました");
        Ok(())
    })
    .await
}

async fn create_client(cli: &Cli, a: &CreateClientArgs) -> Result<()> {
    checks::facility_code(&a.facility)?;
    checks::profession(&a.profession)?;
    let jwks = match &a.jwks {
        Some(path) => {
            checks::file(path, "公開鍵ファイル")?;
            std::fs::read_to_string(path)
                .with_context(|| format!("公開鍵ファイル {} を読めません", path.display()))?
        }
        None => String::new(),
    };
    with_app(cli, Open::Existing, async |app| {
        let actor = Actor::system("cli");
        let facility_id = app.facility_id_by_code(&actor, &a.facility).await?;
        let input = renkei_app::api::ClientInput {
            client_id: a.client_id.clone(),
            name: a.name.clone(),
            facility_id,
            jwks: jwks.clone(),
            scopes: a.scope.clone(),
            cross_facility: a.cross_facility,
            profession: a.profession.clone(),
            redirect_uris: a.redirect_uri.join(" "),
        };
        let client = app.register_api_client(&actor, &input).await?;
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
        Ok(())
    })
    .await
}
