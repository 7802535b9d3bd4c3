//! "Not allowed" is never "none" (#19 point 1), on SQLite and PostgreSQL: a read says, per
//! category and from the rules alone, what the reader may not see — outside the profession's
//! rights or outside the patient's consent — and a profession allowed no category at all does not
//! open a record.

use std::sync::Arc;

use renkei_app::consent::ConsentInput;
use renkei_app::{Actor, App, AppConfig, AppError};
use renkei_core::consent::{CategoryScope, CategorySet, ConsentCategory};
use renkei_core::time::{FixedClock, Timestamp};
use renkei_core::user::Profession;
use renkei_store::on_both_backends;
use renkei_store::testing::TestStore;

use crate::medication::staff;

async fn scopes_follow_the_rules_not_the_data(t: &TestStore) {
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_795_219_200)));
    let app = App::new(t.store.clone(), clock, AppConfig::default());
    let hospital = staff(
        &app,
        "hospital",
        "中央病院",
        "h.admin",
        "clerk",
        "facility_admin",
    )
    .await;
    let doctor = staff(&app, "clinic", "みどり内科", "c.dr", "doctor", "staff").await;
    let clerk = Actor {
        login_id: "c.clerk".into(),
        profession: Some("clerk".into()),
        user_id: Some(9_999),
        ..doctor.clone()
    };
    let card = crate::medication::hanako(&app, &hospital, "H-1").await;
    // Everything but prescriptions, for every participating facility.
    app.create_consent(
        &hospital,
        "H-1",
        &ConsentInput {
            target_mode: "all".into(),
            categories: ["lab", "allergy", "diagnosis", "admission"]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    app.read_card(&doctor, &card.payload, "C-1").await.unwrap();
    let scope = |v: &renkei_app::consent::RecordView, c: ConsentCategory| {
        v.scopes.iter().find(|(k, _)| *k == c).map(|(_, s)| *s)
    };
    let view = app.read_record(&doctor, card.person.id).await.unwrap();
    assert_eq!(
        scope(&view, ConsentCategory::Allergy),
        Some(CategoryScope::Visible)
    );
    assert_eq!(
        scope(&view, ConsentCategory::Prescription),
        Some(CategoryScope::OutsideConsent)
    );
    // A clerk of the same clinic: allergies are outside the clerk's rights (whatever exists).
    let system = Actor::system("test");
    let current = app.rights().await.unwrap();
    let mut rights: Vec<(Profession, CategorySet)> = Profession::ALL
        .iter()
        .map(|p| (*p, current.of(*p)))
        .collect();
    for (p, c) in &mut rights {
        if *p == Profession::Clerk {
            *c = CategorySet::of(&[ConsentCategory::Admission]);
        }
    }
    app.set_profession_rights(&system, &rights).await.unwrap();
    let view = app.read_record(&clerk, card.person.id).await.unwrap();
    assert_eq!(
        scope(&view, ConsentCategory::Allergy),
        Some(CategoryScope::OutsideProfession)
    );
    assert_eq!(
        scope(&view, ConsentCategory::Admission),
        Some(CategoryScope::Visible)
    );
    // A row that allows only the patient list: no record opens, for a real or a made-up person
    // alike, and the refusal is audited.
    for (p, c) in &mut rights {
        if *p == Profession::Clerk {
            *c = CategorySet::EMPTY;
        }
    }
    app.set_profession_rights(&system, &rights).await.unwrap();
    let real = app.read_record(&clerk, card.person.id).await;
    let made_up = app.read_record(&clerk, 987_654).await;
    assert!(matches!(real, Err(AppError::Forbidden)), "{real:?}");
    assert_eq!(format!("{real:?}"), format!("{made_up:?}"));
    let refused = app
        .access_history(&system, card.person.id)
        .await
        .unwrap()
        .into_iter()
        .any(|e| e.event.detail.contains("profession_without_rights"));
    assert!(refused);
}
on_both_backends!(scopes_follow_the_rules_not_the_data);

/// Break-the-glass opens what the region discloses, not what a facility keeps to itself, and
/// the read says it is an emergency and until when.
async fn an_emergency_read_shows_only_disclosing_facilities(t: &TestStore) {
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_795_219_200)));
    let app = App::new(t.store.clone(), clock, AppConfig::default());
    let system = Actor::system("test");
    let hospital = staff(
        &app,
        "hospital",
        "中央病院",
        "h.admin",
        "doctor",
        "facility_admin",
    )
    .await;
    let clinic = staff(&app, "clinic", "みどり内科", "c.dr", "doctor", "staff").await;
    let er = staff(&app, "clinic", "救急クリニック", "e.dr", "doctor", "staff").await;
    let card = crate::medication::hanako(&app, &hospital, "9999013").await;
    app.read_card(&clinic, &card.payload, "9999013")
        .await
        .unwrap();
    // The same problem list at the disclosing hospital and at the clinic, which does not
    // disclose (the NHO sample's PPR-01 file, filed under each facility's patient ID).
    let path = "999/901/9999013/-/PPR-01/9999013_-_PPR-01_999999999999999_20111209163030000_01_1";
    let bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/nho-ssmix2-testing-tool/sampleData")
            .join(path),
    )
    .unwrap();
    for facility in [hospital.facility_id.unwrap(), clinic.facility_id.unwrap()] {
        let file = renkei_app::intake::SourceFile {
            relative_path: path.into(),
            bytes: bytes.clone(),
        };
        let mut report = renkei_app::intake::ImportReport::default();
        app.import_ssmix2_batch(&system, facility, &[file], &mut report)
            .await
            .unwrap();
        assert_eq!(report.errors.len(), 0, "{report:?}");
    }
    app.request_emergency_access(
        &er,
        &card.common_id.digits(),
        "意識障害で救急搬送、既往歴の確認",
    )
    .await
    .unwrap();
    let seen = app.read_record(&er, card.person.id).await.unwrap();
    assert!(!seen.items.is_empty());
    assert!(
        seen.items
            .iter()
            .all(|i| i.facility_id == hospital.facility_id.unwrap()),
        "only the disclosing hospital's records"
    );
    assert!(seen.emergency_until.is_some());
    // An ordinary read carries no emergency.
    let own = app.read_record(&clinic, card.person.id).await.unwrap();
    assert!(own.emergency_until.is_none());
}
on_both_backends!(an_emergency_read_shows_only_disclosing_facilities);

