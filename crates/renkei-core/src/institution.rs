//! Rows of the national medical-institution code list (保険医療機関一覧, as published by the regional
//! bureaus of health and welfare and collected into one CSV): the reference master from which the
//! operator registers participating facilities.

use crate::facility::FacilityCode;

/// One row of the master: a code with its facility's name and address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstitutionRecord {
    pub code: FacilityCode,
    pub name: String,
    pub postal_code: String,
    pub address: String,
    /// False when neither 医科 nor 歯科 makes the check digit agree (kept, with a warning).
    pub check_digit_ok: bool,
}

/// Reads one row: `9-digit code, 7-digit code, name, postal code, address`. The 9-digit code has
/// no 点数表 digit; the list is 医科, with a few 医科歯科 rows whose check digit only agrees as 歯科,
/// so 1 is tried first and 3 second.
pub fn parse_master_row(fields: &[&str]) -> Result<InstitutionRecord, String> {
    if fields.len() != 5 {
        return Err(format!(
            "列の数が {} です（5 列：9桁コード, 7桁コード, 名称, 郵便番号, 所在地）",
            fields.len()
        ));
    }
    let nine = fields[0].trim().trim_start_matches('\u{feff}');
    let seven = fields[1].trim();
    if seven.len() != 7 || !seven.bytes().all(|b| b.is_ascii_digit()) {
        return Err("7桁コードが7桁の数字ではありません".to_string());
    }
    if nine.len() != 9 || nine.get(2..) != Some(seven) {
        return Err("9桁コードが「都道府県2桁＋7桁コード」になっていません".to_string());
    }
    let name = fields[2].trim();
    if name.is_empty() {
        return Err("名称が空です".to_string());
    }
    let medical = FacilityCode::from_nine(nine, 1).map_err(|e| e.to_string())?;
    let (code, check_digit_ok) = if medical.check_digit_ok() {
        (medical, true)
    } else {
        match FacilityCode::from_nine(nine, 3) {
            Ok(dental) if dental.check_digit_ok() => (dental, true),
            _ => (medical, false),
        }
    };
    let postal: String = fields[3].chars().filter(|c| c.is_ascii_digit()).collect();
    Ok(InstitutionRecord {
        code,
        name: name.to_string(),
        postal_code: postal,
        address: fields[4].trim().to_string(),
        check_digit_ok,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_row() {
        let r = parse_master_row(&[
            "010112489",
            "0112489",
            "医療法人 愛全病院",
            "0050813",
            "札幌市南区川沿１３条２丁目１番３８号",
        ])
        .unwrap();
        assert_eq!(r.code.as_string(), "0110112489");
        assert!(r.check_digit_ok);
        assert_eq!(r.postal_code, "0050813");
    }

    #[test]
    fn names_what_is_wrong() {
        assert!(
            parse_master_row(&["1", "2"])
                .unwrap_err()
                .contains("列の数")
        );
        assert!(
            parse_master_row(&["010112489", "011248X", "a", "", ""])
                .unwrap_err()
                .contains("7桁")
        );
        assert!(
            parse_master_row(&["010112480", "0112489", "a", "", ""])
                .unwrap_err()
                .contains("9桁")
        );
        assert!(
            parse_master_row(&["010112489", "0112489", " ", "", ""])
                .unwrap_err()
                .contains("名称")
        );
    }
}
