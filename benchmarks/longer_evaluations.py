"""Ablation: does stage 1 / stage 2 do better when each candidate and each HPO trial trains longer?

The cpu preset scores each LAHC candidate after `candidate_epochs` epochs at `candidate_lr` (validation
accuracy, the validation loss breaking ties: `fitness.tiebreak_score`) and gives each HPO trial `trial_epochs`
epochs (the successive-halving pruner stops most trials after one); the run prints the preset's values
(`config.PRESETS["cpu"]`). This runs the same pipeline with `--epochs`
epochs (default 5) per candidate and per trial, all else as the cpu preset (dense and
magnitude-pruning runs reused), and prints both side by side, with how many candidates of each
search scored below 12% validation accuracy (about the majority class's 11.35% on MNIST: a
candidate that has not started to learn). Decisions inside each run use the validation split; the
test numbers are reported, not used.

    SAFS_DATA=../shared/data python benchmarks/longer_evaluations.py [--seeds 0 1 2] [--threads 1]

`--longer-mp`: does magnitude pruning catch up if it trains much longer? It fine-tunes the ReLU
network of each 99% layer-wise `cpu` evidence run (results/evidence/runs/<run>/pruned.pt, the
pruned network before any fine-tune) with the dense hyperparameters (Adam 1e-3, batch 256; the
model's training defaults, as magnitude pruning's 30-epoch fine-tune) for `--mp-epochs` epochs
(default 100), and prints the validation accuracy at epochs 5, 10, 30, 60 and 100 and the best
(validation split), the test accuracy of the best-validation epoch (read once, at the end), next to
the run's magnitude-pruning and SAFS accuracies, the mask's connectivity ceiling (ceiling.json: the
test accuracy possible if every class still connected to the input were always right) and the
paper's single-run 46.69 (MP) and 62.22 (SAFS). Its first 30 epochs are the run's MP fine-tune
(same seed and configuration), so the best validation accuracy up to epoch 30 must equal the
run's; the table says so. With --out, the table and its command go to that Markdown file.

    SAFS_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/longer_evaluations.py --longer-mp \\
        --seeds 0 1 [--mp-epochs 100] [--out figures/longer_mp.md]
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from safs_lite import PRESETS, SAFSConfig, run_safs
from safs_lite.data.builtin import load_data
from safs_lite.method.pruning import sparsity_report
from safs_lite.method.searchlog import read_history
from safs_lite.paths import results_dir
from safs_lite.run.config import TRAIN_DEFAULTS
from safs_lite.run.folders import default_out, load_json
from safs_lite.run.results import PAPER_TABLE1
from safs_lite.study.shipped import load_network
from safs_lite.training.loop import evaluate, train

VARIANT = "cpu-eval5"  # registered for this script only; its runs get their own folders


def summary(cfg: SAFSConfig, res: dict) -> dict:
    hist = read_history(default_out(cfg) / "stage1_search.csv")
    chance = sum(r["fitness"] < 12.0 for r in hist)
    acc = res["test_accuracy"]
    return {"preset": cfg.preset, "seed": cfg.seed, "candidates at chance": f"{chance}/{len(hist)}",
            "MP": acc["magnitude_pruning"], "stage 1": acc["stage1"], "stage 2": acc["stage2"],
            "SAFS": acc["safs"], "gain": acc["safs"] - acc["magnitude_pruning"],
            "minutes": res["seconds"]["total"] / 60}


MP_CHECKPOINTS = (5, 10, 30, 60, 100)


def longer_mp(seed: int, epochs: int, preset: str = "cpu") -> dict:
    """Magnitude pruning's ReLU network of one 99% layer-wise evidence run, fine-tuned for `epochs` epochs."""
    run = results_dir() / "evidence" / "runs" / f"safs-lenet5-mnist-0.99-layerwise-{preset}-s{seed}"
    if not (run / "pruned.pt").exists():
        raise SystemExit(f"{run}/pruned.pt not found: collect the run first (tools/collect_evidence.py)")
    res = load_json(run / "results.json")
    cfg = replace(TRAIN_DEFAULTS["lenet5"], seed=seed, epochs=epochs)  # what MP's fine-tune uses, longer
    data = load_data("mnist", seed=seed, quiet=True)
    model = load_network(run / "pruned.pt")  # ReLU, alpha = beta = 1: magnitude pruning's network
    t0 = time.perf_counter()
    history = train(model, data, cfg, progress=False)  # select="best": ends at the best-validation epoch
    seconds = time.perf_counter() - t0
    val = [row["val_acc"] for row in history]
    best = max(range(len(val)), key=val.__getitem__)
    mp_epochs = res["config"]["budgets"]["finetune_epochs"]
    row = {"seed": str(seed), "run MP val": res["val_accuracy"]["magnitude_pruning"],
           f"best val to ep {mp_epochs}": max(val[:mp_epochs]) if len(val) >= mp_epochs else float("nan")}
    row.update({f"val ep {e}": val[e - 1] for e in MP_CHECKPOINTS if e <= epochs})
    row.update({"best val": val[best], "best ep": str(best + 1), "train loss last": history[-1]["train_loss"],
                "test at best": evaluate(model, data, "test")["accuracy"],  # the only test read
                "run MP test": res["test_accuracy"]["magnitude_pruning"], "run SAFS test": res["test_accuracy"]["safs"],
                "ceiling": load_json(run / "ceiling.json")["test_ceiling"],
                "sparsity": 100 * sparsity_report(model)["overall"], "s/epoch (wall)": seconds / epochs})
    return row


