//! Who may see which part of a patient's record: one pure decision over consents, the
//! profession rights matrix, card-less grants and emergency grants.
//!
//! The rule, for a viewer (user, facility, profession) reading one item (its disclosing facility,
//! category and date) of one patient at time `now`:
//!
//! 1. The viewer's profession must be allowed the item's category (the operator-editable
//!    matrix). This holds for everything below, emergencies included.
//! 2. A facility always sees its own items.
//! 3. An active emergency grant of the user (break-the-glass) permits, until it expires.
//! 4. Otherwise the viewer's facility must hold a card-less grant: the patient's card was read
//!    there within the last year (a hospital-only disclosure card limits the grant to the
//!    issuing hospital's items).
//! 5. And the disclosing facility must disclose the item, by its policy:
//!    - `PerPatient` (HM-net): a consent of the patient for that facility, not withdrawn,
//!      naming the viewer's facility (all facilities, named ones, or those the patient was
//!      referred to), the category, and a data period containing the item's date (an undated
//!      item, such as an allergy, is within any period);
//!    - `ReferredOnly`: as `PerPatient`, and the patient must also have been referred by that
//!      facility to the viewer's facility;
//!    - `FacilityLevel` (Hareyaka-net): the facility discloses the categories of its policy for
//!      every patient who has not opted out.
//!
//! [`Decider`] precomputes the answer for one viewer, patient and time, so that deciding each of
//! thousands of items is a few bit tests; [`decide`] is the one-item form.

use crate::user::Profession;

/// Microseconds in the one year a card-less grant lasts after the card was last read.
pub const CARDLESS_MICROS: i64 = 365 * 24 * 60 * 60 * 1_000_000;

/// What a consent can disclose, item by item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConsentCategory {
    Admission,
    Lab,
    Prescription,
    Injection,
    Allergy,
    Contraindication,
    Diagnosis,
    Surgery,
    Procedure,
    Document,
    Image,
}

impl ConsentCategory {
    pub const ALL: [ConsentCategory; 11] = [
        ConsentCategory::Admission,
        ConsentCategory::Lab,
        ConsentCategory::Prescription,
        ConsentCategory::Injection,
        ConsentCategory::Allergy,
        ConsentCategory::Contraindication,
        ConsentCategory::Diagnosis,
        ConsentCategory::Surgery,
        ConsentCategory::Procedure,
        ConsentCategory::Document,
        ConsentCategory::Image,
    ];

