//! Record linkage and deduplication at scale: blocking, comparison vectors, Fellegi–Sunter
//! weights trained by expectation–maximisation, and clustering.
//!
//! The same engine scores one registration against its candidates (the MPI suggestions, through
//! [`crate::matching`]) and a whole population against itself (the operator's duplicate review,
//! the accuracy benchmarks). It is generic over the fields compared: a [`Model`] names each field
//! and its [`Comparator`]; a record is one normalised string per field (empty = missing).
//!
//! How a run goes (as in splink and the Febrl tradition):
//! 1. Blocking: records that share a key under any of several rules become candidate pairs; a
//!    pair found by an earlier rule is not counted again.
//! 2. Each candidate pair gets a comparison vector (one agreement level per field), packed into
//!    one integer pattern; identical patterns are counted once.
//! 3. `u` (how often each level occurs between different people) is measured on random pairs;
//!    `m` (how often it occurs for the same person) and the share of matches among candidates are
//!    estimated by EM over the pattern counts.
//! 4. Pairs whose posterior probability reaches the threshold are links: clustered with
//!    union–find for deduplication, or assigned one-to-one, best first, for linking two sources
//!    that each hold a person once.
//!
//! Some levels can be declared never a match (`veto`): a different given name with the same
//! family name is a sibling or a twin, however much else (birth date, phone, address) agrees —
//! evidence that independence-assuming weights would otherwise add up to a false merge.

use std::collections::HashMap;

/// How two values of one field are compared. Level 0 is the strongest agreement and the last
/// level is disagreement; a missing value on either side gives no level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparator {
    /// Equal or not (sex, state).
    Exact,
    /// Free text such as names and street names: equal; Jaro-Winkler ≥ 0.92; ≥ 0.80; different.
    Fuzzy,
    /// Digit strings (dates, identifiers, phone numbers, postcodes): equal; a typing slip (one
    /// digit wrong, added or lost, two neighbours swapped, or day and month swapped in an
    /// eight-digit date); different.
    Digits,
    /// A Japanese full name as `漢字\tカナ`, each part written `family given` when the split is
    /// known, both normalised (see [`crate::normalize`]); the levels are [`name_level`]: both
    /// forms agree; the reading agrees, the kanji differ; the kanji agree, the reading has a
    /// slip; a marriage; a typing slip; a relative; the kanji agree, the reading differs;
    /// different.
    JapaneseName,
    /// Where a person can be reached, as `phone\tpostal code\taddress` (digits, digits,
    /// normalised address), compared as one field because a household shares all three: 0 phone
    /// and address (or postal code) agree; 1 phone agrees; 2 address agrees; 3 only the postal
    /// code agrees, or the phone differs by a slip; 4 different.
    Contact,
}

impl Comparator {
    /// Number of agreement levels.
    pub const fn levels(self) -> usize {
        match self {
            Comparator::Exact => 2,
            Comparator::Fuzzy => 4,
            Comparator::Digits => 3,
            Comparator::JapaneseName => 8,
            Comparator::Contact => 5,
        }
    }

    /// The agreement level of two values, or `None` when either is missing.
    pub fn level(self, a: &str, b: &str) -> Option<u8> {
        if a.is_empty() || b.is_empty() {
            return None;
        }
        Some(match self {
            Comparator::Exact => u8::from(a != b),
            Comparator::Fuzzy => fuzzy_level(a, b),
            Comparator::Digits => digits_level(a, b),
            Comparator::JapaneseName => japanese_name_level(a, b),
            Comparator::Contact => return contact_level(a, b),
        })
    }
}

fn contact_level(a: &str, b: &str) -> Option<u8> {
    let mut x = a.splitn(3, '\t');
    let mut y = b.splitn(3, '\t');
    let mut next = || {
        let (p, q) = (x.next().unwrap_or(""), y.next().unwrap_or(""));
        (!p.is_empty() && !q.is_empty()).then_some((p, q))
    };
    let (phone, postal, address) = (next(), next(), next());
    if phone.is_none() && postal.is_none() && address.is_none() {
        return None;
    }
    let phone_same = phone.is_some_and(|(p, q)| p == q);
    // Addresses agree when close as text and with the same numbers: two homes in one town
    // (広島市中区基町1-2-3, 広島市中区基町6-12-20) share a long prefix but not a house.
    let numbers = |s: &str| -> String { s.chars().filter(char::is_ascii_digit).collect() };
    let address_same =
        address.is_some_and(|(p, q)| fuzzy_level(p, q) <= 1 && numbers(p) == numbers(q));
    let postal_same = postal.is_some_and(|(p, q)| p == q);
    Some(if phone_same && (address_same || postal_same) {
        0
    } else if phone_same {
        1
    } else if address_same {
        2
    } else if postal_same || phone.is_some_and(|(p, q)| digits_level(p, q) == 1) {
        3
    } else {
        4
    })
}

/// The longest string [`jaro_winkler`] handles on the stack.
const JW_STACK: usize = 64;

