//! Intake of pharmacies' dispensing records (JAHIS 電子版お薬手帳データ): files exported by the
//! receipt computer, or the patient's QR code read by a barcode reader, linked to the patient by
//! the HM card. Each dispensing becomes one message with a prescription item per drug, under
//! the pharmacy, so that it shows in the viewer's 処方 row as that pharmacy's record (consent and
//! profession apply as for any record). Re-sending the same dispensing changes nothing.

use renkei_clinical::jahis::{self, Dispensing, Notebook};
use renkei_core::audit::AuditOutcome;
use renkei_store::clinical::{Condition, IncomingMessage, IngestOutcome, NewItem, PatientRecord};
use sha2::{Digest, Sha256};

use crate::{Actor, App, AppError, Result};

/// What an upload did, file by file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MedicationReport {
    pub dispensings_stored: usize,
    pub dispensings_unchanged: usize,
    /// Webhook deliveries queued for subscribed apps.
    pub webhooks_queued: usize,
    /// (file, warning)
    pub warnings: Vec<(String, String)>,
    /// (file, error): files refused as a whole.
    pub errors: Vec<(String, String)>,
}

impl MedicationReport {
    /// Adds another report's counts, warnings and errors to this one.
    pub fn absorb(&mut self, other: MedicationReport) {
        self.dispensings_stored += other.dispensings_stored;
        self.dispensings_unchanged += other.dispensings_unchanged;
        self.webhooks_queued += other.webhooks_queued;
        self.warnings.extend(other.warnings);
        self.errors.extend(other.errors);
    }
}

/// The code system of a JAHIS drug code type.
fn code_system(code_type: &str) -> &'static str {
    match code_type {
        "2" => "RECEIPT",
        "3" => "MHLW",
        "4" => "YJ",
        "6" => "HOT",
        _ => "",
    }
}

/// One dispensing as a message of prescription items.
fn message(pharmacy_key: &str, patient: &str, nb: &Notebook, d: &Dispensing) -> IncomingMessage {
    // The dispensing alone, written canonically: its identity and its stored bytes.
    let single = Notebook {
        version: nb.version.clone(),
        output: nb.output.clone(),
        patient: nb.patient.clone(),
        dispensings: vec![d.clone()],
        ..Notebook::default()
    };
    let text = jahis::write(&single);
    let hash = hex::encode(Sha256::digest(text.as_bytes()));
    let date = jahis::iso_date(&d.date);
    let pharmacy = d.pharmacy.as_ref();
    let prescriber = d.prescriber.as_ref();
    let mut items = Vec::new();
    for rp in &d.rps {
        let doctor = rp.doctor.and_then(|i| d.doctors.get(i));
        for drug in &rp.drugs {
            let usage = rp.usage.as_ref();
            items.push(NewItem {
                category: "prescription".into(),
                code: drug.code.clone(),
                code_system: code_system(&drug.code_type).into(),
                display: drug.name.clone(),
                effective: date.clone(),
                effective_date: date.clone(),
                end_at: None,
                status: "dispensed".into(),
                detail: serde_json::json!({
                    "source": "jahis",
                    "rp": rp.number,
                    "drug": { "code": drug.code, "display": drug.name, "system": code_system(&drug.code_type) },
                    "generic": { "code": drug.generic_code, "display": drug.generic_name },
                    "dose": drug.dose,
                    "dose_unit": { "display": drug.unit },
                    "usage": { "display": usage.map(|u| u.name.clone()).unwrap_or_default(), "code": usage.map(|u| u.code.clone()).unwrap_or_default() },
                    "days": usage.map(|u| u.quantity.clone()).unwrap_or_default(),
                    "quantity_unit": usage.map(|u| u.unit.clone()).unwrap_or_default(),
                    "form": usage.map(|u| u.form.clone()).unwrap_or_default(),
                    "cautions": drug.cautions.iter().chain(rp.cautions.iter()).collect::<Vec<_>>(),
                    "supplements": drug.supplements.iter().chain(rp.usage_supplements.iter()).collect::<Vec<_>>(),
                    "prescriber": { "name": doctor.map(|p| p.name.clone()).unwrap_or_default() },
                    "department": doctor.map(|p| p.detail.clone()).unwrap_or_default(),
                    "prescribing_facility": { "name": prescriber.map(|p| p.name.clone()).unwrap_or_default(), "code": prescriber.and_then(|p| p.facility_code()).unwrap_or_default() },
                    "pharmacy": { "name": pharmacy.map(|p| p.name.clone()).unwrap_or_default(), "code": pharmacy.and_then(|p| p.facility_code()).unwrap_or_default() },
                    "pharmacist": d.pharmacists.first().map(|p| p.name.clone()).unwrap_or_default(),
                    "notes": d.cautions.iter().chain(&d.remarks).map(|n| n.text.clone()).collect::<Vec<_>>(),
                })
                .to_string(),
            });
        }
    }
    IncomingMessage {
        source: "jahis".into(),
        source_key: format!("{pharmacy_key}|{patient}|{hash}"),
        order_key: format!("jahis|{patient}|{hash}"),
        data_kind: "JAHIS".into(),
        condition: Condition::Current,
        occurred_at: d.date.clone(),
        content_hash: hash,
        raw: text.into_bytes(),
        message_type: "JAHIS".into(),
        control_id: d.date.clone(),
        patient_local_id: patient.into(),
        warnings: String::new(),
        items,
        demographics: nb.patient.as_ref().map(|p| PatientRecord {
            patient_local_id: patient.into(),
            kanji_name: p.name.clone(),
            kana_name: p.kana_name.clone(),
            birth_date: jahis::iso_date(&p.birth_date),
            sex: match p.sex.as_str() {
                "1" => "M".into(),
                "2" => "F".into(),
                _ => String::new(),
            },
            postal_code: p.postal_code.clone(),
            address: p.address.clone(),
            phone: p.phone.clone(),
        }),
        attachments: Vec::new(),
    }
}

