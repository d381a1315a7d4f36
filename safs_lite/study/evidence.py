"""Accuracy against sparsity from the evidence study: the table with intervals and its figure.

`tools/collect_evidence.py` writes results/evidence/summary.csv, one row per collected run and method
(columns preset, sparsity, pruning, seed, method, test_accuracy, val_accuracy). From it,
`accuracy_vs_sparsity` makes one row per (allocation, sparsity, method) for magnitude pruning, SAFS,
the best fixed baseline and the dense network: the number of seeds, the mean test accuracy and a
seeded bootstrap 95% interval of that mean (`stats.bootstrap_interval`). The best fixed baseline is
`uniform` or `swish` (the baselines without per-layer search), whichever has the higher mean
VALIDATION accuracy at that allocation and sparsity; its test accuracy is reported, never used to
choose. `plot_accuracy_vs_sparsity` draws the table: one panel per allocation, x the density
(1 - sparsity) on a log axis labelled in sparsity, so 90, 95, 98, 99 and 99.5% are spread out.

Example:
    >>> rows = [{"preset": "sweep", "sparsity": 0.9, "pruning": "global", "seed": s, "method": m,
    ...          "test_accuracy": a + s, "val_accuracy": a + s}
    ...         for s in (0, 1) for m, a in (("magnitude_pruning", 90.0), ("safs", 95.0))]
    >>> accuracy_vs_sparsity(pd.DataFrame(rows))[["allocation", "method", "n", "mean"]].values.tolist()
    [['global', 'magnitude_pruning', 2, 90.5], ['global', 'safs', 2, 95.5]]
"""
from __future__ import annotations

import math
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from .plots import save_figure
from .stats import bootstrap_interval, paired

FIXED_BASELINES = ("uniform", "swish")  # the baselines without per-layer search
BEST_FIXED = "best_fixed"
METHODS = ("magnitude_pruning", "safs", BEST_FIXED, "dense")  # the table's methods, in this order
ALLOCATIONS = ("layerwise", "global", "erk", "protected")  # panel order (others follow, sorted)
TABLE_COLUMNS = ["allocation", "sparsity", "method", "baseline", "n", "seeds", "mean", "ci_low", "ci_high",
                 "val_mean"]
LABELS = {"magnitude_pruning": "magnitude pruning", "safs": "SAFS",
          BEST_FIXED: "best fixed operator: uniform or swish,\nchosen on validation", "dense": "dense"}
STYLE = {"magnitude_pruning": ("C0", "v"), "safs": ("C1", "o"), BEST_FIXED: ("C2", "s"), "dense": ("0.45", "_")}
# Each method's points are drawn at density x DODGE[method], so intervals at one sparsity do not hide each other.
DODGE = {"magnitude_pruning": 0.93, "safs": 1.0, BEST_FIXED: 1.075, "dense": 1.0}


def _summarise(group: pd.DataFrame, method: str, baseline: str = "") -> dict:
    """One table row: n seeds, mean test accuracy, its bootstrap interval, mean validation accuracy."""
    test = group["test_accuracy"].to_numpy(dtype=float)
    low, high, _ = bootstrap_interval(test)
    first = group.iloc[0]
    return {"allocation": first["pruning"], "sparsity": float(first["sparsity"]), "method": method,
            "baseline": baseline, "n": len(test), "seeds": " ".join(str(int(s)) for s in sorted(group["seed"])),
            **{k: round(v, 4) for k, v in (("mean", float(test.mean())), ("ci_low", low), ("ci_high", high),
                                           ("val_mean", float(group["val_accuracy"].astype(float).mean())))}}


