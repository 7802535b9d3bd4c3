//! Provider directory (HPD): facilities and users, the public facility search, and the
//! medical-institution code master.

use renkei_core::audit::AuditOutcome;
use renkei_core::facility::{FacilityCode, FacilityType};
use renkei_core::institution::InstitutionRecord;
use renkei_core::user::{LoginId, Profession, Role};
use renkei_store::{
    Facility, FacilityFields, FacilityQuery, Institution, NewUser, User, UserProfile,
};

use crate::auth::temporary_password;
use crate::secrets;
use crate::{Actor, App, AppError, Result};

/// A facility as the portal and the API show it.
#[derive(Clone, Debug)]
pub struct FacilityView {
    pub id: i64,
    pub code: Option<String>,
    pub facility_type: FacilityType,
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
    pub oid: String,
    /// Set when the stored code's check digit disagrees (a warning, not an error).
    pub code_warning: Option<String>,
}

impl FacilityView {
    pub fn type_label(&self) -> &'static str {
        self.facility_type.label()
    }

    /// `〒730-0011` as printed on letters (empty when unknown).
    pub fn postal_display(&self) -> String {
        match (self.postal_code.get(..3), self.postal_code.get(3..)) {
            (Some(a), Some(b)) if self.postal_code.len() == 7 => format!("〒{a}-{b}"),
            _ => String::new(),
        }
    }

    /// 開示 / 参照, and which card it issues, in words.
    pub fn role_label(&self) -> String {
        let mut parts = vec![if self.discloses {
            "開示施設"
        } else {
            "参照施設"
        }];
        if self.issues_hm_card {
            parts.push("HMカード発行");
        }
        if self.issues_disclosure_card {
            parts.push("診療情報開示カード発行");
        }
        parts.join("・")
    }
}

/// What the operator types to register or edit a facility.
#[derive(Clone, Debug, Default)]
pub struct FacilityInput {
    pub code: String,
    pub facility_type: String,
    pub name: String,
    pub name_kana: String,
    pub postal_code: String,
    pub address: String,
    pub phone: String,
    pub discloses: bool,
    pub issues_hm_card: bool,
    pub issues_disclosure_card: bool,
    pub max_accounts: String,
    pub active: bool,
}

/// What the operator (or a facility administrator) types to register a user.
#[derive(Clone, Debug, Default)]
pub struct UserInput {
    pub facility_id: i64,
    pub login_id: String,
    pub name: String,
    pub name_kana: String,
    pub profession: String,
    pub role: String,
    pub emergency: bool,
    pub active: bool,
}

/// A user as lists show them (no credentials).
#[derive(Clone, Debug)]
pub struct UserView {
    pub id: i64,
    pub facility_id: i64,
    pub login_id: String,
    pub name: String,
    pub name_kana: String,
    pub profession: Profession,
    pub role: Role,
    pub totp_enabled: bool,
    pub locked: bool,
    pub emergency: bool,
    pub active: bool,
    pub must_change_password: bool,
    pub last_login_at: Option<i64>,
}

/// The outcome of reading a list of institution-code rows.
#[derive(Clone, Debug, Default)]
pub struct ImportReport {
    pub imported: usize,
    pub check_digit_warnings: usize,
}

