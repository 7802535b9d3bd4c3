//! Choosing and applying the character set of a message (MSH-18), before any splitting.

use std::borrow::Cow;

/// The character sets seen in Japanese HL7 v2 traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    /// ISO IR6: plain ASCII.
    Ascii,
    /// ISO IR87 (JIS X 0208) with code extension: ISO-2022-JP. The SS-MIX2 standard.
    Iso2022Jp,
    /// Shift_JIS / CP932, common in older hospital systems and pharmacies.
    ShiftJis,
    /// UNICODE UTF-8.
    Utf8,
}

impl Charset {
    /// The HL7 table 0211 value this crate writes into MSH-18.
    pub fn msh18(self) -> &'static str {
        match self {
            Charset::Ascii => "",
            Charset::Iso2022Jp => "~ISO IR87",
            Charset::ShiftJis => "SHIFT_JIS",
            Charset::Utf8 => "UNICODE UTF-8",
        }
    }

    /// Encodes text in this character set. A character the set cannot hold (外字, e.g. 髙 in
    /// JIS X 0208) becomes `■`, as the SS-MIX2 guideline prescribes, never a numeric character
    /// reference (its `&` would split an HL7 field).
    pub fn encode(self, text: &str) -> Vec<u8> {
        let encoding = match self {
            Charset::Ascii | Charset::Utf8 => return text.as_bytes().to_vec(),
            Charset::Iso2022Jp => encoding_rs::ISO_2022_JP,
            Charset::ShiftJis => encoding_rs::SHIFT_JIS,
        };
        // First pass: find the characters the set cannot hold. Replacing them in the text (rather
        // than between encoder calls) keeps the escape sequences well-formed.
        let mut unmappable = Vec::new();
        let mut encoder = encoding.new_encoder();
        let mut buffer = [0u8; 4096];
        let mut rest = text;
        let mut out = Vec::with_capacity(text.len() + 16);
        loop {
            let (result, read, written) =
                encoder.encode_from_utf8_without_replacement(rest, &mut buffer, true);
            out.extend_from_slice(buffer.get(..written).unwrap_or_default());
            rest = rest.get(read..).unwrap_or("");
            match result {
                encoding_rs::EncoderResult::InputEmpty => break,
                encoding_rs::EncoderResult::OutputFull => {}
                encoding_rs::EncoderResult::Unmappable(c) => unmappable.push(c),
            }
        }
        if unmappable.is_empty() {
            return out;
        }
        let cleaned: String = text
            .chars()
            .map(|c| if unmappable.contains(&c) { '■' } else { c })
            .collect();
        encoding.encode(&cleaned).0.into_owned()
    }
}

/// Decoded text and what was learnt on the way.
#[derive(Debug)]
pub struct Decoded<'a> {
    pub text: Cow<'a, str>,
    pub charset: Charset,
    /// Bytes that did not decode were replaced by U+FFFD.
    pub had_errors: bool,
    /// MSH-18 named a character set this crate does not know; the charset was guessed.
    pub unknown_msh18: Option<String>,
    /// MSH-18 said ISO-2022-JP but the bytes are UTF-8 (read as UTF-8).
    pub mislabelled: bool,
}

/// Maps one MSH-18 repetition (HL7 table 0211 and common local spellings) to a charset.
fn from_table_0211(value: &str) -> Option<Charset> {
    // Spelling varies in the field (`ISO IR87`, `ISOIR87`, `ISO_IR 87`): compare without spaces,
    // underscores and hyphens.
    let v: String = value
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-'))
        .collect::<String>()
        .to_ascii_uppercase();
    match v.as_str() {
        "" | "ASCII" | "ISOIR6" => Some(Charset::Ascii),
        "ISOIR87" | "ISOIR159" | "ISO20221994" | "ISO2022JP" | "JIS" => Some(Charset::Iso2022Jp),
        "SHIFTJIS" | "SJIS" | "CP932" | "MS932" | "WINDOWS31J" | "ISOIR13" => {
            Some(Charset::ShiftJis)
        }
        "UNICODEUTF8" | "UTF8" | "UNICODE" => Some(Charset::Utf8),
        _ => None,
    }
}