impl App {
    /// A pharmacy uploads medication-notebook data (files, or a QR code's text) for the
    /// patient whose HM card it reads (`card`: the QR payload or the common ID). The pharmacy's
    /// patient ID is the one its card reading linked, or the common ID if it never linked one.
    /// Audited.
    pub async fn import_medication(
        &self,
        actor: &Actor,
        card: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<MedicationReport> {
        let facility_id = actor.facility_id.ok_or(AppError::Forbidden)?;
        let facility = self.store.facility(facility_id).await?;
        if facility.facility_type != "pharmacy" && !facility.discloses {
            return Err(AppError::Invalid(
                "お薬手帳データは薬局（または開示施設）から登録します".into(),
            ));
        }
        let payload = renkei_identity::CardPayload::parse(card)
            .map_err(|e| AppError::Invalid(e.to_string()))?;
        let Some(mut person) = self.store.person_by_common_id(&payload.id.digits()).await? else {
            return Err(AppError::Invalid(
                "このカードは使用できません。発行施設または事務局にお問い合わせください".into(),
            ));
        };
        if let Some(survivor) = person.merged_into {
            person = self.store.person(survivor).await?;
        }
        let patient = match self
            .store
            .links_of(person.id)
            .await?
            .into_iter()
            .find(|l| l.active && l.facility_id == facility_id)
        {
            Some(l) => l.patient_local_id,
            None => {
                let local = person.common_id.clone();
                let event = self.event(
                    actor,
                    "identity.card.read",
                    format!("person:{}/patient:{local}", person.id),
                    AuditOutcome::Success,
                    "linked by medication upload",
                );
                self.store
                    .link_patient(
                        person.id,
                        (facility_id, &local, &actor.login_id),
                        "medication_upload",
                        self.now().0,
                        event,
                    )
                    .await?;
                self.grant_cardless(facility_id, &person).await?;
                local
            }
        };
        let mut report = MedicationReport::default();
        let mut batch = Vec::new();
        for (name, bytes) in files {
            match jahis::parse(bytes) {
                Ok(nb) => {
                    report.warnings.extend(
                        nb.warnings
                            .iter()
                            .map(|w| (name.clone(), format!("{}行目: {}", w.line, w.message))),
                    );
                    for d in &nb.dispensings {
                        batch.push(message(&facility_id.to_string(), &patient, &nb, d));
                    }
                }
                Err(e) => report.errors.push((name.clone(), e.to_string())),
            }
        }
        // Apps the patient linked to the card get each new dispensing: the deliveries are
        // queued in the same transaction as the dispensings and the audit event (an outbox).
        let payloads: Vec<String> = batch
            .iter()
            .map(|m| webhook_payload(&person.common_id, &m.raw))
            .collect();
        let errors = report.errors.len();
        let event = |outcomes: &[IngestOutcome]| {
            let stored = outcomes
                .iter()
                .filter(|o| **o != IngestOutcome::Unchanged)
                .count();
            self.event(
                actor,
                "clinical.medication.import",
                format!("person:{}", person.id),
                if errors == 0 {
                    AuditOutcome::Success
                } else {
                    AuditOutcome::Failure
                },
                &format!(
                    "files={} stored={stored} unchanged={} errors={errors}",
                    files.len(),
                    outcomes.len() - stored,
                ),
            )
        };
        let (outcomes, queued) = self
            .store
            .ingest_with_webhooks(
                (facility_id, person.id),
                self.now().0,
                &batch,
                &payloads,
                event,
            )
            .await?;
        report.webhooks_queued += queued as usize;
        for o in outcomes {
            match o {
                IngestOutcome::Stored | IngestOutcome::Replaced => report.dispensings_stored += 1,
                IngestOutcome::Unchanged => report.dispensings_unchanged += 1,
            }
        }
        Ok(report)
    }
}

/// How long a one-time code can be used.
pub const CODE_MINUTES: i64 = 10;
/// Code characters: no 0/O, 1/I/L, so that a code read aloud or typed is unambiguous.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const CODE_LENGTH: usize = 8;
/// Codes one client address may present in [`CODE_MINUTES`] (right or wrong); more are refused.
const CODE_TRIES: u32 = 10;

/// Why a one-time code did not work (each says so plainly to the app).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("ワンタイムコードが正しくありません")]
    Unknown,
    #[error("ワンタイムコードの有効期限が切れています。新しいコードを発行してください")]
    Expired,
    #[error("このワンタイムコードは使用済みです。新しいコードを発行してください")]
    Used,
    #[error("{0}")]
    Other(String),
}

