//! Records as stored. Enumerations are kept as their stable text keys; `renkei-app` turns them
//! into the types of `renkei-core`.

use std::fmt;

/// A facility of the provider directory.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Facility {
    pub id: i64,
    pub code: Option<String>,
    pub facility_type: String,
    pub name: String,
    pub name_kana: String,
    pub postal_code: String,
    pub address: String,
    pub phone: String,
    pub discloses: bool,
    pub issues_hm_card: bool,
    pub issues_disclosure_card: bool,
    pub max_accounts: i64,
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The editable fields of a facility.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FacilityFields {
    pub code: Option<String>,
    pub facility_type: String,
    pub name: String,
    pub name_kana: String,
    pub postal_code: String,
    pub address: String,
    pub phone: String,
    pub discloses: bool,
    pub issues_hm_card: bool,
    pub issues_disclosure_card: bool,
    pub max_accounts: i64,
    pub active: bool,
}

#[derive(Clone, Debug, Default)]
pub struct FacilityQuery {
    /// Matches name, kana, address or code.
    pub text: Option<String>,
    pub facility_type: Option<String>,
    pub discloses: Option<bool>,
    pub active_only: bool,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub facility_id: i64,
    pub login_id: String,
    pub name: String,
    pub name_kana: String,
    pub profession: String,
    pub role: String,
    pub password_hash: String,
    pub must_change_password: bool,
    pub totp_secret: Option<String>,
    pub totp_enabled: bool,
    pub totp_last_step: i64,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
    pub emergency: bool,
    pub active: bool,
    pub last_login_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Secrets stay out of logs: the password hash and TOTP secret are never printed.
impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("facility_id", &self.facility_id)
            .field("login_id", &self.login_id)
            .field("profession", &self.profession)
            .field("role", &self.role)
            .field("totp_enabled", &self.totp_enabled)
            .field("emergency", &self.emergency)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    pub facility_id: i64,
    pub login_id: String,
    pub name: String,
    pub name_kana: String,
    pub profession: String,
    pub role: String,
    pub password_hash: String,
    pub must_change_password: bool,
    pub emergency: bool,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("facility_id", &self.facility_id)
            .field("login_id", &self.login_id)
            .finish_non_exhaustive()
    }
}

/// The editable profile of a user (not credentials).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserProfile {
    pub name: String,
    pub name_kana: String,
    pub profession: String,
    pub role: String,
    pub emergency: bool,
    pub active: bool,
}

#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRecord {
    pub token_hash: String,
    pub user_id: i64,
    /// `second_factor` (password accepted, code pending), `enrol` (must enrol TOTP) or `full`.
    pub stage: String,
    pub csrf_token: String,
    pub client: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("user_id", &self.user_id)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Notice {
    pub id: i64,
    pub title: String,
    pub body: String,
    pub important: bool,
    pub published_from: i64,
    pub published_until: Option<i64>,
    pub created_by: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeFields {
    pub title: String,
    pub body: String,
    pub important: bool,
    pub published_from: i64,
    pub published_until: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub login_id: Option<String>,
    pub facility_id: Option<i64>,
    /// Matches actions that start with this text (`auth.` finds every login event).
    pub action_prefix: Option<String>,
    pub outcome: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub emergency_only: bool,
    pub limit: i64,
    pub offset: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Institution {
    pub code: String,
    pub name: String,
    pub postal_code: String,
    pub address: String,
    pub check_digit_ok: bool,
}
