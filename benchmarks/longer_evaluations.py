"""Ablation: does stage 1 / stage 2 do better when each candidate and each HPO trial trains longer?

The cpu preset scores each LAHC candidate after one epoch at lr 0.01 (validation accuracy, the
validation loss breaking ties: `fitness.tiebreak_score`) and gives each HPO trial 5 epochs (the
successive-halving pruner stops most trials after one). This runs the same pipeline with `--epochs`
epochs (default 5) per candidate and per trial, all else as the cpu preset (dense and
magnitude-pruning runs reused), and prints both side by side, with how many candidates of each
search scored below 12% validation accuracy (about the majority class's 11.35% on MNIST: a
candidate that has not started to learn). Decisions inside each run use the validation split; the
test numbers are reported, not used.

    SAFS_DATA=../shared/data python benchmarks/longer_evaluations.py [--seeds 0 1 2] [--threads 1]
"""
from __future__ import annotations

import argparse
from dataclasses import replace

import pandas as pd
import torch

from safs_lite import PRESETS, SAFSConfig, run_safs
from safs_lite.runs import default_out
from safs_lite.searchlog import read_history

VARIANT = "cpu-eval5"  # registered for this script only; its runs get their own folders


def summary(cfg: SAFSConfig, res: dict) -> dict:
    hist = read_history(default_out(cfg) / "stage1_search.csv")
    chance = sum(r["fitness"] < 12.0 for r in hist)
    acc = res["test_accuracy"]
    return {"preset": cfg.preset, "seed": cfg.seed, "candidates at chance": f"{chance}/{len(hist)}",
            "MP": acc["magnitude_pruning"], "stage 1": acc["stage1"], "stage 2": acc["stage2"],
            "SAFS": acc["safs"], "gain": acc["safs"] - acc["magnitude_pruning"],
            "minutes": res["seconds"]["total"] / 60}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=5, help="epochs per candidate and per HPO trial")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    PRESETS[VARIANT] = replace(PRESETS["cpu"], candidate_epochs=args.epochs, trial_epochs=args.epochs)
    rows = []
    for seed in args.seeds:
        for preset in ("cpu", VARIANT):
            cfg = SAFSConfig(preset=preset, seed=seed)
            rows.append(summary(cfg, run_safs(cfg, progress=False)))
            print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.2f}"), flush=True)
    df = pd.DataFrame(rows)
    print("\nmean over seeds:")
    print(df.groupby("preset", sort=False)[["MP", "stage 1", "stage 2", "SAFS", "gain", "minutes"]].mean()
          .to_string(float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
