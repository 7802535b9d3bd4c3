//! HMカード: reading a card at any facility (名寄せ; a USB barcode reader types the QR payload
//! and Enter), and issuing cards where the directory allows.

use axum::extract::{Form, State};
use axum::response::{IntoResponse, Response};
use renkei_app::AppError;
use renkei_app::identity::{CardKind, CardScan, PersonDetails};

use crate::WebState;
use crate::session::CurrentUser;
use crate::views::*;

async fn page(
    st: &WebState,
    user: &CurrentUser,
    linked: Option<LinkedPerson>,
    error: Option<String>,
    read_patient: String,
) -> Response {
    page_with(st, user, linked, error, read_patient, None, None).await
}

async fn page_with(
    st: &WebState,
    user: &CurrentUser,
    linked: Option<LinkedPerson>,
    error: Option<String>,
    read_patient: String,
    holders: Option<Vec<(String, String, String)>>,
    pending: Option<PendingScan>,
) -> Response {
    let facility = match user.view.actor.facility_id {
        Some(id) => st.app.facility(&user.view.actor, id).await.ok(),
        None => None,
    };
    let (hm, disclosure) = facility
        .map(|f| (f.issues_hm_card, f.issues_disclosure_card))
        .unwrap_or((false, false));
    render(&CardsPage {
        layout: user.layout(&st.app, "HMカード").with_error(error),
        can_issue: hm || disclosure,
        issues_hm: hm,
        issues_disclosure: disclosure,
        read_patient,
        linked,
        holders,
        pending,
    })
}

pub async fn cards(State(st): State<WebState>, user: CurrentUser) -> Response {
    page(&st, &user, None, None, String::new()).await
}

#[derive(serde::Deserialize)]
pub struct ReadForm {
    #[serde(default)]
    patient_local_id: String,
    #[serde(default)]
    scanned: String,
    /// For an ID typed by hand: the verification code printed on the card, or the patient's
    /// name and birth date.
    #[serde(default)]
    code: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    birth_date: String,
    /// `patients`: read from the patient list, go back there.
    #[serde(default)]
    back: String,
    /// The patient list's facility filter, kept across the read.
    #[serde(default)]
    facility: String,
}

pub async fn read(
    State(st): State<WebState>,
    user: CurrentUser,
    Form(f): Form<ReadForm>,
) -> Response {
    let proof = renkei_app::identity::CardProof {
        code: f.code.clone(),
        name: f.name.clone(),
        birth_date: f.birth_date.clone(),
    };
    let actor = &user.view.actor;
    match st
        .app
        .read_card_scan(actor, &f.scanned, &proof, &f.patient_local_id)
        .await
    {
        Ok(CardScan::Linked(person, _)) if f.back == "patients" => {
            // The facility filter is a directory number; anything else is dropped.
            let keep = f
                .facility
                .trim()
                .parse::<i64>()
                .map(|id| format!("&facility={id}"))
                .unwrap_or_default();
            let _ = person;
            axum::response::Redirect::to(&format!("/patients?done=read{keep}")).into_response()
        }
        // Read: the patient is opened (for a profession that may read records).
        Ok(CardScan::Linked(person, _)) if st.app.may_open_records(actor).await => {
            axum::response::Redirect::to(&format!("/viewer/{}", person.id)).into_response()
        }
        Ok(CardScan::Linked(person, patient)) => {
            let linked = LinkedPerson {
                name: display_name(&person),
                common_id: person.common_id.clone(),
                patient,
            };
            page(&st, &user, Some(linked), None, String::new()).await
        }
        Ok(CardScan::NeedsPatientId(person)) => {
            let pending = PendingScan {
                scanned: f.scanned.clone(),
                code: f.code.clone(),
                name: f.name.clone(),
                birth_date: f.birth_date.clone(),
                label: format!(
                    "{}（地域共通ID {}）",
                    display_name(&person),
                    person.common_id
                ),
            };
            page_with(&st, &user, None, None, String::new(), None, Some(pending)).await
        }
        Err(AppError::Invalid(m) | AppError::Conflict(m)) => {
            page(&st, &user, None, Some(m), f.patient_local_id).await
        }
        Err(e) => error_page(&st.app, e),
    }
}

fn display_name(person: &renkei_app::identity::PersonRow) -> String {
    if person.kanji_name.is_empty() {
        person.kana_name.clone()
    } else {
        person.kanji_name.clone()
    }
}

#[derive(serde::Deserialize)]
pub struct IssueForm {
    #[serde(default)]
    patient_local_id: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    kanji_name: String,
    #[serde(default)]
    kana_name: String,
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    sex: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    postal_code: String,
    #[serde(default)]
    address: String,
    /// Set once the clerk has seen the suggested persons and says this is someone new.
    #[serde(default)]
    new_person: String,
    /// Set when the clerk picks a suggested person.
    #[serde(default)]
    person_id: String,
}

