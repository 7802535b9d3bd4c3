//! 名寄せ review, on SQLite and PostgreSQL: a hospital's feed whose PID no longer names the
//! person its patient ID is linked to (a marriage, a clerk's typo, a wrong link) is stored all
//! the same, and the link goes on a review list with a warning in the viewer until someone
//! confirms or closes it — over HL7 live messages and SS-MIX2 storage files alike.

use std::sync::Arc;

use renkei_app::directory::{FacilityInput, UserInput};
use renkei_app::intake::{ImportReport, SourceFile};
use renkei_app::{Actor, App, AppConfig, AppError};
use renkei_core::time::{FixedClock, Timestamp};
use renkei_store::on_both_backends;
use renkei_store::testing::TestStore;

/// A hospital (with its 10-digit code, so that it may send HL7) and its administrator.
async fn hospital(app: &App, code: &str, name: &str, login: &str) -> Actor {
    let system = Actor::system("test");
    let (f, _) = app
        .create_facility(
            &system,
            &FacilityInput {
                code: code.into(),
                facility_type: "hospital".into(),
                name: name.into(),
                max_accounts: "5".into(),
                discloses: true,
                issues_hm_card: true,
                active: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let u = app
        .create_user_with_password(
            &system,
            &UserInput {
                facility_id: f.id,
                login_id: login.into(),
                name: login.into(),
                profession: "doctor".into(),
                role: "facility_admin".into(),
                active: true,
                ..Default::default()
            },
            "Password-2026!",
            false,
        )
        .await
        .unwrap();
    Actor {
        user_id: Some(u.id),
        login_id: login.into(),
        name: login.into(),
        facility_id: Some(f.id),
        profession: Some("doctor".into()),
        role: renkei_core::user::Role::FacilityAdmin,
        emergency: false,
        client: "127.0.0.1".into(),
    }
}

fn adt(control: &str, name: &str, birth: &str, sex: &str) -> String {
    format!(
        "MSH|^~\\&|HIS|3411234564|RENKEI|RENKEI|20261121090000||ADT^A08^ADT_A01|{control}|P|2.5||||||UNICODE UTF-8\rEVN|A08|20261121090000\rPID|0001||1234567^^^^PI||{name}^^^^^^L^I~^^^^^^L^P||{birth}|{sex}\r"
    )
}

async fn a_live_feed_that_names_someone_else_is_kept_and_reviewed(t: &TestStore) {
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_795_219_200)));
    let app = App::new(t.store.clone(), clock, AppConfig::default());
    let admin = hospital(&app, "3411234564", "登呂病院", "h.admin").await;
    let other = hospital(&app, "3411234572", "北病院", "n.admin").await;
    let card = crate::medication::hanako(&app, &admin, "1234567").await;
    // The person as the hospital registered her: no review.
    assert_eq!(
        app.receive_hl7(adt("A1", "山田^花子", "19580303", "F").as_bytes())
            .await
            .outcome,
        "stored"
    );
    assert!(app.link_reviews(&admin, true).await.unwrap().is_empty());
    // Married: the hospital's record now says 佐藤 花子. Stored (AA), and put on the list.
    let r = app
        .receive_hl7(adt("A2", "佐藤^花子", "19580303", "F").as_bytes())
        .await;
    assert_eq!(r.outcome, "stored");
    assert!(String::from_utf8_lossy(&r.ack).contains("|AA|"));
    let open = app.link_reviews(&admin, true).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].review.fields, "氏名");
    assert_eq!(open[0].common_id, card.common_id.digits());
    // The viewer warns, naming the hospital and the field, never the values.
    let view = app.patient_view(&admin, card.person.id).await.unwrap();
    assert_eq!(view.link_warnings.len(), 1, "{:?}", view.link_warnings);
    assert!(view.link_warnings[0].contains("登呂病院") && view.link_warnings[0].contains("氏名"));
    assert!(!view.link_warnings[0].contains("佐藤"));
    // Sent again: one review, not two. Another hospital's administrator sees none of it.
    app.receive_hl7(adt("A3", "佐藤^花子", "19580303", "F").as_bytes())
        .await;
    assert_eq!(app.link_reviews(&admin, true).await.unwrap().len(), 1);
    assert!(app.link_reviews(&other, true).await.unwrap().is_empty());
    assert!(matches!(
        app.resolve_link_review(&other, open[0].review.id, true)
            .await,
        Err(AppError::NotFound)
    ));
    // Confirmed as the same person: the warning goes, and the same record raises nothing.
    app.resolve_link_review(&admin, open[0].review.id, true)
        .await
        .unwrap();
    assert!(
        app.patient_view(&admin, card.person.id)
            .await
            .unwrap()
            .link_warnings
            .is_empty()
    );
    app.receive_hl7(adt("A4", "佐藤^花子", "19580303", "F").as_bytes())
        .await;
    assert!(app.link_reviews(&admin, true).await.unwrap().is_empty());
    // A different birth date and sex: a new review; closing it unlinks the patient ID.
    app.receive_hl7(adt("A5", "佐藤^花子", "19600101", "M").as_bytes())
        .await;
    let open = app.link_reviews(&admin, true).await.unwrap();
    assert_eq!(open[0].review.fields, "氏名,生年月日,性別");
    app.resolve_link_review(&admin, open[0].review.id, false)
        .await
        .unwrap();
    let links = app
        .person_links(&Actor::system("test"), card.person.id)
        .await
        .unwrap();
    assert!(links.iter().all(|l| !l.active), "{links:?}");
    // The list keeps what was decided, and by whom.
    let all = app.link_reviews(&admin, false).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(
        all.iter()
            .any(|r| r.review.resolution == "unlinked" && r.review.resolved_by == "h.admin")
    );
    let audited = app
        .access_history(&Actor::system("test"), card.person.id)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event.action.starts_with("identity.link.review"))
        .count();
    assert_eq!(audited, 4, "two opened, two resolved");
}
on_both_backends!(a_live_feed_that_names_someone_else_is_kept_and_reviewed);

async fn a_storage_file_that_names_someone_else_is_kept_and_reviewed(t: &TestStore) {
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_795_219_200)));
    let app = App::new(t.store.clone(), clock, AppConfig::default());
    let admin = hospital(&app, "3411234564", "登呂病院", "h.admin").await;
    let card = crate::medication::hanako(&app, &admin, "1234567").await;
    // A clerk's typo in the birth date, in the hospital's standardized storage.
    let file = SourceFile {
        relative_path:
            "123/456/1234567/-/ADT-00/1234567_-_ADT-00_999999999999999_20261121090000000_-_1".into(),
        bytes: format!("{}\x1c\r", adt("S1", "山田^花子", "19580330", "F")).into_bytes(),
    };
    let mut report = ImportReport::default();
    app.import_ssmix2_batch(
        &Actor::system("test"),
        admin.facility_id.unwrap(),
        &[file],
        &mut report,
    )
    .await
    .unwrap();
    assert_eq!(
        (report.stored, report.errors.len(), report.link_reviews),
        (1, 0, 1),
        "{report:?}"
    );
    let open = app
        .link_reviews(&Actor::system("test"), true)
        .await
        .unwrap();
    assert_eq!(open[0].review.fields, "生年月日");
    assert_eq!(open[0].facility_name, "登呂病院");
    let view = app.patient_view(&admin, card.person.id).await.unwrap();
    assert!(view.link_warnings[0].contains("生年月日"));
}
on_both_backends!(a_storage_file_that_names_someone_else_is_kept_and_reviewed);