/// Jaro similarity of two short sequences, without allocating.
fn jaro<T: PartialEq + Copy>(a: &[T], b: &[T]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut a_matched = [false; JW_STACK];
    let mut b_matched = [false; JW_STACK];
    let mut matches = 0usize;
    for (i, x) in a.iter().enumerate() {
        let (lo, hi) = (i.saturating_sub(window), (i + window + 1).min(b.len()));
        for j in lo..hi {
            if !b_matched[j] && b[j] == *x {
                b_matched[j] = true;
                a_matched[i] = true;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let mut half_transpositions = 0usize;
    let mut j = 0;
    for (i, x) in a.iter().enumerate() {
        if a_matched[i] {
            while !b_matched[j] {
                j += 1;
            }
            if *x != b[j] {
                half_transpositions += 1;
            }
            j += 1;
        }
    }
    let m = matches as f64;
    let t = (half_transpositions / 2) as f64;
    (m / a.len() as f64 + m / b.len() as f64 + (m - t) / m) / 3.0
}

/// [`jaro`] for ASCII strings of up to 64 bytes, bit-parallel: each byte of `b` has a mask of
/// its positions, so finding the first unmatched equal byte in the window is a few bit
/// operations instead of a scan.
fn jaro_ascii(a: &[u8], b: &[u8]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let mut masks = [0u64; 128];
    for (j, &c) in b.iter().enumerate() {
        masks[usize::from(c & 127)] |= 1 << j;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let below = |n: usize| if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
    let (mut a_matched, mut b_matched, mut matches) = (0u64, 0u64, 0u32);
    for (i, &c) in a.iter().enumerate() {
        let (lo, hi) = (i.saturating_sub(window), (i + window + 1).min(b.len()));
        if lo >= hi {
            continue;
        }
        let candidates = masks[usize::from(c & 127)] & !b_matched & below(hi) & !below(lo);
        if candidates != 0 {
            b_matched |= candidates & candidates.wrapping_neg();
            a_matched |= 1 << i;
            matches += 1;
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let (mut rest_a, mut rest_b, mut half_transpositions) = (a_matched, b_matched, 0u32);
    while rest_a != 0 {
        let (i, j) = (rest_a.trailing_zeros(), rest_b.trailing_zeros());
        if a[i as usize] != b[j as usize] {
            half_transpositions += 1;
        }
        rest_a &= rest_a - 1;
        rest_b &= rest_b - 1;
    }
    let m = f64::from(matches);
    let t = f64::from(half_transpositions / 2);
    (m / a.len() as f64 + m / b.len() as f64 + (m - t) / m) / 3.0
}

fn winkler<T: PartialEq + Copy>(a: &[T], b: &[T], jaro: fn(&[T], &[T]) -> f64) -> f64 {
    let sim = jaro(a, b);
    if sim <= 0.7 {
        return sim;
    }
    let prefix = a.iter().zip(b).take(4).take_while(|(x, y)| x == y).count() as f64;
    (sim + 0.1 * prefix * (1.0 - sim)).clamp(0.0, 1.0)
}

/// Jaro-Winkler similarity, equal to `strsim::jaro_winkler` (a test holds them together) but
/// faster: no allocation for strings up to 64 characters, and bit-parallel for ASCII. strsim
/// allocates its match flags per call (140 ns for a 15-letter street name here) and rapidfuzz's
/// one-shot call measured 117 ns; this is the inner loop of every comparison and of the `u`
/// sampling (70% of a FEBRL4 run before it was written).
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    if a.is_ascii() && b.is_ascii() && a.len() <= JW_STACK && b.len() <= JW_STACK {
        return winkler(a.as_bytes(), b.as_bytes(), jaro_ascii);
    }
    let mut x = ['\0'; JW_STACK];
    let mut y = ['\0'; JW_STACK];
    let fill = |s: &str, out: &mut [char; JW_STACK]| -> Option<usize> {
        let mut n = 0;
        for c in s.chars() {
            *out.get_mut(n)? = c;
            n += 1;
        }
        Some(n)
    };
    match (fill(a, &mut x), fill(b, &mut y)) {
        (Some(n), Some(m)) => winkler(&x[..n], &y[..m], jaro),
        _ => strsim::jaro_winkler(a, b),
    }
}

fn fuzzy_level(a: &str, b: &str) -> u8 {
    if a == b {
        return 0;
    }
    let jw = jaro_winkler(a, b);
    if jw >= 0.92 {
        1
    } else if jw >= 0.80 {
        2
    } else {
        3
    }
}

/// A single typing slip between two digit strings (substitution, insertion, deletion, adjacent
/// transposition).
fn one_slip(a: &[u8], b: &[u8]) -> bool {
    match a.len().abs_diff(b.len()) {
        0 => {
            let mut diffs = (0..a.len()).filter(|&i| a[i] != b[i]);
            match (diffs.next(), diffs.next(), diffs.next()) {
                (Some(_), None, _) => true,
                (Some(i), Some(j), None) => j == i + 1 && a[i] == b[j] && a[j] == b[i],
                _ => false,
            }
        }
        1 => {
            let (long, short) = if a.len() > b.len() { (a, b) } else { (b, a) };
            let first = long.iter().zip(short).take_while(|(x, y)| x == y).count();
            long[first + 1..] == short[first..]
        }
        _ => false,
    }
}

fn digits_level(a: &str, b: &str) -> u8 {
    if a == b {
        return 0;
    }
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let day_month_swapped = x.len() == 8
        && y.len() == 8
        && x[..4] == y[..4]
        && x[4..6] == y[6..8]
        && x[6..8] == y[4..6];
    if day_month_swapped || one_slip(x, y) {
        1
    } else {
        2
    }
}

/// Splits `family given` into its two parts, if written so.
fn split_name(s: &str) -> Option<(&str, &str)> {
    let (family, given) = s.split_once(' ')?;
    (!family.is_empty() && !given.is_empty() && !given.contains(' ')).then_some((family, given))
}

/// The whole name without the space between family and given name.
fn joined(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(' ') {
        s.replace(' ', "").into()
    } else {
        s.into()
    }
}

/// The levels of [`Comparator::JapaneseName`], strongest agreement first.
pub mod name_level {
    /// Both forms agree (or the only form both records have).
    pub const AGREE: u8 = 0;
    /// The reading agrees, the kanji differ (another kanji for the same sound, an unlisted
    /// variant).
    pub const READING_AGREES: u8 = 1;
    /// The kanji agree and the reading differs by one kana's voicing or vowel (ナカジマ/ナカシマ,
    /// タロウ/タルウ): the commonest slip in typing a reading.
    pub const READING_SLIP: u8 = 2;
    /// A marriage: the given name agrees in kanji and reading, and the family name changed in
    /// kanji and reading to an unrelated one (not a near miss such as 渡辺/渡部).
    pub const MARRIAGE: u8 = 3;
    /// A typing slip in the only form both records have.
    pub const TYPO: u8 = 4;
    /// Same family name, different given name: a relative (vetoed in the Japanese model).
    pub const RELATIVE: u8 = 5;
    /// The kanji agree and the reading differs beyond a slip (小川 オガワ/コガワ, 恵 メグミ/ケイ):
    /// another person who writes their name the same way.
    pub const READING_DIFFERS: u8 = 6;
    /// Anything else.
    pub const DIFFERENT: u8 = 7;
}

/// The row of the kana syllabary a katakana belongs to (voiced forms with their plain ones).
fn kana_row(c: char) -> Option<usize> {
    const ROWS: [&str; 10] = [
        "アイウエオ",
        "カキクケコガギグゲゴ",
        "サシスセソザジズゼゾ",
        "タチツテトダヂヅデド",
        "ナニヌネノ",
        "ハヒフヘホバビブベボパピプペポ",
        "マミムメモ",
        "ヤユヨ",
        "ラリルレロ",
        "ワヲン",
    ];
    ROWS.iter().position(|row| row.contains(c))
}

/// Katakana that handwriting and reading back confuse.
const LOOK_ALIKE: &[(char, char)] = &[
    ('シ', 'ツ'),
    ('ソ', 'ン'),
    ('ミ', 'ニ'),
    ('ク', 'タ'),
    ('チ', 'テ'),
    ('ワ', 'ウ'),
    ('ヌ', 'ス'),
];

/// Whether two normalised readings differ by one kana that kept its row (its voicing or its
/// vowel changed) or was taken for a look-alike: a slip. Any other changed consonant
/// (オガワ/コガワ) is another reading.
fn reading_slip(a: &str, b: &str) -> bool {
    let (a, b) = (joined(a), joined(b));
    if a.chars().count() != b.chars().count() {
        return false;
    }
    let mut diffs = a.chars().zip(b.chars()).filter(|(x, y)| x != y);
    match (diffs.next(), diffs.next()) {
        (Some((x, y)), None) => {
            (kana_row(x).is_some() && kana_row(x) == kana_row(y))
                || LOOK_ALIKE.contains(&(x, y))
                || LOOK_ALIKE.contains(&(y, x))
        }
        _ => false,
    }
}

/// Whether the readings of one kanji name differ by voicing inside a compound family name
/// (中島 ナカジマ/ナカシマ, 山崎 ヤマザキ/ヤマサキ): rendaku, two families' readings of the same
/// kanji rather than a slip. `a` and `b` are the whole `漢字\tカナ` values.
fn rendaku(kanji: &str, a: &str, b: &str) -> bool {
    let family_kanji = split_name(kanji).map_or("", |(f, _)| f);
    fn reading(v: &str) -> Option<(&str, &str)> {
        v.split_once('\t').and_then(|(_, kana)| split_name(kana))
    }
    let (Some((fa, ga)), Some((fb, gb))) = (reading(a), reading(b)) else {
        return false;
    };
    ga == gb
        && fa != fb
        && family_kanji.chars().count() >= 2
        && fa.chars().next() == fb.chars().next()
}

/// Family and given parts of one form on both sides, when both are written split.
struct Parts<'a> {
    family_same: bool,
    given_same: bool,
    /// The given names are equal or differ by a [`reading_slip`].
    given_fits: bool,
    given_similarity: f64,
    families: (&'a str, &'a str),
}

fn parts<'a>(x: &'a str, y: &'a str) -> Option<Parts<'a>> {
    let ((fx, gx), (fy, gy)) = (split_name(x)?, split_name(y)?);
    Some(Parts {
        family_same: fx == fy,
        given_same: gx == gy,
        given_fits: gx == gy || reading_slip(gx, gy),
        given_similarity: jaro_winkler(gx, gy),
        families: (fx, fy),
    })
}

/// For a form not split on both sides: whether it is consistent with the same given name under
/// another family name (one side split as `family given`, the other ending in that given name
/// and not starting with that family name). A form missing on either side says nothing.
fn same_given_unsplit(x: &str, y: &str) -> bool {
    if x.is_empty() || y.is_empty() {
        return true;
    }
    let fits = |split: &str, whole: &str| {
        split_name(split).is_some_and(|(family, given)| {
            let whole = joined(whole);
            whole.ends_with(given) && !whole.starts_with(family)
        })
    };
    if split_name(x).is_some() || split_name(y).is_some() {
        return fits(x, y) || fits(y, x);
    }
    // Neither split: the same ending (the given name) after different beginnings.
    let (x, y): (Vec<char>, Vec<char>) = (joined(x).chars().collect(), joined(y).chars().collect());
    let common = x
        .iter()
        .rev()
        .zip(y.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    common > 0 && common < x.len() && common < y.len() && x[0] != y[0]
}

/// Whether a family name changed as a new family name would at marriage: to an unrelated name,
/// not a near miss of the old one (渡辺 ワタナベ → 渡部 ワタベ, 佐藤 → 佐野: the same first kanji,
/// or a reading close to the old one, is another family).
fn new_family(kana: Option<&Parts>, kanji: Option<&Parts>) -> bool {
    let first = |s: &str| s.chars().next();
    if kanji.is_some_and(|k| first(k.families.0) == first(k.families.1)) {
        return false;
    }
    match (kana, kanji) {
        (Some(k), _) => jaro_winkler(k.families.0, k.families.1) < 0.85,
        (None, Some(k)) => !k.families.0.chars().any(|c| k.families.1.contains(c)),
        (None, None) => false,
    }
}

fn japanese_name_level(a: &str, b: &str) -> u8 {
    use name_level::*;
    let (kanji_a, kana_a) = a.split_once('\t').unwrap_or((a, ""));
    let (kanji_b, kana_b) = b.split_once('\t').unwrap_or((b, ""));
    // Per form: Some(equal) when both sides have it.
    let form = |x: &str, y: &str| (!x.is_empty() && !y.is_empty()).then(|| joined(x) == joined(y));
    let (kanji, kana) = (form(kanji_a, kanji_b), form(kana_a, kana_b));
    match (kanji, kana) {
        (Some(true), Some(true)) | (None, Some(true)) | (Some(true), None) => return AGREE,
        (Some(false), Some(true)) => return READING_AGREES,
        (Some(true), Some(false)) if reading_slip(kana_a, kana_b) && !rendaku(kanji_a, a, b) => {
            return READING_SLIP;
        }
        (Some(true), Some(false)) => return READING_DIFFERS,
        (None, None) => return DIFFERENT,
        _ => {}
    }
    // Every form both have differs. Compare the parts where both sides are split.
    let by_kana = parts(kana_a, kana_b);
    let by_kanji = parts(kanji_a, kanji_b);
    let both = [by_kana.as_ref(), by_kanji.as_ref()];
    let family_same = both.iter().flatten().any(|p| p.family_same);
    // A given name "differs" only when no form of it is equal or a near miss.
    let given_differs = both.iter().any(Option::is_some)
        && both
            .iter()
            .flatten()
            .all(|p| !p.given_same && p.given_similarity < 0.85);
    if family_same && given_differs {
        return RELATIVE;
    }
    // Marriage: the given name agrees in every form both have, the family name in none, and
    // the new family name is unrelated to the old.
    if both.iter().any(Option::is_some)
        && both
            .iter()
            .flatten()
            .all(|p| p.given_fits && !p.family_same)
        && (by_kanji.is_some() || same_given_unsplit(kanji_a, kanji_b))
        && (by_kana.is_some() || same_given_unsplit(kana_a, kana_b))
        && new_family(by_kana.as_ref(), by_kanji.as_ref())
    {
        return MARRIAGE;
    }
    // A typing slip, only when a single form can be compared (a slip in both the kanji and
    // the reading of one name is another name).
    let close = |x: &str, y: &str| jaro_winkler(&joined(x), &joined(y)) >= 0.9;
    let single = match (kanji, kana) {
        (None, Some(false)) => close(kana_a, kana_b),
        (Some(false), None) => close(kanji_a, kanji_b),
        _ => false,
    };
    if single { TYPO } else { DIFFERENT }
}

/// One compared field.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: String,
    pub comparator: Comparator,
    /// Levels that mean "never the same person".
    pub veto: Vec<u8>,
    /// Adjust exact agreement by how common the value is (splink's term-frequency
    /// adjustment): two records sharing a common name say less than two sharing a rare one.
    pub term_frequency: bool,
}

impl Field {
    pub fn new(name: &str, comparator: Comparator) -> Self {
        Field {
            name: name.into(),
            comparator,
            veto: Vec::new(),
            term_frequency: false,
        }
    }

    /// The value whose frequency counts for [`Field::term_frequency`]: for a Japanese name,
    /// the reading without the space (or the kanji when there is no reading).
    pub fn frequency_key<'a>(&self, value: &'a str) -> std::borrow::Cow<'a, str> {
        match self.comparator {
            Comparator::JapaneseName => {
                let (kanji, kana) = value.split_once('\t').unwrap_or((value, ""));
                joined(if kana.is_empty() { kanji } else { kana })
            }
            _ => value.into(),
        }
    }
}

/// How often each value occurs, for the fields with [`Field::term_frequency`].
///
/// A value's frequency is estimated as `(count + S·u) / (persons + S)`, with `u` the field's
/// chance of exact agreement between different people and `S` = [`TermFrequencies::SMOOTHING`]
/// persons: in a small population (a new MPI, a test) one person with a name says little about
/// how common it is, and the estimate stays near the field's average.
#[derive(Clone, Debug, Default)]
pub struct TermFrequencies {
    counts: Vec<Option<HashMap<Box<str>, u32>>>,
    total: f64,
}

impl TermFrequencies {
    /// Persons' worth of prior belief that a value is as common as the field's average.
    pub const SMOOTHING: f64 = 100_000.0;

    /// Counts the values of `records`.
    pub fn of(model: &Model, records: &[Record]) -> Self {
        let counts = model
            .fields
            .iter()
            .enumerate()
            .map(|(f, field)| {
                field.term_frequency.then(|| {
                    let mut counts: HashMap<Box<str>, u32> = HashMap::new();
                    for r in records {
                        let key = field.frequency_key(&r[f]);
                        if !key.is_empty() {
                            *counts.entry(key.into()).or_default() += 1;
                        }
                    }
                    counts
                })
            })
            .collect();
        TermFrequencies {
            counts,
            total: records.len().max(1) as f64,
        }
    }

    /// Frequencies counted elsewhere (the MPI's persons, by a store query): for field `field`,
    /// how many of `total` records hold each value, keyed by [`Field::frequency_key`].
    pub fn from_counts(
        model: &Model,
        field: usize,
        counts: impl IntoIterator<Item = (String, u32)>,
        total: u64,
    ) -> Self {
        let mut map: HashMap<Box<str>, u32> = HashMap::new();
        for (key, n) in counts {
            if !key.is_empty() {
                let slot = map.entry(key.into()).or_default();
                *slot = (*slot).max(n);
            }
        }
        let mut counts: Vec<Option<HashMap<Box<str>, u32>>> = vec![None; model.fields.len()];
        if let Some(slot) = counts.get_mut(field) {
            *slot = Some(map);
        }
        TermFrequencies {
            counts,
            total: total as f64,
        }
    }

    /// The weight adjustment (log2) for a pair: for each term-frequency field that agrees
    /// exactly, `log2(u / estimated frequency of the value)` when the value is more common than
    /// `u` says, else nothing.
    pub fn adjustment(&self, model: &Model, pattern: Pattern, a: &Record, b: &Record) -> f64 {
        let levels = model.levels_of(pattern);
        let mut total = 0.0;
        for (f, counts) in self.counts.iter().enumerate() {
            let Some(counts) = counts else { continue };
            if levels.get(f).copied().flatten() != Some(0) {
                continue;
            }
            let field = &model.fields[f];
            let u = model.u[f][0];
            let count = |r: &Record| {
                counts
                    .get(field.frequency_key(&r[f]).as_ref())
                    .map_or(0.0, |&n| f64::from(n))
            };
            let n = count(a).max(count(b));
            let tf = (n + Self::SMOOTHING * u) / (self.total + Self::SMOOTHING);
            // Only a discount: a name rarer than the field's average is counted as average (a
            // count of one or two in the population says little, and a rare name shared by a
            // household is still shared).
            if tf > 0.0 && u > 0.0 {
                total += (u / tf).log2().min(0.0);
            }
        }
        total
    }
}

/// Fields and their parameters: `m[f][l]` = P(level l | same person), `u[f][l]` = P(level l |
/// different people), `prior` = P(same person) among the pairs scored.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub fields: Vec<Field>,
    pub m: Vec<Vec<f64>>,
    pub u: Vec<Vec<f64>>,
    pub prior: f64,
}

/// A record: one normalised value per field of the model, empty when missing.
pub type Record = Vec<Box<str>>;

/// A comparison vector packed into one integer (mixed radix, one digit per field; the digit
/// `levels` means missing).
pub type Pattern = u32;

impl Model {
    /// A model with uninformed starting parameters (agreement likely for matches, unlikely for
    /// non-matches), to be trained.
    pub fn untrained(fields: Vec<Field>) -> Self {
        let m = fields
            .iter()
            .map(|f| spread(f.comparator.levels(), 0.9))
            .collect();
        let u = fields
            .iter()
            .map(|f| {
                let mut v = spread(f.comparator.levels(), 0.05);
                v.reverse();
                v
            })
            .collect();
        Model {
            fields,
            m,
            u,
            prior: 0.01,
        }
    }

    /// Whether the pattern space fits in a [`Pattern`].
    pub fn fits(fields: &[Field]) -> bool {
        fields
            .iter()
            .try_fold(1u64, |acc, f| {
                acc.checked_mul(f.comparator.levels() as u64 + 1)
            })
            .is_some_and(|n| n <= u64::from(u32::MAX))
    }

    /// Compares two records field by field.
    pub fn compare(&self, a: &Record, b: &Record) -> Pattern {
        let mut code: Pattern = 0;
        for (i, f) in self.fields.iter().enumerate().rev() {
            let levels = f.comparator.levels() as Pattern;
            let (x, y) = (a.get(i).map_or("", |s| s), b.get(i).map_or("", |s| s));
            let level = f.comparator.level(x, y).map_or(levels, Pattern::from);
            code = code * (levels + 1) + level;
        }
        code
    }

    /// The per-field levels of a pattern (`None` = missing).
    pub fn levels_of(&self, mut pattern: Pattern) -> Vec<Option<u8>> {
        self.fields
            .iter()
            .map(|f| {
                let levels = f.comparator.levels() as Pattern;
                let level = pattern % (levels + 1);
                pattern /= levels + 1;
                (level < levels).then_some(level as u8)
            })
            .collect()
    }

    /// Whether any field's level vetoes the pattern.
    pub fn vetoed(&self, pattern: Pattern) -> bool {
        self.levels_of(pattern)
            .iter()
            .zip(&self.fields)
            .any(|(l, f)| l.is_some_and(|l| f.veto.contains(&l)))
    }

    /// The Fellegi–Sunter match weight (log2 likelihood ratio) of a pattern, without the prior.
    pub fn weight(&self, pattern: Pattern) -> f64 {
        self.levels_of(pattern)
            .iter()
            .enumerate()
            .filter_map(|(f, l)| l.map(|l| (self.m[f][l as usize] / self.u[f][l as usize]).log2()))
            .sum()
    }

    /// The posterior probability that a pair with this pattern is one person, under `prior`.
    pub fn probability_with(&self, pattern: Pattern, prior: f64) -> f64 {
        if self.vetoed(pattern) {
            return 0.0;
        }
        let odds = (prior / (1.0 - prior)).log2() + self.weight(pattern);
        1.0 / (1.0 + (-odds).exp2())
    }

    /// The posterior probability under the model's own prior.
    pub fn probability(&self, pattern: Pattern) -> f64 {
        self.probability_with(pattern, self.prior)
    }

    /// [`Model::probability`] with `adjust` (log2, from [`TermFrequencies::adjustment`]) added
    /// to the weight.
    pub fn probability_adjusted(&self, pattern: Pattern, adjust: f64) -> f64 {
        if self.vetoed(pattern) {
            return 0.0;
        }
        let odds = (self.prior / (1.0 - self.prior)).log2() + self.weight(pattern) + adjust;
        1.0 / (1.0 + (-odds).exp2())
    }

    /// Estimates `u` from `samples` random pairs (pairs across sides when `sides` is given),
    /// with add-one smoothing, on `threads` threads. Deterministic for a seed.
    pub fn estimate_u(
        &mut self,
        records: &[Record],
        sides: Option<&[bool]>,
        samples: usize,
        seed: u64,
        threads: usize,
    ) {
        if records.len() < 2 {
            return;
        }
        let mut rng = SplitMix64(seed);
        let n = records.len() as u64;
        let mut pairs = Vec::with_capacity(samples);
        let mut attempts = 0;
        while pairs.len() < samples && attempts < samples * 20 {
            attempts += 1;
            let (i, j) = ((rng.next_u64() % n) as usize, (rng.next_u64() % n) as usize);
            if i == j || sides.is_some_and(|s| s[i] == s[j]) {
                continue;
            }
            pairs.push((i as u32, j as u32));
        }
        let (_, patterns) = compare_pairs(self, records, &pairs, threads);
        let mut counts: Vec<Vec<f64>> = self
            .fields
            .iter()
            .map(|f| vec![1.0; f.comparator.levels()])
            .collect();
        for (pattern, n) in patterns {
            for (f, level) in self.levels_of(pattern).into_iter().enumerate() {
                if let Some(l) = level {
                    counts[f][l as usize] += n as f64;
                }
            }
        }
        self.u = counts.into_iter().map(normalised).collect();
    }

    /// Estimates `m` and the prior by expectation–maximisation over pattern counts, `u` fixed.
    /// Fields in `ignore` (those a blocking rule made agree) neither count as evidence nor have
    /// their `m` changed. Vetoed patterns count as non-matches. Returns the iterations run.
    pub fn train_em(
        &mut self,
        patterns: &HashMap<Pattern, u64>,
        ignore: &[usize],
        max_iterations: usize,
    ) -> usize {
        let decoded: Vec<(Vec<Option<u8>>, f64, bool)> = patterns
            .iter()
            .map(|(&p, &n)| (self.levels_of(p), n as f64, self.vetoed(p)))
            .collect();
        let total: f64 = decoded.iter().map(|d| d.1).sum();
        if total == 0.0 {
            return 0;
        }
        for iteration in 1..=max_iterations {
            let mut m_counts: Vec<Vec<f64>> = self
                .fields
                .iter()
                .map(|f| vec![0.1; f.comparator.levels()])
                .collect();
            let mut matched = 0.0;
            for (levels, n, vetoed) in &decoded {
                if *vetoed {
                    continue;
                }
                let (mut pm, mut pu) = (self.prior, 1.0 - self.prior);
                for (f, l) in levels.iter().enumerate() {
                    if ignore.contains(&f) {
                        continue;
                    }
                    if let Some(l) = l {
                        pm *= self.m[f][*l as usize];
                        pu *= self.u[f][*l as usize];
                    }
                }
                let gamma = if pm + pu > 0.0 { pm / (pm + pu) } else { 0.0 };
                let weight = gamma * n;
                matched += weight;
                for (f, l) in levels.iter().enumerate() {
                    if let Some(l) = l {
                        m_counts[f][*l as usize] += weight;
                    }
                }
            }
            let new_m: Vec<Vec<f64>> = m_counts
                .into_iter()
                .enumerate()
                .map(|(f, counts)| {
                    if ignore.contains(&f) {
                        self.m[f].clone()
                    } else {
                        normalised(counts)
                    }
                })
                .collect();
            let new_prior = (matched / total).clamp(1e-9, 1.0 - 1e-9);
            let change = (new_prior - self.prior).abs()
                + new_m
                    .iter()
                    .flatten()
                    .zip(self.m.iter().flatten())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
            self.m = new_m;
            self.prior = new_prior;
            if change < 1e-6 {
                return iteration;
            }
        }
        max_iterations
    }
}

impl Model {
    /// Trains `m` as splink does: one EM session per blocking rule, on that rule's pairs, with
    /// the fields the rule made agree left out (within a birth-date block every pair agrees on
    /// the birth date, which says nothing about who is the same person); each field's `m` is
    /// the mean over the sessions that estimated it. Then the prior among all candidates.
    /// Rules with fewer than `min_pairs` pairs are skipped.
    pub fn train(
        &mut self,
        rules: &[BlockingRule],
        candidates: &Candidates,
        patterns: &[Pattern],
        min_pairs: usize,
    ) -> usize {
        let mut sums: Vec<Vec<f64>> = self.m.iter().map(|v| vec![0.0; v.len()]).collect();
        let mut sessions = vec![0usize; self.fields.len()];
        let mut iterations = 0;
        let mut start = 0;
        for (rule, &end) in rules.iter().zip(&candidates.rule_ends) {
            let slice = &patterns[start..end];
            start = end;
            if slice.len() < min_pairs {
                continue;
            }
            let mut counts: HashMap<Pattern, u64> = HashMap::new();
            for p in slice {
                *counts.entry(*p).or_default() += 1;
            }
            let mut session = self.clone();
            iterations += session.train_em(&counts, &rule.fields, 100);
            for f in 0..self.fields.len() {
                if !rule.fields.contains(&f) {
                    sessions[f] += 1;
                    for (sum, m) in sums[f].iter_mut().zip(&session.m[f]) {
                        *sum += m;
                    }
                }
            }
        }
        for f in 0..self.fields.len() {
            if sessions[f] > 0 {
                self.m[f] = sums[f].iter().map(|s| s / sessions[f] as f64).collect();
            }
        }
        let mut counts: HashMap<Pattern, u64> = HashMap::new();
        for p in patterns {
            *counts.entry(*p).or_default() += 1;
        }
        iterations + self.train_prior(&counts, 100)
    }

    /// Turns a prior estimated among candidate pairs into the prior for two records drawn at
    /// random (splink's "probability two random records match"), assuming blocking missed no
    /// match: blocking concentrates matches, and a candidate-pair prior would overstate them.
    pub fn prior_over_all_pairs(&mut self, candidates: usize, all_pairs: f64) {
        if all_pairs > 0.0 {
            self.prior = (self.prior * candidates as f64 / all_pairs).clamp(1e-12, 0.5);
        }
    }

    /// Estimates only the prior (the share of matches among the pairs), `m` and `u` fixed.
    pub fn train_prior(
        &mut self,
        patterns: &HashMap<Pattern, u64>,
        max_iterations: usize,
    ) -> usize {
        let weights: Vec<(f64, f64)> = patterns
            .iter()
            .map(|(&p, &n)| {
                let w = if self.vetoed(p) {
                    f64::NEG_INFINITY
                } else {
                    self.weight(p)
                };
                (w, n as f64)
            })
            .collect();
        let total: f64 = weights.iter().map(|w| w.1).sum();
        if total == 0.0 {
            return 0;
        }
        for iteration in 1..=max_iterations {
            let log_odds = (self.prior / (1.0 - self.prior)).log2();
            let matched: f64 = weights
                .iter()
                .map(|(w, n)| n / (1.0 + (-(log_odds + w)).exp2()))
                .sum();
            let new_prior = (matched / total).clamp(1e-9, 1.0 - 1e-9);
            let change = (new_prior - self.prior).abs();
            self.prior = new_prior;
            if change < 1e-9 {
                return iteration;
            }
        }
        max_iterations
    }
}

fn spread(levels: usize, first: f64) -> Vec<f64> {
    if levels <= 1 {
        return vec![1.0; levels];
    }
    let rest = (1.0 - first) / (levels - 1) as f64;
    let mut v = vec![rest; levels];
    v[0] = first;
    v
}

fn normalised(v: Vec<f64>) -> Vec<f64> {
    let sum: f64 = v.iter().sum();
    v.into_iter().map(|x| x / sum).collect()
}

/// A small, fast, deterministic generator (SplitMix64) for sampling.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A blocking key: 64-bit FNV-1a of the joined key parts; 0 means "no key" (a part missing).
pub fn block_key(parts: &[&str]) -> u64 {
    if parts.iter().any(|p| p.is_empty()) {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h.max(1)
}

/// Candidate pairs from blocking.
#[derive(Clone, Debug, Default)]
pub struct Candidates {
    /// `(i, j)` with `i < j`, each pair once, rule by rule.
    pub pairs: Vec<(u32, u32)>,
    /// Where each rule's pairs end in `pairs`.
    pub rule_ends: Vec<usize>,
    /// Blocks skipped for exceeding the size limit (a key shared by too many records, such as a
    /// placeholder phone number), and the records in them.
    pub oversized_blocks: usize,
    pub oversized_records: usize,
}

/// A blocking rule: a key per record (0 = none) and the model fields the key is made from.
#[derive(Clone, Debug, Default)]
pub struct BlockingRule {
    pub keys: Vec<u64>,
    pub fields: Vec<usize>,
}

impl BlockingRule {
    /// A rule keyed on whole fields of the records.
    pub fn on_fields(records: &[Record], fields: &[usize]) -> Self {
        BlockingRule {
            keys: records
                .iter()
                .map(|r| block_key(&fields.iter().map(|&f| &*r[f]).collect::<Vec<_>>()))
                .collect(),
            fields: fields.to_vec(),
        }
    }
}

/// Candidate pairs: records sharing a key under any rule. A pair already found by an earlier
/// rule is skipped; with `sides`, only pairs across sides are made (linking two sources).
/// Blocks larger than `max_block` are skipped and counted.
pub fn candidate_pairs(
    rules: &[BlockingRule],
    sides: Option<&[bool]>,
    max_block: usize,
) -> Candidates {
    let mut out = Candidates::default();
    let keys: Vec<&Vec<u64>> = rules.iter().map(|r| &r.keys).collect();
    for (rule, rule_keys) in keys.iter().enumerate() {
        let mut order: Vec<u32> = (0..rule_keys.len() as u32)
            .filter(|&i| rule_keys[i as usize] != 0)
            .collect();
        order.sort_unstable_by_key(|&i| rule_keys[i as usize]);
        for block in order.chunk_by(|&a, &b| rule_keys[a as usize] == rule_keys[b as usize]) {
            if block.len() < 2 {
                continue;
            }
            if block.len() > max_block {
                out.oversized_blocks += 1;
                out.oversized_records += block.len();
                continue;
            }
            for (x, &a) in block.iter().enumerate() {
                for &b in &block[x + 1..] {
                    if sides.is_some_and(|s| s[a as usize] == s[b as usize]) {
                        continue;
                    }
                    let earlier = keys[..rule].iter().any(|k| {
                        let ka = k[a as usize];
                        ka != 0 && ka == k[b as usize]
                    });
                    if !earlier {
                        out.pairs.push((a.min(b), a.max(b)));
                    }
                }
            }
        }
        out.rule_ends.push(out.pairs.len());
    }
    out
}

/// Compares every candidate pair, on `threads` threads. Returns each pair's pattern (same order
/// as `pairs`) and the count of each distinct pattern.
pub fn compare_pairs(
    model: &Model,
    records: &[Record],
    pairs: &[(u32, u32)],
    threads: usize,
) -> (Vec<Pattern>, HashMap<Pattern, u64>) {
    let threads = threads.max(1);
    let chunk = pairs.len().div_ceil(threads).max(1);
    let mut patterns = vec![0 as Pattern; pairs.len()];
    let mut counts: HashMap<Pattern, u64> = HashMap::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = pairs
            .chunks(chunk)
            .zip(patterns.chunks_mut(chunk))
            .map(|(pairs, out)| {
                scope.spawn(move || {
                    let mut local: HashMap<Pattern, u64> = HashMap::new();
                    for ((a, b), slot) in pairs.iter().zip(out.iter_mut()) {
                        let p = model.compare(&records[*a as usize], &records[*b as usize]);
                        *slot = p;
                        *local.entry(p).or_default() += 1;
                    }
                    local
                })
            })
            .collect();
        for h in handles {
            // A panicking comparison thread is a bug in this module, not bad input: comparisons
            // index only within the given records.
            if let Ok(local) = h.join() {
                for (p, n) in local {
                    *counts.entry(p).or_default() += n;
                }
            }
        }
    });
    (patterns, counts)
}

