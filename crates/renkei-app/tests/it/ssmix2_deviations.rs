//! Tolerated deviations of real SS-MIX2 storages (docs/ssmix2-deviations.md): each row of the
//! table has a hand-made file under `fixtures/ssmix2-deviations/storage` and a test here. A
//! deviating file is kept and its deviation reported once per data kind; only what cannot be
//! read is refused, and the reason says why, in Japanese.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use renkei_app::intake::{ImportReport, SourceFile, prepare_ssmix2};
use renkei_app::{Actor, App, AppConfig};
use renkei_core::time::{FixedClock, Timestamp};
use renkei_store::clinical::IncomingMessage;
use renkei_store::on_both_backends;
use renkei_store::testing::TestStore;

fn storage() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/ssmix2-deviations/storage");
    assert!(
        p.is_dir(),
        "fixture missing: {} (part of the repository)",
        p.display()
    );
    p
}

/// Every file of the deviations storage, sorted, relative to its root.
fn all_files() -> Vec<SourceFile> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<SourceFile>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(SourceFile {
                    relative_path: p
                        .strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                    bytes: std::fs::read(&p).unwrap(),
                });
            }
        }
    }
    let root = storage();
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort_by(|a, b| a.relative_path.cmp(&b.relative_path));
    out
}

/// The fixture files whose path holds every one of `parts`.
fn files(parts: &[&str]) -> Vec<SourceFile> {
    let found: Vec<SourceFile> = all_files()
        .into_iter()
        .filter(|f| parts.iter().all(|p| f.relative_path.contains(p)))
        .collect();
    assert!(!found.is_empty(), "no fixture file matches {parts:?}");
    found
}

/// Checks and maps `files`; returns the report and the messages as they would be stored.
fn prepare(files: &[SourceFile]) -> (ImportReport, Vec<IncomingMessage>) {
    let batch = prepare_ssmix2(files);
    (batch.report().clone(), batch.messages().to_vec())
}

/// The one deviation the files of `kind` have, with the number of files.
fn only_deviation(report: &ImportReport, kind: &str) -> (String, String, usize) {
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let groups: Vec<_> = report
        .warnings
        .iter()
        .filter(|g| g.data_kind == kind)
        .collect();
    assert_eq!(groups.len(), 1, "{:?}", report.warnings);
    let g = groups[0];
    (g.deviation.clone(), g.reason.clone(), g.files)
}

fn detail(m: &IncomingMessage, category: &str) -> serde_json::Value {
    let item = m
        .items
        .iter()
        .find(|i| i.category == category)
        .unwrap_or_else(|| panic!("no {category} item: {:?}", m.items));
    serde_json::from_str(&item.detail).unwrap()
}

#[test]
fn adt_a01_in_adt_12_is_an_outpatient_visit() {
    let (report, messages) = prepare(&files(&["0001900001/", "ADT-12"]));
    let (key, reason, count) = only_deviation(&report, "ADT-12");
    assert_eq!(key, "trigger_by_kind");
    assert_eq!(count, 2, "one line for both files");
    assert_eq!(
        reason,
        "データ種別 ADT-12 に ADT^A01 が格納されています（ガイドラインでは ADT^A04/A11）。外来受診として取り込みました（ADT^A04 として読みました）"
    );
    assert_eq!(report.by_kind["ADT-12"].warned, 2);
    assert_eq!(report.messages_by_type["ADT^A01"], 2, "counted as sent");
    for m in &messages {
        let visit = m.items.iter().find(|i| i.category == "encounter").unwrap();
        assert_eq!(
            (visit.code.as_str(), visit.display.as_str()),
            ("A04", "outpatient_visit")
        );
        assert_eq!(visit.status, "done");
        let d = detail(m, "encounter");
        assert_eq!(d["trigger_sent"], "A01");
        assert_eq!(d["patient_class"], "O");
        assert!(m.demographics.is_some());
        assert_eq!(m.message_type, "ADT^A01");
    }
    assert_eq!(
        messages[0].items[0].effective_date.as_deref(),
        Some("2026-01-05"),
        "dated by PV1-44 as an A04 is"
    );
}

