"""Paired statistics on hand-checkable data, with scipy as the oracle where one exists."""
import numpy as np
import pytest
from scipy import stats as sps

from safs_lite.study.stats import (
    bootstrap_interval,
    comparison_table,
    differences,
    format_comparison,
    paired,
    t_interval,
    wilcoxon_p,
    win_tie_loss,
)


def test_all_positive_differences_give_an_interval_above_zero_and_every_win():
    a, b = [61.0, 45.5, 70.2, 38.9, 52.0, 49.1], [50.0, 44.0, 60.0, 30.0, 51.0, 40.0]
    r = paired(a, b)
    d = np.array(a) - np.array(b)
    assert r["n"] == 6 and r["diffs"] == pytest.approx(tuple(d))
    assert r["mean_diff"] == pytest.approx(d.mean()) and r["median_diff"] == pytest.approx(np.median(d))
    assert (r["wins"], r["ties"], r["losses"]) == (6, 0, 0)
    assert 0 < r["ci_low"] < r["mean_diff"] < r["ci_high"] and r["ci_method"] == "BCa"
    assert r["p_wilcoxon"] == pytest.approx(2 / 2 ** 6)  # exact: all 6 signs positive, two-sided


def test_wilcoxon_p_of_a_small_mixed_case_by_hand():
    """d = 1, -2, 3, 4, 5: the negative ranks sum to 2; under H0 P(W- <= 2) = |{}, {1}, {2}| / 2^5 = 3/32."""
    assert wilcoxon_p([1.0, -2.0, 3.0, 4.0, 5.0]) == pytest.approx(2 * 3 / 32)
    assert wilcoxon_p([0.5, 1.5, 2.5]) == pytest.approx(0.25)  # n = 3 cannot go lower


def test_wilcoxon_with_zeros_and_ties_matches_scipy_and_handles_all_zero():
    d = [0.0, 1.0, -1.0, 2.0, 2.0, 3.0, 0.0]
    assert wilcoxon_p(d) == pytest.approx(sps.wilcoxon(d).pvalue)  # zeros dropped, ties: scipy's auto method
    assert wilcoxon_p([0.0, 0.0, 0.0]) == 1.0
    assert np.isnan(wilcoxon_p([]))


def test_bootstrap_is_seeded_and_is_scipys_bca():
    d = [3.1, -0.4, 7.9, 1.2, 0.0, 4.4, -2.5, 6.0]
    first, again = bootstrap_interval(d, seed=7), bootstrap_interval(d, seed=7)
    assert first == again and first[2] == "BCa"
    assert bootstrap_interval(d, seed=8)[:2] != first[:2]
    ci = sps.bootstrap((np.array(d),), np.mean, n_resamples=10_000, method="BCa",
                       rng=np.random.default_rng(7)).confidence_interval
    assert first[:2] == pytest.approx((ci.low, ci.high))


def test_bootstrap_interval_agrees_with_the_t_interval_for_normal_data():
    d = np.random.default_rng(0).normal(2.0, 1.0, 30)
    low, high, _ = bootstrap_interval(d)
    t_low, t_high = sps.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=sps.sem(d))
    assert low == pytest.approx(t_low, abs=0.1) and high == pytest.approx(t_high, abs=0.1)
    assert t_interval(d) == pytest.approx((t_low, t_high))


def test_at_three_seeds_the_bootstrap_stays_in_the_data_range_and_the_t_interval_does_not():
    """The committed 99% layer-wise gains (+1.08, -3.93, +27.24): bootstrap within [-3.93, 27.24]; the t
    interval (mean 8.13 +- 4.303 * sem 9.66) spans about +-41.6 points."""
    d = [1.08, -3.93, 27.24]
    low, high, _ = bootstrap_interval(d)
    assert -3.93 <= low < high <= 27.24
    t_low, t_high = t_interval(d)
    assert (t_high - t_low) / 2 == pytest.approx(41.58, abs=0.01)
    assert t_interval([2.0, 2.0]) == (2.0, 2.0) and np.isnan(t_interval([1.0])[0])


def test_degenerate_and_tiny_samples():
    assert bootstrap_interval([1.5, 1.5, 1.5]) == (1.5, 1.5, "percentile")  # BCa undefined: percentile
    low, high, method = bootstrap_interval([4.0])
    assert np.isnan(low) and np.isnan(high) and method == "none"
    low, high, method = bootstrap_interval([1.0, 2.0, 30.0])  # n = 3: within the range of the data
    assert 1.0 <= low < high <= 30.0 and method == "BCa"


def test_win_tie_loss_tolerance_and_float_noise():
    assert win_tie_loss([0.004, -0.004, 0.006, -0.006, 0.0]) == (1, 3, 1)
    assert differences([0.1 + 0.2], [0.3]).tolist() == [0.0]  # 5.6e-17 of float noise is an exact tie
    with pytest.raises(ValueError, match=r"equal length, got shapes \(2,\) and \(3,\)"):
        differences([1, 2], [1, 2, 3])


