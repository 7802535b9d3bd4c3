//! IHE PIXm (ITI-83, `$ihe-pix`) and PDQm (ITI-78, `Patient` search and read) over the MPI, for
//! API clients ([`crate::api`]).
//!
//! Identifier domains: the regional common ID is `urn:oid:<root>.<prefecture>.1`; a facility's
//! own patient IDs are `urn:oid:<facility OID>` (see `OidRoot::facility_oid`), and for a
//! facility with a medical-institution code also MHLW's `urn:oid:1.2.392.100495.20.3.51.1<code>`.
//!
//! What a client sees: a client acting for one facility sees only persons linked to that
//! facility, and of their identifiers only the common ID and its own facility's; a client the
//! operator marked cross-facility (a regional gateway, a neighbouring network) sees every
//! person and identifier. A person the client may not see is answered exactly like a person
//! who does not exist. Every query is audited.

use renkei_core::audit::AuditOutcome;
use renkei_core::facility::FacilityCode;
use renkei_identity::{normalize_address, normalize_kana, normalize_name};
use renkei_store::Facility;
use renkei_store::identity::{Person, PersonSearch};

use crate::api::ApiCaller;
use crate::{App, AppError, Result};

/// MHLW's arc for a facility's patient IDs (followed by `1` and the 10-digit code).
const MHLW_PATIENT_ID_ARC: &str = "1.2.392.100495.20.3.51.1";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identifier {
    pub system: String,
    pub value: String,
}

/// A person with the identifiers the caller may see (the common ID first).
#[derive(Clone, Debug)]
pub struct PatientEntry {
    pub person: Person,
    pub identifiers: Vec<Identifier>,
    /// For a merged person: the survivor's common ID.
    pub replaced_by: Option<String>,
}

/// Why a PIXm query failed, as IHE ITI-83 distinguishes them.
#[derive(Debug)]
pub enum PixError {
    /// The request is malformed (400).
    Invalid(String),
    /// The sourceIdentifier's domain is unknown (400).
    UnknownSourceDomain,
    /// No such patient in that domain, or not one the caller may see (404).
    UnknownPatient,
    /// A targetSystem is unknown or not open to the caller (403).
    UnknownTargetDomain,
    /// The token's scopes do not allow it (403).
    Forbidden,
    Other(AppError),
}

impl From<AppError> for PixError {
    fn from(e: AppError) -> Self {
        PixError::Other(e)
    }
}

/// A PDQm search (ITI-78 parameters, already split by the web layer).
#[derive(Clone, Debug, Default)]
pub struct PdqQuery {
    pub family: String,
    pub given: String,
    /// `birthdate` as `YYYY-MM-DD`.
    pub birthdate: String,
    /// `male` or `female`.
    pub gender: String,
    pub telecom: String,
    pub address: String,
    /// `system|value`, or a bare value (the common ID).
    pub identifier: String,
    pub count: usize,
    pub offset: usize,
}

/// One page of PDQm results.
#[derive(Clone, Debug)]
pub struct PdqPage {
    pub entries: Vec<PatientEntry>,
    /// More results follow this page.
    pub more: bool,
}

/// The most results one PDQm page holds.
pub const PDQ_MAX_COUNT: usize = 100;

impl App {
    /// The identifier system of the regional common ID.
    pub fn common_id_system(&self) -> String {
        format!(
            "urn:oid:{}.{}.1",
            self.config.oid_root.as_str(),
            self.config.region_prefecture
        )
    }

    /// The identifier system of a facility's own patient IDs.
    pub fn facility_patient_system(&self, f: &Facility) -> String {
        format!("urn:oid:{}", self.facility_view(f.clone()).oid)
    }

