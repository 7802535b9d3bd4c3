//! The regional common ID and cards: issuing (only where the directory allows), reading a card
//! at any facility (名寄せ), re-issue, revocation and the card-holding check.

use renkei_core::audit::AuditOutcome;
use renkei_identity::{CardPayload, CommonId, normalize_kana, normalize_name};
pub use renkei_store::identity::{Card, Person as PersonRow, PersonLink};
use renkei_store::identity::{NewPerson, Person};

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
}

/// A person as the card screens show them.
#[derive(Clone, Debug)]
pub struct IssuedCard {
    pub person: Person,
    pub card: Card,
    pub common_id: CommonId,
    /// What the QR code carries.
    pub payload: String,
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
                common_id: String::new(),
                kanji_name: d.kanji_name.trim().to_string(),
                kana_name: d.kana_name.trim().to_string(),
                birth_date: Some(d.birth_date.trim().to_string()).filter(|b| !b.is_empty()),
                sex: d.sex.trim().to_string(),
            },
            (Some(r), None) => NewPerson {
                common_id: String::new(),
                kanji_name: r.kanji_name,
                kana_name: r.kana_name,
                birth_date: r.birth_date,
                sex: r.sex,
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
        let new = NewPerson {
            common_id: id.digits(),
            ..person
        };
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
        }
        .encode();
        Ok(IssuedCard {
            person,
            card,
            common_id,
            payload,
        })
    }

    /// Reads a card at the acting facility (a barcode reader types the QR payload, or a clerk
    /// types the ID): links the facility's patient ID to the person. A typo is refused by the
    /// check digit; a revoked or replaced card is refused; nothing tells whether an ID exists.
    pub async fn read_card(
        &self,
        actor: &Actor,
        scanned: &str,
        patient_local_id: &str,
    ) -> Result<Person> {
        let facility_id = self.facility_of(actor)?;
        let payload = CardPayload::parse(scanned).map_err(|e| AppError::Invalid(e.to_string()))?;
        let id = payload.id.digits();
        let refuse = |detail: &'static str| async move {
            self.store
                .append_audit(self.event(
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
        let cards_holder = person.id;
        let cards = self.store.cards_of(cards_holder).await?;
        if !cards.iter().any(|c| c.status == "active") {
            return refuse("no_active_card").await;
        }
        // A merged person's card keeps working: it leads to the survivor.
        if let Some(survivor) = person.merged_into {
            person = self.store.person(survivor).await?;
        }
        let patient = patient_local_id.trim();
        if patient.is_empty() {
            return Err(AppError::Invalid(
                "自施設の患者ID（カルテ番号）を入力してください".into(),
            ));
        }
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
        Ok(person)
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
        self.store
            .append_audit(self.event(
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
        self.store
            .append_audit(self.event(
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
            issuer_name,
        })
    }
}

/// A suggested existing person and why.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub person: Person,
    pub score: f64,
    pub reasons: Vec<&'static str>,
}

impl App {
    /// When a facility registers a patient without a card: existing persons who may be the
    /// same, best first, with a score and the fields that agree. Nothing is merged here; a
    /// person confirms by reading the card or linking. Audited (it reveals persons).
    pub async fn suggest_persons(
        &self,
        actor: &Actor,
        details: &PersonDetails,
    ) -> Result<Vec<Candidate>> {
        let facility_id = self.facility_of(actor)?;
        let year: String = details
            .birth_date
            .chars()
            .filter(char::is_ascii_digit)
            .take(4)
            .collect();
        if year.len() != 4 {
            return Err(AppError::Invalid("生年月日を入力してください".into()));
        }
        let wanted = renkei_identity::Demographic {
            kanji_name: details.kanji_name.clone(),
            kana_name: details.kana_name.clone(),
            birth_date: details.birth_date.clone(),
            sex: details.sex.clone(),
            ..Default::default()
        };
        let mut found: Vec<Candidate> = self
            .store
            .persons_born_in(&year)
            .await?
            .into_iter()
            .filter_map(|p| {
                let other = renkei_identity::Demographic {
                    kanji_name: p.kanji_name.clone(),
                    kana_name: p.kana_name.clone(),
                    birth_date: p.birth_date.clone().unwrap_or_default(),
                    sex: p.sex.clone(),
                    ..Default::default()
                };
                let s = renkei_identity::score(&wanted, &other);
                (s.score >= renkei_identity::matching::SUGGEST).then_some(Candidate {
                    person: p,
                    score: s.score,
                    reasons: s.reasons,
                })
            })
            .collect();
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        found.truncate(10);
        let detail = format!("candidates={}", found.len());
        self.store
            .append_audit(self.event(
                actor,
                "identity.mpi.suggest",
                format!("facility:{facility_id}"),
                AuditOutcome::Success,
                &detail,
            ))
            .await?;
        Ok(found)
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
    /// The operator's person search: by birth date (required) and, optionally, a name in any
    /// writing (normalised, partial). Audited.
    pub async fn search_persons(
        &self,
        actor: &Actor,
        name: &str,
        birth_date: &str,
    ) -> Result<Vec<Person>> {
        actor.require_operator()?;
        let birth: String = birth_date.trim().to_string();
        if birth.chars().filter(char::is_ascii_digit).count() != 8 {
            return Err(AppError::Invalid(
                "生年月日を YYYY-MM-DD で入力してください".into(),
            ));
        }
        let wanted = normalize_name(name);
        let found: Vec<Person> = self
            .store
            .persons_born_in(&birth[..4])
            .await?
            .into_iter()
            .filter(|p| p.birth_date.as_deref() == Some(birth.as_str()))
            .filter(|p| {
                wanted.is_empty()
                    || normalize_name(&p.kanji_name).contains(&wanted)
                    || normalize_name(&p.kana_name).contains(&wanted)
            })
            .collect();
        self.store
            .append_audit(self.event(
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
        self.store
            .append_audit(self.event(
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
