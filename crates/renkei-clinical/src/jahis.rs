//! The JAHIS 電子版お薬手帳データフォーマット (versions `JAHISTC01`…`JAHISTC08`): what pharmacies'
//! receipt computers export and what the patient's QR code carries. Parsed into a
//! [`Notebook`] and written back in the same format.
//!
//! Text is comma-separated records, one per line, each starting with its record number; the
//! first line is `JAHISTC<nn>,<output category>`. Files come in Shift_JIS or UTF-8, with CRLF
//! or LF. Dates are `YYYYMMDD` or Japanese-era `GYYMMDD` (G = M, T, S, H, R). A QR code too
//! big for one symbol is split at record boundaries, every part ending with a 911 record
//! (data ID, total, part number): [`merge_parts`] joins them in any order.
//!
//! Unknown versions and unknown records are warnings (kept, not fatal); a record that breaks the
//! format's structure (a drug with a code type but no code, an ingredient without its
//! medicine, a dispensing record before any 調剤等年月日) is an error naming the line. Never
//! panics on input (a fuzz target runs it).

use std::fmt::Write as _;

/// Published versions: TC01 = 1.0 … TC08 = 2.5/2.6.
pub const KNOWN_VERSIONS: [&str; 8] = [
    "JAHISTC01",
    "JAHISTC02",
    "JAHISTC03",
    "JAHISTC04",
    "JAHISTC05",
    "JAHISTC06",
    "JAHISTC07",
    "JAHISTC08",
];

/// A problem, with the 1-based line it is on (0: the whole input).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{line}行目: {message}")]
pub struct JahisError {
    pub line: usize,
    pub message: String,
}

fn error(line: usize, message: impl Into<String>) -> JahisError {
    JahisError {
        line,
        message: message.into(),
    }
}

/// A warning (the input was still read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub line: usize,
    pub message: String,
}

/// Record 1: the patient.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Patient {
    pub name: String,
    /// `1` male, `2` female.
    pub sex: String,
    /// As written (`YYYYMMDD` or era form); see [`iso_date`].
    pub birth_date: String,
    pub postal_code: String,
    pub address: String,
    pub phone: String,
    pub emergency_contact: String,
    pub blood_type: String,
    pub weight: String,
    pub kana_name: String,
}

/// A free text with its kind and creator (records 2, 4, 401, 411, 421, 501, 601, …).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Note {
    /// Record 2: 1 allergy, 2 side effect, 3 history, 9 other; record 411: 30, 31, 99.
    pub kind: String,
    pub text: String,
    /// Record 4 and 601: the date.
    pub date: String,
    /// 1 medical, 2 patient, 8 other, 9 unknown.
    pub creator: String,
}

/// Records 3 and 31: an over-the-counter medicine and its ingredients.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OtcMedicine {
    pub name: String,
    pub start: String,
    pub end: String,
    pub creator: String,
    pub sequence: String,
    pub jan: String,
    pub ingredients: Vec<Ingredient>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ingredient {
    pub name: String,
    pub code_type: String,
    pub code: String,
    pub creator: String,
}

/// Records 11 and 51: a pharmacy or a prescribing facility.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Institution {
    pub name: String,
    pub prefecture: String,
    /// 1 医科, 3 歯科, 4 調剤.
    pub table: String,
    /// The 7-digit code (郡市区 2 + 番号 4 + check digit).
    pub code: String,
    pub postal_code: String,
    pub address: String,
    pub phone: String,
    pub creator: String,
}

impl Institution {
    /// The 10-digit 医療機関コード, when all parts are there.
    pub fn facility_code(&self) -> Option<String> {
        let ok = self.prefecture.len() <= 2
            && self.table.len() == 1
            && self.code.len() == 7
            && [&self.prefecture, &self.table, &self.code]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        ok.then(|| format!("{:0>2}{}{}", self.prefecture, self.table, self.code))
    }
}

/// Records 15 and 55: a pharmacist (contact) or a prescribing doctor (department).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    /// Contact for 15, department for 55.
    pub detail: String,
    pub creator: String,
}

