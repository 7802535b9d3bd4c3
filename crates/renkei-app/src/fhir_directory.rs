//! The network's own records over FHIR: Practitioner and PractitionerRole (the portal's users),
//! Organization search (the facility directory), Consent (a patient's consents, for the facility
//! that recorded them) and AuditEvent (who looked at a patient's record, for the facilities whose
//! records they are). Each read is audited; none reveals anything clinical.

use renkei_core::audit::{AuditOutcome, ChainedAuditEvent};
use renkei_core::user::Profession;
use serde_json::{Value, json};

use crate::api::ApiCaller;
use crate::fhir::organization_json;
use crate::{App, AppError, Result};

const JP: &str = "http://jpfhir.jp/fhir/core/StructureDefinition/";
const REPRESENTATION: &str = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation";

/// The directory and record-keeping types served here.
pub const DIRECTORY_TYPES: &[&str] = &[
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Consent",
    "AuditEvent",
];

/// A search on one of [`DIRECTORY_TYPES`]: the few parameters each takes.
#[derive(Clone, Debug, Default)]
pub struct DirectoryQuery {
    pub id: Option<String>,
    /// Practitioner, Organization: part of the name (kanji or kana).
    pub name: Option<String>,
    /// Organization: the 10-digit institution code (`system|code` or `code`).
    pub identifier: Option<String>,
    /// PractitionerRole: `Organization/<id>`.
    pub organization: Option<String>,
    /// PractitionerRole: `Practitioner/<id>`.
    pub practitioner: Option<String>,
    /// Consent, AuditEvent: `Patient/<common ID>`.
    pub patient: Option<String>,
}

/// The parameters each directory type takes (besides `_id`, `_count`, `_offset`).
pub fn directory_params(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "Practitioner" => &["name"],
        "PractitionerRole" => &["organization", "practitioner"],
        "Organization" => &["name", "identifier"],
        "Consent" | "AuditEvent" => &["patient"],
        _ => &[],
    }
}

fn names(kanji: &str, kana: &str) -> Vec<Value> {
    [(kanji, "IDE"), (kana, "SYL")]
        .into_iter()
        .filter(|(t, _)| !t.trim().is_empty())
        .map(|(t, r)| {
            let mut parts = t.split_whitespace();
            let family = parts.next().unwrap_or("");
            let given: Vec<&str> = parts.collect();
            let mut n = json!({ "extension": [{ "url": REPRESENTATION, "valueCode": r }], "use": "usual", "text": t, "family": family });
            if !given.is_empty() {
                n["given"] = json!(given);
            }
            n
        })
        .collect()
}

fn profession_concept(key: &str) -> Value {
    let label = Profession::from_key(key).map(|p| p.label()).unwrap_or(key);
    json!({ "coding": [{ "system": "urn:renkei:profession", "code": key, "display": label }], "text": label })
}

fn practitioner(u: &renkei_store::User) -> Value {
    json!({
        "resourceType": "Practitioner",
        "id": u.id.to_string(),
        "meta": { "profile": [format!("{JP}JP_Practitioner")] },
        "active": u.active,
        "name": names(&u.name, &u.name_kana),
        "qualification": [{ "code": profession_concept(&u.profession) }],
    })
}

fn practitioner_role(u: &renkei_store::User) -> Value {
    json!({
        "resourceType": "PractitionerRole",
        "id": u.id.to_string(),
        "meta": { "profile": [format!("{JP}JP_PractitionerRole")] },
        "active": u.active,
        "practitioner": { "reference": format!("Practitioner/{}", u.id) },
        "organization": { "reference": format!("Organization/{}", u.facility_id) },
        "code": [profession_concept(&u.profession)],
    })
}

fn iso(micros: i64) -> String {
    renkei_core::time::Timestamp(micros).rfc3339()
}

