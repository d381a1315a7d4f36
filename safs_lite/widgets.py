"""Look at the activation operators: curve tables, a panel per operator, and an ipywidgets explorer.

Everything here evaluates the activation model of SAFS (SAFS_METHOD.md, section 2),
f(x) = alpha * op(beta * x), through the same ``Activation`` module the models
use, and differentiates it with ``torch.autograd`` (no finite differences), so
what you see is exactly what backpropagation sees.

Example:
    >>> df = operator_curves("relu", x=[-1.0, 2.0])
    >>> df[["x", "f", "df"]].values.tolist()
    [[-1.0, 0.0, 0.0], [2.0, 2.0, 1.0]]
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython import get_ipython
from IPython.display import display
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .activations import ACTIVATIONS, SEARCH_SPACE, Activation, get_op
from .plots import save_figure

X_MAX = 5.0  # curves cover [-X_MAX, X_MAX]
N_POINTS = 401  # odd, so the grid holds x = 0 exactly (step 0.025)
# Far enough left that every operator has reached its x -> -inf behaviour
# (sigmoid(-100) ~ 4e-44), close enough that float64 stays exact.
TAIL_X = -100.0
# |f'| below this counts as "no gradient" (a dead unit for x < 0).
DEAD_GRAD = 1e-6


def _names(names: str | Sequence[str] | None) -> list[str]:
    """All registry names if None, a one-element list for a string; every name validated."""
    if names is None:
        return list(ACTIVATIONS)
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        get_op(name)  # raises ValueError listing the valid names
    return names


def _label(name: str) -> str:
    """Panel title: the operator name, tagged if it is searched or the baseline."""
    if name in SEARCH_SPACE:
        return f"{name} (searched)"
    return f"{name} (baseline)" if name == "relu" else name


def operator_curves(names: str | Sequence[str] | None = None, alpha: float = 1.0, beta: float = 1.0,
                    x: Sequence[float] | np.ndarray | torch.Tensor | None = None) -> pd.DataFrame:
    """Tabulate f(x) = alpha * op(beta * x) and its autograd derivative for some operators.

    Args:
        names: one registry name, several, or None for all of ``ACTIVATIONS``.
        alpha: output scale of the activation model.
        beta: input scale of the activation model.
        x: points to evaluate at (default: 401 points evenly over [-5, 5]).

    Returns:
        Tidy DataFrame with columns operator, x, f, df (float64), one row per
        operator and point, operators in the order given. At a kink ``df`` is
        whatever PyTorch's backward uses there (e.g. 0 for relu at 0).

    Raises:
        ValueError: on an unknown operator name.
    """
    names = _names(names)
    if x is None:
        # Not linspace: its rounding puts the middle point at -1e-16 instead of 0.
        half = (N_POINTS - 1) // 2
        x = torch.arange(-half, half + 1, dtype=torch.float64) * (X_MAX / half)
    x = torch.as_tensor(x, dtype=torch.float64).detach().reshape(-1)
    frames = []
    for name in names:
        act = Activation(name).double()
        # Set the scales after .double(): Activation(alpha=0.3) would round 0.3 to float32 first.
        act.alpha.data.fill_(float(alpha))
        act.beta.data.fill_(float(beta))
        xg = x.clone().requires_grad_(True)
        f = act(xg)
        # Every operator is elementwise, so the gradient of the sum is the pointwise derivative.
        (df,) = torch.autograd.grad(f.sum(), xg)
        frames.append(pd.DataFrame({"operator": name, "x": x.numpy(), "f": f.detach().numpy(),
                                    "df": df.numpy()}))
    return pd.concat(frames, ignore_index=True)


def _negative_side(tail: float, slope: float, monotone: bool) -> str:
    """Describe what an operator does with large negative inputs, from f and f' at x = TAIL_X."""
    if abs(tail) < 1e-3 and abs(slope) < 1e-3:
        return "-> 0 (blocks)"
    if abs(slope) < 1e-3 and abs(tail) < 10:
        return f"saturates at {tail:.2f}"
    if tail < 0 and monotone:
        return "passes (unbounded)"
    return "oscillates" if not monotone else "other"