/// A scored link between two records.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Link {
    pub a: u32,
    pub b: u32,
    pub probability: f64,
}

/// Pairs whose probability reaches `threshold`, best first; with term frequencies, exact
/// agreement on common values counts for less.
pub fn links(
    model: &Model,
    records: &[Record],
    pairs: &[(u32, u32)],
    patterns: &[Pattern],
    tf: Option<&TermFrequencies>,
    threshold: f64,
) -> Vec<Link> {
    let mut cache: HashMap<Pattern, Option<f64>> = HashMap::new();
    let log_prior = (model.prior / (1.0 - model.prior)).log2();
    let mut out: Vec<Link> = pairs
        .iter()
        .zip(patterns)
        .filter_map(|(&(a, b), p)| {
            let weight = (*cache
                .entry(*p)
                .or_insert_with(|| (!model.vetoed(*p)).then(|| model.weight(*p))))?;
            let adjust = tf.map_or(0.0, |tf| {
                tf.adjustment(model, *p, &records[a as usize], &records[b as usize])
            });
            let probability = 1.0 / (1.0 + (-(log_prior + weight + adjust)).exp2());
            (probability >= threshold).then_some(Link { a, b, probability })
        })
        .collect();
    out.sort_by(|x, y| {
        y.probability
            .total_cmp(&x.probability)
            .then((x.a, x.b).cmp(&(y.a, y.b)))
    });
    out
}

