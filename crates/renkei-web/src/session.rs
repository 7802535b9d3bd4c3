//! Cookies, the logged-in user extractors, CSRF protection and security headers.

use axum::body::{Body, to_bytes};
use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use renkei_app::auth::SessionView;
use renkei_app::{App, AppError};

use crate::WebState;
use crate::views::{Layout, error_page};

pub const SESSION_COOKIE: &str = "renkei_session";
/// Double-submit token for forms shown before a session exists (the login form).
pub const PRE_CSRF_COOKIE: &str = "renkei_csrf";
/// Forms are small; uploads (later issues) get their own routes and limits.
pub const FORM_LIMIT: usize = 256 * 1024;

pub fn session_cookie(token: String, secure: bool) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, token))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(secure)
        .build()
}

pub fn removal(name: &'static str) -> Cookie<'static> {
    Cookie::build((name, "")).path("/").build()
}

pub fn pre_csrf_cookie(token: String, secure: bool) -> Cookie<'static> {
    Cookie::build((PRE_CSRF_COOKIE, token))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(secure)
        .build()
}

pub fn client_of(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default()
}

/// A fully logged-in user. Rejects with a redirect to the login page; sends a user who must
/// change a temporary password to `/password`. Each request of an emergency account is audited.
pub struct CurrentUser {
    pub view: SessionView,
    pub token: String,
}

pub enum Rejection {
    Login,
    Page(Response),
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Rejection::Login => Redirect::to("/login").into_response(),
            Rejection::Page(r) => r,
        }
    }
}

async fn current(
    parts: &mut Parts,
    state: &WebState,
    allow_password_change: bool,
) -> Result<CurrentUser, Rejection> {
    let jar = CookieJar::from_headers(&parts.headers);
    let Some(token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_string()) else {
        return Err(Rejection::Login);
    };
    let client = client_of(parts);
    let view = match state.app.session(&token, &client).await {
        Ok(v) => v,
        Err(AppError::Unauthenticated | AppError::NotFound) => return Err(Rejection::Login),
        Err(e) => return Err(Rejection::Page(error_page(&state.app, e))),
    };
    if let Err(e) = state
        .app
        .record_emergency_use(&view.actor, parts.method.as_str(), parts.uri.path())
        .await
    {
        return Err(Rejection::Page(error_page(&state.app, e)));
    }
    if view.must_change_password && !allow_password_change {
        return Err(Rejection::Page(Redirect::to("/password").into_response()));
    }
    Ok(CurrentUser { view, token })
}

impl<S> FromRequestParts<S> for CurrentUser
where
    WebState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = WebState::from_ref(state);
        let allow = parts.uri.path() == "/password" || parts.uri.path() == "/logout";
        current(parts, &state, allow).await
    }
}

/// A logged-in operator (事務局). Anyone else gets a 403 page.
pub struct Operator(pub CurrentUser);

impl<S> FromRequestParts<S> for Operator
where
    WebState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = WebState::from_ref(state);
        let user = current(parts, &state, false).await?;
        if !user.view.actor.is_operator() {
            return Err(Rejection::Page(error_page(&state.app, AppError::Forbidden)));
        }
        Ok(Operator(user))
    }
}

impl CurrentUser {
    pub fn layout(&self, app: &App, title: &str) -> Layout {
        Layout::for_user(app, title, &self.view)
    }
}

/// The token a form must carry: the session's when a session exists, else the pre-login cookie.
async fn expected_csrf(app: &App, jar: &CookieJar) -> Option<String> {
    if let Some(token) = jar.get(SESSION_COOKIE)
        && let Ok(csrf) = app.csrf_token(token.value()).await
    {
        return Some(csrf);
    }
    jar.get(PRE_CSRF_COOKIE).map(|c| c.value().to_string())
}

/// Refuses every POST whose `csrf` form field does not match the expected token. Runs before
/// any handler, so no form can be forgotten.
pub async fn csrf_guard(State(state): State<WebState>, request: Request, next: Next) -> Response {
    // The API is called by systems with bearer tokens, which browsers never attach on their
    // own, so cross-site request forgery does not apply to it.
    let path = request.uri().path();
    // Resumable uploads (tus) send no form: the page's token comes in a header, which a
    // cross-site page cannot set without the CORS permission this server never gives.
    if path == "/uploads" || path.starts_with("/uploads/") {
        if matches!(
            request.method(),
            &Method::GET | &Method::HEAD | &Method::OPTIONS
        ) {
            return next.run(request).await;
        }
        let jar = CookieJar::from_headers(request.headers());
        let given = request
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let expected = expected_csrf(&state.app, &jar).await.unwrap_or_default();
        if App::csrf_matches(&expected, &given) {
            return next.run(request).await;
        }
        return (
            StatusCode::FORBIDDEN,
            [("tus-resumable", "1.0.0")],
            "フォームの有効期限が切れたか、不正な送信です。ページを再読み込みしてください",
        )
            .into_response();
    }
    if request.method() != Method::POST
        || path == "/oauth/token"
        || path == "/fhir"
        || path.starts_with("/fhir/")
        || path.starts_with("/api/")
        || path.starts_with("/wopi/")
    {
        return next.run(request).await;
    }
    let jar = CookieJar::from_headers(request.headers());
    // A file upload (multipart) carries its token in the query string, so that the body can
    // stream to the handler without being buffered here.
    let multipart = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if multipart {
        let given: Vec<(String, String)> =
            serde_urlencoded::from_str(request.uri().query().unwrap_or("")).unwrap_or_default();
        let given = given
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let expected = expected_csrf(&state.app, &jar).await.unwrap_or_default();
        if App::csrf_matches(&expected, given) {
            return next.run(request).await;
        }
        return (
            StatusCode::FORBIDDEN,
            "フォームの有効期限が切れたか、不正な送信です",
        )
            .into_response();
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, FORM_LIMIT).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "フォームが大きすぎます").into_response();
    };
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let given = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let expected = expected_csrf(&state.app, &jar).await.unwrap_or_default();
    if !App::csrf_matches(&expected, given) {
        let layout = Layout::anonymous(&state.app, "操作を受け付けられません", String::new());
        let page = crate::views::ErrorPage {
            layout,
            heading: "操作を受け付けられません".into(),
            message: "フォームの有効期限が切れたか、不正な送信です。ページを再読み込みしてからもう一度操作してください。".into(),
        };
        return (StatusCode::FORBIDDEN, crate::views::render(&page)).into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The content security policy of the portal's pages.
pub const PAGE_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; form-action 'self'; frame-ancestors 'none'";

/// [`PAGE_POLICY`] with one more place its forms may go: the origin of `url` (the app an
/// approval sends the browser back to, the office server an editor token is posted to).
pub fn policy_with_form_target(url: &str) -> String {
    let origin: String = url
        .splitn(4, '/')
        .take(3)
        .collect::<Vec<_>>()
        .join("/")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".:/-[]".contains(*c))
        .collect();
    PAGE_POLICY.replace(
        "form-action 'self'",
        &format!("form-action 'self' {origin}"),
    )
}

/// The policy of a file that someone uploaded or a system sent (HM-Box and case files, a
/// document's files in the viewer, FHIR Binary): it never runs as a page of this site, whatever
/// its type says — an XML with a script or an HTML file is shown (or refused) as inert content.
pub const FILE_POLICY: &str =
    "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'";

/// Headers every response carries: no framing, no sniffing, no caching of pages with records.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // A page may narrow its own policy further (the app-approval page names the one app its
    // form may send the browser back to); every other page gets this one.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_POLICY),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