fn validate_facility(input: &FacilityInput) -> Result<(FacilityFields, Option<String>)> {
    let facility_type = FacilityType::from_key(input.facility_type.trim())
        .ok_or_else(|| AppError::Invalid("施設種別を選んでください".into()))?;
    let name = input.name.trim();
    if name.is_empty() {
        return Err(AppError::Invalid("施設名を入力してください".into()));
    }
    if name.chars().count() > 200 {
        return Err(AppError::Invalid(
            "施設名は200文字以内にしてください".into(),
        ));
    }
    let (code, warning) = if input.code.trim().is_empty() {
        (None, None)
    } else {
        let code =
            FacilityCode::parse(&input.code).map_err(|e| AppError::Invalid(e.to_string()))?;
        let warning = (!code.check_digit_ok()).then(|| {
            format!(
                "医療機関コード {} の検証番号が計算値（{}）と一致しません。コードを確認してください（登録はされています）",
                code,
                code.expected_check_digit()
            )
        });
        (Some(code.as_string()), warning)
    };
    let max_accounts: i64 = input
        .max_accounts
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            AppError::Invalid("アカウント上限は1〜10000の数で入力してください".into())
        })?;
    let postal_code: String = input
        .postal_code
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect();
    if !postal_code.is_empty() && postal_code.len() != 7 {
        return Err(AppError::Invalid("郵便番号は7桁で入力してください".into()));
    }
    Ok((
        FacilityFields {
            code,
            facility_type: facility_type.key().to_string(),
            name: name.to_string(),
            name_kana: input.name_kana.trim().to_string(),
            postal_code,
            address: input.address.trim().to_string(),
            phone: input.phone.trim().to_string(),
            discloses: input.discloses,
            issues_hm_card: input.issues_hm_card,
            issues_disclosure_card: input.issues_disclosure_card,
            max_accounts,
            active: input.active,
        },
        warning,
    ))
}

impl App {
    pub fn facility_view(&self, f: Facility) -> FacilityView {
        let parsed = f.code.as_deref().and_then(|c| FacilityCode::parse(c).ok());
        let oid =
            self.config
                .oid_root
                .facility_oid(self.config.region_prefecture, parsed.as_ref(), f.id);
        let code_warning = parsed.filter(|c| !c.check_digit_ok()).map(|c| {
            format!(
                "検証番号が計算値（{}）と一致しません",
                c.expected_check_digit()
            )
        });
        FacilityView {
            id: f.id,
            code: f.code,
            facility_type: FacilityType::from_key(&f.facility_type).unwrap_or(FacilityType::Clinic),
            name: f.name,
            name_kana: f.name_kana,
            postal_code: f.postal_code,
            address: f.address,
            phone: f.phone,
            discloses: f.discloses,
            issues_hm_card: f.issues_hm_card,
            issues_disclosure_card: f.issues_disclosure_card,
            max_accounts: f.max_accounts,
            active: f.active,
            oid,
            code_warning,
        }
    }

    fn user_view(&self, u: User) -> UserView {
        let now = self.now().0;
        UserView {
            id: u.id,
            facility_id: u.facility_id,
            locked: u.locked_until.is_some_and(|t| t > now),
            login_id: u.login_id,
            name: u.name,
            name_kana: u.name_kana,
            profession: Profession::from_key(&u.profession).unwrap_or(Profession::Clerk),
            role: Role::from_key(&u.role).unwrap_or(Role::Staff),
            totp_enabled: u.totp_enabled,
            emergency: u.emergency,
            active: u.active,
            must_change_password: u.must_change_password,
            last_login_at: u.last_login_at,
        }
    }

    /// Registers a facility (operator only). Returns it with a check-digit warning if any.
    pub async fn create_facility(
        &self,
        actor: &Actor,
        input: &FacilityInput,
    ) -> Result<(FacilityView, Option<String>)> {
        actor.require_operator()?;
        let (fields, warning) = validate_facility(input)?;
        let detail = if warning.is_some() {
            "check_digit_warning"
        } else {
            ""
        };
        let f = self
            .store
            .create_facility(
                &fields,
                self.now().0,
                self.event(
                    actor,
                    "directory.facility.create",
                    String::new(),
                    AuditOutcome::Success,
                    detail,
                ),
            )
            .await?;
        Ok((self.facility_view(f), warning))
    }

    pub async fn update_facility(
        &self,
        actor: &Actor,
        id: i64,
        input: &FacilityInput,
    ) -> Result<(FacilityView, Option<String>)> {
        actor.require_operator()?;
        let (fields, warning) = validate_facility(input)?;
        let f = self
            .store
            .update_facility(
                id,
                &fields,
                self.now().0,
                self.event(
                    actor,
                    "directory.facility.update",
                    format!("facility:{id}"),
                    AuditOutcome::Success,
                    "",
                ),
            )
            .await?;
        Ok((self.facility_view(f), warning))
    }

