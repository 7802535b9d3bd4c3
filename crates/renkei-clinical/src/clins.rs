//! JP-CLINS (電子カルテ情報共有サービス) send bundles: a facility's diagnoses, allergies (with
//! contraindications folded in) or lab results for one patient, as `JP_Bundle_CLINS`
//! collections following the IG's rules (the JP-CLINS implementation guide, see `docs/fhir.md`):
//! - `Bundle.identifier` is `<10-digit institution>^<year>^<report id>` (rule R2152: the year
//!   the bundle is made, a report id of at most 36 letters, digits and hyphens);
//! - `meta.tag` declares the one resource type carried;
//! - entry 0 is the Patient, every `fullUrl` a fresh `urn:uuid`, references point to them;
//! - every resource carries the institution number extension and a resource-instance identifier;
//! - a diagnosis or allergy bundle carries every item still open or ended within five years;
//! - lab codes carry the local code (`<local>_<material>`) and, for the 43-item core set, the
//!   CoreLabo JLAC10 coding.
//!
//! Pure: fresh UUIDs come from the caller.

use serde_json::{Value, json};

use crate::fhir::{DISEASE_KEY_NUMBER, Entry, to_resource};
use crate::jlac10;

pub const BUNDLE_PROFILE: &str =
    "http://jpfhir.jp/fhir/clins/StructureDefinition/JP_Bundle_CLINS|1";
const ECS: &str = "http://jpfhir.jp/fhir/eCS/StructureDefinition/";
const INSTITUTION_EXT: &str =
    "http://jpfhir.jp/fhir/clins/Extension/StructureDefinition/JP_eCS_InstitutionNumber";
const INSTITUTION_SYSTEM: &str =
    "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no";
const INSTANCE_SYSTEM: &str = "http://jpfhir.jp/fhir/core/IdSystem/resourceInstance-identifier";
const INSURED_SYSTEM: &str = "http://jpfhir.jp/fhir/clins/Idsystem/JP_Insurance_memberID";
const LOCAL_LAB_SYSTEM: &str =
    "http://jpfhir.jp/fhir/clins/CodeSystem/JP_CLINS_ObsLabResult_LocalCode_CS";
const CORE_LAB_SYSTEM: &str =
    "http://jpfhir.jp/fhir/clins/CodeSystem/JLAC10/JP_CLINS_ObsLabResult_CoreLabo_CS";

/// The resource types a JP-CLINS bundle can carry here.
pub const CLINS_TYPES: &[&str] = &["Condition", "AllergyIntolerance", "Observation"];

/// The patient as the sending facility knows them.
#[derive(Clone, Debug, Default)]
pub struct ClinsPatient {
    /// The facility's own patient ID.
    pub local_id: String,
    pub kanji_name: String,
    pub kana_name: String,
    pub birth_date: Option<String>,
    /// `M`, `F`, …
    pub sex: String,
    pub postal_code: String,
    pub address: String,
}

/// What a bundle is made from.
pub struct ClinsInput<'a> {
    pub resource_type: &'a str,
    /// The facility's 10-digit institution code.
    pub institution: &'a str,
    /// 被保険者個人識別子: `保険者番号(8):記号:番号:枝番`.
    pub insured: &'a str,
    /// The report id (the bundle's identity with the institution and the year: sending it again
    /// in the same year replaces the earlier one). At most 36 letters, digits and hyphens.
    pub report_id: &'a str,
    pub patient: &'a ClinsPatient,
    pub entries: &'a [Entry<'a>],
    /// Today, `YYYY-MM-DD` (the five-year window of diagnoses and allergies).
    pub today: &'a str,
    /// Now, a FHIR instant (`meta.lastUpdated`, `Bundle.timestamp`).
    pub now: &'a str,
}

/// Why a bundle cannot be made: the parameter and the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct ClinsError {
    pub param: &'static str,
    pub message: String,
}

fn err(param: &'static str, message: impl Into<String>) -> ClinsError {
    ClinsError {
        param,
        message: message.into(),
    }
}

/// Whether `s` is a 被保険者個人識別子: an 8-digit insurer number (zero-padded), the symbol, the
/// number and a 2-digit branch, separated by `:`.
pub fn valid_insured(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 4
        && parts[0].len() == 8
        && parts[0].bytes().all(|b| b.is_ascii_digit())
        && !parts[2].trim().is_empty()
        && parts[3].chars().count() == 2
        && s.chars().count() <= 64
}

