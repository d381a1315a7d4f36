"""Equal footing: LAHC given as many distinct evaluations as the single-operator scan, on the committed sweep runs.

The `sweep` preset's stage 1 runs LAHC for 8 steps (8-9 distinct candidate fine-tunes) while the `uniform`
baseline scans all 13 operators of the library, so "SAFS against the best single operator" compares a search
with fewer evaluations against one with more. For each committed 99% `sweep` run this extends the run's own LAHC
(`stage1_search.csv`, replayed step by step, not recomputed: the same seed, history and move) until it has
scored len(SEARCH_SPACE) = 13 distinct vectors, with the run's own stage-1 fitness, then retrains the best
vector at the finals' budget (`--epochs`, default 30) the two ways the factorial needs:

- `stage1_equal`: with the dense hyperparameters (as `stage1` and `uniform` are retrained);
- `safs_equal`: with stage 2 (an HPO study of the preset's trials on these operators, learned alpha and beta),
  as `safs` and `uniform_safs` are.

`safs_lite.study.factorial` then compares stage1_equal - uniform and safs_equal - uniform_safs at equal
evaluation counts. The `cpu` preset's LAHC already scores 34-41 vectors (more than the scan): its runs are not
extended. Every retrain runs on the compact engine, one thread, like tools/retrain_finals.py. Where the longer
search ends on the run's own operators, the two cells are the run's `stage1` and `safs` at the same budget: they
are taken from results/evidence/finals/<run>-e<E>.json (marked `same_as`) when it has them. Writes
results/evidence/equal/<run>-e<epochs>.json after every step (resumable: the extended search log is
results/evidence/equal/<run>_search.csv); a cell that fails is recorded with its error. Validation decides
everything; the test accuracy is recorded, not used.

    SAFS_DATA=../shared/data python tools/equal_search.py [--allocations global erk] [--seeds 0-9] [--epochs 30]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

import torch

from safs_lite.cli import seeds_arg
from safs_lite.data.builtin import load_data
from safs_lite.method.activations import SEARCH_SPACE, get_alpha_beta
from safs_lite.method.lahc import SearchConfig, lahc
from safs_lite.paths import results_dir
from safs_lite.run.baselines import candidate_config
from safs_lite.run.config import PRESETS
from safs_lite.run.folders import load_json, save_json
from safs_lite.run.hpo import best_config
from safs_lite.run.pipeline import stage2_study
from safs_lite.study.shipped import load_network
from safs_lite.training.fitness import candidate_fitness
from safs_lite.training.loop import TrainConfig, evaluate, finetune_with
from safs_lite.version import KIT_VERSION

ALLOCATIONS = ("layerwise", "global", "erk", "protected")
ENGINE = "compact"


def extend_search(run: Path, data, out_csv: Path, budget: int = len(SEARCH_SPACE)) -> dict:
    """The run's own LAHC, replayed from its log and continued one step at a time until `budget` distinct vectors."""
    res = load_json(run / "results.json")
    cfg, budgets = res["config"], PRESETS[res["config"]["preset"]]
    base = TrainConfig(**{**cfg["train_defaults"], "seed": cfg["seed"]})
    if not out_csv.exists():
        shutil.copy2(run / "stage1_search.csv", out_csv)
    score = candidate_fitness(load_network(run / "pruned.pt"), data, candidate_config(budgets, base), cfg["fitness"])
    sites = list(res["activations"]["stage1"])
    steps = budgets.lahc_steps
    while True:
        sc = SearchConfig(steps=steps, history=budgets.lahc_history, move=cfg["move"], seed=cfg["seed"])
        result = lahc(score, sites, SEARCH_SPACE, sc, csv_path=out_csv, progress=False)
        if steps == budgets.lahc_steps and result.best != res["activations"]["stage1"]:
            raise ValueError(f"{run.name}: replaying the run's own search did not find its stage-1 operators")
        if result.evaluations >= budget or steps > 50 * budget:
            return {"operators": result.best, "best_val_fitness": result.best_fitness,
                    "evaluations": result.evaluations, "steps": steps + 1, "own_evaluations":
                    load_json(run / "stage1.json")["search"]["evaluations"]}
        steps += 1