    pub fn key(self) -> &'static str {
        match self {
            ConsentCategory::Admission => "admission",
            ConsentCategory::Lab => "lab",
            ConsentCategory::Prescription => "prescription",
            ConsentCategory::Injection => "injection",
            ConsentCategory::Allergy => "allergy",
            ConsentCategory::Contraindication => "contraindication",
            ConsentCategory::Diagnosis => "diagnosis",
            ConsentCategory::Surgery => "surgery",
            ConsentCategory::Procedure => "procedure",
            ConsentCategory::Document => "document",
            ConsentCategory::Image => "image",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ConsentCategory::Admission => "入退院",
            ConsentCategory::Lab => "検査",
            ConsentCategory::Prescription => "処方",
            ConsentCategory::Injection => "注射",
            ConsentCategory::Allergy => "アレルギー",
            ConsentCategory::Contraindication => "禁忌",
            ConsentCategory::Diagnosis => "病名",
            ConsentCategory::Surgery => "手術",
            ConsentCategory::Procedure => "処置",
            ConsentCategory::Document => "文書",
            ConsentCategory::Image => "画像",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.key() == key)
    }

    /// The consent category of a clinical item category (`renkei-clinical`'s keys).
    pub fn of_clinical(key: &str) -> Option<Self> {
        Some(match key {
            "encounter" | "diet" => ConsentCategory::Admission,
            "diagnosis" => ConsentCategory::Diagnosis,
            "allergy" => ConsentCategory::Allergy,
            "contraindication" => ConsentCategory::Contraindication,
            "prescription" => ConsentCategory::Prescription,
            "injection" | "administration" => ConsentCategory::Injection,
            "lab_order" | "lab_result" | "observation" => ConsentCategory::Lab,
            "exam_order" | "exam_result" | "image" => ConsentCategory::Image,
            "surgery" => ConsentCategory::Surgery,
            "procedure" => ConsentCategory::Procedure,
            "document" => ConsentCategory::Document,
            _ => return None,
        })
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// A set of categories.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CategorySet(u16);

impl CategorySet {
    pub const EMPTY: CategorySet = CategorySet(0);
    pub const ALL: CategorySet = CategorySet((1 << 11) - 1);

    pub fn of(categories: &[ConsentCategory]) -> Self {
        CategorySet(categories.iter().fold(0, |acc, c| acc | c.bit()))
    }

    pub fn contains(self, c: ConsentCategory) -> bool {
        self.0 & c.bit() != 0
    }

    pub fn with(self, c: ConsentCategory) -> Self {
        CategorySet(self.0 | c.bit())
    }

    pub fn without(self, c: ConsentCategory) -> Self {
        CategorySet(self.0 & !c.bit())
    }

    pub fn union(self, other: CategorySet) -> Self {
        CategorySet(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = ConsentCategory> {
        ConsentCategory::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    /// Comma-separated keys (storage form).
    pub fn to_keys(self) -> String {
        self.iter().map(|c| c.key()).collect::<Vec<_>>().join(",")
    }

    /// From comma-separated keys; unknown keys are ignored.
    pub fn from_keys(keys: &str) -> Self {
        CategorySet::of(
            &keys
                .split(',')
                .filter_map(|k| ConsentCategory::from_key(k.trim()))
                .collect::<Vec<_>>(),
        )
    }
}

/// Whom a consent discloses to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Targets {
    /// Every participating facility.
    All,
    /// Only these facilities.
    Named(Vec<i64>),
    /// The facilities the disclosing facility referred the patient to.
    Referred,
}

/// A patient's consent to one disclosing facility's disclosure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consent {
    pub disclosing: i64,
    pub targets: Targets,
    pub categories: CategorySet,
    /// The data period, as `YYYYMMDD` (inclusive; `None` is open).
    pub data_from: Option<i32>,
    pub data_to: Option<i32>,
    /// When the patient withdrew it (effective from that instant).
    pub withdrawn_at: Option<i64>,
}

/// How a disclosing facility decides what it discloses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyMode {
    PerPatient,
    ReferredOnly,
    FacilityLevel,
}

impl PolicyMode {
    pub fn key(self) -> &'static str {
        match self {
            PolicyMode::PerPatient => "per_patient",
            PolicyMode::ReferredOnly => "referred_only",
            PolicyMode::FacilityLevel => "facility_level",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        [
            PolicyMode::PerPatient,
            PolicyMode::ReferredOnly,
            PolicyMode::FacilityLevel,
        ]
        .into_iter()
        .find(|m| m.key() == key)
    }
}

/// A disclosing facility's own rule. A facility without one is `PerPatient`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub facility: i64,
    pub mode: PolicyMode,
    /// What a `FacilityLevel` facility discloses.
    pub categories: CategorySet,
}

/// The patient's card was read at `viewer_facility` (last at `last_access`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardlessGrant {
    pub viewer_facility: i64,
    pub last_access: i64,
    /// A hospital-only disclosure card: only that hospital's items.
    pub only_facility: Option<i64>,
}

/// A user's break-the-glass access to the patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmergencyGrant {
    pub user: i64,
    pub expires_at: i64,
}

/// `from` referred the patient to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Referral {
    pub from: i64,
    pub to: i64,
}

