//! FHIR R4 search over the clinical resources of [`crate::fhir`]: parameters parsed and checked
//! against what each type supports (an unknown one is an error unless the caller asked for
//! lenient handling), then evaluated on the resources themselves, so a parameter means what the
//! FHIR specification says of the element it names.
//!
//! Pure: no IO, no panics on input. Supported per type: `_id`, `patient`/`subject`, the type's
//! date parameter(s) with the prefixes `eq ne gt lt ge le sa eb ap`, its token parameters
//! (`system|code`, `code`, `system|`, `|code`), `_count`, `_offset`, `_sort`, `_include` of the
//! patient and the facility (Organization). Several values in one parameter are OR; the same
//! parameter repeated is AND.

use serde_json::Value;

/// The most entries on one page.
pub const MAX_COUNT: usize = 1000;
/// Entries on a page when `_count` is not given.
pub const DEFAULT_COUNT: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Token,
    Date,
    Reference,
}

/// One search parameter of a type: its name, kind and where in the resource it looks.
#[derive(Clone, Copy, Debug)]
pub struct ParamDef {
    pub name: &'static str,
    pub kind: Kind,
    pub paths: &'static [&'static str],
}

const fn p(name: &'static str, kind: Kind, paths: &'static [&'static str]) -> ParamDef {
    ParamDef { name, kind, paths }
}

use Kind::{Date, Reference, Token};

/// `_lastUpdated`, common to every clinical type: when the server stored the record.
pub const LAST_UPDATED: ParamDef = p("_lastUpdated", Date, &["meta.lastUpdated"]);

/// The parameters each clinical type supports (besides `_id` and the result parameters).
pub fn params_of(resource_type: &str) -> &'static [ParamDef] {
    match resource_type {
        "Encounter" => {
            const P: &[ParamDef] = &[
                p("patient", Reference, &["subject"]),
                p("subject", Reference, &["subject"]),
                p("date", Date, &["period"]),
                p("class", Token, &["class"]),
                p("type", Token, &["type"]),
                p("status", Token, &["status"]),
                p("service-provider", Reference, &["serviceProvider"]),
            ];
            P
        }
        "Condition" => {
            const P: &[ParamDef] = &[
                p("patient", Reference, &["subject"]),
                p("subject", Reference, &["subject"]),
                p("onset-date", Date, &["onsetDateTime"]),
                p("abatement-date", Date, &["abatementDateTime"]),
                p("recorded-date", Date, &["recordedDate"]),
                p("code", Token, &["code"]),
                p("category", Token, &["category"]),
                p("clinical-status", Token, &["clinicalStatus"]),
                p("verification-status", Token, &["verificationStatus"]),
            ];
            P
        }
        "AllergyIntolerance" => {
            const P: &[ParamDef] = &[
                p("patient", Reference, &["patient"]),
                p("date", Date, &["onsetDateTime"]),
                p("code", Token, &["code"]),
                p("category", Token, &["category"]),
                p("criticality", Token, &["criticality"]),
                p("clinical-status", Token, &["clinicalStatus"]),
            ];
            P
        }
        "MedicationRequest" => {
            const P: &[ParamDef] = &[
                p("patient", Reference, &["subject"]),
                p("subject", Reference, &["subject"]),
                p("authoredon", Date, &["authoredOn"]),
                p("code", Token, &["medicationCodeableConcept"]),
                p("status", Token, &["status"]),
                p("intent", Token, &["intent"]),
            ];
            P
        }
        "MedicationAdministration" => {
            const P: &[ParamDef] = &[
                p("patient", Reference, &["subject"]),
                p("subject", Reference, &["subject"]),
                p("effective-time", Date, &["effectiveDateTime"]),
                p("code", Token, &["medicationCodeableConcept"]),
                p("status", Token, &["status"]),
            ];
            P
        }
        "MedicationDispense" => {
            const P: &[ParamDef] = &[
                p("patient", Reference, &["subject"]),
                p("subject", Reference, &["subject"]),
                p("whenhandedover", Date, &["whenHandedOver"]),
                p("code", Token, &["medicationCodeableConcept"]),
                p("status", Token, &["status"]),
                p("performer", Reference, &["performer.actor"]),
            ];
            P
        }
        "Observation" => {
            const P: &[ParamDef] = &[
                p("patient", Reference, &["subject"]),
                p("subject", Reference, &["subject"]),
                p("date", Date, &["effectiveDateTime"]),
                p("code", Token, &["code"]),
                p("category", Token, &["category"]),
                p("status", Token, &["status"]),
                p("performer", Reference, &["performer"]),
            ];
            P
        }
        "DiagnosticReport" => {
            const P: &[ParamDef] = &[
                p("patient", Reference, &["subject"]),
                p("subject", Reference, &["subject"]),
                p("date", Date, &["effectiveDateTime"]),
                p("code", Token, &["code"]),
                p("status", Token, &["status"]),
                p("performer", Reference, &["performer"]),
            ];
            P
        }
        "Procedure" => {
            const P: &[ParamDef] = &[
                p("patient", Reference, &["subject"]),
                p("subject", Reference, &["subject"]),
                p("date", Date, &["performedDateTime"]),
                p("code", Token, &["code"]),
                p("status", Token, &["status"]),
                p("performer", Reference, &["performer.actor"]),
            ];
            P
        }
        "ImagingStudy" => {
            const P: &[ParamDef] = &[
                p("patient", Reference, &["subject"]),
                p("subject", Reference, &["subject"]),
                p("started", Date, &["started"]),
                p("modality", Token, &["modality"]),
                p("identifier", Token, &["identifier"]),
                p("status", Token, &["status"]),
            ];
            P
        }
        "DocumentReference" => {
            const P: &[ParamDef] = &[
                p("patient", Reference, &["subject"]),
                p("subject", Reference, &["subject"]),
                p("date", Date, &["date"]),
                p("type", Token, &["type"]),
                p("category", Token, &["category"]),
                p("status", Token, &["status"]),
                p("custodian", Reference, &["custodian"]),
            ];
            P
        }
        _ => &[],
    }
}

