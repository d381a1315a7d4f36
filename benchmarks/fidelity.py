"""Ranking fidelity: which cheap stage-1 fitness ranks operator vectors as a long fine-tune does?

On the seed-0 mask of LeNet-5 / MNIST at 99% layer-wise sparsity (the cpu preset's dense network),
a fixed, seeded sample of operator vectors (all-ReLU plus `--vectors` random ones) is fine-tuned for
`--reference-epochs` epochs with the stage-1 retraining's hyperparameters (Adam, lr 1e-3); the
reference score of a vector is its best validation accuracy over that run. Each cheap fitness is then
scored by its Spearman rank correlation with the reference, its cost in seconds per candidate, and
the fraction of candidates it leaves at the majority-class level (the largest class's share of the
validation split: the network predicts one class). `rho_learning` is the same correlation over the
vectors that learn at all in the reference (above the majority level): how well a fitness orders the
candidates a search must choose between, once the dead ones are told apart.

Fitnesses measured (validation split only; the test split is never read):
  val_acc, val_loss, acc_tiebreak   after k epochs at the reference's lr 1e-3 (read from the first
                                    k epochs of the reference runs: constant LR and the same seed make
                                    them identical to a k-epoch run) and after k epochs at lr 1e-2
  grad_norm, fisher                 training-free, on the pruned network at its start, from
                                    `--free-batches` training batches

Every fine-tune is cached in <runs>/fidelity-<hash>/ (one JSON file per vector and setting), so the
reference is paid once and an interrupted run resumes. `--shard i/n` computes one share of the
fine-tunes, so two processes can split the work on 2 cores; the table needs all of them.

    SAFS_DATA=../shared/data python benchmarks/fidelity.py [--threads 1] [--shard 0/2]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from safs_lite import load_data, prune_model
from safs_lite.method.activations import SEARCH_SPACE, activation_sites, get_activations
from safs_lite.method.pruning import clone
from safs_lite.paths import figures_dir, runs_dir
from safs_lite.run.config import PRESETS, TRAIN_DEFAULTS
from safs_lite.run.folders import load_json, save_json
from safs_lite.run.pipeline import train_dense
from safs_lite.training.fitness import FITNESSES, tiebreak_score
from safs_lite.training.loop import finetune_with


def sample_vectors(sites: list[str], n: int, seed: int = 0) -> list[dict]:
    """All-ReLU first, then `n` distinct uniform vectors over the search space (seeded)."""
    rng = random.Random(seed)
    vectors, seen = [{s: "relu" for s in sites}], set()
    while len(vectors) < n + 1:
        v = {s: rng.choice(SEARCH_SPACE) for s in sites}
        if tuple(v.values()) not in seen:
            seen.add(tuple(v.values()))
            vectors.append(v)
    return vectors


def vec_name(v: dict) -> str:
    return "-".join(v.values())


def run_finetune(folder: Path, pruned, data, ops: dict, cfg, tag: str) -> dict:
    """Fine-tune with per-epoch validation; cached as <folder>/<tag>-<ops>.json."""
    path = folder / f"{tag}-{vec_name(ops)}.json"
    if path.exists():
        return load_json(path)
    t0 = time.perf_counter()
    _, history = finetune_with(pruned, data, ops, cfg)
    rec = {"ops": ops, "train": asdict(cfg), "history": history, "seconds": time.perf_counter() - t0}
    save_json(path, rec)
    return rec


def free_scores(pruned, data, ops: dict, batches: int, batch_size: int = 256, seed: int = 0) -> dict:
    """Training-free scores of the pruned network at its start (alpha = beta = 1), on training batches.

    grad_norm: the norm of the loss gradient w.r.t. the kept weights (how much the loss can move).
    fisher: the summed squared (activation x gradient) at every activation site (Theis et al. 2018's
    channel-saliency estimate, summed over the network).
    """
    from safs_lite.method.activations import set_activations

    model = set_activations(clone(pruned), ops).train()
    gen = torch.Generator().manual_seed(seed)
    outs: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(module, inputs, output):  # returns None: the output is not replaced
            output.retain_grad()
            outs[name] = output
        return hook

    hooks = [site.register_forward_hook(keep(name)) for name, site in activation_sites(model).items()]
    t0 = time.perf_counter()
    grad_sq = fisher = 0.0
    for b, (xb, yb) in enumerate(data.batches("train", batch_size, shuffle=True, generator=gen)):
        if b == batches:
            break
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        for name, p in model.named_parameters():
            if p.grad is not None and name.endswith("weight_orig"):
                mask = dict(model.named_buffers())[name.replace("weight_orig", "weight_mask")]
                grad_sq += float(((p.grad * mask) ** 2).sum())
        for o in outs.values():
            fisher += float((o.detach() * o.grad).sum(dim=tuple(range(1, o.dim()))).pow(2).sum()) / len(yb)
    for h in hooks:
        h.remove()
    return {"grad_norm": grad_sq ** 0.5, "fisher": fisher, "seconds": time.perf_counter() - t0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--vectors", type=int, default=24, help="random vectors besides all-ReLU")
    p.add_argument("--reference-epochs", type=int, default=30)
    p.add_argument("--short-epochs", type=int, default=3, help="k for the lr 1e-2 runs (1..k are read)")
    p.add_argument("--fast-lr", type=float, default=1e-2)
    p.add_argument("--free-batches", type=int, default=8)
    p.add_argument("--shard", default="0/1", help="i/n: compute every n-th fine-tune starting at i")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data", default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shard, shards = (int(s) for s in args.shard.split("/"))

    data = load_data("mnist", root=args.data, seed=0)
    base = replace(TRAIN_DEFAULTS["lenet5"], seed=0)
    dense, dense_rec = train_dense("lenet5", data, replace(base, epochs=PRESETS["cpu"].dense_epochs))
    pruned = prune_model(clone(dense), 0.99, "layerwise")
    sites = list(get_activations(pruned))
    vectors = sample_vectors(sites, args.vectors)
    key = {"bench": "fidelity", "data": data.signature, "dense": dense_rec["config"], "sparsity": 0.99,
           "pruning": "layerwise", "vectors": [vec_name(v) for v in vectors], "base": asdict(base)}
    folder = runs_dir() / f"fidelity-{hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]}"
    folder.mkdir(parents=True, exist_ok=True)
    save_json(folder / "config.json", key)
    print(f"data: {data.source}; cache: {folder}", flush=True)

    ref_cfg = replace(base, epochs=args.reference_epochs, select="best")
    fast_cfg = replace(base, epochs=args.short_epochs, lr=args.fast_lr, select="best")
    jobs = [(j, v, cfg, tag) for j, v in enumerate(vectors)
            for cfg, tag in ((fast_cfg, f"lr{args.fast_lr:g}"), (ref_cfg, "ref"))]
    for i, (j, v, cfg, tag) in enumerate(jobs):
        if j % shards == shard:  # by vector, so shards get equal work
            rec = run_finetune(folder, pruned, data, v, cfg, tag)
            print(f"[{i + 1}/{len(jobs)}] {tag} {vec_name(v)}: best val {max(r['val_acc'] for r in rec['history']):.2f}"
                  f" ({rec['seconds']:.0f} s)", flush=True)
    missing = [f"{tag}-{vec_name(v)}" for _, v, _, tag in jobs if not (folder / f"{tag}-{vec_name(v)}.json").exists()]
    if missing:
        print(f"{len(missing)} fine-tunes still missing (other shards); rerun without --shard when they are done")
        return

    majority = 100.0 * torch.bincount(data.val.y).max().item() / len(data.val)
    rows, scores = [], {}
    for v in vectors:
        ref = load_json(folder / f"ref-{vec_name(v)}.json")["history"]
        fast = load_json(folder / f"lr{args.fast_lr:g}-{vec_name(v)}.json")["history"]
        s = {"reference": max(r["val_acc"] for r in ref)}
        for lr_tag, hist in (("1e-3", ref), (f"{args.fast_lr:g}", fast)):
            for k in range(1, args.short_epochs + 1 if lr_tag != "1e-3" else 6):
                if k > len(hist) or (lr_tag == "1e-3" and k not in (1, 3, 5)):
                    continue
                secs = sum(r["seconds"] for r in hist[:k])
                last = hist[k - 1]
                for name in ("val_acc", "val_loss", "acc_tiebreak"):
                    value = tiebreak_score(last["val_acc"], last["val_loss"]) if name == "acc_tiebreak" \
                        else (last["val_acc"] if name == "val_acc" else -last["val_loss"])
                    s[(name, lr_tag, k)] = (value, secs, last["val_acc"])
        free = free_scores(pruned, data, v, args.free_batches)
        s[("grad_norm", "-", 0)] = (free["grad_norm"], free["seconds"], None)
        s[("fisher", "-", 0)] = (free["fisher"], free["seconds"], None)
        scores[vec_name(v)] = s
    ref = pd.Series({n: s["reference"] for n, s in scores.items()})
    learning = ref > majority + 0.5  # vectors that learn at all in the long fine-tune
    for fkey in [k for k in next(iter(scores.values())) if k != "reference"]:
        vals = pd.Series({n: s[fkey][0] for n, s in scores.items()})
        accs = [s[fkey][2] for s in scores.values()]
        at_major = sum(a is not None and a <= majority + 0.5 for a in accs) / len(accs) if accs[0] is not None \
            else float("nan")
        rows.append({"fitness": fkey[0], "lr": fkey[1], "epochs": fkey[2],
                     "seconds": sum(s[fkey][1] for s in scores.values()) / len(scores),
                     "spearman_rho": spearmanr(vals, ref).statistic,
                     "rho_learning": spearmanr(vals[learning], ref[learning]).statistic, "at_majority": at_major})
    table = pd.DataFrame(rows).sort_values("spearman_rho", ascending=False)
    out = figures_dir() / "fidelity.csv"
    table.to_csv(out, index=False, float_format="%.4f")
    pd.DataFrame({"vector": ref.index, "reference_val_acc": ref.values}).to_csv(folder / "reference.csv", index=False)
    print(f"\n{len(vectors)} vectors ({int(learning.sum())} learn); reference: best val accuracy in "
          f"{args.reference_epochs} epochs (Adam 1e-3), {ref.min():.2f}-{ref.max():.2f}% (all-ReLU {ref.iloc[0]:.2f}%); "
          f"majority class {majority:.2f}%")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"written: {out}")
    print(f"fitnesses registered for stage 1: {', '.join(FITNESSES)}")


if __name__ == "__main__":
    main()
