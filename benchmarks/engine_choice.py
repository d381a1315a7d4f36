"""How `engine="auto"` chooses between the dense and the compact engine, measured: the cost model and its constants.

The compact engine is faster where the plan skips most of the work and slower where it does not (most units
alive, as global pruning leaves them, or a batch of one, where its extra gathers and layout changes dominate).
`compact.predicted_ms` predicts each engine's training step from what the plan keeps (`compact.plan_work`:
multiply-adds, activation/pooling elements, steps) and the batch size, with the constants `compact.AUTO_COST`;
auto takes the engine predicted faster. This script measures both engines on a grid of pruned LeNet-5s
(layer-wise, global and ERK masks at 50-99.5% of a LeNet-5 trained one epoch on 10,000 images, plus the
committed evidence study's 99% masks) at batch 1, 16, 64 and 256: process CPU ms per training step (forward,
cross-entropy, backward, Adam step), one thread, engines interleaved, fastest of the rounds. It fits the
constants (non-negative least squares per engine on steps, batch x MACs and batch x elements), then prints per
row the measured and predicted times and which engine each rule picks: the old rule (compact from 80% pruned
weights on), the cost model with the constants in the code, and with the constants fitted now. The summary is
the total time of the grid under each rule against always taking the faster engine.

    OMP_NUM_THREADS=1 SAFS_DATA=../shared/data python benchmarks/engine_choice.py [--quick] [--rounds 3]
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.optimize import nnls

from safs_lite.data.builtin import load_data
from safs_lite.method.pruning import clone, prune_model
from safs_lite.nets.models import build_model
from safs_lite.paths import results_dir
from safs_lite.study.shipped import load_network
from safs_lite.training import compact as C
from safs_lite.training.loop import TrainConfig, make_optimizer, train

FEATURES = ("step", "mac", "element")


def step_ms(model, engine: str, x, y, steps: int, rounds: int) -> float:
    """Fastest round's process CPU ms per training step on `engine`."""
    best = float("inf")
    net = C.engine_for(model, engine)
    opt = make_optimizer(model, TrainConfig())
    for _ in range(rounds):
        for _ in range(2):  # warm-up (plans, allocator)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        t0 = time.process_time()
        for _ in range(steps):
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        best = min(best, (time.process_time() - t0) * 1000 / steps)
    return best


def masks(quick: bool) -> list[tuple[str, torch.nn.Module]]:
    data = load_data("mnist", quiet=True)
    base = build_model("lenet5", seed=0)
    train(base, data, TrainConfig(epochs=1, train_subset=10_000, engine="dense", select="last"), progress=False)
    out = []
    sparsities = (0.5, 0.9, 0.99) if quick else (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995)
    for pruning in ("layerwise", "global", "erk"):
        for s in sparsities:
            out.append((f"{pruning} {100 * s:g}%", prune_model(clone(base), s, pruning)))
    runs = results_dir() / "evidence" / "runs"
    for name in ("layerwise-cpu", "global-sweep", "erk-sweep", "protected-sweep")[: 1 if quick else 4]:
        path = runs / f"safs-lenet5-mnist-0.99-{name}-s0" / "pruned.pt"
        if path.exists():
            out.append((f"evidence {name.split('-')[0]} 99% s0", load_network(path)))
    return out


def predict(work: dict, const: dict, batch: int) -> float:
    return const["step"] * work["steps"] + batch * (const["mac"] * work["macs"] + const["element"] * work["elements"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="3 sparsities, batches 1 and 256, 1 round (a smoke test)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--csv", default=None, help="also write the timings and features to this CSV file")
    args = p.parse_args()
    torch.set_num_threads(1)
    batches = (1, 256) if args.quick else (1, 16, 64, 256)
    rounds = 1 if args.quick else args.rounds
    rows = []
    for label, model in masks(args.quick):
        work = C.plan_work(model, (1, 28, 28))
        share = C._pruned_share(model)
        for batch in batches:
            g = torch.Generator().manual_seed(batch)
            x, y = torch.rand(batch, 1, 28, 28, generator=g), torch.randint(0, 10, (batch,), generator=g)
            steps = max(5, min(200, int(4000 / batch)))
            ms = {e: step_ms(model, e, x, y, steps, rounds) for e in ("dense", "compact")}
            rows.append({"mask": label, "pruned": share, "batch": batch, "dense_ms": ms["dense"],
                         "compact_ms": ms["compact"], **{f"{e}_{k}": v for e in work for k, v in work[e].items()}})
            print(f"{label:24s} batch {batch:4d}: dense {ms['dense']:8.3f} ms, compact {ms['compact']:8.3f} ms",
                  flush=True)
    df = pd.DataFrame(rows)
    if args.csv:
        df.to_csv(args.csv, index=False)
    fitted = {}
    for e in ("dense", "compact"):
        design = np.column_stack([df[f"{e}_steps"], df["batch"] * df[f"{e}_macs"], df["batch"] * df[f"{e}_elements"]])
        scale = design.max(0)
        scale[scale == 0] = 1
        coef, _ = nnls(design / scale, df[f"{e}_ms"].to_numpy())
        fitted[e] = dict(zip(FEATURES, coef / scale))
    print("\nfitted constants (ms per step, per multiply-add x image, per element x image):")
    for e in fitted:
        print(f"  {e:8s} " + ", ".join(f"{k} {v:.4g}" for k, v in fitted[e].items())
              + "   | in the code: " + ", ".join(f"{k} {C.AUTO_COST[e][k]:.4g}" for k in FEATURES))
    for name, const in (("code", C.AUTO_COST), ("fitted", fitted)):
        for e in ("dense", "compact"):
            df[f"{name}_{e}"] = [predict({"steps": r[f"{e}_steps"], "macs": r[f"{e}_macs"],
                                          "elements": r[f"{e}_elements"]}, const[e], r["batch"])
                                 for r in df.to_dict("records")]
        df[f"{name}_pick"] = np.where(df[f"{name}_compact"] < df[f"{name}_dense"], "compact", "dense")
    df["faster"] = np.where(df["compact_ms"] < df["dense_ms"], "compact", "dense")
    df["old_pick"] = np.where(df["pruned"] >= C.AUTO_MIN_SPARSITY, "compact", "dense")
    best = df[["dense_ms", "compact_ms"]].min(axis=1)
    print("\n| mask | batch | dense ms | compact ms | faster | old rule | cost model (code) | predicted d / c ms |")
    print("|---|---:|---:|---:|---|---|---|---|")
    for r in df.itertuples():
        print(f"| {r.mask} | {r.batch} | {r.dense_ms:.3f} | {r.compact_ms:.3f} | {r.faster} | {r.old_pick} | "
              f"{r.code_pick} | {r.code_dense:.3f} / {r.code_compact:.3f} |")
    print("\n| rule | right choices | grid time (ms, sum of one step per row) | over the fastest |")
    print("|---|---:|---:|---:|")
    for rule in ("old_pick", "code_pick", "fitted_pick"):
        t = np.where(df[rule] == "compact", df["compact_ms"], df["dense_ms"])
        print(f"| {rule.replace('_pick', '')} | {int((df[rule] == df['faster']).sum())}/{len(df)} | {t.sum():.2f} | "
              f"{100 * (t.sum() / best.sum() - 1):+.1f}% |")
    print(f"| always the faster | {len(df)}/{len(df)} | {best.sum():.2f} | +0.0% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