/// A barcode reader scans first (#19 point 7): a patient the facility knows is read at once
/// under the ID it has; a new one is named and the patient ID asked for, nothing linked yet;
/// an unproven card is refused as before.
async fn a_card_scanned_first_asks_for_the_patient_id_only_when_new(t: &TestStore) {
    use renkei_app::identity::{CardProof, CardScan};
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_795_219_200)));
    let app = App::new(t.store.clone(), clock, AppConfig::default());
    let hospital = staff(
        &app,
        "hospital",
        "中央病院",
        "h.admin",
        "doctor",
        "facility_admin",
    )
    .await;
    let clinic = staff(&app, "clinic", "みどり内科", "c.dr", "doctor", "staff").await;
    let card = crate::medication::hanako(&app, &hospital, "H-1").await;
    let none = CardProof::default();
    match app
        .read_card_scan(&clinic, &card.payload, &none, "")
        .await
        .unwrap()
    {
        CardScan::NeedsPatientId(p) => assert_eq!(p.id, card.person.id),
        other => panic!("asked for the patient ID, not {other:?}"),
    }
    assert!(
        app.person_links(&Actor::system("test"), card.person.id)
            .await
            .unwrap()
            .iter()
            .all(|l| l.facility_id != clinic.facility_id.unwrap()),
        "nothing linked yet"
    );
    match app
        .read_card_scan(&clinic, &card.payload, &none, "C-7")
        .await
        .unwrap()
    {
        CardScan::Linked(p, id) => assert_eq!((p.id, id.as_str()), (card.person.id, "C-7")),
        other => panic!("linked, not {other:?}"),
    }
    // Next visit: the scan alone, under the ID the clinic gave.
    match app
        .read_card_scan(&clinic, &card.payload, &none, "")
        .await
        .unwrap()
    {
        CardScan::Linked(_, id) => assert_eq!(id, "C-7"),
        other => panic!("read at once, not {other:?}"),
    }
    // A bare ID is still no card.
    assert!(matches!(
        app.read_card_scan(&clinic, &card.common_id.digits(), &none, "")
            .await,
        Err(AppError::Invalid(_))
    ));
}
on_both_backends!(a_card_scanned_first_asks_for_the_patient_id_only_when_new);
