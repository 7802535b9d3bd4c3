//! The API over HTTP: an operator registers a client with `admin create-client`; the client
//! gets a token at `/oauth/token` with a signed assertion, then uses PIXm and PDQm on the demo
//! region's MPI. Errors are OperationOutcomes; unknown parameters are refused unless lenient.

use renkei_app::testing::ClientKey;
use renkei_core::facility::FacilityCode;
use reqwest::StatusCode;
use serde_json::Value;

use crate::{FIXED_UNIX, demo_dir, renkei, start, stderr, stdout};

/// The demo's 広島中央総合病院: code 34 1 010011 + check digit.
fn chuo_code() -> String {
    let draft = FacilityCode::parse("3410100110").unwrap();
    format!("341010011{}", draft.expected_check_digit())
}

async fn token(c: &reqwest::Client, base: &str, key: &ClientKey, jti: &str) -> reqwest::Response {
    token_for(c, base, key, ("chuo-ehr", "system/Patient.rs"), jti).await
}

async fn token_for(
    c: &reqwest::Client,
    base: &str,
    key: &ClientKey,
    (client_id, scope): (&str, &str),
    jti: &str,
) -> reqwest::Response {
    let url = format!("{base}/oauth/token");
    let assertion = key.assertion("k1", client_id, &url, FIXED_UNIX as i64 + 120, jti);
    c.post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("client_assertion_type", renkei_app::api::ASSERTION_TYPE),
            ("client_assertion", assertion.as_str()),
        ])
        .send()
        .await
        .unwrap()
}

async fn json(r: reqwest::Response) -> (StatusCode, String, Value) {
    let status = r.status();
    let kind = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    (status, kind, serde_json::from_str(&text).unwrap())
}

