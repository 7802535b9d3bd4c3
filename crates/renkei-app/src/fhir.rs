//! The record over FHIR R4 for systems: search, read, `Patient/$everything` and Binary, each
//! going through the same consent decision and audit trail as the portal ([`App::read_selected`]).
//!
//! What a caller cannot see is not there: searches run over the items the decision let
//! through, so `_count`, paging links, `_include` and `$everything` count and return only
//! those; a withheld item read by id is "not found", exactly like one that does not exist.
//! Clinical searches name one patient (`patient=` or `subject=`), or ids (`_id=`).

use std::collections::BTreeSet;

pub use renkei_clinical::fhir::CLINICAL_TYPES;
use renkei_clinical::fhir::{self, Entry};
pub use renkei_clinical::fhir_search;
use renkei_clinical::fhir_search::Search;
use renkei_core::audit::AuditOutcome;
use renkei_store::identity::Person;
use serde_json::{Value, json};

use crate::api::ApiCaller;
use crate::consent::{RecordView, Selection, VisibleItem};
use crate::interop::PatientEntry;
use crate::{App, AppError, Result};

/// One page of a search.
#[derive(Clone, Debug, Default)]
pub struct FhirPage {
    /// The page's matches, in order.
    pub matches: Vec<Value>,
    /// How many matched in all (of what the caller may see).
    pub total: usize,
    /// Patients to include (`_include` of the patient, `$everything`).
    pub patients: Vec<PatientEntry>,
    /// Organizations to include.
    pub organizations: Vec<Value>,
}

/// An Organization (JP Core) for a facility of the network.
pub fn organization_json(f: &renkei_store::Facility) -> Value {
    let mut o = json!({
        "resourceType": "Organization",
        "id": f.id.to_string(),
        "meta": { "profile": ["http://jpfhir.jp/fhir/core/StructureDefinition/JP_Organization"] },
        "active": f.active,
        "name": f.name,
        "type": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": if f.facility_type == "operator" { "govt" } else { "prov" } }], "text": f.facility_type }],
    });
    if let Some(code) = f.code.as_deref().filter(|c| !c.is_empty()) {
        o["identifier"] = json!([{ "system": "http://jpfhir.jp/fhir/core/IdSystem/insurance-medical-institution-no", "value": code }]);
    }
    if !f.address.is_empty() {
        o["address"] = json!([{ "text": f.address, "country": "JP" }]);
    }
    if !f.phone.is_empty() {
        o["telecom"] = json!([{ "system": "phone", "value": f.phone }]);
    }
    o
}

/// A visible item as the pure FHIR mapping takes it (`detail` is its parsed JSON).
fn entry_of<'a>(v: &'a VisibleItem, detail: &'a Value) -> Entry<'a> {
    Entry {
        id: v.item.id,
        facility: v.facility_id,
        category: &v.item.category,
        code: &v.item.code,
        code_system: &v.item.code_system,
        display: &v.item.display,
        effective: v
            .item
            .effective
            .as_deref()
            .or(v.item.effective_date.as_deref()),
        end: v.item.end_at.as_deref(),
        status: &v.item.status,
        detail,
        last_updated: Some(v.item.received_at),
    }
}

