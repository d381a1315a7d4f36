"""Lesson plots the notebooks draw: training curves, a confusion matrix, the operator library and the effect of
alpha and beta. Each returns its `Figure` and, given `path`, saves a small PNG."""
from __future__ import annotations

import os
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ..method.operators import operator_curves, operator_names
from ..study.plots import _label, draw_curve, save_figure


def plot_history(history: Sequence[dict], title: str | None = None,
                 path: str | os.PathLike | None = None) -> Figure:
    """Per-epoch loss and accuracy, training versus validation, in two panels.

    Args:
        history: one dict per epoch with keys epoch, train_loss, train_acc,
            val_loss, val_acc (as returned by `train`, accuracies in percent).
        title: figure title.
        path: PNG file to write, or None.

    Returns:
        The figure (two axes: loss, accuracy; two lines each).
    """
    df = pd.DataFrame(list(history))
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, metric, label in ((ax_loss, "loss", "cross-entropy loss"), (ax_acc, "acc", "accuracy (%)")):
        ax.plot(df["epoch"], df[f"train_{metric}"], marker="o", ms=3, label="train")
        ax.plot(df["epoch"], df[f"val_{metric}"], marker="s", ms=3, label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
    ax_loss.set_title("loss")
    ax_acc.set_title("accuracy")
    if len(df) > 1:
        ax_loss.set_xlim(df["epoch"].min() - 0.3, df["epoch"].max() + 0.3)
        ax_acc.set_xlim(df["epoch"].min() - 0.3, df["epoch"].max() + 0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def plot_confusion(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int = 10,
                   path: str | os.PathLike | None = None, title: str | None = None) -> Figure:
    """Confusion matrix (counts) as a seaborn heatmap: rows true class, columns predicted class.

    Args:
        y_true: true labels (list, array or tensor).
        y_pred: predicted labels, same length.
        num_classes: number of classes (labels 0 .. num_classes - 1).
        path: PNG file to write, or None.
        title: axes title (default: the accuracy).

    Returns:
        The figure (heatmap axes plus its colour bar).
    """
    t = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(y_pred, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    counts = np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    # The diagonal dwarfs the errors: cap the colour scale at twice the largest error so errors show.
    off = counts[~np.eye(num_classes, dtype=bool)]
    vmax = max(int(off.max()) * 2, 1) if off.size else None
    sns.heatmap(counts, annot=True, fmt="d", cmap="Blues", vmax=vmax, cbar=True, square=True,
                annot_kws={"size": 7}, linewidths=0.3, linecolor="white", ax=ax,
                cbar_kws={"label": "images (colour capped at 2x the largest error)"})
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    acc = 100.0 * np.trace(counts) / max(counts.sum(), 1)
    ax.set_title(title or f"confusion matrix ({counts.sum():,} images, {acc:.2f}% correct)", fontsize=10)
    ax.tick_params(axis="y", rotation=0)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


def plot_operators(names: str | Sequence[str] | None = None, path: str | os.PathLike | None = None,
                   ncols: int = 6) -> Figure:
    """Plot every operator and its derivative on [-5, 5], one small panel each.

    Args:
        names: one registry name, several, or None for all of ``ACTIVATIONS``
            (searched operators first, then the baseline relu and the rest).
        path: PNG file to write (dpi 110), or None.
        ncols: panels per row.

    Returns:
        The figure, with exactly one axes per operator; searched operators have
        "(searched)" in their (bold) title, relu "(baseline)".
    """
    names = operator_names(names)
    curves = operator_curves(names)
    nrows = -(-len(names) // ncols)
    ncols = min(ncols, len(names))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.9 * ncols, 1.6 * nrows + 0.35), squeeze=False)
    flat = axes.ravel()
    for ax, name in zip(flat, names):
        draw_curve(ax, curves[curves["operator"] == name], _label(name))
    for ax in flat[len(names):]:
        fig.delaxes(ax)
    handles, labels = flat[0].get_legend_handles_labels()
    fig.legend(handles, ["f(x) = op(x)", "f'(x) (autograd)"], loc="upper center", ncol=2,
               frameon=False, fontsize=9, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    save_figure(fig, path)
    return fig


def plot_scaling(names: str | Sequence[str] = ("tanh", "swish"), alphas: Sequence[float] = (0.5, 1.0, 2.0),
                 betas: Sequence[float] = (0.5, 1.0, 2.0), path: str | os.PathLike | None = None) -> Figure:
    """Show how alpha and beta reshape operators: alpha * op(beta * x) for a few values of each.

    Args:
        names: one registry name or several; one row of panels each.
        alphas: output scales to draw, with beta = 1 (left column).
        betas: input scales to draw, with alpha = 1 (right column).
        path: PNG file to write (dpi 110), or None.

    Returns:
        The figure: per operator two axes, one line per alpha (left) and per beta (right).
    """
    names = operator_names(names)
    fig, axes = plt.subplots(len(names), 2, figsize=(9, 2.7 * len(names)), sharey="row", squeeze=False)
    for name, (ax_a, ax_b) in zip(names, axes):
        for ax, values, which in ((ax_a, alphas, "alpha"), (ax_b, betas, "beta")):
            ax.axhline(0, color="0.8", lw=0.6, zorder=0)
            ax.axvline(0, color="0.8", lw=0.6, zorder=0)
            for i, v in enumerate(values):
                a, b = (v, 1.0) if which == "alpha" else (1.0, v)
                c = operator_curves(name, alpha=a, beta=b)
                ax.plot(c["x"], c["f"], color=plt.cm.viridis(i / max(len(values) - 1, 1) * 0.85),
                        lw=1.8 if v == 1.0 else 1.3, label=f"{which} = {v:g}")
            fixed = "beta = 1" if which == "alpha" else "alpha = 1"
            scale = "output (vertical)" if which == "alpha" else "input (horizontal)"
            ax.set_title(f"{name}: {which} scales the {scale}; {fixed}", fontsize=9)
            ax.grid(alpha=0.25)
            ax.legend(frameon=False, fontsize=8)
        ax_a.set_ylabel(f"alpha * {name}(beta * x)", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("x")
    fig.tight_layout()
    save_figure(fig, path)
    return fig
