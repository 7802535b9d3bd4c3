//! The integrated viewer at regional scale: a region of ≥ 100,000 patients at five hospitals,
//! and one patient with ten years of records at all five (≥ 20,000 items). Each measured view
//! is what a clinic's doctor opening the patient does on the server: the consent-checked,
//! audited read (`App::patient_view`), then the calendar and the lab table computed from it.
//! SQLite always; PostgreSQL when `RENKEI_TEST_DATABASE_URL` is set.
//!
//! `cargo bench -p renkei-app --bench viewer [-- PATIENTS]` prints p50/p95/p99; nothing is
//! asserted. The aim is p99 < 50 ms.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use renkei_app::consent::ConsentInput;
use renkei_app::directory::{FacilityInput, UserInput};
use renkei_app::identity::{CardKind, PersonDetails};
use renkei_app::viewer::view;

use renkei_app::{Actor, App, AppConfig};
use renkei_core::time::{FixedClock, Timestamp};
use renkei_store::clinical::{Condition, IncomingMessage, NewItem, PatientRecord};
use renkei_store::testing::TestStore;

const HOSPITALS: [&str; 5] = [
    "3411234564",
    "3410100113",
    "3411234572",
    "3410200111",
    "3410300119",
];
const VIEWS: usize = 200;

/// Lab tests of the viewed patient (JLAC10, from the core set) with reference ranges.
const LABS: &[(&str, &str, &str, f64, f64)] = &[
    ("3B035000002327201", "AST", "U/L", 13.0, 30.0),
    ("3B045000002327201", "ALT", "U/L", 10.0, 42.0),
    ("3C015000002327101", "Cre", "mg/dL", 0.65, 1.07),
    ("3D046000001906202", "HbA1c", "%", 4.9, 6.0),
    ("3F077000002327101", "LDL-C", "mg/dL", 65.0, 163.0),
    ("2A990000001930952", "WBC", "10*3/uL", 3.3, 8.6),
    ("2A030000001930101", "Hb", "g/dL", 13.7, 16.8),
    ("3A010000002327101", "TP", "g/dL", 6.6, 8.1),
    ("3A015000002327101", "ALB", "g/dL", 4.1, 5.1),
    ("3H015000002327101", "Na", "mmol/L", 138.0, 145.0),
];

fn item(
    category: &str,
    code: &str,
    system: &str,
    display: &str,
    date: &str,
    detail: String,
) -> NewItem {
    NewItem {
        category: category.into(),
        code: code.into(),
        code_system: system.into(),
        display: display.into(),
        effective: Some(format!("{date}T09:00:00+09:00")),
        effective_date: Some(date.into()),
        end_at: None,
        status: "F".into(),
        detail,
    }
}

fn message(key: String, patient: &str, date: &str, items: Vec<NewItem>) -> IncomingMessage {
    IncomingMessage {
        source: "bench".into(),
        order_key: key.clone(),
        source_key: key.clone(),
        data_kind: "OML-11".into(),
        condition: Condition::Current,
        occurred_at: date.replace('-', ""),
        content_hash: key.clone(),
        raw: format!("MSH|^~\\&|BENCH|||||||{key}").into_bytes(),
        message_type: "OUL^R22".into(),
        control_id: key,
        patient_local_id: patient.into(),
        warnings: String::new(),
        items,
        demographics: Some(PatientRecord {
            patient_local_id: patient.into(),
            kanji_name: "患者 太郎".into(),
            kana_name: "カンジャ タロウ".into(),
            birth_date: Some("1950-01-01".into()),
            sex: "M".into(),
            ..PatientRecord::default()
        }),
        attachments: Vec::new(),
    }
}

fn date_of(day: u32) -> String {
    // Ten years from 2016-11-21 by steps of days (approximate calendar, valid dates).
    let y = 2016 + day / 365;
    let doy = day % 365;
    let m = (doy / 31).min(11) + 1;
    let d = doy % 28 + 1;
    format!("{y:04}-{m:02}-{d:02}")
}