/// What `_include` may follow per type: (the `_include` value, the reference element).
pub fn includes_of(resource_type: &str) -> &'static [(&'static str, &'static str)] {
    match resource_type {
        "Encounter" => &[
            ("Encounter:patient", "subject"),
            ("Encounter:subject", "subject"),
            ("Encounter:service-provider", "serviceProvider"),
        ],
        "Condition" => &[
            ("Condition:patient", "subject"),
            ("Condition:subject", "subject"),
        ],
        "AllergyIntolerance" => &[("AllergyIntolerance:patient", "patient")],
        "MedicationRequest" => &[
            ("MedicationRequest:patient", "subject"),
            ("MedicationRequest:subject", "subject"),
        ],
        "MedicationAdministration" => &[
            ("MedicationAdministration:patient", "subject"),
            ("MedicationAdministration:subject", "subject"),
        ],
        "MedicationDispense" => &[
            ("MedicationDispense:patient", "subject"),
            ("MedicationDispense:subject", "subject"),
            ("MedicationDispense:performer", "performer.actor"),
        ],
        "Observation" => &[
            ("Observation:patient", "subject"),
            ("Observation:subject", "subject"),
            ("Observation:performer", "performer"),
        ],
        "DiagnosticReport" => &[
            ("DiagnosticReport:patient", "subject"),
            ("DiagnosticReport:subject", "subject"),
            ("DiagnosticReport:performer", "performer"),
        ],
        "Procedure" => &[
            ("Procedure:patient", "subject"),
            ("Procedure:subject", "subject"),
            ("Procedure:performer", "performer.actor"),
        ],
        "ImagingStudy" => &[
            ("ImagingStudy:patient", "subject"),
            ("ImagingStudy:subject", "subject"),
        ],
        "DocumentReference" => &[
            ("DocumentReference:patient", "subject"),
            ("DocumentReference:subject", "subject"),
            ("DocumentReference:custodian", "custodian"),
        ],
        _ => &[],
    }
}

/// A date or date-time parameter value with its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateParam {
    pub prefix: Prefix,
    /// The value's range, in seconds since 0000-03-01 (local time): `[lo, hi)`.
    pub lo: i64,
    pub hi: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

/// A token: `system|code`, `code`, `system|` or `|code`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenParam {
    /// `None`: any system; `Some("")`: no system.
    pub system: Option<String>,
    /// `None`: any code of the system.
    pub code: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    Token(Vec<TokenParam>),
    Date(Vec<DateParam>),
    Reference(Vec<String>),
}

