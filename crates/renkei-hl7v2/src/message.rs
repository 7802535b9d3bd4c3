//! A parsed message: decoded text plus the positions of its segments. Fields, repetitions,
//! components and sub-components are found on demand as slices of that text.

use std::borrow::Cow;

use crate::encoding::{self, Charset};
use crate::escape::unescape;
use crate::path::Path;

/// The delimiters declared in MSH-1 and MSH-2. All ASCII.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Separators {
    pub field: u8,
    pub component: u8,
    pub repetition: u8,
    pub escape: Option<u8>,
    pub subcomponent: u8,
}

impl Default for Separators {
    fn default() -> Self {
        Separators {
            field: b'|',
            component: b'^',
            repetition: b'~',
            escape: Some(b'\\'),
            subcomponent: b'&',
        }
    }
}

impl Separators {
    /// MSH-2 as written: component, repetition, escape, sub-component.
    pub fn encoding_characters(&self) -> String {
        let mut s = String::new();
        s.push(char::from(self.component));
        s.push(char::from(self.repetition));
        if let Some(e) = self.escape {
            s.push(char::from(e));
        }
        s.push(char::from(self.subcomponent));
        s
    }
}

/// Why a text is not an HL7 v2 message at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the message is empty")]
    Empty,
    #[error("the message does not start with an MSH segment")]
    NoMsh,
    #[error("MSH-1/MSH-2 do not declare usable delimiters ({0})")]
    BadSeparators(&'static str),
}

/// Deviations that leave the meaning clear: reported, not refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// Segments end with LF (or CRLF) instead of CR.
    LineFeedSegmentEnds,
    /// Bytes before MSH other than an MLLP start block or a byte-order mark were skipped.
    LeadingBytesSkipped(usize),
    /// Some bytes were not valid in the message's character set and became U+FFFD.
    UndecodableBytes,
    /// MSH-18 names a character set that is not known; the set was guessed from the bytes.
    UnknownCharset(String),
    /// A segment name is not three upper-case letters or digits (1-based segment number).
    OddSegmentName(usize),
    /// MSH-18 declares ISO-2022-JP but the bytes are UTF-8; they were read as UTF-8.
    CharsetMislabelled,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::LineFeedSegmentEnds => f.write_str("segments end with LF instead of CR"),
            Warning::LeadingBytesSkipped(n) => write!(f, "{n} bytes before MSH were skipped"),
            Warning::UndecodableBytes => {
                f.write_str("some bytes could not be decoded and were replaced")
            }
            Warning::UnknownCharset(c) => write!(
                f,
                "unknown character set in MSH-18 ({c}); guessed from the bytes"
            ),
            Warning::OddSegmentName(n) => write!(f, "segment {n} has an unusual name"),
            Warning::CharsetMislabelled => {
                f.write_str("MSH-18 declares ISO-2022-JP but the message is UTF-8")
            }
        }
    }
}

/// One HL7 v2 message.
#[derive(Clone, Debug)]
pub struct Message {
    text: String,
    separators: Separators,
    /// Byte ranges of the segments in `text`, without terminators.
    segments: Vec<(usize, usize)>,
    charset: Charset,
    warnings: Vec<Warning>,
}

/// Splits `s` on `sep` and returns item `n` (0-based). `sep` is ASCII, so every cut falls on a
/// character boundary.
fn nth(s: &str, sep: u8, n: usize) -> Option<&str> {
    let bytes = s.as_bytes();
    let mut start = 0usize;
    let mut index = 0usize;
    for at in memchr::memchr_iter(sep, bytes) {
        if index == n {
            return s.get(start..at);
        }
        index += 1;
        start = at + 1;
    }
    if index == n { s.get(start..) } else { None }
}

fn count(s: &str, sep: u8) -> usize {
    memchr::memchr_iter(sep, s.as_bytes()).count() + 1
}

