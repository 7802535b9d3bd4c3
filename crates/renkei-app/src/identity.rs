//! The regional common ID and cards: issuing (only where the directory allows), reading a card
//! at any facility (名寄せ), re-issue, revocation and the card-holding check.

use renkei_core::audit::AuditOutcome;
pub use renkei_identity::synthetic;
use renkei_identity::{CardPayload, CommonId, normalize_address, normalize_kana, normalize_name};
use renkei_store::identity::{CandidateKeys, NewPerson, Person, PersonKeys, PersonSearch};
pub use renkei_store::identity::{Card, Person as PersonRow, PersonLink};

pub use crate::card_proof::CardProof;
use crate::{Actor, App, AppError, Result};

/// Which card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardKind {
    /// HMカード: the regional card, valid everywhere in the network.
    Hm,
    /// 診療情報開示カード: valid only for the issuing hospital's records.
    Disclosure,
}

impl CardKind {
    pub fn key(self) -> &'static str {
        match self {
            CardKind::Hm => "hm",
            CardKind::Disclosure => "disclosure",
        }
    }
}

/// Names and birth date for a person who has no record at the facility yet.
#[derive(Clone, Debug, Default)]
pub struct PersonDetails {
    pub kanji_name: String,
    pub kana_name: String,
    /// `YYYY-MM-DD`.
    pub birth_date: String,
    pub sex: String,
    pub phone: String,
    pub postal_code: String,
    pub address: String,
}

/// The version of the normalisation behind [`person_keys`]; raise it when normalisation
/// changes, and [`App::refresh_person_keys`] re-keys every person made with an older one.
pub const KEYS_VERSION: i64 = 1;

fn digits(s: &str) -> String {
    s.chars()
        .flat_map(|c| c.to_digit(10).and_then(|d| char::from_digit(d, 10)))
        .collect()
}

/// The search keys of a person's demographics.
pub fn person_keys(kanji_name: &str, kana_name: &str, phone: &str, address: &str) -> PersonKeys {
    PersonKeys {
        kana_key: normalize_kana(kana_name),
        kanji_key: normalize_name(kanji_name),
        phone_key: Some(digits(phone))
            .filter(|d| d.len() >= 9)
            .unwrap_or_default(),
        address_key: normalize_address(address),
        version: KEYS_VERSION,
    }
}

fn with_keys(p: NewPerson) -> NewPerson {
    NewPerson {
        keys: person_keys(&p.kanji_name, &p.kana_name, &p.phone, &p.address),
        ..p
    }
}

/// What the operator's person search asks: any of a name (kanji or kana, from its start), a
/// birth date, sex, phone number and address (from its start).
#[derive(Clone, Debug, Default)]
pub struct PersonQuery {
    pub name: String,
    pub birth_date: String,
    pub sex: String,
    pub phone: String,
    pub address: String,
}

/// The most persons one search returns (narrow the search for more).
pub const SEARCH_LIMIT: usize = 100;

/// What a scanned card led to (see [`App::read_card_scan`]).
#[derive(Clone, Debug)]
pub enum CardScan {
    /// Read and linked under this patient ID.
    Linked(Person, String),
    /// A verified card of a person not linked here yet: the patient ID is asked for.
    NeedsPatientId(Person),
}

/// A person as the card screens show them.
#[derive(Clone, Debug)]
pub struct IssuedCard {
    pub person: Person,
    pub card: Card,
    pub common_id: CommonId,
    /// What the QR code carries, the card's secret included.
    pub payload: String,
    /// The verification code printed on the card, for reading it by hand.
    pub code: String,
}

impl App {
    fn facility_of(&self, actor: &Actor) -> Result<i64> {
        actor.facility_id.ok_or(AppError::Forbidden)
    }

