//! Pharmacies' dispensing records (JAHIS) on SQLite and PostgreSQL: uploaded with the patient's
//! HM card, stored once however often re-sent, shown in the viewer's 処方 row as the pharmacy's
//! record under consent.

use std::sync::Arc;

use renkei_app::directory::{FacilityInput, UserInput};
use renkei_app::identity::{CardKind, PersonDetails};
use renkei_app::{Actor, App, AppConfig, AppError};
use renkei_core::consent::{CategorySet, ConsentCategory, PolicyMode};
use renkei_core::time::{FixedClock, Timestamp};
use renkei_store::on_both_backends;
use renkei_store::testing::TestStore;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/jahis-rx-parser/fixtures")
            .join(name),
    )
    .unwrap()
}

async fn staff(
    app: &App,
    kind: &str,
    name: &str,
    login: &str,
    profession: &str,
    role: &str,
) -> Actor {
    let system = Actor::system("test");
    let (f, _) = app
        .create_facility(
            &system,
            &FacilityInput {
                facility_type: kind.into(),
                name: name.into(),
                max_accounts: "5".into(),
                discloses: kind != "clinic",
                issues_hm_card: kind == "hospital",
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
                profession: profession.into(),
                role: role.into(),
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
        profession: Some(profession.into()),
        role: if role == "facility_admin" {
            renkei_core::user::Role::FacilityAdmin
        } else {
            renkei_core::user::Role::Staff
        },
        emergency: false,
        client: "127.0.0.1".into(),
    }
}

async fn dispensings_are_stored_once_and_viewed_under_consent(t: &TestStore) {
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_795_219_200)));
    let app = App::new(t.store.clone(), clock.clone(), AppConfig::default());
    let hospital = staff(&app, "hospital", "中央病院", "h.clerk", "clerk", "staff").await;
    let pharmacy = staff(
        &app,
        "pharmacy",
        "駅前薬局",
        "p.admin",
        "pharmacist",
        "facility_admin",
    )
    .await;
    let clinic = staff(&app, "clinic", "みどり内科", "c.dr", "doctor", "staff").await;
    let card = app
        .issue_card(
            &hospital,
            "H-1",
            CardKind::Hm,
            Some(&PersonDetails {
                kanji_name: "山田 太郎".into(),
                kana_name: "ヤマダ タロウ".into(),
                birth_date: "1980-01-01".into(),
                sex: "M".into(),
                ..PersonDetails::default()
            }),
        )
        .await
        .unwrap();
    let files = vec![
        ("multi.txt".to_string(), fixture("tc-multi-dispensing.txt")),
        (
            "bad.txt".to_string(),
            fixture("tc-invalid-missing-drug-code.txt"),
        ),
    ];
    let report = app
        .import_medication(&pharmacy, &card.payload, &files)
        .await
        .unwrap();
    assert_eq!(report.dispensings_stored, 2);
    assert_eq!(report.errors.len(), 1);
    assert!(report.errors[0].1.contains("4行目"), "{:?}", report.errors);
    // The same export again, in Shift_JIS this time: nothing new.
    let sjis = renkei_clinical::jahis::encode_shift_jis(
        &String::from_utf8(fixture("tc-multi-dispensing.txt"))
            .unwrap()
            .replace('\n', "\r\n"),
    );
    let again = app
        .import_medication(
            &pharmacy,
            &card.common_id.digits(),
            &[("again.txt".into(), sjis)],
        )
        .await
        .unwrap();
    assert_eq!(
        (again.dispensings_stored, again.dispensings_unchanged),
        (0, 2)
    );
    // A clinic that never read the card knows nothing; a clinic that did sees the pharmacy's
    // dispensings once the pharmacy discloses prescriptions.
    assert!(matches!(
        app.read_record(&clinic, card.person.id).await,
        Err(AppError::NotFound)
    ));
    app.read_card(&clinic, &card.payload, "C-1").await.unwrap();
    assert!(
        app.read_record(&clinic, card.person.id)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    app.set_disclosure_policy(
        &pharmacy,
        PolicyMode::FacilityLevel,
        CategorySet::of(&[ConsentCategory::Prescription]),
    )
    .await
    .unwrap();
    let view = app.read_record(&clinic, card.person.id).await.unwrap();
    let drugs: Vec<&str> = view.items.iter().map(|i| i.item.display.as_str()).collect();
    assert_eq!(drugs.len(), 2, "{drugs:?}");
    assert!(drugs.contains(&"ノルバスク錠２．５ｍｇ") && drugs.contains(&"ロキソニン錠６０ｍｇ"));
    let item = view
        .items
        .iter()
        .find(|i| i.item.display.starts_with("ロキソニン"))
        .unwrap();
    assert_eq!(item.item.effective_date.as_deref(), Some("2026-02-20"));
    assert_eq!(item.item.code_system, "RECEIPT");
    let detail: serde_json::Value = serde_json::from_str(&item.item.detail).unwrap();
    assert_eq!(detail["days"], "14");
    assert_eq!(detail["prescriber"]["name"], "中央 一郎");
    // A one-time code: the app reads the history once, in JAHIS and in FHIR; a second use,
    // an expired code and a wrong code fail plainly.
    let (code, _) = app
        .issue_medication_code(&pharmacy, &card.payload)
        .await
        .unwrap();
    assert_eq!(code.len(), 8);
    let history = app
        .medication_history_by_code(&code.to_lowercase(), "203.0.113.5")
        .await
        .unwrap();
    let back = renkei_clinical::jahis::parse_text(&history.jahis).unwrap();
    assert_eq!(back.dispensings.len(), 2);
    assert_eq!(back.dispensings[0].date, "20260220", "oldest first");
    assert_eq!(history.fhir["entry"].as_array().unwrap().len(), 2);
    assert_eq!(
        history.fhir["entry"][0]["resource"]["resourceType"],
        "MedicationDispense"
    );
    assert_eq!(
        history.fhir["entry"][0]["resource"]["daysSupply"]["value"],
        14.0
    );
    assert_eq!(
        app.medication_history_by_code(&code, "203.0.113.5")
            .await
            .unwrap_err(),
        renkei_app::medication::CodeError::Used
    );
    assert_eq!(
        app.medication_history_by_code("ABCD2345", "203.0.113.5")
            .await
            .unwrap_err(),
        renkei_app::medication::CodeError::Unknown
    );
    let (late, _) = app
        .issue_medication_code(&pharmacy, &card.payload)
        .await
        .unwrap();
    clock.advance_seconds(11 * 60);
    assert_eq!(
        app.medication_history_by_code(&late, "203.0.113.5")
            .await
            .unwrap_err(),
        renkei_app::medication::CodeError::Expired
    );
    let uses = app
        .access_history(&Actor::system("test"), card.person.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.action == "medication.code.use")
        .count();
    assert_eq!(
        uses, 1,
        "the successful use names the person; refusals cannot"
    );

    // Unknown cards are refused.
    assert!(matches!(
        app.import_medication(&pharmacy, "34000000000", &files)
            .await,
        Err(AppError::Invalid(_))
    ));
}
on_both_backends!(dispensings_are_stored_once_and_viewed_under_consent);
