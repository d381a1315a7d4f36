"""The activation operators measured: tables of f(x) = alpha * op(beta * x) and f'(x), and each operator's properties.

Everything here evaluates the activation model of SAFS (SAFS_METHOD.md, section 2)
through the same ``Activation`` module the models use, and differentiates it with
``torch.autograd`` (no finite differences), so what the tables say is exactly
what backpropagation sees. The figures drawn from them are in `safs_lite.study.plots`;
the interactive explorer is in `safs_lite.teach.widgets`.

Example:
    >>> df = operator_curves("relu", x=[-1.0, 2.0])
    >>> df[["x", "f", "df"]].values.tolist()
    [[-1.0, 0.0, 0.0], [2.0, 2.0, 1.0]]
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from .activations import ACTIVATIONS, SEARCH_SPACE, Activation, get_op

X_MAX = 5.0  # curves cover [-X_MAX, X_MAX]
N_POINTS = 401  # odd, so the grid holds x = 0 exactly (step 0.025)
# Far enough left that every operator has reached its x -> -inf behaviour
# (sigmoid(-100) ~ 4e-44), close enough that float64 stays exact.
TAIL_X = -100.0
# |f'| below this counts as "no gradient" (a dead unit for x < 0).
DEAD_GRAD = 1e-6


def operator_names(names: str | Sequence[str] | None) -> list[str]:
    """All registry names if None, a one-element list for a string; every name validated."""
    if names is None:
        return list(ACTIVATIONS)
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        get_op(name)  # raises ValueError listing the valid names
    return names


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
    names = operator_names(names)
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
        return "-> 0 far left"
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
        the large-negative behaviour (the output far left; whether a gradient flows
        there is `dead x<0`): "-> 0 far left", "saturates at c",
        "passes (unbounded)" or "oscillates".

    Example:
        >>> operator_properties(["relu", "elu"])["x<0 side"].tolist()
        ['-> 0 far left', 'saturates at -1.00']
    """
    names = operator_names(names)
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
