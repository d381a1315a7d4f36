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
    accuracy_vs_sparsity.png   redrawn from accuracy_vs_sparsity.csv when a sweep has written it
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .paths import figures_dir, runs_dir
from .plots import plot_lahc_trajectory, plot_operator_choices, plot_search_comparison, save_figure
from .reproduce import COLUMNS, HEADERS
from .runs import load_json
from .safs import PAPER_TABLE1, SAFSConfig, default_out
from .search import read_history
from .sweep import load_sweep, plot_sweep
from .widgets import operator_curves


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
        out = default_out(cfg, runs, data_root=data_root)
        if (out / "results.json").exists():
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


def table1_frame(results: dict[int, dict]) -> pd.DataFrame:
    """Tidy Table 1: one row per seed and column (COLUMNS), test accuracy in %."""
    rows = []
    for seed, res in results.items():
        acc = dict(res["test_accuracy"])
        acc["safs_gain"] = acc["safs"] - acc["magnitude_pruning"]
        rows += [{"seed": seed, "column": c, "test_accuracy": acc[c]} for c in COLUMNS]
    return pd.DataFrame(rows)


def plot_table1_bars(results: dict[int, dict], paper: dict | None = None,
                     path: str | os.PathLike | None = None) -> Figure:
    """Table 1 as bars: mean over seeds with one-standard-deviation error bars, each seed a dot, the paper a diamond."""
    df = table1_frame(results)
    stats = df.groupby("column", sort=False)["test_accuracy"].agg(["mean", "std", "count"]).reindex(COLUMNS)
    x = np.arange(len(COLUMNS))
    fig, ax = plt.subplots(figsize=(8.5, 4))
    colors = ["0.6", "tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:olive"]
    ax.bar(x, stats["mean"], yerr=stats["std"].fillna(0), capsize=5, color=colors, alpha=0.8,
           edgecolor="black", linewidth=0.6, label=f"this kit: mean ± std over {len(results)} seed(s)")
    for i, c in enumerate(COLUMNS):
        vals = df.loc[df["column"] == c, "test_accuracy"].to_numpy()
        ax.scatter(np.full(len(vals), i) + np.linspace(-0.15, 0.15, len(vals)), vals, s=18, color="black",
                   zorder=3, label="one seed" if i == 0 else None)
        ax.text(i, max(stats.loc[c, "mean"], 0) + 2, f"{stats.loc[c, 'mean']:.1f}", ha="center", fontsize=8)
    if paper:
        p = dict(paper, safs_gain=paper["safs"] - paper["magnitude_pruning"])
        ax.scatter(x, [p[c] for c in COLUMNS], marker="D", s=55, color="crimson", edgecolor="black", zorder=4,
                   label="paper (single run, 13-27x the epochs)")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, HEADERS)
    ax.set_ylabel("test accuracy (%), gain in points")
    first = next(iter(results.values()))["config"]
    ax.set_title(f"Table 1: {first['model']} / {first['dataset']}, {100 * first['sparsity']:g}% {first['pruning']} "
                 f"sparsity, preset {first['preset']}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(frameon=False, fontsize=8, loc="upper right")
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def alpha_beta_frame(results: dict[int, dict]) -> pd.DataFrame:
    """Tidy learned scales: one row per seed, stage (stage 2 = ReLU, SAFS), layer; columns alpha, beta, op."""
    rows = []
    for seed, res in results.items():
        for stage, label in (("stage2", "stage 2 (relu)"), ("safs", "SAFS")):
            ops = res["activations"]["safs"] if stage == "safs" else {}
            for layer, (alpha, beta) in res["alpha_beta"][stage].items():
                rows.append({"seed": seed, "stage": label, "layer": layer, "alpha": alpha, "beta": beta,
                             "op": ops.get(layer, "relu")})
    return pd.DataFrame(rows)


def plot_alpha_beta(results: dict[int, dict], path: str | os.PathLike | None = None) -> Figure:
    """Learned alpha and beta per layer: one dot per seed, stage 2 (ReLU) and SAFS side by side; 1 = initial."""
    import seaborn as sns

    df = alpha_beta_frame(results)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=False)
    for ax, key, what in zip(axes, ("alpha", "beta"), ("output scale", "input scale")):
        ax.axhline(1.0, color="0.5", ls=":", lw=1)
        sns.stripplot(data=df, x="layer", y=key, hue="stage", dodge=True, size=7, jitter=False, ax=ax,
                      edgecolor="black", linewidth=0.5)
        ax.set_title(f"learned {key} ({what}); dotted: initial 1", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def plot_found_activations(results: dict[int, dict], path: str | os.PathLike | None = None,
                           x_max: float = 4.0) -> Figure:
    """The activation each SAFS run ended with, alpha * op(beta * x), one panel per layer, one line per seed."""
    layers = list(next(iter(results.values()))["activations"]["safs"])
    x = np.linspace(-x_max, x_max, 201)
    fig, axes = plt.subplots(1, len(layers), figsize=(3.0 * len(layers), 3.0), sharey=False, squeeze=False)
    for ax, layer in zip(axes[0], layers):
        ax.plot(x, np.maximum(x, 0), color="0.6", ls=":", lw=1.2, label="relu (dense)")
        for i, (seed, res) in enumerate(results.items()):
            op = res["activations"]["safs"][layer]
            alpha, beta = res["alpha_beta"]["safs"][layer]
            curve = operator_curves(op, alpha, beta, x=x)
            ax.plot(curve["x"], curve["f"], color=f"C{i}", lw=1.6,
                    label=f"s{seed}: {alpha:.2f}·{op}({beta:.2f}x)")
        ax.set_title(layer, fontsize=10)
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=6.5, loc="upper left")
        lo, hi = ax.get_ylim()
        ax.set_ylim(max(lo, -3 * x_max), min(hi, 3 * x_max))  # symexp grows fast: keep the others readable
    axes[0][0].set_ylabel("f(x)")
    fig.suptitle("activation functions found by SAFS, with their learned scales", fontsize=11)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def search_histories(folders: dict[int, Path]) -> dict[str, list]:
    """LAHC and (where `reproduce` ran it) random-search histories of the runs, by strategy."""
    out: dict[str, list] = {"LAHC": [], "random search": []}
    for folder in folders.values():
        out["LAHC"].append(read_history(folder / "stage1_search.csv"))
        if (folder / "stage1_random_search.csv").exists():
            out["random search"].append(read_history(folder / "stage1_random_search.csv"))
    return {k: v for k, v in out.items() if v}


