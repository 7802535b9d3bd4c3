//! Lab results harmonised across facilities by JLAC10.
//!
//! The JP-CLINS 臨床検査項目基本コードセット (43 items, each under several JLAC10 codes for
//! different materials and methods) is built in (`data/jlac10-core-set.tsv`, extracted from the
//! JP-CLINS workbook). A result coded with one of those codes belongs to that item. Another JLAC10
//! code is grouped by everything but its method (analyte, identification, material, result kind):
//! the same test measured differently at two hospitals lines up. A local code needs the operator's
//! mapping to a JLAC10 code first; unmapped, it stays its facility's own row.

use std::collections::HashMap;
use std::sync::OnceLock;

const CORE_SET: &str = include_str!("../data/jlac10-core-set.tsv");

/// One item of the core set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreItem {
    /// The JP-CLINS identifier (`TP`, `HbA1c-NGSP`, …).
    pub key: &'static str,
    pub name: &'static str,
    pub unit: &'static str,
}

struct CoreSet {
    by_code: HashMap<&'static str, usize>,
    items: Vec<CoreItem>,
    codes: Vec<(&'static str, usize)>,
}

fn core() -> &'static CoreSet {
    static SET: OnceLock<CoreSet> = OnceLock::new();
    SET.get_or_init(|| {
        let mut items: Vec<CoreItem> = Vec::new();
        let mut by_code = HashMap::new();
        let mut codes = Vec::new();
        for line in CORE_SET.lines().filter(|l| !l.starts_with('#')) {
            let mut f = line.split('\t');
            let (Some(code), Some(key), Some(name), Some(unit)) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            let index = match items.iter().position(|i| i.key == key) {
                Some(i) => i,
                None => {
                    items.push(CoreItem { key, name, unit });
                    items.len() - 1
                }
            };
            by_code.insert(code, index);
            codes.push((code, index));
        }
        CoreSet {
            by_code,
            items,
            codes,
        }
    })
}

/// The core-set item a JLAC10 code belongs to.
pub fn core_item(jlac10: &str) -> Option<&'static CoreItem> {
    let set = core();
    set.by_code.get(jlac10).map(|i| &set.items[*i])
}

/// Every core-set item, in the workbook's order.
pub fn core_items() -> &'static [CoreItem] {
    &core().items
}

/// Every (JLAC10 code, item) pair of the core set.
pub fn core_codes() -> impl Iterator<Item = (&'static str, &'static CoreItem)> {
    let set = core();
    set.codes.iter().map(|(c, i)| (*c, &set.items[*i]))
}

/// Whether text is shaped like a JLAC10 code (17 characters, digits and capitals).
pub fn is_jlac10(code: &str) -> bool {
    code.len() == 17
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

/// The row a lab result belongs to in a harmonised table: `core:<key>` for the core set,
/// `jlac10:<code without its method>` for other JLAC10 codes, `None` for anything else (the
/// caller keeps it as its facility's local row).
pub fn harmonised_key(jlac10: &str) -> Option<String> {
    if let Some(item) = core_item(jlac10) {
        return Some(format!("core:{}", item.key));
    }
    if is_jlac10(jlac10) {
        // analyte 5 + identification 4 + material 3, then (method 3 skipped) result kind 2.
        return Some(format!("jlac10:{}{}", &jlac10[..12], &jlac10[15..]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_set_is_built_in() {
        // 43 lab items and the infection items' codes, minus rows the workbook marks deleted.
        assert!(core_items().len() >= 43, "{}", core_items().len());
        assert!(core_codes().count() > 400);
        let tp = core_item("3A010000002327101").unwrap();
        assert_eq!((tp.key, tp.unit), ("TP", "g/dL"));
        // Two methods, one item.
        assert_eq!(
            harmonised_key("3A010000002327101"),
            harmonised_key("3A010000002329101")
        );
        assert_eq!(
            harmonised_key("3B035000002327201").as_deref(),
            Some("core:AST")
        );
    }

    #[test]
    fn other_codes_group_by_all_but_the_method() {
        let a = harmonised_key("9Z999000002312301").unwrap();
        let b = harmonised_key("9Z999000002399901").unwrap();
        assert_eq!(a, b);
        assert_ne!(
            a,
            harmonised_key("9Z999000001812301").unwrap(),
            "another material"
        );
        assert_eq!(harmonised_key("LOCAL-1"), None);
        assert_eq!(harmonised_key(""), None);
    }
}
