//! WOPI host endpoints for an office server (Collabora Online, OnlyOffice) editing HM-Box files
//! in place, and the page that hands the user's access token to the editor.

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use renkei_app::AppError;
use renkei_app::wopi::{LockOp, WopiOutcome, WopiSession};

use crate::session::CurrentUser;
use crate::views::*;
use crate::{Peer, WebState};

#[derive(serde::Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    access_token: String,
}

fn status(code: StatusCode) -> Response {
    code.into_response()
}

fn wopi_error(e: AppError) -> Response {
    match e {
        AppError::Unauthenticated => status(StatusCode::UNAUTHORIZED),
        // WOPI: "404 – resource not found / user unauthorized".
        AppError::NotFound | AppError::Forbidden => status(StatusCode::NOT_FOUND),
        AppError::Invalid(m) => (StatusCode::BAD_REQUEST, m).into_response(),
        other => {
            tracing::warn!(code = other.code(), "WOPI request failed");
            status(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

fn with_lock(mut r: Response, lock: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(lock) {
        r.headers_mut().insert("x-wopi-lock", v);
    }
    r
}

fn outcome(o: WopiOutcome) -> Response {
    match o {
        WopiOutcome::Done => status(StatusCode::OK),
        WopiOutcome::Lock(l) => with_lock(status(StatusCode::OK), &l),
        WopiOutcome::Conflict(l) => with_lock(status(StatusCode::CONFLICT), &l),
    }
}

/// What a WOPI request carries besides its path: the headers and the URL it was sent to.
type Request<'a> = (&'a HeaderMap, &'a axum::http::Uri);

/// The URL the office server requested, as it signed it: the public base URL (or this
/// request's host) with the path and query.
fn requested_url(st: &WebState, (headers, uri): Request<'_>) -> String {
    let base = match &st.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let scheme = if st.secure_cookies { "https" } else { "http" };
            let host = header_text(headers, "host").unwrap_or_default();
            format!("{scheme}://{host}")
        }
    };
    let tail = uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
    format!("{base}{tail}")
}

async fn session(
    st: &WebState,
    token: &str,
    id: i64,
    peer: &Peer,
    request: Request<'_>,
) -> Result<WopiSession, Response> {
    // MS-WOPI: a request whose proof does not verify is answered 500.
    let url = requested_url(st, request);
    let header = |name: &str| header_text(request.0, name).unwrap_or_default();
    let (timestamp, proof, proof_old) = (
        header("x-wopi-timestamp"),
        header("x-wopi-proof"),
        header("x-wopi-proofold"),
    );
    let signed = renkei_app::wopi_proof::Proof {
        access_token: token,
        url: &url,
        timestamp: &timestamp,
        proof: &proof,
        proof_old: &proof_old,
    };
    if !st.app.check_wopi_proof(&signed) {
        tracing::warn!(%id, "a WOPI request without a valid proof was refused");
        return Err(status(StatusCode::INTERNAL_SERVER_ERROR));
    }
    st.app
        .wopi_session(token, id, &peer.0.ip().to_string())
        .await
        .map_err(wopi_error)
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
}

/// `GET /wopi/files/{id}`: CheckFileInfo.
pub async fn check_file_info(
    State(st): State<WebState>,
    peer: Peer,
    Path(id): Path<i64>,
    Query(q): Query<TokenQuery>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    match session(&st, &q.access_token, id, &peer, (&headers, &uri)).await {
        Ok(s) => axum::Json(st.app.wopi_file_info(&s)).into_response(),
        Err(r) => r,
    }
}

/// `POST /wopi/files/{id}`: LOCK (and UnlockAndRelock), GET_LOCK, REFRESH_LOCK, UNLOCK.
pub async fn file_operation(
    State(st): State<WebState>,
    peer: Peer,
    Path(id): Path<i64>,
    Query(q): Query<TokenQuery>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let s = match session(&st, &q.access_token, id, &peer, (&headers, &uri)).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let lock = header_text(&headers, "x-wopi-lock").unwrap_or_default();
    let op = match header_text(&headers, "x-wopi-override").as_deref() {
        Some("LOCK") => match header_text(&headers, "x-wopi-oldlock") {
            Some(old) => LockOp::UnlockAndRelock { old, new: lock },
            None => LockOp::Lock(lock),
        },
        Some("GET_LOCK") => LockOp::GetLock,
        Some("REFRESH_LOCK") => LockOp::RefreshLock(lock),
        Some("UNLOCK") => LockOp::Unlock(lock),
        // PUT_RELATIVE, RENAME_FILE, DELETE, PUT_USER_INFO: not offered (CheckFileInfo says so).
        _ => return status(StatusCode::NOT_IMPLEMENTED),
    };
    match st.app.wopi_lock(&s, op).await {
        Ok(o) => outcome(o),
        Err(e) => wopi_error(e),
    }
}

fn item_version(mut r: Response, version: i64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&version.to_string()) {
        r.headers_mut().insert("x-wopi-itemversion", v);
    }
    r
}

/// `GET /wopi/files/{id}/contents`: GetFile.
pub async fn get_file(
    State(st): State<WebState>,
    peer: Peer,
    Path(id): Path<i64>,
    Query(q): Query<TokenQuery>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let s = match session(&st, &q.access_token, id, &peer, (&headers, &uri)).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match st.app.wopi_get(&s).await {
        Ok(stream) => {
            let mut r = Response::new(Body::from_stream(stream));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            if let Ok(v) = HeaderValue::from_str(&s.file.size.to_string()) {
                r.headers_mut().insert(header::CONTENT_LENGTH, v);
            }
            item_version(r, s.file.version)
        }
        Err(e) => wopi_error(e),
    }
}

/// `POST /wopi/files/{id}/contents` (`X-WOPI-Override: PUT`): PutFile.
pub async fn put_file(
    State(st): State<WebState>,
    peer: Peer,
    Path(id): Path<i64>,
    Query(q): Query<TokenQuery>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let s = match session(&st, &q.access_token, id, &peer, (&headers, &uri)).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if header_text(&headers, "x-wopi-override").as_deref() != Some("PUT") {
        return status(StatusCode::NOT_IMPLEMENTED);
    }
    let lock = header_text(&headers, "x-wopi-lock");
    match st.app.wopi_put(&s, lock.as_deref(), body.to_vec()).await {
        Ok(Ok(version)) => item_version(status(StatusCode::OK), version),
        Ok(Err(o)) => outcome(o),
        Err(AppError::Invalid(m)) => (StatusCode::PAYLOAD_TOO_LARGE, m).into_response(),
        Err(e) => wopi_error(e),
    }
}

#[derive(Template)]
#[template(path = "office.html")]
pub struct OfficePage {
    pub layout: Layout,
    pub file_name: String,
    pub action: String,
    pub token: String,
    pub ttl_ms: i64,
}

/// `POST /box/{id}/edit`: hands a fresh access token to the office server's editor.
pub async fn edit(
    State(st): State<WebState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    let office = st.app.config().office_url.clone();
    if office.is_empty() {
        return error_page(
            &st.app,
            AppError::Invalid("オフィスサーバーが設定されていません（office_url）".into()),
        );
    }
    let grant = match st.app.issue_wopi_token(&user.view.actor, id).await {
        Ok(g) => g,
        Err(e) => return error_page(&st.app, e),
    };
    let base = crate::fhir::token_url(&st, &headers)
        .trim_end_matches("/oauth/token")
        .to_string();
    let src = crate::files::percent_encode(&format!("{base}/wopi/files/{id}"), "-._~");
    let sep = if office.contains('?') {
        if office.ends_with('?') || office.ends_with('&') {
            ""
        } else {
            "&"
        }
    } else {
        "?"
    };
    let mut page = render(&OfficePage {
        layout: user.layout(&st.app, "オフィスで編集"),
        file_name: grant.file_name,
        action: format!("{office}{sep}WOPISrc={src}"),
        token: grant.token,
        ttl_ms: grant.expires_at / 1000,
    });
    let policy = crate::session::policy_with_form_target(&office);
    if let Ok(v) = HeaderValue::from_str(&policy) {
        page.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    page
}
