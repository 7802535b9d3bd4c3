//! `renkei serve --demo`: a demo region (Hiroshima-like) seeded on first start.

use anyhow::Result;
use renkei_app::directory::{FacilityInput, UserInput};
use renkei_app::{Actor, App};
use renkei_core::facility::FacilityCode;

/// The password of every demo user (printed at start with each user's TOTP secret).
pub const DEMO_PASSWORD: &str = "Renkei-Demo-2026";

struct DemoFacility {
    kind: &'static str,
    /// 6-digit body (郡市区 2 + 機関番号 4); the check digit is computed.
    body: Option<&'static str>,
    name: &'static str,
    kana: &'static str,
    address: &'static str,
    discloses: bool,
    hm_card: bool,
    disclosure_card: bool,
    users: &'static [(&'static str, &'static str, &'static str, &'static str)],
}

const FACILITIES: &[DemoFacility] = &[
    DemoFacility {
        kind: "operator",
        body: None,
        name: "広島県医師会 地域医療連携事務局",
        kana: "ヒロシマケンイシカイ",
        address: "広島市東区二葉の里3-2-3",
        discloses: false,
        hm_card: false,
        disclosure_card: false,
        users: &[
            ("admin", "事務局 太郎", "operator", "operator"),
            ("emergency", "非常時用アカウント", "operator", "operator"),
        ],
    },
    DemoFacility {
        kind: "hospital",
        body: Some("010011"),
        name: "広島中央総合病院",
        kana: "ヒロシマチュウオウソウゴウビョウイン",
        address: "広島市中区基町7-33",
        discloses: true,
        hm_card: true,
        disclosure_card: true,
        users: &[
            ("chuo.dr", "中央 一郎", "doctor", "staff"),
            ("chuo.ns", "中央 花子", "nurse", "staff"),
            ("chuo.rt", "放射 健", "radiographer", "staff"),
            ("chuo.mt", "検査 明", "lab_technician", "staff"),
            ("chuo.msw", "相談 和子", "social_worker", "staff"),
            ("chuo.clerk", "地域連携室 事務", "clerk", "facility_admin"),
        ],
    },
    DemoFacility {
        kind: "hospital",
        body: Some("020024"),
        name: "県立安芸病院",
        kana: "ケンリツアキビョウイン",
        address: "広島市南区宇品神田1-5-54",
        discloses: true,
        hm_card: true,
        disclosure_card: false,
        users: &[
            ("aki.dr", "安芸 次郎", "doctor", "staff"),
            ("aki.rd", "栄養 里美", "dietitian", "staff"),
            ("aki.pt", "理学 勇", "physical_therapist", "staff"),
            ("aki.clerk", "安芸 事務", "clerk", "facility_admin"),
        ],
    },
    DemoFacility {
        kind: "hospital",
        body: Some("150035"),
        name: "福山医療センター",
        kana: "フクヤマイリョウセンター",
        address: "福山市沖野上町4-14-17",
        discloses: true,
        hm_card: true,
        disclosure_card: true,
        users: &[
            ("fukuyama.dr", "福山 三郎", "doctor", "staff"),
            ("fukuyama.mw", "助産 由美", "midwife", "staff"),
            ("fukuyama.clerk", "福山 事務", "clerk", "facility_admin"),
        ],
    },
    DemoFacility {
        kind: "clinic",
        body: Some("010108"),
        name: "みどり内科クリニック",
        kana: "ミドリナイカクリニック",
        address: "広島市中区紙屋町1-1-1",
        discloses: false,
        hm_card: false,
        disclosure_card: false,
        users: &[
            ("midori.dr", "緑川 一郎", "doctor", "facility_admin"),
            ("midori.ns", "緑川 看護", "nurse", "staff"),
        ],
    },
    DemoFacility {
        kind: "clinic",
        body: Some("010116"),
        name: "かわせ整形外科",
        kana: "カワセセイケイゲカ",
        address: "広島市中区八丁堀2-2",
        discloses: false,
        hm_card: false,
        disclosure_card: false,
        users: &[
            ("kawase.dr", "川瀬 俊", "doctor", "facility_admin"),
            ("kawase.ot", "作業 療子", "occupational_therapist", "staff"),
        ],
    },
    DemoFacility {
        kind: "clinic",
        body: Some("020107"),
        name: "うじな小児科",
        kana: "ウジナショウニカ",
        address: "広島市南区宇品海岸3-3",
        discloses: false,
        hm_card: false,
        disclosure_card: false,
        users: &[("ujina.dr", "宇品 小児", "doctor", "facility_admin")],
    },
    DemoFacility {
        kind: "clinic",
        body: Some("150101"),
        name: "ともえ在宅クリニック",
        kana: "トモエザイタククリニック",
        address: "福山市霞町1-10",
        discloses: false,
        hm_card: false,
        disclosure_card: false,
        users: &[
            ("tomoe.dr", "巴 在宅", "doctor", "facility_admin"),
            ("tomoe.phn", "保健 みのり", "public_health_nurse", "staff"),
        ],
    },
    DemoFacility {
        kind: "clinic",
        body: Some("210103"),
        name: "みよし耳鼻咽喉科",
        kana: "ミヨシジビインコウカ",
        address: "三次市十日市中2-8",
        discloses: false,
        hm_card: false,
        disclosure_card: false,
        users: &[
            ("miyoshi.dr", "三次 聡", "doctor", "facility_admin"),
            ("miyoshi.st", "言語 聴子", "speech_therapist", "staff"),
        ],
    },
    DemoFacility {
        kind: "dental",
        body: Some("010205"),
        name: "しろやま歯科医院",
        kana: "シロヤマシカイイン",
        address: "広島市中区大手町3-1",
        discloses: false,
        hm_card: false,
        disclosure_card: false,
        users: &[("shiroyama.dds", "城山 歯太郎", "dentist", "facility_admin")],
    },
    DemoFacility {
        kind: "pharmacy",
        body: Some("010304"),
        name: "かみや町薬局",
        kana: "カミヤチョウヤッキョク",
        address: "広島市中区紙屋町2-2",
        discloses: false,
        hm_card: true,
        disclosure_card: false,
        users: &[("kamiya.ph", "紙屋 薬子", "pharmacist", "facility_admin")],
    },
    DemoFacility {
        kind: "pharmacy",
        body: Some("020303"),
        name: "うじな調剤薬局",
        kana: "ウジナチョウザイヤッキョク",
        address: "広島市南区宇品御幸1-1",
        discloses: false,
        hm_card: true,
        disclosure_card: false,
        users: &[("ujina.ph", "宇品 調剤", "pharmacist", "facility_admin")],
    },
    DemoFacility {
        kind: "pharmacy",
        body: Some("150309"),
        name: "ふくやま駅前薬局",
        kana: "フクヤマエキマエヤッキョク",
        address: "福山市三之丸町1-1",
        discloses: false,
        hm_card: true,
        disclosure_card: false,
        users: &[("fukuyama.ph", "福山 薬太", "pharmacist", "facility_admin")],
    },
    DemoFacility {
        kind: "home_care",
        body: Some("010402"),
        name: "ひまわり訪問看護ステーション",
        kana: "ヒマワリホウモンカンゴステーション",
        address: "広島市中区舟入町5-5",
        discloses: false,
        hm_card: false,
        disclosure_card: false,
        users: &[
            ("himawari.ns", "向日 葵", "nurse", "facility_admin"),
            ("himawari.pt", "訪問 理学", "physical_therapist", "staff"),
        ],
    },
    DemoFacility {
        kind: "care_facility",
        body: None,
        name: "特別養護老人ホーム せとうち苑",
        kana: "セトウチエン",
        address: "広島市安佐南区祇園2-2",
        discloses: false,
        hm_card: false,
        disclosure_card: false,
        users: &[
            (
                "setouchi.cm",
                "瀬戸内 ケア",
                "care_manager",
                "facility_admin",
            ),
            ("setouchi.cw", "介護 福子", "care_worker", "staff"),
        ],
    },
];

