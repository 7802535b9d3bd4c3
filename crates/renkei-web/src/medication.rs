//! お薬手帳データの登録: a pharmacy uploads its receipt computer's JAHIS export files (several at
//! once) or types the patient's QR code with a barcode reader, for the patient whose HM card it
//! reads.

use axum::extract::{Multipart, State};
use axum::response::Response;
use renkei_app::AppError;

use crate::WebState;
use crate::session::CurrentUser;
use crate::views::*;

/// `GET /medication`.
pub async fn form(State(st): State<WebState>, user: CurrentUser) -> Response {
    render(&MedicationPage {
        layout: user.layout(&st.app, "お薬手帳データの登録"),
        report: None,
        apps: st
            .app
            .linkable_medication_apps(&user.view.actor)
            .await
            .unwrap_or_default(),
        splits: splits(&st, &user).await,
        card: String::new(),
    })
}

/// The split QR codes this pharmacy is in the middle of reading (none for other facilities).
async fn splits(st: &WebState, user: &CurrentUser) -> SplitsView {
    match st.app.pending_medication_splits(&user.view.actor).await {
        Ok(r) => SplitsView::of(&r),
        Err(_) => SplitsView::default(),
    }
}

#[derive(serde::Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    card: String,
    #[serde(default)]
    app: i64,
}

/// `POST /medication/link`: links an app to the card-holder; new dispensings are pushed to it.
pub async fn link(
    State(st): State<WebState>,
    user: CurrentUser,
    axum::extract::Form(f): axum::extract::Form<LinkForm>,
) -> Response {
    let apps = st
        .app
        .linkable_medication_apps(&user.view.actor)
        .await
        .unwrap_or_default();
    let (flash, error) = match st
        .app
        .subscribe_medication_app(&user.view.actor, &f.card, f.app)
        .await
    {
        Ok(()) => (
            Some("お薬手帳アプリと連携しました。以後の調剤はアプリに届きます".to_string()),
            None,
        ),
        Err(AppError::Invalid(m)) => (None, Some(m)),
        Err(e) => return error_page(&st.app, e),
    };
    render(&MedicationPage {
        layout: user
            .layout(&st.app, "お薬手帳データの登録")
            .with_flash(flash)
            .with_error(error),
        report: None,
        apps,
        splits: SplitsView::default(),
        card: String::new(),
    })
}

/// `POST /medication` (multipart: `card`, `files`, `qr`).
pub async fn upload(
    State(st): State<WebState>,
    user: CurrentUser,
    mut form: Multipart,
) -> Response {
    let mut card = String::new();
    let mut options = renkei_app::medication::MedicationOptions::default();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    loop {
        match form.next_field().await {
            Ok(Some(field)) => match field.name() {
                Some("card") => card = field.text().await.unwrap_or_default(),
                Some("name_changed") => {
                    options.name_change_confirmed = field.text().await.unwrap_or_default() == "1";
                }
                Some("qr") => {
                    let text = field.text().await.unwrap_or_default();
                    if !text.trim().is_empty() {
                        files.push(("QRコード".to_string(), text.into_bytes()));
                    }
                }
                Some("files") => {
                    let name = field.file_name().unwrap_or("").to_string();
                    match field.bytes().await {
                        Ok(b) if !b.is_empty() => files.push((name, b.to_vec())),
                        Ok(_) => {}
                        Err(_) => {
                            return render(&MedicationPage {
                                layout: user.layout(&st.app, "お薬手帳データの登録").with_error(
                                    Some(
                                        "ファイルを受け取れませんでした（合計 50 MB までです）"
                                            .into(),
                                    ),
                                ),
                                report: None,
                                apps: Vec::new(),
                                splits: SplitsView::default(),
                                card: String::new(),
                            });
                        }
                    }
                }
                _ => {}
            },
            Ok(None) => break,
            Err(_) => {
                return render(&MedicationPage {
                    layout: user
                        .layout(&st.app, "お薬手帳データの登録")
                        .with_error(Some(
                            "送信を受け取れませんでした（合計 50 MB までです）".into(),
                        )),
                    report: None,
                    apps: Vec::new(),
                    splits: SplitsView::default(),
                    card: String::new(),
                });
            }
        }
    }
    if files.is_empty() {
        return render(&MedicationPage {
            layout: user
                .layout(&st.app, "お薬手帳データの登録")
                .with_error(Some(
                    "ファイルを選ぶか、QRコードを読み取ってください".into(),
                )),
            report: None,
            apps: Vec::new(),
            splits: SplitsView::default(),
            card: String::new(),
        });
    }
    match st
        .app
        .import_medication_with(&user.view.actor, &card, &files, options)
        .await
    {
        Ok(report) => {
            let waiting = !report.pending.is_empty();
            let stored = report.dispensings_stored + report.dispensings_unchanged > 0;
            let flash = match (waiting, stored) {
                (true, false) => "分割QRコードの一部を受け付けました（すべての部分がそろうまで登録されません）。続けて残りの部分を読み取ってください".to_string(),
                (true, true) => format!(
                    "調剤 {} 件を登録しました（登録済み {} 件）。読み取り途中の分割QRコードの残りの部分を読み取ってください",
                    report.dispensings_stored, report.dispensings_unchanged
                ),
                _ => format!(
                    "調剤 {} 件を登録しました（登録済み {} 件）",
                    report.dispensings_stored, report.dispensings_unchanged
                ),
            };
            render(&MedicationPage {
                layout: user
                    .layout(&st.app, "お薬手帳データの登録")
                    .with_flash(Some(flash)),
                splits: SplitsView::of(&report),
                card: if waiting { card } else { String::new() },
                report: Some(report),
                apps: Vec::new(),
            })
        }
        Err(AppError::Invalid(m)) => render(&MedicationPage {
            layout: user
                .layout(&st.app, "お薬手帳データの登録")
                .with_error(Some(m)),
            report: None,
            apps: Vec::new(),
            splits: SplitsView::default(),
            card: String::new(),
        }),
        Err(e) => error_page(&st.app, e),
    }
}