    /// Issues a card for the acting facility's patient. The first card creates the person and
    /// a new common ID (never reused); a patient already linked keeps their ID and gets the card.
    /// Only facilities the directory marks as issuing that card may issue it.
    pub async fn issue_card(
        &self,
        actor: &Actor,
        patient_local_id: &str,
        kind: CardKind,
        details: Option<&PersonDetails>,
    ) -> Result<IssuedCard> {
        let facility_id = self.facility_of(actor)?;
        let facility = self.store.facility(facility_id).await?;
        let allowed = match kind {
            CardKind::Hm => facility.issues_hm_card,
            CardKind::Disclosure => facility.issues_disclosure_card,
        };
        if !allowed {
            return Err(AppError::Invalid(
                "この施設はこのカードを発行できません（施設情報で発行が許可されていません）".into(),
            ));
        }
        let patient = patient_local_id.trim();
        if patient.is_empty() {
            return Err(AppError::Invalid("患者IDを入力してください".into()));
        }
        let now = self.now().0;
        if let Some(person) = self.store.linked_person(facility_id, patient).await? {
            let cards = self.store.cards_of(person.id).await?;
            if cards.iter().any(|c| {
                c.kind == kind.key() && c.issuer_facility == facility_id && c.status == "active"
            }) {
                return Err(AppError::Conflict(
                    "この方はすでにこのカードをお持ちです。紛失の場合は再発行してください".into(),
                ));
            }
            let event = self.event(
                actor,
                "identity.card.issue",
                format!("person:{}", person.id),
                AuditOutcome::Success,
                kind.key(),
            );
            let card = self
                .store
                .issue_card(person.id, kind.key(), facility_id, now, event)
                .await?;
            return self.issued(person, card);
        }
        // A new person: demographics from the facility's record, or as entered.
        let record = self.store.patient_record(facility_id, patient).await?.0;
        let person = match (record, details) {
            (_, Some(d)) => NewPerson {
                kanji_name: d.kanji_name.trim().to_string(),
                kana_name: d.kana_name.trim().to_string(),
                birth_date: Some(d.birth_date.trim().to_string()).filter(|b| !b.is_empty()),
                sex: d.sex.trim().to_string(),
                phone: d.phone.trim().to_string(),
                postal_code: d.postal_code.trim().to_string(),
                address: d.address.trim().to_string(),
                ..NewPerson::default()
            },
            (Some(r), None) => NewPerson {
                kanji_name: r.kanji_name,
                kana_name: r.kana_name,
                birth_date: r.birth_date,
                sex: r.sex,
                phone: r.phone,
                postal_code: r.postal_code,
                address: r.address,
                ..NewPerson::default()
            },
            (None, None) => {
                return Err(AppError::Invalid(
                    "この患者IDの診療情報がありません。氏名・生年月日を入力してください".into(),
                ));
            }
        };
        if person.kanji_name.is_empty() && person.kana_name.is_empty() {
            return Err(AppError::Invalid("氏名を入力してください".into()));
        }
        let serial = self
            .store
            .allocate_common_id_serial(i64::from(self.config.region_prefecture))
            .await?;
        let id = CommonId::issue(
            self.config.region_prefecture,
            u32::try_from(serial).map_err(|_| AppError::Internal("serials exhausted".into()))?,
        )
        .map_err(|e| AppError::Internal(e.to_string()))?;
        let new = with_keys(NewPerson {
            common_id: id.digits(),
            ..person
        });
        let event = self.event(
            actor,
            "identity.person.create",
            format!("common_id:{}", id.digits()),
            AuditOutcome::Success,
            kind.key(),
        );
        let (person, card) = self
            .store
            .create_person_with_card(
                &new,
                kind.key(),
                (facility_id, patient, &actor.login_id),
                now,
                event,
            )
            .await?;
        self.issued(person, card)
    }

    fn issued(&self, person: Person, card: Card) -> Result<IssuedCard> {
        let common_id =
            CommonId::parse(&person.common_id).map_err(|e| AppError::Internal(e.to_string()))?;
        let payload = CardPayload {
            id: common_id,
            reserved: String::new(),
            secret: self.card_secret(&person.common_id, card.id),
        }
        .encode();
        let code = self.card_code(&person.common_id, card.id);
        Ok(IssuedCard {
            person,
            card,
            common_id,
            payload,
            code,
        })
    }

    /// Reads a card's QR code at the acting facility (a barcode reader types the payload):
    /// [`App::read_card_with`] with nothing typed beside it.
    pub async fn read_card(
        &self,
        actor: &Actor,
        scanned: &str,
        patient_local_id: &str,
    ) -> Result<Person> {
        self.read_card_with(actor, scanned, &CardProof::default(), patient_local_id)
            .await
    }

