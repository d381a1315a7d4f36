"""Paired comparisons over seeds: differences, a bootstrap interval, the Wilcoxon test, wins/ties/losses.

Two methods run on the same seeds (the same masks) are compared seed by seed: d_i = a_i - b_i, in accuracy
points. For the d_i the module reports their mean and median, a seeded bootstrap 95% interval of the mean
(`scipy.stats.bootstrap`, BCa, percentile when BCa is undefined), the two-sided Wilcoxon signed-rank p-value
(`scipy.stats.wilcoxon`) and how many seeds the method wins, ties (|d| <= TIE_TOLERANCE) or loses.
`comparison_table` does this for every method of a set of runs against magnitude pruning, for SAFS
against every other method, and for stage 1 against every baseline retrained as it is (not against one
given SAFS's stage 2, such as uniform_safs: that one is SAFS's equal, compared by the SAFS rows);
`format_comparison` prints it.

Example:
    >>> r = paired([60.0, 55.0, 58.0], [50.0, 52.0, 50.0])
    >>> r["mean_diff"], (r["wins"], r["ties"], r["losses"]), r["p_wilcoxon"]
    (7.0, (3, 0, 0), 0.25)
"""
from __future__ import annotations

import math
import warnings
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

TIE_TOLERANCE = 0.005  # points: |d| at or below this is a tie (test accuracies have 0.01-point steps on 10k images)
N_RESAMPLES = 10_000   # bootstrap resamples
CONFIDENCE = 0.95
REFERENCE = "magnitude_pruning"  # every method is compared against it
FOCUS = "safs"                   # ... and SAFS against every other method
# Stage 1's searched operators are retrained with the dense hyperparameters, exactly as every baseline (uniform,
# swish, random, sa, ga) is; stage 1 - baseline is the comparison of searches at equal footing. SAFS adds stage 2
# (learned alpha/beta, tuned hyperparameters) on top, which those baselines do not get; a baseline that gets stage 2
# too (`baselines.Baseline.stage2`: uniform_safs) is on equal footing with SAFS instead and has no stage-1 row.
EQUAL_FOOTING = "stage1"
TABLE1_METHODS = ("dense", "magnitude_pruning", "stage1", "stage2", "safs")
STYLES = ("markdown", "text")