/// One condition: any of its values (OR) must match what `def` names.
#[derive(Clone, Debug)]
pub struct Condition {
    pub def: ParamDef,
    pub values: Values,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// The type's first date parameter.
    Date,
    Id,
}

/// A parsed search.
#[derive(Clone, Debug)]
pub struct Search {
    pub resource_type: String,
    /// Logical ids of `_id` (OR).
    pub ids: Vec<String>,
    /// The patient (logical id) named by `patient` or `subject`, when one is.
    pub patient: Option<String>,
    pub conditions: Vec<Condition>,
    pub count: usize,
    pub offset: usize,
    /// (key, descending)
    pub sort: Vec<(SortKey, bool)>,
    /// Reference elements to include the targets of.
    pub includes: Vec<&'static str>,
    /// The parameters used, as given (for the self link).
    pub used: Vec<(String, String)>,
    /// Parameters ignored under lenient handling.
    pub ignored: Vec<String>,
    /// The overall date window of the date conditions, `YYYY-MM-DD` (for reading less).
    pub since: Option<String>,
    pub until: Option<String>,
}

/// Why a search cannot be run: the parameter and the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct SearchError {
    pub param: String,
    pub message: String,
    /// `not-supported` (an unknown parameter or modifier) or `invalid` (a bad value).
    pub code: &'static str,
}

fn err(param: &str, code: &'static str, message: impl Into<String>) -> SearchError {
    SearchError {
        param: param.to_string(),
        message: message.into(),
        code,
    }
}

