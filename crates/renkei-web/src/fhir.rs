//! The API edge for systems: the OAuth 2.0 token endpoint (SMART Backend Services) and FHIR R4
//! over the MPI — IHE PIXm (`Patient/$ihe-pix`) and PDQm (`Patient` search and read), with a
//! CapabilityStatement. Every error is an OperationOutcome; an unknown search parameter is
//! refused unless the caller sends `Prefer: handling=lenient`.

use axum::extract::{Path, RawQuery, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use renkei_app::AppError;
use renkei_app::api::{ApiCaller, TokenRequest};
use renkei_app::interop::{PDQ_MAX_COUNT, PatientEntry, PdqQuery, PixError};
use serde_json::{Value, json};

use crate::WebState;
use crate::session::client_of;

const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
const JP_PATIENT: &str = "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Patient";
const PDQM_PATIENT: &str = "https://profiles.ihe.net/ITI/PDQm/StructureDefinition/IHE.PDQm.Patient";
const NAME_REPRESENTATION: &str =
    "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation";

fn fhir(status: StatusCode, body: Value) -> Response {
    let mut r = (status, Json(body)).into_response();
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    r
}

/// An OperationOutcome with one issue.
fn outcome(status: StatusCode, severity: &str, code: &str, diagnostics: &str) -> Response {
    fhir(
        status,
        json!({
            "resourceType": "OperationOutcome",
            "issue": [{ "severity": severity, "code": code, "diagnostics": diagnostics }]
        }),
    )
}

fn app_error(e: AppError) -> Response {
    match e {
        AppError::Invalid(m) => outcome(StatusCode::BAD_REQUEST, "error", "invalid", &m),
        AppError::NotFound => outcome(
            StatusCode::NOT_FOUND,
            "error",
            "not-found",
            "no such resource",
        ),
        AppError::Forbidden => outcome(
            StatusCode::FORBIDDEN,
            "error",
            "forbidden",
            "the token's scopes do not allow this",
        ),
        AppError::Unauthenticated => unauthenticated(),
        AppError::Unavailable(_) => outcome(
            StatusCode::SERVICE_UNAVAILABLE,
            "error",
            "transient",
            "the database is unavailable; try again",
        ),
        other => {
            tracing::error!(code = other.code(), "FHIR request failed");
            outcome(
                StatusCode::INTERNAL_SERVER_ERROR,
                "fatal",
                "exception",
                "internal error",
            )
        }
    }
}

fn unauthenticated() -> Response {
    let mut r = outcome(
        StatusCode::UNAUTHORIZED,
        "error",
        "login",
        "a valid bearer token is required (POST /oauth/token)",
    );
    r.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// The system calling with a bearer token.
pub struct Caller(pub ApiCaller);

impl axum::extract::FromRequestParts<WebState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &WebState) -> Result<Self, Self::Rejection> {
        let Some(token) = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
        else {
            return Err(unauthenticated());
        };
        match st.app.api_caller(token, &client_of(parts)).await {
            Ok(c) => Ok(Caller(c)),
            Err(e) => Err(app_error(e)),
        }
    }
}

/// `aud` that client assertions must name: this endpoint's public URL.
pub(crate) fn token_url(st: &WebState, headers: &HeaderMap) -> String {
    match &st.public_url {
        Some(base) => format!("{}/oauth/token", base.trim_end_matches('/')),
        None => {
            let host = headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            let scheme = if st.secure_cookies { "https" } else { "http" };
            format!("{scheme}://{host}/oauth/token")
        }
    }
}