fn consent_json(c: &renkei_store::consent::ConsentRecord, common_id: &str) -> Value {
    let row = &c.consent;
    let mut provision = json!({ "type": "permit" });
    let mut period = json!({});
    if let Some(f) = &row.data_from {
        period["start"] = json!(f);
    }
    if let Some(t) = &row.data_to {
        period["end"] = json!(t);
    }
    if period.as_object().is_some_and(|o| !o.is_empty()) {
        provision["dataPeriod"] = period;
    }
    if !c.targets.is_empty() {
        provision["actor"] = json!(c.targets.iter().map(|t| json!({
            "role": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP", "display": "information recipient" }] },
            "reference": { "reference": format!("Organization/{t}") }
        })).collect::<Vec<_>>());
    }
    provision["code"] = json!(row
        .categories
        .split(',')
        .filter(|c| !c.trim().is_empty())
        .map(|c| json!({ "coding": [{ "system": "urn:renkei:consent-category", "code": c.trim() }] }))
        .collect::<Vec<_>>());
    json!({
        "resourceType": "Consent",
        "id": row.id.to_string(),
        "status": if row.withdrawn_at.is_some() { "inactive" } else { "active" },
        "scope": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy" }] },
        "category": [{ "coding": [{ "system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent" }] }],
        "patient": { "reference": format!("Patient/{common_id}") },
        "dateTime": iso(row.created_at),
        "organization": [{ "reference": format!("Organization/{}", row.facility_id) }],
        "extension": [{ "url": "urn:renkei:consent-target-mode", "valueCode": row.target_mode }],
        "policyRule": { "text": "地域医療連携ネットワークにおける診療情報の開示への同意" },
        "provision": provision,
    })
}

fn audit_json(e: &ChainedAuditEvent, common_id: &str) -> Value {
    let ev = &e.event;
    let mut who = json!({ "identifier": { "system": "urn:renkei:login", "value": ev.login_id } });
    if let Some(u) = ev.user_id {
        who["reference"] = json!(format!("Practitioner/{u}"));
    }
    let mut agent =
        json!({ "who": who, "requestor": true, "network": { "address": ev.client, "type": "2" } });
    if let Some(p) = &ev.profession {
        agent["role"] = json!([profession_concept(p)]);
    }
    if let Some(f) = ev.facility_id {
        agent["location"] = json!({ "display": format!("Organization/{f}") });
    }
    json!({
        "resourceType": "AuditEvent",
        "id": e.seq.to_string(),
        "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation" },
        "subtype": [{ "system": "urn:renkei:audit-action", "code": ev.action }],
        "action": if ev.action.ends_with(".read") { "R" } else { "E" },
        "recorded": ev.at.rfc3339(),
        "outcome": match ev.outcome { AuditOutcome::Success => "0", AuditOutcome::Denied => "4", _ => "8" },
        "outcomeDesc": ev.detail,
        "agent": [agent],
        "source": { "observer": { "display": "Renkei" } },
        "entity": [{ "what": { "reference": format!("Patient/{common_id}") } }],
    })
}

