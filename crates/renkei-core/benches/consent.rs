//! Consent decision throughput: a patient with records at 5 facilities and a realistic
//! context (consents, policies, referrals, card-less and emergency grants); a `Decider` is built
//! per read and decides 20,000 items, as a viewer opening a 10-year record does.
//!
//! `cargo bench -p renkei-core --bench consent` prints decisions per second; nothing is asserted.

use std::hint::black_box;
use std::time::Instant;

use renkei_core::consent::*;
use renkei_core::user::Profession;

fn main() {
    let now = 1_800_000_000_000_000i64;
    let patient = PatientContext {
        consents: (1..=5)
            .map(|f| Consent {
                disclosing: f,
                targets: if f % 2 == 0 {
                    Targets::All
                } else {
                    Targets::Named(vec![9, 10, 11])
                },
                categories: CategorySet::of(&[
                    ConsentCategory::Lab,
                    ConsentCategory::Prescription,
                    ConsentCategory::Diagnosis,
                    ConsentCategory::Allergy,
                ]),
                data_from: Some(20180101),
                data_to: None,
                withdrawn_at: None,
            })
            .collect(),
        policies: vec![Policy {
            facility: 5,
            mode: PolicyMode::FacilityLevel,
            categories: CategorySet::ALL,
        }],
        referrals: vec![Referral { from: 1, to: 10 }],
        cardless: vec![CardlessGrant {
            viewer_facility: 10,
            last_access: now - 1_000_000,
            only_facility: None,
        }],
        emergency: vec![],
        opt_outs: vec![],
    };
    let rights = ProfessionRights::defaults();
    let viewer = Viewer {
        user: 1,
        facility: 10,
        profession: Profession::Pharmacist,
    };
    let items: Vec<ItemRef> = (0..20_000u32)
        .map(|i| ItemRef {
            facility: i64::from(i % 5 + 1),
            category: ConsentCategory::ALL[(i % 11) as usize],
            date: Some(20160101 + (i % 10) as i32 * 10_000 + (i % 12) as i32 * 100),
        })
        .collect();
    let reads = 500;
    let started = Instant::now();
    let mut permitted = 0usize;
    for _ in 0..reads {
        let decider = Decider::new(&rights, black_box(&viewer), black_box(&patient), now);
        for item in &items {
            permitted += usize::from(decider.decide(black_box(item)).permitted());
        }
    }
    let elapsed = started.elapsed();
    let decisions = (reads * items.len()) as f64;
    println!(
        "consent decisions: {:.1} M/s ({} reads of {} items in {:.2?}; {:.1} µs per 20,000-item read; {} permitted per read)",
        decisions / elapsed.as_secs_f64() / 1e6,
        reads,
        items.len(),
        elapsed,
        elapsed.as_secs_f64() * 1e6 / reads as f64,
        permitted / reads
    );
}
