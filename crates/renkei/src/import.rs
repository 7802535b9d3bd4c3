//! `renkei admin import-facilities`: loads the national medical-institution code list.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use renkei_app::{Actor, App};
use renkei_core::institution::{InstitutionRecord, parse_master_row};

/// A row that could not be read: its 1-based line number and why.
#[derive(Debug)]
pub struct Rejected {
    pub line: u64,
    pub reason: String,
}

/// Reads the CSV bytes (UTF-8, with or without BOM, no header). Pure apart from the progress bar.
pub fn read_rows(bytes: &[u8], bar: &ProgressBar) -> (Vec<InstitutionRecord>, Vec<Rejected>) {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map(|p| p.line()).unwrap_or(line);
                let fields: Result<Vec<&str>, _> = record.iter().map(std::str::from_utf8).collect();
                match fields {
                    Ok(f) if f.iter().all(|x| x.trim().is_empty()) => {}
                    Ok(f) => match parse_master_row(&f) {
                        Ok(r) => good.push(r),
                        Err(reason) => bad.push(Rejected { line, reason }),
                    },
                    Err(_) => bad.push(Rejected {
                        line,
                        reason: "UTF-8 の文字列ではありません（文字コードを確認してください）"
                            .into(),
                    }),
                }
                bar.set_position(record.position().map(|p| p.byte()).unwrap_or(0));
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(line);
                bad.push(Rejected {
                    line,
                    reason: format!("CSV として読めません: {e}"),
                });
                if !matches!(
                    e.kind(),
                    csv::ErrorKind::Utf8 { .. } | csv::ErrorKind::UnequalLengths { .. }
                ) {
                    break;
                }
            }
        }
    }
    (good, bad)
}

/// The CSV bytes from a `.csv` file, or from the one `.csv` inside a `.zip`.
fn load(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("{} を読めません", path.display()))?;
    if !bytes.starts_with(b"PK\x03\x04") {
        return Ok(bytes);
    }
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .with_context(|| format!("{} は ZIP として読めません", path.display()))?;
    let index = (0..archive.len())
        .find(|i| {
            archive
                .by_index(*i)
                .is_ok_and(|f| f.name().to_ascii_lowercase().ends_with(".csv"))
        })
        .with_context(|| format!("{} に CSV ファイルがありません", path.display()))?;
    let entry = archive.by_index(index)?;
    inflate_bounded(entry, MAX_CSV_BYTES)
        .with_context(|| format!("{} の CSV を展開できません", path.display()))
}

/// The most a code list may inflate to: the national list is about 12 MB; a ZIP whose entry
/// declares or inflates to more is refused rather than filling memory (a zip bomb).
const MAX_CSV_BYTES: u64 = 256 * 1024 * 1024;

/// Reads a ZIP entry, refusing one that declares or inflates to more than `max` bytes; nothing
/// is reserved on the entry's word.
fn inflate_bounded(entry: impl std::io::Read + ZipSize, max: u64) -> Result<Vec<u8>> {
    if entry.declared() > max {
        anyhow::bail!(
            "展開後 {} バイトと宣言されており、上限 {max} バイトを超えています",
            entry.declared()
        );
    }
    let mut out = Vec::new();
    entry.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        anyhow::bail!("展開すると上限 {max} バイトを超えます");
    }
    Ok(out)
}

/// The uncompressed size a ZIP entry declares.
trait ZipSize {
    fn declared(&self) -> u64;
}

impl<R: std::io::Read> ZipSize for zip::read::ZipFile<'_, R> {
    fn declared(&self) -> u64 {
        self.size()
    }
}

pub async fn import_facilities(app: &App, actor: &Actor, path: &Path) -> Result<()> {
    let started = Instant::now();
    let bytes = load(path)?;
    let style =
        ProgressStyle::with_template("{msg:12} [{bar:40}] {percent:>3}% {pos}/{len} {per_sec}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = ProgressBar::new(bytes.len() as u64)
        .with_style(style.clone())
        .with_message("読み込み");
    let (records, rejected) = read_rows(&bytes, &bar);
    bar.finish_and_clear();
    if records.is_empty() {
        for r in rejected.iter().take(20) {
            eprintln!("  {} 行目: {}", r.line, r.reason);
        }
        bail!(
            "{} に読み込める行がありません（{} 行を読めませんでした）",
            path.display(),
            rejected.len()
        );
    }
    let bar = ProgressBar::new(records.len() as u64)
        .with_style(style)
        .with_message("保存");
    let report = app
        .import_institutions(actor, &records, &mut |n| bar.inc(n as u64))
        .await
        .context("医療機関コードを保存できません（何も保存されていません）")?;
    bar.finish_and_clear();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    app.audit_import(actor, &name, report.imported, rejected.len())
        .await?;
    println!(
        "医療機関コード {} 件を取り込みました（{:.1} 秒）。検証番号が一致しない行: {} 件、読めなかった行: {} 件",
        report.imported,
        started.elapsed().as_secs_f64(),
        report.check_digit_warnings,
        rejected.len()
    );
    for r in rejected.iter().take(100) {
        println!("  {} 行目: {}", r.line, r.reason);
    }
    if rejected.len() > 100 {
        println!("  ほか {} 行", rejected.len() - 100);
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    /// A reader standing in for a ZIP entry that says one size and holds another.
    struct Entry(std::io::Cursor<Vec<u8>>, u64);

    impl std::io::Read for Entry {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl ZipSize for Entry {
        fn declared(&self) -> u64 {
            self.1
        }
    }

    #[test]
    fn a_zip_entry_is_inflated_only_up_to_the_limit() {
        let ok = inflate_bounded(Entry(std::io::Cursor::new(vec![b'a'; 100]), 100), 100).unwrap();
        assert_eq!(ok.len(), 100);
        // It declares too much: refused before reading.
        let e = inflate_bounded(Entry(std::io::Cursor::new(Vec::new()), 1 << 40), 100).unwrap_err();
        assert!(e.to_string().contains("宣言"), "{e}");
        // It declares little and inflates to more (a lying zip bomb): stopped at the limit.
        let e = inflate_bounded(Entry(std::io::Cursor::new(vec![0; 1000]), 10), 100).unwrap_err();
        assert!(e.to_string().contains("上限"), "{e}");
    }
    use super::*;

    #[test]
    fn reports_bad_rows_with_line_numbers() {
        let csv = "\u{feff}010112489,0112489,医療法人 愛全病院,0050813,札幌市\n\
                   01011248X,011248X,壊れた行,0000000,どこか\n\
                   only,three,fields\n\
                   \n\
                   010113420,0113420,札幌中央病院,0640809,札幌市中央区\n";
        let (good, bad) = read_rows(csv.as_bytes(), &ProgressBar::hidden());
        assert_eq!(good.len(), 2);
        assert_eq!(bad.iter().map(|r| r.line).collect::<Vec<_>>(), vec![2, 3]);
        assert!(bad[1].reason.contains("列の数"));
    }
}
