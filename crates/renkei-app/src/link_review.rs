//! 名寄せ review: when a hospital's record of a linked patient (an SS-MIX2 file, an HL7 message)
//! names someone other than the person the patient ID is linked to — a marriage, a clerk's typo,
//! or a wrong link — the record is stored all the same (refusing would lose it), and the link
//! goes on a review list for the operator and the facility. The viewer warns about the link
//! until someone confirms it (same person) or closes it (not the same person).

use renkei_core::audit::AuditOutcome;
use renkei_identity::normalize::{normalize_kana, normalize_name};
use renkei_store::clinical::PatientRecord;
use renkei_store::identity::Person;
pub use renkei_store::link_reviews::LinkReview;
use renkei_store::link_reviews::NewLinkReview;
use sha2::{Digest, Sha256};

use crate::{Actor, App, AppError, Result};

/// What a record says about its patient, in the forms it was written in.
#[derive(Clone, Copy, Debug, Default)]
pub struct Claimed<'a> {
    pub kanji_name: &'a str,
    pub kana_name: &'a str,
    /// Any form with the digits in year-month-day order (`1958-03-03`, `19580303`); `None` when
    /// the record has a birth date that is not a date.
    pub birth_date: Option<&'a str>,
    /// `M`, `F`, or empty when unknown.
    pub sex: &'a str,
}

/// The fields a record's patient disagrees with the person on: 氏名, カナ氏名, 生年月日, 性別.
/// Names compare normalised (widths, kana forms, variant kanji); a field empty on either side
/// is not compared; a birth date that is not a date disagrees.
pub fn disagreeing(c: &Claimed, person: &Person) -> Vec<&'static str> {
    let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
    let differs = |a: String, b: String| !a.is_empty() && !b.is_empty() && a != b;
    let mut out = Vec::new();
    if differs(
        normalize_name(c.kanji_name),
        normalize_name(&person.kanji_name),
    ) {
        out.push("氏名");
    }
    if differs(
        normalize_kana(c.kana_name),
        normalize_kana(&person.kana_name),
    ) {
        out.push("カナ氏名");
    }
    let birth = person.birth_date.as_deref().map(digits).unwrap_or_default();
    match c.birth_date {
        None if !birth.is_empty() => out.push("生年月日"),
        Some(b) if differs(digits(b), birth) => out.push("生年月日"),
        _ => {}
    }
    if differs(c.sex.to_string(), person.sex.clone()) {
        out.push("性別");
    }
    out
}

/// A digest of the facility's values (so a confirmed disagreement is not raised again, and a new
/// one is), without keeping the values in the review.
fn signature(r: &PatientRecord) -> String {
    let text = format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}",
        normalize_name(&r.kanji_name),
        normalize_kana(&r.kana_name),
        r.birth_date.as_deref().unwrap_or(""),
        r.sex
    );
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// One review as a screen shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewRow {
    pub review: LinkReview,
    pub facility_name: String,
    pub common_id: String,
}

impl App {
    /// Compares the demographics a facility just sent with the persons its patient IDs are
    /// linked to, and opens a review for each disagreement (audited). Called after the records
    /// are stored; a failure here is an error of the intake (the sender sends again, and the
    /// stored record is found unchanged and checked again).
    pub(crate) async fn check_links(
        &self,
        facility_id: i64,
        records: &[&PatientRecord],
    ) -> Result<usize> {
        let mut latest: std::collections::BTreeMap<&str, &PatientRecord> = Default::default();
        for r in records {
            latest.insert(r.patient_local_id.as_str(), r);
        }
        if latest.is_empty() {
            return Ok(0);
        }
        let ids: Vec<String> = latest.keys().map(|k| k.to_string()).collect();
        let mut reviews = Vec::new();
        for (patient, person) in self.store.linked_persons(facility_id, &ids).await? {
            let Some(r) = latest.get(patient.as_str()) else {
                continue;
            };
            let claimed = Claimed {
                kanji_name: &r.kanji_name,
                kana_name: &r.kana_name,
                birth_date: r.birth_date.as_deref(),
                sex: &r.sex,
            };
            let fields = disagreeing(&claimed, &person);
            if fields.is_empty() {
                continue;
            }
            let event = self.event(
                &Actor::system("intake"),
                "identity.link.review_opened",
                format!("person:{}", person.id),
                AuditOutcome::Success,
                &format!(
                    "facility={facility_id} patient={patient} fields={}",
                    fields.join(",")
                ),
            );
            reviews.push((
                NewLinkReview {
                    facility_id,
                    patient_local_id: patient.clone(),
                    person_id: person.id,
                    fields: fields.join(","),
                    signature: signature(r),
                },
                event,
            ));
        }
        if reviews.is_empty() {
            return Ok(0);
        }
        Ok(self.store.open_link_reviews(&reviews, self.now().0).await?)
    }

    /// Reviews the actor may act on: every facility's for the operator, the own facility's for
    /// a facility administrator. Open ones first, then the last resolved.
    pub async fn link_reviews(&self, actor: &Actor, open_only: bool) -> Result<Vec<ReviewRow>> {
        let facility = self.review_scope(actor)?;
        let reviews = self.store.link_reviews(facility, open_only, 500).await?;
        let mut rows = Vec::with_capacity(reviews.len());
        for review in reviews {
            let facility_name = self.store.facility(review.facility_id).await?.name;
            let common_id = self.store.person(review.person_id).await?.common_id;
            rows.push(ReviewRow {
                review,
                facility_name,
                common_id,
            });
        }
        rows.sort_by_key(|r| r.review.resolved_at.is_some());
        Ok(rows)
    }

    /// `None`: every facility (the operator); `Some(f)`: the actor's own facility (its
    /// administrator); anyone else may not.
    fn review_scope(&self, actor: &Actor) -> Result<Option<i64>> {
        if actor.require_operator().is_ok() {
            return Ok(None);
        }
        match (actor.role, actor.facility_id) {
            (renkei_core::user::Role::FacilityAdmin, Some(f)) => Ok(Some(f)),
            _ => Err(AppError::Forbidden),
        }
    }

    /// Resolves a review: `same_person` confirms the link (this disagreement is not raised
    /// again); otherwise the link is closed, so the facility's records no longer show under
    /// the person. Audited.
    pub async fn resolve_link_review(
        &self,
        actor: &Actor,
        id: i64,
        same_person: bool,
    ) -> Result<()> {
        let scope = self.review_scope(actor)?;
        let review = self.store.link_review(id).await?;
        if scope.is_some_and(|f| f != review.facility_id) {
            return Err(AppError::NotFound);
        }
        let resolution = if same_person { "confirmed" } else { "unlinked" };
        let event = self.event(
            actor,
            "identity.link.review_resolved",
            format!("person:{}", review.person_id),
            AuditOutcome::Success,
            &format!(
                "{resolution} facility={} patient={}",
                review.facility_id, review.patient_local_id
            ),
        );
        self.store
            .resolve_link_review(id, (resolution, &actor.login_id), self.now().0, event)
            .await?;
        Ok(())
    }

    /// Warnings for the viewer of a person: each open review of a link to them, as words
    /// (the facility and the fields that disagree; never the values).
    pub async fn link_warnings(&self, person_id: i64) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for r in self.store.open_link_reviews_of(person_id).await? {
            let name = self.store.facility(r.facility_id).await?.name;
            out.push(format!(
                "名寄せ確認中: {name}の記録の患者情報（{}）がこの方と一致しません。確認が済むまで、{name}の記録は別の方のものである可能性があります",
                r.fields.replace(',', "・")
            ));
        }
        Ok(out)
    }
}
