"""Reading the evidence study back (safs_lite.study.evidence_runs): grouping by setting, the paired shape, the mechanism, verdicts."""
import json
import math

import pandas as pd
import pytest

from safs_lite.paths import results_dir
from safs_lite.study.evidence_runs import (
    MIN_SEEDS_FOR_VERDICT,
    Setting,
    evidence_comparisons,
    evidence_mechanism,
    headline_table,
    interval_position,
    load_evidence,
    paired_accuracies,
    verdict,
)


def write_run(root, pruning, preset, seed, mp, safs, uniform, mechanism=True, collapsed_mp=False, sparsity=0.99):
    """One collected run folder as tools/collect_evidence.py writes it, with hand-picked numbers."""
    out = root / "evidence" / "runs" / f"safs-lenet5-mnist-{sparsity}-{pruning}-{preset}-s{seed}"
    out.mkdir(parents=True)
    res = {"config": {"model": "lenet5", "dataset": "mnist", "sparsity": sparsity, "pruning": pruning,
                      "preset": preset, "seed": seed},
           "test_accuracy": {"dense": 98.8, "magnitude_pruning": mp, "stage1": mp + 1, "stage2": mp, "safs": safs},
           "val_accuracy": {"dense": 98.5, "magnitude_pruning": mp - 1, "stage1": mp, "stage2": mp - 1, "safs": safs - 1},
           "baselines": {"uniform": {"test_accuracy": uniform, "val_accuracy": uniform - 1},
                         "swish": {"test_accuracy": 11.35, "val_accuracy": 11.0}}}
    (out / "results.json").write_text(json.dumps(res))
    if mechanism:
        rows = [("relu", "conv1", 4), ("relu", "fc1", 20 + seed), ("relu", "fc3", None),
                ("found", "conv1", 5), ("found", "fc1", 30 + seed), ("found", "fc3", None)]
        pd.DataFrame(rows, columns=["network", "layer", "live_connected"]).to_csv(out / "mechanism.csv", index=False)
        pd.DataFrame([("start (relu)", "val", 10.0, 11.67, True), ("magnitude_pruning", "test", mp, 11.35, collapsed_mp),
                      ("safs", "test", safs, 11.35, safs == 11.35)],
                     columns=["network", "split", "accuracy", "majority_share", "collapsed"]).to_csv(
            out / "collapse.csv", index=False)
        (out / "ceiling.json").write_text(json.dumps({"test_ceiling": 50.0 + seed}))
    return out


@pytest.fixture
def evidence(tmp_path):
    """Two settings: global (sweep) on seeds 2, 0, 1 and layer-wise (cpu) on seeds 0, 1 (the latter's seed 1
    without mechanism files, as a run collected before the mechanism was measured)."""
    for seed, (mp, safs, uni) in zip((2, 0, 1), [(60.0, 80.0, 70.0), (65.0, 75.0, 76.0), (70.0, 90.0, 71.0)]):
        write_run(tmp_path, "global", "sweep", seed, mp, safs, uni)
    write_run(tmp_path, "layerwise", "cpu", 0, 11.35, 30.0, 29.0, collapsed_mp=True)
    write_run(tmp_path, "layerwise", "cpu", 1, 40.0, 11.35, 41.0, mechanism=False)
    return tmp_path


def test_runs_are_grouped_by_setting_with_the_papers_allocation_first_and_seeds_ascending(evidence):
    groups = load_evidence(evidence)
    assert list(groups) == [Setting(0.99, "layerwise", "cpu"), Setting(0.99, "global", "sweep")]
    assert [list(g) for g in groups.values()] == [[0, 1], [0, 1, 2]]
    assert groups[Setting(0.99, "global", "sweep")][2]["test_accuracy"]["safs"] == 80.0
    assert Setting(0.99, "erk", "sweep").label == "99% erk (sweep)"


def test_paired_accuracies_put_the_baselines_beside_table1_and_feed_the_comparisons(evidence):
    groups = load_evidence(evidence)
    flat = paired_accuracies(groups[Setting(0.99, "global", "sweep")])
    assert flat[0]["test_accuracy"]["uniform"] == 76.0 and flat[0]["val_accuracy"]["uniform"] == 75.0
    table = evidence_comparisons(groups, n_resamples=2000).set_index(["setting", "method", "reference"])
    r = table.loc[("99% global (sweep)", "safs", "uniform")]
    # SAFS - uniform per seed: -1 (seed 0), +19 (seed 1), +10 (seed 2)
    assert r["n"] == 3 and r["seeds"] == (0, 1, 2) and r["mean_diff"] == pytest.approx(28 / 3)
    assert (r["wins"], r["ties"], r["losses"]) == (2, 0, 1)
    mp = table.loc[("99% layerwise (cpu)", "safs", "magnitude_pruning")]
    assert mp["n"] == 2 and mp["mean_diff"] == pytest.approx(((30 - 11.35) + (11.35 - 40)) / 2)


def test_the_headline_table_has_one_row_per_setting_and_pair_and_says_what_was_not_run(evidence):
    table = evidence_comparisons(load_evidence(evidence), n_resamples=2000)
    text = headline_table(table, pairs=(("safs", "uniform"), ("safs", "ga")))
    rows = text.splitlines()[2:]
    assert len(rows) == 4 and rows[0].startswith("| 99% layerwise (cpu) | SAFS - best uniform operator | 2 |")
    r = table.set_index(["setting", "method", "reference"]).loc[("99% global (sweep)", "safs", "uniform")]
    assert rows[2] == (f"| 99% global (sweep) | SAFS - best uniform operator | 3 | +9.33 | [{r['ci_low']:+.2f}, "
                       f"{r['ci_high']:+.2f}] | {interval_position(r['ci_low'], r['ci_high'])} | "
                       f"{r['p_wilcoxon']:.3g} | 2/0/1 |")
    assert rows[3] == "| 99% global (sweep) | SAFS - genetic algorithm | 0 | not run | | | | |"


