"""The evidence study's collected runs (results/evidence), read back by setting for the paired statistics.

`tools/run_evidence.py` runs SAFS with its baselines on many seeds per setting (allocation, sparsity, preset);
`tools/collect_evidence.py` copies each finished run's small files to results/evidence/runs/<name>/
(results.json, and the mechanism it measured: mechanism.csv, collapse.csv, ceiling.json). This module reads
those folders only, without data or training, so notebook 07 and the README's numbers come from the same files
on every machine:

- `load_evidence`: every run's results.json, grouped by `Setting`, one dict per seed: the
  {setting: {seed: results.json}} shape the kit's statistics take per setting (`stats.comparison_table`,
  after `paired_accuracies` puts the baselines beside Table 1's methods);
- `evidence_comparisons`: every setting's paired comparisons in one table;
- `evidence_mechanism`: one row per run: whether magnitude pruning collapsed to the majority class, the units
  that are both connected and alive under ReLU and under the found operators, the connectivity ceiling;
- `headline_table`: the comparisons a reading leads with (`HEADLINE`), every setting, as one Markdown table;
- `interval_position` and `verdict`: the words a reading uses for an interval, with no verdict below
  `MIN_SEEDS_FOR_VERDICT` seeds.

Example:
    >>> groups = load_evidence()                       # doctest: +SKIP
    >>> {s.label: sorted(runs) for s, runs in groups.items()}  # doctest: +SKIP
    {'99% layerwise (cpu)': [0, 1], '99% global (sweep)': [0, 1, 2], ...}
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import pandas as pd

from ..method.pruning import PRUNING_METHODS
from ..paths import results_dir
from ..run.results import LABELS, accuracies
from .stats import comparison_table

# Below this many seeds a bootstrap interval under-covers (it cannot leave the range of the differences), so a
# reading states the interval but draws no conclusion from it (as benchmarks/table1_target.py does).
MIN_SEEDS_FOR_VERDICT = 10
PRESET_ORDER = ("cpu", "sweep")  # the paper's setting runs the cpu preset; the other allocations the cheaper sweep
# The comparisons a reading leads with: SAFS against MP, the best uniform operator and Swish; stage 1 against MP
# and the best uniform operator (both retrained alike); SAFS against the best uniform operator given stage 2 too
# (uniform_safs, both with stage 2: "not run" in a setting whose runs lack that baseline).
HEADLINE = (("safs", "magnitude_pruning"), ("safs", "uniform"), ("safs", "swish"), ("stage1", "magnitude_pruning"),
            ("stage1", "uniform"), ("safs", "uniform_safs"))
COLLAPSE_TOL = 0.005  # points: an accuracy this close to the majority class's share is a one-class network


@dataclass(frozen=True)
class Setting:
    """What a group of evidence runs shares: everything of the run but the seed."""

    sparsity: float
    pruning: str
    preset: str

    @property
    def label(self) -> str:
        """E.g. "99% layerwise (cpu)"."""
        return f"{100 * self.sparsity:g}% {self.pruning} ({self.preset})"

    def sort_key(self) -> tuple:
        """Sparsity, then the allocation's place in `pruning.PRUNING_METHODS`, then the preset (cpu first)."""
        order = lambda seq, x: seq.index(x) if x in seq else len(seq)  # noqa: E731
        return self.sparsity, order(PRUNING_METHODS, self.pruning), order(PRESET_ORDER, self.preset), self.preset


def evidence_dir(root: str | os.PathLike | None = None) -> Path:
    """results/evidence (or <root>/evidence: `root` as for `paths.results_dir`)."""
    return results_dir(root) / "evidence"


def _run_folders(root: str | os.PathLike | None) -> list[Path]:
    runs = evidence_dir(root) / "runs"
    folders = sorted(p for p in runs.glob("*") if (p / "results.json").is_file()) if runs.is_dir() else []
    if not folders:
        raise ValueError(f"no evidence runs under {runs} (folders with a results.json); "
                         "collect them with `python tools/collect_evidence.py`")
    return folders


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable JSON file ({err.__class__.__name__})") from None


def setting_of(res: Mapping) -> Setting:
    """The setting of one results.json dict (its config's sparsity, pruning and preset)."""
    c = res["config"]
    return Setting(float(c["sparsity"]), str(c["pruning"]), str(c["preset"]))


