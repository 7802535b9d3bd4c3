//! API clients on SQLite and PostgreSQL: OAuth client credentials with signed assertions
//! (SMART Backend Services), then IHE PIXm and PDQm over the MPI, with what a client acting
//! for one facility may and may not see.

use std::sync::Arc;

use renkei_app::api::{ApiCaller, ClientInput};
use renkei_app::directory::{FacilityInput, UserInput};
use renkei_app::identity::{CardKind, PersonDetails};
use renkei_app::interop::{PdqQuery, PixError};
use renkei_app::testing::{ClientKey, token_request};
use renkei_app::{Actor, App, AppConfig, AppError};
use renkei_core::time::{FixedClock, Timestamp};
use renkei_store::on_both_backends;
use renkei_store::testing::TestStore;

const START: i64 = 1_795_219_200;
const TOKEN_URL: &str = "https://renkei.example.jp/oauth/token";

async fn hospital(app: &App, name: &str, login: &str) -> (i64, Actor) {
    let system = Actor::system("test");
    let (f, _) = app
        .create_facility(
            &system,
            &FacilityInput {
                facility_type: "hospital".into(),
                name: name.into(),
                max_accounts: "5".into(),
                issues_hm_card: true,
                discloses: true,
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
                name: "職員".into(),
                profession: "clerk".into(),
                role: "staff".into(),
                active: true,
                ..Default::default()
            },
            "Password-2026!",
            false,
        )
        .await
        .unwrap();
    (
        f.id,
        Actor {
            user_id: Some(u.id),
            login_id: login.into(),
            name: "職員".into(),
            facility_id: Some(f.id),
            profession: Some("clerk".into()),
            role: renkei_core::user::Role::Staff,
            emergency: false,
            client: "127.0.0.1".into(),
        },
    )
}

fn person(kanji: &str, kana: &str, birth: &str) -> PersonDetails {
    PersonDetails {
        kanji_name: kanji.into(),
        kana_name: kana.into(),
        birth_date: birth.into(),
        sex: "M".into(),
        phone: "082-123-4567".into(),
        ..PersonDetails::default()
    }
}

async fn caller(app: &App, key: &ClientKey, client_id: &str, jti: &str, scope: &str) -> ApiCaller {
    let exp = START + 120;
    let token = app
        .issue_token(
            &token_request(key.assertion("k1", client_id, TOKEN_URL, exp, jti), scope),
            TOKEN_URL,
            "10.0.0.1",
        )
        .await
        .unwrap();
    assert_eq!(token.token_type, "bearer");
    app.api_caller(&token.access_token, "10.0.0.1")
        .await
        .unwrap()
}

