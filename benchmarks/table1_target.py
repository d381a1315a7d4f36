"""The reproduction target of Table 1 (LeNet-5 / MNIST, 99% layer-wise): measured against the target.

Reads the finished runs of `python -m safs_lite reproduce` under runs/ or, where there are none (a fresh clone),
the committed evidence study's runs (`results/evidence/runs/`, `--source committed`), without training, and
prints, per seed, the
test accuracies, the wall time of the run, and what the pruning mask leaves: the classes still
connected to the input and the accuracy ceiling that implies. Then the targets of issue 9:
mean SAFS gain >= +15.5 points over the kit's own magnitude pruning; SAFS >= 85% of each seed's
connectivity ceiling, averaged over seeds; stage 2 above magnitude pruning on every seed; each seed's
pipeline < 30 minutes; and the moonshot, SAFS mean >= 62.22% (the paper's).

    python benchmarks/table1_target.py [--preset cpu] [--seeds 0 1 2] [--source auto|runs|committed]

The committed folders are slim (no checkpoints): their classes connected and ceiling come from each run's
`ceiling.json` and `mechanism.csv`, written when the run was collected.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from safs_lite import load_data, load_safs_model
from safs_lite.method.pruning import accuracy_ceiling, connected_units
from safs_lite.paths import results_dir
from safs_lite.run.baselines import BASELINES
from safs_lite.run.folders import load_json
from safs_lite.run.results import LABELS, PAPER_TABLE1, accuracies
from safs_lite.study.figures import find_runs, load_results
from safs_lite.study.stats import comparison_table, format_comparison

TARGET_SAFS, TARGET_GAIN, TARGET_MINUTES, TARGET_CEILING = 62.22, 15.5, 30.0, 0.85


def committed_runs(preset: str, seeds) -> dict[int, Path]:
    """seed -> the committed evidence run of LeNet-5 / MNIST at 99% layer-wise with `preset`; ValueError if none."""
    root = results_dir() / "evidence" / "runs"
    found = {s: root / f"safs-lenet5-mnist-0.99-layerwise-{preset}-s{s}" for s in seeds}
    found = {s: f for s, f in found.items() if (f / "results.json").exists()}
    if not found:
        raise ValueError(f"no finished runs for preset {preset!r} under runs/ and none committed in {root}")
    return found


def _classes_connected(path: Path) -> int:
    """The output units (classes) of fc3 with a kept path from the input, from a collected run's mechanism.csv
    (the mask decides it: every network row of a run gives the same count)."""
    table = pd.read_csv(path)
    return int(table.loc[table["layer"] == "fc3", "connected_in"].iloc[0])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="cpu")
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--source", choices=("auto", "runs", "committed"), default="auto",
                   help="runs/ (finished reproduce runs), committed (results/evidence/runs) or auto: runs/ when "
                        "it holds finished runs, else the committed study")
    args = p.parse_args(argv)
    folders, source = None, args.source
    if source in ("auto", "runs"):
        try:
            folders = find_runs(args.preset, tuple(args.seeds))
            source = "runs"
        except ValueError:
            if source == "runs":
                raise
    if folders is None:
        folders = committed_runs(args.preset, args.seeds)
        source = "committed"
    print(f"source: {'finished runs under runs/' if source == 'runs' else 'the committed study, results/evidence/runs'}"
          f" ({len(folders)} seeds: {', '.join(map(str, folders))})")
    results = load_results(folders)
    test_labels = load_data("mnist", seed=0, quiet=True).test.y if source == "runs" else None
    rows = []
    for seed, res in results.items():
        acc = res["test_accuracy"]
        seconds = res["seconds"]  # seconds of every stage as computed (dense included), summed in "total"
        if source == "runs":
            model = load_safs_model(folders[seed], "safs")
            ceiling, connected = accuracy_ceiling(model, test_labels), float(connected_units(model)["fc3"].sum())
        else:  # written at collection from the run's masks on full MNIST's test labels
            ceiling = load_json(folders[seed] / "ceiling.json")["test_ceiling"]
            connected = float(_classes_connected(folders[seed] / "mechanism.csv"))
        rows.append({"seed": seed, "MP": acc["magnitude_pruning"], "stage 1": acc["stage1"],
                     "stage 2": acc["stage2"], "SAFS": acc["safs"], "gain": acc["safs"] - acc["magnitude_pruning"],
                     "minutes": seconds["total"] / 60, "classes connected": connected,
                     "ceiling": ceiling, "SAFS / ceiling": acc["safs"] / ceiling})
    table = pd.DataFrame(rows).set_index("seed")
    table.loc["mean"] = table.mean()
    print(table.to_string(float_format=lambda v: f"{v:.2f}"))
    paper = PAPER_TABLE1[("lenet5", "mnist")]
    mean = table.loc["mean"]
    seeds = table.drop("mean")
    slowest = seeds["minutes"].max()
    s2_margin = (seeds["stage 2"] - seeds["MP"]).min()
    checks = [("SAFS gain (points)", mean["gain"], f">= +{TARGET_GAIN}", mean["gain"] >= TARGET_GAIN,
               mean["gain"] - TARGET_GAIN),
              ("SAFS / ceiling, mean", mean["SAFS / ceiling"], f">= {TARGET_CEILING}",
               mean["SAFS / ceiling"] >= TARGET_CEILING, mean["SAFS / ceiling"] - TARGET_CEILING),
              ("stage 2 - MP, worst", s2_margin, "> 0", s2_margin > 0, s2_margin),
              ("slowest seed (min)", slowest, f"< {TARGET_MINUTES:g}", slowest < TARGET_MINUTES,
               TARGET_MINUTES - slowest),
              ("moonshot: SAFS mean (%)", mean["SAFS"], f">= {TARGET_SAFS}", mean["SAFS"] >= TARGET_SAFS,
               mean["SAFS"] - TARGET_SAFS)]
    print()
    print(f"{'target':<26}{'measured':>10}{'goal':>10}{'met':>6}{'margin':>9}")
    for name, value, goal, met, margin in checks:  # margin: how far above (+) or short of (-) the goal
        print(f"{name:<26}{value:>10.2f}{goal:>10}{'yes' if met else 'no':>6}{margin:>+9.2f}")
    print(f"\npaper: MP {paper['magnitude_pruning']}, SAFS {paper['safs']}; the mean accuracy ceiling of the "
          f"kit's masks is {mean['ceiling']:.2f}% ({mean['classes connected']:.1f} of 10 classes connected)")
    # Issue 18's targets: paired intervals over the seeds (masks), never a bare mean.
    comparisons = comparison_table({s: {"test_accuracy": accuracies(r)} for s, r in results.items()})
    print(f"\npaired comparisons over {len(results)} seeds (test accuracy points; 95% BCa bootstrap interval):")
    labels = {**LABELS, **{name: b.label for name, b in BASELINES.items()}}
    print(format_comparison(comparisons, style="text", labels=labels))
    for ref in ("magnitude_pruning", "uniform", "swish"):
        row = comparisons[(comparisons["method"] == "safs") & (comparisons["reference"] == ref)]
        if len(row):
            r = row.iloc[0]
            print(f"goal SAFS - {ref}: interval [{r.ci_low:+.2f}, {r.ci_high:+.2f}] over n = {r.n}: lower bound "
                  f"{'above' if r.ci_low > 0 else 'not above'} 0"
                  + ("" if r.n >= 10 else " (n < 10: a bootstrap interval this small under-covers; no verdict)"))


if __name__ == "__main__":
    main()
