//! Consent screens: a disclosing hospital's 同意・開示設定 per patient (targets, information,
//! period, withdrawal, the consent form PDF and its signed scan, referrals, opt-out) and its
//! facility rule; the facility's patient list (カードレス開示); a patient's record as the
//! viewer may see it; emergency access; the operator's profession matrix and access history.

use axum::body::Bytes;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use renkei_app::AppError;
use renkei_app::consent::ConsentInput;
use renkei_core::consent::{CategorySet, ConsentCategory, PolicyMode};
use renkei_core::time::Timestamp;
use renkei_core::user::Profession;

use crate::WebState;
use crate::session::{CurrentUser, Operator};
use crate::views::*;

/// Form fields, repeated keys kept (checkbox groups and multiple selects).
fn fields(body: &Bytes) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

fn field(fields: &[(String, String)], name: &str) -> String {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn all(fields: &[(String, String)], name: &str) -> Vec<String> {
    fields
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .collect()
}

fn category_choices(selected: CategorySet) -> Vec<(&'static str, &'static str, bool)> {
    ConsentCategory::ALL
        .into_iter()
        .map(|c| (c.key(), c.label(), selected.contains(c)))
        .collect()
}

fn done_message(key: &str) -> Option<String> {
    match key {
        "created" => Some("同意を登録しました".into()),
        "withdrawn" => Some("同意を撤回しました（ただちに開示されなくなります）".into()),
        "scan" => Some("署名済みの同意書を添付しました".into()),
        "referral" => Some("紹介先を記録しました".into()),
        "opt_out" => Some("施設単位の同意から除外しました".into()),
        "opt_in" => Some("施設単位の同意に戻しました".into()),
        "policy" => Some("開示ルールを更新しました".into()),
        "hidden" => Some("選択した患者を一覧から非表示にしました".into()),
        "rights" => Some("職種別の閲覧権限を更新しました".into()),
        "read" => Some("カードを読み取りました。一覧に表示されます".into()),
        _ => None,
    }
}

#[derive(serde::Deserialize, Default)]
pub struct PatientQuery {
    #[serde(default)]
    patient: String,
    #[serde(default)]
    done: String,
}

fn back_to(patient: &str, done: &str) -> Response {
    Redirect::to(&format!(
        "/consents?patient={}&done={done}",
        urlencode(patient)
    ))
    .into_response()
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)])
        .unwrap_or_default()
        .trim_start_matches("v=")
        .to_string()
}

async fn consents_page(
    st: &WebState,
    user: &CurrentUser,
    patient: &str,
    flash: Option<String>,
    error: Option<String>,
) -> Response {
    let facilities = st.app.participating_facilities().await.unwrap_or_default();
    let name_of = |id: i64| {
        facilities
            .iter()
            .find(|f| f.id == id)
            .map_or_else(|| format!("施設{id}"), |f| f.name.clone())
    };
    let policy = match st.app.disclosure_policy(&user.view.actor).await {
        Ok(p) => p,
        Err(e) => return error_page(&st.app, e),
    };
    let mut error = error;
    let (person, consents) = if patient.trim().is_empty() {
        (None, Vec::new())
    } else {
        match st.app.consents_for_patient(&user.view.actor, patient).await {
            Ok((p, list)) => (Some(p), list),
            Err(AppError::Invalid(m)) => {
                error = error.or(Some(m));
                (None, Vec::new())
            }
            Err(e) => return error_page(&st.app, e),
        }
    };
    let rows = consents
        .iter()
        .map(|c| ConsentRowView {
            id: c.consent.id,
            targets: match c.consent.target_mode.as_str() {
                "all" => "全参加施設".to_string(),
                "referred" => "紹介先施設".to_string(),
                _ => c
                    .targets
                    .iter()
                    .map(|t| name_of(*t))
                    .collect::<Vec<_>>()
                    .join("、"),
            },
            categories: CategorySet::from_keys(&c.consent.categories)
                .iter()
                .map(|c| c.label())
                .collect::<Vec<_>>()
                .join("・"),
            period: format!(
                "{} 〜 {}",
                c.consent
                    .data_from
                    .clone()
                    .unwrap_or_else(|| "（制限なし）".into()),
                c.consent
                    .data_to
                    .clone()
                    .unwrap_or_else(|| "（制限なし）".into())
            ),
            created: Timestamp(c.consent.created_at).jst_minutes(),
            withdrawn: c.consent.withdrawn_at.map(|w| Timestamp(w).jst_minutes()),
            scans: c
                .scans
                .iter()
                .map(|s| (s.id, s.file_name.clone()))
                .collect(),
        })
        .collect();
    let others = facilities
        .iter()
        .filter(|f| Some(f.id) != user.view.actor.facility_id)
        .map(|f| (f.id, f.name.clone()))
        .collect();
    render(&ConsentsPage {
        layout: user
            .layout(&st.app, "同意・開示設定")
            .with_flash(flash)
            .with_error(error),
        patient: patient.trim().to_string(),
        person,
        rows,
        facilities: others,
        categories: category_choices(CategorySet::ALL),
        policy_mode: match policy.mode {
            PolicyMode::PerPatient => {
                "患者ごとの同意（開示先・開示情報・開示期間を患者ごとに設定）"
            }
            PolicyMode::ReferredOnly => "紹介先の施設にのみ、患者ごとの同意に従って開示",
            PolicyMode::FacilityLevel => "施設単位の同意（カードを提示した患者すべて）",
        },
        policy_key: policy.mode.key(),
        policy_categories: category_choices(policy.categories),
        facility_level: policy.mode == PolicyMode::FacilityLevel,
        is_admin: user.view.actor.role == renkei_core::user::Role::FacilityAdmin,
    })
}

