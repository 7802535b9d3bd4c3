use renkei_core::audit::ChainProblem;
use renkei_store::*;

use crate::{Harness, event, facility, institution, new_user, story, verify};

async fn facilities_are_registered_searched_and_unique(h: &Harness) {
    let s = &h.store;
    let a = s
        .create_facility(
            &facility(Some("3410000019"), "広島中央病院", "hospital"),
            10,
            event("directory.facility.create"),
        )
        .await
        .unwrap();
    assert_eq!(a.name, "広島中央病院");
    assert!(a.discloses);
    let dup = s
        .create_facility(
            &facility(Some("3410000019"), "別名", "clinic"),
            11,
            event("directory.facility.create"),
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    s.create_facility(
        &facility(None, "みどり介護センター", "care_facility"),
        12,
        event("directory.facility.create"),
    )
    .await
    .unwrap();
    let mut changed = facility(Some("3410000019"), "広島中央病院（本院）", "hospital");
    changed.active = false;
    let b = s
        .update_facility(a.id, &changed, 13, event("directory.facility.update"))
        .await
        .unwrap();
    assert_eq!(b.name, "広島中央病院（本院）");
    assert_eq!(b.updated_at, 13);

    let (found, total) = s
        .search_facilities(&FacilityQuery {
            text: Some("介護".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((found.len(), total), (1, 1));
    let (_, active) = s
        .search_facilities(&FacilityQuery {
            active_only: true,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(active, 1);
    // LIKE wildcards in user input are literal.
    let (none, _) = s
        .search_facilities(&FacilityQuery {
            text: Some("%".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(s.facility_by_code("3410000019").await.unwrap().is_some());
    assert!(matches!(s.facility(999).await, Err(StoreError::NotFound)));
    // Each change wrote its audit event, and the failed one did not.
    let (events, n) = s
        .search_audit(&AuditQuery {
            action_prefix: Some("directory.".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(events[2].event.target, format!("facility:{}", a.id));
    assert!(verify(s).await.is_intact());
}
story!(facilities_are_registered_searched_and_unique);

async fn users_respect_the_account_limit_and_credentials_change(h: &Harness) {
    let s = &h.store;
    let f = s
        .create_facility(
            &facility(Some("3410000027"), "こだま内科", "clinic"),
            1,
            event("x"),
        )
        .await
        .unwrap();
    let u1 = s
        .create_user(
            &new_user(f.id, "kodama1"),
            2,
            event("directory.user.create"),
        )
        .await
        .unwrap();
    s.create_user(
        &new_user(f.id, "kodama2"),
        2,
        event("directory.user.create"),
    )
    .await
    .unwrap();
    let third = s
        .create_user(
            &new_user(f.id, "kodama3"),
            2,
            event("directory.user.create"),
        )
        .await;
    assert!(
        matches!(third, Err(StoreError::Conflict(ref r)) if r == "account_limit"),
        "{third:?}"
    );
    let dup = s
        .create_user(
            &new_user(f.id, "kodama1"),
            2,
            event("directory.user.create"),
        )
        .await;
    assert!(matches!(
        dup,
        Err(StoreError::Conflict(_) | StoreError::NotFound)
    ));
    assert_eq!(s.user_by_login("kodama1").await.unwrap().unwrap().id, u1.id);
    assert!(s.user_by_login("nobody").await.unwrap().is_none());

    s.record_login_failure(u1.id, 5, Some(99), event("auth.login"))
        .await
        .unwrap();
    let locked = s.user(u1.id).await.unwrap();
    assert_eq!((locked.failed_logins, locked.locked_until), (5, Some(99)));
    s.set_password(
        u1.id,
        "$argon2id$new",
        false,
        None,
        3,
        event("auth.password.change"),
    )
    .await
    .unwrap();
    let reset = s.user(u1.id).await.unwrap();
    assert_eq!(
        (
            reset.failed_logins,
            reset.locked_until,
            reset.must_change_password
        ),
        (0, None, false)
    );

    s.set_pending_totp_secret(u1.id, "JBSWY3DPEHPK3PXP")
        .await
        .unwrap();
    s.enable_totp(
        u1.id,
        100,
        &["h1".into(), "h2".into()],
        event("auth.totp.enrol"),
    )
    .await
    .unwrap();
    assert!(s.user(u1.id).await.unwrap().totp_enabled);
    assert!(
        !s.claim_totp_step(u1.id, 100).await.unwrap(),
        "a used step is refused"
    );
    assert!(s.claim_totp_step(u1.id, 101).await.unwrap());
    assert!(s.use_recovery_code(u1.id, "h1", 5).await.unwrap());
    assert!(
        !s.use_recovery_code(u1.id, "h1", 6).await.unwrap(),
        "a recovery code works once"
    );
    assert_eq!(s.unused_recovery_codes(u1.id).await.unwrap(), 1);
    s.reset_totp(u1.id, event("auth.totp.reset")).await.unwrap();
    assert!(!s.user(u1.id).await.unwrap().totp_enabled);

    let profile = UserProfile {
        name: "山田 花子".into(),
        name_kana: String::new(),
        profession: "nurse".into(),
        role: "facility_admin".into(),
        emergency: true,
        active: false,
    };
    let u = s
        .update_user_profile(u1.id, &profile, 7, event("directory.user.update"))
        .await
        .unwrap();
    assert!(u.emergency && !u.active);
    // The inactive user frees a place under the limit.
    s.create_user(
        &new_user(f.id, "kodama3"),
        8,
        event("directory.user.create"),
    )
    .await
    .unwrap();
    assert_eq!(s.list_users(Some(f.id)).await.unwrap().len(), 3);
    assert!(verify(s).await.is_intact());
}
story!(users_respect_the_account_limit_and_credentials_change);

async fn sessions_advance_and_expire(h: &Harness) {
    let s = &h.store;
    let f = s
        .create_facility(&facility(None, "事務局", "operator"), 1, event("x"))
        .await
        .unwrap();
    let u = s
        .create_user(&new_user(f.id, "op"), 1, event("x"))
        .await
        .unwrap();
    let rec = SessionRecord {
        token_hash: "t1".into(),
        user_id: u.id,
        stage: "second_factor".into(),
        csrf_token: "c".into(),
        client: "127.0.0.1".into(),
        created_at: 10,
        last_seen_at: 10,
    };
    s.create_session(&rec).await.unwrap();
    s.complete_login("t1", "t2", "full", u.id, 11, event("auth.login"))
        .await
        .unwrap();
    assert_eq!(s.user(u.id).await.unwrap().last_login_at, Some(11));
    assert!(s.session("t1").await.unwrap().is_none());
    assert_eq!(s.session("t2").await.unwrap().unwrap().stage, "full");
    s.touch_session("t2", 20).await.unwrap();
    assert_eq!(s.purge_idle_sessions(15).await.unwrap(), 0);
    assert_eq!(s.purge_idle_sessions(21).await.unwrap(), 1);
    assert!(matches!(
        s.complete_login("t2", "t3", "full", u.id, 22, event("auth.login"))
            .await,
        Err(StoreError::NotFound)
    ));
}
story!(sessions_advance_and_expire);

async fn notices_are_published_in_their_window(h: &Harness) {
    let s = &h.store;
    let f = s
        .create_facility(&facility(None, "事務局", "operator"), 1, event("x"))
        .await
        .unwrap();
    let u = s
        .create_user(&new_user(f.id, "op"), 1, event("x"))
        .await
        .unwrap();
    let n = |title: &str, from: i64, until: Option<i64>, important: bool| NoticeFields {
        title: title.into(),
        body: "本文".into(),
        important,
        published_from: from,
        published_until: until,
    };
    s.create_notice(
        &n("古い", 0, Some(50), false),
        u.id,
        1,
        event("notice.create"),
    )
    .await
    .unwrap();
    let b = s
        .create_notice(&n("通常", 10, None, false), u.id, 1, event("notice.create"))
        .await
        .unwrap();
    s.create_notice(&n("重要", 5, None, true), u.id, 1, event("notice.create"))
        .await
        .unwrap();
    s.create_notice(
        &n("予約", 500, None, false),
        u.id,
        1,
        event("notice.create"),
    )
    .await
    .unwrap();
    let titles: Vec<String> = s
        .current_notices(100, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.title)
        .collect();
    assert_eq!(titles, ["重要", "通常"]);
    s.update_notice(
        b.id,
        &n("通常（改）", 10, None, false),
        2,
        event("notice.update"),
    )
    .await
    .unwrap();
    s.delete_notice(b.id, event("notice.delete")).await.unwrap();
    assert!(matches!(
        s.delete_notice(b.id, event("notice.delete")).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.current_notices(100, 10).await.unwrap().len(), 1);
    assert_eq!(s.all_notices(10).await.unwrap().len(), 3);
}
story!(notices_are_published_in_their_window);

async fn institution_master_upserts_in_batches(h: &Harness) {
    let s = &h.store;
    let mut rows = Vec::new();
    for i in 0..2500u32 {
        let seven = format!("{:06}", i);
        // Build a valid 7-digit code (body + check digit) for Hiroshima.
        let code = renkei_core::FacilityCode::parse(&format!("341{seven}0")).unwrap();
        let check = code.expected_check_digit();
        let nine = format!("34{seven}{check}");
        rows.push(institution([
            &nine,
            &nine[2..],
            &format!("医院{i}"),
            "7300011",
            "広島市",
        ]));
    }
    let mut written = 0;
    s.upsert_institutions(&rows, 1, &mut |n| written += n)
        .await
        .unwrap();
    assert_eq!(written, 2500);
    s.upsert_institutions(&rows[..10], 2, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(s.count_institutions().await.unwrap(), 2500);
    let first = s
        .institution(&rows[0].code.as_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.name, "医院0");
    assert!(first.check_digit_ok);
}
story!(institution_master_upserts_in_batches);

async fn raw_exec(h: &Harness, sql: &str) {
    if h.schema.is_some() {
        let pool = sqlx::PgPool::connect(&h.raw_url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(&h.raw_url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
}

async fn drop_guards(h: &Harness) {
    if h.schema.is_some() {
        raw_exec(h, "DROP TRIGGER audit_events_no_change ON audit_events").await;
    } else {
        raw_exec(
            h,
            "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete",
        )
        .await;
    }
}

async fn audit_trail_refuses_edits_and_verification_catches_tampering(h: &Harness) {
    let s = &h.store;
    for i in 0..5 {
        s.append_audit(event(&format!("auth.login.{i}")))
            .await
            .unwrap();
    }
    assert!(verify(s).await.is_intact());
    // The database itself refuses to change the trail.
    let refused = if h.schema.is_some() {
        let pool = sqlx::PgPool::connect(&h.raw_url).await.unwrap();
        sqlx::query("UPDATE audit_events SET outcome = 'failure' WHERE seq = 2")
            .execute(&pool)
            .await
            .is_err()
    } else {
        let pool = sqlx::SqlitePool::connect(&h.raw_url).await.unwrap();
        sqlx::query("UPDATE audit_events SET outcome = 'failure' WHERE seq = 2")
            .execute(&pool)
            .await
            .is_err()
    };
    assert!(refused);

    // An attacker with full database access removes the guards and edits.
    drop_guards(h).await;
    raw_exec(
        h,
        "UPDATE audit_events SET outcome = 'failure' WHERE seq = 2",
    )
    .await;
    assert_eq!(
        verify(s).await.problems,
        vec![ChainProblem::Modified { seq: 2 }]
    );
    raw_exec(
        h,
        "UPDATE audit_events SET outcome = 'success' WHERE seq = 2",
    )
    .await;
    assert!(
        verify(s).await.is_intact(),
        "restoring the row restores the chain"
    );

    raw_exec(h, "DELETE FROM audit_events WHERE seq = 3").await;
    assert_eq!(
        verify(s).await.problems,
        vec![ChainProblem::Missing { after: 2, next: 4 }]
    );

    // Insert a forged event where the deleted one was, copying a neighbour's links.
    raw_exec(
        h,
        "INSERT INTO audit_events (seq, at, user_id, login_id, facility_id, profession, action, target, outcome, detail, client, emergency, prev_hash, hash)
         SELECT 3, at, user_id, 'intruder', facility_id, profession, action, target, outcome, detail, client, emergency, hash, hash FROM audit_events WHERE seq = 2",
    )
    .await;
    let report = verify(s).await;
    assert!(
        report.problems.contains(&ChainProblem::Modified { seq: 3 }),
        "{:?}",
        report.problems
    );

    raw_exec(h, "DELETE FROM audit_events WHERE seq = 5").await;
    let report = verify(s).await;
    assert!(
        report.problems.contains(&ChainProblem::HeadMismatch {
            head_seq: 5,
            last_seq: 4
        }),
        "{:?}",
        report.problems
    );
}
story!(audit_trail_refuses_edits_and_verification_catches_tampering);

async fn concurrent_appends_keep_one_chain(h: &Harness) {
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = h.store.clone();
        tasks.push(tokio::spawn(async move {
            s.append_audit(event(&format!("auth.login.{i}")))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = verify(&h.store).await;
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.checked, 20);
}
story!(concurrent_appends_keep_one_chain);