fn code_for(kind: &str, body: &str) -> String {
    let table = match kind {
        "dental" => 3,
        "pharmacy" => 4,
        "home_care" => 6,
        _ => 1,
    };
    let draft = format!("34{table}{body}0");
    match FacilityCode::parse(&draft) {
        Ok(c) => format!("34{table}{body}{}", c.expected_check_digit()),
        Err(_) => String::new(),
    }
}

/// Gives each disclosing hospital of the demo records: a generated SS-MIX2 storage (written
/// under the data directory, as a hospital gateway would) imported like any other.
async fn hospital_records(app: &App, data_dir: &std::path::Path) -> Result<usize> {
    let actor = Actor::system("demo");
    let mut messages = 0;
    for (seed, f) in FACILITIES.iter().filter(|f| f.discloses).enumerate() {
        let Some(body) = f.body else { continue };
        let code = code_for(f.kind, body);
        let root = data_dir.join("demo-ssmix2").join(&code);
        crate::generate::generate(&root, 40, 2, seed as u64 + 1, (2026, 11, 20))?;
        let facility_id = app.facility_id_by_code(&actor, &code).await?;
        let report = crate::intake::import_storage(
            app,
            &actor,
            facility_id,
            &root,
            &indicatif::ProgressBar::hidden(),
        )
        .await?;
        app.audit_import_run(&actor, facility_id, "ssmix2", &report)
            .await?;
        messages += report.stored;
    }
    Ok(messages)
}

/// Patients per disclosing hospital who get an HM card in the demo (the first of the generated
/// patients), and how many of those a clinic has read (名寄せ).
const DEMO_CARDS: u64 = 10;
const DEMO_READ_AT_CLINIC: u64 = 3;

