//! Login, the portal top page, account pages and the public facility search.

use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use qrcode::QrCode;
use qrcode::render::svg;
use renkei_app::AppError;
use renkei_app::auth::PasswordOutcome;

use crate::session::{self, CurrentUser, PRE_CSRF_COOKIE, SESSION_COOKIE};
use crate::views::*;
use crate::{Peer, WebState};

pub async fn healthz(State(st): State<WebState>) -> Response {
    match st.app.ready().await {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"status":"ok"}"#,
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"status":"unavailable"}"#,
        )
            .into_response(),
    }
}

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/renkei.css"),
    )
        .into_response()
}

pub async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/renkei.js"),
    )
        .into_response()
}

pub async fn not_found(State(st): State<WebState>) -> Response {
    error_page(&st.app, AppError::NotFound)
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    // Without randomness the login form cannot be protected; an empty token never matches.
    if getrandom::fill(&mut b).is_err() {
        return String::new();
    }
    hex::encode(b)
}

/// The login form. Issues the pre-login CSRF cookie if there is none.
pub async fn login_form(State(st): State<WebState>, jar: CookieJar) -> Response {
    if let Some(c) = jar.get(SESSION_COOKIE)
        && st.app.session(c.value(), "").await.is_ok()
    {
        return Redirect::to("/").into_response();
    }
    login_page(&st, jar, String::new(), None)
}

fn login_page(st: &WebState, jar: CookieJar, login_id: String, error: Option<String>) -> Response {
    let (jar, csrf) = match jar.get(PRE_CSRF_COOKIE) {
        Some(c) => (jar.clone(), c.value().to_string()),
        None => {
            let t = random_token();
            (
                jar.add(session::pre_csrf_cookie(t.clone(), st.secure_cookies)),
                t,
            )
        }
    };
    let page = LoginPage {
        layout: Layout::anonymous(&st.app, "ログイン", csrf).with_error(error),
        login_id,
    };
    (jar, render(&page)).into_response()
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    login_id: String,
    #[serde(default)]
    password: String,
}

/// The answer to every refused password step.
pub const LOGIN_REFUSED: &str = "利用者IDまたはパスワードが正しくないか、ログインの失敗が続いたため一時的にログインできません。しばらく待っても入れないときは、施設管理者・事務局に連絡してください";

pub async fn login(
    State(st): State<WebState>,
    Peer { 0: peer }: Peer,
    jar: CookieJar,
    Form(f): Form<LoginForm>,
) -> Response {
    let client = peer.ip().to_string();
    match st
        .app
        .login_password(&f.login_id, &f.password, &client)
        .await
    {
        Ok(PasswordOutcome::SecondFactor(token)) => (
            jar.add(session::session_cookie(token, st.secure_cookies)),
            Redirect::to("/login/totp"),
        )
            .into_response(),
        Ok(PasswordOutcome::Enrol(token)) => (
            jar.add(session::session_cookie(token, st.secure_cookies)),
            Redirect::to("/login/enrol"),
        )
            .into_response(),
        // One message whatever the reason: it tells nobody whether an account exists or is
        // locked.
        Ok(PasswordOutcome::Refused | PasswordOutcome::Locked) => {
            login_page(&st, jar, f.login_id, Some(LOGIN_REFUSED.into()))
        }
        Err(e) => error_page(&st.app, e),
    }
}

async fn pending(st: &WebState, jar: &CookieJar) -> Option<(String, String)> {
    let token = jar.get(SESSION_COOKIE)?.value().to_string();
    let csrf = st.app.csrf_token(&token).await.ok()?;
    Some((token, csrf))
}

pub async fn totp_form(State(st): State<WebState>, jar: CookieJar) -> Response {
    let Some((_, csrf)) = pending(&st, &jar).await else {
        return Redirect::to("/login").into_response();
    };
    render(&TotpPage {
        layout: Layout::signing_in(&st.app, "二要素認証", csrf),
    })
}

#[derive(serde::Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

pub async fn totp(
    State(st): State<WebState>,
    Peer { 0: peer }: Peer,
    jar: CookieJar,
    Form(f): Form<CodeForm>,
) -> Response {
    let Some((token, csrf)) = pending(&st, &jar).await else {
        return Redirect::to("/login").into_response();
    };
    match st
        .app
        .login_second_factor(&token, &f.code, &peer.ip().to_string())
        .await
    {
        Ok(Some(new_token)) => {
            // Back to an app's authorization the user was asked to log in for.
            let next = jar
                .get(crate::fhir::NEXT_COOKIE)
                .map(|c| c.value().to_string())
                .filter(|n| n.starts_with("/oauth/authorize?"))
                .unwrap_or_else(|| "/".to_string());
            (
                jar.add(session::session_cookie(new_token, st.secure_cookies))
                    .remove(session::removal(crate::fhir::NEXT_COOKIE)),
                Redirect::to(&next),
            )
                .into_response()
        }
        Ok(None) => render(&TotpPage {
            layout: Layout::signing_in(&st.app, "二要素認証", csrf)
                .with_error(Some("確認コードが正しくありません".into())),
        }),
        Err(AppError::Unauthenticated) => (
            jar.remove(session::removal(SESSION_COOKIE)),
            Redirect::to("/login"),
        )
            .into_response(),
        Err(e) => error_page(&st.app, e),
    }
}

