//! ファイル開示相談 and HM-Box screens, resumable uploads (the tus 1.0 protocol: creation,
//! termination, expiration) and downloads (byte ranges; Japanese names kept by RFC 5987).

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use futures_util::StreamExt;
use renkei_app::AppError;
use renkei_app::files::{
    CaseInput, FileUse, StoredFile, UploadRequest, UploadState, UploadTarget, human_size,
    is_picture,
};
use renkei_core::time::Timestamp;

use crate::WebState;
use crate::session::CurrentUser;
use crate::views::*;

const TUS_VERSION: &str = "1.0.0";

fn when(us: i64) -> String {
    Timestamp(us).jst_minutes()
}

fn tus_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A plain-text answer to the upload client (its message is shown to the user as is).
fn tus_error(status: StatusCode, message: &str) -> Response {
    tus_headers(
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            message.to_string(),
        )
            .into_response(),
    )
}

fn tus_app_error(e: AppError) -> Response {
    match e {
        AppError::Invalid(m) => tus_error(StatusCode::PAYLOAD_TOO_LARGE, &m),
        AppError::Conflict(m) => tus_error(StatusCode::CONFLICT, &m),
        AppError::NotFound => tus_error(
            StatusCode::NOT_FOUND,
            "このアップロードは見つからないか、期限が切れました。最初からやり直してください",
        ),
        AppError::Forbidden => tus_error(StatusCode::FORBIDDEN, "アップロードする権限がありません"),
        AppError::Unauthenticated => tus_error(StatusCode::UNAUTHORIZED, "ログインが必要です"),
        other => {
            tracing::warn!(code = other.code(), "upload failed");
            tus_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "保存先に書き込めませんでした。しばらくしてから再開してください",
            )
        }
    }
}

/// RFC 1123 date for `Upload-Expires`.
fn http_date(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// `Upload-Metadata`: comma-separated `key base64value` pairs.
fn metadata(headers: &HeaderMap) -> Vec<(String, String)> {
    let raw = headers
        .get("upload-metadata")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    raw.split(',')
        .filter_map(|pair| {
            let mut it = pair.trim().splitn(2, ' ');
            let key = it.next()?.trim().to_string();
            if key.is_empty() {
                return None;
            }
            let value = it
                .next()
                .and_then(|v| {
                    base64::engine::general_purpose::STANDARD
                        .decode(v.trim())
                        .ok()
                })
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            Some((key, value))
        })
        .collect()
}

fn header_i64(headers: &HeaderMap, name: &str) -> Option<i64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|n| *n >= 0)
}

/// `OPTIONS /uploads`: what this server speaks.
pub async fn tus_options() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    h.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    h.insert(
        "tus-extension",
        HeaderValue::from_static("creation,termination,expiration"),
    );
    r
}

fn version_ok(headers: &HeaderMap) -> bool {
    headers
        .get("tus-resumable")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == TUS_VERSION)
}

fn state_headers(mut r: Response, s: &UploadState) -> Response {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&s.received.to_string()) {
        h.insert("upload-offset", v);
    }
    if let Ok(v) = HeaderValue::from_str(&s.length.to_string()) {
        h.insert("upload-length", v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(s.expires_at)) {
        h.insert("upload-expires", v);
    }
    if let Some(id) = s.file_id
        && let Ok(v) = HeaderValue::from_str(&format!("/files/{id}"))
    {
        h.insert("x-renkei-file", v);
    }
    tus_headers(r)
}