/// Record 201 with its 281 (supplement) and 291 (caution) records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drug {
    pub name: String,
    pub dose: String,
    pub unit: String,
    /// 1 none, 2 レセ電, 3 厚労省, 4 YJ, 6 HOT.
    pub code_type: String,
    pub code: String,
    pub creator: String,
    pub generic_name: String,
    pub generic_code_type: String,
    pub generic_code: String,
    pub supplements: Vec<String>,
    pub cautions: Vec<String>,
}

/// Record 301 with its 311 (supplement) and 391 (caution) records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub name: String,
    pub quantity: String,
    /// 日分, 回分, 調剤.
    pub unit: String,
    /// 1 内服 2 内滴 3 屯服 4 注射 5 外用 6 浸煎 7 湯 9 材料 10 その他.
    pub form: String,
    pub code_type: String,
    pub code: String,
    pub creator: String,
}

/// One RP (a prescription line): its drugs and usage, under the doctor named before it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rp {
    pub number: String,
    pub drugs: Vec<Drug>,
    pub usage: Option<Usage>,
    pub usage_supplements: Vec<String>,
    pub cautions: Vec<String>,
    /// Index into the dispensing's doctors (record 55), if one was named before.
    pub doctor: Option<usize>,
}

/// Record 5 and what follows until the next 5: one dispensing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dispensing {
    pub date: String,
    pub creator: String,
    pub pharmacy: Option<Institution>,
    pub pharmacists: Vec<Person>,
    pub prescriber: Option<Institution>,
    pub doctors: Vec<Person>,
    pub rps: Vec<Rp>,
    /// 401 服用注意.
    pub cautions: Vec<Note>,
    /// 411 医療機関等提供情報.
    pub provided: Vec<Note>,
    /// 421 残薬確認.
    pub remaining: Vec<Note>,
    /// 501 備考.
    pub remarks: Vec<Note>,
    /// 601 患者等記入.
    pub patient_notes: Vec<Note>,
}

/// Record 701: the family pharmacist (かかりつけ薬剤師).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FamilyPharmacist {
    pub name: String,
    pub pharmacy: String,
    pub contact: String,
    pub start: String,
    pub end: String,
    pub creator: String,
}

/// Record 911: this input is one part of a split QR code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    pub data_id: String,
    pub total: u32,
    pub part: u32,
}

/// A parsed medication notebook file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notebook {
    /// `JAHISTC08` etc., as written.
    pub version: String,
    /// 1 provider → patient, 2 patient → provider.
    pub output: String,
    pub patient: Option<Patient>,
    /// Record 2.
    pub patient_notes: Vec<Note>,
    pub otc: Vec<OtcMedicine>,
    /// Record 4.
    pub memos: Vec<Note>,
    pub dispensings: Vec<Dispensing>,
    pub family_pharmacists: Vec<FamilyPharmacist>,
    pub split: Option<Split>,
    /// Records not known to this reader, as written (kept for the writer).
    pub unknown: Vec<String>,
    pub warnings: Vec<Warning>,
}

/// Decodes a file: UTF-8 when it is valid UTF-8 (a BOM is dropped), else Shift_JIS.
pub fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => encoding_rs::SHIFT_JIS.decode(bytes).0.into_owned(),
    }
}

/// Encodes text for the format's canonical transport: Shift_JIS.
pub fn encode_shift_jis(text: &str) -> Vec<u8> {
    encoding_rs::SHIFT_JIS.encode(text).0.into_owned()
}

/// The Japanese eras a `GYYMMDD` date may use: letter, the Gregorian year before its first
/// year, and its last year (`None`: the current era).
const ERAS: [(char, i32, Option<i32>); 5] = [
    ('M', 1867, Some(45)),
    ('T', 1911, Some(15)),
    ('S', 1925, Some(64)),
    ('H', 1988, Some(31)),
    ('R', 2018, None),
];