def operator_properties(names: str | Sequence[str] | None = None, alpha: float = 1.0,
                        beta: float = 1.0) -> pd.DataFrame:
    """Compute each operator's key properties numerically, on [-5, 5] and at x = -100.

    Args:
        names: one registry name, several, or None for all of ``ACTIVATIONS``.
        alpha: output scale of the activation model.
        beta: input scale of the activation model.

    Returns:
        DataFrame indexed by operator with columns: searched (in SEARCH_SPACE),
        f(0), f'(0), min f and max f on [-5, 5], monotone (f' >= 0 on the whole
        grid), dead x<0 (share of grid points in [-5, 0) with |f'| < 1e-6, i.e.
        no gradient flows back), f(-100), f'(-100), and x<0 side, a label for
        the large-negative behaviour: "-> 0 (blocks)", "saturates at c",
        "passes (unbounded)" or "oscillates".

    Example:
        >>> operator_properties(["relu", "elu"])["x<0 side"].tolist()
        ['-> 0 (blocks)', 'saturates at -1.00']
    """
    names = _names(names)
    grid = operator_curves(names, alpha, beta)
    tail = operator_curves(names, alpha, beta, x=[TAIL_X]).set_index("operator")
    rows = []
    for name, g in grid.groupby("operator", sort=False):
        at0 = g.loc[g["x"].abs().idxmin()]
        neg = g[g["x"] < 0]
        monotone = bool((g["df"] >= -1e-9).all())
        rows.append({
            "operator": name,
            "searched": name in SEARCH_SPACE,
            "f(0)": at0["f"],
            "f'(0)": at0["df"],
            "min f": g["f"].min(),
            "max f": g["f"].max(),
            "monotone": monotone,
            "dead x<0": float((neg["df"].abs() < DEAD_GRAD).mean()),
            "f(-100)": tail.at[name, "f"],
            "f'(-100)": tail.at[name, "df"],
            "x<0 side": _negative_side(tail.at[name, "f"], tail.at[name, "df"], monotone),
        })
    return pd.DataFrame(rows).set_index("operator")


def _draw(ax: Axes, curve: pd.DataFrame, title: str, legend: bool = False) -> None:
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
    names = _names(names)
    curves = operator_curves(names)
    nrows = -(-len(names) // ncols)
    ncols = min(ncols, len(names))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.9 * ncols, 1.6 * nrows + 0.35), squeeze=False)
    flat = axes.ravel()
    for ax, name in zip(flat, names):
        _draw(ax, curves[curves["operator"] == name], _label(name))
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
    names = _names(names)
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


def _summary(curve: pd.DataFrame) -> str:
    """One line of numbers for the explorer: f and f' at 0, the ends, and the minimum."""
    at = curve.set_index("x")
    x0 = curve.loc[curve["x"].abs().idxmin(), "x"]
    lo, hi = curve["x"].min(), curve["x"].max()
    return (f"f(0) = {at.at[x0, 'f']:.3f}, f'(0) = {at.at[x0, 'df']:.3f}, "
            f"f({lo:g}) = {at.at[lo, 'f']:.3f}, f({hi:g}) = {at.at[hi, 'f']:.3f}, "
            f"min f on [{lo:g}, {hi:g}] = {curve['f'].min():.3f}")


