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

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/jahis-rx-parser/fixtures")
            .join(name),
    )
    .unwrap()
}

pub(crate) async fn staff(
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
    // A one-time code is issued only while the patient's card is read: a bare (enumerable)
    // ID is refused, as an unknown one is, and the refusal is audited.
    let bare = app
        .issue_medication_code(&pharmacy, &card.common_id.digits())
        .await;
    assert!(
        matches!(bare, Err(AppError::Invalid(ref m)) if m.contains("使用できません")),
        "{bare:?}"
    );
    let unknown = app.issue_medication_code(&pharmacy, "34009999997").await;
    assert_eq!(format!("{bare:?}"), format!("{unknown:?}"));
    let typed = app
        .issue_medication_code_with(
            &pharmacy,
            &card.common_id.digits(),
            &renkei_app::identity::CardProof {
                code: card.code.clone(),
                ..Default::default()
            },
        )
        .await;
    assert!(
        typed.is_ok(),
        "typed by hand with the printed code: {typed:?}"
    );
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
    // The notebook only: not where the patient lives or how to reach them.
    let patient = back.patient.clone().unwrap_or_default();
    assert!(
        patient.address.is_empty() && patient.phone.is_empty() && patient.postal_code.is_empty(),
        "{patient:?}"
    );
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
    // One client address that tries many codes is stopped, even with a right one.
    let (right, _) = app
        .issue_medication_code(&pharmacy, &card.payload)
        .await
        .unwrap();
    for _ in 0..10 {
        let _ = app
            .medication_history_by_code("ZZZZ9999", "198.51.100.9")
            .await;
    }
    assert!(matches!(
        app.medication_history_by_code(&right, "198.51.100.9").await,
        Err(renkei_app::medication::CodeError::Other(ref m)) if m.contains("多すぎ")
    ));
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

/// A file from a watched folder (or `renkei import jahis` without `--card`) finds its
/// card-holder by the common ID at the start of its name, or else by the patient record among
/// the pharmacy's card-read patients; anything unsure is refused, naming no one.
async fn files_without_a_card_find_their_card_holder(t: &TestStore) {
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
    let yamada = |kanji: &str| PersonDetails {
        kanji_name: kanji.into(),
        kana_name: "ﾔﾏﾀﾞ ﾀﾛｳ".into(),
        birth_date: "1980-01-01".into(),
        sex: "M".into(),
        ..PersonDetails::default()
    };
    let card = app
        .issue_card(&hospital, "H-1", CardKind::Hm, Some(&yamada("山田　太郎")))
        .await
        .unwrap();
    let minimal = fixture("tc-minimal-valid.txt");
    let unsure = |r: Result<renkei_app::medication::MedicationReport, AppError>| match r {
        Err(AppError::Invalid(m)) => {
            assert!(m.contains("患者を特定できません"), "{m}");
            assert!(!m.contains("山田"), "names no patient: {m}");
        }
        other => panic!("refused, not {other:?}"),
    };
    // The pharmacy has not read this patient's card yet: no match, however well the name fits.
    unsure(
        app.import_medication_file(&pharmacy, "export.txt", &minimal)
            .await,
    );
    // Named by the common ID of a patient this pharmacy never read the card of: a number in a
    // file name is not a card, so nothing is stored and no link is made.
    let named = format!("{}_export.txt", card.common_id.digits());
    match app
        .import_medication_file(&pharmacy, &named, &minimal)
        .await
    {
        Err(AppError::Invalid(m)) => {
            assert!(m.contains("HMカードを読み取った患者ではありません"), "{m}")
        }
        other => panic!("refused, not {other:?}"),
    }
    // Once the card is read at the pharmacy, the named file is stored.
    app.read_card(&pharmacy, &card.payload, "P-1")
        .await
        .unwrap();
    let r = app
        .import_medication_file(&pharmacy, &named, &minimal)
        .await
        .unwrap();
    assert_eq!((r.dispensings_stored, r.errors.len()), (1, 0));
    // Now a file without a name finds the patient (full-width space, half-width kana agree).
    let r = app
        .import_medication_file(
            &pharmacy,
            "export2.txt",
            &fixture("tc-multi-dispensing.txt"),
        )
        .await
        .unwrap();
    assert_eq!((r.dispensings_stored, r.errors.len()), (2, 0), "{r:?}");
    // Someone else's file does not land on this patient.
    unsure(
        app.import_medication_file(
            &pharmacy,
            "other.txt",
            &fixture("tc-output-category-2-full.txt"),
        )
        .await,
    );
    // A mistyped common ID in the name is refused by its check digit.
    let mut typo = card.common_id.digits();
    let last = typo.pop().unwrap();
    typo.push(if last == '9' { '0' } else { '9' });
    match app
        .import_medication_file(&pharmacy, &format!("{typo}_x.txt"), &minimal)
        .await
    {
        Err(AppError::Invalid(m)) => assert!(m.contains("地域共通ID"), "{m}"),
        other => panic!("refused, not {other:?}"),
    }
    // A second person with the same name, birth date and sex read at this pharmacy: unsure.
    let twin = app
        .issue_card(&hospital, "H-2", CardKind::Hm, Some(&yamada("山田 太郎")))
        .await
        .unwrap();
    app.read_card(&pharmacy, &twin.payload, "P-2")
        .await
        .unwrap();
    unsure(
        app.import_medication_file(&pharmacy, "export3.txt", &minimal)
            .await,
    );
}

on_both_backends!(files_without_a_card_find_their_card_holder);

/// A hospital issues 山田 花子 (F, 1958-03-03) an HM card under `patient`: the card-holder the
/// intake, consent and 名寄せ tests share.
pub(crate) async fn hanako(
    app: &App,
    hospital: &Actor,
    patient: &str,
) -> renkei_app::identity::IssuedCard {
    app.issue_card(
        hospital,
        patient,
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
    .unwrap()
}
