//! SS-MIX2 intake into the clinical repository, on SQLite and PostgreSQL: the sample storage
//! maps to the repository content in `tests/snapshots/nho-repository.json` on both backends;
//! re-imports change nothing; changed and newer versions supersede; deletions retract.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use renkei_app::directory::FacilityInput;
use renkei_app::intake::{ImportReport, SourceFile};
use renkei_app::{Actor, App, AppConfig};
use renkei_core::time::{FixedClock, Timestamp};
use renkei_store::on_both_backends;
use renkei_store::testing::TestStore;

fn storage() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/nho-ssmix2-testing-tool/sampleData");
    assert!(
        p.is_dir(),
        "fixture missing: {} (part of the repository)",
        p.display()
    );
    p
}

fn read_storage(root: &Path) -> Vec<SourceFile> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<SourceFile>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let relative_path = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push(SourceFile {
                    relative_path,
                    bytes: std::fs::read(&p).unwrap(),
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort_by(|a, b| a.relative_path.cmp(&b.relative_path));
    out
}

fn app(t: &TestStore) -> App {
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_795_219_200)));
    App::new(t.store.clone(), clock, AppConfig::default())
}

async fn hospital(app: &App) -> i64 {
    let input = FacilityInput {
        code: "3411234564".into(),
        facility_type: "hospital".into(),
        name: "登呂病院".into(),
        max_accounts: "10".into(),
        discloses: true,
        active: true,
        ..Default::default()
    };
    app.create_facility(&Actor::system("test"), &input)
        .await
        .unwrap()
        .0
        .id
}

/// The whole repository of a facility as JSON: per patient, demographics and active items.
async fn dump(app: &App, facility: i64) -> String {
    let op = Actor::system("test");
    let mut patients = serde_json::Map::new();
    for id in app.clinical_patient_ids(&op, facility).await.unwrap() {
        let (demographics, items) = app.clinical_record(&op, facility, &id).await.unwrap();
        let items: Vec<serde_json::Value> = items
            .into_iter()
            .map(|i| {
                serde_json::json!({
                    "category": i.category, "code": i.code, "system": i.code_system, "display": i.display,
                    "effective": i.effective, "end": i.end_at, "status": i.status,
                    "detail": serde_json::from_str::<serde_json::Value>(&i.detail).unwrap(),
                })
            })
            .collect();
        let demographics = demographics.map(|d| {
            serde_json::json!({
                "kanji_name": d.kanji_name, "kana_name": d.kana_name, "birth_date": d.birth_date, "sex": d.sex,
                "postal_code": d.postal_code, "address": d.address, "phone": d.phone,
            })
        });
        patients.insert(
            id,
            serde_json::json!({ "demographics": demographics, "items": items }),
        );
    }
    serde_json::to_string_pretty(&serde_json::Value::Object(patients)).unwrap() + "\n"
}

fn check_snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var("RENKEI_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing snapshot {} (RENKEI_BLESS=1 writes it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{name} differs from its snapshot (RENKEI_BLESS=1 rewrites it after review)\n{actual}"
    );
}

async fn sample_storage_imports_to_the_snapshot(t: &TestStore) {
    let root = storage();
    let app = app(t);
    let facility = hospital(&app).await;
    let files = read_storage(&root);
    let op = Actor::system("test");

    let mut first = ImportReport::default();
    app.import_ssmix2_batch(&op, facility, &files, &mut first)
        .await
        .unwrap();
    assert_eq!(
        (first.files, first.stored, first.errors.len()),
        (22, 21, 1),
        "{first:?}"
    );
    assert!(
        first.errors[0].path.contains("ADT-31"),
        "the deliberately broken file is named: {:?}",
        first.errors
    );
    assert!(
        first.errors[0]
            .reason
            .contains("がファイル名と合いません（ファイル名からは"),
        "the reason is said in Japanese: {:?}",
        first.errors
    );
    assert!(
        first
            .warnings
            .iter()
            .any(|w| w.deviation == "pid3_differs" && w.data_kind == "PPR-01")
    );
    assert_eq!(first.by_kind["OMP-01"].stored, 1);
    assert_eq!(first.by_kind["OMP-02"].stored, 1, "OMP-01 and OMP-02 apart");
    assert_eq!(first.by_kind["OMP-11"].failed, 1, "the broken file's kind");
    check_snapshot("nho-repository.json", &dump(&app, facility).await);

    // The same storage again: nothing changes.
    let mut second = ImportReport::default();
    app.import_ssmix2_batch(&op, facility, &files, &mut second)
        .await
        .unwrap();
    assert_eq!(
        (second.stored, second.unchanged, second.replaced),
        (0, 21, 0)
    );
    check_snapshot("nho-repository.json", &dump(&app, facility).await);

    // The original bytes are kept exactly.
    let messages = t.store.clinical_messages(facility).await.unwrap();
    let adt = messages.iter().find(|m| m.data_kind == "ADT-00").unwrap();
    let original = files
        .iter()
        .find(|f| f.relative_path == adt.source_key)
        .unwrap();
    assert_eq!(
        t.store.clinical_message_bytes(adt.id).await.unwrap(),
        original.bytes
    );
}
on_both_backends!(sample_storage_imports_to_the_snapshot);