/// A patient's medication history for an external notebook app.
#[derive(Clone, Debug, PartialEq)]
pub struct MedicationHistory {
    /// All dispensings in the JAHIS format (one notebook, newest last).
    pub jahis: String,
    /// The same as a FHIR Bundle of MedicationDispense (JSON).
    pub fhir: serde_json::Value,
}

fn normalise_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// The dispensings as FHIR MedicationDispense resources in a collection Bundle.
fn fhir_bundle(nb: &Notebook) -> serde_json::Value {
    let patient = nb
        .patient
        .as_ref()
        .map(|p| p.name.clone())
        .unwrap_or_default();
    let mut entries = Vec::new();
    for d in &nb.dispensings {
        let date = jahis::iso_date(&d.date);
        let pharmacy = d
            .pharmacy
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_default();
        for rp in &d.rps {
            for drug in &rp.drugs {
                let mut codings = Vec::new();
                match drug.code_type.as_str() {
                    "4" => codings.push(serde_json::json!({ "system": "http://capstandard.jp/iyaku.info/CodeSystem/YJ-code", "code": drug.code, "display": drug.name })),
                    "6" => codings.push(serde_json::json!({ "system": "http://medis.or.jp/CodeSystem/master-HOT9", "code": drug.code, "display": drug.name })),
                    _ => {}
                }
                let usage = rp.usage.as_ref();
                let mut resource = serde_json::json!({
                    "resourceType": "MedicationDispense",
                    "status": "completed",
                    "medicationCodeableConcept": { "coding": codings, "text": drug.name },
                    "subject": { "display": patient },
                    "performer": [{ "actor": { "display": pharmacy } }],
                    "dosageInstruction": [{ "text": usage.map(|u| u.name.clone()).unwrap_or_default() }],
                });
                if let Some(date) = &date {
                    resource["whenHandedOver"] = serde_json::json!(date);
                }
                if let Some(days) = usage
                    .filter(|u| u.unit == "日分")
                    .and_then(|u| u.quantity.parse::<f64>().ok())
                {
                    resource["daysSupply"] = serde_json::json!({ "value": days, "unit": "日", "system": "http://unitsofmeasure.org", "code": "d" });
                }
                entries.push(serde_json::json!({ "resource": resource }));
            }
        }
    }
    serde_json::json!({ "resourceType": "Bundle", "type": "collection", "entry": entries })
}

