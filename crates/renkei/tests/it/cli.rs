//! The command line: help, bad input, the directory, imports and `audit verify`.

use std::process::Command;

use crate::*;

#[test]
fn every_subcommand_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["admin", "--help"],
        vec!["admin", "create-facility", "--help"],
        vec!["admin", "create-user", "--help"],
        vec!["admin", "reset-password", "--help"],
        vec!["admin", "import-facilities", "--help"],
        vec!["audit", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["import", "--help"],
        vec!["import", "ssmix2", "--help"],
        vec!["import", "jahis", "--help"],
        vec!["dev", "--help"],
        vec!["dev", "generate-ssmix2", "--help"],
    ] {
        let o = Command::new(bin()).args(&args).output().unwrap();
        assert!(o.status.success(), "{args:?}");
        assert!(stdout(&o).contains("Usage:"), "{args:?}: {}", stdout(&o));
    }
}

#[test]
fn malformed_config_and_unreachable_database_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("renkei.toml");
    std::fs::write(&config, "listen = \n").unwrap();
    let o = Command::new(bin())
        .arg("--config")
        .arg(&config)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("renkei.toml") && stderr(&o).contains("書式"),
        "{}",
        stderr(&o)
    );

    std::fs::write(&config, "lisen = \"127.0.0.1:1\"\n").unwrap();
    let o = Command::new(bin())
        .arg("--config")
        .arg(&config)
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("lisen"), "{}", stderr(&o));

    let o = Command::new(bin())
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "--database-url",
            "postgres://renkei:secret@127.0.0.1:1/renkei",
            "admin",
            "create-facility",
            "--type",
            "operator",
            "--name",
            "事務局",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("PostgreSQL（postgres://renkei:***@127.0.0.1:1/renkei）に接続できません"),
        "{err}"
    );
    assert!(
        !err.contains("secret"),
        "the password must not be printed: {err}"
    );
}

#[test]
fn directory_commands_refuse_duplicates_and_warn_on_check_digits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    bootstrap(d);
    let args = [
        "admin",
        "create-facility",
        "--type",
        "hospital",
        "--name",
        "広島中央総合病院",
        "--code",
        "3411234567",
        "--discloses",
    ];
    let first = renkei(d, &args);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("検証番号"),
        "a wrong check digit warns: {}",
        stderr(&first)
    );
    assert!(
        stdout(&first).contains("oid=1.2.392.200284.34.3411234567"),
        "{}",
        stdout(&first)
    );
    let again = renkei(d, &args);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("すでに登録"), "{}", stderr(&again));
    let bad = renkei(
        d,
        &[
            "admin",
            "create-facility",
            "--type",
            "hospital",
            "--name",
            "x",
            "--code",
            "34112",
        ],
    );
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("10桁"), "{}", stderr(&bad));
    let bad_type = renkei(
        d,
        &[
            "admin",
            "create-facility",
            "--type",
            "castle",
            "--name",
            "x",
        ],
    );
    assert!(
        stderr(&bad_type).contains("施設種別"),
        "{}",
        stderr(&bad_type)
    );

    // A user with a temporary password, then a reset.
    let f = id_of(&renkei(
        d,
        &[
            "admin",
            "create-facility",
            "--type",
            "clinic",
            "--name",
            "みどり内科",
            "--max-accounts",
            "1",
        ],
    ));
    let fs = f.to_string();
    let created = renkei(
        d,
        &[
            "admin",
            "create-user",
            "--facility-id",
            &fs,
            "--login-id",
            "midori.dr",
            "--name",
            "緑川 一郎",
            "--profession",
            "doctor",
        ],
    );
    assert!(
        stdout(&created).contains("仮パスワード: "),
        "{}",
        stdout(&created)
    );
    let over = renkei(
        d,
        &[
            "admin",
            "create-user",
            "--facility-id",
            &fs,
            "--login-id",
            "midori.ns",
            "--name",
            "緑川 花",
            "--profession",
            "nurse",
        ],
    );
    assert!(
        stderr(&over).contains("上限"),
        "the account limit holds: {}",
        stderr(&over)
    );
    let reset = renkei(d, &["admin", "reset-password", "--login-id", "midori.dr"]);
    assert!(
        stdout(&reset).contains("仮パスワード: "),
        "{}",
        stderr(&reset)
    );
    let unknown = renkei(d, &["admin", "reset-password", "--login-id", "nobody"]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("ログインID「nobody」の利用者は登録されていません"),
        "{}",
        stderr(&unknown)
    );
}

