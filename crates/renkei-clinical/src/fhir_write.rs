//! FHIR resources submitted by a facility (create, or entries of a transaction Bundle) turned
//! into items of its record: the same items an SS-MIX2 message would give, so the viewer, the
//! consent decision and the FHIR read side treat them alike.
//!
//! Pure: no IO, no panics on input. Each problem names the element (`Observation.code`), as
//! an OperationOutcome's `expression` does.

use serde_json::{Value, json};

/// The types a facility can submit.
pub const WRITABLE_TYPES: &[&str] = &[
    "Observation",
    "Condition",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationAdministration",
    "Encounter",
    "DiagnosticReport",
    "Procedure",
    "DocumentReference",
];

/// The largest file a DocumentReference may carry inline (`content.attachment.data`), as for
/// a consultation case's file.
pub const MAX_FILE_BYTES: usize = 20 * 1024 * 1024;

/// Who the resource is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatientRef {
    /// `Patient/<common ID>`.
    Common(String),
    /// `subject.identifier`: the facility's own patient ID under `system`.
    Local { system: String, value: String },
}

/// A submitted resource as an item of the record.
#[derive(Clone, Debug, PartialEq)]
pub struct Submitted {
    pub resource_type: String,
    pub patient: PatientRef,
    /// `system|value` of the resource's first identifier: re-sending it replaces, not adds.
    pub identifier: Option<String>,
    pub category: String,
    pub code: String,
    pub code_system: String,
    pub display: String,
    /// Local time, as the record keeps it (`YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS`).
    pub effective: Option<String>,
    pub end: Option<String>,
    pub status: String,
    pub detail: Value,
    /// The files of a DocumentReference (`content[].attachment.data`, decoded), in order.
    pub files: Vec<SubmittedFile>,
}

/// A file carried by a submitted DocumentReference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmittedFile {
    /// The attachment's title, or a name made from its content type (`document-1.pdf`).
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A problem with a submitted resource: the element and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{expression}: {message}")]
pub struct WriteError {
    pub expression: String,
    pub message: String,
}

fn fail(expression: impl Into<String>, message: impl Into<String>) -> WriteError {
    WriteError {
        expression: expression.into(),
        message: message.into(),
    }
}

/// The v2 name of a FHIR code-system URI (the inverse of [`crate::fhir::system_uri`]); other
/// URIs are kept as they are.
pub fn system_name(uri: &str) -> String {
    match uri {
        "http://medis.or.jp/CodeSystem/master-JLAC10-17digits"
        | "http://jpfhir.jp/fhir/clins/CodeSystem/JLAC10/JP_CLINS_ObsLabResult_CoreLabo_CS" => {
            "JC10".into()
        }
        "http://medis.or.jp/CodeSystem/master-HOT9" => "HOT9".into(),
        "http://medis.or.jp/CodeSystem/master-HOT7" => "HOT7".into(),
        "http://medis.or.jp/CodeSystem/master-HOT13" => "HOT13".into(),
        "http://capstandard.jp/iyaku.info/CodeSystem/YJ-code" => "YJ".into(),
        "http://medis.or.jp/CodeSystem/master-disease-exCode"
        | "http://medis.or.jp/CodeSystem/master-disease-keyNumber" => "MDCDX2".into(),
        "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/ICD10-2013-full" => "I10".into(),
        "http://loinc.org" => "LN".into(),
        other => other.to_string(),
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).map(str::trim)
}

/// A FHIR date/dateTime as the record's local time (Japan): `None` when absent.
fn local_time(v: &Value, key: &str, path: &str) -> Result<Option<String>, WriteError> {
    let Some(raw) = v.get(key) else {
        return Ok(None);
    };
    let Some(text) = raw.as_str() else {
        return Err(fail(
            format!("{path}.{key}"),
            "must be a date or dateTime string",
        ));
    };
    let Some((lo, _)) = crate::fhir_search::date_range(text) else {
        return Err(fail(
            format!("{path}.{key}"),
            format!("'{text}' is not a FHIR date or dateTime"),
        ));
    };
    if text.len() <= 10 {
        return Ok(Some(text.to_string()));
    }
    let day = crate::fhir_search::day_of(lo.div_euclid(86_400));
    let s = lo.rem_euclid(86_400);
    Ok(Some(format!(
        "{day}T{:02}:{:02}:{:02}",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )))
}

