//! The JAHIS medication-notebook parser on the fixtures of `jahis-rx-parser` (MIT): every valid
//! `tc-*` file parses (in UTF-8 and, converted, in Shift_JIS with CRLF), every `tc-invalid-*`
//! file is rejected naming its line, unknown versions and records are warnings, the writer
//! round-trips, and split QR parts merge in any order.

use std::path::PathBuf;

use renkei_clinical::jahis::{self, Notebook};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/jahis-rx-parser/fixtures")
}

fn tc_files() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(fixtures())
        .expect("the shared fixtures")
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("tc-")
                .then(|| (name, std::fs::read_to_string(e.path()).unwrap()))
        })
        .collect();
    out.sort();
    out
}

fn without_warnings(mut nb: Notebook) -> Notebook {
    nb.warnings.clear();
    nb
}

#[test]
fn every_valid_file_parses_in_both_encodings_and_round_trips() {
    let files = tc_files();
    assert!(files.len() >= 8, "{}", files.len());
    for (name, text) in files.iter().filter(|(n, _)| !n.starts_with("tc-invalid-")) {
        let nb = jahis::parse_text(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The transport form: Shift_JIS, CRLF.
        let sjis = jahis::encode_shift_jis(&text.replace('\n', "\r\n"));
        let again = jahis::parse(&sjis).unwrap_or_else(|e| panic!("{name} (Shift_JIS): {e}"));
        assert_eq!(
            without_warnings(again),
            without_warnings(nb.clone()),
            "{name}"
        );
        // The writer gives back the same notebook.
        let written = jahis::write(&nb);
        let reread = jahis::parse_text(&written)
            .unwrap_or_else(|e| panic!("{name} rewritten: {e}\n{written}"));
        assert_eq!(
            without_warnings(reread),
            without_warnings(nb),
            "{name}:\n{written}"
        );
    }
}

#[test]
fn every_invalid_file_is_rejected_naming_the_line() {
    let mut seen = 0;
    for (name, text) in tc_files()
        .iter()
        .filter(|(n, _)| n.starts_with("tc-invalid-"))
    {
        let err = jahis::parse_text(text).expect_err(name);
        assert!(err.line >= 2, "{name}: {err}");
        assert!(err.to_string().contains("行目"), "{name}: {err}");
        seen += 1;
    }
    assert!(seen >= 2);
    let drug = &tc_files()
        .into_iter()
        .find(|(n, _)| n == "tc-invalid-missing-drug-code.txt")
        .unwrap()
        .1;
    let err = jahis::parse_text(drug).unwrap_err();
    assert_eq!(err.line, 4);
    assert!(err.message.contains("薬品コード"), "{err}");
}

#[test]
fn the_fields_land_where_the_format_puts_them() {
    let full = tc_files()
        .into_iter()
        .find(|(n, _)| n == "tc-supported-records-full.txt")
        .unwrap()
        .1;
    let nb = jahis::parse_text(&full).unwrap();
    assert_eq!(nb.version, "JAHISTC08");
    let p = nb.patient.as_ref().unwrap();
    assert_eq!(
        (p.name.as_str(), p.sex.as_str(), p.kana_name.as_str()),
        ("山田 太郎", "1", "ヤマダ タロウ")
    );
    assert_eq!(
        jahis::iso_date(&p.birth_date).as_deref(),
        Some("1980-01-01")
    );
    assert_eq!(nb.otc[0].ingredients[0].name, "イブプロフェン");
    let d = &nb.dispensings[0];
    assert_eq!(
        d.pharmacy.as_ref().unwrap().facility_code().as_deref(),
        Some("1341234567")
    );
    assert_eq!(
        d.prescriber.as_ref().unwrap().facility_code().as_deref(),
        Some("1317654321")
    );
    let rp = &d.rps[0];
    assert_eq!(rp.doctor, Some(0));
    assert_eq!(d.doctors[0].detail, "内科");
    let drug = &rp.drugs[0];
    assert_eq!(drug.name, "ノルバスク錠２．５ｍｇ");
    assert_eq!(
        (drug.code_type.as_str(), drug.code.as_str()),
        ("2", "612170709")
    );
    assert_eq!(drug.generic_code, "1179044F1ZZZ");
    assert_eq!(drug.supplements, vec!["朝1錠、夕2錠"]);
    let usage = rp.usage.as_ref().unwrap();
    assert_eq!(
        (
            usage.name.as_str(),
            usage.quantity.as_str(),
            usage.unit.as_str()
        ),
        ("毎食後服用", "3", "日分")
    );
    assert_eq!(d.provided[0].kind, "31");
    assert_eq!(d.remaining[0].text, "残薬は5錠");
    assert_eq!(nb.family_pharmacists[0].pharmacy, "工業会薬局 駅前店");
    assert_eq!(nb.split.as_ref().unwrap().total, 2);
    // Era dates and an unknown version.
    let era = tc_files()
        .into_iter()
        .find(|(n, _)| n == "tc-output-category-2-full.txt")
        .unwrap()
        .1;
    let nb = jahis::parse_text(&era).unwrap();
    assert!(
        nb.warnings.iter().any(|w| w.message.contains("JAHISTC12")),
        "{:?}",
        nb.warnings
    );
    assert_eq!(
        jahis::iso_date(&nb.dispensings[0].date).as_deref(),
        Some("2020-04-10")
    );
    assert_eq!(jahis::iso_date("S330303").as_deref(), Some("1958-03-03"));
    assert_eq!(jahis::iso_date("H310430").as_deref(), Some("2019-04-30"));
    assert_eq!(jahis::iso_date("20260230"), None);
}

#[test]
fn unknown_records_are_warnings_and_kept() {
    let text = "JAHISTC08,1\r\n1,山田 太郎,1,19800101\r\n5,20260310,1\r\n999,将来の,レコード\r\n201,1,薬,1,錠,1,,1\r\n";
    let nb = jahis::parse_text(text).unwrap();
    assert_eq!(nb.unknown, vec!["999,将来の,レコード"]);
    assert_eq!(nb.warnings.len(), 1);
    assert_eq!(nb.warnings[0].line, 4);
    assert!(jahis::write(&nb).contains("999,将来の,レコード\r\n"));
}

#[test]
fn split_parts_merge_in_any_order() {
    let part = |n: u32, body: &str| {
        format!("JAHISTC08,1\r\n1,山田 太郎,1,19800101\r\n{body}911,00000000000042,3,{n}\r\n")
    };
    let parts = [
        part(2, "201,1,アムロジピン錠,1,錠,1,,1\r\n"),
        part(3, "301,1,朝食後,28,日分,1,,,1\r\n"),
        part(1, "5,20260310,1\r\n11,駅前薬局,34,4,1234567,,,,1\r\n"),
    ];
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let merged = jahis::merge_parts(&refs).unwrap();
    let nb = jahis::parse_text(&merged).unwrap();
    assert!(nb.split.is_none());
    assert_eq!(nb.dispensings.len(), 1);
    assert_eq!(nb.dispensings[0].rps[0].drugs[0].name, "アムロジピン錠");
    assert_eq!(
        nb.dispensings[0].rps[0].usage.as_ref().unwrap().quantity,
        "28"
    );
    // A missing part, or parts of two different codes, are refused.
    assert!(jahis::merge_parts(&refs[..2]).is_err());
    let other = part(3, "").replace("00000000000042", "00000000000099");
    assert!(jahis::merge_parts(&[refs[0], refs[2], &other]).is_err());
}

#[test]
fn empty_and_foreign_input_is_refused() {
    assert_eq!(jahis::parse(b"").unwrap_err().line, 0);
    let foreign = std::fs::read_to_string(fixtures().join("minimal-valid.txt")).unwrap();
    let err = jahis::parse_text(&foreign).unwrap_err();
    assert!(err.message.contains("JAHISTC"), "{err}");
}

#[test]
fn unknown_records_keep_their_trailing_fields() {
    // Found by the fuzz target: an unknown record ending in a comma lost it when rewritten.
    let text = "JAHISTC01,1\n30,11,\n";
    let nb = jahis::parse_text(text).unwrap();
    let again = jahis::parse_text(&jahis::write(&nb)).unwrap();
    assert_eq!(again.unknown, vec!["30,11,"]);
}

#[test]
fn a_huge_part_count_is_refused_without_allocating_it() {
    // Found by the fuzz target: a 911 record claiming four billion parts.
    let part = "JAHISTC08,1\n911,1,4294967295,1\n";
    assert!(jahis::merge_parts(&[part]).is_err());
}

/// The era a Gregorian date belongs to, as `GYYMMDD` (the eras' real first days).
fn era_form(date: time::Date) -> String {
    let (y, m, d) = (date.year(), u8::from(date.month()), date.day());
    let ymd = (y, m, d);
    let (letter, base) = if ymd >= (2019, 5, 1) {
        ('R', 2018)
    } else if ymd >= (1989, 1, 8) {
        ('H', 1988)
    } else if ymd >= (1926, 12, 25) {
        ('S', 1925)
    } else if ymd >= (1912, 7, 30) {
        ('T', 1911)
    } else {
        ('M', 1867)
    };
    format!("{letter}{:02}{m:02}{d:02}", y - base)
}

proptest::proptest! {
    /// Every day from 明治元年 to 2099, written in its era or in the Gregorian calendar, is read
    /// as the same date.
    #[test]
    fn era_and_western_dates_agree(offset in 0i32..84_000) {
        let start = time::Date::from_calendar_date(1868, time::Month::January, 1).unwrap();
        let date = start + time::Duration::days(i64::from(offset));
        proptest::prop_assume!(date.year() < 2100);
        let iso = format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day());
        let western = iso.replace('-', "");
        proptest::prop_assert_eq!(jahis::iso_date(&western), Some(iso.clone()));
        proptest::prop_assert_eq!(jahis::iso_date(&era_form(date)), Some(iso));
        proptest::prop_assert_eq!(jahis::timestamp(&era_form(date)), Some(format!("{western}000000000")));
    }
}

