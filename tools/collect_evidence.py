"""Collect the evidence study's finished runs into results/evidence/ and write its tables and figures.

    SAFS_DATA=/path/to/data SAFS_RUNS=/path/to/runs python tools/collect_evidence.py

For every finished run of `tools/run_evidence.py` (LeNet-5 / MNIST, this kit version) whose results.json is not
collected yet or has changed since (e.g. a baseline added with `run_evidence.py --baselines`) it copies the
small artefacts (results.json, config.json, stage and baseline records, search logs) into
results/evidence/runs/<name>/, saves the pruned network every stage starts from (kept weights only,
`shipped.save_network`), and measures the mechanism (`mechanism.run_mechanism`: connected x alive per
layer under ReLU and under the found operators; which methods collapsed to the majority class) and the
connectivity ceiling. Then it writes, from the collected folders only (so a later session adds runs and
reruns it):

- results/evidence/summary.csv: one row per run and method (test and validation accuracy, seconds);
- results/evidence/runs.csv: one row per run (gain, ceiling, MP collapsed, live connected units);
- results/evidence/comparisons.md: per setting, the paired comparisons (`stats.comparison_table`);
- results/evidence/headline.md: per setting at 99% (the README's table), the means and SAFS against MP, the best
  uniform operator and Swish, stage 1 against the best uniform operator (both retrained the same way: the searches at equal footing), and SAFS
  against the best uniform operator given stage 2 too (`uniform_safs`, both with stage 2; "not run" in a setting
  with fewer than two seeds of it);
- figures/evidence_gain.png: each 99% seed's SAFS gain against MP's accuracy, one marker per allocation;
- results/evidence/accuracy_vs_sparsity.csv and figures/accuracy_vs_sparsity.png (docs/evidence.md's figure): per
  allocation and sparsity of the `sweep` preset's runs (the `sweep` and `allocations` plans), magnitude
  pruning, SAFS, the best fixed baseline (uniform or swish, chosen on mean validation accuracy) and the dense
  network: seeds, mean test accuracy and its bootstrap 95% interval (`safs_lite.study.evidence`);
- results/evidence/sweep.md: the same points with SAFS - MP and SAFS - best fixed operator paired over seeds,
  and their reading (`evidence.sweep_points`, `evidence.read_sweep`).

`--no-collect` rewrites the tables and figures from results/evidence/runs alone (no run folder is read).

Nothing is dropped silently. A run made on other data than the data found now (its data signature: the offline
subset, say, or another dataset's files) is refused in one line. A collected folder remembers the run folder it came
from (`source.json`: folder name with its key hash, data signature); a run with another key (another thread count,
other data) never overwrites it (refused in one line; move the old folder away to replace it). Then
results/evidence/status.md lists, per setting of `tools/run_evidence.py`'s plans, the seeds collected, the seeds
that failed (results/evidence/failed/, with their errors) and the seeds missing.
"""
from __future__ import annotations

import argparse
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from safs_lite.data.builtin import load_data
from safs_lite.method.pruning import accuracy_ceiling, clone, prune_model
from safs_lite.paths import figures_dir, results_dir, runs_dir
from safs_lite.run.baselines import BASELINES
from safs_lite.run.config import TRAIN_DEFAULTS
from safs_lite.run.folders import load_json, save_json
from safs_lite.run.pipeline import train_dense
from safs_lite.run.results import LABELS, accuracies
from safs_lite.study.evidence import format_sweep, read_sweep, sweep_points, write_accuracy_vs_sparsity
from safs_lite.study.plots import plot_gain_vs_baseline, save_figure
from safs_lite.study.shipped import save_network
from safs_lite.study.stats import comparison_table, format_comparison
from safs_lite.teach.mechanism import run_mechanism
from safs_lite.version import KIT_VERSION

PATTERNS = ("config.json", "results.json", "stage1.json", "stage2.json", "safs.json", "stage1_search.csv",
            "baseline_*.json", "baseline_*_search.csv")