/// Everything about one patient that decisions depend on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatientContext {
    pub consents: Vec<Consent>,
    /// One per disclosing facility (were there several, the first would count).
    pub policies: Vec<Policy>,
    pub referrals: Vec<Referral>,
    pub cardless: Vec<CardlessGrant>,
    pub emergency: Vec<EmergencyGrant>,
    /// Facilities (facility-level consent) the patient opted out of.
    pub opt_outs: Vec<i64>,
}

/// Who is reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Viewer {
    pub user: i64,
    pub facility: i64,
    pub profession: Profession,
}

/// One item as decisions see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemRef {
    pub facility: i64,
    pub category: ConsentCategory,
    /// `YYYYMMDD`, if the item is dated.
    pub date: Option<i32>,
}

/// Which categories each profession may see (applied on top of consent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfessionRights([CategorySet; 17]);

impl ProfessionRights {
    /// No profession sees anything.
    pub fn none() -> Self {
        ProfessionRights([CategorySet::EMPTY; 17])
    }

    /// The defaults a network starts with (the operator edits them).
    pub fn defaults() -> Self {
        use ConsentCategory::*;
        let mut r = ProfessionRights::none();
        for p in Profession::ALL {
            let set = match p {
                Profession::Doctor
                | Profession::Dentist
                | Profession::Nurse
                | Profession::PublicHealthNurse
                | Profession::Midwife => CategorySet::ALL,
                Profession::Pharmacist => CategorySet::of(&[
                    Prescription,
                    Injection,
                    Lab,
                    Allergy,
                    Contraindication,
                    Diagnosis,
                ]),
                Profession::CareManager => CategorySet::of(&[
                    Admission,
                    Prescription,
                    Allergy,
                    Contraindication,
                    Diagnosis,
                ]),
                Profession::PhysicalTherapist
                | Profession::OccupationalTherapist
                | Profession::SpeechTherapist => CategorySet::of(&[
                    Admission,
                    Lab,
                    Allergy,
                    Contraindication,
                    Diagnosis,
                    Surgery,
                    Procedure,
                    Image,
                ]),
                Profession::LabTechnician => CategorySet::of(&[Lab, Diagnosis]),
                Profession::Radiographer => {
                    CategorySet::of(&[Image, Diagnosis, Allergy, Contraindication])
                }
                Profession::Dietitian => CategorySet::of(&[
                    Admission,
                    Lab,
                    Prescription,
                    Allergy,
                    Contraindication,
                    Diagnosis,
                ]),
                Profession::SocialWorker => CategorySet::of(&[Admission, Diagnosis]),
                Profession::CareWorker => CategorySet::of(&[Allergy, Contraindication, Diagnosis]),
                // The patient list only.
                Profession::Clerk | Profession::Operator => CategorySet::EMPTY,
            };
            r.set(p, set);
        }
        r
    }

    fn index(p: Profession) -> usize {
        Profession::ALL.iter().position(|x| *x == p).unwrap_or(0)
    }

    pub fn of(&self, p: Profession) -> CategorySet {
        self.0[Self::index(p)]
    }

    pub fn set(&mut self, p: Profession, categories: CategorySet) {
        self.0[Self::index(p)] = categories;
    }

    pub fn allows(&self, p: Profession, c: ConsentCategory) -> bool {
        self.of(p).contains(c)
    }
}

/// Why a read is permitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis {
    OwnFacility,
    Emergency,
    Consent,
    FacilityConsent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Permit(Basis),
    Deny,
}

impl Decision {
    pub fn permitted(self) -> bool {
        matches!(self, Decision::Permit(_))
    }
}

/// What a viewer may see of a category of this patient's record, from the rules alone
/// (profession rights, consents, disclosure policies, grants) — never from what data exists, so
/// that saying it tells nothing about the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CategoryScope {
    /// Every disclosing facility's records of the category, as far as the viewer's access goes.
    Visible,
    /// Some facilities' records (or some periods) only.
    Partly,
    /// The viewer's profession may not see the category at all.
    OutsideProfession,
    /// No other facility's records of the category are disclosed to the viewer (the viewer's own
    /// facility's still are).
    OutsideConsent,
}

