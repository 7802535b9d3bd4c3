//! HL7 escape sequences: `\F\ \S\ \T\ \R\ \E\`, `\Xhh…\` (hex bytes), `\Cxxyy\` and `\Mxxyyzz\`
//! (character-set switches, meaningless once the text is Unicode), formatting (`\.br\`, `\H\`, `\N\`).

use std::borrow::Cow;

use crate::message::Separators;

/// Resolves escapes. Text without the escape character is returned as it is, without copying.
/// An escape that is not closed, or unknown, is kept literally (nothing is lost).
pub fn unescape<'a>(raw: &'a str, s: &Separators) -> Cow<'a, str> {
    let Some(esc) = s.escape else {
        return Cow::Borrowed(raw);
    };
    if memchr::memchr(esc, raw.as_bytes()).is_none() {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = memchr::memchr(esc, rest.as_bytes()) {
        out.push_str(rest.get(..at).unwrap_or_default());
        let after = rest.get(at + 1..).unwrap_or_default();
        let Some(close) = memchr::memchr(esc, after.as_bytes()) else {
            // Unclosed: keep the rest as it is.
            out.push_str(rest.get(at..).unwrap_or_default());
            return Cow::Owned(out);
        };
        let seq = after.get(..close).unwrap_or_default();
        match seq {
            "F" => out.push(char::from(s.field)),
            "S" => out.push(char::from(s.component)),
            "T" => out.push(char::from(s.subcomponent)),
            "R" => out.push(char::from(s.repetition)),
            "E" => out.push(char::from(esc)),
            ".br" => out.push('\n'),
            "H" | "N" => {}
            _ if seq.starts_with(".sp") => out.push('\n'),
            _ if seq.starts_with(".in")
                || seq.starts_with(".ti")
                || seq == ".fi"
                || seq == ".nf"
                || seq == ".ce" => {}
            _ if seq.starts_with('X') && seq.len() % 2 == 1 && seq.len() > 1 => {
                match hex(&seq[1..]) {
                    Some(bytes) => out.push_str(&String::from_utf8_lossy(&bytes)),
                    None => keep(&mut out, esc, seq),
                }
            }
            // Character-set switches: the text is already Unicode.
            _ if (seq.starts_with('C') && seq.len() == 5
                || seq.starts_with('M') && seq.len() == 7)
                && seq[1..].bytes().all(|b| b.is_ascii_hexdigit()) => {}
            _ => keep(&mut out, esc, seq),
        }
        rest = after.get(close + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn keep(out: &mut String, esc: u8, seq: &str) {
    out.push(char::from(esc));
    out.push_str(seq);
    out.push(char::from(esc));
}

fn hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    (0..b.len() / 2)
        .map(|i| {
            let pair = s.get(i * 2..i * 2 + 2)?;
            u8::from_str_radix(pair, 16).ok()
        })
        .collect()
}

/// Escapes delimiters (and CR/LF as `\.br\`) so `text` can be written as one component.
pub fn escape(text: &str, s: &Separators) -> String {
    let esc = s.escape.unwrap_or(b'\\');
    let mut out = String::with_capacity(text.len() + 8);
    for ch in text.chars() {
        let code = if ch.is_ascii() { Some(ch as u8) } else { None };
        match code {
            Some(b) if b == s.field => out.push_str(&format!("{0}F{0}", char::from(esc))),
            Some(b) if b == s.component => out.push_str(&format!("{0}S{0}", char::from(esc))),
            Some(b) if b == s.subcomponent => out.push_str(&format!("{0}T{0}", char::from(esc))),
            Some(b) if b == s.repetition => out.push_str(&format!("{0}R{0}", char::from(esc))),
            Some(b) if b == esc => out.push_str(&format!("{0}E{0}", char::from(esc))),
            Some(b'\n') => out.push_str(&format!("{0}.br{0}", char::from(esc))),
            Some(b'\r') => {}
            _ => out.push(ch),
        }
    }
    out
}

/// Rewrites a raw value from one set of delimiters to another, keeping its structure
/// (repetitions, components, sub-components) and its text (escapes resolved, then re-escaped).
pub fn transcode(raw: &str, from: &Separators, to: &Separators) -> String {
    if from == to {
        return raw.to_string();
    }
    let mut out = String::with_capacity(raw.len());
    let mut piece = String::new();
    let mut i = 0usize;
    let bytes = raw.as_bytes();
    let flush = |piece: &mut String, out: &mut String| {
        out.push_str(&escape(&unescape(piece, from), to));
        piece.clear();
    };
    while let Some(ch) = raw.get(i..).and_then(|r| r.chars().next()) {
        let b = bytes.get(i).copied().unwrap_or(0);
        let structural = if !ch.is_ascii() {
            None
        } else if b == from.field {
            Some(to.field)
        } else if b == from.repetition {
            Some(to.repetition)
        } else if b == from.component {
            Some(to.component)
        } else if b == from.subcomponent {
            Some(to.subcomponent)
        } else {
            None
        };
        match structural {
            Some(sep) => {
                flush(&mut piece, &mut out);
                out.push(char::from(sep));
            }
            None => piece.push(ch),
        }
        i += ch.len_utf8();
    }
    flush(&mut piece, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_every_escape() {
        let s = Separators::default();
        assert_eq!(unescape(r"a\F\b\S\c\T\d\R\e\E\f", &s), "a|b^c&d~e\\f");
        assert_eq!(unescape(r"\X41E3818B\", &s), "Aか");
        assert_eq!(unescape(r"line1\.br\line2", &s), "line1\nline2");
        assert_eq!(unescape(r"\H\bold\N\", &s), "bold");
        assert_eq!(unescape(r"\C2842\abc\M242842\", &s), "abc");
        assert_eq!(
            unescape(r"keep \Z99\ and \unclosed", &s),
            r"keep \Z99\ and \unclosed"
        );
        assert!(matches!(unescape("plain", &s), Cow::Borrowed(_)));
    }

    #[test]
    fn transcodes_between_delimiter_sets() {
        let from = Separators {
            field: b'#',
            component: b'*',
            repetition: b'@',
            escape: Some(b'!'),
            subcomponent: b'%',
        };
        let to = Separators::default();
        assert_eq!(transcode("a*b@c%d|e!F!", &from, &to), "a^b~c&d\\F\\e#");
    }

    #[test]
    fn escape_round_trips() {
        let s = Separators::default();
        for text in ["a|b^c&d~e\\f", "改行\nあり", "普通"] {
            assert_eq!(unescape(&escape(text, &s), &s), text);
        }
    }
}
