//! Scoring whether two demographic records are the same person (MPI candidate suggestions).
//!
//! A Fellegi–Sunter style sum of log-likelihood weights per field (agreement adds, disagreement
//! subtracts, a missing value counts nothing), mapped to a probability. Names are compared after
//! [`normalize_name`](crate::normalize_name) / [`normalize_kana`](crate::normalize_kana), with
//! Jaro-Winkler for near misses; birth dates also count transposed day/month and single-digit
//! typos as partial agreement. Nothing is merged on a score: people confirm.

use crate::normalize::{normalize_kana, normalize_name};

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

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn name_weight(a: &str, b: &str, exact: f64, close: f64, disagree: f64) -> Option<(f64, bool)> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    if a == b {
        return Some((exact, true));
    }
    let jw = strsim::jaro_winkler(a, b);
    Some(if jw >= 0.92 {
        (close, true)
    } else if jw >= 0.85 {
        (close / 2.0, false)
    } else {
        (disagree, false)
    })
}

/// Family and given names compared apart when both are written with a space between them
/// (a family name changes at marriage; a given name rarely does), else as one.
fn names(a: &str, b: &str, normalize: fn(&str) -> String) -> Option<(f64, bool)> {
    let parts = |s: &str| {
        s.split(|c: char| c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(normalize)
            .collect::<Vec<_>>()
    };
    let (pa, pb) = (parts(a), parts(b));
    match (pa.as_slice(), pb.as_slice()) {
        ([fa, ga], [fb, gb]) => {
            let family = name_weight(fa, fb, 2.5, 1.5, -1.5)?;
            let given = name_weight(ga, gb, 2.5, 1.5, -3.0)?;
            Some((family.0 + given.0, family.1 && given.1))
        }
        _ => name_weight(&normalize(a), &normalize(b), 5.0, 3.5, -4.0),
    }
}

fn birth_weight(a: &str, b: &str) -> Option<(f64, bool)> {
    let (a, b) = (digits(a), digits(b));
    if a.len() != 8 || b.len() != 8 {
        return None;
    }
    if a == b {
        return Some((6.0, true));
    }
    // Day and month swapped, or one digit off: a typing error, not a different person.
    let swapped =
        a.get(..4) == b.get(..4) && a.get(4..6) == b.get(6..8) && a.get(6..8) == b.get(4..6);
    let one_off = a.chars().zip(b.chars()).filter(|(x, y)| x != y).count() == 1;
    Some(if swapped || one_off {
        (2.0, false)
    } else {
        (-6.0, false)
    })
}

/// How likely `a` and `b` are the same person.
pub fn score(a: &Demographic, b: &Demographic) -> MatchScore {
    let mut total = -8.0; // prior: two random records are rarely the same person
    let mut reasons = Vec::new();
    let mut add = |w: Option<(f64, bool)>, why: &'static str| {
        if let Some((weight, agreed)) = w {
            total += weight;
            if agreed {
                reasons.push(why);
            }
        }
    };
    add(
        names(&a.kana_name, &b.kana_name, normalize_kana),
        "kana_name",
    );
    add(
        names(&a.kanji_name, &b.kanji_name, normalize_name),
        "kanji_name",
    );
    add(birth_weight(&a.birth_date, &b.birth_date), "birth_date");
    let sex = |s: &str| matches!(s, "M" | "F").then(|| s.to_string());
    add(
        match (sex(&a.sex), sex(&b.sex)) {
            (Some(x), Some(y)) => Some(if x == y { (0.5, true) } else { (-4.0, false) }),
            _ => None,
        },
        "sex",
    );
    let (pa, pb) = (digits(&a.phone), digits(&b.phone));
    add(
        (pa.len() >= 9 && pb.len() >= 9)
            .then(|| if pa == pb { (4.0, true) } else { (-0.5, false) }),
        "phone",
    );
    let (za, zb) = (digits(&a.postal_code), digits(&b.postal_code));
    add(
        (za.len() == 7 && zb.len() == 7)
            .then(|| if za == zb { (2.0, true) } else { (-0.5, false) }),
        "postal_code",
    );
    let score = 1.0 / (1.0 + (-total).exp());
    MatchScore { score, reasons }
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
    }
}
