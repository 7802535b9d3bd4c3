//! Lab units as facilities write them (「10³/µL」, 「x10^3/ul」, 「/mm3」, 「万/μL」, 「IU/L」) and
//! the factors between those that measure the same thing, so that one JLAC10 item reported in
//! different units is shown converted under one unit, or apart — never under a wrong header.
//! The writings are normalised to UCUM codes here; parsing and conversion are UCUM's, by the
//! `ucum-units` crate. Pure; never panics.

/// A unit as a UCUM code: Greek and micro signs as `u`, superscripts as digits, `^` and `×10` as
/// UCUM's `10*`, 万 as `10*4`, `IU` as `U` (Japanese labs write either for the same enzyme
/// activity), `mEq` as `meq`, `sec` as `s`, no spaces, a trailing litre as `L`.
pub fn normalise(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.trim().chars() {
        let superscript = match c {
            '²' => Some('2'),
            '³' => Some('3'),
            '⁴' => Some('4'),
            '⁵' => Some('5'),
            '⁶' => Some('6'),
            '⁹' => Some('9'),
            '¹' => Some('1'),
            '⁰' => Some('0'),
            _ => None,
        };
        if let Some(d) = superscript {
            // 10³ is 10 to the 3rd: UCUM's 10*3 (never the number 103).
            if out.ends_with("10") {
                out.push('*');
            }
            out.push(d);
            continue;
        }
        let c = match c {
            'μ' | 'µ' => 'u',
            '^' => '*',
            '／' => '/',
            'ｍ' => 'm',
            'Ｌ' | 'l' => 'L',
            c if c.is_whitespace() => continue,
            c => c,
        };
        out.push(c);
    }
    let out = out
        .replace("×10", "10")
        .replace("x10", "10")
        .replace("X10", "10")
        .replace("万/", "10*4/")
        .replace("千/", "10*3/")
        .replace("IU/", "U/")
        .replace("mEq/", "meq/");
    match out.as_str() {
        "sec" | "秒" => "s".into(),
        _ => out,
    }
}

/// The factor that turns a value in `from` into one in `to` (`Some(1.0)` when they are the same
/// unit written differently); `None` when they measure different things, or either is not a
/// unit UCUM knows (then the values must be shown apart). Equivalents and moles stay apart: they
/// are the same only for monovalent ions.
pub fn factor(from: &str, to: &str) -> Option<f64> {
    let (from, to) = (normalise(from), normalise(to));
    if from.is_empty() || to.is_empty() {
        return None;
    }
    if from == to {
        return Some(1.0);
    }
    let eq = |u: &str| u.contains("eq");
    let mol = |u: &str| u.contains("mol");
    if (eq(&from) && mol(&to)) || (mol(&from) && eq(&to)) {
        return None;
    }
    ucum::convert(1.0, &from, &to)
        .ok()
        .filter(|f| f.is_finite() && *f > 0.0)
        .map(|f| significant(f, 12))
}

/// `value` in another unit, by [`factor`]'s result, rounded to 12 significant digits (so that
/// binary noise — 5.3 × 1000 = 5299.999… — never shows).
pub fn apply(value: f64, factor: f64) -> f64 {
    significant(value * factor, 12)
}

/// `x` rounded to `digits` significant digits.
fn significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let magnitude = x.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits - 1 - magnitude);
    (x * scale).round() / scale
}

/// A converted value as a lab writes it: at most four decimals, no trailing zeros.
pub fn format_value(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_unit_written_many_ways_is_one_unit() {
        for (a, b) in [
            ("10³/µL", "10*3/uL"),
            ("x10^3/ul", "10*3/uL"),
            ("×10³/μL", "10*3/uL"),
            ("/mm3", "/mm3"),
            ("IU/L", "U/L"),
            ("mg/dl", "mg/dL"),
            ("μg/mL", "ug/mL"),
            ("万/μL", "10*4/uL"),
            ("mEq/L", "meq/L"),
            ("sec", "s"),
            ("×10²/μL", "10*2/uL"),
            ("10¹²/L", "10*12/L"),
        ] {
            assert_eq!(normalise(a), b, "{a}");
        }
    }

    #[test]
    fn counts_masses_and_activities_convert_and_nothing_else_does() {
        // 白血球数: 5.3 ×10³/µL is 5300 /mm3 (the case that was shown as 5.3 /mm3).
        assert_eq!(factor("10³/µL", "/mm3"), Some(1000.0));
        assert_eq!(factor("10^9/L", "/μL"), Some(1000.0));
        assert_eq!(factor("万/μL", "/mm3"), Some(10_000.0));
        assert_eq!(factor("10000/mm3", "10^3/uL"), Some(10.0));
        assert_eq!(factor("g/L", "g/dL"), Some(0.1));
        assert_eq!(factor("mg/L", "mg/dL"), Some(0.1));
        assert_eq!(factor("μg/mL", "mg/L"), Some(1.0));
        assert_eq!(factor("IU/L", "U/L"), Some(1.0));
        assert_eq!(factor("mmol/L", "mEq/L"), None, "not for every ion");
        assert_eq!(factor("mg/dL", "U/L"), None);
        assert_eq!(factor("furlong", "mg/dL"), None);
        assert_eq!(factor("", "mg/dL"), None);
    }

    #[test]
    fn converted_values_read_as_a_lab_writes_them() {
        assert_eq!(format_value(5.3 * 1000.0), "5300");
        assert_eq!(format_value(0.1 * 3.0), "0.3");
        assert_eq!(format_value(7.25), "7.25");
        assert_eq!(format_value(f64::NAN), "");
        assert_eq!(format_value(-0.00001), "0");
    }
}
