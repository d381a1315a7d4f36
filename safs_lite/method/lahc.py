"""Stage 1's searches over per-layer operators: Late Acceptance Hill Climbing, and random search as its baseline.

The objective is any callable ``vector -> fitness`` (fitness is maximised), so the
search can be shown on a toy objective before it drives fine-tuning runs. Random
search with the same evaluation budget is the baseline. Both searches cache
evaluated vectors, append one CSV row per step as they go, and resume from that
CSV without re-evaluating finished steps (`safs_lite.method.searchlog`). No torch here on purpose.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .searchlog import Objective, SearchLog, SearchResult, Vector


@dataclass(frozen=True)
class SearchConfig:
    """Settings of one LAHC run; the defaults are the paper's."""

    steps: int = 20  # LAHC moves (paper: 20)
    history: int = 3  # LAHC history length L (paper: 3)
    move: str = "reference"  # "reference" (set one layer, then swap two) or "one_layer"
    seed: int = 0


# ---------------------------------------------------------------- the two rules


def lahc_accepts(fitness: float, current: float, late: float) -> bool:
    """LAHC acceptance: no worse than the current state or than the state L steps ago.

    Args:
        fitness: fitness of the candidate.
        current: fitness of the current state.
        late: fitness recorded in the history slot of this step (L steps ago).

    Returns:
        True if the candidate becomes the current state.
    """
    return fitness >= current or fitness >= late


def _set_one_layer(vector: Vector, layers: Sequence[str], ops: Sequence[str], rng: random.Random) -> Vector:
    """Copy of ``vector`` with one random layer set to a random operator (maybe the same one)."""
    new = dict(vector)
    new[rng.choice(layers)] = rng.choice(ops)
    return new


def _reference_move(vector: Vector, layers: Sequence[str], ops: Sequence[str], rng: random.Random) -> Vector:
    """The reference code's move: set one random layer to a random op, then swap two layers' ops."""
    new = _set_one_layer(vector, layers, ops, rng)
    if len(layers) > 1:  # nothing to swap with a single layer
        a, b = rng.sample(list(layers), 2)
        new[a], new[b] = new[b], new[a]
    return new


MOVES: dict[str, Callable[[Vector, Sequence[str], Sequence[str], random.Random], Vector]] = {
    "reference": _reference_move,
    "one_layer": _set_one_layer,
}


def get_move(name: str) -> Callable[[Vector, Sequence[str], Sequence[str], random.Random], Vector]:
    """Look up a move by name.

    Args:
        name: a key of ``MOVES``.

    Returns:
        ``move(vector, layers, ops, rng) -> new vector``; the input is not modified.
    """
    return MOVES[check_move(name)]


def check_move(name: str) -> str:
    """Return `name` if it is a known move, else raise ValueError listing the valid ones."""
    if name not in MOVES:
        raise ValueError(f"unknown move {name!r}; valid moves: {', '.join(sorted(MOVES))}")
    return name


# ---------------------------------------------------------------- the searches


def lahc(
    objective: Objective,
    layers: Sequence[str],
    ops: Sequence[str],
    config: SearchConfig = SearchConfig(),
    init: Vector | None = None,
    csv_path: str | Path | None = None,
    progress: bool = True,
) -> SearchResult:
    """Late Acceptance Hill Climbing (Burke & Bykov) over per-layer operator vectors.

    Step 0 evaluates the initial state (random op per layer unless ``init``);
    steps 1..``config.steps`` each propose one move. Revisited vectors come from
    the cache. With ``csv_path``, rows are appended as they finish, and a rerun
    with the same arguments replays the finished steps from the file instead of
    calling ``objective`` again.

    Args:
        objective: ``vector -> fitness`` to maximise (e.g. validation accuracy).
        layers: ordered layer names.
        ops: operator names to choose from.
        config: steps, history length L, move and seed.
        init: initial vector (layer -> op); random when None.
        csv_path: history file to append to and resume from; None keeps it in memory.
        progress: show a tqdm progress bar.

    Returns:
        The best vector seen (the initial one included), its fitness, the
        per-step history and the number of objective calls.

    Example:
        >>> layers = ["conv1", "conv2", "fc1", "fc2"]
        >>> ops = ["relu6", "tanh", "elu", "gelu"]
        >>> def n_tanh(vector):  # toy objective, optimum 4.0 (all tanh)
        ...     return float(sum(op == "tanh" for op in vector.values()))
        >>> result = lahc(n_tanh, layers, ops, SearchConfig(steps=100), progress=False)
        >>> result.best, result.best_fitness
        ({'conv1': 'tanh', 'conv2': 'tanh', 'fc1': 'tanh', 'fc2': 'tanh'}, 4.0)
        >>> result.evaluations < 101  # revisited vectors come from the cache
        True
    """
    _check_space(layers, ops)
    if config.steps < 0:
        raise ValueError(f"steps must be >= 0, got {config.steps}")
    if config.history < 1:
        raise ValueError(f"history length must be >= 1, got {config.history}")
    move = get_move(config.move)
    rng = random.Random(config.seed)
    if init is None:
        current = {layer: rng.choice(ops) for layer in layers}
    else:
        current = _checked_vector(init, layers, ops)

    with SearchLog(objective, layers, csv_path, total=config.steps + 1, progress=progress) as log:
        current_fitness = log.evaluate(0, current)
        log.record(accepted=True)
        late = [current_fitness] * config.history  # late[k % L]: current fitness recorded at step k - L
        for step in range(1, config.steps + 1):
            candidate = move(current, layers, ops, rng)
            fitness = log.evaluate(step, candidate)
            slot = step % config.history
            accepted = lahc_accepts(fitness, current_fitness, late[slot])
            if accepted:
                current, current_fitness = candidate, fitness
            late[slot] = current_fitness  # Burke & Bykov: record after the decision
            log.record(accepted)
    return log.result()


