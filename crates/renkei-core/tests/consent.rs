//! The consent decision against a small reference model (≥ 1,000,000 random cases), and a matrix
//! over every profession × category × consent state.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use renkei_core::consent::*;
use renkei_core::user::Profession;

/// The rule as the module documentation states it, one clause at a time, with no
/// precomputation: what `Decider` must agree with.
fn reference(
    rights: &ProfessionRights,
    viewer: &Viewer,
    patient: &PatientContext,
    item: &ItemRef,
    now: i64,
) -> bool {
    // 1. Profession.
    if !rights.allows(viewer.profession, item.category) {
        return false;
    }
    // 2. Own facility.
    if item.facility == viewer.facility {
        return true;
    }
    // 3. Emergency.
    for g in &patient.emergency {
        if g.user == viewer.user && now < g.expires_at {
            return true;
        }
    }
    // 4. Card-less grant.
    let mut card = false;
    for g in &patient.cardless {
        let fresh = now < g.last_access + CARDLESS_MICROS;
        let covers = match g.only_facility {
            None => true,
            Some(f) => f == item.facility,
        };
        if g.viewer_facility == viewer.facility && fresh && covers {
            card = true;
        }
    }
    if !card {
        return false;
    }
    // 5. The disclosing facility's policy.
    // The facility's policy: the first listed for it.
    let mut mode = PolicyMode::PerPatient;
    let mut facility_categories = CategorySet::EMPTY;
    for p in patient.policies.iter().rev() {
        if p.facility == item.facility {
            mode = p.mode;
            facility_categories = p.categories;
        }
    }
    let referred = patient
        .referrals
        .iter()
        .any(|r| r.from == item.facility && r.to == viewer.facility);
    if mode == PolicyMode::FacilityLevel {
        if patient.opt_outs.contains(&item.facility) {
            return false;
        }
        return facility_categories.contains(item.category);
    }
    if mode == PolicyMode::ReferredOnly && !referred {
        return false;
    }
    for c in &patient.consents {
        if c.disclosing != item.facility {
            continue;
        }
        if let Some(w) = c.withdrawn_at
            && w <= now
        {
            continue;
        }
        let targeted = match &c.targets {
            Targets::All => true,
            Targets::Named(fs) => fs.contains(&viewer.facility),
            Targets::Referred => referred,
        };
        if !targeted || !c.categories.contains(item.category) {
            continue;
        }
        let in_period = match item.date {
            None => true,
            Some(d) => c.data_from.is_none_or(|f| f <= d) && c.data_to.is_none_or(|t| d <= t),
        };
        if in_period {
            return true;
        }
    }
    false
}

const FACILITIES: i64 = 4;
const NOW: i64 = 1_800_000_000_000_000;

fn facility() -> impl Strategy<Value = i64> {
    1..=FACILITIES
}

fn categories() -> impl Strategy<Value = CategorySet> {
    proptest::collection::vec(0usize..11, 0..5).prop_map(|v| {
        CategorySet::of(
            &v.iter()
                .map(|i| ConsentCategory::ALL[*i])
                .collect::<Vec<_>>(),
        )
    })
}

fn date() -> impl Strategy<Value = i32> {
    (2020i32..=2026, 1i32..=12).prop_map(|(y, m)| y * 10_000 + m * 100 + 15)
}

fn instant() -> impl Strategy<Value = i64> {
    // Around NOW: a year and a half either side, so that grants are fresh and stale.
    (-550i64..=550).prop_map(|d| NOW + d * 24 * 3600 * 1_000_000)
}

fn consent() -> impl Strategy<Value = Consent> {
    (
        facility(),
        prop_oneof![
            Just(Targets::All),
            proptest::collection::vec(facility(), 0..3).prop_map(Targets::Named),
            Just(Targets::Referred),
        ],
        categories(),
        proptest::option::of(date()),
        proptest::option::of(date()),
        proptest::option::of(instant()),
    )
        .prop_map(
            |(disclosing, targets, categories, data_from, data_to, withdrawn_at)| Consent {
                disclosing,
                targets,
                categories,
                data_from,
                data_to,
                withdrawn_at,
            },
        )
}

