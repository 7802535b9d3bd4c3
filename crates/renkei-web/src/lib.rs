//! The web edge: the Japanese portal (server-rendered with askama), login sessions and CSRF.
//!
//! Architecture invariant: this crate depends on `renkei-app`, never on `renkei-store`; every
//! handler reaches data through a use case that checks rights and writes the audit trail. No
//! handler logs request bodies (they carry passwords and, later, patient data).

mod admin;
pub mod card_pdf;
mod cards;
pub mod consent_pdf;
mod consents;
mod fhir;
mod files;
mod link_reviews;
mod medication;
mod pages;
mod render;
mod session;
mod viewer;
mod views;
mod wopi;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, options, post};
use renkei_app::App;

/// Where Debian's `fonts-noto-cjk` puts the Japanese font used for printable cards.
pub const DEFAULT_CARD_FONT: &str = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc";

/// What every handler receives. Axum clones it for every request, so it is one `Arc`.
#[derive(Clone)]
pub struct WebState(std::sync::Arc<WebShared>);

impl WebState {
    pub fn new(shared: WebShared) -> Self {
        WebState(std::sync::Arc::new(shared))
    }
}

impl std::ops::Deref for WebState {
    type Target = WebShared;

    fn deref(&self) -> &WebShared {
        &self.0
    }
}

/// The application and the server's settings the handlers need.
pub struct WebShared {
    pub app: App,
    /// Mark cookies `Secure` (true whenever the server speaks HTTPS).
    pub secure_cookies: bool,
    /// The Japanese font for printable cards (`None`: printing explains what to install).
    pub card_font: Option<std::sync::Arc<Vec<u8>>>,
    /// The server's public base URL (`https://renkei.example.jp`), which OAuth client
    /// assertions must name in `aud`; unset, the request's own host is used.
    pub public_url: Option<String>,
}

