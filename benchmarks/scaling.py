"""Scaling out: a small sweep on 1 and 2 Dask workers on this machine, and what the paper preset costs.

    python benchmarks/scaling.py                       # the measured part (about 2.5 min on 2 idle cores), then the table
    python benchmarks/scaling.py --cost-only           # only the paper preset's cost table
    python benchmarks/scaling.py --epoch-seconds vgg16=1.2 resnet18=2.0   # measured epochs (gpu_check.py) instead

Part 1 runs the same sweep (preset smoke, seeds 0 1, sparsities 0.9 0.95 0.98 0.99, global pruning:
8 runs) twice, each time from an empty runs folder, with `--workers 1` and `--workers 2`, and prints
the wall times (Dask cluster start included), the speed-up and the 1-minute load average sampled
during each measurement (the sweep's own workers count in it: 1 or 2 of it are ours). Goal on 2 cores:
at least 1.7x.

Part 2 is arithmetic, no training: the paper preset's epochs per run (`config.PRESETS["paper"]`, the
HPO trials counted at their full length, so an upper bound: the successive-halving pruner stops most
trials early), the GPU hours per Table 1 row (3 seeds, `reproduce` with its random-search baseline)
and the wall time with 1, 4 and 16 GPUs (one worker each). Its assumptions are printed with it.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from math import ceil

import torch

from safs_lite.data.splits import INPUT_SHAPES, NUM_CLASSES
from safs_lite.nets.models import build_model
from safs_lite.run.config import PRESETS, TRAIN_DEFAULTS

SEEDS = 3  # Table 1 is reported over seeds 0, 1, 2


@dataclass(frozen=True)
class Row:
    """One row of the cost table: a setting, its data sizes and the per-step overhead assumed on a GPU."""

    label: str
    model: str
    dataset: str
    train: int           # training images per epoch (the kit's split)
    val: int             # validation images scored after every epoch
    step_overhead: float  # seconds per training step a GPU spends launching kernels (small inputs are launch-bound)


ROWS = [
    Row("LeNet-5 / MNIST", "lenet5", "mnist", 50_000, 10_000, 0.001),
    Row("VGG-16 / CIFAR-10", "vgg16", "cifar10", 45_000, 5_000, 0.002),
    Row("ResNet-18 / CIFAR-10", "resnet18", "cifar10", 45_000, 5_000, 0.002),
    Row("EfficientNet-B0 / ImageNet-16", "efficientnet_b0", "imagenet16", 1_231_167, 50_000, 0.004),
]
SUSTAINED_FLOPS = 60e12  # bf16 FLOP/s an H100/H200 sustains on these convnets with --amp --channels-last (assumed)


def paper_epochs(random_search: bool = True) -> dict[str, int]:
    """Epochs of one paper-preset run, stage by stage (HPO trials at full length: an upper bound)."""
    p = PRESETS["paper"]
    candidates = (p.lahc_steps + 1) * p.candidate_epochs
    epochs = {"dense": p.dense_epochs, "magnitude pruning": p.finetune_epochs,
              "stage 1": candidates + p.finetune_epochs,
              "stage 2 HPO": p.hpo_trials * p.trial_epochs, "stage 2 retrain": p.finetune_epochs,
              "SAFS HPO": p.hpo_trials * p.trial_epochs, "SAFS retrain": p.finetune_epochs}
    if random_search:
        epochs["random search"] = candidates
    return epochs


def epoch_seconds(row: Row) -> tuple[float, float]:
    """(assumed seconds per epoch on one GPU, forward GFLOPs per image): max(FLOPs / rate, steps x overhead)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(row.model, num_classes=NUM_CLASSES[row.dataset]).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, *INPUT_SHAPES[row.dataset]))
    fwd = counter.get_total_flops()
    flops = (3 * row.train + row.val) * fwd  # forward + backward (2x forward) on train, forward on val
    steps = ceil(row.train / TRAIN_DEFAULTS[row.model].batch_size)
    return max(flops / SUSTAINED_FLOPS, steps * row.step_overhead), fwd / 1e9