def activation_explorer(default: str = "swish") -> widgets.VBox:
    """Build an interactive view of f(x) = alpha * op(beta * x) and f'(x) with an operator menu and sliders.

    Needs a live Jupyter kernel to react to the controls; without one (a
    script, pytest, a rendered notebook) it is still built, drawn once, and
    its controls can be set from code.

    Args:
        default: the operator shown first.

    Returns:
        A VBox: [HBox(Dropdown "operator", FloatSlider "alpha", FloatSlider
        "beta"), HTML line of key values, Output with the plot].

    Raises:
        ValueError: if default is not a registered operator.
    """
    get_op(default)
    op = widgets.Dropdown(options=list(ACTIVATIONS), value=default, description="operator",
                          layout=widgets.Layout(width="220px"))
    # continuous_update=False: redraw on release, a matplotlib redraw per pixel is slow on 2 cores.
    sliders = {k: widgets.FloatSlider(value=1.0, min=0.1, max=3.0, step=0.05, description=k,
                                      readout_format=".2f", continuous_update=False)
               for k in ("alpha", "beta")}
    info = widgets.HTML()
    out = widgets.Output()

    def redraw(_change: dict | None = None) -> None:
        alpha, beta = sliders["alpha"].value, sliders["beta"].value
        curve = operator_curves(op.value, alpha, beta)
        info.value = f"<code>{_summary(curve)}</code>"
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(6, 3.2))
            plain = operator_curves(op.value)
            ax.plot(plain["x"], plain["f"], color="0.65", lw=1, ls=":", label=f"{op.value}(x)")
            _draw(ax, curve, f"f(x) = {alpha:.2f} * {op.value}({beta:.2f} * x)", legend=True)
            ax.set_xlabel("x")
            if get_ipython() is not None:  # outside IPython, display() would just print the repr
                display(fig)
            plt.close(fig)

    for w in (op, *sliders.values()):
        w.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([op, *sliders.values()]), info, out])


def run_browser(table: pd.DataFrame, runs: str | os.PathLike | None = None) -> widgets.VBox:
    """Pick one run of a sweep (sparsity, pruning method, seed) and see what SAFS did there.

    Shows the run's test accuracies (magnitude pruning, stage 1, stage 2, SAFS),
    the operators and learned scales it found, and its LAHC trajectory. Like
    `activation_explorer`, it draws once when built and its controls can be set
    from code.

    Args:
        table: a sweep table (`safs_lite.sweep.load_sweep` or the return value of `sweep`).
        runs: the runs folder holding the table's run folders (default $SAFS_RUNS, else <repo>/runs).

    Returns:
        A VBox: [HBox(Dropdown "sparsity", Dropdown "pruning", Dropdown "seed"), HTML summary, Output with the plot].
    """
    from .paths import runs_dir
    from .figures import fitness_label
    from .plots import plot_lahc_trajectory
    from .runs import load_json
    from .search import read_history

    if table.empty:
        raise ValueError("the sweep table is empty")
    root = runs_dir(runs)
    pick = {key: widgets.Dropdown(options=sorted(table[key].unique().tolist()), description=key,
                                  layout=widgets.Layout(width="190px"))
            for key in ("sparsity", "pruning", "seed")}
    info = widgets.HTML()
    out = widgets.Output()

    def redraw(_change: dict | None = None) -> None:
        rows = table[(table["sparsity"] == pick["sparsity"].value) & (table["pruning"] == pick["pruning"].value)
                     & (table["seed"] == pick["seed"].value)]
        if rows.empty:
            info.value = "<i>no run with these settings in the table</i>"
            out.clear_output()
            return
        acc = dict(zip(rows["method"], rows["test_accuracy"]))
        folder = root / rows["run"].iloc[0]
        res = load_json(folder / "results.json")
        ops = res["activations"]["safs"]
        scales = res["alpha_beta"]["safs"]
        cells = "".join(f"<td>{acc.get(m, float('nan')):.2f}</td>" for m in ("magnitude_pruning", "stage1",
                                                                             "stage2", "safs"))
        found = ", ".join(f"{layer}: {a:.2f}·{ops[layer]}({b:.2f}x)" for layer, (a, b) in scales.items())
        info.value = ("<table><tr><th>MP</th><th>stage 1</th><th>stage 2</th><th>SAFS</th><th>gain</th></tr>"
                      f"<tr>{cells}<td>{acc['safs'] - acc['magnitude_pruning']:+.2f}</td></tr></table>"
                      f"<code>{found}</code>")
        with out:
            out.clear_output(wait=True)
            fig = plot_lahc_trajectory(read_history(folder / "stage1_search.csv"), ylabel=fitness_label(res),
                                       title=f"LAHC at {100 * pick['sparsity'].value:g}% {pick['pruning'].value}, "
                                             f"seed {pick['seed'].value}")
            if get_ipython() is not None:
                display(fig)
            plt.close(fig)

    for w in pick.values():
        w.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox(list(pick.values())), info, out])
