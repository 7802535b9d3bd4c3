//! Common IDs and cards on SQLite and PostgreSQL: issuing where allowed, reading at a clinic
//! (名寄せ), typos refused, re-issue, revocation, the card-holding check, never-reused serials.

use std::sync::Arc;

use renkei_app::directory::{FacilityInput, UserInput};
use renkei_app::identity::{CardKind, PersonDetails};
use renkei_app::{Actor, App, AppConfig, AppError};
use renkei_core::time::{FixedClock, Timestamp};
use renkei_identity::CommonId;
use renkei_store::on_both_backends;
use renkei_store::testing::TestStore;

async fn staff(app: &App, kind: &str, name: &str, hm: bool, login: &str) -> Actor {
    let system = Actor::system("test");
    let input = FacilityInput {
        facility_type: kind.into(),
        name: name.into(),
        max_accounts: "5".into(),
        issues_hm_card: hm,
        discloses: hm,
        active: true,
        ..Default::default()
    };
    let (f, _) = app.create_facility(&system, &input).await.unwrap();
    let user = UserInput {
        facility_id: f.id,
        login_id: login.into(),
        name: "職員".into(),
        profession: "clerk".into(),
        role: "staff".into(),
        active: true,
        ..Default::default()
    };
    let u = app
        .create_user_with_password(&system, &user, "Password-2026!", false)
        .await
        .unwrap();
    Actor {
        user_id: Some(u.id),
        login_id: login.into(),
        name: "職員".into(),
        facility_id: Some(f.id),
        profession: Some("clerk".into()),
        role: renkei_core::user::Role::Staff,
        emergency: false,
        client: "127.0.0.1".into(),
    }
}

fn details() -> PersonDetails {
    PersonDetails {
        kanji_name: "髙橋 太郎".into(),
        kana_name: "タカハシ タロウ".into(),
        birth_date: "1948-04-05".into(),
        sex: "M".into(),
        ..PersonDetails::default()
    }
}