/// A date as `YYYY-MM-DD`: from `YYYYMMDD` or era `GYYMMDD` (明治 M 1868–1912, 大正 T 1912–1926,
/// 昭和 S 1926–1989, 平成 H 1989–2019, 令和 R 2019–). `None` when it is neither, or not a calendar
/// date, or an era year the era never had (H32, S65, R00). Within an era's last year a date past
/// its end (H310501, written by software not yet updated for 令和) is read as the same day in the
/// Gregorian calendar, since that is what its writer meant.
pub fn iso_date(text: &str) -> Option<String> {
    let t = text.trim();
    let first = t.chars().next()?;
    let (y, rest) = match ERAS.iter().find(|e| e.0 == first.to_ascii_uppercase()) {
        Some(&(_, base, last)) => {
            let digits = t.get(1..3)?;
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let yy: i32 = digits.parse().ok()?;
            if yy == 0 || last.is_some_and(|l| yy > l) {
                return None;
            }
            (base + yy, t.get(3..)?)
        }
        None => {
            let digits = t.get(..4)?;
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (digits.parse::<i32>().ok()?, t.get(4..)?)
        }
    };
    if rest.len() != 4 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let m: u32 = rest.get(..2)?.parse().ok()?;
    let d: u32 = rest.get(2..)?.parse().ok()?;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days)
        .contains(&d)
        .then(|| format!("{y:04}-{m:02}-{d:02}"))
}

/// A date as the store's timestamp (`YYYYMMDDHHMMSSfff`, as SS-MIX2 writes it): midnight of
/// [`iso_date`]'s day, so that dates from either form compare in time order.
pub fn timestamp(text: &str) -> Option<String> {
    iso_date(text).map(|d| format!("{}000000000", d.replace('-', "")))
}

