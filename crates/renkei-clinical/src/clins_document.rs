//! JP-CLINS documents: 診療情報提供書 (eReferral) and 退院時サマリー (eDischargeSummary) as FHIR
//! document Bundles (`type=document`), made from a facility's record of one patient.
//!
//! The shape follows the IG's examples (`Bundle-CLINS-Referral-Example-01`,
//! `…-Referral-NoEntry-Example-01`): the Composition first, then the Patient and every resource a
//! section points to, each with a fresh `urn:uuid` fullUrl; sections coded in
//! `http://jpfhir.jp/fhir/clins/CodeSystem/document-section` (the `REF` codes for a referral,
//! the `DIS` codes for a discharge summary); every section carries a narrative, and one with
//! nothing to point to says so (記載なし) rather than being left out. Pure: UUIDs come from the
//! caller.

use serde_json::{Value, json};

use crate::clins::{ClinsError, ClinsPatient, ecs_patient, ecs_resource, valid_insured};
use crate::fhir::{Entry, types_of};

const SECTION_SYSTEM: &str = "http://jpfhir.jp/fhir/clins/CodeSystem/document-section";
const DOC_TYPE_SYSTEM: &str = "http://jpfhir.jp/fhir/Common/CodeSystem/doc-typecodes";
const DOC_SUBTYPE_SYSTEM: &str = "http://jpfhir.jp/fhir/Common/CodeSystem/doc-subtypecodes";
const ECS: &str = "http://jpfhir.jp/fhir/eCS/StructureDefinition/";
const INSTANCE_SYSTEM: &str = "http://jpfhir.jp/fhir/core/IdSystem/resourceInstance-identifier";
const INSTITUTION_SYSTEM: &str =
    "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no";
const XHTML: &str = "http://www.w3.org/1999/xhtml";

/// Which document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentKind {
    /// 診療情報提供書.
    Referral,
    /// 退院時サマリー.
    DischargeSummary,
}

impl DocumentKind {
    pub fn parse(s: &str) -> Option<DocumentKind> {
        match s {
            "referral" | "eReferral" => Some(DocumentKind::Referral),
            "discharge-summary" | "eDischargeSummary" => Some(DocumentKind::DischargeSummary),
            _ => None,
        }
    }

    fn bundle_profile(self) -> &'static str {
        match self {
            DocumentKind::Referral => {
                "http://jpfhir.jp/fhir/clins/StructureDefinition/JP_Bundle_eReferral|1"
            }
            DocumentKind::DischargeSummary => {
                "http://jpfhir.jp/fhir/clins/StructureDefinition/JP_Bundle_eDischargeSummary|1"
            }
        }
    }

    fn composition_profile(self) -> &'static str {
        match self {
            DocumentKind::Referral => {
                "http://jpfhir.jp/fhir/eReferral/StructureDefinition/JP_Composition_eReferral|1"
            }
            DocumentKind::DischargeSummary => {
                "http://jpfhir.jp/fhir/eDischargeSummary/StructureDefinition/JP_Composition_eDischargeSummary|1"
            }
        }
    }
}

/// A facility and (optionally) its doctor, as the document names them.
#[derive(Clone, Debug, Default)]
pub struct Party {
    /// The 10-digit medical-institution code (may be empty for a recipient not in the network).
    pub institution: String,
    pub name: String,
    pub department: String,
    /// The doctor's name (kanji, family and given separated by a space); empty: none named.
    pub doctor: String,
    pub address: String,
    pub phone: String,
}

/// What a document is made from.
pub struct DocumentInput<'a> {
    pub kind: DocumentKind,
    /// The sender (author's facility); its institution code is the bundle's.
    pub sender: &'a Party,
    /// Referral: the facility (and doctor) referred to.
    pub recipient: Option<&'a Party>,
    /// 被保険者個人識別子.
    pub insured: &'a str,
    pub report_id: &'a str,
    pub patient: &'a ClinsPatient,
    /// The sender's record of the patient.
    pub entries: &'a [Entry<'a>],
    /// Referral: 紹介目的 (required).
    pub purpose: &'a str,
    /// 臨床経過 (referral) or 入院中経過 (discharge summary), free text.
    pub course: &'a str,
    /// 備考・連絡情報 (referral).
    pub remarks: &'a str,
    /// Discharge summary: the discharge (ADT^A03) Encounter item; `None`: the latest.
    pub encounter: Option<i64>,
    /// Today (`YYYY-MM-DD`) and now (a FHIR instant).
    pub today: &'a str,
    pub now: &'a str,
}

