//! A synthetic Japanese population with known duplicates, for measuring matching accuracy and
//! speed (the MPI benchmarks) and for loading a large MPI. Deterministic for a seed.
//!
//! Persons live in households (a shared family name, address and often phone number; spouses;
//! children; twins, who share everything but the given name). Each person is registered at one
//! or more facilities; every extra registration is written the way real registrations differ:
//! old or variant kanji (髙/高, 﨑/崎, 齋/斉, 邊/辺), kana in hiragana, half-width or with a
//! spelled-out long vowel, a missing space or reading, a slip in the kana or the birth date, a
//! move (new address and phone), a marriage (a new family name), missing phone or address.

use crate::linkage::SplitMix64;
use crate::matching::Demographic;

/// Family-name parts (kanji, reading). Names are built from two parts; the weights make the
/// common names common (a Zipf-like spread, as 佐藤 and 鈴木 are).
const FAMILY_FIRST: &[(&str, &str)] = &[
    ("佐", "サ"),
    ("鈴", "スズ"),
    ("高", "タカ"),
    ("田", "タ"),
    ("渡", "ワタ"),
    ("伊", "イ"),
    ("山", "ヤマ"),
    ("中", "ナカ"),
    ("小", "コ"),
    ("加", "カ"),
    ("吉", "ヨシ"),
    ("松", "マツ"),
    ("井", "イ"),
    ("木", "キ"),
    ("林", "ハヤシ"),
    ("清", "キヨ"),
    ("森", "モリ"),
    ("池", "イケ"),
    ("橋", "ハシ"),
    ("岡", "オカ"),
    ("石", "イシ"),
    ("前", "マエ"),
    ("藤", "フジ"),
    ("長", "ナガ"),
    ("大", "オオ"),
    ("西", "ニシ"),
    ("原", "ハラ"),
    ("今", "イマ"),
    ("村", "ムラ"),
    ("斉", "サイ"),
    ("渋", "シブ"),
    ("宮", "ミヤ"),
    ("北", "キタ"),
    ("川", "カワ"),
    ("野", "ノ"),
    ("坂", "サカ"),
];
const FAMILY_SECOND: &[(&str, &str)] = &[
    ("藤", "トウ"),
    ("木", "キ"),
    ("橋", "ハシ"),
    ("中", "ナカ"),
    ("辺", "ナベ"),
    ("田", "ダ"),
    ("本", "モト"),
    ("村", "ムラ"),
    ("林", "バヤシ"),
    ("川", "カワ"),
    ("崎", "サキ"),
    ("野", "ノ"),
    ("島", "シマ"),
    ("沢", "サワ"),
    ("浜", "ハマ"),
    ("口", "グチ"),
    ("上", "ウエ"),
    ("井", "イ"),
    ("原", "ハラ"),
    ("谷", "タニ"),
    ("山", "ヤマ"),
    ("岡", "オカ"),
    ("内", "ウチ"),
    ("部", "ベ"),
    ("尾", "オ"),
    ("形", "ガタ"),
    ("石", "イシ"),
    ("森", "モリ"),
];
const MALE_FIRST: &[(&str, &str)] = &[
    ("健", "ケン"),
    ("大", "ダイ"),
    ("翔", "ショウ"),
    ("誠", "セイ"),
    ("和", "カズ"),
    ("正", "マサ"),
    ("浩", "ヒロ"),
    ("直", "ナオ"),
    ("拓", "タク"),
    ("雄", "ユウ"),
    ("俊", "トシ"),
    ("康", "ヤス"),
    ("博", "ヒロ"),
    ("秀", "ヒデ"),
    ("隆", "タカ"),
    ("幸", "ユキ"),
    ("勝", "カツ"),
    ("修", "シュウ"),
    ("達", "タツ"),
    ("光", "ミツ"),
    ("義", "ヨシ"),
    ("信", "ノブ"),
    ("昭", "アキ"),
    ("武", "タケ"),
];
const MALE_SECOND: &[(&str, &str)] = &[
    ("太", "タ"),
    ("一", "イチ"),
    ("介", "スケ"),
    ("郎", "ロウ"),
    ("也", "ヤ"),
    ("樹", "キ"),
    ("斗", "ト"),
    ("人", "ト"),
    ("夫", "オ"),
    ("男", "オ"),
    ("司", "シ"),
    ("平", "ヘイ"),
    ("彦", "ヒコ"),
    ("志", "シ"),
];
const FEMALE_FIRST: &[(&str, &str)] = &[
    ("美", "ミ"),
    ("花", "ハナ"),
    ("愛", "アイ"),
    ("結", "ユイ"),
    ("恵", "メグ"),
    ("幸", "サチ"),
    ("明", "アケ"),
    ("和", "カズ"),
    ("陽", "ヒ"),
    ("真", "マ"),
    ("由", "ユ"),
    ("智", "チ"),
    ("裕", "ヒロ"),
    ("久", "ヒサ"),
    ("典", "ノリ"),
    ("直", "ナオ"),
    ("千", "チ"),
    ("早", "サ"),
    ("奈", "ナ"),
    ("理", "リ"),
    ("京", "キョウ"),
    ("菜", "ナ"),
];
const FEMALE_SECOND: &[(&str, &str)] = &[
    ("子", "コ"),
    ("美", "ミ"),
    ("香", "カ"),
    ("奈", "ナ"),
    ("恵", "エ"),
    ("代", "ヨ"),
    ("江", "エ"),
    ("里", "リ"),
    ("穂", "ホ"),
    ("乃", "ノ"),
    ("紀", "キ"),
    ("葉", "ハ"),
];
/// (postal code prefix, prefecture + city + town) of Chūgoku-region towns.
const TOWNS: &[(&str, &str)] = &[
    ("730", "広島県広島市中区基町"),
    ("732", "広島県広島市東区光町"),
    ("734", "広島県広島市南区宇品神田"),
    ("733", "広島県広島市西区観音町"),
    ("731", "広島県広島市安佐南区祇園"),
    ("720", "広島県福山市東桜町"),
    ("721", "広島県福山市引野町"),
    ("728", "広島県三次市十日市東"),
    ("737", "広島県呉市宝町"),
    ("739", "広島県東広島市西条町"),
    ("722", "広島県尾道市久保"),
    ("700", "岡山県岡山市北区奉還町"),
    ("710", "岡山県倉敷市阿知"),
    ("753", "山口県山口市中央"),
    ("690", "島根県松江市殿町"),
];
/// Variant kanji a registration may use in place of the common form.
const VARIANT_OF: &[(char, char)] = &[
    ('高', '髙'),
    ('崎', '﨑'),
    ('斉', '齋'),
    ('辺', '邊'),
    ('沢', '澤'),
    ('浜', '濱'),
    ('島', '嶋'),
];

