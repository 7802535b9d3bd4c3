//! The operator's screens (事務局): facilities and users, notices, the audit trail.

use axum::Json;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use renkei_app::AppError;
use renkei_app::audit::{AUDIT_PAGE, AuditSearch};
use renkei_app::directory::{FacilityInput, FacilityView, UserInput};
use renkei_app::notices::NoticeInput;
use renkei_core::audit::AuditOutcome;
use renkei_core::time::Timestamp;
use renkei_core::user::Profession;

use crate::WebState;
use crate::session::Operator;
use crate::views::*;

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default, rename = "type")]
    facility_type: String,
    #[serde(default)]
    page: i64,
    /// A message carried over a redirect after a change (fixed texts only, chosen by key).
    #[serde(default)]
    done: String,
}

fn done_message(key: &str) -> Option<String> {
    match key {
        "created" => Some("登録しました".into()),
        "updated" => Some("更新しました".into()),
        "deleted" => Some("削除しました".into()),
        "totp_reset" => {
            Some("二要素認証をリセットしました。次回ログイン時に再登録が必要です".into())
        }
        _ => None,
    }
}

pub async fn facilities(
    State(st): State<WebState>,
    Operator(user): Operator,
    Query(q): Query<ListQuery>,
) -> Response {
    match st
        .app
        .search_facilities(&user.view.actor, &q.q, &q.facility_type, q.page)
        .await
    {
        Ok((facilities, total)) => render(&FacilitiesPage {
            layout: user.layout(&st.app, "施設・利用者管理"),
            q: q.q,
            types: facility_types(),
            selected_type: q.facility_type,
            total,
            facilities,
        }),
        Err(e) => error_page(&st.app, e),
    }
}

pub async fn new_facility(State(st): State<WebState>, Operator(user): Operator) -> Response {
    let form = FacilityForm {
        facility_type: "clinic".into(),
        max_accounts: "20".into(),
        active: true,
        ..Default::default()
    };
    facility_form(
        &st,
        &user,
        "新規施設登録",
        "/admin/facilities".into(),
        form,
        None,
    )
}

fn facility_form(
    st: &WebState,
    user: &crate::session::CurrentUser,
    heading: &str,
    action: String,
    form: FacilityForm,
    error: Option<String>,
) -> Response {
    render(&FacilityFormPage {
        layout: user.layout(&st.app, heading).with_error(error),
        heading: heading.to_string(),
        action,
        types: facility_types(),
        form,
    })
}

fn input_of(f: &FacilityForm) -> FacilityInput {
    FacilityInput {
        code: f.code.clone(),
        facility_type: f.facility_type.clone(),
        name: f.name.clone(),
        name_kana: f.name_kana.clone(),
        postal_code: f.postal_code.clone(),
        address: f.address.clone(),
        phone: f.phone.clone(),
        discloses: f.discloses,
        issues_hm_card: f.issues_hm_card,
        issues_disclosure_card: f.issues_disclosure_card,
        max_accounts: f.max_accounts.clone(),
        active: f.active,
    }
}

pub async fn create_facility(
    State(st): State<WebState>,
    Operator(user): Operator,
    Form(f): Form<FacilityForm>,
) -> Response {
    match st
        .app
        .create_facility(&user.view.actor, &input_of(&f))
        .await
    {
        Ok((facility, warning)) => {
            show(
                &st,
                &user,
                facility,
                Some("施設を登録しました".into()),
                warning,
            )
            .await
        }
        Err(AppError::Invalid(m) | AppError::Conflict(m)) => facility_form(
            &st,
            &user,
            "新規施設登録",
            "/admin/facilities".into(),
            f,
            Some(m),
        ),
        Err(e) => error_page(&st.app, e),
    }
}

async fn show(
    st: &WebState,
    user: &crate::session::CurrentUser,
    f: FacilityView,
    flash: Option<String>,
    warning: Option<String>,
) -> Response {
    let users = match st.app.list_users(&user.view.actor, f.id).await {
        Ok(u) => u.into_iter().map(UserRow::from).collect(),
        Err(e) => return error_page(&st.app, e),
    };
    render(&FacilityShowPage {
        layout: user
            .layout(&st.app, &f.name)
            .with_flash(flash)
            .with_warning(warning),
        f,
        users,
    })
}