METHOD_LABELS = {**LABELS, **{name: b.label for name, b in BASELINES.items()}}
HEADLINE_SPARSITY = 0.99  # the headline, its table and the gain figure are the 99% study; the sweep has its own file


class Refused(ValueError):
    """A run that must not be collected (other data, or another key for an already collected setting)."""


def finished(runs: Path) -> list[Path]:
    """Finished LeNet-5 run folders (any dataset) of this kit version."""
    out = []
    for folder in sorted(runs.glob("safs-lenet5-*")):
        if (folder / "results.json").exists() and load_json(folder / "results.json").get("kit") == KIT_VERSION:
            out.append(folder)
    return out


def collect(folder: Path, dest: Path) -> Path:
    """Copy one run's small files, save its start network, and measure its mechanism; return the copy."""
    res = load_json(folder / "results.json")
    cfg = res["config"]
    out = dest / folder.name.rsplit("-", 1)[0]
    data = load_data(cfg["dataset"], seed=cfg["seed"], quiet=True)
    made_on = res.get("data", {}).get("signature")
    if made_on != data.signature:
        raise Refused(f"{folder.name}: made on data {made_on}, the data found is {data.signature}: not collected "
                      "(point SAFS_DATA at the run's data)")
    source = {"folder": folder.name, "data": made_on}
    if (out / "source.json").exists() and load_json(out / "source.json")["folder"] != folder.name:
        raise Refused(f"{folder.name}: {out.name} was collected from {load_json(out / 'source.json')['folder']} "
                      "(another key); not overwritten (move that folder away to replace it)")
    if (out / "results.json").exists() and load_json(out / "results.json") == res and (out / "mechanism.csv").exists():
        save_json(out / "source.json", source)
        return out  # collected before
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for pattern in PATTERNS:
        for path in sorted(folder.glob(pattern)):
            shutil.copy2(path, out / path.name)
    torch.set_num_threads(int(cfg["threads"]))  # the dense cache is keyed on the thread count it was made with
    save_json(out / "source.json", source)
    base = replace(TRAIN_DEFAULTS[cfg["model"]], seed=cfg["seed"])
    dense, _ = train_dense(cfg["model"], data, replace(base, epochs=cfg["budgets"]["dense_epochs"]), progress=False)
    pruned = prune_model(clone(dense), cfg["sparsity"], cfg["pruning"])
    save_network(pruned, out / "pruned.pt", cfg["model"], cfg["dataset"])
    table, collapsed = run_mechanism(out, data)
    table.to_csv(out / "mechanism.csv", index=False)
    collapsed.to_csv(out / "collapse.csv", index=False)
    save_json(out / "ceiling.json", {"test_ceiling": accuracy_ceiling(pruned, data.test.y)})
    return out


