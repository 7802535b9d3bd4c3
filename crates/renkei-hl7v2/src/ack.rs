//! Acknowledgements (ACK) for received messages.

use crate::escape::{escape, transcode};
use crate::message::{Message, Separators};

/// MSA-1 acknowledgement codes (original mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckCode {
    /// Application accept: stored.
    Accept,
    /// Application error: the message was understood but could not be processed (retry may help).
    Error,
    /// Application reject: the message is unacceptable (wrong type, version, malformed).
    Reject,
}

impl AckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::Accept => "AA",
            AckCode::Error => "AE",
            AckCode::Reject => "AR",
        }
    }
}

/// The ERR segment: what went wrong, for the sender's operators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckError {
    /// HL7 table 0357 code: 100 segment sequence, 101 required field missing, 102 data type,
    /// 103 table value, 200 unsupported message type, 201 unsupported event, 203 unsupported
    /// version, 207 application internal error.
    pub code: &'static str,
    /// Where (ERR-2), for example `PID^1^3`.
    pub location: Option<String>,
    /// A message for people (ERR-8).
    pub text: String,
}

impl AckError {
    pub fn code_text(&self) -> &'static str {
        match self.code {
            "100" => "Segment sequence error",
            "101" => "Required field missing",
            "102" => "Data type error",
            "103" => "Table value not found",
            "200" => "Unsupported message type",
            "201" => "Unsupported event code",
            "203" => "Unsupported version id",
            "206" => "Application record locked",
            _ => "Application internal error",
        }
    }
}

/// Builds the ACK for `original` (or for bytes that could not be parsed, with `None`), with
/// segments ended by CR. `control_id` is the ACK's own MSH-10, `timestamp` its MSH-7
/// (`YYYYMMDDHHMMSS`); the sender and receiver of the original are swapped.
pub fn ack(
    original: Option<&Message>,
    code: AckCode,
    control_id: &str,
    timestamp: &str,
    error: Option<&AckError>,
) -> String {
    // The ACK is always written with the standard delimiters; values taken from the original are
    // transcoded from its delimiters.
    let s = Separators::default();
    let f = char::from(s.field);
    let copied = |path: &str| -> String {
        match original {
            Some(m) => m
                .raw(path)
                .map(|r| transcode(r, m.separators(), &s))
                .unwrap_or_default(),
            None => String::new(),
        }
    };
    let (msh3, msh4, msh5, msh6) = (
        copied("MSH-3"),
        copied("MSH-4"),
        copied("MSH-5"),
        copied("MSH-6"),
    );
    let (msh10, msh11, msh12, msh18) = (
        copied("MSH-10"),
        copied("MSH-11"),
        copied("MSH-12"),
        copied("MSH-18"),
    );
    let trigger = original.and_then(|m| m.get("MSH-9.2")).unwrap_or_default();
    let mut out = String::with_capacity(256);
    // MSH: sending app/facility = original receiving app/facility and vice versa.
    out.push_str("MSH");
    out.push(f);
    out.push_str(&s.encoding_characters());
    for value in [
        msh5.as_str(),
        msh6.as_str(),
        msh3.as_str(),
        msh4.as_str(),
        &escape(timestamp, &s),
        "",
        &format!(
            "ACK{}{}{}ACK",
            char::from(s.component),
            escape(&trigger, &s),
            char::from(s.component)
        ),
        &escape(control_id, &s),
        if msh11.is_empty() {
            "P"
        } else {
            msh11.as_str()
        },
        if msh12.is_empty() {
            "2.5"
        } else {
            msh12.as_str()
        },
        "",
        "",
        "",
        "",
        "",
        msh18.as_str(),
    ] {
        out.push(f);
        out.push_str(value);
    }
    while out.ends_with(f) {
        out.pop();
    }
    out.push('\r');
    out.push_str("MSA");
    out.push(f);
    out.push_str(code.as_str());
    out.push(f);
    out.push_str(&msh10);
    out.push('\r');
    if let Some(e) = error {
        let c = char::from(s.component);
        out.push_str("ERR");
        out.push(f);
        out.push(f);
        out.push_str(
            &e.location
                .as_deref()
                .map(|l| escape(l, &s).replace("\\S\\", &c.to_string()))
                .unwrap_or_default(),
        );
        out.push(f);
        out.push_str(&format!(
            "{}{c}{}{c}HL70357",
            e.code,
            escape(e.code_text(), &s)
        ));
        out.push(f);
        out.push_str(if code == AckCode::Accept { "W" } else { "E" });
        for _ in 0..4 {
            out.push(f);
        }
        out.push_str(&escape(&e.text, &s));
        out.push('\r');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledges_with_swapped_parties_and_errors() {
        let m = Message::parse("MSH|^~\\&|HIS|HOSP|GW|RENKEI|20261121||ADT^A08^ADT_A01|C123|P|2.5||||||~ISO IR87\rPID|1\r").unwrap();
        let a = ack(Some(&m), AckCode::Accept, "R1", "20261121090000", None);
        let parsed = Message::parse(&a).unwrap();
        assert_eq!(parsed.raw("MSH-3"), Some("GW"));
        assert_eq!(parsed.raw("MSH-5"), Some("HIS"));
        assert_eq!(parsed.raw("MSH-9"), Some("ACK^A08^ACK"));
        assert_eq!(parsed.raw("MSA-1"), Some("AA"));
        assert_eq!(parsed.raw("MSA-2"), Some("C123"));
        assert_eq!(parsed.raw("MSH-18"), Some("~ISO IR87"));

        let e = AckError {
            code: "101",
            location: Some("PID^1^3".into()),
            text: "PID-3（患者ID）がありません|".into(),
        };
        let a = ack(Some(&m), AckCode::Reject, "R2", "20261121090000", Some(&e));
        let parsed = Message::parse(&a).unwrap();
        assert_eq!(parsed.raw("MSA-1"), Some("AR"));
        assert_eq!(parsed.get("ERR-3.1").as_deref(), Some("101"));
        assert_eq!(parsed.get("ERR-2.1").as_deref(), Some("PID"));
        assert_eq!(
            parsed.get("ERR-8").as_deref(),
            Some("PID-3（患者ID）がありません|")
        );

        // A sender with other delimiters gets a standard ACK with its values intact.
        let odd =
            Message::parse("MSH#*@!%#HIS*1#HOSP#GW#RENKEI#20261121##ADT*A01#C|9#P#2.5\r").unwrap();
        let parsed = Message::parse(&ack(
            Some(&odd),
            AckCode::Accept,
            "R4",
            "20261121090000",
            None,
        ))
        .unwrap();
        assert_eq!(parsed.raw("MSH-5"), Some("HIS^1"));
        assert_eq!(parsed.get("MSA-2").as_deref(), Some("C|9"));
        assert_eq!(parsed.raw("MSH-9"), Some("ACK^A01^ACK"));

        // Found by fuzzing: MSH-2 with only two characters (no escape character).
        let short = Message::parse("MSH|^~|&|A|B|C|D|1||ADT^A08|X|P|2.5\r").unwrap();
        assert!(
            Message::parse(&ack(
                Some(&short),
                AckCode::Accept,
                "R5",
                "20261121090000",
                None
            ))
            .is_ok()
        );

        let unparsable = ack(None, AckCode::Reject, "R3", "20261121090000", Some(&e));
        assert!(Message::parse(&unparsable).is_ok());
    }
}
