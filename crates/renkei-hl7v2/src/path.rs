//! Paths into a message: `PID-5`, `PID-5.2`, `PID-5(2).1`, `OBX(3)-5.1.2`.

/// A parsed path. Numbers are 1-based as in HL7.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    pub segment: String,
    /// Which occurrence of the segment (default 1).
    pub occurrence: usize,
    pub field: usize,
    /// Which repetition; `None` means the whole field for a field-level path, else the first.
    pub repetition: Option<usize>,
    pub component: Option<usize>,
    pub subcomponent: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an HL7 path (expected SEG[(n)]-FIELD[(rep)][.COMP[.SUB]], e.g. PID-5.2): {0}")]
pub struct PathError(pub String);

fn number(s: &str, whole: &str) -> Result<usize, PathError> {
    s.parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| PathError(whole.to_string()))
}

/// `NAME(n)` → (NAME, Some(n)).
fn indexed<'a>(s: &'a str, whole: &str) -> Result<(&'a str, Option<usize>), PathError> {
    match s.split_once('(') {
        Some((name, rest)) => {
            let n = rest
                .strip_suffix(')')
                .ok_or_else(|| PathError(whole.to_string()))?;
            Ok((name, Some(number(n, whole)?)))
        }
        None => Ok((s, None)),
    }
}

impl Path {
    pub fn parse(text: &str) -> Result<Path, PathError> {
        let err = || PathError(text.to_string());
        let (seg, rest) = text.trim().split_once('-').ok_or_else(err)?;
        let (segment, occurrence) = indexed(seg, text)?;
        if segment.len() != 3 || !segment.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(err());
        }
        let mut parts = rest.split('.');
        let (field, repetition) = indexed(parts.next().ok_or_else(err)?, text)?;
        let field = number(field, text)?;
        let component = parts.next().map(|c| number(c, text)).transpose()?;
        let subcomponent = parts.next().map(|c| number(c, text)).transpose()?;
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Path {
            segment: segment.to_ascii_uppercase(),
            occurrence: occurrence.unwrap_or(1),
            field,
            repetition,
            component,
            subcomponent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        let p = Path::parse("OBX(3)-5(2).1.2").unwrap();
        assert_eq!(
            (
                p.segment.as_str(),
                p.occurrence,
                p.field,
                p.repetition,
                p.component,
                p.subcomponent
            ),
            ("OBX", 3, 5, Some(2), Some(1), Some(2))
        );
        assert_eq!(Path::parse("pid-5").unwrap().segment, "PID");
        for bad in [
            "",
            "PID",
            "PID-",
            "PID-0",
            "PID-x",
            "PI-5",
            "PID-5.1.2.3",
            "PID(0)-1",
            "PID(1-1",
        ] {
            assert!(Path::parse(bad).is_err(), "{bad}");
        }
    }
}
