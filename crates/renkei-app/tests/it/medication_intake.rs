//! What real pharmacies send, on SQLite and PostgreSQL: another patient's file under a card,
//! the same dispensing re-exported with a new address or first as split parts, split QR codes
//! read out of order one symbol at a time, era and Western dates side by side, and the records
//! a notebook carries besides its drugs. The texts are written here as a careless or hostile
//! sender would; the public fixtures (jahis-rx-parser) are used where they fit.

use std::sync::Arc;

use renkei_app::medication::{MedicationOptions, MedicationReport};
use renkei_app::{Actor, App, AppConfig, AppError};
use renkei_core::time::{FixedClock, Timestamp};
use renkei_store::on_both_backends;
use renkei_store::testing::TestStore;

use crate::medication::staff;

struct Pharmacy {
    app: App,
    clock: Arc<FixedClock>,
    pharmacy: Actor,
    card: renkei_app::identity::IssuedCard,
}

/// A hospital issues 山田 花子's card; 駅前薬局 will read it.
async fn setup(t: &TestStore) -> Pharmacy {
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
    let card = crate::medication::hanako(&app, &hospital, "H-1").await;
    Pharmacy {
        app,
        clock,
        pharmacy,
        card,
    }
}

/// Record 1 for a patient (birth date as given: era or Western).
fn patient(name: &str, kana: &str, birth: &str, sex: &str, address: &str) -> String {
    format!("1,{name},{sex},{birth},730-0011,{address},082-000-0000,,A+,52.3,{kana}\r\n")
}

const HANAKO: (&str, &str, &str, &str) = ("山田 花子", "ヤマダ ハナコ", "S330303", "2");

fn hanako(address: &str) -> String {
    patient(HANAKO.0, HANAKO.1, HANAKO.2, HANAKO.3, address)
}

/// One dispensing of 駅前薬局 on `date` for みどり内科's prescription.
fn dispensing(date: &str, drug: &str, days: &str) -> String {
    format!(
        "5,{date},1\r\n11,駅前薬局,34,4,1234567,,,,1\r\n51,みどり内科,34,1,7654321,1\r\n55,緑 一郎,内科,1\r\n201,1,{drug},1,錠,2,620000001,1\r\n301,1,1日1回朝食後,{days},日分,1,,,1\r\n"
    )
}

fn file(body: &str) -> Vec<(String, Vec<u8>)> {
    vec![(
        "export.txt".into(),
        format!("JAHISTC08,1\r\n{body}").into_bytes(),
    )]
}

async fn import(p: &Pharmacy, body: &str) -> MedicationReport {
    p.app
        .import_medication(&p.pharmacy, &p.card.payload, &file(body))
        .await
        .unwrap()
}

/// Active prescription items of the pharmacy's patient, by drug name.
async fn drugs(t: &TestStore, p: &Pharmacy) -> Vec<(String, Option<String>)> {
    let local = p.card.common_id.digits();
    let (_, items) = t
        .store
        .patient_record(p.pharmacy.facility_id.unwrap(), &local)
        .await
        .unwrap();
    let mut v: Vec<(String, Option<String>)> = items
        .into_iter()
        .filter(|i| i.category == "prescription" && i.status == "dispensed")
        .map(|i| (i.display, i.effective_date))
        .collect();
    v.sort();
    v
}

async fn another_patients_file_is_refused_naming_the_fields(t: &TestStore) {
    let p = setup(t).await;
    // 山田 花子's card, 山田 太郎's file (another person of the same family name).
    let taro = patient("山田 太郎", "ヤマダ タロウ", "19800101", "1", "広島市");
    let r = import(
        &p,
        &format!(
            "{taro}{}",
            dispensing("20261101", "アムロジピン錠5mg", "28")
        ),
    )
    .await;
    assert_eq!(r.dispensings_stored, 0);
    assert_eq!(r.errors.len(), 1, "{r:?}");
    let why = &r.errors[0].1;
    assert!(
        why.contains("一致しない項目: 氏名、カナ氏名、生年月日、性別"),
        "{why}"
    );
    assert!(
        !why.contains("太郎") && !why.contains("花子") && !why.contains("1980"),
        "no values: {why}"
    );
    assert!(drugs(t, &p).await.is_empty());
    // Her own file: widths, kana forms and the era date agree once normalised.
    let own = patient("山田　花子", "ﾔﾏﾀﾞ ﾊﾅｺ", "19580303", "2", "広島市");
    let r = import(
        &p,
        &format!("{own}{}", dispensing("20261101", "アムロジピン錠5mg", "28")),
    )
    .await;
    assert_eq!((r.dispensings_stored, r.errors.len()), (1, 0), "{r:?}");
}
on_both_backends!(another_patients_file_is_refused_naming_the_fields);