fn err(param: &'static str, message: impl Into<String>) -> ClinsError {
    ClinsError {
        param,
        message: message.into(),
    }
}

/// Text for XHTML narrative.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn narrative(lines: &[String]) -> Value {
    let body = if lines.iter().all(|l| l.trim().is_empty()) {
        "記載なし".to_string()
    } else {
        lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| escape(l).replace('\n', "<br/>"))
            .collect::<Vec<_>>()
            .join("<br/>")
    };
    json!({ "status": "additional", "div": format!("<div xmlns=\"{XHTML}\">{body}</div>") })
}

/// A person's name as eCS wants it (kanji, `IDE`).
fn human_name(text: &str) -> Value {
    let mut parts = text.split_whitespace();
    let family = parts.next().unwrap_or("");
    let given: Vec<&str> = parts.collect();
    let mut n = json!({
        "extension": [{ "url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation", "valueCode": "IDE" }],
        "use": "official", "text": text, "family": family,
    });
    if !given.is_empty() {
        n["given"] = json!(given);
    }
    n
}

fn organization(p: &Party, now: &str) -> Value {
    let mut o = json!({
        "resourceType": "Organization",
        "meta": { "lastUpdated": now, "profile": [format!("{ECS}JP_Organization_eCS")] },
        "language": "ja",
        "type": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov" }] }],
        "name": p.name,
    });
    let code = p.institution.as_str();
    if code.len() == 10 && code.bytes().all(|b| b.is_ascii_digit()) {
        o["identifier"] = json!([{ "system": INSTITUTION_SYSTEM, "value": code }]);
        let mut ext = vec![
            json!({ "url": "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Organization_PrefectureNo", "valueCoding": { "system": "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/PrefectureNo-2digits", "code": &code[..2] } }),
            json!({ "url": "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Organization_InsuranceOrganizationCategory", "valueCoding": { "system": "http://jpfhir.jp/fhir/core/mhlw/CodeSystem/MedicationFeeScoreType", "code": &code[2..3] } }),
            json!({ "url": "http://jpfhir.jp/fhir/core/Extension/StructureDefinition/JP_Organization_InsuranceOrganizationNo", "valueIdentifier": { "system": "http://jpfhir.jp/fhir/core/mhlw/IdSystem/MedicalOrganizationID", "value": &code[3..] } }),
        ];
        if !p.department.trim().is_empty() {
            ext.push(json!({ "url": "http://jpfhir.jp/fhir/eCS/Extension/StructureDefinition/JP_eCS_Department", "valueCodeableConcept": { "text": p.department.trim() } }));
        }
        o["extension"] = json!(ext);
    } else {
        // JP_Organization_eCS requires the medical-institution code: a facility named without
        // it has one that says the code is unknown.
        o["identifier"] = json!([{ "system": INSTITUTION_SYSTEM, "_value": { "extension": [crate::clins::data_absent("unknown")] } }]);
    }
    if !p.phone.trim().is_empty() {
        o["telecom"] = json!([{ "system": "phone", "value": p.phone.trim() }]);
    }
    if !p.address.trim().is_empty() {
        o["address"] = json!([{ "text": p.address.trim(), "country": "JP" }]);
    }
    o
}

fn practitioner(name: &str, now: &str) -> Value {
    json!({
        "resourceType": "Practitioner",
        "meta": { "lastUpdated": now, "profile": [format!("{ECS}JP_Practitioner_eCS")] },
        "language": "ja",
        "name": [human_name(name)],
    })
}

/// Collects entries and builds sections.
struct Builder<'a> {
    uuid: &'a mut dyn FnMut() -> String,
    entries: Vec<Value>,
}

impl Builder<'_> {
    fn add(&mut self, resource: Value) -> String {
        let url = format!("urn:uuid:{}", (self.uuid)());
        self.entries
            .push(json!({ "fullUrl": url, "resource": resource }));
        url
    }
}

fn reference(url: &str, resource_type: &str, display: &str) -> Value {
    json!({ "reference": url, "type": resource_type, "display": display })
}

fn section(code: &str, display: &str, title: &str, text: Value, entries: Vec<Value>) -> Value {
    let mut s = json!({
        "title": title,
        "code": { "coding": [{ "system": SECTION_SYSTEM, "code": code, "display": display }] },
        "text": text,
    });
    if !entries.is_empty() {
        s["entry"] = json!(entries);
    }
    s
}