/// Every file and folder under `dir`, relative, sorted; the audit spool's files and SQLite's
/// WAL and shared-memory files (which come and go as any process opens the store) left out.
fn tree(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().map_while(Result::ok) {
            out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.retain(|p| !p.contains(".audit-spool/") && !p.ends_with("-wal") && !p.ends_with("-shm"));
    out.sort();
    out
}

/// Runs the binary in `cwd` without --data-dir (so the default ./data would be created there).
fn renkei_in(cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .current_dir(cwd)
        .args(args)
        .env("RENKEI_FIXED_CLOCK", FIXED_CLOCK)
        .env_remove("RENKEI_DATA_DIR")
        .env_remove("RENKEI_DATABASE_URL")
        .env_remove("RENKEI_CONFIG")
        .output()
        .unwrap()
}

/// A command refused for its arguments exits non-zero, names the bad value (and the valid
/// ones for a choice), and creates nothing: no ./data, no audit key, no database.
#[test]
fn a_refused_command_names_the_problem_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let refusals: &[(&[&str], &str)] = &[
        (
            &["import", "ssmix2", "/nonexistent", "--facility", "123"],
            "医療機関コード「123」",
        ),
        (
            &[
                "import",
                "ssmix2",
                "/nonexistent",
                "--facility",
                "3411234564",
            ],
            "フォルダ /nonexistent がありません",
        ),
        (
            &[
                "import",
                "jahis",
                "/nonexistent.txt",
                "--facility",
                "3411234564",
            ],
            "/nonexistent.txt がありません",
        ),
        (
            &["admin", "create-facility", "--type", "foo", "--name", "x"],
            "hospital（病院）",
        ),
        (
            &[
                "admin",
                "create-facility",
                "--type",
                "clinic",
                "--name",
                "x",
                "--code",
                "12a",
            ],
            "「12a」",
        ),
        (
            &[
                "admin",
                "create-user",
                "--facility-id",
                "1",
                "--login-id",
                "a b",
                "--name",
                "x",
                "--profession",
                "doctor",
            ],
            "ログインID「a b」",
        ),
        (
            &[
                "admin",
                "create-user",
                "--facility-id",
                "1",
                "--login-id",
                "abc",
                "--name",
                "x",
                "--profession",
                "surgeon",
            ],
            "doctor（医師）",
        ),
        (
            &[
                "admin",
                "create-user",
                "--facility-id",
                "1",
                "--login-id",
                "abc",
                "--name",
                "x",
                "--profession",
                "doctor",
                "--role",
                "boss",
            ],
            "facility_admin（施設管理者）",
        ),
        (
            &["admin", "reset-password", "--login-id", "nobody"],
            "データベース data/renkei.db がありません",
        ),
        (
            &["audit", "verify"],
            "データベース data/renkei.db がありません",
        ),
        (&["dev", "totp", "chuo.dr"], "デモ地域"),
    ];
    for (args, says) in refusals {
        let o = renkei_in(cwd, args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(
            stderr(&o).contains(says),
            "{args:?}: expected «{says}» in {}",
            stderr(&o)
        );
        assert!(tree(cwd).is_empty(), "{args:?} created {:?}", tree(cwd));
    }
}

/// On an existing region: an empty or foreign folder is not a storage, an unknown facility or
/// user is named, and a file that is not a database is said in words.
#[test]
fn errors_on_a_region_are_said_for_people() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    bootstrap(d);
    let before = tree(d);
    let empty = tempfile::tempdir().unwrap();
    let import = |why: &str| {
        let o = renkei(
            d,
            &[
                "import",
                "ssmix2",
                empty.path().to_str().unwrap(),
                "--facility",
                "3411234564",
            ],
        );
        assert!(!o.status.success());
        assert!(stderr(&o).contains(why), "{}", stderr(&o));
    };
    import("ファイルがありません");
    std::fs::write(empty.path().join("readme.txt"), "not a storage").unwrap();
    import("SS-MIX2 標準化ストレージのファイル");
    let o = renkei(
        d,
        &[
            "admin",
            "create-user",
            "--facility-id",
            "99",
            "--login-id",
            "abc",
            "--name",
            "x",
            "--profession",
            "doctor",
        ],
    );
    assert!(
        stderr(&o).contains("施設 id=99 は登録されていません"),
        "{}",
        stderr(&o)
    );
    let o = renkei(
        d,
        &[
            "import",
            "ssmix2",
            crate::fixture("nho-ssmix2-testing-tool/sampleData")
                .to_str()
                .unwrap(),
            "--facility",
            "3411234564",
        ],
    );
    assert!(
        stderr(&o).contains("医療機関コード 3411234564 の施設は登録されていません"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        tree(d),
        before,
        "refused commands changed the data directory"
    );
    let junk = d.join("junk.db");
    std::fs::write(&junk, "this is not SQLite").unwrap();
    let url = format!("sqlite://{}", junk.display());
    let o = renkei(
        d,
        &[
            "--database-url",
            &url,
            "admin",
            "reset-password",
            "--login-id",
            "admin",
        ],
    );
    let e = stderr(&o);
    assert!(e.contains("SQLite のデータベースではありません"), "{e}");
    assert!(
        !e.contains("code:") && !e.contains("at line") && !e.contains("error returned"),
        "{e}"
    );
}

#[test]
fn import_reports_unreadable_rows_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = d.join("codes.csv");
    std::fs::write(
        &csv,
        "\u{feff}340110019,0110019,広島市民病院,7300011,広島市中区基町\n340110X19,0110X19,壊れた行,7300011,広島市\nonly,three,fields\n340110027,0110027,別の病院,7300011,広島市\n",
    )
    .unwrap();
    let o = renkei(d, &["admin", "import-facilities", csv.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("2 件を取り込みました"), "{out}");
    assert!(out.contains("2 行目") && out.contains("3 行目"), "{out}");
    let empty = d.join("empty.csv");
    std::fs::write(&empty, "x,y\n").unwrap();
    let o = renkei(d, &["admin", "import-facilities", empty.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("読み込める行がありません"),
        "{}",
        stderr(&o)
    );
}

/// The published list: 97,024 rows, straight from its ZIP. Seconds, not minutes (the time is
/// printed, not asserted).
#[test]
fn imports_the_national_code_list() {
    let zip = fixture("medical-institution-codes/202508_all_med_inst_cd.zip");
    let dir = tempfile::tempdir().unwrap();
    let o = renkei(
        dir.path(),
        &["admin", "import-facilities", zip.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    eprintln!("{out}");
    assert!(out.contains("97024 件を取り込みました"), "{out}");
    assert!(
        out.contains("検証番号が一致しない行: 0 件、読めなかった行: 0 件"),
        "{out}"
    );
    // Again: upserts, no duplicates.
    let o = renkei(
        dir.path(),
        &["admin", "import-facilities", zip.to_str().unwrap()],
    );
    assert!(stdout(&o).contains("97024 件"), "{}", stdout(&o));
}

fn raw(d: &std::path::Path, sql: &str) {
    let sql = sql.to_string();
    on_sqlite(d, |pool| async move {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
    });
}

#[test]
fn audit_verify_detects_modified_deleted_and_inserted_events() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    bootstrap(d);
    for i in 0..3 {
        renkei(
            d,
            &[
                "admin",
                "create-facility",
                "--type",
                "clinic",
                "--name",
                &format!("診療所{i}"),
            ],
        );
    }
    let ok = renkei(d, &["audit", "verify"]);
    assert!(ok.status.success(), "{}", stdout(&ok));
    assert!(stdout(&ok).contains("5 件を検証"), "{}", stdout(&ok));

    raw(
        d,
        "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;",
    );
    raw(
        d,
        "UPDATE audit_events SET action = 'directory.facility.update' WHERE seq = 3",
    );
    let modified = renkei(d, &["audit", "verify"]);
    assert_eq!(modified.status.code(), Some(1));
    assert!(
        stdout(&modified).contains("event 3: contents do not match"),
        "{}",
        stdout(&modified)
    );
    raw(
        d,
        "UPDATE audit_events SET action = 'directory.facility.create' WHERE seq = 3",
    );
    assert!(renkei(d, &["audit", "verify"]).status.success());

    raw(d, "DELETE FROM audit_events WHERE seq = 4");
    let deleted = renkei(d, &["audit", "verify"]);
    assert_eq!(deleted.status.code(), Some(1));
    assert!(stdout(&deleted).contains("missing"), "{}", stdout(&deleted));

    raw(
        d,
        "INSERT INTO audit_events SELECT 4, at, user_id, login_id, facility_id, profession, action, 'facility:99', outcome, detail, client, emergency, hash, hash FROM audit_events WHERE seq = 3",
    );
    let inserted = renkei(d, &["audit", "verify"]);
    assert_eq!(inserted.status.code(), Some(1));
    assert!(
        stdout(&inserted).contains("event 4: contents do not match"),
        "{}",
        stdout(&inserted)
    );
}

/// One value read straight from the database.
fn raw_text(d: &std::path::Path, sql: &str) -> String {
    sqlite_texts(d, sql).into_iter().next().unwrap_or_default()
}

/// Someone who can write the database cuts the trail short: the newest events deleted and the
/// head pointed at an older one (its seal cannot be forged, but a head row seen earlier can be
/// put back), or the trail emptied and the head reset. The head's seal and the anchor beside
/// the key catch each.
#[test]
fn audit_verify_detects_a_trail_cut_short_or_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    bootstrap(d);
    // The head as it stood after the first two events, saved by the attacker.
    let saved = raw_text(d, "SELECT seq || '|' || hash || '|' || mac FROM audit_head");
    for i in 0..3 {
        let o = renkei(
            d,
            &[
                "admin",
                "create-facility",
                "--type",
                "clinic",
                "--name",
                &format!("診療所{i}"),
            ],
        );
        assert!(o.status.success());
    }
    assert!(
        d.join("audit.anchor").exists(),
        "commands anchor the chain beside the key"
    );
    let ok = renkei(d, &["audit", "verify"]);
    assert!(ok.status.success(), "{}", stdout(&ok));
    raw(
        d,
        "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;",
    );

    // Cut to event 2 and the head pointed there without the key: the seal and the anchor.
    let hash2 = raw_text(d, "SELECT hash FROM audit_events WHERE seq = 2");
    raw(
        d,
        &format!(
            "DELETE FROM audit_events WHERE seq > 2; UPDATE audit_head SET seq = 2, hash = '{hash2}'"
        ),
    );
    let cut = renkei(d, &["audit", "verify"]);
    assert_eq!(cut.status.code(), Some(1), "{}", stdout(&cut));
    assert!(
        stdout(&cut).contains("not sealed by the audit key"),
        "{}",
        stdout(&cut)
    );
    assert!(
        stdout(&cut).contains("anchor beside the key says it reached 5"),
        "{}",
        stdout(&cut)
    );

    // The saved head row put back: its seal is genuine, the anchor still catches the cut.
    let parts: Vec<&str> = saved.split('|').collect();
    raw(
        d,
        &format!(
            "UPDATE audit_head SET seq = {}, hash = '{}', mac = '{}'",
            parts[0], parts[1], parts[2]
        ),
    );
    let restored = renkei(d, &["audit", "verify"]);
    assert_eq!(restored.status.code(), Some(1));
    assert!(
        !stdout(&restored).contains("not sealed"),
        "{}",
        stdout(&restored)
    );
    assert!(
        stdout(&restored).contains("says it reached 5"),
        "{}",
        stdout(&restored)
    );

    // Emptied, head reset to the beginning.
    raw(
        d,
        "DELETE FROM audit_events; UPDATE audit_head SET seq = 0, hash = '0000000000000000000000000000000000000000000000000000000000000000', mac = ''",
    );
    let emptied = renkei(d, &["audit", "verify"]);
    assert_eq!(emptied.status.code(), Some(1));
    assert!(
        stdout(&emptied).contains("the audit trail is empty"),
        "{}",
        stdout(&emptied)
    );
    // Even with the anchor file gone too.
    std::fs::remove_file(d.join("audit.anchor")).unwrap();
    let no_anchor = renkei(d, &["audit", "verify"]);
    assert_eq!(no_anchor.status.code(), Some(1));
    assert!(
        stdout(&no_anchor).contains("監査アンカー"),
        "{}",
        stdout(&no_anchor)
    );
    assert!(
        stdout(&no_anchor).contains("the audit trail is empty"),
        "{}",
        stdout(&no_anchor)
    );
}

#[test]
fn import_ssmix2_reports_bad_files_and_exits_non_zero_after_importing_the_rest() {
    let storage = fixture("nho-ssmix2-testing-tool/sampleData");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    bootstrap(d);
    let unknown = renkei(
        d,
        &[
            "import",
            "ssmix2",
            storage.to_str().unwrap(),
            "--facility",
            "3411234564",
        ],
    );
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("登録されていません"),
        "{}",
        stderr(&unknown)
    );
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
            "3411234564",
            "--discloses",
        ],
    ));
    let first = renkei(
        d,
        &[
            "import",
            "ssmix2",
            storage.to_str().unwrap(),
            "--facility",
            "3411234564",
        ],
    );
    assert_eq!(
        first.status.code(),
        Some(1),
        "one file is broken on purpose: {}",
        stdout(&first)
    );
    let out = stdout(&first);
    assert!(out.contains("22 ファイル（新規 21"), "{out}");
    assert!(
        out.contains("ADT-31") && out.contains("がファイル名と合いません"),
        "{out}"
    );
    assert!(out.contains("RDE^O11"), "{out}");
    // Per data kind: OMP-01 and OMP-02 are two kinds, though both are RDE^O11.
    assert!(out.contains("データ種別ごと"), "{out}");
    assert!(out.contains("OMP-01     1 / 0 / 0 / 0 / 0"), "{out}");
    assert!(out.contains("OMP-02     1 / 0 / 0 / 0 / 0"), "{out}");
    assert!(!out.contains("件を表示"), "nothing left out: {out}");
    let again = renkei(
        d,
        &[
            "import",
            "ssmix2",
            storage.to_str().unwrap(),
            "--facility",
            "3411234564",
            "--json",
        ],
    );
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["unchanged"], 21);
    assert_eq!(report["stored"], 0);
    assert_eq!(report["errors"].as_array().unwrap().len(), 1);
    assert_eq!(report["by_kind"]["OMP-01"]["unchanged"], 1);
    assert_eq!(report["by_kind"]["OMP-02"]["unchanged"], 1);
    assert_eq!(report["by_kind"]["OMP-11"]["failed"], 1);
    assert_eq!(report["messages_by_type"]["RDE^O11"], 2);
    assert!(renkei(d, &["audit", "verify"]).status.success());
    // Each committed batch has its audit event, in the batch's own transaction.
    let batches = raw_text(
        d,
        "SELECT group_concat(detail, ' | ') FROM audit_events WHERE action = 'intake.ssmix2.batch'",
    );
    assert_eq!(
        batches,
        "messages=21;stored=21;unchanged=0;replaced=0 | messages=21;stored=0;unchanged=21;replaced=0"
    );
}