async fn cards_link_patients_across_facilities(t: &TestStore) {
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_795_219_200)));
    let app = App::new(t.store.clone(), clock, AppConfig::default());
    let hospital = staff(&app, "hospital", "広島中央総合病院", true, "chuo.clerk").await;
    let clinic = staff(&app, "clinic", "みどり内科", false, "midori.clerk").await;

    let card = app
        .issue_card(&hospital, "H-0001", CardKind::Hm, Some(&details()))
        .await
        .unwrap();
    assert_eq!(card.common_id.prefecture(), 34);
    assert_eq!(card.common_id.serial(), 1);
    // The QR code carries the card's secret (16 Base32 characters) after the reserved field.
    let prefix = format!("RENKEI1:{}::", card.common_id.digits());
    assert!(card.payload.starts_with(&prefix), "{}", card.payload);
    let secret = &card.payload[prefix.len()..];
    assert_eq!(secret.len(), 16, "{secret}");
    assert!(
        secret
            .chars()
            .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
    );
    let again = app
        .issue_card(&hospital, "H-0001", CardKind::Hm, None)
        .await;
    assert!(matches!(again, Err(AppError::Conflict(_))), "{again:?}");
    let second = app
        .issue_card(
            &hospital,
            "H-0002",
            CardKind::Hm,
            Some(&PersonDetails {
                kanji_name: "山田 花子".into(),
                kana_name: "ヤマダ ハナコ".into(),
                ..details()
            }),
        )
        .await
        .unwrap();
    assert_eq!(second.common_id.serial(), 2, "serials are issued in order");
    assert!(
        matches!(app.issue_card(&clinic, "C-1", CardKind::Hm, Some(&details())).await, Err(AppError::Invalid(m)) if m.contains("発行できません"))
    );
    assert!(matches!(
        app.issue_card(&hospital, "H-0003", CardKind::Disclosure, Some(&details()))
            .await,
        Err(AppError::Invalid(_))
    ));

    // The clinic reads the card with a barcode reader (the payload) and links its patient ID.
    let person = app
        .read_card(&clinic, &card.payload, "C-123")
        .await
        .unwrap();
    assert_eq!(person.id, card.person.id);
    // Typed by hand: the ID alone is refused as an unknown ID would be; with the code printed
    // on the card, or the patient's name and birth date, it reads.
    let bare = app
        .read_card(&clinic, &card.common_id.printed(), "C-123")
        .await;
    assert!(
        matches!(bare, Err(AppError::Invalid(ref m)) if m.contains("使用できません")),
        "{bare:?}"
    );
    let proof = |code: &str, name: &str, birth: &str| renkei_app::identity::CardProof {
        code: code.into(),
        name: name.into(),
        birth_date: birth.into(),
    };
    assert_eq!(card.code.len(), 6);
    assert_eq!(
        app.read_card_with(
            &clinic,
            &card.common_id.printed(),
            &proof(&card.code, "", ""),
            "C-123"
        )
        .await
        .unwrap()
        .id,
        person.id,
        "typed by hand with the printed code, read twice"
    );
    let wrong_code = if card.code == "000000" {
        "000001"
    } else {
        "000000"
    };
    let refused_code = app
        .read_card_with(
            &clinic,
            &card.common_id.digits(),
            &proof(wrong_code, "", ""),
            "C-123",
        )
        .await;
    assert_eq!(format!("{refused_code:?}"), format!("{bare:?}"));
    let d = details();
    assert!(
        app.read_card_with(
            &clinic,
            &card.common_id.digits(),
            &proof("", &d.kana_name, &d.birth_date.replace('-', "")),
            "C-123"
        )
        .await
        .is_ok(),
        "name and birth date, as the patient says them"
    );
    let wrong_birth = app
        .read_card_with(
            &clinic,
            &card.common_id.digits(),
            &proof("", &d.kanji_name, "1900-01-01"),
            "C-123",
        )
        .await;
    assert_eq!(format!("{wrong_birth:?}"), format!("{bare:?}"));
    // A QR code whose secret was altered, or copied onto another ID, is refused alike.
    let last = if card.payload.ends_with('A') {
        "B"
    } else {
        "A"
    };
    let forged = format!("{}{last}", &card.payload[..card.payload.len() - 1]);
    let forged = app.read_card(&clinic, &forged, "C-123").await;
    assert_eq!(format!("{forged:?}"), format!("{bare:?}"));
    // A typo is refused by the check digit, with a message for the clerk.
    let mut typo = card.common_id.digits().into_bytes();
    typo.swap(3, 4);
    if typo != card.common_id.digits().into_bytes() {
        let typo = String::from_utf8(typo).unwrap();
        assert!(
            matches!(app.read_card(&clinic, &typo, "C-123").await, Err(AppError::Invalid(m)) if m.contains("検査用数字"))
        );
    }
    // The same clinic patient ID cannot also belong to someone else.
    let clash = app.read_card(&clinic, &second.payload, "C-123").await;
    assert!(
        matches!(clash, Err(AppError::Conflict(ref m)) if m.contains("別の方")),
        "{clash:?}"
    );

    // Lost card: re-issued, the ID stays; revoking every card makes the reader refuse.
    let reissued = app
        .reissue_card(&hospital, "H-0001", CardKind::Hm)
        .await
        .unwrap();
    assert_eq!(reissued.common_id, card.common_id);
    let op = Actor::system("test");
    let cards = app.person_cards(&op, person.id).await.unwrap();
    assert_eq!(
        cards.iter().map(|c| c.status.as_str()).collect::<Vec<_>>(),
        ["replaced", "active"]
    );
    app.revoke_card(&hospital, person.id, reissued.card.id, "本人申出")
        .await
        .unwrap();
    let refused = app.read_card(&clinic, &card.payload, "C-999").await;
    assert!(
        matches!(refused, Err(AppError::Invalid(ref m)) if m.contains("使用できません")),
        "{refused:?}"
    );
    // An unknown ID is refused the same way: nothing tells whether it exists.
    let unknown = CommonId::issue(34, 77_777).unwrap();
    let refused_unknown = app.read_card(&clinic, &unknown.digits(), "C-998").await;
    assert_eq!(format!("{refused:?}"), format!("{refused_unknown:?}"));

    // Links keep their history.
    let links = app.person_links(&op, person.id).await.unwrap();
    assert_eq!(
        links
            .iter()
            .map(|l| (l.patient_local_id.as_str(), l.source.as_str()))
            .collect::<Vec<_>>(),
        [("H-0001", "card_issue"), ("C-123", "card_read")]
    );

    // Card-holding check: typed in hiragana with spaces, or with the old kanji.
    let found = app
        .card_holding_check(&hospital, "やまだ はなこ", "1948-04-05")
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "kana typed in hiragana with a space");
    let found = app
        .card_holding_check(&hospital, "たかはし たろう", "1948-04-05")
        .await
        .unwrap();
    assert!(found.is_empty(), "髙橋's only card was revoked");
    let found = app
        .card_holding_check(&hospital, "山田花子", "1948-04-05")
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert!(matches!(
        app.card_holding_check(&clinic, "山田花子", "1948-04-05")
            .await,
        Err(AppError::Forbidden)
    ));

    let report = app
        .verify_audit(renkei_store::testing::test_key(), |_| {})
        .await
        .unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
}
on_both_backends!(cards_link_patients_across_facilities);