pub(crate) fn qr_svg(text: &str) -> String {
    match QrCode::new(text.as_bytes()) {
        Ok(code) => code
            .render::<svg::Color>()
            .min_dimensions(220, 220)
            .quiet_zone(true)
            .build(),
        Err(_) => String::new(),
    }
}

pub async fn enrol_form(State(st): State<WebState>, jar: CookieJar) -> Response {
    enrol_page(&st, &jar, None).await
}

async fn enrol_page(st: &WebState, jar: &CookieJar, error: Option<String>) -> Response {
    let Some((token, csrf)) = pending(st, jar).await else {
        return Redirect::to("/login").into_response();
    };
    match st.app.begin_enrolment(&token).await {
        Ok(e) => render(&EnrolPage {
            layout: Layout::signing_in(&st.app, "二要素認証の登録", csrf).with_error(error),
            qr_svg: qr_svg(&e.otpauth_url),
            secret: e.secret_base32,
            account: e.account,
        }),
        Err(AppError::Unauthenticated) => Redirect::to("/login").into_response(),
        Err(e) => error_page(&st.app, e),
    }
}

pub async fn enrol(
    State(st): State<WebState>,
    Peer { 0: peer }: Peer,
    jar: CookieJar,
    Form(f): Form<CodeForm>,
) -> Response {
    let Some((token, _)) = pending(&st, &jar).await else {
        return Redirect::to("/login").into_response();
    };
    match st
        .app
        .confirm_enrolment(&token, &f.code, &peer.ip().to_string())
        .await
    {
        Ok(Some((new_token, codes))) => {
            let csrf = st.app.csrf_token(&new_token).await.unwrap_or_default();
            let page = RecoveryCodesPage {
                layout: Layout::signing_in(&st.app, "回復コード", csrf),
                codes,
            };
            (
                jar.add(session::session_cookie(new_token, st.secure_cookies)),
                render(&page),
            )
                .into_response()
        }
        Ok(None) => {
            enrol_page(
                &st,
                &jar,
                Some(
                    "確認コードが正しくありません。アプリの表示を確認してもう一度入力してください"
                        .into(),
                ),
            )
            .await
        }
        Err(AppError::Unauthenticated) => Redirect::to("/login").into_response(),
        Err(e) => error_page(&st.app, e),
    }
}

pub async fn cancel_login(State(st): State<WebState>, jar: CookieJar) -> Response {
    if let Some(c) = jar.get(SESSION_COOKIE) {
        let _ = st.app.abandon_login(c.value()).await;
    }
    (
        jar.remove(session::removal(SESSION_COOKIE)),
        Redirect::to("/login"),
    )
        .into_response()
}

pub async fn logout(State(st): State<WebState>, jar: CookieJar, user: CurrentUser) -> Response {
    if let Err(e) = st.app.logout(&user.token, &user.view.actor).await {
        return error_page(&st.app, e);
    }
    (
        jar.remove(session::removal(SESSION_COOKIE)),
        Redirect::to("/login"),
    )
        .into_response()
}

