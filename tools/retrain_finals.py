"""Retrain the final models of the committed evidence runs at another budget: the factorial's six cells per mask.

Each committed 99% evidence run (`results/evidence/runs/<run>/`) holds the pruned network every stage started from
(`pruned.pt`) and, per method, the operators and the training configuration of its final retrain (`*.json`'s
"train"). This retrains the six cells of the operator x fine-tuning factorial from that network for `--epochs`
epochs, each with its own recorded operators and hyperparameters, nothing else changed:

| cell | operators | fine-tuning |
|---|---|---|
| `magnitude_pruning` | ReLU | the dense network's hyperparameters (the run's training defaults) |
| `stage2` | ReLU | stage 2's (HPO'd hyperparameters, learned alpha/beta) |
| `uniform` | the best single operator | dense hyperparameters (retrained as stage 1) |
| `uniform_safs` | the best single operator | stage 2's, from its own study |
| `stage1` | LAHC's per-layer operators | dense hyperparameters |
| `safs` | LAHC's per-layer operators | stage 2's |

The committed accuracies were computed by the kit version that made each run; the current engine may add floats
in another order (training noise: the same mask moves by points), so each budget on the axis is retrained here,
the run's own included, and the committed number is recorded beside each cell for reference.

Every retrain runs on the compact engine, the one every 99% run's finals used (`engine="auto"` chose it at
99% when they ran): pinned, so a later change of auto's rule moves no number here.

Training noise: `--train-seeds own 1000 1001` retrains the same cells with the run's own and other training seeds
(the order of batches and the draws of training), `--engine dense` on the dense engine (other float order, same
mathematics); the mask, operators and hyperparameters stay the run's. `python -m safs_lite.study.noise` reads the
replicates (within-mask against between-mask spread).

Writes one file per run, budget, engine and training seed, `results/evidence/finals/<run>-e<epochs>.json` for the
run's own seed on the compact engine, else `<run>-e<epochs>-<engine>-t<seed>.json`, after every cell (an
interrupted plan resumes where it stopped; a cell that fails is recorded with its error and the plan goes on).
Decisions are never made here: the test accuracy is recorded, not used.

    SAFS_DATA=../shared/data python tools/retrain_finals.py --epochs 5 30 [--allocations global erk] [--seeds 0-9]
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback
from dataclasses import asdict, fields, replace
from pathlib import Path

import torch

from safs_lite.cli import seeds_arg
from safs_lite.data.builtin import load_data
from safs_lite.method.activations import get_alpha_beta
from safs_lite.paths import results_dir
from safs_lite.run.folders import load_json, save_json
from safs_lite.study.shipped import load_network
from safs_lite.training.loop import TrainConfig, evaluate, finetune_with
from safs_lite.version import KIT_VERSION

CELLS = {  # cell -> (record holding its operators and final training config, whether stage 2 learns alpha/beta)
    "magnitude_pruning": (None, False),
    "stage2": ("stage2.json", True),
    "uniform": ("baseline_uniform.json", False),
    "uniform_safs": ("baseline_uniform_safs.json", True),
    "stage1": ("stage1.json", False),
    "safs": ("safs.json", True),
}
ALLOCATIONS = ("layerwise", "global", "erk", "protected")
ENGINE = "compact"  # the engine of every committed 99% run's finals


def cell_plan(run: Path, cell: str) -> tuple[dict, TrainConfig, bool]:
    """(operators, the final retrain's TrainConfig at the run's budget, learn alpha/beta) of one cell of a run."""
    record, learn = CELLS[cell]
    if record is None:  # magnitude pruning: ReLU, the training defaults with the run's seed and finetune budget
        res = load_json(run / "results.json")
        cfg = res["config"]
        train = {**cfg["train_defaults"], "seed": cfg["seed"], "epochs": cfg["budgets"]["finetune_epochs"]}
        return {site: "relu" for site in res["activations"]["stage1"]}, config_of(train), False
    rec = load_json(run / record)
    return rec["activations"], config_of(rec["train"]), learn


def config_of(train: dict) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in train.items() if k in names})


def committed(run: Path, cell: str) -> float:
    res = load_json(run / "results.json")
    if cell in res["test_accuracy"]:
        return res["test_accuracy"][cell]
    return res["baselines"][cell]["test_accuracy"]


def retrain_cell(run: Path, cell: str, epochs: int, data, engine: str = ENGINE, seed: int | None = None,
                 params: dict | None = None) -> dict:
    """One cell retrained for `epochs` on `engine`, with training seed `seed` (None: the run's own); `params`
    overrides hyperparameters of the cell's recorded configuration (an HPO trial's, in tools/hpo_transfer.py)."""
    ops, cfg, learn = cell_plan(run, cell)
    cfg = replace(cfg, epochs=epochs, engine=engine, seed=cfg.seed if seed is None else seed, **(params or {}))
    pruned = load_network(run / "pruned.pt")
    t0 = time.process_time()
    model, history = finetune_with(pruned, data, ops, cfg, learn_scales=learn)
    return {"val_accuracy": evaluate(model, data, "val")["accuracy"],
            "test_accuracy": evaluate(model, data, "test")["accuracy"],
            "operators": ops, "alpha_beta": {k: list(v) for k, v in get_alpha_beta(model).items()},
            "train": asdict(cfg), "learn_scales": learn, "cpu_seconds": time.process_time() - t0,
            "val_by_epoch": [h["val_acc"] for h in history]}


def train_seed_arg(text: str) -> int | None:
    """'own' (the run's own training seed) or an integer >= 0."""
    if text == "own":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a training seed is 'own' or an integer >= 0")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, nargs="+", default=[5, 30], help="the budgets to retrain at (default 5 30)")
    p.add_argument("--allocations", nargs="*", default=list(ALLOCATIONS), choices=ALLOCATIONS)
    p.add_argument("--presets", nargs="*", default=["sweep", "cpu"], choices=["sweep", "cpu"])
    p.add_argument("--seeds", type=seeds_arg, default=seeds_arg("0-9"))
    p.add_argument("--cells", nargs="*", default=list(CELLS), choices=list(CELLS))
    p.add_argument("--engine", default=ENGINE, choices=["compact", "dense"],
                   help="the engine to retrain on (default compact, the runs' own)")
    p.add_argument("--train-seeds", type=train_seed_arg, nargs="+", default=[None],
                   help="training seeds to retrain with, 'own' for each run's own (default: own)")
    args = p.parse_args(argv)
    if min(args.epochs) < 1:
        p.error(f"--epochs {min(args.epochs)}: must be >= 1")
    torch.set_num_threads(1)
    root = results_dir() / "evidence"
    out_dir = root / "finals"
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = [root / "runs" / f"safs-lenet5-mnist-0.99-{a}-{pr}-s{s}" for s in args.seeds for a in args.allocations
            for pr in args.presets]
    for run in [r for r in runs if (r / "results.json").exists()]:
        res = load_json(run / "results.json")
        own = res["config"]["budgets"]["finetune_epochs"]
        data = load_data(res["config"]["dataset"], seed=res["config"]["seed"], quiet=True)
        if data.signature != res["data"]["signature"]:
            print(f"{run.name}: made on data {res['data']['signature']}, found {data.signature}: skipped "
                  "(point SAFS_DATA at the run's data)", file=sys.stderr)
            continue
        for epochs, tseed in [(e, t) for e in args.epochs for t in args.train_seeds]:
            own_seed = tseed is None or tseed == res["config"]["seed"]
            tag = "" if own_seed and args.engine == ENGINE else f"-{args.engine}-t{res['config']['seed'] if own_seed else tseed}"
            path = out_dir / f"{run.name}-e{epochs}{tag}.json"
            done = load_json(path) if path.exists() else {
                "run": run.name, "epochs": epochs, "own_epochs": own, "kit": KIT_VERSION, "engine": args.engine,
                "train_seed": res["config"]["seed"] if own_seed else tseed,
                "torch": torch.__version__, "threads": 1, "data": data.signature, "cells": {}}
            for cell in args.cells:
                if cell in done["cells"] and "error" not in done["cells"][cell]:
                    continue
                if CELLS[cell][0] and not (run / CELLS[cell][0]).exists():
                    continue  # a baseline this run did not compute
                try:
                    done["cells"][cell] = retrain_cell(run, cell, epochs, data, args.engine, tseed)
                    done["cells"][cell]["committed_test_accuracy"] = committed(run, cell)
                except Exception as err:  # noqa: BLE001 - recorded, the plan goes on
                    done["cells"][cell] = {"error": f"{type(err).__name__}: {err}",
                                           "traceback": traceback.format_exc(limit=3)}
                save_json(path, done)
                c = done["cells"][cell]
                print(f"{run.name}{tag} {cell} e{epochs}: " + (
                    f"test {c['test_accuracy']:.2f} (committed at {own} epochs: {c['committed_test_accuracy']:.2f}), "
                    f"{c['cpu_seconds']:.0f} CPU s" if "error" not in c else c["error"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
