"""Figures of runs and studies: accuracy against sparsity, the search, activation scales, HPO, Table 1, the sweep.

Every plot function returns its matplotlib `Figure` and, given `path`, also
saves it as a small PNG (dpi 110, tight bounding box) for the `figures/` folder:

    >>> fig = plot_lahc_trajectory(history, path=figures_dir() / "04_lahc_trajectory.png")  # doctest: +SKIP
"""
from __future__ import annotations

import os
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..method.activations import ACTIVATIONS, SEARCH_SPACE
from ..method.operators import operator_curves
from ..run.results import (
    COLUMNS,
    HEADERS,
    LABELS,
    PAPER_SETTING,
    PAPER_TABLE1,
    alpha_beta_frame,
    table1_frame,
    with_gain,
)

DPI = 110


def save_figure(fig: Figure, path: str | os.PathLike | None) -> None:
    """Save `fig` as a compact PNG if `path` is given (parent folders are created).

    Args:
        fig: the figure.
        path: PNG file to write, or None to skip saving.
    """
    if path is None:
        return
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Software": None})


def plot_accuracy_vs_sparsity(df: pd.DataFrame, x: str = "sparsity", y: str = "test_accuracy",
                              hue: str | None = "method", style: str | None = None,
                              path: str | os.PathLike | None = None, reference: dict | Sequence[dict] | None = None,
                              title: str | None = None, xscale: str = "logit", errorbar=("ci", 95)) -> Figure:
    """Accuracy against the fraction of weights removed, one line per hue (and style) level.

    Several rows at the same x (e.g. seeds) are aggregated by seaborn into the
    mean with a band (`errorbar`).

    Args:
        df: tidy table, one row per run.
        x: column with the sparsity as a fraction in [0, 1).
        y: column with the accuracy in percent.
        hue: column coloured by (e.g. "method").
        style: column with dashes and markers (e.g. "finetuned").
        path: PNG file to write, or None.
        reference: optional point (or list of points) to mark, e.g.
            {"label": "paper: magnitude pruning 99%", "x": 0.99, "y": 46.69} (optional "marker", "color").
        title: axes title.
        xscale: "logit" (default: 50%, 90%, 99% equally spaced) or "linear".
        errorbar: seaborn's band over rows at the same x: ("ci", 95), "sd", None, ...

    Returns:
        The figure (one axes).
    """
    refs = [reference] if isinstance(reference, dict) else list(reference or [])
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    sns.lineplot(data=df, x=x, y=y, hue=hue, style=style, markers=True, dashes=True,
                 markersize=7, errorbar=errorbar, ax=ax)
    colors = ["crimson", "gold", "black", "purple"]
    for i, ref in enumerate(refs):
        marker = ref.get("marker", "*")
        ax.scatter([ref["x"]], [ref["y"]], marker=marker, s=220 if marker == "*" else 110,
                   color=ref.get("color", colors[i % len(colors)]), edgecolor="black", linewidth=0.6, zorder=5,
                   label=ref.get("label", "reference"))
    if xscale == "logit":  # spreads 50%, 90%, 99% evenly: the interesting range is near 100%
        ax.set_xscale("logit")
        ax.minorticks_off()
    ticks = sorted(set(float(v) for v in df[x]) | {float(r["x"]) for r in refs})
    ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}%"))
    ax.set_xlabel("weights removed (sparsity" + (", logit scale)" if xscale == "logit" else ")"))
    ax.set_ylabel("test accuracy (%)" if y == "test_accuracy" else y.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def _search_rows(history) -> list[dict]:
    """Rows of one search: a SearchResult, its `.history`, `read_history`'s list, or a DataFrame."""
    if hasattr(history, "history") and not isinstance(history, pd.DataFrame):
        history = history.history
    if isinstance(history, pd.DataFrame):
        history = history.to_dict("records")
    rows = list(history)
    if not rows:
        raise ValueError("the search history is empty")
    return rows


def _current_fitness(rows: Sequence[dict]) -> np.ndarray:
    """Fitness of the search's current state after each step (it moves only on accepted steps)."""
    current, out = -np.inf, []
    for row in rows:
        if row["accepted"]:
            current = row["fitness"]
        out.append(current)
    return np.array(out, dtype=float)


def plot_lahc_trajectory(history, title: str | None = None, path: str | os.PathLike | None = None,
                         ylabel: str = "fitness", ax: plt.Axes | None = None) -> Figure:
    """Fitness of every LAHC step: accepted vs rejected candidates, cached revisits, best so far.

    Args:
        history: one search's rows (keys step, fitness, accepted, best_fitness,
            cached), as in `SearchResult.history` or `read_history(csv)`.
        title: axes title.
        path: PNG file to write, or None.
        ylabel: what the fitness is (e.g. `fitness.FITNESS_LABELS[name]`).
        ax: draw into this axes (e.g. one panel of a side-by-side figure) instead of a new figure.

    Returns:
        The figure (one axes, or `ax`'s figure). Its lines are the best so far and the current
        state; its scatter collections are accepted steps, rejected steps and,
        when there are any, cached revisits (in that order).
    """
    rows = _search_rows(history)
    step = np.array([r["step"] for r in rows])
    fitness = np.array([r["fitness"] for r in rows], dtype=float)
    accepted = np.array([bool(r["accepted"]) for r in rows])
    cached = np.array([bool(r["cached"]) for r in rows])
    own = ax is None
    fig, ax = plt.subplots(figsize=(8, 3.6)) if own else (ax.figure, ax)
    ax.plot(step, [r["best_fitness"] for r in rows], drawstyle="steps-post", color="black", lw=1.6,
            label="best so far")
    ax.plot(step, _current_fitness(rows), drawstyle="steps-post", color="tab:blue", lw=1.0, ls="--",
            alpha=0.8, label="current state")
    ax.scatter(step[accepted], fitness[accepted], marker="o", s=38, color="tab:green", edgecolor="black",
               linewidth=0.4, zorder=3, label=f"accepted ({accepted.sum()})")
    ax.scatter(step[~accepted], fitness[~accepted], marker="X", s=46, color="tab:red", edgecolor="white",
               linewidth=0.4, zorder=3, label=f"rejected ({(~accepted).sum()})")
    if cached.any():  # a revisit costs no evaluation: its fitness comes from the cache
        ax.scatter(step[cached], fitness[cached], marker="o", s=150, facecolors="none", edgecolors="tab:gray",
                   linewidth=1.2, zorder=2, label=f"cached revisit ({cached.sum()})")
    ax.set_xlabel("step (0 = the initial vector)")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8, **({"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)} if own else {}))
    ax.set_title(title or f"search trajectory: {len(rows)} steps, {(~cached).sum()} evaluations", fontsize=10)
    if own:
        fig.tight_layout()
    save_figure(fig, path)
    return fig


def _op_colors() -> dict[str, tuple]:
    """A fixed colour per registered operator, so an operator looks the same in every figure."""
    tab20 = plt.get_cmap("tab20").colors
    palette = list(tab20[0::2]) + list(tab20[1::2]) + list(plt.get_cmap("Set2").colors)  # distinct hues first
    return {op: palette[i % len(palette)] for i, op in enumerate(ACTIVATIONS)}


def plot_operator_choices(history, title: str | None = None, path: str | os.PathLike | None = None) -> Figure:
    """Which operator each layer holds: a layer x column grid, plus layer x operator counts.

    Args:
        history: either one search's rows (each with a "vector"; the columns
            are the steps and rejected candidates are drawn faded), or a dict
            of named vectors, e.g. {"seed 0": {"conv1": "tanh", ...}, ...}
            (one column per name).
        title: figure title.
        path: PNG file to write, or None.

    Returns:
        The figure: axes 0 is the grid (an image of shape layers x columns,
        each cell labelled with its operator), axes 1 the counts heatmap
        (layers x operators that occur, annotated with the counts).
    """
    if isinstance(history, dict):
        columns, vectors = [str(k) for k in history], [dict(v) for v in history.values()]
        faded = [False] * len(vectors)
        xlabel, what = "", f"{len(vectors)} vectors"
    else:
        rows = _search_rows(history)
        columns, vectors = [str(r["step"]) for r in rows], [r["vector"] for r in rows]
        faded = [not r.get("accepted", True) for r in rows]
        xlabel, what = "step (faded: rejected candidate)", f"all {len(vectors)} candidates"
    if not vectors:
        raise ValueError("no vectors to plot")
    layers = list(vectors[0])
    used = {op for v in vectors for op in v.values()}
    ops = [op for op in ACTIVATIONS if op in used] + sorted(used - set(ACTIVATIONS))
    colors = {**_op_colors(), **{op: (0.8, 0.8, 0.8) for op in used - set(ACTIVATIONS)}}
    codes = np.array([[ops.index(v[layer]) for v in vectors] for layer in layers])  # (layers, columns)
    counts = np.array([[sum(v[layer] == op for v in vectors) for op in ops] for layer in layers])

    n_cols = len(columns)
    width = max(6.0, 0.42 * max(n_cols, len(ops)) + 1.6)
    fig, (ax_grid, ax_count) = plt.subplots(2, 1, figsize=(width, 0.9 * len(layers) + 2.6),
                                            gridspec_kw={"hspace": 0.6})
    alpha = np.where(np.array(faded)[None, :], 0.3, 1.0) * np.ones_like(codes, dtype=float)
    ax_grid.imshow(codes, cmap=ListedColormap([colors[op] for op in ops]), vmin=-0.5, vmax=len(ops) - 0.5,
                   aspect="auto", alpha=alpha, interpolation="nearest")
    rotate = n_cols > 12  # narrow cells: write the names vertically
    for (i, j), code in np.ndenumerate(codes):
        r, g, b = colors[ops[code]][:3]
        dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5 and not faded[j]
        ax_grid.text(j, i, ops[code], ha="center", va="center", fontsize=6.5 if rotate else 8,
                     rotation=90 if rotate else 0, color="white" if dark else "0.45" if faded[j] else "black")
    ax_grid.set_xticks(range(n_cols), columns, fontsize=8 if n_cols <= 30 else 6)
    ax_grid.set_yticks(range(len(layers)), layers)
    ax_grid.set_xlabel(xlabel)
    ax_grid.set_title("operator per layer" + (" and step" if xlabel else ""), fontsize=10)

    ax_count.imshow(counts, cmap="Blues", aspect="auto", vmin=0, vmax=max(int(counts.max()), 1))
    for (i, j), c in np.ndenumerate(counts):
        ax_count.text(j, i, str(c), ha="center", va="center", fontsize=8,
                      color="white" if c > 0.6 * counts.max() else "black")
    ax_count.set_xticks(range(len(ops)), ops, rotation=30, ha="right", fontsize=8)
    ax_count.set_yticks(range(len(layers)), layers)
    ax_count.set_title(f"count per layer and operator ({what})", fontsize=10)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    return fig


def best_by_evaluations(history) -> np.ndarray:
    """Best fitness after 1, 2, ... objective calls (cached revisits cost no call).

    Args:
        history: one search's rows (keys best_fitness, cached) or a SearchResult.

    Returns:
        Array of length "number of evaluations"; entry k is the best after k + 1 calls.
    """
    out: list[float] = []
    for row in _search_rows(history):
        if not row["cached"] or not out:
            out.append(row["best_fitness"])
    return np.array(out, dtype=float)


def plot_search_comparison(histories: dict, band: str | None = "sem", title: str | None = None,
                           path: str | os.PathLike | None = None, show_runs: bool = False) -> Figure:
    """Best fitness so far against the number of evaluations, one line per strategy.

    Args:
        histories: strategy name -> one search (rows or a SearchResult) or a
            list of searches (e.g. one per seed). Several searches are drawn
            as their mean, up to the smallest evaluation count among them (so
            every point averages the same runs).
        band: spread drawn around a mean: "sem" (+- one standard error of the
            mean), "minmax" (the range over runs) or None.
        title: axes title.
        path: PNG file to write, or None.
        show_runs: also draw every run as a thin line in its strategy's colour.

    Returns:
        The figure (one axes; one thick line per strategy, in the dict's order, drawn after that
        strategy's thin per-run lines when show_runs).
    """
    if not histories:
        raise ValueError("no searches to compare")
    if band not in ("sem", "minmax", None):
        raise ValueError(f"band must be 'sem', 'minmax' or None, got {band!r}")
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, (name, runs) in enumerate(histories.items()):
        single = hasattr(runs, "history") or isinstance(runs, pd.DataFrame) or \
            (len(runs) > 0 and isinstance(runs[0], dict))
        runs = [runs] if single else list(runs)
        curves = [best_by_evaluations(r) for r in runs]
        n = min(len(c) for c in curves)
        stack = np.stack([c[:n] for c in curves])  # (runs, evaluations)
        x = np.arange(1, n + 1)
        color = f"C{i}"
        if show_runs and len(runs) > 1:
            for curve in stack:
                ax.plot(x, curve, drawstyle="steps-post", color=color, lw=0.8, alpha=0.45)
        label = name if len(runs) == 1 else f"{name} (mean of {len(runs)})"
        ax.plot(x, stack.mean(0), drawstyle="steps-post", color=color, lw=1.8, label=label)
        if len(runs) > 1 and band is not None:
            if band == "minmax":
                low, high = stack.min(0), stack.max(0)
            else:
                sem = stack.std(0, ddof=1) / np.sqrt(len(runs))
                low, high = stack.mean(0) - sem, stack.mean(0) + sem
            ax.fill_between(x, low, high, step="post", color=color, alpha=0.15, lw=0)
    ax.set_xlabel("evaluations (objective calls)")
    ax.set_ylabel("best fitness so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    spread = {"sem": " (band: mean +- standard error)", "minmax": " (band: min to max over runs)", None: ""}
    ax.set_title(title or f"best so far at equal evaluation counts{spread[band]}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def plot_alpha_beta_trajectory(df: pd.DataFrame, title: str | None = None,
                               path: str | os.PathLike | None = None) -> Figure:
    """alpha and beta of every activation site against the epoch, in two panels.

    Args:
        df: tidy table with columns epoch, layer, alpha, beta (one row per
            layer per epoch; epoch 0 = before training) and optionally op,
            which is added to the legend.
        title: figure title.
        path: PNG file to write, or None.

    Returns:
        The figure (axes alpha, beta; one line per layer plus a dotted line at 1, the initial value).
    """
    missing = {"epoch", "layer", "alpha", "beta"} - set(df.columns)
    if missing:
        raise ValueError(f"df lacks the columns {sorted(missing)}")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharex=True)
    for ax, key, what in zip(axes, ("alpha", "beta"), ("output scale", "input scale")):
        ax.axhline(1.0, color="0.5", ls=":", lw=1)
        for layer, part in df.groupby("layer", sort=False):
            part = part.sort_values("epoch")
            label = f"{layer} ({part['op'].iloc[0]})" if "op" in part else str(layer)
            ax.plot(part["epoch"], part[key], marker="o", ms=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{key} ({what})")
        ax.set_title(f"{key} = {what}", fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[1].legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def plot_hpo_history(study, reference: dict | None = None, title: str | None = None,
                     path: str | os.PathLike | None = None) -> Figure:
    """Value of every finished Optuna trial (complete vs pruned) and the best so far.

    A pruned trial has no final value; it is drawn at the last value it reported.

    Args:
        study: an `optuna.Study` (maximised or minimised).
        reference: optional horizontal line, e.g. {"label": "dense defaults", "y": 31.2}.
        title: axes title.
        path: PNG file to write, or None.
        ylabel: what the fitness is (e.g. `fitness.FITNESS_LABELS[name]`).
        ax: draw into this axes (e.g. one panel of a side-by-side figure) instead of a new figure.

    Returns:
        The figure (one axes, or `ax`'s figure). Lines: best so far (then the reference, if any);
        scatter collections: complete trials, then pruned trials.
    """
    import optuna

    states = optuna.trial.TrialState
    complete = [t for t in study.trials if t.state == states.COMPLETE]
    pruned = [t for t in study.trials if t.state == states.PRUNED and t.intermediate_values]
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    fig, ax = plt.subplots(figsize=(7, 3.6))
    if complete:
        values = np.array([t.value for t in complete], dtype=float)
        best = np.maximum.accumulate(values) if maximize else np.minimum.accumulate(values)
        x = [t.number for t in complete]
        ax.plot(x + [max(t.number for t in study.trials)], list(best) + [best[-1]], drawstyle="steps-post",
                color="black", lw=1.5, label="best so far")
    if reference is not None:
        ax.axhline(reference["y"], color="tab:purple", ls="--", lw=1.2, label=reference.get("label", "reference"))
    ax.scatter([t.number for t in complete], [t.value for t in complete], marker="o", s=40, color="tab:green",
               edgecolor="black", linewidth=0.4, zorder=3, label=f"complete ({len(complete)})")
    last = [t.intermediate_values[max(t.intermediate_values)] for t in pruned]
    ax.scatter([t.number for t in pruned], last, marker="X", s=46, color="tab:red", zorder=3,
               label=f"pruned ({len(pruned)}, last reported value)")
    ax.set_xlabel("trial")
    ax.set_ylabel("objective (validation accuracy %)" if maximize else "objective")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title or f"study {study.study_name!r}: {len(complete) + len(pruned)} finished trials", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def plot_param_importance(study, title: str | None = None, seed: int = 0,
                          path: str | os.PathLike | None = None) -> Figure:
    """Hyperparameter importance of a study (Optuna's fANOVA) as horizontal bars.

    With fewer than 2 complete trials (or when Optuna cannot compute the
    importances) the axes hold a note instead of bars.

    Args:
        study: an `optuna.Study`.
        title: axes title.
        seed: seed of the fANOVA evaluator (its random forest), for repeatable bars.
        path: PNG file to write, or None.

    Returns:
        The figure (one axes; one bar per parameter, the most important on top).
    """
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    importances, note = {}, None
    if len(complete) < 2:
        note = f"parameter importance needs at least 2 complete trials\n(this study has {len(complete)})"
    else:
        try:
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
            importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
        except (RuntimeError, ValueError) as err:
            note = f"Optuna could not compute importances:\n{err}"
        if not note and (not importances or not np.isfinite(list(importances.values())).all()):
            note = "no importances: the complete trials do not vary enough"
    fig, ax = plt.subplots(figsize=(6, 0.45 * max(len(importances), 3) + 1.2))
    if note:
        ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes, fontsize=9)
        ax.set_axis_off()
    else:
        names = list(importances)[::-1]  # the most important on top
        values = [importances[n] for n in names]
        ax.barh(names, values, color="tab:blue")
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.2f}", va="center", fontsize=8)
        ax.set_xlim(0, max(values) * 1.2 or 1)
        ax.set_xlabel("importance (fANOVA share of the objective's variance)")
        ax.grid(alpha=0.3, axis="x")
    ax.set_title(title or f"parameter importance ({len(complete)} complete trials)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


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
        p = with_gain(paper)
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


def paper_points(model: str = "lenet5", dataset: str = "mnist") -> list[dict]:
    """The paper's Table 1 points (99% layer-wise) for the accuracy-versus-sparsity figure."""
    paper = PAPER_TABLE1.get((model, dataset))
    if not paper:
        return []
    # coloured like the method's line (seaborn's first and second hue)
    sparsity, pruning = PAPER_SETTING
    setting = f"{100 * sparsity:g}% {'layer-wise' if pruning == 'layerwise' else pruning}"
    return [{"label": f"paper: {LABELS[m]} ({setting})", "x": sparsity, "y": paper[m], "marker": marker,
             "color": color} for m, marker, color in (("magnitude_pruning", "v", "C0"), ("safs", "*", "C1"))]


def plot_sweep(table: pd.DataFrame, path: str | os.PathLike | None = None, methods=("magnitude_pruning", "safs")):
    """The accuracy-versus-sparsity figure of a sweep table: hue = method, line style = pruning."""
    df = table[table["method"].isin(methods)].copy()
    if df.empty:
        raise ValueError(f"the sweep table has no rows for {', '.join(methods)}")
    df["method"] = df["method"].map(LABELS)
    df = df.rename(columns={"pruning": "pruning method"})
    first = df.iloc[0]
    seeds = df["seed"].nunique()
    title = (f"{first['model']} / {first['dataset']}, preset {first['preset']}: mean "
             + ("and one standard deviation " if seeds > 1 else "") + f"over {seeds} seed(s)")
    return plot_accuracy_vs_sparsity(df, hue="method", style="pruning method", errorbar="sd", path=path,
                                     reference=paper_points(first["model"], first["dataset"]), title=title)


def plot_gain_vs_baseline(gain: Sequence[float], baseline: Sequence[float], allocation: Sequence[str] | None = None,
                          xlabel: str = "magnitude pruning test accuracy (%)", title: str | None = None,
                          majority: float | None = None, path: str | os.PathLike | None = None) -> Figure:
    """When SAFS helps: each seed's gain (SAFS - MP, points) against its baseline, one marker per allocation.

    Args:
        gain: per-seed gains, in points.
        baseline: the same seeds' x values: MP's accuracy, or MP's live connected units (`mechanism_table`).
        allocation: per-seed allocation labels ("layerwise", "erk", ...); None: one group.
        xlabel: the x axis' label (say which baseline `baseline` is).
        title: figure title.
        majority: if given, a dotted vertical line at this x (the majority class's share: a collapsed MP).
        path: PNG file to write, or None.

    Returns:
        The figure: one scatter collection per allocation (one point per seed) and a dashed line at zero gain.
    """
    gain, baseline = np.asarray(gain, dtype=float), np.asarray(baseline, dtype=float)
    groups = np.asarray(["all seeds"] * len(gain) if allocation is None else list(allocation), dtype=object)
    if not len(gain) == len(baseline) == len(groups) or gain.ndim != 1:
        raise ValueError(f"gain, baseline and allocation need one value per seed each, got {len(gain)}, "
                         f"{len(baseline)} and {len(groups)}")
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    for i, group in enumerate(dict.fromkeys(groups)):
        pick = groups == group
        ax.scatter(baseline[pick], gain[pick], marker="osD^v<>"[i % 7], s=36, alpha=0.85,
                   label=f"{group} ({int(pick.sum())} seeds)")
    ax.axhline(0, color="0.4", lw=0.8, ls="--")
    if majority is not None:
        ax.axvline(majority, color="0.5", lw=0.8, ls=":", label="majority class (MP collapsed)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("SAFS gain over MP (points)")
    ax.set_title(title or "per-seed gain against the baseline", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def _label(name: str) -> str:
    """Panel title: the operator name, tagged if it is searched or the baseline."""
    if name in SEARCH_SPACE:
        return f"{name} (searched)"
    return f"{name} (baseline)" if name == "relu" else name


def draw_curve(ax: Axes, curve: pd.DataFrame, title: str, legend: bool = False) -> None:
    """Draw f (solid) and f' (dashed) of one operator's curve table on ax."""
    ax.axhline(0, color="0.8", lw=0.6, zorder=0)
    ax.axvline(0, color="0.8", lw=0.6, zorder=0)
    ax.plot(curve["x"], curve["f"], color="C0", lw=1.6, label="f(x)")
    ax.plot(curve["x"], curve["df"], color="C3", lw=1.2, ls="--", label="f'(x)")
    ax.set_title(title, fontsize=9, fontweight="bold" if "(searched)" in title else "normal")
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.25)
    if legend:
        ax.legend(frameon=False, fontsize=8)