#[test]
fn era_boundaries_are_read_as_their_writers_meant() {
    for (era, iso) in [
        ("M450729", "1912-07-29"),
        ("T010730", "1912-07-30"),
        ("T151224", "1926-12-24"),
        ("S011225", "1926-12-25"),
        ("S640107", "1989-01-07"),
        ("H010108", "1989-01-08"),
        ("H310430", "2019-04-30"),
        ("R010501", "2019-05-01"),
        ("R070902", "2025-09-02"),
        ("h310115", "2019-01-15"),
        // Written by software not yet updated for 令和: the same day.
        ("H310501", "2019-05-01"),
        ("S451103", "1970-11-03"),
    ] {
        assert_eq!(jahis::iso_date(era).as_deref(), Some(iso), "{era}");
    }
    // Years an era never had, and what is not a date.
    for bad in [
        "H320101",
        "S650101",
        "T160101",
        "M460101",
        "R000101",
        "H3a0101",
        "R070230",
        "R07092",
        "2025090",
        "+0250902",
        "Ｒ070902",
    ] {
        assert_eq!(jahis::iso_date(bad), None, "{bad}");
    }
}

#[test]
fn dates_sort_in_time_order_whatever_their_form() {
    // A Western-dated dispensing and era-dated ones: the stored timestamps sort by time.
    let mut stamps: Vec<String> = ["R070902", "20250101", "H310115", "20190501"]
        .iter()
        .map(|d| jahis::timestamp(d).unwrap())
        .collect();
    stamps.sort();
    assert_eq!(
        stamps,
        [
            "20190115000000000",
            "20190501000000000",
            "20250101000000000",
            "20250902000000000"
        ]
    );
}