impl IssueForm {
    fn details(&self) -> PersonDetails {
        PersonDetails {
            kanji_name: self.kanji_name.clone(),
            kana_name: self.kana_name.clone(),
            birth_date: self.birth_date.clone(),
            sex: self.sex.clone(),
            phone: self.phone.clone(),
            postal_code: self.postal_code.clone(),
            address: self.address.clone(),
        }
    }
}

pub async fn issue(
    State(st): State<WebState>,
    user: CurrentUser,
    Form(f): Form<IssueForm>,
) -> Response {
    let kind = if f.kind == "disclosure" {
        CardKind::Disclosure
    } else {
        CardKind::Hm
    };
    let entered = !(f.kanji_name.trim().is_empty() && f.kana_name.trim().is_empty());
    let details = f.details();
    if let Ok(person_id) = f.person_id.parse::<i64>() {
        // The clerk picked a suggested person: link, then issue to that person (unless they
        // already hold this facility's card, in which case the link is what was needed).
        match st
            .app
            .confirm_suggested_person(&user.view.actor, &f.patient_local_id, person_id, &details)
            .await
        {
            Ok(person) => {
                let holds_card = st
                    .app
                    .person_holds_card(&user.view.actor, person.id, kind)
                    .await
                    .unwrap_or(false);
                if holds_card {
                    let linked = LinkedPerson {
                        name: if person.kanji_name.is_empty() {
                            person.kana_name.clone()
                        } else {
                            person.kanji_name.clone()
                        },
                        common_id: person.common_id.clone(),
                        patient: f.patient_local_id.trim().to_string(),
                    };
                    return page(&st, &user, Some(linked), None, String::new()).await;
                }
            }
            Err(AppError::Invalid(m) | AppError::Conflict(m)) => {
                return page(&st, &user, None, Some(m), String::new()).await;
            }
            Err(e) => return error_page(&st.app, e),
        }
    } else if entered && f.new_person.is_empty() {
        // Before making a new person, show who may already be this patient.
        match st.app.suggest_persons(&user.view.actor, &details).await {
            Ok(found) if !found.is_empty() => {
                let candidates = found
                    .into_iter()
                    .map(|c| SuggestedPerson {
                        id: c.person.id,
                        kanji_name: c.person.kanji_name,
                        kana_name: c.person.kana_name,
                        birth_date: c.person.birth_date.unwrap_or_default(),
                        sex: match c.person.sex.as_str() {
                            "M" => "男",
                            "F" => "女",
                            _ => "—",
                        },
                        score: format!("{:.0}%", c.score * 100.0),
                        reasons: labels(&c.reasons),
                        disagreements: labels(&c.disagreements),
                    })
                    .collect();
                return render(&CardCandidatesPage {
                    layout: user.layout(&st.app, "既に登録されている方の確認"),
                    patient_local_id: f.patient_local_id.clone(),
                    kind: f.kind.clone(),
                    details: details.clone(),
                    candidates,
                });
            }
            Ok(_) => {}
            Err(AppError::Invalid(m)) => {
                return page(&st, &user, None, Some(m), String::new()).await;
            }
            Err(e) => return error_page(&st.app, e),
        }
    }
    match st
        .app
        .issue_card(
            &user.view.actor,
            &f.patient_local_id,
            kind,
            (entered && f.person_id.is_empty()).then_some(&details),
        )
        .await
    {
        // Redirect after POST: reloading the page shows the card again, never issues another.
        Ok(issued) => {
            axum::response::Redirect::to(&format!("/cards/{}?done=issued", issued.card.id))
                .into_response()
        }
        Err(AppError::Invalid(m) | AppError::Conflict(m)) => {
            page(&st, &user, None, Some(m), String::new()).await
        }
        Err(e) => error_page(&st.app, e),
    }
}

#[derive(serde::Deserialize, Default)]
pub struct IssuedQuery {
    #[serde(default)]
    done: String,
}

/// `GET /cards/{id}`: a card the facility issued, with its QR code and what to print.
pub async fn issued(
    State(st): State<WebState>,
    user: CurrentUser,
    axum::extract::Path(id): axum::extract::Path<i64>,
    axum::extract::Query(q): axum::extract::Query<IssuedQuery>,
) -> Response {
    let card = match st.app.card_for_print(&user.view.actor, id).await {
        Ok(p) => p,
        Err(e) => return error_page(&st.app, e),
    };
    render(&CardIssuedPage {
        layout: user
            .layout(&st.app, "発行したカード")
            .with_flash((q.done == "issued").then(|| "カードを発行しました".to_string())),
        qr_svg: crate::pages::qr_svg(&card.payload),
        printed: card.common_id.printed(),
        payload: card.payload,
        code: card.code,
        card_id: card.card.id,
        name: card.person.kanji_name,
        kana: card.person.kana_name,
        kind: if card.card.kind == "disclosure" {
            "診療情報開示カード"
        } else {
            "HMカード"
        },
    })
}

