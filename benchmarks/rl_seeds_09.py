"""Notebook 09's multi-seed numbers: the magnitude-pruning sweep on several fine-tune seeds and MP vs SAFS on ten.

Computed once and read by `notebooks/09_sparse_rl_policy.ipynb` (the notebook reruns a short part of it live:
the dense policy, the sweep and one comparison seed, and shows that its live numbers match this file's).

1. The dense policy (`--dense-seed`, the preset's budget), as the notebook trains it.
2. Layer-wise magnitude pruning + fine-tuning at each of `--sparsities` on each of `--sweep-seeds`, scored on the
   validation episodes; the breaking point is `rl.break_point` of the MEDIAN over those seeds.
3. `rl.pruned_stages` (MP, stage 1, stage 2, SAFS) at that breaking point on each of `--seeds` (other seeds than
   the sweep's, so the comparison is not run on the fine-tunes that chose the sparsity), from the same pruned
   policy; held-out evaluation returns, operators, alpha/beta and learning rates per seed.

    .venv/bin/python benchmarks/rl_seeds_09.py            # writes results/rl/09_cartpole_seeds.json

Each task runs one thread in its own process (`--workers` at a time); the numbers do not depend on the number of
workers. Measured: 574 s with 2 workers on a shared 2-core CPU (the file records its own `seconds`).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from safs_lite.method.pruning import clone, layer_counts, prune_model
from safs_lite.rl import policy as rl
from safs_lite.version import KIT_VERSION

STAGES = ("magnitude_pruning", "stage1", "stage2", "safs")
_STATE: dict = {}


def _setup(env: str, preset: str, dense_state: dict, obs: int, acts: int) -> None:
    torch.set_num_threads(1)
    dense = rl.build_policy(obs, acts)
    dense.load_state_dict(dense_state)
    _STATE.update(env=env, p=rl.check_preset(preset), dense=dense)


def _sweep_task(job: tuple[float, int]) -> tuple[float, int, float, float]:
    sparsity, seed = job
    t0 = time.perf_counter()
    p, env = _STATE["p"], _STATE["env"]
    pruned = prune_model(clone(_STATE["dense"]), sparsity, "layerwise")
    val = rl.finetune(pruned, env, rl.get_activations(pruned), p.finetune_updates, p, seed)[2]
    return sparsity, seed, float(val), time.perf_counter() - t0


def _stages_task(job: tuple[float, int]) -> tuple[int, dict]:
    sparsity, seed = job
    t0 = time.perf_counter()
    p, env = _STATE["p"], _STATE["env"]
    pruned = prune_model(clone(_STATE["dense"]), sparsity, "layerwise")
    with tempfile.TemporaryDirectory(prefix="safs_09_") as out:
        runs = rl.pruned_stages(pruned, env, p, seed, Path(out))
    rec = {}
    for stage in STAGES:
        r = runs[stage]
        rec[stage] = {"test_return": r["test_return"], "val_return": r["val_return"], "activations": r["activations"]}
        if stage in ("stage2", "safs"):
            rec[stage]["alpha_beta"] = r["alpha_beta"]
            rec[stage]["hyperparameters"] = r["hyperparameters"]
        if stage == "stage1":
            rec[stage]["evaluations"] = r["search"]["evaluations"]
    rec["seconds"] = time.perf_counter() - t0
    return seed, rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--dense-seed", type=int, default=0)
    ap.add_argument("--sparsities", type=float, nargs="+", default=[0.8, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99])
    ap.add_argument("--sweep-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10, 20)))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="results/rl/09_cartpole_seeds.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    p = rl.check_preset(args.preset)
    obs, acts = rl._spaces(args.env)
    dense = rl.build_policy(obs, acts, seed=args.dense_seed)
    rl.train(dense, args.env, p.dense_updates, p.episodes, p.lr, None, p.max_steps, args.dense_seed)
    val_seeds = rl.episode_seeds("validation", p.val_episodes)
    dense_val = float(np.mean(rl.evaluate(dense, args.env, val_seeds, p.max_steps)))
    dense_eval = rl.evaluate(dense, args.env, rl.episode_seeds("evaluation", p.eval_episodes), p.max_steps)
    t_dense = time.perf_counter() - t_start
    print(f"dense: validation {dense_val:.1f}, evaluation {np.mean(dense_eval):.1f} ({t_dense:.0f} s)", flush=True)

    ctx = mp.get_context("fork")
    init = (args.env, args.preset, dense.state_dict(), obs, acts)
    with ctx.Pool(args.workers, initializer=_setup, initargs=init) as pool:
        t0 = time.perf_counter()
        jobs = [(s, seed) for s in args.sparsities for seed in args.sweep_seeds]
        sweep: dict[str, dict[str, float]] = {}
        for s, seed, val, sec in pool.imap_unordered(_sweep_task, jobs):
            sweep.setdefault(f"{s:g}", {})[str(seed)] = val
            print(f"sweep {s:g} seed {seed}: validation {val:.1f} ({sec:.0f} s)", flush=True)
        t_sweep = time.perf_counter() - t0
        median = {float(s): float(np.median(list(v.values()))) for s, v in sweep.items()}
        at = rl.break_point(median, dense_val, rl.worst_return(args.env))
        print(f"breaking point (median over seeds {args.sweep_seeds}): {at}", flush=True)
        if at is None:
            raise SystemExit("magnitude pruning never broke on these sparsities; add higher ones")
        t0 = time.perf_counter()
        stages = {}
        for seed, rec in pool.imap_unordered(_stages_task, [(at, seed) for seed in args.seeds]):
            stages[str(seed)] = rec
            print(f"seed {seed}: " + ", ".join(f"{k} {rec[k]['test_return']:.1f}" for k in STAGES)
                  + f" ({rec['seconds']:.0f} s)", flush=True)
        t_stages = time.perf_counter() - t0
    kept = {name: k for name, (n, k) in layer_counts(prune_model(clone(dense), at, "layerwise")).items()}
    result = {
        "command": "python benchmarks/rl_seeds_09.py", "kit_version": KIT_VERSION, "env": args.env,
        "preset": args.preset, "pruning": "layerwise", "dense_seed": args.dense_seed, "dense_val": dense_val,
        "dense_eval": dense_eval, "sweep_seeds": args.sweep_seeds,
        "sweep": {k: dict(sorted(v.items(), key=lambda kv: int(kv[0]))) for k, v in
                  sorted(sweep.items(), key=lambda kv: float(kv[0]))},
        "break_point": at, "kept_at_break": kept, "seeds": args.seeds,
        "stages": dict(sorted(stages.items(), key=lambda kv: int(kv[0]))),
        "seconds": {"dense": t_dense, "sweep": t_sweep, "stages": t_stages, "total": time.perf_counter() - t_start},
        "workers": args.workers,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out} ({result['seconds']['total']:.0f} s)")


if __name__ == "__main__":
    main()