impl App {
    /// Issues a one-time code with which an external medication-notebook app reads the
    /// patient's notebook once, within [`CODE_MINUTES`]. Staff issue it on the patient's
    /// behalf while reading the patient's HM card: [`App::issue_medication_code_with`] with the
    /// QR code's secret and nothing typed beside it.
    pub async fn issue_medication_code(&self, actor: &Actor, card: &str) -> Result<(String, i64)> {
        self.issue_medication_code_with(actor, card, &crate::identity::CardProof::default())
            .await
    }

    /// As [`App::issue_medication_code`], with what a clerk typed beside a hand-typed ID (the
    /// printed verification code, or the name and birth date). The card must prove the
    /// patient is present exactly as a card read does; an unknown ID, a revoked card and a
    /// missing proof are refused alike. Issuing counts as a card read (rate-limited); audited,
    /// and the code itself is never stored, only its digest.
    pub async fn issue_medication_code_with(
        &self,
        actor: &Actor,
        card: &str,
        proof: &crate::identity::CardProof,
    ) -> Result<(String, i64)> {
        let facility_id = actor.facility_id.ok_or(AppError::Forbidden)?;
        self.count_card_read(actor, facility_id).await?;
        let payload = renkei_identity::CardPayload::parse(card)
            .map_err(|e| AppError::Invalid(e.to_string()))?;
        let refused = || {
            AppError::Invalid(
                "このカードは使用できません。発行施設または事務局にお問い合わせください".into(),
            )
        };
        let person = self.store.person_by_common_id(&payload.id.digits()).await?;
        let proven = match &person {
            Some(p) => {
                let cards = self.store.cards_of(p.id).await?;
                let active: Vec<_> = cards.iter().filter(|c| c.status == "active").collect();
                !active.is_empty() && self.card_present(&payload, p, &active, proof)
            }
            None => false,
        };
        let (Some(mut person), true) = (person, proven) else {
            self.append_audit(self.event(
                actor,
                "medication.code.issue",
                format!("common_id:{}", payload.id.digits()),
                AuditOutcome::Denied,
                "card_not_proven",
            ))
            .await?;
            return Err(refused());
        };
        if let Some(survivor) = person.merged_into {
            person = self.store.person(survivor).await?;
        }
        let random = crate::secrets::random_bytes::<CODE_LENGTH>()?;
        let code: String = random
            .iter()
            .map(|b| char::from(CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()]))
            .collect();
        let now = self.now().0;
        let expires = now + CODE_MINUTES * 60 * 1_000_000;
        let event = self.event(
            actor,
            "medication.code.issue",
            format!("person:{}", person.id),
            AuditOutcome::Success,
            &format!("expires_in_minutes={CODE_MINUTES}"),
        );
        self.store
            .create_medication_code(
                &crate::secrets::digest(&code),
                person.id,
                (Some(facility_id), &actor.login_id),
                (now, expires),
                event,
            )
            .await?;
        Ok((code, expires))
    }

    /// An external app presents a one-time code: the patient's dispensing history, in the
    /// JAHIS format and as FHIR MedicationDispense. The code is used up; an expired, used or
    /// unknown code fails plainly. Every use is audited (`client` names the caller).
    pub async fn medication_history_by_code(
        &self,
        code: &str,
        client: &str,
    ) -> std::result::Result<MedicationHistory, CodeError> {
        let code = normalise_code(code);
        let now = self.now().0;
        let window = CODE_MINUTES * 60 * 1_000_000;
        if self
            .card_reads
            .blocked(&format!("code-client:{client}"), now, window, CODE_TRIES)
        {
            return Err(CodeError::Other(
                "ワンタイムコードの試行が多すぎます。しばらくしてからもう一度お試しください".into(),
            ));
        }
        self.card_reads
            .add(&format!("code-client:{client}"), now, window);
        let redemption = self
            .store
            .redeem_medication_code(&crate::secrets::digest(&code), self.now().0, client)
            .await
            .map_err(|e| CodeError::Other(AppError::from(e).to_string()))?;
        let app_actor = Actor {
            login_id: "medication-app".into(),
            name: "外部お薬手帳アプリ".into(),
            client: client.to_string(),
            role: renkei_core::user::Role::Staff,
            ..Actor::system("medication-app")
        };
        let caller = &app_actor;
        // An audit failure fails the request: nothing is handed out unrecorded.
        let refuse = |why: &'static str, error: CodeError| async move {
            self.append_audit(self.event(
                caller,
                "medication.code.use",
                "persons".into(),
                AuditOutcome::Denied,
                why,
            ))
            .await
            .map_err(|e| CodeError::Other(e.to_string()))?;
            Err::<MedicationHistory, CodeError>(error)
        };
        let person_id = match redemption {
            renkei_store::clinical::CodeRedemption::Person(p) => p,
            renkei_store::clinical::CodeRedemption::Unknown => {
                return refuse("unknown", CodeError::Unknown).await;
            }
            renkei_store::clinical::CodeRedemption::Expired => {
                return refuse("expired", CodeError::Expired).await;
            }
            renkei_store::clinical::CodeRedemption::Used => {
                return refuse("used", CodeError::Used).await;
            }
        };
        let other = |e: renkei_store::StoreError| CodeError::Other(AppError::from(e).to_string());
        let mut combined = Notebook {
            version: "JAHISTC08".into(),
            output: "1".into(),
            ..Notebook::default()
        };
        for link in self.store.links_of(person_id).await.map_err(other)? {
            // Only what the facility discloses to the region (a pharmacy that does not
            // disclose keeps its records to itself here too).
            let discloses = self
                .store
                .facility(link.facility_id)
                .await
                .map(|f| f.discloses)
                .map_err(other)?;
            if !link.active || !discloses {
                continue;
            }
            for (_, raw) in self
                .store
                .patient_messages_of_source(link.facility_id, &link.patient_local_id, "jahis")
                .await
                .map_err(other)?
            {
                if let Ok(nb) = jahis::parse(&raw) {
                    if combined.patient.is_none() {
                        combined.patient = nb.patient.clone();
                    }
                    combined.dispensings.extend(nb.dispensings);
                }
            }
        }
        combined
            .dispensings
            .sort_by_key(|d| jahis::iso_date(&d.date).unwrap_or_default());
        // The notebook only: who the patient is (name, sex, birth date) for the app to match,
        // not where they live or how to call them.
        if let Some(patient) = combined.patient.as_mut() {
            patient.address = String::new();
            patient.phone = String::new();
            patient.postal_code = String::new();
            patient.emergency_contact = String::new();
        }
        let history = MedicationHistory {
            jahis: jahis::write(&combined),
            fhir: fhir_bundle(&combined),
        };
        self.append_audit(self.event(
            &app_actor,
            "medication.code.use",
            format!("person:{person_id}"),
            AuditOutcome::Success,
            &format!("dispensings={}", combined.dispensings.len()),
        ))
        .await
        .map_err(|e| CodeError::Other(e.to_string()))?;
        Ok(history)
    }
}