/// The first coding of a CodeableConcept (code, v2 system name, display), required.
fn concept(v: &Value, key: &str, path: &str) -> Result<(String, String, String), WriteError> {
    let Some(c) = v.get(key) else {
        return Err(fail(format!("{path}.{key}"), "is required"));
    };
    let text = str_at(c, "text").unwrap_or("");
    let first = c
        .get("coding")
        .and_then(Value::as_array)
        .and_then(|a| a.first());
    match first {
        Some(coding) => {
            let code = str_at(coding, "code").unwrap_or("");
            if code.is_empty() {
                return Err(fail(format!("{path}.{key}.coding[0].code"), "is required"));
            }
            let system = str_at(coding, "system").unwrap_or("");
            if system.is_empty() {
                return Err(fail(
                    format!("{path}.{key}.coding[0].system"),
                    "is required",
                ));
            }
            let display = str_at(coding, "display")
                .filter(|d| !d.is_empty())
                .unwrap_or(text);
            Ok((code.to_string(), system_name(system), display.to_string()))
        }
        None if !text.is_empty() => Ok((String::new(), String::new(), text.to_string())),
        None => Err(fail(
            format!("{path}.{key}"),
            "needs a coding (system and code) or a text",
        )),
    }
}

fn code_in(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(|c| c.get("coding"))
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(|c| str_at(c, "code"))
        .map(str::to_string)
}

fn patient(v: &Value, key: &str, path: &str) -> Result<PatientRef, WriteError> {
    let Some(r) = v.get(key) else {
        return Err(fail(format!("{path}.{key}"), "is required (the patient)"));
    };
    if let Some(reference) = str_at(r, "reference") {
        let id = reference.strip_prefix("Patient/").ok_or_else(|| {
            fail(
                format!("{path}.{key}.reference"),
                "must be Patient/<common ID>",
            )
        })?;
        if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail(
                format!("{path}.{key}.reference"),
                format!("'{reference}' is not Patient/<common ID>"),
            ));
        }
        return Ok(PatientRef::Common(id.to_string()));
    }
    if let Some(i) = r.get("identifier") {
        let system = str_at(i, "system").unwrap_or("");
        let value = str_at(i, "value").unwrap_or("");
        if system.is_empty() || value.is_empty() || value.len() > 64 {
            return Err(fail(
                format!("{path}.{key}.identifier"),
                "needs the facility's patient ID system and a value",
            ));
        }
        return Ok(PatientRef::Local {
            system: system.to_string(),
            value: value.to_string(),
        });
    }
    Err(fail(
        format!("{path}.{key}"),
        "needs a reference (Patient/<common ID>) or an identifier (the facility's patient ID)",
    ))
}

