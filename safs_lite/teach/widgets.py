"""Interactive views (ipywidgets): the activation explorer and the run browser.

Only the controls live here; the numbers they show come from `safs_lite.method.operators`
and the saved runs, the figures from `safs_lite.study.plots`. Both widgets draw once
when built and their controls can be set from code, so they also work (and are
tested) without a live kernel.
"""
from __future__ import annotations

import os

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pandas as pd
from IPython import get_ipython
from IPython.display import display

from ..method.activations import ACTIVATIONS, SEARCH_SPACE, get_op
from ..method.operators import operator_curves
from ..method.searchlog import read_history
from ..paths import runs_dir
from ..run.folders import load_json
from ..run.results import LABELS, METHODS, gain
from ..study.plots import draw_curve, plot_lahc_trajectory
from ..training.fitness import fitness_label


def _summary(curve: pd.DataFrame) -> str:
    """One line of numbers for the explorer: f and f' at 0, the ends, and the minimum."""
    at = curve.set_index("x")
    x0 = curve.loc[curve["x"].abs().idxmin(), "x"]
    lo, hi = curve["x"].min(), curve["x"].max()
    return (f"f(0) = {at.at[x0, 'f']:.3f}, f'(0) = {at.at[x0, 'df']:.3f}, "
            f"f({lo:g}) = {at.at[lo, 'f']:.3f}, f({hi:g}) = {at.at[hi, 'f']:.3f}, "
            f"min f on [{lo:g}, {hi:g}] = {curve['f'].min():.3f}")


# The explorer's fixed axes: the same for every alpha and beta, so a change of scale shows as a change of
# shape (slope 1 is the diagonal). Values beyond them are cut off; the line of numbers above the plot gives them.
EXPLORER_YLIM = (-5.0, 5.0)
SLIDER_LAYOUT = widgets.Layout(width="520px")  # a 350 px track for 0.1-3.0: 6 px per step of 0.05


def _explorer_note(name: str) -> str:
    """Whether SAFS searches `name`: stage 1 picks from SEARCH_SPACE, relu is the dense network's baseline."""
    if name in SEARCH_SPACE:
        return f"<b>{name}</b>: searched by SAFS (one of {len(SEARCH_SPACE)})"
    return f"<b>{name}</b>: " + ("the baseline (the dense network's), not searched" if name == "relu"
                                  else "registered, not searched")


def activation_explorer(default: str = "swish") -> widgets.VBox:
    """Build an interactive view of f(x) = alpha * op(beta * x) and f'(x) with an operator menu and sliders.

    Needs a live Jupyter kernel to react to the controls; without one (a
    script, pytest, a rendered notebook) it is still built, drawn once, and
    its controls can be set from code. The axes stay fixed (`EXPLORER_YLIM`)
    whatever the scales, and the info line says whether SAFS searches the operator.

    Args:
        default: the operator shown first.

    Returns:
        A VBox: [VBox(Dropdown "operator", FloatSlider "alpha", FloatSlider
        "beta"), HTML line of key values, Output with the plot].

    Raises:
        ValueError: if default is not a registered operator.
    """
    get_op(default)
    op = widgets.Dropdown(options=list(ACTIVATIONS), value=default, description="operator",
                          layout=widgets.Layout(width="220px"))
    # continuous_update=False: redraw on release, a matplotlib redraw per pixel is slow on 2 cores.
    sliders = {k: widgets.FloatSlider(value=1.0, min=0.1, max=3.0, step=0.05, description=k,
                                      readout_format=".2f", continuous_update=False, layout=SLIDER_LAYOUT)
               for k in ("alpha", "beta")}
    info = widgets.HTML()
    out = widgets.Output()

    def redraw(_change: dict | None = None) -> None:
        alpha, beta = sliders["alpha"].value, sliders["beta"].value
        curve = operator_curves(op.value, alpha, beta)
        info.value = f"{_explorer_note(op.value)}<br><code>{_summary(curve)}</code>"
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(6, 3.2))
            plain = operator_curves(op.value)
            ax.plot(plain["x"], plain["f"], color="0.65", lw=1, ls=":", label=f"{op.value}(x)")
            tag = " (searched)" if op.value in SEARCH_SPACE else ""
            draw_curve(ax, curve, f"f(x) = {alpha:.2f} * {op.value}({beta:.2f} * x){tag}", legend=True)
            ax.set_ylim(*EXPLORER_YLIM)
            ax.set_xlabel("x")
            if get_ipython() is not None:  # outside IPython, display() would just print the repr
                display(fig)
            plt.close(fig)

    for w in (op, *sliders.values()):
        w.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.VBox([op, *sliders.values()]), info, out])