impl Message {
    /// Decodes (by MSH-18) and parses raw bytes, as they come from a file or an MLLP frame.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Message, ParseError> {
        let decoded = encoding::decode(bytes);
        let mut warnings = Vec::new();
        if decoded.had_errors {
            warnings.push(Warning::UndecodableBytes);
        }
        if let Some(c) = decoded.unknown_msh18 {
            warnings.push(Warning::UnknownCharset(c));
        }
        if decoded.mislabelled {
            warnings.push(Warning::CharsetMislabelled);
        }
        let mut m = Self::parse_text(decoded.text.into_owned(), decoded.charset)?;
        warnings.append(&mut m.warnings);
        m.warnings = warnings;
        Ok(m)
    }

    /// Parses text that is already Unicode.
    pub fn parse(text: &str) -> Result<Message, ParseError> {
        Self::parse_text(text.to_string(), Charset::Utf8)
    }

    fn parse_text(text: String, charset: Charset) -> Result<Message, ParseError> {
        let mut warnings = Vec::new();
        let bytes = text.as_bytes();
        // Skip an MLLP start block, a BOM and blank lines; note anything else.
        let mut start = 0usize;
        let mut junk = 0usize;
        while start < bytes.len() && !bytes[start..].starts_with(b"MSH") {
            let rest = &text[start..];
            let Some(ch) = rest.chars().next() else { break };
            if !matches!(ch, '\u{0b}' | '\u{feff}' | '\r' | '\n' | ' ' | '\t') {
                junk += ch.len_utf8();
            }
            start += ch.len_utf8();
        }
        if text
            .trim_matches(|c: char| {
                c.is_whitespace() || c == '\u{0b}' || c == '\u{1c}' || c == '\u{feff}' || c == '\0'
            })
            .is_empty()
        {
            return Err(ParseError::Empty);
        }
        if start >= bytes.len() {
            return Err(ParseError::NoMsh);
        }
        if junk > 0 {
            warnings.push(Warning::LeadingBytesSkipped(junk));
        }
        let separators = Self::read_separators(&bytes[start..])?;
        // Segments: split on CR and LF; empty lines and the trailing FS / NUL are not segments.
        let mut segments = Vec::with_capacity(16);
        let mut seg_start = start;
        let mut saw_lf = false;
        let body = bytes;
        let push = |from: usize, to: usize, segments: &mut Vec<(usize, usize)>| {
            let mut to = to;
            while to > from && matches!(body[to - 1], 0x1c | 0x00) {
                to -= 1;
            }
            let mut from = from;
            while from < to && matches!(body[from], 0x1c | 0x00 | 0x0b) {
                from += 1;
            }
            if to > from {
                segments.push((from, to));
            }
        };
        for at in memchr::memchr2_iter(b'\r', b'\n', &bytes[start..]) {
            let at = at + start;
            if bytes[at] == b'\n' {
                saw_lf = true;
            }
            push(seg_start, at, &mut segments);
            seg_start = at + 1;
        }
        push(seg_start, bytes.len(), &mut segments);
        if saw_lf {
            warnings.push(Warning::LineFeedSegmentEnds);
        }
        for (i, (from, to)) in segments.iter().enumerate() {
            let name = bytes.get(*from..(*from + 3).min(*to)).unwrap_or_default();
            let terminated =
                bytes.get(from + 3).is_none_or(|b| *b == separators.field) || from + 3 >= *to;
            if name.len() != 3
                || !name
                    .iter()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                || !terminated
            {
                warnings.push(Warning::OddSegmentName(i + 1));
            }
        }
        Ok(Message {
            text,
            separators,
            segments,
            charset,
            warnings,
        })
    }

    fn read_separators(msh: &[u8]) -> Result<Separators, ParseError> {
        let field = *msh
            .get(3)
            .ok_or(ParseError::BadSeparators("MSH is too short"))?;
        let mut enc = Vec::with_capacity(5);
        for &b in msh.iter().skip(4) {
            if b == field || b == b'\r' || b == b'\n' {
                break;
            }
            enc.push(b);
            if enc.len() > 5 {
                return Err(ParseError::BadSeparators(
                    "MSH-2 has more than five characters",
                ));
            }
        }
        let ok = |b: u8| b.is_ascii_punctuation() && b != b'\r' && b != b'\n';
        if !ok(field) {
            return Err(ParseError::BadSeparators(
                "MSH-1 is not a punctuation character",
            ));
        }
        if enc.is_empty() {
            return Err(ParseError::BadSeparators("MSH-2 is empty"));
        }
        if !enc.iter().all(|b| ok(*b)) {
            return Err(ParseError::BadSeparators(
                "MSH-2 holds letters, digits or non-ASCII characters",
            ));
        }
        let d = Separators::default();
        let s = Separators {
            field,
            component: enc[0],
            repetition: enc.get(1).copied().unwrap_or(d.repetition),
            escape: if enc.len() >= 3 {
                enc.get(2).copied()
            } else {
                None
            },
            subcomponent: enc.get(3).copied().unwrap_or(d.subcomponent),
        };
        let mut all = vec![s.field, s.component, s.repetition, s.subcomponent];
        all.extend(s.escape);
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        if all.len() != n {
            return Err(ParseError::BadSeparators(
                "the same character is used for two delimiters",
            ));
        }
        Ok(s)
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn separators(&self) -> &Separators {
        &self.separators
    }

    pub fn charset(&self) -> Charset {
        self.charset
    }

    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    pub fn segments(&self) -> impl Iterator<Item = Segment<'_>> {
        self.segments.iter().filter_map(|(from, to)| {
            let text = self.text.get(*from..*to)?;
            Some(Segment {
                text,
                separators: &self.separators,
            })
        })
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The segments with this name, in order.
    pub fn segments_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Segment<'a>> + 'a {
        self.segments().filter(move |s| s.name() == name)
    }

    /// The first segment with this name.
    pub fn segment(&self, name: &str) -> Option<Segment<'_>> {
        self.segments().find(|s| s.name() == name)
    }

    /// The raw (still escaped) value at `path`, for example `PID-5.2` or `OBX(2)-5`.
    pub fn raw(&self, path: &str) -> Option<&str> {
        Path::parse(path).ok().and_then(|p| self.raw_at(&p))
    }

    /// The value at `path`, escapes resolved.
    pub fn get(&self, path: &str) -> Option<Cow<'_, str>> {
        self.raw(path).map(|r| unescape(r, &self.separators))
    }

    /// The raw value at a parsed path.
    pub fn raw_at<'a>(&'a self, p: &Path) -> Option<&'a str> {
        let segment = self
            .segments()
            .filter(|s| s.name() == p.segment)
            .nth(p.occurrence.checked_sub(1)?)?;
        let field = segment.field(p.field)?;
        let Some(component) = p.component else {
            return match p.repetition {
                Some(r) => field.repetition(r).map(|r| r.as_str()),
                None => Some(field.as_str()),
            };
        };
        let repetition = field.repetition(p.repetition.unwrap_or(1))?;
        let component = repetition.component(component)?;
        match p.subcomponent {
            Some(s) => component.subcomponent(s),
            None => Some(component.as_str()),
        }
    }

    /// The value at a parsed path, escapes resolved.
    pub fn get_at(&self, p: &Path) -> Option<Cow<'_, str>> {
        self.raw_at(p).map(|r| unescape(r, &self.separators))
    }

    /// MSH-9 as (message code, trigger event), e.g. ("ADT", "A08").
    pub fn message_type(&self) -> (&str, &str) {
        (
            self.raw("MSH-9.1").unwrap_or(""),
            self.raw("MSH-9.2").unwrap_or(""),
        )
    }

    /// MSH-10, the sender's message control ID.
    pub fn control_id(&self) -> &str {
        self.raw("MSH-10").unwrap_or("")
    }
}