fn day<'a>(e: &Entry<'a>) -> &'a str {
    e.effective.and_then(|d| d.get(..10)).unwrap_or("")
}

/// The document bundle. `uuid` gives a fresh UUID per call.
pub fn document(
    input: &DocumentInput,
    uuid: &mut dyn FnMut() -> String,
) -> Result<Value, ClinsError> {
    let institution = input.sender.institution.as_str();
    if institution.len() != 10 || !institution.bytes().all(|b| b.is_ascii_digit()) {
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
    if input.report_id.is_empty()
        || input.report_id.len() > 128
        || !input
            .report_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(err(
            "report",
            "the report id is 1 to 128 letters, digits and hyphens",
        ));
    }
    let now = input.now;
    let mut b = Builder {
        uuid,
        entries: Vec::new(),
    };
    let composition_url = format!("urn:uuid:{}", (b.uuid)());
    let patient_url = b.add(ecs_patient(input.patient, institution, input.insured, now));
    let sender_url = b.add(organization(input.sender, now));
    let author_url = (!input.sender.doctor.trim().is_empty())
        .then(|| b.add(practitioner(input.sender.doctor.trim(), now)));
    let of = |t: &'static str| -> Vec<&Entry> {
        let mut v: Vec<&Entry> = input
            .entries
            .iter()
            .filter(|e| types_of(e).contains(&t))
            .collect();
        v.sort_by(|x, y| x.effective.cmp(&y.effective).then(x.id.cmp(&y.id)));
        v
    };
    let conditions = of("Condition");
    let allergies = of("AllergyIntolerance");
    let labs = of("Observation");
    let medications = of("MedicationRequest");
    let encounters = of("Encounter");

    let add_items = |b: &mut Builder, t: &str, items: &[&Entry], display: &str| {
        let mut refs = Vec::new();
        let mut lines = Vec::new();
        for e in items {
            if let Some(r) = ecs_resource(t, e, institution, now, &patient_url) {
                lines.push(format!("{} {}", day(e), e.display).trim().to_string());
                let url = b.add(r);
                refs.push(reference(&url, t, display));
            }
        }
        (refs, lines)
    };

    let mut author = Vec::new();
    if let Some(url) = &author_url {
        author.push(reference(url, "Practitioner", "作成者"));
    }
    author.push(reference(&sender_url, "Organization", "作成機関"));

    let (doc_code, doc_name, subtype, subtype_name, event) = match input.kind {
        DocumentKind::Referral => (
            "57133-1",
            "診療情報提供書",
            "OUTPATIENT",
            "外来文書",
            "診療情報提供書発行",
        ),
        DocumentKind::DischargeSummary => (
            "18842-5",
            "退院時サマリー",
            "DISCHARGE",
            "退院時文書",
            "退院時サマリー作成",
        ),
    };

    let (encounter_url, sections) = match input.kind {
        DocumentKind::Referral => {
            let Some(to) = input.recipient else {
                return Err(err("to", "a referral names the facility it is for"));
            };
            if to.name.trim().is_empty() {
                return Err(err("to", "a referral names the facility it is for"));
            }
            if input.purpose.trim().is_empty() {
                return Err(err("purpose", "a referral states its purpose (紹介目的)"));
            }
            let to_url = b.add(organization(to, now));
            let to_doctor =
                (!to.doctor.trim().is_empty()).then(|| b.add(practitioner(to.doctor.trim(), now)));
            // The visit the letter is written at, and the referral's purpose.
            let visit = b.add(json!({
                "resourceType": "Encounter",
                "meta": { "lastUpdated": now, "profile": [format!("{ECS}JP_Encounter_eCS")] },
                "language": "ja",
                "status": "finished",
                "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "外来" },
                "identifier": [{ "system": INSTANCE_SYSTEM, "value": format!("{institution}-{}-visit", input.report_id) }],
                "subject": { "reference": patient_url },
                "period": { "start": input.today },
            }));
            let purpose = b.add(json!({
                "resourceType": "Encounter",
                "meta": { "lastUpdated": now, "profile": [format!("{ECS}JP_Encounter_eCS")] },
                "language": "ja",
                "status": "finished",
                "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "外来" },
                "identifier": [{ "system": INSTANCE_SYSTEM, "value": format!("{institution}-{}-purpose", input.report_id) }],
                "subject": { "reference": patient_url },
                "reasonCode": [{ "text": input.purpose.trim() }],
            }));
            let (open, past): (Vec<&Entry>, Vec<&Entry>) =
                conditions.iter().partition(|e| e.end.is_none());
            let (problem_refs, problem_lines) =
                add_items(&mut b, "Condition", &open, "傷病名・主訴");
            let (past_refs, past_lines) = add_items(&mut b, "Condition", &past, "既往歴");
            let (allergy_refs, allergy_lines) = add_items(
                &mut b,
                "AllergyIntolerance",
                &allergies,
                "アレルギー・不耐性反応",
            );
            // Results of the last year, and what is being prescribed (the last 90 days).
            let year_ago = format!(
                "{:04}{}",
                input
                    .today
                    .get(..4)
                    .and_then(|y| y.parse::<i32>().ok())
                    .unwrap_or(0)
                    - 1,
                input.today.get(4..).unwrap_or("")
            );
            let recent_labs: Vec<&Entry> = labs
                .into_iter()
                .filter(|e| day(e) >= year_ago.as_str())
                .collect();
            let (lab_refs, lab_lines) = add_items(&mut b, "Observation", &recent_labs, "検査結果");
            let cutoff = days_before(input.today, 90);
            let current_meds: Vec<&Entry> = medications
                .into_iter()
                .filter(|e| day(e) >= cutoff.as_str())
                .collect();
            let (med_refs, med_lines) =
                add_items(&mut b, "MedicationRequest", &current_meds, "投薬指示");
            let mut course_refs = Vec::new();
            if !input.course.trim().is_empty() {
                let url = b.add(course_document(
                    input,
                    institution,
                    &patient_url,
                    "臨床経過",
                ));
                course_refs.push(reference(&url, "DocumentReference", "臨床経過"));
            }
            let mut from_refs = vec![reference(&sender_url, "Organization", "紹介元医療機関")];
            if let Some(url) = &author_url {
                from_refs.push(reference(url, "Practitioner", "紹介元医師"));
            }
            let mut to_refs = vec![reference(&to_url, "Organization", "紹介先医療機関")];
            if let Some(url) = &to_doctor {
                to_refs.push(reference(url, "Practitioner", "紹介先医師"));
            }
            let sender = input.sender;
            let sections = vec![
                section(
                    "920",
                    "紹介元情報セクション",
                    "紹介元情報",
                    narrative(&[
                        sender.address.clone(),
                        sender.phone.clone(),
                        sender.name.clone(),
                        sender.department.clone(),
                        sender.doctor.clone(),
                    ]),
                    from_refs,
                ),
                section(
                    "910",
                    "紹介先情報セクション",
                    "紹介先情報",
                    narrative(&[to.name.clone(), to.department.clone(), to.doctor.clone()]),
                    to_refs,
                ),
                json!({
                    "title": "構造情報",
                    "code": { "coding": [{ "system": SECTION_SYSTEM, "code": "300", "display": "構造情報セクション" }] },
                    "section": [
                        section("950", "紹介目的セクション", "紹介目的", narrative(&[input.purpose.to_string()]), vec![reference(&purpose, "Encounter", "紹介目的")]),
                        section("340", "傷病名・主訴セクション", "傷病名・主訴", narrative(&problem_lines), problem_refs),
                        section("360", "現病歴セクション", "現病歴", narrative(&[]), Vec::new()),
                        section("370", "既往歴セクション", "既往歴", narrative(&past_lines), past_refs),
                        section("510", "アレルギー・不耐性反応セクション", "アレルギー・不耐性反応", narrative(&allergy_lines), allergy_refs),
                        section("550", "家族歴セクション", "家族歴", narrative(&[]), Vec::new()),
                        section("610", "身体所見セクション", "身体所見", narrative(&[]), Vec::new()),
                        section("620", "検査結果セクション", "検査結果", narrative(&lab_lines), lab_refs),
                        section("520", "感染症情報セクション", "感染症情報", narrative(&[]), Vec::new()),
                        section("330", "臨床経過セクション", "臨床経過", narrative(&[input.course.to_string()]), course_refs),
                        section("430", "投薬指示セクション", "投薬指示", narrative(&med_lines), med_refs),
                    ],
                }),
                section(
                    "220",
                    "備考・連絡情報セクション",
                    "備考・連絡情報",
                    narrative(&[input.remarks.to_string()]),
                    Vec::new(),
                ),
            ];
            (visit, sections)
        }
        DocumentKind::DischargeSummary => {
            // A stay is an admission (ADT^A01) and its discharge (ADT^A03), each an Encounter
            // item; the document is about one discharge.
            let live = |e: &&&Entry, code: &str| e.code == code && e.status != "cancelled";
            let discharges: Vec<&&Entry> = encounters.iter().filter(|e| live(e, "A03")).collect();
            let discharge = match input.encounter {
                Some(id) => discharges.iter().find(|e| e.id == id).copied(),
                None => discharges.last().copied(),
            };
            let Some(discharge) = discharge else {
                return Err(err(
                    "encounter",
                    match input.encounter {
                        Some(_) => {
                            "that is not a discharge (ADT^A03 Encounter) of this patient at this facility"
                        }
                        None => "this facility has no discharge of this patient",
                    },
                ));
            };
            let discharged = day(discharge).to_string();
            let admission = encounters
                .iter()
                .rfind(|e| live(e, "A01") && day(e) <= discharged.as_str());
            let admitted = admission
                .map(|e| day(e).to_string())
                .unwrap_or_else(|| discharged.clone());
            let mut period = json!({});
            if let Some(start) = admission
                .and_then(|e| e.effective)
                .and_then(crate::fhir::fhir_datetime)
            {
                period["start"] = json!(start);
            }
            if let Some(end) = discharge.effective.and_then(crate::fhir::fhir_datetime) {
                period["end"] = json!(end);
            }
            let stay_url = b.add(json!({
                "resourceType": "Encounter",
                "meta": { "lastUpdated": now, "profile": [format!("{ECS}JP_Encounter_eCS|1")] },
                "language": "ja",
                "identifier": [{ "system": INSTANCE_SYSTEM, "value": format!("{institution}-{}", discharge.id) }],
                "status": "finished",
                "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP", "display": "入院" },
                "subject": { "reference": patient_url },
                "period": period,
            }));
            let during = |e: &&Entry| {
                let d = day(e);
                !d.is_empty() && d >= admitted.as_str() && d <= discharged.as_str()
            };
            let on_admission: Vec<&Entry> = conditions
                .iter()
                .copied()
                .filter(|e| {
                    day(e) <= admitted.as_str()
                        && e.end
                            .is_none_or(|x| x.get(..10).unwrap_or("") >= admitted.as_str())
                })
                .collect();
            let on_discharge: Vec<&Entry> = conditions
                .iter()
                .copied()
                .filter(|e| {
                    day(e) <= discharged.as_str()
                        && e.end
                            .is_none_or(|x| x.get(..10).unwrap_or("") >= discharged.as_str())
                })
                .collect();
            let (adm_refs, adm_lines) = add_items(&mut b, "Condition", &on_admission, "入院時診断");
            let (dis_refs, dis_lines) = add_items(&mut b, "Condition", &on_discharge, "退院時診断");
            let (allergy_refs, allergy_lines) = add_items(
                &mut b,
                "AllergyIntolerance",
                &allergies,
                "アレルギー・不耐性反応",
            );
            let stay_labs: Vec<&Entry> = labs.into_iter().filter(during).collect();
            let (lab_refs, lab_lines) =
                add_items(&mut b, "Observation", &stay_labs, "入院中検査結果");
            let stay_meds: Vec<&Entry> = medications.into_iter().filter(during).collect();
            let (med_refs, med_lines) =
                add_items(&mut b, "MedicationRequest", &stay_meds, "退院時投薬指示");
            let mut course_refs = Vec::new();
            if !input.course.trim().is_empty() {
                let url = b.add(course_document(
                    input,
                    institution,
                    &patient_url,
                    "入院中経過",
                ));
                course_refs.push(reference(&url, "DocumentReference", "入院中経過"));
            }
            let sections = vec![json!({
                "title": "構造情報",
                "code": { "coding": [{ "system": SECTION_SYSTEM, "code": "300", "display": "構造情報セクション" }] },
                "section": [
                    section("322", "入院時詳細セクション", "入院時詳細", narrative(&[format!("入院日 {admitted}")]), vec![reference(&stay_url, "Encounter", "入院時詳細")]),
                    section("342", "入院時診断セクション", "入院時診断", narrative(&adm_lines), adm_refs),
                    section("510", "アレルギー・不耐性反応セクション", "アレルギー・不耐性反応", narrative(&allergy_lines), allergy_refs),
                    section("333", "入院中経過セクション", "入院中経過", narrative(&[input.course.to_string()]), course_refs),
                    section("623", "入院中検査結果セクション", "入院中検査結果", narrative(&lab_lines), lab_refs),
                    section("324", "退院時詳細セクション", "退院時詳細", narrative(&[format!("退院日 {discharged}")]), vec![reference(&stay_url, "Encounter", "退院時詳細")]),
                    section("344", "退院時診断セクション", "退院時診断", narrative(&dis_lines), dis_refs),
                    section("444", "退院時投薬指示セクション", "退院時投薬指示", narrative(&med_lines), med_refs),
                ],
            })];
            (stay_url, sections)
        }
    };

    let composition = json!({
        "resourceType": "Composition",
        "meta": { "lastUpdated": now, "profile": [input.kind.composition_profile()] },
        "language": "ja",
        "extension": [{ "url": "http://hl7.org/fhir/StructureDefinition/composition-clinicaldocument-versionNumber", "valueString": "1.0" }],
        "identifier": { "system": INSTANCE_SYSTEM, "value": format!("{institution}-{}", input.report_id) },
        "status": "final",
        "type": { "coding": [{ "system": DOC_TYPE_SYSTEM, "code": doc_code, "display": doc_name }] },
        "category": [{ "coding": [{ "system": DOC_SUBTYPE_SYSTEM, "code": subtype, "display": subtype_name }] }],
        "subject": reference(&patient_url, "Patient", "患者"),
        "encounter": reference(&encounter_url, "Encounter", "受診"),
        "date": now,
        "author": author,
        "title": doc_name,
        "custodian": reference(&sender_url, "Organization", "文書管理責任機関"),
        "event": [{ "code": [{ "text": event }], "period": { "start": input.today } }],
        "section": sections,
    });
    let mut entries = vec![json!({ "fullUrl": composition_url, "resource": composition })];
    entries.extend(b.entries);
    Ok(json!({
        "resourceType": "Bundle",
        "meta": { "lastUpdated": now, "profile": [input.kind.bundle_profile()] },
        "language": "ja",
        "identifier": {
            "system": "http://jpfhir.jp/fhir/clins/bundle-identifier",
            "value": format!("{}^{}^{}", institution, input.insured, input.report_id),
        },
        "type": "document",
        "timestamp": now,
        "entry": entries,
    }))
}

