//! Templates and the values they show.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use renkei_app::auth::SessionView;
use renkei_app::directory::{FacilityView, UserView};
use renkei_app::{App, AppError};
use renkei_core::facility::FacilityType;
use renkei_core::time::Timestamp;
use renkei_core::user::{Profession, Role};

/// The logged-in user as the header shows them.
pub struct UserBar {
    pub name: String,
    pub facility: String,
    pub profession: String,
    pub emergency: bool,
}

/// What the page frame needs.
pub struct Layout {
    pub title: String,
    pub network: String,
    pub user: Option<UserBar>,
    pub csrf: String,
    pub flash: Option<String>,
    pub warning: Option<String>,
    pub error: Option<String>,
    /// Between the password and the portal (second factor, enrolment, recovery codes): the
    /// header neither offers ログイン nor names the user yet.
    pub signing_in: bool,
}

impl Layout {
    pub fn anonymous(app: &App, title: &str, csrf: String) -> Layout {
        Layout {
            title: title.to_string(),
            network: app.config().network_name.clone(),
            user: None,
            csrf,
            flash: None,
            warning: None,
            error: None,
            signing_in: false,
        }
    }

    /// A page of the login steps after the password.
    pub fn signing_in(app: &App, title: &str, csrf: String) -> Layout {
        Layout {
            signing_in: true,
            ..Layout::anonymous(app, title, csrf)
        }
    }

    pub fn for_user(app: &App, title: &str, v: &SessionView) -> Layout {
        let profession = v
            .actor
            .profession
            .as_deref()
            .and_then(Profession::from_key)
            .map(|p| p.label())
            .unwrap_or("");
        Layout {
            user: Some(UserBar {
                name: v.actor.name.clone(),
                facility: v.facility_name.clone(),
                profession: profession.to_string(),
                emergency: v.actor.emergency,
            }),
            ..Layout::anonymous(app, title, v.csrf_token.clone())
        }
    }

    pub fn with_error(mut self, e: Option<String>) -> Self {
        self.error = e;
        self
    }

    pub fn with_flash(mut self, m: Option<String>) -> Self {
        self.flash = m;
        self
    }

    pub fn with_warning(mut self, m: Option<String>) -> Self {
        self.warning = m;
        self
    }
}

pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "表示に失敗しました").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub heading: String,
    pub message: String,
}

/// The page for an error no form can show inline. Internal details go to the log (they never
/// contain patient data), not to the page.
pub fn error_page(app: &App, e: AppError) -> Response {
    let (status, heading, message) = match &e {
        AppError::NotFound => (
            StatusCode::NOT_FOUND,
            "見つかりません",
            "指定されたページまたはデータは存在しません。".to_string(),
        ),
        AppError::Forbidden => (
            StatusCode::FORBIDDEN,
            "権限がありません",
            "この操作を行う権限がありません。".to_string(),
        ),
        AppError::Unauthenticated => (
            StatusCode::UNAUTHORIZED,
            "ログインしてください",
            "ログインが必要です。".to_string(),
        ),
        AppError::Invalid(m) | AppError::Conflict(m) => (
            StatusCode::BAD_REQUEST,
            "入力内容を確認してください",
            m.clone(),
        ),
        AppError::Unavailable(_) => {
            tracing::error!(code = e.code(), error = %e, "database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "ただいま利用できません",
                "データベースに接続できません。しばらくしてからもう一度お試しください。"
                    .to_string(),
            )
        }
        AppError::Internal(_) => {
            tracing::error!(code = e.code(), error = %e, "internal error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "エラーが発生しました",
                "処理中にエラーが発生しました。事務局にお問い合わせください。".to_string(),
            )
        }
    };
    let page = ErrorPage {
        layout: Layout::anonymous(app, heading, String::new()),
        heading: heading.to_string(),
        message,
    };
    (status, render(&page)).into_response()
}