def test_the_default_headline_ends_with_safs_against_uniform_given_stage_2_where_it_was_run(evidence):
    """HEADLINE's last pair: "not run" in a setting whose runs lack uniform_safs, its interval where they have it."""
    for seed, acc in ((0, 74.0), (1, 80.0)):  # two of global's three seeds have it
        path = evidence / "evidence" / "runs" / f"safs-lenet5-mnist-0.99-global-sweep-s{seed}" / "results.json"
        res = json.loads(path.read_text())
        res["baselines"]["uniform_safs"] = {"test_accuracy": acc, "val_accuracy": acc - 1}
        path.write_text(json.dumps(res))
    table = evidence_comparisons(load_evidence(evidence), n_resamples=2000)
    rows = [r for r in headline_table(table).splitlines() if "best uniform operator + stage 2" in r]
    assert rows[0] == "| 99% layerwise (cpu) | SAFS - best uniform operator + stage 2 | 0 | not run | | | | |"
    # SAFS - uniform_safs: 75 - 74 (seed 0), 90 - 80 (seed 1)
    assert len(rows) == 2 and rows[1].startswith("| 99% global (sweep) | SAFS - best uniform operator + stage 2 | 2 "
                                                 "| +5.50 |")
    keys = set(table.set_index(["setting", "method", "reference"]).index)
    assert ("99% global (sweep)", "safs", "uniform_safs") in keys and ("99% global (sweep)", "stage1", "uniform_safs") \
        not in keys  # stage 1 is compared with the baselines retrained as it is, not with one given stage 2


def test_the_mechanism_sums_live_connected_units_and_reads_collapse_per_run(evidence):
    mech = evidence_mechanism(evidence)
    assert list(zip(mech["setting"], mech["seed"])) == [("99% layerwise (cpu)", 0), ("99% global (sweep)", 0),
                                                        ("99% global (sweep)", 1), ("99% global (sweep)", 2)]
    first = mech.iloc[0]
    # magnitude pruning from collapse.csv; stage 2 and swish (not in the fixture's collapse.csv) by their 11.35
    assert first["mp_collapsed"] and first["collapsed"] == "magnitude_pruning, stage2, swish"
    assert (first["live_connected_relu"], first["live_connected_found"]) == (24, 35)  # fc3's empty row skipped
    assert first["majority"] == 11.35 and first["safs_gain"] == pytest.approx(30 - 11.35)
    assert mech["ceiling"].tolist() == [50.0, 50.0, 51.0, 52.0] and not mech["mp_collapsed"].iloc[1:].any()


def test_bad_evidence_folders_give_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="no evidence runs under"):
        load_evidence(tmp_path)
    first = write_run(tmp_path, "erk", "sweep", 0, 50.0, 60.0, 55.0)
    first.rename(first.with_name(first.name + "-copy"))
    write_run(tmp_path, "erk", "sweep", 0, 50.0, 60.0, 55.0)
    with pytest.raises(ValueError, match="seed 0 of 99% erk \\(sweep\\) appears twice"):
        load_evidence(tmp_path)


def test_verdicts_need_ten_seeds_and_follow_the_interval():
    assert [interval_position(*ci) for ci in [(0.1, 2), (-2, -0.1), (-1, 1), (0.0, 1), (math.nan, 1)]] == \
        ["above 0", "below 0", "contains 0", "contains 0", "undefined"]
    n = MIN_SEEDS_FOR_VERDICT
    assert verdict(n - 1, 5.0, 9.0, "SAFS", "MP", "x").startswith("No verdict on SAFS against MP at x: n = 9 < 10")
    assert verdict(n, 1.0, 2.0, "stage 1", "MP", "x") == "Stage 1 beats MP at x (n = 10, interval above 0)."
    assert verdict(n, math.nan, 2.0, "SAFS", "MP", "x").endswith("the interval is undefined.")
    assert verdict(n, 5.0, 9.0, "SAFS", "MP", "x") == "SAFS beats MP at x (n = 10, interval above 0)."
    assert verdict(n, -1.0, 9.0, "SAFS", "MP", "x").startswith("SAFS does not beat MP at x")
    assert verdict(n, -9.0, -1.0, "SAFS", "MP", "x").startswith("SAFS does worse than MP at x")


def test_the_committed_evidence_agrees_with_its_runs_table():
    """The loader and tools/collect_evidence.py's runs.csv, two readings of the same folders, agree per setting."""
    runs = pd.read_csv(results_dir() / "evidence" / "runs.csv")
    groups = load_evidence()
    assert sum(len(g) for g in groups.values()) == len(runs)
    table = evidence_comparisons(groups, n_resamples=1000).set_index(["setting", "method", "reference"])
    for setting, results in groups.items():
        part = runs[(runs["pruning"] == setting.pruning) & (runs["preset"] == setting.preset)
                    & (runs["sparsity"] == setting.sparsity)]
        assert sorted(part["seed"]) == list(results)
        assert table.loc[(setting.label, "safs", "magnitude_pruning"), "mean_diff"] == pytest.approx(
            part["safs_gain"].mean())
