"""The searches and an accuracy predictor, run on a landscape table (`study.landscape`) instead of on training.

Once every vector of a mask has its fitness, a stage-1 search is a sequence of lookups: the kit's own LAHC,
simulated annealing, genetic algorithm, random search and single-operator scan (`safs_lite.method`) run
unchanged against `TableObjective`, a thousand times in seconds. Budgets are counted as the kit counts them:
distinct vectors scored (a revisit comes from the search's cache and is free). `TableObjective` stops a
search when its budget is spent (LAHC's own budget is in steps, which may revisit), so every method gets the
same number of evaluations. Per method and budget, `summarise` reports the distribution of the best fitness
found, its percentile in the whole table and the probability of reaching the table's top 1%, with a Wilson
95% interval over the repeats.

The predictor (the paper's first future direction) learns the fitness from k evaluated vectors
(scikit-learn: ridge regression on one-hot operators with and without pairwise site interactions, a random
forest, gradient boosting) and is scored on the rest of the table by Spearman's rho and top-1% recall (the
share of the true top 1% among the predicted top 1%). `predictor_search` evaluates what the model ranks
highest, refits and repeats: compared with LAHC at equal real evaluations.
"""
from __future__ import annotations

import itertools
import math
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import binomtest, spearmanr

from ..method.lahc import SearchConfig, lahc, random_search
from ..method.metaheuristics import genetic_algorithm, simulated_annealing, uniform_scan


class _Spent(Exception):
    """The evaluation budget is spent."""


class TableObjective:
    """`vector -> fitness` by lookup in a complete table, counting distinct vectors and stopping at `budget`."""

    def __init__(self, fitness: np.ndarray, sites: Sequence[str], space: Sequence[str], budget: int):
        self.fitness, self.sites, self.budget = fitness, list(sites), budget
        self.code = {op: i for i, op in enumerate(space)}
        self.base = len(space)
        self.seen: set[int] = set()
        self.best_index, self.best = -1, -math.inf

    def index(self, vector: dict) -> int:
        i = 0
        for site in self.sites:
            i = i * self.base + self.code[vector[site]]
        return i

    def __call__(self, vector: dict) -> float:
        i = self.index(vector)
        if i not in self.seen:
            if len(self.seen) >= self.budget:
                raise _Spent
            self.seen.add(i)
            if self.fitness[i] > self.best:
                self.best_index, self.best = i, float(self.fitness[i])
        return float(self.fitness[i])


def _lahc(history: int) -> Callable:
    def run(obj, sites, space, budget, seed):
        lahc(obj, sites, space, SearchConfig(steps=50 * budget + 100, history=history, seed=seed), progress=False)
    return run


SEARCHES: dict[str, Callable] = {
    "lahc (L=1)": _lahc(1),
    "lahc (L=3)": _lahc(3),
    "lahc (L=10)": _lahc(10),
    "simulated annealing": lambda obj, sites, space, b, seed: simulated_annealing(obj, sites, space, b, seed=seed,
                                                                                   progress=False),
    "genetic algorithm": lambda obj, sites, space, b, seed: genetic_algorithm(obj, sites, space, b, seed=seed,
                                                                               progress=False),
    "random": lambda obj, sites, space, b, seed: random_search(obj, sites, space, b, seed=seed, progress=False),
}


def search_once(method: str, fitness: np.ndarray, sites: Sequence[str], space: Sequence[str], budget: int,
                seed: int) -> dict:
    """One search on the table: the best fitness and index it found with `budget` distinct evaluations."""
    obj = TableObjective(fitness, sites, space, budget)
    try:
        if method == "single-operator scan":
            uniform_scan(obj, sites, space, progress=False)
        else:
            SEARCHES[method](obj, sites, space, budget, seed)
    except _Spent:
        pass
    return {"best": obj.best, "best_index": obj.best_index, "evaluations": len(obj.seen)}


def search_study(fitness: np.ndarray, sites: Sequence[str], space: Sequence[str], budgets: Sequence[int] = (9, 13, 41),
                 repeats: int = 1000, methods: Sequence[str] | None = None, seed: int = 0,
                 progress: bool = True) -> pd.DataFrame:
    """Every method at every budget, `repeats` times with seeds seed, seed + 1, ...: one row per search.

    The single-operator scan is deterministic and spends len(space) evaluations whatever the budget: it gets one
    row per budget at its own count.
    """
    from tqdm.auto import tqdm

    methods = list(methods or SEARCHES)
    rows = []
    jobs = [(m, b) for b in budgets for m in methods]
    for method, budget in tqdm(jobs, desc="searches on the table", disable=not progress):
        for r in range(repeats):
            rows.append({"method": method, "budget": budget, "repeat": r,
                         **search_once(method, fitness, sites, space, budget, seed + r)})
    for budget in budgets:
        rows.append({"method": "single-operator scan", "budget": budget, "repeat": 0,
                     **search_once("single-operator scan", fitness, sites, space, max(budget, len(space)), seed)})
    return pd.DataFrame(rows)


def percentile(fitness: np.ndarray, values) -> np.ndarray:
    """Percentile of each value in the table: the share (%) of vectors with a strictly lower fitness."""
    ordered = np.sort(fitness)
    return 100.0 * np.searchsorted(ordered, np.asarray(values, dtype=float), side="left") / len(fitness)