pub async fn show_facility(
    State(st): State<WebState>,
    Operator(user): Operator,
    Path(id): Path<i64>,
    Query(q): Query<ListQuery>,
) -> Response {
    match st.app.facility(&user.view.actor, id).await {
        Ok(f) => show(&st, &user, f, done_message(&q.done), None).await,
        Err(e) => error_page(&st.app, e),
    }
}

pub async fn edit_facility(
    State(st): State<WebState>,
    Operator(user): Operator,
    Path(id): Path<i64>,
) -> Response {
    match st.app.facility(&user.view.actor, id).await {
        Ok(f) => {
            let form = FacilityForm {
                code: f.code.clone().unwrap_or_default(),
                facility_type: f.facility_type.key().into(),
                name: f.name.clone(),
                name_kana: f.name_kana.clone(),
                postal_code: f.postal_code.clone(),
                address: f.address.clone(),
                phone: f.phone.clone(),
                discloses: f.discloses,
                issues_hm_card: f.issues_hm_card,
                issues_disclosure_card: f.issues_disclosure_card,
                max_accounts: f.max_accounts.to_string(),
                active: f.active,
            };
            facility_form(
                &st,
                &user,
                "施設情報の編集",
                format!("/admin/facilities/{id}"),
                form,
                None,
            )
        }
        Err(e) => error_page(&st.app, e),
    }
}

pub async fn update_facility(
    State(st): State<WebState>,
    Operator(user): Operator,
    Path(id): Path<i64>,
    Form(f): Form<FacilityForm>,
) -> Response {
    match st
        .app
        .update_facility(&user.view.actor, id, &input_of(&f))
        .await
    {
        Ok((facility, warning)) => {
            show(
                &st,
                &user,
                facility,
                Some("施設情報を更新しました".into()),
                warning,
            )
            .await
        }
        Err(AppError::Invalid(m) | AppError::Conflict(m)) => facility_form(
            &st,
            &user,
            "施設情報の編集",
            format!("/admin/facilities/{id}"),
            f,
            Some(m),
        ),
        Err(e) => error_page(&st.app, e),
    }
}

fn user_form(
    st: &WebState,
    user: &crate::session::CurrentUser,
    (heading, action): (&str, String),
    facility_name: String,
    form: UserForm,
    editing: Option<i64>,
    error: Option<String>,
) -> UserFormPage {
    UserFormPage {
        layout: user.layout(&st.app, heading).with_error(error),
        heading: heading.to_string(),
        action,
        facility_name,
        professions: professions(),
        roles: roles(),
        form,
        editing: editing.is_some(),
        user_id: editing.unwrap_or(0),
    }
}

pub async fn new_user(
    State(st): State<WebState>,
    Operator(user): Operator,
    Path(id): Path<i64>,
) -> Response {
    match st.app.facility(&user.view.actor, id).await {
        Ok(f) => {
            let form = UserForm {
                profession: "doctor".into(),
                role: "staff".into(),
                active: true,
                ..Default::default()
            };
            render(&user_form(
                &st,
                &user,
                ("利用者の追加", format!("/admin/facilities/{id}/users")),
                f.name,
                form,
                None,
                None,
            ))
        }
        Err(e) => error_page(&st.app, e),
    }
}

fn user_input(facility_id: i64, f: &UserForm) -> UserInput {
    UserInput {
        facility_id,
        login_id: f.login_id.clone(),
        name: f.name.clone(),
        name_kana: f.name_kana.clone(),
        profession: f.profession.clone(),
        role: f.role.clone(),
        emergency: f.emergency,
        active: f.active,
    }
}

