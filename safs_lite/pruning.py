"""Magnitude pruning through torch.nn.utils.prune, with reports and export.

`prune_model` attaches a fixed 0/1 mask to the weight of every prunable layer
(every Conv2d and Linear, first and last included, as the paper does). The
mask is applied in a forward pre-hook (`weight = weight_orig * weight_mask`),
so however an optimizer moves `weight_orig`, the pruned weights the network
uses stay exactly zero. `export` makes the masks permanent (`prune.remove`)
for a plain state dict.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import prune

PRUNING_METHODS = ("layerwise", "global")


def check_sparsity(sparsity: float) -> float:
    """Return `sparsity` as float if it lies in [0, 1), else raise ValueError."""
    try:
        s = float(sparsity)
    except (TypeError, ValueError):
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}") from None
    if not 0.0 <= s < 1.0:
        raise ValueError(f"sparsity must be in [0, 1) (fraction of weights removed), got {sparsity!r}")
    return s


def check_pruning(method: str) -> str:
    """Return `method` if it is a pruning method, else raise ValueError listing the valid ones."""
    if method not in PRUNING_METHODS:
        raise ValueError(f"unknown pruning method {method!r}; valid: {', '.join(PRUNING_METHODS)}")
    return method


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Layers whose weights magnitude pruning removes: every Conv2d and Linear, by name.

    A model may narrow this with a `prunable` attribute (a tuple of module names).
    """
    only = getattr(model, "prunable", None)
    return {name: m for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and (only is None or name in only)}


def prune_model(model: nn.Module, sparsity: float, method: str = "layerwise") -> nn.Module:
    """Prune a model by L1 weight magnitude, in place.

    Args:
        model: the (dense) model.
        sparsity: fraction of weights to remove, in [0, 1).
        method: "layerwise" removes that fraction from every prunable layer (the
            paper's; at 0.99 LeNet-5's conv1 keeps 2 of 150 weights); "global"
            removes the globally smallest weights, so layers end up with
            different sparsities.

    Returns:
        The same model, with pruning masks attached.

    Example:
        >>> from safs_lite import build_model
        >>> m = prune_model(build_model("lenet5"), 0.99)
        >>> int((m.conv1.weight != 0).sum())
        2
    """
    sparsity, method = check_sparsity(sparsity), check_pruning(method)
    if is_pruned(model):
        raise ValueError("model is already pruned; prune a dense model (or call export() first)")
    layers = prunable_layers(model)
    if method == "layerwise":
        for m in layers.values():
            prune.l1_unstructured(m, "weight", amount=sparsity)
    else:
        prune.global_unstructured([(m, "weight") for m in layers.values()],
                                  pruning_method=prune.L1Unstructured, amount=sparsity)
    return model


def is_pruned(model: nn.Module) -> bool:
    """True if any layer of `model` carries a pruning mask."""
    return any(prune.is_pruned(m) for m in prunable_layers(model).values())


def masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """The pruning masks by layer name (1 = kept, 0 = pruned); empty if not pruned."""
    return {n: m.weight_mask for n, m in prunable_layers(model).items() if hasattr(m, "weight_mask")}


def effective_weight(m: nn.Module) -> torch.Tensor:
    """The weight a layer computes with (weight_orig * mask when pruned), detached."""
    # Recompute rather than read `m.weight`: that attribute is only refreshed by a forward pass.
    if hasattr(m, "weight_mask"):
        return m.weight_orig.detach() * m.weight_mask
    return m.weight.detach()


def layer_counts(model: nn.Module) -> dict[str, tuple[int, int]]:
    """(weights, kept) of every prunable layer, read as weight_orig * mask when pruned (right even before
    the next forward pass)."""
    counts = {}
    for name, m in prunable_layers(model).items():
        w = effective_weight(m)
        counts[name] = (w.numel(), int((w != 0).sum()))
    return counts


def sparsity_report(model: nn.Module) -> dict[str, float]:
    """Fraction of zero weights per prunable layer and overall.

    Returns:
        {"overall": f, "<layer>": f, ...} with fractions in [0, 1].
    """
    counts = layer_counts(model)
    total = sum(n for n, _ in counts.values())
    kept = sum(k for _, k in counts.values())
    return {"overall": (total - kept) / max(total, 1), **{name: 1 - k / n for name, (n, k) in counts.items()}}