/// A storage that deviates from the guideline as real ones do (fixtures/ssmix2-deviations,
/// docs/ssmix2-deviations.md): what can be read is kept, each deviation is one line per data
/// kind with its count, and what cannot be read is refused with a reason in Japanese.
#[test]
fn import_ssmix2_tolerates_vendor_deviations_and_counts_per_kind() {
    let storage = fixture("ssmix2-deviations/storage");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    bootstrap(d);
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
            "3411234564",
        ],
    ));
    let args = |json: bool| {
        let mut a = vec![
            "import",
            "ssmix2",
            storage.to_str().unwrap(),
            "--facility",
            "3411234564",
        ];
        if json {
            a.push("--json");
        }
        a
    };
    let o = renkei(d, &args(true));
    assert_eq!(o.status.code(), Some(1), "four files cannot be read");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["stored"], 10, "{report}");
    assert_eq!(report["warned"], 10, "{report}");
    let adt12 = &report["by_kind"]["ADT-12"];
    assert_eq!(
        (&adt12["stored"], &adt12["warned"], &adt12["failed"]),
        (
            &serde_json::json!(3),
            &serde_json::json!(3),
            &serde_json::json!(0)
        ),
        "{report}"
    );
    assert_eq!(report["by_kind"]["OMP-01"]["failed"], 1, "{report}");
    assert_eq!(report["messages_by_type"]["ADT^A01"], 3, "{report}");
    let group = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["deviation"] == "trigger_by_kind")
        .unwrap();
    assert_eq!(group["data_kind"], "ADT-12");
    assert_eq!(group["files"], 2);
    assert!(
        group["reason"]
            .as_str()
            .unwrap()
            .contains("外来受診として取り込みました"),
        "{group}"
    );
    for e in report["errors"].as_array().unwrap() {
        let reason = e["reason"].as_str().unwrap();
        assert!(
            !reason.is_ascii() && !reason.contains("0001900002"),
            "reasons in Japanese, without patient data: {reason}"
        );
    }
    let text = stdout(&renkei(d, &args(false)));
    assert!(
        text.contains("ADT-12: データ種別 ADT-12 に ADT^A01 が格納されています")
            && text.contains("（2 ファイル、例: 000/190/0001900001/20260105/ADT-12/"),
        "{text}"
    );
    assert!(text.contains("ADT-12     0 / 3 / 0 / 3 / 0"), "{text}");
}

