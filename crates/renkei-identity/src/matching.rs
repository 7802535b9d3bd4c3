//! Whether two Japanese demographic records are the same person (MPI candidate suggestions,
//! duplicate review): the Japanese model for [`crate::linkage`].
//!
//! Names are compared after [`normalize_name`] / [`normalize_kana`], family and given name
//! apart when written with a space (a family name changes at marriage; a given name rarely
//! does); birth dates and phone numbers count a typing slip as partial agreement. Nothing is
//! merged on a score: people confirm.

use crate::linkage::{BlockingRule, Comparator, Field, Model, Record, block_key};
use crate::normalize::{normalize_address, normalize_kana, normalize_name};

/// Demographics as compared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Demographic {
    pub kanji_name: String,
    pub kana_name: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    /// `M`, `F`, or other/unknown.
    pub sex: String,
    pub phone: String,
    pub postal_code: String,
    pub address: String,
}

/// The outcome for one pair.
#[derive(Clone, Debug, PartialEq)]
pub struct MatchScore {
    /// Probability-like score in 0..=1.
    pub score: f64,
    /// Which fields agreed (for the confirming person to see why).
    pub reasons: Vec<&'static str>,
}

/// Above this a candidate is shown to the person registering the patient.
pub const SUGGEST: f64 = 0.5;

/// Field order of [`japanese_model`] and [`japanese_record`].
pub const NAME: usize = 0;
pub const BIRTH: usize = 1;
pub const SEX: usize = 2;
/// Phone, postal code and address together (see [`Comparator::Contact`]).
pub const CONTACT: usize = 3;

/// The probability that a registration is a given existing person before anything is compared
/// (about one in ten thousand persons in a blocked candidate set): the prior of [`score`].
pub const POPULATION_PRIOR: f64 = 1e-4;

/// The model for Japanese demographics with default parameters (set from how registrations
/// differ in practice; [`crate::linkage::run`] can retrain `m` and `u` on a population). A
/// different given name under the same family name vetoes: twins share everything else.
pub fn japanese_model() -> Model {
    let mut name = Field::new("name", Comparator::JapaneseName);
    name.veto = vec![4];
    name.term_frequency = true;
    Model {
        fields: vec![
            name,
            Field::new("birth_date", Comparator::Digits),
            Field::new("sex", Comparator::Exact),
            Field::new("contact", Comparator::Contact),
        ],
        m: vec![
            vec![0.86, 0.05, 0.04, 0.04999, 0.00001, 0.00001],
            vec![0.9698, 0.03, 0.0002],
            vec![0.995, 0.005],
            vec![0.45, 0.1, 0.15, 0.05, 0.25],
        ],
        u: vec![
            vec![0.00005, 0.00002, 0.002, 0.0002, 0.003, 0.99473],
            vec![0.00004, 0.0006, 0.99936],
            vec![0.5, 0.5],
            vec![0.00002, 0.00003, 0.00005, 0.002, 0.99788],
        ],
        prior: POPULATION_PRIOR,
    }
}

fn digits(s: &str) -> String {
    s.chars()
        .flat_map(|c| c.to_digit(10).and_then(|d| char::from_digit(d, 10)))
        .collect()
}