def differences(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """Per-seed differences a - b (float64), rounded to 1e-9 so float noise does not break ties or zeros."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need two 1-d sequences of equal length, got shapes {a.shape} and {b.shape}")
    return np.round(a - b, 9)


def bootstrap_interval(diffs: Sequence[float], confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                       seed: int = 0) -> tuple[float, float, str]:
    """Seeded bootstrap interval of the mean difference.

    BCa (bias-corrected and accelerated, `scipy.stats.bootstrap`) by default; where BCa is undefined (all
    differences equal, or every jackknife mean the same) the percentile interval from the same resamples,
    which for identical differences is that value twice. Fewer than two differences: (nan, nan, "none").
    With n = 3 there are only 10 distinct resamples, so the interval is coarse (it cannot be wider than the
    range of the differences); read it with the n beside it.

    Args:
        diffs: per-seed differences.
        confidence: confidence level.
        n_resamples: bootstrap resamples (at least 10,000 for reported numbers).
        seed: seeds numpy's generator: the same seed gives the same interval.

    Returns:
        (low, high, method) with method "BCa", "percentile" or "none".
    """
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return math.nan, math.nan, "none"
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BCa's degenerate-data warning: handled by the fallback
            ci = stats.bootstrap((d,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                                 method=method, rng=np.random.default_rng(seed)).confidence_interval
        if np.isfinite(ci.low) and np.isfinite(ci.high):
            return float(ci.low), float(ci.high), method
    return math.nan, math.nan, "none"


def t_interval(diffs: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t interval of the mean difference (normal differences assumed), for comparison with the bootstrap.

    At n = 3 the bootstrap interval cannot leave the range of the differences and so covers the mean less
    often than it says; the t interval, much wider there, shows what three seeds allow. Identical differences:
    that value twice; fewer than two: (nan, nan).
    """
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return math.nan, math.nan
    if np.all(d == d[0]):
        return float(d[0]), float(d[0])
    low, high = stats.t.interval(confidence, d.size - 1, loc=d.mean(), scale=stats.sem(d))
    return float(low), float(high)


def wilcoxon_p(diffs: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of the differences (H0: symmetric about 0).

    Zero differences are dropped (scipy's default zero_method="wilcox"); if every difference is zero the
    p-value is 1.0 (no signed rank: no evidence of a difference) without calling scipy; no differences: nan.
    scipy's method="auto" decides the null distribution: exact without ties or zeros (n <= 50), a full
    enumeration of the 2^n sign flips with ties or zeros for n <= 13, otherwise the normal approximation. At
    n = 3 the smallest possible p is 0.25 and at n = 5 it is 0.0625: below 6 seeds the test cannot reach 0.05.
    """
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return math.nan
    if not np.any(d):
        return 1.0
    return float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided", method="auto").pvalue)


def win_tie_loss(diffs: Sequence[float], tol: float = TIE_TOLERANCE) -> tuple[int, int, int]:
    """(wins, ties, losses): seeds with d > tol, |d| <= tol, d < -tol."""
    d = np.asarray(diffs, dtype=float)
    return int((d > tol).sum()), int((np.abs(d) <= tol).sum()), int((d < -tol).sum())


def paired(a: Sequence[float], b: Sequence[float], tol: float = TIE_TOLERANCE, n_resamples: int = N_RESAMPLES,
           confidence: float = CONFIDENCE, seed: int = 0) -> dict:
    """Everything the comparison of a (method) with b (reference) on the same seeds reports.

    Args:
        a: the method's per-seed values (accuracy, %).
        b: the reference's values on the same seeds, in the same order.
        tol: tie tolerance for win/tie/loss, in the values' unit.
        n_resamples: bootstrap resamples.
        confidence: the interval's confidence level.
        seed: the bootstrap's seed.

    Returns:
        A dict with n, mean_a, mean_b, mean_diff, median_diff, ci_low, ci_high, ci_method, t_low, t_high
        (`t_interval`), p_wilcoxon, wins, ties, losses and diffs (the per-seed differences, a tuple).
    """
    d = differences(a, b)
    if d.size == 0:
        raise ValueError("paired comparison needs at least one seed with both values, got none")
    low, high, method = bootstrap_interval(d, confidence, n_resamples, seed)
    wins, ties, losses = win_tie_loss(d, tol)
    t_low, t_high = t_interval(d, confidence)
    return {"n": int(d.size), "mean_a": float(np.mean(a)), "mean_b": float(np.mean(b)),
            "mean_diff": float(d.mean()), "median_diff": float(np.median(d)), "ci_low": low, "ci_high": high,
            "ci_method": method, "t_low": t_low, "t_high": t_high, "p_wilcoxon": wilcoxon_p(d), "wins": wins,
            "ties": ties, "losses": losses, "diffs": tuple(float(x) for x in d)}


def _accuracies(results: Mapping[int, dict] | Sequence[dict], key: str) -> dict[int, dict[str, float]]:
    """seed -> {method: accuracy} from results.json dicts (a seed -> dict mapping, or a list read by seed)."""
    items = results.items() if isinstance(results, Mapping) else ((r["config"]["seed"], r) for r in results)
    out = {}
    for seed, res in items:
        if seed in out:
            raise ValueError(f"seed {seed!r} appears twice; compare runs of one setting, one per seed")
        out[seed] = {m: float(v) for m, v in res[key].items() if v is not None and math.isfinite(float(v))}
    return out


def comparison_table(results: Mapping[int, dict] | Sequence[dict], reference: str = REFERENCE, focus: str = FOCUS,
                     key: str = "test_accuracy", tol: float = TIE_TOLERANCE, n_resamples: int = N_RESAMPLES,
                     seed: int = 0, equal_footing: str | None = EQUAL_FOOTING) -> pd.DataFrame:
    """Paired comparisons of the methods of several seeds' runs (one setting): each against `reference`,
    `focus` against each other method, and `equal_footing` (stage 1) against every method outside Table 1's five
    but the baselines given stage 2 (the baselines retrained exactly as stage 1 is: the comparison of the searches
    themselves; uniform_safs gets SAFS's stage 2, so `focus` - uniform_safs is its comparison).

    Each comparison pairs only the seeds where both methods have a finite value (a baseline run on fewer seeds is
    compared on those; its row's n and seeds say which, and `missing` lists the group's other seeds: a value that
    is NaN, infinite or None, or a method a run lacks); a comparison with no common seed has no row.
    Methods keep the order of their first appearance in the runs' dicts.

    Args:
        results: results.json dicts, as {seed: dict} or a list (seed read from each dict's config).
        reference: the method every other one is compared against (magnitude pruning).
        focus: the method compared against every other one (SAFS).
        key: which accuracies: "test_accuracy" (reported numbers) or any dict of the same shape.
        tol, n_resamples, seed: see `paired`.
        equal_footing: the method compared against every baseline as well (None: no such rows).

    Returns:
        A DataFrame, one row per comparison "method - reference": columns method, reference, n, seeds, missing,
        mean_method, mean_reference, mean_diff, median_diff, ci_low, ci_high, ci_method, t_low, t_high,
        p_wilcoxon, wins, ties, losses.

    Example:
        >>> runs = {s: {"test_accuracy": {"magnitude_pruning": 20.0 + s, "safs": 30.0 + 2 * s}} for s in range(4)}
        >>> comparison_table(runs)[["method", "reference", "n", "mean_diff", "wins"]].values.tolist()
        [['safs', 'magnitude_pruning', 4, 11.5, 4]]
    """
    acc = _accuracies(results, key)
    if not acc:
        raise ValueError("no runs to compare")
    present = {m for values in _present(results, key).values() for m in values}
    methods = list(dict.fromkeys(m for values in acc.values() for m in values))
    pairs = [(m, reference) for m in methods if m != reference]
    pairs += [(focus, m) for m in methods if m not in (focus, reference)] if focus in methods else []
    if equal_footing in methods:
        from ..run.baselines import BASELINES

        pairs += [(equal_footing, m) for m in methods if m not in TABLE1_METHODS and (equal_footing, m) not in pairs
                  and not (m in BASELINES and BASELINES[m].stage2)]
    rows = []
    for a, b in pairs:
        seeds = [s for s, values in acc.items() if a in values and b in values]
        if not seeds:
            continue
        # seeds of the group where a method reported no finite value (NaN, inf, None): said, never dropped silently
        missing = tuple(s for s in acc if s not in seeds and (a in present or b in present))
        r = paired([acc[s][a] for s in seeds], [acc[s][b] for s in seeds], tol, n_resamples, seed=seed)
        rows.append({"method": a, "reference": b, "n": r["n"], "seeds": tuple(seeds), "missing": missing,
                     "mean_method": r["mean_a"], "mean_reference": r["mean_b"], **{k: r[k] for k in _STAT_COLUMNS}})
    return pd.DataFrame(rows, columns=["method", "reference", "n", "seeds", "missing", "mean_method",
                                       "mean_reference", *_STAT_COLUMNS])


def _present(results, key: str) -> dict:
    """seed -> the methods its results name under `key` (finite or not)."""
    items = results.items() if isinstance(results, Mapping) else ((r["config"]["seed"], r) for r in results)
    return {seed: set(res[key]) for seed, res in items}


_STAT_COLUMNS = ["mean_diff", "median_diff", "ci_low", "ci_high", "ci_method", "t_low", "t_high", "p_wilcoxon",
                 "wins", "ties", "losses"]


def check_style(style: str) -> str:
    """Return `style` if it is a table style, else raise ValueError listing the valid ones."""
    if style not in STYLES:
        raise ValueError(f"unknown table style {style!r}; valid: {', '.join(STYLES)}")
    return style


def format_comparison(table: pd.DataFrame, style: str = "markdown", labels: Mapping[str, str] | None = None) -> str:
    """The comparison table for a report: difference, interval, p-value and W/T/L per row, in points.

    Args:
        table: `comparison_table`'s DataFrame.
        style: "markdown" (a pipe table) or "text" (aligned columns for a terminal).
        labels: display names of methods (e.g. results.LABELS); the method key where missing.

    Returns:
        The table as a string.
    """
    check_style(style)
    name = lambda m: (labels or {}).get(m, m)  # noqa: E731
    head = ["comparison", "n", "mean diff", "median diff", f"{100 * CONFIDENCE:g}% CI (bootstrap)",
            "Wilcoxon p", "W/T/L"]
    body = [[f"{name(r.method)} - {name(r.reference)}",
             f"{r.n}" + (f" ({len(r.missing)} missing: seeds {', '.join(map(str, r.missing))})"
                         if getattr(r, "missing", ()) else ""), f"{r.mean_diff:+.2f}", f"{r.median_diff:+.2f}",
             f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]", f"{r.p_wilcoxon:.3g}", f"{r.wins}/{r.ties}/{r.losses}"]
            for r in table.itertuples()]
    if style == "markdown":
        lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body]) + "\n"
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]

    def fmt(row: list[str]) -> str:  # the comparison left-aligned, numbers right-aligned
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return "\n".join(fmt(row) for row in [head, *body]) + "\n"
