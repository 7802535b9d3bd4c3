//! Checks of command-line arguments that need no database. Each command runs them before a data
//! directory, an audit key or a database is created, so that a mistyped command touches nothing;
//! each message names the bad value and, for a choice, the valid ones.

use std::path::Path;

use anyhow::{Result, bail};
use renkei_core::facility::{FacilityCode, FacilityType};
use renkei_core::user::{LoginId, Profession, Role};

/// "key（label）, key（label）, …" for a list of choices.
fn choices<T: Copy>(all: &[T], key: fn(T) -> &'static str, label: fn(T) -> &'static str) -> String {
    all.iter()
        .map(|&t| format!("{}（{}）", key(t), label(t)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn facility_code(text: &str) -> Result<()> {
    match FacilityCode::parse(text) {
        Ok(_) => Ok(()),
        Err(e) => bail!("医療機関コード「{text}」は使えません: {e}"),
    }
}

/// An optional code: empty is allowed (the operator, care facilities).
pub fn optional_facility_code(text: &str) -> Result<()> {
    if text.trim().is_empty() {
        Ok(())
    } else {
        facility_code(text)
    }
}

pub fn facility_type(text: &str) -> Result<()> {
    if FacilityType::from_key(text.trim()).is_some() {
        return Ok(());
    }
    bail!(
        "施設種別「{text}」はありません。次のいずれかを --type に指定してください: {}",
        choices(&FacilityType::ALL, FacilityType::key, FacilityType::label)
    )
}

pub fn profession(text: &str) -> Result<()> {
    if Profession::from_key(text.trim()).is_some() {
        return Ok(());
    }
    bail!(
        "職種「{text}」はありません。次のいずれかを --profession に指定してください: {}",
        choices(&Profession::ALL, Profession::key, Profession::label)
    )
}

pub fn role(text: &str) -> Result<()> {
    if Role::from_key(text.trim()).is_some() {
        return Ok(());
    }
    bail!(
        "権限「{text}」はありません。次のいずれかを --role に指定してください: {}",
        choices(&Role::ALL, Role::key, Role::label)
    )
}

pub fn login_id(text: &str) -> Result<()> {
    match LoginId::parse(text) {
        Ok(_) => Ok(()),
        Err(e) => bail!("ログインID「{text}」は使えません: {e}"),
    }
}

pub fn positive(value: i64, option: &str) -> Result<()> {
    if value > 0 {
        Ok(())
    } else {
        bail!("{option} には 1 以上の数を指定してください（{value} が指定されました）")
    }
}

/// A file that must exist and be a regular file.
pub fn file(path: &Path, what: &str) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => bail!("{what} {} はファイルではありません", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{what} {} がありません", path.display())
        }
        Err(e) => bail!("{what} {} を読めません: {e}", path.display()),
    }
}

/// How deep an SS-MIX2 standardized storage nests its files under the root: patient-ID
/// folders (3 + 3 characters), the patient ID, the date, the data kind.
const STORAGE_DEPTH: usize = 6;

/// The root of an SS-MIX2 standardized storage: a folder holding at least one file named and
/// placed as the guideline says (`患者ID_診療日_データ種別_…`). The search stops at the first.
pub fn ssmix2_root(root: &Path) -> Result<()> {
    const HINT: &str = "SS-MIX2 標準化ストレージのルート（患者IDの先頭3桁のフォルダを含むフォルダ）を指定してください";
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("{} はフォルダではありません。{HINT}", root.display()),
        Err(_) => bail!("フォルダ {} がありません。{HINT}", root.display()),
    }
    let mut files = 0usize;
    let walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .max_depth(STORAGE_DEPTH);
    for entry in walk.into_iter().filter_map(|e| e.ok()) {
        if !entry.file_type().is_file() {
            continue;
        }
        files += 1;
        let name = entry.file_name().to_string_lossy();
        let (stem, _) = renkei_hl7v2::ssmix2::strip_extension(&name);
        if renkei_hl7v2::ssmix2::parse_file_name(stem).is_ok() {
            return Ok(());
        }
    }
    if files == 0 {
        bail!("{} にはファイルがありません。{HINT}", root.display());
    }
    bail!(
        "{} に SS-MIX2 標準化ストレージのファイル（患者ID_診療日_データ種別_… という名前）が見つかりません（ファイル {files} 件を調べました）。{HINT}",
        root.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_choice_lists_the_valid_ones() {
        let e = facility_type("foo").unwrap_err().to_string();
        assert!(e.contains("「foo」"), "{e}");
        assert!(e.contains("hospital（病院）"), "{e}");
        assert!(e.contains("lab_centre（臨床検査センター）"), "{e}");
        let e = profession("surgeon").unwrap_err().to_string();
        assert!(e.contains("「surgeon」") && e.contains("doctor（"), "{e}");
        let e = role("boss").unwrap_err().to_string();
        assert!(e.contains("facility_admin（施設管理者）"), "{e}");
        assert!(facility_type("hospital").is_ok());
    }

    #[test]
    fn a_bad_code_is_named() {
        let e = facility_code("123").unwrap_err().to_string();
        assert!(e.contains("「123」") && e.contains("10桁"), "{e}");
        assert!(optional_facility_code("").is_ok());
    }

    #[test]
    fn an_empty_or_foreign_folder_is_not_a_storage() {
        let dir = tempfile::tempdir().unwrap();
        let e = ssmix2_root(dir.path()).unwrap_err().to_string();
        assert!(e.contains("ファイルがありません"), "{e}");
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let e = ssmix2_root(dir.path()).unwrap_err().to_string();
        assert!(e.contains("見つかりません"), "{e}");
        let e = ssmix2_root(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("がありません"), "{e}");
    }
}
