//! Consent and access control as use cases: a disclosing facility's policy and each patient's
//! consents (開示先設定・開示情報設定・開示期間設定・同意書), referrals and opt-outs; the profession
//! rights matrix; the card-less patient list; emergency access; and the one read of a patient's
//! record that every clinical screen goes through, decided item by item by
//! `renkei_core::consent` and audited whether permitted or denied.

use renkei_core::audit::AuditOutcome;
use renkei_core::consent::{
    Basis, CardlessGrant, CategorySet, Consent, ConsentCategory, Decider, Decision, EmergencyGrant,
    ItemRef, PatientContext, Policy, PolicyMode, ProfessionRights, Referral, Targets, Viewer,
};
use renkei_core::user::{Profession, Role};
use renkei_store::FacilityQuery;
use renkei_store::clinical::StoredItem;
use renkei_store::consent::{ConsentContext, ConsentRecord, NewConsent};
use renkei_store::identity::Person;

use crate::{Actor, App, AppError, Result};

/// How long a break-the-glass grant lasts.
pub const EMERGENCY_HOURS: i64 = 24;
/// The largest scan of a signed consent form accepted.
pub const MAX_SCAN_BYTES: usize = 20 * 1024 * 1024;

/// A consent as entered at the disclosing facility.
#[derive(Clone, Debug, Default)]
pub struct ConsentInput {
    /// `all`, `named` or `referred`.
    pub target_mode: String,
    /// For `named`: the facilities' directory ids.
    pub targets: Vec<i64>,
    /// Category keys (`ConsentCategory::key`).
    pub categories: Vec<String>,
    /// `YYYY-MM-DD`, or empty for an open end.
    pub data_from: String,
    pub data_to: String,
}

/// An item the viewer may see, with where it comes from.
#[derive(Clone, Debug)]
pub struct VisibleItem {
    pub facility_id: i64,
    pub category: ConsentCategory,
    pub item: StoredItem,
}

/// A patient's record as one viewer may see it. What is withheld is not counted or hinted at.
#[derive(Clone, Debug)]
pub struct RecordView {
    pub person: Person,
    pub items: Vec<VisibleItem>,
    /// What the reader may see of each category, from the rules alone (so that a screen says
    /// 「閲覧権限の範囲外」 or 「同意の範囲外」 where it would otherwise say 「なし」).
    pub scopes: Vec<(ConsentCategory, renkei_core::consent::CategoryScope)>,
    /// Until when (unix microseconds) the reader's emergency grant runs, if this read is one.
    pub emergency_until: Option<i64>,
}

/// Which part of a record a read takes (everything by default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Clinical category keys (`lab_result`, …); `None` is every category.
    pub categories: Option<Vec<String>>,
    /// Only items dated on or after this `YYYY-MM-DD` (undated items too).
    pub since: Option<String>,
    /// Only items dated on or before this `YYYY-MM-DD` (undated items too).
    pub until: Option<String>,
    /// Only these codes.
    pub codes: Option<Vec<String>>,
}