/// Parses the query of a search on `resource_type`. Under `lenient`, unknown parameters are
/// ignored (and listed); otherwise they are an error, as is any bad value.
pub fn parse(
    resource_type: &str,
    pairs: &[(String, String)],
    lenient: bool,
) -> Result<Search, SearchError> {
    let defs = params_of(resource_type);
    let mut s = Search {
        resource_type: resource_type.to_string(),
        ids: Vec::new(),
        patient: None,
        conditions: Vec::new(),
        count: DEFAULT_COUNT,
        offset: 0,
        sort: Vec::new(),
        includes: Vec::new(),
        used: Vec::new(),
        ignored: Vec::new(),
        since: None,
        until: None,
    };
    for (name, value) in pairs {
        let (base, modifier) = match name.split_once(':') {
            Some((b, m)) => (b, Some(m)),
            None => (name.as_str(), None),
        };
        match base {
            "_format" | "_pretty" => continue,
            "_count" | "_offset" => {
                let n: usize = value
                    .trim()
                    .parse()
                    .map_err(|_| err(name, "invalid", "must be a whole number (0 or more)"))?;
                if base == "_count" {
                    s.count = n.min(MAX_COUNT);
                } else {
                    s.offset = n;
                }
                continue;
            }
            "_sort" => {
                for key in value.split(',') {
                    let (desc, key) = match key.trim().strip_prefix('-') {
                        Some(k) => (true, k),
                        None => (false, key.trim()),
                    };
                    let k = match key {
                        "_id" => SortKey::Id,
                        k if defs.iter().any(|d| d.name == k && d.kind == Date) => SortKey::Date,
                        other => {
                            return Err(err(
                                "_sort",
                                "not-supported",
                                format!(
                                    "cannot sort {resource_type} by '{other}' (use _id or a date parameter)"
                                ),
                            ));
                        }
                    };
                    s.sort.push((k, desc));
                }
                s.used.push((name.clone(), value.clone()));
                continue;
            }
            "_include" => {
                match includes_of(resource_type).iter().find(|(v, _)| v == value) {
                    Some((_, path)) => {
                        if !s.includes.contains(path) {
                            s.includes.push(path);
                        }
                        s.used.push((name.clone(), value.clone()));
                    }
                    None if lenient => s.ignored.push(format!("_include={value}")),
                    None => {
                        return Err(err(
                            "_include",
                            "not-supported",
                            format!(
                                "'{value}' is not supported (supported: {})",
                                includes_of(resource_type)
                                    .iter()
                                    .map(|i| i.0)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ));
                    }
                }
                continue;
            }
            "_id" => {
                if modifier.is_some() {
                    return Err(err(
                        name,
                        "not-supported",
                        "no modifier is supported on _id",
                    ));
                }
                let ids: Vec<String> = value
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect();
                if ids.is_empty() {
                    return Err(err(name, "invalid", "an id is required"));
                }
                if !s.ids.is_empty() {
                    // AND of two id lists: what is in both.
                    s.ids.retain(|i| ids.contains(i));
                    if s.ids.is_empty() {
                        s.ids.push(String::new());
                    }
                } else {
                    s.ids = ids;
                }
                s.used.push((name.clone(), value.clone()));
                continue;
            }
            "_lastUpdated" if !defs.is_empty() => {
                if modifier.is_some() {
                    return Err(err(
                        name,
                        "not-supported",
                        "no modifier is supported on _lastUpdated",
                    ));
                }
                // Not a clinical date: the storage window (by effective date) stays as it is.
                let dates: Vec<DateParam> = value
                    .split(',')
                    .map(|v| date_param(v).map_err(|m| err(name, "invalid", m)))
                    .collect::<Result<_, _>>()?;
                s.conditions.push(Condition {
                    def: LAST_UPDATED,
                    values: Values::Date(dates),
                });
                s.used.push((name.clone(), value.clone()));
                continue;
            }
            _ => {}
        }
        let Some(def) = defs.iter().find(|d| d.name == base) else {
            if lenient {
                s.ignored.push(name.clone());
                continue;
            }
            let mut names: Vec<&str> = defs.iter().map(|d| d.name).collect();
            names.extend([
                "_id",
                "_lastUpdated",
                "_count",
                "_offset",
                "_sort",
                "_include",
            ]);
            return Err(err(
                name,
                "not-supported",
                format!(
                    "not a supported search parameter of {resource_type} (supported: {}); send Prefer: handling=lenient to ignore it",
                    names.join(", ")
                ),
            ));
        };
        if let Some(m) = modifier
            && !(def.kind == Reference && m == "Patient" && base != "performer")
        {
            if lenient {
                s.ignored.push(name.clone());
                continue;
            }
            return Err(err(
                name,
                "not-supported",
                format!("the modifier ':{m}' is not supported"),
            ));
        }
        let values = match def.kind {
            Token => Values::Token(
                value
                    .split(',')
                    .map(|v| token(v).map_err(|m| err(name, "invalid", m)))
                    .collect::<Result<_, _>>()?,
            ),
            Date => {
                let dates: Vec<DateParam> = value
                    .split(',')
                    .map(|v| date_param(v).map_err(|m| err(name, "invalid", m)))
                    .collect::<Result<_, _>>()?;
                for d in &dates {
                    window(&mut s, d);
                }
                Values::Date(dates)
            }
            Reference => {
                let refs: Vec<String> = value
                    .split(',')
                    .map(|v| reference(v, def.name).map_err(|m| err(name, "invalid", m)))
                    .collect::<Result<_, _>>()?;
                if matches!(def.name, "patient" | "subject") {
                    match (&s.patient, refs.as_slice()) {
                        (None, [one]) => s.patient = Some(one.clone()),
                        (Some(p), [one]) if p == one => {}
                        _ => {
                            return Err(err(
                                name,
                                "not-supported",
                                "one patient per search (search each patient separately)",
                            ));
                        }
                    }
                }
                Values::Reference(refs)
            }
        };
        s.conditions.push(Condition { def: *def, values });
        s.used.push((name.clone(), value.clone()));
    }
    Ok(s)
}

/// Narrows the date window read from storage by one date condition (only where the
/// condition certainly excludes what is outside).
fn window(s: &mut Search, d: &DateParam) {
    let (since, until) = match d.prefix {
        Prefix::Eq => (Some(d.lo), Some(d.hi - 1)),
        Prefix::Ge | Prefix::Gt | Prefix::Sa => (Some(d.lo), None),
        Prefix::Le | Prefix::Lt | Prefix::Eb => (None, Some(d.hi - 1)),
        Prefix::Ne | Prefix::Ap => (None, None),
    };
    if let Some(lo) = since.map(day_text) {
        s.since = Some(match s.since.take() {
            Some(prev) if prev > lo => prev,
            _ => lo,
        });
    }
    if let Some(hi) = until.map(day_text) {
        s.until = Some(match s.until.take() {
            Some(prev) if prev < hi => prev,
            _ => hi,
        });
    }
}

fn token(v: &str) -> Result<TokenParam, String> {
    let v = v.trim();
    if v.is_empty() {
        return Err("a token is required (system|code or code)".into());
    }
    Ok(match v.split_once('|') {
        None => TokenParam {
            system: None,
            code: Some(v.to_string()),
        },
        Some((system, code)) => TokenParam {
            system: Some(system.to_string()),
            code: (!code.is_empty()).then(|| code.to_string()),
        },
    })
}

fn reference(v: &str, name: &str) -> Result<String, String> {
    let v = v.trim();
    let target = if matches!(name, "patient" | "subject") {
        "Patient"
    } else {
        "Organization"
    };
    let id = match v.rsplit_once('/') {
        Some((head, id)) if head.ends_with(target) => id,
        Some(_) => return Err(format!("must reference a {target} ({target}/<id>)")),
        None => v,
    };
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(format!("'{v}' is not a {target} reference"));
    }
    Ok(format!("{target}/{id}"))
}