/// `POST /uploads` (tus creation): `Upload-Length` and `Upload-Metadata` with `filename`,
/// `filetype` and `target` (`box` or `case:<id>`).
pub async fn tus_create(
    State(st): State<WebState>,
    user: CurrentUser,
    headers: HeaderMap,
) -> Response {
    if !version_ok(&headers) {
        let mut r = tus_error(
            StatusCode::PRECONDITION_FAILED,
            "tus 1.0.0 で送信してください",
        );
        r.headers_mut()
            .insert("tus-version", HeaderValue::from_static(TUS_VERSION));
        return r;
    }
    let Some(length) = header_i64(&headers, "upload-length") else {
        return tus_error(
            StatusCode::BAD_REQUEST,
            "Upload-Length（ファイルサイズ）がありません",
        );
    };
    let meta = metadata(&headers);
    let get = |k: &str| {
        meta.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let target = match get("target").as_str() {
        "box" | "" => UploadTarget::Box,
        t => match t.strip_prefix("case:").and_then(|n| n.parse::<i64>().ok()) {
            Some(id) => UploadTarget::Case(id),
            None => {
                return tus_error(
                    StatusCode::BAD_REQUEST,
                    "アップロード先（target）が正しくありません",
                );
            }
        },
    };
    let request = UploadRequest {
        target,
        file_name: get("filename"),
        content_type: get("filetype"),
        length,
    };
    match st.app.create_upload(&user.view.actor, &request).await {
        Ok(s) => {
            let mut r = state_headers(StatusCode::CREATED.into_response(), &s);
            if let Ok(v) = HeaderValue::from_str(&format!("/uploads/{}", s.id)) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Err(AppError::NotFound) => tus_error(
            StatusCode::NOT_FOUND,
            "アップロード先の相談が見つかりません",
        ),
        Err(e) => tus_app_error(e),
    }
}

/// `HEAD /uploads/{id}`: how much has arrived.
pub async fn tus_head(
    State(st): State<WebState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Response {
    match st.app.upload_state(&user.view.actor, &id).await {
        Ok(s) => state_headers(StatusCode::OK.into_response(), &s),
        Err(e) => tus_app_error(e),
    }
}

/// `PATCH /uploads/{id}`: appends the body at `Upload-Offset`. Streams to disk in constant
/// memory; if the connection drops, what arrived is kept and the client resumes from there.
pub async fn tus_patch(
    State(st): State<WebState>,
    user: CurrentUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !version_ok(&headers) {
        return tus_error(
            StatusCode::PRECONDITION_FAILED,
            "tus 1.0.0 で送信してください",
        );
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != "application/offset+octet-stream" {
        return tus_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type は application/offset+octet-stream にしてください",
        );
    }
    let Some(offset) = header_i64(&headers, "upload-offset") else {
        return tus_error(
            StatusCode::BAD_REQUEST,
            "Upload-Offset（送信位置）がありません",
        );
    };
    let mut appender = match st.app.append_upload(&user.view.actor, &id, offset).await {
        Ok(a) => a,
        Err(e) => return tus_app_error(e),
    };
    let mut stream = body.into_data_stream();
    let mut refused = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                if let Err(e) = appender.write(&bytes).await {
                    refused = Some(e);
                    break;
                }
            }
            // The connection dropped: keep what arrived.
            Err(_) => break,
        }
    }
    match (appender.finish(&st.app).await, refused) {
        (Ok(s), None) => state_headers(StatusCode::NO_CONTENT.into_response(), &s),
        (Ok(_), Some(AppError::Invalid(m))) => tus_error(StatusCode::BAD_REQUEST, &m),
        (Ok(_), Some(e)) | (Err(e), _) => tus_app_error(e),
    }
}