impl App {
    /// A search (or, with `id`, a read) on a directory type; `(matches, total)`.
    pub async fn fhir_directory(
        &self,
        caller: &ApiCaller,
        resource_type: &str,
        q: &DirectoryQuery,
        (count, offset): (usize, usize),
    ) -> Result<(Vec<Value>, usize)> {
        let interaction = if q.id.is_some() { 'r' } else { 's' };
        if !caller.may(resource_type, interaction) {
            return Err(AppError::Forbidden);
        }
        let id_is = |id: &str| q.id.as_deref().is_none_or(|x| x == id);
        let all: Vec<Value> = match resource_type {
            "Practitioner" | "PractitionerRole" => {
                // A client sees its own facility's staff; a regional gateway sees everyone's.
                let facility = (!caller.client.cross_facility).then_some(caller.client.facility_id);
                let wanted_org = match &q.organization {
                    Some(o) => Some(
                        o.strip_prefix("Organization/")
                            .unwrap_or(o)
                            .parse::<i64>()
                            .map_err(|_| {
                                AppError::Invalid("organization: Organization/<id>".into())
                            })?,
                    ),
                    None => None,
                };
                let wanted_practitioner = q
                    .practitioner
                    .as_deref()
                    .map(|p| p.strip_prefix("Practitioner/").unwrap_or(p).to_string());
                let name = q.name.as_deref().map(str::trim).unwrap_or("");
                self.store
                    .list_users(facility)
                    .await?
                    .into_iter()
                    .filter(|u| !u.emergency && u.profession != "operator")
                    .filter(|u| id_is(&u.id.to_string()))
                    .filter(|u| wanted_org.is_none_or(|o| o == u.facility_id))
                    .filter(|u| {
                        wanted_practitioner
                            .as_deref()
                            .is_none_or(|p| p == u.id.to_string())
                    })
                    .filter(|u| {
                        name.is_empty() || u.name.contains(name) || u.name_kana.contains(name)
                    })
                    .map(|u| {
                        if resource_type == "Practitioner" {
                            practitioner(&u)
                        } else {
                            practitioner_role(&u)
                        }
                    })
                    .collect()
            }
            "Organization" => {
                let name = q.name.as_deref().map(str::trim).unwrap_or("");
                let code = q
                    .identifier
                    .as_deref()
                    .map(|i| i.rsplit('|').next().unwrap_or(i).trim().to_string());
                let mut out = Vec::new();
                let mut page = 0;
                loop {
                    let (rows, total) = self.public_facility_search(name, "", false, page).await?;
                    if rows.is_empty() {
                        break;
                    }
                    for f in rows {
                        let f = self.store.facility(f.id).await?;
                        if f.facility_type != "operator"
                            && id_is(&f.id.to_string())
                            && code.as_deref().is_none_or(|c| f.code.as_deref() == Some(c))
                        {
                            out.push(organization_json(&f));
                        }
                    }
                    page += 1;
                    if out.len() as i64 >= total || page > 200 {
                        break;
                    }
                }
                out
            }
            "Consent" | "AuditEvent" => {
                let Some(patient) = &q.patient else {
                    return Err(AppError::Invalid(
                        "patient is required: Patient/<common ID>".into(),
                    ));
                };
                self.patient_records(caller, resource_type, patient)
                    .await?
                    .into_iter()
                    .filter(|r| id_is(r["id"].as_str().unwrap_or("")))
                    .collect()
            }
            _ => return Err(AppError::NotFound),
        };
        let total = all.len();
        Ok((all.into_iter().skip(offset).take(count).collect(), total))
    }

    /// A patient's consents (for the facility that recorded them) or access history (for a
    /// facility whose records the patient has). Empty for anyone else, and audited either way.
    async fn patient_records(
        &self,
        caller: &ApiCaller,
        resource_type: &str,
        patient: &str,
    ) -> Result<Vec<Value>> {
        let facility = caller.client.facility_id;
        let person = match self
            .store
            .person_by_common_id(patient.strip_prefix("Patient/").unwrap_or(patient))
            .await?
        {
            Some(p) => match p.merged_into {
                Some(s) => Some(self.store.person(s).await?),
                None => Some(p),
            },
            None => None,
        };
        let discloses = self.store.facility(facility).await?.discloses;
        let linked = match &person {
            Some(p) => self
                .store
                .links_of(p.id)
                .await?
                .iter()
                .any(|l| l.active && l.facility_id == facility),
            None => false,
        };
        let out = match (&person, discloses && linked) {
            (Some(p), true) if resource_type == "Consent" => self
                .store
                .consents_of(p.id)
                .await?
                .iter()
                .filter(|c| c.consent.facility_id == facility)
                .map(|c| consent_json(c, &p.common_id))
                .collect(),
            (Some(p), true) => self
                .store
                .audit_by_target(&format!("person:{}", p.id), 500)
                .await?
                .iter()
                .map(|e| audit_json(e, &p.common_id))
                .collect(),
            _ => Vec::new(),
        };
        self.append_audit(self.event(
            &caller.actor,
            if resource_type == "Consent" {
                "consent.read"
            } else {
                "audit.read"
            },
            match &person {
                Some(p) => format!("person:{}", p.id),
                None => "person:unknown".into(),
            },
            if out.is_empty() && !(discloses && linked) {
                AuditOutcome::Denied
            } else {
                AuditOutcome::Success
            },
            &format!("fhir {resource_type} results={}", out.len()),
        ))
        .await?;
        Ok(out)
    }
}
