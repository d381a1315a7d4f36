"""Magnitude pruning through torch.nn.utils.prune, with reports and export.

`prune_model` attaches a fixed 0/1 mask to the weight of every prunable layer
(every Conv2d and Linear, first and last included, as the paper does). How the
target sparsity is shared between layers is the allocation (`PRUNING_METHODS`):
the paper's "layerwise", "global", Erdos-Renyi-Kernel "erk" and the "protected"
rule; `allocation_table` compares them per layer. The
mask is applied in a forward pre-hook (`weight = weight_orig * weight_mask`),
so however an optimizer moves `weight_orig`, the pruned weights the network
uses stay exactly zero. `export` makes the masks permanent (`prune.remove`)
for a plain state dict.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn.utils import prune

PRUNING_METHODS = ("layerwise", "global", "erk", "protected")
PROTECTED_LAST_MAX = 0.8  # the protected rule's cap on the last layer's sparsity (Gale et al. 2019)


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
        method: the allocation. "layerwise" removes that fraction from every prunable layer (the
            paper's; at 0.99 LeNet-5's conv1 keeps 2 of 150 weights); "global"
            removes the globally smallest weights, so layers end up with
            different sparsities; "erk" (Erdos-Renyi-Kernel, Evci et al. 2020) gives each layer a
            density proportional to (sum of its weight's dims) / (product of its dims), so small layers
            stay denser; "protected" keeps the first layer dense, prunes the last at most 80% and the
            rest at one common sparsity raised to meet the target (Gale et al. 2019; RigL also keeps the
            first layer dense), and raises ValueError when no such split meets it. erk and protected fix
            each layer's kept count first (`kept_counts`), then remove that layer's smallest weights.

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
    elif method == "global":
        prune.global_unstructured([(m, "weight") for m in layers.values()],
                                  pruning_method=prune.L1Unstructured, amount=sparsity)
    else:
        kept = kept_counts(model, sparsity, method)
        for name, m in layers.items():  # an integer amount: how many weights this layer loses
            prune.l1_unstructured(m, "weight", amount=m.weight.numel() - kept[name])
    return model


def _largest_remainder(quota: dict[str, float], sizes: dict[str, int], total: int) -> dict[str, int]:
    """Integer kept counts near `quota` (real numbers) that sum to `total` exactly, each within [0, size].

    Every layer gets floor(quota); the weights still missing go one each to the layers with the largest
    fractional parts (ties: forward order). So each count is within one weight of its quota.
    """
    kept = {n: min(sizes[n], max(0, math.floor(q))) for n, q in quota.items()}
    order = sorted(quota, key=lambda n: -(quota[n] - math.floor(quota[n])))  # stable: forward order on ties
    for name in order:
        if sum(kept.values()) >= total:
            break
        if kept[name] < sizes[name]:
            kept[name] += 1
    return kept


def _erk_quota(sizes: dict[str, int], shapes: dict[str, tuple[int, ...]], budget: int) -> dict[str, float]:
    """Erdos-Renyi-Kernel kept counts (real): density proportional to sum(shape) / prod(shape), scaled so the
    counts sum to `budget`; a layer whose density would exceed 1 is kept dense and the rest re-scaled, until
    none exceeds 1 (the procedure of RigL's sparse_utils, Evci et al. 2020)."""
    dense: set[str] = set()
    while True:
        free = [n for n in sizes if n not in dense]
        if not free:
            return {n: float(sizes[n]) for n in sizes}
        raw = {n: sum(shapes[n]) / math.prod(shapes[n]) for n in free}
        eps = (budget - sum(sizes[n] for n in dense)) / sum(raw[n] * sizes[n] for n in free)
        over = [n for n in free if eps * raw[n] > 1.0]
        if not over:
            return {n: float(sizes[n]) if n in dense else eps * raw[n] * sizes[n] for n in sizes}
        top = max(raw[n] for n in over)
        dense |= {n for n in over if raw[n] == top}  # densify the densest layer(s), then re-scale the rest


def _protected_quota(sizes: dict[str, int], sparsity: float, budget: int) -> dict[str, float]:
    """The protected rule's kept counts (real): first layer dense, last layer at most PROTECTED_LAST_MAX
    sparse, every other layer at one common sparsity raised until the total meets `budget`."""
    names = list(sizes)
    if len(names) < 2:
        raise ValueError(f"the protected allocation needs at least 2 prunable layers, got {len(names)}")
    first, last, middle = names[0], names[-1], names[1:-1]
    rest = budget - sizes[first]  # weights left for the middle and last layers
    if rest < 0:
        raise ValueError(f"protected allocation cannot meet sparsity {sparsity!r}: the dense first layer "
                         f"{first!r} alone keeps {sizes[first]} > {budget} weights; use a lower sparsity or erk")
    common = rest / sum(sizes[n] for n in names[1:])  # density shared by middle and last
    if 1.0 - common <= PROTECTED_LAST_MAX:
        return {first: float(sizes[first]), **{n: common * sizes[n] for n in names[1:]}}
    last_kept = (1.0 - PROTECTED_LAST_MAX) * sizes[last]
    n_middle = sum(sizes[n] for n in middle)
    if rest < last_kept or (not middle and rest != last_kept):
        raise ValueError(f"protected allocation cannot meet sparsity {sparsity!r}: a dense {first!r} and "
                         f"{last!r} at most {PROTECTED_LAST_MAX:.0%} sparse keep more than {budget} weights; "
                         "use a lower sparsity or erk")
    return {first: float(sizes[first]), **{n: (rest - last_kept) / n_middle * sizes[n] for n in middle},
            last: last_kept}


def kept_counts(model: nn.Module, sparsity: float, method: str = "layerwise") -> dict[str, int]:
    """How many weights each prunable layer keeps under an allocation, before pruning.

    "layerwise": n - round(sparsity * n) per layer (torch's rounding of a float amount); "global": read
    from the global magnitude threshold (pruning a copy); "erk" and "protected": the allocation's real
    per-layer quota (`_erk_quota`, `_protected_quota`), rounded by largest remainder so the kept counts
    sum exactly to round((1 - sparsity) * total) and each is within one weight of its quota.

    Args:
        model: a dense model.
        sparsity: overall fraction of weights to remove, in [0, 1).
        method: a key of PRUNING_METHODS.

    Returns:
        Layer name -> kept weights, in forward order.

    Example:
        >>> from safs_lite import build_model
        >>> kept_counts(build_model("lenet5"), 0.99, "protected")["conv1"]  # the first layer stays dense
        150
    """
    sparsity, method = check_sparsity(sparsity), check_pruning(method)
    layers = prunable_layers(model)
    sizes = {n: m.weight.numel() for n, m in layers.items()}
    if method == "layerwise":
        return {n: size - round(sparsity * size) for n, size in sizes.items()}
    if method == "global":
        return {n: k for n, (_, k) in layer_counts(prune_model(clone(model), sparsity, "global")).items()}
    budget = round((1.0 - sparsity) * sum(sizes.values()))
    if method == "erk":
        quota = _erk_quota(sizes, {n: tuple(m.weight.shape) for n, m in layers.items()}, budget)
    else:
        quota = _protected_quota(sizes, sparsity, budget)
    return _largest_remainder(quota, sizes, budget)


def layer_sparsities(model: nn.Module, sparsity: float, method: str = "layerwise") -> dict[str, float]:
    """The sparsity (fraction removed) each prunable layer gets under an allocation: `kept_counts` as fractions.

    Example:
        >>> from safs_lite import build_model
        >>> {k: round(v, 4) for k, v in layer_sparsities(build_model("lenet5"), 0.99, "erk").items()}
        {'conv1': 0.9333, 'conv2': 0.9917, 'fc1': 0.9925, 'fc2': 0.9876, 'fc3': 0.9321}
    """
    sizes = {n: m.weight.numel() for n, m in prunable_layers(model).items()}
    return {n: 1.0 - k / sizes[n] for n, k in kept_counts(model, sparsity, method).items()}


def allocation_table(model: nn.Module, sparsity: float, methods=PRUNING_METHODS, labels=None):
    """Per-layer kept weights and sparsity under each allocation, and each allocation's connectivity ceiling.

    Prunes a copy of `model` per allocation (the model is left dense). An allocation the target is out of
    reach for (protected at a high sparsity) gets no rows.

    Args:
        model: a dense model (its weights decide which weights global and each layer keep).
        sparsity: overall fraction of weights to remove, in [0, 1).
        methods: allocations to compare (keys of PRUNING_METHODS).
        labels: class labels (e.g. the test split's) for `accuracy_ceiling`; None leaves "ceiling" NaN.

    Returns:
        A pandas DataFrame, one row per allocation and layer plus an "overall" row per allocation; columns
        allocation, layer, weights, kept, sparsity, connected (output units that see the input; NaN on
        "overall"), ceiling (%, the same on every row of an allocation).

    Example:
        >>> from safs_lite import build_model
        >>> t = allocation_table(build_model("lenet5", seed=0), 0.99, ["erk"])
        >>> int(t.query("layer == 'overall'")["kept"].iloc[0])
        442
    """
    import pandas as pd  # here: pruning itself needs only torch

    rows = []
    for method in methods:
        try:
            pruned = prune_model(clone(model), sparsity, method)
        except ValueError as err:
            if method != "protected" or "cannot meet" not in str(err):
                raise
            continue
        ceiling = accuracy_ceiling(pruned, labels) if labels is not None else float("nan")
        connected = input_connected(pruned)
        counts = layer_counts(pruned)
        for name, (n, k) in counts.items():
            rows.append({"allocation": method, "layer": name, "weights": n, "kept": k, "sparsity": 1.0 - k / n,
                         "connected": connected[name], "ceiling": ceiling})
        n, k = (sum(c[i] for c in counts.values()) for i in (0, 1))
        rows.append({"allocation": method, "layer": "overall", "weights": n, "kept": k, "sparsity": 1.0 - k / n,
                     "connected": float("nan"), "ceiling": ceiling})
    return pd.DataFrame(rows, columns=["allocation", "layer", "weights", "kept", "sparsity", "connected",
                                       "ceiling"])


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
    return refresh_weights(model)


def refresh_weights(model: nn.Module) -> nn.Module:
    """Recompute each pruned layer's `weight` attribute (weight_orig * mask) now, as the next dense forward would.

    torch's pruning hook refreshes it only in a forward pass; after loading a state dict, restoring a
    best epoch or training on the compact engine (which reads weight_orig directly), `weight` would
    otherwise show stale values until then.
    """
    for m in prunable_layers(model).values():
        for hook in m._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):
                setattr(m, hook._tensor_name, hook.apply_mask(m))
    return model


