//! Medication notebooks beyond intake: one-time codes that let a patient's notebook app read
//! the history, and webhooks that push each new dispensing to the apps a patient linked. Intake
//! itself is in [`crate::jahis_intake`].

use renkei_clinical::jahis::{self, Notebook};
use renkei_core::audit::AuditOutcome;
use sha2::Sha256;

pub use crate::jahis_intake::{MedicationOptions, MedicationReport, PendingSplit};
use crate::{Actor, App, AppError, Result};

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
pub(crate) fn webhook_payload(common_id: &str, jahis_text: &[u8]) -> String {
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