    /// Reads a card at the acting facility and links the facility's patient ID to the person.
    /// The read must prove the card or the patient is present (the QR code's secret, or for an
    /// ID typed by hand the printed verification code or the name and birth date; see
    /// [`crate::card_proof`]). A typo is refused by the check digit; an unknown ID, a revoked
    /// or replaced card and a missing or wrong proof are refused alike, before anything about
    /// the person is shown. Reads are rate-limited per user and per facility.
    pub async fn read_card_with(
        &self,
        actor: &Actor,
        scanned: &str,
        proof: &CardProof,
        patient_local_id: &str,
    ) -> Result<Person> {
        let facility_id = self.facility_of(actor)?;
        let patient = patient_local_id.trim();
        if patient.is_empty() {
            return Err(AppError::Invalid(
                "自施設の患者ID（カルテ番号）を入力してください".into(),
            ));
        }
        let person = self.verify_card(actor, facility_id, scanned, proof).await?;
        self.link_read_card(actor, facility_id, person, patient)
            .await
    }

    /// A card scanned first, as a barcode reader does: a patient this facility has linked
    /// before is read at once (under the patient ID it has); a new one is named and the patient
    /// ID asked for (`NeedsPatientId`), nothing linked yet. Verified, rate-limited and audited
    /// like [`App::read_card_with`].
    pub async fn read_card_scan(
        &self,
        actor: &Actor,
        scanned: &str,
        proof: &CardProof,
        patient_local_id: &str,
    ) -> Result<CardScan> {
        let facility_id = self.facility_of(actor)?;
        let person = self.verify_card(actor, facility_id, scanned, proof).await?;
        let patient = patient_local_id.trim();
        let known = self
            .store
            .links_of(person.id)
            .await?
            .into_iter()
            .find(|l| l.active && l.facility_id == facility_id)
            .map(|l| l.patient_local_id);
        let patient = match (patient.is_empty(), known) {
            (false, _) => patient.to_string(),
            (true, Some(p)) => p,
            (true, None) => return Ok(CardScan::NeedsPatientId(person)),
        };
        let person = self
            .link_read_card(actor, facility_id, person, &patient)
            .await?;
        Ok(CardScan::Linked(person, patient))
    }

