"""Stage 1 of SAFS: search per-layer activation operators with Late Acceptance Hill Climbing.

The objective is any callable ``vector -> fitness`` (fitness is maximised), so the
search can be shown on a toy objective before it drives fine-tuning runs. Random
search with the same evaluation budget is the baseline. Both searches cache
evaluated vectors, append one CSV row per step as they go, and resume from that
CSV without re-evaluating finished steps. No torch here on purpose.
"""

from __future__ import annotations

import csv
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from tqdm.auto import tqdm

Vector = dict[str, str]  # layer name -> operator name, e.g. {"conv1": "tanh"}
Objective = Callable[[Vector], float]

CSV_COLUMNS = ("step", "vector", "fitness", "accepted", "best_fitness", "cached", "seconds")


@dataclass(frozen=True)
class SearchConfig:
    """Settings of one LAHC run; the defaults are the paper's."""

    steps: int = 20  # LAHC moves (paper: 20)
    history: int = 3  # LAHC history length L (paper: 3)
    move: str = "reference"  # "reference" (set one layer, then swap two) or "one_layer"
    seed: int = 0


@dataclass
class SearchResult:
    """Outcome of a search: the best vector and one history row per step."""

    best: Vector  # layer -> op of the best vector seen
    best_fitness: float
    history: list[dict]  # one row per step, keys CSV_COLUMNS, parsed types
    evaluations: int  # distinct vectors evaluated (objective calls, summed over resumed sessions)


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
    if name not in MOVES:
        raise ValueError(f"unknown move {name!r}; valid moves: {', '.join(sorted(MOVES))}")
    return MOVES[name]


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

    with _Log(objective, layers, csv_path, total=config.steps + 1, progress=progress) as log:
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
    with _Log(objective, layers, csv_path, total=min(evaluations, space), progress=progress) as log:
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


# ---------------------------------------------------------------- history file


def format_vector(vector: Vector) -> str:
    """Compact text form of a vector, e.g. ``"conv1=tanh;conv2=elu"`` (round-trips with parse_vector)."""
    return ";".join(f"{layer}={op}" for layer, op in vector.items())


def parse_vector(text: str) -> Vector:
    """Inverse of format_vector.

    Args:
        text: e.g. ``"conv1=tanh;conv2=elu"``.

    Returns:
        The vector as an ordered dict, e.g. ``{"conv1": "tanh", "conv2": "elu"}``.
    """
    pairs = [item.split("=") for item in text.split(";")]
    if not text or any(len(pair) != 2 or not all(pair) for pair in pairs):
        raise ValueError(f"not a vector string: {text!r}")
    return {layer: op for layer, op in pairs}


def read_history(csv_path: str | Path) -> list[dict]:
    """Load a search history CSV with parsed types (vector as a dict, bools, floats).

    An unterminated last line (a write cut off by a kill) is ignored.

    Args:
        csv_path: file written by lahc or random_search.

    Returns:
        One dict per step with the keys of CSV_COLUMNS.
    """
    return _read_rows(Path(csv_path))[0]


def _read_rows(path: Path) -> tuple[list[dict], int]:
    """Parse the complete rows of a history file; also return the byte length they span."""
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]  # drop a partial last line
    lines = complete.decode("utf-8").splitlines()
    if not lines:
        return [], len(complete)
    reader = csv.reader(lines)
    if tuple(next(reader)) != CSV_COLUMNS:
        raise ValueError(f"{path}: not a search history file (header must be {','.join(CSV_COLUMNS)})")
    rows = []
    for number, fields in enumerate(reader, start=2):
        try:
            row = _parse_row(fields)
        except ValueError as error:
            raise ValueError(f"{path}: unparseable row on line {number} ({error})") from None
        if row["step"] != len(rows):
            raise ValueError(f"{path}: line {number} has step {row['step']}, expected {len(rows)}")
        rows.append(row)
    return rows, len(complete)


def _parse_bool(text: str) -> bool:
    if text not in ("True", "False"):
        raise ValueError(f"not a bool: {text!r}")
    return text == "True"


def _parse_row(fields: list[str]) -> dict:
    if len(fields) != len(CSV_COLUMNS):
        raise ValueError(f"{len(fields)} fields, expected {len(CSV_COLUMNS)}")
    step, vector, fitness, accepted, best_fitness, cached, seconds = fields
    return {
        "step": int(step),
        "vector": parse_vector(vector),
        "fitness": float(fitness),
        "accepted": _parse_bool(accepted),
        "best_fitness": float(best_fitness),
        "cached": _parse_bool(cached),
        "seconds": float(seconds),
    }