fn patient() -> impl Strategy<Value = PatientContext> {
    (
        proptest::collection::vec(consent(), 0..5),
        proptest::collection::vec(
            (
                facility(),
                prop_oneof![
                    Just(PolicyMode::PerPatient),
                    Just(PolicyMode::ReferredOnly),
                    Just(PolicyMode::FacilityLevel)
                ],
                categories(),
            )
                .prop_map(|(facility, mode, categories)| Policy {
                    facility,
                    mode,
                    categories,
                }),
            0..3,
        ),
        proptest::collection::vec(
            (facility(), facility()).prop_map(|(from, to)| Referral { from, to }),
            0..3,
        ),
        proptest::collection::vec(
            (facility(), instant(), proptest::option::of(facility())).prop_map(
                |(viewer_facility, last_access, only_facility)| CardlessGrant {
                    viewer_facility,
                    last_access,
                    only_facility,
                },
            ),
            0..3,
        ),
        proptest::collection::vec(
            (1i64..=3, instant())
                .prop_map(|(user, expires_at)| EmergencyGrant { user, expires_at }),
            0..2,
        ),
        proptest::collection::vec(facility(), 0..2),
    )
        .prop_map(
            |(consents, policies, referrals, cardless, emergency, opt_outs)| PatientContext {
                consents,
                policies,
                referrals,
                cardless,
                emergency,
                opt_outs,
            },
        )
}

fn rights() -> impl Strategy<Value = ProfessionRights> {
    prop_oneof![
        Just(ProfessionRights::defaults()),
        proptest::collection::vec(categories(), 17).prop_map(|sets| {
            let mut r = ProfessionRights::none();
            for (p, s) in Profession::ALL.into_iter().zip(sets) {
                r.set(p, s);
            }
            r
        }),
    ]
}

fn query() -> impl Strategy<Value = (Viewer, ItemRef, i64)> {
    (
        1i64..=3,
        facility(),
        0usize..17,
        facility(),
        0usize..11,
        proptest::option::of(date()),
        instant(),
    )
        .prop_map(|(user, viewer_facility, p, item_facility, c, date, now)| {
            (
                Viewer {
                    user,
                    facility: viewer_facility,
                    profession: Profession::ALL[p],
                },
                ItemRef {
                    facility: item_facility,
                    category: ConsentCategory::ALL[c],
                    date,
                },
                now,
            )
        })
}

proptest! {
    // 1,000 worlds × 1,000 queries = 1,000,000 compared decisions.
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]
    #[test]
    fn the_decider_agrees_with_the_reference_model(
        rights in rights(),
        patient in patient(),
        queries in proptest::collection::vec(query(), 1_000),
    ) {
        for (viewer, item, now) in &queries {
            let fast = Decider::new(&rights, viewer, &patient, *now).decide(item);
            let slow = reference(&rights, viewer, &patient, item, *now);
            prop_assert_eq!(fast.permitted(), slow, "viewer {:?} item {:?} now {}", viewer, item, now);
        }
    }
}