/// The card and its seal label as a PDF, for the issuing facility's printer.
pub async fn pdf(
    State(st): State<WebState>,
    user: CurrentUser,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> Response {
    let printable = match st.app.card_for_print(&user.view.actor, id).await {
        Ok(p) => p,
        Err(e) => return error_page(&st.app, e),
    };
    let Some(font) = st.card_font.clone() else {
        return error_page(
            &st.app,
            AppError::Invalid("カード印刷用の日本語フォントがありません。fonts-noto-cjk をインストールするか、設定の card_font でフォントを指定してください".into()),
        );
    };
    let content = crate::card_pdf::CardContent {
        title: if printable.card.kind == "disclosure" {
            "診療情報開示カード".into()
        } else {
            "HMカード".into()
        },
        network: st.app.config().network_name.clone(),
        printed_id: printable.common_id.printed(),
        kanji_name: printable.person.kanji_name.clone(),
        kana_name: printable.person.kana_name.clone(),
        issuer: printable.issuer_name.clone(),
        issued_on: renkei_core::time::Timestamp(printable.card.issued_at).jst_date(),
        payload: printable.payload.clone(),
        code: printable.code.clone(),
    };
    match tokio::task::spawn_blocking(move || {
        crate::card_pdf::card_pdf(font.as_ref().clone(), &content)
    })
    .await
    {
        Ok(Ok(bytes)) => (
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    "application/pdf".to_string(),
                ),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    format!("inline; filename=\"card-{id}.pdf\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Ok(Err(e)) => error_page(&st.app, AppError::Internal(e)),
        Err(e) => error_page(&st.app, AppError::Internal(e.to_string())),
    }
}

#[derive(serde::Deserialize)]
pub struct CheckForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    birth_date: String,
}

/// HMカード保持確認: does this person already hold a card?
pub async fn check(
    State(st): State<WebState>,
    user: CurrentUser,
    Form(f): Form<CheckForm>,
) -> Response {
    match st
        .app
        .card_holding_check(&user.view.actor, &f.name, &f.birth_date)
        .await
    {
        Ok(found) => {
            let rows = found
                .into_iter()
                .map(|p| (p.kanji_name, p.kana_name, p.common_id))
                .collect();
            page_with(&st, &user, None, None, String::new(), Some(rows), None).await
        }
        Err(AppError::Invalid(m)) => page(&st, &user, None, Some(m), String::new()).await,
        Err(e) => error_page(&st.app, e),
    }
}

/// A matching reason in Japanese, for the clerk who confirms.
/// The fields named by a match score, in Japanese, as one line.
fn labels(fields: &[&str]) -> String {
    fields
        .iter()
        .map(|r| field_label(r))
        .collect::<Vec<_>>()
        .join("・")
}

fn field_label(field: &str) -> &'static str {
    match field {
        "kanji_name" => "氏名",
        "kana_name" => "カナ氏名",
        "name" => "氏名・カナ氏名",
        "name_close" => "氏名（一部表記違い）",
        "given_name" => "名",
        "family_name" => "姓",
        "birth_date" => "生年月日",
        "sex" => "性別",
        "phone" => "電話番号",
        "address" => "住所",
        "postal_code" => "郵便番号",
        _ => "その他",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use askama::Template;

    #[test]
    fn the_suggestion_screen_names_the_fields_that_disagree() {
        let page = CardCandidatesPage {
            layout: crate::views::Layout {
                title: "既に登録されている方の確認".into(),
                network: "テスト".into(),
                user: None,
                csrf: "t".into(),
                flash: None,
                warning: None,
                error: None,
                signing_in: false,
            },
            patient_local_id: "B-1".into(),
            kind: "hm".into(),
            details: PersonDetails::default(),
            candidates: vec![SuggestedPerson {
                id: 7,
                kanji_name: "中島 恵".into(),
                kana_name: "ナカシマ ケイ".into(),
                birth_date: "1975-02-02".into(),
                sex: "男",
                score: "62%".into(),
                reasons: labels(&["kanji_name", "birth_date"]),
                disagreements: labels(&["kana_name", "sex", "phone"]),
            }],
        };
        let html = page.render().unwrap_or_default();
        assert!(html.contains("<th>一致しない項目</th>"), "{html}");
        assert!(html.contains("<td>氏名・生年月日</td>"), "{html}");
        assert!(
            html.contains("<td class=\"disagree\">カナ氏名・性別・電話番号</td>"),
            "{html}"
        );
    }
}