    /// Checks a read proves the card or the patient present; the person it leads to (the
    /// survivor of a merge). Refusals are audited and all look alike.
    async fn verify_card(
        &self,
        actor: &Actor,
        facility_id: i64,
        scanned: &str,
        proof: &CardProof,
    ) -> Result<Person> {
        self.count_card_read(actor, facility_id).await?;
        let payload = CardPayload::parse(scanned).map_err(|e| AppError::Invalid(e.to_string()))?;
        let id = payload.id.digits();
        let refuse = |detail: &'static str| async move {
            self.append_audit(self.event(
                actor,
                "identity.card.read",
                format!("common_id:{id}"),
                AuditOutcome::Denied,
                detail,
            ))
            .await?;
            Err::<Person, AppError>(AppError::Invalid(
                "このカードは使用できません。発行施設または事務局にお問い合わせください".into(),
            ))
        };
        let Some(mut person) = self.store.person_by_common_id(&payload.id.digits()).await? else {
            return refuse("unknown").await;
        };
        let cards = self.store.cards_of(person.id).await?;
        let active: Vec<&Card> = cards.iter().filter(|c| c.status == "active").collect();
        if active.is_empty() {
            return refuse("no_active_card").await;
        }
        if !self.card_present(&payload, &person, &active, proof) {
            return refuse(if payload.secret.is_empty() {
                "no_proof"
            } else {
                "wrong_secret"
            })
            .await;
        }
        // A merged person's card keeps working: it leads to the survivor.
        if let Some(survivor) = person.merged_into {
            person = self.store.person(survivor).await?;
        }
        Ok(person)
    }

    /// Links the facility's patient ID to a verified card's person, with the card-less grant
    /// and the first-read notice.
    async fn link_read_card(
        &self,
        actor: &Actor,
        facility_id: i64,
        person: Person,
        patient: &str,
    ) -> Result<Person> {
        let new_here = !self
            .store
            .links_of(person.id)
            .await?
            .iter()
            .any(|l| l.active && l.facility_id == facility_id);
        let event = self.event(
            actor,
            "identity.card.read",
            format!("person:{}/patient:{patient}", person.id),
            AuditOutcome::Success,
            "linked",
        );
        self.store
            .link_patient(
                person.id,
                (facility_id, patient, &actor.login_id),
                "card_read",
                self.now().0,
                event,
            )
            .await?;
        self.grant_cardless(facility_id, &person).await?;
        if new_here {
            self.notify_first_read(&person, facility_id).await?;
        }
        Ok(person)
    }

    /// The common ID of a person by number (for the operator's screens, which show no internal
    /// numbers); `None` for a number nobody has.
    pub async fn common_id_of(&self, person_id: i64) -> Option<String> {
        self.store.person(person_id).await.ok().map(|p| p.common_id)
    }

    /// Re-issues a lost card: the old one stops working, the ID stays.
    pub async fn reissue_card(
        &self,
        actor: &Actor,
        patient_local_id: &str,
        kind: CardKind,
    ) -> Result<IssuedCard> {
        let facility_id = self.facility_of(actor)?;
        let person = self
            .store
            .linked_person(facility_id, patient_local_id.trim())
            .await?
            .ok_or(AppError::NotFound)?;
        let event = self.event(
            actor,
            "identity.card.reissue",
            format!("person:{}", person.id),
            AuditOutcome::Success,
            kind.key(),
        );
        let card = self
            .store
            .issue_card(person.id, kind.key(), facility_id, self.now().0, event)
            .await?;
        self.issued(person, card)
    }

    /// Revokes a card (issuer or operator).
    pub async fn revoke_card(
        &self,
        actor: &Actor,
        person_id: i64,
        card_id: i64,
        reason: &str,
    ) -> Result<()> {
        let cards = self.store.cards_of(person_id).await?;
        let card = cards
            .iter()
            .find(|c| c.id == card_id)
            .ok_or(AppError::NotFound)?;
        if !actor.is_operator() && actor.facility_id != Some(card.issuer_facility) {
            return Err(AppError::Forbidden);
        }
        let event = self.event(
            actor,
            "identity.card.revoke",
            format!("person:{person_id}/card:{card_id}"),
            AuditOutcome::Success,
            "",
        );
        Ok(self
            .store
            .revoke_card(card_id, reason.trim(), self.now().0, event)
            .await?)
    }

    /// HMカード保持確認: persons with an active card whose normalised name (kanji or kana) and
    /// birth date match. Audited; answers only to facilities that issue cards.
    pub async fn card_holding_check(
        &self,
        actor: &Actor,
        name: &str,
        birth_date: &str,
    ) -> Result<Vec<Person>> {
        let facility_id = self.facility_of(actor)?;
        let f = self.store.facility(facility_id).await?;
        if !(f.issues_hm_card || f.issues_disclosure_card || actor.is_operator()) {
            return Err(AppError::Forbidden);
        }
        let wanted = normalize_name(name);
        let wanted_kana = normalize_kana(name);
        let found: Vec<Person> = self
            .store
            .card_holders_born(birth_date.trim())
            .await?
            .into_iter()
            .filter(|p| {
                normalize_name(&p.kanji_name) == wanted
                    || (!wanted_kana.is_empty() && normalize_kana(&p.kana_name) == wanted_kana)
            })
            .collect();
        let detail = if found.is_empty() { "none" } else { "found" };
        self.append_audit(self.event(
            actor,
            "identity.card.holding_check",
            "persons".into(),
            AuditOutcome::Success,
            detail,
        ))
        .await?;
        Ok(found)
    }

    /// A person's links, open and closed (for the operator's history view).
    pub async fn person_links(&self, actor: &Actor, person_id: i64) -> Result<Vec<PersonLink>> {
        actor.require_operator()?;
        Ok(self.store.links_of(person_id).await?)
    }

    /// A person's cards.
    pub async fn person_cards(&self, actor: &Actor, person_id: i64) -> Result<Vec<Card>> {
        actor.require_operator()?;
        Ok(self.store.cards_of(person_id).await?)
    }
}