async fn a_confirmed_name_change_passes_and_is_audited(t: &TestStore) {
    let p = setup(t).await;
    // Married: 佐藤 花子, same birth date and sex.
    let married = patient("佐藤 花子", "サトウ ハナコ", "S330303", "2", "広島市");
    let body = format!(
        "{married}{}",
        dispensing("20261101", "アムロジピン錠5mg", "28")
    );
    let refused = import(&p, &body).await;
    assert!(
        refused.errors[0].1.contains("氏名の変更を確認した"),
        "{refused:?}"
    );
    let confirmed = MedicationOptions {
        name_change_confirmed: true,
    };
    let r = p
        .app
        .import_medication_with(&p.pharmacy, &p.card.payload, &file(&body), confirmed)
        .await
        .unwrap();
    assert_eq!((r.dispensings_stored, r.errors.len()), (1, 0), "{r:?}");
    assert!(
        r.warnings
            .iter()
            .any(|w| w.1.contains("氏名の変更を確認済み"))
    );
    let audited = p
        .app
        .access_history(&Actor::system("test"), p.card.person.id)
        .await
        .unwrap()
        .into_iter()
        .any(|e| {
            e.event.action == "clinical.medication.import"
                && e.event.detail.contains("name_change_confirmed=1")
        });
    assert!(audited);
    // The confirmation covers a name, never a different birth date.
    let other = patient("佐藤 花子", "サトウ ハナコ", "S330304", "2", "広島市");
    let r = p
        .app
        .import_medication_with(
            &p.pharmacy,
            &p.card.payload,
            &file(&format!(
                "{other}{}",
                dispensing("20261102", "ロキソニン錠60mg", "3")
            )),
            confirmed,
        )
        .await
        .unwrap();
    assert!(r.errors[0].1.contains("生年月日"), "{r:?}");
}
on_both_backends!(a_confirmed_name_change_passes_and_is_audited);