/// The course text as a `JP_DocumentReference_eCS` with the text attached (UTF-8, base64).
fn course_document(
    input: &DocumentInput,
    institution: &str,
    patient_url: &str,
    title: &str,
) -> Value {
    use base64::Engine;
    json!({
        "resourceType": "DocumentReference",
        "meta": { "lastUpdated": input.now, "profile": [format!("{ECS}JP_DocumentReference_eCS")] },
        "language": "ja",
        "identifier": [{ "system": INSTANCE_SYSTEM, "value": format!("{institution}-{}-course", input.report_id) }],
        "status": "current",
        "type": { "coding": [{ "system": "http://loinc.org", "code": "11506-3", "display": "Progress note" }] },
        "subject": { "reference": patient_url },
        "date": input.now,
        "description": title,
        "content": [{ "attachment": {
            "contentType": "text/plain;charset=utf-8",
            "data": base64::engine::general_purpose::STANDARD.encode(input.course.trim()),
            "title": title,
        } }],
    })
}

/// `YYYY-MM-DD` `n` days before `today` (proleptic Gregorian); `today` itself if unreadable.
fn days_before(today: &str, n: i64) -> String {
    let parse = |a: usize, b: usize| today.get(a..b).and_then(|s| s.parse::<i64>().ok());
    let (Some(y), Some(m), Some(d)) = (parse(0, 4), parse(5, 7), parse(8, 10)) else {
        return today.to_string();
    };
    crate::fhir_search::day_of(crate::fhir_search::days_from_civil(y, m, d) - n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_count_back_across_months_and_leap_years() {
        assert_eq!(days_before("2026-11-21", 90), "2026-08-23");
        assert_eq!(days_before("2024-03-01", 1), "2024-02-29");
        assert_eq!(days_before("2026-01-01", 1), "2025-12-31");
        assert_eq!(days_before("garbage", 3), "garbage");
    }

    #[test]
    fn narratives_escape_and_say_when_empty() {
        assert_eq!(
            narrative(&["<b>".into()])["div"],
            format!("<div xmlns=\"{XHTML}\">&lt;b&gt;</div>")
        );
        assert_eq!(
            narrative(&[])["div"],
            format!("<div xmlns=\"{XHTML}\">記載なし</div>")
        );
    }
}
