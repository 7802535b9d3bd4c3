//! File consultation and HM-Box over HTTP: tus uploads that survive a dropped connection, the
//! CSRF header, ranged downloads with Japanese names, rendered previews, refusals.

use std::sync::Arc;

use base64::Engine;
use reqwest::StatusCode;
use reqwest::cookie::CookieStore;

use crate::server::login_and_enrol;
use crate::*;

fn jar_client(jar: &Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .unwrap()
}

fn data_csrf(html: &str) -> String {
    let key = "data-csrf=\"";
    let at = html
        .find(key)
        .unwrap_or_else(|| panic!("no data-csrf in {html}"))
        + key.len();
    html[at..].split('"').next().unwrap().to_string()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn create(
    c: &reqwest::Client,
    base: &str,
    csrf: &str,
    name: &str,
    target: &str,
    len: usize,
) -> reqwest::Response {
    c.post(format!("{base}/uploads"))
        .header("Tus-Resumable", "1.0.0")
        .header("X-CSRF-Token", csrf)
        .header("Upload-Length", len.to_string())
        .header(
            "Upload-Metadata",
            format!("filename {},target {}", b64(name), b64(target)),
        )
        .send()
        .await
        .unwrap()
}

async fn patch(
    c: &reqwest::Client,
    url: &str,
    csrf: &str,
    offset: usize,
    body: Vec<u8>,
) -> reqwest::Response {
    c.patch(url)
        .header("Tus-Resumable", "1.0.0")
        .header("X-CSRF-Token", csrf)
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn offset(c: &reqwest::Client, url: &str) -> usize {
    let r = c
        .head(url)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn user(data: &std::path::Path, facility: i64, login: &str) {
    let f = facility.to_string();
    let o = renkei(
        data,
        &[
            "admin",
            "create-user",
            "--facility-id",
            &f,
            "--login-id",
            login,
            "--name",
            &format!("{login} 先生"),
            "--profession",
            "doctor",
            "--role",
            "staff",
            "--password",
            OPERATOR_PASSWORD,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[tokio::test]
async fn uploads_resume_and_downloads_keep_names_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    bootstrap(data);
    let hospital = id_of(&renkei(
        data,
        &[
            "admin",
            "create-facility",
            "--type",
            "hospital",
            "--name",
            "広島中央病院",
        ],
    ));
    let clinic = id_of(&renkei(
        data,
        &[
            "admin",
            "create-facility",
            "--type",
            "clinic",
            "--name",
            "みなみクリニック",
        ],
    ));
    user(data, clinic, "clinic-dr1");
    user(data, hospital, "hosp-dr1");
    let server = start(data, &["--listen", "127.0.0.1:0"]);
    let base = server.base.as_str();

    let sender_jar = Arc::new(reqwest::cookie::Jar::default());
    let sender = jar_client(&sender_jar);
    login_and_enrol(&sender, base, "clinic-dr1", OPERATOR_PASSWORD, FIXED_UNIX).await;
    let reader = jar_client(&Arc::new(reqwest::cookie::Jar::default()));
    login_and_enrol(&reader, base, "hosp-dr1", OPERATOR_PASSWORD, FIXED_UNIX).await;

    let page = sender
        .get(format!("{base}/box"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("使用量") && page.contains("5.0 GB"), "{page}");
    let csrf = data_csrf(&page);

    // Without the page's token in the header, nothing is created.
    let r = create(&sender, base, "wrong", "紹介状.pdf", "box", 10).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let r = create(&sender, base, &csrf, "紹介状 2026.pdf", "box", body.len()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().contains_key("upload-expires"));
    let url = format!("{base}{}", r.headers()["location"].to_str().unwrap());
    let r = patch(&sender, &url, &csrf, 0, body[..300_000].to_vec()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["upload-offset"], "300000");
    // A wrong offset is a conflict.
    let r = patch(&sender, &url, &csrf, 0, body[..10].to_vec()).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);

    // The connection drops after 200,000 of 700,000 bytes: what arrived is kept.
    {
        use tokio::io::AsyncWriteExt;
        let cookies = sender_jar
            .cookies(&base.parse().unwrap())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let host = base.trim_start_matches("http://");
        let path = url.trim_start_matches(base);
        let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
        let head = format!(
            "PATCH {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookies}\r\nTus-Resumable: 1.0.0\r\nX-CSRF-Token: {csrf}\r\nUpload-Offset: 300000\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: 700000\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body[300_000..500_000]).await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        drop(s);
    }
    let mut at = 0;
    for _ in 0..100 {
        at = offset(&sender, &url).await;
        if at != 300_000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(at, 500_000);
    // Resume from there.
    let r = patch(&sender, &url, &csrf, at, body[at..].to_vec()).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let file = r.headers()["x-renkei-file"].to_str().unwrap().to_string();

    let r = sender.get(format!("{base}{file}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(
        r.headers()["content-disposition"],
        "attachment; filename=\"___ 2026.pdf\"; filename*=UTF-8''%E7%B4%B9%E4%BB%8B%E7%8A%B6%202026.pdf"
    );
    assert!(r.bytes().await.unwrap().as_ref() == body.as_slice());
    let r = sender
        .get(format!("{base}{file}"))
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], "bytes 100-199/1000000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &body[100..200]);
    let r = sender
        .get(format!("{base}{file}"))
        .header("Range", "bytes=2000000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // Not shared: the other user cannot tell it exists.
    let r = reader.get(format!("{base}{file}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let page = sender
        .get(format!("{base}/box"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("紹介状 2026.pdf") && page.contains("2026-11-28"),
        "{page}"
    );

    // A consultation case for the hospital's doctor, view only.
    let page = sender
        .get(format!("{base}/cases/new"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form_csrf = input_value(&page, "csrf");
    let r = sender
        .post(format!("{base}/cases"))
        .form(&[
            ("csrf", form_csrf.as_str()),
            ("title", "胸部X線の読影依頼"),
            ("body", "ご意見ください"),
            ("logins", "hosp-dr1"),
        ])
        .send()
        .await
        .unwrap();
    let case_path = r.url().path().to_string();
    assert!(case_path.starts_with("/cases/"), "{case_path}");
    let target = format!("case:{}", case_path.trim_start_matches("/cases/"));
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        640,
        480,
        image::Rgb([10, 200, 30]),
    ))
    .write_to(
        &mut std::io::Cursor::new(&mut png),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    // Too big for a case: refused before any byte, with the limit named.
    let r = create(&sender, base, &csrf, "big.dcm", &target, 21 * 1024 * 1024).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.text().await.unwrap().contains("20.0 MB"));
    let r = create(&sender, base, &csrf, "胸部正面.jpg", &target, png.len()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let url = format!("{base}{}", r.headers()["location"].to_str().unwrap());
    let r = patch(&sender, &url, &csrf, 0, png.clone()).await;
    let file = r.headers()["x-renkei-file"].to_str().unwrap().to_string();

    let page = reader
        .get(format!("{base}{case_path}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("胸部正面.jpg") && page.contains("ダウンロード不可"),
        "{page}"
    );
    let r = reader
        .get(format!("{base}{file}/image?size=100"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    let shown = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
    assert_eq!((shown.width(), shown.height()), (100, 75));
    let r = reader.get(format!("{base}{file}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // DICOM is rendered too (the file's own window), for the recipient.
    let ct = renkei_dicom::synthetic_ct(256, 1, ("1.2.392.1", 1), 1);
    let r = create(&sender, base, &csrf, "CT.dcm", &target, ct.len()).await;
    let url = format!("{base}{}", r.headers()["location"].to_str().unwrap());
    let r = patch(&sender, &url, &csrf, 0, ct).await;
    let file = r.headers()["x-renkei-file"].to_str().unwrap().to_string();
    let r = reader
        .get(format!("{base}{file}/image?size=128"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let shown = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
    assert_eq!((shown.width(), shown.height()), (128, 128));
}

/// A scripted WOPI client (what Collabora Online or OnlyOffice sends) against the host endpoints.
#[tokio::test]
async fn an_office_server_opens_locks_and_saves_hm_box_files_over_wopi() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    bootstrap(data);
    let clinic = id_of(&renkei(
        data,
        &[
            "admin",
            "create-facility",
            "--type",
            "clinic",
            "--name",
            "みなみクリニック",
        ],
    ));
    user(data, clinic, "clinic-dr1");
    user(data, clinic, "clinic-ns1");
    let config = data.join("renkei.toml");
    std::fs::write(
        &config,
        "office_url = \"https://office.example.jp/browser/dist/cool.html?\"\n",
    )
    .unwrap();
    let server = start(
        data,
        &[
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let base = server.base.as_str();
    let owner = jar_client(&Arc::new(reqwest::cookie::Jar::default()));
    login_and_enrol(&owner, base, "clinic-dr1", OPERATOR_PASSWORD, FIXED_UNIX).await;
    let colleague = jar_client(&Arc::new(reqwest::cookie::Jar::default()));
    login_and_enrol(
        &colleague,
        base,
        "clinic-ns1",
        OPERATOR_PASSWORD,
        FIXED_UNIX,
    )
    .await;

    let page = owner
        .get(format!("{base}/box"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = data_csrf(&page);
    let original = b"PK\x03\x04 original minutes".to_vec();
    let r = create(&owner, base, &csrf, "議事録.docx", "box", original.len()).await;
    let url = format!("{base}{}", r.headers()["location"].to_str().unwrap());
    let r = patch(&owner, &url, &csrf, 0, original.clone()).await;
    let file = r.headers()["x-renkei-file"].to_str().unwrap().to_string();
    let id = file.trim_start_matches("/files/").to_string();

    // The edit button hands a token to the office server's editor, and only there.
    let page = owner
        .get(format!("{base}/box"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("action=\"/box/{id}/edit\"")),
        "{page}"
    );
    let r = owner
        .post(format!("{base}/box/{id}/edit"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("form-action 'self' https://office.example.jp")
    );
    let page = r.text().await.unwrap();
    let wopi_src = format!("{base}/wopi/files/{id}")
        .replace(':', "%3A")
        .replace('/', "%2F");
    assert!(
        page.contains(&format!(
            "https://office.example.jp/browser/dist/cool.html?WOPISrc={wopi_src}"
        )),
        "{page}"
    );
    let token = input_value(&page, "access_token");

    // The office server's side: plain requests with the token, no cookies.
    let wopi = reqwest::Client::new();
    let at = |path: &str| format!("{base}/wopi/files/{id}{path}?access_token={token}");
    let info: serde_json::Value = serde_json::from_slice(
        &wopi
            .get(at(""))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(info["BaseFileName"], "議事録.docx");
    assert_eq!(info["Size"], original.len());
    assert_eq!(info["UserCanWrite"], true);
    assert_eq!(info["SupportsLocks"], true);
    assert_eq!(info["Version"], "1");
    let r = wopi
        .get(format!("{base}/wopi/files/{id}?access_token=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = wopi.get(at("/contents")).send().await.unwrap();
    assert_eq!(r.headers()["x-wopi-itemversion"], "1");
    assert_eq!(r.bytes().await.unwrap().as_ref(), original.as_slice());

    let op = |name: &'static str, lock: &'static str, old: Option<&'static str>| {
        let mut rb = wopi
            .post(at(""))
            .header("X-WOPI-Override", name)
            .header("X-WOPI-Lock", lock);
        if let Some(old) = old {
            rb = rb.header("X-WOPI-OldLock", old);
        }
        rb.send()
    };
    let put = |lock: Option<&'static str>, body: &'static [u8]| {
        let mut rb = wopi
            .post(at("/contents"))
            .header("X-WOPI-Override", "PUT")
            .body(body);
        if let Some(l) = lock {
            rb = rb.header("X-WOPI-Lock", l);
        }
        rb.send()
    };
    let lock_of = |r: &reqwest::Response| {
        r.headers()
            .get("x-wopi-lock")
            .map(|v| v.to_str().unwrap().to_string())
    };
    // The objects in the file store: a save writes its content as a new object and removes
    // the old one only once the file points at the new one; a refused save leaves nothing.
    let stored_objects = || {
        let mut names = std::collections::BTreeSet::new();
        let mut stack = vec![data.join("files")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().map_while(Result::ok) {
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    names.insert(e.path());
                }
            }
        }
        names
    };
    let objects_before = stored_objects();
    // Unlocked and not empty: no save.
    let r = put(None, b"new").await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(lock_of(&r).as_deref(), Some(""));
    assert_eq!(
        op("LOCK", "L1", None).await.unwrap().status(),
        StatusCode::OK
    );
    let r = op("GET_LOCK", "", None).await.unwrap();
    assert_eq!(lock_of(&r).as_deref(), Some("L1"));
    let r = op("LOCK", "L2", None).await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(lock_of(&r).as_deref(), Some("L1"));
    let r = put(Some("L2"), b"edited by someone else").await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(lock_of(&r).as_deref(), Some("L1"));
    assert_eq!(
        stored_objects(),
        objects_before,
        "refused saves write nothing"
    );
    let r = put(Some("L1"), b"PK\x03\x04 edited minutes").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-wopi-itemversion"], "2");
    let objects_after = stored_objects();
    assert_eq!(
        objects_after.len(),
        objects_before.len(),
        "the old version's object is gone"
    );
    assert_ne!(
        objects_after, objects_before,
        "the new version is a new object, not the old one overwritten in place"
    );
    assert_eq!(
        op("REFRESH_LOCK", "L1", None).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        op("LOCK", "L3", Some("L1")).await.unwrap().status(),
        StatusCode::OK
    );
    let r = op("GET_LOCK", "", None).await.unwrap();
    assert_eq!(lock_of(&r).as_deref(), Some("L3"));
    let r = op("UNLOCK", "L1", None).await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(lock_of(&r).as_deref(), Some("L3"));
    assert_eq!(
        op("UNLOCK", "L3", None).await.unwrap().status(),
        StatusCode::OK
    );
    let r = op("GET_LOCK", "", None).await.unwrap();
    assert_eq!(lock_of(&r).as_deref(), Some(""));
    assert_eq!(
        op("PUT_RELATIVE", "", None).await.unwrap().status(),
        StatusCode::NOT_IMPLEMENTED
    );
    let info: serde_json::Value = serde_json::from_slice(
        &wopi
            .get(at(""))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(info["Version"], "2");
    assert_eq!(info["Size"], b"PK\x03\x04 edited minutes".len());
    let saved = owner
        .get(format!("{base}{file}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(saved.as_ref(), b"PK\x03\x04 edited minutes");

    // A colleague it is shared with opens it read-only; after unsharing, not at all.
    let r = owner
        .post(format!("{base}/box/{id}/share"))
        .form(&[("csrf", csrf.as_str()), ("logins", "clinic-ns1")])
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("共有しました"));
    let page = colleague
        .get(format!("{base}/box"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let colleague_csrf = data_csrf(&page);
    let page = colleague
        .post(format!("{base}/box/{id}/edit"))
        .form(&[("csrf", colleague_csrf.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let read_token = input_value(&page, "access_token");
    let ro = |path: &str| format!("{base}/wopi/files/{id}{path}?access_token={read_token}");
    let info: serde_json::Value = serde_json::from_slice(
        &wopi
            .get(ro(""))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(info["UserCanWrite"], false);
    assert_eq!(info["ReadOnly"], true);
    let r = wopi
        .post(ro(""))
        .header("X-WOPI-Override", "LOCK")
        .header("X-WOPI-Lock", "X")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = wopi
        .post(ro("/contents"))
        .header("X-WOPI-Override", "PUT")
        .body("overwrite")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        wopi.get(ro("/contents")).send().await.unwrap().status(),
        StatusCode::OK
    );
    let colleague_id: i64 = {
        let page = owner
            .get(format!("{base}/box"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        input_value(&page, "user").parse().unwrap()
    };
    owner
        .post(format!("{base}/box/{id}/unshare"))
        .form(&[("csrf", csrf.as_str()), ("user", &colleague_id.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        wopi.get(ro("")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

/// With the office server's discovery document configured, a WOPI request must be signed with
/// its proof key (MS-WOPI): without a proof, or with a wrong one, it is refused (500) before
/// its access token is even looked at; with a valid one it goes on to the token check. The
/// key and signatures come from OpenSSL, an implementation independent of ours.
#[tokio::test]
async fn wopi_requests_must_carry_the_office_servers_proof() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    bootstrap(d);
    let openssl = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl is needed: apt-get install openssl");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    let key = d.join("office.pem");
    openssl(&["genrsa", "-out", key.to_str().unwrap(), "2048"]);
    let modulus = String::from_utf8(openssl(&[
        "rsa",
        "-in",
        key.to_str().unwrap(),
        "-noout",
        "-modulus",
    ]))
    .unwrap();
    let modulus = hex::decode(modulus.trim().trim_start_matches("Modulus=")).unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let discovery = d.join("discovery.xml");
    std::fs::write(
        &discovery,
        format!(
            "<wopi-discovery><net-zone name=\"internal-http\"/><proof-key value=\"\" modulus=\"{}\" exponent=\"AQAB\"/></wopi-discovery>",
            b64(&modulus)
        ),
    )
    .unwrap();
    let config = d.join("renkei.toml");
    std::fs::write(
        &config,
        format!("office_discovery_url = \"{}\"\n", discovery.display()),
    )
    .unwrap();
    let server = start(
        d,
        &[
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let url = format!("{}/wopi/files/1?access_token=forged", server.base);
    let ticks = renkei_app::wopi_proof::ticks_of(FIXED_UNIX as i64);
    let signed = renkei_app::wopi_proof::signed_bytes("forged", &url, ticks);
    std::fs::write(d.join("msg.bin"), &signed).unwrap();
    let signature = openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        key.to_str().unwrap(),
        d.join("msg.bin").to_str().unwrap(),
    ]);
    let client = reqwest::Client::new();
    let get = |proof: Option<String>| {
        let mut rb = client
            .get(&url)
            .header("X-WOPI-TimeStamp", ticks.to_string());
        if let Some(p) = proof {
            rb = rb.header("X-WOPI-Proof", p);
        }
        rb.send()
    };
    // The keys load in the background at start.
    let mut status = reqwest::StatusCode::INTERNAL_SERVER_ERROR;
    for _ in 0..50 {
        status = get(Some(b64(&signature))).await.unwrap().status();
        if status != reqwest::StatusCode::INTERNAL_SERVER_ERROR {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        status,
        reqwest::StatusCode::UNAUTHORIZED,
        "a valid proof reaches the token check"
    );
    assert_eq!(
        get(None).await.unwrap().status(),
        reqwest::StatusCode::INTERNAL_SERVER_ERROR
    );
    let mut forged = signature.clone();
    forged[10] ^= 1;
    assert_eq!(
        get(Some(b64(&forged))).await.unwrap().status(),
        reqwest::StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(
        server.logs().contains("without a valid proof"),
        "{}",
        server.logs()
    );
}