fn valid_report_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 36 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Whether an item belongs in a diagnosis or allergy bundle: still open, or ended within the
/// five years before `today`.
pub fn within_five_years(end: Option<&str>, today: &str) -> bool {
    let Some(end) = end.and_then(|e| e.get(..10)) else {
        return true;
    };
    let Some(year) = today.get(..4).and_then(|y| y.parse::<i32>().ok()) else {
        return true;
    };
    let cutoff = format!("{:04}{}", year - 5, today.get(4..10).unwrap_or("-01-01"));
    end >= cutoff.as_str()
}

/// The JP-CLINS bundle of one resource type for one patient. `uuid` gives a fresh UUID per call.
pub fn bundle(input: &ClinsInput, uuid: &mut dyn FnMut() -> String) -> Result<Value, ClinsError> {
    let t = input.resource_type;
    if !CLINS_TYPES.contains(&t) {
        return Err(err(
            "resource",
            format!("JP-CLINS bundles carry {}", CLINS_TYPES.join(", ")),
        ));
    }
    if input.institution.len() != 10 || !input.institution.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(
            "institution",
            "the facility needs its 10-digit medical-institution code",
        ));
    }
    if !valid_insured(input.insured) {
        return Err(err(
            "insured",
            "the insured-person id is 保険者番号(8 digits):記号:番号:枝番(2), e.g. 00012345:あいう:１８７:05",
        ));
    }
    if !valid_report_id(input.report_id) {
        return Err(err(
            "report",
            "the report id is 1 to 36 letters, digits and hyphens",
        ));
    }
    let patient_url = format!("urn:uuid:{}", uuid());
    let patient = ecs_patient(input.patient, input.institution, input.insured, input.now);
    let mut chosen: Vec<&Entry> = input
        .entries
        .iter()
        .filter(|e| crate::fhir::types_of(e).contains(&t))
        .filter(|e| t == "Observation" || within_five_years(e.end, input.today))
        .collect();
    chosen.sort_by(|a, b| a.effective.cmp(&b.effective).then(a.id.cmp(&b.id)));
    let mut entries = vec![json!({ "fullUrl": patient_url, "resource": patient })];
    for e in chosen {
        let Some(r) = ecs_resource(t, e, input.institution, input.now, &patient_url) else {
            continue;
        };
        entries.push(json!({ "fullUrl": format!("urn:uuid:{}", uuid()), "resource": r }));
    }
    Ok(json!({
        "resourceType": "Bundle",
        "meta": {
            "lastUpdated": input.now,
            "profile": [BUNDLE_PROFILE],
            "tag": [{ "system": "http://jpfhir.jp/fhir/clins/CodeSystem/BundleResourceType_CS", "code": t }],
        },
        "language": "ja",
        "identifier": {
            "system": "http://jpfhir.jp/fhir/clins/bundle-identifier",
            "value": format!("{}^{}^{}", input.institution, input.now.get(..4).unwrap_or(""), input.report_id),
        },
        "type": "collection",
        "timestamp": input.now,
        "entry": entries,
    }))
}

/// The patient as a `JP_Patient_eCS`: the facility's patient ID and the insured-person id,
/// kanji and kana names.
pub(crate) fn ecs_patient(p: &ClinsPatient, institution: &str, insured: &str, now: &str) -> Value {
    let mut names = Vec::new();
    for (text, rep) in [(&p.kanji_name, "IDE"), (&p.kana_name, "SYL")] {
        if text.trim().is_empty() {
            continue;
        }
        let mut parts = text.split_whitespace();
        let family = parts.next().unwrap_or("");
        let given: Vec<&str> = parts.collect();
        let mut n = json!({
            "extension": [{ "url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": rep }],
            "text": text, "family": family,
        });
        if !given.is_empty() {
            n["given"] = json!(given);
        }
        names.push(n);
    }
    let mut patient = json!({
        "resourceType": "Patient",
        "meta": { "lastUpdated": now, "profile": [format!("{ECS}JP_Patient_eCS")] },
        "language": "ja",
        "identifier": [
            { "system": format!("urn:oid:1.2.392.100495.20.3.51.1{}", institution), "value": p.local_id },
            { "system": INSURED_SYSTEM, "value": insured },
        ],
        "name": names,
        "gender": match p.sex.as_str() { "M" => "male", "F" => "female", "O" => "other", _ => "unknown" },
    });
    if let Some(b) = &p.birth_date {
        patient["birthDate"] = json!(b);
    }
    // JP_Patient_eCS requires the address as text; one the facility does not know is said so.
    patient["address"] = if p.address.trim().is_empty() {
        json!([{ "_text": { "extension": [data_absent("unknown")] } }])
    } else {
        let mut a = json!({ "text": p.address.trim(), "country": "JP" });
        if !p.postal_code.trim().is_empty() {
            a["postalCode"] = json!(p.postal_code.trim());
        }
        json!([a])
    };
    patient
}

