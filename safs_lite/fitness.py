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
long fine-tune (Spearman rho); the README's "Ranking fidelity" table holds
its numbers and the presets' choice.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

from torch import nn

from .data import Data
from .training import NonFiniteLossError, TrainConfig, finetune_with


def tiebreak_score(val_acc: float, val_loss: float) -> float:
    """Validation accuracy with validation loss as the tie-break, as one float.

    Accuracy on a validation split of n images moves in steps of 100/n (0.01 points for
    MNIST's 10,000); the loss term, 0.001 x min(loss, 9.99) < 0.01, only orders vectors
    whose accuracies are equal, so the lower loss wins a tie instead of a coin toss.

    Example:
        >>> tiebreak_score(11.35, 2.30) > tiebreak_score(11.35, 2.31)
        True
        >>> tiebreak_score(11.36, 9.0) > tiebreak_score(11.35, 0.1)
        True
    """
    return val_acc - 1e-3 * (min(val_loss, 9.99) if math.isfinite(val_loss) else 9.99)


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
