//! Rust HL7 v2 crates measured the way `crates/renkei-hl7v2/benches/parse.rs` measures Renkei:
//! every message of the corpus is parsed on its own (UTF-8 validation included, as Renkei's
//! `Message::parse_bytes` validates too), then PID-3.1 and PID-5.1 (first repetition, unescaped),
//! and for every OBX segment OBX-3.1 (raw) and OBX-5 (whole field, unescaped) are read. The
//! checksum is the sum of the UTF-8 byte lengths of those values; absent values count 0. Best of
//! three passes; only the parse+extract loop is timed.
//!
//! Usage: `renkei-hl7-peers PEER CORPUS` with PEER one of `hl7-parser`, `hl7-2`, `er7`.
//! Prints one line: `NAME MBps MSGps CHECKSUM`.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(peer), Some(path)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: renkei-hl7-peers hl7-parser|hl7-2|er7 CORPUS");
        return ExitCode::from(2);
    };
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let corpus: Vec<&[u8]> = data.split(|&b| b == b'\n').filter(|m| !m.is_empty()).collect();
    let extract: fn(&[u8]) -> usize = match peer.as_str() {
        #[cfg(feature = "hl7-parser")]
        "hl7-parser" => hl7_parser_peer::extract,
        #[cfg(feature = "hl7-2")]
        "hl7-2" => hl7_2_peer::extract,
        #[cfg(feature = "hl7-2")]
        "er7" => er7_peer::extract,
        other => {
            eprintln!("peer {other} is unknown or not compiled in (see the crate's features)");
            return ExitCode::from(2);
        }
    };
    let bytes: usize = corpus.iter().map(|m| m.len()).sum();
    let mut best = f64::MAX;
    let mut check = 0;
    for _ in 0..3 {
        let started = Instant::now();
        check = 0;
        for raw in &corpus {
            check += extract(black_box(raw));
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "{peer} {:.1} {:.0} {check}",
        bytes as f64 / best / 1e6,
        corpus.len() as f64 / best
    );
    ExitCode::SUCCESS
}

fn text(raw: &[u8]) -> &str {
    match std::str::from_utf8(raw) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("corpus message is not UTF-8: {e}");
            std::process::exit(1)
        }
    }
}

fn parse_failed(e: impl std::fmt::Display) -> ! {
    eprintln!("parse failed: {e}");
    std::process::exit(1)
}

#[cfg(feature = "hl7-parser")]
mod hl7_parser_peer {
    use hl7_parser::Message;
    use hl7_parser::message::Separators;

    /// Length of the unescaped value; hl7-parser decodes escapes through a `Display` adapter.
    fn unescaped_len(raw: &str, seps: &Separators) -> usize {
        if raw.contains(seps.escape) {
            seps.decode(raw).to_string().len()
        } else {
            raw.len()
        }
    }

    pub fn extract(raw: &[u8]) -> usize {
        let m = Message::parse(super::text(raw)).unwrap_or_else(|e| super::parse_failed(e));
        let seps = &m.separators;
        let mut n = 0;
        if let Some(pid) = m.segment("PID") {
            for f in [3, 5] {
                n += pid
                    .field(f)
                    .and_then(|f| f.component(1))
                    .map_or(0, |c| unescaped_len(c.raw_value(), seps));
            }
        }
        for obx in m.segments().filter(|s| s.name == "OBX") {
            n += obx
                .field(3)
                .and_then(|f| f.component(1))
                .map_or(0, |c| c.raw_value().len());
            n += obx.field(5).map_or(0, |f| unescaped_len(f.raw_value(), seps));
        }
        n
    }
}

/// Length helpers over the `er7` tree (shared by `hl7-2`, which wraps it, and `er7` itself).
/// Values are read through `Subcomponent::value`, which unescapes into a `Cow` (no allocation
/// when there is nothing to unescape); separators between parts count one byte each, as in the
/// raw text.
#[cfg(feature = "hl7-2")]
mod er7_len {
    use hl7_2::er7::{Component, Field, Separators};

    fn parts(n: usize) -> usize {
        n.saturating_sub(1)
    }

    pub fn component_text(c: &Component, seps: &Separators) -> usize {
        c.subcomponents.iter().map(|s| s.value(seps).len()).sum::<usize>()
            + parts(c.subcomponents.len())
    }

    pub fn component_raw(c: &Component) -> usize {
        c.subcomponents.iter().map(|s| s.raw.len()).sum::<usize>() + parts(c.subcomponents.len())
    }

    pub fn field_text(f: &Field, seps: &Separators) -> usize {
        f.repetitions
            .iter()
            .map(|r| {
                r.components.iter().map(|c| component_text(c, seps)).sum::<usize>()
                    + parts(r.components.len())
            })
            .sum::<usize>()
            + parts(f.repetitions.len())
    }

    pub fn extract(m: &hl7_2::er7::Message) -> usize {
        let seps = &m.separators;
        let mut n = 0;
        if let Some(pid) = m.segment("PID") {
            for f in [3, 5] {
                n += pid
                    .field(f)
                    .and_then(|f| f.component(1))
                    .map_or(0, |c| component_text(c, seps));
            }
        }
        for obx in m.segments_named("OBX") {
            n += obx
                .field(3)
                .and_then(|f| f.component(1))
                .map_or(0, component_raw);
            n += obx.field(5).map_or(0, |f| field_text(f, seps));
        }
        n
    }
}

/// `hl7-2`'s generic mode: `hl7_2::parse` (input normalisation, er7 parse, release detection),
/// then the fields are read from the parsed tree.
#[cfg(feature = "hl7-2")]
mod hl7_2_peer {
    pub fn extract(raw: &[u8]) -> usize {
        let m = hl7_2::parse(super::text(raw)).unwrap_or_else(|e| super::parse_failed(e));
        super::er7_len::extract(m.raw())
    }
}

/// `er7`, the ER7 syntax layer under `hl7-2`, called directly.
#[cfg(feature = "hl7-2")]
mod er7_peer {
    pub fn extract(raw: &[u8]) -> usize {
        let m = hl7_2::er7::parse(super::text(raw)).unwrap_or_else(|e| super::parse_failed(e));
        super::er7_len::extract(&m)
    }
}