/// `GET /consents?patient=…`.
pub async fn consents(
    State(st): State<WebState>,
    user: CurrentUser,
    Query(q): Query<PatientQuery>,
) -> Response {
    consents_page(&st, &user, &q.patient, done_message(&q.done), None).await
}

/// `POST /consents`: a new consent.
pub async fn create(State(st): State<WebState>, user: CurrentUser, body: Bytes) -> Response {
    let f = fields(&body);
    let patient = field(&f, "patient");
    let input = ConsentInput {
        target_mode: field(&f, "target_mode"),
        targets: all(&f, "targets")
            .iter()
            .filter_map(|t| t.parse().ok())
            .collect(),
        categories: all(&f, "categories"),
        data_from: field(&f, "data_from"),
        data_to: field(&f, "data_to"),
    };
    match st
        .app
        .create_consent(&user.view.actor, &patient, &input)
        .await
    {
        Ok(_) => back_to(&patient, "created"),
        Err(AppError::Invalid(m) | AppError::Conflict(m)) => {
            consents_page(&st, &user, &patient, None, Some(m)).await
        }
        Err(e) => error_page(&st.app, e),
    }
}

/// `POST /consents/{id}/withdraw`.
pub async fn withdraw(
    State(st): State<WebState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    let patient = field(&fields(&body), "patient");
    match st.app.withdraw_consent(&user.view.actor, id).await {
        Ok(()) => back_to(&patient, "withdrawn"),
        Err(AppError::Invalid(m) | AppError::Conflict(m)) => {
            consents_page(&st, &user, &patient, None, Some(m)).await
        }
        Err(e) => error_page(&st.app, e),
    }
}

/// `POST /consents/{id}/scan` (multipart): the signed paper form.
pub async fn attach_scan(
    State(st): State<WebState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    mut form: Multipart,
) -> Response {
    let (mut patient, mut name, mut bytes) = (String::new(), String::new(), Vec::new());
    loop {
        match form.next_field().await {
            Ok(Some(field)) => match field.name() {
                Some("patient") => patient = field.text().await.unwrap_or_default(),
                Some("scan") => {
                    name = field.file_name().unwrap_or("同意書").to_string();
                    match field.bytes().await {
                        Ok(b) => bytes = b.to_vec(),
                        Err(_) => {
                            return consents_page(
                                &st,
                                &user,
                                &patient,
                                None,
                                Some("ファイルを受け取れませんでした（20 MB までです）".into()),
                            )
                            .await;
                        }
                    }
                }
                _ => {}
            },
            Ok(None) => break,
            Err(_) => {
                return consents_page(
                    &st,
                    &user,
                    &patient,
                    None,
                    Some("ファイルを受け取れませんでした（20 MB までです）".into()),
                )
                .await;
            }
        }
    }
    match st
        .app
        .attach_consent_scan(&user.view.actor, id, &name, &bytes)
        .await
    {
        Ok(_) => back_to(&patient, "scan"),
        Err(AppError::Invalid(m)) => consents_page(&st, &user, &patient, None, Some(m)).await,
        Err(e) => error_page(&st.app, e),
    }
}