async fn merge_and_unmerge_keep_history(t: &TestStore) {
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_795_219_200)));
    let app = App::new(t.store.clone(), clock.clone(), AppConfig::default());
    let a = staff(&app, "hospital", "広島中央総合病院", true, "chuo.clerk").await;
    let b = staff(&app, "hospital", "県立安芸病院", true, "aki.clerk").await;
    let clinic = staff(&app, "clinic", "みどり内科", false, "midori.clerk").await;
    let op = Actor::system("test");
    // The same man got a card at two hospitals: two persons.
    let first = app
        .issue_card(&a, "A-1", CardKind::Hm, Some(&details()))
        .await
        .unwrap();
    let second = app
        .issue_card(
            &b,
            "B-9",
            CardKind::Hm,
            Some(&PersonDetails {
                kanji_name: "高橋 太郎".into(),
                ..details()
            }),
        )
        .await
        .unwrap();
    assert_ne!(first.person.id, second.person.id);

    clock.advance_seconds(60);
    app.merge_persons(&op, first.person.id, second.person.id)
        .await
        .unwrap();
    let links = app.person_links(&op, first.person.id).await.unwrap();
    assert!(links.iter().any(|l| l.patient_local_id == "B-9"
        && l.active
        && l.source == format!("merge:{}", second.person.id)));
    assert!(matches!(
        app.merge_persons(&op, first.person.id, second.person.id)
            .await,
        Err(AppError::Conflict(_))
    ));
    // The merged person's card leads to the survivor.
    let read = app
        .read_card(&clinic, &second.payload, "C-5")
        .await
        .unwrap();
    assert_eq!(read.id, first.person.id);
    assert!(
        matches!(
            app.merge_persons(&a, first.person.id, second.person.id)
                .await,
            Err(AppError::Forbidden)
        ),
        "operator only"
    );

    clock.advance_seconds(60);
    app.unmerge_person(&op, second.person.id).await.unwrap();
    let back = app.person_links(&op, second.person.id).await.unwrap();
    assert!(
        back.iter()
            .any(|l| l.patient_local_id == "B-9" && l.active && l.source == "unmerge"),
        "{back:?}"
    );
    assert!(
        back.iter()
            .any(|l| l.patient_local_id == "B-9" && !l.active),
        "the history stays"
    );
    let survivor = app.person_links(&op, first.person.id).await.unwrap();
    assert!(
        survivor
            .iter()
            .all(|l| !(l.patient_local_id == "B-9" && l.active))
    );
    assert!(matches!(
        app.unmerge_person(&op, second.person.id).await,
        Err(AppError::Conflict(_))
    ));
    let report = app
        .verify_audit(renkei_store::testing::test_key(), |_| {})
        .await
        .unwrap();
    assert!(report.is_intact());
}
on_both_backends!(merge_and_unmerge_keep_history);

fn registered(kanji: &str, kana: &str, phone: &str) -> PersonDetails {
    PersonDetails {
        kanji_name: kanji.into(),
        kana_name: kana.into(),
        birth_date: "1948-04-05".into(),
        sex: "M".into(),
        phone: phone.into(),
        postal_code: "730-0011".into(),
        address: "広島県広島市中区基町1丁目2番3号".into(),
    }
}

