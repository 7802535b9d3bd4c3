//! Use-case tests on a real SQLite store and a fixed clock: the login stages, lockout and its
//! expiry, idle timeout, replay and recovery codes, and who may administer what.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api;
mod consent;
mod fhir;
mod files;
mod identity;
mod intake;
mod link_reviews;
mod medication;
mod medication_intake;
mod scopes;
mod ssmix2_deviations;

use std::sync::Arc;

use renkei_app::auth::PasswordOutcome;
use renkei_app::directory::{FacilityInput, UserInput};
use renkei_app::notices::NoticeInput;
use renkei_app::{Actor, App, AppConfig, AppError};
use renkei_core::audit::AuditKey;
use renkei_core::time::{FixedClock, Timestamp};
use renkei_store::Store;

const START: i64 = 1_795_219_200; // 2026-11-21T00:00:00Z
const PASSWORD: &str = "Correct-Horse-2026";

struct World {
    app: App,
    clock: Arc<FixedClock>,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Store::open(&url, AuditKey::new(vec![1; 32]).unwrap())
        .await
        .unwrap();
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(START)));
    let app = App::new(store, clock.clone(), AppConfig::default());
    World {
        app,
        clock,
        _dir: dir,
    }
}

fn facility(kind: &str, name: &str) -> FacilityInput {
    FacilityInput {
        facility_type: kind.into(),
        name: name.into(),
        max_accounts: "3".into(),
        active: true,
        ..Default::default()
    }
}

fn user(facility_id: i64, login: &str, role: &str) -> UserInput {
    UserInput {
        facility_id,
        login_id: login.into(),
        name: "利用者".into(),
        profession: "doctor".into(),
        role: role.into(),
        active: true,
        ..Default::default()
    }
}

fn code(secret: &str, unix: i64) -> String {
    use totp_rs::{Algorithm, Builder, Secret};
    let t = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_secret(Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap();
    t.generate(unix as u64).to_string()
}

/// Logs `login` in through enrolment; returns (session token, TOTP secret, recovery codes).
async fn enrol(w: &World, login: &str) -> (String, String, Vec<String>) {
    let PasswordOutcome::Enrol(token) = w
        .app
        .login_password(login, PASSWORD, "127.0.0.1")
        .await
        .unwrap()
    else {
        panic!("expected enrolment")
    };
    let e = w.app.begin_enrolment(&token).await.unwrap();
    let now = w.app.now().unix_seconds();
    let (full, codes) = w
        .app
        .confirm_enrolment(&token, &code(&e.secret_base32, now), "127.0.0.1")
        .await
        .unwrap()
        .unwrap();
    (full, e.secret_base32, codes)
}

async fn setup(w: &World) -> (Actor, i64) {
    let system = Actor::system("test");
    let (op, _) = w
        .app
        .create_facility(&system, &facility("operator", "事務局"))
        .await
        .unwrap();
    w.app
        .create_user_with_password(&system, &user(op.id, "admin", "operator"), PASSWORD, false)
        .await
        .unwrap();
    let (clinic, _) = w
        .app
        .create_facility(&system, &facility("clinic", "みどり内科"))
        .await
        .unwrap();
    w.app
        .create_user_with_password(
            &system,
            &user(clinic.id, "midori.dr", "facility_admin"),
            PASSWORD,
            false,
        )
        .await
        .unwrap();
    (system, clinic.id)
}

#[tokio::test]
async fn second_factor_replay_recovery_codes_and_idle_timeout() {
    let w = world().await;
    setup(&w).await;
    let (token, secret, codes) = enrol(&w, "midori.dr").await;
    assert_eq!(codes.len(), 10);
    assert!(w.app.session(&token, "127.0.0.1").await.is_ok());

    // Next login: the same TOTP step cannot be used twice.
    w.clock.advance_seconds(10);
    let PasswordOutcome::SecondFactor(t2) = w
        .app
        .login_password("midori.dr", PASSWORD, "x")
        .await
        .unwrap()
    else {
        panic!()
    };
    let same_step = code(&secret, w.app.now().unix_seconds());
    assert_eq!(
        w.app
            .login_second_factor(&t2, &same_step, "x")
            .await
            .unwrap(),
        None,
        "replayed step refused"
    );
    // A recovery code works once, typed in upper case with spaces.
    let typed = format!(" {} ", codes[0].to_uppercase());
    let t3 = w
        .app
        .login_second_factor(&t2, &typed, "x")
        .await
        .unwrap()
        .expect("recovery code accepted");
    assert!(
        w.app.session(&t2, "x").await.is_err(),
        "the pre-login token no longer works"
    );
    let PasswordOutcome::SecondFactor(t4) = w
        .app
        .login_password("midori.dr", PASSWORD, "x")
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        w.app
            .login_second_factor(&t4, &codes[0], "x")
            .await
            .unwrap(),
        None,
        "used recovery code refused"
    );
    // A later step is accepted.
    w.clock.advance_seconds(30);
    let fresh = code(&secret, w.app.now().unix_seconds());
    assert!(
        w.app
            .login_second_factor(&t4, &fresh, "x")
            .await
            .unwrap()
            .is_some()
    );

    // Idle timeout: 30 minutes without a request ends the session.
    w.clock.advance_seconds(29 * 60);
    assert!(w.app.session(&t3, "x").await.is_ok());
    w.clock.advance_seconds(29 * 60);
    assert!(
        w.app.session(&t3, "x").await.is_ok(),
        "each request keeps it alive"
    );
    w.clock.advance_seconds(31 * 60);
    assert!(matches!(
        w.app.session(&t3, "x").await,
        Err(AppError::Unauthenticated)
    ));
}

