"""Checks of notebook 07's exercises (the reproduction and its statistics); `exercises.check` runs them."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .exercises_base import _close, _given

# ---------------------------------------------------------------- 07: reproduction


def _best_global_seed(answer, layerwise_seeds_below: list | None = None) -> None:
    from ..study.shipped import shipped_sweep

    _given(layerwise_seeds_below, "layerwise_seeds_below")
    assert isinstance(answer, (tuple, list)) and len(answer) == 2 and None not in answer, "give (seed, gain)"
    sweep = shipped_sweep()
    gains = {}
    for pruning in ("global", "layerwise"):
        acc = sweep.query(f"sparsity == 0.99 and pruning == '{pruning}'").pivot_table(
            index="seed", columns="method", values="test_accuracy")
        gains[pruning] = acc["safs"] - acc["magnitude_pruning"]
    assert int(answer[0]) == int(gains["global"].idxmax()), \
        "not that seed: compare the SAFS gain (SAFS - MP) of every global run at 99%"
    _close(answer[1], float(gains["global"].max()), 0.01, "its SAFS gain (points, SAFS - MP)")
    below = sorted(int(s) for s, g in gains["layerwise"].items() if g < 0)
    assert sorted(int(s) for s in layerwise_seeds_below) == below, (
        f"layerwise_seeds_below = {sorted(layerwise_seeds_below)}: not the layer-wise seeds whose SAFS test "
        "accuracy is below magnitude pruning's")


def _gain_summary(fn: Callable) -> None:
    from ..run.folders import load_json
    from ..run.results import table1
    from ..study.shipped import shipped_runs

    results = {s: load_json(f / "results.json") for s, f in shipped_runs("cpu").items()}
    got = fn(results)
    assert isinstance(got, (tuple, list)) and len(got) == 2, "return (mean, std)"
    table = table1(results)
    _close(got[0], table.loc["mean", "safs_gain"], 1e-6, "mean SAFS gain")
    if math.isclose(float(got[1]), float(np.std([r["test_accuracy"]["safs"] - r["test_accuracy"]["magnitude_pruning"]
                                                for r in results.values()])), abs_tol=1e-6):
        raise AssertionError("that is the population std (ddof=0); Table 1 uses the sample std (ddof=1)")
    _close(got[1], table.loc["std", "safs_gain"], 1e-6, "std of the SAFS gain over seeds (ddof=1)")


CHECKS: dict[str, tuple[Callable, str]] = {
    "07.1": (_best_global_seed, "the run browser shows every run; the sweep table `sweep_table` holds the same"),
    "07.2": (_gain_summary, "Table 1's std is the sample standard deviation"),
}