impl CategoryScope {
    /// What a screen says instead of 「なし」 when the category is not (wholly) visible.
    pub fn label(self) -> &'static str {
        match self {
            CategoryScope::Visible => "",
            CategoryScope::Partly => "一部の施設・期間の記録は同意の範囲外",
            CategoryScope::OutsideProfession => "閲覧権限の範囲外",
            CategoryScope::OutsideConsent => "同意の範囲外（他施設の記録）",
        }
    }
}

/// What one disclosing facility discloses to this viewer now.
#[derive(Clone, Debug)]
enum Disclosure {
    /// Categories for any date (facility-level).
    Always(CategorySet),
    /// Consent windows: categories within a data period.
    Windows(Vec<(CategorySet, i32, i32)>),
}

/// Card-less access of the viewer's facility to the patient.
#[derive(Clone, Debug, PartialEq, Eq)]
enum CardAccess {
    None,
    All,
    Only(Vec<i64>),
}

/// Decisions for one viewer, one patient, one instant.
#[derive(Clone, Debug)]
pub struct Decider {
    viewer: Viewer,
    profession: CategorySet,
    emergency: bool,
    card: CardAccess,
    /// Per disclosing facility (sorted by id).
    disclosures: Vec<(i64, Disclosure)>,
}

impl Decider {
    pub fn new(
        rights: &ProfessionRights,
        viewer: &Viewer,
        patient: &PatientContext,
        now: i64,
    ) -> Self {
        let emergency = patient
            .emergency
            .iter()
            .any(|g| g.user == viewer.user && g.expires_at > now);
        let mut card = CardAccess::None;
        for g in &patient.cardless {
            if g.viewer_facility != viewer.facility
                || now >= g.last_access.saturating_add(CARDLESS_MICROS)
            {
                continue;
            }
            card = match (card, g.only_facility) {
                (CardAccess::All, _) | (_, None) => CardAccess::All,
                (CardAccess::None, Some(f)) => CardAccess::Only(vec![f]),
                (CardAccess::Only(mut fs), Some(f)) => {
                    fs.push(f);
                    CardAccess::Only(fs)
                }
            };
        }
        let referred = |from: i64| {
            patient
                .referrals
                .iter()
                .any(|r| r.from == from && r.to == viewer.facility)
        };
        let mut facilities: Vec<i64> = patient
            .consents
            .iter()
            .map(|c| c.disclosing)
            .chain(patient.policies.iter().map(|p| p.facility))
            .collect();
        facilities.sort_unstable();
        facilities.dedup();
        let disclosures = facilities
            .into_iter()
            .map(|f| {
                let policy = patient.policies.iter().find(|p| p.facility == f);
                let mode = policy.map_or(PolicyMode::PerPatient, |p| p.mode);
                let d = match (mode, policy) {
                    (PolicyMode::FacilityLevel, Some(policy)) => {
                        Disclosure::Always(if patient.opt_outs.contains(&f) {
                            CategorySet::EMPTY
                        } else {
                            policy.categories
                        })
                    }
                    (PolicyMode::FacilityLevel, None) => Disclosure::Always(CategorySet::EMPTY),
                    (PolicyMode::PerPatient | PolicyMode::ReferredOnly, _) => {
                        let referral_ok = mode == PolicyMode::PerPatient || referred(f);
                        Disclosure::Windows(
                            patient
                                .consents
                                .iter()
                                .filter(|c| {
                                    c.disclosing == f
                                        && referral_ok
                                        && c.withdrawn_at.is_none_or(|w| w > now)
                                        && match &c.targets {
                                            Targets::All => true,
                                            Targets::Named(fs) => fs.contains(&viewer.facility),
                                            Targets::Referred => referred(f),
                                        }
                                })
                                .map(|c| {
                                    (
                                        c.categories,
                                        c.data_from.unwrap_or(i32::MIN),
                                        c.data_to.unwrap_or(i32::MAX),
                                    )
                                })
                                .collect(),
                        )
                    }
                };
                (f, d)
            })
            .collect();
        Decider {
            viewer: *viewer,
            profession: rights.of(viewer.profession),
            emergency,
            card,
            disclosures,
        }
    }

