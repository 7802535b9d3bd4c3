//! SS-MIX2 standardized storage: where a file sits and what its name says.
//!
//! `<root>/<PID 1-3>/<PID 4-6>/<PID>/<care date or ->/<data kind>/<file>`, the file named
//! `PID_date_kind_orderNo_occurredAt_department_condition` (JAMI guideline 1.2; standards.md §1).

use std::fmt;

/// The condition flag: the last field of a file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Condition {
    /// `0`: the order was deleted; this file retracts it.
    Deleted,
    /// `1`: the current version.
    Current,
    /// `2`: an earlier version, kept as history.
    Superseded,
}

impl Condition {
    pub fn digit(self) -> char {
        match self {
            Condition::Deleted => '0',
            Condition::Current => '1',
            Condition::Superseded => '2',
        }
    }
}

/// A parsed file name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileName {
    pub patient_id: String,
    /// `YYYYMMDD`, or `None` for the `-` of date-less data (ADT-00, ADT-61, PPR-01…).
    pub care_date: Option<String>,
    pub data_kind: String,
    pub order_no: String,
    /// `yyyyMMddHHmmssfff`.
    pub occurred_at: String,
    /// SS-MIX2 user table 0069 department code, or `None` for `-`.
    pub department: Option<String>,
    pub condition: Condition,
}

impl FileName {
    /// The identity of an order across versions: the name without time and condition.
    pub fn order_key(&self) -> String {
        format!(
            "{}_{}_{}_{}",
            self.patient_id,
            self.care_date.as_deref().unwrap_or("-"),
            self.data_kind,
            self.order_no
        )
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}_{}_{}_{}_{}_{}_{}",
            self.patient_id,
            self.care_date.as_deref().unwrap_or("-"),
            self.data_kind,
            self.order_no,
            self.occurred_at,
            self.department.as_deref().unwrap_or("-"),
            self.condition.digit()
        )
    }
}

/// Why a path or name is not a valid storage entry. The message names the part.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(
        "the file name has {0} fields separated by `_` (7 expected: PID_date_kind_order_time_dept_flag)"
    )]
    FieldCount(usize),
    #[error("patient ID `{0}` is empty or longer than 15 characters")]
    PatientId(String),
    #[error("care date `{0}` is neither YYYYMMDD nor `-`")]
    CareDate(String),
    #[error("data kind `{0}` is not an SS-MIX2 standardized-storage data kind")]
    DataKind(String),
    #[error("order number `{0}` is empty or longer than 15 characters")]
    OrderNo(String),
    #[error("occurrence time `{0}` is not 17 digits (yyyyMMddHHmmssfff)")]
    OccurredAt(String),
    #[error("department code `{0}` is longer than 3 characters")]
    Department(String),
    #[error("condition flag `{0}` is not 0, 1 or 2")]
    Condition(String),
    #[error(
        "the path has {0} levels below the root (6 expected: PID1-3/PID4-6/PID/date/kind/file)"
    )]
    Depth(usize),
    #[error("folder `{folder}` does not match the file name (expected `{expected}`)")]
    FolderMismatch { folder: String, expected: String },
}

/// The data kinds of the standardized storage (standards.md §1.4) and the HL7 message types
/// (code, trigger events) a file of that kind may hold; cancels share their event's kind.
pub const DATA_KINDS: &[(&str, &str, &[&str])] = &[
    ("ADT-00", "ADT", &["A08", "A23"]),
    ("ADT-01", "ADT", &["A54", "A55"]),
    ("ADT-12", "ADT", &["A04", "A11"]),
    ("ADT-21", "ADT", &["A14", "A27"]),
    ("ADT-22", "ADT", &["A01", "A11"]),
    ("ADT-31", "ADT", &["A21", "A52"]),
    ("ADT-32", "ADT", &["A22", "A53"]),
    ("ADT-41", "ADT", &["A15", "A26"]),
    ("ADT-42", "ADT", &["A02", "A12"]),
    ("ADT-51", "ADT", &["A16", "A25"]),
    ("ADT-52", "ADT", &["A03", "A13"]),
    ("ADT-61", "ADT", &["A60"]),
    ("PPR-01", "PPR", &["ZD1"]),
    ("OMD", "OMD", &["O03"]),
    ("OMP-01", "RDE", &["O11"]),
    ("OMP-11", "RAS", &["O17"]),
    ("OMP-02", "RDE", &["O11"]),
    ("OMP-12", "RAS", &["O17"]),
    ("OML-01", "OML", &["O33"]),
    ("OML-11", "OUL", &["R22"]),
    ("OMG-01", "OMG", &["O19"]),
    ("OMG-11", "OMI", &["Z23"]),
    ("OMG-02", "OMG", &["O19"]),
    ("OMG-12", "OMI", &["Z23"]),
    ("OMG-03", "OMG", &["O19"]),
    ("OMG-13", "ORU", &["R01"]),
];

