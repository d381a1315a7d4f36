"""The baselines a SAFS run computes after stage 1, each retrained exactly as stage 1 is.

Stage 1 asks "which operator per layer?". These methods ask the reviewer's
questions at the same budget, from the same pruned checkpoint, with the same
candidate fitness (validation split only) and the same final retrain (the
preset's fine-tune epochs, alpha = beta = 1):

- ``uniform``: one operator for every layer, the best of the searched library
  by the stage-1 fitness (one evaluation per operator, fewer than LAHC's).
- ``swish``: Swish (x * sigmoid(x)) in every layer, no search. The fixed smooth
  operator the sparse-training literature recommends: Tessera, Hooker and Rosman
  (2021) show smooth activations keep gradients flowing in sparse networks, and
  Jaiswal et al. (ICML 2022) use Swish/Mish in sparse training; Swish is also in
  the library (Mish is not searched), so the comparison stays inside the search space.
- ``random``: random search at LAHC's evaluation count.
- ``sa``: simulated annealing at LAHC's evaluation count.
- ``ga``: a genetic algorithm at LAHC's evaluation count.

Each baseline's record is `<run>/baseline_<name>.json` (plus its search CSV),
computed once and read back on a rerun; which baselines a run computes is not
part of its key, since no other number depends on them.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from torch import nn

from .activations import SEARCH_SPACE, get_activations
from .config import Preset
from .data import Data
from .fitness import candidate_fitness
from .lahc import random_search
from .metaheuristics import genetic_algorithm, simulated_annealing, uniform_scan
from .searchlog import SearchResult
from .training import TrainConfig

# A search: (objective, sites, ops, evaluations, seed, csv path, progress) -> SearchResult, or None (no search).
Search = Callable[..., SearchResult]


@dataclass(frozen=True)
class Baseline:
    """One baseline: what it chooses operators with, and what it is for (one line)."""

    label: str                        # in tables and figure legends
    search: Search | None             # None: `fixed` operator everywhere, no evaluation
    fixed: str | None = None          # the operator of a fixed baseline
    equal_budget: bool = False        # spends LAHC's evaluation count


def _uniform(objective, sites, ops, evaluations, seed, csv, progress):
    return uniform_scan(objective, sites, ops, csv_path=csv, progress=progress)


def _random(objective, sites, ops, evaluations, seed, csv, progress):
    return random_search(objective, sites, ops, evaluations, seed=seed, csv_path=csv, progress=progress)


def _sa(objective, sites, ops, evaluations, seed, csv, progress):
    return simulated_annealing(objective, sites, ops, evaluations, seed=seed, csv_path=csv, progress=progress)


def _ga(objective, sites, ops, evaluations, seed, csv, progress):
    return genetic_algorithm(objective, sites, ops, evaluations, seed=seed, csv_path=csv, progress=progress)


BASELINES: dict[str, Baseline] = {
    "uniform": Baseline("best uniform operator", _uniform),
    "swish": Baseline("swish everywhere", None, fixed="swish"),
    "random": Baseline("random search", _random, equal_budget=True),
    "sa": Baseline("simulated annealing", _sa, equal_budget=True),
    "ga": Baseline("genetic algorithm", _ga, equal_budget=True),
}

# What `run` computes when not told otherwise: the two cheap baselines that separate "search" from "any
# smooth or single operator" (about a third of a seed's cost at the cpu preset); random, sa and ga cost a
# stage 1 each and are asked for by name (`--baselines uniform swish random sa ga`).
DEFAULT_BASELINES: tuple[str, ...] = ("uniform", "swish")


def check_baselines(names) -> tuple[str, ...]:
    """The names as a tuple, in registry order, or ValueError naming the unknown one and the valid ones."""
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    for name in names:
        if name not in BASELINES:
            raise ValueError(f"unknown baseline {name!r}; valid: {', '.join(BASELINES)}")
    return tuple(n for n in BASELINES if n in names)


def choose(name: str, pruned: nn.Module, data: Data, cfg: TrainConfig, fitness: str, evaluations: int,
           seed: int = 0, out: str | os.PathLike | None = None, progress: bool = True) -> dict:
    """Baseline `name`'s operator vector and its search record (validation split only).

    Args:
        name: a key of BASELINES.
        pruned: the pruned checkpoint every candidate starts from (left untouched).
        data: the dataset; candidates are scored on its validation split.
        cfg: a candidate's training config (stage 1's: `pipeline.candidate_config`).
        fitness: stage 1's fitness.
        evaluations: LAHC's evaluation count (for the equal-budget searches).
        seed: seeds the search.
        out: run folder for the search CSV (<out>/baseline_<name>_search.csv); None keeps it in memory.
        progress: progress bars.

    Returns:
        {"ops": site -> operator, "search": {method, best_val_fitness, evaluations, history_csv, seconds}}.
    """
    spec = BASELINES[check_baselines(name)[0]]
    sites = list(get_activations(pruned))
    t0 = time.perf_counter()
    if spec.search is None:
        ops = {site: spec.fixed for site in sites}
        return {"ops": ops, "search": {"method": name, "best_val_fitness": None, "evaluations": 0,
                                        "history_csv": None, "seconds": 0.0}}
    csv = Path(out) / f"baseline_{name}_search.csv" if out is not None else None
    result = spec.search(candidate_fitness(pruned, data, cfg, fitness), sites, SEARCH_SPACE, evaluations, seed, csv,
                         progress)
    return {"ops": result.best, "search": {"method": name, "best_val_fitness": result.best_fitness,
                                           "evaluations": result.evaluations,
                                           "history_csv": csv.name if csv else None,
                                           "seconds": time.perf_counter() - t0}}


def candidate_config(budgets: Preset, base: TrainConfig) -> TrainConfig:
    """A stage-1 candidate's training config: the preset's candidate epochs, subset and learning rate."""
    return replace(base, epochs=budgets.candidate_epochs, train_subset=budgets.candidate_subset,
                   lr=budgets.candidate_lr or base.lr)
