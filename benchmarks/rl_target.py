"""Issue 21's targets for the sparse RL policy (`safs_lite.rl.policy`), printed as tables.

1. Dense: the `--preset` dense policy's greedy return on every held-out evaluation seed (target: the
   environment's maximum, 500 on CartPole-v1, on every seed).
2. Breaking point: on training seed `--seeds[0]`, magnitude pruning + fine-tuning at each of
   `--sparsities`, scored on the VALIDATION seeds; the break is the lowest sparsity whose MP return is
   at most half the dense validation return.
3. MP vs SAFS at the break over `--seeds` (full `rl.run_rl` runs, cached in `--runs`, resumable):
   held-out evaluation returns, SAFS / MP ratio (target >= 1.5) and `stats.paired`'s interval.

    OMP_NUM_THREADS=1 python benchmarks/rl_target.py --env CartPole-v1 --preset cpu --seeds 0 1 2 3 4

Measured (CartPole-v1, cpu preset, 1 thread on a shared 2-core CPU, 45-65 s per seed for the whole pipeline):
- dense: 500 on every one of the 10 evaluation seeds, for each of the 5 training seeds.
- MP validation return (seed 0): layerwise 500 at 0.8 / 0.9 / 0.95, 51.4 at 0.96, 11.4 at 0.97, 9.4 at 0.98;
  global 500 at 0.95, 9.4 at 0.96 and above.
- layerwise 0.96 (the break): SAFS 96.2 vs MP 39.2 over seeds 0-4, ratio 2.46, difference +57.1,
  BCa 95% [-2.0, +132.6], Wilcoxon p 0.63, W/T/L 3/0/2. The gain comes from stage 2 (alpha/beta and the
  tuned learning rates): stage 1 returned the dense operators (tanh, tanh) on all five seeds.
- layerwise 0.98: SAFS 31.6 vs MP 24.4, ratio 1.30, [-15.1, +44.4]; global 0.96: 21.9 vs 17.4, ratio 1.26,
  [-0.1, +18.2]. Most seeds there collapse to one action (return 9-10) whatever the operators.
So the 1.5x target is met on the mean at layerwise 0.96 but the paired interval includes zero: not shown.

Acrobot-v1 (`--env Acrobot-v1 --sparsity 0.95 --seeds 0 1 2 3 4`, cpu preset, returns are minus the steps taken,
-500 = never swung up; 4-12 min per seed on a loaded 2-core CPU): dense -77.6 to -92.9; MP -384.2 on average
(-500 on 2 seeds); stage 1 rescues 3 of 5 seeds to the dense level (-81.5, -95.7, -78.3); SAFS -289.2, difference
+95.0, BCa 95% [-12.9, +291.9], Wilcoxon p 0.5, W/T/L 2/2/1: stage 2's tuned rates undo stage 1's rescue on seed
2 (-95.7 -> -500). Not shown at n = 5.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from safs_lite.method.pruning import clone, prune_model
from safs_lite.rl import policy as rl
from safs_lite.study import stats


def sweep(env: str, sparsities: list[float], pruning: str, preset: str, seed: int) -> tuple[float, list[tuple]]:
    """Dense validation return and (sparsity, MP validation return, seconds) per sparsity."""
    p = rl.check_preset(preset)
    obs, acts = rl._spaces(env)
    dense = rl.build_policy(obs, acts, seed=seed)
    rl.train(dense, env, p.dense_updates, p.episodes, p.lr, None, p.max_steps, seed)
    val = rl.episode_seeds("validation", p.val_episodes)
    dense_val = float(np.mean(rl.evaluate(dense, env, val, p.max_steps)))
    rows = []
    for s in sparsities:
        t0 = time.perf_counter()
        pruned = prune_model(clone(dense), s, pruning)
        mp_val = rl.finetune(pruned, env, rl.get_activations(pruned), p.finetune_updates, p, seed)[2]
        rows.append((s, mp_val, time.perf_counter() - t0))
    return dense_val, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--pruning", default="layerwise")
    ap.add_argument("--sparsities", type=float, nargs="+", default=[0.8, 0.9, 0.95, 0.98])
    ap.add_argument("--sparsity", type=float, default=None, help="skip the sweep: compare at this sparsity")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--runs", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    at = args.sparsity
    if at is None:
        dense_val, rows = sweep(args.env, args.sparsities, args.pruning, args.preset, args.seeds[0])
        print(f"\nMP sweep on validation seeds (seed {args.seeds[0]}), dense validation return {dense_val:.1f}")
        print(f"{'sparsity':>8} {'MP val return':>13} {'seconds':>7}")
        for s, v, sec in rows:
            print(f"{s:>8g} {v:>13.1f} {sec:>7.0f}")
        at = rl.break_point({s: v for s, v, _ in rows}, dense_val, rl.worst_return(args.env))
        if at is None:
            print("MP never lost half its lead over the worst return on these sparsities; add higher ones")
            return
    print(f"\nMP vs SAFS at {at:g} {args.pruning} sparsity, preset {args.preset} (held-out evaluation seeds)")
    print(f"{'seed':>4} {'dense':>6} {'dense min':>9} {'MP':>6} {'stage1':>6} {'stage2':>6} {'SAFS':>6} {'s':>5}")
    mp, sf = [], []
    for seed in args.seeds:
        res = rl.run_rl(args.env, at, args.pruning, args.preset, seed, runs=args.runs, progress=False)
        low = min(res["test_returns"]["dense"])  # the dense policy's worst evaluation episode
        t = res["test_return"]
        mp.append(t["magnitude_pruning"])
        sf.append(t["safs"])
        print(f"{seed:>4} {t['dense']:>6.1f} {low:>9.1f} {t['magnitude_pruning']:>6.1f} {t['stage1']:>6.1f} "
              f"{t['stage2']:>6.1f} {t['safs']:>6.1f} {res['seconds']['total']:>5.0f}", flush=True)
    c = stats.paired(sf, mp)
    # the 1.5x target is a ratio of positive returns (CartPole); Acrobot's returns are negative step counts
    ratio = (f"ratio {np.mean(sf) / np.mean(mp):.2f} (target >= 1.5)" if min(np.mean(sf), np.mean(mp)) > 0
             else "no ratio (returns not positive; read the difference)")
    print(f"SAFS {c['mean_a']:.1f} vs MP {c['mean_b']:.1f}: {ratio}, diff "
          f"{c['mean_diff']:+.1f} [{c['ci_low']:+.1f}, {c['ci_high']:+.1f}] ({c['ci_method']}), Wilcoxon p "
          f"{c['p_wilcoxon']:.3g}, W/T/L {c['wins']}/{c['ties']}/{c['losses']}")


if __name__ == "__main__":
    main()
