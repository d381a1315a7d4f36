"""The paper's other stage-1 searches, simulated annealing and a genetic algorithm, and the uniform-operator scan.

SAFS (Loni et al. 2023, section 4) compares LAHC with simulated annealing (SA) and
a genetic algorithm (GA). Here both are baselines of LAHC at its evaluation count:
``evaluations`` is the number of distinct vectors scored (revisits come from the
cache and are free, as in LAHC), so SA, GA, random search and LAHC spend the same
number of short fine-tunes. Like `safs_lite.method.lahc`, every search logs one CSV row
per step through `searchlog.SearchLog` and resumes from it. No torch here.
"""
from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Sequence

from .lahc import _check_space, get_move
from .searchlog import Objective, SearchLog, SearchResult, Vector


def _check_budget(evaluations: int) -> None:
    if not isinstance(evaluations, int) or evaluations < 1:
        raise ValueError(f"evaluations must be an integer >= 1, got {evaluations!r}")


def _max_steps(evaluations: int) -> int:
    """A bound on steps (cached revisits included) so a search in a tiny space always ends."""
    return 20 * evaluations + 100


def sa_temperature(done: int, evaluations: int, t_start: float, t_end: float) -> float:
    """Geometric cooling over the evaluation budget: t_start after 0 evaluations, t_end at the last.

    Example:
        >>> sa_temperature(0, 11, 2.0, 0.02), round(sa_temperature(10, 11, 2.0, 0.02), 6)
        (2.0, 0.02)
    """
    if evaluations <= 1:
        return t_end
    return t_start * (t_end / t_start) ** (min(done, evaluations - 1) / (evaluations - 1))


def simulated_annealing(objective: Objective, layers: Sequence[str], ops: Sequence[str], evaluations: int,
                        seed: int = 0, t_start: float = 2.0, t_end: float = 0.02, move: str = "one_layer",
                        csv_path: str | Path | None = None, progress: bool = True) -> SearchResult:
    """Simulated annealing (Kirkpatrick et al. 1983) over per-layer operator vectors.

    From a random vector, each step proposes ``move`` (default: one layer set to a random
    operator) and accepts it when it is no worse, or with probability exp(delta / T) when it
    is worse by -delta. T cools geometrically with the distinct evaluations made, from
    ``t_start`` to ``t_end`` (in fitness units: accuracy points for the kit's fitnesses, so a
    2-point loss is accepted with probability 1/e at the start and practically never at the end).
    Once it has settled, most proposals are revisits (free, from the cache); after
    10 x layers x ops proposals in a row without a new vector it restarts from a random
    vector (accepted), so it spends its budget. After 20 x ``evaluations`` + 100 steps it
    stops even if fewer distinct vectors were scored, and the result says how many were.

    Args:
        objective: ``vector -> fitness`` to maximise.
        layers, ops: the search space.
        evaluations: distinct vectors to score (LAHC's count for an equal budget).
        seed: seeds the start, the moves and the acceptance draws.
        t_start, t_end: the first and last temperature (> 0).
        move: a key of `lahc.MOVES`.
        csv_path: history file to append to and resume from.
        progress: show a progress bar.

    Returns:
        The best vector seen, its fitness, the per-step history and the evaluation count.

    Example:
        >>> layers, ops = ["a", "b", "c", "d"], ["w", "x", "y", "z"]
        >>> result = simulated_annealing(lambda v: sum(o == "z" for o in v.values()), layers, ops, 40,
        ...                              progress=False)
        >>> result.best_fitness, result.evaluations
        (4.0, 40)
    """
    _check_space(layers, ops), _check_budget(evaluations)
    if not 0 < t_end <= t_start:
        raise ValueError(f"temperatures must satisfy 0 < t_end <= t_start, got t_start={t_start}, t_end={t_end}")
    step_move, rng = get_move(move), random.Random(seed)
    evaluations = min(evaluations, len(ops) ** len(layers))
    current = {layer: rng.choice(ops) for layer in layers}
    with SearchLog(objective, layers, csv_path, total=evaluations, progress=progress) as log:
        current_fitness = log.evaluate(0, current)
        log.record(accepted=True)
        step = stale = 0
        patience = 10 * len(layers) * len(ops)  # proposals in a row that found no new vector
        while log.distinct() < evaluations and step < _max_steps(evaluations):
            step += 1
            temperature = sa_temperature(log.distinct(), evaluations, t_start, t_end)
            restart = stale >= patience  # every neighbour tried: jump to a random vector
            candidate = {layer: rng.choice(ops) for layer in layers} if restart else \
                step_move(current, layers, ops, rng)
            before = log.distinct()
            fitness = log.evaluate(step, candidate)
            stale = 0 if log.distinct() > before else stale + 1
            delta = fitness - current_fitness
            accepted = restart or delta >= 0 or rng.random() < math.exp(delta / temperature)
            if accepted:
                current, current_fitness = candidate, fitness
            log.record(accepted)
    return log.result()