/// The message code and events a data kind may hold, or `None` for an unknown kind.
pub fn expected_message(kind: &str) -> Option<(&'static str, &'static [&'static str])> {
    DATA_KINDS
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map(|(_, code, events)| (*code, *events))
}

/// How a stored message fits the data kind of its file. The kind is what the hospital meant:
/// real storages hold trigger events the guideline does not list for a kind (by vendor and by
/// year), and their content is read as the kind says (docs/ssmix2-deviations.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KindFit {
    /// The guideline lists this message type for the kind.
    Listed,
    /// The kind's message code with another trigger event: read as the kind's event `as_event`
    /// (an ADT-12 file is an outpatient visit whatever its trigger; a cancelling trigger reads
    /// as the kind's cancellation).
    OtherTrigger { as_event: &'static str },
    /// Another message code whose content the kind's mapping reads ([`EQUIVALENT_CODES`]), read
    /// as `code^event`.
    OtherCode {
        code: &'static str,
        event: &'static str,
    },
    /// A cancelling trigger under a kind that has no cancellation (ADT-00, ADT-61).
    CancelWithoutCancellation,
    /// A message code the kind's content cannot be read from.
    Foreign,
}

/// ADT trigger events that cancel an earlier event (HL7 v2.5 table 0003).
pub const ADT_CANCELS: &[&str] = &[
    "A11", "A12", "A13", "A25", "A26", "A27", "A32", "A33", "A38", "A52", "A53", "A55",
];

/// Message codes read in place of the guideline's for a kind: (kind, code). Lab results sent as
/// ORU^R01 (HL7 v2.3 style) carry the OBR/OBX groups that OUL^R22 carries.
pub const EQUIVALENT_CODES: &[(&str, &str)] = &[("OML-11", "ORU")];

/// How the message type `code^event` fits `kind`; [`KindFit::Foreign`] for an unknown kind.
pub fn kind_fit(kind: &str, code: &str, event: &str) -> KindFit {
    let Some((want, events)) = expected_message(kind) else {
        return KindFit::Foreign;
    };
    let primary = events.first().copied().unwrap_or("");
    if code != want {
        return if EQUIVALENT_CODES.contains(&(kind, code)) {
            KindFit::OtherCode {
                code: want,
                event: primary,
            }
        } else {
            KindFit::Foreign
        };
    }
    if events.contains(&event) {
        return KindFit::Listed;
    }
    if want == "ADT" && ADT_CANCELS.contains(&event) {
        return match events.iter().find(|e| ADT_CANCELS.contains(e)) {
            Some(cancel) => KindFit::OtherTrigger { as_event: cancel },
            None => KindFit::CancelWithoutCancellation,
        };
    }
    KindFit::OtherTrigger { as_event: primary }
}

/// File-name extensions some writers add to a storage file (`…_1.txt`), and the name without
/// it; the guideline's names have none.
pub fn strip_extension(name: &str) -> (&str, Option<&str>) {
    for ext in [".txt", ".hl7", ".TXT", ".HL7"] {
        if let Some(stem) = name.strip_suffix(ext) {
            return (stem, Some(ext));
        }
    }
    (name, None)
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn valid_date(s: &str) -> bool {
    if s.len() != 8 || !all_digits(s) {
        return false;
    }
    let m: u32 = s.get(4..6).and_then(|v| v.parse().ok()).unwrap_or(0);
    let d: u32 = s.get(6..8).and_then(|v| v.parse().ok()).unwrap_or(0);
    (1..=12).contains(&m) && (1..=31).contains(&d)
}

/// Parses a file name of the standardized storage.
pub fn parse_file_name(name: &str) -> Result<FileName, NameError> {
    let parts: Vec<&str> = name.split('_').collect();
    let [pid, date, kind, order, at, dept, flag] = parts.as_slice() else {
        return Err(NameError::FieldCount(parts.len()));
    };
    if pid.is_empty() || pid.chars().count() > 15 {
        return Err(NameError::PatientId((*pid).to_string()));
    }
    let care_date = match *date {
        "-" => None,
        d if valid_date(d) => Some(d.to_string()),
        d => return Err(NameError::CareDate(d.to_string())),
    };
    if expected_message(kind).is_none() {
        return Err(NameError::DataKind((*kind).to_string()));
    }
    if order.is_empty() || order.chars().count() > 15 {
        return Err(NameError::OrderNo((*order).to_string()));
    }
    if at.len() != 17 || !all_digits(at) {
        return Err(NameError::OccurredAt((*at).to_string()));
    }
    let department = match *dept {
        "-" => None,
        d if !d.is_empty() && d.chars().count() <= 3 => Some(d.to_string()),
        d => return Err(NameError::Department(d.to_string())),
    };
    let condition = match *flag {
        "0" => Condition::Deleted,
        "1" => Condition::Current,
        "2" => Condition::Superseded,
        f => return Err(NameError::Condition(f.to_string())),
    };
    Ok(FileName {
        patient_id: (*pid).to_string(),
        care_date,
        data_kind: (*kind).to_string(),
        order_no: (*order).to_string(),
        occurred_at: (*at).to_string(),
        department,
        condition,
    })
}

/// Parses the path of a file relative to the storage root (six levels) and checks that every
/// folder agrees with the file name.
pub fn parse_storage_path(levels: &[&str]) -> Result<FileName, NameError> {
    let [d1, d2, d3, d4, d5, file] = levels else {
        return Err(NameError::Depth(levels.len()));
    };
    let name = parse_file_name(file)?;
    let pid: Vec<char> = name.patient_id.chars().collect();
    let prefix = |from: usize, to: usize| {
        pid.get(from..to.min(pid.len()))
            .map(|c| c.iter().collect::<String>())
            .unwrap_or_default()
    };
    let expected = [
        (*d1, prefix(0, 3)),
        (*d2, prefix(3, 6)),
        (*d3, name.patient_id.clone()),
        (
            *d4,
            name.care_date.clone().unwrap_or_else(|| "-".to_string()),
        ),
        (*d5, name.data_kind.clone()),
    ];
    for (i, (folder, want)) in expected.iter().enumerate() {
        // Patient IDs shorter than six characters have no agreed folder rule: accept any
        // non-empty folder at the first two levels for them.
        let lenient = i < 2 && pid.len() < 6 && !folder.is_empty();
        if *folder != want && !lenient {
            return Err(NameError::FolderMismatch {
                folder: (*folder).to_string(),
                expected: want.clone(),
            });
        }
    }
    Ok(name)
}

/// The data-kind folder of the extended storage names a document kind:
/// `[local code]^local name^[system]^standard code^standard name^standard system`,
/// e.g. `^退院時サマリー^^18842-5^退院時サマリー^LN`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DocumentKind {
    pub local_code: String,
    pub local_name: String,
    pub local_system: String,
    pub code: String,
    pub name: String,
    pub system: String,
}

/// Parses an extended-storage data-kind folder name (it always holds `^`).
pub fn parse_document_kind(folder: &str) -> Option<DocumentKind> {
    if !folder.contains('^') {
        return None;
    }
    let mut parts = folder.split('^').map(str::to_string);
    let mut next = || parts.next().unwrap_or_default();
    let kind = DocumentKind {
        local_code: next(),
        local_name: next(),
        local_system: next(),
        code: next(),
        name: next(),
        system: next(),
    };
    (!(kind.local_name.is_empty()
        && kind.name.is_empty()
        && kind.code.is_empty()
        && kind.local_code.is_empty()))
    .then_some(kind)
}

/// One file of the extended storage:
/// `PID1-3/PID4-6/PID/date/<document kind>/<content folder>/<file>`, the content folder named
/// `PID_date_<document kind>_key_occurredAt_dept_condition`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtendedEntry {
    /// The content folder's name, parsed (its `data_kind` is the document-kind folder name).
    pub folder: FileName,
    pub kind: DocumentKind,
    /// The file's name inside the content folder.
    pub file: String,
}