/// Days from 0000-03-01 of a civil date (Howard Hinnant's algorithm).
/// Days since 0000-03-01 of a proleptic Gregorian date.
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe
}

/// The date (year, month, day) of a [`days_from_civil`] day number.
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn day_text(seconds: i64) -> String {
    day_of(seconds.div_euclid(86_400))
}

/// `YYYY-MM-DD` of a day number of [`date_range`]'s calendar (days since 0000-03-01).
pub fn day_of(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The range `[lo, hi)` in local seconds that a FHIR date, dateTime or instant covers
/// (`2026`, `2026-03`, `2026-03-10`, `2026-03-10T09:30[:15][.123](Z|±hh:mm)`). Times with a
/// zone are brought to Japan time, as the record keeps local time.
pub fn date_range(text: &str) -> Option<(i64, i64)> {
    let t = text.trim();
    let num = |a: usize, b: usize| -> Option<i64> {
        let s = t.get(a..b)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let y = num(0, 4)?;
    if t.len() == 4 {
        let lo = days_from_civil(y, 1, 1) * 86_400;
        return Some((lo, days_from_civil(y + 1, 1, 1) * 86_400));
    }
    if t.as_bytes().get(4) != Some(&b'-') {
        return None;
    }
    let m = num(5, 7)?;
    if !(1..=12).contains(&m) {
        return None;
    }
    if t.len() == 7 {
        let lo = days_from_civil(y, m, 1) * 86_400;
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        return Some((lo, days_from_civil(ny, nm, 1) * 86_400));
    }
    if t.as_bytes().get(7) != Some(&b'-') {
        return None;
    }
    let d = num(8, 10)?;
    if d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let day = days_from_civil(y, m, d) * 86_400;
    if t.len() == 10 {
        return Some((day, day + 86_400));
    }
    if t.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    let hh = num(11, 13)?;
    if t.as_bytes().get(13) != Some(&b':') {
        return None;
    }
    let mm = num(14, 16)?;
    if hh > 23 || mm > 59 {
        return None;
    }
    let mut rest = &t[16..];
    let mut ss = None;
    if let Some(r) = rest.strip_prefix(':') {
        let s: i64 = r.get(..2)?.parse().ok()?;
        if s > 60 || !r.as_bytes()[..2].iter().all(u8::is_ascii_digit) {
            return None;
        }
        ss = Some(s);
        rest = &r[2..];
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            rest = &frac[digits..];
        }
    }
    let offset = match rest {
        "" => 0,
        "Z" => 9 * 3600,
        z if z.len() == 6
            && (z.starts_with('+') || z.starts_with('-'))
            && z.get(3..4) == Some(":") =>
        {
            let h: i64 = z.get(1..3)?.parse().ok()?;
            let mi: i64 = z.get(4..6)?.parse().ok()?;
            let sign = if z.starts_with('-') { -1 } else { 1 };
            9 * 3600 - sign * (h * 3600 + mi * 60)
        }
        _ => return None,
    };
    let lo = day + hh * 3600 + mm * 60 + ss.unwrap_or(0) + offset;
    Some((lo, lo + if ss.is_some() { 1 } else { 60 }))
}

fn date_param(v: &str) -> Result<DateParam, String> {
    let v = v.trim();
    let (prefix, rest) = match v.get(..2) {
        Some("eq") => (Prefix::Eq, &v[2..]),
        Some("ne") => (Prefix::Ne, &v[2..]),
        Some("gt") => (Prefix::Gt, &v[2..]),
        Some("lt") => (Prefix::Lt, &v[2..]),
        Some("ge") => (Prefix::Ge, &v[2..]),
        Some("le") => (Prefix::Le, &v[2..]),
        Some("sa") => (Prefix::Sa, &v[2..]),
        Some("eb") => (Prefix::Eb, &v[2..]),
        Some("ap") => (Prefix::Ap, &v[2..]),
        _ => (Prefix::Eq, v),
    };
    let (lo, hi) = date_range(rest).ok_or_else(|| {
        format!("'{v}' is not a date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime, with an optional prefix eq, ne, gt, lt, ge, le, sa, eb, ap)")
    })?;
    Ok(DateParam { prefix, lo, hi })
}

impl DateParam {
    /// Whether a target range `[lo, hi)` satisfies this parameter (FHIR R4 §3.1.1.4.2).
    pub fn matches(&self, lo: i64, hi: i64) -> bool {
        let contained = lo >= self.lo && hi <= self.hi;
        match self.prefix {
            Prefix::Eq => contained,
            Prefix::Ne => !contained,
            Prefix::Gt => hi > self.hi,
            Prefix::Lt => lo < self.lo,
            Prefix::Ge => hi > self.hi || contained,
            Prefix::Le => lo < self.lo || contained,
            Prefix::Sa => lo >= self.hi,
            Prefix::Eb => hi <= self.lo,
            Prefix::Ap => {
                // Within 10% of the distance to now is not knowable purely; a day's slack
                // either side is what a clinician means by "about".
                lo < self.hi + 86_400 && hi > self.lo - 86_400
            }
        }
    }
}

/// The values an element path (`a.b`, arrays flattened) reaches in a resource.
fn values_at<'a>(resource: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![resource];
    for part in path.split('.') {
        let mut next = Vec::new();
        for v in current {
            match v.get(part) {
                Some(Value::Array(a)) => next.extend(a.iter()),
                Some(x) => next.push(x),
                None => {}
            }
        }
        current = next;
    }
    current
}