/// What a printed card needs.
#[derive(Clone, Debug)]
pub struct PrintableCard {
    pub person: Person,
    pub card: Card,
    pub common_id: CommonId,
    pub payload: String,
    /// The verification code printed on the card.
    pub code: String,
    pub issuer_name: String,
}

impl App {
    /// A card for printing: its issuer's staff or the operator only. Audited.
    pub async fn card_for_print(&self, actor: &Actor, card_id: i64) -> Result<PrintableCard> {
        let card = self.store.card(card_id).await?;
        if !actor.is_operator() && actor.facility_id != Some(card.issuer_facility) {
            return Err(AppError::NotFound);
        }
        if card.status != "active" {
            return Err(AppError::Invalid(
                "このカードは無効です（再発行または失効済み）".into(),
            ));
        }
        let person = self.store.person(card.person_id).await?;
        let issuer_name = self.store.facility(card.issuer_facility).await?.name;
        let issued = self.issued(person, card)?;
        self.append_audit(self.event(
            actor,
            "identity.card.print",
            format!("person:{}/card:{card_id}", issued.person.id),
            AuditOutcome::Success,
            "",
        ))
        .await?;
        Ok(PrintableCard {
            person: issued.person,
            card: issued.card,
            common_id: issued.common_id,
            payload: issued.payload,
            code: issued.code,
            issuer_name,
        })
    }
}

/// A suggested existing person, why, and why not.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub person: Person,
    pub score: f64,
    /// The fields that agree.
    pub reasons: Vec<&'static str>,
    /// The fields both have that disagree.
    pub disagreements: Vec<&'static str>,
}

impl App {
    /// When a facility registers a patient without a card: existing persons who may be the
    /// same, best first, with a score and the fields that agree and disagree (scored with the
    /// common-name discount from the MPI's name counts). Nothing is merged here; a
    /// person confirms by reading the card or linking. Audited (it reveals persons).
    pub async fn suggest_persons(
        &self,
        actor: &Actor,
        details: &PersonDetails,
    ) -> Result<Vec<Candidate>> {
        let facility_id = self.facility_of(actor)?;
        let birth = digits(&details.birth_date);
        if birth.len() != 8 {
            return Err(AppError::Invalid("生年月日を入力してください".into()));
        }
        let keys = person_keys(
            &details.kanji_name,
            &details.kana_name,
            &details.phone,
            &details.address,
        );
        let wanted = renkei_identity::Demographic {
            kanji_name: details.kanji_name.clone(),
            kana_name: details.kana_name.clone(),
            birth_date: details.birth_date.clone(),
            sex: details.sex.clone(),
            phone: details.phone.clone(),
            postal_code: details.postal_code.clone(),
            address: details.address.clone(),
        };
        use renkei_identity::matching::{self as m, japanese_model, japanese_record};
        let model = japanese_model();
        let wanted = japanese_record(&wanted);
        // The common-name discount, as in the whole-population runs: how many of the MPI's
        // persons carry this reading (or, without one, this kanji name).
        let counts = self
            .store
            .name_counts(&keys.kana_key, &keys.kanji_key)
            .await?;
        let same_name = if keys.kana_key.is_empty() {
            counts.same_kanji
        } else {
            counts.same_kana
        };
        let tf = renkei_identity::linkage::TermFrequencies::from_counts(
            &model,
            m::NAME,
            [(
                m::name_frequency_key(&wanted),
                u32::try_from(same_name).unwrap_or(u32::MAX),
            )],
            u64::try_from(counts.persons).unwrap_or(0),
        );
        // Blocking: anyone sharing the birth date, the reading, the kanji name or the phone.
        let mut found: Vec<Candidate> = self
            .store
            .candidate_persons(
                &CandidateKeys {
                    birth_date: format!("{}-{}-{}", &birth[..4], &birth[4..6], &birth[6..]),
                    kana_key: keys.kana_key,
                    kanji_key: keys.kanji_key,
                    phone_key: keys.phone_key,
                },
                5_000,
            )
            .await?
            .into_iter()
            .filter_map(|p| {
                let other = japanese_record(&demographic_of(&p));
                let s = m::score_records(&model, Some(&tf), &wanted, &other);
                (s.score >= m::SUGGEST).then_some(Candidate {
                    person: p,
                    score: s.score,
                    reasons: s.reasons,
                    disagreements: s.disagreements,
                })
            })
            .collect();
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        found.truncate(10);
        let detail = format!("candidates={}", found.len());
        self.append_audit(self.event(
            actor,
            "identity.mpi.suggest",
            format!("facility:{facility_id}"),
            AuditOutcome::Success,
            &detail,
        ))
        .await?;
        Ok(found)
    }