    /// The facility whose patient-ID domain `system` names, if any.
    async fn facility_of_system(&self, system: &str) -> Result<Option<Facility>> {
        let Some(oid) = system.strip_prefix("urn:oid:") else {
            return Ok(None);
        };
        let by_code = |code: &str| FacilityCode::parse(code).ok().map(|c| c.as_string());
        let code = if let Some(rest) = oid.strip_prefix(MHLW_PATIENT_ID_ARC) {
            by_code(rest)
        } else {
            let ours = format!(
                "{}.{}.",
                self.config.oid_root.as_str(),
                self.config.region_prefecture
            );
            let Some(rest) = oid.strip_prefix(&ours) else {
                return Ok(None);
            };
            if let Some(id) = rest.strip_prefix("0.") {
                let Ok(id) = id.parse::<i64>() else {
                    return Ok(None);
                };
                return match self.store.facility(id).await {
                    Ok(f) if f.code.is_none() => Ok(Some(f)),
                    Ok(_) | Err(renkei_store::StoreError::NotFound) => Ok(None),
                    Err(e) => Err(e.into()),
                };
            }
            rest.parse::<u64>()
                .ok()
                .and_then(|n| by_code(&format!("{n:010}")))
        };
        match code {
            Some(code) => Ok(self.store.facility_by_code(&code).await?),
            None => Ok(None),
        }
    }

    /// Whether the caller may see this person at all.
    async fn visible(&self, caller: &ApiCaller, person: &Person) -> Result<bool> {
        if caller.client.cross_facility {
            return Ok(true);
        }
        Ok(visible_in(caller, &self.store.links_of(person.id).await?))
    }

    /// A person's identifiers as the caller may see them: the common ID, then the active links.
    async fn entry(&self, caller: &ApiCaller, person: Person) -> Result<PatientEntry> {
        let links = self.store.links_of(person.id).await?;
        self.entry_with(caller, person, links).await
    }

    /// [`App::entry`] with the person's links already read.
    async fn entry_with(
        &self,
        caller: &ApiCaller,
        person: Person,
        links: Vec<renkei_store::identity::PersonLink>,
    ) -> Result<PatientEntry> {
        let mut identifiers = vec![Identifier {
            system: self.common_id_system(),
            value: person.common_id.clone(),
        }];
        let mut facilities: Vec<Facility> = Vec::new();
        for link in links {
            if !link.active
                || !(caller.client.cross_facility || link.facility_id == caller.client.facility_id)
            {
                continue;
            }
            let facility = match facilities.iter().find(|f| f.id == link.facility_id) {
                Some(f) => f.clone(),
                None => {
                    let f = self.store.facility(link.facility_id).await?;
                    facilities.push(f.clone());
                    f
                }
            };
            identifiers.push(Identifier {
                system: self.facility_patient_system(&facility),
                value: link.patient_local_id,
            });
        }
        let replaced_by = match person.merged_into {
            Some(survivor) => Some(self.store.person(survivor).await?.common_id),
            None => None,
        };
        Ok(PatientEntry {
            person,
            identifiers,
            replaced_by,
        })
    }

    async fn audit_api(
        &self,
        caller: &ApiCaller,
        action: &str,
        target: String,
        outcome: AuditOutcome,
        detail: &str,
    ) -> Result<()> {
        let event = self.event(&caller.actor, action, target, outcome, detail);
        self.append_audit(event).await?;
        Ok(())
    }

    /// The person a `system|value` identifier names, if any (not checking visibility).
    async fn person_by_identifier(
        &self,
        system: &str,
        value: &str,
    ) -> std::result::Result<Option<Person>, PixError> {
        if system == self.common_id_system() {
            let Ok(id) = renkei_identity::CommonId::parse(value) else {
                return Ok(None);
            };
            return Ok(self
                .store
                .person_by_common_id(&id.digits())
                .await
                .map_err(AppError::from)?);
        }
        let Some(facility) = self.facility_of_system(system).await? else {
            return Err(PixError::UnknownSourceDomain);
        };
        Ok(self
            .store
            .linked_person(facility.id, value)
            .await
            .map_err(AppError::from)?)
    }

