//! The clinical record as FHIR R4 resources (JSON), with JP Core profiles and the Japanese code
//! systems (JLAC10, HOT, YJ, MEDIS 病名交換用コード, ICD-10; facility and patient identifiers).
//!
//! Pure: an [`Entry`] (one stored item, as the consent decision let it through) becomes one
//! resource of each type it is seen as ([`types_of`]): a lab result is an Observation; an exam
//! result is a DiagnosticReport and a Procedure; a pharmacy's dispensing is a MedicationDispense.
//! Logical ids are the item's id, so a resource can be read back by id.

use serde_json::{Value, json};

/// JP Core's profile base.
const JP: &str = "http://jpfhir.jp/fhir/core/StructureDefinition/";
/// Where times without a zone were recorded: Japan (JST).
const ZONE: &str = "+09:00";

/// The clinical resource types served from the record.
pub const CLINICAL_TYPES: &[&str] = &[
    "Encounter",
    "Condition",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationAdministration",
    "MedicationDispense",
    "Observation",
    "DiagnosticReport",
    "Procedure",
    "ImagingStudy",
    "DocumentReference",
];

/// One item of the record, as stored.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    pub id: i64,
    /// The facility whose record it is (its Organization's logical id).
    pub facility: i64,
    /// `renkei-clinical`'s category key.
    pub category: &'a str,
    pub code: &'a str,
    pub code_system: &'a str,
    pub display: &'a str,
    /// `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS]`, local time.
    pub effective: Option<&'a str>,
    pub end: Option<&'a str>,
    pub status: &'a str,
    pub detail: &'a Value,
    /// When the server stored it (µs since the epoch, UTC): `meta.lastUpdated`.
    pub last_updated: Option<i64>,
}

impl Entry<'_> {
    fn source(&self) -> &str {
        self.detail
            .get("source")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// The categories whose items a resource type is made from (what to read for a search).
pub fn categories_of(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "Encounter" => &["encounter"],
        "Condition" => &["diagnosis"],
        "AllergyIntolerance" => &["allergy", "contraindication"],
        "MedicationRequest" => &["prescription", "injection"],
        "MedicationAdministration" => &["administration"],
        "MedicationDispense" => &["prescription"],
        "Observation" => &["lab_result", "observation"],
        "DiagnosticReport" | "Procedure" => &["exam_result"],
        "ImagingStudy" => &["image", "exam_result"],
        "DocumentReference" => &["document", "image"],
        _ => &[],
    }
}

/// The resource types an entry is seen as.
pub fn types_of(e: &Entry) -> &'static [&'static str] {
    match e.category {
        "encounter" => &["Encounter"],
        "diagnosis" => &["Condition"],
        "allergy" | "contraindication" => &["AllergyIntolerance"],
        "prescription" if e.source() == "jahis" => &["MedicationDispense"],
        "prescription" | "injection" => &["MedicationRequest"],
        "administration" => &["MedicationAdministration"],
        "lab_result" | "observation" => &["Observation"],
        "exam_result" => {
            if has_studies(e) {
                &["DiagnosticReport", "Procedure", "ImagingStudy"]
            } else {
                &["DiagnosticReport", "Procedure"]
            }
        }
        "image" => &["ImagingStudy", "DocumentReference"],
        "document" => &["DocumentReference"],
        _ => &[],
    }
}

fn has_studies(e: &Entry) -> bool {
    e.detail
        .get("studies")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty())
}