/// The whole HTTP surface. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/healthz", get(pages::healthz))
        .route("/static/renkei.css", get(pages::stylesheet))
        .route("/static/renkei.js", get(pages::script))
        .route("/", get(pages::top))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/login/totp", get(pages::totp_form).post(pages::totp))
        .route("/login/enrol", get(pages::enrol_form).post(pages::enrol))
        .route("/login/cancel", post(pages::cancel_login))
        .route("/logout", post(pages::logout))
        .route(
            "/password",
            get(pages::password_form).post(pages::change_password),
        )
        .route(
            "/account/recovery-codes",
            get(pages::recovery_form).post(pages::regenerate_recovery),
        )
        .route("/facilities/search", get(pages::public_search))
        .route("/cards", get(cards::cards))
        .route("/cards/read", post(cards::read))
        .route("/cards/issue", post(cards::issue))
        .route("/cards/check", post(cards::check))
        .route("/cards/{id}", get(cards::issued))
        .route("/cards/{id}/pdf", get(cards::pdf))
        .route(
            "/admin/facilities",
            get(admin::facilities).post(admin::create_facility),
        )
        .route("/admin/facilities/new", get(admin::new_facility))
        .route(
            "/admin/facilities/{id}",
            get(admin::show_facility).post(admin::update_facility),
        )
        .route("/admin/facilities/{id}/edit", get(admin::edit_facility))
        .route("/admin/facilities/{id}/users/new", get(admin::new_user))
        .route("/admin/facilities/{id}/users", post(admin::create_user))
        .route(
            "/admin/users/{id}",
            get(admin::edit_user).post(admin::update_user),
        )
        .route(
            "/admin/users/{id}/reset-password",
            post(admin::reset_password),
        )
        .route("/admin/users/{id}/reset-totp", post(admin::reset_totp))
        .route(
            "/admin/notices",
            get(admin::notices).post(admin::create_notice),
        )
        .route("/admin/notices/new", get(admin::new_notice))
        .route(
            "/admin/notices/{id}",
            get(admin::edit_notice).post(admin::update_notice),
        )
        .route("/admin/notices/{id}/delete", post(admin::delete_notice))
        .route("/admin/audit", get(admin::audit))
        .route("/admin/persons", get(admin::persons))
        .route("/link-reviews", get(link_reviews::list))
        .route("/link-reviews/{id}", post(link_reviews::resolve))
        .route("/admin/persons/{id}", get(admin::person))
        .route("/admin/persons/{id}/merge", post(admin::merge_person))
        .route("/admin/persons/{id}/unmerge", post(admin::unmerge_person))
        .route("/admin/institutions/{code}", get(admin::institution_lookup))
        .route("/consents", get(consents::consents).post(consents::create))
        .route("/consents/{id}/withdraw", post(consents::withdraw))
        .route(
            "/consents/{id}/scan",
            post(consents::attach_scan).layer(DefaultBodyLimit::max(
                renkei_app::consent::MAX_SCAN_BYTES + 64 * 1024,
            )),
        )
        .route("/consents/{id}/pdf", get(consents::form_pdf))
        .route("/consents/scans/{id}", get(consents::scan))
        .route("/consents/referral", post(consents::referral))
        .route("/consents/opt-out", post(consents::opt_out))
        .route("/consents/policy", post(consents::policy))
        .route(
            "/medication",
            get(medication::form)
                .post(medication::upload)
                .layer(DefaultBodyLimit::max(50 * 1024 * 1024)),
        )
        .route("/medication/code", post(medication::issue_code))
        .route("/medication/link", post(medication::link))
        .route("/api/medication/v1/history", post(medication::history))
        .route("/box", get(files::hm_box))
        .route("/box/{id}/share", post(files::share))
        .route("/box/{id}/unshare", post(files::unshare))
        .route("/box/{id}/delete", post(files::delete))
        .route("/box/{id}/edit", post(wopi::edit))
        .route(
            "/wopi/files/{id}",
            get(wopi::check_file_info).post(wopi::file_operation),
        )
        .route(
            "/wopi/files/{id}/contents",
            get(wopi::get_file)
                .post(wopi::put_file)
                .layer(DefaultBodyLimit::max(
                    renkei_app::wopi::MAX_SAVE_BYTES as usize + 1024,
                )),
        )
        .route("/cases", get(files::cases).post(files::create_case))
        .route("/cases/new", get(files::new_case))
        .route("/cases/{id}", get(files::case))
        .route("/cases/{id}/reply", post(files::reply))
        .route("/cases/{id}/reading", post(files::reading))
        .route("/files/{id}", get(files::download))
        .route("/files/{id}/image", get(files::image))
        .route(
            "/uploads",
            post(files::tus_create).merge(options(files::tus_options)),
        )
        .route(
            "/uploads/{id}",
            axum::routing::head(files::tus_head)
                .patch(files::tus_patch)
                .delete(files::tus_delete)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/patients", get(consents::patients))
        .route("/patients/hide", post(consents::hide))
        .route(
            "/emergency",
            get(consents::emergency_form).post(consents::emergency),
        )
        .route(
            "/admin/rights",
            get(consents::rights).post(consents::set_rights),
        )
        .route("/admin/persons/{id}/access", get(consents::access_history))
        .route("/viewer/{person}", get(viewer::patient))
        .route("/viewer/{person}/documents/{item}", get(viewer::document))
        .route(
            "/viewer/{person}/documents/{item}/{index}",
            get(viewer::document_file),
        )
        .route(
            "/viewer/{person}/documents/{item}/{index}/image",
            get(viewer::image),
        )
        .route(
            "/admin/lab-codes",
            get(viewer::lab_codes).post(viewer::map_lab_code),
        )
        .route("/oauth/token", post(fhir::token))
        .route(
            "/oauth/authorize",
            get(fhir::authorize_form).post(fhir::authorize),
        )
        .route("/fhir/metadata", get(fhir::metadata))
        .route(
            "/fhir/Patient",
            get(fhir::patient_search).post(fhir::not_supported),
        )
        .route("/fhir/Patient/$ihe-pix", get(fhir::pix))
        .route("/fhir/Patient/{id}", get(fhir::patient_read))
        .route("/fhir/Patient/{id}/$everything", get(fhir::everything))
        .route(
            "/fhir/Patient/{id}/$jp-clins-bundle",
            get(fhir::clins_bundle),
        )
        .route(
            "/fhir/Patient/{id}/$jp-clins-document",
            get(fhir::clins_document),
        )
        .route("/fhir/Binary/{id}", get(fhir::binary))
        .route(
            "/fhir",
            get(fhir::not_supported)
                .post(fhir::transaction)
                .layer(DefaultBodyLimit::max(fhir::WRITE_LIMIT)),
        )
        .route(
            "/fhir/{resource_type}",
            get(fhir::search)
                .post(fhir::create)
                .layer(DefaultBodyLimit::max(fhir::WRITE_LIMIT)),
        )
        .route(
            "/fhir/{resource_type}/{id}",
            get(fhir::read).post(fhir::not_supported),
        )
        .route(
            "/fhir/{resource_type}/{id}/{*rest}",
            get(fhir::not_supported).post(fhir::not_supported),
        )
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            session::csrf_guard,
        ))
        .layer(middleware::from_fn(session::security_headers))
        .layer(DefaultBodyLimit::max(session::FORM_LIMIT))
        .with_state(state)
}

/// The client address as the server saw it (for the audit trail).
pub type Peer = axum::extract::ConnectInfo<SocketAddr>;
