//! The dependency rules of ARCHITECTURE.md, checked: a forbidden edge fails `cargo test`.
//!
//! The table under "Allowed dependency edges" in ARCHITECTURE.md is the source of truth; this test
//! reads it and every crate's `[dependencies]`, and also keeps heavy edge crates where they belong.

use std::collections::{BTreeMap, BTreeSet};

use crate::workspace_root;

fn allowed_edges() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md")).unwrap();
    let section = text
        .split("## Allowed dependency edges")
        .nth(1)
        .expect("ARCHITECTURE.md has the edges section");
    let mut out = BTreeMap::new();
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let krate = cells[1].trim_matches('`').to_string();
        let deps = cells[2]
            .split(',')
            .map(|d| d.trim().trim_matches('`').to_string())
            .filter(|d| !d.is_empty() && d != "—")
            .collect();
        out.insert(krate, deps);
    }
    out
}

fn dependencies(krate: &str) -> BTreeSet<String> {
    let manifest = std::fs::read_to_string(
        workspace_root()
            .join("crates")
            .join(krate)
            .join("Cargo.toml"),
    )
    .unwrap();
    let doc: toml::Table = manifest.parse().unwrap();
    doc.get("dependencies")
        .and_then(|d| d.as_table())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn every_crate_depends_only_on_what_architecture_md_allows() {
    let allowed = allowed_edges();
    let crates: Vec<String> = std::fs::read_dir(workspace_root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for krate in &crates {
        let rules = allowed.get(krate).unwrap_or_else(|| {
            panic!("crate {krate} is missing from ARCHITECTURE.md's edge table")
        });
        for dep in dependencies(krate)
            .iter()
            .filter(|d| d.starts_with("renkei"))
        {
            assert!(
                rules.contains(dep),
                "forbidden dependency edge: {krate} -> {dep} (not in ARCHITECTURE.md)"
            );
        }
    }
}

#[test]
fn heavy_crates_stay_at_the_edges() {
    // (dependency, the only crates that may use it)
    let rules: &[(&str, &[&str])] = &[
        ("sqlx", &["renkei-store"]),
        ("rusqlite", &["renkei-store"]),
        ("object_store", &["renkei-store"]),
        ("axum", &["renkei-web", "renkei"]),
        ("askama", &["renkei-web"]),
        // The store does file IO for the object store's staging area (sqlx runs on tokio anyway).
        (
            "tokio",
            &["renkei-store", "renkei-app", "renkei-web", "renkei"],
        ),
        ("rustls", &["renkei"]),
        ("argon2", &["renkei-app"]),
    ];
    let crates = [
        "renkei-core",
        "renkei-store",
        "renkei-app",
        "renkei-web",
        "renkei",
    ];
    for krate in crates {
        let deps = dependencies(krate);
        for (dep, owners) in rules {
            if deps.contains(*dep) {
                assert!(
                    owners.contains(&krate),
                    "{krate} must not depend on {dep}: keep it in {owners:?}"
                );
            }
        }
    }
    // The pure core does no IO at all.
    let core = dependencies("renkei-core");
    for io in ["tokio", "sqlx", "axum", "reqwest", "tracing"] {
        assert!(
            !core.contains(io),
            "renkei-core must stay pure: it depends on {io}"
        );
    }
}
