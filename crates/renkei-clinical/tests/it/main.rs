//! Every message of the NHO SS-MIX2 sample storage maps to the record in its snapshot file
//! (`tests/snapshots/`). Regenerate after a deliberate mapping change with `RENKEI_BLESS=1`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod jahis;

use std::path::{Path, PathBuf};

use renkei_clinical::map_message;
use renkei_hl7v2::{Message, ssmix2};

fn fixtures() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/nho-ssmix2-testing-tool/sampleData");
    assert!(
        p.is_dir(),
        "fixture missing: {} (part of the repository)",
        p.display()
    );
    p
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out)
        } else {
            out.push(p)
        }
    }
}

/// Compares `actual` with the snapshot `name`, or writes it when blessing.
fn check(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var("RENKEI_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing snapshot {} (run with RENKEI_BLESS=1)",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "{name} differs from its snapshot; review and re-run with RENKEI_BLESS=1 if intended\n--- expected\n{expected}\n--- actual\n{actual}"
        );
    }
}

#[test]
fn every_sample_message_maps_to_its_snapshot() {
    let root = fixtures();
    let mut all = Vec::new();
    files(&root, &mut all);
    all.sort();
    let mut mapped = 0;
    for path in &all {
        let rel = path.strip_prefix(&root).unwrap();
        let levels: Vec<&str> = rel.iter().map(|c| c.to_str().unwrap()).collect();
        let Ok(name) = ssmix2::parse_storage_path(&levels) else {
            continue;
        };
        let m = Message::parse_bytes(&std::fs::read(path).unwrap()).unwrap();
        let record = map_message(&m, Some(&name.data_kind)).unwrap();
        assert!(
            !record.items.is_empty() || record.demographics.is_some(),
            "{} maps to nothing",
            rel.display()
        );
        let json = serde_json::to_string_pretty(&record).unwrap() + "\n";
        check(&format!("{}.json", name), &json);
        mapped += 1;
    }
    assert_eq!(mapped, all.len() - 1);
}

#[test]
fn every_encounter_event_reads_in_japanese() {
    // Each event the ADT mapping can record (map.rs encounter_event) has words, never its key.
    for key in [
        "outpatient_visit",
        "admission",
        "admission_planned",
        "transfer",
        "transfer_planned",
        "leave_of_absence",
        "return_from_leave",
        "discharge",
        "discharge_planned",
        "attending_change",
    ] {
        let label = renkei_clinical::view::encounter_label(key);
        assert!(!label.is_ascii(), "{key} → {label}");
    }
}
