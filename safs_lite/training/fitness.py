"""Stage-1 fitness: how one candidate operator vector is scored (higher is better).

A candidate is a short fine-tune of the pruned checkpoint with the candidate's
operators (alpha = beta = 1), scored on the validation split only. What the
score reads from that fine-tune's last epoch is the fitness:

- ``val_acc``: validation accuracy (the reference code's). At 99% layer-wise
  sparsity most 3-epoch candidates sit at the majority-class accuracy, so
  LAHC compares ties.
- ``val_loss``: minus the validation cross-entropy (continuous, never ties).
- ``acc_tiebreak``: validation accuracy, validation loss breaking ties
  (`tiebreak_score`).

`benchmarks/fidelity.py` measures how well each ranks candidates against a
long fine-tune (Spearman rho); docs/ranking_fidelity.md holds
its numbers and the presets' choice.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

from torch import nn

from ..data.core import Data
from .loop import NonFiniteLossError, TrainConfig, finetune_with

TIEBREAK_WEIGHT = 1e-6  # below one image's share of accuracy (100 / n points) for any split of n < 10**8 images


def tiebreak_score(val_acc: float, val_loss: float) -> float:
    """Validation accuracy with validation loss as the tie-break, as one float: it orders as (accuracy, -loss).

    Accuracy on a validation split of n images moves in steps of 100/n points (0.01 for MNIST's
    10,000, 0.002 for ImageNet-16's 50,000). The loss term, 1e-6 x loss / (1 + loss), lies in
    [0, 1e-6) (exactly 1e-6 for a non-finite loss), below one image's step for any split of
    fewer than 10**8 images: no loss outweighs one more correct image, and among equal
    accuracies the lower loss wins (the term grows with the loss, without a cap).

    Example:
        >>> tiebreak_score(11.35, 2.30) > tiebreak_score(11.35, 2.31)
        True
        >>> tiebreak_score(10.002, 9.0) > tiebreak_score(10.000, 0.1)  # one image of 50,000
        True
    """
    term = val_loss / (1.0 + val_loss) if math.isfinite(val_loss) and val_loss >= 0 else 1.0
    return val_acc - TIEBREAK_WEIGHT * term


FITNESSES: dict[str, Callable[[dict], float]] = {
    "val_acc": lambda row: row["val_acc"],
    "val_loss": lambda row: -row["val_loss"],
    "acc_tiebreak": lambda row: tiebreak_score(row["val_acc"], row["val_loss"]),
}

FITNESS_LABELS = {
    "val_acc": "validation accuracy (%)",
    "val_loss": "minus validation loss",
    "acc_tiebreak": "validation accuracy (%), loss breaks ties",
}


def fitness_label(results: dict) -> str:
    """The y-axis label of a run's stage-1 fitness (runs made before the choice existed used val_acc)."""
    return FITNESS_LABELS[results["config"].get("fitness", "val_acc")]


def check_fitness(name: str) -> str:
    """Return `name` if it is a known fitness, else raise ValueError listing the valid ones."""
    if name not in FITNESSES:
        raise ValueError(f"unknown fitness {name!r}; valid: {', '.join(FITNESSES)}")
    return name


def score(name: str, row: dict) -> float:
    """The fitness `name` of one epoch's history row (keys val_acc, val_loss)."""
    return FITNESSES[check_fitness(name)](row)


def candidate_fitness(pruned: nn.Module, data: Data, cfg: TrainConfig,
                      name: str = "acc_tiebreak") -> Callable[[dict[str, str]], float]:
    """The stage-1 objective: operator vector -> fitness of a short fine-tune.

    Args:
        pruned: the pruned checkpoint every candidate starts from (left untouched).
        data: the dataset; only its validation split is scored.
        cfg: the candidate's budget and hyperparameters (only the last epoch is validated).
        name: a key of FITNESSES.

    Returns:
        ``fitness(ops) -> float`` to maximise, for `lahc.lahc` or `lahc.random_search`. A
        candidate whose fine-tune diverges (non-finite loss) gets the worst score: accuracy 0,
        loss infinite.
    """
    check_fitness(name)
    cfg = replace(cfg, select="last")

    def fitness(ops: dict[str, str]) -> float:
        try:
            _, history = finetune_with(pruned, data, ops, cfg)
        except NonFiniteLossError:  # a vector whose fine-tune diverges scores as badly as possible
            return score(name, {"val_acc": 0.0, "val_loss": math.inf})
        return score(name, history[-1])

    return fitness