/// One segment.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    text: &'a str,
    separators: &'a Separators,
}

impl<'a> Segment<'a> {
    pub fn name(&self) -> &'a str {
        nth(self.text, self.separators.field, 0).unwrap_or(self.text)
    }

    pub fn as_str(&self) -> &'a str {
        self.text
    }

    fn is_msh(&self) -> bool {
        self.text.starts_with("MSH") || self.text.starts_with("BHS") || self.text.starts_with("FHS")
    }

    /// Field `n` (1-based, as HL7 numbers them), or `None` when the segment has fewer fields.
    /// In MSH, field 1 is the field separator itself and field 2 the encoding characters.
    pub fn field(&self, n: usize) -> Option<Field<'a>> {
        if n == 0 {
            return None;
        }
        if self.is_msh() {
            return match n {
                1 => Some(Field {
                    raw: self.text.get(3..4)?,
                    separators: self.separators,
                    literal: true,
                }),
                2 => Some(Field {
                    raw: nth(self.text, self.separators.field, 1)?,
                    separators: self.separators,
                    literal: true,
                }),
                _ => Some(Field {
                    raw: nth(self.text, self.separators.field, n - 1)?,
                    separators: self.separators,
                    literal: false,
                }),
            };
        }
        Some(Field {
            raw: nth(self.text, self.separators.field, n)?,
            separators: self.separators,
            literal: false,
        })
    }

    /// How many fields the segment has (not counting its name).
    pub fn field_count(&self) -> usize {
        let n = count(self.text, self.separators.field) - 1;
        if self.is_msh() { n + 1 } else { n }
    }
}