async fn mpi_suggests_confirms_and_searches(t: &TestStore) {
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_795_219_200)));
    let app = App::new(t.store.clone(), clock, AppConfig::default());
    let a = staff(&app, "hospital", "広島中央総合病院", true, "chuo.clerk").await;
    let b = staff(&app, "hospital", "県立安芸病院", true, "aki.clerk").await;
    let op = Actor::system("test");
    let first = app
        .issue_card(
            &a,
            "A-1",
            CardKind::Hm,
            Some(&registered("髙橋 太郎", "タカハシ タロウ", "082-123-4567")),
        )
        .await
        .unwrap();
    let other = app
        .issue_card(
            &a,
            "A-2",
            CardKind::Hm,
            Some(&PersonDetails {
                birth_date: "1960-01-01".into(),
                ..registered("山田 花子", "ヤマダ ハナコ", "")
            }),
        )
        .await
        .unwrap();

    // Hospital B registers the same man, written differently, without a card.
    let written_differently = PersonDetails {
        address: "広島県広島市中区基町１－２－３".into(),
        ..registered("高橋太郎", "たかはし たろう", "0821234567")
    };
    let found = app.suggest_persons(&b, &written_differently).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].person.id, first.person.id);
    assert!(found[0].score > 0.99);
    assert!(found[0].reasons.contains(&"phone") && found[0].reasons.contains(&"birth_date"));
    // His twin brother at the same address is never suggested as him.
    let twin = registered("高橋 次郎", "タカハシ ジロウ", "082-123-4567");
    assert!(app.suggest_persons(&b, &twin).await.unwrap().is_empty());

    // Only a suggested person can be confirmed.
    let refused = app
        .confirm_suggested_person(&b, "B-5", other.person.id, &written_differently)
        .await;
    assert!(matches!(refused, Err(AppError::Invalid(_))), "{refused:?}");
    let person = app
        .confirm_suggested_person(&b, "B-5", first.person.id, &written_differently)
        .await
        .unwrap();
    assert_eq!(person.id, first.person.id);
    let links = app.person_links(&op, first.person.id).await.unwrap();
    assert!(
        links
            .iter()
            .any(|l| l.patient_local_id == "B-5" && l.active && l.source == "mpi_confirmed")
    );
    // A card issued for B-5 now goes to the same person.
    let card = app.issue_card(&b, "B-5", CardKind::Hm, None).await.unwrap();
    assert_eq!(card.person.id, first.person.id);

    // The operator's search, by each key.
    let search = |q: renkei_app::identity::PersonQuery| {
        let app = &app;
        let op = &op;
        async move {
            app.search_persons(op, &q)
                .await
                .unwrap()
                .into_iter()
                .map(|p| p.id)
                .collect::<Vec<_>>()
        }
    };
    use renkei_app::identity::PersonQuery;
    let q = |name: &str, birth: &str, phone: &str, address: &str| PersonQuery {
        name: name.into(),
        birth_date: birth.into(),
        phone: phone.into(),
        address: address.into(),
        ..PersonQuery::default()
    };
    assert_eq!(
        search(q("たかはし", "", "", "")).await,
        vec![first.person.id]
    );
    assert_eq!(search(q("高橋", "", "", "")).await, vec![first.person.id]);
    assert_eq!(
        search(q("ﾀｶﾊｼ ﾀﾛｰ", "1948-04-05", "", "")).await,
        vec![first.person.id]
    );
    assert_eq!(
        search(q("", "", "(082) 123-4567", "")).await,
        vec![first.person.id]
    );
    assert_eq!(
        search(q("", "", "", "広島県広島市中区基町1-2")).await,
        vec![first.person.id, other.person.id]
    );
    assert_eq!(
        search(q("ヤマダ", "1948-04-05", "", "")).await,
        Vec::<i64>::new()
    );
    assert!(matches!(
        app.search_persons(&op, &PersonQuery::default()).await,
        Err(AppError::Invalid(_))
    ));

    // Keys made by an older normalisation are redone at start-up.
    t.store
        .set_person_keys(&[(first.person.id, Default::default())])
        .await
        .unwrap();
    assert_eq!(search(q("タカハシ", "", "", "")).await, Vec::<i64>::new());
    assert_eq!(app.refresh_person_keys().await.unwrap(), 1);
    assert_eq!(
        search(q("タカハシ", "", "", "")).await,
        vec![first.person.id]
    );

    // Serials reserved in bulk are never handed out again.
    let from = t.store.allocate_common_id_serials(34, 10).await.unwrap();
    assert_eq!(
        t.store.allocate_common_id_serial(34).await.unwrap(),
        from + 10
    );
}
on_both_backends!(mpi_suggests_confirms_and_searches);