def status(dest: Path) -> str:
    """results/evidence/status.md: per setting of run_evidence's plans, the seeds collected, failed and missing."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_evidence", Path(__file__).with_name("run_evidence.py"))
    plans = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plans)
    failed = {}
    for path in sorted((dest.parent / "failed").glob("*.json")):
        rec = load_json(path)
        failed[rec["run"]] = rec["error"]
    lines = ["# The evidence study: which seeds are in, failed or missing", "",
             "Made by `python tools/collect_evidence.py`. Seeds 0-9 are the study's plan per setting; a failed "
             "run's error is in results/evidence/failed/<run>.json.", "",
             "| plan | setting | collected | failed | missing |", "|---|---|---|---|---|"]
    for plan, settings in plans.PLANS.items():
        dataset = plans.PLAN_DATASETS.get(plan, "mnist")
        for preset, sparsity, pruning in settings:
            names = {s: f"safs-lenet5-{dataset}-{sparsity:g}-{pruning}-{preset}-s{s}" for s in range(10)}
            have = [s for s, n in names.items() if (dest / n / "results.json").exists()]
            bad = [s for s, n in names.items() if n in failed and s not in have]
            gone = [s for s in names if s not in have and s not in bad]
            errors = "; ".join(f"s{s}: {failed[names[s]]}" for s in bad)
            lines.append(f"| {plan} | {dataset} {100 * sparsity:g}% {pruning} ({preset}) | {_seeds(have)} | "
                         f"{_seeds(bad)}{f' ({errors})' if errors else ''} | {_seeds(gone)} |")
    return "\n".join(lines) + "\n"


def _seeds(seeds: list[int]) -> str:
    return f"{len(seeds)}: " + ",".join(map(str, seeds)) if seeds else "0"


def run_row(out: Path) -> dict:
    """One run: setting, accuracies, gain, ceiling, whether MP collapsed, MP's live connected units."""
    res = load_json(out / "results.json")
    c, acc = res["config"], accuracies(res)
    mech = pd.read_csv(out / "mechanism.csv")
    relu = mech[mech["network"] == "relu"]
    collapse = pd.read_csv(out / "collapse.csv").set_index("network")
    return {"dataset": c["dataset"], "preset": c["preset"], "sparsity": c["sparsity"], "pruning": c["pruning"], "seed": c["seed"],
            **acc, "safs_gain": acc["safs"] - acc["magnitude_pruning"],
            "ceiling": load_json(out / "ceiling.json")["test_ceiling"],
            "mp_collapsed": bool(collapse.loc["magnitude_pruning", "collapsed"]),
            "mp_live_connected": int(relu["live_connected"].sum()),
            "minutes": res["seconds"]["total"] / 60, "run": out.name}