def input_connected(model: nn.Module) -> dict[str, int]:
    """How many output units of each prunable layer still see the input (see `connected_units`).

    Example:
        >>> from safs_lite import build_model
        >>> input_connected(build_model("lenet5"))["fc3"]  # dense: every class
        10
    """
    return {name: int(alive.sum()) for name, alive in connected_units(model).items()}


def unit_paths(kept: torch.Tensor) -> torch.Tensor:
    """(out units, in units) booleans from a layer's kept weights: which inputs each output reads (a conv's kept
    taps collapsed per channel pair)."""
    return kept.any(dim=(2, 3)) if kept.dim() == 4 else kept


def reach_forward(paths: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """The output units with a kept path from an alive input unit (`paths` from `unit_paths`)."""
    return (paths & alive[None, :]).any(dim=1)


def reach_backward(paths: torch.Tensor, useful: torch.Tensor) -> torch.Tensor:
    """The input units with a kept path to a useful output unit."""
    return (paths & useful[:, None]).any(dim=0)


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
        kept = unit_paths(effective_weight(m) != 0)  # (out units, in units)
        if alive is not None and kept.shape[1] != alive.numel():
            if kept.shape[1] % alive.numel():
                raise ValueError(f"{name}: cannot map {alive.numel()} units to {kept.shape[1]} inputs; "
                                 "connected_units needs the prunable layers to form one chain")
            alive = alive.repeat_interleave(kept.shape[1] // alive.numel())  # flatten: C x H x W, channel-major
        alive = kept.any(dim=1) if alive is None else reach_forward(kept, alive)
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
