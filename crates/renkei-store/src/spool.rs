//! The audit spool's record format: one audit event per line, fields separated by tabs.
//!
//! On a SQLite file, a read's audit event is written to a spool file (a `write()` into the
//! page cache: it survives a crash of the server process) before the read is answered, and
//! the audit writer moves it into the hash chain with the next group commit (see
//! [`crate::direct`]). A spool file left behind by a process that died is replayed into the
//! chain when the store next opens. This module only encodes and decodes lines: no IO.
//!
//! Strings escape `\`, tab, newline and carriage return; `\N` stands for an absent value.
//! A line that does not decode (a torn write at the end of a file after a power loss) ends
//! the replay of its file.

use renkei_core::audit::{AuditEvent, AuditOutcome};
use renkei_core::time::Timestamp;

const FIELDS: usize = 11;
const NONE: &str = "\\N";

/// Appends `event` to `out` as one line, newline included.
pub(crate) fn encode(event: &AuditEvent, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(out, "{}\t", event.at.0);
    match event.user_id {
        Some(id) => {
            let _ = write!(out, "{id}\t");
        }
        None => out.push_str("\\N\t"),
    }
    text(&event.login_id, out);
    match event.facility_id {
        Some(id) => {
            let _ = write!(out, "{id}\t");
        }
        None => out.push_str("\\N\t"),
    }
    match &event.profession {
        Some(p) => text(p, out),
        None => out.push_str("\\N\t"),
    }
    text(&event.action, out);
    text(&event.target, out);
    text(event.outcome.key(), out);
    text(&event.detail, out);
    text(&event.client, out);
    out.push(if event.emergency { '1' } else { '0' });
    out.push('\n');
}

fn text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\t');
}

fn untext(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            '\\' => '\\',
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            _ => return None,
        });
    }
    Some(out)
}

fn optional<T>(s: &str, f: impl FnOnce(&str) -> Option<T>) -> Option<Option<T>> {
    if s == NONE {
        Some(None)
    } else {
        f(s).map(Some)
    }
}

/// One line (without its newline) back into an event; `None` when it is not a whole record.
pub(crate) fn decode(line: &str) -> Option<AuditEvent> {
    let f: Vec<&str> = line.split('\t').collect();
    if f.len() != FIELDS {
        return None;
    }
    Some(AuditEvent {
        at: Timestamp(f[0].parse().ok()?),
        user_id: optional(f[1], |s| s.parse().ok())?,
        login_id: untext(f[2])?,
        facility_id: optional(f[3], |s| s.parse().ok())?,
        profession: optional(f[4], untext)?,
        action: untext(f[5])?,
        target: untext(f[6])?,
        outcome: AuditOutcome::from_key(&untext(f[7])?)?,
        detail: untext(f[8])?,
        client: untext(f[9])?,
        emergency: match f[10] {
            "1" => true,
            "0" => false,
            _ => return None,
        },
    })
}

/// The whole records of `bytes` (a spool file from some offset), in order, and how many bytes
/// they span. Decoding stops at the first line that is torn or not a record.
pub(crate) fn decode_all(bytes: &[u8]) -> (Vec<AuditEvent>, usize) {
    let mut events = Vec::new();
    let mut used = 0;
    while let Some(end) = bytes[used..].iter().position(|b| *b == b'\n') {
        let Ok(line) = std::str::from_utf8(&bytes[used..used + end]) else {
            break;
        };
        let Some(event) = decode(line) else {
            break;
        };
        events.push(event);
        used += end + 1;
    }
    (events, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> AuditEvent {
        AuditEvent {
            at: Timestamp(1_790_000_000_123),
            user_id: Some(7),
            login_id: "tab\there\\and\nnew\rline".into(),
            facility_id: None,
            profession: Some(String::new()),
            action: "clinical.read".into(),
            target: "person:12".into(),
            outcome: AuditOutcome::Denied,
            detail: "fhir Observation ＼N 日本語".into(),
            client: "127.0.0.1".into(),
            emergency: true,
        }
    }

    #[test]
    fn events_round_trip_whatever_their_text() {
        let mut s = String::new();
        encode(&event(), &mut s);
        let other = AuditEvent {
            user_id: None,
            profession: None,
            facility_id: Some(3),
            emergency: false,
            login_id: "\\N".into(),
            ..event()
        };
        encode(&other, &mut s);
        assert_eq!(s.matches('\n').count(), 2);
        let (events, used) = decode_all(s.as_bytes());
        assert_eq!(events, vec![event(), other]);
        assert_eq!(used, s.len());
    }

    #[test]
    fn a_torn_or_foreign_tail_ends_the_replay_without_panicking() {
        let mut s = String::new();
        encode(&event(), &mut s);
        let whole = s.len();
        encode(&event(), &mut s);
        for cut in whole..s.len() {
            let (events, used) = decode_all(&s.as_bytes()[..cut]);
            assert_eq!((events.len(), used), (1, whole), "cut at {cut}");
        }
        let mut zeros = s.as_bytes()[..whole].to_vec();
        zeros.extend_from_slice(&[0u8; 64]);
        zeros.push(b'\n');
        assert_eq!(decode_all(&zeros).0.len(), 1);
        for junk in [
            "",
            "\t",
            "x\ty",
            "1\t\\N\ta\t\\N\t\\N\ta\tb\tsuccess\td\te\t2",
            "1\t\\N\ta\\q\t\\N\t\\N\ta\tb\tsuccess\td\te\t0",
        ] {
            assert!(decode(junk).is_none(), "{junk:?}");
        }
        assert!(decode_all(&[0xff, 0xfe, b'\n']).0.is_empty());
    }
}