pub async fn create_user(
    State(st): State<WebState>,
    Operator(user): Operator,
    Path(id): Path<i64>,
    Form(f): Form<UserForm>,
) -> Response {
    match st
        .app
        .create_user(&user.view.actor, &user_input(id, &f))
        .await
    {
        Ok((created, password)) => render(&TempPasswordPage {
            layout: user
                .layout(&st.app, "利用者を登録しました")
                .with_flash(Some("利用者を登録しました".into())),
            heading: "利用者を登録しました".into(),
            login_id: created.login_id,
            password,
            facility_id: id,
        }),
        Err(AppError::Invalid(m) | AppError::Conflict(m)) => {
            let name = st
                .app
                .facility(&user.view.actor, id)
                .await
                .map(|f| f.name)
                .unwrap_or_default();
            render(&user_form(
                &st,
                &user,
                ("利用者の追加", format!("/admin/facilities/{id}/users")),
                name,
                f,
                None,
                Some(m),
            ))
        }
        Err(e) => error_page(&st.app, e),
    }
}

pub async fn edit_user(
    State(st): State<WebState>,
    Operator(user): Operator,
    Path(id): Path<i64>,
    Query(q): Query<ListQuery>,
) -> Response {
    let u = match st.app.user(&user.view.actor, id).await {
        Ok(u) => u,
        Err(e) => return error_page(&st.app, e),
    };
    let name = st
        .app
        .facility(&user.view.actor, u.facility_id)
        .await
        .map(|f| f.name)
        .unwrap_or_default();
    let form = UserForm {
        login_id: u.login_id,
        name: u.name,
        name_kana: u.name_kana,
        profession: u.profession.key().into(),
        role: u.role.key().into(),
        emergency: u.emergency,
        active: u.active,
    };
    let mut page = user_form(
        &st,
        &user,
        ("利用者の編集", format!("/admin/users/{id}")),
        name,
        form,
        Some(id),
        None,
    );
    page.layout.flash = done_message(&q.done);
    render(&page)
}

pub async fn update_user(
    State(st): State<WebState>,
    Operator(user): Operator,
    Path(id): Path<i64>,
    Form(f): Form<UserForm>,
) -> Response {
    let existing = match st.app.user(&user.view.actor, id).await {
        Ok(u) => u,
        Err(e) => return error_page(&st.app, e),
    };
    match st
        .app
        .update_user(&user.view.actor, id, &user_input(existing.facility_id, &f))
        .await
    {
        Ok(u) => Redirect::to(&format!("/admin/facilities/{}?done=updated", u.facility_id))
            .into_response(),
        Err(AppError::Invalid(m) | AppError::Conflict(m)) => render(&user_form(
            &st,
            &user,
            ("利用者の編集", format!("/admin/users/{id}")),
            String::new(),
            f,
            Some(id),
            Some(m),
        )),
        Err(e) => error_page(&st.app, e),
    }
}

pub async fn reset_password(
    State(st): State<WebState>,
    Operator(user): Operator,
    Path(id): Path<i64>,
) -> Response {
    let u = match st.app.user(&user.view.actor, id).await {
        Ok(u) => u,
        Err(e) => return error_page(&st.app, e),
    };
    match st.app.reset_password(&user.view.actor, id).await {
        Ok(password) => render(&TempPasswordPage {
            layout: user.layout(&st.app, "仮パスワードを発行しました"),
            heading: "仮パスワードを発行しました".into(),
            login_id: u.login_id,
            password,
            facility_id: u.facility_id,
        }),
        Err(e) => error_page(&st.app, e),
    }
}

pub async fn reset_totp(
    State(st): State<WebState>,
    Operator(user): Operator,
    Path(id): Path<i64>,
) -> Response {
    let u = match st.app.user(&user.view.actor, id).await {
        Ok(u) => u,
        Err(e) => return error_page(&st.app, e),
    };
    match st.app.reset_second_factor(&user.view.actor, id).await {
        Ok(()) => Redirect::to(&format!(
            "/admin/facilities/{}?done=totp_reset",
            u.facility_id
        ))
        .into_response(),
        Err(e) => error_page(&st.app, e),
    }
}

pub async fn notices(
    State(st): State<WebState>,
    Operator(user): Operator,
    Query(q): Query<ListQuery>,
) -> Response {
    match st.app.all_notices(&user.view.actor).await {
        Ok(list) => render(&NoticesPage {
            layout: user
                .layout(&st.app, "お知らせ管理")
                .with_flash(done_message(&q.done)),
            notices: list.into_iter().map(NoticeItem::from).collect(),
        }),
        Err(e) => error_page(&st.app, e),
    }
}