#[derive(serde::Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    card: String,
    #[serde(default)]
    proof_code: String,
    #[serde(default)]
    proof_name: String,
    #[serde(default)]
    proof_birth_date: String,
}

/// `POST /medication/code`: a one-time code for the patient's notebook app.
pub async fn issue_code(
    State(st): State<WebState>,
    user: CurrentUser,
    axum::extract::Form(f): axum::extract::Form<CodeForm>,
) -> Response {
    match st
        .app
        .issue_medication_code_with(
            &user.view.actor,
            &f.card,
            &renkei_app::identity::CardProof {
                code: f.proof_code.clone(),
                name: f.proof_name.clone(),
                birth_date: f.proof_birth_date.clone(),
            },
        )
        .await
    {
        Ok((code, expires)) => render(&MedicationCodePage {
            layout: user.layout(&st.app, "ワンタイムコード"),
            code: format!("{} {}", &code[..4], &code[4..]),
            expires: renkei_core::time::Timestamp(expires).jst_minutes(),
        }),
        Err(AppError::Invalid(m)) => render(&MedicationPage {
            layout: user
                .layout(&st.app, "お薬手帳データの登録")
                .with_error(Some(m)),
            report: None,
            apps: Vec::new(),
            splits: SplitsView::default(),
            card: String::new(),
        }),
        Err(e) => error_page(&st.app, e),
    }
}

#[derive(serde::Deserialize)]
pub struct HistoryRequest {
    #[serde(default)]
    code: String,
    /// `jahis` (default) or `fhir`.
    #[serde(default)]
    format: String,
}

/// `POST /api/medication/v1/history`: an external notebook app presents a one-time code and
/// gets the patient's dispensings once (JAHIS text, or FHIR MedicationDispense with
/// `format=fhir`). Expired, used and unknown codes fail plainly (410, 410, 404).
pub async fn history(
    State(st): State<WebState>,
    parts: axum::http::request::Parts,
    axum::extract::Form(req): axum::extract::Form<HistoryRequest>,
) -> Response {
    use axum::http::StatusCode;
    use axum::http::header::CONTENT_TYPE;
    use axum::response::IntoResponse;
    let client = crate::session::client_of(&parts);
    match st.app.medication_history_by_code(&req.code, &client).await {
        Ok(h) if req.format == "fhir" => (
            [(CONTENT_TYPE, "application/fhir+json; charset=utf-8")],
            h.fhir.to_string(),
        )
            .into_response(),
        Ok(h) => ([(CONTENT_TYPE, "text/plain; charset=utf-8")], h.jahis).into_response(),
        Err(e) => {
            let (status, code) = match e {
                renkei_app::medication::CodeError::Unknown => {
                    (StatusCode::NOT_FOUND, "unknown_code")
                }
                renkei_app::medication::CodeError::Expired => (StatusCode::GONE, "expired_code"),
                renkei_app::medication::CodeError::Used => (StatusCode::GONE, "used_code"),
                renkei_app::medication::CodeError::Other(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
                }
            };
            (
                status,
                axum::Json(serde_json::json!({ "error": code, "message": e.to_string() })),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use askama::Template;

    #[test]
    fn split_codes_waiting_are_shown_with_what_is_missing_and_until_when() {
        let report = renkei_app::medication::MedicationReport {
            pending: vec![renkei_app::medication::PendingSplit {
                data_id: "00000000000042".into(),
                total: 3,
                received: vec![1],
                expires_at: 1_795_221_000_000_000,
            }],
            expired: vec!["分割QRコード（データID 7）は破棄しました".into()],
            ..Default::default()
        };
        let page = MedicationPage {
            layout: Layout {
                title: "お薬手帳データの登録".into(),
                network: "テスト".into(),
                user: None,
                csrf: "t".into(),
                flash: None,
                warning: None,
                error: None,
                signing_in: false,
            },
            splits: SplitsView::of(&report),
            card: "34000000018:SECRET".into(),
            report: None,
            apps: Vec::new(),
        };
        let html = page.render().unwrap_or_default();
        assert!(html.contains("role=\"status\""), "{html}");
        assert!(
            html.contains(
                "<td>00000000000042</td><td>1 / 3</td><td>2・3</td><td>2026-11-21 09:30 まで</td>"
            ),
            "{html}"
        );
        assert!(html.contains("分割QRコード（データID 7）は破棄しました"));
        assert!(
            html.contains("name=\"name_changed\""),
            "the name-change confirmation is offered"
        );
    }
}