def same_as_finals(run: Path, ops: dict, finals: Path) -> dict:
    """When the longer search ends on the run's own stage-1 operators, its two cells are the run's `stage1` and
    `safs` retrained at the same budget (same operators, configuration, seed and engine; the rebuilt stage-2 study
    proposes the trials the run's did): taken from the finals file, marked as such, instead of computed twice."""
    if ops != load_json(run / "results.json")["activations"]["stage1"] or not finals.exists():
        return {}
    cells = load_json(finals)["cells"]
    return {eq: {**cells[own], "same_as": f"{finals.name}:{own} (the longer search kept the run's operators)"}
            for eq, own in (("stage1_equal", "stage1"), ("safs_equal", "safs"))
            if own in cells and "error" not in cells[own]}


def retrain(run: Path, data, ops: dict, cfg: TrainConfig, learn: bool) -> dict:
    t0 = time.process_time()
    model, history = finetune_with(load_network(run / "pruned.pt"), data, ops, cfg, learn_scales=learn)
    return {"val_accuracy": evaluate(model, data, "val")["accuracy"],
            "test_accuracy": evaluate(model, data, "test")["accuracy"], "operators": ops,
            "alpha_beta": {k: list(v) for k, v in get_alpha_beta(model).items()}, "train": asdict(cfg),
            "learn_scales": learn, "cpu_seconds": time.process_time() - t0,
            "val_by_epoch": [h["val_acc"] for h in history]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--allocations", nargs="*", default=list(ALLOCATIONS), choices=ALLOCATIONS)
    p.add_argument("--seeds", type=seeds_arg, default=seeds_arg("0-9"))
    p.add_argument("--epochs", type=int, default=30, help="the finals' budget (default 30)")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs {args.epochs}: must be >= 1")
    torch.set_num_threads(1)
    root = results_dir() / "evidence"
    out_dir = root / "equal"
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = [root / "runs" / f"safs-lenet5-mnist-0.99-{a}-sweep-s{s}" for s in args.seeds for a in args.allocations]
    failures = 0
    for run in [r for r in runs if (r / "results.json").exists() and (r / "stage1_search.csv").exists()]:
        res = load_json(run / "results.json")
        cfg = res["config"]
        data = load_data(cfg["dataset"], seed=cfg["seed"], quiet=True)
        if data.signature != res["data"]["signature"]:
            print(f"{run.name}: made on data {res['data']['signature']}, found {data.signature}: skipped "
                  "(point SAFS_DATA at the run's data)", file=sys.stderr)
            continue
        path = out_dir / f"{run.name}-e{args.epochs}.json"
        done = load_json(path) if path.exists() else {"run": run.name, "epochs": args.epochs, "kit": KIT_VERSION,
                                                      "engine": ENGINE, "data": data.signature, "cells": {}}
        base = TrainConfig(**{**cfg["train_defaults"], "seed": cfg["seed"], "engine": ENGINE})
        try:
            if "search" not in done:
                done["search"] = extend_search(run, data, out_dir / f"{run.name}_search.csv")
                save_json(path, done)
            ops = done["search"]["operators"]
            reuse = same_as_finals(run, ops, root / "finals" / f"{run.name}-e{args.epochs}.json")
            for cell, rec in reuse.items():
                if cell not in done["cells"] or "error" in done["cells"][cell]:
                    done["cells"][cell] = rec
                    save_json(path, done)
            if "stage1_equal" not in done["cells"] or "error" in done["cells"]["stage1_equal"]:
                done["cells"]["stage1_equal"] = retrain(run, data, ops, replace(base, epochs=args.epochs), False)
                save_json(path, done)
            if "safs_equal" not in done["cells"] or "error" in done["cells"]["safs_equal"]:
                with tempfile.TemporaryDirectory() as folder:
                    study = stage2_study(load_network(run / "pruned.pt"), data, ops, PRESETS[cfg["preset"]], base,
                                         cfg["seed"], folder, "safs", progress=False)
                    cell_cfg = best_config(study, replace(base, epochs=args.epochs))
                done["cells"]["safs_equal"] = retrain(run, data, ops, cell_cfg, True)
                save_json(path, done)
        except Exception as err:  # noqa: BLE001 - recorded, the plan goes on
            failures += 1
            done.setdefault("errors", []).append({"error": f"{type(err).__name__}: {err}",
                                                  "traceback": traceback.format_exc(limit=3)})
            save_json(path, done)
            print(f"{run.name}: FAILED ({type(err).__name__}: {err})", flush=True)
            continue
        cells = done["cells"]
        print(f"{run.name}: LAHC {done['search']['own_evaluations']} -> {done['search']['evaluations']} evaluations; "
              f"stage1_equal {cells['stage1_equal']['test_accuracy']:.2f}, safs_equal "
              f"{cells['safs_equal']['test_accuracy']:.2f} (test, %, {args.epochs} epochs)", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
