"""Run (or resume) the evidence study of issue 18: many seeds per allocation, one run at a time, one thread.

    SAFS_DATA=/path/to/data python tools/run_evidence.py --plan table1 --seeds 0-9
    SAFS_DATA=/path/to/data python tools/run_evidence.py --plan allocations --seeds 0-9
    SAFS_DATA=/path/to/data python tools/run_evidence.py --plan table1 --baselines uniform swish uniform_safs

Plans:
- ``table1``: the paper's setting, 99% layer-wise, `cpu` preset, baselines uniform and swish.
- ``allocations``: 99% under global, erk, protected and layer-wise, `sweep` preset (cheaper: 5-epoch
  retrains, 9 LAHC candidates on 10,000 images, 6 HPO trials), baselines uniform and swish.
- ``sweep``: 90, 95, 98, 99.5% under layer-wise, global and erk, `sweep` preset (the accuracy-versus-
  sparsity figure; 99% comes from ``allocations``).
- ``fashion``: the second dataset, Fashion-MNIST (`--dataset fashion_mnist`), 99% layer-wise and 99% global at
  the `cpu` preset (30-epoch finals), baselines uniform, swish and uniform_safs: the whole factorial per run.

A run that fails (a diverged stage, a bad file, anything) is recorded in results/evidence/failed/<run>.json
with its error and the plan goes on; a later success removes the record. `tools/collect_evidence.py` lists
the failed and missing seeds per setting.

Runs go seed by seed (every allocation of seed 0 first), so a study cut short still pairs its seeds. A
run already collected in results/evidence/runs with every requested baseline (`--baselines`, default uniform
and swish) is skipped, whichever kit version made it (`--rerun-older` reruns those of older versions), so the study grows across sessions from what is
committed. Baselines are not part of a run's key: asking for one more (`--baselines uniform swish
uniform_safs`, the best uniform operator given SAFS's stage 2) reads every other stage of a finished run
folder back and computes only the new baseline (a run folder no longer in the runs folder is run again).
Each run is `run_safs` with its run folder named from its key; a finished run is read back, an
interrupted one resumes. Several processes may run plans side by side: each seed's dense network is
trained under a file lock, once. Collect finished runs with `tools/collect_evidence.py`.
"""
from __future__ import annotations

import argparse
import fcntl
import sys
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

import torch

from safs_lite.cli import seeds_arg
from safs_lite.data.builtin import load_data
from safs_lite.paths import results_dir, runs_dir
from safs_lite.run.baselines import DEFAULT_BASELINES, check_baselines
from safs_lite.run.config import TRAIN_DEFAULTS, SAFSConfig
from safs_lite.run.folders import load_json, save_json
from safs_lite.run.key import run_prefix
from safs_lite.run.pipeline import train_dense
from safs_lite.run.safs import run_safs
from safs_lite.version import KIT_VERSION

PLANS = {
    "table1": [("cpu", 0.99, "layerwise")],
    "allocations": [("sweep", 0.99, p) for p in ("global", "erk", "protected", "layerwise")],
    "sweep": [("sweep", s, p) for p in ("layerwise", "global", "erk") for s in (0.9, 0.95, 0.98, 0.995)],
    "fashion": [("cpu", 0.99, p) for p in ("layerwise", "global")],
}
PLAN_DATASETS = {"fashion": "fashion_mnist"}  # every other plan: mnist
PLAN_BASELINES = {"fashion": ("uniform", "swish", "uniform_safs")}
BASELINES = DEFAULT_BASELINES  # uniform and swish; --baselines asks for others (baselines.BASELINES)


def threads_arg(text: str) -> int:
    """A thread count >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a whole number >= 1")
    return int(text)


def plan_baselines(shipped: Path, baselines, rerun_older: bool = False) -> tuple[str, ...] | None:
    """The baselines a run computes, or None when it is done: collected at `shipped` (its results.json) with every
    one of `baselines`, by this kit version or (unless `rerun_older`) an older one: a collected run is a record of
    the kit that made it (results.json says which), kept when the kit moves on. A run collected with other
    baselines keeps them too (results.json lists only the baselines a run was asked for), so adding one never drops
    another from the study."""
    res = load_json(shipped) if shipped.exists() else {}
    current = bool(res) and (res.get("kit") == KIT_VERSION or not rerun_older)
    have = tuple(res.get("baselines", {})) if current else ()
    if current and set(baselines) <= set(have):
        return None
    return check_baselines([*baselines, *have])


def failed_dir() -> Path:
    return results_dir() / "evidence" / "failed"


def record_failure(cfg: SAFSConfig, err: BaseException) -> Path:
    """results/evidence/failed/<run>.json: the run's config, the error and where it happened; returns the path."""
    path = failed_dir() / f"{run_prefix(asdict(cfg))}.json"
    save_json(path, {"run": run_prefix(asdict(cfg)), "config": asdict(cfg), "kit": KIT_VERSION,
                     "error": f"{type(err).__name__}: {err}",
                     "traceback": traceback.format_exception(type(err), err, err.__traceback__)[-3:],
                     "when": time.strftime("%Y-%m-%d %H:%M:%S")})
    return path