pub async fn new_notice(State(st): State<WebState>, Operator(user): Operator) -> Response {
    notice_form(
        &st,
        &user,
        "お知らせの作成",
        "/admin/notices".into(),
        NoticeForm::default(),
        None,
    )
}

fn notice_form(
    st: &WebState,
    user: &crate::session::CurrentUser,
    heading: &str,
    action: String,
    form: NoticeForm,
    error: Option<String>,
) -> Response {
    render(&NoticeFormPage {
        layout: user.layout(&st.app, heading).with_error(error),
        heading: heading.into(),
        action,
        form,
    })
}

fn notice_input(f: &NoticeForm) -> NoticeInput {
    NoticeInput {
        title: f.title.clone(),
        body: f.body.clone(),
        important: f.important,
        published_from: f.published_from.clone(),
        published_until: f.published_until.clone(),
    }
}

pub async fn create_notice(
    State(st): State<WebState>,
    Operator(user): Operator,
    Form(f): Form<NoticeForm>,
) -> Response {
    match st
        .app
        .post_notice(&user.view.actor, &notice_input(&f))
        .await
    {
        Ok(_) => Redirect::to("/admin/notices?done=created").into_response(),
        Err(AppError::Invalid(m)) => notice_form(
            &st,
            &user,
            "お知らせの作成",
            "/admin/notices".into(),
            f,
            Some(m),
        ),
        Err(e) => error_page(&st.app, e),
    }
}

pub async fn edit_notice(
    State(st): State<WebState>,
    Operator(user): Operator,
    Path(id): Path<i64>,
) -> Response {
    match st.app.notice(&user.view.actor, id).await {
        Ok(n) => {
            let form = NoticeForm {
                title: n.title,
                body: n.body,
                important: n.important,
                published_from: Timestamp(n.published_from).jst_date(),
                published_until: n
                    .published_until
                    .map(|t| Timestamp(t).jst_date())
                    .unwrap_or_default(),
            };
            notice_form(
                &st,
                &user,
                "お知らせの編集",
                format!("/admin/notices/{id}"),
                form,
                None,
            )
        }
        Err(e) => error_page(&st.app, e),
    }
}

pub async fn update_notice(
    State(st): State<WebState>,
    Operator(user): Operator,
    Path(id): Path<i64>,
    Form(f): Form<NoticeForm>,
) -> Response {
    match st
        .app
        .update_notice(&user.view.actor, id, &notice_input(&f))
        .await
    {
        Ok(_) => Redirect::to("/admin/notices?done=updated").into_response(),
        Err(AppError::Invalid(m)) => notice_form(
            &st,
            &user,
            "お知らせの編集",
            format!("/admin/notices/{id}"),
            f,
            Some(m),
        ),
        Err(e) => error_page(&st.app, e),
    }
}

pub async fn delete_notice(
    State(st): State<WebState>,
    Operator(user): Operator,
    Path(id): Path<i64>,
) -> Response {
    match st.app.delete_notice(&user.view.actor, id).await {
        Ok(()) => Redirect::to("/admin/notices?done=deleted").into_response(),
        Err(e) => error_page(&st.app, e),
    }
}

/// One event as the operator reads it: names and words, not numbers and keys.
fn audit_row(
    c: renkei_core::audit::ChainedAuditEvent,
    names: &std::collections::HashMap<i64, String>,
    target: String,
) -> AuditRowView {
    let e = c.event;
    let who = match e.login_id.strip_prefix("system:") {
        Some(what) => format!("システム（{what}）"),
        None if e.login_id.is_empty() => "システム".into(),
        None => e.login_id.clone(),
    };
    AuditRowView {
        seq: c.seq,
        at: e.at.jst_minutes(),
        login_id: who,
        facility_id: e
            .facility_id
            .map(|f| {
                names
                    .get(&f)
                    .cloned()
                    .unwrap_or_else(|| "（不明な施設）".into())
            })
            .unwrap_or_default(),
        profession: e
            .profession
            .as_deref()
            .map(|p| {
                Profession::from_key(p)
                    .map(|p| p.label().to_string())
                    .unwrap_or_else(|| p.to_string())
            })
            .unwrap_or_default(),
        action: renkei_core::audit::action_label(&e.action).to_string(),
        target,
        outcome: e.outcome.label(),
        outcome_key: e.outcome.key(),
        detail: renkei_core::audit::detail_in_words(&e.detail),
        client: e.client,
        emergency: e.emergency,
    }
}