def sparsity_table(model: nn.Module):
    """`sparsity_report` as a table: one row per prunable layer with its weights, how many are kept, its sparsity.

    Example:
        >>> from safs_lite import build_model
        >>> sparsity_table(prune_model(build_model("lenet5"), 0.99))["kept"].tolist()
        [2, 24, 307, 101, 8]

    Returns:
        A pandas DataFrame with columns layer, weights, kept, sparsity (fraction zero).
    """
    import pandas as pd  # here: pruning itself needs only torch

    rows = [{"layer": name, "weights": n, "kept": k, "sparsity": 1.0 - k / n}
            for name, (n, k) in layer_counts(model).items()]
    return pd.DataFrame(rows, columns=["layer", "weights", "kept", "sparsity"])


def clone(model: nn.Module) -> nn.Module:
    """A deep copy of a (possibly pruned) model, masks included; `model` is left untouched.

    After a training forward pass a pruned layer's `weight` is a non-leaf
    tensor, which `copy.deepcopy` refuses; it is recomputed from weight_orig
    and the mask at every forward, so the copy gets a detached clone of it
    (handed to deepcopy through its memo, without changing the original).
    """
    memo = {id(m.weight): m.weight.detach().clone() for m in prunable_layers(model).values()
            if hasattr(m, "weight_mask") and isinstance(getattr(m, "weight", None), torch.Tensor)}
    return copy.deepcopy(model, memo)


def export(model: nn.Module) -> nn.Module:
    """A copy of `model` with the masks made permanent: plain weights with exact zeros."""
    out = clone(model)
    for m in prunable_layers(out).values():
        if prune.is_pruned(m):
            prune.remove(m, "weight")
    return out


def load_pruned(model: nn.Module, state_dict: dict) -> nn.Module:
    """Load a pruned model's state dict (with weight_orig / weight_mask keys) into a fresh model.

    Attaches identity masks to the layers the state dict has masks for, then
    loads, so the loaded masks take effect.
    """
    for name, m in prunable_layers(model).items():
        if f"{name}.weight_mask" in state_dict and not prune.is_pruned(m):
            prune.identity(m, "weight")
    model.load_state_dict(state_dict)
    return model


def input_connected(model: nn.Module) -> dict[str, int]:
    """How many output units of each prunable layer still see the input (see `connected_units`).

    Example:
        >>> from safs_lite import build_model
        >>> input_connected(build_model("lenet5"))["fc3"]  # dense: every class
        10
    """
    return {name: int(alive.sum()) for name, alive in connected_units(model).items()}


def connected_units(model: nn.Module) -> dict[str, torch.Tensor]:
    """Which output units of each prunable layer still see the input, through kept weights only.

    For a model whose prunable layers form one chain (LeNet-5, VGG-16 without
    shortcuts): a unit (conv channel or linear neuron) is connected when it has
    a kept weight from a connected unit of the layer before; the first layer's
    inputs are all connected. A linear layer after a convolution reads its
    features channel-major (flattened C x H x W), as LeNet-5 does. A unit that
    is not connected outputs only its bias: a constant. The last layer's mask
    says which classes the network can still tell apart by their input.

    Args:
        model: a pruned (or dense) model.

    Returns:
        Layer name -> boolean tensor over its output units, in forward order.
    """
    alive: torch.Tensor | None = None
    out: dict[str, torch.Tensor] = {}
    for name, m in prunable_layers(model).items():
        kept = effective_weight(m) != 0
        if kept.dim() == 4:
            kept = kept.any(dim=(2, 3))  # (out channels, in channels)
        if alive is not None and kept.shape[1] != alive.numel():
            if kept.shape[1] % alive.numel():
                raise ValueError(f"{name}: cannot map {alive.numel()} units to {kept.shape[1]} inputs; "
                                 "connected_units needs the prunable layers to form one chain")
            alive = alive.repeat_interleave(kept.shape[1] // alive.numel())  # flatten: C x H x W, channel-major
        alive = kept.any(dim=1) if alive is None else (kept & alive[None, :]).any(dim=1)
        out[name] = alive.cpu()
    return out


def accuracy_ceiling(model: nn.Module, labels) -> float:
    """The best test accuracy (%) a pruned classifier's connectivity allows on these labels.

    Classes whose output unit does not see the input get constant logits, so
    at most one of them (the one the constants favour) can ever be predicted:
    the ceiling is the share of images in connected classes plus the largest
    share among the others.
    """
    alive = list(connected_units(model).values())[-1]
    counts = torch.bincount(torch.as_tensor(labels).long().flatten().cpu(), minlength=alive.numel()).double()
    best_other = counts[~alive].max() if (~alive).any() else counts.new_zeros(())
    return float(100.0 * (counts[alive].sum() + best_other) / counts.sum())
