"""Same numbers from both training engines: the whole SAFS pipeline, dense (masked) versus compact engine, per seed.

For each seed (default 0, 1, 2) the dense network is trained once (the preset's dense epochs; an
unpruned network trains on the dense engine under either setting, so it is shared), then the rest
of the pipeline (`safs_lite.run.pipeline.run`: magnitude pruning and its fine-tune, stage 1, stage 2,
SAFS; no baselines) runs twice, with `TrainConfig.engine` "dense" and "compact" in the run's
training defaults. The engine is part of the run key, so the two runs get their own folders
under the runs folder ($SAFS_RUNS, else --runs).

Printed: per seed, the test accuracy of magnitude pruning (MP), stage 1, stage 2 and SAFS for both
engines and their difference (compact - dense); each engine's mean and seed-to-seed standard
deviation (ddof 1); process CPU seconds per seed of each engine (the pipeline after dense training;
on one thread the time of an idle core, whatever else the machine runs); and a verdict: the engines
agree "within the seed-to-seed spread" when every per-seed difference is at most the pooled
seed-to-seed standard deviation of that accuracy (sqrt of the mean of the two engines' variances).
Where a stage's accuracies are barely better than predicting one class (under the majority class's
share of the test set plus 10 points) on every seed and both engines, the preset is too small for the network to learn at this sparsity, and the output says so:
agreement there says little.

    OMP_NUM_THREADS=1 SAFS_DATA=<full MNIST> SAFS_RUNS=/tmp/runs python benchmarks/engine_agreement.py \
        [--preset smoke] [--seeds 0 1 2] [--sparsity 0.99] [--pruning layerwise] [--save]

--save writes the table to figures/engine_agreement.md (one section per preset / setting). A rerun
reads finished runs from their folders (their CPU seconds too, saved as cpu_seconds.json beside
results.json), so it prints the same table without computing again.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import re
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from safs_lite import SAFSConfig, load_data
from safs_lite.run.config import TRAIN_DEFAULTS
from safs_lite.run.folders import prepare_out, runs_dir
from safs_lite.run.pipeline import run, train_dense

ENGINES = ("dense", "compact")
STAGES = {"MP": "magnitude_pruning", "stage1": "stage1", "stage2": "stage2", "SAFS": "safs"}
REPO = Path(__file__).resolve().parents[1]
NEAR_ONE_CLASS = 10.0  # points above the majority class's share below which a stage has barely learned
CPU_FILE = "cpu_seconds.json"  # the pipeline's process CPU seconds, beside results.json


def run_pair(cfg: SAFSConfig, runs: Path) -> tuple[dict, dict[str, dict]]:
    """(dense record, engine -> {"results": results dict, "cpu": process CPU s, "out": run folder}) for one seed."""
    data = load_data(cfg.dataset, seed=cfg.seed, quiet=True)
    budgets = cfg.budgets()
    base = replace(TRAIN_DEFAULTS[cfg.model], seed=cfg.seed)
    dense_model, dense_rec = train_dense(cfg.model, data, replace(base, epochs=budgets.dense_epochs), runs=runs,
                                         progress=False)
    out = {}
    for engine in ENGINES:
        spec = cfg.spec()
        spec = replace(spec, train=replace(spec.train, engine=engine))
        folder = spec.folder(data, runs)
        prepare_out(folder, spec.key(data), explicit=False)
        done = (folder / "results.json").exists() and (folder / CPU_FILE).exists()
        t0 = time.process_time()
        res = run(spec, dense_model, dense_rec, data, folder, runs, progress=False, baselines=())
        if not done:
            (folder / CPU_FILE).write_text(json.dumps({"cpu_seconds": time.process_time() - t0,
                                                       "threads": torch.get_num_threads()}))
        cpu = json.loads((folder / CPU_FILE).read_text())["cpu_seconds"]
        out[engine] = {"results": res, "cpu": cpu, "out": folder}
    return dense_rec, out


def std(values: list[float]) -> float:
    """Sample standard deviation (ddof 1); 0 for fewer than two values."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def majority_share(cfg: SAFSConfig) -> float:
    """The largest class's share of the test split, in percent (what predicting one class scores)."""
    y = load_data(cfg.dataset, seed=cfg.seed, quiet=True).test.y
    return 100.0 * float(torch.bincount(y).max()) / len(y)