def load_evidence(root: str | os.PathLike | None = None) -> dict[Setting, dict[int, dict]]:
    """Every collected evidence run's results.json, grouped by setting and keyed by seed.

    Args:
        root: the results folder (default $SAFS_RESULTS, else <repo>/results); runs are read from
            <root>/evidence/runs/*/results.json.

    Returns:
        {Setting: {seed: results.json dict}}, settings in `Setting.sort_key` order, seeds ascending.

    Raises:
        ValueError: no run folder, an unreadable results.json, or two runs of one setting with the same seed.
    """
    groups: dict[Setting, dict[int, dict]] = {}
    for folder in _run_folders(root):
        res = _read_json(folder / "results.json")
        setting, seed = setting_of(res), int(res["config"]["seed"])
        if seed in groups.setdefault(setting, {}):
            raise ValueError(f"{folder.name}: seed {seed} of {setting.label} appears twice; keep one run per seed")
        groups[setting][seed] = res
    return {s: dict(sorted(groups[s].items())) for s in sorted(groups, key=Setting.sort_key)}


def paired_accuracies(results: Mapping[int, Mapping]) -> dict[int, dict]:
    """{seed: {"test_accuracy": ..., "val_accuracy": ...}} with each run's baselines beside Table 1's methods.

    The shape `stats.comparison_table` takes (its `key` picks test or validation accuracy).
    """
    out = {}
    for seed, res in results.items():
        val = {**res.get("val_accuracy", {}),
               **{n: b.get("val_accuracy") for n, b in res.get("baselines", {}).items()}}
        out[seed] = {"test_accuracy": accuracies(res), "val_accuracy": {k: v for k, v in val.items() if v is not None}}
    return out


def evidence_comparisons(groups: Mapping[Setting, Mapping[int, Mapping]], **kwargs) -> pd.DataFrame:
    """Every setting's paired comparisons (`stats.comparison_table` on `paired_accuracies`), one table.

    Args:
        groups: `load_evidence`'s dict.
        kwargs: passed to `comparison_table` (reference, focus, key, tol, n_resamples, seed).

    Returns:
        comparison_table's columns, preceded by setting (the label), sparsity, pruning and preset.
    """
    frames = []
    for setting, results in groups.items():
        table = comparison_table(paired_accuracies(results), **kwargs)
        frames.append(table.assign(setting=setting.label, sparsity=setting.sparsity, pruning=setting.pruning,
                                   preset=setting.preset))
    if not frames:
        raise ValueError("no evidence settings to compare")
    out = pd.concat(frames, ignore_index=True)
    first = ["setting", "sparsity", "pruning", "preset"]
    return out[first + [c for c in out.columns if c not in first]]