/// Reads MSH-18 straight from the bytes. Fields are counted only while in single-byte mode of
/// ISO-2022 (after `ESC ( B` / `ESC ( J`), so kanji bytes equal to the separator do not count.
fn msh18(bytes: &[u8]) -> Option<&[u8]> {
    let start = memchr::memmem::find(bytes.get(..bytes.len().min(64))?, b"MSH")?;
    let sep = *bytes.get(start + 3)?;
    let mut field = 2usize;
    let mut field_start = start + 4;
    let mut double_byte = false;
    let mut i = start + 4;
    while let Some(&b) = bytes.get(i) {
        match b {
            0x1B => {
                match (bytes.get(i + 1), bytes.get(i + 2)) {
                    (Some(b'$'), Some(b'B' | b'@')) => double_byte = true,
                    (Some(b'('), Some(_)) => double_byte = false,
                    _ => {}
                }
                i += 3;
                continue;
            }
            b'\r' | b'\n' => break,
            _ if b == sep && !double_byte => {
                field += 1;
                if field == 18 {
                    field_start = i + 1;
                } else if field == 19 {
                    return bytes.get(field_start..i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    (field == 18).then(|| bytes.get(field_start..i)).flatten()
}

/// Decodes a message to Unicode: by MSH-18 when it names a known set (the last non-ASCII
/// repetition wins: `~ISO IR87` means ASCII plus JIS X 0208), otherwise by what the bytes look
/// like (escape sequences → ISO-2022-JP, valid UTF-8 → UTF-8, else Shift_JIS).
pub fn decode(bytes: &[u8]) -> Decoded<'_> {
    let mut unknown = None;
    let declared = msh18(bytes).and_then(|raw| {
        let text = String::from_utf8_lossy(raw);
        let mut chosen = None;
        for rep in text.split('~') {
            match from_table_0211(rep) {
                Some(Charset::Ascii) => chosen = chosen.or(Some(Charset::Ascii)),
                Some(c) => chosen = Some(c),
                None => unknown = Some(rep.trim().chars().take(40).collect()),
            }
        }
        chosen
    });
    let looks_iso2022 = memchr::memchr(0x1B, bytes).is_some();
    // A message labelled ISO IR87 that carries no escape sequence but non-ASCII UTF-8 was written
    // as UTF-8 (common in gateways that re-encode but copy MSH-18): read it as UTF-8.
    let mislabelled = declared == Some(Charset::Iso2022Jp)
        && !looks_iso2022
        && !bytes.is_ascii()
        && std::str::from_utf8(bytes).is_ok();
    let charset = match declared {
        _ if mislabelled => Charset::Utf8,
        Some(Charset::Ascii) | None if looks_iso2022 => Charset::Iso2022Jp,
        Some(Charset::Ascii) | None => match std::str::from_utf8(bytes) {
            Ok(_) => Charset::Utf8,
            Err(_) => Charset::ShiftJis,
        },
        Some(c) => c,
    };
    let (text, had_errors) = match charset {
        Charset::Ascii | Charset::Utf8 => match std::str::from_utf8(bytes) {
            Ok(t) => (Cow::Borrowed(t), false),
            Err(_) => (String::from_utf8_lossy(bytes), true),
        },
        Charset::Iso2022Jp => {
            // Pure ASCII is valid ISO-2022-JP: skip the decoder when there is no escape.
            if !looks_iso2022 && bytes.is_ascii() {
                (
                    Cow::Borrowed(std::str::from_utf8(bytes).unwrap_or_default()),
                    false,
                )
            } else {
                match fast_iso2022jp(bytes) {
                    Some(t) => (Cow::Owned(t), false),
                    None => {
                        let (t, _, e) = encoding_rs::ISO_2022_JP.decode(bytes);
                        (t, e)
                    }
                }
            }
        }
        Charset::ShiftJis => {
            let (t, _, e) = encoding_rs::SHIFT_JIS.decode(bytes);
            (t, e)
        }
    };
    Decoded {
        text,
        charset,
        had_errors,
        unknown_msh18: unknown,
        mislabelled,
    }
}

/// For the fuzz target: the fast path's result beside encoding_rs's (`None` when the fast path
/// declined the input).
pub fn decode_iso2022jp_checked(bytes: &[u8]) -> (Option<String>, String, bool) {
    let (expected, _, errors) = encoding_rs::ISO_2022_JP.decode(bytes);
    (fast_iso2022jp(bytes), expected.into_owned(), errors)
}

/// JIS X 0208 (as encoding_rs maps it, CP932 extensions included) as a 94×94 table, built once
/// by asking encoding_rs for every cell, so the two decoders cannot disagree.
fn jis0208() -> &'static [char] {
    static TABLE: std::sync::OnceLock<Vec<char>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = vec!['\0'; 94 * 94];
        for (i, slot) in table.iter_mut().enumerate() {
            let pair = [
                0x1b,
                b'$',
                b'B',
                0x21 + (i / 94) as u8,
                0x21 + (i % 94) as u8,
                0x1b,
                b'(',
                b'B',
            ];
            let (text, _, errors) = encoding_rs::ISO_2022_JP.decode(&pair);
            let mut chars = text.chars();
            if let (false, Some(c), None) = (errors, chars.next(), chars.next()) {
                *slot = c;
            }
        }
        table
    })
}

/// ISO-2022-JP as HL7 messages use it (ASCII with `ESC $ B` / `ESC $ @` kanji runs, back with
/// `ESC ( B`), decoded in one pass: ASCII runs are copied, kanji pairs looked up. Measured on the
/// parser benchmark, encoding_rs decodes this corpus at about 670 MB/s, which held the whole
/// parse to about 340 MB/s; this path is faster. Anything else — half-width katakana, JIS-Roman,
/// JIS X 0212, an unmapped cell, an escape right after an escape — returns `None`, and the caller
/// decodes the message with encoding_rs, errors and all.
fn fast_iso2022jp(bytes: &[u8]) -> Option<String> {
    let table = jis0208();
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 2);
    let mut i = 0usize;
    let mut last_escape_end = usize::MAX;
    while i < bytes.len() {
        // ASCII mode: copy up to the next escape.
        let rest = bytes.get(i..)?;
        let run = memchr::memchr(0x1b, rest).unwrap_or(rest.len());
        let ascii = rest.get(..run)?;
        // SO and SI (0x0E, 0x0F) are errors to the WHATWG decoder even in ASCII mode.
        if !ascii.is_ascii() || memchr::memchr2(0x0e, 0x0f, ascii).is_some() {
            return None;
        }
        out.push_str(std::str::from_utf8(ascii).ok()?);
        i += run;
        if i >= bytes.len() {
            break;
        }
        // An escape: into kanji, or a redundant return to ASCII.
        if last_escape_end == i {
            return None;
        }
        match bytes.get(i..i + 3)? {
            [0x1b, b'(', b'B'] => {
                i += 3;
                last_escape_end = i;
                continue;
            }
            [0x1b, b'$', b'B' | b'@'] => i += 3,
            _ => return None,
        }
        // Kanji mode: pairs until the next escape.
        let start = i;
        while let Some(&b1) = bytes.get(i) {
            if b1 == 0x1b {
                break;
            }
            let b2 = *bytes.get(i + 1)?;
            if !(0x21..=0x7e).contains(&b1) || !(0x21..=0x7e).contains(&b2) {
                return None;
            }
            let c = *table.get(usize::from(b1 - 0x21) * 94 + usize::from(b2 - 0x21))?;
            if c == '\0' {
                return None;
            }
            out.push(c);
            i += 2;
        }
        if i == start {
            return None; // an escape straight after an escape
        }
        if i < bytes.len() {
            // The run ended at an escape: it must return to ASCII.
            if bytes.get(i..i + 3)? != b"\x1b(B" {
                return None;
            }
            i += 3;
            last_escape_end = i;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso2022_kanji_bytes_do_not_count_as_separators() {
        // 患者万: 万 is 0x4B 0x7C in JIS X 0208, and 0x7C is `|`.
        let mut bytes = b"MSH|^~\\&|A|".to_vec();
        bytes.extend_from_slice(b"\x1b$B\x34\x35\x3c\x54\x4b\x7c\x1b(B");
        bytes.extend_from_slice(b"||||||||||||||~ISO IR87||ISO 2022-1994\r");
        assert_eq!(msh18(&bytes), Some(&b"~ISO IR87"[..]));
        let d = decode(&bytes);
        assert_eq!(d.charset, Charset::Iso2022Jp);
        assert!(!d.had_errors);
        assert!(d.text.contains("患者万"));
    }

    #[test]
    fn guesses_without_msh18() {
        assert_eq!(decode("MSH|^~\\&|患者\r".as_bytes()).charset, Charset::Utf8);
        let sjis = encoding_rs::SHIFT_JIS
            .encode("MSH|^~\\&|髙橋\r")
            .0
            .into_owned();
        let d = decode(&sjis);
        assert_eq!(d.charset, Charset::ShiftJis);
        assert!(d.text.contains("髙橋"));
        let d = decode(b"MSH|^~\\&|A|||||||||||||||KLINGON\r");
        assert_eq!(d.unknown_msh18.as_deref(), Some("KLINGON"));
    }

    #[test]
    fn utf8_labelled_iso2022_is_read_as_utf8() {
        let d = decode("MSH|^~\\&|患者|||||||||||||||~ISO IR87\r".as_bytes());
        assert_eq!(d.charset, Charset::Utf8);
        assert!(d.mislabelled);
        assert!(d.text.contains("患者"));
    }

    #[test]
    fn unmappable_characters_become_a_black_square() {
        // 𠮷 (U+20BB7) is in no JIS table; 髙 and ① are (CP932 extensions, as encoding_rs maps).
        let bytes = Charset::Iso2022Jp.encode("𠮷野^髙橋|①😀");
        let text = encoding_rs::ISO_2022_JP.decode(&bytes).0.into_owned();
        assert_eq!(text, "■野^髙橋|①■");
        assert!(!bytes.contains(&b'&'));
        let long: String = "あ".repeat(5000) + "𠮷";
        assert!(
            encoding_rs::ISO_2022_JP
                .decode(&Charset::Iso2022Jp.encode(&long))
                .0
                .ends_with("あ■")
        );
    }

    #[test]
    fn the_fast_iso2022_path_agrees_with_encoding_rs() {
        let samples: Vec<Vec<u8>> = vec![
            Charset::Iso2022Jp.encode("MSH|^~\\&|患者^太郎|髙橋①|abc\r万|"),
            b"\x1b(Jabc\\~\x1b(B|x".to_vec(),
            b"\x1b$Bxx".to_vec(),
            b"\x1b$B\x1b(B\x1b(B\xff".to_vec(),
            b"\x1b".to_vec(),
            b"\x1b(Iabc".to_vec(),
            b"a\x1b$@4\x35\x1b(Bb".to_vec(),
            b"a\x1b$B4\x1b(B".to_vec(),
            b"\x1b$B4\x354".to_vec(),
            b"\x1b$B\x7f\x21\x1b(B".to_vec(),
            b"\x1b(B\x1b(Ba".to_vec(),
            // Found by fuzzing: SI bytes are errors to encoding_rs.
            b"\x0f\x0f\x0f\x0f".to_vec(),
            b"ab\x0ecd".to_vec(),
        ];
        for bytes in samples {
            let expected = encoding_rs::ISO_2022_JP.decode(&bytes);
            if let Some(fast) = fast_iso2022jp(&bytes) {
                assert!(
                    !expected.2,
                    "fast path took bytes encoding_rs calls malformed: {bytes:?}"
                );
                assert_eq!(fast, expected.0, "{bytes:?}");
            }
        }
        // Every cell of the table round-trips through encoding_rs.
        assert!(jis0208().iter().filter(|c| **c != '\0').count() > 6800);
    }

    #[test]
    fn never_panics_on_odd_bytes() {
        for bytes in [
            &b""[..],
            b"MSH",
            b"MSH|",
            b"\x1b",
            b"MSH|\x1b$",
            b"\xff\xfe\xfd",
            b"MSH\x1b(B|",
        ] {
            let _ = decode(bytes);
        }
    }
}
