"""Accuracy against sparsity from the evidence study (`safs_lite.study.evidence`): on synthetic run tables."""
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from safs_lite.study.evidence import (
    BEST_FIXED,
    DODGE,
    LABELS,
    accuracy_vs_sparsity,
    format_sweep,
    read_sweep,
    sweep_points,
    write_accuracy_vs_sparsity,
)

SETTINGS = [("layerwise", s) for s in (0.9, 0.95, 0.98, 0.99, 0.995)] + [("global", 0.9), ("global", 0.99),
                                                                          ("erk", 0.99), ("protected", 0.99)]


def _summary(settings=SETTINGS, seeds=(0, 1, 2), fixed=None) -> pd.DataFrame:
    """summary.csv rows: per setting and seed, dense, MP, SAFS, uniform and swish (test, validation).

    fixed: (allocation, sparsity) -> {"uniform": (val, test), "swish": (val, test)} overriding the baselines.
    """
    rows = []
    for pruning, sparsity in settings:
        for seed in seeds:
            acc = {"dense": (98.5, 98.8), "magnitude_pruning": (40.0 + seed, 41.0 + seed),
                   "safs": (50.0 + 2 * seed, 52.0 + 2 * seed), "uniform": (45.0, 44.0), "swish": (43.0, 42.0),
                   **(fixed or {}).get((pruning, sparsity), {})}
            rows += [{"preset": "sweep", "sparsity": sparsity, "pruning": pruning, "seed": seed, "method": m,
                      "val_accuracy": v, "test_accuracy": t, "run": f"{pruning}-{sparsity}-s{seed}"}
                     for m, (v, t) in acc.items()]
    return pd.DataFrame(rows)


def test_every_setting_is_in_the_csv_and_the_figure(tmp_path):
    summary = _summary()
    other = _summary([("layerwise", 0.5)]).assign(preset="cpu")  # another preset: not in the sweep's figure
    table, fig = write_accuracy_vs_sparsity(pd.concat([summary, other]), tmp_path / "avs.csv", tmp_path / "avs.png")
    csv = pd.read_csv(tmp_path / "avs.csv")
    assert (tmp_path / "avs.png").stat().st_size > 10_000
    wanted = set(SETTINGS)
    for method in ("magnitude_pruning", "safs", BEST_FIXED, "dense"):
        got = {(a, s) for a, s in csv[csv["method"] == method][["allocation", "sparsity"]].itertuples(index=False)}
        assert got == wanted, method
    plotted = set()
    for ax in fig.axes:
        allocation = ax.get_title().split()[0]
        for bars in ax.containers:  # one ErrorbarContainer per method drawn
            method = next(m for m, lab in LABELS.items() if lab == bars.get_label())
            line = bars.lines[0]
            x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
            plotted |= {(allocation, round(1 - d / DODGE[method], 6), method) for d in x}
            lo, hi = ax.get_xlim()  # reversed axis: every point inside, nothing clipped
            assert min(lo, hi) < x.min() and x.max() < max(lo, hi)
            assert ax.get_ylim()[0] < y.min() and y.max() < ax.get_ylim()[1]
    assert {(a, s) for a, s, _ in plotted} == wanted
    assert {(a, s, m) for a, s, m in plotted if m == BEST_FIXED} == {(a, s, BEST_FIXED) for a, s in wanted}


def test_mean_and_interval_over_seeds():
    table = accuracy_vs_sparsity(_summary([("global", 0.9)]))
    safs = table[table["method"] == "safs"].iloc[0]
    assert (safs["n"], safs["seeds"], safs["mean"]) == (3, "0 1 2", 54.0)  # 52, 54, 56
    assert 52.0 <= safs["ci_low"] < 54.0 < safs["ci_high"] <= 56.0
    dense = table[table["method"] == "dense"].iloc[0]
    assert dense["ci_low"] == dense["ci_high"] == dense["mean"] == 98.8  # identical seeds: no spread


def test_best_fixed_baseline_is_chosen_on_validation_not_test():
    # at 99% layer-wise uniform wins on validation but loses on test; at 90% swish wins on validation only
    fixed = {("layerwise", 0.99): {"uniform": (60.0, 30.0), "swish": (50.0, 70.0)},
             ("layerwise", 0.9): {"uniform": (50.0, 90.0), "swish": (55.0, 20.0)}}
    table = accuracy_vs_sparsity(_summary([("layerwise", 0.9), ("layerwise", 0.99)], fixed=fixed))
    best = table[table["method"] == BEST_FIXED].set_index("sparsity")
    assert best.loc[0.99, "baseline"] == "uniform" and best.loc[0.99, "mean"] == 30.0
    assert best.loc[0.9, "baseline"] == "swish" and best.loc[0.9, "mean"] == 20.0
    assert best.loc[0.9, "val_mean"] == 55.0


