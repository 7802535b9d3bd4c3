//! Users of the network: login IDs, professions and roles.

use std::fmt;

/// A user's profession decides, in later issues, which categories of a record they may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profession {
    Doctor,
    Dentist,
    Pharmacist,
    Nurse,
    PublicHealthNurse,
    Midwife,
    CareManager,
    PhysicalTherapist,
    OccupationalTherapist,
    SpeechTherapist,
    LabTechnician,
    Radiographer,
    Dietitian,
    SocialWorker,
    CareWorker,
    Clerk,
    Operator,
}

impl Profession {
    pub const ALL: [Profession; 17] = [
        Profession::Doctor,
        Profession::Dentist,
        Profession::Pharmacist,
        Profession::Nurse,
        Profession::PublicHealthNurse,
        Profession::Midwife,
        Profession::CareManager,
        Profession::PhysicalTherapist,
        Profession::OccupationalTherapist,
        Profession::SpeechTherapist,
        Profession::LabTechnician,
        Profession::Radiographer,
        Profession::Dietitian,
        Profession::SocialWorker,
        Profession::CareWorker,
        Profession::Clerk,
        Profession::Operator,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Profession::Doctor => "doctor",
            Profession::Dentist => "dentist",
            Profession::Pharmacist => "pharmacist",
            Profession::Nurse => "nurse",
            Profession::PublicHealthNurse => "public_health_nurse",
            Profession::Midwife => "midwife",
            Profession::CareManager => "care_manager",
            Profession::PhysicalTherapist => "physical_therapist",
            Profession::OccupationalTherapist => "occupational_therapist",
            Profession::SpeechTherapist => "speech_therapist",
            Profession::LabTechnician => "lab_technician",
            Profession::Radiographer => "radiographer",
            Profession::Dietitian => "dietitian",
            Profession::SocialWorker => "social_worker",
            Profession::CareWorker => "care_worker",
            Profession::Clerk => "clerk",
            Profession::Operator => "operator",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Profession::Doctor => "医師",
            Profession::Dentist => "歯科医師",
            Profession::Pharmacist => "薬剤師",
            Profession::Nurse => "看護師",
            Profession::PublicHealthNurse => "保健師",
            Profession::Midwife => "助産師",
            Profession::CareManager => "介護支援専門員",
            Profession::PhysicalTherapist => "理学療法士",
            Profession::OccupationalTherapist => "作業療法士",
            Profession::SpeechTherapist => "言語聴覚士",
            Profession::LabTechnician => "臨床検査技師",
            Profession::Radiographer => "診療放射線技師",
            Profession::Dietitian => "管理栄養士",
            Profession::SocialWorker => "医療ソーシャルワーカー",
            Profession::CareWorker => "介護福祉士",
            Profession::Clerk => "事務職員",
            Profession::Operator => "事務局職員",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.key() == key)
    }
}

impl fmt::Display for Profession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What a user may administer. Orthogonal to the profession.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 事務局: manages the whole directory, notices and the audit trail.
    Operator,
    /// 施設管理者: manages the users of their own facility.
    FacilityAdmin,
    /// Everyone else.
    Staff,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Operator, Role::FacilityAdmin, Role::Staff];

    pub fn key(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::FacilityAdmin => "facility_admin",
            Role::Staff => "staff",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Operator => "事務局管理者",
            Role::FacilityAdmin => "施設管理者",
            Role::Staff => "一般利用者",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.key() == key)
    }
}

/// A login ID: 3–64 characters of ASCII letters, digits, `.`, `_`, `-` and `@`, compared as
/// typed (case-insensitively folded to lower case).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LoginId(String);

impl LoginId {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_lowercase();
        let len_ok = (3..=64).contains(&t.len());
        let chars_ok = t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
        if len_ok && chars_ok {
            Ok(LoginId(t))
        } else {
            Err("利用者IDは3〜64文字の半角英数字と . _ - @ で入力してください".to_string())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LoginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for p in Profession::ALL {
            assert_eq!(Profession::from_key(p.key()), Some(p));
        }
        for r in Role::ALL {
            assert_eq!(Role::from_key(r.key()), Some(r));
        }
    }

    #[test]
    fn login_ids_are_folded_and_checked() {
        assert_eq!(LoginId::parse(" Dr.Tanaka ").unwrap().as_str(), "dr.tanaka");
        assert!(LoginId::parse("ab").is_err());
        assert!(LoginId::parse("田中").is_err());
    }
}
