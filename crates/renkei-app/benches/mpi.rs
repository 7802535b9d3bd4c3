//! MPI at scale: person search and candidate suggestion latency with PERSONS persons (default
//! 1,000,000, from the synthetic Japanese population), on SQLite and — when
//! `RENKEI_TEST_DATABASE_URL` is set — PostgreSQL. Each search goes through the use case, as
//! the operator's screen does: key normalisation, the indexed query, and the audit event
//! (a durable commit).
//!
//! `cargo bench -p renkei-app --bench mpi [-- PERSONS]` prints p50/p95/p99 per kind of search;
//! nothing is asserted. The aim is p99 < 10 ms at 1,000,000 persons.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use renkei_app::directory::FacilityInput;
use renkei_app::identity::{PersonDetails, PersonQuery, person_keys};
use renkei_app::{Actor, App, AppConfig};
use renkei_core::audit::{AuditEvent, AuditOutcome};
use renkei_core::time::{Clock, SystemClock};
use renkei_identity::CommonId;
use renkei_identity::synthetic::{SyntheticRecord, population};
use renkei_store::identity::NewPerson;
use renkei_store::testing::TestStore;

const QUERIES: usize = 2_000;
const CHUNK: usize = 10_000;

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

fn event(facility: i64, rows: usize) -> AuditEvent {
    AuditEvent {
        at: SystemClock.now(),
        user_id: None,
        login_id: "bench".into(),
        facility_id: Some(facility),
        profession: None,
        action: "identity.person.import".into(),
        target: format!("persons:{rows}"),
        outcome: AuditOutcome::Success,
        detail: String::new(),
        client: "bench".into(),
        emergency: false,
    }
}

/// Loads the population as persons; returns the issuing facility's id.
async fn load(app: &App, t: &TestStore, people: &[SyntheticRecord]) -> i64 {
    let system = Actor::system("bench");
    let (facility, _) = app
        .create_facility(
            &system,
            &FacilityInput {
                facility_type: "hospital".into(),
                name: "広島中央総合病院".into(),
                max_accounts: "5".into(),
                issues_hm_card: true,
                discloses: true,
                active: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let started = Instant::now();
    let first = t
        .store
        .allocate_common_id_serials(34, people.len() as i64)
        .await
        .unwrap();
    for (n, chunk) in people.chunks(CHUNK).enumerate() {
        let rows: Vec<NewPerson> = chunk
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let d = &r.demographic;
                let serial = first + (n * CHUNK + i) as i64;
                NewPerson {
                    common_id: CommonId::issue(34, serial as u32).unwrap().digits(),
                    kanji_name: d.kanji_name.clone(),
                    kana_name: d.kana_name.clone(),
                    birth_date: Some(d.birth_date.clone()),
                    sex: d.sex.clone(),
                    phone: d.phone.clone(),
                    postal_code: d.postal_code.clone(),
                    address: d.address.clone(),
                    keys: person_keys(&d.kanji_name, &d.kana_name, &d.phone, &d.address),
                }
            })
            .collect();
        t.store
            .import_persons(
                &rows,
                facility.id,
                SystemClock.now().0,
                event(facility.id, rows.len()),
            )
            .await
            .unwrap();
    }
    t.store.analyze().await.unwrap();
    println!(
        "  loaded {} persons in {:.1} s",
        people.len(),
        started.elapsed().as_secs_f64()
    );
    facility.id
}

type MakeQuery = Box<dyn Fn(&SyntheticRecord) -> PersonQuery>;

fn query_kinds() -> Vec<(&'static str, MakeQuery)> {
    vec![
        (
            "family-name reading (prefix)",
            Box::new(|r| PersonQuery {
                name: r
                    .demographic
                    .kana_name
                    .split(' ')
                    .next()
                    .unwrap_or("")
                    .to_string(),
                ..Default::default()
            }),
        ),
        (
            "kanji name + birth date",
            Box::new(|r| PersonQuery {
                name: r.demographic.kanji_name.clone(),
                birth_date: r.demographic.birth_date.clone(),
                ..Default::default()
            }),
        ),
        (
            "birth date + sex",
            Box::new(|r| PersonQuery {
                birth_date: r.demographic.birth_date.clone(),
                sex: r.demographic.sex.clone(),
                ..Default::default()
            }),
        ),
        (
            "phone number",
            Box::new(|r| PersonQuery {
                phone: r.demographic.phone.clone(),
                ..Default::default()
            }),
        ),
        (
            "address (prefix, to the block)",
            Box::new(|r| PersonQuery {
                address: r
                    .demographic
                    .address
                    .rsplit_once('-')
                    .map_or(String::new(), |(head, _)| head.to_string()),
                ..Default::default()
            }),
        ),
    ]
}

async fn run(name: &str, t: TestStore, people: &[SyntheticRecord]) {
    println!("{name}:");
    let app = App::new(t.store.clone(), Arc::new(SystemClock), AppConfig::default());
    let facility = load(&app, &t, people).await;
    let operator = Actor::system("bench");
    // Queries taken from the population (every 97th record), as a clerk would type them.
    let sample: Vec<&SyntheticRecord> = people.iter().step_by(97).take(QUERIES).collect();
    for (label, make) in query_kinds() {
        let mut times = Vec::new();
        let mut found = 0;
        for r in &sample {
            let q = make(r);
            if [&q.name, &q.birth_date, &q.phone, &q.address]
                .iter()
                .all(|v| v.is_empty())
            {
                continue; // the field is missing in this record
            }
            let started = Instant::now();
            found += app.search_persons(&operator, &q).await.unwrap().len();
            times.push(started.elapsed());
        }
        let n = times.len();
        println!(
            "  search {label:<31} {}  ({n} searches, {:.1} persons each)",
            percentiles(times),
            found as f64 / n.max(1) as f64
        );
    }
    // Suggestions for a registration without a card: key blocking, then scoring.
    let mut clerk = Actor::system("bench");
    clerk.facility_id = Some(facility);
    let mut times = Vec::new();
    let mut suggested = 0;
    for r in &sample {
        let d = &r.demographic;
        let details = PersonDetails {
            kanji_name: d.kanji_name.clone(),
            kana_name: d.kana_name.clone(),
            birth_date: d.birth_date.clone(),
            sex: d.sex.clone(),
            phone: d.phone.clone(),
            postal_code: d.postal_code.clone(),
            address: d.address.clone(),
        };
        let started = Instant::now();
        suggested += app.suggest_persons(&clerk, &details).await.unwrap().len();
        times.push(started.elapsed());
    }
    let n = times.len();
    println!(
        "  suggest candidates for a registration  {}  ({n} registrations, {:.1} suggested each)",
        percentiles(times),
        suggested as f64 / n.max(1) as f64
    );
    t.finish().await;
}

#[tokio::main]
async fn main() {
    let persons: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let started = Instant::now();
    let people = population(persons, 11);
    println!(
        "generated {} persons in {:.1} s",
        people.len(),
        started.elapsed().as_secs_f64()
    );
    run("sqlite", renkei_store::testing::sqlite().await, &people).await;
    match renkei_store::testing::postgres_if_set().await {
        Some(t) => run("postgres", t, &people).await,
        None => println!("postgres skipped (set RENKEI_TEST_DATABASE_URL)"),
    }
}