def runs():
    """Four seeds; "uniform" only on seeds 0-2 (a baseline run on fewer seeds)."""
    acc = {0: [98.0, 20.0, 30.0, 28.0, 31.0, 25.0], 1: [98.2, 25.0, 24.0, 26.0, 27.0, 25.0],
           2: [98.1, 11.35, 38.0, 36.0, 38.5, 35.0], 3: [97.9, 30.0, 33.0, 31.0, 32.0, None]}
    names = ["dense", "magnitude_pruning", "stage1", "stage2", "safs", "uniform"]
    return {s: {"config": {"seed": s}, "test_accuracy": {n: v for n, v in zip(names, values) if v is not None}}
            for s, values in acc.items()}


def test_comparison_table_pairs_every_method_with_mp_and_safs_with_the_rest():
    table = comparison_table(runs())
    pairs = list(zip(table["method"], table["reference"]))
    assert pairs == [("dense", "magnitude_pruning"), ("stage1", "magnitude_pruning"),
                     ("stage2", "magnitude_pruning"), ("safs", "magnitude_pruning"),
                     ("uniform", "magnitude_pruning"), ("safs", "dense"), ("safs", "stage1"), ("safs", "stage2"),
                     ("safs", "uniform"), ("stage1", "uniform")]
    row = table.set_index(["method", "reference"]).loc[("safs", "magnitude_pruning")]
    # safs - MP per seed: 11, 2, 27.15, 2 -> mean 10.5375, median 6.5, four wins
    assert row["n"] == 4 and row["seeds"] == (0, 1, 2, 3)
    assert row["mean_diff"] == pytest.approx(10.5375) and row["median_diff"] == pytest.approx(6.5)
    assert (row["wins"], row["ties"], row["losses"]) == (4, 0, 0) and row["ci_low"] > 0
    uniform = table.set_index(["method", "reference"]).loc[("safs", "uniform")]
    # only seeds 0-2 have "uniform": safs - uniform = 6, 2, 3.5
    assert uniform["n"] == 3 and uniform["seeds"] == (0, 1, 2) and uniform["mean_diff"] == pytest.approx(11.5 / 3)
    # stage 1 against the baseline retrained the same way: stage1 - uniform = 5, -1, 3 on seeds 0-2
    footing = table.set_index(["method", "reference"]).loc[("stage1", "uniform")]
    assert footing["seeds"] == (0, 1, 2) and footing["mean_diff"] == pytest.approx(7 / 3)
    plain = comparison_table(runs(), equal_footing=None)
    assert list(zip(plain["method"], plain["reference"])) == pairs[:-1]
    as_list = comparison_table(list(runs().values()))
    assert as_list.drop(columns="seeds").equals(table.drop(columns="seeds"))


def test_stage1_is_not_compared_with_a_baseline_given_stage2():
    """uniform_safs gets SAFS's stage 2: SAFS - uniform_safs is its equal-footing row; stage 1 - uniform_safs none."""
    res = runs()
    for seed, extra in zip(res, (33.0, 26.0, 37.0, 30.0)):
        res[seed]["test_accuracy"]["uniform_safs"] = extra
    rows = comparison_table(res).set_index(["method", "reference"])
    assert {("safs", "uniform_safs"), ("uniform_safs", "magnitude_pruning"), ("stage1", "uniform")} <= set(rows.index)
    assert ("stage1", "uniform_safs") not in rows.index
    # safs - uniform_safs per seed: -2, 1, 1.5, 2 -> mean 0.625 over all four seeds
    assert rows.loc[("safs", "uniform_safs"), "n"] == 4
    assert rows.loc[("safs", "uniform_safs"), "mean_diff"] == pytest.approx(0.625)


def test_comparison_table_rejects_duplicate_seeds_and_nothing():
    with pytest.raises(ValueError, match="seed 0 appears twice"):
        comparison_table([runs()[0], runs()[0]])
    with pytest.raises(ValueError, match="no runs to compare"):
        comparison_table({})


def test_format_comparison_markdown_and_text():
    table = comparison_table(runs())
    md = format_comparison(table, labels={"safs": "SAFS", "magnitude_pruning": "MP"})
    lines = md.strip().splitlines()
    assert len(lines) == 2 + len(table) and lines[1].startswith("|---")
    assert "| SAFS - MP | 4 | +10.54 | +6.50 | [" in md and "| 4/0/0 |" in md
    text = format_comparison(table, "text").splitlines()
    assert len(text) == 1 + len(table) and len({len(line) for line in text}) == 1  # aligned columns
    with pytest.raises(ValueError, match="unknown table style 'html'; valid: markdown, text"):
        format_comparison(table, "html")


def test_a_missing_or_non_finite_value_is_reported_not_dropped_silently():
    runs = {s: {"test_accuracy": {"magnitude_pruning": 20.0 + s, "safs": 30.0 + s}} for s in range(5)}
    runs[2]["test_accuracy"]["safs"] = float("nan")   # a diverged run's value
    runs[4]["test_accuracy"]["safs"] = None           # a method that reported nothing
    row = comparison_table(runs, n_resamples=1000).iloc[0]
    assert (row["n"], row["seeds"], row["missing"]) == (3, (0, 1, 3), (2, 4))
    assert "3 (2 missing: seeds 2, 4)" in format_comparison(comparison_table(runs, n_resamples=1000))