async fn versions_supersede_and_deletions_retract(t: &TestStore) {
    let root = storage();
    let app = app(t);
    let facility = hospital(&app).await;
    let op = Actor::system("test");
    let all = read_storage(&root);
    let lab = all
        .iter()
        .find(|f| f.relative_path.contains("OML-11"))
        .unwrap()
        .clone();
    let mut report = ImportReport::default();
    app.import_ssmix2_batch(&op, facility, std::slice::from_ref(&lab), &mut report)
        .await
        .unwrap();
    let value = |items: &[renkei_store::clinical::StoredItem]| {
        items
            .iter()
            .filter(|i| i.code == "3A010000002327101")
            .map(|i| i.detail.clone())
            .collect::<Vec<_>>()
    };
    let (_, items) = app.clinical_record(&op, facility, "9999013").await.unwrap();
    assert_eq!(items.len(), 3);
    assert!(value(&items)[0].contains("\"7.2\""));

    // A corrected result: a newer version of the same order (later occurrence time) with 7.4.
    let newer_name = lab
        .relative_path
        .replace("20111220103059000_01_1", "20111221090000000_01_1");
    let newer_bytes = String::from_utf8(lab.bytes.clone())
        .unwrap()
        .replace("|7.2|", "|7.4|")
        .into_bytes();
    let newer = SourceFile {
        relative_path: newer_name,
        bytes: newer_bytes,
    };
    // The old version renamed to history (_2), as SS-MIX2 writers do.
    let history = SourceFile {
        relative_path: lab.relative_path.replace("_01_1", "_01_2"),
        bytes: lab.bytes.clone(),
    };
    let mut report = ImportReport::default();
    app.import_ssmix2_batch(&op, facility, &[newer.clone(), history], &mut report)
        .await
        .unwrap();
    assert_eq!(report.stored, 2);
    let (_, items) = app.clinical_record(&op, facility, "9999013").await.unwrap();
    assert_eq!(items.len(), 3, "only the newest version is active");
    assert!(value(&items)[0].contains("\"7.4\""), "{:?}", value(&items));

    // An older version arriving late does not take over.
    let mut report = ImportReport::default();
    app.import_ssmix2_batch(&op, facility, std::slice::from_ref(&lab), &mut report)
        .await
        .unwrap();
    assert_eq!(report.unchanged, 1);
    let (_, items) = app.clinical_record(&op, facility, "9999013").await.unwrap();
    assert!(value(&items)[0].contains("\"7.4\""));

    // A changed file at the same path replaces its earlier content.
    let changed = SourceFile {
        relative_path: newer.relative_path.clone(),
        bytes: String::from_utf8(newer.bytes.clone())
            .unwrap()
            .replace("|7.4|", "|7.5|")
            .into_bytes(),
    };
    let mut report = ImportReport::default();
    app.import_ssmix2_batch(&op, facility, &[changed], &mut report)
        .await
        .unwrap();
    assert_eq!(report.replaced, 1);
    let (_, items) = app.clinical_record(&op, facility, "9999013").await.unwrap();
    assert!(value(&items)[0].contains("\"7.5\""));

    // A deletion (_0) retracts every version of the order.
    let deletion = SourceFile {
        relative_path: lab
            .relative_path
            .replace("20111220103059000_01_1", "20111222090000000_01_0"),
        bytes: lab.bytes.clone(),
    };
    let mut report = ImportReport::default();
    app.import_ssmix2_batch(&op, facility, &[deletion], &mut report)
        .await
        .unwrap();
    let (_, items) = app.clinical_record(&op, facility, "9999013").await.unwrap();
    assert!(items.is_empty(), "{items:?}");
}
on_both_backends!(versions_supersede_and_deletions_retract);