fn lab_items(date: &str, n: usize, seed: usize) -> Vec<NewItem> {
    LABS.iter()
        .cycle()
        .skip(seed % LABS.len())
        .take(n)
        .enumerate()
        .map(|(i, (code, name, unit, lo, hi))| {
            let v = lo + (hi - lo) * (((seed * 7 + i * 13) % 100) as f64 / 80.0);
            item(
                "lab_result",
                code,
                "JC10",
                name,
                date,
                format!(
                    r#"{{"value":"{v:.1}","numeric":{v:.1},"unit":{{"code":"{unit}"}},"reference_range":"{lo}-{hi}","abnormal":""}}"#
                ),
            )
        })
        .collect()
}

async fn load(app: &App, t: &TestStore, patients: usize) -> (Actor, i64) {
    let system = Actor::system("bench");
    let mut hospitals = Vec::new();
    for (i, code) in HOSPITALS.iter().enumerate() {
        let (f, _) = app
            .create_facility(
                &system,
                &FacilityInput {
                    code: (*code).into(),
                    facility_type: "hospital".into(),
                    name: format!("病院{}", i + 1),
                    max_accounts: "5".into(),
                    discloses: true,
                    issues_hm_card: true,
                    active: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        hospitals.push(f.id);
    }
    let (clinic, _) = app
        .create_facility(
            &system,
            &FacilityInput {
                facility_type: "clinic".into(),
                name: "みどり内科".into(),
                max_accounts: "5".into(),
                active: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let started = Instant::now();
    // The region: every other patient, one visit with a few items.
    let per = patients / HOSPITALS.len();
    for (h, facility) in hospitals.iter().enumerate() {
        for chunk in (0..per).collect::<Vec<_>>().chunks(500) {
            let batch: Vec<IncomingMessage> = chunk
                .iter()
                .map(|p| {
                    let pid = format!("P{p:07}");
                    let date = date_of((p % 3600) as u32);
                    let mut items = lab_items(&date, 2, *p);
                    items.push(item(
                        "diagnosis",
                        "20061617",
                        "MDCDX2",
                        "高血圧症",
                        &date,
                        "{}".into(),
                    ));
                    items.push(item(
                        "encounter",
                        "A04",
                        "HL70003",
                        "外来受診",
                        &date,
                        "{}".into(),
                    ));
                    message(format!("r{h}-{p}"), &pid, &date, items)
                })
                .collect();
            t.store.ingest(*facility, 0, &batch).await.unwrap();
        }
    }
    // The viewed patient: ten years at all five hospitals, a visit every 28 days with labs and
    // prescriptions.
    let mut items_total = 0;
    for (h, facility) in hospitals.iter().enumerate() {
        let batch: Vec<IncomingMessage> = (0..130u32)
            .map(|v| {
                let date = date_of(v * 28 + h as u32);
                let mut items = lab_items(&date, 25, v as usize + h);
                for k in 0..5 {
                    items.push(item(
                        "prescription",
                        &format!("62000{k}"),
                        "HOT9",
                        &format!("薬剤{k}"),
                        &date,
                        r#"{"dose":"1","dose_unit":{"display":"錠"},"days":"28","usage":{"display":"1日1回"}}"#.into(),
                    ));
                }
                items.push(item("encounter", "A04", "HL70003", "外来受診", &date, "{}".into()));
                items_total += items.len();
                message(format!("v{h}-{v}"), "V-1", &date, items)
            })
            .collect();
        for chunk in batch.chunks(25) {
            t.store.ingest(*facility, 0, chunk).await.unwrap();
        }
    }
    t.store.analyze().await.unwrap();
    println!(
        "  loaded {patients} patients (+1 with {items_total} items at {} hospitals) in {:.1} s",
        HOSPITALS.len(),
        started.elapsed().as_secs_f64()
    );
    // Card, links, consents, and a clinic doctor who read the card.
    let mut staff = Vec::new();
    for (i, f) in hospitals.iter().enumerate() {
        let u = app
            .create_user_with_password(
                &system,
                &UserInput {
                    facility_id: *f,
                    login_id: format!("h{i}.admin"),
                    name: "職員".into(),
                    profession: "clerk".into(),
                    role: "facility_admin".into(),
                    active: true,
                    ..Default::default()
                },
                "Password-2026!",
                false,
            )
            .await
            .unwrap();
        staff.push(Actor {
            user_id: Some(u.id),
            login_id: u.login_id.clone(),
            name: "職員".into(),
            facility_id: Some(*f),
            profession: Some("clerk".into()),
            role: renkei_core::user::Role::FacilityAdmin,
            emergency: false,
            client: "bench".into(),
        });
    }
    let card = app
        .issue_card(
            &staff[0],
            "V-1",
            CardKind::Hm,
            Some(&PersonDetails {
                kanji_name: "患者 太郎".into(),
                kana_name: "カンジャ タロウ".into(),
                birth_date: "1950-01-01".into(),
                sex: "M".into(),
                ..PersonDetails::default()
            }),
        )
        .await
        .unwrap();
    for s in &staff[1..] {
        app.read_card(s, &card.payload, "V-1").await.unwrap();
    }
    for s in &staff {
        app.create_consent(
            s,
            "V-1",
            &ConsentInput {
                target_mode: "all".into(),
                categories: renkei_core::consent::ConsentCategory::ALL
                    .iter()
                    .map(|c| c.key().to_string())
                    .collect(),
                ..ConsentInput::default()
            },
        )
        .await
        .unwrap();
    }
    let doctor = app
        .create_user_with_password(
            &system,
            &UserInput {
                facility_id: clinic.id,
                login_id: "c.dr".into(),
                name: "医師".into(),
                profession: "doctor".into(),
                role: "staff".into(),
                active: true,
                ..Default::default()
            },
            "Password-2026!",
            false,
        )
        .await
        .unwrap();
    let viewer = Actor {
        user_id: Some(doctor.id),
        login_id: "c.dr".into(),
        name: "医師".into(),
        facility_id: Some(clinic.id),
        profession: Some("doctor".into()),
        role: renkei_core::user::Role::Staff,
        emergency: false,
        client: "bench".into(),
    };
    app.read_card(&viewer, &card.payload, "C-1").await.unwrap();
    (viewer, card.person.id)
}

fn percentiles(mut times: Vec<Duration>) -> String {
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    format!(
        "p50 {:>6.2} ms  p95 {:>6.2} ms  p99 {:>6.2} ms",
        at(0.50).as_secs_f64() * 1e3,
        at(0.95).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3
    )
}

async fn run(name: &str, t: TestStore, patients: usize) {
    println!("{name}:");
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_795_219_200)));
    let app = App::new(t.store.clone(), clock, AppConfig::default());
    let (viewer, person) = load(&app, &t, patients).await;
    let (mut calendar, mut labs, mut whole) = (Vec::new(), Vec::new(), Vec::new());
    let mut items = 0;
    for _ in 0..VIEWS {
        // The calendar: day groups the doctor may see, laid out for the newest month.
        let started = Instant::now();
        let c = app.patient_calendar(&viewer, person, None).await.unwrap();
        assert!(!c.calendar.marks.is_empty());
        calendar.push(started.elapsed());
        // The lab table: the latest result days, harmonised.
        let started = Instant::now();
        let v = app.patient_labs(&viewer, person).await.unwrap();
        let t = view::lab_table(&v.items, &v.lab_map);
        assert!(!t.rows.is_empty());
        labs.push(started.elapsed());
    }
    for _ in 0..20 {
        let started = Instant::now();
        items = app.patient_view(&viewer, person).await.unwrap().items.len();
        whole.push(started.elapsed());
    }
    println!("  the patient's record: {items} items visible to the clinic's doctor");
    println!(
        "  calendar (consent-checked, audited) {}",
        percentiles(calendar)
    );
    println!(
        "  lab table (consent-checked, audited) {}",
        percentiles(labs)
    );
    println!(
        "  the whole record in one read        {}  (20 reads; no screen needs it)",
        percentiles(whole)
    );
    t.finish().await;
}

#[tokio::main]
async fn main() {
    let patients: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    run("sqlite", renkei_store::testing::sqlite().await, patients).await;
    match renkei_store::testing::postgres_if_set().await {
        Some(t) => run("postgres", t, patients).await,
        None => println!("postgres skipped (set RENKEI_TEST_DATABASE_URL)"),
    }
}