    /// The registering facility confirms that its patient is one of the suggested persons:
    /// the patient is linked to that person (名寄せ without a card). Only a person suggested
    /// for these same details can be chosen. Audited.
    pub async fn confirm_suggested_person(
        &self,
        actor: &Actor,
        patient_local_id: &str,
        person_id: i64,
        details: &PersonDetails,
    ) -> Result<Person> {
        let facility_id = self.facility_of(actor)?;
        let patient = patient_local_id.trim();
        if patient.is_empty() {
            return Err(AppError::Invalid("患者IDを入力してください".into()));
        }
        let chosen = self
            .suggest_persons(actor, details)
            .await?
            .into_iter()
            .find(|c| c.person.id == person_id)
            .ok_or_else(|| {
                AppError::Invalid("選択した方は候補にありません。もう一度入力してください".into())
            })?;
        let event = self.event(
            actor,
            "identity.link.confirm_suggested",
            format!("person:{person_id}"),
            AuditOutcome::Success,
            &format!("score={:.3}", chosen.score),
        );
        self.store
            .link_patient(
                person_id,
                (facility_id, patient, &actor.login_id),
                "mpi_confirmed",
                self.now().0,
                event,
            )
            .await
            .map_err(|e| match e {
                renkei_store::StoreError::Conflict(_) => {
                    AppError::Conflict("この患者IDはすでに別の方にリンクされています".into())
                }
                other => other.into(),
            })?;
        Ok(chosen.person)
    }

    /// Whether the person holds an active card of this kind from the actor's facility.
    pub async fn person_holds_card(
        &self,
        actor: &Actor,
        person_id: i64,
        kind: CardKind,
    ) -> Result<bool> {
        let facility_id = self.facility_of(actor)?;
        Ok(self.store.cards_of(person_id).await?.iter().any(|c| {
            c.kind == kind.key() && c.issuer_facility == facility_id && c.status == "active"
        }))
    }

    /// Re-keys persons whose search keys were made with an older normalisation (or none: rows
    /// from before the keys existed). Run at start-up; returns how many were re-keyed.
    pub async fn refresh_person_keys(&self) -> Result<usize> {
        let mut done = 0;
        loop {
            let batch = self.store.persons_needing_keys(KEYS_VERSION, 1_000).await?;
            if batch.is_empty() {
                return Ok(done);
            }
            let keys: Vec<(i64, PersonKeys)> = batch
                .iter()
                .map(|p| {
                    (
                        p.id,
                        person_keys(&p.kanji_name, &p.kana_name, &p.phone, &p.address),
                    )
                })
                .collect();
            self.store.set_person_keys(&keys).await?;
            done += keys.len();
        }
    }
}

/// A stored person's demographics as the matcher compares them.
fn demographic_of(p: &Person) -> renkei_identity::Demographic {
    renkei_identity::Demographic {
        kanji_name: p.kanji_name.clone(),
        kana_name: p.kana_name.clone(),
        birth_date: p.birth_date.clone().unwrap_or_default(),
        sex: p.sex.clone(),
        phone: p.phone.clone(),
        postal_code: p.postal_code.clone(),
        address: p.address.clone(),
    }
}

impl App {
    /// Merges two persons found to be one (the operator, after review): the merged person's
    /// links move to the survivor and its cards lead there. Full history is kept; audited.
    pub async fn merge_persons(&self, actor: &Actor, survivor: i64, merged: i64) -> Result<()> {
        actor.require_operator()?;
        if survivor == merged {
            return Err(AppError::Invalid("同じ方を統合することはできません".into()));
        }
        self.store.person(survivor).await?;
        self.store.person(merged).await?;
        let event = self.event(
            actor,
            "identity.person.merge",
            format!("person:{merged}->person:{survivor}"),
            AuditOutcome::Success,
            "",
        );
        self.store
            .merge_persons(survivor, merged, &actor.login_id, self.now().0, event)
            .await
            .map_err(|e| match e {
                renkei_store::StoreError::Conflict(_) => {
                    AppError::Conflict("この方はすでに統合されています".into())
                }
                other => other.into(),
            })
    }