/// Every profession × category × consent state, against the expected answer written out.
#[test]
fn every_profession_category_and_consent_state() {
    const HOSPITAL: i64 = 1;
    const CLINIC: i64 = 2;
    let rights = ProfessionRights::defaults();
    let fresh = CardlessGrant {
        viewer_facility: CLINIC,
        last_access: NOW - 10 * 24 * 3600 * 1_000_000,
        only_facility: None,
    };
    let consent = |categories: CategorySet| Consent {
        disclosing: HOSPITAL,
        targets: Targets::All,
        categories,
        data_from: None,
        data_to: None,
        withdrawn_at: None,
    };
    let with = |consents: Vec<Consent>, cardless: Vec<CardlessGrant>| PatientContext {
        consents,
        cardless,
        ..PatientContext::default()
    };
    // (name, patient, does the state disclose category c?)
    type Discloses = fn(ConsentCategory) -> bool;
    let states: Vec<(&str, PatientContext, Discloses)> = vec![
        ("no consent", with(vec![], vec![fresh.clone()]), |_| false),
        (
            "consent to all",
            with(vec![consent(CategorySet::ALL)], vec![fresh.clone()]),
            |_| true,
        ),
        (
            "consent to labs only",
            with(
                vec![consent(CategorySet::of(&[ConsentCategory::Lab]))],
                vec![fresh.clone()],
            ),
            |c| c == ConsentCategory::Lab,
        ),
        (
            "consent withdrawn",
            with(
                vec![Consent {
                    withdrawn_at: Some(NOW - 1),
                    ..consent(CategorySet::ALL)
                }],
                vec![fresh.clone()],
            ),
            |_| false,
        ),
        (
            "withdrawal in the future",
            with(
                vec![Consent {
                    withdrawn_at: Some(NOW + 1),
                    ..consent(CategorySet::ALL)
                }],
                vec![fresh.clone()],
            ),
            |_| true,
        ),
        (
            "consent to another facility",
            with(
                vec![Consent {
                    targets: Targets::Named(vec![3]),
                    ..consent(CategorySet::ALL)
                }],
                vec![fresh.clone()],
            ),
            |_| false,
        ),
        (
            "consent, card never read",
            with(vec![consent(CategorySet::ALL)], vec![]),
            |_| false,
        ),
        (
            "consent, card read over a year ago",
            with(
                vec![consent(CategorySet::ALL)],
                vec![CardlessGrant {
                    last_access: NOW - CARDLESS_MICROS - 1,
                    ..fresh.clone()
                }],
            ),
            |_| false,
        ),
        (
            "consent, disclosure card of another hospital",
            with(
                vec![consent(CategorySet::ALL)],
                vec![CardlessGrant {
                    only_facility: Some(3),
                    ..fresh.clone()
                }],
            ),
            |_| false,
        ),
        (
            "facility-level consent",
            PatientContext {
                policies: vec![Policy {
                    facility: HOSPITAL,
                    mode: PolicyMode::FacilityLevel,
                    categories: CategorySet::of(&[
                        ConsentCategory::Diagnosis,
                        ConsentCategory::Allergy,
                    ]),
                }],
                cardless: vec![fresh.clone()],
                ..PatientContext::default()
            },
            |c| matches!(c, ConsentCategory::Diagnosis | ConsentCategory::Allergy),
        ),
        (
            "facility-level, patient opted out",
            PatientContext {
                policies: vec![Policy {
                    facility: HOSPITAL,
                    mode: PolicyMode::FacilityLevel,
                    categories: CategorySet::ALL,
                }],
                opt_outs: vec![HOSPITAL],
                cardless: vec![fresh.clone()],
                ..PatientContext::default()
            },
            |_| false,
        ),
        (
            "referred-only hospital, not referred",
            PatientContext {
                policies: vec![Policy {
                    facility: HOSPITAL,
                    mode: PolicyMode::ReferredOnly,
                    categories: CategorySet::EMPTY,
                }],
                consents: vec![consent(CategorySet::ALL)],
                cardless: vec![fresh.clone()],
                ..PatientContext::default()
            },
            |_| false,
        ),
        (
            "referred-only hospital, referred",
            PatientContext {
                policies: vec![Policy {
                    facility: HOSPITAL,
                    mode: PolicyMode::ReferredOnly,
                    categories: CategorySet::EMPTY,
                }],
                consents: vec![consent(CategorySet::ALL)],
                referrals: vec![Referral {
                    from: HOSPITAL,
                    to: CLINIC,
                }],
                cardless: vec![fresh.clone()],
                ..PatientContext::default()
            },
            |_| true,
        ),
        (
            "emergency grant, no consent, no card",
            PatientContext {
                emergency: vec![EmergencyGrant {
                    user: 7,
                    expires_at: NOW + 1,
                }],
                ..PatientContext::default()
            },
            |_| true,
        ),
        (
            "emergency grant expired",
            PatientContext {
                emergency: vec![EmergencyGrant {
                    user: 7,
                    expires_at: NOW,
                }],
                ..PatientContext::default()
            },
            |_| false,
        ),
    ];
    let mut checked = 0;
    for profession in Profession::ALL {
        let viewer = Viewer {
            user: 7,
            facility: CLINIC,
            profession,
        };
        for category in ConsentCategory::ALL {
            let item = ItemRef {
                facility: HOSPITAL,
                category,
                date: Some(20260101),
            };
            let own = ItemRef {
                facility: CLINIC,
                ..item
            };
            for (name, patient, discloses) in &states {
                let expected = rights.allows(profession, category) && discloses(category);
                let got = decide(&rights, &viewer, patient, &item, NOW);
                assert_eq!(
                    got.permitted(),
                    expected,
                    "{profession:?} {category:?} {name}"
                );
                // A facility's own items depend on the profession only.
                let own_got = decide(&rights, &viewer, patient, &own, NOW);
                assert_eq!(
                    own_got.permitted(),
                    rights.allows(profession, category),
                    "own {profession:?} {category:?} {name}"
                );
                checked += 2;
            }
        }
    }
    assert_eq!(checked, 17 * 11 * states.len() * 2);
    // Clerks see no clinical item at all; pharmacists see prescriptions but not images.
    assert!(
        ConsentCategory::ALL
            .iter()
            .all(|c| !rights.allows(Profession::Clerk, *c))
    );
    assert!(rights.allows(Profession::Pharmacist, ConsentCategory::Prescription));
    assert!(!rights.allows(Profession::Pharmacist, ConsentCategory::Image));
}