/// Reads a submitted resource of a writable type; `path` is where it sits (`Observation`, or
/// `Bundle.entry[2].resource`), for the messages.
pub fn read(v: &Value, path: &str) -> Result<Submitted, WriteError> {
    let Some(t) = str_at(v, "resourceType") else {
        return Err(fail(format!("{path}.resourceType"), "is required"));
    };
    if !WRITABLE_TYPES.contains(&t) {
        return Err(fail(
            format!("{path}.resourceType"),
            format!(
                "'{t}' cannot be submitted (submit {})",
                WRITABLE_TYPES.join(", ")
            ),
        ));
    }
    let path = if path.is_empty() { t } else { path };
    let identifier = v
        .get("identifier")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(|i| {
            let value = str_at(i, "value")?;
            (!value.is_empty()).then(|| format!("{}|{value}", str_at(i, "system").unwrap_or("")))
        });
    if identifier.as_ref().is_some_and(|i| i.len() > 300) {
        return Err(fail(format!("{path}.identifier"), "is too long"));
    }
    let status = str_at(v, "status").unwrap_or("").to_string();
    let mut s = Submitted {
        resource_type: t.to_string(),
        patient: PatientRef::Common(String::new()),
        identifier,
        category: String::new(),
        code: String::new(),
        code_system: String::new(),
        display: String::new(),
        effective: None,
        end: None,
        status: status.clone(),
        detail: json!({ "source": "fhir" }),
        files: Vec::new(),
    };
    match t {
        "Observation" => {
            s.patient = patient(v, "subject", path)?;
            let (code, system, display) = concept(v, "code", path)?;
            (s.code, s.code_system, s.display) = (code, system, display);
            if status.is_empty() {
                return Err(fail(format!("{path}.status"), "is required"));
            }
            s.status = match status.as_str() {
                "final" | "amended" => "F",
                "corrected" => "C",
                "preliminary" | "registered" => "P",
                "cancelled" | "entered-in-error" => "X",
                other => {
                    return Err(fail(
                        format!("{path}.status"),
                        format!("'{other}' is not an Observation status"),
                    ));
                }
            }
            .to_string();
            s.effective = local_time(v, "effectiveDateTime", path)?;
            if s.effective.is_none() {
                return Err(fail(format!("{path}.effectiveDateTime"), "is required"));
            }
            let lab = v
                .get("category")
                .and_then(Value::as_array)
                .map(|cats| {
                    cats.iter().any(|c| {
                        c.get("coding").and_then(Value::as_array).is_some_and(|cs| {
                            cs.iter().any(|x| str_at(x, "code") == Some("laboratory"))
                        })
                    })
                })
                .unwrap_or(true);
            s.category = if lab { "lab_result" } else { "observation" }.to_string();
            let mut detail = json!({ "source": "fhir" });
            if let Some(q) = v.get("valueQuantity") {
                let Some(n) = q.get("value").and_then(Value::as_f64) else {
                    return Err(fail(
                        format!("{path}.valueQuantity.value"),
                        "must be a number",
                    ));
                };
                detail["numeric"] = json!(n);
                detail["value"] = json!(n.to_string());
                detail["value_type"] = json!("NM");
                let unit = str_at(q, "unit")
                    .or_else(|| str_at(q, "code"))
                    .unwrap_or("");
                detail["unit"] = json!({ "code": str_at(q, "code").unwrap_or(""), "display": unit, "system": "" });
            } else if let Some(text) = str_at(v, "valueString") {
                detail["value"] = json!(text);
                detail["value_type"] = json!("ST");
            }
            if let Some(range) = v
                .get("referenceRange")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
            {
                let text = match (
                    range
                        .get("low")
                        .and_then(|l| l.get("value"))
                        .and_then(Value::as_f64),
                    range
                        .get("high")
                        .and_then(|h| h.get("value"))
                        .and_then(Value::as_f64),
                ) {
                    (Some(lo), Some(hi)) => format!("{lo}-{hi}"),
                    _ => str_at(range, "text").unwrap_or("").to_string(),
                };
                detail["reference_range"] = json!(text);
            }
            if let Some(flag) = code_in(
                &v.get("interpretation")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                    .map(|i| json!({ "x": i }))
                    .unwrap_or(Value::Null),
                "x",
            ) {
                detail["abnormal"] = json!(flag);
            }
            s.detail = detail;
        }
        "Condition" => {
            s.patient = patient(v, "subject", path)?;
            let (code, system, display) = concept(v, "code", path)?;
            (s.code, s.code_system, s.display) = (code, system, display);
            s.category = "diagnosis".into();
            s.effective =
                local_time(v, "onsetDateTime", path)?.or(local_time(v, "recordedDate", path)?);
            s.end = local_time(v, "abatementDateTime", path)?;
            let resolved = matches!(
                code_in(v, "clinicalStatus").as_deref(),
                Some("resolved" | "inactive" | "remission")
            );
            let provisional = matches!(
                code_in(v, "verificationStatus").as_deref(),
                Some("provisional" | "differential" | "unconfirmed")
            );
            s.status = if resolved { "resolved" } else { "active" }.into();
            s.detail = json!({
                "source": "fhir",
                "recorded": local_time(v, "recordedDate", path)?,
                "certainty": if provisional { json!({ "code": "S", "display": "疑い" }) } else { Value::Null },
                "outcome": if resolved { json!({ "code": "1", "display": "治癒" }) } else { Value::Null },
            });
        }
        "AllergyIntolerance" => {
            s.patient = patient(v, "patient", path)?;
            let (code, system, display) = concept(v, "code", path)?;
            (s.code, s.code_system, s.display) = (code, system, display);
            let category = v
                .get("category")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .unwrap_or("");
            let high = str_at(v, "criticality") == Some("high");
            // A high-criticality medication allergy is a contraindication (薬剤禁忌).
            s.category = if category == "medication" && high {
                "contraindication"
            } else {
                "allergy"
            }
            .into();
            s.effective =
                local_time(v, "onsetDateTime", path)?.or(local_time(v, "recordedDate", path)?);
            s.status = code_in(v, "clinicalStatus").unwrap_or_else(|| "active".into());
            if s.status == "resolved" || s.status == "inactive" {
                s.end = s.effective.clone();
            }
            let reaction = v
                .get("reaction")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(|r| r.get("manifestation"))
                .and_then(Value::as_array)
                .and_then(|m| m.first())
                .and_then(|m| {
                    str_at(m, "text")
                        .map(str::to_string)
                        .or_else(|| code_in(&json!({ "x": m }), "x"))
                })
                .unwrap_or_default();
            s.detail = json!({
                "source": "fhir",
                "type": { "code": match category { "medication" => "DA", "food" => "FA", "environment" => "EA", _ => "" }, "display": category, "system": "" },
                "severity": { "code": if high { "SV" } else { "" }, "display": "", "system": "" },
                "reaction": reaction,
            });
        }
        "MedicationRequest" => {
            s.patient = patient(v, "subject", path)?;
            let (code, system, display) = concept(v, "medicationCodeableConcept", path)?;
            (s.code, s.code_system, s.display) = (code, system, display);
            let injection = v
                .get("meta")
                .and_then(|m| m.get("profile"))
                .and_then(Value::as_array)
                .is_some_and(|p| {
                    p.iter()
                        .filter_map(Value::as_str)
                        .any(|p| p.contains("Injection"))
                });
            s.category = if injection {
                "injection"
            } else {
                "prescription"
            }
            .into();
            s.effective = local_time(v, "authoredOn", path)?;
            if s.effective.is_none() {
                return Err(fail(format!("{path}.authoredOn"), "is required"));
            }
            s.status = match status.as_str() {
                "cancelled" | "stopped" | "entered-in-error" => "CA",
                "completed" => "CM",
                "" => return Err(fail(format!("{path}.status"), "is required")),
                _ => "NW",
            }
            .into();
            let dosage = v
                .get("dosageInstruction")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .cloned()
                .unwrap_or(Value::Null);
            let dose = dosage
                .get("doseAndRate")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(|d| d.get("doseQuantity"))
                .cloned()
                .unwrap_or(Value::Null);
            let days = v
                .get("dispenseRequest")
                .and_then(|d| d.get("expectedSupplyDuration"))
                .and_then(|d| d.get("value"))
                .and_then(Value::as_f64);
            s.detail = json!({
                "source": "fhir",
                "dose": dose.get("value").and_then(Value::as_f64).map(|n| n.to_string()).unwrap_or_default(),
                "dose_unit": { "code": "", "display": str_at(&dose, "unit").unwrap_or(""), "system": "" },
                "usage": { "code": "", "display": str_at(&dosage, "text").unwrap_or(""), "system": "" },
                "days": days.map(|d| d.to_string()).unwrap_or_default(),
                "prescriber": { "name": v.get("requester").and_then(|r| str_at(r, "display")).unwrap_or("") },
            });
        }
        "Encounter" => {
            s.patient = patient(v, "subject", path)?;
            s.category = "encounter".into();
            let class = v.get("class").and_then(|c| str_at(c, "code")).unwrap_or("");
            let period = v.get("period").cloned().unwrap_or(Value::Null);
            s.effective = local_time(&period, "start", &format!("{path}.period"))?;
            if s.effective.is_none() {
                return Err(fail(format!("{path}.period.start"), "is required"));
            }
            s.end = local_time(&period, "end", &format!("{path}.period"))?;
            let (event, name) = match (class, s.end.is_some()) {
                ("IMP", false) => ("A01", "admission"),
                ("IMP", true) => ("A03", "discharge"),
                _ => ("A04", "visit"),
            };
            s.code = event.into();
            s.code_system = "HL70003".into();
            s.display = name.into();
            s.status = status;
            s.detail = json!({
                "source": "fhir",
                "event": name,
                "patient_class": match class { "IMP" => "I", "EMER" => "E", "HH" => "H", _ => "O" },
            });
        }
        "MedicationAdministration" => {
            s.patient = patient(v, "subject", path)?;
            let (code, system, display) = concept(v, "medicationCodeableConcept", path)?;
            (s.code, s.code_system, s.display) = (code, system, display);
            s.category = "administration".into();
            s.effective = match local_time(v, "effectiveDateTime", path)? {
                Some(t) => Some(t),
                None => {
                    let period = v.get("effectivePeriod").cloned().unwrap_or(Value::Null);
                    local_time(&period, "start", &format!("{path}.effectivePeriod"))?
                }
            };
            if s.effective.is_none() {
                return Err(fail(
                    format!("{path}.effectiveDateTime"),
                    "is required (or effectivePeriod.start)",
                ));
            }
            s.status = match status.as_str() {
                "completed" | "in-progress" | "on-hold" => "CM",
                "not-done" | "stopped" | "entered-in-error" => "CA",
                "" => return Err(fail(format!("{path}.status"), "is required")),
                other => {
                    return Err(fail(
                        format!("{path}.status"),
                        format!("'{other}' is not a MedicationAdministration status"),
                    ));
                }
            }
            .into();
            let dose = v
                .get("dosage")
                .and_then(|d| d.get("dose"))
                .cloned()
                .unwrap_or(Value::Null);
            let amount = match dose.get("value") {
                None => String::new(),
                Some(n) => match n.as_f64() {
                    Some(n) => n.to_string(),
                    None => {
                        return Err(fail(
                            format!("{path}.dosage.dose.value"),
                            "must be a number",
                        ));
                    }
                },
            };
            let by = v
                .get("performer")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(|p| p.get("actor"))
                .and_then(|a| str_at(a, "display"))
                .unwrap_or("");
            s.detail = json!({
                "source": "fhir",
                "amount": amount,
                "unit": { "code": str_at(&dose, "code").unwrap_or(""), "display": str_at(&dose, "unit").unwrap_or(""), "system": "" },
                "route": v.get("dosage").and_then(|d| d.get("route")).and_then(|r| str_at(r, "text")).unwrap_or(""),
                "administered_by": { "name": by },
            });
        }
        "DiagnosticReport" | "Procedure" => {
            // Both are the record's examination report (検査・処置の報告), as an SS-MIX2 exam
            // result is; the FHIR read side shows such an item as both resources.
            s.patient = patient(v, "subject", path)?;
            let (code, system, display) = concept(v, "code", path)?;
            (s.code, s.code_system, s.display) = (code, system, display);
            s.category = "exam_result".into();
            let report = t == "DiagnosticReport";
            let (at, period) = if report {
                ("effectiveDateTime", "effectivePeriod")
            } else {
                ("performedDateTime", "performedPeriod")
            };
            s.effective = match local_time(v, at, path)? {
                Some(t) => Some(t),
                None => {
                    let p = v.get(period).cloned().unwrap_or(Value::Null);
                    local_time(&p, "start", &format!("{path}.{period}"))?
                }
            };
            if s.effective.is_none() {
                return Err(fail(
                    format!("{path}.{at}"),
                    format!("is required (or {period}.start)"),
                ));
            }
            s.status = match (report, status.as_str()) {
                (_, "") => return Err(fail(format!("{path}.status"), "is required")),
                (true, "final" | "amended" | "appended") | (false, "completed") => "F",
                (true, "corrected") => "C",
                (true, "preliminary" | "partial" | "registered") | (false, "in-progress") => "P",
                (true, "cancelled" | "entered-in-error")
                | (false, "not-done" | "stopped" | "entered-in-error") => "X",
                (_, other) => {
                    return Err(fail(
                        format!("{path}.status"),
                        format!("'{other}' is not a {t} status"),
                    ));
                }
            }
            .into();
            let kind = v
                .get("category")
                .and_then(|c| {
                    if report {
                        c.as_array().and_then(|a| a.first())
                    } else {
                        Some(c)
                    }
                })
                .and_then(|c| {
                    str_at(c, "text").filter(|t| !t.is_empty()).or_else(|| {
                        c.get("coding")
                            .and_then(Value::as_array)
                            .and_then(|a| a.first())
                            .and_then(|x| str_at(x, "display").or_else(|| str_at(x, "code")))
                    })
                })
                .unwrap_or(if report { "" } else { "処置" });
            let text = if report {
                str_at(v, "conclusion").unwrap_or("")
            } else {
                v.get("note")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                    .and_then(|n| str_at(n, "text"))
                    .unwrap_or("")
            };
            let observations = if text.is_empty() {
                json!([])
            } else {
                json!([{ "code": { "code": "", "display": "", "system": "" }, "detail": { "value": text, "value_type": "TX" } }])
            };
            s.detail = json!({ "source": "fhir", "kind": kind, "observations": observations });
        }
        "DocumentReference" => {
            s.patient = patient(v, "subject", path)?;
            let (code, system, display) = concept(v, "type", path)?;
            (s.code, s.code_system, s.display) = (code, system, display);
            s.status = match status.as_str() {
                "current" => "final",
                "superseded" | "entered-in-error" => "X",
                "" => return Err(fail(format!("{path}.status"), "is required")),
                other => {
                    return Err(fail(
                        format!("{path}.status"),
                        format!("'{other}' is not a DocumentReference status"),
                    ));
                }
            }
            .into();
            s.effective = local_time(v, "date", path)?;
            if s.effective.is_none() {
                return Err(fail(format!("{path}.date"), "is required"));
            }
            let contents = v.get("content").and_then(Value::as_array);
            let Some(contents) = contents.filter(|c| !c.is_empty()) else {
                return Err(fail(
                    format!("{path}.content"),
                    "needs at least one attachment with its data",
                ));
            };
            let mut listed = Vec::with_capacity(contents.len());
            for (i, c) in contents.iter().enumerate() {
                let at = format!("{path}.content[{i}].attachment");
                let a = c.get("attachment").unwrap_or(&Value::Null);
                let Some(data) = a.get("data").and_then(Value::as_str) else {
                    return Err(fail(
                        format!("{at}.data"),
                        "is required (the file, base64-encoded; a url alone is not fetched)",
                    ));
                };
                use base64::Engine as _;
                let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(data.trim())
                else {
                    return Err(fail(format!("{at}.data"), "is not valid base64"));
                };
                if bytes.is_empty() {
                    return Err(fail(format!("{at}.data"), "is empty"));
                }
                if bytes.len() > MAX_FILE_BYTES {
                    return Err(fail(
                        format!("{at}.data"),
                        format!(
                            "is {} bytes; a file may be at most {MAX_FILE_BYTES} bytes",
                            bytes.len()
                        ),
                    ));
                }
                let content_type = str_at(a, "contentType").unwrap_or("");
                let name = file_name(str_at(a, "title").unwrap_or(""), content_type, i);
                let dicom = bytes.get(128..132) == Some(b"DICM".as_slice());
                listed.push(
                    json!({ "name": name, "size": bytes.len(), "main": i == 0, "dicom": dicom }),
                );
                s.files.push(SubmittedFile { name, bytes });
            }
            // A document with DICOM files is an image study (画像), as consent and the viewer
            // see it; any other is a document (文書).
            s.category = if listed.iter().any(|f| f["dicom"] == true) {
                "image"
            } else {
                "document"
            }
            .into();
            let title = str_at(v, "description")
                .filter(|d| !d.is_empty())
                .unwrap_or(&s.display)
                .to_string();
            s.detail = json!({ "source": "fhir", "title": title, "files": listed });
        }
        other => {
            return Err(fail(
                format!("{path}.resourceType"),
                format!("'{other}' cannot be submitted"),
            ));
        }
    }
    Ok(s)
}