def accuracy_vs_sparsity(summary: pd.DataFrame, preset: str | None = "sweep") -> pd.DataFrame:
    """Per (allocation, sparsity): MP, SAFS, the best fixed baseline (chosen on validation) and dense.

    Args:
        summary: one row per run and method (columns preset, sparsity, pruning, seed, method,
            test_accuracy, val_accuracy), as results/evidence/summary.csv.
        preset: keep the runs of this preset only (one budget per figure); None keeps every run.

    Returns:
        One row per (allocation, sparsity, method) present (columns TABLE_COLUMNS), sorted by allocation,
        sparsity and METHODS' order; "baseline" names the fixed baseline chosen for BEST_FIXED rows.
    """
    missing = {"preset", "sparsity", "pruning", "seed", "method", "test_accuracy", "val_accuracy"} - set(summary)
    if missing:
        raise ValueError(f"the summary lacks the columns {sorted(missing)}")
    df = summary if preset is None else summary[summary["preset"] == preset]
    if df.empty:
        raise ValueError(f"no runs of preset {preset!r} in the summary; presets there: "
                         f"{', '.join(sorted(map(str, summary['preset'].unique())))}")
    rows = []
    for (_, _), setting in df.groupby(["pruning", "sparsity"], sort=False):
        by_method = dict(tuple(setting.groupby("method")))
        for method in ("magnitude_pruning", "safs"):
            if method in by_method:
                rows.append(_summarise(by_method[method], method))
        fixed = {name: by_method[name] for name in FIXED_BASELINES if name in by_method}
        if fixed:  # chosen on mean validation accuracy; ties go to the first of FIXED_BASELINES
            best = max(fixed, key=lambda name: (fixed[name]["val_accuracy"].astype(float).mean(),
                                                -FIXED_BASELINES.index(name)))
            rows.append(_summarise(fixed[best], BEST_FIXED, best))
        if "dense" in by_method:
            rows.append(_summarise(by_method["dense"], "dense"))
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    order = {a: i for i, a in enumerate(ALLOCATIONS)}
    table["_a"] = table["allocation"].map(lambda a: (order.get(a, len(order)), a))
    table["_m"] = table["method"].map(METHODS.index)
    return table.sort_values(["_a", "sparsity", "_m"]).drop(columns=["_a", "_m"]).reset_index(drop=True)


def plot_accuracy_vs_sparsity(table: pd.DataFrame, title: str | None = None,
                              path: str | os.PathLike | None = None) -> Figure:
    """The table of `accuracy_vs_sparsity` as one panel per allocation: mean test accuracy with its interval.

    x is the density (1 - sparsity) on a log axis, reversed and labelled in sparsity, so the steps
    90 -> 95 -> 98 -> 99 -> 99.5% are about evenly spaced and every marker lies inside the axes; the
    methods are drawn slightly apart at each sparsity (x times DODGE[method]).

    Returns:
        The figure; each panel's title is its allocation and each method is one line (label: LABELS).
    """
    if table.empty:
        raise ValueError("nothing to plot: the accuracy-versus-sparsity table is empty")
    order = {a: i for i, a in enumerate(ALLOCATIONS)}
    allocations = sorted(table["allocation"].unique(), key=lambda a: (order.get(a, len(order)), a))
    fig, axes = plt.subplots(1, len(allocations), figsize=(3.6 * len(allocations) + 1.2, 3.8), sharey=True,
                             squeeze=False)
    density = 1.0 - table["sparsity"].to_numpy(dtype=float)
    low, high = density.min() / 1.6, density.max() * 1.6
    for ax, allocation in zip(axes[0], allocations):
        part = table[table["allocation"] == allocation]
        for method in METHODS:
            rows = part[part["method"] == method].sort_values("sparsity")
            if rows.empty:
                continue
            color, marker = STYLE[method]
            x = (1.0 - rows["sparsity"].to_numpy(dtype=float)) * DODGE[method]
            y = rows["mean"].to_numpy(dtype=float)
            err = np.vstack([y - rows["ci_low"].to_numpy(dtype=float), rows["ci_high"].to_numpy(dtype=float) - y])
            ax.errorbar(x, y, yerr=np.nan_to_num(err), color=color, marker=marker, capsize=3, lw=1.4,
                        markersize=12 if marker == "_" else 6, ls="--" if method == "dense" else "-",
                        label=LABELS[method])
        ax.set_xscale("log")
        ax.set_xlim(high, low)  # reversed: sparsity grows to the right
        ticks = sorted(set(1.0 - part["sparsity"].astype(float)))
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{100 * (1 - t):g}%" for t in ticks], fontsize=8)
        n = part.groupby("sparsity")["n"].max()
        ax.set_title(f"{allocation} (seeds per point: {n.min()}" + (f"-{n.max()}" if n.max() != n.min() else "")
                     + ")", fontsize=9)
        ax.set_xlabel("sparsity (log of density)")
        ax.grid(alpha=0.3)
    handles = {}
    for ax in axes[0]:
        handles.update(zip(*ax.get_legend_handles_labels()[::-1]))
    labels = [LABELS[m] for m in METHODS if LABELS[m] in handles]
    axes[0][-1].legend([handles[lab] for lab in labels], labels, frameon=False, fontsize=8, loc="upper left",
                       bbox_to_anchor=(1.02, 1.0))
    axes[0][0].set_ylabel("test accuracy (%), mean and 95% interval")
    axes[0][0].set_ylim(0, 102)
    fig.suptitle(title or "LeNet-5 / MNIST: accuracy against sparsity per allocation (bootstrap 95% interval of the "
                 "mean over seeds)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def write_accuracy_vs_sparsity(summary: pd.DataFrame, csv_path: str | os.PathLike, png_path: str | os.PathLike,
                               preset: str | None = "sweep") -> tuple[pd.DataFrame, Figure]:
    """`accuracy_vs_sparsity` of `summary` saved as CSV, and its figure saved as PNG; both returned."""
    table = accuracy_vs_sparsity(summary, preset)
    table.to_csv(csv_path, index=False)
    return table, plot_accuracy_vs_sparsity(table, path=png_path)


