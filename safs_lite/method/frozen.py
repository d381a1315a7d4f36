"""Frozen activations: `freeze(model)` makes a pruned SAFS model plain PyTorch, masks permanent and every activation
site's operator, alpha and beta baked in as constants (`FrozenActivation`); `frozen_sites` reads them back."""
from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from .activations import ACTIVATIONS, Activation
from .pruning import export


class FrozenActivation(nn.Module):
    """One activation site frozen for inference: alpha * op(beta * x) with op, alpha and beta constants.

    alpha and beta are Python floats (no Parameters, no state-dict entries) and the operator is
    the function itself, fixed when frozen, so the module is plain PyTorch: it pickles (by the
    operator's qualified name), traces and exports to ONNX as constants.

    Args:
        op: registry name of the operator (a key of ``ACTIVATIONS``).
        alpha: output scale.
        beta: input scale.
    """

    def __init__(self, op: str, alpha: float = 1.0, beta: float = 1.0):
        super().__init__()
        if op not in ACTIVATIONS:
            raise ValueError(f"unknown activation operator {op!r}; valid: {', '.join(ACTIVATIONS)}")
        self.op_name = op
        self.fn: Callable[[Tensor], Tensor] = ACTIVATIONS[op]
        self.alpha = float(alpha)
        self.beta = float(beta)

    def forward(self, x: Tensor) -> Tensor:
        """Return alpha * op(beta * x)."""
        # A float32 alpha/beta times x gives the same bits as a 0-dim float32 Parameter would
        # (both are CPU scalars to the kernel); scales of exactly 1 are skipped (x * 1 == x).
        if self.beta != 1.0:
            x = self.beta * x
        x = self.fn(x)
        return x if self.alpha == 1.0 else self.alpha * x

    def extra_repr(self) -> str:
        return f"op={self.op_name!r}, alpha={self.alpha:.6g}, beta={self.beta:.6g}"


def freeze(model: nn.Module) -> nn.Module:
    """A frozen copy of a (pruned) SAFS model for inference; `model` is left untouched.

    The copy has its pruning masks made permanent (plain weights with exact zeros) and every
    `Activation` replaced by a `FrozenActivation` with the same operator, alpha and beta; it is
    in eval mode with gradients off, and its outputs equal the original's bit for bit.

    Args:
        model: any model, pruned (torch.nn.utils.prune masks) or not, with or without
            `Activation` modules (a model frozen before is copied unchanged).

    Returns:
        The frozen copy.
    """
    out = export(model)  # a deep copy, masks removed
    for name, mod in list(out.named_modules()):
        if isinstance(mod, Activation):
            out.set_submodule(name, FrozenActivation(mod.op_name, mod.alpha.item(), mod.beta.item()))
    return out.eval().requires_grad_(False)


def frozen_sites(model: nn.Module) -> dict[str, dict]:
    """The operator, alpha and beta of every activation site, frozen or not, by module name.

    Args:
        model: a model holding `Activation` or `FrozenActivation` modules.

    Returns:
        Module name (e.g. ``"acts.conv1"``) -> ``{"op": str, "alpha": float, "beta": float}``.
    """
    sites = {}
    for name, m in model.named_modules():
        if isinstance(m, FrozenActivation):
            sites[name] = {"op": m.op_name, "alpha": m.alpha, "beta": m.beta}
        elif isinstance(m, Activation):
            sites[name] = {"op": m.op_name, "alpha": m.alpha.item(), "beta": m.beta.item()}
    return sites
