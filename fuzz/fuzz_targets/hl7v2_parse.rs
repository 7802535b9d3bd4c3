//! Any bytes: decode, parse, walk every segment / field / repetition / component /
//! sub-component, resolve escapes, read paths, and build an ACK. Nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use renkei_hl7v2::{AckCode, AckError, Charset, Message, Path, ack, decode_iso2022jp_checked, escape, mllp, ssmix2, unescape};

fuzz_target!(|data: &[u8]| {
    // The fast ISO-2022-JP decoder agrees with encoding_rs wherever it answers.
    let (fast, expected, errors) = decode_iso2022jp_checked(data);
    if let Some(fast) = fast {
        assert!(!errors, "fast path accepted malformed ISO-2022-JP");
        assert_eq!(fast, expected);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Path::parse(text);
        // Storage paths and file names, and the encoder (round trip for what it can hold).
        let levels: Vec<&str> = text.split('/').collect();
        if let Ok(name) = ssmix2::parse_storage_path(&levels).or_else(|_| ssmix2::parse_file_name(text)) {
            assert_eq!(ssmix2::parse_file_name(&name.to_string()).ok(), Some(name));
        }
        let _ = Charset::Iso2022Jp.encode(text);
        let _ = Charset::ShiftJis.encode(text);
    }
    // MLLP framing, fed in uneven pieces.
    let mut decoder = mllp::Decoder::new(1024);
    for piece in data.chunks(7) {
        decoder.push(piece);
        while let Some(frame) = decoder.next_frame() {
            if let Ok(bytes) = frame {
                assert!(bytes.len() <= 1024);
            }
        }
    }
    let Ok(m) = Message::parse_bytes(data) else {
        let _ = ack(None, AckCode::Reject, "1", "20261121000000", None);
        return;
    };
    let s = *m.separators();
    for seg in m.segments() {
        let _ = seg.name();
        for n in 0..=seg.field_count() + 1 {
            let Some(f) = seg.field(n) else { continue };
            let _ = f.text();
            for r in f.repetitions() {
                let _ = r.text();
                for c in r.components() {
                    let _ = c.text();
                    let mut i = 1;
                    while let Some(sub) = c.subcomponent(i) {
                        let _ = unescape(sub, &s);
                        i += 1;
                    }
                }
            }
        }
    }
    for p in ["MSH-9.2", "MSH-10", "PID-5(2).1", "OBX(2)-5.1.2", "MSH-1", "MSH-2", "ZZZ-1"] {
        let _ = m.get(p);
    }
    let _ = unescape(&escape(m.text(), &s), &s);
    let e = AckError { code: "207", location: Some("PID^1^3".into()), text: m.text().chars().take(64).collect() };
    let reply = ack(Some(&m), AckCode::Error, m.control_id(), "20261121000000", Some(&e));
    assert!(Message::parse(&reply).is_ok(), "an ACK must always parse");
});