/// An event's target in words: a patient by the common ID, a facility by its name; other kinds
/// by their kind.
async fn target_in_words(
    st: &WebState,
    names: &std::collections::HashMap<i64, String>,
    target: &str,
) -> String {
    let (kind, rest) = target.split_once(':').unwrap_or((target, ""));
    let id = rest
        .split(['/', '-'])
        .next()
        .unwrap_or("")
        .parse::<i64>()
        .ok();
    match (kind, id) {
        ("person", Some(id)) => match st.app.common_id_of(id).await {
            Some(common) => format!("患者（地域共通ID {common}）"),
            None => "患者".into(),
        },
        ("facility", Some(id)) => names.get(&id).cloned().unwrap_or_else(|| "施設".into()),
        ("common_id", _) => format!("地域共通ID {rest}"),
        ("notice", _) => "お知らせ".into(),
        ("user", _) => "利用者".into(),
        ("profession_rights", _) => "職種別閲覧権限".into(),
        ("persons", _) => "患者".into(),
        _ => target.to_string(),
    }
}

/// `GET /admin/audit`: the audit trail searched, in names and words.
pub async fn audit(
    State(st): State<WebState>,
    Operator(user): Operator,
    Query(q): Query<AuditForm>,
) -> Response {
    let search = AuditSearch {
        login_id: q.login_id.clone(),
        facility_id: q.facility_id.clone(),
        action: q.action.clone(),
        outcome: q.outcome.clone(),
        from: q.from.clone(),
        to: q.to.clone(),
        emergency_only: q.emergency.is_some(),
        page: q.page,
    };
    let view = AuditSearchView {
        login_id: q.login_id.clone(),
        facility_id: q.facility_id.clone(),
        action: q.action.clone(),
        outcome: q.outcome.clone(),
        from: q.from.clone(),
        to: q.to.clone(),
        emergency_only: q.emergency.is_some(),
    };
    let outcomes = vec![
        (AuditOutcome::Success.key(), AuditOutcome::Success.label()),
        (AuditOutcome::Failure.key(), AuditOutcome::Failure.label()),
        (AuditOutcome::Denied.key(), AuditOutcome::Denied.label()),
    ];
    let names = st
        .app
        .facility_names_by_id(&user.view.actor)
        .await
        .unwrap_or_default();
    let mut facilities: Vec<(i64, String)> = names.iter().map(|(k, v)| (*k, v.clone())).collect();
    facilities.sort_by(|a, b| a.1.cmp(&b.1));
    match st.app.search_audit(&user.view.actor, &search).await {
        Ok((events, total)) => {
            let shown = events.len() as i64;
            let mut rows = Vec::with_capacity(events.len());
            for c in events {
                let target = target_in_words(&st, &names, &c.event.target).await;
                rows.push(audit_row(c, &names, target));
            }
            let page = q.page.max(0);
            let link = |p: i64| {
                let mut next = q.clone();
                next.page = p;
                serde_urlencoded::to_string(&next)
                    .ok()
                    .map(|qs| format!("/admin/audit?{qs}"))
            };
            render(&AuditPage {
                layout: user.layout(&st.app, "監査ログ検索"),
                s: view,
                outcomes,
                total,
                page_from: if shown == 0 { 0 } else { page * AUDIT_PAGE + 1 },
                page_to: page * AUDIT_PAGE + shown,
                prev_link: if page > 0 { link(page - 1) } else { None },
                next_link: if (page + 1) * AUDIT_PAGE < total {
                    link(page + 1)
                } else {
                    None
                },
                events: rows,
                actions: renkei_core::audit::ACTION_LABELS.to_vec(),
                facilities: facilities.clone(),
            })
        }
        Err(AppError::Invalid(m)) => render(&AuditPage {
            layout: user.layout(&st.app, "監査ログ検索").with_error(Some(m)),
            s: view,
            outcomes,
            total: 0,
            page_from: 0,
            page_to: 0,
            events: Vec::new(),
            prev_link: None,
            next_link: None,
            actions: renkei_core::audit::ACTION_LABELS.to_vec(),
            facilities,
        }),
        Err(e) => error_page(&st.app, e),
    }
}