/// `GET /consents/scans/{id}`.
pub async fn scan(State(st): State<WebState>, user: CurrentUser, Path(id): Path<i64>) -> Response {
    match st.app.consent_scan(&user.view.actor, id).await {
        Ok((name, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (
                    header::CONTENT_DISPOSITION,
                    format!("inline; filename*=UTF-8''{}", urlencode(&name)),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => error_page(&st.app, e),
    }
}

/// `GET /consents/{id}/pdf`: the consent form (同意書) for signature.
pub async fn form_pdf(
    State(st): State<WebState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> Response {
    let (person, record) = match st.app.consent_for_form(&user.view.actor, id).await {
        Ok(x) => x,
        Err(e) => return error_page(&st.app, e),
    };
    let Some(font) = st.card_font.clone() else {
        return error_page(
            &st.app,
            AppError::Invalid("同意書の印刷用の日本語フォントがありません。fonts-noto-cjk をインストールするか、設定の card_font でフォントを指定してください".into()),
        );
    };
    let facilities = st.app.participating_facilities().await.unwrap_or_default();
    let hospital = match user.view.actor.facility_id {
        Some(fid) => st
            .app
            .facility(&user.view.actor, fid)
            .await
            .map(|f| f.name)
            .unwrap_or_default(),
        None => String::new(),
    };
    let targets = match record.consent.target_mode.as_str() {
        "all" => vec!["地域医療連携ネットワークの全参加施設".to_string()],
        "referred" => vec!["当院が紹介した医療機関・介護施設".to_string()],
        _ => record
            .targets
            .iter()
            .map(|t| {
                facilities
                    .iter()
                    .find(|f| f.id == *t)
                    .map_or_else(|| format!("施設{t}"), |f| f.name.clone())
            })
            .collect(),
    };
    let content = crate::consent_pdf::ConsentForm {
        network: st.app.config().network_name.clone(),
        hospital,
        patient_kanji: person.kanji_name.clone(),
        patient_kana: person.kana_name.clone(),
        birth_date: person.birth_date.clone().unwrap_or_default(),
        common_id: person.common_id.clone(),
        targets,
        categories: CategorySet::from_keys(&record.consent.categories)
            .iter()
            .map(|c| c.label().to_string())
            .collect(),
        period: format!(
            "{} から {} まで",
            record
                .consent
                .data_from
                .clone()
                .unwrap_or_else(|| "（はじめ）".into()),
            record
                .consent
                .data_to
                .clone()
                .unwrap_or_else(|| "（現在）".into())
        ),
        created: Timestamp(record.consent.created_at).jst_date(),
    };
    match crate::consent_pdf::consent_pdf(font.as_ref().clone(), &content) {
        Ok(pdf) => (
            [
                (header::CONTENT_TYPE, "application/pdf".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("inline; filename=\"consent-{id}.pdf\""),
                ),
            ],
            pdf,
        )
            .into_response(),
        Err(e) => error_page(&st.app, AppError::Internal(e)),
    }
}

/// `POST /consents/referral`.
pub async fn referral(State(st): State<WebState>, user: CurrentUser, body: Bytes) -> Response {
    let f = fields(&body);
    let patient = field(&f, "patient");
    let to: i64 = field(&f, "to_facility").parse().unwrap_or(0);
    match st.app.record_referral(&user.view.actor, &patient, to).await {
        Ok(()) => back_to(&patient, "referral"),
        Err(AppError::Invalid(m)) => consents_page(&st, &user, &patient, None, Some(m)).await,
        Err(e) => error_page(&st.app, e),
    }
}

/// `POST /consents/opt-out`.
pub async fn opt_out(State(st): State<WebState>, user: CurrentUser, body: Bytes) -> Response {
    let f = fields(&body);
    let patient = field(&f, "patient");
    let out = field(&f, "opted_out") == "1";
    match st.app.set_opt_out(&user.view.actor, &patient, out).await {
        Ok(()) => back_to(&patient, if out { "opt_out" } else { "opt_in" }),
        Err(AppError::Invalid(m)) => consents_page(&st, &user, &patient, None, Some(m)).await,
        Err(e) => error_page(&st.app, e),
    }
}

/// `POST /consents/policy`: the facility's own rule (its administrator).
pub async fn policy(State(st): State<WebState>, user: CurrentUser, body: Bytes) -> Response {
    let f = fields(&body);
    let mode = PolicyMode::from_key(&field(&f, "mode")).unwrap_or(PolicyMode::PerPatient);
    let categories = CategorySet::from_keys(&all(&f, "categories").join(","));
    match st
        .app
        .set_disclosure_policy(&user.view.actor, mode, categories)
        .await
    {
        Ok(()) => back_to("", "policy"),
        Err(AppError::Invalid(m)) => consents_page(&st, &user, "", None, Some(m)).await,
        Err(e) => error_page(&st.app, e),
    }
}

#[derive(serde::Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    hidden: String,
    /// Only patients with records at this disclosing facility.
    #[serde(default)]
    facility: Option<i64>,
    #[serde(default)]
    done: String,
}

/// `GET /patients`: the facility's card-less patient list.
pub async fn patients(
    State(st): State<WebState>,
    user: CurrentUser,
    Query(q): Query<ListQuery>,
) -> Response {
    let include_hidden = q.hidden == "1";
    match st
        .app
        .patient_list(&user.view.actor, include_hidden, q.facility)
        .await
    {
        Ok(list) => {
            let facilities = st.app.participating_facilities().await.unwrap_or_default();
            let facility_name = q.facility.and_then(|f| {
                facilities
                    .iter()
                    .find(|x| x.id == f)
                    .map(|x| x.name.clone())
            });
            let rows = list
                .into_iter()
                .map(|p| ListedRow {
                    id: p.person.id,
                    common_id: p.person.common_id,
                    kanji_name: p.person.kanji_name,
                    kana_name: p.person.kana_name,
                    birth_date: p.person.birth_date.unwrap_or_default(),
                    last_access: Timestamp(p.last_access_at).jst_minutes(),
                    until: Timestamp(p.last_access_at + renkei_core::consent::CARDLESS_MICROS)
                        .jst_date(),
                    only: p.only_facility.map(|f| {
                        facilities
                            .iter()
                            .find(|x| x.id == f)
                            .map_or_else(|| format!("施設{f}"), |x| x.name.clone())
                    }),
                    hidden: p.hidden,
                })
                .collect();
            render(&PatientsPage {
                layout: user
                    .layout(&st.app, "患者一覧（カードレス開示）")
                    .with_flash(done_message(&q.done)),
                rows,
                include_hidden,
                facility_name,
                facility: q.facility,
            })
        }
        Err(e) => error_page(&st.app, e),
    }
}

/// `POST /patients/hide`.
pub async fn hide(State(st): State<WebState>, user: CurrentUser, body: Bytes) -> Response {
    let ids: Vec<i64> = all(&fields(&body), "person")
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect();
    if ids.is_empty() {
        return Redirect::to("/patients").into_response();
    }
    match st.app.hide_patients(&user.view.actor, &ids).await {
        Ok(()) => Redirect::to("/patients?done=hidden").into_response(),
        Err(e) => error_page(&st.app, e),
    }
}

/// `GET /emergency`.
pub async fn emergency_form(State(st): State<WebState>, user: CurrentUser) -> Response {
    render(&EmergencyPage {
        layout: user.layout(&st.app, "緊急時閲覧"),
        granted: None,
    })
}

/// `POST /emergency`: break-the-glass with a stated reason.
pub async fn emergency(State(st): State<WebState>, user: CurrentUser, body: Bytes) -> Response {
    let f = fields(&body);
    if field(&f, "confirm") != "1" {
        return render(&EmergencyPage {
            layout: user.layout(&st.app, "緊急時閲覧").with_error(Some(
                "緊急の必要があり同意を確認できないことを確認のうえ、チェックを入れてください"
                    .into(),
            )),
            granted: None,
        });
    }
    match st
        .app
        .request_emergency_access(
            &user.view.actor,
            &field(&f, "common_id"),
            &field(&f, "reason"),
        )
        .await
    {
        Ok((person, until)) => render(&EmergencyPage {
            layout: user.layout(&st.app, "緊急時閲覧").with_flash(Some(format!(
                "緊急時閲覧を開始しました（{} まで）。開示施設と事務局に通知されました",
                Timestamp(until).jst_minutes()
            ))),
            granted: Some((
                person.id,
                format!(
                    "{}（{}）{} {}・地域共通ID {}",
                    person.kanji_name,
                    person.kana_name,
                    person.birth_date.clone().unwrap_or_default(),
                    match person.sex.as_str() {
                        "M" => "男",
                        "F" => "女",
                        _ => "",
                    },
                    person.common_id
                ),
            )),
        }),
        Err(AppError::Invalid(m)) => render(&EmergencyPage {
            layout: user.layout(&st.app, "緊急時閲覧").with_error(Some(m)),
            granted: None,
        }),
        Err(e) => error_page(&st.app, e),
    }
}

#[derive(serde::Deserialize, Default)]
pub struct DoneQuery {
    #[serde(default)]
    done: String,
}

/// `GET /admin/rights`: the profession × category matrix.
pub async fn rights(
    State(st): State<WebState>,
    Operator(user): Operator,
    Query(q): Query<DoneQuery>,
) -> Response {
    let rights = match st.app.rights().await {
        Ok(r) => r,
        Err(e) => return error_page(&st.app, e),
    };
    render(&RightsPage {
        layout: user
            .layout(&st.app, "職種別の閲覧権限")
            .with_flash(done_message(&q.done)),
        categories: ConsentCategory::ALL
            .into_iter()
            .map(|c| (c.key(), c.label()))
            .collect(),
        rows: Profession::ALL
            .into_iter()
            .map(|p| {
                (
                    p.key(),
                    p.label(),
                    ConsentCategory::ALL
                        .into_iter()
                        .map(|c| (c.key(), rights.allows(p, c)))
                        .collect(),
                )
            })
            .collect(),
    })
}

/// `POST /admin/rights`: checkboxes named `<profession>:<category>`.
pub async fn set_rights(
    State(st): State<WebState>,
    Operator(user): Operator,
    body: Bytes,
) -> Response {
    let f = fields(&body);
    let rows: Vec<(Profession, CategorySet)> = Profession::ALL
        .into_iter()
        .map(|p| {
            let set = ConsentCategory::ALL
                .into_iter()
                .filter(|c| {
                    f.iter()
                        .any(|(k, _)| *k == format!("{}:{}", p.key(), c.key()))
                })
                .fold(CategorySet::EMPTY, CategorySet::with);
            (p, set)
        })
        .collect();
    match st.app.set_profession_rights(&user.view.actor, &rows).await {
        Ok(()) => Redirect::to("/admin/rights?done=rights").into_response(),
        Err(e) => error_page(&st.app, e),
    }
}

/// `GET /admin/persons/{id}/access`: who read this person's record, and when.
pub async fn access_history(
    State(st): State<WebState>,
    Operator(user): Operator,
    Path(id): Path<i64>,
) -> Response {
    let names = st
        .app
        .facility_names_by_id(&user.view.actor)
        .await
        .unwrap_or_default();
    match st.app.access_history(&user.view.actor, id).await {
        Ok(events) => render(&AccessPage {
            layout: user.layout(&st.app, "閲覧履歴"),
            person: id,
            rows: events
                .into_iter()
                .map(|e| AccessRow {
                    at: e.event.at.jst_minutes(),
                    login_id: e.event.login_id,
                    facility: e
                        .event
                        .facility_id
                        .and_then(|f| names.get(&f).cloned())
                        .unwrap_or_default(),
                    action: renkei_core::audit::action_label(&e.event.action).to_string(),
                    outcome: match e.event.outcome {
                        renkei_core::audit::AuditOutcome::Success => "許可",
                        renkei_core::audit::AuditOutcome::Denied => "拒否",
                        renkei_core::audit::AuditOutcome::Failure => "失敗",
                    },
                    detail: renkei_core::audit::detail_in_words(&e.event.detail),
                    emergency: e.event.emergency,
                })
                .collect(),
        }),
        Err(e) => error_page(&st.app, e),
    }
}