def evidence_mechanism(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per collected run with the mechanism `tools/collect_evidence.py` measured.

    Columns: setting, sparsity, pruning, preset, seed, magnitude_pruning and safs (test accuracy, %), safs_gain,
    majority (the largest test class's share, %), mp_collapsed (magnitude pruning predicts one class on the test
    split), collapsed (every method that did, comma-separated: the collapse tools/collect_evidence.py recorded
    for Table 1's methods, and a baseline's test accuracy within COLLAPSE_TOL of the majority share), live_connected_relu and live_connected_found
    (units connected to the input and the output and alive, summed over layers, under ReLU and under the found
    operators), ceiling (the test accuracy the mask allows, %). Runs without mechanism.csv are left out.
    """
    rows = []
    for folder in _run_folders(root):
        files = [folder / f for f in ("mechanism.csv", "collapse.csv", "ceiling.json")]
        if not all(f.is_file() for f in files):
            continue
        res = _read_json(folder / "results.json")
        setting, acc = setting_of(res), accuracies(res)
        mech, coll = pd.read_csv(files[0]), pd.read_csv(files[1])
        test = coll[coll["split"] == "test"].set_index("network")
        live = mech.groupby("network")["live_connected"].sum(min_count=1)
        majority = float(test["majority_share"].iloc[0])
        collapsed = [m for m, a in acc.items() if (bool(test.loc[m, "collapsed"]) if m in test.index
                                                    else abs(a - majority) <= COLLAPSE_TOL)]
        rows.append({"setting": setting.label, "sparsity": setting.sparsity, "pruning": setting.pruning,
                     "preset": setting.preset, "seed": int(res["config"]["seed"]),
                     "magnitude_pruning": acc["magnitude_pruning"], "safs": acc["safs"],
                     "safs_gain": acc["safs"] - acc["magnitude_pruning"],
                     "majority": majority, "mp_collapsed": "magnitude_pruning" in collapsed,
                     "collapsed": ", ".join(collapsed),
                     "live_connected_relu": int(live.get("relu", 0)), "live_connected_found": int(live.get("found", 0)),
                     "ceiling": float(_read_json(files[2])["test_ceiling"])})
    if not rows:
        raise ValueError(f"no evidence run under {evidence_dir(root) / 'runs'} has its mechanism files "
                         "(mechanism.csv, collapse.csv, ceiling.json); `python tools/collect_evidence.py` writes them")
    rows.sort(key=lambda r: (Setting(r["sparsity"], r["pruning"], r["preset"]).sort_key(), r["seed"]))
    return pd.DataFrame(rows)


def headline_table(comparisons: pd.DataFrame, pairs=HEADLINE, labels: Mapping[str, str] | None = None) -> str:
    """The chosen comparisons of every setting as one Markdown table: n, mean difference, the bootstrap 95%
    interval and where it lies (`interval_position`), the Wilcoxon p-value and wins/ties/losses.

    Args:
        comparisons: `evidence_comparisons`' table.
        pairs: (method, reference) pairs, in the order of the rows within a setting; a pair a setting lacks is
            shown as "not run".
        labels: display names of methods (default: results.LABELS and each baseline's label).

    Returns:
        The table as a string, one row per setting and pair.
    """
    from ..run.baselines import BASELINES

    names = {**LABELS, **{n: b.label for n, b in BASELINES.items()}, **(labels or {})}
    rows = comparisons.set_index(["setting", "method", "reference"])
    lines = ["| setting | comparison | n | mean diff | 95% interval (bootstrap) | interval | Wilcoxon p | W/T/L |",
             "|---" * 8 + "|"]
    for setting in dict.fromkeys(comparisons["setting"]):
        for method, ref in pairs:
            what = f"{names.get(method, method)} - {names.get(ref, ref)}"
            if (setting, method, ref) not in rows.index:
                lines.append(f"| {setting} | {what} | 0 | not run | | | | |")
                continue
            r = rows.loc[(setting, method, ref)]
            lines.append(f"| {setting} | {what} | {r['n']} | {r['mean_diff']:+.2f} | [{r['ci_low']:+.2f}, "
                         f"{r['ci_high']:+.2f}] | {interval_position(r['ci_low'], r['ci_high'])} | "
                         f"{r['p_wilcoxon']:.3g} | {r['wins']}/{r['ties']}/{r['losses']} |")
    return "\n".join(lines) + "\n"


def interval_position(low: float, high: float) -> str:
    """Where an interval lies relative to 0: "above 0", "below 0", "contains 0", or "undefined" (NaN bounds)."""
    if math.isnan(low) or math.isnan(high):
        return "undefined"
    return "above 0" if low > 0 else "below 0" if high < 0 else "contains 0"


def verdict(n: int, low: float, high: float, method: str, reference: str, where: str,
            min_n: int = MIN_SEEDS_FOR_VERDICT) -> str:
    """The conclusion a reading may draw from the interval of method - reference over n seeds.

    Args:
        n: seeds compared.
        low, high: the 95% interval of the mean difference.
        method, reference: their names in running text ("SAFS", "the best uniform operator").
        where: the setting in running text ("99% erk (sweep)").
        min_n: below this many seeds, no verdict.

    Returns:
        One sentence, its first letter capitalised: "No verdict ..." below min_n; else "<method> beats <reference>
        at <where>" (interval above 0), "<method> does worse than ..." (below 0) or "<method> does not beat
        <reference> at <where>" (contains 0).

    Example:
        >>> verdict(12, 0.4, 3.1, "SAFS", "magnitude pruning", "99% erk (sweep)")
        'SAFS beats magnitude pruning at 99% erk (sweep) (n = 12, interval above 0).'
        >>> verdict(3, 0.4, 3.1, "SAFS", "magnitude pruning", "99% erk (sweep)")
        'No verdict on SAFS against magnitude pruning at 99% erk (sweep): n = 3 < 10 seeds.'
    """
    position = interval_position(low, high)
    words = {"above 0": f"{method} beats {reference}", "below 0": f"{method} does worse than {reference}",
             "contains 0": f"{method} does not beat {reference}"}.get(position)
    if n < min_n:
        sentence = f"no verdict on {method} against {reference} at {where}: n = {n} < {min_n} seeds."
    elif words is None:
        sentence = f"no verdict on {method} against {reference} at {where}: the interval is undefined."
    else:
        sentence = f"{words} at {where} (n = {n}, interval {position})."
    return sentence[:1].upper() + sentence[1:]