fn token_matches(t: &TokenParam, v: &Value) -> bool {
    let pair = |system: &str, code: &str| {
        t.system.as_deref().is_none_or(|s| s == system)
            && t.code.as_deref().is_none_or(|c| c == code)
    };
    match v {
        Value::String(code) => pair("", code),
        Value::Object(o) => {
            if let Some(codings) = o.get("coding").and_then(Value::as_array) {
                return codings.iter().any(|c| token_matches(t, c));
            }
            let system = o.get("system").and_then(Value::as_str).unwrap_or("");
            let code = o
                .get("code")
                .or_else(|| o.get("value"))
                .and_then(Value::as_str);
            code.is_some_and(|c| pair(system, c))
        }
        _ => false,
    }
}

/// The range of a date element: a date/dateTime string, or a Period.
fn element_range(v: &Value) -> Option<(i64, i64)> {
    match v {
        Value::String(s) => date_range(s),
        Value::Object(o) => {
            let start = o.get("start").and_then(Value::as_str).and_then(date_range);
            let end = o.get("end").and_then(Value::as_str).and_then(date_range);
            match (start, end) {
                (Some(s), Some(e)) => Some((s.0, e.1.max(s.1))),
                // An open period runs on: to the end of time.
                (Some(s), None) => Some((s.0, i64::MAX / 2)),
                (None, Some(e)) => Some((i64::MIN / 2, e.1)),
                (None, None) => None,
            }
        }
        _ => None,
    }
}

/// Whether a resource satisfies every condition of the search.
pub fn matches(search: &Search, resource: &Value) -> bool {
    if !search.ids.is_empty() {
        let id = resource.get("id").and_then(Value::as_str).unwrap_or("");
        if !search.ids.iter().any(|i| i == id) {
            return false;
        }
    }
    search.conditions.iter().all(|c| {
        let found: Vec<&Value> = c
            .def
            .paths
            .iter()
            .flat_map(|p| values_at(resource, p))
            .collect();
        match &c.values {
            Values::Token(tokens) => tokens
                .iter()
                .any(|t| found.iter().any(|v| token_matches(t, v))),
            Values::Date(dates) => dates.iter().any(|d| {
                found
                    .iter()
                    .filter_map(|v| element_range(v))
                    .any(|(lo, hi)| d.matches(lo, hi))
            }),
            Values::Reference(refs) => refs.iter().any(|r| {
                found
                    .iter()
                    .any(|v| v.get("reference").and_then(Value::as_str) == Some(r.as_str()))
            }),
        }
    })
}