/// Field `i` of a record (0 is the record number), empty when absent.
fn f(fields: &[&str], i: usize) -> String {
    fields
        .get(i)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Parses a notebook file (bytes in Shift_JIS or UTF-8).
pub fn parse(bytes: &[u8]) -> Result<Notebook, JahisError> {
    parse_text(&decode(bytes))
}

/// Parses notebook text.
pub fn parse_text(text: &str) -> Result<Notebook, JahisError> {
    let mut nb = Notebook::default();
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((first, header)) = lines.next() else {
        return Err(error(0, "データがありません（空のファイルです）"));
    };
    let head: Vec<&str> = header.split(',').collect();
    let version = f(&head, 0);
    if !version.starts_with("JAHISTC") {
        return Err(error(
            first,
            format!(
                "先頭行が JAHISTC で始まっていません（「{}」）: お薬手帳データではありません",
                version.chars().take(20).collect::<String>()
            ),
        ));
    }
    if !KNOWN_VERSIONS.contains(&version.as_str()) {
        nb.warnings.push(Warning {
            line: first,
            message: format!(
                "未知のバージョン {version} です（既知の JAHISTC01〜08 として読みました）"
            ),
        });
    }
    nb.version = version;
    nb.output = f(&head, 1);
    if !matches!(nb.output.as_str(), "1" | "2") {
        nb.warnings.push(Warning {
            line: first,
            message: format!("出力区分「{}」は 1 でも 2 でもありません", nb.output),
        });
    }
    for (line, text) in lines {
        let fields: Vec<&str> = text.split(',').collect();
        let number = f(&fields, 0);
        let need_dispensing = |nb: &mut Notebook, what: &str| -> Result<(), JahisError> {
            if nb.dispensings.is_empty() {
                Err(error(
                    line,
                    format!("{number} {what}: 調剤等年月日（レコード5）より前にあります"),
                ))
            } else {
                Ok(())
            }
        };
        match number.as_str() {
            "1" => {
                if nb.patient.is_some() {
                    return Err(error(line, "1 患者情報: 患者情報が2つあります"));
                }
                nb.patient = Some(Patient {
                    name: f(&fields, 1),
                    sex: f(&fields, 2),
                    birth_date: f(&fields, 3),
                    postal_code: f(&fields, 4),
                    address: f(&fields, 5),
                    phone: f(&fields, 6),
                    emergency_contact: f(&fields, 7),
                    blood_type: f(&fields, 8),
                    weight: f(&fields, 9),
                    kana_name: f(&fields, 10),
                });
            }
            "2" => nb.patient_notes.push(Note {
                kind: f(&fields, 1),
                text: f(&fields, 2),
                creator: f(&fields, 3),
                ..Note::default()
            }),
            "3" => nb.otc.push(OtcMedicine {
                name: f(&fields, 1),
                start: f(&fields, 2),
                end: f(&fields, 3),
                creator: f(&fields, 4),
                sequence: f(&fields, 5),
                jan: f(&fields, 6),
                ingredients: Vec::new(),
            }),
            "31" => {
                let sequence = f(&fields, 1);
                let Some(parent) = nb.otc.iter_mut().rev().find(|o| o.sequence == sequence) else {
                    return Err(error(
                        line,
                        format!(
                            "31 一般用医薬品成分: 連番 {sequence} の一般用医薬品（レコード3）がありません"
                        ),
                    ));
                };
                parent.ingredients.push(Ingredient {
                    name: f(&fields, 2),
                    code_type: f(&fields, 3),
                    code: f(&fields, 4),
                    creator: f(&fields, 5),
                });
            }
            "4" => nb.memos.push(Note {
                text: f(&fields, 1),
                date: f(&fields, 2),
                creator: f(&fields, 3),
                ..Note::default()
            }),
            "5" => {
                let date = f(&fields, 1);
                if iso_date(&date).is_none() {
                    return Err(error(
                        line,
                        format!(
                            "5 調剤等年月日: 日付「{date}」は YYYYMMDD でも和暦 GYYMMDD でもありません"
                        ),
                    ));
                }
                nb.dispensings.push(Dispensing {
                    date,
                    creator: f(&fields, 2),
                    ..Dispensing::default()
                });
            }
            "11" | "51" => {
                need_dispensing(
                    &mut nb,
                    if number == "11" {
                        "調剤－医療機関等"
                    } else {
                        "処方－医療機関"
                    },
                )?;
                let institution = if number == "11" {
                    Institution {
                        name: f(&fields, 1),
                        prefecture: f(&fields, 2),
                        table: f(&fields, 3),
                        code: f(&fields, 4),
                        postal_code: f(&fields, 5),
                        address: f(&fields, 6),
                        phone: f(&fields, 7),
                        creator: f(&fields, 8),
                    }
                } else {
                    Institution {
                        name: f(&fields, 1),
                        prefecture: f(&fields, 2),
                        table: f(&fields, 3),
                        code: f(&fields, 4),
                        creator: f(&fields, 5),
                        ..Institution::default()
                    }
                };
                if let Some(d) = nb.dispensings.last_mut() {
                    if number == "11" {
                        d.pharmacy = Some(institution);
                    } else {
                        d.prescriber = Some(institution);
                    }
                }
            }
            "15" | "55" => {
                need_dispensing(
                    &mut nb,
                    if number == "15" {
                        "調剤－医師・薬剤師"
                    } else {
                        "処方－医師"
                    },
                )?;
                let person = Person {
                    name: f(&fields, 1),
                    detail: f(&fields, 2),
                    creator: f(&fields, 3),
                };
                if let Some(d) = nb.dispensings.last_mut() {
                    if number == "15" {
                        d.pharmacists.push(person);
                    } else {
                        d.doctors.push(person);
                    }
                }
            }
            "201" => {
                need_dispensing(&mut nb, "薬品")?;
                let drug = Drug {
                    name: f(&fields, 2),
                    dose: f(&fields, 3),
                    unit: f(&fields, 4),
                    code_type: f(&fields, 5),
                    code: f(&fields, 6),
                    creator: f(&fields, 7),
                    generic_name: f(&fields, 8),
                    generic_code_type: f(&fields, 9),
                    generic_code: f(&fields, 10),
                    ..Drug::default()
                };
                if drug.name.is_empty() {
                    return Err(error(line, "201 薬品: 薬品名称がありません"));
                }
                if !drug.code_type.is_empty() && drug.code_type != "1" && drug.code.is_empty() {
                    return Err(error(
                        line,
                        format!(
                            "201 薬品: 薬品コード種別が {} なのに薬品コードがありません",
                            drug.code_type
                        ),
                    ));
                }
                let rp_no = f(&fields, 1);
                if let Some(d) = nb.dispensings.last_mut() {
                    let doctor = d.doctors.len().checked_sub(1);
                    match d.rps.iter_mut().rev().find(|r| r.number == rp_no) {
                        Some(rp) => rp.drugs.push(drug),
                        None => d.rps.push(Rp {
                            number: rp_no,
                            drugs: vec![drug],
                            doctor,
                            ..Rp::default()
                        }),
                    }
                }
            }
            "281" | "291" | "301" | "311" | "391" => {
                need_dispensing(&mut nb, "RP の情報")?;
                let rp_no = f(&fields, 1);
                let Some(rp) = nb
                    .dispensings
                    .last_mut()
                    .and_then(|d| d.rps.iter_mut().rev().find(|r| r.number == rp_no))
                else {
                    return Err(error(
                        line,
                        format!("{number}: RP {rp_no} の薬品（レコード201）がありません"),
                    ));
                };
                match number.as_str() {
                    "281" | "291" => {
                        let Some(drug) = rp.drugs.last_mut() else {
                            return Err(error(line, format!("{number}: 薬品がありません")));
                        };
                        if number == "281" {
                            drug.supplements.push(f(&fields, 2));
                        } else {
                            drug.cautions.push(f(&fields, 2));
                        }
                    }
                    "301" => {
                        rp.usage = Some(Usage {
                            name: f(&fields, 2),
                            quantity: f(&fields, 3),
                            unit: f(&fields, 4),
                            form: f(&fields, 5),
                            code_type: f(&fields, 6),
                            code: f(&fields, 7),
                            creator: f(&fields, 8),
                        });
                    }
                    "311" => rp.usage_supplements.push(f(&fields, 2)),
                    _ => rp.cautions.push(f(&fields, 2)),
                }
            }
            "401" | "421" | "501" => {
                need_dispensing(&mut nb, "調剤の情報")?;
                let note = Note {
                    text: f(&fields, 1),
                    creator: f(&fields, 2),
                    ..Note::default()
                };
                if let Some(d) = nb.dispensings.last_mut() {
                    match number.as_str() {
                        "401" => d.cautions.push(note),
                        "421" => d.remaining.push(note),
                        _ => d.remarks.push(note),
                    }
                }
            }
            "411" => {
                need_dispensing(&mut nb, "医療機関等提供情報")?;
                let note = Note {
                    text: f(&fields, 1),
                    kind: f(&fields, 2),
                    creator: f(&fields, 3),
                    ..Note::default()
                };
                if let Some(d) = nb.dispensings.last_mut() {
                    d.provided.push(note);
                }
            }
            "601" => {
                need_dispensing(&mut nb, "患者等記入情報")?;
                let note = Note {
                    text: f(&fields, 1),
                    date: f(&fields, 2),
                    ..Note::default()
                };
                if let Some(d) = nb.dispensings.last_mut() {
                    d.patient_notes.push(note);
                }
            }
            "701" => nb.family_pharmacists.push(FamilyPharmacist {
                name: f(&fields, 1),
                pharmacy: f(&fields, 2),
                contact: f(&fields, 3),
                start: f(&fields, 4),
                end: f(&fields, 5),
                creator: f(&fields, 6),
            }),
            "911" => {
                let total = f(&fields, 2).parse::<u32>();
                let part = f(&fields, 3).parse::<u32>();
                match (total, part) {
                    (Ok(total), Ok(part)) if part >= 1 && part <= total => {
                        nb.split = Some(Split {
                            data_id: f(&fields, 1),
                            total,
                            part,
                        });
                    }
                    _ => {
                        return Err(error(
                            line,
                            "911 分割制御: 分割数と分割番号が正しくありません",
                        ));
                    }
                }
            }
            other => {
                nb.warnings.push(Warning {
                    line,
                    message: format!(
                        "未知のレコード {} を読み飛ばしました",
                        other.chars().take(10).collect::<String>()
                    ),
                });
                nb.unknown.push(text.to_string());
            }
        }
    }
    if nb.patient.is_none() {
        nb.warnings.push(Warning {
            line: 0,
            message: "患者情報（レコード1）がありません".into(),
        });
    }
    Ok(nb)
}

/// The split control (record 911) of a text that is one part of a split QR code; `None` when
/// the text has no 911 record (a whole notebook). A part is only a slice of the records (a later
/// part may start inside a dispensing), so only its header and its 911 record are read.
pub fn split_of(text: &str) -> Option<Result<Split, JahisError>> {
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next()?;
    let (line, control) = lines
        .filter(|(_, l)| l.split(',').next().map(str::trim) == Some("911"))
        .last()?;
    if !header.starts_with("JAHISTC") {
        return Some(Err(error(1, "先頭行が JAHISTC で始まっていません")));
    }
    let c: Vec<&str> = control.split(',').map(str::trim).collect();
    Some(match (f(&c, 2).parse::<u32>(), f(&c, 3).parse::<u32>()) {
        (Ok(total), Ok(part)) if part >= 1 && part <= total => Ok(Split {
            data_id: f(&c, 1),
            total,
            part,
        }),
        _ => Err(error(
            line + 1,
            "911 分割制御: 分割数と分割番号が正しくありません",
        )),
    })
}

/// The patient record (record 1) of a part of a split QR code, if it carries one.
pub fn part_patient(text: &str) -> Option<Patient> {
    let header = text.lines().next()?;
    let record = text
        .lines()
        .find(|l| l.split(',').next().map(str::trim) == Some("1"))?;
    parse_text(&format!("{header}\n{record}\n")).ok()?.patient
}

/// Joins the parts of a split QR code (each a full text with its 911 record), given in any
/// order, into one text without the 911 records.
pub fn merge_parts(parts: &[&str]) -> Result<String, JahisError> {
    let mut split: Vec<(u32, u32, String, &str)> = Vec::new();
    // A part is only a slice of the records (a later part may start inside a dispensing), so
    // only its header and its 911 record are read here; the merged text is parsed as a whole.
    for (i, part) in parts.iter().enumerate() {
        match split_of(part) {
            Some(Ok(c)) => split.push((c.part, c.total, c.data_id, part)),
            Some(Err(e)) => {
                return Err(error(e.line, format!("{}番目の部分: {}", i + 1, e.message)));
            }
            None => {
                return Err(error(
                    0,
                    format!("{}番目の部分に分割制御（レコード911）がありません", i + 1),
                ));
            }
        }
    }
    split.sort_by_key(|p| p.0);
    let Some(first) = split.first() else {
        return Err(error(0, "分割データがありません"));
    };
    let (total, data_id) = (first.1, first.2.clone());
    if split.iter().any(|p| p.1 != total || p.2 != data_id) {
        return Err(error(0, "分割データのデータIDまたは分割数が一致しません"));
    }
    let numbers: Vec<u32> = split.iter().map(|p| p.0).collect();
    // Parts 1..=total, each once (compared without building 1..=total: the total is input).
    let complete = numbers.len() as u64 == u64::from(total)
        && numbers
            .iter()
            .enumerate()
            .all(|(i, n)| u64::from(*n) == i as u64 + 1);
    if !complete {
        return Err(error(
            0,
            format!("分割データがそろっていません（{total} 分割のうち {numbers:?}）"),
        ));
    }
    let mut out = String::new();
    for (i, (_, _, _, text)) in split.iter().enumerate() {
        for (n, line) in text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .enumerate()
        {
            let number = line.split(',').next().unwrap_or("").trim();
            if line.trim().is_empty() || number == "911" || (n == 0 && i > 0) {
                continue;
            }
            // Each part repeats the patient record; keep the first.
            if i > 0 && number == "1" {
                continue;
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    Ok(out)
}

/// Writes a notebook back in the format (CRLF line ends; encode with [`encode_shift_jis`]
/// for transport).
pub fn write(nb: &Notebook) -> String {
    let mut out = String::new();
    let mut line = |fields: &[&str]| {
        // Trailing empty fields are dropped, as receipt computers write them.
        let end = fields
            .iter()
            .rposition(|f| !f.is_empty())
            .map_or(1, |i| i + 1)
            .max(1);
        let _ = write!(out, "{}\r\n", fields[..end].join(","));
    };
    line(&[&nb.version, &nb.output]);
    if let Some(p) = &nb.patient {
        line(&[
            "1",
            &p.name,
            &p.sex,
            &p.birth_date,
            &p.postal_code,
            &p.address,
            &p.phone,
            &p.emergency_contact,
            &p.blood_type,
            &p.weight,
            &p.kana_name,
        ]);
    }
    for n in &nb.patient_notes {
        line(&["2", &n.kind, &n.text, &n.creator]);
    }
    for o in &nb.otc {
        line(&[
            "3",
            &o.name,
            &o.start,
            &o.end,
            &o.creator,
            &o.sequence,
            &o.jan,
        ]);
        for c in &o.ingredients {
            line(&[
                "31",
                &o.sequence,
                &c.name,
                &c.code_type,
                &c.code,
                &c.creator,
            ]);
        }
    }
    for m in &nb.memos {
        line(&["4", &m.text, &m.date, &m.creator]);
    }
    for d in &nb.dispensings {
        line(&["5", &d.date, &d.creator]);
        if let Some(p) = &d.pharmacy {
            line(&[
                "11",
                &p.name,
                &p.prefecture,
                &p.table,
                &p.code,
                &p.postal_code,
                &p.address,
                &p.phone,
                &p.creator,
            ]);
        }
        for p in &d.pharmacists {
            line(&["15", &p.name, &p.detail, &p.creator]);
        }
        if let Some(p) = &d.prescriber {
            line(&["51", &p.name, &p.prefecture, &p.table, &p.code, &p.creator]);
        }
        let mut doctor_written: Option<usize> = None;
        let no_doctor_rps: Vec<&Rp> = d.rps.iter().filter(|r| r.doctor.is_none()).collect();
        let write_rp = |out_line: &mut dyn FnMut(&[&str]), rp: &Rp| {
            for drug in &rp.drugs {
                out_line(&[
                    "201",
                    &rp.number,
                    &drug.name,
                    &drug.dose,
                    &drug.unit,
                    &drug.code_type,
                    &drug.code,
                    &drug.creator,
                    &drug.generic_name,
                    &drug.generic_code_type,
                    &drug.generic_code,
                ]);
                for s in &drug.supplements {
                    out_line(&["281", &rp.number, s, &drug.creator]);
                }
                for c in &drug.cautions {
                    out_line(&["291", &rp.number, c, &drug.creator]);
                }
            }
            if let Some(u) = &rp.usage {
                out_line(&[
                    "301",
                    &rp.number,
                    &u.name,
                    &u.quantity,
                    &u.unit,
                    &u.form,
                    &u.code_type,
                    &u.code,
                    &u.creator,
                ]);
            }
            let creator = rp.drugs.first().map_or("", |d| d.creator.as_str());
            for s in &rp.usage_supplements {
                out_line(&["311", &rp.number, s, creator]);
            }
            for c in &rp.cautions {
                out_line(&["391", &rp.number, c, creator]);
            }
        };
        for rp in no_doctor_rps {
            write_rp(&mut line, rp);
        }
        for (i, doctor) in d.doctors.iter().enumerate() {
            line(&["55", &doctor.name, &doctor.detail, &doctor.creator]);
            doctor_written = Some(i);
            for rp in d.rps.iter().filter(|r| r.doctor == Some(i)) {
                write_rp(&mut line, rp);
            }
        }
        let _ = doctor_written;
        for n in &d.cautions {
            line(&["401", &n.text, &n.creator]);
        }
        for n in &d.provided {
            line(&["411", &n.text, &n.kind, &n.creator]);
        }
        for n in &d.remaining {
            line(&["421", &n.text, &n.creator]);
        }
        for n in &d.remarks {
            line(&["501", &n.text, &n.creator]);
        }
        for n in &d.patient_notes {
            line(&["601", &n.text, &n.date]);
        }
    }
    for p in &nb.family_pharmacists {
        line(&[
            "701",
            &p.name,
            &p.pharmacy,
            &p.contact,
            &p.start,
            &p.end,
            &p.creator,
        ]);
    }
    for u in &nb.unknown {
        // As read, trailing empty fields included.
        line(&[u.as_str()]);
    }
    if let Some(s) = &nb.split {
        line(&["911", &s.data_id, &s.total.to_string(), &s.part.to_string()]);
    }
    out
}