#[test]
fn data_periods_bound_dated_items_but_not_undated_ones() {
    let rights = ProfessionRights::defaults();
    let patient = PatientContext {
        consents: vec![Consent {
            disclosing: 1,
            targets: Targets::All,
            categories: CategorySet::ALL,
            data_from: Some(20250101),
            data_to: Some(20251231),
            withdrawn_at: None,
        }],
        cardless: vec![CardlessGrant {
            viewer_facility: 2,
            last_access: NOW,
            only_facility: None,
        }],
        ..PatientContext::default()
    };
    let viewer = Viewer {
        user: 1,
        facility: 2,
        profession: Profession::Doctor,
    };
    let d = Decider::new(&rights, &viewer, &patient, NOW);
    let item = |date| ItemRef {
        facility: 1,
        category: ConsentCategory::Lab,
        date,
    };
    assert!(d.decide(&item(Some(20250601))).permitted());
    assert!(!d.decide(&item(Some(20240601))).permitted());
    assert!(!d.decide(&item(Some(20260101))).permitted());
    assert!(d.decide(&item(None)).permitted());
    assert_eq!(
        d.decide(&item(Some(20250101))),
        Decision::Permit(Basis::Consent)
    );
    assert!(d.may_see_any_of(1));
    assert!(!d.may_see_any_of(3));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]
    /// What a screen says of a category (from the rules) never contradicts the decisions: what
    /// it calls outside the profession or the consent is never shown, and what it calls visible
    /// is shown from every facility that discloses anything to the viewer.
    #[test]
    fn a_categorys_scope_agrees_with_the_decisions(
        rights in rights(),
        patient in patient(),
        queries in proptest::collection::vec(query(), 200),
    ) {
        for (viewer, item, now) in &queries {
            let decider = Decider::new(&rights, viewer, &patient, *now);
            let scope = decider.scope_of(item.category);
            let permitted = decider.decide(item).permitted();
            match scope {
                CategoryScope::OutsideProfession => prop_assert!(!permitted, "{:?} {:?}", viewer, item),
                CategoryScope::OutsideConsent if item.facility != viewer.facility => {
                    prop_assert!(!permitted, "{:?} {:?}", viewer, item);
                }
                CategoryScope::Visible if item.date.is_none()
                    && decider.may_see_any_of(item.facility)
                    && (patient.consents.iter().any(|c| c.disclosing == item.facility)
                        || patient.policies.iter().any(|p| p.facility == item.facility)) =>
                {
                    prop_assert!(permitted, "{:?} {:?}", viewer, item);
                }
                _ => {}
            }
        }
    }
}

#[test]
fn a_clerk_is_told_allergies_are_outside_their_rights_not_that_there_are_none() {
    let mut rights = ProfessionRights::defaults();
    rights.set(
        Profession::Clerk,
        CategorySet::of(&[ConsentCategory::Admission]),
    );
    let clerk = Viewer {
        user: 1,
        facility: 2,
        profession: Profession::Clerk,
    };
    let patient = PatientContext::default();
    let d = Decider::new(&rights, &clerk, &patient, 0);
    assert_eq!(
        d.scope_of(ConsentCategory::Allergy),
        CategoryScope::OutsideProfession
    );
    assert_eq!(
        d.scope_of(ConsentCategory::Admission),
        CategoryScope::OutsideConsent,
        "no facility discloses to it"
    );
    assert!(d.may_read_anything());
    rights.set(Profession::Clerk, CategorySet::EMPTY);
    assert!(!Decider::new(&rights, &clerk, &patient, 0).may_read_anything());
}