# ---------------------------------------------------------------- bookkeeping


class _Log:
    """Cache, best-so-far, history rows and the CSV file shared by both searches.

    A search calls ``evaluate(step, vector)`` then ``record(accepted)`` once per
    step. Steps already in the CSV are replayed: their vector must match the
    file's, their fitness comes from the file, and nothing is written.
    """

    def __init__(self, objective: Objective, layers: Sequence[str], csv_path, total: int, progress: bool):
        self.objective = objective
        self.layers = list(layers)
        self.path = Path(csv_path) if csv_path is not None else None
        self.done: list[dict] = []  # rows from an earlier session
        self.cache: dict[tuple[str, ...], float] = {}  # ops tuple -> fitness, preloaded from the CSV
        self.seen: set[tuple[str, ...]] = set()  # vectors of the steps done so far, for the `cached` column
        self.rows: list[dict] = []
        self.best: Vector | None = None
        self.best_fitness = -math.inf
        self.pending: dict | None = None
        self.file = None
        if self.path is not None and self.path.exists():
            self.done, size = _read_rows(self.path)
            for row in self.done:
                if list(row["vector"]) != self.layers:
                    self._mismatch(row["step"])
                self.cache.setdefault(tuple(row["vector"].values()), row["fitness"])
            if size != self.path.stat().st_size:  # drop a partial last line before appending
                with open(self.path, "r+b") as file:
                    file.truncate(size)
        self.bar = tqdm(total=total, disable=not progress, desc="search")

    def __enter__(self) -> _Log:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists() or self.path.stat().st_size == 0
            self.file = open(self.path, "a", newline="", encoding="utf-8")
            self.writer = csv.writer(self.file, lineterminator="\n")
            if new:
                self.writer.writerow(CSV_COLUMNS)
                self.file.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()
        self.bar.close()

    def _mismatch(self, step: int) -> None:
        raise ValueError(
            f"{self.path}: step {step} differs from this search, so the history file belongs to "
            "a different search (other seed, config, layers or ops); use another folder or delete it"
        )

    def evaluate(self, step: int, vector: Vector) -> float:
        """Fitness of ``vector`` at ``step``: from the cache if seen, else one objective call."""
        key = tuple(vector[layer] for layer in self.layers)
        if step < len(self.done) and self.done[step]["vector"] != vector:
            self._mismatch(step)
        cached = key in self.seen
        seconds = 0.0
        if key not in self.cache:  # never evaluated, in this session or one recorded in the CSV
            start = time.perf_counter()
            fitness = float(self.objective(dict(vector)))  # a copy: the objective may not alter our state
            seconds = time.perf_counter() - start
            if math.isnan(fitness):
                raise ValueError(f"objective returned NaN for {format_vector(vector)}")
            self.cache[key] = fitness
        self.seen.add(key)
        self.pending = {"step": step, "vector": dict(vector), "fitness": self.cache[key], "cached": cached,
                        "seconds": seconds}
        return self.cache[key]

    def record(self, accepted: bool) -> None:
        """Finish the row of the last evaluated step: update the best, append and flush."""
        row = self.pending
        if self.best is None or row["fitness"] > self.best_fitness:
            self.best, self.best_fitness = row["vector"], row["fitness"]
        row = {"step": row["step"], "vector": row["vector"], "fitness": row["fitness"], "accepted": bool(accepted),
               "best_fitness": self.best_fitness, "cached": row["cached"], "seconds": row["seconds"]}
        if row["step"] < len(self.done):
            old = self.done[row["step"]]
            if any(old[key] != row[key] for key in ("fitness", "accepted", "best_fitness", "cached")):
                self._mismatch(row["step"])
            row = old  # keep the timing measured when it really ran
        elif self.file is not None:
            text = {**row, "vector": format_vector(row["vector"])}
            self.writer.writerow([text[key] for key in CSV_COLUMNS])
            self.file.flush()
        self.rows.append(row)
        self.bar.update(1)
        self.bar.set_postfix(best=self.best_fitness)

    def result(self) -> SearchResult:
        return SearchResult(
            best=dict(self.best),
            best_fitness=self.best_fitness,
            history=self.rows,
            evaluations=sum(not row["cached"] for row in self.rows),
        )


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