pub fn facility_types() -> Vec<(&'static str, &'static str)> {
    FacilityType::ALL
        .iter()
        .map(|t| (t.key(), t.label()))
        .collect()
}

pub fn professions() -> Vec<(&'static str, &'static str)> {
    Profession::ALL
        .iter()
        .map(|p| (p.key(), p.label()))
        .collect()
}

pub fn roles() -> Vec<(&'static str, &'static str)> {
    Role::ALL.iter().map(|r| (r.key(), r.label())).collect()
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub layout: Layout,
    pub login_id: String,
}

#[derive(Template)]
#[template(path = "totp.html")]
pub struct TotpPage {
    pub layout: Layout,
}

#[derive(Template)]
#[template(path = "enrol.html")]
pub struct EnrolPage {
    pub layout: Layout,
    pub qr_svg: String,
    pub secret: String,
    pub account: String,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub struct RecoveryCodesPage {
    pub layout: Layout,
    pub codes: Vec<String>,
}

#[derive(Template)]
#[template(path = "recovery.html")]
pub struct RecoveryPage {
    pub layout: Layout,
    pub remaining: i64,
}

#[derive(Template)]
#[template(path = "password.html")]
pub struct PasswordPage {
    pub layout: Layout,
    pub forced: bool,
}

pub struct NoticeItem {
    pub id: i64,
    pub title: String,
    pub body: String,
    pub important: bool,
    pub date: String,
    pub from: String,
    pub until: String,
}

impl NoticeItem {
    pub fn from(n: renkei_app::notices::Notice) -> NoticeItem {
        NoticeItem {
            id: n.id,
            date: Timestamp(n.published_from).jst_date(),
            from: Timestamp(n.published_from).jst_date(),
            until: n
                .published_until
                .map(|t| Timestamp(t).jst_date())
                .unwrap_or_else(|| "無期限".into()),
            title: n.title,
            body: n.body,
            important: n.important,
        }
    }
}

#[derive(Template)]
#[template(path = "top.html")]
pub struct TopPage {
    pub layout: Layout,
    pub disclosing: Vec<FacilityView>,
    pub notices: Vec<NoticeItem>,
    pub is_operator: bool,
    /// The user's facility discloses records (it records consents).
    pub discloses: bool,
    /// (when, message) notifications to the user's facility.
    pub alerts: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "public_search.html")]
pub struct PublicSearchPage {
    pub layout: Layout,
    pub q: String,
    pub types: Vec<(&'static str, &'static str)>,
    pub selected_type: String,
    pub discloses_only: bool,
    pub total: i64,
    pub facilities: Vec<FacilityView>,
}

#[derive(Template)]
#[template(path = "admin_facilities.html")]
pub struct FacilitiesPage {
    pub layout: Layout,
    pub q: String,
    pub types: Vec<(&'static str, &'static str)>,
    pub selected_type: String,
    pub total: i64,
    pub facilities: Vec<FacilityView>,
}

/// The facility form's values as typed (strings, so a refused form comes back as it was).
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct FacilityForm {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub facility_type: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub name_kana: String,
    #[serde(default)]
    pub postal_code: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default, deserialize_with = "checkbox")]
    pub discloses: bool,
    #[serde(default, deserialize_with = "checkbox")]
    pub issues_hm_card: bool,
    #[serde(default, deserialize_with = "checkbox")]
    pub issues_disclosure_card: bool,
    #[serde(default)]
    pub max_accounts: String,
    #[serde(default, deserialize_with = "checkbox")]
    pub active: bool,
}

/// A checkbox is present (any value) when ticked and absent when not.
pub fn checkbox<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v: Option<String> = serde::Deserialize::deserialize(d)?;
    Ok(v.is_some())
}

#[derive(Template)]
#[template(path = "facility_form.html")]
pub struct FacilityFormPage {
    pub layout: Layout,
    pub heading: String,
    pub action: String,
    pub types: Vec<(&'static str, &'static str)>,
    pub form: FacilityForm,
}

