"""Table 1: its columns, the SAFS gain, the paper's row, and its tables for one run or several seeds.

The CLI, `reproduce`, `figures`, the sweep and notebook 07 all read Table 1
through this module, so a column, a header or the gain is defined once.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import pandas as pd

# Table 1's five methods (the keys of results.json's "test_accuracy") and the gain over the baseline.
METHODS = ("dense", "magnitude_pruning", "stage1", "stage2", "safs")
COLUMNS = [*METHODS, "safs_gain"]
HEADERS = ["Dense", "Magnitude pruning", "Stage 1", "Stage 2", "SAFS", "SAFS gain"]
LABELS = {"dense": "dense", "magnitude_pruning": "magnitude pruning", "stage1": "stage 1", "stage2": "stage 2",
          "safs": "SAFS", "safs_gain": "SAFS gain"}  # in running text and figure legends
PAPER_SETTING = (0.99, "layerwise")  # (sparsity, pruning) of the paper's Table 1

# The paper's Table 1 (99% layer-wise sparsity): shown next to ours when the setting matches.
PAPER_TABLE1 = {
    ("lenet5", "mnist"): {"dense": 98.49, "magnitude_pruning": 46.69, "stage1": 61.63, "stage2": 60.20,
                          "safs": 62.22},
    ("vgg16", "cifar10"): {"dense": 86.76, "magnitude_pruning": 70.32, "stage1": 78.11, "stage2": 80.97,
                           "safs": 79.20},
    ("resnet18", "cifar10"): {"dense": 89.86, "magnitude_pruning": 77.55, "stage1": 79.34, "stage2": 82.74,
                              "safs": 83.88},
    ("efficientnet_b0", "imagenet16"): {"dense": 18.41, "magnitude_pruning": 10.96, "stage1": 11.84,
                                        "stage2": 11.70, "safs": 12.50},
}


def accuracies(res: Mapping) -> dict[str, float]:
    """Every method's test accuracy in one run's results.json: Table 1's five, then each baseline it computed."""
    return {**res["test_accuracy"], **{name: b["test_accuracy"] for name, b in res.get("baselines", {}).items()}}


def baseline_names(results: Mapping[int, Mapping]) -> list[str]:
    """The baselines every one of these runs computed, in registry order."""
    from .baselines import BASELINES

    return [n for n in BASELINES if results and all(n in r.get("baselines", {}) for r in results.values())]


def gain(acc: Mapping[str, float]) -> float:
    """The SAFS gain: SAFS minus magnitude pruning, in points."""
    return acc["safs"] - acc["magnitude_pruning"]


def with_gain(acc: Mapping[str, float]) -> dict[str, float]:
    """The five accuracies plus "safs_gain" (the keys of COLUMNS)."""
    return {**acc, "safs_gain": gain(acc)}


def paper_row(config: Mapping | object) -> dict[str, float] | None:
    """The paper's Table 1 row (with the gain) when `config` (a results.json "config" or a SAFSConfig) is its
    setting, else None."""
    get = config.get if isinstance(config, Mapping) else lambda k: getattr(config, k)
    if (get("sparsity"), get("pruning")) != PAPER_SETTING:
        return None
    row = PAPER_TABLE1.get((get("model"), get("dataset")))
    return with_gain(row) if row else None


def format_run(res: dict) -> str:
    """Table 1's five numbers and the gain of one run, as plain text, next to the paper's when the setting is
    its; then the operators found."""
    c = res["config"]
    lines = [f"{c['model']} / {c['dataset']}, {100 * c['sparsity']:g}% {c['pruning']} sparsity, "
             f"preset {c['preset']}, seed {c['seed']} (test accuracy, %)",
             f"{'':<12}" + "".join(f"{h:>19}" for h in HEADERS)]
    fmt = lambda k, v: f"{v:+19.2f}" if k == "safs_gain" else f"{v:19.2f}"  # noqa: E731
    rows = {"this run": with_gain(res["test_accuracy"]), "paper": paper_row(c)}
    lines += [f"{name:<12}" + "".join(fmt(k, row[k]) for k in COLUMNS) for name, row in rows.items() if row]
    lines.append("operators found: " + ", ".join(f"{k}={v}" for k, v in res["activations"]["safs"].items()))
    if res.get("baselines"):
        from .baselines import BASELINES

        how = ", retrained as stage 1 unless '+ stage 2'" if any(BASELINES[n].stage2 for n in res["baselines"]) \
            else ", retrained as stage 1"
        lines.append(f"baselines{how} (test accuracy, %; SAFS minus baseline): " + "; ".join(
            f"{BASELINES[n].label} {b['test_accuracy']:.2f} ({res['test_accuracy']['safs'] - b['test_accuracy']:+.2f})"
            for n, b in res["baselines"].items()))
    return "\n".join(lines)