    pub fn decide(&self, item: &ItemRef) -> Decision {
        if !self.profession.contains(item.category) {
            return Decision::Deny;
        }
        if item.facility == self.viewer.facility {
            return Decision::Permit(Basis::OwnFacility);
        }
        if self.emergency {
            return Decision::Permit(Basis::Emergency);
        }
        let card_ok = match &self.card {
            CardAccess::None => false,
            CardAccess::All => true,
            CardAccess::Only(fs) => fs.contains(&item.facility),
        };
        if !card_ok {
            return Decision::Deny;
        }
        let Ok(at) = self
            .disclosures
            .binary_search_by_key(&item.facility, |(f, _)| *f)
        else {
            return Decision::Deny;
        };
        match &self.disclosures[at].1 {
            Disclosure::Always(categories) if categories.contains(item.category) => {
                Decision::Permit(Basis::FacilityConsent)
            }
            Disclosure::Always(_) => Decision::Deny,
            Disclosure::Windows(windows) => {
                let covered = windows.iter().any(|(categories, from, to)| {
                    categories.contains(item.category)
                        && item.date.is_none_or(|d| *from <= d && d <= *to)
                });
                if covered {
                    Decision::Permit(Basis::Consent)
                } else {
                    Decision::Deny
                }
            }
        }
    }

    /// What the viewer may see of `category`, from the rules alone (see [`CategoryScope`]).
    pub fn scope_of(&self, category: ConsentCategory) -> CategoryScope {
        if !self.profession.contains(category) {
            return CategoryScope::OutsideProfession;
        }
        if self.emergency {
            return CategoryScope::Visible;
        }
        let (mut open, mut closed) = (0, 0);
        for (facility, disclosure) in &self.disclosures {
            if *facility == self.viewer.facility {
                continue;
            }
            let reachable = match &self.card {
                CardAccess::None => false,
                CardAccess::All => true,
                CardAccess::Only(fs) => fs.contains(facility),
            };
            let whole = match disclosure {
                Disclosure::Always(c) => c.contains(category),
                Disclosure::Windows(ws) => ws.iter().any(|(c, from, to)| {
                    c.contains(category) && *from == i32::MIN && *to == i32::MAX
                }),
            };
            let some = match disclosure {
                Disclosure::Always(c) => c.contains(category),
                Disclosure::Windows(ws) => ws.iter().any(|(c, _, _)| c.contains(category)),
            };
            match (reachable && some, reachable && whole) {
                (true, true) => open += 1,
                (true, false) => {
                    open += 1;
                    closed += 1;
                }
                _ => closed += 1,
            }
        }
        match (open, closed) {
            (0, _) => CategoryScope::OutsideConsent,
            (_, 0) => CategoryScope::Visible,
            _ => CategoryScope::Partly,
        }
    }

    /// Whether the viewer's profession may see any category at all (a row of the matrix that
    /// allows only the patient list cannot open the viewer).
    pub fn may_read_anything(&self) -> bool {
        !self.profession.is_empty()
    }

    /// Whether anything at all of `facility`'s could be permitted (lists and counts use this to
    /// leave out what would show nothing).
    pub fn may_see_any_of(&self, facility: i64) -> bool {
        ConsentCategory::ALL.into_iter().any(|category| {
            self.decide(&ItemRef {
                facility,
                category,
                date: None,
            })
            .permitted()
        })
    }
}

/// The decision for one item.
pub fn decide(
    rights: &ProfessionRights,
    viewer: &Viewer,
    patient: &PatientContext,
    item: &ItemRef,
    now: i64,
) -> Decision {
    Decider::new(rights, viewer, patient, now).decide(item)
}