/// One record of the synthetic set: demographics and the person it belongs to.
#[derive(Clone, Debug)]
pub struct SyntheticRecord {
    pub person: u32,
    pub demographic: Demographic,
}

struct Rng(SplitMix64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n.max(1) as u64) as usize
    }
    /// Zipf-like: low indexes much more likely.
    fn skewed(&mut self, n: usize) -> usize {
        let x = (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((x * x.sqrt()) * n as f64) as usize % n.max(1)
    }
    fn chance(&mut self, percent: f64) -> bool {
        ((self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64) * 100.0 < percent
    }
}

#[derive(Clone)]
struct Person {
    family: (String, String),
    given: (String, String),
    birth: (u32, u32, u32),
    sex: &'static str,
    phone: String,
    postal: String,
    address: String,
}

fn pair(rng: &mut Rng, first: &[(&str, &str)], second: &[(&str, &str)]) -> (String, String) {
    let (k1, r1) = first[rng.skewed(first.len())];
    let (k2, r2) = second[rng.skewed(second.len())];
    (format!("{k1}{k2}"), format!("{r1}{r2}"))
}

fn home(rng: &mut Rng) -> (String, String, String) {
    let (zip, town) = TOWNS[rng.below(TOWNS.len())];
    let postal = format!("{zip}-{:04}", rng.below(10_000));
    let address = format!(
        "{town}{}-{}-{}",
        1 + rng.below(9),
        1 + rng.below(30),
        1 + rng.below(40)
    );
    let phone = format!(
        "0{}-{:03}-{:04}",
        80 + rng.below(10),
        rng.below(1000),
        rng.below(10_000)
    );
    (postal, address, phone)
}

fn birth(rng: &mut Rng, from: u32, to: u32) -> (u32, u32, u32) {
    (
        from + rng.below((to - from) as usize) as u32,
        1 + rng.below(12) as u32,
        1 + rng.below(28) as u32,
    )
}

fn given(rng: &mut Rng, sex: &str) -> (String, String) {
    if sex == "M" {
        pair(rng, MALE_FIRST, MALE_SECOND)
    } else {
        pair(rng, FEMALE_FIRST, FEMALE_SECOND)
    }
}

/// The persons: households of one to five.
fn persons(rng: &mut Rng, count: usize) -> Vec<Person> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let family = pair(rng, FAMILY_FIRST, FAMILY_SECOND);
        let (postal, address, phone) = home(rng);
        let head_birth = birth(rng, 1930, 2000);
        let head_sex = if rng.chance(50.0) { "M" } else { "F" };
        let member = |sex: &'static str, born: (u32, u32, u32), name: (String, String)| Person {
            family: family.clone(),
            given: name,
            birth: born,
            sex,
            phone: phone.clone(),
            postal: postal.clone(),
            address: address.clone(),
        };
        let head_name = given(rng, head_sex);
        out.push(member(head_sex, head_birth, head_name));
        if rng.chance(60.0) {
            let sex = if head_sex == "M" { "F" } else { "M" };
            let born = birth(rng, head_birth.0.saturating_sub(5), head_birth.0 + 5);
            let name = given(rng, sex);
            out.push(member(sex, born, name));
        }
        let children = rng.below(4);
        for _ in 0..children {
            let sex = if rng.chance(50.0) { "M" } else { "F" };
            let born = birth(rng, head_birth.0 + 22, (head_birth.0 + 40).min(2024));
            let name = given(rng, sex);
            out.push(member(sex, born, name.clone()));
            if rng.chance(2.0) {
                // Twins: the same everything but the given name.
                let mut twin_name = given(rng, sex);
                while twin_name == name {
                    twin_name = given(rng, sex);
                }
                out.push(member(sex, born, twin_name));
            }
        }
    }
    out.truncate(count);
    out
}

