//! Parser throughput on a generated corpus of 100,000 messages (ADT, lab results with many OBX,
//! prescriptions), in UTF-8 and in ISO-2022-JP (as SS-MIX2 stores them). Each message is decoded,
//! parsed, and the same fields are read out: PID-3, PID-5.1, every OBX-3.1 and OBX-5.
//!
//! `cargo bench -p renkei-hl7v2 --bench parse` prints MB/s and messages/s; nothing is asserted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Instant;

use renkei_hl7v2::{Message, Path};

const MESSAGES: usize = 100_000;

const SURNAMES: &[&str] = &[
    "山田", "佐藤", "髙橋", "渡邊", "中村", "小林", "加藤", "吉田", "山本", "斎藤",
];
const GIVEN: &[&str] = &[
    "太郎", "花子", "一郎", "美咲", "健", "翔太", "陽菜", "大輔", "結衣", "蓮",
];
const LABS: &[(&str, &str, &str, &str)] = &[
    ("3D010000001926101", "グルコース", "mg/dL", "70-109"),
    ("3B035000002327201", "AST", "U/L", "13-30"),
    ("3B045000002327201", "ALT", "U/L", "7-23"),
    ("3C015000002327101", "クレアチニン", "mg/dL", "0.46-0.79"),
    ("2A990000001930952", "白血球数", "10*3/uL", "3.3-8.6"),
    ("3F015000002327101", "HbA1c", "%", "4.9-6.0"),
];

fn message(i: usize, charset: &str) -> String {
    let pid = format!("{:010}", 1_000_000 + i);
    let name = format!(
        "{}^{}^^^^^L^I~{}^{}^^^^^L^P",
        SURNAMES[i % 10],
        GIVEN[(i / 10) % 10],
        "ヤマダ",
        "タロウ"
    );
    let msh = |kind: &str| {
        format!(
            "MSH|^~\\&|HIS|0110112489|GW|RENKEI|20261121{:06}||{kind}|{i:012}|P|2.5||||||{charset}\r",
            i % 240000
        )
    };
    match i % 3 {
        0 => format!(
            "{}EVN||20261121090000\rPID|0001||{pid}^^^^PI||{name}||19480405|M|||^^^^730-0011^JPN^H^広島県広島市中区基町７−３３||^PRN^PH^^^^^^^^^082-000-0000\rPV1|0001|O|01^^^^^C||||220^医師^一郎^^^^^^^L^^^^^I\r",
            msh("ADT^A08^ADT_A01")
        ),
        1 => {
            let mut m = format!(
                "{}PID|0001||{pid}^^^^PI||{name}||19480405|M\rSPM|1|||023^血清^JC10|||||||||||||20261121083000\r",
                msh("OUL^R22^OUL_R22")
            );
            for (n, (code, label, unit, range)) in LABS.iter().enumerate() {
                m.push_str(&format!(
                    "OBX|{}|NM|{code}^{label}^JC10||{}.{}|{unit}^{unit}^ISO+|{range}|{}|||F|||20261121090000\r",
                    n + 1,
                    50 + (i + n) % 90,
                    i % 10,
                    if (i + n).is_multiple_of(7) { "H" } else { "" }
                ));
            }
            m
        }
        _ => format!(
            "{}PID|0001||{pid}^^^^PI||{name}||19480405|M\rORC|NW|{i:015}|||||||20261121090000\rRXE|^^^20261121^^^^^28|620004224^ロキソニン錠６０ｍｇ^HOT9|1||TAB^錠^MR9P|TAB^錠^MR9P\rTQ1|||1013044400000000^内服・経口・１日３回朝昼夕食後^JAMISDP01\rRXR|PO^口^HL70162\r",
            msh("RDE^O11^RDE_O11")
        ),
    }
}

/// Reads the fields every peer in the comparison extracts; returns a checksum.
fn extract(m: &Message, paths: &[Path; 2]) -> usize {
    let mut n =
        m.get_at(&paths[0]).map_or(0, |v| v.len()) + m.get_at(&paths[1]).map_or(0, |v| v.len());
    for obx in m.segments_named("OBX") {
        n += obx
            .field(3)
            .and_then(|f| f.component(1))
            .map_or(0, |c| c.as_str().len());
        n += obx.field(5).map_or(0, |f| f.text().len());
    }
    n
}

fn run(label: &str, corpus: &[Vec<u8>]) {
    let bytes: usize = corpus.iter().map(Vec::len).sum();
    let mut best = f64::MAX;
    let mut check = 0;
    let paths = [
        Path::parse("PID-3.1").unwrap(),
        Path::parse("PID-5.1").unwrap(),
    ];
    for _ in 0..3 {
        let started = Instant::now();
        check = 0;
        for raw in corpus {
            let m = Message::parse_bytes(black_box(raw)).unwrap();
            check += extract(&m, &paths);
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "renkei-hl7v2 {label:<12} {:>8.1} MB/s  {:>10.0} messages/s  ({} messages, {:.1} MB, checksum {check})",
        bytes as f64 / best / 1e6,
        corpus.len() as f64 / best,
        corpus.len(),
        bytes as f64 / 1e6
    );
}

fn main() {
    let utf8: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|i| message(i, "UNICODE UTF-8").into_bytes())
        .collect();
    let iso: Vec<Vec<u8>> = (0..MESSAGES)
        .map(|i| {
            encoding_rs::ISO_2022_JP
                .encode(&message(i, "~ISO IR87||ISO 2022-1994"))
                .0
                .into_owned()
        })
        .collect();
    if let Ok(dir) = std::env::var("RENKEI_BENCH_CORPUS_DIR") {
        // Writes the corpus (one message per file line, LF-separated CR segments) for peers.
        let mut all = Vec::new();
        for m in &utf8 {
            all.extend_from_slice(m);
            all.push(b'\n');
        }
        std::fs::write(std::path::Path::new(&dir).join("corpus-utf8.hl7"), all).unwrap();
    }
    run("UTF-8", &utf8);
    run("ISO-2022-JP", &iso);
}