/// The parsed details of the items of `facility` in a record view, by index (what
/// [`entry_of`] borrows from).
fn own_details(record: &RecordView, facility: i64) -> Vec<(usize, Value)> {
    record
        .items
        .iter()
        .enumerate()
        .filter(|(_, v)| v.facility_id == facility)
        .map(|(i, v)| {
            (
                i,
                serde_json::from_str(&v.item.detail).unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// The resources of a record view of `types` (every clinical type when empty), as `patient`'s.
fn resources(record: &RecordView, types: &[&str], patient: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for v in &record.items {
        let detail: Value = serde_json::from_str(&v.item.detail).unwrap_or(Value::Null);
        let e = entry_of(v, &detail);
        for t in fhir::types_of(&e) {
            if (types.is_empty() || types.contains(t))
                && let Some(r) = fhir::to_resource(t, &e, patient)
            {
                out.push((t.to_string(), r));
            }
        }
    }
    out
}

impl App {
    /// The person a `Patient/<common ID>` reference names (the survivor of a merge).
    async fn fhir_person(&self, reference: &str) -> Result<Option<Person>> {
        let id = reference.strip_prefix("Patient/").unwrap_or(reference);
        let Some(mut person) = self.store.person_by_common_id(id).await? else {
            return Ok(None);
        };
        if let Some(survivor) = person.merged_into {
            person = self.store.person(survivor).await?;
        }
        Ok(Some(person))
    }

    /// Audits a clinical read of something that is not there (or not this caller's to see).
    async fn fhir_unknown(&self, caller: &ApiCaller, what: &str) -> Result<()> {
        self.phantom_reads().await?;
        self.append_audit(self.event(
            &caller.actor,
            "clinical.read",
            "person:unknown".to_string(),
            AuditOutcome::Denied,
            &format!("fhir {what} no_such_resource"),
        ))
        .await?;
        Ok(())
    }

    /// Organizations of the facilities behind `resources`.
    async fn organizations_of(&self, resources: &[Value], paths: &[&str]) -> Result<Vec<Value>> {
        let mut ids = BTreeSet::new();
        for r in resources {
            for p in paths {
                for reference in fhir_search::references_at(r, p) {
                    if let Some(id) = reference
                        .strip_prefix("Organization/")
                        .and_then(|i| i.parse::<i64>().ok())
                    {
                        ids.insert(id);
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(organization_json(&self.store.facility(id).await?));
        }
        Ok(out)
    }

    /// A search on a clinical type. The caller's scopes must allow searching the type.
    pub async fn fhir_search(&self, caller: &ApiCaller, search: &Search) -> Result<FhirPage> {
        let t = search.resource_type.as_str();
        if !CLINICAL_TYPES.contains(&t) {
            return Err(AppError::NotFound);
        }
        if !caller.may(t, 's') {
            return Err(AppError::Forbidden);
        }
        let selection = Selection {
            categories: Some(
                fhir::categories_of(t)
                    .iter()
                    .map(|c| c.to_string())
                    .collect(),
            ),
            since: search.since.clone(),
            until: search.until.clone(),
            codes: None,
        };
        // The patient's record, or the records holding the ids asked for.
        let mut candidates: Vec<Value> = Vec::new();
        let mut person_ids: Vec<(i64, String)> = Vec::new();
        match (&search.patient, search.ids.is_empty()) {
            (Some(reference), _) => match self.fhir_person(reference).await? {
                Some(p) => person_ids.push((p.id, p.common_id)),
                None => self.fhir_unknown(caller, t).await?,
            },
            (None, false) => {
                let mut seen = BTreeSet::new();
                for id in &search.ids {
                    let owner = match id.parse::<i64>() {
                        Ok(n) => self.store.item_owner(n).await?,
                        Err(_) => None,
                    };
                    let person = match owner {
                        Some((facility, local)) => {
                            self.store.linked_person(facility, &local).await?
                        }
                        None => None,
                    };
                    match person {
                        Some(p) => {
                            let survivor = match p.merged_into {
                                Some(s) => self.store.person(s).await?,
                                None => p,
                            };
                            if seen.insert(survivor.id) {
                                person_ids.push((survivor.id, survivor.common_id));
                            }
                        }
                        None => self.fhir_unknown(caller, t).await?,
                    }
                }
            }
            (None, true) => {
                return Err(AppError::Invalid(
                    "patient (or subject) is required: name one patient, e.g. patient=Patient/34000000018".into(),
                ));
            }
        }
        for (person_id, common_id) in &person_ids {
            let record = match self
                .read_selected(&caller.actor, *person_id, &selection)
                .await
            {
                Ok(r) => r,
                Err(AppError::NotFound) => continue,
                Err(e) => return Err(e),
            };
            candidates.extend(
                resources(&record, &[t], common_id)
                    .into_iter()
                    .map(|(_, r)| r)
                    .filter(|r| fhir_search::matches(search, r)),
            );
        }
        fhir_search::sort(search, &mut candidates);
        let total = candidates.len();
        let matches: Vec<Value> = candidates
            .into_iter()
            .skip(search.offset)
            .take(search.count)
            .collect();
        let mut page = FhirPage {
            total,
            ..FhirPage::default()
        };
        for path in &search.includes {
            let targets: BTreeSet<String> = matches
                .iter()
                .flat_map(|r| fhir_search::references_at(r, path))
                .collect();
            for target in targets {
                if let Some(common_id) = target.strip_prefix("Patient/") {
                    if caller.may("Patient", 'r')
                        && let Ok(p) = self.pdq_read(caller, common_id).await
                        && !page
                            .patients
                            .iter()
                            .any(|q| q.person.common_id == p.person.common_id)
                    {
                        page.patients.push(p);
                    }
                } else if target.starts_with("Organization/") && caller.may("Organization", 'r') {
                    for o in self.organizations_of(&matches, &[path]).await? {
                        if !page.organizations.contains(&o) {
                            page.organizations.push(o);
                        }
                    }
                }
            }
        }
        page.matches = matches;
        Ok(page)
    }

    /// A clinical resource by id: not found when it does not exist, is of another type, or is
    /// withheld from the caller (the read is audited either way).
    pub async fn fhir_read(
        &self,
        caller: &ApiCaller,
        resource_type: &str,
        id: &str,
    ) -> Result<Value> {
        if !caller.may(resource_type, 'r') {
            return Err(AppError::Forbidden);
        }
        let search = Search {
            ids: vec![id.to_string()],
            count: 1,
            ..fhir_search::parse(resource_type, &[], false)
                .map_err(|e| AppError::Invalid(e.to_string()))?
        };
        // A read is a search by id, so it sees exactly what a search would.
        let reader = ApiCaller {
            scopes: vec![format!("system/{resource_type}.s")],
            ..caller.clone()
        };
        self.fhir_search(&reader, &search)
            .await?
            .matches
            .into_iter()
            .next()
            .ok_or(AppError::NotFound)
    }

    /// `Patient/<id>/$everything`: the patient, every clinical resource the caller may see (of
    /// `types` when given, between `start` and `end`), and the organizations they come from.
    pub async fn fhir_everything(
        &self,
        caller: &ApiCaller,
        common_id: &str,
        window: (Option<String>, Option<String>),
        types: &[String],
        (count, offset): (usize, usize),
    ) -> Result<FhirPage> {
        if !caller.may("Patient", 'r') {
            return Err(AppError::Forbidden);
        }
        let Some(person) = self.fhir_person(common_id).await? else {
            self.fhir_unknown(caller, "Patient/$everything").await?;
            return Err(AppError::NotFound);
        };
        let wanted: Vec<&str> = CLINICAL_TYPES
            .iter()
            .copied()
            .filter(|t| types.is_empty() || types.iter().any(|x| x == t))
            .filter(|t| caller.may(t, 'r'))
            .collect();
        let record = self
            .read_selected(
                &caller.actor,
                person.id,
                &Selection {
                    // The categories of the wanted types (read by date window, too).
                    categories: Some({
                        let mut c: Vec<String> = wanted
                            .iter()
                            .flat_map(|t| fhir::categories_of(t))
                            .map(|c| c.to_string())
                            .collect();
                        c.sort_unstable();
                        c.dedup();
                        c
                    }),
                    since: window.0,
                    until: window.1,
                    codes: None,
                },
            )
            .await?;
        let patient = self.pdq_read(caller, &person.common_id).await?;
        let mut all: Vec<(String, Value)> = if wanted.is_empty() {
            Vec::new()
        } else {
            resources(&record, &wanted, &person.common_id)
        };
        // Type by type (in the order of CLINICAL_TYPES), newest first within a type.
        all.sort_by(|(ta, a), (tb, b)| {
            let rank = |t: &str| CLINICAL_TYPES.iter().position(|x| *x == t);
            rank(ta).cmp(&rank(tb)).then_with(|| {
                fhir_search::date_of(tb, b)
                    .cmp(&fhir_search::date_of(ta, a))
                    .then_with(|| {
                        let id =
                            |r: &Value| r["id"].as_str().unwrap_or("").parse::<i64>().unwrap_or(0);
                        id(a).cmp(&id(b))
                    })
            })
        });
        let total = all.len();
        let matches: Vec<Value> = all
            .into_iter()
            .skip(offset)
            .take(count)
            .map(|(_, r)| r)
            .collect();
        let organizations = if caller.may("Organization", 'r') || caller.may("*", 'r') {
            self.organizations_of(
                &matches,
                &[
                    "serviceProvider",
                    "performer",
                    "performer.actor",
                    "custodian",
                ],
            )
            .await?
        } else {
            Vec::new()
        };
        Ok(FhirPage {
            matches,
            total,
            patients: vec![patient],
            organizations,
        })
    }

    /// A file of a document (`Binary/<item>-<n>`): its media type and bytes, under the same
    /// decision as the DocumentReference that points to it.
    pub async fn fhir_binary(
        &self,
        caller: &ApiCaller,
        id: &str,
    ) -> Result<(&'static str, Vec<u8>)> {
        if !caller.may("Binary", 'r') {
            return Err(AppError::Forbidden);
        }
        let parsed = id
            .split_once('-')
            .and_then(|(item, n)| Some((item.parse::<i64>().ok()?, n.parse::<usize>().ok()?)));
        let Some((item, index)) = parsed else {
            self.fhir_unknown(caller, "Binary").await?;
            return Err(AppError::NotFound);
        };
        let person = match self.store.item_owner(item).await? {
            Some((facility, local)) => self.store.linked_person(facility, &local).await?,
            None => None,
        };
        let Some(person) = person else {
            self.fhir_unknown(caller, "Binary").await?;
            return Err(AppError::NotFound);
        };
        let person = match person.merged_into {
            Some(s) => self.store.person(s).await?,
            None => person,
        };
        let (_, name, bytes) = self
            .document_file(&caller.actor, person.id, item, index)
            .await?;
        let dicom = bytes.get(128..132) == Some(b"DICM".as_slice());
        Ok((fhir::content_type(&name, dicom), bytes))
    }

    /// An Organization (a facility of the network: public directory data).
    pub async fn fhir_organization(&self, caller: &ApiCaller, id: &str) -> Result<Value> {
        if !caller.may("Organization", 'r') {
            return Err(AppError::Forbidden);
        }
        let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
        match self.store.facility(id).await {
            Ok(f) => Ok(organization_json(&f)),
            Err(renkei_store::StoreError::NotFound) => Err(AppError::NotFound),
            Err(e) => Err(e.into()),
        }
    }
}

/// One resource written: its type, the logical id it is served under, and whether it was new.
#[derive(Clone, Debug)]
pub struct Written {
    pub resource_type: String,
    pub id: String,
    /// `true`: stored now; `false`: the same resource was already there (re-sent), or an
    /// earlier version with its identifier was replaced.
    pub created: bool,
    pub resource: Value,
}

/// Why nothing was written: each problem with its element.
pub type WriteProblems = Vec<renkei_clinical::fhir_write::WriteError>;

pub use renkei_clinical::fhir_write::{self, WRITABLE_TYPES};

impl App {
    /// Writes resources submitted by a facility's system (a create, or the entries of a
    /// transaction Bundle): every entry is checked first, and either all are stored, in one
    /// transaction, or none (`Ok(Err(problems))`). A resource re-sent with the same content or
    /// identifier is not stored twice. The caller's scopes must allow creating each type.
    pub async fn fhir_write(
        &self,
        caller: &ApiCaller,
        entries: &[(String, Value)],
    ) -> Result<std::result::Result<Vec<Written>, WriteProblems>> {
        use renkei_clinical::fhir_write::{self, PatientRef, WriteError};
        use renkei_store::clinical::{Condition, IncomingMessage, IngestOutcome, NewItem};
        use sha2::{Digest, Sha256};

        // The scope first: a caller that may not create learns nothing of its bodies' validity.
        if !WRITABLE_TYPES.iter().any(|t| caller.may(t, 'c')) {
            return Err(AppError::Forbidden);
        }
        for (_, resource) in entries {
            if let Some(t) = resource.get("resourceType").and_then(Value::as_str)
                && !caller.may(t, 'c')
            {
                return Err(AppError::Forbidden);
            }
        }
        let facility = self.store.facility(caller.client.facility_id).await?;
        let systems: Vec<String> = {
            let mut s = vec![self.facility_patient_system(&facility)];
            if let Some(code) = facility.code.as_deref().filter(|c| !c.is_empty()) {
                s.push(format!("urn:oid:1.2.392.100495.20.3.51.1{code}"));
            }
            s
        };
        let mut problems: WriteProblems = Vec::new();
        let mut batch: Vec<IncomingMessage> = Vec::new();
        let mut persons: BTreeSet<i64> = BTreeSet::new();
        // The common ID each resource's subject is served under (empty: not linked yet).
        let mut commons: Vec<String> = Vec::new();
        let now = self.now().0;
        for (path, resource) in entries {
            let submitted = match fhir_write::read(resource, path) {
                Ok(s) => s,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            let path = if path.is_empty() {
                submitted.resource_type.clone()
            } else {
                path.clone()
            };
            if !caller.may(&submitted.resource_type, 'c') {
                return Err(AppError::Forbidden);
            }
            let subject = if submitted.resource_type == "AllergyIntolerance" {
                "patient"
            } else {
                "subject"
            };
            let local = match &submitted.patient {
                PatientRef::Common(id) => {
                    let mut found = None;
                    if let Some(person) = self.fhir_person(id).await? {
                        found = self
                            .store
                            .links_of(person.id)
                            .await?
                            .into_iter()
                            .find(|l| l.active && l.facility_id == facility.id)
                            .map(|l| (person.id, l.patient_local_id, person.common_id));
                    }
                    found
                }
                PatientRef::Local { system, value } => {
                    if systems.contains(system) {
                        let person = self.store.linked_person(facility.id, value).await?;
                        Some(match person {
                            Some(p) => (p.id, value.clone(), p.common_id),
                            None => (0, value.clone(), String::new()),
                        })
                    } else {
                        problems.push(WriteError {
                            expression: format!("{path}.{subject}.identifier.system"),
                            message: format!(
                                "must be this facility's patient ID system ({})",
                                systems.join(" or ")
                            ),
                        });
                        continue;
                    }
                }
            };
            let Some((person, local, common)) = local else {
                // The same words whether the person does not exist or is not this facility's.
                problems.push(WriteError {
                    expression: format!("{path}.{subject}.reference"),
                    message: "not a patient of this facility (link the patient by reading the HM card, or use subject.identifier with the facility's patient ID)".into(),
                });
                continue;
            };
            if person > 0 {
                persons.insert(person);
            }
            commons.push(common);
            let canonical = resource.to_string();
            let hash = hex::encode(Sha256::digest(canonical.as_bytes()));
            // A DocumentReference's files are kept as the message's attachments (as an SS-MIX2
            // document's are); the kept resource holds their size and hash, not their bytes.
            let mut submitted = submitted;
            let mut detail = std::mem::take(&mut submitted.detail);
            let mut attachments = Vec::with_capacity(submitted.files.len());
            for (i, f) in std::mem::take(&mut submitted.files).into_iter().enumerate() {
                let sha256 = hex::encode(Sha256::digest(&f.bytes));
                if let Some(listed) = detail.get_mut("files").and_then(|l| l.get_mut(i)) {
                    listed["sha256"] = Value::String(sha256.clone());
                }
                attachments.push(renkei_store::clinical::NewAttachment {
                    name: f.name,
                    sha256,
                    bytes: f.bytes,
                });
            }
            let canonical = if attachments.is_empty() {
                canonical
            } else {
                let sizes: Vec<usize> = attachments.iter().map(|a| a.bytes.len()).collect();
                without_inline_data(resource, &sizes).to_string()
            };
            let key = match &submitted.identifier {
                Some(i) => format!("fhir|{}|{i}", submitted.resource_type),
                None => format!("fhir|{}|{hash}", submitted.resource_type),
            };
            let date = submitted.effective.as_deref().map(fhir_write::date_of);
            batch.push(IncomingMessage {
                source: "fhir".into(),
                source_key: key.clone(),
                order_key: key,
                data_kind: submitted.resource_type.clone(),
                condition: Condition::Current,
                occurred_at: renkei_core::time::Timestamp(now).jst_stamp(),
                content_hash: hash.clone(),
                raw: canonical.into_bytes(),
                message_type: "FHIR".into(),
                control_id: submitted.identifier.clone().unwrap_or(hash),
                patient_local_id: local,
                warnings: String::new(),
                items: vec![NewItem {
                    category: submitted.category.clone(),
                    code: submitted.code.clone(),
                    code_system: submitted.code_system.clone(),
                    display: submitted.display.clone(),
                    effective: submitted.effective.clone(),
                    effective_date: date,
                    end_at: submitted.end.clone(),
                    status: submitted.status.clone(),
                    detail: detail.to_string(),
                }],
                demographics: None,
                attachments,
            });
        }
        if !problems.is_empty() {
            self.append_audit(self.event(
                &caller.actor,
                "clinical.write",
                format!("facility:{}", facility.id),
                AuditOutcome::Failure,
                &format!("fhir entries={} problems={}", entries.len(), problems.len()),
            ))
            .await?;
            return Ok(Err(problems));
        }
        // What the answer is made from, kept before the messages go to the writer.
        let shown: Vec<(String, renkei_store::clinical::NewItem)> = batch
            .iter()
            .filter_map(|m| Some((m.data_kind.clone(), m.items.first()?.clone())))
            .collect();
        let target = match persons.iter().next() {
            Some(p) if persons.len() == 1 => format!("person:{p}"),
            _ => format!("facility:{}", facility.id),
        };
        let job = crate::WriteJob {
            ingest: renkei_store::clinical::IngestJob {
                facility_id: facility.id,
                messages: batch,
            },
            actor: caller.actor.clone(),
            target,
            entries: entries.len(),
        };
        // Group commit: concurrent submissions (and their audit events) share one transaction.
        let app = self.clone();
        let (stored_at, outcomes) = self
            .write_queue
            .submit(job, move |jobs| async move {
                let now = app.now().0;
                let mut meta = Vec::with_capacity(jobs.len());
                let mut ingests = Vec::with_capacity(jobs.len());
                for j in jobs {
                    meta.push((j.actor, j.target, j.entries));
                    ingests.push(j.ingest);
                }
                let events = app.clone();
                let results = app
                    .store
                    .ingest_group(now, ingests, move |j, r| {
                        let stored = r
                            .iter()
                            .filter(|(o, _)| matches!(o, IngestOutcome::Stored))
                            .count();
                        let (actor, target, entries) = &meta[j];
                        events.event(
                            actor,
                            "clinical.write",
                            target.clone(),
                            AuditOutcome::Success,
                            &format!("fhir entries={entries} stored={stored}"),
                        )
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(results.into_iter().map(|r| (now, r)).collect())
            })
            .await
            .map_err(AppError::Unavailable)?;
        let mut written = Vec::with_capacity(shown.len());
        for (((data_kind, item), (outcome, id)), person) in shown.iter().zip(outcomes).zip(&commons)
        {
            let detail: Value = serde_json::from_str(&item.detail).unwrap_or(Value::Null);
            let entry = Entry {
                id,
                facility: facility.id,
                category: &item.category,
                code: &item.code,
                code_system: &item.code_system,
                display: &item.display,
                effective: item.effective.as_deref(),
                end: item.end_at.as_deref(),
                status: &item.status,
                detail: &detail,
                last_updated: Some(stored_at),
            };
            let resource = fhir::to_resource(data_kind, &entry, person).unwrap_or(Value::Null);
            written.push(Written {
                resource_type: data_kind.clone(),
                id: id.to_string(),
                created: matches!(outcome, IngestOutcome::Stored),
                resource,
            });
        }
        Ok(Ok(written))
    }
}

/// A submitted DocumentReference as kept: each inline attachment's data replaced by its size
/// (the bytes are kept once, as the message's attachments).
fn without_inline_data(resource: &Value, sizes: &[usize]) -> Value {
    let mut kept = resource.clone();
    if let Some(contents) = kept.get_mut("content").and_then(Value::as_array_mut) {
        for (c, size) in contents.iter_mut().zip(sizes) {
            if let Some(a) = c.get_mut("attachment").and_then(Value::as_object_mut) {
                a.remove("data");
                a.insert("size".into(), Value::from(*size));
            }
        }
    }
    kept
}

/// A fresh random (version 4) UUID.
fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No randomness: a time-based fallback keeps the bundle well-formed.
        let t = std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = t.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl App {
    /// What a JP-CLINS bundle or document is made from: the caller's facility, the patient as
    /// that facility knows them (its own patient ID), and the record of `categories` that the
    /// consent decision lets the caller see (read and audited through [`App::read_selected`]).
    /// A person the facility has no link to is not found (and the attempt is audited).
    async fn clins_record(
        &self,
        caller: &ApiCaller,
        common_id: &str,
        operation: &str,
        categories: Vec<String>,
    ) -> Result<(
        renkei_store::Facility,
        renkei_clinical::clins::ClinsPatient,
        RecordView,
    )> {
        let facility = self.store.facility(caller.client.facility_id).await?;
        let Some(person) = self.fhir_person(common_id).await? else {
            self.fhir_unknown(caller, operation).await?;
            return Err(AppError::NotFound);
        };
        let Some(local) = self
            .store
            .links_of(person.id)
            .await?
            .into_iter()
            .find(|l| l.active && l.facility_id == facility.id)
            .map(|l| l.patient_local_id)
        else {
            self.fhir_unknown(caller, operation).await?;
            return Err(AppError::NotFound);
        };
        let record = self
            .read_selected(
                &caller.actor,
                person.id,
                &Selection {
                    categories: Some(categories),
                    ..Selection::default()
                },
            )
            .await?;
        let patient = renkei_clinical::clins::ClinsPatient {
            local_id: local,
            kanji_name: person.kanji_name,
            kana_name: person.kana_name,
            birth_date: person.birth_date,
            sex: person.sex,
            postal_code: person.postal_code,
            address: person.address,
        };
        Ok((facility, patient, record))
    }

    /// The JP-CLINS send bundle of one resource type (Condition, AllergyIntolerance,
    /// Observation) for one of the caller's facility's patients: its own records only, as the
    /// 電子カルテ情報共有サービス receives them. The insured-person id and the report id come
    /// from the caller (the facility's receipt system knows the insurance). Audited as a read.
    pub async fn fhir_clins_bundle(
        &self,
        caller: &ApiCaller,
        common_id: &str,
        resource_type: &str,
        (insured, report_id): (&str, &str),
    ) -> Result<Value> {
        if !caller.may("Patient", 'r') || !caller.may(resource_type, 'r') {
            return Err(AppError::Forbidden);
        }
        let categories = fhir::categories_of(resource_type)
            .iter()
            .map(|c| c.to_string())
            .collect();
        let (facility, patient, record) = self
            .clins_record(caller, common_id, "$jp-clins-bundle", categories)
            .await?;
        let details = own_details(&record, facility.id);
        let entries: Vec<Entry> = details
            .iter()
            .map(|(i, d)| entry_of(&record.items[*i], d))
            .collect();
        let now = self.now();
        renkei_clinical::clins::bundle(
            &renkei_clinical::clins::ClinsInput {
                resource_type,
                institution: facility.code.as_deref().unwrap_or(""),
                insured: insured.trim(),
                report_id: report_id.trim(),
                patient: &patient,
                entries: &entries,
                today: &now.jst_date(),
                now: &now.rfc3339(),
            },
            &mut uuid_v4,
        )
        .map_err(|e| AppError::Invalid(e.to_string()))
    }

    /// A JP-CLINS document (診療情報提供書 or 退院時サマリー) for a patient of the caller's
    /// facility, made from that facility's record as the consent decision lets the caller see it
    /// (read and audited through [`App::read_selected`]).
    pub async fn fhir_clins_document(
        &self,
        caller: &ApiCaller,
        common_id: &str,
        request: &ClinsDocumentRequest,
    ) -> Result<Value> {
        use renkei_clinical::clins_document::{DocumentInput, DocumentKind, Party, document};
        let Some(kind) = DocumentKind::parse(request.kind.trim()) else {
            return Err(AppError::Invalid(
                "type: referral (診療情報提供書) or discharge-summary (退院時サマリー)".into(),
            ));
        };
        const TYPES: &[&str] = &[
            "Condition",
            "AllergyIntolerance",
            "Observation",
            "MedicationRequest",
            "Encounter",
        ];
        if !caller.may("Patient", 'r') || TYPES.iter().any(|t| !caller.may(t, 'r')) {
            return Err(AppError::Forbidden);
        }
        let mut categories: Vec<String> = Vec::new();
        for t in TYPES {
            for c in fhir::categories_of(t) {
                if !categories.iter().any(|x| x == c) {
                    categories.push(c.to_string());
                }
            }
        }
        let (facility, patient, record) = self
            .clins_record(caller, common_id, "$jp-clins-document", categories)
            .await?;
        let details = own_details(&record, facility.id);
        let entries: Vec<Entry> = details
            .iter()
            .map(|(i, d)| entry_of(&record.items[*i], d))
            .collect();
        // The author: the person the app acts for, or the doctor the system names.
        let doctor = if caller.actor.user_id.is_some() {
            caller.actor.name.clone()
        } else {
            request.author.trim().to_string()
        };
        let sender = Party {
            institution: facility.code.clone().unwrap_or_default(),
            name: facility.name.clone(),
            department: request.department.trim().to_string(),
            doctor,
            address: facility.address.clone(),
            phone: facility.phone.clone(),
        };
        // The facility referred to: a participant by its code (name and address from the
        // directory), or any facility by name.
        let to_code = request.to.trim();
        let recipient = if to_code.is_empty() && request.to_name.trim().is_empty() {
            None
        } else {
            let known = if to_code.is_empty() {
                None
            } else {
                self.store.facility_by_code(to_code).await?
            };
            Some(Party {
                institution: to_code.to_string(),
                name: known
                    .as_ref()
                    .map(|f| f.name.clone())
                    .unwrap_or_else(|| request.to_name.trim().to_string()),
                department: request.to_department.trim().to_string(),
                doctor: request.to_doctor.trim().to_string(),
                address: known
                    .as_ref()
                    .map(|f| f.address.clone())
                    .unwrap_or_default(),
                phone: known.map(|f| f.phone).unwrap_or_default(),
            })
        };
        let encounter = match request.encounter.trim() {
            "" => None,
            e => Some(
                e.trim_start_matches("Encounter/")
                    .parse::<i64>()
                    .map_err(|_| {
                        AppError::Invalid("encounter: the logical id of an Encounter".into())
                    })?,
            ),
        };
        let now = self.now();
        document(
            &DocumentInput {
                kind,
                sender: &sender,
                recipient: recipient.as_ref(),
                insured: request.insured.trim(),
                report_id: request.report.trim(),
                patient: &patient,
                entries: &entries,
                purpose: &request.purpose,
                course: &request.course,
                remarks: &request.remarks,
                encounter,
                today: &now.jst_date(),
                now: &now.rfc3339(),
            },
            &mut uuid_v4,
        )
        .map_err(|e| AppError::Invalid(e.to_string()))
    }
}

/// The parameters of `$jp-clins-document`.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct ClinsDocumentRequest {
    /// `referral` or `discharge-summary`.
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub insured: String,
    #[serde(default)]
    pub report: String,
    /// The author (a system's request; an app acting for a person is that person).
    #[serde(default)]
    pub author: String,
    #[serde(default)]
    pub department: String,
    /// Referral: the 10-digit code of the facility referred to, or its name in `to-name`.
    #[serde(default)]
    pub to: String,
    #[serde(default, rename = "to-name")]
    pub to_name: String,
    #[serde(default, rename = "to-department")]
    pub to_department: String,
    #[serde(default, rename = "to-doctor")]
    pub to_doctor: String,
    #[serde(default)]
    pub purpose: String,
    #[serde(default)]
    pub course: String,
    #[serde(default)]
    pub remarks: String,
    /// Discharge summary: the discharge (ADT^A03) Encounter's logical id; empty: the latest.
    #[serde(default)]
    pub encounter: String,
}