async fn a_dispensing_is_one_dispensing_however_it_arrives(t: &TestStore) {
    let p = setup(t).await;
    let d = dispensing("R081101", "アムロジピン錠5mg", "28");
    let r = import(&p, &format!("{}{d}", hanako("広島市中区基町1-1"))).await;
    assert_eq!(r.dispensings_stored, 1, "{r:?}");
    // Re-exported after the patient moved and was weighed again: the same dispensing.
    let moved = hanako("広島市南区宇品1-2-3").replace("52.3", "50.1");
    let r = import(&p, &format!("{moved}{d}")).await;
    assert_eq!(
        (r.dispensings_stored, r.dispensings_unchanged),
        (0, 1),
        "{r:?}"
    );
    // The newer address was taken all the same (from the notebook's own records).
    let (record, _) = t
        .store
        .patient_record(p.pharmacy.facility_id.unwrap(), &p.card.common_id.digits())
        .await
        .unwrap();
    assert_eq!(record.unwrap().address, "広島市南区宇品1-2-3");
    // The same dispensing, in a Western date and split over two QR codes: still the same.
    let western = dispensing("20261101", "アムロジピン錠5mg", "28");
    let (head, tail) = western.split_at(western.find("201,").unwrap());
    let part = |n: u32, body: &str| {
        format!(
            "JAHISTC08,1\r\n{}{body}911,77,2,{n}\r\n",
            hanako("広島市南区宇品1-2-3")
        )
    };
    let files = vec![
        ("qr-2".to_string(), part(2, tail).into_bytes()),
        ("qr-1".to_string(), part(1, head).into_bytes()),
    ];
    let r = p
        .app
        .import_medication(&p.pharmacy, &p.card.payload, &files)
        .await
        .unwrap();
    assert_eq!(
        (
            r.dispensings_stored,
            r.dispensings_unchanged,
            r.pending.len()
        ),
        (0, 1, 0),
        "{r:?}"
    );
    // A correction (the pharmacy fixed the days): it replaces, and the old one stays as history.
    let r = import(
        &p,
        &format!(
            "{}{}",
            hanako("広島市南区宇品1-2-3"),
            dispensing("R081101", "アムロジピン錠5mg", "30")
        ),
    )
    .await;
    assert_eq!(r.dispensings_stored, 1, "{r:?}");
    assert_eq!(
        drugs(t, &p).await,
        [(
            "アムロジピン錠5mg".to_string(),
            Some("2026-11-01".to_string())
        )]
    );
    let versions = t
        .store
        .patient_messages_of_source(
            p.pharmacy.facility_id.unwrap(),
            &p.card.common_id.digits(),
            "jahis",
        )
        .await
        .unwrap();
    assert!(
        versions
            .iter()
            .filter(|(_, raw)| String::from_utf8_lossy(raw).contains(",30,日分"))
            .count()
            == 1
            && !versions
                .iter()
                .any(|(_, raw)| String::from_utf8_lossy(raw).contains(",28,日分")),
        "the corrected version is the current one"
    );
    // Two prescription forms filled the same day (a narcotic on its own form): two dispensings.
    let two = format!(
        "{}{}{}",
        hanako("広島市南区宇品1-2-3"),
        dispensing("20261115", "オキシコンチン錠5mg", "7"),
        dispensing("20261115", "マグミット錠330mg", "7")
    );
    let r = import(&p, &two).await;
    assert_eq!(r.dispensings_stored, 2, "{r:?}");
}
on_both_backends!(a_dispensing_is_one_dispensing_however_it_arrives);

async fn dates_in_either_form_are_stored_as_dates(t: &TestStore) {
    let p = setup(t).await;
    // A Western-dated dispensing, then an older era-dated one with an older address: the
    // patient's address stays the newer one, and both items carry their real dates.
    import(
        &p,
        &format!(
            "{}{}",
            hanako("新住所"),
            dispensing("20261120", "ロキソニン錠60mg", "3")
        ),
    )
    .await;
    import(
        &p,
        &format!(
            "{}{}",
            hanako("旧住所"),
            dispensing("H310115", "アムロジピン錠5mg", "28")
        ),
    )
    .await;
    let (record, _) = t
        .store
        .patient_record(p.pharmacy.facility_id.unwrap(), &p.card.common_id.digits())
        .await
        .unwrap();
    assert_eq!(record.unwrap().address, "新住所");
    assert_eq!(
        drugs(t, &p).await,
        [
            (
                "アムロジピン錠5mg".to_string(),
                Some("2019-01-15".to_string())
            ),
            (
                "ロキソニン錠60mg".to_string(),
                Some("2026-11-20".to_string())
            ),
        ]
    );
    let stamps: Vec<String> = t
        .store
        .patient_messages_of_source(
            p.pharmacy.facility_id.unwrap(),
            &p.card.common_id.digits(),
            "jahis",
        )
        .await
        .unwrap()
        .into_iter()
        .map(|(at, _)| at)
        .collect();
    assert!(
        stamps.contains(&"20190115000000000".to_string()),
        "{stamps:?}"
    );
    assert!(
        stamps.contains(&"20261120000000000".to_string()),
        "{stamps:?}"
    );
}
on_both_backends!(dates_in_either_form_are_stored_as_dates);

