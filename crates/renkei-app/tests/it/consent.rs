//! Consent and access control on SQLite and PostgreSQL, as a story: a hospital's records, a
//! card read at a clinic, consents by target, category and period, withdrawal, professions,
//! referred-only and facility-level rules, the card-less list, emergency access, and the
//! per-patient access history.

use std::sync::Arc;

use renkei_app::consent::ConsentInput;
use renkei_app::directory::{FacilityInput, UserInput};
use renkei_app::identity::{CardKind, PersonDetails};
use renkei_app::{Actor, App, AppConfig, AppError};
use renkei_core::consent::{CategorySet, ConsentCategory, PolicyMode};
use renkei_core::time::{FixedClock, Timestamp};
use renkei_store::on_both_backends;
use renkei_store::testing::TestStore;

const START: i64 = 1_795_219_200; // 2026-11-21

async fn facility(app: &App, kind: &str, code: &str, name: &str) -> i64 {
    app.create_facility(
        &Actor::system("test"),
        &FacilityInput {
            code: code.into(),
            facility_type: kind.into(),
            name: name.into(),
            max_accounts: "10".into(),
            discloses: kind == "hospital",
            issues_hm_card: kind == "hospital",
            active: true,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .0
    .id
}

async fn user(app: &App, facility_id: i64, login: &str, profession: &str, role: &str) -> Actor {
    let u = app
        .create_user_with_password(
            &Actor::system("test"),
            &UserInput {
                facility_id,
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
        facility_id: Some(facility_id),
        profession: Some(profession.into()),
        role: match role {
            "facility_admin" => renkei_core::user::Role::FacilityAdmin,
            _ => renkei_core::user::Role::Staff,
        },
        emergency: false,
        client: "127.0.0.1".into(),
    }
}

fn msh(code: &str, control: &str, kind: &str) -> String {
    format!(
        "MSH|^~\\&|HIS|{code}|RENKEI|RENKEI|20261121090000||{kind}|{control}|P|2.5||||||UNICODE UTF-8\r"
    )
}

/// A lab result dated `date`, a diagnosis and a prescription for patient `pid`.
async fn records(app: &App, code: &str, pid: &str, date: &str) {
    let lab = format!(
        "{}PID|0001||{pid}^^^^PI||高橋^太郎\rSPM|1|||023^血清^JC10\rOBX|1|NM|3D010000001926101^グルコース^JC10||105|mg/dL|73-109||||F|||{date}\r",
        msh(code, &format!("L{pid}{date}"), "OUL^R22^OUL_R22")
    );
    assert_eq!(app.receive_hl7(lab.as_bytes()).await.outcome, "stored");
    let dx = format!(
        "{}EVN||{date}0900\rPID|0001||{pid}^^^^PI||高橋^太郎\rPRB|AD|{date}|20061617^高血圧症^MDCDX2|{pid}001|||{date}||||I109^^I10^O^外来時^JHSD0004\r",
        msh(code, &format!("D{pid}{date}"), "PPR^ZD1^PPR_ZD1")
    );
    assert_eq!(app.receive_hl7(dx.as_bytes()).await.outcome, "stored");
}

fn categories(view: &renkei_app::consent::RecordView) -> Vec<&'static str> {
    let mut c: Vec<&str> = view.items.iter().map(|i| i.category.key()).collect();
    c.sort_unstable();
    c.dedup();
    c
}

async fn consent_rules_every_read(t: &TestStore) {
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(START)));
    let app = App::new(t.store.clone(), clock.clone(), AppConfig::default());
    let op = Actor::system("test");
    facility(&app, "operator", "", "事務局").await;
    let hospital = facility(&app, "hospital", "3411234564", "登呂病院").await;
    let clinic = facility(&app, "clinic", "", "みどり内科").await;
    let other_clinic = facility(&app, "clinic", "", "かわせ整形外科").await;
    let h_admin = user(&app, hospital, "h.admin", "clerk", "facility_admin").await;
    let c_dr = user(&app, clinic, "c.dr", "doctor", "staff").await;
    let c_ph = user(&app, clinic, "c.ph", "pharmacist", "staff").await;
    let c_clerk = user(&app, clinic, "c.clerk", "clerk", "staff").await;
    let o_dr = user(&app, other_clinic, "o.dr", "doctor", "staff").await;

    records(&app, "3411234564", "A-1", "20240510").await;
    records(&app, "3411234564", "A-1", "20261101").await;
    let card = app
        .issue_card(
            &h_admin,
            "A-1",
            CardKind::Hm,
            Some(&PersonDetails {
                kanji_name: "高橋 太郎".into(),
                kana_name: "タカハシ タロウ".into(),
                birth_date: "1948-04-05".into(),
                sex: "M".into(),
                ..PersonDetails::default()
            }),
        )
        .await
        .unwrap();
    let person = card.person.id;

    // A clinic that never read the card does not know the patient: same as no such person.
    assert!(matches!(
        app.read_record(&c_dr, person).await,
        Err(AppError::NotFound)
    ));
    assert!(matches!(
        app.read_record(&c_dr, 999_999).await,
        Err(AppError::NotFound)
    ));

    // The card is read at the clinic: card-less access, but no consent yet, so nothing shows.
    app.read_card(&c_dr, &card.payload, "C-9").await.unwrap();
    let view = app.read_record(&c_dr, person).await.unwrap();
    assert!(view.items.is_empty());
    let list = app.patient_list(&c_clerk, false, None).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].person.id, person);

    // The hospital records a consent: labs and diagnoses, to all facilities, data from 2025.
    let input = ConsentInput {
        target_mode: "all".into(),
        categories: vec!["lab".into(), "diagnosis".into()],
        data_from: "2025-01-01".into(),
        ..ConsentInput::default()
    };
    for bad in [
        ConsentInput {
            target_mode: "everyone".into(),
            ..input.clone()
        },
        ConsentInput {
            categories: vec![],
            ..input.clone()
        },
        ConsentInput {
            categories: vec!["x-ray".into()],
            ..input.clone()
        },
        ConsentInput {
            data_from: "2025-13-01".into(),
            ..input.clone()
        },
        ConsentInput {
            data_from: "2026-01-01".into(),
            data_to: "2025-01-01".into(),
            ..input.clone()
        },
        ConsentInput {
            target_mode: "named".into(),
            ..input.clone()
        },
    ] {
        assert!(
            matches!(
                app.create_consent(&h_admin, "A-1", &bad).await,
                Err(AppError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
    // Only the disclosing facility records consents for its patients.
    assert!(app.create_consent(&c_dr, "C-9", &input).await.is_err());
    let consent = app.create_consent(&h_admin, "A-1", &input).await.unwrap();
    let view = app.read_record(&c_dr, person).await.unwrap();
    assert_eq!(categories(&view), vec!["diagnosis", "lab"]);
    assert!(
        view.items.iter().all(|i| i
            .item
            .effective_date
            .as_deref()
            .is_none_or(|d| d >= "2025-01-01")),
        "the 2024 lab result is outside the period"
    );
    let labs = view
        .items
        .iter()
        .filter(|i| i.category == ConsentCategory::Lab)
        .count();
    assert_eq!(labs, 1);
    // Professions on top: a pharmacist sees both; a clerk nothing.
    assert_eq!(
        categories(&app.read_record(&c_ph, person).await.unwrap()),
        vec!["diagnosis", "lab"]
    );
    // A profession allowed no category opens no record at all (#19: not an empty one).
    assert!(matches!(
        app.read_record(&c_clerk, person).await,
        Err(AppError::Forbidden)
    ));
    // The operator narrows the pharmacists' row: diagnoses no more.
    let rights = app.rights().await.unwrap();
    let rows: Vec<_> = renkei_core::user::Profession::ALL
        .into_iter()
        .map(|p| {
            let set = rights.of(p);
            if p == renkei_core::user::Profession::Pharmacist {
                (p, set.without(ConsentCategory::Diagnosis))
            } else {
                (p, set)
            }
        })
        .collect();
    assert!(matches!(
        app.set_profession_rights(&c_dr, &rows).await,
        Err(AppError::Forbidden)
    ));
    app.set_profession_rights(&op, &rows).await.unwrap();
    assert_eq!(
        categories(&app.read_record(&c_ph, person).await.unwrap()),
        vec!["lab"]
    );

    // Withdrawal takes effect at once.
    app.withdraw_consent(&h_admin, consent).await.unwrap();
    assert!(
        app.read_record(&c_dr, person)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(matches!(
        app.withdraw_consent(&h_admin, consent).await,
        Err(AppError::Conflict(_))
    ));

    // Named targets: the other clinic, not this one.
    app.create_consent(
        &h_admin,
        "A-1",
        &ConsentInput {
            target_mode: "named".into(),
            targets: vec![other_clinic],
            categories: vec!["diagnosis".into()],
            ..ConsentInput::default()
        },
    )
    .await
    .unwrap();
    assert!(
        app.read_record(&c_dr, person)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    app.read_card(&o_dr, &card.payload, "K-1").await.unwrap();
    assert_eq!(
        categories(&app.read_record(&o_dr, person).await.unwrap()),
        vec!["diagnosis"]
    );

    // Referred-only hospital: consent to all, but only where the patient was referred.
    app.create_consent(
        &h_admin,
        "A-1",
        &ConsentInput {
            target_mode: "all".into(),
            categories: vec!["lab".into()],
            ..ConsentInput::default()
        },
    )
    .await
    .unwrap();
    app.set_disclosure_policy(&h_admin, PolicyMode::ReferredOnly, CategorySet::EMPTY)
        .await
        .unwrap();
    assert!(
        app.read_record(&c_dr, person)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    app.record_referral(&h_admin, "A-1", clinic).await.unwrap();
    assert_eq!(
        categories(&app.read_record(&c_dr, person).await.unwrap()),
        vec!["lab"]
    );

    // Facility-level consent (Hareyaka-net): prescriptions and diagnoses for every card holder
    // who has not opted out.
    app.set_disclosure_policy(
        &h_admin,
        PolicyMode::FacilityLevel,
        CategorySet::of(&[ConsentCategory::Diagnosis]),
    )
    .await
    .unwrap();
    assert_eq!(
        categories(&app.read_record(&c_dr, person).await.unwrap()),
        vec!["diagnosis"]
    );
    app.set_opt_out(&h_admin, "A-1", true).await.unwrap();
    assert!(
        app.read_record(&c_dr, person)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    app.set_opt_out(&h_admin, "A-1", false).await.unwrap();
    // Only the facility's administrator sets the rule.
    assert!(matches!(
        app.set_disclosure_policy(&c_dr, PolicyMode::PerPatient, CategorySet::EMPTY)
            .await,
        Err(AppError::Invalid(_) | AppError::Forbidden)
    ));

    // Card-less list: hidden rows come back when the card is read again; after a year the
    // grant lapses and the card must be read again.
    app.hide_patients(&c_clerk, &[person]).await.unwrap();
    assert!(
        app.patient_list(&c_clerk, false, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        app.patient_list(&c_clerk, true, None).await.unwrap().len(),
        1
    );
    app.read_card(&c_dr, &card.payload, "C-9").await.unwrap();
    assert_eq!(
        app.patient_list(&c_clerk, false, None).await.unwrap().len(),
        1
    );
    clock.advance_seconds(366 * 24 * 3600);
    assert!(
        app.patient_list(&c_clerk, false, None)
            .await
            .unwrap()
            .is_empty()
    );
    // The clinic's own link remains, so the patient is known, but nothing is disclosed.
    assert!(
        app.read_record(&c_dr, person)
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Emergency access: a reason, a time limit, notifications, marked in the audit trail.
    let stranger = facility(&app, "clinic", "", "救急クリニック").await;
    let s_dr = user(&app, stranger, "s.dr", "doctor", "staff").await;
    assert!(matches!(
        app.read_record(&s_dr, person).await,
        Err(AppError::NotFound)
    ));
    assert!(matches!(
        app.request_emergency_access(&s_dr, &card.common_id.digits(), "急")
            .await,
        Err(AppError::Invalid(_))
    ));
    // Probes of IDs nobody holds, or that are not IDs, are refused and audited as emergency
    // events.
    // 34009999997: a valid ID (Damm check digit) far beyond any card the test issues.
    for probe in ["34009999997", "not-an-id"] {
        assert!(matches!(
            app.request_emergency_access(&s_dr, probe, "意識障害で救急搬送、既往歴の確認")
                .await,
            Err(AppError::Invalid(_))
        ));
    }
    let (probes, _) = app
        .search_audit(
            &Actor::system("test"),
            &renkei_app::audit::AuditSearch {
                action: "consent.emergency.grant".into(),
                outcome: "failure".into(),
                emergency_only: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(probes.len(), 2, "{probes:?}");
    assert!(probes.iter().any(|e| e.event.detail == "unknown_id"));
    assert!(probes.iter().all(|e| !e.event.target.contains("not-an-id")));
    app.request_emergency_access(
        &s_dr,
        &card.common_id.digits(),
        "意識障害で救急搬送、既往歴の確認",
    )
    .await
    .unwrap();
    let seen = app.read_record(&s_dr, person).await.unwrap();
    assert_eq!(
        categories(&seen),
        vec!["diagnosis", "lab"],
        "emergency shows what the profession may see"
    );
    let notices: Vec<_> = app
        .notifications(&h_admin)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.kind == "emergency_access")
        .collect();
    assert_eq!(notices.len(), 1);
    assert!(
        notices[0].message.contains("救急クリニック") && notices[0].message.contains("意識障害")
    );
    clock.advance_seconds(25 * 3600);
    assert!(matches!(
        app.read_record(&s_dr, person).await,
        Err(AppError::NotFound)
    ));

    // Who read what, when.
    let history = app.access_history(&op, person).await.unwrap();
    let reads: Vec<_> = history
        .iter()
        .filter(|e| e.event.action == "clinical.read")
        .collect();
    assert!(reads.len() >= 15, "{}", reads.len());
    assert!(
        reads
            .iter()
            .any(|e| e.event.outcome == renkei_core::audit::AuditOutcome::Denied)
    );
    assert!(
        reads
            .iter()
            .any(|e| e.event.emergency && e.event.login_id == "s.dr")
    );
    assert!(
        history
            .iter()
            .any(|e| e.event.action == "consent.emergency.grant" && e.event.emergency)
    );
    assert!(matches!(
        app.access_history(&c_dr, person).await,
        Err(AppError::Forbidden)
    ));
    let report = app
        .verify_audit(renkei_store::testing::test_key(), |_| {})
        .await
        .unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
}
on_both_backends!(consent_rules_every_read);

/// HM-net's hospital-only disclosure card (診療情報開示カード): read at a clinic, it opens only
/// the issuing hospital's records, even where another hospital's consent would allow more.
async fn a_disclosure_card_opens_only_its_hospital(t: &TestStore) {
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(START)));
    let app = App::new(t.store.clone(), clock, AppConfig::default());
    let system = Actor::system("test");
    let a = facility(&app, "hospital", "3411234564", "登呂病院").await;
    let (b_view, _) = app
        .create_facility(
            &system,
            &FacilityInput {
                code: "3410100113".into(),
                facility_type: "hospital".into(),
                name: "県立安芸病院".into(),
                max_accounts: "10".into(),
                discloses: true,
                issues_disclosure_card: true,
                active: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let b = b_view.id;
    let clinic = facility(&app, "clinic", "", "みどり内科").await;
    let a_admin = user(&app, a, "a.admin", "clerk", "facility_admin").await;
    let b_admin = user(&app, b, "b.admin", "clerk", "facility_admin").await;
    let c_dr = user(&app, clinic, "c.dr", "doctor", "staff").await;
    records(&app, "3411234564", "A-1", "20261101").await;
    records(&app, "3410100113", "B-1", "20261102").await;
    let details = PersonDetails {
        kanji_name: "高橋 太郎".into(),
        kana_name: "タカハシ タロウ".into(),
        birth_date: "1948-04-05".into(),
        sex: "M".into(),
        ..PersonDetails::default()
    };
    // Hospital A issues him an HM card; hospital B reads it (B-1) and issues its own
    // disclosure card; the HM card is then revoked (lost, not re-issued).
    let hm = app
        .issue_card(&a_admin, "A-1", CardKind::Hm, Some(&details))
        .await
        .unwrap();
    let person = hm.person.id;
    app.read_card(&b_admin, &hm.payload, "B-1").await.unwrap();
    let disclosure = app
        .issue_card(&b_admin, "B-1", CardKind::Disclosure, None)
        .await
        .unwrap();
    assert_eq!(disclosure.person.id, person);
    app.revoke_card(&a_admin, person, hm.card.id, "紛失")
        .await
        .unwrap();
    // Both hospitals consent to labs and diagnoses for every facility.
    for (admin, pid) in [(&a_admin, "A-1"), (&b_admin, "B-1")] {
        app.create_consent(
            admin,
            pid,
            &ConsentInput {
                target_mode: "all".into(),
                categories: vec!["lab".into(), "diagnosis".into()],
                ..ConsentInput::default()
            },
        )
        .await
        .unwrap();
    }
    // The clinic reads his disclosure card.
    app.read_card(&c_dr, &disclosure.payload, "C-1")
        .await
        .unwrap();
    let list = app.patient_list(&c_dr, false, None).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].only_facility, Some(b));
    let view = app.read_record(&c_dr, person).await.unwrap();
    assert!(!view.items.is_empty());
    assert!(
        view.items.iter().all(|i| i.facility_id == b),
        "only hospital B's items"
    );
}
on_both_backends!(a_disclosure_card_opens_only_its_hospital);

/// The viewer's reads: the calendar from day groups, the lab table from the latest result
/// days, a trend across codes mapped by the operator — each consent-checked and audited.
async fn the_viewer_reads_what_each_screen_shows(t: &TestStore) {
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(START)));
    let app = App::new(t.store.clone(), clock, AppConfig::default());
    let op = Actor::system("test");
    let hospital = facility(&app, "hospital", "3411234564", "登呂病院").await;
    let clinic = facility(&app, "clinic", "", "みどり内科").await;
    let h_admin = user(&app, hospital, "h.admin", "clerk", "facility_admin").await;
    let c_dr = user(&app, clinic, "c.dr", "doctor", "staff").await;
    records(&app, "3411234564", "A-1", "20261101").await;
    records(&app, "3411234564", "A-1", "20261110").await;
    // A local lab code (not JLAC10) for the same test.
    let local = format!(
        "{}PID|0001||A-1^^^^PI||高橋^太郎\rSPM|1|||023^血清^JC10\rOBX|1|NM|K-GLU^血糖^99LOCAL||98|mg/dL|73-109||||F|||20261115\r",
        msh("3411234564", "LOCAL1", "OUL^R22^OUL_R22")
    );
    assert_eq!(app.receive_hl7(local.as_bytes()).await.outcome, "stored");
    let card = app
        .issue_card(
            &h_admin,
            "A-1",
            CardKind::Hm,
            Some(&PersonDetails {
                kanji_name: "高橋 太郎".into(),
                kana_name: "タカハシ タロウ".into(),
                birth_date: "1948-04-05".into(),
                sex: "M".into(),
                ..PersonDetails::default()
            }),
        )
        .await
        .unwrap();
    app.create_consent(
        &h_admin,
        "A-1",
        &ConsentInput {
            target_mode: "all".into(),
            categories: vec!["lab".into()],
            ..ConsentInput::default()
        },
    )
    .await
    .unwrap();
    app.read_card(&c_dr, &card.payload, "C-1").await.unwrap();
    let person = card.person.id;

    let cal = app.patient_calendar(&c_dr, person, None).await.unwrap();
    assert_eq!(cal.calendar.month, "2026-11");
    let rows: std::collections::BTreeSet<_> =
        cal.calendar.marks.keys().map(|(r, _)| r.key()).collect();
    assert_eq!(
        rows.into_iter().collect::<Vec<_>>(),
        vec!["lab"],
        "diagnoses are not consented to"
    );
    let labs = app.patient_labs(&c_dr, person).await.unwrap();
    let table = renkei_app::viewer::view::lab_table(&labs.items, &labs.lab_map);
    assert_eq!(table.dates, vec!["2026-11-15", "2026-11-10", "2026-11-01"]);
    assert!(
        table
            .rows
            .iter()
            .any(|r| r.key == "local:1:K-GLU" || r.key.starts_with("local:"))
    );

    // The operator maps the local code; the trend of the JLAC10 row then includes it.
    assert!(matches!(
        app.map_lab_code(&op, hospital, "K-GLU", "not-a-code").await,
        Err(AppError::Invalid(_))
    ));
    assert!(matches!(
        app.map_lab_code(&c_dr, hospital, "K-GLU", "3D010000001926101")
            .await,
        Err(AppError::Forbidden)
    ));
    let codes = app.local_lab_codes(&op).await.unwrap();
    assert!(
        codes
            .iter()
            .any(|c| c.code == "K-GLU" && c.jlac10.is_none())
    );
    app.map_lab_code(&op, hospital, "K-GLU", "3D010000001926101")
        .await
        .unwrap();
    let labs = app.patient_labs(&c_dr, person).await.unwrap();
    let table = renkei_app::viewer::view::lab_table(&labs.items, &labs.lab_map);
    let glucose = table
        .rows
        .iter()
        .find(|r| r.cells.len() == 3)
        .expect("one row, three days");
    let trend = app
        .patient_lab_trend(&c_dr, person, &glucose.key)
        .await
        .unwrap();
    let t2 = renkei_app::viewer::view::lab_table(&trend.items, &trend.lab_map);
    assert_eq!(renkei_app::viewer::view::trend(&t2, &glucose.key).len(), 3);

    // Each screen was one audited read.
    let reads = app
        .access_history(&op, person)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.action == "clinical.read" && e.event.login_id == "c.dr")
        .count();
    assert_eq!(reads, 4);
}
on_both_backends!(the_viewer_reads_what_each_screen_shows);