def table1(results: dict[int, dict]) -> pd.DataFrame:
    """Table 1 from finished runs' results.json dicts (seed -> dict), all of one setting.

    Returns:
        One row per seed ("seed S"), then "mean", "std" and, when the setting is the
        paper's (99% layer-wise, a Table 1 model), "paper"; columns COLUMNS, then one per
        baseline that every run computed (`baseline_names`), plus "seconds".
    """
    if not results:
        raise ValueError("no runs to tabulate")
    rows, extra = {}, baseline_names(results)
    for seed, res in results.items():
        rows[f"seed {seed}"] = {**with_gain(res["test_accuracy"]), **{n: accuracies(res)[n] for n in extra},
                                "seconds": res["seconds"]["total"]}
    table = pd.DataFrame.from_dict(rows, orient="index")[COLUMNS + extra + ["seconds"]]
    summary = {"mean": table.mean(), "std": table.std(ddof=1) if len(table) > 1 else table.mean() * float("nan")}
    table = pd.concat([table, pd.DataFrame(summary).T])
    paper = paper_row(next(iter(results.values()))["config"])
    if paper:
        table.loc["paper"] = paper
    return table


def to_markdown(table: pd.DataFrame, cfg: object, n_seeds: int) -> str:
    """Table 1 as a markdown table: mean ± std over seeds next to the paper's row."""
    c = cfg if isinstance(cfg, Mapping) else vars(cfg)  # a SAFSConfig or a results.json "config"
    lines = [f"{c['model']} / {c['dataset']}, {100 * c['sparsity']:g}% {c['pruning']} sparsity, preset "
             f"`{c['preset']}`, {n_seeds} seed(s); test accuracy (%)", "",
             "| | " + " | ".join(HEADERS) + " |", "|---" * (len(HEADERS) + 1) + "|"]
    row = lambda name: f"| {name} | " + " | ".join(f"{table.loc[name, c]:.2f}" for c in COLUMNS) + " |"  # noqa: E731
    lines += [row(name) for name in table.index if name.startswith("seed")]
    mean, std = table.loc["mean"], table.loc["std"]
    lines.append("| **mean ± std** | " + " | ".join(f"**{mean[c]:.2f} ± {std[c]:.2f}**" for c in COLUMNS) + " |")
    if "paper" in table.index:
        lines.append(row("paper"))
    return "\n".join(lines) + "\n"


def format_summary(table: pd.DataFrame) -> str:
    """A compact plain-text table for the terminal."""
    return table[COLUMNS].to_string(float_format=lambda v: f"{v:.2f}")


def load_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a written table1.csv back (index: seed rows, mean, std, paper)."""
    return pd.read_csv(Path(path), index_col="row")


def table1_frame(results: dict[int, dict]) -> pd.DataFrame:
    """Tidy Table 1: one row per seed and column (COLUMNS), test accuracy in %."""
    rows = []
    for seed, res in results.items():
        acc = with_gain(res["test_accuracy"])
        rows += [{"seed": seed, "column": c, "test_accuracy": acc[c]} for c in COLUMNS]
    return pd.DataFrame(rows)


def alpha_beta_frame(results: dict[int, dict]) -> pd.DataFrame:
    """Tidy learned scales: one row per seed, stage (stage 2 = ReLU, SAFS), layer; columns alpha, beta, op."""
    rows = []
    for seed, res in results.items():
        for stage, label in (("stage2", "stage 2 (relu)"), ("safs", "SAFS")):
            ops = res["activations"]["safs"] if stage == "safs" else {}
            for layer, (alpha, beta) in res["alpha_beta"][stage].items():
                rows.append({"seed": seed, "stage": label, "layer": layer, "alpha": alpha, "beta": beta,
                             "op": ops.get(layer, "relu")})
    return pd.DataFrame(rows)