/// A file name for an attachment: its title when it has one that is safe to keep (no path
/// separators or control characters), otherwise `document-N` with the extension its content
/// type implies, so the read side serves it with the same type.
fn file_name(title: &str, content_type: &str, index: usize) -> String {
    let safe = !title.is_empty()
        && title.chars().count() <= 200
        && !title
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\');
    if safe && title.contains('.') {
        return title.to_string();
    }
    let ext = match content_type.split(';').next().unwrap_or("").trim() {
        "application/pdf" => "pdf",
        "application/xml" | "text/xml" => "xml",
        "text/plain" => "txt",
        "text/html" => "html",
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/tiff" => "tif",
        "application/dicom" => "dcm",
        _ => "bin",
    };
    if safe {
        format!("{title}.{ext}")
    } else {
        format!("document-{}.{ext}", index + 1)
    }
}

/// The stored date of a local time (`YYYY-MM-DD`).
pub fn date_of(local: &str) -> String {
    local.get(..10).unwrap_or(local).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs() -> Value {
        json!({
            "resourceType": "Observation",
            "identifier": [{ "system": "urn:oid:1.2.3", "value": "LAB-1" }],
            "status": "final",
            "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory" }] }],
            "code": { "coding": [{ "system": "http://medis.or.jp/CodeSystem/master-JLAC10-17digits", "code": "3D010000001926101", "display": "グルコース" }] },
            "subject": { "reference": "Patient/34000000018" },
            "effectiveDateTime": "2026-11-20T00:30:00Z",
            "valueQuantity": { "value": 105, "unit": "mg/dL" },
            "referenceRange": [{ "low": { "value": 73 }, "high": { "value": 109 } }],
        })
    }

    #[test]
    fn an_observation_becomes_a_lab_result() {
        let s = read(&obs(), "").unwrap();
        assert_eq!(s.category, "lab_result");
        assert_eq!(s.code_system, "JC10");
        assert_eq!(s.patient, PatientRef::Common("34000000018".into()));
        assert_eq!(
            s.effective.as_deref(),
            Some("2026-11-20T09:30:00"),
            "Japan time"
        );
        assert_eq!(s.identifier.as_deref(), Some("urn:oid:1.2.3|LAB-1"));
        assert_eq!(s.detail["numeric"], 105.0);
        assert_eq!(s.detail["reference_range"], "73-109");
    }

    #[test]
    fn problems_name_the_element() {
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({ "resourceType": "Patient" }),
                "Observation.resourceType",
            ),
            (json!({ "status": "final" }), "Observation.resourceType"),
        ];
        for (v, expected) in cases {
            assert_eq!(read(&v, "Observation").unwrap_err().expression, expected);
        }
        let mut v = obs();
        v.as_object_mut().unwrap().remove("code");
        assert_eq!(read(&v, "").unwrap_err().expression, "Observation.code");
        let mut v = obs();
        v["subject"] = json!({ "reference": "Group/1" });
        assert_eq!(
            read(&v, "Bundle.entry[2].resource").unwrap_err().expression,
            "Bundle.entry[2].resource.subject.reference"
        );
        let mut v = obs();
        v["effectiveDateTime"] = json!("2026-02-30");
        assert_eq!(
            read(&v, "").unwrap_err().expression,
            "Observation.effectiveDateTime"
        );
        let mut v = obs();
        v["status"] = json!("done");
        assert_eq!(read(&v, "").unwrap_err().expression, "Observation.status");
        let mut v = obs();
        v["valueQuantity"] = json!({ "value": "many" });
        assert_eq!(
            read(&v, "").unwrap_err().expression,
            "Observation.valueQuantity.value"
        );
    }

    #[test]
    fn a_high_criticality_medication_allergy_is_a_contraindication() {
        let v = json!({
            "resourceType": "AllergyIntolerance",
            "category": ["medication"], "criticality": "high",
            "code": { "text": "ペニシリン系" },
            "patient": { "identifier": { "system": "urn:oid:1.2.392.100495.20.3.51.13411234564", "value": "A-1" } },
        });
        let s = read(&v, "").unwrap();
        assert_eq!(s.category, "contraindication");
        assert_eq!(
            s.patient,
            PatientRef::Local {
                system: "urn:oid:1.2.392.100495.20.3.51.13411234564".into(),
                value: "A-1".into()
            }
        );
    }

    #[test]
    fn attachment_names_keep_the_type_and_no_path() {
        assert_eq!(file_name("紹介状.pdf", "application/pdf", 0), "紹介状.pdf");
        assert_eq!(file_name("紹介状", "application/pdf", 0), "紹介状.pdf");
        assert_eq!(
            file_name("../../etc/passwd", "text/plain", 1),
            "document-2.txt"
        );
        assert_eq!(file_name("", "image/jpeg; q=1", 0), "document-1.jpg");
        assert_eq!(file_name("a\nb", "", 2), "document-3.bin");
    }

    #[test]
    fn never_panics_on_odd_json() {
        for v in [
            json!(null),
            json!([]),
            json!({ "resourceType": 5 }),
            json!({ "resourceType": "Observation", "code": [], "subject": "x" }),
            json!({ "resourceType": "Encounter", "subject": { "reference": "Patient/1" }, "period": 3 }),
            json!({ "resourceType": "MedicationRequest", "subject": { "reference": "Patient/1" }, "medicationCodeableConcept": { "coding": [{}] } }),
            json!({ "resourceType": "DocumentReference", "subject": { "reference": "Patient/1" }, "type": { "text": "x" }, "status": "current", "date": "2026-11-21", "content": "x" }),
            json!({ "resourceType": "DocumentReference", "subject": { "reference": "Patient/1" }, "type": { "text": "x" }, "status": "current", "date": "2026-11-21", "content": [{ "attachment": 5 }] }),
            json!({ "resourceType": "DocumentReference", "subject": { "reference": "Patient/1" }, "type": { "text": "x" }, "status": "current", "date": "2026-11-21", "content": [{ "attachment": { "data": "" } }] }),
            json!({ "resourceType": "DiagnosticReport", "subject": { "reference": "Patient/1" }, "code": { "text": "x" }, "status": "final", "category": 3 }),
            json!({ "resourceType": "Procedure", "subject": { "reference": "Patient/1" }, "code": { "text": "x" }, "status": "completed", "performedPeriod": [] }),
            json!({ "resourceType": "MedicationAdministration", "subject": { "reference": "Patient/1" }, "medicationCodeableConcept": { "text": "x" }, "status": "completed", "effectiveDateTime": "2026-11-21", "dosage": { "dose": { "value": [] } } }),
        ] {
            assert!(read(&v, "").is_err(), "{v}");
        }
    }
}