/// The FHIR system URI of a code system as HL7 v2 names it (table 0396 and JAHIS usage).
pub fn system_uri(system: &str, facility: i64) -> String {
    match system.trim() {
        "JC10" => "http://medis.or.jp/CodeSystem/master-JLAC10-17digits".into(),
        "JC11" => "http://medis.or.jp/CodeSystem/master-JLAC11".into(),
        "HOT" | "HOT9" => "http://medis.or.jp/CodeSystem/master-HOT9".into(),
        "HOT7" => "http://medis.or.jp/CodeSystem/master-HOT7".into(),
        "HOT13" => "http://medis.or.jp/CodeSystem/master-HOT13".into(),
        "YJ" => "http://capstandard.jp/iyaku.info/CodeSystem/YJ-code".into(),
        "MDCDX" | "MDCDX2" => "http://medis.or.jp/CodeSystem/master-disease-exCode".into(),
        "I10" | "ICD10" => "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/ICD10-2013-full".into(),
        "LN" => "http://loinc.org".into(),
        "UCUM" => "http://unitsofmeasure.org".into(),
        "JAMISDP01" => "http://jami.jp/CodeSystem/MedicationUsage".into(),
        "MR9P" => "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/MedicationUnitMERIT9Code".into(),
        // HL7 v2 tables (HL70162 route, HL70078 interpretation, …).
        t if t.len() == 7 && t.starts_with("HL7") && t[3..].bytes().all(|b| b.is_ascii_digit()) => {
            format!("http://terminology.hl7.org/CodeSystem/v2-{}", &t[3..])
        }
        // Already a URI (a resource submitted over FHIR).
        uri if uri.starts_with("http://")
            || uri.starts_with("https://")
            || uri.starts_with("urn:") =>
        {
            uri.to_string()
        }
        // A facility's own codes: only that facility's, so the system names it.
        "" => format!("urn:renkei:facility:{facility}:local"),
        other => format!("urn:renkei:facility:{facility}:{}", other.replace(' ', "_")),
    }
}

/// MEDIS 標準病名マスター 病名管理番号 (8 digits), the code JP_Condition_eCS requires.
pub const DISEASE_KEY_NUMBER: &str = "http://medis.or.jp/CodeSystem/master-disease-keyNumber";

/// Whether a MEDIS disease code is a 病名管理番号 (8 digits) rather than a 病名交換用コード.
pub fn is_disease_key_number(code: &str) -> bool {
    code.len() == 8 && code.bytes().all(|b| b.is_ascii_digit())
}

fn coding(system: &str, code: &str, display: &str, facility: i64) -> Option<Value> {
    if code.trim().is_empty() {
        return None;
    }
    let uri = match system.trim() {
        // MDCDX2 names both MEDIS disease codes (JP Core's Condition notes): the 8-digit
        // 病名管理番号 and the 4-character 病名交換用コード.
        "MDCDX" | "MDCDX2" if is_disease_key_number(code.trim()) => DISEASE_KEY_NUMBER.to_string(),
        s => system_uri(s, facility),
    };
    let mut c = json!({ "system": uri, "code": code.trim() });
    if !display.trim().is_empty() {
        c["display"] = json!(display.trim());
    }
    Some(c)
}

fn concept(system: &str, code: &str, display: &str, facility: i64) -> Value {
    let mut c = json!({});
    if let Some(coding) = coding(system, code, display, facility) {
        c["coding"] = json!([coding]);
    }
    if !display.trim().is_empty() {
        c["text"] = json!(display.trim());
    }
    c
}

/// A coded value of the detail (`{code, display, system}`) as a CodeableConcept.
fn detail_concept(v: Option<&Value>, facility: i64) -> Option<Value> {
    let v = v?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    if s("code").is_empty() && s("display").is_empty() {
        return None;
    }
    Some(concept(s("system"), s("code"), s("display"), facility))
}