#[tokio::test]
async fn a_client_gets_a_token_and_uses_pixm_and_pdqm() {
    let dir = demo_dir();
    let server = start(dir.path(), &["--listen", "127.0.0.1:0", "--demo"]);
    let base = server.base.clone();
    let key = ClientKey::generate("k1");
    let jwks = dir.path().join("chuo-ehr.jwks.json");
    std::fs::write(&jwks, &key.jwks).unwrap();
    let code = chuo_code();
    let out = renkei(
        dir.path(),
        &[
            "admin",
            "create-client",
            "--client-id",
            "chuo-ehr",
            "--name",
            "中央病院 電子カルテ",
            "--facility",
            &code,
            "--jwks",
            jwks.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let c = reqwest::Client::new();
    // No token: 401 with an OperationOutcome.
    let r = c
        .get(format!("{base}/fhir/Patient?family=ヤマダ"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
    let (_, kind, body) = json(r).await;
    assert!(kind.starts_with("application/fhir+json"));
    assert_eq!(body["resourceType"], "OperationOutcome");

    let (status, _, t) = json(token(&c, &base, &key, "a1").await).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["token_type"], "bearer");
    assert_eq!(t["expires_in"], 300);
    let bearer = t["access_token"].as_str().unwrap().to_string();
    // The same assertion again is a replay.
    let (status, _, e) = json(token(&c, &base, &key, "a1").await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(e["error"], "invalid_client");

    let get = |path: String| {
        let c = c.clone();
        let bearer = bearer.clone();
        let base = base.clone();
        async move {
            c.get(format!("{base}{path}"))
                .bearer_auth(bearer)
                .send()
                .await
                .unwrap()
        }
    };
    let (status, _, cap) = json(c.get(format!("{base}/fhir/metadata")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cap["resourceType"], "CapabilityStatement");

    // PIXm: the hospital's patient ID to the regional common ID.
    let number: u64 = code.parse().unwrap();
    let chuo_system = format!("urn:oid:1.2.392.200284.34.{number}");
    let (status, _, p) = json(
        get(format!(
            "/fhir/Patient/$ihe-pix?sourceIdentifier={chuo_system}|0001100000"
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["resourceType"], "Parameters");
    let common = p["parameter"][0]["valueIdentifier"].clone();
    assert_eq!(common["system"], "urn:oid:1.2.392.200284.34.1");
    let common_id = common["value"].as_str().unwrap().to_string();
    assert_eq!(p["parameter"][1]["name"], "targetId");
    let (status, _, o) = json(
        get(format!(
            "/fhir/Patient/$ihe-pix?sourceIdentifier={chuo_system}|NO-SUCH"
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(o["issue"][0]["code"], "not-found");

    // PDQm read and search.
    let (status, _, patient) = json(get(format!("/fhir/Patient/{common_id}")).await).await;
    assert_eq!(status, StatusCode::OK, "{patient}");
    assert_eq!(patient["resourceType"], "Patient");
    assert_eq!(patient["identifier"][1]["value"], "0001100000");
    let family = patient["name"][1]["family"].as_str().unwrap().to_string();
    let (status, _, bundle) =
        json(get(format!("/fhir/Patient?family={family}&_count=2")).await).await;
    assert_eq!(status, StatusCode::OK, "{bundle}");
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "searchset");
    assert!(!bundle["entry"].as_array().unwrap().is_empty());

    // An unknown parameter is refused; with Prefer: handling=lenient it is a warning.
    let (status, _, o) =
        json(get(format!("/fhir/Patient?family={family}&mothersMaidenName=x")).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(o["issue"][0]["code"], "not-supported");
    let r = c
        .get(format!(
            "{base}/fhir/Patient?family={family}&mothersMaidenName=x"
        ))
        .bearer_auth(&bearer)
        .header("prefer", "handling=lenient")
        .send()
        .await
        .unwrap();
    let (status, _, bundle) = json(r).await;
    assert_eq!(status, StatusCode::OK);
    let last = bundle["entry"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["search"]["mode"], "outcome");
    let own = bundle["link"][0]["url"].as_str().unwrap();
    assert!(!own.contains("mothersMaidenName"), "{own}");

    // A person the hospital has no link to is not there for its client.
    let (status, _, _) = json(get("/fhir/Patient/34000000000".into()).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The record over FHIR: a hospital's EHR (a client reading as a doctor) searches, reads,
/// pages, includes, asks for `$everything` and fetches a document's file; unknown parameters are
/// refused, or ignored with a warning under lenient handling.
#[tokio::test]
async fn a_client_reads_the_record_over_fhir() {
    let dir = demo_dir();
    let server = start(dir.path(), &["--listen", "127.0.0.1:0", "--demo"]);
    let base = server.base.clone();
    let key = ClientKey::generate("k1");
    let jwks = dir.path().join("chuo-records.jwks.json");
    std::fs::write(&jwks, &key.jwks).unwrap();
    let out = renkei(
        dir.path(),
        &[
            "admin",
            "create-client",
            "--client-id",
            "chuo-records",
            "--name",
            "中央病院 電子カルテ（診療情報）",
            "--facility",
            &chuo_code(),
            "--jwks",
            jwks.to_str().unwrap(),
            "--scope",
            "system/*.rs",
            "--profession",
            "doctor",
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let c = reqwest::Client::new();
    let (status, _, t) =
        json(token_for(&c, &base, &key, ("chuo-records", "system/*.rs"), "r1").await).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let bearer = t["access_token"].as_str().unwrap().to_string();
    let get = |url: String, lenient: bool| {
        let c = c.clone();
        let bearer = bearer.clone();
        let url = if url.starts_with("http") {
            url
        } else {
            format!("{}{url}", base)
        };
        async move {
            let mut r = c.get(url).bearer_auth(bearer);
            if lenient {
                r = r.header("prefer", "handling=lenient");
            }
            r.send().await.unwrap()
        }
    };
    // The demo's first card-holder is the hospital's first patient.
    let patient = "Patient/34000000018";
    let (status, kind, bundle) = json(
        get(
            format!("/fhir/Observation?patient={patient}&_count=2"),
            false,
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{bundle}");
    assert!(kind.starts_with("application/fhir+json"));
    assert_eq!(bundle["type"], "searchset");
    let total = bundle["total"].as_u64().unwrap();
    assert!(total > 2, "{total} observations");
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let first = &entries[0];
    let full = first["fullUrl"].as_str().unwrap();
    assert!(
        full.starts_with(&format!("{base}/fhir/Observation/")),
        "{full}"
    );
    assert_eq!(first["resource"]["subject"]["reference"], patient);
    // The next page, by its link.
    let next = bundle["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, page2) = json(get(next, false).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(page2["entry"][0]["fullUrl"], first["fullUrl"]);
    // Read by id.
    let (status, _, read) = json(get(full.to_string(), false).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, first["resource"]);

    // Unknown parameters: refused, naming the parameter; or a warning when lenient.
    let (status, _, o) = json(
        get(
            format!("/fhir/Observation?patient={patient}&value-quantity=gt5"),
            false,
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(o["resourceType"], "OperationOutcome");
    assert_eq!(o["issue"][0]["expression"][0], "value-quantity");
    let (status, _, lenient) = json(
        get(
            format!("/fhir/Observation?patient={patient}&value-quantity=gt5&_count=1"),
            true,
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        lenient["total"], total,
        "the ignored filter changes nothing"
    );
    let own = lenient["link"][0]["url"].as_str().unwrap();
    assert!(!own.contains("value-quantity"), "{own}");
    let last = lenient["entry"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["search"]["mode"], "outcome");
    let (status, _, o) = json(get("/fhir/Observation?date=2026-99".into(), false).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(o["issue"][0]["code"], "invalid");

    // _include: the patient and the hospital.
    let (_, _, inc) = json(
        get(
            format!("/fhir/Encounter?patient={patient}&_include=Encounter:patient&_include=Encounter:service-provider&_count=1"),
            false,
        )
        .await,
    )
    .await;
    let modes: Vec<(String, String)> = inc["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["search"]["mode"].as_str().unwrap().to_string(),
                e["resource"]["resourceType"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        modes,
        [
            ("match".to_string(), "Encounter".to_string()),
            ("include".to_string(), "Patient".to_string()),
            ("include".to_string(), "Organization".to_string())
        ]
    );

    // $everything, and a document's file as itself.
    let (status, _, all) =
        json(get(format!("/fhir/{patient}/$everything?_count=1000"), false).await).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let types: std::collections::BTreeSet<&str> = all["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().unwrap())
        .collect();
    for t in [
        "Patient",
        "Organization",
        "Encounter",
        "Observation",
        "MedicationRequest",
        "DocumentReference",
    ] {
        assert!(types.contains(t), "{t} in {types:?}");
    }
    let doc = all["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["resource"]["resourceType"] == "DocumentReference"
                && e["resource"]["content"][0]["attachment"]["contentType"] == "application/dicom"
        })
        .expect("the CT study's images")
        .clone();
    let url = doc["resource"]["content"][0]["attachment"]["url"]
        .as_str()
        .unwrap();
    let r = get(format!("/fhir/{url}"), false).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/dicom");
    let bytes = r.bytes().await.unwrap();
    assert_eq!(&bytes[128..132], b"DICM");

    // A JP-CLINS referral letter for the same patient; without its purpose, an OperationOutcome
    // that names the parameter.
    let letter = format!(
        "/fhir/{patient}/$jp-clins-document?type=referral&insured=00012345:%E3%81%82:1:05&report=R-1&to-name=%E9%9D%99%E5%B2%A1%E7%97%85%E9%99%A2"
    );
    let (status, _, outcome) = json(get(letter.clone(), false).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{outcome}");
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert!(outcome.to_string().contains("purpose"), "{outcome}");
    let (status, _, doc) = json(
        get(
            format!("{letter}&purpose=%E7%B2%BE%E6%9F%BB%E4%BE%9D%E9%A0%BC"),
            false,
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["type"], "document");
    assert_eq!(doc["entry"][0]["resource"]["resourceType"], "Composition");
    assert_eq!(doc["entry"][0]["resource"]["title"], "診療情報提供書");

    // The hospital's gateway submits a result: 201 with its Location, then served like any
    // other; the same again is 200; a bad one is 422 naming the element; a transaction stores
    // all its entries or none.
    let gw_key = ClientKey::generate("k1");
    let gw_jwks = dir.path().join("chuo-gw.jwks.json");
    std::fs::write(&gw_jwks, &gw_key.jwks).unwrap();
    let out = renkei(
        dir.path(),
        &[
            "admin",
            "create-client",
            "--client-id",
            "chuo-gw",
            "--name",
            "中央病院 連携ゲートウェイ",
            "--facility",
            &chuo_code(),
            "--jwks",
            gw_jwks.to_str().unwrap(),
            "--scope",
            "system/*.crs",
            "--profession",
            "doctor",
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let (_, _, t) =
        json(token_for(&c, &base, &gw_key, ("chuo-gw", "system/*.crs"), "g1").await).await;
    let gw = t["access_token"].as_str().unwrap().to_string();
    let post = |path: &str, body: Value| {
        let c = c.clone();
        let gw = gw.clone();
        let url = format!("{base}{path}");
        async move {
            c.post(url)
                .bearer_auth(gw)
                .header("content-type", "application/fhir+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
        }
    };
    let obs = serde_json::json!({
        "resourceType": "Observation",
        "identifier": [{ "system": "urn:example:chuo-lab", "value": "R-20261121-1" }],
        "status": "final",
        "code": { "coding": [{ "system": "http://medis.or.jp/CodeSystem/master-JLAC10-17digits", "code": "3D046000001906202", "display": "HbA1c" }] },
        "subject": { "reference": patient },
        "effectiveDateTime": "2026-11-21T09:00:00+09:00",
        "valueQuantity": { "value": 6.4, "unit": "%" },
    });
    let r = post("/fhir/Observation", obs.clone()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!("{base}/fhir/Observation/")),
        "{location}"
    );
    let (status, _, created) = json(get(location.clone(), false).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(created["valueQuantity"]["value"], 6.4);
    assert_eq!(
        post("/fhir/Observation", obs.clone()).await.status(),
        StatusCode::OK
    );
    let mut bad = obs.clone();
    bad["effectiveDateTime"] = serde_json::json!("yesterday");
    let (status, _, o) = json(post("/fhir/Observation", bad).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        o["issue"][0]["expression"][0],
        "Observation.effectiveDateTime"
    );
    let (status, _, o) = json(
        c.post(format!("{base}/fhir/Observation"))
            .bearer_auth(&gw)
            .body("{ not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(o["issue"][0]["code"], "structure");
    // Reading is not writing.
    let r = c
        .post(format!("{base}/fhir/Observation"))
        .bearer_auth(&bearer)
        .body(obs.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let mut second = obs.clone();
    second["identifier"][0]["value"] = serde_json::json!("R-20261121-2");
    let mut broken = obs.clone();
    broken["identifier"][0]["value"] = serde_json::json!("R-20261121-3");
    broken["status"] = serde_json::json!("done");
    let tx = |entries: Vec<Value>| serde_json::json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries.into_iter().map(|r| serde_json::json!({ "resource": r, "request": { "method": "POST", "url": "Observation" } })).collect::<Vec<_>>() });
    let count = |b: Value| b["total"].as_u64().unwrap();
    let hba1c = format!("/fhir/Observation?patient={patient}&code=3D046000001906202");
    let (_, _, before) = json(get(hba1c.clone(), false).await).await;
    let before = count(before);
    let (status, _, o) = json(post("/fhir", tx(vec![second.clone(), broken])).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        o["issue"][0]["expression"][0],
        "Bundle.entry[1].resource.status"
    );
    let (_, _, now) = json(get(hba1c.clone(), false).await).await;
    assert_eq!(
        count(now),
        before,
        "nothing of the refused transaction was stored"
    );
    let (status, _, answer) = json(post("/fhir", tx(vec![second])).await).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["type"], "transaction-response");
    assert_eq!(answer["entry"][0]["response"]["status"], "201 Created");
    let (_, _, after) = json(get(hba1c, false).await).await;
    assert_eq!(count(after), before + 1);

    // A document with its file (3 MB, well over a form's limit) goes in; a body over the
    // write limit is refused with an OperationOutcome, not a bare 413.
    {
        use base64::Engine as _;
        let mut file = vec![0u8; 3 * 1024 * 1024];
        file[..8].copy_from_slice(b"%PDF-1.4");
        let doc = serde_json::json!({ "resourceType": "DocumentReference", "status": "current",
            "type": { "text": "診療情報提供書" }, "subject": obs["subject"].clone(),
            "date": "2026-11-21", "content": [{ "attachment": { "contentType": "application/pdf",
            "data": base64::engine::general_purpose::STANDARD.encode(&file) } }] });
        let (status, _, created) = json(post("/fhir/DocumentReference", doc).await).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let url = created["content"][0]["attachment"]["url"].as_str().unwrap();
        let r = c
            .get(format!("{base}/fhir/{url}"))
            .bearer_auth(&gw)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        // A document's bytes never run as a page of this site.
        let policy = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(policy.starts_with("sandbox;"), "{policy}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.bytes().await.unwrap().as_ref(), file.as_slice());
        // Sent by hand: a client that writes the whole body before reading would see the
        // server's answer as a broken pipe.
        let (status, o) = {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let addr = base.trim_start_matches("http://");
            let sock = tokio::net::TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "POST /fhir/DocumentReference HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {gw}\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                65 * 1024 * 1024
            );
            let (mut rx, mut tx) = sock.into_split();
            tx.write_all(head.as_bytes()).await.unwrap();
            // The body goes on until the server stops taking it.
            let writer = tokio::spawn(async move {
                let chunk = vec![b' '; 1024 * 1024];
                for _ in 0..65 {
                    if tx.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            });
            let mut answer = Vec::new();
            let _ = rx.read_to_end(&mut answer).await;
            writer.abort();
            let text = String::from_utf8_lossy(&answer).to_string();
            let code: u16 = text[9..12].parse().unwrap();
            let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
            (
                StatusCode::from_u16(code).unwrap(),
                serde_json::from_str::<Value>(body).unwrap_or_else(|_| panic!("{text}")),
            )
        };
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(o["resourceType"], "OperationOutcome");
        assert_eq!(o["issue"][0]["code"], "too-costly");
    }

    // The directory: the hospital's staff, strict parameters.
    let (status, _, staff) = json(get("/fhir/PractitionerRole".into(), false).await).await;
    assert_eq!(status, StatusCode::OK, "{staff}");
    assert!(staff["total"].as_u64().unwrap() >= 1);
    let (status, _, o) = json(get("/fhir/Practitioner?specialty=x".into(), false).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(o["issue"][0]["expression"][0], "specialty");
    let (status, _, cap) = json(get("/fhir/metadata".into(), false).await).await;
    assert_eq!(status, StatusCode::OK);
    let types: Vec<&str> = cap["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    for t in [
        "Patient",
        "Observation",
        "Consent",
        "AuditEvent",
        "Practitioner",
        "Binary",
    ] {
        assert!(types.contains(&t), "{t} in the CapabilityStatement");
    }

    // Unsupported types and interactions are OperationOutcomes.
    let (status, _, o) = json(get("/fhir/Basic?patient=1".into(), false).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(o["resourceType"], "OperationOutcome");
}