pub struct UserRow {
    pub id: i64,
    pub login_id: String,
    pub name: String,
    pub profession: Profession,
    pub role: Role,
    pub totp_enabled: bool,
    pub emergency: bool,
    pub active: bool,
    pub locked: bool,
    pub last_login: String,
}

impl UserRow {
    pub fn from(u: UserView) -> UserRow {
        UserRow {
            id: u.id,
            login_id: u.login_id,
            name: u.name,
            profession: u.profession,
            role: u.role,
            totp_enabled: u.totp_enabled,
            emergency: u.emergency,
            active: u.active,
            locked: u.locked,
            last_login: u
                .last_login_at
                .map(|t| Timestamp(t).jst_minutes())
                .unwrap_or_else(|| "なし".into()),
        }
    }
}

#[derive(Template)]
#[template(path = "facility_show.html")]
pub struct FacilityShowPage {
    pub layout: Layout,
    pub f: FacilityView,
    pub users: Vec<UserRow>,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct UserForm {
    #[serde(default)]
    pub login_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub name_kana: String,
    #[serde(default)]
    pub profession: String,
    #[serde(default)]
    pub role: String,
    #[serde(default, deserialize_with = "checkbox")]
    pub emergency: bool,
    #[serde(default, deserialize_with = "checkbox")]
    pub active: bool,
}

#[derive(Template)]
#[template(path = "user_form.html")]
pub struct UserFormPage {
    pub layout: Layout,
    pub heading: String,
    pub action: String,
    pub facility_name: String,
    pub professions: Vec<(&'static str, &'static str)>,
    pub roles: Vec<(&'static str, &'static str)>,
    pub form: UserForm,
    pub editing: bool,
    pub user_id: i64,
}

#[derive(Template)]
#[template(path = "temp_password.html")]
pub struct TempPasswordPage {
    pub layout: Layout,
    pub heading: String,
    pub login_id: String,
    pub password: String,
    pub facility_id: i64,
}

#[derive(Template)]
#[template(path = "admin_notices.html")]
pub struct NoticesPage {
    pub layout: Layout,
    pub notices: Vec<NoticeItem>,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct NoticeForm {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub body: String,
    #[serde(default, deserialize_with = "checkbox")]
    pub important: bool,
    #[serde(default)]
    pub published_from: String,
    #[serde(default)]
    pub published_until: String,
}

#[derive(Template)]
#[template(path = "notice_form.html")]
pub struct NoticeFormPage {
    pub layout: Layout,
    pub heading: String,
    pub action: String,
    pub form: NoticeForm,
}

pub struct AuditRowView {
    pub seq: i64,
    pub at: String,
    pub login_id: String,
    pub facility_id: String,
    pub profession: String,
    pub action: String,
    pub target: String,
    pub outcome: &'static str,
    pub outcome_key: &'static str,
    pub detail: String,
    pub client: String,
    pub emergency: bool,
}

#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
pub struct AuditForm {
    #[serde(default)]
    pub login_id: String,
    #[serde(default)]
    pub facility_id: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub outcome: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub emergency: Option<String>,
    #[serde(default)]
    pub page: i64,
}

pub struct AuditSearchView {
    pub login_id: String,
    pub facility_id: String,
    pub action: String,
    pub outcome: String,
    pub from: String,
    pub to: String,
    pub emergency_only: bool,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
pub struct AuditPage {
    pub layout: Layout,
    pub s: AuditSearchView,
    pub outcomes: Vec<(&'static str, &'static str)>,
    pub total: i64,
    pub page_from: i64,
    pub page_to: i64,
    pub events: Vec<AuditRowView>,
    pub prev_link: Option<String>,
    pub next_link: Option<String>,
    /// The actions to choose from: (key, words).
    pub actions: Vec<(&'static str, &'static str)>,
    /// The facilities to choose from: (number, name), by name.
    pub facilities: Vec<(i64, String)>,
}

pub struct LinkedPerson {
    pub name: String,
    pub common_id: String,
    pub patient: String,
}

#[derive(Template)]
#[template(path = "cards.html")]
pub struct CardsPage {
    pub layout: Layout,
    pub can_issue: bool,
    pub issues_hm: bool,
    pub issues_disclosure: bool,
    pub read_patient: String,
    pub linked: Option<LinkedPerson>,
    /// The card-holding check's answer: (name, kana, common ID).
    pub holders: Option<Vec<(String, String, String)>>,
    /// A card scanned first whose person is not linked here yet: the patient ID is asked for.
    pub pending: Option<PendingScan>,
}

/// A verified scan waiting for the facility's patient ID (the scan and any typed proof are
/// sent again with it, and checked again).
#[derive(Clone, Debug)]
pub struct PendingScan {
    pub scanned: String,
    pub code: String,
    pub name: String,
    pub birth_date: String,
    /// 「山田 花子（地域共通ID 34000000018）」.
    pub label: String,
}

#[derive(Template)]
#[template(path = "card_issued.html")]
pub struct CardIssuedPage {
    pub layout: Layout,
    pub qr_svg: String,
    pub printed: String,
    pub payload: String,
    /// The verification code printed on the card.
    pub code: String,
    pub card_id: i64,
    pub name: String,
    pub kana: String,
    pub kind: &'static str,
}

#[derive(Template)]
#[template(path = "admin_persons.html")]
pub struct PersonsPage {
    pub layout: Layout,
    pub q: renkei_app::identity::PersonQuery,
    pub searched: bool,
    pub persons: Vec<renkei_app::identity::PersonRow>,
    /// The search stopped at `limit`.
    pub more: bool,
    pub limit: usize,
}

#[derive(Template)]
#[template(path = "admin_person.html")]
pub struct PersonPage {
    pub layout: Layout,
    pub d: renkei_app::identity::PersonDetail,
    /// When each card was issued (JST), in the order of `d.cards`.
    pub issued: Vec<String>,
}

/// A person suggested as possibly the patient being registered.
pub struct SuggestedPerson {
    pub id: i64,
    pub kanji_name: String,
    pub kana_name: String,
    pub birth_date: String,
    pub sex: &'static str,
    pub score: String,
    /// The fields that agree, in Japanese.
    pub reasons: String,
    /// The fields both records have that disagree, in Japanese.
    pub disagreements: String,
}

#[derive(Template)]
#[template(path = "card_candidates.html")]
pub struct CardCandidatesPage {
    pub layout: Layout,
    pub patient_local_id: String,
    pub kind: String,
    pub details: renkei_app::identity::PersonDetails,
    pub candidates: Vec<SuggestedPerson>,
}

pub struct ConsentRowView {
    pub id: i64,
    pub targets: String,
    pub categories: String,
    pub period: String,
    pub created: String,
    pub withdrawn: Option<String>,
    pub scans: Vec<(i64, String)>,
}

#[derive(Template)]
#[template(path = "consents.html")]
pub struct ConsentsPage {
    pub layout: Layout,
    pub patient: String,
    pub person: Option<renkei_app::identity::PersonRow>,
    pub rows: Vec<ConsentRowView>,
    pub facilities: Vec<(i64, String)>,
    /// (key, label, checked)
    pub categories: Vec<(&'static str, &'static str, bool)>,
    pub policy_mode: &'static str,
    pub policy_key: &'static str,
    /// (key, label, checked) for the facility-level categories.
    pub policy_categories: Vec<(&'static str, &'static str, bool)>,
    pub facility_level: bool,
    pub is_admin: bool,
}

pub struct ListedRow {
    pub id: i64,
    pub common_id: String,
    pub kanji_name: String,
    pub kana_name: String,
    pub birth_date: String,
    pub last_access: String,
    pub until: String,
    pub only: Option<String>,
    pub hidden: bool,
}

#[derive(Template)]
#[template(path = "patients.html")]
pub struct PatientsPage {
    pub layout: Layout,
    pub rows: Vec<ListedRow>,
    pub include_hidden: bool,
    pub facility_name: Option<String>,
    /// The facility filter, kept across a card read.
    pub facility: Option<i64>,
}

#[derive(Template)]
#[template(path = "emergency.html")]
pub struct EmergencyPage {
    pub layout: Layout,
    /// The patient the grant opened: (person id, 「氏名（カナ）生年月日 性別」).
    pub granted: Option<(i64, String)>,
}

#[derive(Template)]
#[template(path = "admin_rights.html")]
pub struct RightsPage {
    pub layout: Layout,
    pub categories: Vec<(&'static str, &'static str)>,
    pub rows: Vec<RightsRow>,
}

/// (profession key, label, [(category key, allowed)])
pub type RightsRow = (&'static str, &'static str, Vec<(&'static str, bool)>);

pub struct AccessRow {
    pub at: String,
    pub login_id: String,
    pub facility: String,
    pub action: String,
    pub outcome: &'static str,
    pub detail: String,
    pub emergency: bool,
}

#[derive(Template)]
#[template(path = "admin_access.html")]
pub struct AccessPage {
    pub layout: Layout,
    pub person: i64,
    pub rows: Vec<AccessRow>,
}

pub struct CalendarLine {
    pub label: &'static str,
    /// Per day: the colours of the facilities with items.
    pub cells: Vec<Vec<&'static str>>,
}

pub struct ItemLine {
    pub id: i64,
    pub date: String,
    pub row: &'static str,
    pub title: String,
    pub extra: String,
    pub facility: String,
    pub colour: &'static str,
    pub is_document: bool,
    /// For an image study: the place of its first DICOM file (for a thumbnail).
    pub thumbnail: Option<usize>,
}

pub struct LabLine {
    pub key: String,
    /// `trend=<key>`, URL-encoded.
    pub key_query: String,
    pub name: String,
    pub unit: String,
    pub reference: String,
    /// Per shown date: (values, abnormal flag).
    pub cells: Vec<(String, String)>,
}

pub struct SummaryView {
    pub today: String,
    /// Per section, what the reader may not see of it (empty: all of it), from the rules alone:
    /// said instead of 「なし」.
    pub allergy_scope: &'static str,
    pub contraindication_scope: &'static str,
    pub prescription_scope: &'static str,
    pub diagnosis_scope: &'static str,
    pub visit_scope: &'static str,
    /// Categories not (wholly) included, for the print-out.
    pub excluded: Vec<String>,
    /// Who printed it, where and when.
    pub printed_by: String,
    pub visits: Vec<(String, String, String)>,
    pub allergies: Vec<(String, String)>,
    pub contraindications: Vec<(String, String)>,
    pub medicines: Vec<(String, String, String, String)>,
    pub diagnoses: Vec<(String, String, String)>,
}

#[derive(Template)]
#[template(path = "viewer.html")]
pub struct ViewerPage {
    pub layout: Layout,
    pub person: i64,
    /// Links of this person under 名寄せ review.
    pub link_warnings: Vec<String>,
    /// Who the patient is, allergy flags, the emergency banner.
    pub banner: BannerView,
    pub tab: String,
    pub legend: Vec<(String, &'static str)>,
    pub months: Vec<String>,
    pub month: String,
    pub days: Vec<u32>,
    pub calendar: Vec<CalendarLine>,
    pub lines: Vec<ItemLine>,
    pub heading: String,
    pub categories: Vec<(&'static str, &'static str)>,
    pub selected_row: String,
    pub lab_dates: Vec<String>,
    pub lab_rows: Vec<LabLine>,
    /// Inline SVG (built from numbers and escaped text).
    pub trend: String,
    pub trend_key: String,
    pub summary: Option<SummaryView>,
    pub dispensings: Vec<DispensingView>,
    /// The dispensing dates as month calendars, newest month first.
    pub dispensing_months: Vec<MonthView>,
    /// The notebooks' own records and every allergy: (kind, text, date, facility, colour).
    pub notebook_entries: Vec<(String, String, String, String, &'static str)>,
    pub empty: bool,
}

/// One dispensing in the お薬手帳.
/// One month of the お薬手帳 calendar: weeks from Sunday, each day with the anchors of its
/// dispensings.
pub struct MonthView {
    /// `2026年3月`.
    pub title: String,
    pub weeks: Vec<[Option<DayView>; 7]>,
}

pub struct DayView {
    pub day: u8,
    /// The first dispensing of the day (`d3`), when there is one.
    pub anchor: Option<String>,
    /// The pharmacies of the day's dispensings, with their colours.
    pub marks: Vec<(&'static str, String)>,
}

pub struct DispensingView {
    pub date: String,
    pub facility: i64,
    pub colour: &'static str,
    pub pharmacy: String,
    pub pharmacist: String,
    pub prescriber_facility: String,
    pub doctor: String,
    pub department: String,
    pub drugs: Vec<DrugLine>,
    pub notes: Vec<String>,
}

pub struct DrugLine {
    pub name: String,
    pub code: String,
    pub dose: String,
    pub usage: String,
    pub days: String,
    pub cautions: Vec<String>,
    /// The package insert, when the operator configured where.
    pub link: Option<String>,
}

#[derive(Template)]
#[template(path = "document.html")]
pub struct DocumentPage {
    pub layout: Layout,
    pub banner: BannerView,
    pub person: i64,
    pub item: i64,
    pub viewer: Option<DicomViewer>,
    /// Files other than images: (index, name, text when it is text)
    pub files: Vec<(usize, String, Option<String>)>,
}

/// The image shown on a document page and how to move around it.
pub struct DicomViewer {
    pub index: usize,
    pub frame: u32,
    pub frames: u32,
    pub preset: &'static str,
    pub presets: Vec<(&'static str, &'static str)>,
    pub title: String,
    pub previous: Option<usize>,
    pub next: Option<usize>,
    /// Every image of the study, in series order (file indexes).
    pub series: Vec<usize>,
}

#[derive(Template)]
#[template(path = "admin_lab_codes.html")]
pub struct LabCodesPage {
    pub layout: Layout,
    pub codes: Vec<renkei_app::viewer::LocalLabCode>,
}

#[derive(Template)]
#[template(path = "medication.html")]
pub struct MedicationPage {
    pub layout: Layout,
    pub report: Option<renkei_app::medication::MedicationReport>,
    /// Apps a card-holder can be linked to: (id, name).
    pub apps: Vec<(i64, String)>,
    /// Split QR codes waiting for their other parts, and those given up.
    pub splits: SplitsView,
    /// The card just read, kept while a split code waits for its next part (the reader then
    /// scans only the QR code), with the focus on the QR field.
    pub card: String,
}

/// The split QR codes a pharmacy is in the middle of reading.
#[derive(Clone, Debug, Default)]
pub struct SplitsView {
    /// (data ID, "2 / 3", missing parts "3", until "2026-12-04 21:05").
    pub pending: Vec<(String, String, String, String)>,
    pub expired: Vec<String>,
}

impl SplitsView {
    pub fn of(report: &renkei_app::medication::MedicationReport) -> Self {
        SplitsView {
            pending: report
                .pending
                .iter()
                .map(|p| {
                    let missing: Vec<String> = p.missing().iter().map(i64::to_string).collect();
                    (
                        p.data_id.clone(),
                        format!("{} / {}", p.received.len(), p.total),
                        missing.join("・"),
                        renkei_core::time::Timestamp(p.expires_at).jst_minutes(),
                    )
                })
                .collect(),
            expired: report.expired.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "medication_code.html")]
pub struct MedicationCodePage {
    pub layout: Layout,
    pub code: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "authorize.html")]
pub struct AuthorizePage {
    pub layout: Layout,
    pub client_name: String,
    pub who: String,
    /// (scope, what it means)
    pub scopes: Vec<(String, String)>,
    pub redirect_host: String,
    /// The request, carried to the decision.
    pub params: Vec<(String, String)>,
}

/// A same-site step: a browser that arrived from another site did not send the session cookie
/// (SameSite=Strict); this page's own navigation does.
#[derive(Template)]
#[template(path = "hop.html")]
pub struct HopPage {
    pub url: String,
}

#[derive(Template)]
#[template(path = "link_reviews.html")]
pub struct LinkReviewsPage {
    pub layout: Layout,
    pub rows: Vec<LinkReviewRow>,
}

/// One review as the list shows it (field names, never values).
pub struct LinkReviewRow {
    pub id: i64,
    pub facility: String,
    pub patient_local_id: String,
    pub common_id: String,
    pub fields: String,
    pub opened: String,
    pub open: bool,
    /// 同一人物と確認 / リンク解除, by whom and when.
    pub outcome: String,
}

impl LinkReviewRow {
    pub fn of(r: renkei_app::link_review::ReviewRow) -> Self {
        let at = |t: i64| renkei_core::time::Timestamp(t).jst_minutes();
        let outcome = match (r.review.resolution.as_str(), r.review.resolved_at) {
            ("confirmed", Some(t)) => {
                format!("同一人物と確認（{} {}）", r.review.resolved_by, at(t))
            }
            ("unlinked", Some(t)) => format!("リンクを解除（{} {}）", r.review.resolved_by, at(t)),
            _ => String::new(),
        };
        LinkReviewRow {
            id: r.review.id,
            facility: r.facility_name,
            patient_local_id: r.review.patient_local_id,
            common_id: r.common_id,
            fields: r.review.fields.replace(',', "・"),
            opened: at(r.review.opened_at),
            open: r.review.resolved_at.is_none(),
            outcome,
        }
    }
}

/// The patient banner every patient page starts with (see `patient_banner.html`).
#[derive(Clone, Debug, Default)]
pub struct BannerView {
    pub kanji_name: String,
    pub kana_name: String,
    /// 「1952年10月27日（74歳）」.
    pub birth: String,
    pub sex: &'static str,
    pub common_id: String,
    /// Flags in words: 「アレルギーあり（2件）」, 「禁忌: 閲覧権限の範囲外」…
    pub flags: Vec<(String, bool)>,
    /// The red emergency banner with the time left.
    pub emergency: Option<String>,
}

impl BannerView {
    /// `today`: `YYYY-MM-DD` (JST); `now`: unix microseconds.
    pub fn of(b: &renkei_app::viewer::PatientBanner, today: &str, now: i64) -> Self {
        use renkei_core::consent::CategoryScope;
        let p = &b.person;
        let birth = p.birth_date.as_deref().unwrap_or("");
        let age = age_on(birth, today)
            .map(|a| format!("（{a}歳）"))
            .unwrap_or_default();
        let birth = match (birth.get(..4), birth.get(5..7), birth.get(8..10)) {
            (Some(y), Some(m), Some(d)) => format!(
                "{y}年{}月{}日{age}",
                m.trim_start_matches('0'),
                d.trim_start_matches('0')
            ),
            _ => "生年月日不明".to_string(),
        };
        let flag = |what: &str, n: usize, scope: CategoryScope| -> (String, bool) {
            match scope {
                CategoryScope::OutsideProfession | CategoryScope::OutsideConsent if n == 0 => {
                    (format!("{what}: {}", scope.label()), false)
                }
                _ if n > 0 => (format!("{what}あり（{n}件）"), true),
                CategoryScope::Partly => (
                    format!("{what}: 表示できる範囲に登録なし（{}）", scope.label()),
                    false,
                ),
                _ => (format!("{what}: 登録なし"), false),
            }
        };
        BannerView {
            kanji_name: p.kanji_name.clone(),
            kana_name: p.kana_name.clone(),
            birth,
            sex: match p.sex.as_str() {
                "M" => "男",
                "F" => "女",
                _ => "性別不明",
            },
            common_id: p.common_id.clone(),
            flags: vec![
                flag("アレルギー", b.allergies, b.allergy_scope),
                flag("禁忌", b.contraindications, b.contraindication_scope),
            ],
            emergency: b.emergency_until.map(|until| {
                let left = ((until - now) / 60_000_000).max(0);
                format!(
                    "緊急時閲覧中（残り {}:{:02}、{} まで）。この閲覧はすべて記録され、開示施設と事務局に通知されています",
                    left / 60,
                    left % 60,
                    renkei_core::time::Timestamp(until).jst_minutes()
                )
            }),
        }
    }
}

/// Full years from `birth` to `today` (both `YYYY-MM-DD`).
pub fn age_on(birth: &str, today: &str) -> Option<i32> {
    let part = |s: &str, r: std::ops::Range<usize>| s.get(r).and_then(|v| v.parse::<i32>().ok());
    let (by, bm, bd) = (part(birth, 0..4)?, part(birth, 5..7)?, part(birth, 8..10)?);
    let (ty, tm, td) = (part(today, 0..4)?, part(today, 5..7)?, part(today, 8..10)?);
    let years = ty - by - i32::from((tm, td) < (bm, bd));
    (years >= 0).then_some(years)
}

#[cfg(test)]
mod banner_tests {
    use super::*;
    use renkei_core::consent::CategoryScope;

    fn banner(allergies: usize, scope: CategoryScope) -> renkei_app::viewer::PatientBanner {
        renkei_app::viewer::PatientBanner {
            person: renkei_app::identity::PersonRow {
                id: 1,
                common_id: "34000000018".into(),
                kanji_name: "中村 茂".into(),
                kana_name: "ナカムラ シゲル".into(),
                birth_date: Some("1952-10-27".into()),
                sex: "M".into(),
                issuer_facility: 1,
                created_at: 0,
                merged_into: None,
                phone: String::new(),
                postal_code: String::new(),
                address: String::new(),
            },
            allergies,
            contraindications: 0,
            allergy_scope: scope,
            contraindication_scope: CategoryScope::Visible,
            emergency_until: None,
        }
    }

    #[test]
    fn the_banner_says_who_and_whether_allergies_are_known_or_hidden() {
        assert_eq!(age_on("1952-10-27", "2026-10-26"), Some(73));
        assert_eq!(age_on("1952-10-27", "2026-10-27"), Some(74));
        assert_eq!(age_on("2024-02-29", "2025-02-28"), Some(0));
        assert_eq!(age_on("", "2026-10-27"), None);
        let b = BannerView::of(&banner(2, CategoryScope::Visible), "2026-11-21", 0);
        assert_eq!(b.birth, "1952年10月27日（74歳）");
        assert_eq!(b.sex, "男");
        assert_eq!(b.flags[0], ("アレルギーあり（2件）".to_string(), true));
        assert_eq!(b.flags[1], ("禁忌: 登録なし".to_string(), false));
        // Outside the reader's rights: said so, never 「登録なし」.
        let hidden = BannerView::of(
            &banner(0, CategoryScope::OutsideProfession),
            "2026-11-21",
            0,
        );
        assert_eq!(hidden.flags[0].0, "アレルギー: 閲覧権限の範囲外");
        let partly = BannerView::of(&banner(0, CategoryScope::Partly), "2026-11-21", 0);
        assert!(partly.flags[0].0.contains("表示できる範囲に登録なし"));
    }
}