async fn clients_tokens_pixm_and_pdqm(t: &TestStore) {
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(START)));
    let app = App::new(t.store.clone(), clock.clone(), AppConfig::default());
    let op = Actor::system("test");
    let (a_id, a) = hospital(&app, "広島中央総合病院", "chuo.clerk").await;
    let (b_id, b) = hospital(&app, "県立安芸病院", "aki.clerk").await;
    let taro = app
        .issue_card(
            &a,
            "A-1",
            CardKind::Hm,
            Some(&person("髙橋 太郎", "タカハシ タロウ", "1948-04-05")),
        )
        .await
        .unwrap();
    app.read_card(&b, &taro.payload, "B-77").await.unwrap();
    let hanako = app
        .issue_card(
            &b,
            "B-2",
            CardKind::Hm,
            Some(&person("山田 花子", "ヤマダ ハナコ", "1960-01-01")),
        )
        .await
        .unwrap();

    // Registration: operator only, keys and scopes checked.
    let key = ClientKey::generate("k1");
    let input = ClientInput {
        client_id: "chuo-ehr".into(),
        name: "中央病院 電子カルテ".into(),
        facility_id: a_id,
        jwks: key.jwks.clone(),
        scopes: "system/Patient.rs".into(),
        cross_facility: false,
        profession: String::new(),
        redirect_uris: String::new(),
    };
    assert!(matches!(
        app.register_api_client(&a, &input).await,
        Err(AppError::Forbidden)
    ));
    for (jwks, scopes) in [
        ("not json", "system/Patient.rs"),
        (key.jwks.as_str(), "user/Patient.rs"),
        (key.jwks.as_str(), "system/Secret.rs"),
        (key.jwks.as_str(), "system/Patient.write"),
    ] {
        let bad = ClientInput {
            jwks: jwks.into(),
            scopes: scopes.into(),
            ..input.clone()
        };
        assert!(matches!(
            app.register_api_client(&op, &bad).await,
            Err(AppError::Invalid(_))
        ));
    }
    app.register_api_client(&op, &input).await.unwrap();
    let gateway_key = ClientKey::generate("k1");
    app.register_api_client(
        &op,
        &ClientInput {
            client_id: "region-gateway".into(),
            name: "地域ゲートウェイ".into(),
            facility_id: b_id,
            jwks: gateway_key.jwks.clone(),
            scopes: "system/Patient.rs system/Patient.r".into(),
            cross_facility: true,
            profession: String::new(),
            redirect_uris: String::new(),
        },
    )
    .await
    .unwrap();

    // Token refusals: wrong audience, a key that is not the client's, expired, replayed, an
    // unknown client, a scope not allowed.
    let exp = START + 120;
    let refused = |r: Result<_, renkei_app::api::OAuthError>| r.unwrap_err().error;
    assert_eq!(
        refused(
            app.issue_token(
                &token_request(
                    key.assertion("k1", "chuo-ehr", "https://elsewhere/oauth/token", exp, "j0"),
                    ""
                ),
                TOKEN_URL,
                "x"
            )
            .await
        ),
        "invalid_client"
    );
    let stranger = ClientKey::generate("k1");
    assert_eq!(
        refused(
            app.issue_token(
                &token_request(
                    stranger.assertion("k1", "chuo-ehr", TOKEN_URL, exp, "j1"),
                    ""
                ),
                TOKEN_URL,
                "x"
            )
            .await
        ),
        "invalid_client"
    );
    assert_eq!(
        refused(
            app.issue_token(
                &token_request(
                    key.assertion("k1", "chuo-ehr", TOKEN_URL, START - 300, "j2"),
                    ""
                ),
                TOKEN_URL,
                "x"
            )
            .await
        ),
        "invalid_client"
    );
    assert_eq!(
        refused(
            app.issue_token(
                &token_request(
                    key.assertion("k1", "no-such-client", TOKEN_URL, exp, "j3"),
                    ""
                ),
                TOKEN_URL,
                "x"
            )
            .await
        ),
        "invalid_client"
    );
    assert_eq!(
        refused(
            app.issue_token(
                &token_request(
                    key.assertion("k1", "chuo-ehr", TOKEN_URL, exp, "j4"),
                    "system/*.rs"
                ),
                TOKEN_URL,
                "x"
            )
            .await
        ),
        "invalid_scope"
    );
    let mut wrong_grant = token_request(key.assertion("k1", "chuo-ehr", TOKEN_URL, exp, "j5"), "");
    wrong_grant.grant_type = "password".into();
    assert_eq!(
        refused(app.issue_token(&wrong_grant, TOKEN_URL, "x").await),
        "unsupported_grant_type"
    );
    let chuo = caller(&app, &key, "chuo-ehr", "j6", "").await;
    assert_eq!(
        refused(
            app.issue_token(
                &token_request(key.assertion("k1", "chuo-ehr", TOKEN_URL, exp, "j6"), ""),
                TOKEN_URL,
                "x"
            )
            .await
        ),
        "invalid_client",
        "a replayed assertion is refused"
    );
    let gateway = caller(&app, &gateway_key, "region-gateway", "g1", "").await;
    let read_only = caller(
        &app,
        &gateway_key,
        "region-gateway",
        "g2",
        "system/Patient.r",
    )
    .await;

    // PIXm: from the hospital's own ID to the common ID (and its own IDs only).
    let common = app.common_id_system();
    let chuo_system = app.facility_patient_system(&t.store.facility(a_id).await.unwrap());
    let aki_system = app.facility_patient_system(&t.store.facility(b_id).await.unwrap());
    let entry = app
        .pix_query(&chuo, &format!("{chuo_system}|A-1"), &[])
        .await
        .unwrap();
    let ids: Vec<(String, String)> = entry
        .identifiers
        .iter()
        .map(|i| (i.system.clone(), i.value.clone()))
        .collect();
    assert_eq!(ids, vec![(common.clone(), taro.common_id.digits())]);
    // The gateway sees every facility's ID for him.
    let entry = app
        .pix_query(
            &gateway,
            &format!("{common}|{}", taro.common_id.digits()),
            &[],
        )
        .await
        .unwrap();
    let values: Vec<&str> = entry.identifiers.iter().map(|i| i.value.as_str()).collect();
    assert_eq!(values, vec!["A-1", "B-77"]);
    let only_b = app
        .pix_query(
            &gateway,
            &format!("{chuo_system}|A-1"),
            std::slice::from_ref(&aki_system),
        )
        .await
        .unwrap();
    assert_eq!(only_b.identifiers.len(), 1);
    assert_eq!(only_b.identifiers[0].value, "B-77");
    // What the hospital's client may not see looks like what does not exist.
    let not_ours = app
        .pix_query(
            &chuo,
            &format!("{common}|{}", hanako.common_id.digits()),
            &[],
        )
        .await;
    assert!(matches!(not_ours, Err(PixError::UnknownPatient)));
    let nobody = app
        .pix_query(&chuo, &format!("{chuo_system}|A-999"), &[])
        .await;
    assert!(matches!(nobody, Err(PixError::UnknownPatient)));
    assert!(matches!(
        app.pix_query(&chuo, "urn:oid:9.9.9|1", &[]).await,
        Err(PixError::UnknownSourceDomain)
    ));
    assert!(matches!(
        app.pix_query(
            &chuo,
            &format!("{chuo_system}|A-1"),
            std::slice::from_ref(&aki_system)
        )
        .await,
        Err(PixError::UnknownTargetDomain)
    ));
    assert!(matches!(
        app.pix_query(&chuo, "A-1", &[]).await,
        Err(PixError::Invalid(_))
    ));

    // PDQm: the hospital's client finds its own patients only.
    let by_name = |family: &str| PdqQuery {
        family: family.into(),
        count: 10,
        ..PdqQuery::default()
    };
    let found = app.pdq_search(&chuo, &by_name("たかはし")).await.unwrap();
    assert_eq!(found.entries.len(), 1);
    assert_eq!(found.entries[0].person.id, taro.person.id);
    assert!(
        app.pdq_search(&chuo, &by_name("ヤマダ"))
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    assert_eq!(
        app.pdq_search(&gateway, &by_name("ヤマダ"))
            .await
            .unwrap()
            .entries
            .len(),
        1
    );
    let by_phone = PdqQuery {
        telecom: "phone|0821234567".into(),
        count: 1,
        ..PdqQuery::default()
    };
    let page = app.pdq_search(&gateway, &by_phone).await.unwrap();
    assert_eq!(page.entries.len(), 1);
    assert!(page.more, "two persons share the phone; one per page");
    let by_identifier = PdqQuery {
        identifier: format!("{aki_system}|B-2"),
        count: 10,
        ..PdqQuery::default()
    };
    assert!(
        app.pdq_search(&chuo, &by_identifier)
            .await
            .unwrap()
            .entries
            .is_empty()
    );
    assert_eq!(
        app.pdq_search(&gateway, &by_identifier)
            .await
            .unwrap()
            .entries
            .len(),
        1
    );
    assert!(matches!(
        app.pdq_search(
            &chuo,
            &PdqQuery {
                count: 10,
                ..PdqQuery::default()
            }
        )
        .await,
        Err(AppError::Invalid(_))
    ));
    assert!(matches!(
        app.pdq_search(&read_only, &by_name("ヤマダ")).await,
        Err(AppError::Forbidden)
    ));
    assert!(matches!(
        app.pdq_read(&chuo, &hanako.common_id.digits()).await,
        Err(AppError::NotFound)
    ));
    assert_eq!(
        app.pdq_read(&read_only, &hanako.common_id.digits())
            .await
            .unwrap()
            .person
            .id,
        hanako.person.id
    );

    // Tokens expire; a disabled client's tokens stop at once.
    clock.advance_seconds(301);
    assert!(matches!(
        app.api_caller("not-a-token", "x").await,
        Err(AppError::Unauthenticated)
    ));
    let fresh = app
        .issue_token(
            &token_request(
                key.assertion("k1", "chuo-ehr", TOKEN_URL, START + 400, "j7"),
                "",
            ),
            TOKEN_URL,
            "x",
        )
        .await
        .unwrap();
    let id = app
        .api_clients(&op)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.client_id == "chuo-ehr")
        .unwrap()
        .id;
    // Used once, so that the server has the token in its cache when the client is disabled.
    assert!(app.api_caller(&fresh.access_token, "x").await.is_ok());
    app.set_api_client_active(&op, id, false).await.unwrap();
    assert!(matches!(
        app.api_caller(&fresh.access_token, "x").await,
        Err(AppError::Unauthenticated)
    ));

    let report = app
        .verify_audit(renkei_store::testing::test_key(), |_| {})
        .await
        .unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
}
on_both_backends!(clients_tokens_pixm_and_pdqm);
