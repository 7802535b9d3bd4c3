//! `renkei import ssmix2`: walks a storage and imports it in batches.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use renkei_app::intake::{
    FileProblem, ImportReport, PreparedBatch, SourceFile, UNKNOWN_KIND, batch_boundary,
    prepare_ssmix2,
};
use renkei_app::{Actor, App};

/// Files per transaction: large enough for throughput, small enough that an interrupted import
/// loses little (a re-run skips what was kept).
const BATCH: usize = 500;

/// The files of a storage, sorted, relative to `root`.
fn storage_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.with_context(|| format!("{} を読めません", root.display()))?;
        if entry.file_type().is_file() {
            files.push(entry.into_path());
        }
    }
    files.sort();
    Ok(files)
}

/// Imports every file under `root` for `facility_id`: batches of about [`BATCH`] files that never
/// cut through a document's content folder, each read and mapped on a reader thread while the
/// previous one is written. The caller audits the run.
pub async fn import_storage(
    app: &App,
    actor: &Actor,
    facility_id: i64,
    root: &Path,
    bar: &ProgressBar,
) -> Result<ImportReport> {
    let files = storage_files(root)?;
    bar.set_length(files.len() as u64);
    let (sender, mut receiver) =
        tokio::sync::mpsc::channel::<(usize, PreparedBatch, Vec<FileProblem>)>(2);
    let root_owned = root.to_path_buf();
    let reader = std::thread::spawn(move || {
        let relative = |p: &PathBuf| {
            p.strip_prefix(&root_owned)
                .unwrap_or(p)
                .to_string_lossy()
                .replace('\\', "/")
        };
        let mut chunks: Vec<&[PathBuf]> = Vec::new();
        let mut start = 0;
        for i in 1..=files.len() {
            let full = i - start >= BATCH;
            if i == files.len()
                || (full && batch_boundary(&relative(&files[i - 1]), &relative(&files[i])))
            {
                chunks.push(&files[start..i]);
                start = i;
            }
        }
        for chunk in chunks {
            let mut batch = Vec::with_capacity(chunk.len());
            let mut unreadable = Vec::new();
            for path in chunk {
                let relative_path = relative(path);
                match std::fs::read(path) {
                    Ok(bytes) => batch.push(SourceFile {
                        relative_path,
                        bytes,
                    }),
                    Err(e) => unreadable.push(FileProblem {
                        path: relative_path,
                        reason: format!("読めません: {e}"),
                    }),
                }
            }
            if sender
                .blocking_send((chunk.len(), prepare_ssmix2(&batch), unreadable))
                .is_err()
            {
                return;
            }
        }
    });
    let mut report = ImportReport::default();
    while let Some((count, prepared, unreadable)) = receiver.recv().await {
        for p in unreadable {
            report.fail(&p.path, p.reason);
        }
        app.store_ssmix2(actor, facility_id, prepared, &mut report)
            .await
            .context("取り込みを保存できません（このバッチは保存されていません。再実行すると続きから取り込みます）")?;
        bar.inc(count as u64);
    }
    let _ = reader.join();
    Ok(report)
}

pub async fn import_ssmix2(
    app: &App,
    root: &Path,
    facility_code: &str,
    json: bool,
) -> Result<bool> {
    let started = Instant::now();
    let actor = Actor::system("import");
    let facility_id = app.facility_id_by_code(&actor, facility_code).await?;
    if !root.is_dir() {
        anyhow::bail!(
            "{} はディレクトリではありません（SS-MIX2 標準化ストレージのルートを指定してください）",
            root.display()
        );
    }
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "取り込み [{bar:40}] {pos}/{len} ファイル {per_sec} 残り {eta}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = import_storage(app, &actor, facility_id, root, &bar).await?;
    bar.finish_and_clear();
    app.audit_import_run(&actor, facility_id, "ssmix2", &report)
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    if json {
        let mut value = serde_json::to_value(&report)?;
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("seconds".into(), serde_json::json!(seconds));
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_summary(&report, seconds);
    }
    Ok(report.errors.is_empty())
}

/// Warning groups and errors printed at most; the rest are counted, and `--json` has them all.
const WARNINGS_SHOWN: usize = 50;
const ERRORS_SHOWN: usize = 200;

/// The text summary: totals, per data kind, per message type, warnings (one line per kind and
/// deviation) and errors, each list saying how much of it was left out.
fn print_summary(report: &ImportReport, seconds: f64) {
    println!(
        "SS-MIX2 取り込み: {} ファイル（新規 {}、変更なし {}、更新 {}、警告あり {}、取り込めず {}）、項目 {} 件、{:.1} 秒",
        report.files,
        report.stored,
        report.unchanged,
        report.replaced,
        report.warned,
        report.errors.len(),
        report.items,
        seconds
    );
    if !report.by_kind.is_empty() {
        println!("データ種別ごと（新規 / 変更なし / 更新 / 警告あり / 取り込めず）:");
        for (kind, c) in &report.by_kind {
            let kind = if kind == UNKNOWN_KIND {
                "（種別不明）"
            } else {
                kind.as_str()
            };
            println!(
                "  {kind:<10} {} / {} / {} / {} / {}",
                c.stored, c.unchanged, c.replaced, c.warned, c.failed
            );
        }
    }
    if report.link_reviews > 0 {
        println!(
            "名寄せ確認 {} 件: 患者情報がリンク先の方と一致しない患者IDがあります（記録は取り込み済み）。ポータルの「名寄せ確認」で確認してください",
            report.link_reviews
        );
    }
    if !report.messages_by_type.is_empty() {
        println!("メッセージ型ごと:");
        for (kind, n) in &report.messages_by_type {
            println!("  {kind:<10} {n}");
        }
    }
    let shown = |total: usize, limit: usize, what: &str| {
        if total > limit {
            println!(
                "  {what} {total} 件中 {limit} 件を表示（残り {} 件は表示していません。すべて --json で確認できます）",
                total - limit
            );
        }
    };
    if !report.warnings.is_empty() {
        println!(
            "警告 {} 件（データ種別と内容ごとに 1 行。これらのファイルは取り込まれています）:",
            report.warnings.len()
        );
        for w in report.warnings.iter().take(WARNINGS_SHOWN) {
            println!(
                "  {}: {}（{} ファイル、例: {}）",
                w.data_kind, w.reason, w.files, w.first_path
            );
        }
        shown(report.warnings.len(), WARNINGS_SHOWN, "警告");
    }
    if !report.errors.is_empty() {
        println!(
            "エラー {} 件（これらのファイルは取り込まれていません）:",
            report.errors.len()
        );
        for e in report.errors.iter().take(ERRORS_SHOWN) {
            println!("  {}: {}", e.path, e.reason);
        }
        shown(report.errors.len(), ERRORS_SHOWN, "エラー");
    }
}