SWEEP_POINT_COLUMNS = ["allocation", "sparsity", "n", "mp", "safs", "best_fixed", "baseline", "safs_mp",
                       "safs_mp_low", "safs_mp_high", "safs_mp_wins", "safs_fixed", "safs_fixed_low",
                       "safs_fixed_high", "safs_fixed_wins"]


def _paired_rows(summary: pd.DataFrame, allocation: str, sparsity: float, method: str, reference: str,
                 seeds: set[int], preset: str | None) -> dict | None:
    """stats.paired of method - reference (test accuracy) over the seeds both have at one point, or None."""
    df = summary if preset is None else summary[summary["preset"] == preset]
    df = df[(df["pruning"] == allocation) & (df["sparsity"].astype(float) == sparsity)
            & df["seed"].astype(int).isin(seeds)]
    acc = df.pivot_table(index="seed", columns="method", values="test_accuracy")
    if method not in acc or reference not in acc:
        return None
    both = acc[[method, reference]].dropna()
    return paired(both[method].to_numpy(), both[reference].to_numpy()) if len(both) else None


def sweep_points(table: pd.DataFrame, summary: pd.DataFrame, preset: str | None = "sweep") -> pd.DataFrame:
    """One row per (allocation, sparsity) of `accuracy_vs_sparsity`'s table, with the paired differences.

    Args:
        table: `accuracy_vs_sparsity(summary, preset)` (or the CSV it writes).
        summary: the per-run table it was made from (results/evidence/summary.csv).
        preset: the same preset filter as the table's.

    Returns:
        Columns SWEEP_POINT_COLUMNS: n (seeds), the mean test accuracy of MP, SAFS and the best fixed
        operator (named in "baseline", chosen on validation), and SAFS - MP and SAFS - best fixed paired
        over the same seeds (`stats.paired`: mean, bootstrap 95% interval, wins); NaN where a method is absent.
    """
    rows = []
    for (allocation, sparsity), point in table.groupby(["allocation", "sparsity"], sort=False):
        point = point.set_index("method")
        mean = lambda m: float(point.loc[m, "mean"]) if m in point.index else math.nan  # noqa: E731
        row = {"allocation": allocation, "sparsity": float(sparsity), "n": int(point["n"].max()),
               "mp": mean("magnitude_pruning"), "safs": mean("safs"), "best_fixed": mean(BEST_FIXED),
               "baseline": point.loc[BEST_FIXED, "baseline"] if BEST_FIXED in point.index else ""}
        seeds = {int(s) for s in " ".join(point["seeds"].astype(str)).split()}
        for key, reference in (("safs_mp", "magnitude_pruning"), ("safs_fixed", row["baseline"])):
            r = _paired_rows(summary, allocation, float(sparsity), "safs", reference, seeds, preset) if reference else None
            row.update({key: r["mean_diff"] if r else math.nan, f"{key}_low": r["ci_low"] if r else math.nan,
                        f"{key}_high": r["ci_high"] if r else math.nan, f"{key}_wins": f"{r['wins']}/{r['n']}" if r else ""})
        rows.append(row)
    return pd.DataFrame(rows, columns=SWEEP_POINT_COLUMNS)


