//! `renkei dev seed-fhir-bench`: the data of the FHIR benchmark (`benches/fhir/run.sh`). One
//! hospital with `patients` card-holders (from the synthetic Japanese population, one record
//! per person) and `per_patient` lab results each, stored through the same FHIR write path a
//! hospital's system uses, plus an API client for the load tool. The same patients and results
//! are written as FHIR transaction Bundles for the peer server, with the list of ids and family
//! names the load scripts pick from.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use renkei_app::api::{ApiCaller, ClientInput};
use renkei_app::directory::FacilityInput;
use renkei_app::identity::{CardKind, PersonDetails};
use renkei_app::{Actor, App};
use serde_json::{Value, json};

/// Five common lab tests (JLAC10, display, unit, typical value).
const TESTS: [(&str, &str, &str, f64); 5] = [
    ("3D010000001926101", "グルコース", "mg/dL", 100.0),
    ("3D046000001906202", "HbA1c", "%", 5.8),
    ("3B035000002327201", "AST", "U/L", 24.0),
    ("3B045000002327201", "ALT", "U/L", 22.0),
    ("3C015000002327101", "クレアチニン", "mg/dL", 0.8),
];

fn observation(patient: &str, n: usize, salt: usize) -> Value {
    let (code, name, unit, typical) = TESTS[n % TESTS.len()];
    // Spread over 2026: a date per result, the same for both servers.
    let day = (n * 37 + salt * 11) % 320;
    let (month, dom) = {
        let mut left = day;
        let mut m = 1;
        for len in [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] {
            if left < len {
                break;
            }
            left -= len;
            m += 1;
        }
        (m, left + 1)
    };
    let value = typical * (0.8 + ((n * 7 + salt * 3) % 40) as f64 / 100.0);
    json!({
        "resourceType": "Observation",
        "identifier": [{ "system": "urn:example:bench-lab", "value": format!("{patient}-{n}") }],
        "status": "final",
        "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory" }] }],
        "code": { "coding": [{ "system": "http://medis.or.jp/CodeSystem/master-JLAC10-17digits", "code": code, "display": name }] },
        "subject": { "reference": format!("Patient/{patient}") },
        "effectiveDateTime": format!("2026-{month:02}-{dom:02}T09:00:00+09:00"),
        "valueQuantity": { "value": (value * 100.0).round() / 100.0, "unit": unit },
    })
}

pub async fn seed(
    app: &App,
    patients: usize,
    per_patient: usize,
    jwks: &str,
    out: &Path,
) -> Result<()> {
    std::fs::create_dir_all(out.join("peer"))
        .with_context(|| format!("{} を作成できません", out.display()))?;
    let system = Actor::system("bench");
    let draft = renkei_core::facility::FacilityCode::parse("3419999990")?;
    let code = format!("341999999{}", draft.expected_check_digit());
    let (hospital, _) = app
        .create_facility(
            &system,
            &FacilityInput {
                code: code.clone(),
                facility_type: "hospital".into(),
                name: "ベンチマーク総合病院".into(),
                max_accounts: "10".into(),
                discloses: true,
                issues_hm_card: true,
                active: true,
                ..Default::default()
            },
        )
        .await?;
    let clerk = Actor {
        facility_id: Some(hospital.id),
        ..system.clone()
    };
    let started = Instant::now();
    let mut seen = std::collections::HashSet::new();
    let people: Vec<_> = renkei_app::identity::synthetic::population(patients * 2 + 10, 7)
        .into_iter()
        // Written names only: the family-name search picks from them.
        .filter(|r| !r.demographic.kanji_name.trim().is_empty() && seen.insert(r.person))
        .take(patients)
        .collect();
    let mut list = std::fs::File::create(out.join("patients.tsv"))?;
    let mut issued = Vec::with_capacity(people.len());
    for (i, r) in people.iter().enumerate() {
        let d = &r.demographic;
        let card = app
            .issue_card(
                &clerk,
                &format!("B{i:07}"),
                CardKind::Hm,
                Some(&PersonDetails {
                    kanji_name: d.kanji_name.clone(),
                    kana_name: d.kana_name.clone(),
                    birth_date: d.birth_date.clone(),
                    sex: d.sex.clone(),
                    phone: d.phone.clone(),
                    postal_code: d.postal_code.clone(),
                    address: d.address.clone(),
                }),
            )
            .await?;
        let common = card.common_id.digits();
        let family = d
            .kanji_name
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        writeln!(list, "{common}\t{family}")?;
        issued.push((common, d.clone()));
    }
    println!(
        "{} 人の患者を登録しました（{:.1} 秒）",
        issued.len(),
        started.elapsed().as_secs_f64()
    );
    let client = app
        .register_api_client(
            &system,
            &ClientInput {
                client_id: "bench".into(),
                name: "FHIR ベンチマーク".into(),
                facility_id: hospital.id,
                jwks: jwks.to_string(),
                scopes: "system/*.crs".into(),
                cross_facility: false,
                profession: "doctor".into(),
                redirect_uris: String::new(),
            },
        )
        .await?;
    let caller = ApiCaller {
        scopes: vec!["system/*.crs".into()],
        actor: Actor {
            login_id: "client:bench".into(),
            facility_id: Some(hospital.id),
            profession: Some("doctor".into()),
            ..system.clone()
        },
        client,
    };
    let started = Instant::now();
    let mut stored = 0;
    let mut entries = Vec::new();
    let mut bundle = Vec::new();
    let mut bundles = 0;
    for (i, (common, d)) in issued.iter().enumerate() {
        let mut names = Vec::new();
        for (text, rep) in [(&d.kanji_name, "IDE"), (&d.kana_name, "SYL")] {
            let mut parts = text.split_whitespace();
            let family = parts.next().unwrap_or("");
            let given: Vec<&str> = parts.collect();
            names.push(json!({
                "extension": [{ "url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": rep }],
                "use": "official", "text": text, "family": family, "given": given,
            }));
        }
        bundle.push(json!({
            "resource": {
                "resourceType": "Patient", "id": common,
                "identifier": [{ "system": "urn:oid:1.2.392.200284.34.1", "value": common }],
                "name": names,
                "gender": match d.sex.as_str() { "M" => "male", "F" => "female", _ => "unknown" },
                "birthDate": d.birth_date,
            },
            "request": { "method": "PUT", "url": format!("Patient/{common}") }
        }));
        for n in 0..per_patient {
            let o = observation(common, n, i);
            bundle.push(
                json!({ "resource": o, "request": { "method": "POST", "url": "Observation" } }),
            );
            entries.push((String::new(), o));
        }
        if entries.len() >= 500 || i + 1 == issued.len() {
            match app.fhir_write(&caller, &entries).await? {
                Ok(w) => stored += w.len(),
                Err(problems) => {
                    anyhow::bail!("ベンチマークのデータを登録できません: {}", problems[0])
                }
            }
            entries.clear();
        }
        if bundle.len() >= 500 || i + 1 == issued.len() {
            std::fs::write(
                out.join("peer").join(format!("bundle-{bundles:05}.json")),
                json!({ "resourceType": "Bundle", "type": "transaction", "entry": bundle })
                    .to_string(),
            )?;
            bundles += 1;
            bundle.clear();
        }
    }
    println!(
        "検査結果 {stored} 件を登録しました（{:.1} 秒）。相手サーバー用のバンドル {bundles} 個: {}",
        started.elapsed().as_secs_f64(),
        out.join("peer").display()
    );
    Ok(())
}