def genetic_algorithm(objective: Objective, layers: Sequence[str], ops: Sequence[str], evaluations: int,
                      seed: int = 0, population: int = 8, mutation: float | None = None,
                      csv_path: str | Path | None = None, progress: bool = True) -> SearchResult:
    """A steady-state genetic algorithm over per-layer operator vectors.

    ``population`` random vectors are scored first; then each step breeds one child: two
    parents by binary tournament, uniform crossover, and each layer mutated to a random
    operator with probability ``mutation`` (default 1 / number of layers). The child replaces
    the worst member when it is better (it is then "accepted"). A child equal to a vector
    already scored costs nothing (cache) but still takes a step.

    Args:
        objective: ``vector -> fitness`` to maximise.
        layers, ops: the search space.
        evaluations: distinct vectors to score, the initial population included.
        seed: seeds the population, selection, crossover and mutation.
        population: population size (>= 2; at most ``evaluations``).
        mutation: per-layer mutation probability in [0, 1].
        csv_path: history file to append to and resume from.
        progress: show a progress bar.

    Returns:
        The best vector seen, its fitness, the per-step history and the evaluation count.

    Example:
        >>> layers, ops = ["a", "b", "c", "d"], ["x", "y", "z"]
        >>> result = genetic_algorithm(lambda v: sum(o == "y" for o in v.values()), layers, ops, 30,
        ...                            progress=False)
        >>> result.best_fitness, result.evaluations
        (4.0, 30)
    """
    _check_space(layers, ops), _check_budget(evaluations)
    if not isinstance(population, int) or population < 2:
        raise ValueError(f"population must be an integer >= 2, got {population!r}")
    mutation = 1.0 / len(layers) if mutation is None else mutation
    if not 0.0 <= mutation <= 1.0:
        raise ValueError(f"mutation must be a probability in [0, 1], got {mutation!r}")
    rng = random.Random(seed)
    evaluations = min(evaluations, len(ops) ** len(layers))
    size = min(population, evaluations)
    with SearchLog(objective, layers, csv_path, total=evaluations, progress=progress) as log:
        members: list[tuple[float, Vector]] = []
        step = 0
        while len(members) < size and step < _max_steps(evaluations):
            vector = {layer: rng.choice(ops) for layer in layers}
            fitness = log.evaluate(step, vector)
            new = tuple(vector.values()) not in {tuple(v.values()) for _, v in members}
            if new:
                members.append((fitness, vector))
            log.record(accepted=new)
            step += 1

        def tournament() -> Vector:
            a, b = rng.sample(members, 2) if len(members) > 1 else (members[0], members[0])
            return (a if a[0] >= b[0] else b)[1]

        while log.distinct() < evaluations and step < _max_steps(evaluations):
            mum, dad = tournament(), tournament()
            child = {layer: (mum if rng.random() < 0.5 else dad)[layer] for layer in layers}
            child = {layer: rng.choice(ops) if rng.random() < mutation else op for layer, op in child.items()}
            fitness = log.evaluate(step, child)
            worst = min(range(len(members)), key=lambda i: members[i][0])
            known = tuple(child.values()) in {tuple(v.values()) for _, v in members}
            accepted = not known and fitness > members[worst][0]
            if accepted:
                members[worst] = (fitness, child)
            log.record(accepted)
            step += 1
    return log.result()


def uniform_scan(objective: Objective, layers: Sequence[str], ops: Sequence[str],
                 csv_path: str | Path | None = None, progress: bool = True) -> SearchResult:
    """Score one vector per operator, the same operator in every layer (len(ops) evaluations).

    The `uniform` baseline: is per-layer search better than the best single operator
    everywhere? Rows follow ``ops``' order; ``accepted`` means "became the new best".

    Example:
        >>> result = uniform_scan(lambda v: float(v["a"] == "y"), ["a", "b"], ["x", "y"], progress=False)
        >>> result.best, result.evaluations
        ({'a': 'y', 'b': 'y'}, 2)
    """
    _check_space(layers, ops)
    with SearchLog(objective, layers, csv_path, total=len(ops), progress=progress) as log:
        for step, op in enumerate(ops):
            fitness = log.evaluate(step, {layer: op for layer in layers})
            log.record(accepted=log.best is None or fitness > log.best_fitness)
    return log.result()
