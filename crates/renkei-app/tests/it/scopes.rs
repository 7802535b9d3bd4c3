//! "Not allowed" is never "none" (#19 point 1), on SQLite and PostgreSQL: a read says, per
//! category and from the rules alone, what the reader may not see — outside the profession's
//! rights or outside the patient's consent — and a profession allowed no category at all does not
//! open a record.

use std::sync::Arc;

use renkei_app::consent::ConsentInput;
use renkei_app::identity::{CardKind, PersonDetails};
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
    let card = app
        .issue_card(
            &hospital,
            "H-1",
            CardKind::Hm,
            Some(&PersonDetails {
                kanji_name: "山田 花子".into(),
                kana_name: "ヤマダ ハナコ".into(),
                birth_date: "1958-03-03".into(),
                sex: "F".into(),
                ..PersonDetails::default()
            }),
        )
        .await
        .unwrap();
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