/// HM cards for the first generated patients of each card-issuing hospital, some read at the
/// first clinic, so that the MPI, PIXm and PDQm have persons to show.
async fn hm_cards(app: &App) -> Result<usize> {
    let system = Actor::system("demo");
    let at = |facility_id: i64| Actor {
        facility_id: Some(facility_id),
        ..Actor::system("demo")
    };
    let clinic = FACILITIES
        .iter()
        .find(|f| f.kind == "clinic")
        .and_then(|f| f.body.map(|b| code_for(f.kind, b)));
    let clinic = match clinic {
        Some(code) => Some(app.facility_id_by_code(&system, &code).await?),
        None => None,
    };
    let mut issued = 0;
    for (seed, f) in FACILITIES.iter().filter(|f| f.discloses).enumerate() {
        let (Some(body), true) = (f.body, f.hm_card) else {
            continue;
        };
        let hospital = app
            .facility_id_by_code(&system, &code_for(f.kind, body))
            .await?;
        for p in 0..DEMO_CARDS {
            // The generator's patient IDs (see generate.rs).
            let pid = format!("{:010}", 1_000_000 + p + (seed as u64 + 1) * 100_000);
            let card = app
                .issue_card(
                    &at(hospital),
                    &pid,
                    renkei_app::identity::CardKind::Hm,
                    None,
                )
                .await?;
            issued += 1;
            if let (Some(clinic), true) = (clinic, p < DEMO_READ_AT_CLINIC) {
                app.read_card(&at(clinic), &card.payload, &format!("C-{seed}{p:03}"))
                    .await?;
            }
        }
    }
    Ok(issued)
}

/// Seeds the demo region when the directory is empty; prints how to log in either way.
pub async fn seed_if_empty(app: &App, data_dir: &std::path::Path) -> Result<()> {
    let actor = Actor::system("demo");
    let (_, existing) = app.search_facilities(&actor, "", "", 0).await?;
    if existing == 0 {
        for f in FACILITIES {
            let input = FacilityInput {
                code: f.body.map(|b| code_for(f.kind, b)).unwrap_or_default(),
                facility_type: f.kind.to_string(),
                name: f.name.to_string(),
                name_kana: f.kana.to_string(),
                postal_code: String::new(),
                address: f.address.to_string(),
                phone: "082-000-0000".to_string(),
                discloses: f.discloses,
                issues_hm_card: f.hm_card,
                issues_disclosure_card: f.disclosure_card,
                max_accounts: "20".to_string(),
                active: true,
            };
            let (facility, _) = app.create_facility(&actor, &input).await?;
            for (login, name, profession, role) in f.users {
                let user = UserInput {
                    facility_id: facility.id,
                    login_id: login.to_string(),
                    name: name.to_string(),
                    name_kana: String::new(),
                    profession: profession.to_string(),
                    role: role.to_string(),
                    emergency: *login == "emergency",
                    active: true,
                };
                app.create_user_with_password(&actor, &user, DEMO_PASSWORD, false)
                    .await?;
                // The real second factor, enrolled ahead so that the printed secret (or
                // `renkei dev totp`) stands in for the phone.
                app.enrol_totp_unattended(&actor, login).await?;
            }
        }
        let messages = hospital_records(app, data_dir).await?;
        let cards = hm_cards(app).await?;
        println!(
            "デモ地域を作成しました（施設 {} 件、開示病院の診療情報 {messages} 件、HMカード {cards} 枚）。",
            FACILITIES.len()
        );
    }
    std::fs::write(data_dir.join(DEMO_MARKER), "renkei serve --demo\n")?;
    print_users(app).await
}

/// A file in the data directory that says it holds the demo region: `renkei dev totp` works
/// only there.
pub const DEMO_MARKER: &str = "demo-region";

/// `text` padded with spaces to `width` terminal columns (kanji and kana take two).
fn pad(text: &str, width: usize) -> String {
    let used = unicode_width::UnicodeWidthStr::width(text);
    format!("{text}{}", " ".repeat(width.saturating_sub(used)))
}

/// The demo users as a table that lines up in a terminal: facility, login ID and the secret to
/// type into an authenticator app (demo only: a real region never prints secrets).
async fn print_users(app: &App) -> Result<()> {
    let actor = Actor::system("demo");
    let name_width = FACILITIES
        .iter()
        .map(|f| unicode_width::UnicodeWidthStr::width(f.name))
        .max()
        .unwrap_or(0);
    println!(
        "デモ利用者（パスワードはすべて {DEMO_PASSWORD}）。二要素認証は登録済みです。認証アプリに秘密鍵を登録するか、"
    );
    println!(
        "`renkei dev totp ログインID` で今の確認コードを表示してログインしてください（デモ専用の表示です）。"
    );
    println!(
        "  {}  {}  認証アプリの秘密鍵",
        pad("施設", name_width),
        pad("ログインID", 16)
    );
    for f in FACILITIES {
        for (login, ..) in f.users {
            let secret = match app.current_totp_code(&actor, login).await {
                Ok((secret, ..)) => secret,
                Err(_) => "（未登録: 初回ログイン時に登録）".to_string(),
            };
            println!(
                "  {}  {}  {secret}",
                pad(f.name, name_width),
                pad(login, 16)
            );
        }
    }
    Ok(())
}
