"""The baselines a SAFS run computes after stage 1: each retrained exactly as stage 1 is, or given SAFS's stage 2.

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

One baseline is on equal footing with SAFS itself rather than with stage 1:

- ``uniform_safs``: the best uniform operator (``uniform``'s operators, read from its record when the run
  has it, else the same single-operator scan), then exactly SAFS's stage 2 (`pipeline.stage2`: the Optuna
  study of hyperparameters and learned alpha/beta, same budgets, seed and storage). SAFS is stage 2 on
  LAHC's operators; this is stage 2 on a single-operator scan's, so SAFS - uniform_safs asks what the
  per-layer search adds once both get stage 2 (stage 1 - uniform cannot: stage 2 is SAFS's alone there).

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

from ..data.core import Data
from ..method.activations import SEARCH_SPACE, get_activations
from ..method.lahc import random_search
from ..method.metaheuristics import genetic_algorithm, simulated_annealing, uniform_scan
from ..method.searchlog import SearchResult
from ..training.fitness import candidate_fitness
from ..training.loop import TrainConfig
from .config import Preset
from .folders import load_json

# A search: (objective, sites, ops, evaluations, seed, csv path, progress) -> SearchResult, or None (no search).
Search = Callable[..., SearchResult]


@dataclass(frozen=True)
class Baseline:
    """One baseline: what it chooses operators with, and what it is for (one line)."""

    label: str                        # in tables and figure legends
    search: Search | None             # None: `fixed` operator everywhere, no evaluation
    fixed: str | None = None          # the operator of a fixed baseline
    equal_budget: bool = False        # spends LAHC's evaluation count
    ops_of: str | None = None         # takes this baseline's operators (its record if the run has it, else its search)
    stage2: bool = False              # then SAFS's stage 2 (HPO, learned alpha/beta) instead of stage 1's retrain


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
    "uniform_safs": Baseline("best uniform operator + stage 2", None, ops_of="uniform", stage2=True),
}

# What `run` computes when not told otherwise: the two cheap baselines that separate "search" from "any
# smooth or single operator" (about a third of a seed's cost at the cpu preset); random, sa and ga cost a
# stage 1 each and are asked for by name (`--baselines uniform swish random sa ga`); uniform_safs costs a
# stage 2 (SAFS's equal-footing comparison: `--baselines uniform swish uniform_safs`).
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
        {"ops": site -> operator, "search": {method, best_val_fitness, evaluations, history_csv, seconds}};
        a baseline taking another's operators (`Baseline.ops_of`) adds "ops_from": the record they were
        read from (<out>/baseline_<other>.json), or "search" when that baseline's search ran here (its CSV
        is that baseline's: the same scan, resumed or read back by either).
    """
    spec = BASELINES[check_baselines(name)[0]]
    if spec.ops_of is not None:
        record = Path(out) / f"baseline_{spec.ops_of}.json" if out is not None else None
        if record is not None and record.exists():
            found = load_json(record)
            chosen = {"ops": found["activations"],
                      "search": {**found["search"], "ops_from": record.name, "seconds": 0.0}}
        else:
            chosen = choose(spec.ops_of, pruned, data, cfg, fitness, evaluations, seed, out, progress)
            chosen["search"]["ops_from"] = "search"
        chosen["search"]["method"] = name
        return chosen
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
