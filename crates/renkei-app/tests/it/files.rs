//! File consultation and HM-Box on SQLite and PostgreSQL (and the expiry also on a real S3
//! server): resumable uploads, limits checked before a byte is stored, who may see and download
//! what, double reading, and the 7-day deletion from database and object store, audited.

use std::sync::Arc;

use renkei_app::audit::AuditSearch;
use renkei_app::directory::{FacilityInput, UserInput};
use renkei_app::files::{
    BOX_QUOTA, BOX_RETENTION_SECONDS, CaseInput, FileUse, MAX_CASE_FILE, UploadRequest,
    UploadTarget,
};
use renkei_app::identity::{CardKind, PersonDetails};
use renkei_app::{Actor, App, AppConfig, AppError};
use renkei_core::time::{FixedClock, Timestamp};
use renkei_store::objects::{ObjectStoreConfig, Objects};
use renkei_store::on_both_backends;
use renkei_store::testing::{S3Server, TestStore};

const START: i64 = 1_795_219_200;

async fn staff(app: &App, kind: &str, facility: &str, login: &str) -> Actor {
    let system = Actor::system("test");
    let (f, _) = app
        .create_facility(
            &system,
            &FacilityInput {
                facility_type: kind.into(),
                name: facility.into(),
                max_accounts: "5".into(),
                discloses: kind == "hospital",
                issues_hm_card: kind == "hospital",
                active: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    user_at(app, f.id, login).await
}

async fn user_at(app: &App, facility_id: i64, login: &str) -> Actor {
    let u = app
        .create_user_with_password(
            &Actor::system("test"),
            &UserInput {
                facility_id,
                login_id: login.into(),
                name: format!("{login}先生"),
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
    Actor {
        user_id: Some(u.id),
        login_id: login.into(),
        name: login.into(),
        facility_id: Some(facility_id),
        profession: Some("doctor".into()),
        role: renkei_core::user::Role::Staff,
        emergency: false,
        client: "127.0.0.1".into(),
    }
}

fn app_with(t: &TestStore, objects: Objects) -> (App, Arc<FixedClock>) {
    let clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(START)));
    let app = App::new(t.store.clone(), clock.clone(), AppConfig::default()).with_objects(objects);
    (app, clock)
}

fn local_objects(dir: &tempfile::TempDir) -> Objects {
    Objects::open(
        &ObjectStoreConfig {
            url: format!("file://{}", dir.path().join("files").display()),
            ..Default::default()
        },
        &dir.path().join("uploads"),
    )
    .unwrap()
}

/// Uploads `bytes` in chunks of `chunk`, as a browser would; returns the file id.
async fn upload(app: &App, who: &Actor, target: UploadTarget, name: &str, bytes: &[u8]) -> i64 {
    let s = app
        .create_upload(
            who,
            &UploadRequest {
                target,
                file_name: name.into(),
                content_type: String::new(),
                length: bytes.len() as i64,
            },
        )
        .await
        .unwrap();
    let mut offset = 0usize;
    let mut file = None;
    for chunk in bytes.chunks(64 * 1024) {
        let mut a = app.append_upload(who, &s.id, offset as i64).await.unwrap();
        a.write(chunk).await.unwrap();
        let st = a.finish(app).await.unwrap();
        offset += chunk.len();
        assert_eq!(st.received, offset as i64);
        file = st.file_id;
    }
    file.unwrap()
}

async fn read_all(app: &App, who: &Actor, id: i64) -> Result<Vec<u8>, AppError> {
    use futures_util::StreamExt;
    let f = app.file_access(who, id, FileUse::Download).await?;
    let mut s = app.open_file(&f, None).await?;
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    Ok(out)
}

async fn audit_actions(app: &App, action: &str) -> Vec<(String, String, String)> {
    let (events, _) = app
        .search_audit(
            &Actor::system("test"),
            &AuditSearch {
                action: action.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    events
        .into_iter()
        .map(|e| {
            (
                e.event.login_id.clone(),
                e.event.target.clone(),
                e.event.outcome.key().to_string(),
            )
        })
        .collect()
}

async fn hm_box_flow(t: &TestStore, objects: Objects) {
    let (app, clock) = app_with(t, objects.clone());
    let owner = staff(&app, "hospital", "広島中央病院", "hosp-dr1").await;
    let friend = staff(&app, "clinic", "みなみクリニック", "clinic-dr1").await;
    let stranger = staff(&app, "clinic", "きたクリニック", "stranger").await;

    // A resumable upload: a chunk, a dropped connection mid-chunk, a resume.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let s = app
        .create_upload(
            &owner,
            &UploadRequest {
                target: UploadTarget::Box,
                file_name: "C:\\temp\\紹介状（山田様）.pdf".into(),
                content_type: String::new(),
                length: data.len() as i64,
            },
        )
        .await
        .unwrap();
    let mut a = app.append_upload(&owner, &s.id, 0).await.unwrap();
    // One writer per upload at a time.
    assert!(matches!(
        app.append_upload(&owner, &s.id, 0).await.err(),
        Some(AppError::Conflict(_))
    ));
    a.write(&data[..100_000]).await.unwrap();
    let st = a.finish(&app).await.unwrap();
    assert_eq!((st.received, st.file_id), (100_000, None));
    // Someone else cannot see or touch the upload.
    assert!(matches!(
        app.upload_state(&stranger, &s.id).await,
        Err(AppError::NotFound)
    ));
    // A resume at the wrong offset is refused and names both offsets.
    match app.append_upload(&owner, &s.id, 0).await.err() {
        Some(AppError::Conflict(m)) => assert!(m.contains("100000"), "{m}"),
        other => panic!("{other:?}"),
    }
    // More than declared is refused, and nothing of it is kept.
    let mut a = app.append_upload(&owner, &s.id, 100_000).await.unwrap();
    assert!(matches!(
        a.write(&vec![0u8; 200_001]).await,
        Err(AppError::Invalid(_))
    ));
    assert_eq!(a.finish(&app).await.unwrap().received, 100_000);
    assert_eq!(
        app.upload_state(&owner, &s.id).await.unwrap().received,
        100_000
    );
    let mut a = app.append_upload(&owner, &s.id, 100_000).await.unwrap();
    a.write(&data[100_000..]).await.unwrap();
    let file_id = a.finish(&app).await.unwrap().file_id.unwrap();

    let b = app.hm_box(&owner).await.unwrap();
    assert_eq!(b.used, data.len() as i64);
    assert_eq!(b.files[0].0.file_name, "紹介状（山田様）.pdf");
    assert_eq!(b.files[0].0.content_type, "application/pdf");
    assert_eq!(
        b.files[0].0.expires_at,
        Some((START + BOX_RETENTION_SECONDS) * 1_000_000)
    );
    assert_eq!(read_all(&app, &owner, file_id).await.unwrap(), data);

    // The quota counts what is stored and what is being uploaded.
    match app
        .create_upload(
            &owner,
            &UploadRequest {
                target: UploadTarget::Box,
                file_name: "big.zip".into(),
                content_type: String::new(),
                length: BOX_QUOTA - data.len() as i64 + 1,
            },
        )
        .await
    {
        Err(AppError::Invalid(m)) => assert!(m.contains("5.0 GB"), "{m}"),
        other => panic!("{other:?}"),
    }

    // Not shared: the others cannot tell the file exists.
    assert!(matches!(
        read_all(&app, &friend, file_id).await,
        Err(AppError::NotFound)
    ));
    assert!(matches!(
        app.share_box_file(&owner, file_id, "nobody").await,
        Err(AppError::Invalid(_))
    ));
    // Only the owner shares.
    assert!(matches!(
        app.share_box_file(&friend, file_id, "clinic-dr1").await,
        Err(AppError::NotFound)
    ));
    let names = app
        .share_box_file(&owner, file_id, "clinic-dr1")
        .await
        .unwrap();
    assert_eq!(names, vec!["clinic-dr1先生".to_string()]);
    assert_eq!(read_all(&app, &friend, file_id).await.unwrap(), data);
    assert_eq!(app.hm_box(&friend).await.unwrap().shared_with_me.len(), 1);
    assert!(matches!(
        read_all(&app, &stranger, file_id).await,
        Err(AppError::NotFound)
    ));
    let downloads = audit_actions(&app, "file.download").await;
    assert!(downloads.contains(&(
        "clinic-dr1".into(),
        format!("file:{file_id}"),
        "success".into()
    )));
    assert!(downloads.contains(&(
        "stranger".into(),
        format!("file:{file_id}"),
        "denied".into()
    )));

    // Unsharing takes access away again.
    let friend_id = friend.user_id.unwrap();
    app.unshare_box_file(&owner, file_id, friend_id)
        .await
        .unwrap();
    assert!(matches!(
        read_all(&app, &friend, file_id).await,
        Err(AppError::NotFound)
    ));

    // An upload abandoned for a day is dropped, with its reservation.
    let abandoned = app
        .create_upload(
            &owner,
            &UploadRequest {
                target: UploadTarget::Box,
                file_name: "途中.dcm".into(),
                content_type: String::new(),
                length: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        app.hm_box(&owner).await.unwrap().used,
        data.len() as i64 + 10
    );

    // Seven days after upload, and not a second before, the file goes: row, bytes, audited.
    let key = b.files[0].0.object_key.clone();
    clock.advance_seconds(BOX_RETENTION_SECONDS - 1);
    assert_eq!(app.expire_files().await.unwrap(), 0);
    assert_eq!(app.expire_uploads().await.unwrap(), 1);
    assert!(matches!(
        app.upload_state(&owner, &abandoned.id).await,
        Err(AppError::NotFound)
    ));
    assert!(objects.exists(&key).await.unwrap());
    clock.advance_seconds(1);
    assert_eq!(app.expire_files().await.unwrap(), 1);
    assert!(!objects.exists(&key).await.unwrap());
    assert!(app.hm_box(&owner).await.unwrap().files.is_empty());
    assert_eq!(app.hm_box(&owner).await.unwrap().used, 0);
    assert!(matches!(
        read_all(&app, &owner, file_id).await,
        Err(AppError::NotFound)
    ));
    assert_eq!(
        audit_actions(&app, "box.expire").await,
        vec![(
            "system:box-expiry".to_string(),
            format!("file:{file_id}"),
            "success".to_string()
        )]
    );
    assert_eq!(app.expire_files().await.unwrap(), 0);
}

async fn hm_box_on_local_disk(t: &TestStore) {
    let dir = tempfile::tempdir().unwrap();
    hm_box_flow(t, local_objects(&dir)).await;
}
on_both_backends!(hm_box_on_local_disk);

#[tokio::test]
#[ignore = "needs moto (pip install 'moto[server]'): pass --run-ignored all"]
async fn hm_box_on_s3() {
    let server = S3Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let objects =
        Objects::open(&server.bucket("hm-box").await, &dir.path().join("uploads")).unwrap();
    let t = renkei_store::testing::sqlite().await;
    hm_box_flow(&t, objects).await;
    t.finish().await;
}

async fn consultation_cases(t: &TestStore) {
    let dir = tempfile::tempdir().unwrap();
    let (app, _clock) = app_with(t, local_objects(&dir));
    let clinic = staff(&app, "clinic", "みなみクリニック", "clinic-dr1").await;
    let radiologist = staff(&app, "hospital", "広島中央病院", "hosp-rad1").await;
    let hospital_id = radiologist.facility_id.unwrap();
    let second = user_at(&app, hospital_id, "hosp-rad2").await;
    let third = user_at(&app, hospital_id, "hosp-rad3").await;
    let stranger = staff(&app, "clinic", "きたクリニック", "stranger").await;

    // A patient with an HM card (the clinic reads it when opening the case).
    let issued = app
        .issue_card(
            &radiologist,
            "H-1",
            CardKind::Hm,
            Some(&PersonDetails {
                kanji_name: "山田 太郎".into(),
                kana_name: "ヤマダ タロウ".into(),
                birth_date: "1950-04-01".into(),
                sex: "M".into(),
                ..PersonDetails::default()
            }),
        )
        .await
        .unwrap();

    // A patient who opted out of the hospital's sharing cannot be the subject of its case.
    app.set_opt_out(&radiologist, "H-1", true).await.unwrap();
    match app
        .create_case(
            &radiologist,
            &CaseInput {
                title: "相談".into(),
                card: issued.payload.clone(),
                recipient_logins: "clinic-dr1".into(),
                ..Default::default()
            },
        )
        .await
    {
        Err(AppError::Invalid(m)) => assert!(m.contains("オプトアウト"), "{m}"),
        other => panic!("{other:?}"),
    }
    app.set_opt_out(&radiologist, "H-1", false).await.unwrap();

    // Recipients must exist; a case needs one.
    assert!(matches!(
        app.create_case(
            &clinic,
            &CaseInput {
                title: "胸部".into(),
                ..Default::default()
            }
        )
        .await,
        Err(AppError::Invalid(_))
    ));
    assert!(matches!(
        app.create_case(
            &clinic,
            &CaseInput {
                title: "胸部".into(),
                recipient_logins: "nobody".into(),
                ..Default::default()
            }
        )
        .await,
        Err(AppError::Invalid(_))
    ));
    let case_id = app
        .create_case(
            &clinic,
            &CaseInput {
                title: "胸部X線の読影依頼".into(),
                body: "右下肺野の陰影についてご意見ください。".into(),
                card: issued.payload.clone(),
                recipient_facilities: vec![hospital_id],
                recipient_logins: String::new(),
                allow_download: false,
                double_reading: true,
            },
        )
        .await
        .unwrap();

    // Limits are checked before any byte: 20 MB per file ...
    match app
        .create_upload(
            &clinic,
            &UploadRequest {
                target: UploadTarget::Case(case_id),
                file_name: "CT.dcm".into(),
                content_type: String::new(),
                length: MAX_CASE_FILE + 1,
            },
        )
        .await
    {
        Err(AppError::Invalid(m)) => assert!(m.contains("20.0 MB") && m.contains("CT.dcm"), "{m}"),
        other => panic!("{other:?}"),
    }
    // ... and 700 MB per case: 35 uploads of 20 MB fit, the 36th does not.
    let mut reserved = Vec::new();
    for i in 0..35 {
        reserved.push(
            app.create_upload(
                &clinic,
                &UploadRequest {
                    target: UploadTarget::Case(case_id),
                    file_name: format!("slice{i}.dcm"),
                    content_type: String::new(),
                    length: MAX_CASE_FILE,
                },
            )
            .await
            .unwrap(),
        );
    }
    match app
        .create_upload(
            &clinic,
            &UploadRequest {
                target: UploadTarget::Case(case_id),
                file_name: "one-more.png".into(),
                content_type: String::new(),
                length: 1,
            },
        )
        .await
    {
        Err(AppError::Invalid(m)) => assert!(m.contains("700.0 MB"), "{m}"),
        other => panic!("{other:?}"),
    }
    for r in &reserved {
        app.cancel_upload(&clinic, &r.id).await.unwrap();
    }
    // A stranger cannot attach to (or learn of) the case.
    assert!(matches!(
        app.create_upload(
            &stranger,
            &UploadRequest {
                target: UploadTarget::Case(case_id),
                file_name: "x.png".into(),
                content_type: String::new(),
                length: 1,
            },
        )
        .await,
        Err(AppError::NotFound)
    ));

    let png = {
        let img = image_png();
        upload(
            &app,
            &clinic,
            UploadTarget::Case(case_id),
            "胸部正面.png",
            &img,
        )
        .await
    };

    // Recipients (every user of the named facility) see the case, its patient and file.
    let v = app.case_view(&second, case_id).await.unwrap();
    assert_eq!(v.patient.as_ref().map(|p| p.1.as_str()), Some("山田 太郎"));
    assert_eq!(v.files.len(), 1);
    assert!(!v.can_download && v.can_read);
    // They may look at the picture but not download it: the sender did not allow that.
    assert!(app.file_access(&second, png, FileUse::View).await.is_ok());
    assert!(matches!(
        app.file_access(&second, png, FileUse::Download).await,
        Err(AppError::Forbidden)
    ));
    assert!(
        app.file_access(&clinic, png, FileUse::Download)
            .await
            .is_ok()
    );
    // Strangers: not found, for the case and its file alike; and audited as denied.
    assert!(matches!(
        app.case_view(&stranger, case_id).await,
        Err(AppError::NotFound)
    ));
    assert!(matches!(
        app.file_access(&stranger, png, FileUse::View).await,
        Err(AppError::NotFound)
    ));
    assert!(audit_actions(&app, "case.read").await.contains(&(
        "stranger".into(),
        format!("case:{case_id}"),
        "denied".into()
    )));
    assert!(app.cases(&stranger).await.unwrap().is_empty());
    assert_eq!(app.cases(&third).await.unwrap().len(), 1);

    // The thread.
    app.reply_case(&radiologist, case_id, "拝見しました。")
        .await
        .unwrap();
    app.reply_case(&clinic, case_id, "よろしくお願いします。")
        .await
        .unwrap();
    let v = app.case_view(&clinic, case_id).await.unwrap();
    assert_eq!(v.messages.len(), 2);
    assert!(matches!(
        app.reply_case(&stranger, case_id, "?").await,
        Err(AppError::NotFound)
    ));

    // Double reading: independent, and the sender sees both only when both are in.
    assert!(matches!(
        app.submit_reading(&clinic, case_id, "自分で").await,
        Err(AppError::Invalid(_))
    ));
    app.submit_reading(&radiologist, case_id, "所見A: 肺炎疑い")
        .await
        .unwrap();
    assert!(matches!(
        app.submit_reading(&radiologist, case_id, "やり直し").await,
        Err(AppError::Conflict(_))
    ));
    let sender = app.case_view(&clinic, case_id).await.unwrap();
    assert_eq!(sender.readings_in, 1);
    assert!(sender.readings.is_empty());
    let other = app.case_view(&second, case_id).await.unwrap();
    assert!(other.readings.is_empty() && other.can_read);
    let first = app.case_view(&radiologist, case_id).await.unwrap();
    assert_eq!(first.readings.len(), 1);
    assert!(!first.can_read);
    app.submit_reading(&second, case_id, "所見B: 異常なし")
        .await
        .unwrap();
    assert!(matches!(
        app.submit_reading(&third, case_id, "三人目").await,
        Err(AppError::Conflict(_))
    ));
    let sender = app.case_view(&clinic, case_id).await.unwrap();
    let findings: Vec<&str> = sender
        .readings
        .iter()
        .map(|r| r.findings.as_str())
        .collect();
    assert_eq!(findings, vec!["所見A: 肺炎疑い", "所見B: 異常なし"]);

    // A case that allows downloads.
    let open = app
        .create_case(
            &clinic,
            &CaseInput {
                title: "紹介状".into(),
                recipient_logins: "hosp-rad3".into(),
                allow_download: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let pdf = upload(
        &app,
        &clinic,
        UploadTarget::Case(open),
        "紹介状.pdf",
        b"%PDF-1.4 test",
    )
    .await;
    assert_eq!(read_all(&app, &third, pdf).await.unwrap(), b"%PDF-1.4 test");
    // Named users only: a colleague of the recipient is not one.
    assert!(matches!(
        read_all(&app, &second, pdf).await,
        Err(AppError::NotFound)
    ));
}
on_both_backends!(consultation_cases);

fn image_png() -> Vec<u8> {
    // A 4x4 grey PNG, made by the same crate the server decodes with.
    let mut out = Vec::new();
    let img =
        image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(4, 4, image::Luma([128])));
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

async fn office_locks_expire_after_thirty_minutes(t: &TestStore) {
    use renkei_app::wopi::{LockOp, WopiOutcome};
    let dir = tempfile::tempdir().unwrap();
    let (app, clock) = app_with(t, local_objects(&dir));
    let owner = staff(&app, "clinic", "みなみクリニック", "clinic-dr1").await;
    let id = upload(
        &app,
        &owner,
        UploadTarget::Box,
        "議事録.docx",
        b"PK minutes",
    )
    .await;
    let token = app.issue_wopi_token(&owner, id).await.unwrap().token;
    let s = app.wopi_session(&token, id, "editor").await.unwrap();
    assert!(s.can_write);
    // The token is for this file only.
    assert!(matches!(
        app.wopi_session(&token, id + 1, "editor").await,
        Err(AppError::Unauthenticated)
    ));
    assert_eq!(
        app.wopi_lock(&s, LockOp::Lock("A".into())).await.unwrap(),
        WopiOutcome::Done
    );
    assert_eq!(
        app.wopi_lock(&s, LockOp::Lock("B".into())).await.unwrap(),
        WopiOutcome::Conflict("A".into())
    );
    clock.advance_seconds(29 * 60);
    assert_eq!(
        app.wopi_lock(&s, LockOp::RefreshLock("A".into()))
            .await
            .unwrap(),
        WopiOutcome::Done
    );
    clock.advance_seconds(29 * 60);
    // Refreshed: still held 58 minutes after it was taken.
    assert_eq!(
        app.wopi_lock(&s, LockOp::GetLock).await.unwrap(),
        WopiOutcome::Lock("A".into())
    );
    clock.advance_seconds(2 * 60);
    // Not refreshed for 31 minutes: gone, and another editor may lock.
    assert_eq!(
        app.wopi_lock(&s, LockOp::GetLock).await.unwrap(),
        WopiOutcome::Lock(String::new())
    );
    assert_eq!(
        app.wopi_lock(&s, LockOp::Lock("B".into())).await.unwrap(),
        WopiOutcome::Done
    );
    assert_eq!(
        app.wopi_put(&s, Some("B"), b"PK saved".to_vec())
            .await
            .unwrap(),
        Ok(2)
    );
    // Tokens expire after a working day.
    clock.advance_seconds(renkei_app::wopi::TOKEN_SECONDS);
    assert!(matches!(
        app.wopi_session(&token, id, "editor").await,
        Err(AppError::Unauthenticated)
    ));
    // Case files are never edited in place.
    staff(&app, "hospital", "広島中央病院", "hosp-dr1").await;
    let case = app
        .create_case(
            &owner,
            &CaseInput {
                title: "相談".into(),
                recipient_logins: "hosp-dr1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let letter = upload(
        &app,
        &owner,
        UploadTarget::Case(case),
        "紹介状.docx",
        b"PK letter",
    )
    .await;
    assert!(matches!(
        app.issue_wopi_token(&owner, letter).await,
        Err(AppError::Invalid(_))
    ));
}
on_both_backends!(office_locks_expire_after_thirty_minutes);
