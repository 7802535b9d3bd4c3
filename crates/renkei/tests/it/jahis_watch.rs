//! A pharmacy's watched folder: the receipt computer drops its exports there; the server imports
//! each settled file and moves it to `done/`, or to `failed/` with a note that says why.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::{renkei, start_with, stderr, stdout};

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_watched_folder_imports_settled_files_and_sorts_them() {
    let fixtures = crate::fixture("jahis-rx-parser/fixtures");
    let dir = crate::demo_dir();
    let d = dir.path();
    let inbox = d.join("okusuri");
    std::fs::create_dir_all(&inbox).unwrap();
    // かみや町薬局 of the demo region.
    let draft = renkei_core::facility::FacilityCode::parse("3440103040").unwrap();
    let pharmacy = format!("344010304{}", draft.expected_check_digit());
    let config = d.join("renkei.toml");
    std::fs::write(
        &config,
        format!(
            "jahis_watch_poll_seconds = 1\n\n[[jahis_watch]]\ndir = \"{}\"\nfacility = \"{pharmacy}\"\n",
            inbox.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_string();
    // The pharmacy has read the card-holder's card (here: imported a first file with the card).
    let multi = std::fs::read_to_string(fixtures.join("tc-multi-dispensing.txt")).unwrap();
    let minimal = std::fs::read_to_string(fixtures.join("tc-minimal-valid.txt")).unwrap();
    let full =
        std::fs::read_to_string(fixtures.join("tc-with-otc-components-and-remaining-medicine.txt"))
            .unwrap();
    let first = d.join("first.txt");
    std::fs::write(&first, crate::for_card_holder(d, "34000000018", &full, "")).unwrap();
    let read = renkei(
        d,
        &[
            "import",
            "jahis",
            first.to_str().unwrap(),
            "--facility",
            &pharmacy,
            "--card",
            "34000000018",
        ],
    );
    assert!(read.status.success(), "{}", stderr(&read));
    let _server = start_with(
        d,
        &["--listen", "127.0.0.1:0", "--demo", "--config", &config],
        false,
    );
    let copy = |fixture: &str, name: &str| {
        std::fs::copy(fixtures.join(fixture), inbox.join(name)).unwrap();
    };
    // Addressed by the file name; refused by its content; nobody this pharmacy knows; still
    // being written (ignored).
    std::fs::write(
        inbox.join("34000000018_20261121.txt"),
        crate::for_card_holder(d, "34000000018", &multi, ""),
    )
    .unwrap();
    copy("tc-invalid-missing-drug-code.txt", "bad.txt");
    copy("tc-minimal-valid.txt", "nobody.txt");
    copy("tc-minimal-valid.txt", "writing.part");

    let started = Instant::now();
    while (names(&inbox.join("done")).is_empty() || names(&inbox.join("failed")).len() < 4)
        && started.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(names(&inbox.join("done")), ["34000000018_20261121.txt"]);
    assert_eq!(
        names(&inbox.join("failed")),
        [
            "bad.txt",
            "bad.txt.error.txt",
            "nobody.txt",
            "nobody.txt.error.txt"
        ]
    );
    let why = std::fs::read_to_string(inbox.join("failed/bad.txt.error.txt")).unwrap();
    assert!(why.contains("4行目"), "{why}");
    let why = std::fs::read_to_string(inbox.join("failed/nobody.txt.error.txt")).unwrap();
    assert!(why.contains("患者を特定できません"), "{why}");
    assert_eq!(
        names(&inbox),
        ["writing.part"],
        "a partial file is left alone"
    );

    // The same export again, under another name, goes to done/ beside the first (its
    // dispensings are already stored, which changes nothing).
    std::fs::write(
        inbox.join("34000000018_again.txt"),
        crate::for_card_holder(d, "34000000018", &multi, ""),
    )
    .unwrap();
    let started = Instant::now();
    while names(&inbox.join("done")).len() < 2 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(names(&inbox.join("done")).len(), 2);

    // The CLI without --card addresses files the same way.
    let named = d.join("34000000018_cli.txt");
    std::fs::write(
        &named,
        crate::for_card_holder(d, "34000000018", &minimal, ""),
    )
    .unwrap();
    let unnamed = d.join("cli.txt");
    std::fs::copy(fixtures.join("tc-output-category-2-full.txt"), &unnamed).unwrap();
    let out = renkei(
        d,
        &[
            "import",
            "jahis",
            named.to_str().unwrap(),
            unnamed.to_str().unwrap(),
            "--facility",
            &pharmacy,
        ],
    );
    assert!(!out.status.success(), "one file was refused");
    assert!(
        stdout(&out).contains("調剤 1 件を登録しました"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("cli.txt: 患者を特定できません"),
        "{}",
        stderr(&out)
    );
}