# The run browser's table: borders and units, styled here because a widget's HTML gets no notebook CSS.
TABLE_STYLE = ("<style>.safs-runs {border-collapse: collapse; margin: 4px 0}"
               ".safs-runs th, .safs-runs td {border: 1px solid #999; padding: 2px 8px; text-align: right}"
               ".safs-runs th {background: #eee}</style>")
PRUNING_LABELS = {"layerwise": "layer-wise", "global": "global"}


def _run_table(acc: dict, ops: dict, scales: dict) -> str:
    """One run's numbers as an HTML table: test accuracy per method (%), the gain (points), the scales found."""
    heads = "".join(f"<th>{LABELS[m]}</th>" for m in METHODS[1:])
    cells = "".join(f"<td>{acc.get(m, float('nan')):.2f}</td>" for m in METHODS[1:])
    found = "".join(f"<tr><td>{layer}</td><td>{ops[layer]}</td><td>{a:.2f}</td><td>{b:.2f}</td></tr>"
                    for layer, (a, b) in scales.items())
    return (f"{TABLE_STYLE}<table class='safs-runs'><tr><th colspan='{len(METHODS) - 1}'>test accuracy (%)</th>"
            f"<th>SAFS gain (points)</th></tr><tr>{heads}<th>SAFS - MP</th></tr>"
            f"<tr>{cells}<td>{gain(acc):+.2f}</td></tr></table>"
            f"<table class='safs-runs'><tr><th>layer</th><th>operator (SAFS)</th><th>alpha</th><th>beta</th></tr>"
            f"{found}</table>"
            f"<code>{', '.join(f'{layer}: {a:.2f}·{ops[layer]}({b:.2f}x)' for layer, (a, b) in scales.items())}</code>")


def run_browser(table: pd.DataFrame, runs: str | os.PathLike | None = None) -> widgets.VBox:
    """Pick one run of a sweep (sparsity, pruning method, seed) and see what SAFS did there.

    Shows the run's test accuracies (magnitude pruning, stage 1, stage 2, SAFS, in %)
    and the SAFS gain (points) in a bordered table, the operators and learned scales it
    found, and its LAHC trajectory. Sparsities are shown as percentages. Like
    `activation_explorer`, it draws once when built and its controls can be set
    from code (the values stay the table's: 0.99, "layerwise", 0).

    Args:
        table: a sweep table (`safs_lite.study.sweep.load_sweep`, `shipped.shipped_sweep` or the return value of `sweep`).
        runs: the folder holding the table's run folders (default $SAFS_RUNS, else <repo>/runs;
            `results_dir() / "runs"` for the shipped ones).

    Returns:
        A VBox: [HBox(Dropdown "sparsity", Dropdown "pruning", Dropdown "seed"), HTML summary, Output with the plot].
    """
    if table.empty:
        raise ValueError("the sweep table is empty")
    root = runs_dir(runs)
    label = {"sparsity": lambda v: f"{100 * v:g}%", "pruning": lambda v: PRUNING_LABELS.get(v, v),
             "seed": str}
    pick = {key: widgets.Dropdown(options=[(label[key](v), v) for v in sorted(table[key].unique().tolist())],
                                  description=key, layout=widgets.Layout(width="190px"))
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
        info.value = _run_table(acc, res["activations"]["safs"], res["alpha_beta"]["safs"])
        with out:
            out.clear_output(wait=True)
            fig = plot_lahc_trajectory(read_history(folder / "stage1_search.csv"), ylabel=fitness_label(res),
                                       title=f"LAHC at {100 * pick['sparsity'].value:g}% "
                                             f"{label['pruning'](pick['pruning'].value)}, seed {pick['seed'].value}")
            if get_ipython() is not None:
                display(fig)
            plt.close(fig)

    for w in pick.values():
        w.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox(list(pick.values())), info, out])


# ---------------------------------------------------------------- concept sliders (notebooks 02 and 05)