def fitness_label(results: dict) -> str:
    """The y-axis label of a run's stage-1 fitness (runs made before the choice existed used val_acc)."""
    from .fitness import FITNESS_LABELS

    return FITNESS_LABELS[results["config"].get("fitness", "val_acc")]


def make_figures(preset: str = "cpu", seeds=(0, 1, 2), model: str = "lenet5", dataset: str = "mnist",
                 sparsity: float = 0.99, pruning: str = "layerwise", runs: str | os.PathLike | None = None,
                 figures: str | os.PathLike | None = None,
                 data_root: str | os.PathLike | None = None) -> list[Path]:
    """Draw every figure of the reproduction from saved runs; return the paths written.

    Args:
        preset, seeds, model, dataset, sparsity, pruning: which `reproduce` runs to read.
        runs: runs folder (default $SAFS_RUNS, else <repo>/runs).
        figures: output folder (default $SAFS_FIGURES, else <repo>/figures); a sweep table
            there (accuracy_vs_sparsity.csv) is redrawn too.
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

    paper = PAPER_TABLE1.get((model, dataset)) if (sparsity, pruning) == (0.99, "layerwise") else None
    save(plot_table1_bars(results, paper), "table1_bars.png")
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
    sweep_csv = out / "accuracy_vs_sparsity.csv"
    if sweep_csv.exists():
        save(plot_sweep(load_sweep(sweep_csv)), "accuracy_vs_sparsity.png")
    return written