async fn split_codes_wait_for_every_part_on_every_path(t: &TestStore) {
    let p = setup(t).await;
    let whole = format!(
        "{}{}",
        dispensing("20261101", "アムロジピン錠5mg", "28"),
        dispensing("20261101", "ロキソニン錠60mg", "3").replace("55,緑 一郎", "55,緑 二郎")
    );
    let cut: Vec<&str> = {
        let a = whole.find("201,").unwrap();
        let b = whole.rfind("5,2026").unwrap();
        vec![&whole[..a], &whole[a..b], &whole[b..]]
    };
    // Only the first part carries the patient record, as pharmacies' systems split.
    let part = |n: usize| {
        let patient = if n == 1 {
            hanako("広島市")
        } else {
            String::new()
        };
        format!(
            "JAHISTC08,1\r\n{patient}{}911,00000000000042,3,{n}\r\n",
            cut[n - 1]
        )
    };
    // The barcode reader, one symbol per submission, out of order.
    let scan = |n: usize| vec![("QRコード".to_string(), part(n).into_bytes())];
    let r = p
        .app
        .import_medication(&p.pharmacy, &p.card.payload, &scan(3))
        .await
        .unwrap();
    assert_eq!((r.dispensings_stored, r.pending.len()), (0, 1), "{r:?}");
    assert_eq!(r.pending[0].missing(), [1, 2]);
    assert!(
        drugs(t, &p).await.is_empty(),
        "nothing is stored part by part"
    );
    let r = p
        .app
        .import_medication(&p.pharmacy, &p.card.payload, &scan(1))
        .await
        .unwrap();
    assert_eq!(r.pending[0].missing(), [2]);
    // The upload screen shows what is waiting.
    let waiting = p.app.pending_medication_splits(&p.pharmacy).await.unwrap();
    assert_eq!(waiting.pending[0].received, [1, 3]);
    let r = p
        .app
        .import_medication(&p.pharmacy, &p.card.payload, &scan(2))
        .await
        .unwrap();
    assert_eq!(
        (r.dispensings_stored, r.pending.len(), r.errors.len()),
        (2, 0, 0),
        "{r:?}"
    );
    assert!(
        r.warnings.is_empty(),
        "no missing record 1 at 「0行目」: {:?}",
        r.warnings
    );
    assert!(
        p.app
            .pending_medication_splits(&p.pharmacy)
            .await
            .unwrap()
            .pending
            .is_empty()
    );
    // Every symbol typed into one field at once, in any order: merged in one go (same data).
    let all = format!("{}{}{}", part(2), part(3), part(1));
    let r = p
        .app
        .import_medication(
            &p.pharmacy,
            &p.card.payload,
            &[("QRコード".to_string(), all.into_bytes())],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.dispensings_stored, r.dispensings_unchanged),
        (0, 2),
        "{r:?}"
    );
    // A watched folder (no card): held, then merged and filed under the card-holder.
    let again = |n: usize| {
        part(n)
            .replace("00000000000042", "00000000000043")
            .replace("20261101", "20261102")
    };
    let r = p
        .app
        .import_medication_file(&p.pharmacy, "qr-2.txt", again(2).as_bytes())
        .await
        .unwrap();
    assert_eq!(r.pending.len(), 1);
    p.app
        .import_medication_file(&p.pharmacy, "qr-3.txt", again(3).as_bytes())
        .await
        .unwrap();
    let r = p
        .app
        .import_medication_file(&p.pharmacy, "qr-1.txt", again(1).as_bytes())
        .await
        .unwrap();
    assert_eq!((r.dispensings_stored, r.errors.len()), (2, 0), "{r:?}");
    // The rest never comes: after the time limit the parts are given up, said and audited.
    let late = |n: usize| part(n).replace("00000000000042", "00000000000044");
    p.app
        .import_medication(
            &p.pharmacy,
            &p.card.payload,
            &[("QRコード".into(), late(1).into_bytes())],
        )
        .await
        .unwrap();
    p.clock.advance_seconds(31 * 60);
    let r = p
        .app
        .import_medication(
            &p.pharmacy,
            &p.card.payload,
            &[("QRコード".into(), late(2).into_bytes())],
        )
        .await
        .unwrap();
    assert_eq!(r.expired.len(), 1, "{r:?}");
    assert!(
        r.expired[0].contains("00000000000044") && r.expired[0].contains("破棄"),
        "{r:?}"
    );
    assert_eq!(r.pending[0].received, [2], "the late part starts afresh");
    // A part read with another patient's card is refused.
    let north = staff(&p.app, "hospital", "北病院", "n.clerk", "clerk", "staff").await;
    let other = crate::medication::hanako(&p.app, &north, "N-1").await;
    let r = p
        .app
        .import_medication(
            &p.pharmacy,
            &other.payload,
            &[("QRコード".into(), late(3).into_bytes())],
        )
        .await
        .unwrap();
    assert!(r.errors[0].1.contains("別のHMカード"), "{r:?}");
}
on_both_backends!(split_codes_wait_for_every_part_on_every_path);