    /// PIXm `$ihe-pix`: the identifiers of the person that `source` (`system|value`) names, in
    /// the `target_systems` domains (all the caller may see when none are given).
    pub async fn pix_query(
        &self,
        caller: &ApiCaller,
        source: &str,
        target_systems: &[String],
    ) -> std::result::Result<PatientEntry, PixError> {
        if !caller.may("Patient", 'r') {
            self.audit_api(
                caller,
                "fhir.pixm.query",
                "persons".into(),
                AuditOutcome::Denied,
                "scope",
            )
            .await?;
            return Err(PixError::Forbidden);
        }
        let Some((system, value)) = source.split_once('|') else {
            return Err(PixError::Invalid(
                "sourceIdentifier must be system|value".into(),
            ));
        };
        if system.is_empty() || value.is_empty() {
            return Err(PixError::Invalid(
                "sourceIdentifier must be system|value".into(),
            ));
        }
        // Every targetSystem must be a domain the caller may see.
        for target in target_systems {
            if *target == self.common_id_system() {
                continue;
            }
            match self.facility_of_system(target).await? {
                Some(f) if caller.client.cross_facility || f.id == caller.client.facility_id => {}
                _ => return Err(PixError::UnknownTargetDomain),
            }
        }
        let person = self.person_by_identifier(system, value).await?;
        let person = match person {
            Some(p) if self.visible(caller, &p).await? => p,
            _ => {
                self.audit_api(
                    caller,
                    "fhir.pixm.query",
                    "persons".into(),
                    AuditOutcome::Success,
                    "found=0",
                )
                .await?;
                return Err(PixError::UnknownPatient);
            }
        };
        let target = format!("person:{}", person.id);
        let mut entry = self.entry(caller, person).await?;
        entry.identifiers.retain(|i| {
            !(i.system == system && i.value == value)
                && (target_systems.is_empty() || target_systems.contains(&i.system))
        });
        self.audit_api(
            caller,
            "fhir.pixm.query",
            target,
            AuditOutcome::Success,
            &format!("identifiers={}", entry.identifiers.len()),
        )
        .await?;
        Ok(entry)
    }