/// The R4 `data-absent-reason` extension: an element a profile requires but nobody knows.
pub(crate) fn data_absent(reason: &str) -> Value {
    json!({ "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": reason })
}

/// An item as its JP-CLINS (eCS) resource of type `t`, referring to the patient at
/// `patient_url`: no logical id, the eCS profile, the institution extension and an instance
/// identifier.
pub(crate) fn ecs_resource(
    t: &str,
    e: &Entry,
    institution: &str,
    now: &str,
    patient_url: &str,
) -> Option<Value> {
    let mut r = to_resource(t, e, "")?;
    let profile = match t {
        "Condition" => "JP_Condition_eCS",
        "AllergyIntolerance" => "JP_AllergyIntolerance_eCS",
        "MedicationRequest" => "JP_MedicationRequest_eCS",
        "Encounter" => "JP_Encounter_eCS",
        _ => "JP_Observation_LabResult_eCS",
    };
    if let Some(o) = r.as_object_mut() {
        o.remove("id");
        o.remove("performer");
        o.remove("requester");
        o.remove("serviceProvider");
    }
    // Unversioned: JP_Bundle_CLINS's validEntryProfile-* invariants refuse `…|1` in an entry (as
    // the IG's bundle example has it).
    r["meta"] = json!({ "lastUpdated": now, "profile": [format!("{ECS}{profile}")] });
    r["language"] = json!("ja");
    r["identifier"] =
        json!([{ "system": INSTANCE_SYSTEM, "value": format!("{}-{}", institution, e.id) }]);
    r["extension"] = json!([{
        "url": INSTITUTION_EXT,
        "valueIdentifier": { "system": INSTITUTION_SYSTEM, "value": institution },
    }]);
    let reference = json!({ "reference": patient_url });
    if t == "AllergyIntolerance" {
        r["patient"] = reference;
    } else {
        r["subject"] = reference;
    }
    if t == "Observation" {
        r["category"] = json!([{ "coding": [{ "system": "http://jpfhir.jp/fhir/core/CodeSystem/JP_SimpleObservationCategory_CS", "code": "laboratory" }] }]);
        r["code"] = lab_code(e);
        r["specimen"] = specimen(e);
    }
    if t == "Condition" {
        require_key_number(&mut r);
    }
    Some(r)
}

/// JP_Condition_eCS requires a MEDIS 病名管理番号 coding (with its display); a diagnosis that
/// has none gets the IG's "not coded" number, all nines, with the diagnosis text.
fn require_key_number(r: &mut Value) {
    let text = r["code"]["text"].as_str().unwrap_or("").to_string();
    let Some(codings) = r["code"]["coding"].as_array_mut() else {
        r["code"]["coding"] =
            json!([{ "system": DISEASE_KEY_NUMBER, "code": "99999999", "display": text }]);
        return;
    };
    match codings
        .iter_mut()
        .find(|c| c["system"] == DISEASE_KEY_NUMBER)
    {
        Some(c) if c.get("display").is_none() => c["display"] = json!(text),
        Some(_) => {}
        None => codings.insert(
            0,
            json!({ "system": DISEASE_KEY_NUMBER, "code": "99999999", "display": text }),
        ),
    }
}

/// The specimen of a lab result, which JP_Observation_LabResult_eCS requires: by its material
/// name (as the IG's examples do: `type` Specimen, `display` 血清) when the JLAC10 material
/// code is one of the core set's, else marked unknown.
pub(crate) fn specimen(e: &Entry) -> Value {
    let material = (e.code_system == "JC10" && jlac10::is_jlac10(e.code))
        .then(|| e.code.get(9..12))
        .flatten();
    let name = match material {
        Some("001") => Some("尿(含むその他)"),
        Some("018") => Some("全血"),
        Some("019") => Some("全血(添加物入り)"),
        Some("021") => Some("毛細管血"),
        Some("022") => Some("血漿"),
        Some("023") => Some("血清"),
        _ => None,
    };
    match name {
        Some(n) => json!({ "type": "Specimen", "display": n }),
        None => json!({ "extension": [data_absent("unknown")] }),
    }
}

