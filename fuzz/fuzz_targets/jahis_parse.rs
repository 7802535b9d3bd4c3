//! The JAHIS medication-notebook parser on arbitrary bytes: it must never panic, and what it
//! accepts must survive a round trip through the writer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use renkei_clinical::jahis;

fuzz_target!(|data: &[u8]| {
    if let Ok(nb) = jahis::parse(data) {
        let written = jahis::write(&nb);
        let again = jahis::parse_text(&written).expect("the writer's output parses");
        let mut a = nb.clone();
        let mut b = again;
        a.warnings.clear();
        b.warnings.clear();
        assert_eq!(a, b, "round trip");
        let _ = nb.dispensings.iter().map(|d| jahis::iso_date(&d.date)).count();
    }
    // Split parts: any bytes as parts.
    if let Ok(text) = std::str::from_utf8(data) {
        let parts: Vec<&str> = text.split("\u{1e}").collect();
        let _ = jahis::merge_parts(&parts);
    }
});
