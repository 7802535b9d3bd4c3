//! The server on port 0: health, HTTPS, refusals, login with TOTP, CSRF, emergency accounts.

use std::process::Command;

use reqwest::StatusCode;
use reqwest::redirect::Policy;

use crate::*;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::limited(5))
        .build()
        .unwrap()
}

async fn get_text(c: &reqwest::Client, url: String) -> String {
    c.get(url).send().await.unwrap().text().await.unwrap()
}

/// Submits `form` with the CSRF token of the page at `form_page`; returns the final response.
async fn submit(
    c: &reqwest::Client,
    form_page: String,
    action: String,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = input_value(&get_text(c, form_page).await, "csrf");
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    fields.push(("csrf", &csrf));
    c.post(action).form(&fields).send().await.unwrap()
}

/// The password step of the login form; returns the page it leads to.
async fn password_step(c: &reqwest::Client, base: &str, login: &str, password: &str) -> String {
    submit(
        c,
        format!("{base}/login"),
        format!("{base}/login"),
        &[("login_id", login), ("password", password)],
    )
    .await
    .text()
    .await
    .unwrap()
}

/// Logs in through the forms: password, then enrolment with a TOTP code. Returns the top page.
pub(crate) async fn login_and_enrol(
    c: &reqwest::Client,
    base: &str,
    login: &str,
    password: &str,
    unix: u64,
) -> String {
    let page = c
        .get(format!("{base}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = input_value(&page, "csrf");
    let r = c
        .post(format!("{base}/login"))
        .form(&[("login_id", login), ("password", password), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.url().path(), "/login/enrol");
    let page = r.text().await.unwrap();
    assert_signing_in(&page);
    let secret = code_text(&page, "totp-secret");
    let csrf = input_value(&page, "csrf");
    let code = totp(&secret, unix);
    let page = c
        .post(format!("{base}/login/enrol"))
        .form(&[("code", code.as_str()), ("csrf", &csrf)])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"recovery-codes\""), "{page}");
    assert_signing_in(&page);
    c.get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A page between the password and the portal: the header says so, and offers no ログイン.
fn assert_signing_in(page: &str) {
    assert!(page.contains("id=\"signing-in\""), "{page}");
    assert!(!page.contains("<a href=\"/login\">ログイン</a>"), "{page}");
}

/// The demo keeps the real second factor: each user's secret is printed, and `renkei dev totp`
/// gives the current code, which logs in.
#[tokio::test]
async fn a_demo_user_logs_in_with_the_printed_secret_or_dev_totp() {
    let dir = demo_dir();
    let d = dir.path();
    let listed = renkei(d, &["dev", "seed-demo"]);
    let table = stdout(&listed);
    let row = table
        .lines()
        .find(|l| l.split_whitespace().rev().nth(1) == Some("chuo.dr"))
        .unwrap_or_else(|| panic!("no chuo.dr row: {table}"));
    let secret = row.split_whitespace().last().unwrap().to_string();
    assert!(!table.contains("初回ログイン時に"), "{table}");
    let code = renkei(d, &["dev", "totp", "chuo.dr"]);
    assert!(code.status.success(), "{}", stderr(&code));
    assert_eq!(stdout(&code).trim(), totp(&secret, FIXED_UNIX));
    // The table lines up: the login IDs start in the same terminal column on every row.
    let columns: std::collections::BTreeSet<usize> = table
        .lines()
        .filter(|l| l.starts_with("  ") && !l.contains("ログインID"))
        .map(|l| {
            let login = l.split_whitespace().rev().nth(1).unwrap();
            unicode_width::UnicodeWidthStr::width(&l[..l.find(login).unwrap()])
        })
        .collect();
    assert_eq!(columns.len(), 1, "{table}");

    let server = start(d, &["--listen", "127.0.0.1:0", "--demo"]);
    let base = &server.base;
    let c = client();
    let page = password_step(&c, base, "chuo.dr", "Renkei-Demo-2026").await;
    assert!(page.contains("action=\"/login/totp\""), "{page}");
    assert_signing_in(&page);
    let top = submit(
        &c,
        format!("{base}/login/totp"),
        format!("{base}/login/totp"),
        &[("code", stdout(&code).trim())],
    )
    .await;
    assert_eq!(top.url().path(), "/");
    assert!(top.text().await.unwrap().contains("中央 一郎"));
    // Not a demo region: no codes.
    let plain = tempfile::tempdir().unwrap();
    bootstrap(plain.path());
    let refused = renkei(plain.path(), &["dev", "totp", "admin"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("デモ地域"),
        "{}",
        stderr(&refused)
    );
}

#[tokio::test]
async fn health_login_audit_and_logout() {
    let dir = tempfile::tempdir().unwrap();
    bootstrap(dir.path());
    let server = start(dir.path(), &["--listen", "127.0.0.1:0"]);
    let base = &server.base;
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    // Unauthenticated pages send you to the login form.
    let c = client();
    let r = c
        .get(format!("{base}/admin/facilities"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.url().path(), "/login");
    let top = login_and_enrol(&c, base, "admin", OPERATOR_PASSWORD, FIXED_UNIX).await;
    assert!(
        top.contains("他院診療情報")
            && top.contains("グループウェア")
            && top.contains("ユーティリティ"),
        "{top}"
    );
    assert!(top.contains("事務局メニュー"));

    // The session cookie is HttpOnly and SameSite=Strict.
    let r = client().get(format!("{base}/login")).send().await.unwrap();
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // A logged-in form without the right token is refused.
    let r = c
        .post(format!("{base}/admin/notices"))
        .form(&[("title", "x"), ("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post(format!("{base}/admin/notices"))
        .form(&[("title", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // The operator registers and edits a facility and a user through the forms.
    let new = format!("{base}/admin/facilities/new");
    let page = submit(
        &c,
        new.clone(),
        format!("{base}/admin/facilities"),
        &[
            ("code", "3411234567"),
            ("facility_type", "hospital"),
            ("name", "広島中央総合病院"),
            ("max_accounts", "5"),
            ("active", "on"),
            ("discloses", "on"),
        ],
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        page.contains("<h1>広島中央総合病院</h1>") && page.contains("検証番号"),
        "{page}"
    );
    let refused = submit(
        &c,
        new,
        format!("{base}/admin/facilities"),
        &[
            ("code", "3411234567"),
            ("facility_type", "clinic"),
            ("name", "重複"),
            ("max_accounts", "5"),
        ],
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        refused.contains("すでに登録されています") && refused.contains("value=\"重複\""),
        "the form comes back as typed: {refused}"
    );
    let id = page
        .split("/admin/facilities/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let edit = format!("{base}/admin/facilities/{id}/edit");
    let page = submit(
        &c,
        edit,
        format!("{base}/admin/facilities/{id}"),
        &[
            ("code", "3411234567"),
            ("facility_type", "hospital"),
            ("name", "広島中央総合病院（本院）"),
            ("max_accounts", "5"),
            ("active", "on"),
        ],
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(page.contains("広島中央総合病院（本院）"), "{page}");
    let page = submit(
        &c,
        format!("{base}/admin/facilities/{id}/users/new"),
        format!("{base}/admin/facilities/{id}/users"),
        &[
            ("login_id", "chuo.dr"),
            ("name", "中央 一郎"),
            ("profession", "doctor"),
            ("role", "staff"),
            ("active", "on"),
        ],
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(!code_text(&page, "temp-password").is_empty());
    let users = get_text(&c, format!("{base}/admin/facilities/{id}")).await;
    let uid = users
        .split("/admin/users/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = submit(
        &c,
        format!("{base}/admin/users/{uid}"),
        format!("{base}/admin/users/{uid}"),
        &[
            ("name", "中央 一郎（内科）"),
            ("profession", "doctor"),
            ("role", "facility_admin"),
            ("active", "on"),
        ],
    )
    .await;
    assert!(r.text().await.unwrap().contains("中央 一郎（内科）"));

    let audit = c
        .get(format!("{base}/admin/audit?action=auth."))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        audit.contains("<td>ログイン</td>") && audit.contains("二要素認証の登録後"),
        "{audit}"
    );

    // The operator's person search answers, and asks for a date it can read.
    let persons = get_text(
        &c,
        format!("{base}/admin/persons?birth_date=1948-04-05&name=%E9%AB%99%E6%A9%8B"),
    )
    .await;
    assert!(persons.contains("id=\"persons\""), "{persons}");
    let bad = get_text(&c, format!("{base}/admin/persons?birth_date=1948")).await;
    assert!(bad.contains("YYYY-MM-DD"), "{bad}");

    let csrf = input_value(
        &c.get(format!("{base}/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "csrf",
    );
    let r = c
        .post(format!("{base}/logout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.url().path(), "/login");
    let r = c.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(r.url().path(), "/login", "logged out");

    // No password ever reaches the log.
    assert!(!server.logs().contains(OPERATOR_PASSWORD));
}

#[tokio::test]
async fn repeated_failures_lock_the_account() {
    let dir = tempfile::tempdir().unwrap();
    bootstrap(dir.path());
    let server = start(dir.path(), &["--listen", "127.0.0.1:0"]);
    let base = &server.base;
    let c = client();
    let message = "利用者IDまたはパスワードが正しくないか、ログインの失敗が続いたため一時的にログインできません";
    for _ in 0..5 {
        let page = password_step(&c, base, "admin", "wrong-password-1").await;
        assert!(page.contains(message), "{page}");
    }
    // Locked, unknown and wrong look the same.
    let locked = password_step(&c, base, "admin", OPERATOR_PASSWORD).await;
    let unknown = password_step(&c, base, "nobody", OPERATOR_PASSWORD).await;
    let error = |page: &str| {
        let at = page
            .find("class=\"error\"")
            .unwrap_or_else(|| panic!("{page}"));
        page[at..].split("</p>").next().unwrap().to_string()
    };
    assert_eq!(error(&locked), error(&unknown));
    assert!(locked.contains(message), "{locked}");
    drop(server);
    // The operator unlocks from the shell by issuing a temporary password.
    let reset = renkei(
        dir.path(),
        &["admin", "reset-password", "--login-id", "admin"],
    );
    assert!(reset.status.success());
}

#[tokio::test]
async fn every_request_of_an_emergency_account_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = bootstrap(d).to_string();
    let o = renkei(
        d,
        &[
            "admin",
            "create-user",
            "--facility-id",
            &f,
            "--login-id",
            "emergency1",
            "--name",
            "非常時用",
            "--profession",
            "operator",
            "--role",
            "operator",
            "--emergency",
            "--password",
            "Break-Glass-2026",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let server = start(d, &["--listen", "127.0.0.1:0"]);
    let c = client();
    let top = login_and_enrol(
        &c,
        &server.base,
        "emergency1",
        "Break-Glass-2026",
        FIXED_UNIX,
    )
    .await;
    assert!(
        top.contains("非常時用アカウントで操作中"),
        "the account is marked on every page"
    );
    c.get(format!("{}/admin/facilities", server.base))
        .send()
        .await
        .unwrap();
    let audit = c
        .get(format!("{}/admin/audit?action=emergency.", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(audit.contains("path:/admin/facilities"), "{audit}");
    assert!(audit.contains("emergency-row"));
}

#[test]
fn plain_http_is_refused_off_loopback_and_a_taken_port_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(bin())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("ループバック"), "{}", stderr(&o));

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let o = Command::new(bin())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", &port])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("使用中"), "{}", stderr(&o));
}

#[tokio::test]
async fn https_with_a_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let server = start(
        dir.path(),
        &[
            "--listen",
            "0.0.0.0:0",
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let port = server.base.rsplit(':').next().unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let r = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client
        .get(format!("https://localhost:{port}/login"))
        .send()
        .await
        .unwrap();
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("Secure"),
        "cookies are Secure over HTTPS: {cookie}"
    );

    // A missing key file is named.
    let o = Command::new(bin())
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            "/nonexistent/key.pem",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/nonexistent/key.pem"),
        "{}",
        stderr(&o)
    );
}