pub async fn top(State(st): State<WebState>, user: CurrentUser) -> Response {
    let notices = match st.app.current_notices().await {
        Ok(n) => n.into_iter().map(NoticeItem::from).collect(),
        Err(e) => return error_page(&st.app, e),
    };
    let disclosing = match st.app.disclosing_facilities().await {
        Ok(d) => d,
        Err(e) => return error_page(&st.app, e),
    };
    // Notifications to this facility (emergency access to its patients); a facility that
    // discloses records also gets the consent screen.
    let alerts = match st.app.notifications(&user.view.actor).await {
        Ok(list) => list
            .into_iter()
            .map(|n| {
                (
                    renkei_core::time::Timestamp(n.created_at).jst_minutes(),
                    n.message,
                )
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let discloses = user
        .view
        .actor
        .facility_id
        .is_some_and(|id| disclosing.iter().any(|f| f.id == id));
    render(&TopPage {
        layout: user.layout(&st.app, "ポータル"),
        disclosing,
        notices,
        is_operator: user.view.actor.is_operator(),
        discloses,
        alerts,
    })
}

pub async fn password_form(State(st): State<WebState>, user: CurrentUser) -> Response {
    render(&PasswordPage {
        layout: user.layout(&st.app, "パスワード変更"),
        forced: user.view.must_change_password,
    })
}

#[derive(serde::Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
}

pub async fn change_password(
    State(st): State<WebState>,
    user: CurrentUser,
    Form(f): Form<PasswordForm>,
) -> Response {
    match st
        .app
        .change_password(
            &user.view.actor,
            &user.token,
            &f.current,
            &f.new,
            &f.confirm,
        )
        .await
    {
        Ok(()) => Redirect::to("/").into_response(),
        Err(AppError::Invalid(m)) => render(&PasswordPage {
            layout: user.layout(&st.app, "パスワード変更").with_error(Some(m)),
            forced: user.view.must_change_password,
        }),
        Err(e) => error_page(&st.app, e),
    }
}

pub async fn recovery_form(State(st): State<WebState>, user: CurrentUser) -> Response {
    match st.app.unused_recovery_codes(&user.view.actor).await {
        Ok(remaining) => render(&RecoveryPage {
            layout: user.layout(&st.app, "回復コード"),
            remaining,
        }),
        Err(e) => error_page(&st.app, e),
    }
}

pub async fn regenerate_recovery(State(st): State<WebState>, user: CurrentUser) -> Response {
    match st.app.regenerate_recovery_codes(&user.view.actor).await {
        Ok(codes) => render(&RecoveryCodesPage {
            layout: user.layout(&st.app, "回復コード"),
            codes,
        }),
        Err(e) => error_page(&st.app, e),
    }
}

#[derive(serde::Deserialize, Default)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default, rename = "type")]
    facility_type: String,
    #[serde(default)]
    discloses: Option<String>,
    #[serde(default)]
    page: i64,
}

pub async fn public_search(
    State(st): State<WebState>,
    jar: CookieJar,
    Query(q): Query<SearchQuery>,
) -> Response {
    let discloses_only = q.discloses.is_some();
    match st
        .app
        .public_facility_search(&q.q, &q.facility_type, discloses_only, q.page)
        .await
    {
        Ok((facilities, total)) => {
            // A logged-in user keeps their header (and its logout form); anyone else gets the
            // public page, which has no form to protect.
            let session = match jar.get(SESSION_COOKIE) {
                Some(c) => st.app.session(c.value(), "").await.ok(),
                None => None,
            };
            let layout = match &session {
                Some(v) => Layout::for_user(&st.app, "参加施設検索", v),
                None => Layout::anonymous(&st.app, "参加施設検索", String::new()),
            };
            render(&PublicSearchPage {
                layout,
                q: q.q,
                types: facility_types()
                    .into_iter()
                    .filter(|t| t.0 != "operator")
                    .collect(),
                selected_type: q.facility_type,
                discloses_only,
                total,
                facilities,
            })
        }
        Err(e) => error_page(&st.app, e),
    }
}

#[cfg(test)]
mod inline_handler_tests {
    /// The app's CSP forbids inline script: a handler attribute in a template would silently do
    /// nothing (the ミニマムデータ 印刷 button did). None may be written.
    #[test]
    fn no_template_has_an_inline_event_handler() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.map(|e| e.path()).unwrap_or_default();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for (n, line) in text.lines().enumerate() {
                let lower = line.to_ascii_lowercase();
                let handler = lower.match_indices(" on").any(|(i, _)| {
                    let rest = &lower[i + 3..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase())
                        .collect();
                    !name.is_empty() && rest[name.len()..].trim_start().starts_with('=')
                });
                if handler || lower.contains("javascript:") || lower.contains("<script>") {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
        assert!(
            found.is_empty(),
            "inline script in templates:\n{}",
            found.join("\n")
        );
    }
}

#[cfg(test)]
mod action_label_tests {
    /// Every action the code records has words for the operator's screens (a new action without
    /// a label would show as its key).
    #[test]
    fn every_recorded_action_has_a_label() {
        const PREFIXES: [&str; 14] = [
            "auth.",
            "clinical.",
            "consent.",
            "identity.",
            "directory.",
            "notice.",
            "audit.",
            "api.",
            "fhir.",
            "medication.",
            "case.",
            "box.",
            "wopi.",
            "intake.",
        ];
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut missing = Vec::new();
        for krate in ["renkei-app", "renkei-web", "renkei"] {
            let dir = root.join(krate).join("src");
            for entry in
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            {
                let path = entry.map(|e| e.path()).unwrap_or_default();
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for (i, part) in text.split('"').enumerate() {
                    let literal = i % 2 == 1;
                    let action = literal
                        && PREFIXES.iter().any(|p| part.starts_with(p))
                        && part
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')
                        && !part.ends_with(".html")
                        && !part.ends_with('.')
                        && part != "medication.dispensing";
                    if action && renkei_core::audit::action_label(part) == part {
                        missing.push(format!("{}: {part}", path.display()));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "actions without words:\n{}",
            missing.join("\n")
        );
    }
}