def report(cfg: SAFSConfig, seeds: list[int], dense_recs: dict, pairs: dict, chance: float
           ) -> tuple[str, bool | None]:
    """The markdown tables and verdict lines, and whether the engines agree within the spread on the stages that
    learn (None, no verdict, when every stage scores near one class with both engines: agreement there says nothing)."""
    acc = {(s, e, st): pairs[s][e]["results"]["test_accuracy"][key] for s in seeds for e in ENGINES
           for st, key in STAGES.items()}
    lines = [f"## {cfg.preset} preset, LeNet-5, {100 * cfg.sparsity:g}% {cfg.pruning}, seeds "
             f"{', '.join(map(str, seeds))}: dense (masked) vs compact engine",
             "", f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
             f"{torch.get_num_threads()} thread(s). Test accuracy (%) per stage; diff = compact - dense. "
             "The dense network (trained once per seed, dense engine) is shared by both engines.", "",
             "| seed | dense net | " + " | ".join(f"{st} dense / compact / diff" for st in STAGES)
             + " | CPU s dense / compact |",
             "| ---: | ---: | " + " | ".join("---" for _ in STAGES) + " | --- |"]
    for s in seeds:
        cells = [f"{acc[s, 'dense', st]:.2f} / {acc[s, 'compact', st]:.2f} / "
                 f"{acc[s, 'compact', st] - acc[s, 'dense', st]:+.2f}" for st in STAGES]
        lines.append(f"| {s} | {dense_recs[s]['test_accuracy']:.2f} | " + " | ".join(cells)
                     + f" | {pairs[s]['dense']['cpu']:.0f} / {pairs[s]['compact']['cpu']:.0f} |")
    lines += ["", "| stage | dense mean ± std | compact mean ± std | pooled std | max abs diff | within spread |",
              "| --- | --- | --- | ---: | ---: | --- |"]
    within, flat = True, []
    for st in STAGES:
        v = {e: [acc[s, e, st] for s in seeds] for e in ENGINES}
        sd = {e: std(v[e]) for e in ENGINES}
        pooled = math.sqrt((sd["dense"] ** 2 + sd["compact"] ** 2) / 2)
        worst = max(abs(acc[s, "compact", st] - acc[s, "dense", st]) for s in seeds)
        ok = worst <= pooled
        if all(x < chance + NEAR_ONE_CLASS for e in ENGINES for x in v[e]):
            flat.append(st)  # learns nothing: left out of the verdict
        else:
            within &= ok
        lines.append(f"| {st} | {statistics.mean(v['dense']):.2f} ± {sd['dense']:.2f} | "
                     f"{statistics.mean(v['compact']):.2f} ± {sd['compact']:.2f} | {pooled:.2f} | {worst:.2f} | "
                     f"{'yes' if ok else 'NO'} |")
    cpu = {e: [pairs[s][e]["cpu"] for s in seeds] for e in ENGINES}
    lines += ["", f"CPU seconds per seed (pipeline after dense training): dense engine "
              f"{statistics.mean(cpu['dense']):.0f} (range {min(cpu['dense']):.0f}-{max(cpu['dense']):.0f}), compact "
              f"{statistics.mean(cpu['compact']):.0f} (range {min(cpu['compact']):.0f}-{max(cpu['compact']):.0f}): "
              f"{statistics.mean(cpu['dense']) / statistics.mean(cpu['compact']):.1f}x.", "",
              "Verdict: " + ("none: no stage learns at this setting" if len(flat) == len(STAGES) else
                             "the engines' accuracies are " + ("within the seed-to-seed spread" if within else
                                                               "NOT within the seed-to-seed spread")
                             + " (every per-seed |diff| <= the pooled seed-to-seed std of its stage, on the stages "
                               "that learn).")]
    if len(flat) == len(STAGES):
        within = None
    if flat:
        lines.append(f"Note: {', '.join(flat)} score within {NEAR_ONE_CLASS:g} points of one class (majority share "
                     f"{chance:.2f}%) on every seed with both engines: the {cfg.preset} preset is too small for these stages to learn at this "
                     "sparsity, so their agreement says nothing and they are left out of the verdict.")
    return "\n".join(lines), within


def save(text: str, cfg: SAFSConfig, command: str) -> Path:
    """Write or replace this setting's section of figures/engine_agreement.md."""
    path = REPO / "figures" / "engine_agreement.md"
    head = text.split("\n", 1)[0]
    section = f"{text}\n\nMade by `{command}`.\n"
    old = path.read_text() if path.exists() else "# Same numbers from both training engines\n"
    parts = re.split(r"(?m)^(?=## )", old)
    kept = [p for p in parts if not p.startswith(head.split(":")[0] + ":")]
    path.write_text("".join(kept).rstrip("\n") + "\n\n" + section)
    return path


def main(argv: list[str] | None = None) -> int:
    """Run both engines on each seed and print (and with --save, write) the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="smoke", help="budgets (default smoke)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--sparsity", type=float, default=0.99)
    p.add_argument("--pruning", default="layerwise")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--runs", default=None, help="runs folder (default $SAFS_RUNS, else <repo>/runs)")
    p.add_argument("--save", action="store_true", help="write the table to figures/engine_agreement.md")
    args = p.parse_args(argv)
    if args.threads < 1 or len(set(args.seeds)) < 2:
        raise SystemExit(f"--threads must be >= 1 and --seeds name at least two seeds, got {args.threads} and "
                         f"{args.seeds}")
    torch.set_num_threads(args.threads)
    seeds = sorted(set(args.seeds))
    runs = runs_dir(args.runs)
    t0 = time.perf_counter()
    dense_recs, pairs = {}, {}
    for s in seeds:
        cfg = SAFSConfig(sparsity=args.sparsity, pruning=args.pruning, preset=args.preset, seed=s).validate()
        dense_recs[s], pairs[s] = run_pair(cfg, runs)
        print(f"seed {s}: " + ", ".join(f"{e} {pairs[s][e]['cpu']:.0f} CPU s ({pairs[s][e]['out'].name})"
                                        for e in ENGINES), flush=True)
    text, _ = report(cfg, seeds, dense_recs, pairs, majority_share(cfg))
    print("\n" + text)
    print(f"\n({time.perf_counter() - t0:.0f} s wall)")
    if args.save:
        seeds_arg = "" if seeds == [0, 1, 2] else " --seeds " + " ".join(map(str, seeds))
        extra = "".join(f" --{k} {v}" for k, v, d in (("preset", args.preset, "smoke"), ("sparsity", args.sparsity, 0.99),
                                                      ("pruning", args.pruning, "layerwise")) if v != d)
        command = (f"OMP_NUM_THREADS={args.threads} SAFS_DATA=<full MNIST> SAFS_RUNS=<empty folder> "
                   f"python benchmarks/engine_agreement.py{extra}{seeds_arg} --save")
        print(f"written: {save(text, cfg, command)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