/// The body of a webhook for one new dispensing: the patient's common ID, the dispensing in the
/// JAHIS format, and the same as FHIR MedicationDispense.
fn webhook_payload(common_id: &str, jahis_text: &[u8]) -> String {
    let nb = jahis::parse(jahis_text).unwrap_or_default();
    serde_json::json!({
        "event": "medication.dispensing",
        "common_id": common_id,
        "dispensed_on": nb.dispensings.first().and_then(|d| jahis::iso_date(&d.date)),
        "jahis": String::from_utf8_lossy(jahis_text),
        "fhir": fhir_bundle(&nb),
    })
    .to_string()
}

/// The signature header of a webhook: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`
/// under the app's secret.
pub fn sign_webhook(secret: &str, unix_seconds: i64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{unix_seconds}.{body}").as_bytes());
    format!(
        "t={unix_seconds},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Attempts before a delivery is given up.
pub const WEBHOOK_ATTEMPTS: i64 = 10;

impl App {
    /// Registers a medication-notebook app that receives webhooks (operator). Returns its id
    /// and the signing secret, shown once. The URL must be HTTPS (HTTP only on loopback).
    pub async fn register_medication_app(
        &self,
        actor: &Actor,
        name: &str,
        url: &str,
    ) -> Result<(i64, String)> {
        actor.require_operator()?;
        let url = url.trim();
        let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
            .iter()
            .any(|p| url.starts_with(p));
        if !(url.starts_with("https://") || loopback) || url.len() > 2000 {
            return Err(AppError::Invalid(
                "通知先の URL は https:// で始めてください".into(),
            ));
        }
        if name.trim().is_empty() {
            return Err(AppError::Invalid("アプリの名前を入力してください".into()));
        }
        let secret = crate::secrets::token()?;
        let event = self.event(
            actor,
            "medication.app.register",
            format!("app:{}", name.trim()),
            AuditOutcome::Success,
            url,
        );
        let id = self
            .store
            .create_medication_app((name.trim(), url, &secret), self.now().0, event)
            .await?;
        Ok((id, secret))
    }

    pub async fn medication_apps(
        &self,
        actor: &Actor,
    ) -> Result<Vec<renkei_store::webhooks::MedicationApp>> {
        actor.require_operator()?;
        Ok(self.store.medication_apps().await?)
    }

    /// Links an app to the card-holder (a facility, at the patient's request): new dispensings
    /// are pushed to it. Audited.
    pub async fn subscribe_medication_app(
        &self,
        actor: &Actor,
        card: &str,
        app_id: i64,
    ) -> Result<()> {
        actor.facility_id.ok_or(AppError::Forbidden)?;
        let payload = renkei_identity::CardPayload::parse(card)
            .map_err(|e| AppError::Invalid(e.to_string()))?;
        let Some(mut person) = self.store.person_by_common_id(&payload.id.digits()).await? else {
            return Err(AppError::Invalid(
                "このカードは使用できません。発行施設または事務局にお問い合わせください".into(),
            ));
        };
        if let Some(survivor) = person.merged_into {
            person = self.store.person(survivor).await?;
        }
        if !self
            .store
            .medication_apps()
            .await?
            .iter()
            .any(|a| a.id == app_id && a.active)
        {
            return Err(AppError::Invalid("そのアプリは登録されていません".into()));
        }
        let event = self.event(
            actor,
            "medication.app.subscribe",
            format!("person:{}", person.id),
            AuditOutcome::Success,
            &format!("app:{app_id}"),
        );
        Ok(self
            .store
            .subscribe_medication_app(app_id, person.id, (self.now().0, &actor.login_id), event)
            .await?)
    }

    /// The registered apps a facility can link a card-holder to: (id, name).
    pub async fn linkable_medication_apps(&self, actor: &Actor) -> Result<Vec<(i64, String)>> {
        actor.facility_id.ok_or(AppError::Forbidden)?;
        Ok(self
            .store
            .medication_apps()
            .await?
            .into_iter()
            .filter(|a| a.active)
            .map(|a| (a.id, a.name))
            .collect())
    }

    /// Webhooks due now (for the delivery task).
    pub async fn due_webhooks(
        &self,
        limit: i64,
    ) -> Result<Vec<renkei_store::webhooks::DueDelivery>> {
        Ok(self.store.due_webhooks(self.now().0, limit).await?)
    }

    /// Records a delivery attempt: done, or retried after `webhook_retry_seconds` ×
    /// 2^(attempts − 1), at most six hours later, until [`WEBHOOK_ATTEMPTS`] attempts.
    pub async fn webhook_attempted(
        &self,
        delivery: &renkei_store::webhooks::DueDelivery,
        result: std::result::Result<(), String>,
    ) -> Result<()> {
        let now = self.now().0;
        let outcome = match &result {
            Ok(()) => Ok(()),
            Err(e) => {
                let attempts = delivery.attempts + 1;
                let retry = (attempts < WEBHOOK_ATTEMPTS).then(|| {
                    let wait = (self.config.webhook_retry_seconds.max(1)
                        << (attempts - 1).clamp(0, 20))
                    .min(6 * 3600);
                    now + wait * 1_000_000
                });
                Err((e.as_str(), retry))
            }
        };
        Ok(self
            .store
            .webhook_attempted(delivery.id, now, outcome)
            .await?)
    }

    /// (delivered, pending, given up) webhook deliveries (operator).
    pub async fn webhook_counts(&self, actor: &Actor) -> Result<(i64, i64, i64)> {
        actor.require_operator()?;
        Ok(self.store.webhook_counts().await?)
    }
}

impl App {
    /// Imports a file that arrived without its card: from a watched folder, or `renkei import
    /// jahis` without `--card`. The card-holder is, in this order:
    /// - the common ID the file name starts with (`34000000018_…`, check digit verified); or
    /// - the one person this pharmacy has already linked by reading the HM card whose birth date,
    ///   sex and name (kanji or kana, normalised) match the file's patient record (record 1).
    ///
    /// No match, or more than one, refuses the file with a message that names no patient.
    pub async fn import_medication_file(
        &self,
        actor: &Actor,
        file_name: &str,
        bytes: &[u8],
    ) -> Result<MedicationReport> {
        let facility_id = actor.facility_id.ok_or(AppError::Forbidden)?;
        let stem = std::path::Path::new(file_name)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        let prefix: String = stem.chars().take_while(char::is_ascii_digit).collect();
        let card = if prefix.len() >= 11 && stem[prefix.len()..].starts_with(['_', '-', '.']) {
            renkei_identity::CardPayload::parse(&prefix).map_err(|e| {
                AppError::Invalid(format!("ファイル名の地域共通IDが正しくありません: {e}"))
            })?;
            prefix
        } else {
            self.card_holder_of_file(facility_id, bytes).await?
        };
        self.import_medication(actor, &card, &[(file_name.to_string(), bytes.to_vec())])
            .await
    }

    /// The common ID of the one person linked at `facility_id` who matches the file's record 1.
    async fn card_holder_of_file(&self, facility_id: i64, bytes: &[u8]) -> Result<String> {
        use renkei_identity::normalize::{normalize_kana, normalize_name};
        let notebook = jahis::parse(bytes).map_err(|e| AppError::Invalid(e.to_string()))?;
        let unmatched = || {
            AppError::Invalid(
                "患者を特定できません。この薬局でHMカードを読み取った患者の氏名・生年月日・性別と一致しないか、複数と一致します。ファイル名の先頭に地域共通IDを付けてください（例: 34000000018_調剤.txt）".into(),
            )
        };
        let Some(patient) = notebook.patient else {
            return Err(unmatched());
        };
        let Some(birth) = jahis::iso_date(&patient.birth_date) else {
            return Err(unmatched());
        };
        let sex = match patient.sex.trim() {
            "1" => "M",
            "2" => "F",
            _ => return Err(unmatched()),
        };
        let (kanji, kana) = (
            normalize_name(&patient.name),
            normalize_kana(&patient.kana_name),
        );
        if kanji.is_empty() && kana.is_empty() {
            return Err(unmatched());
        }
        let search = renkei_store::identity::PersonSearch {
            birth_date: birth,
            sex: sex.to_string(),
            linked_facility: Some(facility_id),
            exclude_merged: true,
            ..Default::default()
        };
        let found: Vec<_> = self
            .store
            .search_persons(&search, 50)
            .await?
            .into_iter()
            .filter(|p| {
                (!kanji.is_empty() && normalize_name(&p.kanji_name) == kanji)
                    || (!kana.is_empty() && normalize_kana(&p.kana_name) == kana)
            })
            .collect();
        match found.as_slice() {
            [one] => Ok(one.common_id.clone()),
            _ => Err(unmatched()),
        }
    }
}