/// `DELETE /uploads/{id}` (tus termination).
pub async fn tus_delete(
    State(st): State<WebState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Response {
    match st.app.cancel_upload(&user.view.actor, &id).await {
        Ok(()) => tus_headers(StatusCode::NO_CONTENT.into_response()),
        Err(e) => tus_app_error(e),
    }
}

/// `Content-Disposition` that keeps a Japanese name: an ASCII fallback plus `filename*`
/// (RFC 6266 / RFC 5987, UTF-8, percent-encoded).
pub fn content_disposition(kind: &str, name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' && c != '%' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // RFC 5987 attr-char: letters, digits and these stay as they are.
    let encoded = percent_encode(name, "!#$&+-.^_`|~");
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// `s` as UTF-8 with every byte but ASCII letters, digits and `keep` percent-encoded.
pub(crate) fn percent_encode(s: &str, keep: &str) -> String {
    let mut out = String::new();
    for b in s.as_bytes() {
        let c = *b as char;
        if c.is_ascii_alphanumeric() || keep.contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One `bytes=` range of a file of `size` bytes: `Ok(None)` for no (or an ignorable) Range
/// header, `Err(())` when unsatisfiable.
pub fn parse_range(value: Option<&str>, size: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(value) = value else {
        return Ok(None);
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    // Several ranges at once (multipart/byteranges) are not served: the whole file is.
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let Ok(n) = end.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 {
            return Err(());
        }
        size.saturating_sub(n)..size
    } else {
        let Ok(s) = start.parse::<u64>() else {
            return Ok(None);
        };
        let e = if end.is_empty() {
            size
        } else {
            match end.parse::<u64>() {
                Ok(e) if e >= s => (e + 1).min(size),
                _ => return Ok(None),
            }
        };
        s..e
    };
    if range.start >= size || range.is_empty() {
        return Err(());
    }
    Ok(Some(range))
}

/// `GET /files/{id}`: the file as an attachment, whole or a byte range.
pub async fn download(
    State(st): State<WebState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    let file = match st
        .app
        .file_access(&user.view.actor, id, FileUse::Download)
        .await
    {
        Ok(f) => f,
        Err(e) => return error_page(&st.app, e),
    };
    let size = file.size.max(0) as u64;
    let range = match parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    ) {
        Ok(r) => r,
        Err(()) => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let stream = match st.app.open_file(&file, range.clone()).await {
        Ok(s) => s,
        Err(e) => return error_page(&st.app, e),
    };
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    let (status, length) = match &range {
        Some(rg) => {
            if let Ok(v) =
                HeaderValue::from_str(&format!("bytes {}-{}/{size}", rg.start, rg.end - 1))
            {
                h.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, rg.end - rg.start)
        }
        None => (StatusCode::OK, size),
    };
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&file.content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(&length.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&content_disposition("attachment", &file.file_name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    // Uploaded bytes never run as a page of this site.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(crate::session::FILE_POLICY),
    );
    r
}

#[derive(serde::Deserialize)]
pub struct ImageQuery {
    #[serde(default)]
    size: Option<u32>,
}

/// `GET /files/{id}/image`: a picture or DICOM file rendered as PNG on the server (optionally
/// scaled down to `size` pixels), for anyone who may look at it.
pub async fn image(
    State(st): State<WebState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(q): Query<ImageQuery>,
) -> Response {
    let file = match st
        .app
        .file_access(&user.view.actor, id, FileUse::View)
        .await
    {
        Ok(f) => f,
        Err(e) => return error_page(&st.app, e),
    };
    if !is_picture(&file) {
        return error_page(
            &st.app,
            AppError::Invalid("画像ではないため表示できません".into()),
        );
    }
    let bytes = match st.app.file_bytes(&file).await {
        Ok(b) => b,
        Err(e) => return error_page(&st.app, e),
    };
    let size = q.size.map(|s| s.clamp(16, 4096));
    let rendered = crate::render::off_worker(move || {
        if renkei_dicom::is_dicom(&bytes) {
            renkei_dicom::render_png(&bytes, 0, renkei_dicom::Preset::from_key(""), size)
        } else {
            renkei_dicom::render_picture_png(&bytes, size)
        }
    })
    .await;
    match rendered {
        Ok(Ok(png)) => (
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "private, max-age=300"),
            ],
            png,
        )
            .into_response(),
        Ok(Err(e)) => error_page(&st.app, AppError::Invalid(e.to_string())),
        Err(e) => crate::render::refused(&st.app, e),
    }
}

/// A file row for screens.
pub struct FileRow {
    pub id: i64,
    pub name: String,
    pub size: String,
    pub uploaded: String,
    pub expires: String,
    pub owner: String,
    pub picture: bool,
    /// An office document an office server can open (WOPI).
    pub office: bool,
    /// (user id, label) of the users it is shared with.
    pub shares: Vec<(i64, String)>,
}

fn file_row(f: &StoredFile) -> FileRow {
    FileRow {
        id: f.id,
        name: f.file_name.clone(),
        size: human_size(f.size),
        uploaded: when(f.created_at),
        expires: f.expires_at.map(when).unwrap_or_default(),
        owner: f.owner_name.clone(),
        picture: is_picture(f),
        office: is_office(&f.file_name),
        shares: Vec::new(),
    }
}

#[derive(Template)]
#[template(path = "box.html")]
pub struct BoxPage {
    pub layout: Layout,
    pub files: Vec<FileRow>,
    pub shared: Vec<FileRow>,
    pub used: String,
    pub quota: String,
    pub percent: i64,
    pub retention_days: i64,
    /// An office server is configured: office documents get an edit button.
    pub can_edit: bool,
}

/// Documents Collabora Online and OnlyOffice open.
fn is_office(name: &str) -> bool {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    matches!(
        ext.as_str(),
        "docx"
            | "xlsx"
            | "pptx"
            | "doc"
            | "xls"
            | "ppt"
            | "odt"
            | "ods"
            | "odp"
            | "rtf"
            | "csv"
            | "txt"
    )
}

async fn box_page(
    st: &WebState,
    user: &CurrentUser,
    flash: Option<String>,
    error: Option<String>,
) -> Response {
    match st.app.hm_box(&user.view.actor).await {
        Ok(b) => render(&BoxPage {
            layout: user
                .layout(&st.app, "HM-Box（一時ファイル共有）")
                .with_flash(flash)
                .with_error(error),
            files: b
                .files
                .iter()
                .map(|(f, shares)| FileRow {
                    shares: shares
                        .iter()
                        .map(|s| (s.user_id, format!("{}（{}）", s.name, s.facility_name)))
                        .collect(),
                    ..file_row(f)
                })
                .collect(),
            shared: b.shared_with_me.iter().map(file_row).collect(),
            used: human_size(b.used),
            quota: human_size(b.quota),
            percent: if b.quota > 0 {
                (b.used * 100 / b.quota).clamp(0, 100)
            } else {
                0
            },
            retention_days: renkei_app::files::BOX_RETENTION_SECONDS / 86_400,
            can_edit: !st.app.config().office_url.is_empty(),
        }),
        Err(e) => error_page(&st.app, e),
    }
}

/// `GET /box`.
pub async fn hm_box(State(st): State<WebState>, user: CurrentUser) -> Response {
    box_page(&st, &user, None, None).await
}

#[derive(serde::Deserialize)]
pub struct ShareForm {
    #[serde(default)]
    logins: String,
    #[serde(default)]
    user: i64,
}

/// `POST /box/{id}/share`.
pub async fn share(
    State(st): State<WebState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    axum::extract::Form(f): axum::extract::Form<ShareForm>,
) -> Response {
    match st.app.share_box_file(&user.view.actor, id, &f.logins).await {
        Ok(names) if names.is_empty() => {
            box_page(&st, &user, Some("共有先に変更はありません".into()), None).await
        }
        Ok(names) => {
            box_page(
                &st,
                &user,
                Some(format!("{} さんと共有しました", names.join("、"))),
                None,
            )
            .await
        }
        Err(AppError::Invalid(m)) => box_page(&st, &user, None, Some(m)).await,
        Err(e) => error_page(&st.app, e),
    }
}

/// `POST /box/{id}/unshare`.
pub async fn unshare(
    State(st): State<WebState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    axum::extract::Form(f): axum::extract::Form<ShareForm>,
) -> Response {
    match st.app.unshare_box_file(&user.view.actor, id, f.user).await {
        Ok(()) => box_page(&st, &user, Some("共有を解除しました".into()), None).await,
        Err(e) => error_page(&st.app, e),
    }
}

/// `POST /box/{id}/delete`.
pub async fn delete(
    State(st): State<WebState>,
    user: CurrentUser,
    Path(id): Path<i64>,
) -> Response {
    match st.app.delete_box_file(&user.view.actor, id).await {
        Ok(()) => box_page(&st, &user, Some("ファイルを削除しました".into()), None).await,
        Err(e) => error_page(&st.app, e),
    }
}

/// A case in a list.
pub struct CaseRow {
    pub id: i64,
    pub title: String,
    pub from: String,
    pub created: String,
    pub sent: bool,
}

#[derive(Template)]
#[template(path = "cases.html")]
pub struct CasesPage {
    pub layout: Layout,
    pub cases: Vec<CaseRow>,
}

/// `GET /cases`.
pub async fn cases(State(st): State<WebState>, user: CurrentUser) -> Response {
    let me = user.view.actor.user_id.unwrap_or_default();
    match st.app.cases(&user.view.actor).await {
        Ok(list) => render(&CasesPage {
            layout: user.layout(&st.app, "ファイル開示相談"),
            cases: list
                .into_iter()
                .map(|c| CaseRow {
                    id: c.id,
                    title: c.title,
                    from: format!("{}　{}", c.facility_name, c.user_name),
                    created: when(c.created_at),
                    sent: c.user_id == me,
                })
                .collect(),
        }),
        Err(e) => error_page(&st.app, e),
    }
}

#[derive(Template)]
#[template(path = "case_new.html")]
pub struct NewCasePage {
    pub layout: Layout,
    /// (id, name) of participating facilities.
    pub facilities: Vec<(i64, String)>,
    pub form: CaseFormEcho,
}

#[derive(Default)]
pub struct CaseFormEcho {
    pub title: String,
    pub body: String,
    pub card: String,
    pub logins: String,
    pub chosen: Vec<i64>,
    pub allow_download: bool,
    pub double_reading: bool,
}

async fn new_case_page(
    st: &WebState,
    user: &CurrentUser,
    form: CaseFormEcho,
    error: Option<String>,
) -> Response {
    let mine = user.view.actor.facility_id;
    let facilities = st
        .app
        .participating_facilities()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|f| Some(f.id) != mine)
        .map(|f| (f.id, f.name))
        .collect();
    render(&NewCasePage {
        layout: user
            .layout(&st.app, "ファイル開示相談の新規作成")
            .with_error(error),
        facilities,
        form,
    })
}

/// `GET /cases/new`.
pub async fn new_case(State(st): State<WebState>, user: CurrentUser) -> Response {
    new_case_page(&st, &user, CaseFormEcho::default(), None).await
}

/// `POST /cases` (form fields `facility` may repeat).
pub async fn create_case(
    State(st): State<WebState>,
    user: CurrentUser,
    body: axum::body::Bytes,
) -> Response {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let get = |k: &str| {
        fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let chosen: Vec<i64> = fields
        .iter()
        .filter(|(k, _)| k == "facility")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let input = CaseInput {
        title: get("title"),
        body: get("body"),
        card: get("card"),
        recipient_facilities: chosen.clone(),
        recipient_logins: get("logins"),
        allow_download: get("allow_download") == "on",
        double_reading: get("double_reading") == "on",
    };
    match st.app.create_case(&user.view.actor, &input).await {
        Ok(id) => Redirect::to(&format!("/cases/{id}")).into_response(),
        Err(AppError::Invalid(m)) => {
            new_case_page(
                &st,
                &user,
                CaseFormEcho {
                    title: input.title,
                    body: input.body,
                    card: input.card,
                    logins: input.recipient_logins,
                    chosen,
                    allow_download: input.allow_download,
                    double_reading: input.double_reading,
                },
                Some(m),
            )
            .await
        }
        Err(e) => error_page(&st.app, e),
    }
}

pub struct MessageRow {
    pub who: String,
    pub at: String,
    pub body: String,
}

#[derive(Template)]
#[template(path = "case.html")]
pub struct CasePage {
    pub layout: Layout,
    pub id: i64,
    pub title: String,
    pub from: String,
    pub created: String,
    pub body: String,
    pub patient: Option<(String, String)>,
    pub recipients: Vec<String>,
    pub files: Vec<FileRow>,
    pub can_download: bool,
    pub allow_download: bool,
    pub double_reading: bool,
    pub is_sender: bool,
    pub can_read: bool,
    pub readings_in: usize,
    pub readers: i64,
    pub readings: Vec<MessageRow>,
    pub messages: Vec<MessageRow>,
    pub used: String,
    pub limit: String,
    pub file_limit: String,
}

async fn case_page(
    st: &WebState,
    user: &CurrentUser,
    id: i64,
    flash: Option<String>,
    error: Option<String>,
) -> Response {
    let v = match st.app.case_view(&user.view.actor, id).await {
        Ok(v) => v,
        Err(e) => return error_page(&st.app, e),
    };
    render(&CasePage {
        layout: user
            .layout(&st.app, &format!("ファイル開示相談：{}", v.case.title))
            .with_flash(flash)
            .with_error(error),
        id: v.case.id,
        title: v.case.title.clone(),
        from: format!("{}　{}", v.case.facility_name, v.case.user_name),
        created: when(v.case.created_at),
        body: v.case.body.clone(),
        patient: v.patient.clone(),
        recipients: v.recipients.iter().map(|r| r.label.clone()).collect(),
        files: v.files.iter().map(file_row).collect(),
        can_download: v.can_download,
        allow_download: v.case.allow_download,
        double_reading: v.case.double_reading,
        is_sender: v.is_sender,
        can_read: v.can_read,
        readings_in: v.readings_in,
        readers: renkei_app::files::READERS,
        readings: v
            .readings
            .iter()
            .map(|r| MessageRow {
                who: format!("{}（{}）", r.user_name, r.facility_name),
                at: when(r.submitted_at),
                body: r.findings.clone(),
            })
            .collect(),
        messages: v
            .messages
            .iter()
            .map(|m| MessageRow {
                who: format!("{}（{}）", m.user_name, m.facility_name),
                at: when(m.created_at),
                body: m.body.clone(),
            })
            .collect(),
        used: human_size(v.used),
        limit: human_size(renkei_app::files::MAX_CASE_BYTES),
        file_limit: human_size(renkei_app::files::MAX_CASE_FILE),
    })
}

/// `GET /cases/{id}`.
pub async fn case(State(st): State<WebState>, user: CurrentUser, Path(id): Path<i64>) -> Response {
    case_page(&st, &user, id, None, None).await
}

#[derive(serde::Deserialize)]
pub struct TextForm {
    #[serde(default)]
    body: String,
}

/// `POST /cases/{id}/reply`.
pub async fn reply(
    State(st): State<WebState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    axum::extract::Form(f): axum::extract::Form<TextForm>,
) -> Response {
    match st.app.reply_case(&user.view.actor, id, &f.body).await {
        Ok(()) => Redirect::to(&format!("/cases/{id}#thread")).into_response(),
        Err(AppError::Invalid(m)) => case_page(&st, &user, id, None, Some(m)).await,
        Err(e) => error_page(&st.app, e),
    }
}

/// `POST /cases/{id}/reading`.
pub async fn reading(
    State(st): State<WebState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    axum::extract::Form(f): axum::extract::Form<TextForm>,
) -> Response {
    match st.app.submit_reading(&user.view.actor, id, &f.body).await {
        Ok(()) => case_page(&st, &user, id, Some("所見を登録しました".into()), None).await,
        Err(AppError::Invalid(m)) | Err(AppError::Conflict(m)) => {
            case_page(&st, &user, id, None, Some(m)).await
        }
        Err(e) => error_page(&st.app, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn japanese_names_survive_content_disposition() {
        assert_eq!(
            content_disposition("attachment", "紹介状 2026.pdf"),
            "attachment; filename=\"___ 2026.pdf\"; filename*=UTF-8''%E7%B4%B9%E4%BB%8B%E7%8A%B6%202026.pdf"
        );
        assert_eq!(
            content_disposition("attachment", "a\"b.txt"),
            "attachment; filename=\"a_b.txt\"; filename*=UTF-8''a%22b.txt"
        );
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range(Some("bytes=0-99"), 1000), Ok(Some(0..100)));
        assert_eq!(parse_range(Some("bytes=900-"), 1000), Ok(Some(900..1000)));
        assert_eq!(parse_range(Some("bytes=-100"), 1000), Ok(Some(900..1000)));
        assert_eq!(
            parse_range(Some("bytes=990-2000"), 1000),
            Ok(Some(990..1000))
        );
        assert_eq!(parse_range(Some("bytes=1000-"), 1000), Err(()));
        assert_eq!(parse_range(Some("bytes=-0"), 1000), Err(()));
        assert_eq!(parse_range(Some("bytes=5-1"), 1000), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 1000), Ok(None));
        assert_eq!(parse_range(Some("items=0-1"), 1000), Ok(None));
        assert_eq!(parse_range(None, 1000), Ok(None));
    }
}
