//! The labelled Japanese pair set (`testdata/labelled-pairs/`, see its README): every pair
//! scored as the suggestion path scores it, with the name counts of the set's notional MPI.
//!
//! `cargo test -p renkei-identity --test it labelled -- --nocapture` prints precision and
//! recall at the suggestion threshold, each class's scores and the calibration table.

use std::collections::BTreeMap;

use renkei_identity::linkage::TermFrequencies;
use renkei_identity::matching::{
    Demographic, NAME, SUGGEST, japanese_model, japanese_record, name_frequency_key, score_records,
};

const PAIRS: &str = include_str!("../../testdata/labelled-pairs/pairs.tsv");
const NAMES: &str = include_str!("../../testdata/labelled-pairs/names.tsv");

struct Pair {
    class: String,
    same: bool,
    a: Demographic,
    b: Demographic,
}

fn demographic(cells: &[&str]) -> Demographic {
    let cell = |i: usize| cells.get(i).copied().unwrap_or("").to_string();
    Demographic {
        kanji_name: cell(0),
        kana_name: cell(1),
        birth_date: cell(2),
        sex: cell(3),
        phone: cell(4),
        postal_code: cell(5),
        address: cell(6),
    }
}

fn pairs() -> Vec<Pair> {
    PAIRS
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let cells: Vec<&str> = l.split('\t').collect();
            assert_eq!(cells.len(), 17, "{l}");
            Pair {
                class: cells[1].to_string(),
                same: cells[2] == "1",
                a: demographic(&cells[3..10]),
                b: demographic(&cells[10..17]),
            }
        })
        .collect()
}

/// The name counts of the set's MPI, keyed as the suggestion path keys them.
fn frequencies() -> TermFrequencies {
    let mut persons = 0u64;
    let mut counts = Vec::new();
    for line in NAMES.lines() {
        let cells: Vec<&str> = line.split('\t').collect();
        match cells.as_slice() {
            ["# persons", n] => persons = n.parse().unwrap_or(0),
            [reading, n] if *reading != "reading" => {
                let record = japanese_record(&Demographic {
                    kana_name: (*reading).to_string(),
                    ..Default::default()
                });
                counts.push((name_frequency_key(&record), n.parse().unwrap_or(0)));
            }
            _ => {}
        }
    }
    assert!(persons > 0 && !counts.is_empty());
    TermFrequencies::from_counts(&japanese_model(), NAME, counts, persons)
}

#[derive(Default)]
struct Tally {
    pairs: u32,
    suggested: u32,
    above_09: u32,
    min: f64,
    max: f64,
}

#[test]
fn labelled_japanese_pairs_mean_what_they_say() {
    let model = japanese_model();
    let tf = frequencies();
    let pairs = pairs();
    assert!(pairs.len() >= 2_000, "{} pairs", pairs.len());
    let mut classes: BTreeMap<&str, Tally> = BTreeMap::new();
    let (mut tp, mut fp, mut fn_) = (0u32, 0u32, 0u32);
    // Calibration: bins by score, and how many in each are the same person.
    let bins = [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.000_000_1];
    let mut calibration = vec![(0u32, 0u32); bins.len() - 1];
    let mut worst_different: Vec<(f64, &Pair)> = Vec::new();
    let mut missed_same: Vec<(f64, &Pair)> = Vec::new();
    for p in &pairs {
        let s = score_records(
            &model,
            Some(&tf),
            &japanese_record(&p.a),
            &japanese_record(&p.b),
        )
        .score;
        let t = classes.entry(&p.class).or_insert(Tally {
            min: 1.0,
            ..Tally::default()
        });
        t.pairs += 1;
        t.suggested += u32::from(s >= SUGGEST);
        t.above_09 += u32::from(s > 0.9);
        t.min = t.min.min(s);
        t.max = t.max.max(s);
        match (p.same, s >= SUGGEST) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fn_ += 1,
            _ => {}
        }
        if let Some(bin) = bins.windows(2).position(|w| s >= w[0] && s < w[1]) {
            calibration[bin].0 += 1;
            calibration[bin].1 += u32::from(p.same);
        }
        if !p.same && s > 0.9 {
            worst_different.push((s, p));
        }
        if p.same && s < SUGGEST {
            missed_same.push((s, p));
        }
    }
    let precision = f64::from(tp) / f64::from((tp + fp).max(1));
    let recall = f64::from(tp) / f64::from((tp + fn_).max(1));
    println!(
        "labelled pairs: {} ({} same person, {} different)",
        pairs.len(),
        tp + fn_,
        pairs.len() as u32 - tp - fn_
    );
    println!(
        "at the suggestion threshold {SUGGEST}: precision {precision:.4}  recall {recall:.4}  (tp {tp}, fp {fp}, fn {fn_})"
    );
    println!(
        "{:<48} {:>5} {:>9} {:>6} {:>9} {:>9}",
        "class", "pairs", "suggested", ">0.9", "min", "max"
    );
    for (class, t) in &classes {
        println!(
            "{class:<48} {:>5} {:>9} {:>6} {:>9.6} {:>9.6}",
            t.pairs, t.suggested, t.above_09, t.min, t.max
        );
    }
    println!("calibration (score range: pairs, share that are the same person)");
    for (w, (n, same)) in bins.windows(2).zip(&calibration) {
        let share = if *n > 0 {
            format!("{:.4}", f64::from(*same) / f64::from(*n))
        } else {
            "—".into()
        };
        println!(
            "  [{:.3}, {:.3}): {n:>5} pairs, same person {share}",
            w[0],
            w[1].min(1.0)
        );
    }
    let above_099: (u32, u32) = calibration[4..]
        .iter()
        .fold((0, 0), |acc, c| (acc.0 + c.0, acc.1 + c.1));
    println!(
        "above 0.99: {} pairs, {:.4} the same person",
        above_099.0,
        f64::from(above_099.1) / f64::from(above_099.0.max(1))
    );
    for (s, p) in &worst_different {
        println!(
            "different persons above 0.9: {s:.4} {}: {:?} / {:?}",
            p.class, p.a, p.b
        );
    }
    for (s, p) in &missed_same {
        println!(
            "missed same person {s:.4} {}: {:?} / {:?}",
            p.class, p.a, p.b
        );
    }
    assert!(
        worst_different.is_empty(),
        "different persons above 0.9: {}",
        worst_different
            .iter()
            .map(|(s, p)| format!("{s:.4} {}", p.class))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(recall >= 0.99, "recall {recall:.4}");
}
