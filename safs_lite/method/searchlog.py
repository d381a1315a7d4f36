"""The stage-1 search's log: the result of a search, its one-row-per-step CSV file, and resuming from it.

Both searches (`safs_lite.method.lahc`) go through `SearchLog`: it caches evaluated
vectors, appends one CSV row per step as it goes (flushed, so a kill loses at
most the step in progress), and on a rerun replays the finished steps from the
file instead of evaluating them again.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from tqdm.auto import tqdm

Vector = dict[str, str]  # layer name -> operator name, e.g. {"conv1": "tanh"}
Objective = Callable[[Vector], float]
CSV_COLUMNS = ("step", "vector", "fitness", "accepted", "best_fitness", "cached", "seconds")

@dataclass
class SearchResult:
    """Outcome of a search: the best vector and one history row per step."""

    best: Vector  # layer -> op of the best vector seen
    best_fitness: float
    history: list[dict]  # one row per step, keys CSV_COLUMNS, parsed types
    evaluations: int  # distinct vectors evaluated (objective calls, summed over resumed sessions)



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



# ---------------------------------------------------------------- the log a search writes


class SearchLog:
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

    def __enter__(self) -> SearchLog:
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

    def distinct(self) -> int:
        """Distinct vectors scored by the steps so far (a resumed search replays them in order)."""
        return len(self.seen)

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