fn text(detail: &Value, key: &str) -> String {
    match detail.get(key) {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// A stored local time as a FHIR dateTime: dates stay dates; times get the JST offset.
pub fn fhir_datetime(local: &str) -> Option<String> {
    let t = local.trim();
    if t.len() < 4 || !t.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(match t.len() {
        4 | 7 | 10 => t.to_string(),
        16 => format!("{t}:00{ZONE}"),
        19 => format!("{t}{ZONE}"),
        _ => t.get(..10)?.to_string(),
    })
}

fn base(resource_type: &str, e: &Entry, profile: &str) -> Value {
    let mut meta = json!({ "profile": [format!("{JP}{profile}")] });
    if let Some(at) = e.last_updated.and_then(instant_utc) {
        meta["lastUpdated"] = json!(at);
    }
    json!({
        "resourceType": resource_type,
        "id": e.id.to_string(),
        "meta": meta,
    })
}

/// A FHIR `instant` (`YYYY-MM-DDThh:mm:ssZ`) of µs since the epoch; `None` out of range.
pub fn instant_utc(us: i64) -> Option<String> {
    let secs = us.div_euclid(1_000_000);
    let rem = secs.rem_euclid(86_400);
    let epoch = crate::fhir_search::days_from_civil(1970, 1, 1);
    let (year, month, day) =
        crate::fhir_search::civil_from_days(secs.div_euclid(86_400).checked_add(epoch)?);
    if !(1..=9999).contains(&year) {
        return None;
    }
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

fn subject(patient: &str) -> Value {
    json!({ "reference": format!("Patient/{patient}") })
}

fn organization(facility: i64) -> Value {
    json!({ "reference": format!("Organization/{facility}") })
}

fn person_name(v: Option<&Value>) -> String {
    v.and_then(|p| p.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The entry as `resource_type`, for the patient whose logical id is `patient`; `None` when the
/// entry is not of that type.
pub fn to_resource(resource_type: &str, e: &Entry, patient: &str) -> Option<Value> {
    if !types_of(e).contains(&resource_type) {
        return None;
    }
    let when = e.effective.and_then(fhir_datetime);
    let d = e.detail;
    let f = e.facility;
    let mut r = match resource_type {
        "Encounter" => {
            let mut r = base("Encounter", e, "JP_Encounter");
            let event = text(d, "event");
            let class = match text(d, "patient_class").as_str() {
                "I" => ("IMP", "inpatient encounter"),
                "E" => ("EMER", "emergency"),
                "H" | "R" => ("HH", "home health"),
                _ => ("AMB", "ambulatory"),
            };
            r["status"] = json!(match (e.code, e.end.is_some()) {
                (_, true) => "finished",
                ("A03", _) => "finished",
                ("A11" | "A13" | "A27", _) => "cancelled",
                ("A14" | "A05", _) => "planned",
                _ => "in-progress",
            });
            r["class"] = json!({ "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class.0, "display": class.1 });
            if !event.is_empty() || !e.display.is_empty() {
                r["type"] =
                    json!([{ "text": if e.display.is_empty() { &event } else { e.display } }]);
            }
            r["subject"] = subject(patient);
            let mut period = json!({});
            if let Some(w) = &when {
                period["start"] = json!(w);
            }
            if let Some(end) = e.end.and_then(fhir_datetime) {
                period["end"] = json!(end);
            }
            r["period"] = period;
            let ward = [text(d, "ward"), text(d, "room"), text(d, "bed")]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            if !ward.is_empty() {
                r["location"] = json!([{ "location": { "display": ward } }]);
            }
            let attending = person_name(d.get("attending"));
            if !attending.is_empty() {
                r["participant"] = json!([{ "individual": { "display": attending } }]);
            }
            r["serviceProvider"] = organization(f);
            r
        }
        "Condition" => {
            let mut r = base("Condition", e, "JP_Condition");
            let resolved = e.end.is_some()
                || d.get("outcome")
                    .and_then(|o| o.get("code"))
                    .and_then(Value::as_str)
                    .is_some_and(|c| !c.is_empty() && c != "0");
            r["clinicalStatus"] = json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": if resolved { "resolved" } else { "active" } }] });
            let suspected = d
                .get("certainty")
                .and_then(|c| c.get("code"))
                .and_then(Value::as_str)
                .is_some_and(|c| c == "S" || c == "1")
                || e.display.ends_with("の疑い")
                || e.display.ends_with("疑い");
            r["verificationStatus"] = json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": if suspected { "provisional" } else { "confirmed" } }] });
            r["category"] = json!([{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis" }] }]);
            r["code"] = concept(e.code_system, e.code, e.display, f);
            r["subject"] = subject(patient);
            if let Some(w) = &when {
                r["onsetDateTime"] = json!(w);
            }
            if let Some(end) = e.end.and_then(fhir_datetime) {
                r["abatementDateTime"] = json!(end);
            }
            let recorded = text(d, "recorded");
            if let Some(rec) = fhir_datetime(&recorded) {
                r["recordedDate"] = json!(rec);
            }
            r
        }
        "AllergyIntolerance" => {
            let mut r = base("AllergyIntolerance", e, "JP_AllergyIntolerance");
            r["clinicalStatus"] = json!({ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": if e.end.is_some() { "resolved" } else { "active" } }] });
            let kind = d
                .get("type")
                .and_then(|t| t.get("code"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let category = match kind {
                "DA" | "MA" => Some("medication"),
                "FA" => Some("food"),
                "EA" | "PA" | "AA" => Some("environment"),
                _ => None,
            };
            if let Some(c) = category {
                r["category"] = json!([c]);
            }
            // A contraindication (薬剤禁忌) is a medication allergy of high criticality, as
            // JP-CLINS folds it in.
            if e.category == "contraindication" {
                r["category"] = json!(["medication"]);
                r["criticality"] = json!("high");
            } else if let Some(sev) = d
                .get("severity")
                .and_then(|s| s.get("code"))
                .and_then(Value::as_str)
            {
                match sev {
                    "SV" => r["criticality"] = json!("high"),
                    "MO" | "MI" => r["criticality"] = json!("low"),
                    _ => {}
                }
            }
            r["code"] = concept(e.code_system, e.code, e.display, f);
            r["patient"] = subject(patient);
            if let Some(w) = &when {
                r["onsetDateTime"] = json!(w);
            }
            let reaction = text(d, "reaction");
            if !reaction.is_empty() {
                r["reaction"] = json!([{ "manifestation": [{ "text": reaction }] }]);
            }
            r
        }
        "MedicationRequest" => {
            let injection = e.category == "injection";
            let mut r = base(
                "MedicationRequest",
                e,
                if injection {
                    "JP_MedicationRequest_Injection"
                } else {
                    "JP_MedicationRequest"
                },
            );
            r["status"] = json!(match e.status {
                "CA" | "DC" | "cancelled" => "cancelled",
                "CM" => "completed",
                _ => "active",
            });
            r["intent"] = json!("order");
            r["medicationCodeableConcept"] = concept(e.code_system, e.code, e.display, f);
            r["subject"] = subject(patient);
            if let Some(w) = &when {
                r["authoredOn"] = json!(w);
            }
            let prescriber = person_name(d.get("prescriber"));
            if !prescriber.is_empty() {
                r["requester"] = json!({ "display": prescriber });
            }
            let order = text(d, "order_no");
            if !order.is_empty() {
                r["identifier"] =
                    json!([{ "system": format!("urn:renkei:facility:{f}:order"), "value": order }]);
            }
            r["dosageInstruction"] = json!([dosage(d, f)]);
            let days = text(d, "days");
            if let Ok(n) = days.parse::<f64>() {
                r["dispenseRequest"] = json!({ "expectedSupplyDuration": { "value": n, "unit": "日", "system": "http://unitsofmeasure.org", "code": "d" } });
            }
            r
        }
        "MedicationAdministration" => {
            let mut r = base("MedicationAdministration", e, "JP_MedicationAdministration");
            r["status"] = json!("completed");
            r["medicationCodeableConcept"] = concept(e.code_system, e.code, e.display, f);
            r["subject"] = subject(patient);
            if let Some(w) = &when {
                r["effectiveDateTime"] = json!(w);
            }
            let by = person_name(d.get("administered_by"));
            if !by.is_empty() {
                r["performer"] = json!([{ "actor": { "display": by } }]);
            }
            let amount = text(d, "amount");
            if let Ok(n) = amount.parse::<f64>() {
                let unit = d
                    .get("unit")
                    .and_then(|u| u.get("display"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                r["dosage"] = json!({ "dose": { "value": n, "unit": unit } });
            }
            r
        }
        "MedicationDispense" => {
            let mut r = base("MedicationDispense", e, "JP_MedicationDispense");
            r["status"] = json!("completed");
            r["medicationCodeableConcept"] = concept(e.code_system, e.code, e.display, f);
            r["subject"] = subject(patient);
            r["performer"] = json!([{ "actor": organization(f) }]);
            if let Some(w) = &when {
                r["whenHandedOver"] = json!(w);
            }
            let usage = d
                .get("usage")
                .and_then(|u| u.get("display"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let dose = text(d, "dose");
            let mut dosage = json!({ "text": usage });
            if let Ok(n) = dose.parse::<f64>() {
                let unit = d
                    .get("dose_unit")
                    .and_then(|u| u.get("display"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                dosage["doseAndRate"] = json!([{ "doseQuantity": { "value": n, "unit": unit } }]);
            }
            r["dosageInstruction"] = json!([dosage]);
            if text(d, "quantity_unit") == "日分"
                && let Ok(n) = text(d, "days").parse::<f64>()
            {
                r["daysSupply"] = json!({ "value": n, "unit": "日", "system": "http://unitsofmeasure.org", "code": "d" });
            }
            let prescriber = person_name(d.get("prescriber"));
            let facility = person_name(d.get("prescribing_facility"));
            if !prescriber.is_empty() || !facility.is_empty() {
                r["note"] = json!([{ "text": format!("処方: {facility} {prescriber}").trim().to_string() }]);
            }
            r
        }
        "Observation" => {
            let lab = e.category == "lab_result";
            let mut r = base(
                "Observation",
                e,
                if lab {
                    "JP_Observation_LabResult"
                } else {
                    "JP_Observation_Common"
                },
            );
            r["status"] = json!(match e.status {
                "C" => "corrected",
                "P" | "I" | "R" => "preliminary",
                "X" | "D" | "W" => "cancelled",
                _ => "final",
            });
            r["category"] = json!([{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": if lab { "laboratory" } else { "vital-signs" } }] }]);
            if lab {
                // JP_Observation_LabResult requires the specimen.
                r["specimen"] = crate::clins::specimen(e);
            }
            let mut code = concept(e.code_system, e.code, e.display, f);
            if let Some(local) = d.get("local_code")
                && let Some(c) = coding(
                    local.get("system").and_then(Value::as_str).unwrap_or(""),
                    local.get("code").and_then(Value::as_str).unwrap_or(""),
                    local.get("display").and_then(Value::as_str).unwrap_or(""),
                    f,
                )
                && let Some(codings) = code.get_mut("coding").and_then(Value::as_array_mut)
            {
                codings.push(c);
            }
            r["code"] = code;
            r["subject"] = subject(patient);
            if let Some(w) = &when {
                r["effectiveDateTime"] = json!(w);
            }
            r["performer"] = json!([organization(f)]);
            let unit = d
                .get("unit")
                .and_then(|u| u.get("display").or_else(|| u.get("code")))
                .and_then(Value::as_str)
                .unwrap_or("");
            match d.get("numeric").and_then(Value::as_f64) {
                Some(n) => {
                    let mut q = json!({ "value": n });
                    if !unit.is_empty() {
                        q["unit"] = json!(unit);
                    }
                    r["valueQuantity"] = q;
                }
                None => match d.get("value") {
                    // A coded result (CWE: a blood type, a culture's organism).
                    Some(v @ Value::Object(_)) => {
                        if let Some(c) = detail_concept(Some(v), f) {
                            r["valueCodeableConcept"] = c;
                        }
                    }
                    _ => {
                        let v = text(d, "value");
                        if !v.is_empty() {
                            r["valueString"] = json!(v);
                        }
                    }
                },
            }
            let abnormal = text(d, "abnormal");
            if matches!(abnormal.as_str(), "H" | "L" | "HH" | "LL" | "A" | "N") {
                r["interpretation"] = json!([{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": abnormal }] }]);
            }
            let range = text(d, "reference_range");
            if !range.is_empty() {
                let mut rr = json!({ "text": range });
                if let Some((lo, hi)) = range.split_once('-')
                    && let (Ok(lo), Ok(hi)) = (lo.trim().parse::<f64>(), hi.trim().parse::<f64>())
                {
                    rr["low"] = json!({ "value": lo });
                    rr["high"] = json!({ "value": hi });
                }
                r["referenceRange"] = json!([rr]);
            }
            r
        }
        "DiagnosticReport" => {
            let mut r = base("DiagnosticReport", e, "JP_DiagnosticReport_Common");
            r["status"] = json!(match e.status {
                "P" | "I" | "R" => "preliminary",
                "C" => "corrected",
                "X" => "cancelled",
                _ => "final",
            });
            r["category"] = json!([{ "text": text(d, "kind") }]);
            r["code"] = concept(e.code_system, e.code, e.display, f);
            r["subject"] = subject(patient);
            if let Some(w) = &when {
                r["effectiveDateTime"] = json!(w);
            }
            r["performer"] = json!([organization(f)]);
            let findings: Vec<String> = d
                .get("observations")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|o| {
                            let name = o
                                .get("code")
                                .and_then(|c| c.get("display"))
                                .and_then(Value::as_str)
                                .unwrap_or("");
                            let value = o
                                .get("detail")
                                .and_then(|d| d.get("value"))
                                .and_then(Value::as_str)
                                .unwrap_or("");
                            (!value.is_empty()).then(|| {
                                if name.is_empty() {
                                    value.to_string()
                                } else {
                                    format!("{name}: {value}")
                                }
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            if !findings.is_empty() {
                r["conclusion"] = json!(findings.join("\n"));
            }
            if has_studies(e) {
                r["imagingStudy"] = json!([{ "reference": format!("ImagingStudy/{}", e.id) }]);
            }
            r
        }
        "Procedure" => {
            let mut r = base("Procedure", e, "JP_Procedure");
            r["status"] = json!(if e.status == "X" {
                "not-done"
            } else {
                "completed"
            });
            r["code"] = concept(e.code_system, e.code, e.display, f);
            r["subject"] = subject(patient);
            if let Some(w) = &when {
                r["performedDateTime"] = json!(w);
            }
            r["performer"] = json!([{ "actor": organization(f) }]);
            r["report"] = json!([{ "reference": format!("DiagnosticReport/{}", e.id) }]);
            r
        }
        "ImagingStudy" => {
            let mut r = base("ImagingStudy", e, "JP_ImagingStudy_Radiology");
            r["status"] = json!("available");
            r["subject"] = subject(patient);
            if let Some(w) = &when {
                r["started"] = json!(w);
            }
            let studies = d
                .get("studies")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut ids = Vec::new();
            let mut modalities = Vec::new();
            for s in &studies {
                let uid = s
                    .get("study_instance_uid")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !uid.is_empty() {
                    ids.push(
                        json!({ "system": "urn:dicom:uid", "value": format!("urn:oid:{uid}") }),
                    );
                }
                let m = s.get("modality").and_then(Value::as_str).unwrap_or("");
                if !m.is_empty() {
                    modalities.push(json!({ "system": "http://dicom.nema.org/resources/ontology/DCM", "code": m }));
                }
            }
            if !ids.is_empty() {
                r["identifier"] = json!(ids);
            }
            if !modalities.is_empty() {
                r["modality"] = json!(modalities);
            }
            r["description"] = json!(if e.display.is_empty() {
                text(d, "title")
            } else {
                e.display.to_string()
            });
            if e.category == "image" {
                let files = d
                    .get("files")
                    .and_then(Value::as_array)
                    .map(|f| f.iter().filter(|x| x["dicom"] == true).count())
                    .unwrap_or(0);
                r["numberOfInstances"] = json!(files);
            }
            r
        }
        "DocumentReference" => {
            let mut r = base("DocumentReference", e, "JP_DocumentReference");
            r["status"] = json!("current");
            let title = text(d, "title");
            r["type"] = concept(e.code_system, e.code, e.display, f);
            r["category"] =
                json!([{ "text": if e.category == "image" { "画像" } else { "文書" } }]);
            r["subject"] = subject(patient);
            if let Some(w) = &when {
                r["date"] = json!(if w.len() == 10 {
                    format!("{w}T00:00:00{ZONE}")
                } else {
                    w.clone()
                });
            }
            r["custodian"] = organization(f);
            r["description"] = json!(if title.is_empty() { e.display } else { &title });
            let content: Vec<Value> = d
                .get("files")
                .and_then(Value::as_array)
                .map(|files| {
                    files
                        .iter()
                        .enumerate()
                        .map(|(i, file)| {
                            let name = file.get("name").and_then(Value::as_str).unwrap_or("");
                            json!({ "attachment": {
                                "contentType": content_type(name, file["dicom"] == true),
                                "url": format!("Binary/{}-{i}", e.id),
                                "size": file.get("size").cloned().unwrap_or(json!(0)),
                                "title": name,
                            } })
                        })
                        .collect()
                })
                .unwrap_or_default();
            r["content"] = json!(content);
            r
        }
        _ => return None,
    };
    if r.get("subject").is_none() && r.get("patient").is_none() {
        r["subject"] = subject(patient);
    }
    Some(r)
}

/// The media type of a stored file, by its name (and whether it is DICOM).
pub fn content_type(name: &str, dicom: bool) -> &'static str {
    if dicom {
        return "application/dicom";
    }
    let lower = name.to_ascii_lowercase();
    match lower.rsplit('.').next().unwrap_or("") {
        "pdf" => "application/pdf",
        "xml" => "application/xml",
        "txt" => "text/plain",
        "htm" | "html" => "text/html",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "tif" | "tiff" => "image/tiff",
        "dcm" => "application/dicom",
        _ => "application/octet-stream",
    }
}

/// A prescription's dosage (用法・用量) from the HL7 v2 detail.
fn dosage(d: &Value, facility: i64) -> Value {
    let mut dosage = json!({});
    if let Some(usage) = detail_concept(d.get("usage"), facility) {
        if let Some(t) = usage.get("text") {
            dosage["text"] = t.clone();
        }
        dosage["timing"] = json!({ "code": usage });
    }
    if let Some(route) = detail_concept(d.get("route"), facility) {
        dosage["route"] = route;
    }
    if let Ok(n) = text(d, "dose").parse::<f64>() {
        let unit = d
            .get("dose_unit")
            .and_then(|u| u.get("display"))
            .and_then(Value::as_str)
            .unwrap_or("");
        dosage["doseAndRate"] = json!([{ "doseQuantity": { "value": n, "unit": unit } }]);
    }
    dosage
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(category: &'a str, detail: &'a Value) -> Entry<'a> {
        Entry {
            id: 7,
            facility: 3,
            category,
            code: "3D010000001926101",
            code_system: "JC10",
            display: "HbA1c",
            effective: Some("2026-03-10T09:30"),
            end: None,
            status: "F",
            detail,
            last_updated: Some(1_795_219_200_000_000),
        }
    }

    #[test]
    fn last_updated_is_a_utc_instant() {
        assert_eq!(
            instant_utc(1_795_219_200_000_000).as_deref(),
            Some("2026-11-21T00:00:00Z")
        );
        assert_eq!(instant_utc(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            instant_utc(951_825_599_000_000).as_deref(),
            Some("2000-02-29T11:59:59Z")
        );
        assert_eq!(instant_utc(i64::MAX), None);
        let d = json!({});
        let r = to_resource("Observation", &entry("lab_result", &d), "p").unwrap_or_default();
        assert_eq!(r["meta"]["lastUpdated"], "2026-11-21T00:00:00Z");
    }

    #[test]
    fn a_lab_result_is_a_jp_core_observation() {
        let d = json!({ "numeric": 6.1, "value": "6.1", "unit": { "display": "%" }, "reference_range": "4.6-6.2", "abnormal": "", "local_code": { "code": "1234", "display": "HbA1c(NGSP)", "system": "L" } });
        let r = to_resource("Observation", &entry("lab_result", &d), "34000000018").unwrap();
        assert_eq!(r["id"], "7");
        assert_eq!(
            r["meta"]["profile"][0],
            "http://jpfhir.jp/fhir/core/StructureDefinition/JP_Observation_LabResult"
        );
        assert_eq!(
            r["code"]["coding"][0]["system"],
            "http://medis.or.jp/CodeSystem/master-JLAC10-17digits"
        );
        assert_eq!(r["code"]["coding"][1]["system"], "urn:renkei:facility:3:L");
        assert_eq!(r["effectiveDateTime"], "2026-03-10T09:30:00+09:00");
        assert_eq!(r["valueQuantity"]["value"], 6.1);
        assert_eq!(r["referenceRange"][0]["high"]["value"], 6.2);
        assert_eq!(r["subject"]["reference"], "Patient/34000000018");
        assert!(to_resource("Condition", &entry("lab_result", &d), "x").is_none());
    }

    #[test]
    fn dispensings_and_exam_results_have_their_types() {
        let jahis = json!({ "source": "jahis" });
        assert_eq!(
            types_of(&entry("prescription", &jahis)),
            ["MedicationDispense"]
        );
        let exam = json!({ "studies": [{ "study_instance_uid": "1.2.3", "modality": "CT" }] });
        assert_eq!(
            types_of(&entry("exam_result", &exam)),
            ["DiagnosticReport", "Procedure", "ImagingStudy"]
        );
        let study = to_resource("ImagingStudy", &entry("exam_result", &exam), "p").unwrap();
        assert_eq!(study["identifier"][0]["value"], "urn:oid:1.2.3");
        assert_eq!(study["modality"][0]["code"], "CT");
    }

    #[test]
    fn code_systems_are_named_by_uri() {
        assert_eq!(
            system_uri("HL70162", 3),
            "http://terminology.hl7.org/CodeSystem/v2-0162"
        );
        assert_eq!(system_uri("HL7016", 3), "urn:renkei:facility:3:HL7016");
        assert_eq!(
            system_uri("HL7０１６", 3),
            "urn:renkei:facility:3:HL7０１６"
        );
        assert_eq!(
            system_uri("HOT9", 3),
            "http://medis.or.jp/CodeSystem/master-HOT9"
        );
        assert_eq!(system_uri("", 3), "urn:renkei:facility:3:local");
    }

    #[test]
    fn local_times_get_the_japanese_offset() {
        assert_eq!(fhir_datetime("2026-03-10").as_deref(), Some("2026-03-10"));
        assert_eq!(
            fhir_datetime("2026-03-10T09:30:15").as_deref(),
            Some("2026-03-10T09:30:15+09:00")
        );
        assert_eq!(fhir_datetime("x"), None);
        assert_eq!(fhir_datetime(""), None);
    }
}