    /// PDQm: persons matching the demographics, as the caller may see them.
    pub async fn pdq_search(&self, caller: &ApiCaller, q: &PdqQuery) -> Result<PdqPage> {
        if !caller.may("Patient", 's') {
            self.audit_api(
                caller,
                "fhir.pdqm.search",
                "persons".into(),
                AuditOutcome::Denied,
                "scope",
            )
            .await?;
            return Err(AppError::Forbidden);
        }
        let count = q.count.clamp(1, PDQ_MAX_COUNT);
        let birth: String = q.birthdate.chars().filter(char::is_ascii_digit).collect();
        if !q.birthdate.is_empty() && birth.len() != 8 {
            return Err(AppError::Invalid(
                "birthdate must be a full date (YYYY-MM-DD)".into(),
            ));
        }
        let sex = match q.gender.as_str() {
            "" => "",
            "male" => "M",
            "female" => "F",
            _ => return Err(AppError::Invalid("gender must be male or female".into())),
        };
        let entries: Vec<Person>;
        let mut more = false;
        if !q.identifier.is_empty() {
            let common = self.common_id_system();
            let (system, value) = q
                .identifier
                .split_once('|')
                .unwrap_or((common.as_str(), q.identifier.as_str()));
            let person = match self.person_by_identifier(system, value).await {
                Ok(p) => p,
                Err(PixError::UnknownSourceDomain) => None,
                Err(PixError::Other(e)) => return Err(e),
                Err(_) => None,
            };
            let mut found = Vec::new();
            if let Some(p) = person {
                let fits = (birth.is_empty()
                    || p.birth_date.as_deref().map(|b| b.replace('-', "")) == Some(birth.clone()))
                    && (sex.is_empty() || p.sex == sex);
                if fits && q.offset == 0 && self.visible(caller, &p).await? {
                    found.push(p);
                }
            }
            entries = found;
        } else {
            let name = format!("{}{}", q.family.trim(), q.given.trim());
            if !q.given.trim().is_empty() && q.family.trim().is_empty() {
                return Err(AppError::Invalid(
                    "given must come with family (names are searched from the family name)".into(),
                ));
            }
            let kana = normalize_kana(&name);
            let is_kana = !kana.is_empty() && kana == normalize_name(&name);
            let phone: String = q
                .telecom
                .rsplit('|')
                .next()
                .unwrap_or("")
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            let search = PersonSearch {
                kana_prefix: if is_kana { kana } else { String::new() },
                kanji_prefix: if is_kana {
                    String::new()
                } else {
                    normalize_name(&name)
                },
                birth_date: if birth.is_empty() {
                    String::new()
                } else {
                    format!("{}-{}-{}", &birth[..4], &birth[4..6], &birth[6..])
                },
                sex: sex.to_string(),
                phone_key: phone,
                address_prefix: normalize_address(&q.address),
                linked_facility: (!caller.client.cross_facility)
                    .then_some(caller.client.facility_id),
                offset: q.offset as i64,
                exclude_merged: true,
            };
            if search.kana_prefix.is_empty()
                && search.kanji_prefix.is_empty()
                && search.birth_date.is_empty()
                && search.phone_key.is_empty()
                && search.address_prefix.is_empty()
            {
                return Err(AppError::Invalid(
                    "give at least one of family, birthdate, telecom, address or identifier".into(),
                ));
            }
            let mut found = self.store.search_persons(&search, count as i64 + 1).await?;
            more = found.len() > count;
            found.truncate(count);
            entries = found;
        }
        let mut page = Vec::with_capacity(entries.len());
        for p in entries {
            page.push(self.entry(caller, p).await?);
        }
        self.audit_api(
            caller,
            "fhir.pdqm.search",
            "persons".into(),
            AuditOutcome::Success,
            &format!("found={}", page.len()),
        )
        .await?;
        Ok(PdqPage {
            entries: page,
            more,
        })
    }

    /// PDQm read: the person with this common ID, if the caller may see them.
    pub async fn pdq_read(&self, caller: &ApiCaller, common_id: &str) -> Result<PatientEntry> {
        if !caller.may("Patient", 'r') {
            self.audit_api(
                caller,
                "fhir.pdqm.read",
                "persons".into(),
                AuditOutcome::Denied,
                "scope",
            )
            .await?;
            return Err(AppError::Forbidden);
        }
        let person = match renkei_identity::CommonId::parse(common_id) {
            Ok(id) => self.store.person_by_common_id(&id.digits()).await?,
            Err(_) => None,
        };
        // One read of the person's links answers both whether the caller may see the person
        // and which identifiers it is shown.
        let found = match person {
            Some(p) => {
                let links = self.store.links_of(p.id).await?;
                visible_in(caller, &links).then_some((p, links))
            }
            None => None,
        };
        let (person, links) = match found {
            Some(found) => found,
            _ => {
                self.audit_api(
                    caller,
                    "fhir.pdqm.read",
                    "persons".into(),
                    AuditOutcome::Success,
                    "found=0",
                )
                .await?;
                return Err(AppError::NotFound);
            }
        };
        let target = format!("person:{}", person.id);
        let entry = self.entry_with(caller, person, links).await?;
        self.audit_api(
            caller,
            "fhir.pdqm.read",
            target,
            AuditOutcome::Success,
            "found=1",
        )
        .await?;
        Ok(entry)
    }
}

/// Whether a client may see a person with these links: it is a cross-facility client, or its
/// facility has an active link to them.
fn visible_in(caller: &ApiCaller, links: &[renkei_store::identity::PersonLink]) -> bool {
    caller.client.cross_facility
        || links
            .iter()
            .any(|l| l.active && l.facility_id == caller.client.facility_id)
}