/// Keeps each record in at most one link, best first (linking two sources that each hold a
/// person once).
pub fn one_to_one(links: &[Link]) -> Vec<Link> {
    let mut used = std::collections::HashSet::new();
    links
        .iter()
        .filter(|l| {
            if used.contains(&l.a) || used.contains(&l.b) {
                return false;
            }
            used.insert(l.a);
            used.insert(l.b);
            true
        })
        .copied()
        .collect()
}

/// Cluster number of each record after joining every link (union–find); singletons keep their
/// own number.
pub fn clusters(records: usize, links: &[Link]) -> Vec<u32> {
    let mut parent: Vec<u32> = (0..records as u32).collect();
    fn find(parent: &mut [u32], mut x: u32) -> u32 {
        while parent[x as usize] != x {
            let up = parent[parent[x as usize] as usize];
            parent[x as usize] = up;
            x = up;
        }
        x
    }
    for l in links {
        let (ra, rb) = (find(&mut parent, l.a), find(&mut parent, l.b));
        if ra != rb {
            parent[ra.max(rb) as usize] = ra.min(rb);
        }
    }
    (0..records as u32).map(|x| find(&mut parent, x)).collect()
}

/// A whole unsupervised run: blocking, comparison, `u` from random pairs, EM, links.
#[derive(Clone, Debug)]
pub struct Run {
    pub model: Model,
    pub candidates: Candidates,
    pub links: Vec<Link>,
    pub em_iterations: usize,
    pub distinct_patterns: usize,
}

