//! Every message of the NHO SS-MIX2 sample storage parses, with the values a reader expects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use renkei_hl7v2::ssmix2::{self, Condition, NameError};
use renkei_hl7v2::{AckCode, Charset, Message, ack};

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

#[test]
fn every_sample_message_parses() {
    let root = fixtures();
    let mut all = Vec::new();
    files(&root, &mut all);
    all.sort();
    let mut parsed = 0;
    for path in &all {
        let bytes = std::fs::read(path).unwrap();
        match Message::parse_bytes(&bytes) {
            Ok(m) => {
                parsed += 1;
                assert_eq!(m.charset(), Charset::Iso2022Jp, "{}", path.display());
                assert!(
                    m.warnings().is_empty(),
                    "{}: {:?}",
                    path.display(),
                    m.warnings()
                );
                assert!(!m.control_id().is_empty(), "{}", path.display());
                // Every segment name is three letters or digits; nothing after decoding is U+FFFD.
                assert!(!m.text().contains('\u{fffd}'), "{}", path.display());
                // An ACK for it parses back and echoes the control ID.
                let a =
                    Message::parse(&ack(Some(&m), AckCode::Accept, "1", "20261121000000", None))
                        .unwrap();
                assert_eq!(a.raw("MSA-2"), Some(m.control_id()));
            }
            Err(e) => {
                // Only the deliberately broken file (two junk bytes) is not a message.
                assert!(
                    path.to_string_lossy().contains("ADT-31"),
                    "{}: {e}",
                    path.display()
                );
            }
        }
    }
    assert_eq!(parsed, all.len() - 1);
}

#[test]
fn patient_and_lab_values_from_the_samples() {
    let root = fixtures();
    let adt = root
        .join("999/901/9999013/-/ADT-00/9999013_-_ADT-00_999999999999999_20111220224447339_-_1");
    let m = Message::parse_bytes(&std::fs::read(adt).unwrap()).unwrap();
    assert_eq!(m.message_type(), ("ADT", "A08"));
    assert_eq!(m.get("PID-3.1").as_deref(), Some("9999013"));
    assert_eq!(m.get("PID-5.1").as_deref(), Some("患者"));
    assert_eq!(m.get("PID-5.2").as_deref(), Some("太郎"));
    assert_eq!(m.get("PID-5(2).1").as_deref(), Some("カンジャ"));
    assert_eq!(m.get("PID-7").as_deref(), Some("19480405"));
    assert_eq!(m.get("PID-8").as_deref(), Some("M"));
    // JIS X 0208 0x215D decodes as U+FF0D (the WHATWG / CP932 mapping that hospital systems use).
    assert_eq!(
        m.get("PID-11.8").as_deref(),
        Some("静岡県静岡市登呂１－３－５")
    );
    assert_eq!(m.get("OBX(2)-5").as_deref(), Some("63.5"));
    assert_eq!(m.get("AL1-3.2").as_deref(), Some("ペニシリン"));

    let oul = root.join("999/901/9999013/20111220/OML-11/9999013_20111220_OML-11_000000011000354_20111220103059000_01_1");
    let m = Message::parse_bytes(&std::fs::read(oul).unwrap()).unwrap();
    assert_eq!(m.message_type().0, "OUL");
    assert!(m.segments_named("OBX").count() > 0);
    assert!(m.get("OBX-3.3").is_some());
}

#[test]
fn sample_storage_paths_agree_except_the_broken_one() {
    let root = fixtures();
    let mut all = Vec::new();
    files(&root, &mut all);
    let mut ok = 0;
    let mut deleted = 0;
    let mut other_pid = 0;
    for path in &all {
        let rel = path.strip_prefix(&root).unwrap();
        let levels: Vec<&str> = rel.iter().map(|c| c.to_str().unwrap()).collect();
        match ssmix2::parse_storage_path(&levels) {
            Ok(name) => {
                ok += 1;
                if name.condition == Condition::Deleted {
                    deleted += 1;
                }
                // The message type always agrees with the data kind. PID-3 often does not: many
                // samples are the JAMI guideline's example messages, written for other patients.
                let m = Message::parse_bytes(&std::fs::read(path).unwrap()).unwrap();
                if m.get("PID-3.1").as_deref() != Some(name.patient_id.as_str()) {
                    other_pid += 1;
                }
                let (code, events) = ssmix2::expected_message(&name.data_kind).unwrap();
                let (mc, me) = m.message_type();
                assert!(
                    mc == code && events.contains(&me),
                    "{}: {mc}^{me} in {}",
                    rel.display(),
                    name.data_kind
                );
            }
            Err(e) => {
                assert!(
                    matches!(e, NameError::FolderMismatch { .. }),
                    "{}: {e}",
                    rel.display()
                );
                assert!(rel.to_string_lossy().contains("ADT-31"));
            }
        }
    }
    assert_eq!(ok, all.len() - 1);
    assert_eq!(deleted, 1);
    assert_eq!(other_pid, 12);
}