    /// One facility: the operator sees any, a user their own.
    pub async fn facility(&self, actor: &Actor, id: i64) -> Result<FacilityView> {
        if !actor.is_operator() && actor.facility_id != Some(id) {
            return Err(AppError::Forbidden);
        }
        Ok(self.facility_view(self.store.facility(id).await?))
    }

    /// The operator's facility list, with inactive ones.
    pub async fn search_facilities(
        &self,
        actor: &Actor,
        text: &str,
        facility_type: &str,
        page: i64,
    ) -> Result<(Vec<FacilityView>, i64)> {
        actor.require_operator()?;
        self.facility_search(text, facility_type, None, false, page)
            .await
    }

    /// 参加施設検索: anyone, logged in or not, sees the participating (active) facilities.
    pub async fn public_facility_search(
        &self,
        text: &str,
        facility_type: &str,
        discloses_only: bool,
        page: i64,
    ) -> Result<(Vec<FacilityView>, i64)> {
        let (list, total) = self
            .facility_search(
                text,
                facility_type,
                discloses_only.then_some(true),
                true,
                page,
            )
            .await?;
        Ok((
            list.into_iter()
                .filter(|f| f.facility_type != FacilityType::Operator)
                .collect(),
            total,
        ))
    }

    /// Every facility's name by its number, inactive ones and the operator's included (for the
    /// operator's screens, which show names, not numbers).
    pub async fn facility_names_by_id(
        &self,
        actor: &Actor,
    ) -> Result<std::collections::HashMap<i64, String>> {
        actor.require_operator()?;
        let mut out = std::collections::HashMap::new();
        for page in 0.. {
            let (list, total) = self.facility_search("", "", None, false, page).await?;
            let done = list.is_empty() || (out.len() + list.len()) as i64 >= total;
            out.extend(list.into_iter().map(|f| (f.id, f.name)));
            if done {
                break;
            }
        }
        Ok(out)
    }

    /// Every participating facility (for choosing consent targets and referral destinations).
    pub async fn participating_facilities(&self) -> Result<Vec<FacilityView>> {
        let mut out = Vec::new();
        for page in 0.. {
            let (list, total) = self.facility_search("", "", None, true, page).await?;
            let done = list.is_empty() || (out.len() + list.len()) as i64 >= total;
            out.extend(
                list.into_iter()
                    .filter(|f| f.facility_type != FacilityType::Operator),
            );
            if done {
                break;
            }
        }
        Ok(out)
    }

    /// The facilities whose records can be viewed (他院診療情報).
    pub async fn disclosing_facilities(&self) -> Result<Vec<FacilityView>> {
        Ok(self.facility_search("", "", Some(true), true, 0).await?.0)
    }

    async fn facility_search(
        &self,
        text: &str,
        facility_type: &str,
        discloses: Option<bool>,
        active_only: bool,
        page: i64,
    ) -> Result<(Vec<FacilityView>, i64)> {
        const PAGE: i64 = 50;
        let facility_type = match facility_type.trim() {
            "" => None,
            key => Some(
                FacilityType::from_key(key)
                    .ok_or_else(|| AppError::Invalid("施設種別が不正です".into()))?
                    .key()
                    .to_string(),
            ),
        };
        let q = FacilityQuery {
            text: Some(text.trim().to_string()).filter(|t| !t.is_empty()),
            facility_type,
            discloses,
            active_only,
            limit: PAGE,
            offset: page.max(0) * PAGE,
        };
        let (rows, total) = self.store.search_facilities(&q).await?;
        Ok((
            rows.into_iter().map(|f| self.facility_view(f)).collect(),
            total,
        ))
    }

    /// Autofill for registration: the master row for a code, if imported.
    pub async fn lookup_institution(
        &self,
        actor: &Actor,
        code: &str,
    ) -> Result<Option<Institution>> {
        actor.require_operator()?;
        let code = FacilityCode::parse(code).map_err(|e| AppError::Invalid(e.to_string()))?;
        Ok(self.store.institution(&code.as_string()).await?)
    }