def run_one(cfg: SAFSConfig, baselines) -> dict | None:
    """One run of the plan (dense network under a file lock, then `run_safs`); None if it failed (recorded)."""
    try:
        data = load_data(cfg.dataset, seed=cfg.seed, quiet=True)
        lock = runs_dir() / f".dense-{cfg.model}-{cfg.dataset}-s{cfg.seed}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "w") as handle:  # one process trains each dense network; the others load it
            fcntl.flock(handle, fcntl.LOCK_EX)
            base = replace(TRAIN_DEFAULTS[cfg.model], seed=cfg.seed)
            train_dense(cfg.model, data, replace(base, epochs=cfg.budgets().dense_epochs), progress=False)
        res = run_safs(cfg, progress=False, baselines=baselines)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # noqa: BLE001 - recorded with its error; the plan goes on
        path = record_failure(cfg, err)
        print(f"{run_prefix(asdict(cfg))}: FAILED ({type(err).__name__}: {err}); recorded in {path}", flush=True)
        return None
    (failed_dir() / f"{run_prefix(asdict(cfg))}.json").unlink(missing_ok=True)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--plan", choices=list(PLANS), required=True)
    p.add_argument("--seeds", type=seeds_arg, default=seeds_arg("0-9"))
    p.add_argument("--threads", type=threads_arg, default=1)
    p.add_argument("--allocations", nargs="*", default=None, metavar="NAME",
                   help="run only the plan's settings with these allocations (e.g. global erk), to grow some first")
    p.add_argument("--baselines", nargs="*", default=list(BASELINES), metavar="NAME",
                   help=f"baselines every run computes (default: {' '.join(BASELINES)}); a finished run lacking one "
                        "computes only that one")
    p.add_argument("--rerun-older", action="store_true",
                   help="also rerun collected runs made by an older kit version (default: keep them)")
    args = p.parse_args(argv)
    if args.baselines == list(BASELINES) and args.plan in PLAN_BASELINES:
        args.baselines = list(PLAN_BASELINES[args.plan])
    try:
        baselines = check_baselines(args.baselines)
    except ValueError as err:
        p.error(str(err))
    settings = PLANS[args.plan]
    if args.allocations is not None:
        unknown = sorted(set(args.allocations) - {a for _, _, a in settings})
        if unknown:
            p.error(f"allocation(s) {', '.join(unknown)} not in plan {args.plan!r}; valid: "
                    f"{', '.join(dict.fromkeys(a for _, _, a in settings))}")
        settings = [s for s in settings if s[2] in args.allocations]
    torch.set_num_threads(args.threads)
    failures = 0
    for seed in args.seeds:
        for preset, sparsity, pruning in settings:
            cfg = SAFSConfig(sparsity=sparsity, pruning=pruning, preset=preset, seed=seed,
                             dataset=PLAN_DATASETS.get(args.plan, "mnist")).validate()
            shipped = results_dir() / "evidence" / "runs" / run_prefix(asdict(cfg)) / "results.json"
            wanted = plan_baselines(shipped, baselines, args.rerun_older)
            if wanted is None:
                continue  # collected by an earlier session (runs/ is not kept between sessions, results/ is)
            t0 = time.perf_counter()
            res = run_one(cfg, wanted)
            if res is None:
                failures += 1
                continue
            acc = res["test_accuracy"]
            base_acc = " ".join(f"{n} {b['test_accuracy']:.2f}" for n, b in res["baselines"].items())
            print(f"{preset} {sparsity:g} {pruning} s{seed}: MP {acc['magnitude_pruning']:.2f} stage1 "
                  f"{acc['stage1']:.2f} stage2 {acc['stage2']:.2f} SAFS {acc['safs']:.2f} | {base_acc} "
                  f"({time.perf_counter() - t0:.0f} s; {res['seconds']['total']:.0f} s of compute)", flush=True)
    if failures:
        print(f"{failures} run(s) failed: see {failed_dir()}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