def sweep_markdown(points: pd.DataFrame) -> str:
    """results/evidence/sweep.md: one row per allocation and sparsity (`format_sweep`), then `read_sweep`'s reading."""
    table = format_sweep(points)
    rows = ["| " + " | ".join(table.columns) + " |", "|---" * len(table.columns) + "|"]
    rows += ["| " + " | ".join(map(str, r)) + " |" for r in table.itertuples(index=False)]
    return ("# Accuracy against sparsity: the evidence sweep (`sweep` preset)\n\nMade by "
            "`python tools/collect_evidence.py`. Test accuracy (%), means over seeds; differences paired by seed "
            "(mask), bootstrap 95% interval (`stats.paired`) and wins; the best fixed operator (uniform or swish) "
            "is chosen on validation accuracy.\n\n" + "\n".join(rows) + "\n\n" + read_sweep(points) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", default=None, help="runs folder (default $SAFS_RUNS)")
    p.add_argument("--no-collect", action="store_true", help="only rewrite the tables and figures from "
                   "results/evidence/runs")
    args = p.parse_args()
    dest = results_dir() / "evidence" / "runs"
    dest.mkdir(parents=True, exist_ok=True)
    refused = 0
    for folder in [] if args.no_collect else finished(runs_dir(args.runs)):
        try:
            print(f"collected {collect(folder, dest).name}", flush=True)
        except Refused as err:
            refused += 1
            print(f"refused: {err}", flush=True)
    (dest.parent / "status.md").write_text(status(dest))
    print((dest.parent / "status.md").read_text())
    # the MNIST study's tables; other datasets' runs (the fashion plan) are read by safs_lite.study.factorial
    outs = sorted(p for p in dest.iterdir() if (p / "mechanism.csv").exists() and p.name.startswith("safs-lenet5-mnist-"))
    runs = pd.DataFrame([run_row(o) for o in outs])
    runs.to_csv(dest.parent / "runs.csv", index=False)
    long = []
    for o in outs:
        res = load_json(o / "results.json")
        c = res["config"]
        vals = {**res["val_accuracy"], **{n: b["val_accuracy"] for n, b in res["baselines"].items()}}
        long += [{"preset": c["preset"], "sparsity": c["sparsity"], "pruning": c["pruning"], "seed": c["seed"],
                  "method": m, "test_accuracy": a, "val_accuracy": vals.get(m), "run": o.name}
                 for m, a in accuracies(res).items()]
    summary = pd.DataFrame(long)
    summary.to_csv(dest.parent / "summary.csv", index=False)
    if (summary["preset"] == "sweep").any():
        avs, _ = write_accuracy_vs_sparsity(summary, dest.parent / "accuracy_vs_sparsity.csv",
                                            figures_dir() / "accuracy_vs_sparsity.png")
        (dest.parent / "sweep.md").write_text(sweep_markdown(sweep_points(avs, summary)))
    lines = ["# The evidence study: paired comparisons per setting", "",
             "Made by `python tools/collect_evidence.py` from the runs in `runs/` (commands in its docstring). "
             "Differences are in test-accuracy points, paired by seed (mask); 95% BCa bootstrap interval of the "
             "mean difference (10,000 resamples), two-sided Wilcoxon signed-rank p, wins/ties/losses.", ""]
    head = ["| setting | n | MP | stage 1 | stage 2 | SAFS | uniform | swish | SAFS - MP [95% CI] | "
            "SAFS - uniform [95% CI] | SAFS - swish [95% CI] | stage 1 - uniform [95% CI] | "
            "SAFS - uniform + stage 2 [95% CI] |", "|---" * 13 + "|"]
    for (preset, sparsity, pruning), group in runs.groupby(["preset", "sparsity", "pruning"], sort=True):
        results = {int(r.seed): load_json(dest / r.run / "results.json") for r in group.itertuples()}
        table = comparison_table({s: {"test_accuracy": accuracies(r)} for s, r in results.items()})
        means = group[["dense", "magnitude_pruning", "stage1", "stage2", "safs", "uniform", "swish", "ceiling"]].mean()
        lines += [f"## {100 * sparsity:g}% {pruning}, preset `{preset}`, seeds {sorted(results)} (n = {len(results)})",
                  "", "Means (%): " + ", ".join(f"{METHOD_LABELS.get(k, k)} {v:.2f}" for k, v in means.items())
                  + f"; MP collapsed to the majority class on {int(group['mp_collapsed'].sum())} of {len(group)} seeds.",
                  "", format_comparison(table, labels=METHOD_LABELS), ""]
        pairs = table.set_index(["method", "reference"])

        def cell(ref: str, method: str = "safs") -> str:
            r = pairs.loc[(method, ref)]
            ci = "n < 2" if r["n"] < 2 else f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
            return f"{r['mean_diff']:+.2f} {ci}" + (f" (n = {r['n']})" if r["n"] != len(group) else "")

        def cell_if_run(ref: str) -> str:  # a baseline not every run computes: on at least two seeds, or "not run"
            return cell(ref) if ("safs", ref) in pairs.index and pairs.loc[("safs", ref), "n"] >= 2 else "not run"

        m = group[["magnitude_pruning", "stage1", "stage2", "safs", "uniform", "swish"]].mean()
        if sparsity != HEADLINE_SPARSITY:
            continue
        head.append(f"| {100 * sparsity:g}% {pruning} (`{preset}`) | {len(group)} | "
                    + " | ".join(f"{v:.2f}" for v in m) + f" | {cell('magnitude_pruning')} | {cell('uniform')} | "
                    f"{cell('swish')} | {cell('uniform', 'stage1')} | {cell_if_run('uniform_safs')} |")
    (dest.parent / "comparisons.md").write_text("\n".join(lines))
    (dest.parent / "headline.md").write_text("\n".join(head) + "\n")
    at99 = runs[runs["sparsity"] == HEADLINE_SPARSITY]
    fig = plot_gain_vs_baseline(at99["safs_gain"], at99["magnitude_pruning"],
                                [f"{r.pruning} ({r.preset})" for r in at99.itertuples()],
                                title="99% sparsity: SAFS gain over MP against MP's accuracy, one point per seed",
                                majority=11.35)
    save_figure(fig, figures_dir() / "evidence_gain.png")
    print((dest.parent / "comparisons.md").read_text())
    return 1 if refused else 0


if __name__ == "__main__":
    raise SystemExit(main())