async fn every_record_a_notebook_carries_is_kept_and_shown(t: &TestStore) {
    let p = setup(t).await;
    let body = format!(
        "{}2,1,ペニシリンで発疹,1\r\n2,2,ロキソニンで胃痛,1\r\n3,ガスター10,20261101,,2,1,4987000000000\r\n31,1,ファモチジン,,,2\r\n4,血圧手帳も持参,R081101,2\r\n{}401,粉砕不可,1\r\n411,腎機能に注意,31,1\r\n421,残薬は5錠,1\r\n501,次回は一包化,1\r\n601,朝は飲み忘れがち,R081102\r\n701,薬師 花子,駅前薬局,082-111-1111,R080401,,1\r\n",
        hanako("広島市"),
        dispensing("R081101", "アムロジピン錠5mg", "28"),
    );
    let r = import(&p, &body).await;
    assert_eq!((r.dispensings_stored, r.errors.len()), (1, 0), "{r:?}");
    let (_, items) = t
        .store
        .patient_record(p.pharmacy.facility_id.unwrap(), &p.card.common_id.digits())
        .await
        .unwrap();
    let has = |category: &str, kind: &str, text: &str| {
        items
            .iter()
            .any(|i| i.category == category && i.detail.contains(kind) && i.display.contains(text))
    };
    assert!(has("allergy", "アレルギー歴", "ペニシリン"));
    assert!(has("allergy", "副作用歴", "ロキソニン"));
    assert!(has(
        "prescription",
        "一般用医薬品",
        "ガスター10（成分: ファモチジン）"
    ));
    assert!(has("prescription", "手帳メモ", "血圧手帳"));
    assert!(has("prescription", "かかりつけ薬剤師", "薬師 花子"));
    let drug = items
        .iter()
        .find(|i| i.display == "アムロジピン錠5mg")
        .unwrap();
    for (kind, text) in [
        ("服用注意", "粉砕不可"),
        ("医療機関等提供情報", "腎機能に注意"),
        ("残薬確認", "残薬は5錠"),
        ("備考", "次回は一包化"),
        ("患者等記入", "朝は飲み忘れがち"),
    ] {
        assert!(
            drug.detail.contains(kind) && drug.detail.contains(text),
            "{kind}: {}",
            drug.detail
        );
    }
}
on_both_backends!(every_record_a_notebook_carries_is_kept_and_shown);

async fn a_typed_id_of_a_patient_never_read_here_is_not_a_card(t: &TestStore) {
    let p = setup(t).await;
    // A bare common ID, and a file that does not name the card's person: no link, no record.
    let taro = patient("山田 太郎", "ヤマダ タロウ", "19800101", "1", "広島市");
    let r = p
        .app
        .import_medication(
            &p.pharmacy,
            &p.card.common_id.digits(),
            &file(&format!(
                "{taro}{}",
                dispensing("20261101", "アムロジピン錠5mg", "28")
            )),
        )
        .await;
    assert!(
        matches!(r, Err(AppError::Invalid(ref m)) if m.contains("使用できません")),
        "{r:?}"
    );
    assert!(matches!(
        p.app.read_record(&p.pharmacy, p.card.person.id).await,
        Err(AppError::NotFound)
    ));
}
on_both_backends!(a_typed_id_of_a_patient_never_read_here_is_not_a_card);
