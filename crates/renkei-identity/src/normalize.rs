//! Japanese name normalisation for matching (never for display): the same person's name as
//! typed at different facilities should compare equal.
//!
//! Steps, in order: NFKC (full-width Latin and digits to half-width, half-width katakana to
//! full-width, compatibility characters to their usual forms); spaces removed; hiragana to
//! katakana; small kana to full size; long vowels (ー, or a vowel kana lengthening the syllable
//! before it: タロウ/タロオ/タロー, ケイ/ケー) to the long mark; rare kana to
//! their common equivalents (ヴ→ブ, ヂ→ジ, ヅ→ズ, ヲ→オ, ヰ→イ, ヱ→エ); old and variant kanji to
//! their common forms (髙→高, 﨑→崎, 齋/齊→斉, 邊/邉→辺, …).

use unicode_normalization::UnicodeNormalization;

/// Old and variant kanji seen in names, and the form they are matched as.
const VARIANTS: &[(char, char)] = &[
    ('髙', '高'),
    ('﨑', '崎'),
    ('嵜', '崎'),
    ('碕', '崎'),
    ('齋', '斉'),
    ('齊', '斉'),
    ('斎', '斉'),
    ('邊', '辺'),
    ('邉', '辺'),
    ('澤', '沢'),
    ('濱', '浜'),
    ('濵', '浜'),
    ('櫻', '桜'),
    ('國', '国'),
    ('廣', '広'),
    ('嶋', '島'),
    ('嶌', '島'),
    ('冨', '富'),
    ('德', '徳'),
    ('惠', '恵'),
    ('眞', '真'),
    ('淵', '渕'),
    ('槇', '槙'),
    ('實', '実'),
    ('龍', '竜'),
    ('藏', '蔵'),
    ('𠮷', '吉'),
    ('栁', '柳'),
    ('瀨', '瀬'),
    ('舘', '館'),
    ('萬', '万'),
    ('與', '与'),
    ('榮', '栄'),
    ('壽', '寿'),
    ('戶', '戸'),
    ('髮', '髪'),
    ('兒', '児'),
    ('繪', '絵'),
    ('曾', '曽'),
    ('條', '条'),
    ('傳', '伝'),
    ('團', '団'),
    ('靜', '静'),
    ('穗', '穂'),
    ('會', '会'),
    ('驛', '駅'),
];

fn variant(c: char) -> char {
    VARIANTS
        .iter()
        .find(|(from, _)| *from == c)
        .map(|(_, to)| *to)
        .unwrap_or(c)
}

fn small_to_large(c: char) -> char {
    match c {
        'ァ' => 'ア',
        'ィ' => 'イ',
        'ゥ' => 'ウ',
        'ェ' => 'エ',
        'ォ' => 'オ',
        'ッ' => 'ツ',
        'ャ' => 'ヤ',
        'ュ' => 'ユ',
        'ョ' => 'ヨ',
        'ヮ' => 'ワ',
        'ヵ' => 'カ',
        'ヶ' => 'ケ',
        _ => c,
    }
}

fn rare_kana(c: char) -> char {
    match c {
        'ヴ' => 'ブ',
        'ヂ' => 'ジ',
        'ヅ' => 'ズ',
        'ヲ' => 'オ',
        'ヰ' => 'イ',
        'ヱ' => 'エ',
        _ => c,
    }
}

/// The vowel a katakana syllable ends in (for the long-vowel mark).
fn vowel_of(c: char) -> Option<char> {
    const ROWS: [(&str, char); 5] = [
        ("アカガサザタダナハバパマヤラワャァ", 'ア'),
        ("イキギシジチヂニヒビピミリィ", 'イ'),
        ("ウクグスズツヅヌフブプムユルゥュッヴ", 'ウ'),
        ("エケゲセゼテデネヘベペメレェ", 'エ'),
        ("オコゴソゾトドノホボポモヨロヲォョ", 'オ'),
    ];
    ROWS.iter()
        .find(|(row, _)| row.contains(c))
        .map(|(_, v)| *v)
}

fn is_long_mark(c: char) -> bool {
    matches!(c, 'ー' | '－' | '‐' | '-' | '―' | '〜' | '～')
}