async fn extended_storage_documents_keep_every_file(t: &TestStore) {
    let app = app(t);
    let facility = hospital(&app).await;
    let op = Actor::system("test");
    let kind = "^退院時サマリー^^18842-5^退院時サマリー^LN";
    let folder = format!(
        "000/110/0001100003/20260318/{kind}/0001100003_20260318_{kind}_000000800000003_20260318170000000_01_1"
    );
    let pdf: Vec<u8> = b"%PDF-1.4\n\x00\x01\x02\xff binary".to_vec();
    let files = vec![
        SourceFile {
            relative_path: format!("{folder}/main_document.xml"),
            bytes: "<ClinicalDocument>退院時サマリー</ClinicalDocument>"
                .as_bytes()
                .to_vec(),
        },
        SourceFile {
            relative_path: format!("{folder}/scan.pdf"),
            bytes: pdf.clone(),
        },
    ];
    let mut report = ImportReport::default();
    app.import_ssmix2_batch(&op, facility, &files, &mut report)
        .await
        .unwrap();
    assert_eq!((report.stored, report.errors.len()), (1, 0), "{report:?}");
    let (_, items) = app
        .clinical_record(&op, facility, "0001100003")
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    let doc = &items[0];
    assert_eq!(
        (
            doc.category.as_str(),
            doc.code.as_str(),
            doc.display.as_str()
        ),
        ("document", "18842-5", "退院時サマリー")
    );
    assert_eq!(doc.effective_date.as_deref(), Some("2026-03-18"));
    assert!(doc.detail.contains("scan.pdf"));
    let attachments = t.store.clinical_attachments(doc.message_id).await.unwrap();
    assert_eq!(attachments.len(), 2);
    assert_eq!(
        attachments.iter().find(|(n, _)| n == "scan.pdf").unwrap().1,
        pdf,
        "bytes kept exactly"
    );

    let mut again = ImportReport::default();
    app.import_ssmix2_batch(&op, facility, &files, &mut again)
        .await
        .unwrap();
    assert_eq!(again.unchanged, 1);
    let mut changed = files.clone();
    changed[1].bytes.push(b'!');
    let mut third = ImportReport::default();
    app.import_ssmix2_batch(&op, facility, &changed, &mut third)
        .await
        .unwrap();
    assert_eq!(third.replaced, 1);
    let (_, items) = app
        .clinical_record(&op, facility, "0001100003")
        .await
        .unwrap();
    let attachments = t
        .store
        .clinical_attachments(items[0].message_id)
        .await
        .unwrap();
    assert_eq!(attachments.len(), 2, "replaced, not added");
    assert!(attachments.iter().any(|(_, b)| b.ends_with(b"!")));

    // A content folder whose name disagrees with its folders is reported, not imported.
    let bad = SourceFile {
        relative_path: format!(
            "000/110/0001100003/20260319/{kind}/0001100003_20260318_{kind}_1_20260318170000000_01_1/x.xml"
        ),
        bytes: vec![1],
    };
    let mut report = ImportReport::default();
    app.import_ssmix2_batch(&op, facility, &[bad], &mut report)
        .await
        .unwrap();
    assert_eq!(report.errors.len(), 1);
}
on_both_backends!(extended_storage_documents_keep_every_file);

async fn an_interrupted_import_resumes(t: &TestStore) {
    let root = storage();
    let app = app(t);
    let facility = hospital(&app).await;
    let op = Actor::system("test");
    let files = read_storage(&root);
    // The first batches were committed before the import stopped.
    let mut first = ImportReport::default();
    app.import_ssmix2_batch(&op, facility, &files[..10], &mut first)
        .await
        .unwrap();
    // Run again from the start: what was kept is skipped, the rest arrives.
    let mut rerun = ImportReport::default();
    for chunk in files.chunks(4) {
        app.import_ssmix2_batch(&op, facility, chunk, &mut rerun)
            .await
            .unwrap();
    }
    assert_eq!(rerun.unchanged, first.stored);
    assert_eq!(rerun.stored + rerun.unchanged, 21);
    check_snapshot("nho-repository.json", &dump(&app, facility).await);
}
on_both_backends!(an_interrupted_import_resumes);

async fn live_messages_and_adt_a40(t: &TestStore) {
    let app = app(t);
    let facility = hospital(&app).await;
    let op = Actor::system("test");
    let msh = |control: &str, kind: &str| {
        format!(
            "MSH|^~\\&|HIS|3411234564|RENKEI|RENKEI|20261121090000||{kind}|{control}|P|2.5||||||UNICODE UTF-8\r"
        )
    };
    let lab = format!(
        "{}PID|0001||P-OLD^^^^PI||患者^太郎\rSPM|1|||023^血清^JC10\rOBX|1|NM|3D010000001926101^グルコース^JC10||105|mg/dL|73-109||||F|||20261121\r",
        msh("L1", "OUL^R22^OUL_R22")
    );
    let r = app.receive_hl7(lab.as_bytes()).await;
    assert_eq!(r.outcome, "stored");
    assert_eq!(app.receive_hl7(lab.as_bytes()).await.outcome, "duplicate");
    let a40 = format!(
        "{}EVN||20261121\rPID|0001||P-NEW^^^^PI||患者^太郎||19480405|M\rMRG|P-OLD^^^^PI\r",
        msh("M1", "ADT^A40^ADT_A39")
    );
    assert_eq!(app.receive_hl7(a40.as_bytes()).await.outcome, "stored");
    assert_eq!(app.receive_hl7(a40.as_bytes()).await.outcome, "duplicate");
    let (_, old) = app.clinical_record(&op, facility, "P-OLD").await.unwrap();
    let (demographics, new) = app.clinical_record(&op, facility, "P-NEW").await.unwrap();
    assert!(old.is_empty());
    assert_eq!(new.iter().filter(|i| i.category == "lab_result").count(), 1);
    assert_eq!(
        demographics.unwrap().birth_date.as_deref(),
        Some("1948-04-05")
    );
}
on_both_backends!(live_messages_and_adt_a40);