#[test]
fn oru_r01_in_oml_11_is_a_lab_result() {
    let (report, messages) = prepare(&files(&["OML-11"]));
    let (key, reason, _) = only_deviation(&report, "OML-11");
    assert_eq!(key, "code_by_kind");
    assert!(
        reason.contains("ORU^R01") && reason.contains("検体検査結果"),
        "{reason}"
    );
    let d = detail(&messages[0], "lab_result");
    assert_eq!(d["value"], "105");
    assert_eq!(d["order_no"], "000000000000003");
}

#[test]
fn lf_segment_ends_are_read() {
    let (report, messages) = prepare(&files(&["0001900001/", "ADT-00"]));
    let (key, reason, _) = only_deviation(&report, "ADT-00");
    assert_eq!(key, "segment_terminator");
    assert!(reason.contains("LF"), "{reason}");
    let d = messages[0].demographics.as_ref().unwrap();
    assert_eq!(d.kanji_name, "架空 一郎");
    assert_eq!(d.birth_date.as_deref(), Some("1950-01-01"));
}

#[test]
fn a_file_without_0x1c_is_read() {
    let (report, messages) = prepare(&files(&["0001900001/", "PPR-01"]));
    let (key, _, _) = only_deviation(&report, "PPR-01");
    assert_eq!(key, "missing_file_separator");
    let diagnosis = messages[0]
        .items
        .iter()
        .find(|i| i.category == "diagnosis")
        .unwrap();
    assert_eq!(diagnosis.code, "20054174");
}

#[test]
fn msh21_variants_are_noted() {
    let (report, messages) = prepare(&files(&["OMP-01", "000000000000004"]));
    let (key, reason, _) = only_deviation(&report, "OMP-01");
    assert_eq!(key, "msh21_variant");
    assert!(reason.contains("SS-MIX2_1.20_h"), "{reason}");
    assert!(messages[0].items.iter().any(|i| i.code == "108665201"));
}

#[test]
fn a_missing_msh21_is_noted() {
    let (report, messages) = prepare(&files(&["ADT-22"]));
    let (key, _, _) = only_deviation(&report, "ADT-22");
    assert_eq!(key, "msh21_missing");
    assert_eq!(messages[0].items[0].display, "admission");
}

#[test]
fn pid3_differing_from_the_folder_files_under_the_folder() {
    let (report, messages) = prepare(&files(&["ADT-52"]));
    let (key, reason, _) = only_deviation(&report, "ADT-52");
    assert_eq!(key, "pid3_differs");
    assert!(!reason.contains("0001900002"), "no patient IDs in reasons");
    assert_eq!(messages[0].patient_local_id, "0001900001");
}

#[test]
fn utf8_labelled_iso_ir87_is_read_as_utf8() {
    let (report, messages) = prepare(&files(&["0001900002/", "ADT-00"]));
    let (key, _, _) = only_deviation(&report, "ADT-00");
    assert_eq!(key, "charset_mislabelled");
    assert_eq!(
        messages[0].demographics.as_ref().unwrap().kanji_name,
        "架空 一郎"
    );
}

#[test]
fn a_txt_extension_on_the_file_name_is_read() {
    let (report, messages) = prepare(&files(&["0001900002/", "ADT-12"]));
    let (key, _, _) = only_deviation(&report, "ADT-12");
    assert_eq!(key, "file_name_extension");
    let m = &messages[0];
    assert!(m.source_key.ends_with(".txt"), "the path as found");
    assert_eq!(
        m.order_key, "0001900002_20260105_ADT-12_000000000000001",
        "the name without its extension"
    );
}