/// The sort position of a resource by its type's first date element (`None` when undated).
pub fn date_of(resource_type: &str, resource: &Value) -> Option<i64> {
    let def = params_of(resource_type).iter().find(|d| d.kind == Date)?;
    def.paths
        .iter()
        .flat_map(|p| values_at(resource, p))
        .find_map(element_range)
        .map(|r| r.0)
}

/// Orders matches as the search asks: by default newest first, then by id.
pub fn sort(search: &Search, resources: &mut [Value]) {
    let id = |r: &Value| -> (usize, String) {
        let s = r
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        (s.len(), s)
    };
    let keys: Vec<(SortKey, bool)> = if search.sort.is_empty() {
        vec![(SortKey::Date, true), (SortKey::Id, false)]
    } else {
        search.sort.clone()
    };
    let t = search.resource_type.as_str();
    resources.sort_by(|a, b| {
        for (k, desc) in &keys {
            let o = match k {
                SortKey::Date => date_of(t, a).cmp(&date_of(t, b)),
                SortKey::Id => id(a).cmp(&id(b)),
            };
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        id(a).cmp(&id(b))
    });
}

/// The references of a resource at an include path (`Patient/…`, `Organization/…`).
pub fn references_at(resource: &Value, path: &str) -> Vec<String> {
    values_at(resource, path)
        .into_iter()
        .filter_map(|v| {
            v.get("reference")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn obs(id: &str, when: &str, code: &str) -> Value {
        json!({ "resourceType": "Observation", "id": id, "status": "final",
            "code": { "coding": [{ "system": "http://medis.or.jp/CodeSystem/master-JLAC10-17digits", "code": code }] },
            "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory" }] }],
            "subject": { "reference": "Patient/34000000018" },
            "effectiveDateTime": when })
    }

    #[test]
    fn unknown_parameters_are_refused_unless_lenient() {
        let e = parse("Observation", &q(&[("value-quantity", "gt5")]), false).unwrap_err();
        assert_eq!(e.param, "value-quantity");
        assert_eq!(e.code, "not-supported");
        let s = parse(
            "Observation",
            &q(&[("value-quantity", "gt5"), ("code", "x")]),
            true,
        )
        .unwrap();
        assert_eq!(s.ignored, ["value-quantity"]);
        assert_eq!(s.used, [("code".to_string(), "x".to_string())]);
        assert!(parse("Observation", &q(&[("code:text", "x")]), false).is_err());
        assert!(parse("Observation", &q(&[("date", "2026-13")]), false).is_err());
        assert!(parse("Observation", &q(&[("_count", "-1")]), false).is_err());
        assert!(
            parse(
                "Observation",
                &q(&[("_include", "Observation:device")]),
                false
            )
            .is_err()
        );
    }

    #[test]
    fn dates_follow_the_prefix_semantics() {
        let a = obs("1", "2026-03-10T09:30:00+09:00", "A");
        let b = obs("2", "2026-03-11", "B");
        let run = |v: &str| {
            let s = parse("Observation", &q(&[("date", v)]), false).unwrap();
            [&a, &b]
                .iter()
                .filter(|r| matches(&s, r))
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(run("2026-03-10"), ["1"]);
        assert_eq!(run("2026-03"), ["1", "2"]);
        assert_eq!(run("ge2026-03-11"), ["2"]);
        assert_eq!(run("lt2026-03-11"), ["1"]);
        assert_eq!(run("gt2026-03-10"), ["2"]);
        assert_eq!(run("ne2026-03-10"), ["2"]);
        assert_eq!(run("sa2026-03-10"), ["2"]);
        assert_eq!(run("eb2026-03-11"), ["1"]);
        assert_eq!(run("2026-03-10T00:30:00Z"), ["1"], "09:30 JST is 00:30 UTC");
        assert_eq!(run("2026-03-10T09:31"), Vec::<String>::new());
        let s = parse(
            "Observation",
            &q(&[("date", "ge2026-03-01"), ("date", "le2026-03-31")]),
            false,
        )
        .unwrap();
        assert_eq!(
            (s.since.as_deref(), s.until.as_deref()),
            (Some("2026-03-01"), Some("2026-03-31"))
        );
    }

    #[test]
    fn tokens_match_system_and_code() {
        let a = obs("1", "2026-03-10", "3D010");
        let run = |v: &str| {
            let s = parse("Observation", &q(&[("code", v)]), false).unwrap();
            matches(&s, &a)
        };
        assert!(run("3D010"));
        assert!(run(
            "http://medis.or.jp/CodeSystem/master-JLAC10-17digits|3D010"
        ));
        assert!(run("http://medis.or.jp/CodeSystem/master-JLAC10-17digits|"));
        assert!(!run("|3D010"), "|code means no system");
        assert!(run("x,3D010"), "comma is OR");
        assert!(!run("http://loinc.org|3D010"));
        let s = parse(
            "Observation",
            &q(&[("category", "laboratory"), ("status", "final")]),
            false,
        )
        .unwrap();
        assert!(matches(&s, &a));
    }

    #[test]
    fn one_patient_per_search_and_references_are_checked() {
        let s = parse(
            "Observation",
            &q(&[("patient", "Patient/34000000018")]),
            false,
        )
        .unwrap();
        assert_eq!(s.patient.as_deref(), Some("Patient/34000000018"));
        assert!(matches(&s, &obs("1", "2026", "x")));
        let s = parse(
            "Observation",
            &q(&[("subject:Patient", "34000000018")]),
            false,
        )
        .unwrap();
        assert_eq!(s.patient.as_deref(), Some("Patient/34000000018"));
        assert!(parse("Observation", &q(&[("patient", "1,2")]), false).is_err());
        assert!(parse("Observation", &q(&[("patient", "Group/1")]), false).is_err());
    }

    #[test]
    fn sorting_is_newest_first_by_default() {
        let s = parse("Observation", &[], false).unwrap();
        let mut v = vec![
            obs("1", "2026-01-01", "a"),
            obs("2", "2026-03-01", "a"),
            obs("10", "2026-03-01", "a"),
        ];
        sort(&s, &mut v);
        let ids: Vec<&str> = v.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["2", "10", "1"]);
        let s = parse("Observation", &q(&[("_sort", "date,-_id")]), false).unwrap();
        sort(&s, &mut v);
        let ids: Vec<&str> = v.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["1", "10", "2"]);
    }

    #[test]
    fn never_panics_on_odd_dates() {
        for t in [
            "",
            "2",
            "2026-",
            "2026-02-30",
            "2026-02-28T",
            "2026-02-28T25:00",
            "2026-02-28T10:00:6",
            "2026-02-28T10:00:00.",
            "2026-02-28T10:00+0900",
            "２０２６",
        ] {
            assert!(date_range(t).is_none(), "{t}");
        }
        assert!(date_range("2024-02-29T23:59:60.5-05:00").is_some());
    }

    #[test]
    fn last_updated_filters_on_when_the_server_stored_it() {
        let s = parse(
            "Observation",
            &q(&[("_lastUpdated", "ge2026-11-21")]),
            false,
        )
        .unwrap();
        // The storage window is by clinical date, which _lastUpdated says nothing about.
        assert_eq!((s.since.as_deref(), s.until.as_deref()), (None, None));
        let stored = |at: &str| json!({ "resourceType": "Observation", "id": "1", "meta": { "lastUpdated": at } });
        // 2026-11-21 in Japan begins at 2026-11-20T15:00Z.
        assert!(matches(&s, &stored("2026-11-20T15:00:00Z")));
        assert!(!matches(&s, &stored("2026-11-20T14:59:59Z")));
        let s = parse(
            "Observation",
            &q(&[("_lastUpdated", "lt2026-01-01T00:00:00Z")]),
            false,
        )
        .unwrap();
        assert!(!matches(&s, &stored("2026-11-21T00:00:00Z")));
        assert!(matches(&s, &stored("2025-12-31T23:59:59Z")));
        assert_eq!(
            parse("Observation", &q(&[("_lastUpdated", "yesterday")]), false)
                .unwrap_err()
                .param,
            "_lastUpdated"
        );
        assert!(
            parse(
                "Observation",
                &q(&[("_lastUpdated:missing", "true")]),
                false
            )
            .is_err()
        );
        // Listed among the supported parameters when a wrong one is sent.
        let e = parse("Observation", &q(&[("_tag", "x")]), false).unwrap_err();
        assert!(e.message.contains("_lastUpdated"), "{}", e.message);
    }
}