    /// Loads a batch of master rows (all or nothing). The caller audits the whole import once.
    pub async fn import_institutions(
        &self,
        actor: &Actor,
        records: &[InstitutionRecord],
        progress: &mut (dyn FnMut(usize) + Send),
    ) -> Result<ImportReport> {
        actor.require_operator()?;
        self.store
            .upsert_institutions(records, self.now().0, progress)
            .await?;
        Ok(ImportReport {
            imported: records.len(),
            check_digit_warnings: records.iter().filter(|r| !r.check_digit_ok).count(),
        })
    }

    /// Records that an import finished, with its counts.
    pub async fn audit_import(
        &self,
        actor: &Actor,
        source: &str,
        imported: usize,
        rejected: usize,
    ) -> Result<()> {
        let detail = format!("imported={imported};rejected={rejected}");
        let source: String = source.chars().take(100).collect();
        self.append_audit(self.event(
            actor,
            "directory.institutions.import",
            format!("file:{source}"),
            AuditOutcome::Success,
            &detail,
        ))
        .await?;
        Ok(())
    }

    pub async fn count_institutions(&self) -> Result<i64> {
        Ok(self.store.count_institutions().await?)
    }

    fn may_manage_users_of(&self, actor: &Actor, facility_id: i64) -> Result<()> {
        match actor.role {
            Role::Operator => Ok(()),
            Role::FacilityAdmin if actor.facility_id == Some(facility_id) => Ok(()),
            _ => Err(AppError::Forbidden),
        }
    }

    fn validate_user(
        &self,
        actor: &Actor,
        input: &UserInput,
        facility: &Facility,
    ) -> Result<(Profession, Role)> {
        if input.name.trim().is_empty() {
            return Err(AppError::Invalid("氏名を入力してください".into()));
        }
        let profession = Profession::from_key(input.profession.trim())
            .ok_or_else(|| AppError::Invalid("職種を選んでください".into()))?;
        let role = Role::from_key(input.role.trim())
            .ok_or_else(|| AppError::Invalid("権限を選んでください".into()))?;
        let operator_facility = facility.facility_type == FacilityType::Operator.key();
        if role == Role::Operator && (!actor.is_operator() || !operator_facility) {
            return Err(AppError::Invalid(
                "事務局管理者の権限は事務局の利用者にだけ、事務局が付与できます".into(),
            ));
        }
        Ok((profession, role))
    }

    /// Registers a user; returns the user and a temporary password (shown once, must be changed).
    pub async fn create_user(
        &self,
        actor: &Actor,
        input: &UserInput,
    ) -> Result<(UserView, String)> {
        self.may_manage_users_of(actor, input.facility_id)?;
        if input.emergency && !actor.is_operator() {
            return Err(AppError::Invalid(
                "非常時用アカウントは事務局だけが作成できます".into(),
            ));
        }
        let password = temporary_password()?;
        let user = self.insert_user(actor, input, &password, true).await?;
        Ok((user, password))
    }

    /// Registers a user with a chosen password (command line and demo seeding).
    pub async fn create_user_with_password(
        &self,
        actor: &Actor,
        input: &UserInput,
        password: &str,
        must_change: bool,
    ) -> Result<UserView> {
        actor.require_operator()?;
        let login = LoginId::parse(&input.login_id).map_err(AppError::Invalid)?;
        crate::auth::check_new_password(password, password, login.as_str())?;
        self.insert_user(actor, input, password, must_change).await
    }