/// One field: its repetitions, or (the usual case) its first repetition's components.
#[derive(Clone, Copy, Debug)]
pub struct Field<'a> {
    raw: &'a str,
    separators: &'a Separators,
    /// MSH-1 and MSH-2 are taken literally (they contain the delimiters).
    literal: bool,
}

impl<'a> Field<'a> {
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The value with escapes resolved.
    pub fn text(&self) -> Cow<'a, str> {
        if self.literal {
            Cow::Borrowed(self.raw)
        } else {
            unescape(self.raw, self.separators)
        }
    }

    pub fn repetitions(&self) -> impl Iterator<Item = Repetition<'a>> + 'a {
        let separators = self.separators;
        let literal = self.literal;
        let raw = self.raw;
        let n = if literal {
            1
        } else {
            count(raw, separators.repetition)
        };
        (0..n).filter_map(move |i| {
            let r = if literal {
                Some(raw)
            } else {
                nth(raw, separators.repetition, i)
            };
            r.map(|raw| Repetition { raw, separators })
        })
    }

    /// Repetition `n` (1-based).
    pub fn repetition(&self, n: usize) -> Option<Repetition<'a>> {
        let i = n.checked_sub(1)?;
        if self.literal {
            return (i == 0).then_some(Repetition {
                raw: self.raw,
                separators: self.separators,
            });
        }
        nth(self.raw, self.separators.repetition, i).map(|raw| Repetition {
            raw,
            separators: self.separators,
        })
    }

    /// Component `n` (1-based) of the first repetition.
    pub fn component(&self, n: usize) -> Option<Component<'a>> {
        self.repetition(1)?.component(n)
    }
}

/// One repetition of a field.
#[derive(Clone, Copy, Debug)]
pub struct Repetition<'a> {
    raw: &'a str,
    separators: &'a Separators,
}

impl<'a> Repetition<'a> {
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    pub fn text(&self) -> Cow<'a, str> {
        unescape(self.raw, self.separators)
    }

    /// Component `n` (1-based).
    pub fn component(&self, n: usize) -> Option<Component<'a>> {
        nth(self.raw, self.separators.component, n.checked_sub(1)?).map(|raw| Component {
            raw,
            separators: self.separators,
        })
    }

    pub fn components(&self) -> impl Iterator<Item = Component<'a>> + 'a {
        let (raw, separators) = (self.raw, self.separators);
        (0..count(raw, separators.component)).filter_map(move |i| {
            nth(raw, separators.component, i).map(|raw| Component { raw, separators })
        })
    }
}

/// One component; sub-components by index.
#[derive(Clone, Copy, Debug)]
pub struct Component<'a> {
    raw: &'a str,
    separators: &'a Separators,
}

