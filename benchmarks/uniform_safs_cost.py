"""What the `uniform_safs` baseline (the best uniform operator given SAFS's stage 2) costs, measured and estimated.

Measured: a `smoke` run per seed in a temporary runs folder (the data $SAFS_DATA holds, else the offline
subset; one thread), first with the default baselines, then asked for uniform_safs too; the second call
computes only uniform_safs (every other stage is read back), so its wall time is the baseline's cost.
Estimated: uniform_safs is `pipeline.stage2` with SAFS's budgets on other operators, so its cost per run is
about that of stage 2 and SAFS (an HPO study of the preset's trials and one retrain); the table gives their
recorded seconds per setting from the collected evidence runs (results/evidence/runs/*/results.json, one
thread each) beside each run's total.

    OMP_NUM_THREADS=1 python benchmarks/uniform_safs_cost.py [--seeds 0 1] [--sparsity 0.99] [--no-measure]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from safs_lite.paths import results_dir
from safs_lite.run.baselines import DEFAULT_BASELINES


def measure(seeds, sparsity: float) -> pd.DataFrame:
    """One row per seed: the smoke run's stage-2 seconds and what adding uniform_safs cost."""
    from safs_lite import SAFSConfig, run_safs

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SAFS_RUNS"] = tmp  # the dense and magnitude-pruning caches too: nothing outside is written
        for seed in seeds:
            cfg, out = SAFSConfig(preset="smoke", seed=seed, sparsity=sparsity), Path(tmp) / f"run-{seed}"
            run_safs(cfg, out=out, progress=False)
            t0 = time.perf_counter()
            res = run_safs(cfg, out=out, progress=False, baselines=(*DEFAULT_BASELINES, "uniform_safs"))
            s = res["seconds"]
            rows.append({"seed": seed, "stage2 s": s["stage2"], "safs s": s["safs"],
                         "uniform_safs s": s["baseline_uniform_safs"], "adding it, wall s": time.perf_counter() - t0,
                         "run total s": s["total"]})
    return pd.DataFrame(rows)


def estimate(root: Path) -> pd.DataFrame:
    """Per collected setting: the recorded stage-2 and SAFS seconds (mean, min-max) and the run's total."""
    rows = []
    for path in sorted(root.glob("*/results.json")):
        res = json.loads(path.read_text())
        c, s = res["config"], res["seconds"]
        rows.append({"setting": f"{100 * c['sparsity']:g}% {c['pruning']} ({c['preset']})", "stage2": s["stage2"],
                     "safs": s["safs"], "total": s["total"]})
    runs = pd.DataFrame(rows)
    if runs.empty:
        return runs
    g = runs.groupby("setting", sort=False)
    stage2 = runs.assign(both=runs[["stage2", "safs"]].mean(axis=1)).groupby("setting", sort=False)["both"]
    return pd.DataFrame({"runs": g.size(), "stage2 s": g["stage2"].mean().round(0), "safs s": g["safs"].mean().round(0),
                         "uniform_safs est. s (mean of both)": stage2.mean().round(0),
                         "range s": [f"{lo:.0f}-{hi:.0f}" for lo, hi in zip(g[["stage2", "safs"]].min().min(axis=1),
                                                                             g[["stage2", "safs"]].max().max(axis=1))],
                         "run total s": g["total"].mean().round(0),
                         "added share of total": (stage2.mean() / g["total"].mean()).map("{:.0%}".format)})


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--sparsity", type=float, default=0.99)
    p.add_argument("--no-measure", action="store_true", help="only the estimate from the collected evidence runs")
    args = p.parse_args()
    torch.set_num_threads(1)
    if not args.no_measure:
        print(f"measured: smoke preset, {100 * args.sparsity:g}% layer-wise, 1 thread (seconds)")
        print(measure(args.seeds, args.sparsity).round(2).to_string(index=False), "\n")
    print("estimated per run from the collected evidence runs (1 thread; uniform_safs ~ one stage 2 / SAFS study "
          "and retrain)")
    print(estimate(results_dir() / "evidence" / "runs").to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
