"""The reproduction's figures, drawn from saved runs without any training.

    python -m safs_lite figures --preset cpu --seeds 0 1 2

Reads the run folders `reproduce` wrote (one per seed, LeNet-5 / MNIST at 99%
layer-wise sparsity by default) and, when present, the sweep table, and writes
into the figures folder:

    table1_bars.png            Table 1: mean and standard deviation over seeds, seeds as dots, the paper's row
    operators_found.png        the operator each layer got, per seed, and the layer x operator counts
    alpha_beta_learned.png     learned alpha and beta per layer (stage 2 with ReLU, and SAFS)
    activations_found.png      the functions found, alpha * op(beta * x) with the learned scales, per layer
    lahc_trajectory_s<S>.png   each seed's LAHC search: accepted and rejected moves, best so far
    lahc_vs_random.png         best-so-far against evaluations, LAHC vs random search (same fitness and budget)
    sweep.png                  redrawn from sweep.csv when a sweep has written it
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..method.searchlog import read_history
from ..paths import figures_dir, runs_dir
from ..run.config import SAFSConfig
from ..run.folders import find_finished, load_json
from ..run.results import paper_row
from ..training.fitness import fitness_label
from .plots import (
    plot_alpha_beta,
    plot_found_activations,
    plot_lahc_trajectory,
    plot_operator_choices,
    plot_search_comparison,
    plot_sweep,
    plot_table1_bars,
    save_figure,
)
from .sweep import FIGURE_FILE, TABLE_FILE, load_sweep


def find_runs(preset: str = "cpu", seeds=(0, 1, 2), model: str = "lenet5", dataset: str = "mnist",
              sparsity: float = 0.99, pruning: str = "layerwise",
              runs: str | os.PathLike | None = None,
              data_root: str | os.PathLike | None = None) -> dict[int, Path]:
    """The finished run folder of each seed (seed -> folder); ValueError if none is finished.

    Folders are named by their key, data included, so only runs made on the data in
    `data_root` (default $SAFS_DATA) are found. A folder whose results.json is unreadable
    gives a one-line ValueError naming it.
    """
    found, missing = {}, []
    for seed in seeds:
        cfg = SAFSConfig(model=model, dataset=dataset, sparsity=sparsity, pruning=pruning, preset=preset,
                         seed=seed).validate()
        out = find_finished(cfg, runs, data_root=data_root)
        if out is not None:
            res = load_json(out / "results.json")
            if not isinstance(res, dict) or "test_accuracy" not in res:
                raise ValueError(f"{out / 'results.json'}: corrupt results; delete the folder and rerun")
            found[seed] = out
        else:
            missing.append(seed)
    if not found:
        raise ValueError(f"no finished runs for preset {preset!r}, seeds {list(seeds)} under {runs_dir(runs)}; "
                         f"run `python -m safs_lite reproduce --preset {preset} --seeds "
                         f"{' '.join(map(str, seeds))}` first")
    return found


def load_results(folders: dict[int, Path]) -> dict[int, dict]:
    """results.json of each run folder, by seed."""
    return {seed: load_json(out / "results.json") for seed, out in folders.items()}


def search_histories(folders: dict[int, Path]) -> dict[str, list]:
    """Stage 1's LAHC history and those of the equal-budget searches the runs computed, by strategy.

    Read from <run>/baseline_<name>_search.csv (random, sa, ga; `baselines`) and, for runs made
    before the baselines registry, <run>/stage1_random_search.csv.
    """
    from ..run.baselines import BASELINES

    out: dict[str, list] = {"LAHC": [], **{b.label: [] for b in BASELINES.values() if b.equal_budget}}
    for folder in folders.values():
        out["LAHC"].append(read_history(folder / "stage1_search.csv"))
        for name, b in BASELINES.items():
            files = [folder / f"baseline_{name}_search.csv"] + ([folder / "stage1_random_search.csv"]
                                                                if name == "random" else [])
            found = [f for f in files if f.exists()]
            if b.equal_budget and found:
                out[b.label].append(read_history(found[0]))
    return {k: v for k, v in out.items() if v}


def make_figures(preset: str = "cpu", seeds=(0, 1, 2), model: str = "lenet5", dataset: str = "mnist",
                 sparsity: float = 0.99, pruning: str = "layerwise", runs: str | os.PathLike | None = None,
                 figures: str | os.PathLike | None = None,
                 data_root: str | os.PathLike | None = None) -> list[Path]:
    """Draw every figure of the reproduction from saved runs; return the paths written.

    Args:
        preset, seeds, model, dataset, sparsity, pruning: which `reproduce` runs to read.
        runs: runs folder (default $SAFS_RUNS, else <repo>/runs).
        figures: output folder (default $SAFS_FIGURES, else <repo>/figures); a sweep table
            there (sweep.csv) is redrawn too.
        data_root: the data the runs were made on (default $SAFS_DATA): runs are keyed on it.
    """
    folders = find_runs(preset, seeds, model, dataset, sparsity, pruning, runs=runs, data_root=data_root)
    if len(folders) < len(seeds):
        missing = sorted(set(seeds) - set(folders))
        print(f"note: no finished run for seed(s) {missing}; drawing from seed(s) {sorted(folders)}", file=sys.stderr)
    results = load_results(folders)
    out = figures_dir(figures)
    written: list[Path] = []

    def save(fig: Figure, name: str) -> None:
        save_figure(fig, out / name)
        plt.close(fig)
        written.append(out / name)

    save(plot_table1_bars(results, paper_row(next(iter(results.values()))["config"])), "table1_bars.png")
    save(plot_operator_choices({f"seed {s}": r["activations"]["safs"] for s, r in results.items()},
                               title="operators found by stage 1 (LAHC), per seed"), "operators_found.png")
    save(plot_alpha_beta(results), "alpha_beta_learned.png")
    save(plot_found_activations(results), "activations_found.png")
    label = fitness_label(next(iter(results.values())))
    for seed, folder in folders.items():
        save(plot_lahc_trajectory(read_history(folder / "stage1_search.csv"), ylabel=label,
                                  title=f"LAHC stage 1, seed {seed}: the fitness of each candidate"),
             f"lahc_trajectory_s{seed}.png")
    histories = search_histories(folders)
    save(plot_search_comparison(histories, band=None, show_runs=True,
                                title=f"stage 1: best fitness so far ({label}); thick: mean over seeds, thin: "
                                      "each seed"),
         "lahc_vs_random.png")
    sweep_csv = out / TABLE_FILE
    if sweep_csv.exists():
        save(plot_sweep(load_sweep(sweep_csv)), FIGURE_FILE)
    return written