/// A lab result's code as JP-CLINS wants it: the local code with its material, then the
/// CoreLabo coding for the core set (or the JLAC10 coding).
fn lab_code(e: &Entry) -> Value {
    let local = e
        .detail
        .get("local_code")
        .and_then(|l| l.get("code"))
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .unwrap_or(e.code);
    let jlac = (e.code_system == "JC10" && jlac10::is_jlac10(e.code)).then_some(e.code);
    let material = jlac.and_then(|c| c.get(9..12)).unwrap_or("000");
    let mut codings = vec![
        json!({ "system": LOCAL_LAB_SYSTEM, "code": format!("{local}_{material}"), "display": e.display }),
    ];
    if let Some(code) = jlac {
        match jlac10::core_item(code) {
            Some(item) => codings.push(json!({ "system": CORE_LAB_SYSTEM, "code": code, "display": item.key })),
            None => codings.push(json!({ "system": "http://medis.or.jp/CodeSystem/master-JLAC10-17digits", "code": code, "display": e.display })),
        }
    }
    json!({ "coding": codings, "text": e.display })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patient() -> ClinsPatient {
        ClinsPatient {
            local_id: "A-1".into(),
            kanji_name: "高橋 太郎".into(),
            kana_name: "タカハシ タロウ".into(),
            birth_date: Some("1948-04-05".into()),
            sex: "M".into(),
            ..ClinsPatient::default()
        }
    }

    #[test]
    fn insured_ids_and_the_five_year_window() {
        assert!(valid_insured("00012345:あいう:１８７:05"));
        assert!(!valid_insured("12345:あいう:１８７:05"));
        assert!(!valid_insured("00012345:あいう:１８７"));
        assert!(within_five_years(None, "2026-11-21"));
        assert!(within_five_years(Some("2021-11-21"), "2026-11-21"));
        assert!(!within_five_years(Some("2021-11-20"), "2026-11-21"));
    }

    #[test]
    fn a_lab_bundle_follows_the_rules() {
        let detail = json!({ "numeric": 3.9, "unit": { "display": "g/dL" }, "local_code": { "code": "0000181800" } });
        let e = Entry {
            id: 9,
            facility: 1,
            category: "lab_result",
            code: "3A015000002327101",
            code_system: "JC10",
            display: "アルブミン",
            effective: Some("2021-07-05T11:19"),
            end: None,
            status: "F",
            detail: &detail,
            last_updated: None,
        };
        let mut n = 0;
        let mut uuid = || {
            n += 1;
            format!("00000000-0000-4000-8000-{n:012}")
        };
        let p = patient();
        let b = bundle(
            &ClinsInput {
                resource_type: "Observation",
                institution: "1318814790",
                insured: "00012345:あいう:１８７:05",
                report_id: "LAB-20211105-1",
                patient: &p,
                entries: &[e],
                today: "2026-11-21",
                now: "2026-11-21T10:00:00+09:00",
            },
            &mut uuid,
        )
        .unwrap();
        assert_eq!(b["type"], "collection");
        assert_eq!(b["identifier"]["value"], "1318814790^2026^LAB-20211105-1");
        assert_eq!(b["meta"]["tag"][0]["code"], "Observation");
        assert_eq!(b["entry"][0]["resource"]["resourceType"], "Patient");
        let obs = &b["entry"][1]["resource"];
        assert_eq!(obs["subject"]["reference"], b["entry"][0]["fullUrl"]);
        assert_eq!(obs["code"]["coding"][0]["code"], "0000181800_023");
        assert_eq!(obs["code"]["coding"][1]["system"], CORE_LAB_SYSTEM);
        assert_eq!(
            obs["extension"][0]["valueIdentifier"]["value"],
            "1318814790"
        );
        assert!(obs.get("id").is_none());
        assert_eq!(obs["specimen"]["display"], "血清");
        let patient = &b["entry"][0]["resource"];
        assert_eq!(
            patient["address"][0]["_text"]["extension"][0]["valueCode"],
            "unknown"
        );
        let bad = bundle(
            &ClinsInput {
                resource_type: "Observation",
                institution: "1318814790",
                insured: "x",
                report_id: "r",
                patient: &p,
                entries: &[],
                today: "2026-11-21",
                now: "2026-11-21T10:00:00+09:00",
            },
            &mut || String::new(),
        )
        .unwrap_err();
        assert_eq!(bad.param, "insured");
    }
}