def connectivity_at(dense, labels, sparsity: float, method: str = "layerwise") -> dict:
    """Prune a copy of `dense` to `sparsity` (`method`) and say which classes the mask leaves connected and the
    accuracy ceiling (%) that sets on `labels` (`safs_lite.method.pruning.accuracy_ceiling`)."""
    from ..method.pruning import accuracy_ceiling, clone, connected_units, prune_model

    model = prune_model(clone(dense), sparsity, method)
    reachable = list(connected_units(model).values())[-1]
    return {"sparsity": sparsity, "method": method, "connected": reachable.nonzero().flatten().tolist(),
            "classes": reachable.numel(), "ceiling": accuracy_ceiling(model, labels)}


def connectivity_line(info: dict) -> str:
    """One sentence for `connectivity_at`'s result."""
    connected = ", ".join(map(str, info["connected"])) or "none"
    return (f"{info['method']} pruning at {info['sparsity']:.1%} sparsity: classes still connected to the image: "
            f"{connected} ({len(info['connected'])} of {info['classes']}); accuracy ceiling {info['ceiling']:.2f}%")


def connectivity_slider(dense, labels, default: float = 0.99, method: str = "layerwise") -> widgets.VBox:
    """A sparsity slider (and a pruning menu) showing the classes a magnitude-pruned `dense` still connects and
    the accuracy ceiling. Each move prunes a copy (milliseconds for LeNet-5). Works without a live kernel: it is
    built and filled once, and its controls can be set from code."""
    slider = widgets.FloatSlider(value=default, min=0.5, max=0.995, step=0.005, description="sparsity",
                                 readout_format=".1%", continuous_update=False, layout=SLIDER_LAYOUT)
    menu = widgets.Dropdown(options=["layerwise", "global"], value=method, description="pruning")
    info = widgets.HTML()

    def redraw(_change: dict | None = None) -> None:
        info.value = connectivity_line(connectivity_at(dense, labels, slider.value, menu.value))

    for w in (slider, menu):
        w.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([slider, menu]), info])


def unit_slopes(bias: float, weight: float = 1.0, inputs: int = 1000, seed: int = 0) -> dict:
    """One unit z = weight * x + bias over `inputs` standard-normal inputs x: the share of inputs where ReLU's and
    Swish's slopes are nonzero (|f'(z)| > 1e-6), and the largest z. A unit with a 0 share is dead: no input gives
    its incoming weights a gradient."""
    import torch

    x = torch.randn(inputs, generator=torch.Generator().manual_seed(seed))
    out = {"bias": bias, "max z": float((weight * x + bias).max())}
    for name in ("relu", "swish"):
        z = (weight * x + bias).requires_grad_(True)
        (slope,) = torch.autograd.grad(get_op(name)(z).sum(), z)
        out[name] = float((slope.abs() > 1e-6).float().mean())
    return out


def unit_line(info: dict) -> str:
    """One sentence for `unit_slopes`'s result."""
    state = lambda share: "alive" if share > 0 else "DEAD"  # noqa: E731
    return (f"bias {info['bias']:+.1f}: largest pre-activation {info['max z']:+.2f}; ReLU {state(info['relu'])} "
            f"(a gradient on {info['relu']:.1%} of the inputs), Swish {state(info['swish'])} "
            f"(a gradient on {info['swish']:.1%} of the inputs)")


def bias_slider(default: float = -5.0, weight: float = 1.0) -> widgets.VBox:
    """A bias slider for one unit z = weight * x + bias (x standard normal): ReLU dead or alive against Swish, with
    the histogram of z. Works without a live kernel (built and drawn once)."""
    slider = widgets.FloatSlider(value=default, min=-8.0, max=3.0, step=0.5, description="bias",
                                 continuous_update=False, layout=SLIDER_LAYOUT)
    info, out = widgets.HTML(), widgets.Output()

    def redraw(_change: dict | None = None) -> None:
        import torch

        result = unit_slopes(slider.value, weight)
        info.value = unit_line(result)
        z = weight * torch.randn(1000, generator=torch.Generator().manual_seed(0)) + slider.value
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(6, 2.2))
            ax.hist(z.numpy(), bins=40, color="C0")
            ax.axvline(0, color="C3", lw=1)
            ax.set_xlim(-12, 7)
            ax.set_xlabel("pre-activation z (red: 0, where ReLU's slope switches off)")
            ax.set_ylabel("inputs")
            if get_ipython() is not None:
                plt.show()
            else:
                plt.close(fig)

    slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([slider, info, out])