#[test]
fn what_cannot_be_read_is_refused_with_the_reason() {
    let (report, messages) = prepare(&files(&["0001900002/"]));
    let reason = |kind: &str| {
        report
            .errors
            .iter()
            .find(|e| e.path.contains(kind))
            .map(|e| e.reason.clone())
            .unwrap_or_else(|| panic!("{kind} not refused: {:?}", report.errors))
    };
    assert_eq!(report.errors.len(), 4, "{:?}", report.errors);
    assert!(reason("OMP-01").contains("処方オーダとして読める内容ではない"));
    assert!(reason("ADT-61").contains("取消がない"));
    assert!(reason("OML-01").starts_with("HL7 v2 メッセージとして読めません"));
    assert!(reason("PPR-01").contains("PID-3"));
    for kind in ["OMP-01", "ADT-61", "OML-01", "PPR-01"] {
        assert_eq!(report.by_kind[kind].failed, 1, "{kind}");
    }
    assert_eq!(
        messages.len(),
        2,
        "the readable files of the patient are kept"
    );
}

#[test]
fn warnings_are_counted_once_per_kind_and_deviation() {
    let (report, messages) = prepare(&all_files());
    assert_eq!(report.files, 14);
    assert_eq!((messages.len(), report.errors.len()), (10, 4));
    assert_eq!(report.warned, 10, "every kept file deviates once");
    let mut seen: Vec<(String, String, usize)> = report
        .warnings
        .iter()
        .map(|g| (g.data_kind.clone(), g.deviation.clone(), g.files))
        .collect();
    seen.sort();
    let expected = [
        ("ADT-00", "charset_mislabelled", 1),
        ("ADT-00", "segment_terminator", 1),
        ("ADT-12", "file_name_extension", 1),
        ("ADT-12", "trigger_by_kind", 2),
        ("ADT-22", "msh21_missing", 1),
        ("ADT-52", "pid3_differs", 1),
        ("OML-11", "code_by_kind", 1),
        ("OMP-01", "msh21_variant", 1),
        ("PPR-01", "missing_file_separator", 1),
    ];
    let expected: Vec<(String, String, usize)> = expected
        .iter()
        .map(|(k, d, n)| (k.to_string(), d.to_string(), *n))
        .collect();
    assert_eq!(seen, expected);
    // Per kind: OMP-01 has one kept file (warned) and one refused.
    let omp = &report.by_kind["OMP-01"];
    assert_eq!((omp.warned, omp.failed), (1, 1));
}

/// The whole storage on both backends: kept files are stored and counted per kind, the visit is
/// an outpatient visit in the record, and a second import changes nothing.
async fn deviating_storage_imports(t: &TestStore) {
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_795_219_200)));
    let app = App::new(t.store.clone(), clock, AppConfig::default());
    let op = Actor::system("test");
    let input = renkei_app::directory::FacilityInput {
        code: "3411234564".into(),
        facility_type: "hospital".into(),
        name: "登呂病院".into(),
        max_accounts: "10".into(),
        discloses: true,
        active: true,
        ..Default::default()
    };
    let facility = app.create_facility(&op, &input).await.unwrap().0.id;
    let files = all_files();
    let mut first = ImportReport::default();
    app.import_ssmix2_batch(&op, facility, &files, &mut first)
        .await
        .unwrap();
    assert_eq!((first.stored, first.errors.len()), (10, 4), "{first:?}");
    assert_eq!(first.by_kind["ADT-12"].stored, 3);
    assert_eq!(first.by_kind["OMP-01"].stored, 1);
    let (_, items) = app
        .clinical_record(&op, facility, "0001900001")
        .await
        .unwrap();
    let visits: Vec<_> = items
        .iter()
        .filter(|i| i.category == "encounter" && i.display == "outpatient_visit")
        .collect();
    assert_eq!(visits.len(), 2, "{items:?}");
    let mut again = ImportReport::default();
    app.import_ssmix2_batch(&op, facility, &files, &mut again)
        .await
        .unwrap();
    assert_eq!((again.stored, again.unchanged), (0, 10));
    assert_eq!(again.by_kind["ADT-12"].unchanged, 3);
}
on_both_backends!(deviating_storage_imports);