#[derive(serde::Serialize)]
struct InstitutionJson {
    code: String,
    name: String,
    postal_code: String,
    address: String,
    check_digit_ok: bool,
}

/// Autofill for the facility form: the master row for a code (JSON), 404 when unknown.
pub async fn institution_lookup(
    State(st): State<WebState>,
    Operator(user): Operator,
    Path(code): Path<String>,
) -> Response {
    match st.app.lookup_institution(&user.view.actor, &code).await {
        Ok(Some(i)) => Json(InstitutionJson {
            code: i.code,
            name: i.name,
            postal_code: i.postal_code,
            address: i.address,
            check_digit_ok: i.check_digit_ok,
        })
        .into_response(),
        Ok(None) => error_page(&st.app, AppError::NotFound),
        Err(e) => error_page(&st.app, e),
    }
}

#[derive(serde::Deserialize, Default)]
pub struct PersonQuery {
    #[serde(default)]
    name: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    sex: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    address: String,
}

pub async fn persons(
    State(st): State<WebState>,
    Operator(user): Operator,
    Query(q): Query<PersonQuery>,
) -> Response {
    let q = renkei_app::identity::PersonQuery {
        name: q.name,
        birth_date: q.birth_date,
        sex: q.sex,
        phone: q.phone,
        address: q.address,
    };
    let searched = [&q.name, &q.birth_date, &q.phone, &q.address]
        .iter()
        .any(|v| !v.trim().is_empty());
    let (persons, error) = if searched {
        match st.app.search_persons(&user.view.actor, &q).await {
            Ok(p) => (p, None),
            Err(AppError::Invalid(m)) => (Vec::new(), Some(m)),
            Err(e) => return error_page(&st.app, e),
        }
    } else {
        (Vec::new(), None)
    };
    let limit = renkei_app::identity::SEARCH_LIMIT;
    render(&PersonsPage {
        layout: user.layout(&st.app, "地域共通ID検索").with_error(error),
        q,
        searched,
        more: persons.len() >= limit,
        persons,
        limit,
    })
}

pub async fn person(
    State(st): State<WebState>,
    Operator(user): Operator,
    Path(id): Path<i64>,
    Query(q): Query<ListQuery>,
) -> Response {
    match st.app.person_detail(&user.view.actor, id).await {
        Ok(d) => {
            let issued = d
                .cards
                .iter()
                .map(|c| Timestamp(c.issued_at).jst_minutes())
                .collect();
            render(&PersonPage {
                layout: user
                    .layout(&st.app, "地域共通ID")
                    .with_flash(done_message(&q.done)),
                d,
                issued,
            })
        }
        Err(e) => error_page(&st.app, e),
    }
}

#[derive(serde::Deserialize)]
pub struct MergeForm {
    #[serde(default)]
    merged: String,
}

pub async fn merge_person(
    State(st): State<WebState>,
    Operator(user): Operator,
    Path(id): Path<i64>,
    Form(f): Form<MergeForm>,
) -> Response {
    let Ok(merged) = f.merged.trim().parse::<i64>() else {
        return error_page(
            &st.app,
            AppError::Invalid("統合する方の番号を数字で入力してください".into()),
        );
    };
    match st.app.merge_persons(&user.view.actor, id, merged).await {
        Ok(()) => Redirect::to(&format!("/admin/persons/{id}?done=updated")).into_response(),
        Err(e) => error_page(&st.app, e),
    }
}

pub async fn unmerge_person(
    State(st): State<WebState>,
    Operator(user): Operator,
    Path(id): Path<i64>,
) -> Response {
    match st.app.unmerge_person(&user.view.actor, id).await {
        Ok(()) => Redirect::to(&format!("/admin/persons/{id}?done=updated")).into_response(),
        Err(e) => error_page(&st.app, e),
    }
}
