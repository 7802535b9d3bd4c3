//! Whether two Japanese demographic records are the same person (MPI candidate suggestions,
//! duplicate review): the Japanese model for [`crate::linkage`].
//!
//! Names are compared after [`normalize_name`] / [`normalize_kana`], family and given name
//! apart when written with a space (a family name changes at marriage; a given name rarely
//! does); birth dates and phone numbers count a typing slip as partial agreement. Nothing is
//! merged on a score: people confirm.

use crate::linkage::{
    BlockingRule, Comparator, Field, Model, Record, TermFrequencies, block_key, name_level,
};
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
    /// Which fields both records have and disagree on (for the confirming person to see why
    /// not).
    pub disagreements: Vec<&'static str>,
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
///
/// The name's levels are [`name_level`]. What the parameters say:
/// - a reading that differs while the kanji agree, beyond a one-kana slip, is another person
///   who writes the name the same way (小川 オガワ/コガワ): `m` far below `u`, evidence against;
/// - a marriage (given name agreeing in kanji and reading, family name changed to an unrelated
///   one) has its own weight, the same for either sex; a near-miss family name (渡辺/渡部) is
///   not a marriage but a different name;
/// - a sex that differs weighs as its error rate says: about one registration in a thousand
///   has the sex wrong;
/// - agreement on a name counts by how common the name is ([`TermFrequencies`]; the suggestion
///   path counts the MPI's persons, the benchmarks the population).
pub fn japanese_model() -> Model {
    let mut name = Field::new("name", Comparator::JapaneseName);
    name.veto = vec![name_level::RELATIVE];
    name.term_frequency = true;
    Model {
        fields: vec![
            name,
            Field::new("birth_date", Comparator::Digits),
            Field::new("sex", Comparator::Exact),
            Field::new("contact", Comparator::Contact),
        ],
        m: vec![
            // agree, reading agrees, reading slip, marriage, typo, relative, reading differs,
            // different.
            vec![
                0.87808, 0.05, 0.03, 0.012, 0.0299, 0.00001, 0.0000001, 0.00001,
            ],
            vec![0.96999, 0.03, 0.00001],
            vec![0.999, 0.001],
            vec![0.45, 0.1, 0.15, 0.05, 0.25],
        ],
        u: vec![
            vec![
                0.00005, 0.00002, 0.000005, 0.002, 0.0002, 0.003, 0.00002, 0.994705,
            ],
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
/// [`POPULATION_PRIOR`], without name frequencies (every name counts as averagely common).
pub fn score(a: &Demographic, b: &Demographic) -> MatchScore {
    score_records(
        &japanese_model(),
        None,
        &japanese_record(a),
        &japanese_record(b),
    )
}

/// The key a name is counted under for [`TermFrequencies`] (the normalised reading without the
/// space, or the kanji when there is no reading): what the suggestion path counts among the
/// MPI's persons.
pub fn name_frequency_key(record: &Record) -> String {
    let model = japanese_model();
    model.fields[NAME]
        .frequency_key(record.get(NAME).map_or("", |s| s))
        .into_owned()
}

/// [`score`] for records already normalised (one model, many comparisons), with name
/// frequencies when known: the same weights as the whole-population runs.
pub fn score_records(
    model: &Model,
    tf: Option<&TermFrequencies>,
    a: &Record,
    b: &Record,
) -> MatchScore {
    let pattern = model.compare(a, b);
    let levels = model.levels_of(pattern);
    let adjust = tf.map_or(0.0, |tf| tf.adjustment(model, pattern, a, b));
    let (mut reasons, mut disagreements) = (Vec::new(), Vec::new());
    if let Some(level) = levels[NAME] {
        let (agree, differ): (&[&'static str], &[&'static str]) = match level {
            name_level::AGREE => (&["kanji_name", "kana_name"], &[]),
            name_level::READING_AGREES => (&["kana_name"], &["kanji_name"]),
            name_level::READING_SLIP | name_level::READING_DIFFERS => {
                (&["kanji_name"], &["kana_name"])
            }
            name_level::MARRIAGE => (&["given_name"], &["family_name"]),
            name_level::TYPO => (&["name_close"], &[]),
            name_level::RELATIVE => (&["family_name"], &["given_name"]),
            _ => (&[], &["name"]),
        };
        reasons.extend(agree);
        disagreements.extend(differ);
    }
    for (field, why) in [(BIRTH, "birth_date"), (SEX, "sex")] {
        match levels[field] {
            Some(0) => reasons.push(why),
            Some(_) => disagreements.push(why),
            None => {}
        }
    }
    match levels[CONTACT] {
        Some(0) => reasons.extend(["phone", "address"]),
        Some(1) => reasons.push("phone"),
        Some(2) => reasons.push("address"),
        Some(3) => reasons.push("postal_code"),
        _ => {}
    }
    disagreements.extend(contact_disagreements(&a[CONTACT], &b[CONTACT]));
    MatchScore {
        score: model.probability_adjusted(pattern, adjust),
        reasons,
        disagreements,
    }
}

/// The parts of two contact values (`phone\tpostal\taddress`) that both have and that differ.
fn contact_disagreements(a: &str, b: &str) -> Vec<&'static str> {
    let (mut x, mut y) = (a.splitn(3, '\t'), b.splitn(3, '\t'));
    ["phone", "postal_code", "address"]
        .into_iter()
        .filter(|_| {
            let (p, q) = (x.next().unwrap_or(""), y.next().unwrap_or(""));
            !p.is_empty() && !q.is_empty() && p != q
        })
        .collect()
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

    fn with_postal(mut d: Demographic, postal: &str) -> Demographic {
        d.postal_code = postal.into();
        d
    }

    #[test]
    fn a_reading_that_differs_for_the_same_kanji_counts_against() {
        // The pair: the same kanji, the same birth date, sex and postal district.
        let a = with_postal(
            person("小川 健一", "オガワ ケンイチ", "1960-05-05", "M"),
            "990-0001",
        );
        let b = with_postal(
            person("小川 健一", "コガワ ケンイチ", "1960-05-05", "M"),
            "990-0001",
        );
        let mut no_reading = b.clone();
        no_reading.kana_name.clear();
        let (differs, unknown) = (score(&a, &b), score(&a, &no_reading));
        assert!(differs.score < 0.9, "{differs:?}");
        assert!(differs.score < unknown.score, "{differs:?} vs {unknown:?}");
        assert!(differs.disagreements.contains(&"kana_name"));
        let c = person("中島 恵", "ナカジマ メグミ", "1975-02-02", "F");
        let d = person("中島 恵", "ナカシマ ケイ", "1975-02-02", "M");
        assert!(score(&c, &d).score < SUGGEST, "{:?}", score(&c, &d));
    }

    #[test]
    fn a_near_miss_family_name_is_not_a_marriage() {
        let a = person("渡辺 健一", "ワタナベ ケンイチ", "1960-05-05", "M");
        let b = person("渡部 健一", "ワタベ ケンイチ", "1960-05-05", "M");
        let s = score(&a, &b);
        assert!(s.score < SUGGEST, "{s:?}");
        assert!(!s.reasons.contains(&"given_name"));
    }

    #[test]
    fn a_real_marriage_still_links_for_either_sex() {
        for (old, new, sex) in [
            (
                ("佐藤 恵子", "サトウ ケイコ"),
                ("阿部 恵子", "アベ ケイコ"),
                "F",
            ),
            (
                ("佐藤 健一", "サトウ ケンイチ"),
                ("阿部 健一", "アベ ケンイチ"),
                "M",
            ),
        ] {
            let a = person(old.0, old.1, "1980-10-10", sex);
            let b = person(new.0, new.1, "1980-10-10", sex);
            let s = score(&a, &b);
            assert!(s.score >= SUGGEST, "{s:?}");
            assert!(s.reasons.contains(&"given_name") && s.disagreements.contains(&"family_name"));
        }
    }

    #[test]
    fn a_sex_disagreement_weighs_as_its_error_rate() {
        let model = japanese_model();
        let rate = model.m[SEX][1];
        assert!((0.0005..=0.002).contains(&rate), "{rate}");
        let a = person("高橋 太郎", "タカハシ タロウ", "1948-04-05", "M");
        let b = person("高橋 太郎", "タカハシ タロウ", "1948-04-05", "F");
        let (same, other) = (score(&a, &a), score(&a, &b));
        let odds = |p: f64| (p / (1.0 - p)).log2();
        let drop = odds(same.score) - odds(other.score);
        let expected =
            (model.m[SEX][0] / model.u[SEX][0]).log2() - (model.m[SEX][1] / model.u[SEX][1]).log2();
        assert!((drop - expected).abs() < 0.01, "{drop} vs {expected}");
        assert!(other.disagreements.contains(&"sex"));
    }

    #[test]
    fn a_common_name_scores_lower_than_a_rare_one() {
        let model = japanese_model();
        let mut a = person("佐藤 浩", "サトウ ヒロシ", "1948-04-05", "M");
        a.phone = "023-111-2222".into();
        let mut b = person("佐藤 浩", "サトウ ヒロシ", "1949-04-05", "M");
        b.phone = "023-999-8888".into();
        let (ra, rb) = (japanese_record(&a), japanese_record(&b));
        let key = name_frequency_key(&ra);
        assert_eq!(key, "サトーヒロシ");
        let tf = |n: u32| TermFrequencies::from_counts(&model, NAME, [(key.clone(), n)], 1_000_000);
        let rare = score_records(&model, Some(&tf(2)), &ra, &rb);
        let common = score_records(&model, Some(&tf(800)), &ra, &rb);
        assert!(common.score < rare.score, "{common:?} vs {rare:?}");
        assert!(common.score < 0.9 && common.score >= SUGGEST, "{common:?}");
        assert_eq!(rare.score, score(&a, &b).score);
        assert!(common.disagreements.contains(&"birth_date"));
        assert!(common.disagreements.contains(&"phone"));
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