def main_longer_mp(args) -> None:
    rows = []
    for seed in args.seeds:
        rows.append(longer_mp(seed, args.mp_epochs))
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.2f}"), flush=True)
    df = pd.DataFrame(rows)
    paper = PAPER_TABLE1[("lenet5", "mnist")]
    notes = (f"Paper (one run, one mask): MP {paper['magnitude_pruning']:.2f}, SAFS {paper['safs']:.2f}. "
             f"The first {df.columns[2].split()[-1]} epochs repeat the run's MP fine-tune: `best val to ep` equals "
             "`run MP val` when the fine-tune is reproduced. Validation accuracy (%) except the `test` columns.")
    print("\n" + notes)
    if args.out:
        command = "SAFS_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/longer_evaluations.py " + \
            " ".join(sys.argv[1:])
        Path(args.out).write_text("\n".join([
            "# Longer magnitude pruning on the evidence masks (99% layer-wise, `cpu` preset)", "",
            f"Made by `{command}`. The ReLU network of each run's mask (`pruned.pt`), fine-tuned with the dense "
            f"hyperparameters (Adam 1e-3, batch 256, weight decay 5e-4) for {args.mp_epochs} epochs; the test "
            "split is read once, at the best-validation epoch. Seconds are wall time on a shared machine.", "",
            df.to_markdown(index=False, floatfmt=".2f"), "", notes, ""]))
        print(f"written: {args.out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 2 (0 1 with --longer-mp)")
    p.add_argument("--epochs", type=int, default=5, help="epochs per candidate and per HPO trial")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--longer-mp", action="store_true", help="fine-tune MP's network longer on the evidence masks")
    p.add_argument("--mp-epochs", type=int, default=100, help="with --longer-mp: fine-tune epochs")
    p.add_argument("--out", default=None, help="with --longer-mp: Markdown file for the table")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.longer_mp:
        args.seeds = args.seeds or [0, 1]
        return main_longer_mp(args)
    args.seeds = args.seeds or [0, 1, 2]
    PRESETS[VARIANT] = replace(PRESETS["cpu"], candidate_epochs=args.epochs, trial_epochs=args.epochs)
    cpu = PRESETS["cpu"]
    print(f"cpu preset: {cpu.candidate_epochs} epoch(s) per candidate at lr {cpu.candidate_lr:g}, "
          f"{cpu.trial_epochs} per HPO trial; {VARIANT}: {args.epochs} for both", flush=True)
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