def wall_hours(run_h: float, hpo_h: float, runs: int, workers: int) -> float:
    """Wall time of `runs` equal runs on `workers` GPUs: waves of runs; spare GPUs join each run's HPO studies
    (`hpo-worker`), which divides the HPO's share; LAHC, training and retrains stay sequential."""
    waves = ceil(runs / workers)
    per_run = max(1, workers // runs)
    return waves * (run_h - hpo_h + hpo_h / per_run)


def cost_table(overrides: dict[str, float]) -> str:
    epochs = paper_epochs()
    per_run = sum(epochs.values())
    hpo = epochs["stage 2 HPO"] + epochs["SAFS HPO"]
    lines = [f"paper preset, one run: {per_run:,} epochs at most ("
             + ", ".join(f"{k} {v:,}" for k, v in epochs.items()) + "); a Table 1 row is 3 seeds",
             "",
             f"{'row':<30} {'GFLOPs/img':>10} {'s/epoch':>8} {'epochs/run':>10} {'GPU h/row':>9} "
             f"{'1 GPU h':>8} {'4 GPUs h':>8} {'16 GPUs h':>9}"]
    for row in ROWS:
        seconds, gflops = epoch_seconds(row)
        seconds = overrides.get(row.model, seconds)
        run_h, hpo_h = per_run * seconds / 3600, hpo * seconds / 3600
        walls = [wall_hours(run_h, hpo_h, SEEDS, w) for w in (1, 4, 16)]
        lines.append(f"{row.label:<30} {gflops:>10.4f} {seconds:>8.2f} {per_run:>10,} {SEEDS * run_h:>9.1f} "
                     + f"{walls[0]:>8.1f} {walls[1]:>8.1f} {walls[2]:>9.1f}")
    lenet = overrides.get("lenet5", epoch_seconds(ROWS[0])[0])
    runs = 4 * 2 * SEEDS  # the sweep's default grid: 4 sparsities x 2 pruning methods x 3 seeds
    sweep_epochs = runs * (per_run - epochs["dense"] - epochs["random search"]) + SEEDS * epochs["dense"]
    run_h = (per_run - epochs["random search"] - epochs["dense"]) * lenet / 3600
    dense_h = epochs["dense"] * lenet / 3600  # one task per seed, before the runs (safs_lite.study.cluster)
    walls = [ceil(SEEDS / w) * dense_h + wall_hours(run_h, hpo * lenet / 3600, runs, w) for w in (1, 4, 16)]
    lines.append(f"{'LeNet-5 sweep (24 runs)':<30} {'':>10} {lenet:>8.2f} {sweep_epochs // runs:>10,} "
                 f"{sweep_epochs * lenet / 3600:>9.1f} {walls[0]:>8.1f} {walls[1]:>8.1f} {walls[2]:>9.1f}")
    lines += ["",
              "assumptions: one worker per GPU; s/epoch = max(training FLOPs / 60 TFLOP/s sustained bf16, "
              "steps x launch overhead of 1-4 ms) on an H100/H200 with --amp --channels-last and in-memory "
              "batches; HPO trials at their full 80 epochs (the pruner stops most earlier: an upper bound); "
              "with more GPUs than runs the spare ones join the runs' HPO studies (hpo-worker), the rest of a "
              "run is sequential; the sweep trains one dense network per seed. Replace the s/epoch estimates "
              "by measured ones with --epoch-seconds MODEL=S (benchmarks/gpu_check.py times VGG-16 and ResNet-18)."]
    return "\n".join(lines)


class LoadSampler:
    """Samples the 1-minute load average every `every` seconds while it runs."""

    def __init__(self, every: float = 2.0):
        self.every, self.samples, self._stop = every, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(self.every)

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def measure(workers: int, args: argparse.Namespace) -> tuple[float, LoadSampler]:
    """Wall time of the sweep on `workers` Dask workers, from an empty runs folder."""
    from safs_lite.study.sweep import sweep

    with tempfile.TemporaryDirectory(prefix=f"safs_scaling_{workers}_") as tmp, LoadSampler() as load:
        t0 = time.perf_counter()
        sweep(preset=args.preset, seeds=tuple(args.seeds), sparsities=tuple(args.sparsities), prunings=("global",),
              runs=f"{tmp}/runs", figures=f"{tmp}/figures", progress=False, workers=workers)
        return time.perf_counter() - t0, load


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="smoke")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--sparsities", type=float, nargs="+", default=[0.9, 0.95, 0.98, 0.99])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time")
    p.add_argument("--cost-only", action="store_true", help="print only the paper preset's cost table")
    p.add_argument("--epoch-seconds", nargs="*", default=[], metavar="MODEL=S",
                   help="measured seconds per paper-preset epoch on one GPU, replacing the estimate")
    args = p.parse_args(argv)
    overrides = {}
    for item in args.epoch_seconds:
        model, _, value = item.partition("=")
        if model not in TRAIN_DEFAULTS or not value:
            print(f"error: --epoch-seconds {item!r}: give MODEL=SECONDS, MODEL one of {', '.join(TRAIN_DEFAULTS)}",
                  file=sys.stderr)
            return 2
        overrides[model] = float(value)
    if not args.cost_only:
        from safs_lite.data.builtin import load_data

        runs = len(args.seeds) * len(args.sparsities)
        data = load_data("mnist", seed=0, quiet=True)
        print(f"sweep: preset {args.preset}, {runs} runs (seeds {' '.join(map(str, args.seeds))} x sparsities "
              f"{' '.join(f'{s:g}' for s in args.sparsities)}, global), data: {data.source}; "
              f"{os.cpu_count()} CPU cores")
        print(f"{'workers':>7} {'wall s':>8} {'speed-up':>8} {'load avg (mean / max)':>22}")
        timed = {w: measure(w, args) for w in args.workers}
        base = timed[1][0] if 1 in timed else timed[args.workers[0]][0]  # the speed-up is over 1 worker
        for w, (seconds, load) in timed.items():
            mean = sum(load.samples) / len(load.samples)
            print(f"{w:>7} {seconds:>8.1f} {base / seconds:>7.2f}x {mean:>12.2f} / {max(load.samples):.2f}")
        print("goal: >= 1.7x with 2 workers on 2 cores (the load average counts this sweep's own workers)\n")
    print(cost_table(overrides))
    return 0


if __name__ == "__main__":
    sys.exit(main())