/// Options for [`run`].
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub threshold: f64,
    pub max_block: usize,
    pub u_samples: usize,
    pub seed: u64,
    pub threads: usize,
    /// Train `m` and the prior by EM (otherwise the model's parameters are used as given).
    pub train: bool,
    /// A blocking rule with fewer pairs than this is not trained on.
    pub min_training_pairs: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            threshold: 0.5,
            max_block: 2_000,
            u_samples: 1_000_000,
            seed: 42,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            train: true,
            min_training_pairs: 1_000,
        }
    }
}

/// The number of pairs a run could compare: all pairs, or all pairs across the two sides.
pub fn all_pairs(records: usize, sides: Option<&[bool]>) -> f64 {
    match sides {
        Some(sides) => {
            let left = sides.iter().filter(|s| **s).count() as f64;
            left * (records as f64 - left)
        }
        None => records as f64 * (records as f64 - 1.0) / 2.0,
    }
}

/// Runs linkage over `records` (deduplication, or linking two sources when `sides` is given).
pub fn run(
    mut model: Model,
    records: &[Record],
    rules: &[BlockingRule],
    sides: Option<&[bool]>,
    options: &RunOptions,
) -> Run {
    let candidates = candidate_pairs(rules, sides, options.max_block);
    let (patterns, counts) = compare_pairs(&model, records, &candidates.pairs, options.threads);
    let mut em_iterations = 0;
    if options.train {
        model.estimate_u(
            records,
            sides,
            options.u_samples,
            options.seed,
            options.threads,
        );
        em_iterations = model.train(rules, &candidates, &patterns, options.min_training_pairs);
        model.prior_over_all_pairs(candidates.pairs.len(), all_pairs(records.len(), sides));
    }
    let tf = TermFrequencies::of(&model, records);
    let links = links(
        &model,
        records,
        &candidates.pairs,
        &patterns,
        Some(&tf),
        options.threshold,
    );
    Run {
        model,
        distinct_patterns: counts.len(),
        candidates,
        links,
        em_iterations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaro_winkler_agrees_with_strsim() {
        let mut rng = SplitMix64(3);
        let alphabets: [&[char]; 2] = [
            &['a', 'b', 'c', 'd', 'e', 'n', 'r', ' '],
            &['タ', 'カ', 'ハ', 'シ', 'ロ', 'ー', 'ヤ', 'マ'],
        ];
        for round in 0..20_000 {
            let alphabet = alphabets[round % 2];
            let word = |rng: &mut SplitMix64| -> String {
                let len = (rng.next_u64() % 70) as usize;
                (0..len)
                    .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
                    .collect()
            };
            let (a, b) = (word(&mut rng), word(&mut rng));
            let (ours, theirs) = (jaro_winkler(&a, &b), strsim::jaro_winkler(&a, &b));
            assert!((ours - theirs).abs() < 1e-12, "{a} {b}: {ours} vs {theirs}");
        }
        let long = "x".repeat(100);
        assert_eq!(jaro_winkler(&long, &long), 1.0);
    }

    #[test]
    fn digit_slips_are_near_misses() {
        let c = Comparator::Digits;
        assert_eq!(c.level("19480405", "19480405"), Some(0));
        assert_eq!(c.level("19480405", "19480504"), Some(1)); // day and month swapped
        assert_eq!(c.level("19480405", "19480406"), Some(1)); // one digit
        assert_eq!(c.level("1234567", "1243567"), Some(1)); // neighbours swapped
        assert_eq!(c.level("1234567", "123567"), Some(1)); // one lost
        assert_eq!(c.level("1234567", "7654321"), Some(2));
        assert_eq!(c.level("", "1"), None);
    }

    #[test]
    fn japanese_names_tell_marriage_from_siblings() {
        use name_level::*;
        let c = Comparator::JapaneseName;
        for (a, b, level) in [
            (
                "高橋 太郎\tタカハシ タロー",
                "高橋太郎\tタカハシ タロー",
                AGREE,
            ),
            ("高橋 太郎\tタカハシ タロー", "\tタカハシ タロー", AGREE),
            (
                "斉藤 恵子\tサイトー ケーコ",
                "斉藤 啓子\tサイトー ケーコ",
                READING_AGREES,
            ),
            (
                "高橋 太郎\tタカハシ タロー",
                "高橋 太郎\tタカハシ タルー",
                READING_SLIP,
            ),
            (
                "高橋 幸子\tタカハシ サチコ",
                "高橋 幸子\tタカハシ ユキコ",
                READING_DIFFERS,
            ),
            (
                "小川 太郎\tオガワ タロー",
                "小川 太郎\tコガワ タロー",
                READING_DIFFERS,
            ),
            (
                "中島 恵子\tナカジマ ケーコ",
                "中島 恵子\tナカシマ ケーコ",
                READING_DIFFERS,
            ),
            (
                "中島 恵\tナカジマ メグミ",
                "中島 恵\tナカシマ ケー",
                READING_DIFFERS,
            ),
            (
                "佐藤 花子\tサトー ハナコ",
                "鈴木 花子\tスズキ ハナコ",
                MARRIAGE,
            ),
            (
                "佐藤 太郎\tサトー タロー",
                "鈴木 太郎\tスズキ タロー",
                MARRIAGE,
            ),
            (
                "渡辺 太郎\tワタナベ タロー",
                "渡部 太郎\tワタベ タロー",
                DIFFERENT,
            ),
            (
                "佐藤 花子\tサトー ハナコ",
                "佐野 花子\tサノ ハナコ",
                DIFFERENT,
            ),
            ("高橋 太一郎\t", "高橋太一朗\t", TYPO),
            ("\tタカハシ タロー", "\tタカハシ タロ", TYPO),
            (
                "高橋 太郎\tタカハシ タロー",
                "高橋 大郎\tタカハシ タロ",
                DIFFERENT,
            ),
            (
                "山田 一郎\tヤマダ イチロー",
                "山田 二郎\tヤマダ ジロー",
                RELATIVE,
            ),
            (
                "山田 一郎\tヤマダ イチロー",
                "佐藤 花子\tサトー ハナコ",
                DIFFERENT,
            ),
        ] {
            assert_eq!(c.level(a, b), Some(level), "{a} / {b}");
            assert_eq!(c.level(b, a), Some(level), "{b} / {a}");
        }
    }

    #[test]
    fn term_frequencies_discount_common_values_only() {
        let model = crate::matching::japanese_model();
        let record = |kana: &str| -> Record {
            vec![format!("\t{kana}").into(), "".into(), "".into(), "".into()]
        };
        let (a, b) = (record("サトーヒロシ"), record("サトーヒロシ"));
        let pattern = model.compare(&a, &b);
        let tf = |n: u32| {
            TermFrequencies::from_counts(&model, 0, [("サトーヒロシ".to_string(), n)], 1_000_000)
        };
        assert!(tf(800).adjustment(&model, pattern, &a, &b) < -3.0);
        assert_eq!(tf(1).adjustment(&model, pattern, &a, &b), 0.0);
        // In a small population one person with the name is no evidence that it is common.
        let small = TermFrequencies::from_counts(&model, 0, [("サトーヒロシ".into(), 1)], 20);
        assert!(small.adjustment(&model, pattern, &a, &b) > -1.0);
    }

    #[test]
    fn a_household_counts_once() {
        let c = Comparator::Contact;
        let home = "0821234567\t7300011\t広島市中区基町1-2-3";
        assert_eq!(c.level(home, home), Some(0));
        assert_eq!(c.level(home, "0821234567\t\t"), Some(1));
        assert_eq!(
            c.level(home, "0869999999\t7300011\t広島市中区基町1-2-3"),
            Some(2)
        );
        // Another house in the same town is another address.
        assert_eq!(
            c.level(home, "0869999999\t7300012\t広島市中区基町6-12-20"),
            Some(4)
        );
        assert_eq!(c.level(home, "\t7300011\t岡山市北区1-1"), Some(3));
        assert_eq!(c.level(home, "0821234576\t\t"), Some(3));
        assert_eq!(c.level(home, "0869999999\t7000001\t岡山市北区1-1"), Some(4));
        assert_eq!(c.level(home, "\t\t"), None);
    }

    #[test]
    fn patterns_round_trip() {
        let model = Model::untrained(vec![
            Field::new("name", Comparator::Fuzzy),
            Field::new("dob", Comparator::Digits),
            Field::new("sex", Comparator::Exact),
        ]);
        let a: Record = vec!["annabel".into(), "19800101".into(), "".into()];
        let b: Record = vec!["annabell".into(), "19800101".into(), "f".into()];
        let p = model.compare(&a, &b);
        assert_eq!(model.levels_of(p), vec![Some(1), Some(0), None]);
    }

    #[test]
    fn blocking_finds_each_pair_once_and_respects_sides() {
        let rule = |keys: Vec<u64>| BlockingRule {
            keys,
            fields: vec![],
        };
        let keys = vec![rule(vec![1, 1, 1, 0]), rule(vec![5, 5, 6, 6])];
        let c = candidate_pairs(&keys, None, 10);
        assert_eq!(c.pairs, vec![(0, 1), (0, 2), (1, 2), (2, 3)]);
        assert_eq!(c.rule_ends, vec![3, 4]);
        let sides = [true, false, false, true];
        let c = candidate_pairs(&keys, Some(&sides), 10);
        assert_eq!(c.pairs, vec![(0, 1), (0, 2), (2, 3)]);
        let c = candidate_pairs(&keys, None, 2);
        assert_eq!(c.oversized_blocks, 1);
        assert_eq!(c.oversized_records, 3);
    }

    #[test]
    fn em_separates_matches_from_non_matches() {
        // Two sources of 200 people; the second has typos in some names.
        let fields = vec![
            Field::new("given", Comparator::Fuzzy),
            Field::new("family", Comparator::Fuzzy),
            Field::new("dob", Comparator::Digits),
        ];
        let mut rng = SplitMix64(7);
        let syllables = ["ka", "ri", "to", "mu", "se", "no", "ha", "yo", "ne", "shi"];
        let mut word = |n: usize| -> String {
            (0..n)
                .map(|_| syllables[(rng.next_u64() % 10) as usize])
                .collect()
        };
        let mut records = Vec::new();
        let mut sides = Vec::new();
        let people: Vec<Record> = (0..200)
            .map(|i| {
                vec![
                    word(3).into(),
                    word(3).into(),
                    format!("19{:02}{:02}{:02}", 40 + i % 50, 1 + i % 12, 1 + i % 28).into(),
                ]
            })
            .collect();
        for p in &people {
            records.push(p.clone());
            sides.push(true);
        }
        for (i, p) in people.iter().enumerate() {
            let mut q = p.clone();
            if i % 3 == 0 {
                let mut s = q[0].to_string();
                s.push('x');
                q[0] = s.into();
            }
            records.push(q);
            sides.push(false);
        }
        let keys: Vec<BlockingRule> = (0..3)
            .map(|f| BlockingRule::on_fields(&records, &[f]))
            .collect();
        let run = run(
            Model::untrained(fields),
            &records,
            &keys,
            Some(&sides),
            &RunOptions {
                u_samples: 20_000,
                threads: 2,
                min_training_pairs: 10,
                ..RunOptions::default()
            },
        );
        let links = one_to_one(&run.links);
        let correct = links.iter().filter(|l| l.b == l.a + 200).count();
        assert_eq!(correct, 200, "{:?}", run.model);
        assert_eq!(links.len(), 200);
        let groups = clusters(records.len(), &links);
        assert_eq!(groups[0], groups[200]);
        assert_ne!(groups[0], groups[1]);
    }
}