fn hiragana(kana: &str) -> String {
    kana.chars()
        .map(|c| {
            if ('\u{30a1}'..='\u{30f6}').contains(&c) {
                char::from_u32(c as u32 - 0x60).unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

fn half_width(kana: &str) -> String {
    const FULL: &str = "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワンガギグゲゴザジズゼゾダヂヅデドバビブベボパピプペポョャュッー";
    const HALF: [&str; 76] = [
        "ｱ", "ｲ", "ｳ", "ｴ", "ｵ", "ｶ", "ｷ", "ｸ", "ｹ", "ｺ", "ｻ", "ｼ", "ｽ", "ｾ", "ｿ", "ﾀ", "ﾁ", "ﾂ",
        "ﾃ", "ﾄ", "ﾅ", "ﾆ", "ﾇ", "ﾈ", "ﾉ", "ﾊ", "ﾋ", "ﾌ", "ﾍ", "ﾎ", "ﾏ", "ﾐ", "ﾑ", "ﾒ", "ﾓ", "ﾔ",
        "ﾕ", "ﾖ", "ﾗ", "ﾘ", "ﾙ", "ﾚ", "ﾛ", "ﾜ", "ﾝ", "ｶﾞ", "ｷﾞ", "ｸﾞ", "ｹﾞ", "ｺﾞ", "ｻﾞ", "ｼﾞ", "ｽﾞ", "ｾﾞ",
        "ｿﾞ", "ﾀﾞ", "ﾁﾞ", "ﾂﾞ", "ﾃﾞ", "ﾄﾞ", "ﾊﾞ", "ﾋﾞ", "ﾌﾞ", "ﾍﾞ", "ﾎﾞ", "ﾊﾟ", "ﾋﾟ", "ﾌﾟ", "ﾍﾟ", "ﾎﾟ", "ｮ", "ｬ",
        "ｭ", "ｯ", "ｰ", " ",
    ];
    kana.chars()
        .map(|c| match FULL.chars().position(|f| f == c) {
            Some(i) => HALF[i].to_string(),
            None => c.to_string(),
        })
        .collect()
}

/// A slip in the reading: one kana replaced by a neighbouring one.
fn kana_slip(rng: &mut Rng, kana: &str) -> String {
    const SWAP: &[(char, char)] = &[
        ('カ', 'ガ'),
        ('タ', 'ダ'),
        ('シ', 'ジ'),
        ('コ', 'ゴ'),
        ('ハ', 'バ'),
        ('ト', 'ド'),
        ('キ', 'ギ'),
        ('サ', 'ザ'),
        ('ロ', 'ル'),
        ('ミ', 'ニ'),
    ];
    let chars: Vec<char> = kana.chars().collect();
    let swappable: Vec<usize> = (0..chars.len())
        .filter(|&i| SWAP.iter().any(|(a, b)| *a == chars[i] || *b == chars[i]))
        .collect();
    if swappable.is_empty() {
        return kana.to_string();
    }
    let at = swappable[rng.below(swappable.len())];
    let mut out = chars.clone();
    out[at] = SWAP
        .iter()
        .find_map(|(a, b)| {
            if *a == chars[at] {
                Some(*b)
            } else if *b == chars[at] {
                Some(*a)
            } else {
                None
            }
        })
        .unwrap_or(chars[at]);
    out.into_iter().collect()
}

fn variant_kanji(rng: &mut Rng, name: &str) -> String {
    name.chars()
        .map(
            |c| match VARIANT_OF.iter().find(|(common, _)| *common == c) {
                Some((_, v)) if rng.chance(70.0) => *v,
                _ => c,
            },
        )
        .collect()
}

/// One registration of a person, as a facility's clerk would have typed it.
fn registration(rng: &mut Rng, p: &Person, original: bool) -> Demographic {
    let mut family = p.family.clone();
    let mut address = (p.postal.clone(), p.address.clone(), p.phone.clone());
    let mut born = p.birth;
    let mut kana_given = p.given.1.clone();
    if !original {
        if rng.chance(12.0) {
            // Moved: a new address and phone.
            address = home(rng);
        }
        if p.sex == "F" && p.birth.0 > 1950 && rng.chance(6.0) {
            // Married: a new family name (and often a new home).
            family = pair(rng, FAMILY_FIRST, FAMILY_SECOND);
            if rng.chance(60.0) {
                address = home(rng);
            }
        }
        if rng.chance(4.0) {
            kana_given = kana_slip(rng, &kana_given);
        }
        if rng.chance(3.0) {
            born = if rng.chance(50.0) && born.2 <= 12 {
                (born.0, born.2, born.1)
            } else {
                (
                    born.0,
                    born.1,
                    if born.2 % 10 < 8 {
                        born.2 + 1
                    } else {
                        born.2 - 1
                    },
                )
            };
        }
    }
    let mut kanji_family = family.0.clone();
    if rng.chance(15.0) {
        kanji_family = variant_kanji(rng, &kanji_family);
    }
    let space = if rng.chance(10.0) { "" } else { " " };
    let kanji = format!("{kanji_family}{space}{}", p.given.0);
    let mut kana = format!("{} {}", family.1, kana_given);
    if rng.chance(10.0) {
        // The long vowel written with the mark.
        for (long, mark) in [
            ("ロウ", "ロー"),
            ("トウ", "トー"),
            ("ョウ", "ョー"),
            ("ユウ", "ユー"),
        ] {
            kana = kana.replace(long, mark);
        }
    }
    let style = rng.below(100);
    let kana = if style < 10 {
        hiragana(&kana)
    } else if style < 15 {
        half_width(&kana)
    } else {
        kana
    };
    let (kanji, kana) = match rng.below(100) {
        0..=2 => (String::new(), kana),
        3..=6 => (kanji, String::new()),
        _ => (kanji, kana),
    };
    Demographic {
        kanji_name: kanji,
        kana_name: kana,
        birth_date: format!("{:04}-{:02}-{:02}", born.0, born.1, born.2),
        sex: if rng.chance(2.0) { "" } else { p.sex }.to_string(),
        phone: if rng.chance(30.0) {
            String::new()
        } else {
            address.2
        },
        postal_code: if rng.chance(20.0) {
            String::new()
        } else {
            address.0
        },
        address: if rng.chance(20.0) {
            String::new()
        } else {
            address.1
        },
    }
}

/// About `records` registrations (exactly that many) of persons, with duplicates: most persons
/// are registered once, some at two to four facilities. Records come shuffled.
pub fn population(records: usize, seed: u64) -> Vec<SyntheticRecord> {
    let mut rng = Rng(SplitMix64(seed));
    // About 1.4 registrations per person on average.
    let people = persons(&mut rng, records * 10 / 14 + 1);
    let mut out = Vec::with_capacity(records);
    'people: for (i, p) in people.iter().enumerate() {
        let copies = match rng.below(100) {
            0..=69 => 1,
            70..=89 => 2,
            90..=97 => 3,
            _ => 4,
        };
        for copy in 0..copies {
            if out.len() == records {
                break 'people;
            }
            out.push(SyntheticRecord {
                person: i as u32,
                demographic: registration(&mut rng, p, copy == 0),
            });
        }
    }
    // Fisher–Yates, so that duplicates are not neighbours.
    for i in (1..out.len()).rev() {
        let j = rng.below(i + 1);
        out.swap(i, j);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_population_is_deterministic_and_has_duplicates() {
        let a = population(2_000, 1);
        let b = population(2_000, 1);
        assert_eq!(a.len(), 2_000);
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| x.person == y.person && x.demographic == y.demographic)
        );
        let mut persons: Vec<u32> = a.iter().map(|r| r.person).collect();
        persons.sort_unstable();
        persons.dedup();
        assert!(
            persons.len() < 1_700 && persons.len() > 1_200,
            "{}",
            persons.len()
        );
        assert!(a.iter().any(|r| r.demographic.kana_name.contains('た')
            || r.demographic.kana_name.contains('ﾀ')
            || r.demographic.kanji_name.contains('髙')));
    }
}
