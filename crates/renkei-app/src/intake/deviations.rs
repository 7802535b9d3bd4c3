//! What a storage file does differently from the guideline, and why a file is refused, in words
//! for the operator (Japanese, like the summary's headings). Each tolerated deviation has a
//! stable key, a fixture and a test: docs/ssmix2-deviations.md. Reasons name kinds, message
//! types and header values, never patient data.

use renkei_clinical::MapError;
use renkei_hl7v2::ssmix2::{self, KindFit, NameError};
use renkei_hl7v2::{Message, ParseError, Warning};

/// One tolerated deviation of one file: its key (docs/ssmix2-deviations.md) and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Noted {
    pub key: &'static str,
    pub reason: String,
}

fn noted(key: &'static str, reason: impl Into<String>) -> Noted {
    Noted {
        key,
        reason: reason.into(),
    }
}

/// MSH-21 as the guideline writes it (SS-MIX2 1.2 message profile).
pub const GUIDELINE_MSH21: &str = "SS-MIX2_1.20^SS-MIX2^1.2.392.200250.2.1.100.1.2.120^ISO";

/// What the kind's content is, for the operator.
fn kind_content(kind: &str) -> &'static str {
    match kind {
        "ADT-00" => "患者基本情報",
        "ADT-01" => "担当医の変更",
        "ADT-12" => "外来受診",
        "ADT-21" => "入院予定",
        "ADT-22" => "入院",
        "ADT-31" => "外出泊",
        "ADT-32" => "外出泊帰院",
        "ADT-41" => "転科・転棟予定",
        "ADT-42" => "転科・転棟",
        "ADT-51" => "退院予定",
        "ADT-52" => "退院",
        "ADT-61" => "アレルギー情報",
        "PPR-01" => "病名",
        "OMD" => "食事オーダ",
        "OMP-01" => "処方オーダ",
        "OMP-11" => "処方実施",
        "OMP-02" => "注射オーダ",
        "OMP-12" => "注射実施",
        "OML-01" => "検体検査オーダ",
        "OML-11" => "検体検査結果",
        "OMG-01" | "OMG-02" | "OMG-03" => "検査オーダ",
        "OMG-11" | "OMG-12" | "OMG-13" => "検査結果",
        _ => "この種別の内容",
    }
}

/// The guideline's message types for a kind, as `ADT^A04/A11`.
fn guideline_types(kind: &str) -> String {
    match ssmix2::expected_message(kind) {
        Some((code, events)) => format!("{code}^{}", events.join("/")),
        None => "なし".to_string(),
    }
}

/// Keeps a header value short and plain for a reason (it is a code, never patient data).
fn plain(value: &str) -> String {
    let v: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(60)
        .collect();
    if v.is_empty() {
        "（空）".to_string()
    } else {
        v
    }
}

/// A message type the guideline does not list for the file's kind, read as the kind says.
pub fn kind_deviation(kind: &str, code: &str, event: &str, fit: KindFit) -> Option<Noted> {
    let (key, read_code, read_event) = match fit {
        KindFit::OtherTrigger { as_event } => (
            "trigger_by_kind",
            ssmix2::expected_message(kind)?.0,
            as_event,
        ),
        KindFit::OtherCode { code, event } => ("code_by_kind", code, event),
        _ => return None,
    };
    let cancel = read_code == "ADT" && ssmix2::ADT_CANCELS.contains(&read_event);
    Some(noted(
        key,
        format!(
            "データ種別 {kind} に {}^{} が格納されています（ガイドラインでは {}）。{}{}として取り込みました（{read_code}^{read_event} として読みました）",
            plain(code),
            plain(event),
            guideline_types(kind),
            kind_content(kind),
            if cancel { "の取消" } else { "" },
        ),
    ))
}

/// Why a message whose type does not fit the file's kind is refused.
pub fn kind_refusal(kind: &str, code: &str, event: &str, fit: KindFit) -> String {
    let (code, event) = (plain(code), plain(event));
    match fit {
        KindFit::CancelWithoutCancellation => format!(
            "データ種別 {kind} に取消のイベント {code}^{event} が格納されています（ガイドラインでは {}）。{} には取消がないため、何を取り消すのか読めません",
            guideline_types(kind),
            kind_content(kind)
        ),
        _ => format!(
            "データ種別 {kind} に {code}^{event} が格納されています（ガイドラインでは {}）。{}として読める内容ではないため取り込みません",
            guideline_types(kind),
            kind_content(kind)
        ),
    }
}