def summarise(study: pd.DataFrame, fitness: np.ndarray, top: float = 0.01) -> pd.DataFrame:
    """Per method and budget: repeats, mean distinct evaluations, mean and median best, median percentile, and the
    probability of reaching the table's top `top` share with its Wilson 95% interval."""
    threshold = np.quantile(fitness, 1 - top)
    rows = []
    for (method, budget), g in study.groupby(["method", "budget"], sort=False):
        hits = int((g["best"] >= threshold).sum())
        ci = binomtest(hits, len(g)).proportion_ci(0.95, method="wilson")
        rows.append({"method": method, "budget": budget, "repeats": len(g), "evaluations": g["evaluations"].mean(),
                     "mean_best": g["best"].mean(), "median_percentile": float(np.median(percentile(fitness, g["best"]))),
                     "p_top": hits / len(g), "p_top_low": ci.low, "p_top_high": ci.high})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the predictor


def features(indices: np.ndarray, n_sites: int, n_ops: int, pairwise: bool):
    """One-hot operators per site (and, with `pairwise`, one-hot operator pairs per pair of sites), as a sparse
    matrix (CSR): row i has n_sites ones (plus one per pair of sites)."""
    from scipy.sparse import csr_matrix

    indices = np.asarray(indices)
    digits = np.stack([(indices // n_ops ** (n_sites - 1 - j)) % n_ops for j in range(n_sites)], axis=1)
    cols = [digits[:, j] + j * n_ops for j in range(n_sites)]
    width = n_sites * n_ops
    if pairwise:
        for a, b in itertools.combinations(range(n_sites), 2):
            cols.append(width + digits[:, a] * n_ops + digits[:, b])
            width += n_ops * n_ops
    cols = np.stack(cols, axis=1)
    rows = np.repeat(np.arange(len(indices)), cols.shape[1])
    return csr_matrix((np.ones(cols.size), (rows, cols.ravel())), shape=(len(indices), width))


def make_model(name: str, seed: int = 0):
    """A fresh scikit-learn regressor by name (see MODELS)."""
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import Ridge

    return {"ridge": lambda: Ridge(alpha=1.0), "ridge_pairwise": lambda: Ridge(alpha=1.0),
            "random_forest": lambda: RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=seed,
                                                           n_jobs=1),
            "gradient_boosting": lambda: HistGradientBoostingRegressor(max_iter=200, min_samples_leaf=3,
                                                                       random_state=seed)}[name]()


MODELS = ("ridge", "ridge_pairwise", "random_forest", "gradient_boosting")


def _fit_predict(name: str, train_idx: np.ndarray, y: np.ndarray, all_idx: np.ndarray, n_sites: int, n_ops: int,
                 seed: int) -> np.ndarray:
    pairwise = name == "ridge_pairwise"
    model = make_model(name, seed)
    x_train, x_all = features(train_idx, n_sites, n_ops, pairwise), features(all_idx, n_sites, n_ops, pairwise)
    if not name.startswith("ridge"):  # the tree models take dense one-hot columns
        x_train, x_all = x_train.toarray(), x_all.toarray()
    model.fit(x_train, y)
    return model.predict(x_all)


def top_recall(true: np.ndarray, pred: np.ndarray, top: float = 0.01) -> float:
    """Share of the true top `top` among the predicted top `top` (same count)."""
    k = max(1, int(round(top * len(true))))
    return len(set(np.argsort(-true)[:k]) & set(np.argsort(-pred)[:k])) / k


def predictor_study(fitness: np.ndarray, n_sites: int, n_ops: int, ks: Sequence[int] = (25, 50, 100, 200, 500),
                    models: Sequence[str] = MODELS, repeats: int = 10, seed: int = 0) -> pd.DataFrame:
    """Fit each model on k random vectors, score it on the rest: Spearman's rho and top-1% recall, per repeat."""
    rng = np.random.default_rng(seed)
    everything = np.arange(len(fitness))
    rows = []
    for k in ks:
        for r in range(repeats):
            train = rng.choice(everything, size=k, replace=False)
            rest = np.setdiff1d(everything, train)
            for name in models:
                pred = _fit_predict(name, train, fitness[train], rest, n_sites, n_ops, seed + r)
                rows.append({"k": k, "repeat": r, "model": name,
                             "spearman": float(spearmanr(fitness[rest], pred).statistic),
                             "top1_recall": top_recall(fitness[rest], pred)})
    return pd.DataFrame(rows)


def predictor_search(fitness: np.ndarray, n_sites: int, n_ops: int, budget: int, model: str = "ridge_pairwise",
                     start: int = 10, batch: int = 5, seed: int = 0) -> dict:
    """Evaluate `start` random vectors, then repeatedly fit `model` and evaluate the `batch` unevaluated vectors it
    ranks highest, until `budget` real evaluations; the best found."""
    rng = np.random.default_rng(seed)
    everything = np.arange(len(fitness))
    seen = list(rng.choice(everything, size=min(start, budget), replace=False))
    while len(seen) < budget:
        pred = _fit_predict(model, np.array(seen), fitness[seen], everything, n_sites, n_ops, seed)
        pred[seen] = -np.inf
        take = np.argsort(-pred)[: min(batch, budget - len(seen))]
        seen += list(take)
    best = int(np.array(seen)[np.argmax(fitness[seen])])
    return {"best": float(fitness[best]), "best_index": best, "evaluations": len(seen)}