/// `POST /oauth/token`.
pub async fn token(
    State(st): State<WebState>,
    parts: Parts,
    Form(request): Form<TokenRequest>,
) -> Response {
    let url = token_url(&st, &parts.headers);
    let mut r = match st.app.issue_token(&request, &url, &client_of(&parts)).await {
        Ok(t) => (StatusCode::OK, Json(t)).into_response(),
        Err(e) => {
            let status = if e.error == "invalid_client" {
                StatusCode::UNAUTHORIZED
            } else if e.error == "server_error" {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::BAD_REQUEST
            };
            (status, Json(e)).into_response()
        }
    };
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /fhir/metadata`.
pub async fn metadata(State(st): State<WebState>) -> Response {
    fhir(
        StatusCode::OK,
        json!({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-11-21",
            "kind": "instance",
            "software": { "name": "Renkei", "version": env!("CARGO_PKG_VERSION") },
            "implementation": { "description": format!("{} 地域医療連携ネットワーク", st.app.config().network_name) },
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "instantiates": [
                "https://profiles.ihe.net/ITI/PIXm/CapabilityStatement/IHE.PIXm.Manager",
                "https://profiles.ihe.net/ITI/PDQm/CapabilityStatement/IHE.PDQm.Supplier"
            ],
            "rest": [{
                "mode": "server",
                "security": {
                    "service": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR" }] }],
                    "extension": [{
                        "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                        "extension": [{ "url": "token", "valueUri": "/oauth/token" }]
                    }]
                },
                "resource": capability_resources(),
                "interaction": [{ "code": "transaction" }],
            }]
        }),
    )
}

/// The resources of the CapabilityStatement: Patient (PDQm, PIXm, $everything), the clinical
/// types with their search parameters and includes, Organization and Binary.
fn capability_resources() -> Value {
    use renkei_app::fhir::fhir_search::{Kind, includes_of, params_of};
    let mut resources = vec![json!({
        "type": "Patient",
        "supportedProfile": [PDQM_PATIENT, JP_PATIENT],
        "interaction": [{ "code": "read" }, { "code": "search-type" }],
        "searchParam": PDQ_PARAMS.iter().map(|(name, kind)| json!({ "name": name, "type": kind })).collect::<Vec<_>>(),
        "operation": [
            { "name": "ihe-pix", "definition": "https://profiles.ihe.net/ITI/PIXm/OperationDefinition/IHE.PIXm.pix" },
            { "name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything" },
            { "name": "jp-clins-bundle", "definition": "http://jpfhir.jp/fhir/clins/StructureDefinition/JP_Bundle_CLINS" },
            { "name": "jp-clins-document", "definition": "http://jpfhir.jp/fhir/clins/StructureDefinition/JP_Bundle_eReferral" }
        ]
    })];
    for t in renkei_app::fhir::CLINICAL_TYPES {
        let mut params: Vec<Value> = params_of(t)
            .iter()
            .map(|p| {
                json!({ "name": p.name, "type": match p.kind { Kind::Token => "token", Kind::Date => "date", Kind::Reference => "reference" } })
            })
            .collect();
        params.push(json!({ "name": "_id", "type": "token" }));
        params.push(json!({ "name": "_lastUpdated", "type": "date" }));
        let mut interactions = vec![json!({ "code": "read" }), json!({ "code": "search-type" })];
        if renkei_app::fhir::WRITABLE_TYPES.contains(t) {
            interactions.push(json!({ "code": "create" }));
        }
        resources.push(json!({
            "type": t,
            "interaction": interactions,
            "searchParam": params,
            "searchInclude": includes_of(t).iter().map(|i| i.0).collect::<Vec<_>>(),
        }));
    }
    for t in renkei_app::fhir_directory::DIRECTORY_TYPES {
        let mut interactions = vec![json!({ "code": "search-type" })];
        if matches!(*t, "Practitioner" | "PractitionerRole" | "Organization") {
            interactions.push(json!({ "code": "read" }));
        }
        let mut params: Vec<Value> = renkei_app::fhir_directory::directory_params(t)
            .iter()
            .map(|p| json!({ "name": p, "type": if *p == "name" { "string" } else if *p == "identifier" { "token" } else { "reference" } }))
            .collect();
        params.push(json!({ "name": "_id", "type": "token" }));
        resources.push(json!({ "type": t, "interaction": interactions, "searchParam": params }));
    }
    resources.push(json!({ "type": "Binary", "interaction": [{ "code": "read" }] }));
    json!(resources)
}

/// The PDQm search parameters served, with their FHIR types.
const PDQ_PARAMS: &[(&str, &str)] = &[
    ("family", "string"),
    ("given", "string"),
    ("name", "string"),
    ("birthdate", "date"),
    ("gender", "token"),
    ("telecom", "token"),
    ("address", "string"),
    ("identifier", "token"),
    ("_count", "number"),
    ("_offset", "number"),
];

fn params(raw: Option<String>) -> Vec<(String, String)> {
    serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).unwrap_or_default()
}

fn lenient(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim() == "handling=lenient"))
}

fn identifier_json(i: &renkei_app::interop::Identifier) -> Value {
    json!({ "system": i.system, "value": i.value })
}

fn patient_json(e: &PatientEntry) -> Value {
    let p = &e.person;
    let mut names = Vec::new();
    for (text, representation) in [(&p.kanji_name, "IDE"), (&p.kana_name, "SYL")] {
        if text.trim().is_empty() {
            continue;
        }
        let mut parts = text.split_whitespace();
        let family = parts.next().unwrap_or("");
        let given: Vec<&str> = parts.collect();
        let mut name = json!({
            "extension": [{ "url": NAME_REPRESENTATION, "valueCode": representation }],
            "use": "official",
            "text": text,
            "family": family,
        });
        if !given.is_empty() {
            name["given"] = json!(given);
        }
        names.push(name);
    }
    let mut patient = json!({
        "resourceType": "Patient",
        "id": p.common_id,
        "meta": { "profile": [PDQM_PATIENT, JP_PATIENT] },
        "identifier": e.identifiers.iter().map(identifier_json).collect::<Vec<_>>(),
        "active": e.replaced_by.is_none(),
        "name": names,
        "gender": match p.sex.as_str() { "M" => "male", "F" => "female", "O" => "other", _ => "unknown" },
    });
    if let Some(b) = &p.birth_date {
        patient["birthDate"] = json!(b);
    }
    if !p.phone.is_empty() {
        patient["telecom"] = json!([{ "system": "phone", "value": p.phone }]);
    }
    if !p.address.is_empty() || !p.postal_code.is_empty() {
        let mut address = json!({ "text": p.address, "country": "JP" });
        if !p.postal_code.is_empty() {
            address["postalCode"] = json!(p.postal_code);
        }
        patient["address"] = json!([address]);
    }
    if let Some(survivor) = &e.replaced_by {
        patient["link"] = json!([{ "other": { "reference": format!("Patient/{survivor}") }, "type": "replaced-by" }]);
    }
    patient
}

/// `GET /fhir/Patient` (PDQm, ITI-78).
pub async fn patient_search(
    State(st): State<WebState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let given = params(raw);
    let lenient = lenient(&headers);
    let mut q = PdqQuery {
        count: 20,
        ..PdqQuery::default()
    };
    let mut used: Vec<(String, String)> = Vec::new();
    let mut ignored: Vec<String> = Vec::new();
    for (name, value) in given {
        let slot = match name.as_str() {
            "family" => &mut q.family,
            "given" => &mut q.given,
            "name" => &mut q.family,
            "gender" => &mut q.gender,
            "telecom" => &mut q.telecom,
            "address" => &mut q.address,
            "identifier" => &mut q.identifier,
            "birthdate" => {
                let date = value.strip_prefix("eq").unwrap_or(&value);
                if date.len() != 10 || !date.chars().all(|c| c.is_ascii_digit() || c == '-') {
                    return outcome(
                        StatusCode::BAD_REQUEST,
                        "error",
                        "not-supported",
                        "birthdate: only a full date, optionally with the eq prefix, is supported",
                    );
                }
                q.birthdate = date.to_string();
                used.push((name, value));
                continue;
            }
            "_count" | "_offset" => {
                let Ok(n) = value.parse::<usize>() else {
                    return outcome(
                        StatusCode::BAD_REQUEST,
                        "error",
                        "invalid",
                        &format!("{name} must be a whole number"),
                    );
                };
                if name == "_count" {
                    q.count = n.clamp(1, PDQ_MAX_COUNT);
                } else {
                    q.offset = n;
                }
                continue;
            }
            "_format" => continue,
            other => {
                if lenient {
                    ignored.push(other.to_string());
                    continue;
                }
                return outcome(
                    StatusCode::BAD_REQUEST,
                    "error",
                    "not-supported",
                    &format!(
                        "search parameter '{other}' is not supported (supported: {}); send Prefer: handling=lenient to ignore it",
                        PDQ_PARAMS
                            .iter()
                            .map(|p| p.0)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        };
        if !slot.is_empty() {
            return outcome(
                StatusCode::BAD_REQUEST,
                "error",
                "not-supported",
                &format!("search parameter '{name}' given twice (or with name): not supported"),
            );
        }
        *slot = value.clone();
        used.push((name, value));
    }
    let page = match st.app.pdq_search(&caller, &q).await {
        Ok(p) => p,
        Err(e) => return app_error(e),
    };
    let query = |offset: usize| {
        let mut pairs = used.clone();
        pairs.push(("_count".into(), q.count.to_string()));
        pairs.push(("_offset".into(), offset.to_string()));
        format!(
            "Patient?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    };
    let mut links = vec![json!({ "relation": "self", "url": query(q.offset) })];
    if page.more {
        links.push(json!({ "relation": "next", "url": query(q.offset + q.count) }));
    }
    if q.offset > 0 {
        links.push(
            json!({ "relation": "previous", "url": query(q.offset.saturating_sub(q.count)) }),
        );
    }
    let mut entries: Vec<Value> = page
        .entries
        .iter()
        .map(|e| {
            json!({
                "fullUrl": format!("Patient/{}", e.person.common_id),
                "resource": patient_json(e),
                "search": { "mode": "match" }
            })
        })
        .collect();
    if !ignored.is_empty() {
        entries.push(json!({
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [{ "severity": "warning", "code": "not-supported", "diagnostics": format!("ignored search parameters: {}", ignored.join(", ")) }]
            },
            "search": { "mode": "outcome" }
        }));
    }
    fhir(
        StatusCode::OK,
        json!({
            "resourceType": "Bundle",
            "type": "searchset",
            "link": links,
            "entry": entries,
        }),
    )
}

/// `GET /fhir/Patient/{id}` (PDQm read; the id is the common ID).
pub async fn patient_read(
    State(st): State<WebState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Response {
    match st.app.pdq_read(&caller, &id).await {
        Ok(e) => fhir(StatusCode::OK, patient_json(&e)),
        Err(e) => app_error(e),
    }
}

/// `GET /fhir/Patient/$ihe-pix` (PIXm, ITI-83).
pub async fn pix(
    State(st): State<WebState>,
    Caller(caller): Caller,
    RawQuery(raw): RawQuery,
) -> Response {
    let mut source = None;
    let mut targets = Vec::new();
    for (name, value) in params(raw) {
        match name.as_str() {
            "sourceIdentifier" if source.is_none() => source = Some(value),
            "targetSystem" => targets.extend(value.split(',').map(str::to_string)),
            "_format" => {}
            other => {
                return outcome(
                    StatusCode::BAD_REQUEST,
                    "error",
                    "not-supported",
                    &format!(
                        "parameter '{other}' is not supported (sourceIdentifier, targetSystem)"
                    ),
                );
            }
        }
    }
    let Some(source) = source else {
        return outcome(
            StatusCode::BAD_REQUEST,
            "error",
            "required",
            "sourceIdentifier is required",
        );
    };
    match st.app.pix_query(&caller, &source, &targets).await {
        Ok(entry) => {
            let mut parameters: Vec<Value> = entry
                .identifiers
                .iter()
                .map(|i| json!({ "name": "targetIdentifier", "valueIdentifier": identifier_json(i) }))
                .collect();
            parameters.push(json!({ "name": "targetId", "valueReference": { "reference": format!("Patient/{}", entry.person.common_id) } }));
            fhir(
                StatusCode::OK,
                json!({ "resourceType": "Parameters", "parameter": parameters }),
            )
        }
        Err(PixError::Invalid(m)) => outcome(StatusCode::BAD_REQUEST, "error", "invalid", &m),
        Err(PixError::UnknownSourceDomain) => outcome(
            StatusCode::BAD_REQUEST,
            "error",
            "code-invalid",
            "sourceIdentifier Assigning Authority not found",
        ),
        Err(PixError::UnknownPatient) => outcome(
            StatusCode::NOT_FOUND,
            "error",
            "not-found",
            "sourceIdentifier Patient Identifier not found",
        ),
        Err(PixError::UnknownTargetDomain) => outcome(
            StatusCode::FORBIDDEN,
            "error",
            "code-invalid",
            "targetSystem not found",
        ),
        Err(PixError::Forbidden) => app_error(AppError::Forbidden),
        Err(PixError::Other(e)) => app_error(e),
    }
}

/// Anything else under `/fhir`.
pub async fn not_supported() -> Response {
    outcome(
        StatusCode::NOT_FOUND,
        "error",
        "not-supported",
        "this FHIR interaction is not supported here (see /fhir/metadata)",
    )
}

/// The FHIR base URL, for `fullUrl`s and links: `<public_url>/fhir`, or from the request.
fn base_url(st: &WebState, headers: &HeaderMap) -> String {
    let token = token_url(st, headers);
    format!("{}/fhir", token.trim_end_matches("/oauth/token"))
}

fn search_error(e: &renkei_app::fhir::fhir_search::SearchError) -> Response {
    fhir(
        StatusCode::BAD_REQUEST,
        json!({
            "resourceType": "OperationOutcome",
            "issue": [{ "severity": "error", "code": e.code, "diagnostics": e.to_string(), "expression": [e.param] }]
        }),
    )
}

/// A searchset Bundle of a page: the matches, then what they include, then (under lenient
/// handling) a warning naming the ignored parameters; self/next/previous links carry only the
/// parameters used.
fn searchset(
    base: &str,
    path: &str,
    used: &[(String, String)],
    (count, offset): (usize, usize),
    page: &renkei_app::fhir::FhirPage,
    ignored: &[String],
) -> Value {
    let link = |offset: usize| {
        let mut pairs = used.to_vec();
        pairs.push(("_count".into(), count.to_string()));
        pairs.push(("_offset".into(), offset.to_string()));
        format!(
            "{base}/{path}?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    };
    let mut links = vec![json!({ "relation": "self", "url": link(offset) })];
    if offset + count < page.total && count > 0 {
        links.push(json!({ "relation": "next", "url": link(offset + count) }));
    }
    if offset > 0 {
        links.push(json!({ "relation": "previous", "url": link(offset.saturating_sub(count)) }));
    }
    let full = |r: &Value| {
        format!(
            "{base}/{}/{}",
            r["resourceType"].as_str().unwrap_or(""),
            r["id"].as_str().unwrap_or("")
        )
    };
    let mut entries: Vec<Value> = page
        .matches
        .iter()
        .map(|r| json!({ "fullUrl": full(r), "resource": r, "search": { "mode": "match" } }))
        .collect();
    for p in &page.patients {
        let r = patient_json(p);
        entries
            .push(json!({ "fullUrl": full(&r), "resource": r, "search": { "mode": "include" } }));
    }
    for o in &page.organizations {
        entries.push(json!({ "fullUrl": full(o), "resource": o, "search": { "mode": "include" } }));
    }
    if !ignored.is_empty() {
        entries.push(json!({
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [{ "severity": "warning", "code": "not-supported", "diagnostics": format!("ignored search parameters: {}", ignored.join(", ")) }]
            },
            "search": { "mode": "outcome" }
        }));
    }
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": page.total,
        "link": links,
        "entry": entries,
    })
}

/// `GET /fhir/{type}`: a search on a clinical type.
pub async fn search(
    State(st): State<WebState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(resource_type): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if renkei_app::fhir_directory::DIRECTORY_TYPES.contains(&resource_type.as_str()) {
        return directory_search(&st, &caller, &headers, &resource_type, params(raw)).await;
    }
    if !renkei_app::fhir::CLINICAL_TYPES.contains(&resource_type.as_str()) {
        return not_supported().await;
    }
    let search =
        match renkei_app::fhir::fhir_search::parse(&resource_type, &params(raw), lenient(&headers))
        {
            Ok(s) => s,
            Err(e) => return search_error(&e),
        };
    match st.app.fhir_search(&caller, &search).await {
        Ok(page) => fhir(
            StatusCode::OK,
            searchset(
                &base_url(&st, &headers),
                &resource_type,
                &search.used,
                (search.count, search.offset),
                &page,
                &search.ignored,
            ),
        ),
        Err(e) => app_error(e),
    }
}

/// `GET /fhir/{type}/{id}`.
pub async fn read(
    State(st): State<WebState>,
    Caller(caller): Caller,
    Path((resource_type, id)): Path<(String, String)>,
) -> Response {
    let result = match resource_type.as_str() {
        "Organization" => st.app.fhir_organization(&caller, &id).await,
        "Practitioner" | "PractitionerRole" => {
            let q = renkei_app::fhir_directory::DirectoryQuery {
                id: Some(id.clone()),
                ..Default::default()
            };
            match st
                .app
                .fhir_directory(&caller, &resource_type, &q, (1, 0))
                .await
            {
                Ok((found, _)) => found.into_iter().next().ok_or(AppError::NotFound),
                Err(e) => Err(e),
            }
        }
        t if renkei_app::fhir::CLINICAL_TYPES.contains(&t) => {
            st.app.fhir_read(&caller, t, &id).await
        }
        _ => return not_supported().await,
    };
    match result {
        Ok(r) => fhir(StatusCode::OK, r),
        Err(e) => app_error(e),
    }
}

/// `GET /fhir/Binary/{id}`: a document's file, as itself.
pub async fn binary(
    State(st): State<WebState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Response {
    match st.app.fhir_binary(&caller, &id).await {
        Ok((content_type, bytes)) => {
            let mut r = (StatusCode::OK, bytes).into_response();
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            // A document's bytes never run as a page of this site, whatever their type.
            r.headers_mut().insert(
                axum::http::header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(crate::session::FILE_POLICY),
            );
            r
        }
        Err(e) => app_error(e),
    }
}

/// `GET /fhir/Patient/{id}/$everything` with `start`, `end`, `_type`, `_count`, `_offset`.
pub async fn everything(
    State(st): State<WebState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    use renkei_app::fhir::fhir_search::{DEFAULT_COUNT, MAX_COUNT, date_range};
    let (mut start, mut end, mut types) = (None, None, Vec::new());
    let (mut count, mut offset) = (DEFAULT_COUNT, 0usize);
    let mut used = Vec::new();
    let mut ignored = Vec::new();
    for (name, value) in params(raw) {
        match name.as_str() {
            "start" | "end" => {
                let Some((lo, hi)) = date_range(&value) else {
                    return outcome(
                        StatusCode::BAD_REQUEST,
                        "error",
                        "invalid",
                        &format!("{name}: '{value}' is not a date"),
                    );
                };
                let day = |s: i64| {
                    let d = s.div_euclid(86_400);
                    // Back to a civil date through the same calendar as date_range.
                    renkei_app::fhir::fhir_search::day_of(d)
                };
                if name == "start" {
                    start = Some(day(lo));
                } else {
                    end = Some(day(hi - 1));
                }
                used.push((name, value));
            }
            "_type" => {
                types.extend(value.split(',').map(|t| t.trim().to_string()));
                used.push((name, value));
            }
            "_count" | "_offset" => {
                let Ok(n) = value.parse::<usize>() else {
                    return outcome(
                        StatusCode::BAD_REQUEST,
                        "error",
                        "invalid",
                        &format!("{name} must be a whole number"),
                    );
                };
                if name == "_count" {
                    count = n.min(MAX_COUNT);
                } else {
                    offset = n;
                }
            }
            "_format" => {}
            other if lenient(&headers) => ignored.push(other.to_string()),
            other => {
                return outcome(
                    StatusCode::BAD_REQUEST,
                    "error",
                    "not-supported",
                    &format!(
                        "parameter '{other}' is not supported by $everything (start, end, _type, _count, _offset); send Prefer: handling=lenient to ignore it"
                    ),
                );
            }
        }
    }
    if let Some(unknown) = types
        .iter()
        .find(|t| !renkei_app::fhir::CLINICAL_TYPES.contains(&t.as_str()))
    {
        return outcome(
            StatusCode::BAD_REQUEST,
            "error",
            "not-supported",
            &format!("_type: '{unknown}' is not a clinical type served here"),
        );
    }
    match st
        .app
        .fhir_everything(&caller, &id, (start, end), &types, (count, offset))
        .await
    {
        Ok(page) => fhir(
            StatusCode::OK,
            searchset(
                &base_url(&st, &headers),
                &format!("Patient/{id}/$everything"),
                &used,
                (count, offset),
                &page,
                &ignored,
            ),
        ),
        Err(e) => app_error(e),
    }
}

fn problems_outcome(problems: &[renkei_app::fhir::fhir_search::SearchError]) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": problems.iter().map(|p| json!({ "severity": "error", "code": p.code, "diagnostics": p.message, "expression": [p.param] })).collect::<Vec<_>>()
    })
}

fn write_problems(problems: &renkei_app::fhir::WriteProblems) -> Response {
    fhir(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({
            "resourceType": "OperationOutcome",
            "issue": problems.iter().map(|p| json!({
                "severity": "error",
                "code": if p.message.starts_with("not a patient") { "not-found" } else { "invalid" },
                "diagnostics": format!("{}: {}", p.expression, p.message),
                "expression": [p.expression],
            })).collect::<Vec<_>>()
        }),
    )
}

/// The most a FHIR write's body may hold: a DocumentReference carries its files inline
/// (base64), up to 20 MB each.
pub const WRITE_LIMIT: usize = 64 * 1024 * 1024;

/// A FHIR write's body; one that is too large or cannot be read is an OperationOutcome.
pub struct FhirBody(pub axum::body::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for FhirBody {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, st: &S) -> Result<Self, Self::Rejection> {
        match axum::body::Bytes::from_request(req, st).await {
            Ok(b) => Ok(FhirBody(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(outcome(
                StatusCode::PAYLOAD_TOO_LARGE,
                "error",
                "too-costly",
                &format!(
                    "the body is larger than the {} MiB a FHIR write may send",
                    WRITE_LIMIT / 1024 / 1024
                ),
            )),
            Err(e) => Err(outcome(
                e.status(),
                "error",
                "structure",
                "the body could not be read",
            )),
        }
    }
}

fn json_body(bytes: &[u8]) -> Result<Value, Box<Response>> {
    serde_json::from_slice(bytes).map_err(|e| {
        Box::new(outcome(
            StatusCode::BAD_REQUEST,
            "error",
            "structure",
            &format!(
                "the body is not JSON (line {}, column {}): {}",
                e.line(),
                e.column(),
                match e.classify() {
                    serde_json::error::Category::Eof => "it ends too early",
                    serde_json::error::Category::Syntax => "a syntax error",
                    _ => "unreadable",
                }
            ),
        ))
    })
}

/// `POST /fhir/{type}`: a facility's system submits one resource of its record.
pub async fn create(
    State(st): State<WebState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Path(resource_type): Path<String>,
    FhirBody(body): FhirBody,
) -> Response {
    if !renkei_app::fhir::WRITABLE_TYPES.contains(&resource_type.as_str()) {
        return outcome(
            StatusCode::METHOD_NOT_ALLOWED,
            "error",
            "not-supported",
            &format!(
                "{resource_type} cannot be created here (create {})",
                renkei_app::fhir::WRITABLE_TYPES.join(", ")
            ),
        );
    }
    // The scope before the body: 403 before any 400 or 422.
    if !caller.may(&resource_type, 'c') {
        return app_error(AppError::Forbidden);
    }
    let resource = match json_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    if resource.get("resourceType").and_then(Value::as_str) != Some(resource_type.as_str()) {
        return fhir(
            StatusCode::BAD_REQUEST,
            problems_outcome(&[renkei_app::fhir::fhir_search::SearchError {
                param: format!("{resource_type}.resourceType"),
                message: format!("must be {resource_type}, as in the URL"),
                code: "invalid",
            }]),
        );
    }
    match st
        .app
        .fhir_write(&caller, &[(String::new(), resource)])
        .await
    {
        Ok(Ok(written)) => {
            let Some(w) = written.into_iter().next() else {
                return app_error(AppError::NotFound);
            };
            let location = format!("{}/{}/{}", base_url(&st, &headers), w.resource_type, w.id);
            let mut r = fhir(
                if w.created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                w.resource,
            );
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(axum::http::header::LOCATION, v);
            }
            r
        }
        Ok(Err(problems)) => write_problems(&problems),
        Err(e) => app_error(e),
    }
}

/// `POST /fhir`: a transaction Bundle of creates, stored all together or not at all.
pub async fn transaction(
    State(st): State<WebState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Response {
    let bundle = match json_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let bad = |expression: &str, message: &str| {
        write_problems(&vec![renkei_app::fhir::fhir_write::WriteError {
            expression: expression.into(),
            message: message.into(),
        }])
    };
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return bad("Bundle.resourceType", "must be Bundle");
    }
    if bundle.get("type").and_then(Value::as_str) != Some("transaction") {
        return bad(
            "Bundle.type",
            "must be transaction (all entries stored together, or none)",
        );
    }
    let Some(items) = bundle.get("entry").and_then(Value::as_array) else {
        return bad("Bundle.entry", "is required");
    };
    if items.len() > 1000 {
        return bad("Bundle.entry", "at most 1000 entries per transaction");
    }
    let mut entries = Vec::with_capacity(items.len());
    for (i, e) in items.iter().enumerate() {
        let resource = e.get("resource").cloned().unwrap_or(Value::Null);
        let t = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("");
        let method = e
            .get("request")
            .and_then(|r| r.get("method"))
            .and_then(Value::as_str);
        let url = e
            .get("request")
            .and_then(|r| r.get("url"))
            .and_then(Value::as_str);
        if method != Some("POST") || url != Some(t) {
            return bad(
                &format!("Bundle.entry[{i}].request"),
                "each entry must be a create: request.method POST and request.url the resource type",
            );
        }
        entries.push((format!("Bundle.entry[{i}].resource"), resource));
    }
    match st.app.fhir_write(&caller, &entries).await {
        Ok(Ok(written)) => {
            let base = base_url(&st, &headers);
            fhir(
                StatusCode::OK,
                json!({
                    "resourceType": "Bundle",
                    "type": "transaction-response",
                    "entry": written.iter().map(|w| json!({
                        "fullUrl": format!("{base}/{}/{}", w.resource_type, w.id),
                        "resource": w.resource,
                        "response": {
                            "status": if w.created { "201 Created" } else { "200 OK" },
                            "location": format!("{}/{}", w.resource_type, w.id),
                        }
                    })).collect::<Vec<_>>(),
                }),
            )
        }
        Ok(Err(problems)) => write_problems(&problems),
        Err(e) => app_error(e),
    }
}

/// A search on a directory type (Practitioner, PractitionerRole, Organization, Consent,
/// AuditEvent): its few parameters, strictly or leniently.
async fn directory_search(
    st: &WebState,
    caller: &ApiCaller,
    headers: &HeaderMap,
    resource_type: &str,
    given: Vec<(String, String)>,
) -> Response {
    use renkei_app::fhir::fhir_search::{DEFAULT_COUNT, MAX_COUNT};
    use renkei_app::fhir_directory::{DirectoryQuery, directory_params};
    let lenient = lenient(headers);
    let mut q = DirectoryQuery::default();
    let (mut count, mut offset) = (DEFAULT_COUNT, 0usize);
    let mut used = Vec::new();
    let mut ignored = Vec::new();
    for (name, value) in given {
        let slot = match name.as_str() {
            "_id" => &mut q.id,
            "_count" | "_offset" => {
                let Ok(n) = value.parse::<usize>() else {
                    return outcome(
                        StatusCode::BAD_REQUEST,
                        "error",
                        "invalid",
                        &format!("{name} must be a whole number"),
                    );
                };
                if name == "_count" {
                    count = n.min(MAX_COUNT);
                } else {
                    offset = n;
                }
                continue;
            }
            "_format" => continue,
            n if directory_params(resource_type).contains(&n) => match n {
                "name" => &mut q.name,
                "identifier" => &mut q.identifier,
                "organization" => &mut q.organization,
                "practitioner" => &mut q.practitioner,
                _ => &mut q.patient,
            },
            other if lenient => {
                ignored.push(other.to_string());
                continue;
            }
            other => {
                return fhir(
                    StatusCode::BAD_REQUEST,
                    json!({
                        "resourceType": "OperationOutcome",
                        "issue": [{ "severity": "error", "code": "not-supported",
                            "diagnostics": format!("{other}: not a supported search parameter of {resource_type} (supported: _id, _count, _offset, {}); send Prefer: handling=lenient to ignore it", directory_params(resource_type).join(", ")),
                            "expression": [other] }]
                    }),
                );
            }
        };
        *slot = Some(value.clone());
        used.push((name, value));
    }
    match st
        .app
        .fhir_directory(caller, resource_type, &q, (count, offset))
        .await
    {
        Ok((matches, total)) => {
            let page = renkei_app::fhir::FhirPage {
                matches,
                total,
                ..Default::default()
            };
            fhir(
                StatusCode::OK,
                searchset(
                    &base_url(st, headers),
                    resource_type,
                    &used,
                    (count, offset),
                    &page,
                    &ignored,
                ),
            )
        }
        Err(e) => app_error(e),
    }
}

/// The cookie that brings the browser back to an app's authorization after logging in.
pub const NEXT_COOKIE: &str = "renkei_next";

fn scope_meaning(scope: &str) -> String {
    let (kind, perms) = scope
        .trim_start_matches("user/")
        .split_once('.')
        .unwrap_or(("", ""));
    let what = if kind == "*" {
        "すべての情報".to_string()
    } else {
        kind.to_string()
    };
    let how = match perms {
        "c" | "cr" | "crs" | "cruds" => "の登録と参照",
        _ => "の参照",
    };
    format!("{what}{how}")
}

/// `GET /oauth/authorize`: a logged-in user approves an app that will act for them (SMART App
/// Launch, authorization code with PKCE).
pub async fn authorize_form(
    State(st): State<WebState>,
    user: Result<crate::session::CurrentUser, crate::session::Rejection>,
    jar: axum_extra::extract::CookieJar,
    RawQuery(raw): RawQuery,
) -> Response {
    let raw = raw.unwrap_or_default();
    let request: renkei_app::api::AuthorizeRequest =
        serde_urlencoded::from_str(&raw).unwrap_or_default();
    let user = match user {
        Ok(u) => u,
        Err(crate::session::Rejection::Login) => {
            let here = format!("/oauth/authorize?{raw}");
            if !raw.contains("_hop=1") {
                // Arrived from the app's site: step once within this site, with the cookie.
                return crate::views::render(&crate::views::HopPage {
                    url: format!("{here}&_hop=1"),
                });
            }
            let cookie = axum_extra::extract::cookie::Cookie::build((NEXT_COOKIE, here))
                .http_only(true)
                .same_site(axum_extra::extract::cookie::SameSite::Lax)
                .path("/")
                .secure(st.secure_cookies)
                .build();
            return (jar.add(cookie), axum::response::Redirect::to("/login")).into_response();
        }
        Err(crate::session::Rejection::Page(r)) => return r,
    };
    match st.app.authorize_request(&user.view.actor, &request).await {
        Ok(view) => {
            let params: Vec<(String, String)> = [
                ("response_type", &request.response_type),
                ("client_id", &request.client_id),
                ("redirect_uri", &request.redirect_uri),
                ("scope", &view.scopes.join(" ")),
                ("state", &request.state),
                ("code_challenge", &request.code_challenge),
                ("code_challenge_method", &request.code_challenge_method),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let host = view
                .redirect_uri
                .split("://")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .unwrap_or("")
                .to_string();
            let actor = &user.view.actor;
            // The decision's redirect leaves for the app: the form may go there, and only there.
            let policy = crate::session::policy_with_form_target(&view.redirect_uri);
            let mut page = crate::views::render(&crate::views::AuthorizePage {
                layout: user.layout(&st.app, "アプリの接続の確認"),
                client_name: view.client_name,
                who: format!(
                    "{}・{}",
                    actor.name,
                    actor
                        .profession
                        .as_deref()
                        .and_then(profession_label)
                        .unwrap_or("")
                ),
                scopes: view
                    .scopes
                    .iter()
                    .map(|s| (s.clone(), scope_meaning(s)))
                    .collect(),
                redirect_host: host,
                params,
            });
            if let Ok(v) = HeaderValue::from_str(&policy) {
                page.headers_mut()
                    .insert(axum::http::header::CONTENT_SECURITY_POLICY, v);
            }
            page
        }
        Err(e) => crate::views::error_page(&st.app, e),
    }
}

fn profession_label(key: &str) -> Option<&'static str> {
    renkei_core::user::Profession::from_key(key).map(|p| p.label())
}

#[derive(serde::Deserialize)]
pub struct AuthorizeDecision {
    #[serde(flatten)]
    request: renkei_app::api::AuthorizeRequest,
    #[serde(default)]
    decision: String,
}

/// `POST /oauth/authorize`: the user's decision; back to the app with a code, or refused.
pub async fn authorize(
    State(st): State<WebState>,
    user: crate::session::CurrentUser,
    Form(f): Form<AuthorizeDecision>,
) -> Response {
    match st
        .app
        .authorize_decision(&user.view.actor, &f.request, f.decision == "approve")
        .await
    {
        Ok(url) => axum::response::Redirect::to(&url).into_response(),
        Err(e) => crate::views::error_page(&st.app, e),
    }
}

#[derive(serde::Deserialize)]
pub struct ClinsQuery {
    #[serde(default)]
    resource: String,
    #[serde(default)]
    insured: String,
    #[serde(default)]
    report: String,
}

/// `GET /fhir/Patient/{id}/$jp-clins-bundle?resource=…&insured=…&report=…`: the facility's
/// JP-CLINS send bundle for its patient.
pub async fn clins_bundle(
    State(st): State<WebState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<ClinsQuery>,
) -> Response {
    match st
        .app
        .fhir_clins_bundle(&caller, &id, &q.resource, (&q.insured, &q.report))
        .await
    {
        Ok(bundle) => fhir(StatusCode::OK, bundle),
        Err(e) => app_error(e),
    }
}

/// `GET /fhir/Patient/{id}/$jp-clins-document?type=referral|discharge-summary&insured=…&report=…`
/// (referral: `to` or `to-name`, `purpose`; both: `course`, `author`, …): a JP-CLINS document.
pub async fn clins_document(
    State(st): State<WebState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<renkei_app::fhir::ClinsDocumentRequest>,
) -> Response {
    match st.app.fhir_clins_document(&caller, &id, &q).await {
        Ok(bundle) => fhir(StatusCode::OK, bundle),
        Err(e) => app_error(e),
    }
}