/// The text summary prints at most 200 errors and says how many it left out.
#[test]
fn import_ssmix2_says_how_many_errors_it_did_not_print() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    bootstrap(d);
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
            "3411234564",
        ],
    ));
    let storage = d.join("storage");
    let folder = storage.join("000/190/0001900001/20260105/OML-01");
    std::fs::create_dir_all(&folder).unwrap();
    for n in 0..203 {
        std::fs::write(
            folder.join(format!(
                "0001900001_20260105_OML-01_{n:015}_20260105110000000_01_1"
            )),
            b"not a message\r",
        )
        .unwrap();
    }
    let o = renkei(
        d,
        &[
            "import",
            "ssmix2",
            storage.to_str().unwrap(),
            "--facility",
            "3411234564",
        ],
    );
    let text = stdout(&o);
    assert!(
        text.contains("エラー 203 件中 200 件を表示（残り 3 件は表示していません"),
        "{text}"
    );
    assert!(text.contains("OML-01     0 / 0 / 0 / 0 / 203"), "{text}");
}

#[test]
fn generated_storages_import_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let storage = d.join("storage");
    let g = renkei(
        d,
        &[
            "dev",
            "generate-ssmix2",
            storage.to_str().unwrap(),
            "--patients",
            "5",
            "--years",
            "1",
        ],
    );
    assert!(g.status.success(), "{}", stderr(&g));
    id_of(&renkei(
        d,
        &[
            "admin",
            "create-facility",
            "--type",
            "hospital",
            "--name",
            "広島中央総合病院",
            "--code",
            "3411234564",
        ],
    ));
    let o = renkei(
        d,
        &[
            "import",
            "ssmix2",
            storage.to_str().unwrap(),
            "--facility",
            "3411234564",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stdout(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(report["stored"].as_u64().unwrap() > 50, "{report}");
    assert!(
        report["warnings"].as_array().unwrap().is_empty(),
        "{report}"
    );
}

#[test]
fn import_jahis_stores_a_pharmacy_export_once() {
    let fixtures = fixture("jahis-rx-parser/fixtures");
    // The demo region: cards for the hospitals' first patients, and かみや町薬局.
    let dir = demo_dir();
    let d = dir.path();
    let draft = renkei_core::facility::FacilityCode::parse("3440103040").unwrap();
    let pharmacy = format!("344010304{}", draft.expected_check_digit());
    // The pharmacy's export for the card-holder: the fixture's dispensings under a patient
    // record of the card's person (birth date in the era form, as receipt computers write it).
    let original = std::fs::read_to_string(fixtures.join("tc-multi-dispensing.txt")).unwrap();
    let with_patient = |address: &str| for_card_holder(d, "34000000018", &original, address);
    let file = d.join("export.txt");
    std::fs::write(&file, with_patient("広島市中区基町1-1")).unwrap();
    let args = |f: &std::path::Path| {
        vec![
            "import".to_string(),
            "jahis".to_string(),
            f.to_str().unwrap().to_string(),
            "--facility".to_string(),
            pharmacy.clone(),
            "--card".to_string(),
            "34000000018".to_string(),
        ]
    };
    let run = |f: &std::path::Path| {
        let a = args(f);
        renkei(d, &a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let first = run(&file);
    assert!(
        first.status.success(),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );
    assert!(
        stdout(&first).contains("調剤 2 件を登録しました"),
        "{}",
        stdout(&first)
    );
    let again = run(&file);
    assert!(
        stdout(&again).contains("登録済み 2 件"),
        "{}",
        stdout(&again)
    );
    // The patient moved: the same dispensings re-exported are still the same dispensings.
    std::fs::write(&file, with_patient("広島市南区宇品1-2-3")).unwrap();
    let moved = run(&file);
    assert!(
        stdout(&moved).contains("調剤 0 件を登録しました（登録済み 2 件）"),
        "{}",
        stdout(&moved)
    );
    // Another patient's file under this card: refused, naming the fields, not the values.
    let other = run(&fixtures.join("tc-multi-dispensing.txt"));
    assert!(!other.status.success());
    assert!(
        stderr(&other).contains("一致しない項目: 氏名、カナ氏名、生年月日"),
        "{}",
        stderr(&other)
    );
    assert!(!stderr(&other).contains("山田"), "{}", stderr(&other));
    let bad = run(&fixtures.join("tc-invalid-missing-drug-code.txt"));
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("4行目"), "{}", stderr(&bad));
}