/// The deviations the parser noted (terminators, character sets, stray bytes).
pub fn parse_deviations(message: &Message) -> Vec<Noted> {
    let mut out: Vec<Noted> = Vec::new();
    for w in message.warnings() {
        let n = match w {
            Warning::LineFeedSegmentEnds => noted(
                "segment_terminator",
                "セグメントの区切りが CR ではなく LF（または CR LF）です。区切りとして読みました",
            ),
            Warning::LeadingBytesSkipped(_) => noted(
                "leading_bytes",
                "MSH より前に余分なバイトがあります。読み飛ばしました",
            ),
            Warning::UndecodableBytes => noted(
                "undecodable_bytes",
                "文字コードとして読めないバイトがあります。その文字は置き換えて読みました",
            ),
            Warning::UnknownCharset(c) => noted(
                "unknown_charset",
                format!(
                    "MSH-18 の文字コード「{}」は不明です。内容から文字コードを判定して読みました",
                    plain(c)
                ),
            ),
            Warning::OddSegmentName(_) => noted(
                "odd_segment_name",
                "名前が英大文字・数字 3 文字でないセグメントがあります。読み取りには使っていません",
            ),
            Warning::CharsetMislabelled => noted(
                "charset_mislabelled",
                "MSH-18 は ISO-2022-JP（~ISO IR87）ですが、内容は UTF-8 です。UTF-8 として読みました",
            ),
        };
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// The file's ending: the guideline ends every file with 0x1C (after the last CR).
pub fn file_separator(bytes: &[u8]) -> Option<Noted> {
    let ends = bytes.ends_with(&[0x1c]) || bytes.ends_with(&[0x1c, 0x0d]);
    (!ends).then(|| {
        noted(
            "missing_file_separator",
            "ファイルの末尾に 0x1C（ファイル区切り）がありません",
        )
    })
}

/// MSH-21 (message profile): absent, or written otherwise than the guideline's value.
pub fn msh21(message: &Message) -> Option<Noted> {
    let value = message.raw("MSH-21").unwrap_or("").trim();
    if value.is_empty() {
        return Some(noted(
            "msh21_missing",
            format!(
                "MSH-21（メッセージプロファイル）がありません（ガイドラインでは {GUIDELINE_MSH21}）。読み取りには影響しません"
            ),
        ));
    }
    (value != GUIDELINE_MSH21).then(|| {
        noted(
            "msh21_variant",
            format!(
                "MSH-21（メッセージプロファイル）が {} です（ガイドラインでは {GUIDELINE_MSH21}）。読み取りには影響しません",
                plain(value)
            ),
        )
    })
}

/// PID-3 names another patient than the storage's folders: filed under the storage's ID.
pub fn patient_id_differs() -> Noted {
    noted(
        "pid3_differs",
        "PID-3 の患者ID がストレージのフォルダ・ファイル名の患者ID と異なります。ストレージの患者ID で取り込みました",
    )
}

/// Segments without a code (`RXA` alone, an OBX without OBX-3) left out of the record.
pub fn skipped_segments() -> Noted {
    noted(
        "segments_without_code",
        "コードのないセグメント（OBX-3 のない OBX など）は記録に入れていません",
    )
}

/// A file name with an extension (`…_1.txt`).
pub fn file_extension(ext: &str) -> Noted {
    noted(
        "file_name_extension",
        format!(
            "ファイル名に拡張子 {} が付いています（ガイドラインの名前には拡張子がありません）。拡張子を除いた名前で読みました",
            plain(ext)
        ),
    )
}

/// Why a path is not a storage entry.
pub fn name_error(e: &NameError) -> String {
    match e {
        NameError::FieldCount(n) => format!(
            "ファイル名が `_` で {n} 個に分かれています（患者ID_診療日_データ種別_オーダ番号_発生日時_診療科_状態 の 7 個のはずです）"
        ),
        NameError::PatientId(p) => format!(
            "ファイル名の患者ID「{}」が空か 15 文字を超えています",
            plain(p)
        ),
        NameError::CareDate(d) => format!(
            "ファイル名の診療日「{}」が YYYYMMDD でも `-` でもありません",
            plain(d)
        ),
        NameError::DataKind(k) => format!(
            "データ種別「{}」は SS-MIX2 標準化ストレージのデータ種別ではありません",
            plain(k)
        ),
        NameError::OrderNo(o) => format!(
            "ファイル名のオーダ番号「{}」が空か 15 文字を超えています",
            plain(o)
        ),
        NameError::OccurredAt(t) => format!(
            "ファイル名の発生日時「{}」が 17 桁の数字（yyyyMMddHHmmssfff）ではありません",
            plain(t)
        ),
        NameError::Department(d) => format!(
            "ファイル名の診療科コード「{}」が 3 文字を超えています",
            plain(d)
        ),
        NameError::Condition(c) => format!(
            "ファイル名の状態フラグ「{}」が 0・1・2 のどれでもありません",
            plain(c)
        ),
        NameError::Depth(n) => format!(
            "ルートから {n} 階層の位置にあります（患者ID先頭3桁/4-6桁/患者ID/診療日/データ種別/ファイル の 6 階層のはずです）"
        ),
        NameError::FolderMismatch { folder, expected } => format!(
            "フォルダ「{}」がファイル名と合いません（ファイル名からは「{}」のはずです）",
            plain(folder),
            plain(expected)
        ),
    }
}

/// Why bytes are not an HL7 v2 message.
pub fn parse_error(e: &ParseError) -> String {
    let why = match e {
        ParseError::Empty => "ファイルが空です".to_string(),
        ParseError::NoMsh => "MSH セグメントで始まっていません".to_string(),
        ParseError::BadSeparators(what) => {
            format!("MSH-1・MSH-2 の区切り文字が使えません（{what}）")
        }
    };
    format!("HL7 v2 メッセージとして読めません: {why}")
}

/// Why a message contributes nothing.
pub fn map_error(e: &MapError) -> String {
    match e {
        MapError::NoPatient => {
            "PID セグメントの患者ID（PID-3）がないため、誰の記録か読めません".to_string()
        }
        MapError::Unsupported(t) => format!(
            "メッセージ型 {} は取り込む対象ではありません（ADT, PPR, RDE, RAS, OMD, OML, OUL, OMG, OMI, ORU）",
            plain(t)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deviating_trigger_says_what_it_was_read_as() {
        let fit = ssmix2::kind_fit("ADT-12", "ADT", "A01");
        let n = kind_deviation("ADT-12", "ADT", "A01", fit).unwrap();
        assert_eq!(n.key, "trigger_by_kind");
        assert_eq!(
            n.reason,
            "データ種別 ADT-12 に ADT^A01 が格納されています（ガイドラインでは ADT^A04/A11）。外来受診として取り込みました（ADT^A04 として読みました）"
        );
        let fit = ssmix2::kind_fit("ADT-12", "ADT", "A13");
        let n = kind_deviation("ADT-12", "ADT", "A13", fit).unwrap();
        assert!(n.reason.contains("外来受診の取消として"), "{}", n.reason);
        let fit = ssmix2::kind_fit("OML-11", "ORU", "R01");
        let n = kind_deviation("OML-11", "ORU", "R01", fit).unwrap();
        assert_eq!(n.key, "code_by_kind");
        assert!(n.reason.contains("OUL^R22"), "{}", n.reason);
        assert!(kind_deviation("ADT-12", "ADT", "A04", KindFit::Listed).is_none());
    }

    #[test]
    fn refusals_say_why() {
        let r = kind_refusal(
            "OMP-01",
            "OUL",
            "R22",
            ssmix2::kind_fit("OMP-01", "OUL", "R22"),
        );
        assert!(r.contains("処方オーダとして読める内容ではない"), "{r}");
        let r = kind_refusal(
            "ADT-00",
            "ADT",
            "A11",
            ssmix2::kind_fit("ADT-00", "ADT", "A11"),
        );
        assert!(r.contains("取消がない"), "{r}");
        assert!(name_error(&NameError::Depth(2)).contains("2 階層"));
    }
}