def format_sweep(points: pd.DataFrame) -> pd.DataFrame:
    """`sweep_points` as strings for reading: means, and each paired difference as "mean [low, high] (wins)"."""
    def diff(r, key: str) -> str:
        if pd.isna(r[key]):
            return ""
        return f"{r[key]:+.2f} [{r[key + '_low']:+.2f}, {r[key + '_high']:+.2f}] ({r[key + '_wins']})"

    return pd.DataFrame([{"allocation": r["allocation"], "sparsity": f"{100 * r['sparsity']:g}%", "n": r["n"],
                          "MP": f"{r['mp']:.2f}", "SAFS": f"{r['safs']:.2f}",
                          "best fixed": f"{r['best_fixed']:.2f} ({r['baseline']})" if r["baseline"] else "",
                          "SAFS - MP [95% CI] (wins)": diff(r, "safs_mp"),
                          "SAFS - best fixed [95% CI] (wins)": diff(r, "safs_fixed")} for _, r in points.iterrows()])


def _span(values: pd.Series, sparsities: pd.Series) -> str:
    """"from A at s1 to B at s2" over the first and last sparsity of a sorted series."""
    return (f"from {values.iloc[0]:.2f}% at {100 * sparsities.iloc[0]:g}% to {values.iloc[-1]:.2f}% at "
            f"{100 * sparsities.iloc[-1]:g}%")


def read_sweep(points: pd.DataFrame, min_n: int = 10) -> str:
    """A Markdown reading of `sweep_points`, one bullet per allocation, every number from the table.

    Per allocation: how MP and SAFS move from the lowest to the highest sparsity, SAFS - MP at each
    sparsity (paired mean and interval), where it is largest, at how many sparsities its interval lies above 0,
    and SAFS against the best fixed operator. Points with fewer than `min_n` seeds are described, not judged: the reading says
    how many there are.
    """
    if points.empty:
        raise ValueError("nothing to read: the sweep has no points")
    lines = []
    for allocation, part in points.groupby("allocation", sort=False):
        part = part.sort_values("sparsity")
        if len(part) < 2:
            lines.append(f"- **{allocation}:** one sparsity only ({100 * part['sparsity'].iloc[0]:g}%), no curve yet.")
            continue
        gains = ", ".join(f"{r.safs_mp:+.2f} [{r.safs_mp_low:+.2f}, {r.safs_mp_high:+.2f}] at {100 * r.sparsity:g}%"
                          for r in part.itertuples())
        above = int((part["safs_mp_low"] > 0).sum())
        top = part.loc[part["safs_mp"].idxmax()]
        fixed = part.dropna(subset=["safs_fixed"])
        fixed_above = int((fixed["safs_fixed_low"] > 0).sum())
        fixed_below = int((fixed["safs_fixed_high"] < 0).sum())
        lines.append(f"- **{allocation}:** magnitude pruning goes {_span(part['mp'], part['sparsity'])}, SAFS "
                     f"{_span(part['safs'], part['sparsity'])}. SAFS - MP: {gains}; largest at {100 * top['sparsity']:g}% "
                     f"({top['safs_mp']:+.2f}); the interval lies above 0 at {above} of {len(part)} sparsities. SAFS - best fixed operator: interval above 0 at "
                     f"{fixed_above}, below 0 at {fixed_below}, containing 0 at {len(fixed) - fixed_above - fixed_below} "
                     f"of {len(fixed)}.")
    few = points[points["n"] < min_n]
    lines.append(f"\n{len(few)} of {len(points)} points have fewer than {min_n} seeds (n = "
                 f"{', '.join(str(n) for n in sorted(set(few['n'])))}): their intervals describe those seeds and give "
                 "no verdict." if len(few) else f"\nEvery point has at least {min_n} seeds.")
    return "\n".join(lines)