    /// Undoes a merge: the links it moved return, the person stands alone again. Audited.
    pub async fn unmerge_person(&self, actor: &Actor, merged: i64) -> Result<()> {
        actor.require_operator()?;
        let event = self.event(
            actor,
            "identity.person.unmerge",
            format!("person:{merged}"),
            AuditOutcome::Success,
            "",
        );
        self.store
            .unmerge_person(merged, &actor.login_id, self.now().0, event)
            .await
            .map_err(|e| match e {
                renkei_store::StoreError::Conflict(_) => {
                    AppError::Conflict("この方は統合されていません".into())
                }
                other => other.into(),
            })
    }
}

/// One person with their cards and links, for the operator.
#[derive(Clone, Debug)]
pub struct PersonDetail {
    pub person: Person,
    pub cards: Vec<Card>,
    pub links: Vec<PersonLink>,
}

impl App {
    /// The operator's person search: by name (kanji or kana, any writing, from its start),
    /// birth date, sex, phone number and address (from its start); every given criterion must
    /// hold. Each goes through an indexed key. At most [`SEARCH_LIMIT`] persons. Audited.
    pub async fn search_persons(&self, actor: &Actor, q: &PersonQuery) -> Result<Vec<Person>> {
        actor.require_operator()?;
        let birth = q.birth_date.trim();
        let birth_digits = digits(birth);
        if !birth.is_empty() && birth_digits.len() != 8 {
            return Err(AppError::Invalid(
                "生年月日を YYYY-MM-DD で入力してください".into(),
            ));
        }
        let phone = digits(&q.phone);
        if !q.phone.trim().is_empty() && phone.len() < 9 {
            return Err(AppError::Invalid(
                "電話番号は市外局番から入力してください".into(),
            ));
        }
        // A name written only in kana is searched by reading, anything else by kanji.
        let name = q.name.trim();
        let kana = normalize_kana(name);
        let is_kana = !kana.is_empty() && kana == normalize_name(name);
        let search = PersonSearch {
            kana_prefix: if is_kana { kana } else { String::new() },
            kanji_prefix: if is_kana {
                String::new()
            } else {
                normalize_name(name)
            },
            birth_date: if birth_digits.is_empty() {
                String::new()
            } else {
                format!(
                    "{}-{}-{}",
                    &birth_digits[..4],
                    &birth_digits[4..6],
                    &birth_digits[6..]
                )
            },
            sex: match q.sex.trim() {
                s @ ("M" | "F") => s.to_string(),
                _ => String::new(),
            },
            phone_key: phone,
            address_prefix: normalize_address(&q.address),
            ..PersonSearch::default()
        };
        if search.kana_prefix.is_empty()
            && search.kanji_prefix.is_empty()
            && search.birth_date.is_empty()
            && search.phone_key.is_empty()
            && search.address_prefix.is_empty()
        {
            return Err(AppError::Invalid(
                "氏名・生年月日・電話番号・住所のいずれかを入力してください".into(),
            ));
        }
        let found = self
            .store
            .search_persons(&search, SEARCH_LIMIT as i64)
            .await?;
        self.append_audit(self.event(
            actor,
            "identity.person.search",
            "persons".into(),
            AuditOutcome::Success,
            &format!("found={}", found.len()),
        ))
        .await?;
        Ok(found)
    }

    /// A person with cards and full link history (operator only, audited).
    pub async fn person_detail(&self, actor: &Actor, person_id: i64) -> Result<PersonDetail> {
        actor.require_operator()?;
        let person = self.store.person(person_id).await?;
        let cards = self.store.cards_of(person_id).await?;
        let links = self.store.links_of(person_id).await?;
        self.append_audit(self.event(
            actor,
            "identity.person.read",
            format!("person:{person_id}"),
            AuditOutcome::Success,
            "",
        ))
        .await?;
        Ok(PersonDetail {
            person,
            cards,
            links,
        })
    }
}
