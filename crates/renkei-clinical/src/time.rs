//! HL7 date-times (`YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ]`) as ISO 8601 local text.

/// `20111220103059.1234` → `2011-12-20T10:30:59`; `20111220` → `2011-12-20`; `201112` → `2011-12`.
/// `None` when the text is not an HL7 date-time.
pub fn hl7_datetime(text: &str) -> Option<String> {
    let t = text.trim();
    let main = t.split(['+', '-']).next().unwrap_or("");
    let main = main.split('.').next().unwrap_or("");
    if main.is_empty()
        || !main.bytes().all(|b| b.is_ascii_digit())
        || !matches!(main.len(), 4 | 6 | 8 | 10 | 12 | 14)
    {
        return None;
    }
    let part = |a: usize, b: usize| main.get(a..b).unwrap_or("");
    let (month, day, hour, minute, second) = (
        part(4, 6),
        part(6, 8),
        part(8, 10),
        part(10, 12),
        part(12, 14),
    );
    let ok = |v: &str, lo: u32, hi: u32| {
        v.is_empty() || v.parse::<u32>().is_ok_and(|n| (lo..=hi).contains(&n))
    };
    if !(ok(month, 1, 12)
        && ok(day, 1, 31)
        && ok(hour, 0, 23)
        && ok(minute, 0, 59)
        && ok(second, 0, 60))
    {
        return None;
    }
    let mut out = part(0, 4).to_string();
    for (sep, v) in [
        ('-', month),
        ('-', day),
        ('T', hour),
        (':', minute),
        (':', second),
    ] {
        if v.is_empty() {
            break;
        }
        out.push(sep);
        out.push_str(v);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_hl7_times() {
        assert_eq!(
            hl7_datetime("20111220103059.1234").as_deref(),
            Some("2011-12-20T10:30:59")
        );
        assert_eq!(
            hl7_datetime("201112202100").as_deref(),
            Some("2011-12-20T21:00")
        );
        assert_eq!(hl7_datetime("20111220").as_deref(), Some("2011-12-20"));
        assert_eq!(hl7_datetime("2011070100").as_deref(), Some("2011-07-01T00"));
        assert_eq!(hl7_datetime("20111220+0900").as_deref(), Some("2011-12-20"));
        assert_eq!(hl7_datetime("20111320"), None);
        assert_eq!(hl7_datetime("abc"), None);
        assert_eq!(hl7_datetime(""), None);
    }
}