impl<'a> Component<'a> {
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    pub fn text(&self) -> Cow<'a, str> {
        unescape(self.raw, self.separators)
    }

    /// Sub-component `n` (1-based), raw.
    pub fn subcomponent(&self, n: usize) -> Option<&'a str> {
        nth(self.raw, self.separators.subcomponent, n.checked_sub(1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADT: &str = "MSH|^~\\&|HIS123|SEND|GW|RCV|20111220224447.3399||ADT^A08^ADT_A01|20111220000001|P|2.5||||||~ISO IR87||ISO 2022-1994\r\
PID|0001||9999013||患者^太郎^^^^^L^I~カンジャ^タロウ^^^^^L^P||19480405|M|||^^^^422-8033^JPN^H^静岡県静岡市登呂１−３−５\r\
OBX|1|NM|9N001000000000001^身長^JC10||167.8|cm^cm^ISO+|||||F\r\
OBX|2|ST|X^メモ^L||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f|||||F\r";

    #[test]
    fn reads_fields_repetitions_components() {
        let m = Message::parse(ADT).unwrap();
        assert!(m.warnings().is_empty(), "{:?}", m.warnings());
        assert_eq!(m.message_type(), ("ADT", "A08"));
        assert_eq!(m.control_id(), "20111220000001");
        assert_eq!(m.raw("MSH-1"), Some("|"));
        assert_eq!(m.raw("MSH-2"), Some("^~\\&"));
        assert_eq!(m.raw("MSH-18"), Some("~ISO IR87"));
        assert_eq!(m.get("PID-5.1").as_deref(), Some("患者"));
        assert_eq!(m.get("PID-5(2).2").as_deref(), Some("タロウ"));
        assert_eq!(m.raw("PID-5(2)"), Some("カンジャ^タロウ^^^^^L^P"));
        assert_eq!(
            m.get("PID-11.8").as_deref(),
            Some("静岡県静岡市登呂１−３−５")
        );
        assert_eq!(m.get("OBX(2)-3.1").as_deref(), Some("X"));
        assert_eq!(m.get("OBX-5").as_deref(), Some("167.8"));
        assert_eq!(m.get("OBX(2)-5").as_deref(), Some("a|b^c&d~e\\f"));
        assert_eq!(m.raw("OBX(3)-5"), None);
        assert_eq!(m.raw("PID-99"), None);
        assert_eq!(m.raw("PID-5.99"), None);
        assert_eq!(m.segments_named("OBX").count(), 2);
        let pid = m.segment("PID").unwrap();
        assert_eq!(pid.field(5).unwrap().repetitions().count(), 2);
        assert_eq!(pid.field_count(), 11);
        assert_eq!(
            m.segment("MSH")
                .unwrap()
                .field(9)
                .unwrap()
                .component(3)
                .unwrap()
                .as_str(),
            "ADT_A01"
        );
    }

    #[test]
    fn tolerates_lf_and_framing() {
        let text = format!("\u{0b}{}\u{1c}\r", ADT.replace('\r', "\n"));
        let m = Message::parse(&text).unwrap();
        assert_eq!(m.segment_count(), 4);
        assert_eq!(m.warnings(), &[Warning::LineFeedSegmentEnds]);
        let crlf = Message::parse(&ADT.replace('\r', "\r\n")).unwrap();
        assert_eq!(crlf.segment_count(), 4);
    }

    #[test]
    fn refuses_what_is_not_a_message() {
        assert_eq!(Message::parse("").unwrap_err(), ParseError::Empty);
        assert_eq!(
            Message::parse("\u{0b}\u{1c}\r").unwrap_err(),
            ParseError::Empty
        );
        assert_eq!(Message::parse("PID|1").unwrap_err(), ParseError::NoMsh);
        assert!(matches!(
            Message::parse("MSH").unwrap_err(),
            ParseError::BadSeparators(_)
        ));
        assert!(matches!(
            Message::parse("MSH||").unwrap_err(),
            ParseError::BadSeparators(_)
        ));
        assert!(matches!(
            Message::parse("MSH|^^\\&|").unwrap_err(),
            ParseError::BadSeparators(_)
        ));
        assert!(matches!(
            Message::parse("MSH|abcd|").unwrap_err(),
            ParseError::BadSeparators(_)
        ));
    }

    #[test]
    fn other_delimiters_are_honoured() {
        let m = Message::parse("MSH#*@!%#A#B\rPID#1##x*y@z*w").unwrap();
        assert_eq!(m.separators().field, b'#');
        assert_eq!(m.get("PID-3.2").as_deref(), Some("y"));
        assert_eq!(m.get("PID-3(2).1").as_deref(), Some("z"));
    }
}