/// One client address that fails too often (across any accounts) is refused for the window,
/// even with a right password; other addresses are not.
#[tokio::test]
async fn one_source_address_is_throttled_across_accounts() {
    let w = world().await;
    setup(&w).await;
    for i in 0..w.app.config().source_lockout_threshold {
        assert_eq!(
            w.app
                .login_password(&format!("guess{i}"), "wrong", "198.51.100.7")
                .await
                .unwrap(),
            PasswordOutcome::Refused
        );
    }
    assert_eq!(
        w.app
            .login_password("midori.dr", PASSWORD, "198.51.100.7")
            .await
            .unwrap(),
        PasswordOutcome::Locked,
        "the guessing address is refused"
    );
    assert!(
        matches!(
            w.app
                .login_password("midori.dr", PASSWORD, "192.0.2.10")
                .await
                .unwrap(),
            PasswordOutcome::Enrol(_)
        ),
        "the account itself is not locked by someone else's guessing"
    );
    w.clock.advance_seconds(16 * 60);
    assert!(
        matches!(
            w.app
                .login_password("midori.dr", PASSWORD, "198.51.100.7")
                .await
                .unwrap(),
            PasswordOutcome::Enrol(_)
        ),
        "after the window"
    );
    let op = operator(&w).await;
    let (events, _) = w
        .app
        .search_audit(
            &op,
            &renkei_app::audit::AuditSearch {
                action: "auth.login".into(),
                outcome: "denied".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(events.iter().any(|e| e.event.detail == "source_throttled"));
}

#[tokio::test]
async fn lockout_after_repeated_failures_expires() {
    let w = world().await;
    setup(&w).await;
    for _ in 0..5 {
        assert_eq!(
            w.app
                .login_password("midori.dr", "wrong", "x")
                .await
                .unwrap(),
            PasswordOutcome::Refused
        );
    }
    assert_eq!(
        w.app
            .login_password("midori.dr", PASSWORD, "x")
            .await
            .unwrap(),
        PasswordOutcome::Locked
    );
    w.clock.advance_seconds(16 * 60);
    assert!(matches!(
        w.app
            .login_password("midori.dr", PASSWORD, "x")
            .await
            .unwrap(),
        PasswordOutcome::Enrol(_)
    ));
    // Unknown users are refused the same way.
    assert_eq!(
        w.app.login_password("nobody", PASSWORD, "x").await.unwrap(),
        PasswordOutcome::Refused
    );
    let op = operator(&w).await;
    let (events, _) = w
        .app
        .search_audit(
            &op,
            &renkei_app::audit::AuditSearch {
                action: "auth.login".into(),
                outcome: "failure".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 6, "five bad passwords and one unknown user");
    assert!(
        events
            .iter()
            .any(|e| e.event.detail == "bad_password;locked")
    );
}

async fn operator(w: &World) -> Actor {
    let (token, _, _) = enrol(w, "admin").await;
    w.app.session(&token, "127.0.0.1").await.unwrap().actor
}

#[tokio::test]
async fn rights_operator_facility_admin_and_staff() {
    let w = world().await;
    let (_, clinic) = setup(&w).await;
    let op = operator(&w).await;
    let (token, _, _) = enrol(&w, "midori.dr").await;
    let admin = w.app.session(&token, "x").await.unwrap().actor;

    // A facility administrator manages their own users, not others', and cannot make operators.
    let (staff, temp) = w
        .app
        .create_user(&admin, &user(clinic, "midori.ns", "staff"))
        .await
        .unwrap();
    assert!(temp.len() >= 10);
    assert!(matches!(
        w.app
            .create_user(&admin, &user(1, "intruder", "staff"))
            .await,
        Err(AppError::Forbidden)
    ));
    assert!(matches!(
        w.app
            .create_user(&admin, &user(clinic, "boss", "operator"))
            .await,
        Err(AppError::Invalid(_))
    ));
    let mut emergency = user(clinic, "glass", "staff");
    emergency.emergency = true;
    assert!(matches!(
        w.app.create_user(&admin, &emergency).await,
        Err(AppError::Invalid(_))
    ));
    // The account limit (3) holds.
    w.app
        .create_user(&admin, &user(clinic, "midori.ph", "staff"))
        .await
        .unwrap();
    assert!(
        matches!(w.app.create_user(&admin, &user(clinic, "one.more", "staff")).await, Err(AppError::Conflict(m)) if m.contains("上限"))
    );

    // Only the operator edits the directory, posts notices and reads the audit trail.
    assert!(matches!(
        w.app
            .create_facility(&admin, &facility("clinic", "x"))
            .await,
        Err(AppError::Forbidden)
    ));
    let notice = NoticeInput {
        title: "お知らせ".into(),
        body: "本文".into(),
        ..Default::default()
    };
    assert!(matches!(
        w.app.post_notice(&admin, &notice).await,
        Err(AppError::Forbidden)
    ));
    assert!(matches!(
        w.app.search_audit(&admin, &Default::default()).await,
        Err(AppError::Forbidden)
    ));
    w.app.post_notice(&op, &notice).await.unwrap();
    assert_eq!(w.app.current_notices().await.unwrap().len(), 1);

    // A deactivated user cannot log in and loses their sessions.
    let mut off = user(clinic, "midori.ns", "staff");
    off.active = false;
    w.app.update_user(&admin, staff.id, &off).await.unwrap();
    assert_eq!(
        w.app.login_password("midori.ns", &temp, "x").await.unwrap(),
        PasswordOutcome::Refused
    );

    // Every change above is in the chain, and the chain is intact.
    let report = w
        .app
        .verify_audit(AuditKey::new(vec![1; 32]).unwrap(), |_| {})
        .await
        .unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert!(report.checked > 10);
}

#[tokio::test]
async fn facility_input_is_checked_with_clear_messages() {
    let w = world().await;
    let (system, _) = setup(&w).await;
    let mut f = facility("hospital", "広島中央総合病院");
    f.code = "3411234567".into();
    f.discloses = true;
    let (view, warning) = w.app.create_facility(&system, &f).await.unwrap();
    assert!(warning.unwrap().contains("検証番号"));
    assert_eq!(view.oid, "1.2.392.200284.34.3411234567");
    let dup = w.app.create_facility(&system, &f).await;
    assert!(
        matches!(dup, Err(AppError::Conflict(ref m)) if m.contains("すでに登録")),
        "{dup:?}"
    );
    f.code = "34-1123-456X".into();
    assert!(
        matches!(w.app.create_facility(&system, &f).await, Err(AppError::Invalid(m)) if m.contains("数字以外"))
    );
    f.code = String::new();
    f.max_accounts = "0".into();
    assert!(
        matches!(w.app.create_facility(&system, &f).await, Err(AppError::Invalid(m)) if m.contains("アカウント上限"))
    );
    f.max_accounts = "5".into();
    f.postal_code = "730-001".into();
    assert!(
        matches!(w.app.create_facility(&system, &f).await, Err(AppError::Invalid(m)) if m.contains("郵便番号"))
    );
    // The public search sees active participants only, never the operator.
    let (found, _) = w
        .app
        .public_facility_search("", "", false, 0)
        .await
        .unwrap();
    assert!(found.iter().all(|f| f.facility_type.key() != "operator"));
    let (found, _) = w.app.public_facility_search("", "", true, 0).await.unwrap();
    assert_eq!(found.len(), 1, "disclosing only");
}