def random_search(
    objective: Objective,
    layers: Sequence[str],
    ops: Sequence[str],
    evaluations: int,
    seed: int = 0,
    csv_path: str | Path | None = None,
    progress: bool = True,
) -> SearchResult:
    """Random search: evaluate distinct, independently sampled vectors; keep the best.

    Unlike the reference code's "random search" (a walk that never undoes a
    move), every sample is drawn afresh, uniformly. Give it ``evaluations`` equal
    to a LAHC run's ``evaluations`` for an equal-budget comparison. If the space
    holds fewer vectors than asked, it stops once they are all evaluated. Rows
    have the LAHC format; ``accepted`` means "became the new best".

    Args:
        objective: ``vector -> fitness`` to maximise.
        layers: ordered layer names.
        ops: operator names to choose from.
        evaluations: number of distinct vectors to evaluate (>= 1).
        seed: seed of ``random.Random``.
        csv_path: history file to append to and resume from; None keeps it in memory.
        progress: show a tqdm progress bar.

    Returns:
        The best vector, its fitness, the per-step history and the number of objective calls.
    """
    _check_space(layers, ops)
    if evaluations < 1:
        raise ValueError(f"evaluations must be >= 1, got {evaluations}")
    rng = random.Random(seed)
    space = len(ops) ** len(layers)
    seen: set[tuple[str, ...]] = set()
    with SearchLog(objective, layers, csv_path, total=min(evaluations, space), progress=progress) as log:
        for step in range(evaluations):
            vector = _sample_unseen(layers, ops, rng, seen, space)
            if vector is None:
                break
            fitness = log.evaluate(step, vector)
            log.record(accepted=log.best is None or fitness > log.best_fitness)
    return log.result()


def _sample_unseen(
    layers: Sequence[str], ops: Sequence[str], rng: random.Random, seen: set, space: int, tries: int = 10_000
) -> Vector | None:
    """A uniform random vector not in ``seen`` (added to it), or None if the space looks exhausted."""
    if len(seen) >= space:
        return None
    for _ in range(tries):
        vector = {layer: rng.choice(ops) for layer in layers}
        key = tuple(vector.values())
        if key not in seen:
            seen.add(key)
            return vector
    return None


# ---------------------------------------------------------------- input checks


def _check_space(layers: Sequence[str], ops: Sequence[str]) -> None:
    """Raise ValueError unless layers and ops are non-empty, unique and safe for the CSV form."""
    if isinstance(layers, str) or isinstance(ops, str):
        raise ValueError("layers and ops must be sequences of names, not a single string")
    for kind, names in (("layers", layers), ("ops", ops)):
        if len(names) == 0:
            raise ValueError(f"{kind} is empty; give at least one name")
        if len(set(names)) != len(names):
            raise ValueError(f"{kind} has duplicate names: {list(names)}")
        bad = [name for name in names if not isinstance(name, str) or not name or set(name) & set("=;\r\n")]
        if bad:
            raise ValueError(f"{kind} must be non-empty strings without '=', ';' or newlines: {bad}")


def _checked_vector(vector: Vector, layers: Sequence[str], ops: Sequence[str]) -> Vector:
    """Copy of ``vector`` in layer order; ValueError unless it maps exactly ``layers`` to known ops."""
    if set(vector) != set(layers):
        raise ValueError(f"init must map exactly the layers {list(layers)}, got {list(vector)}")
    unknown = sorted({op for op in vector.values() if op not in ops})
    if unknown:
        raise ValueError(f"init uses unknown ops {unknown}; valid ops: {list(ops)}")
    return {layer: vector[layer] for layer in layers}


# The stage-1 searches by name (`SAFSConfig.search`, `--search`).
SEARCHES = ("lahc", "random", "sa", "ga")  # sa, ga: `safs_lite.method.metaheuristics`


def check_search(name: str) -> str:
    """Return `name` if it is a known search, else raise ValueError listing the valid ones."""
    if name not in SEARCHES:
        raise ValueError(f"unknown search {name!r}; valid: {', '.join(SEARCHES)}")
    return name