/// Parses the path of a file of the extended storage (seven levels below the root).
pub fn parse_extended_path(levels: &[&str]) -> Result<ExtendedEntry, NameError> {
    let [d1, d2, d3, d4, kind_folder, content, file] = levels else {
        return Err(NameError::Depth(levels.len()));
    };
    let kind = parse_document_kind(kind_folder)
        .ok_or_else(|| NameError::DataKind((*kind_folder).to_string()))?;
    // The content folder repeats the kind folder's name, which may itself hold `_`: take it out
    // before splitting the rest.
    let prefix_end =
        content
            .find(&format!("_{kind_folder}_"))
            .ok_or_else(|| NameError::FolderMismatch {
                folder: (*content).to_string(),
                expected: format!("PID_date_{kind_folder}_key_time_dept_flag"),
            })?;
    let head: Vec<&str> = content[..prefix_end].split('_').collect();
    let tail: Vec<&str> = content[prefix_end + kind_folder.len() + 2..]
        .split('_')
        .collect();
    let ([pid, date], [key, at, dept, flag]) = (head.as_slice(), tail.as_slice()) else {
        return Err(NameError::FieldCount(head.len() + tail.len() + 1));
    };
    // Reuse the standardized checks with a known kind in the kind's place.
    let probe = parse_file_name(&format!("{pid}_{date}_ADT-00_{key}_{at}_{dept}_{flag}"))?;
    let folder = FileName {
        data_kind: (*kind_folder).to_string(),
        ..probe
    };
    let pid_chars: Vec<char> = folder.patient_id.chars().collect();
    let prefix = |from: usize, to: usize| {
        pid_chars
            .get(from..to.min(pid_chars.len()))
            .map(|c| c.iter().collect::<String>())
            .unwrap_or_default()
    };
    let date_dir = folder.care_date.clone().unwrap_or_else(|| "-".to_string());
    for (i, (got, want)) in [
        (*d1, prefix(0, 3)),
        (*d2, prefix(3, 6)),
        (*d3, folder.patient_id.clone()),
        (*d4, date_dir),
    ]
    .into_iter()
    .enumerate()
    {
        let lenient = i < 2 && pid_chars.len() < 6 && !got.is_empty();
        if got != want && !lenient {
            return Err(NameError::FolderMismatch {
                folder: got.to_string(),
                expected: want,
            });
        }
    }
    if file.is_empty() {
        return Err(NameError::Depth(levels.len()));
    }
    Ok(ExtendedEntry {
        folder,
        kind,
        file: (*file).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_paths() {
        let n = parse_file_name("9999013_20110701_OMP-01_000000011000185_20110701224603984_01_1")
            .unwrap();
        assert_eq!(n.care_date.as_deref(), Some("20110701"));
        assert_eq!(n.condition, Condition::Current);
        assert_eq!(
            n.to_string(),
            "9999013_20110701_OMP-01_000000011000185_20110701224603984_01_1"
        );
        assert_eq!(n.order_key(), "9999013_20110701_OMP-01_000000011000185");
        let n = parse_file_name("9999013_-_ADT-00_999999999999999_20111220224447339_-_1").unwrap();
        assert_eq!((n.care_date, n.department), (None, None));
        let ok = parse_storage_path(&[
            "999",
            "901",
            "9999013",
            "20110701",
            "OMP-01",
            "9999013_20110701_OMP-01_000000011000185_20110701224603984_01_1",
        ]);
        assert!(ok.is_ok());
    }

    #[test]
    fn names_what_disagrees() {
        assert_eq!(parse_file_name("a_b"), Err(NameError::FieldCount(2)));
        assert!(matches!(
            parse_file_name("1_20111301_OMP-01_1_20110701224603984_01_1"),
            Err(NameError::CareDate(_))
        ));
        assert!(matches!(
            parse_file_name("1_20110701_XYZ-01_1_20110701224603984_01_1"),
            Err(NameError::DataKind(_))
        ));
        assert!(matches!(
            parse_file_name("1_20110701_OMP-01_1_2011070122460398_01_1"),
            Err(NameError::OccurredAt(_))
        ));
        assert!(matches!(
            parse_file_name("1_20110701_OMP-01_1_20110701224603984_01_3"),
            Err(NameError::Condition(_))
        ));
        // The NHO fixture's deliberate mistake: an OMP-11 file under an ADT-31 folder.
        let e = parse_storage_path(&[
            "000",
            "000",
            "0000001",
            "20000401",
            "ADT-31",
            "9999013_20110630_OMP-11_123456789012345_20110701113813225_01_1",
        ]);
        assert!(matches!(e, Err(NameError::FolderMismatch { .. })), "{e:?}");
        assert_eq!(parse_storage_path(&["a", "b"]), Err(NameError::Depth(2)));
    }

    #[test]
    fn parses_extended_storage_paths() {
        let kind = "^退院時サマリー^^18842-5^退院時サマリー^LN";
        let content = format!("0001100028_20251117_{kind}_000000000000001_20251118100000000_01_1");
        let e = parse_extended_path(&[
            "000",
            "110",
            "0001100028",
            "20251117",
            kind,
            &content,
            "main_document.xml",
        ])
        .unwrap();
        assert_eq!(e.kind.code, "18842-5");
        assert_eq!(e.kind.name, "退院時サマリー");
        assert_eq!(e.folder.order_no, "000000000000001");
        assert_eq!(e.file, "main_document.xml");
        let wrong_date = parse_extended_path(&[
            "000",
            "110",
            "0001100028",
            "20251118",
            kind,
            &content,
            "a.pdf",
        ]);
        assert!(matches!(wrong_date, Err(NameError::FolderMismatch { .. })));
        assert!(parse_document_kind("OMP-01").is_none());
    }

    #[test]
    fn messages_fit_kinds_by_what_the_kind_means() {
        assert_eq!(kind_fit("ADT-12", "ADT", "A04"), KindFit::Listed);
        assert_eq!(
            kind_fit("ADT-12", "ADT", "A01"),
            KindFit::OtherTrigger { as_event: "A04" }
        );
        assert_eq!(
            kind_fit("ADT-12", "ADT", "A13"),
            KindFit::OtherTrigger { as_event: "A11" }
        );
        assert_eq!(
            kind_fit("ADT-00", "ADT", "A31"),
            KindFit::OtherTrigger { as_event: "A08" }
        );
        assert_eq!(
            kind_fit("ADT-00", "ADT", "A11"),
            KindFit::CancelWithoutCancellation
        );
        assert_eq!(
            kind_fit("OML-11", "ORU", "R01"),
            KindFit::OtherCode {
                code: "OUL",
                event: "R22"
            }
        );
        assert_eq!(kind_fit("OMP-01", "OUL", "R22"), KindFit::Foreign);
        assert_eq!(kind_fit("XYZ", "ADT", "A01"), KindFit::Foreign);
        assert_eq!(
            kind_fit("OMP-01", "RDE", "O01"),
            KindFit::OtherTrigger { as_event: "O11" }
        );
        assert_eq!(strip_extension("a_1.txt"), ("a_1", Some(".txt")));
        assert_eq!(strip_extension("a_1"), ("a_1", None));
    }

    #[test]
    fn every_kind_names_its_message() {
        assert_eq!(expected_message("OML-11"), Some(("OUL", &["R22"][..])));
        assert_eq!(DATA_KINDS.len(), 26);
    }
}