/// A name normalised part by part, keeping the space between family and given name.
fn name_parts(text: &str, normalize: fn(&str) -> String) -> String {
    text.split(char::is_whitespace)
        .map(normalize)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The record [`japanese_model`] compares, normalised once.
pub fn japanese_record(d: &Demographic) -> Record {
    let kanji = name_parts(&d.kanji_name, normalize_name);
    let kana = name_parts(&d.kana_name, normalize_kana);
    let name = if kanji.is_empty() && kana.is_empty() {
        String::new()
    } else {
        format!("{kanji}\t{kana}")
    };
    let keep = |s: String, ok: fn(usize) -> bool| if ok(s.len()) { s } else { String::new() };
    let phone = keep(digits(&d.phone), |n| (9..=11).contains(&n));
    let postal = keep(digits(&d.postal_code), |n| n == 7);
    let address = normalize_address(&d.address);
    let contact = if phone.is_empty() && postal.is_empty() && address.is_empty() {
        String::new()
    } else {
        format!("{phone}\t{postal}\t{address}")
    };
    vec![
        name.into(),
        keep(digits(&d.birth_date), |n| n == 8).into(),
        (if matches!(d.sex.as_str(), "M" | "F") {
            d.sex.as_str()
        } else {
            ""
        })
        .into(),
        contact.into(),
    ]
}

/// Blocking rules for deduplicating Japanese records: the same birth date; the same reading of
/// the whole name; the same kanji name; the same phone number; the same given-name reading and
/// postal code (a married name at the same address with a mistyped birth date).
pub fn japanese_blocking(records: &[Record]) -> Vec<BlockingRule> {
    let name = |r: &Record| -> (String, String, String) {
        let (kanji, kana) = r[NAME].split_once('\t').unwrap_or(("", ""));
        let given = kana.split_once(' ').map_or("", |(_, g)| g).to_string();
        (kanji.replace(' ', ""), kana.replace(' ', ""), given)
    };
    let names: Vec<_> = records.iter().map(name).collect();
    let keyed = |keys: Vec<u64>, fields: &[usize]| BlockingRule {
        keys,
        fields: fields.to_vec(),
    };
    vec![
        BlockingRule::on_fields(records, &[BIRTH]),
        keyed(names.iter().map(|n| block_key(&[&n.1])).collect(), &[NAME]),
        keyed(names.iter().map(|n| block_key(&[&n.0])).collect(), &[NAME]),
        keyed(
            records
                .iter()
                .map(|r| block_key(&[r[CONTACT].split('\t').next().unwrap_or("")]))
                .collect(),
            &[CONTACT],
        ),
        keyed(
            records
                .iter()
                .zip(&names)
                .map(|(r, n)| block_key(&[&n.2, r[CONTACT].split('\t').nth(1).unwrap_or("")]))
                .collect(),
            &[NAME, CONTACT],
        ),
    ]
}

/// How likely `a` and `b` are the same person, under [`japanese_model`] and
/// [`POPULATION_PRIOR`].
pub fn score(a: &Demographic, b: &Demographic) -> MatchScore {
    score_records(&japanese_model(), &japanese_record(a), &japanese_record(b))
}

/// [`score`] for records already normalised (one model, many comparisons).
pub fn score_records(model: &Model, a: &Record, b: &Record) -> MatchScore {
    let pattern = model.compare(a, b);
    let levels = model.levels_of(pattern);
    let mut reasons = Vec::new();
    match levels[NAME] {
        Some(0) => reasons.extend(["kanji_name", "kana_name"]),
        Some(1) => reasons.push("name"),
        Some(2) => reasons.push("given_name"),
        _ => {}
    }
    for (field, why) in [(BIRTH, "birth_date"), (SEX, "sex")] {
        if levels[field] == Some(0) {
            reasons.push(why);
        }
    }
    match levels[CONTACT] {
        Some(0) => reasons.extend(["phone", "address"]),
        Some(1) => reasons.push("phone"),
        Some(2) => reasons.push("address"),
        Some(3) => reasons.push("postal_code"),
        _ => {}
    }
    MatchScore {
        score: model.probability(pattern),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(kanji: &str, kana: &str, birth: &str, sex: &str) -> Demographic {
        Demographic {
            kanji_name: kanji.into(),
            kana_name: kana.into(),
            birth_date: birth.into(),
            sex: sex.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_same_person_written_differently_scores_high() {
        let a = person("髙橋 太郎", "タカハシ タロウ", "1948-04-05", "M");
        for b in [
            person("高橋太郎", "たかはし たろう", "1948-04-05", "M"),
            person("高橋 太郎", "ﾀｶﾊｼ ﾀﾛｳ", "1948-05-04", "M"),
            person("", "タカハシ タロー", "1948-04-05", ""),
        ] {
            let s = score(&a, &b);
            assert!(s.score > 0.9, "{b:?}: {s:?}");
        }
    }

    #[test]
    fn different_people_score_low() {
        let a = person("髙橋 太郎", "タカハシ タロウ", "1948-04-05", "M");
        for b in [
            person("高橋 花子", "タカハシ ハナコ", "1948-04-05", "F"),
            person("山田 太郎", "ヤマダ タロウ", "1962-11-30", "M"),
            person("高橋 太郎", "タカハシ タロウ", "1990-01-20", "M"),
        ] {
            let s = score(&a, &b);
            assert!(s.score < SUGGEST, "{b:?}: {s:?}");
        }
    }

    #[test]
    fn a_shared_phone_and_address_support_a_married_name_change() {
        let mut a = person("佐藤 花子", "サトウ ハナコ", "1985-07-07", "F");
        a.phone = "082-123-4567".into();
        a.postal_code = "730-0011".into();
        let mut b = person("鈴木 花子", "スズキ ハナコ", "1985-07-07", "F");
        b.phone = "0821234567".into();
        b.postal_code = "7300011".into();
        let s = score(&a, &b);
        assert!(s.score > SUGGEST, "{s:?}");
        assert!(s.reasons.contains(&"phone") && s.reasons.contains(&"birth_date"));
        assert!(s.reasons.contains(&"given_name"));
    }

    #[test]
    fn twins_who_share_everything_but_the_given_name_are_never_matched() {
        let mut a = person("山田 一郎", "ヤマダ イチロウ", "2001-03-03", "M");
        a.phone = "082-123-4567".into();
        a.postal_code = "730-0011".into();
        a.address = "広島市中区基町1-2-3".into();
        let mut b = person("山田 二郎", "ヤマダ ジロウ", "2001-03-03", "M");
        b.phone = a.phone.clone();
        b.postal_code = a.postal_code.clone();
        b.address = "広島市中区基町1丁目2番3号".into();
        assert_eq!(score(&a, &b).score, 0.0);
    }

    #[test]
    fn a_move_keeps_the_match_on_name_and_birth_date() {
        let mut a = person("齋藤 恵子", "サイトウ ケイコ", "1970-12-01", "F");
        a.phone = "082-111-2222".into();
        a.address = "広島市中区1-1".into();
        let mut b = person("斉藤 恵子", "サイトウ ケーコ", "1970-12-01", "F");
        b.phone = "086-333-4444".into();
        b.address = "岡山市北区3-3".into();
        assert!(score(&a, &b).score > 0.9, "{:?}", score(&a, &b));
    }
}