/// A burst of reads is refused and alerts the operator; the disclosing hospital hears of a
/// facility's first read of its patient (not of later reads).
async fn suggestions_discount_common_names_and_show_disagreements(t: &TestStore) {
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_795_219_200)));
    let app = App::new(t.store.clone(), clock, AppConfig::default());
    let a = staff(&app, "hospital", "山形中央病院", true, "yc.clerk").await;
    let b = staff(&app, "hospital", "鶴岡病院", true, "tr.clerk").await;
    let person = |kanji: &str, kana: &str, birth: &str, phone: &str| PersonDetails {
        kanji_name: kanji.into(),
        kana_name: kana.into(),
        birth_date: birth.into(),
        sex: "M".into(),
        phone: phone.into(),
        postal_code: "990-0042".into(),
        address: "山形県山形市七日町1-2-3".into(),
    };
    // Many 佐藤 浩 in the MPI (a very common name in the region), one 榊原 浩.
    for i in 0..60 {
        let born = format!("19{:02}-0{}-1{}", 20 + i, 1 + i % 9, i % 10);
        app.issue_card(
            &a,
            &format!("S-{i}"),
            CardKind::Hm,
            Some(&person("佐藤 浩", "サトウ ヒロシ", &born, "")),
        )
        .await
        .unwrap();
    }
    for (id, kanji, kana) in [("R-1", "榊原 浩", "サカキバラ ヒロシ")] {
        app.issue_card(
            &a,
            id,
            CardKind::Hm,
            Some(&person(kanji, kana, "1948-04-05", "023-111-2222")),
        )
        .await
        .unwrap();
    }
    app.issue_card(
        &a,
        "S-x",
        CardKind::Hm,
        Some(&person(
            "佐藤 浩",
            "サトウ ヒロシ",
            "1948-04-05",
            "023-111-2222",
        )),
    )
    .await
    .unwrap();
    // Registered elsewhere: born a year later by one digit, another home.
    let elsewhere = |kanji: &str, kana: &str| PersonDetails {
        postal_code: "997-0035".into(),
        address: "山形県鶴岡市馬場町9-9-9".into(),
        ..person(kanji, kana, "1949-04-05", "0235-99-8888")
    };
    let best = |found: Vec<renkei_app::identity::Candidate>| {
        found.into_iter().max_by(|x, y| x.score.total_cmp(&y.score))
    };
    let common = best(
        app.suggest_persons(&b, &elsewhere("佐藤 浩", "サトウ ヒロシ"))
            .await
            .unwrap(),
    )
    .unwrap();
    let rare = best(
        app.suggest_persons(&b, &elsewhere("榊原 浩", "サカキバラ ヒロシ"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(common.score < rare.score, "{common:?} vs {rare:?}");
    assert!(common.score < 0.9, "{common:?}");
    for c in [&common, &rare] {
        assert!(c.disagreements.contains(&"birth_date"), "{c:?}");
        assert!(c.disagreements.contains(&"phone"), "{c:?}");
        assert!(c.reasons.contains(&"kana_name"), "{c:?}");
    }
    // The same kanji read another way is never suggested.
    let other_reading = PersonDetails {
        sex: "F".into(),
        ..person("榊原 浩", "サカキハラ ユタカ", "1948-04-05", "")
    };
    let found = app.suggest_persons(&b, &other_reading).await.unwrap();
    assert!(found.is_empty(), "{found:?}");
}
on_both_backends!(suggestions_discount_common_names_and_show_disagreements);

async fn card_reads_are_rate_limited_and_first_reads_notified(t: &TestStore) {
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_795_219_200)));
    let config = AppConfig {
        card_reads_per_user: 3,
        ..AppConfig::default()
    };
    let app = App::new(t.store.clone(), clock.clone(), config);
    let op_facility = app
        .create_facility(
            &Actor::system("test"),
            &FacilityInput {
                facility_type: "operator".into(),
                name: "事務局".into(),
                max_accounts: "5".into(),
                active: true,
                ..FacilityInput::default()
            },
        )
        .await
        .unwrap()
        .0
        .id;
    let hospital = staff(&app, "hospital", "広島中央総合病院", true, "chuo.clerk").await;
    let clinic = staff(&app, "clinic", "みどり内科", false, "midori.clerk").await;
    let card = app
        .issue_card(&hospital, "H-0001", CardKind::Hm, Some(&details()))
        .await
        .unwrap();
    app.read_card(&clinic, &card.payload, "C-1").await.unwrap();
    app.read_card(&clinic, &card.payload, "C-1").await.unwrap();
    let notices = app.notifications(&hospital).await.unwrap();
    assert_eq!(
        notices.len(),
        1,
        "one notice for the first read only: {notices:?}"
    );
    assert!(
        notices[0].message.contains("みどり内科"),
        "{}",
        notices[0].message
    );
    // Two more within ten minutes: the fourth is refused, and the operator hears of it.
    app.read_card(&clinic, &card.payload, "C-1").await.unwrap();
    let burst = app.read_card(&clinic, &card.payload, "C-1").await;
    assert!(
        matches!(burst, Err(AppError::Invalid(ref m)) if m.contains("短時間")),
        "{burst:?}"
    );
    let op = Actor {
        facility_id: Some(op_facility),
        ..Actor::system("test")
    };
    let alerts = app.notifications(&op).await.unwrap();
    assert!(
        alerts.iter().any(|n| n.message.contains("読み取りの集中")),
        "{alerts:?}"
    );
    clock.advance_seconds(11 * 60);
    app.read_card(&clinic, &card.payload, "C-1").await.unwrap();
}
on_both_backends!(card_reads_are_rate_limited_and_first_reads_notified);
