"""Does a landscape table's cheap fitness rank vectors like a 30-epoch fine-tune? A fixed sample, retrained.

The table (`safs_lite.study.landscape`) scores every operator vector with stage 1's cheap fidelity (1 epoch on
10,000 images at lr 1e-2 by default). What it stands for is the accuracy a vector reaches after a full
retrain: the `stage1` cell's retrain (the run's own final training configuration from its `stage1.json`: the
dense hyperparameters, alpha = beta = 1) for `epochs` epochs (30: the paper's setting's final budget), compact
engine, one thread. This draws a fixed random sample of vector indices (seeded), retrains each, and sets the
cheap fitness beside the final validation accuracy:

- Spearman's rho over the sample, and among the vectors that learn (final validation accuracy above the
  majority class's share by more than `LEARNS` points), with the number of each;
- the rows in `<table folder>/fidelity-e<epochs>-s<seed>.csv`, one per vector, written after each (an
  interrupted check resumes; the cheap numbers come from the table where it has the vector, else are computed
  with the table's own fidelity, the same numbers).

Validation only: the test split is never read.

    SAFS_DATA=../shared/data python -m safs_lite.study.landscape_fidelity \\
        results/evidence/runs/safs-lenet5-mnist-0.99-layerwise-cpu-s0 [--sample 100] [--epochs 30]
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from ..run.folders import load_json
from ..training.fitness import tiebreak_score
from ..training.loop import TrainConfig, evaluate, finetune_with
from ..method.operators import SEARCH_SPACE
from .landscape import Fidelity, Mask, _start, load_table, majority_share, vector_of

SAMPLE = 100
LEARNS = 5.0  # points above the majority class's share: a vector whose retrain gets there learns something
ROW = ["index", "cheap_val_acc", "cheap_val_loss", "final_val_acc", "final_val_loss", "final_seconds"]


def sample_indices(total: int, k: int, seed: int = 0) -> list[int]:
    """k distinct vector indices in [0, total): the first k of one seeded permutation, so a larger sample keeps
    a smaller one's vectors (growing the check reuses what it retrained)."""
    if not 1 <= k <= total:
        raise ValueError(f"sample {k}: must be between 1 and the {total} vectors")
    return [int(i) for i in np.random.default_rng(seed).permutation(total)[:k]]


def final_config(run: Path, epochs: int) -> TrainConfig:
    """The run's stage-1 final retrain configuration at `epochs` epochs on the compact engine."""
    train = load_json(run / "stage1.json")["train"]
    names = {f.name for f in fields(TrainConfig)}
    return replace(TrainConfig(**{k: v for k, v in train.items() if k in names}), epochs=epochs, engine="compact")


def retrain(mask: Mask, ops: tuple[str, ...], cfg: TrainConfig) -> dict:
    t0 = time.process_time()
    model, _ = finetune_with(mask.network, mask.data, dict(zip(mask.sites, ops)), cfg)
    val = evaluate(model, mask.data, "val")
    return {"final_val_acc": val["accuracy"], "final_val_loss": val["loss"],
            "final_seconds": round(time.process_time() - t0, 2)}


def check(run: str | os.PathLike, sample: int = SAMPLE, epochs: int = 30, seed: int = 0,
          fidelity: Fidelity = Fidelity(), root=None, data_root=None, progress: bool = True) -> Path:
    """Retrain the sample's missing vectors and append their rows; returns the CSV's path."""
    from tqdm.auto import tqdm

    torch.set_num_threads(1)
    mask = Mask(run, data_root)
    folder = _start(mask, fidelity, root)
    path = folder / f"fidelity-e{epochs}-s{seed}.csv"
    done = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=ROW)
    table = load_table(folder).set_index("index") if any(folder.glob("chunk-*.csv.gz")) else None
    cfg = final_config(mask.run, epochs)
    todo = [i for i in sample_indices(len(SEARCH_SPACE) ** len(mask.sites), sample, seed) if i not in set(done["index"])]
    for index in tqdm(todo, desc=f"{mask.run.name}: {epochs}-epoch retrains", disable=not progress):
        ops = vector_of(index, len(mask.sites))
        if table is not None and index in table.index:
            cheap = {"val_acc": table.at[index, "val_acc"], "val_loss": table.at[index, "val_loss"]}
        else:
            cheap = mask.evaluate(ops, fidelity)
        row = {"index": index, "cheap_val_acc": cheap["val_acc"], "cheap_val_loss": cheap["val_loss"],
               **retrain(mask, ops, cfg)}
        done = pd.concat([done, pd.DataFrame([row], columns=ROW)], ignore_index=True)
        tmp = path.with_suffix(".part")
        done.to_csv(tmp, index=False, float_format="%.6g")
        tmp.replace(path)
    return path


def summarise(rows: pd.DataFrame, majority: float) -> dict:
    """rho of the cheap fitness (accuracy, loss breaking ties) against the final validation accuracy, over all
    rows and over those that learn (final accuracy above majority + LEARNS)."""
    fit = np.array([tiebreak_score(a, l) for a, l in zip(rows["cheap_val_acc"], rows["cheap_val_loss"])])
    final = rows["final_val_acc"].to_numpy(float)
    learns = final > majority + LEARNS

    def rho(mask_):
        return float(sps.spearmanr(fit[mask_], final[mask_]).statistic) if mask_.sum() >= 3 else math.nan
    return {"vectors": int(len(rows)), "rho": rho(np.ones(len(rows), bool)), "learning": int(learns.sum()),
            "rho_learning": rho(learns), "cpu_hours": float(rows["final_seconds"].sum() / 3600)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", help="a committed evidence run folder (results/evidence/runs/...)")
    p.add_argument("--sample", type=int, default=SAMPLE, help=f"vectors to retrain (default {SAMPLE})")
    p.add_argument("--epochs", type=int, default=30, help="the retrain's epochs (default 30)")
    p.add_argument("--seed", type=int, default=0, help="the sample's seed (default 0)")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs {args.epochs}: must be >= 1")
    try:
        path = check(args.run, args.sample, args.epochs, args.seed)
    except ValueError as err:
        p.error(str(err))
    s = summarise(pd.read_csv(path), majority_share(args.run))
    print(f"{path}: {s['vectors']} vectors retrained for {args.epochs} epochs ({s['cpu_hours']:.2f} CPU-hours); "
          f"Spearman rho of the table's fitness against their validation accuracy {s['rho']:+.3f}; among the "
          f"{s['learning']} that learn (more than {LEARNS:g} points above the majority class) {s['rho_learning']:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