def test_bad_summaries_are_refused():
    with pytest.raises(ValueError, match="lacks the columns \\['val_accuracy'\\]"):
        accuracy_vs_sparsity(_summary().drop(columns="val_accuracy"))
    with pytest.raises(ValueError, match="no runs of preset 'sweep'.*presets there: cpu"):
        accuracy_vs_sparsity(_summary().assign(preset="cpu"))


def test_sweep_points_pair_safs_with_mp_and_with_the_fixed_operator_chosen_on_validation():
    # at 90% SAFS gains 11, 12, 13 over MP on seeds 0-2; at 99% swish wins on validation and SAFS loses to its test
    fixed = {("erk", 0.99): {"uniform": (60.0, 30.0), "swish": (70.0, 80.0)}}
    summary = _summary([("erk", 0.9), ("erk", 0.99)], fixed=fixed)
    points = sweep_points(accuracy_vs_sparsity(summary), summary).set_index("sparsity")
    at90, at99 = points.loc[0.9], points.loc[0.99]
    assert (at90["n"], at90["mp"], at90["safs"], at90["safs_mp"], at90["safs_mp_wins"]) == (3, 42.0, 54.0, 12.0, "3/3")
    assert 11.0 <= at90["safs_mp_low"] < 12.0 < at90["safs_mp_high"] <= 13.0
    assert at99["baseline"] == "swish" and at99["best_fixed"] == 80.0
    assert at99["safs_fixed"] == 54.0 - 80.0 and at99["safs_fixed_high"] < 0 and at99["safs_fixed_wins"] == "0/3"


def test_read_sweep_counts_the_intervals_and_withholds_a_verdict_below_ten_seeds():
    fixed = {("erk", 0.99): {"uniform": (60.0, 30.0), "swish": (70.0, 80.0)}}
    summary = _summary([("erk", 0.9), ("erk", 0.99), ("global", 0.99)], fixed=fixed)
    text = read_sweep(sweep_points(accuracy_vs_sparsity(summary), summary))
    erk = next(line for line in text.splitlines() if line.startswith("- **erk:**"))
    assert "from 42.00% at 90% to 42.00% at 99%" in erk  # MP: the same synthetic values at both sparsities
    assert "above 0 at 2 of 2 sparsities" in erk and "largest at 90% (+12.00)" in erk  # a tie goes to the first
    assert "interval above 0 at 1, below 0 at 1, containing 0 at 0 of 2" in erk  # uniform 44 < 54; swish 80 > 54
    assert "- **global:** one sparsity only (99%)" in text
    assert "3 of 3 points have fewer than 10 seeds (n = 3)" in text
    ten = _summary([("erk", 0.9), ("erk", 0.99)], seeds=tuple(range(10)))
    assert "Every point has at least 10 seeds" in read_sweep(sweep_points(accuracy_vs_sparsity(ten), ten))
    with pytest.raises(ValueError, match="no points"):
        read_sweep(sweep_points(accuracy_vs_sparsity(summary).iloc[:0], summary))


def test_format_sweep_writes_each_difference_with_its_interval_and_wins():
    summary = _summary([("erk", 0.9)])
    row = format_sweep(sweep_points(accuracy_vs_sparsity(summary), summary)).iloc[0]
    assert (row["sparsity"], row["MP"], row["SAFS"], row["best fixed"]) == ("90%", "42.00", "54.00", "44.00 (uniform)")
    assert row["SAFS - MP [95% CI] (wins)"].startswith("+12.00 [+11.") and row["SAFS - MP [95% CI] (wins)"].endswith("(3/3)")


def test_the_committed_figure_data_covers_the_sweep_and_comes_from_the_committed_runs():
    """results/evidence/accuracy_vs_sparsity.csv (the figure's data) is `accuracy_vs_sparsity` of the committed
    summary.csv, and holds at least four sparsities per sweep allocation, each with at least three seeds."""
    from safs_lite.paths import results_dir

    folder = results_dir() / "evidence"
    committed = pd.read_csv(folder / "accuracy_vs_sparsity.csv")
    remade = accuracy_vs_sparsity(pd.read_csv(folder / "summary.csv"))
    pd.testing.assert_frame_equal(committed.fillna(""), remade.fillna(""), check_dtype=False, atol=1e-4)
    for allocation in ("layerwise", "global", "erk"):
        part = committed[(committed["allocation"] == allocation) & (committed["method"].isin(["magnitude_pruning", "safs"]))]
        assert part["sparsity"].nunique() >= 4, (allocation, sorted(part["sparsity"].unique()))
        assert part["n"].min() >= 3, (allocation, part[["sparsity", "method", "n"]].values.tolist())