impl Selection {
    fn describe(&self) -> String {
        match &self.categories {
            None => "view=record".to_string(),
            Some(c) => format!(
                "view={}{}",
                c.join(","),
                self.since
                    .as_deref()
                    .map(|s| format!(" since={s}"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// Items of one category (and encounter event) on one day that a viewer may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisibleDay {
    pub facility_id: i64,
    pub category: String,
    /// The event code for encounters (`A01` admission, `A03` discharge), else empty.
    pub code: String,
    pub date: Option<String>,
    pub items: usize,
}

/// A read in progress.
struct OpenRead {
    person: Person,
    decider: Decider,
    /// Until when the reader's emergency grant runs, if one does.
    emergency_until: Option<i64>,
    /// Active links: (facility, its patient ID).
    links: Vec<(i64, String)>,
    tally: Tally,
}

#[derive(Default)]
struct Tally {
    permitted: usize,
    denied: usize,
    withheld: usize,
    emergency: bool,
}

impl Tally {
    /// Counts one decision; whether it permits.
    fn record(&mut self, d: Decision) -> bool {
        self.record_many(d, 1)
    }

    fn record_many(&mut self, d: Decision, n: usize) -> bool {
        match d {
            Decision::Permit(basis) => {
                self.permitted += n;
                self.emergency |= basis == Basis::Emergency;
                true
            }
            Decision::Deny => {
                self.denied += n;
                false
            }
        }
    }
}

/// A row of a facility's card-less patient list.
#[derive(Clone, Debug)]
pub struct ListedPatient {
    pub person: Person,
    pub last_access_at: i64,
    /// The hospital a disclosure card limits access to.
    pub only_facility: Option<i64>,
    pub hidden: bool,
}

fn date_key(text: &str) -> Result<Option<i32>> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    match (digits.len(), digits.parse::<i32>()) {
        (8, Ok(n)) if (1..=12).contains(&(n / 100 % 100)) && (1..=31).contains(&(n % 100)) => {
            Ok(Some(n))
        }
        _ => Err(AppError::Invalid(format!(
            "期間「{t}」は YYYY-MM-DD で入力してください"
        ))),
    }
}

fn iso(n: i32) -> String {
    format!("{:04}-{:02}-{:02}", n / 10_000, n / 100 % 100, n % 100)
}

/// The decision context of a person, from the stored rows.
pub fn patient_context(c: &ConsentContext) -> PatientContext {
    PatientContext {
        consents: c
            .consents
            .iter()
            .map(|r| Consent {
                disclosing: r.consent.facility_id,
                targets: match r.consent.target_mode.as_str() {
                    "all" => Targets::All,
                    "referred" => Targets::Referred,
                    _ => Targets::Named(r.targets.clone()),
                },
                categories: CategorySet::from_keys(&r.consent.categories),
                data_from: r
                    .consent
                    .data_from
                    .as_deref()
                    .and_then(|d| date_key(d).ok().flatten()),
                data_to: r
                    .consent
                    .data_to
                    .as_deref()
                    .and_then(|d| date_key(d).ok().flatten()),
                withdrawn_at: r.consent.withdrawn_at,
            })
            .collect(),
        policies: c
            .policies
            .iter()
            .map(|p| Policy {
                facility: p.facility_id,
                mode: PolicyMode::from_key(&p.mode).unwrap_or(PolicyMode::PerPatient),
                categories: CategorySet::from_keys(&p.categories),
            })
            .collect(),
        referrals: c
            .referrals
            .iter()
            .map(|r| Referral {
                from: r.from_facility,
                to: r.to_facility,
            })
            .collect(),
        cardless: c
            .cardless
            .iter()
            .map(|g| CardlessGrant {
                viewer_facility: g.facility_id,
                last_access: g.last_access_at,
                only_facility: (g.scope_facility != 0).then_some(g.scope_facility),
            })
            .collect(),
        emergency: c
            .emergency
            .iter()
            .map(|g| EmergencyGrant {
                user: g.user_id,
                expires_at: g.expires_at,
            })
            .collect(),
        opt_outs: c.opt_outs.clone(),
    }
}

impl App {
    /// The profession rights in force: the defaults, overridden by what the operator stored.
    pub async fn rights(&self) -> Result<ProfessionRights> {
        let mut rights = ProfessionRights::defaults();
        for (profession, categories) in self.store.profession_rights().await? {
            if let Some(p) = Profession::from_key(&profession) {
                rights.set(p, CategorySet::from_keys(&categories));
            }
        }
        Ok(rights)
    }

    /// The operator edits the matrix (every profession's row at once). Audited.
    pub async fn set_profession_rights(
        &self,
        actor: &Actor,
        rows: &[(Profession, CategorySet)],
    ) -> Result<()> {
        actor.require_operator()?;
        let stored: Vec<(String, String)> = rows
            .iter()
            .map(|(p, c)| (p.key().to_string(), c.to_keys()))
            .collect();
        let detail = stored
            .iter()
            .map(|(p, c)| format!("{p}={c}"))
            .collect::<Vec<_>>()
            .join(";");
        let event = self.event(
            actor,
            "consent.rights.update",
            "profession_rights".into(),
            AuditOutcome::Success,
            &detail,
        );
        Ok(self
            .store
            .set_profession_rights(&stored, (self.now().0, &actor.login_id), event)
            .await?)
    }

    /// The actor's facility, which must disclose records.
    async fn disclosing_facility(&self, actor: &Actor) -> Result<i64> {
        let id = actor.facility_id.ok_or(AppError::Forbidden)?;
        let f = self.store.facility(id).await?;
        if !f.discloses {
            return Err(AppError::Invalid(
                "この施設は診療情報を開示する施設として登録されていません".into(),
            ));
        }
        Ok(id)
    }

    /// The facility's own disclosure rule (`PerPatient` when never set).
    pub async fn disclosure_policy(&self, actor: &Actor) -> Result<Policy> {
        let facility = actor.facility_id.ok_or(AppError::Forbidden)?;
        Ok(match self.store.disclosure_policy(facility).await? {
            Some(p) => Policy {
                facility,
                mode: PolicyMode::from_key(&p.mode).unwrap_or(PolicyMode::PerPatient),
                categories: CategorySet::from_keys(&p.categories),
            },
            None => Policy {
                facility,
                mode: PolicyMode::PerPatient,
                categories: CategorySet::EMPTY,
            },
        })
    }

    /// A disclosing facility's administrator sets its rule. Audited.
    pub async fn set_disclosure_policy(
        &self,
        actor: &Actor,
        mode: PolicyMode,
        categories: CategorySet,
    ) -> Result<()> {
        let facility = self.disclosing_facility(actor).await?;
        if actor.role != Role::FacilityAdmin {
            return Err(AppError::Forbidden);
        }
        if mode == PolicyMode::FacilityLevel && categories.is_empty() {
            return Err(AppError::Invalid(
                "施設単位の同意では開示する情報を一つ以上選んでください".into(),
            ));
        }
        let event = self.event(
            actor,
            "consent.policy.update",
            format!("facility:{facility}"),
            AuditOutcome::Success,
            &format!("{} {}", mode.key(), categories.to_keys()),
        );
        Ok(self
            .store
            .set_disclosure_policy(
                facility,
                (mode.key(), &categories.to_keys()),
                (self.now().0, &actor.login_id),
                event,
            )
            .await?)
    }

    /// The person behind one of the actor's facility's patient IDs (linked by a card or a
    /// confirmed suggestion).
    pub async fn person_of_patient(&self, actor: &Actor, patient_local_id: &str) -> Result<Person> {
        let facility = actor.facility_id.ok_or(AppError::Forbidden)?;
        let patient = patient_local_id.trim();
        if patient.is_empty() {
            return Err(AppError::Invalid("患者IDを入力してください".into()));
        }
        self.store
            .linked_person(facility, patient)
            .await?
            .ok_or_else(|| {
                AppError::Invalid(
                    "この患者IDは地域共通IDと連携されていません（先にカードを発行するか読み取ってください）"
                        .into(),
                )
            })
    }

    /// The consents this facility holds for one of its patients, newest first.
    pub async fn consents_for_patient(
        &self,
        actor: &Actor,
        patient_local_id: &str,
    ) -> Result<(Person, Vec<ConsentRecord>)> {
        let facility = self.disclosing_facility(actor).await?;
        let person = self.person_of_patient(actor, patient_local_id).await?;
        let consents = self
            .store
            .consents_of(person.id)
            .await?
            .into_iter()
            .filter(|c| c.consent.facility_id == facility)
            .collect();
        Ok((person, consents))
    }

    /// Records a patient's consent to this facility's disclosure (開示先・開示情報・開示期間).
    /// Audited; takes effect at once.
    pub async fn create_consent(
        &self,
        actor: &Actor,
        patient_local_id: &str,
        input: &ConsentInput,
    ) -> Result<i64> {
        let facility = self.disclosing_facility(actor).await?;
        let person = self.person_of_patient(actor, patient_local_id).await?;
        let mode = input.target_mode.trim();
        if !matches!(mode, "all" | "named" | "referred") {
            return Err(AppError::Invalid(
                "開示先を選んでください（全参加施設・指定施設・紹介先施設）".into(),
            ));
        }
        let mut targets = input.targets.clone();
        targets.sort_unstable();
        targets.dedup();
        if mode == "named" {
            if targets.is_empty() {
                return Err(AppError::Invalid(
                    "開示先の施設を一つ以上選んでください".into(),
                ));
            }
            for t in &targets {
                self.store.facility(*t).await.map_err(|_| {
                    AppError::Invalid("開示先に存在しない施設が含まれています".into())
                })?;
            }
        } else {
            targets.clear();
        }
        let mut categories = CategorySet::EMPTY;
        for key in &input.categories {
            let c = ConsentCategory::from_key(key.trim())
                .ok_or_else(|| AppError::Invalid(format!("開示する情報「{key}」は選べません")))?;
            categories = categories.with(c);
        }
        if categories.is_empty() {
            return Err(AppError::Invalid(
                "開示する情報を一つ以上選んでください".into(),
            ));
        }
        let (from, to) = (date_key(&input.data_from)?, date_key(&input.data_to)?);
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(AppError::Invalid(
                "開示期間の開始日が終了日より後になっています".into(),
            ));
        }
        let event = self.event(
            actor,
            "consent.create",
            format!("person:{}", person.id),
            AuditOutcome::Success,
            &format!(
                "{mode} targets={:?} {} {}..{}",
                targets,
                categories.to_keys(),
                from.map(iso).unwrap_or_default(),
                to.map(iso).unwrap_or_default()
            ),
        );
        Ok(self
            .store
            .create_consent(
                &NewConsent {
                    person_id: person.id,
                    facility_id: facility,
                    target_mode: mode.to_string(),
                    targets,
                    categories: categories.to_keys(),
                    data_from: from.map(iso),
                    data_to: to.map(iso),
                },
                (self.now().0, &actor.login_id),
                event,
            )
            .await?)
    }

    /// Withdraws a consent of this facility's, with immediate effect. Audited.
    pub async fn withdraw_consent(&self, actor: &Actor, consent_id: i64) -> Result<()> {
        let facility = self.disclosing_facility(actor).await?;
        let consent = self.store.consent(consent_id).await?;
        if consent.facility_id != facility {
            return Err(AppError::NotFound);
        }
        let event = self.event(
            actor,
            "consent.withdraw",
            format!("person:{}", consent.person_id),
            AuditOutcome::Success,
            &format!("consent:{consent_id}"),
        );
        self.store
            .withdraw_consent(consent_id, (self.now().0, &actor.login_id), event)
            .await
            .map_err(|e| match e {
                renkei_store::StoreError::NotFound => {
                    AppError::Conflict("この同意はすでに撤回されています".into())
                }
                other => other.into(),
            })
    }

    /// A consent of this facility's with the person and the facilities it names (for the
    /// consent form).
    pub async fn consent_for_form(
        &self,
        actor: &Actor,
        consent_id: i64,
    ) -> Result<(Person, ConsentRecord)> {
        let facility = self.disclosing_facility(actor).await?;
        let consent = self.store.consent(consent_id).await?;
        if consent.facility_id != facility {
            return Err(AppError::NotFound);
        }
        let person = self.store.person(consent.person_id).await?;
        let record = self
            .store
            .consents_of(person.id)
            .await?
            .into_iter()
            .find(|c| c.consent.id == consent_id)
            .ok_or(AppError::NotFound)?;
        Ok((person, record))
    }

    /// Attaches the scan of the signed paper form (PDF or image, at most 20 MB). Audited.
    pub async fn attach_consent_scan(
        &self,
        actor: &Actor,
        consent_id: i64,
        file_name: &str,
        bytes: &[u8],
    ) -> Result<i64> {
        let facility = self.disclosing_facility(actor).await?;
        let consent = self.store.consent(consent_id).await?;
        if consent.facility_id != facility {
            return Err(AppError::NotFound);
        }
        if bytes.is_empty() {
            return Err(AppError::Invalid("ファイルを選んでください".into()));
        }
        if bytes.len() > MAX_SCAN_BYTES {
            return Err(AppError::Invalid(
                "同意書のファイルは 20 MB までです".into(),
            ));
        }
        let content_type = if bytes.starts_with(b"%PDF") {
            "application/pdf"
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            "image/jpeg"
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            "image/png"
        } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
            "image/tiff"
        } else {
            return Err(AppError::Invalid(
                "同意書は PDF・JPEG・PNG・TIFF のいずれかで添付してください".into(),
            ));
        };
        let name: String = file_name
            .chars()
            .filter(|c| !c.is_control() && !matches!(c, '/' | '\\'))
            .take(200)
            .collect();
        let event = self.event(
            actor,
            "consent.scan.attach",
            format!("person:{}", consent.person_id),
            AuditOutcome::Success,
            &format!("consent:{consent_id} {content_type} {} bytes", bytes.len()),
        );
        Ok(self
            .store
            .attach_consent_scan(
                consent_id,
                (&name, content_type, bytes),
                (self.now().0, &actor.login_id),
                event,
            )
            .await?)
    }

    /// A scan of this facility's consent form (name, content type, bytes). Audited.
    pub async fn consent_scan(
        &self,
        actor: &Actor,
        scan_id: i64,
    ) -> Result<(String, String, Vec<u8>)> {
        let (info, bytes) = self.store.consent_scan(scan_id).await?;
        let consent = self.store.consent(info.consent_id).await?;
        if actor.facility_id != Some(consent.facility_id) && !actor.is_operator() {
            return Err(AppError::NotFound);
        }
        self.append_audit(self.event(
            actor,
            "consent.scan.read",
            format!("person:{}", consent.person_id),
            AuditOutcome::Success,
            &format!("scan:{scan_id}"),
        ))
        .await?;
        Ok((info.file_name, info.content_type, bytes))
    }

    /// Records that this facility referred its patient to another facility (紹介). Audited.
    pub async fn record_referral(
        &self,
        actor: &Actor,
        patient_local_id: &str,
        to_facility: i64,
    ) -> Result<()> {
        let facility = actor.facility_id.ok_or(AppError::Forbidden)?;
        let person = self.person_of_patient(actor, patient_local_id).await?;
        self.store
            .facility(to_facility)
            .await
            .map_err(|_| AppError::Invalid("紹介先の施設が見つかりません".into()))?;
        if to_facility == facility {
            return Err(AppError::Invalid("自施設は紹介先にできません".into()));
        }
        let event = self.event(
            actor,
            "consent.referral.record",
            format!("person:{}", person.id),
            AuditOutcome::Success,
            &format!("to facility:{to_facility}"),
        );
        Ok(self
            .store
            .record_referral(
                person.id,
                (facility, to_facility),
                (self.now().0, &actor.login_id),
                event,
            )
            .await?)
    }

    /// The patient opts out of (or back into) this facility's facility-level consent. Audited.
    pub async fn set_opt_out(
        &self,
        actor: &Actor,
        patient_local_id: &str,
        opted_out: bool,
    ) -> Result<()> {
        let facility = self.disclosing_facility(actor).await?;
        let person = self.person_of_patient(actor, patient_local_id).await?;
        let event = self.event(
            actor,
            if opted_out {
                "consent.opt_out"
            } else {
                "consent.opt_in"
            },
            format!("person:{}", person.id),
            AuditOutcome::Success,
            "",
        );
        Ok(self
            .store
            .set_opt_out(
                person.id,
                facility,
                opted_out,
                (self.now().0, &actor.login_id),
                event,
            )
            .await?)
    }

    /// Reading a card starts (or restarts) the reading facility's card-less access for a year:
    /// everything, or with only hospital-only disclosure cards, those hospitals' records.
    pub(crate) async fn grant_cardless(&self, facility: i64, person: &Person) -> Result<()> {
        let cards = self.store.cards_of(person.id).await?;
        let active: Vec<_> = cards.iter().filter(|c| c.status == "active").collect();
        let scopes: Vec<i64> = if active.iter().any(|c| c.kind == "hm") {
            vec![0]
        } else {
            active.iter().map(|c| c.issuer_facility).collect()
        };
        for scope in scopes {
            self.store
                .touch_cardless_grant(facility, person.id, scope, self.now().0)
                .await?;
        }
        Ok(())
    }

    /// The facility's patient list (カードレス開示): persons whose card was read here within the
    /// last year, most recent first. Audited.
    pub async fn patient_list(
        &self,
        actor: &Actor,
        include_hidden: bool,
        records_at: Option<i64>,
    ) -> Result<Vec<ListedPatient>> {
        let facility = actor.facility_id.ok_or(AppError::Forbidden)?;
        let since = self.now().0 - renkei_core::consent::CARDLESS_MICROS;
        let rows = self
            .store
            .cardless_list(facility, since + 1, include_hidden)
            .await?;
        let mut out: Vec<ListedPatient> = Vec::new();
        for r in rows {
            if let Some(existing) = out.iter_mut().find(|p| p.person.id == r.person_id) {
                // One row per person: an HM card's grant covers every disclosure card's.
                if r.scope_facility == 0 {
                    existing.only_facility = None;
                }
                continue;
            }
            if let Some(f) = records_at
                && !self
                    .store
                    .links_of(r.person_id)
                    .await?
                    .iter()
                    .any(|l| l.active && l.facility_id == f)
            {
                continue;
            }
            out.push(ListedPatient {
                person: self.store.person(r.person_id).await?,
                last_access_at: r.last_access_at,
                only_facility: (r.scope_facility != 0).then_some(r.scope_facility),
                hidden: r.hidden,
            });
        }
        self.append_audit(self.event(
            actor,
            "consent.patient_list",
            format!("facility:{facility}"),
            AuditOutcome::Success,
            &format!("rows={}", out.len()),
        ))
        .await?;
        Ok(out)
    }

    /// Hides rows of the facility's patient list (選択した患者を非表示). Audited.
    pub async fn hide_patients(&self, actor: &Actor, person_ids: &[i64]) -> Result<()> {
        let facility = actor.facility_id.ok_or(AppError::Forbidden)?;
        let event = self.event(
            actor,
            "consent.patient_list.hide",
            format!("facility:{facility}"),
            AuditOutcome::Success,
            &format!("persons={person_ids:?}"),
        );
        Ok(self
            .store
            .hide_cardless(facility, person_ids, event)
            .await?)
    }

    /// A refused break-the-glass request (an unknown or malformed ID), marked as an emergency
    /// event so that the operator's emergency filter shows probes as well as grants.
    async fn audit_emergency_probe(&self, actor: &Actor, target: String, why: &str) -> Result<()> {
        let mut event = self.event(
            actor,
            "consent.emergency.grant",
            target,
            AuditOutcome::Failure,
            why,
        );
        event.emergency = true;
        self.append_audit(event).await
    }

    /// Break-the-glass: a user states a reason and reads the patient's record for
    /// [`EMERGENCY_HOURS`]. The facilities holding the patient's records and the operator are
    /// notified; the grant and every read under it are marked in the audit trail.
    pub async fn request_emergency_access(
        &self,
        actor: &Actor,
        common_id: &str,
        reason: &str,
    ) -> Result<(Person, i64)> {
        let facility = actor.facility_id.ok_or(AppError::Forbidden)?;
        let user = actor.user_id.ok_or(AppError::Forbidden)?;
        let reason = reason.trim();
        if reason.chars().count() < 5 {
            return Err(AppError::Invalid(
                "緊急時閲覧の理由を具体的に入力してください（5文字以上）".into(),
            ));
        }
        let (person, target) = match renkei_identity::CommonId::parse(common_id) {
            Ok(id) => (
                self.store.person_by_common_id(&id.digits()).await?,
                format!("common_id:{}", id.digits()),
            ),
            Err(e) => {
                // What was typed is not kept: it may be anything, a name included.
                self.audit_emergency_probe(actor, String::new(), "invalid_id")
                    .await?;
                return Err(AppError::Invalid(e.to_string()));
            }
        };
        let Some(mut person) = person else {
            // A probe of an ID nobody holds is as visible to the operator as a grant.
            self.audit_emergency_probe(actor, target, "unknown_id")
                .await?;
            return Err(AppError::Invalid(
                "この地域共通IDの方は見つかりません".into(),
            ));
        };
        if let Some(survivor) = person.merged_into {
            person = self.store.person(survivor).await?;
        }
        let now = self.now().0;
        let expires = now + EMERGENCY_HOURS * 3_600 * 1_000_000;
        let me = self.store.facility(facility).await?;
        let message = format!(
            "緊急時閲覧: {}の{}（{}）が地域共通ID {} の方の診療情報を閲覧できるようにしました。理由: {reason}",
            me.name, actor.name, actor.login_id, person.common_id
        );
        let mut notify: Vec<(i64, String)> = Vec::new();
        for link in self.store.links_of(person.id).await? {
            if link.active
                && link.facility_id != facility
                && !notify.iter().any(|(f, _)| *f == link.facility_id)
                && self.store.facility(link.facility_id).await?.discloses
            {
                notify.push((link.facility_id, message.clone()));
            }
        }
        let (operators, _) = self
            .store
            .search_facilities(&FacilityQuery {
                facility_type: Some("operator".into()),
                active_only: true,
                limit: 100,
                ..FacilityQuery::default()
            })
            .await?;
        for op in operators {
            if !notify.iter().any(|(f, _)| *f == op.id) {
                notify.push((op.id, message.clone()));
            }
        }
        let mut event = self.event(
            actor,
            "consent.emergency.grant",
            format!("person:{}", person.id),
            AuditOutcome::Success,
            &format!("reason={reason}"),
        );
        event.emergency = true;
        self.store
            .create_emergency_grant(
                (user, facility, person.id),
                reason,
                (now, expires),
                &notify,
                event,
            )
            .await?;
        Ok((person, expires))
    }

    /// Notifications to the actor's facility (emergency access to its patients), newest first.
    pub async fn notifications(
        &self,
        actor: &Actor,
    ) -> Result<Vec<renkei_store::consent::NotificationRow>> {
        let facility = actor.facility_id.ok_or(AppError::Forbidden)?;
        Ok(self.store.notifications(facility, 50).await?)
    }

    /// Opens a read of a person's record: the person, the decider and the active links, or
    /// `NotFound` (audited as a denied read) when the actor's facility has no relation to the
    /// person (no link, no card read, no emergency grant) or the person does not exist.
    /// The reads that refusing an existing but unrelated person makes (the person, the
    /// consent context, the links), made for a person that does not exist: so that the time
    /// of a refusal does not tell whether a record exists.
    pub(crate) async fn phantom_reads(&self) -> Result<()> {
        const NOBODY: i64 = -1;
        match self.store.person(NOBODY).await {
            Ok(_) | Err(renkei_store::StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let stored = self.store.consent_context(NOBODY).await?;
        let _ = patient_context(&stored);
        let _ = self.store.links_of(NOBODY).await?;
        Ok(())
    }

    /// Whether the actor's profession may open records at all (its row of the matrix allows
    /// some category); screens use it to open the record after a card read or to stay.
    pub async fn may_open_records(&self, actor: &Actor) -> bool {
        let profession = actor
            .profession
            .as_deref()
            .and_then(Profession::from_key)
            .unwrap_or(Profession::Clerk);
        self.rights()
            .await
            .is_ok_and(|r| !r.of(profession).is_empty())
    }

    async fn open_read(&self, actor: &Actor, person_id: i64, what: &str) -> Result<OpenRead> {
        let facility = actor.facility_id.ok_or(AppError::Forbidden)?;
        let profession = actor
            .profession
            .as_deref()
            .and_then(Profession::from_key)
            .unwrap_or(Profession::Clerk);
        // A profession whose row of the matrix allows no category (the patient list only) does
        // not open a record at all; decided before the person is looked up, so it says nothing
        // about who exists.
        if self.rights().await?.of(profession).is_empty() {
            self.append_audit(self.event(
                actor,
                "clinical.read",
                format!("person:{person_id}"),
                AuditOutcome::Denied,
                &format!("{what} profession_without_rights"),
            ))
            .await?;
            return Err(AppError::Forbidden);
        }
        let viewer = Viewer {
            user: actor.user_id.unwrap_or(0),
            facility,
            profession,
        };
        let unknown = |detail: String| async move {
            self.append_audit(self.event(
                actor,
                "clinical.read",
                format!("person:{person_id}"),
                AuditOutcome::Denied,
                &detail,
            ))
            .await?;
            Err::<OpenRead, AppError>(AppError::NotFound)
        };
        let person = match self.store.person(person_id).await {
            Ok(p) => p,
            Err(renkei_store::StoreError::NotFound) => {
                self.phantom_reads().await?;
                return unknown(format!("{what} no_such_person")).await;
            }
            Err(e) => return Err(e.into()),
        };
        let stored = self.store.consent_context(person.id).await?;
        let context = patient_context(&stored);
        let now = self.now().0;
        let mut links: Vec<_> = self
            .store
            .links_of(person.id)
            .await?
            .into_iter()
            .filter(|l| l.active)
            .collect();
        // Only disclosing facilities' records are read (besides the reader's own): without a
        // disclosure rule nothing of theirs is permitted anyway, and an emergency grant opens
        // what the region discloses, not what a facility keeps to itself.
        let mut kept = Vec::with_capacity(links.len());
        for l in links.drain(..) {
            if l.facility_id == facility || self.store.facility(l.facility_id).await?.discloses {
                kept.push(l);
            }
        }
        let links = kept;
        let known = links.iter().any(|l| l.facility_id == facility)
            || context.cardless.iter().any(|g| {
                g.viewer_facility == facility
                    && now < g.last_access + renkei_core::consent::CARDLESS_MICROS
            })
            || context
                .emergency
                .iter()
                .any(|g| g.user == viewer.user && g.expires_at > now);
        if !known {
            return unknown(format!("{what} no_relation")).await;
        }
        let rights = self.rights().await?;
        let decider = Decider::new(&rights, &viewer, &context, now);
        let emergency_until = context
            .emergency
            .iter()
            .filter(|g| g.user == viewer.user && g.expires_at > now)
            .map(|g| g.expires_at)
            .max();
        Ok(OpenRead {
            person,
            decider,
            emergency_until,
            links: links
                .into_iter()
                .map(|l| (l.facility_id, l.patient_local_id))
                .collect(),
            tally: Tally::default(),
        })
    }

    /// Records a finished read in the audit trail: what was read, how many items were shown
    /// and withheld, and whether an emergency grant was used.
    async fn close_read(&self, actor: &Actor, read: &OpenRead, what: &str) -> Result<()> {
        let t = &read.tally;
        let mut event = self.event(
            actor,
            "clinical.read",
            format!("person:{}", read.person.id),
            if t.permitted > 0 || (t.denied == 0 && t.withheld == 0) {
                AuditOutcome::Success
            } else {
                AuditOutcome::Denied
            },
            &format!(
                "{what} permitted={} denied={} withheld_facilities={}{}",
                t.permitted,
                t.denied,
                t.withheld,
                if t.emergency { " basis=emergency" } else { "" }
            ),
        );
        event.emergency |= t.emergency;
        self.append_audit(event).await?;
        Ok(())
    }

    /// A person's whole record as the actor may see it: every item decided by the consent
    /// rule; one audit event records the read, permitted or denied. A person the actor's
    /// facility has no relation to is `NotFound`, exactly like a person who does not exist.
    pub async fn read_record(&self, actor: &Actor, person_id: i64) -> Result<RecordView> {
        self.read_selected(actor, person_id, &Selection::default())
            .await
    }

    /// Part of a person's record (some categories, from a date on, some codes), decided and
    /// audited like [`App::read_record`]: views read what they show, not the whole record.
    pub async fn read_selected(
        &self,
        actor: &Actor,
        person_id: i64,
        selection: &Selection,
    ) -> Result<RecordView> {
        let what = selection.describe();
        let mut read = self.open_read(actor, person_id, &what).await?;
        let mut items = Vec::new();
        let links = read.links.clone();
        for (facility, patient) in &links {
            if !read.decider.may_see_any_of(*facility) {
                // Nothing of this facility's could show: its items are not even read.
                read.tally.withheld += 1;
                continue;
            }
            let all = match &selection.categories {
                None => self.store.patient_record(*facility, patient).await?.1,
                Some(categories) => {
                    let categories: Vec<&str> = categories.iter().map(String::as_str).collect();
                    self.store
                        .patient_items_of(
                            *facility,
                            patient,
                            &categories,
                            (selection.since.as_deref(), selection.until.as_deref()),
                            selection.codes.as_deref(),
                        )
                        .await?
                }
            };
            for item in all {
                let Some(category) = ConsentCategory::of_clinical(&item.category) else {
                    read.tally.denied += 1;
                    continue;
                };
                let date = item
                    .effective_date
                    .as_deref()
                    .and_then(|d| date_key(d).ok().flatten());
                if read.tally.record(read.decider.decide(&ItemRef {
                    facility: *facility,
                    category,
                    date,
                })) {
                    items.push(VisibleItem {
                        facility_id: *facility,
                        category,
                        item,
                    });
                }
            }
        }
        self.close_read(actor, &read, &what).await?;
        let scopes = ConsentCategory::ALL
            .into_iter()
            .map(|c| (c, read.decider.scope_of(c)))
            .collect();
        Ok(RecordView {
            person: read.person,
            items,
            scopes,
            emergency_until: read.emergency_until,
        })
    }

    /// What a calendar needs: per facility, category (encounters also per event) and day, how
    /// many items the actor may see. Decided group by group (the decision depends only on the
    /// facility, the category and the date) and audited as one read.
    pub async fn read_days(
        &self,
        actor: &Actor,
        person_id: i64,
    ) -> Result<(Person, Vec<VisibleDay>, Option<i64>)> {
        let mut read = self.open_read(actor, person_id, "view=days").await?;
        let days = self.days_of(&mut read, None).await?;
        self.close_read(actor, &read, "view=days").await?;
        Ok((read.person, days, read.emergency_until))
    }

    /// Lab results of the latest `dates` days with results the actor may see (for the lab
    /// table), in one audited read.
    pub async fn read_recent_labs(
        &self,
        actor: &Actor,
        person_id: i64,
        dates: usize,
    ) -> Result<RecordView> {
        let what = format!("view=labs dates={dates}");
        let mut read = self.open_read(actor, person_id, &what).await?;
        let mut days: Vec<String> = self
            .days_of(&mut read, Some("lab_result"))
            .await?
            .into_iter()
            .filter_map(|d| d.date)
            .collect();
        days.sort_unstable();
        days.dedup();
        let since = days
            .iter()
            .rev()
            .nth(dates.saturating_sub(1))
            .cloned()
            .or_else(|| days.first().cloned());
        let mut items = Vec::new();
        if since.is_some() {
            let links = read.links.clone();
            for (facility, patient) in &links {
                if !read.decider.may_see_any_of(*facility) {
                    continue;
                }
                for item in self
                    .store
                    .patient_items_of(
                        *facility,
                        patient,
                        &["lab_result"],
                        (since.as_deref(), None),
                        None,
                    )
                    .await?
                {
                    let date = item
                        .effective_date
                        .as_deref()
                        .and_then(|d| date_key(d).ok().flatten());
                    let decision = read.decider.decide(&ItemRef {
                        facility: *facility,
                        category: ConsentCategory::Lab,
                        date,
                    });
                    if decision.permitted() {
                        items.push(VisibleItem {
                            facility_id: *facility,
                            category: ConsentCategory::Lab,
                            item,
                        });
                    }
                }
            }
        }
        self.close_read(actor, &read, &what).await?;
        let scopes = ConsentCategory::ALL
            .into_iter()
            .map(|c| (c, read.decider.scope_of(c)))
            .collect();
        Ok(RecordView {
            person: read.person,
            items,
            scopes,
            emergency_until: read.emergency_until,
        })
    }

    /// Item groups by day that the read may show (counted into its tally).
    async fn days_of(
        &self,
        read: &mut OpenRead,
        category: Option<&str>,
    ) -> Result<Vec<VisibleDay>> {
        let mut days = Vec::new();
        let links = read.links.clone();
        for (facility, patient) in &links {
            if !read.decider.may_see_any_of(*facility) {
                read.tally.withheld += 1;
                continue;
            }
            for group in self
                .store
                .patient_item_days(*facility, patient, category)
                .await?
            {
                let n = usize::try_from(group.items).unwrap_or(0);
                let Some(category) = ConsentCategory::of_clinical(&group.category) else {
                    read.tally.denied += n;
                    continue;
                };
                let date = group
                    .effective_date
                    .as_deref()
                    .and_then(|d| date_key(d).ok().flatten());
                let decision = read.decider.decide(&ItemRef {
                    facility: *facility,
                    category,
                    date,
                });
                if read.tally.record_many(decision, n) {
                    days.push(VisibleDay {
                        facility_id: *facility,
                        category: group.category,
                        code: group.code,
                        date: group.effective_date,
                        items: n,
                    });
                }
            }
        }
        Ok(days)
    }

    /// Who read a person's record, and when (newest first): the audit events about them.
    /// Operator only (the patient's own view comes with the PHR).
    pub async fn access_history(
        &self,
        actor: &Actor,
        person_id: i64,
    ) -> Result<Vec<renkei_core::audit::ChainedAuditEvent>> {
        actor.require_operator()?;
        let events = self
            .store
            .audit_by_target(&format!("person:{person_id}"), 500)
            .await?;
        self.append_audit(self.event(
            actor,
            "consent.access_history",
            format!("person:{person_id}"),
            AuditOutcome::Success,
            &format!("events={}", events.len()),
        ))
        .await?;
        Ok(events)
    }
}