    /// Validates `input`, hashes `password` and stores the user with its audit event.
    async fn insert_user(
        &self,
        actor: &Actor,
        input: &UserInput,
        password: &str,
        must_change: bool,
    ) -> Result<UserView> {
        let facility = self.store.facility(input.facility_id).await?;
        let login = LoginId::parse(&input.login_id).map_err(AppError::Invalid)?;
        let (profession, role) = self.validate_user(actor, input, &facility)?;
        let new = NewUser {
            facility_id: facility.id,
            login_id: login.as_str().to_string(),
            name: input.name.trim().to_string(),
            name_kana: input.name_kana.trim().to_string(),
            profession: profession.key().to_string(),
            role: role.key().to_string(),
            password_hash: secrets::hash_password(password.to_string()).await?,
            must_change_password: must_change,
            emergency: input.emergency,
        };
        let detail = if input.emergency {
            "emergency_account"
        } else {
            ""
        };
        let event = self.event(
            actor,
            "directory.user.create",
            String::new(),
            AuditOutcome::Success,
            detail,
        );
        let user = self.store.create_user(&new, self.now().0, event).await?;
        Ok(self.user_view(user))
    }

    pub async fn update_user(&self, actor: &Actor, id: i64, input: &UserInput) -> Result<UserView> {
        let existing = self.store.user(id).await?;
        self.may_manage_users_of(actor, existing.facility_id)?;
        let facility = self.store.facility(existing.facility_id).await?;
        let (profession, role) = self.validate_user(actor, input, &facility)?;
        if input.emergency != existing.emergency && !actor.is_operator() {
            return Err(AppError::Invalid(
                "非常時用アカウントの指定は事務局だけが変更できます".into(),
            ));
        }
        let profile = UserProfile {
            name: input.name.trim().to_string(),
            name_kana: input.name_kana.trim().to_string(),
            profession: profession.key().to_string(),
            role: role.key().to_string(),
            emergency: input.emergency,
            active: input.active,
        };
        let u = self
            .store
            .update_user_profile(
                id,
                &profile,
                self.now().0,
                self.event(
                    actor,
                    "directory.user.update",
                    format!("user:{id}"),
                    AuditOutcome::Success,
                    "",
                ),
            )
            .await?;
        // A token an app holds for this user acts with the user's new rights at once.
        self.token_cache.clear();
        Ok(self.user_view(u))
    }

    pub async fn user(&self, actor: &Actor, id: i64) -> Result<UserView> {
        let u = self.store.user(id).await?;
        self.may_manage_users_of(actor, u.facility_id)?;
        Ok(self.user_view(u))
    }

    pub async fn user_id_by_login(&self, actor: &Actor, login_id: &str) -> Result<i64> {
        actor.require_operator()?;
        let login = LoginId::parse(login_id).map_err(AppError::Invalid)?;
        self.store
            .user_by_login(login.as_str())
            .await?
            .map(|u| u.id)
            .ok_or(AppError::NotFound)
    }

    pub async fn list_users(&self, actor: &Actor, facility_id: i64) -> Result<Vec<UserView>> {
        self.may_manage_users_of(actor, facility_id)?;
        Ok(self
            .store
            .list_users(Some(facility_id))
            .await?
            .into_iter()
            .map(|u| self.user_view(u))
            .collect())
    }

    /// Sets a new temporary password (and unlocks); the user must change it at next login.
    pub async fn reset_password(&self, actor: &Actor, user_id: i64) -> Result<String> {
        let u = self.store.user(user_id).await?;
        self.may_manage_users_of(actor, u.facility_id)?;
        let password = temporary_password()?;
        let hash = secrets::hash_password(password.clone()).await?;
        self.store
            .set_password(
                user_id,
                &hash,
                true,
                None,
                self.now().0,
                self.event(
                    actor,
                    "auth.password.reset",
                    format!("user:{user_id}"),
                    AuditOutcome::Success,
                    "",
                ),
            )
            .await?;
        Ok(password)
    }

    /// Clears a user's second factor (lost phone); they enrol again at next login.
    pub async fn reset_second_factor(&self, actor: &Actor, user_id: i64) -> Result<()> {
        let u = self.store.user(user_id).await?;
        self.may_manage_users_of(actor, u.facility_id)?;
        self.store
            .reset_totp(
                user_id,
                self.event(
                    actor,
                    "auth.totp.reset",
                    format!("user:{user_id}"),
                    AuditOutcome::Success,
                    "",
                ),
            )
            .await?;
        Ok(())
    }
}
