//! JAHIS medication-notebook parse throughput on a generated corpus of 20,000 files (a patient,
//! several dispensings each with pharmacy, prescriber, doctor, RPs of drugs with usage and
//! cautions), in UTF-8 and in Shift_JIS with CRLF (the transport form). Each file is decoded
//! and parsed into a `Notebook`.
//!
//! `cargo bench -p renkei-clinical --bench jahis` prints MB/s and files/s; nothing is asserted.
//! The aim is ≥ 100 MB/s.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Instant;

use renkei_clinical::jahis;

const FILES: usize = 20_000;
const DRUGS: &[(&str, &str)] = &[
    ("ノルバスク錠２．５ｍｇ", "612170709"),
    ("ロキソニン錠６０ｍｇ", "610406001"),
    ("アダラートＣＲ錠２０ｍｇ", "610421321"),
    ("ムコスタ錠１００ｍｇ", "620002011"),
    ("メトグルコ錠２５０ｍｇ", "622085701"),
];

fn notebook(i: usize) -> String {
    let mut s = format!(
        "JAHISTC08,1\r\n1,患者 {i},{},1950{:02}{:02},730-0011,広島県広島市中区基町{}-1,082-000-{:04},,A+,60.5,カンジャ タロウ\r\n2,1,ペニシリン系で発疹,1\r\n",
        1 + i % 2,
        1 + i % 12,
        1 + i % 28,
        i % 9,
        i % 10_000
    );
    for d in 0..(2 + i % 4) {
        s.push_str(&format!(
            "5,2026{:02}{:02},1\r\n11,株式会社 中央薬局 {i}号店,34,4,{:07},730-0011,広島県広島市中区基町1-1,082-111-2222,1\r\n15,薬剤師 花子,082-111-2222,1\r\n51,医療法人 中央病院,34,1,{:07},1\r\n55,医師 一郎,内科,1\r\n",
            1 + d % 12,
            1 + (i + d) % 28,
            1_000_000 + i % 999_999,
            2_000_000 + d
        ));
        for rp in 1..=(1 + (i + d) % 3) {
            let (name, code) = DRUGS[(i + d + rp) % DRUGS.len()];
            s.push_str(&format!(
                "201,{rp},{name},1,錠,2,{code},1,【般】一般名処方,2,1179044F1ZZZ\r\n291,{rp},グレープフルーツジュースと一緒に飲まないでください。,1\r\n301,{rp},１日１回朝食後服用,28,日分,1,1,,1\r\n"
            ));
        }
        s.push_str("401,他の薬を併用する際は、相談してください。,1\r\n501,正しい飲み方は薬袋等をご覧下さい。,1\r\n");
    }
    s.push_str("701,薬剤師 花子,中央薬局,082-111-2222,20260101,,1\r\n");
    s
}

fn run(label: &str, corpus: &[Vec<u8>]) {
    let bytes: usize = corpus.iter().map(Vec::len).sum();
    let mut best = f64::MAX;
    let mut drugs = 0;
    for _ in 0..3 {
        let started = Instant::now();
        drugs = 0;
        for file in corpus {
            let nb = jahis::parse(black_box(file)).unwrap();
            drugs += nb
                .dispensings
                .iter()
                .flat_map(|d| &d.rps)
                .map(|r| r.drugs.len())
                .sum::<usize>();
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "jahis parse {label:<10} {:>7.1} MB/s  {:>9.0} files/s  ({} files, {:.1} MB, {drugs} drugs)",
        bytes as f64 / best / 1e6,
        corpus.len() as f64 / best,
        corpus.len(),
        bytes as f64 / 1e6
    );
}

fn main() {
    let texts: Vec<String> = (0..FILES).map(notebook).collect();
    let utf8: Vec<Vec<u8>> = texts.iter().map(|t| t.clone().into_bytes()).collect();
    let sjis: Vec<Vec<u8>> = texts.iter().map(|t| jahis::encode_shift_jis(t)).collect();
    run("UTF-8", &utf8);
    run("Shift_JIS", &sjis);
}