/// A name (kanji or kana) in the form names are compared in.
pub fn normalize_name(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous: Option<char> = None;
    for c in text.nfkc() {
        if c.is_whitespace() || c == '・' || c == '･' {
            continue;
        }
        // Hiragana to katakana (same layout, offset 0x60).
        let c = if ('\u{3041}'..='\u{3096}').contains(&c) {
            char::from_u32(c as u32 + 0x60).unwrap_or(c)
        } else {
            c
        };
        let c = if is_long_mark(c) {
            match previous.and_then(vowel_of) {
                Some(_) => 'ー',
                None if previous == Some('ー') => 'ー',
                None => continue,
            }
        } else {
            let c = rare_kana(small_to_large(variant(c)));
            // A vowel that lengthens the syllable before it is written three ways (タロウ,
            // タロオ, タロー; ケイ, ケエ, ケー): all become the long mark.
            let lengthens = match (previous.and_then(vowel_of), c) {
                (Some(v), c) if v == c && matches!(c, 'ア' | 'イ' | 'ウ' | 'エ' | 'オ') => {
                    true
                }
                (Some('オ'), 'ウ') | (Some('エ'), 'イ') => true,
                _ => false,
            };
            if lengthens { 'ー' } else { c }
        };
        let c = c.to_lowercase().next().unwrap_or(c);
        out.push(c);
        previous = Some(c);
    }
    out
}

/// Kana only (for the phonetic name): like [`normalize_name`], keeping katakana and dropping the
/// rest (a kana field sometimes holds stray kanji or Latin).
pub fn normalize_kana(text: &str) -> String {
    normalize_name(text)
        .chars()
        .filter(|c| ('\u{30a1}'..='\u{30fa}').contains(c) || *c == 'ー')
        .collect()
}

/// An address in the form addresses are compared in: NFKC, no spaces, variant kanji to their
/// common forms, and 丁目/番地/番/号 and dash-like marks after a number written as `-`
/// (「1丁目2番3号」「１－２－３」 and 「1-2-3」 compare equal).
pub fn normalize_address(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.nfkc().filter(|c| !c.is_whitespace()).peekable();
    let after_digit = |out: &String| out.chars().last().is_some_and(|c| c.is_ascii_digit());
    while let Some(c) = chars.next() {
        let c = variant(c);
        if after_digit(&out) {
            if matches!(c, '-' | 'ー' | '−' | '‐' | '―' | '－' | 'の' | 'ノ') {
                out.push('-');
                continue;
            }
            let rest: String = std::iter::once(c).chain(chars.clone().take(1)).collect();
            if rest == "丁目" || rest == "番地" {
                chars.next();
                out.push('-');
                continue;
            }
            if matches!(c, '番' | '号') {
                out.push('-');
                continue;
            }
        }
        out.push(c);
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variant_table_maps_each_character_once() {
        for (i, (from, to)) in VARIANTS.iter().enumerate() {
            assert_ne!(from, to);
            assert!(
                !VARIANTS[i + 1..].iter().any(|(f, _)| f == from),
                "{from} listed twice"
            );
        }
    }

    #[test]
    fn the_same_name_typed_differently_compares_equal() {
        let same = [
            ("髙橋 太郎", "高橋太郎"),
            ("山﨑　花子", "山崎花子"),
            ("齋藤", "斉藤"),
            ("齊藤", "斎藤"),
            ("渡邊", "渡辺"),
            ("渡邉", "渡辺"),
            ("ﾔﾏﾀﾞ ﾀﾛｳ", "ヤマダ タロウ"),
            ("やまだ たろう", "ヤマダタロウ"),
            ("オータ", "オオタ"),
            ("ユーコ", "ユウコ"),
            ("キョウコ", "キヨウコ"),
            ("ヴィオラ", "ブィオラ"),
            ("ミチヅキ", "ミチズキ"),
            ("ＴＡＮＡＫＡ", "tanaka"),
            ("サイトウ・ケン", "サイトウケン"),
        ];
        for (a, b) in same {
            assert_eq!(normalize_name(a), normalize_name(b), "{a} vs {b}");
        }
        assert_ne!(normalize_name("山田"), normalize_name("山本"));
        assert_eq!(normalize_kana("ヤマダ 太郎 タロウ"), "ヤマダタロー");
        assert_eq!(normalize_name(""), "");
        assert_eq!(normalize_name("ーー"), "");
        assert_eq!(normalize_name("タロウ"), normalize_name("タロー"));
        assert_eq!(normalize_name("ケイコ"), normalize_name("ケーコ"));
        assert_ne!(normalize_name("カオリ"), normalize_name("カーリ"));
    }

    #[test]
    fn addresses_written_differently_compare_equal() {
        let a = normalize_address("広島県広島市中区基町1丁目2番3号");
        assert_eq!(a, "広島県広島市中区基町1-2-3");
        assert_eq!(normalize_address("広島県 広島市中区基町１－２－３"), a);
        assert_eq!(normalize_address("広島県広島市中区基町1-2-3"), a);
        assert_eq!(normalize_address("広島県広島市中区基町1の2の3"), a);
        assert_eq!(
            normalize_address("東京都新宿区西新宿2丁目8番地"),
            "東京都新宿区西新宿2-8"
        );
        assert_eq!(normalize_address(""), "");
    }
}
