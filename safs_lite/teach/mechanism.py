"""Why a pruned network learns or not: disconnected units, dead units, and collapse to one class.

Two different things stop a unit (a conv channel or a linear neuron) from helping a sparse network:

- **disconnected**: pruning left it no path of kept weights from the input (`pruning.connected_units`), or no
  path to the logits (`output_connected`). A unit cut from the input outputs a constant (its bias through its
  activation) whatever the image; a unit cut from the output changes nothing the loss sees. The mask decides
  this, not the activation.
- **dead**: its activation's derivative with respect to its pre-activation is exactly 0 on every image (and
  every position) of a validation batch, so no gradient flows through it: a ReLU unit whose pre-activation is
  never positive. The activation and the weights decide this: the same unit may be dead under ReLU and alive
  under tanh.

A disconnected unit can be alive (a ReLU unit with a positive bias and no kept input weight passes gradient,
but only a constant forward), and a connected one can be dead. `mechanism_table` crosses the two per layer;
`collapse` says whether a network predicts one class only.

Example:
    >>> from safs_lite import build_model, prune_model
    >>> t = mechanism_table({"relu": prune_model(build_model("lenet5", seed=0), 0.99)}, torch.rand(8, 1, 28, 28))
    >>> t.columns.tolist()[:6]
    ['network', 'layer', 'units', 'connected_in', 'connected_out', 'both']
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import pandas as pd
import torch
from torch import Tensor, nn

from ..method.activations import activation_sites
from ..method.pruning import connected_units, effective_weight, prunable_layers

COLUMNS = ["network", "layer", "units", "connected_in", "connected_out", "both", "alive", "dead",
           "dead_and_connected", "live_connected", "disconnected_alive"]


def _kept_matrix(m: nn.Module) -> Tensor:
    """(out units, in features) of kept weights; a conv kernel counts as kept if any of its taps is."""
    kept = effective_weight(m) != 0
    return kept.any(dim=(2, 3)) if kept.dim() == 4 else kept


def output_connected(model: nn.Module) -> dict[str, Tensor]:
    """Which output units of each prunable layer still reach the logits, through kept weights only.

    The reverse of `pruning.connected_units`, for the same chain models: every unit of the last prunable layer
    is a logit; a unit of an earlier layer reaches the output when it has a kept weight into a unit of the next
    layer that does. A linear layer after a convolution reads its features channel-major (C x H x W), so a
    channel reaches it when any of its positions does.

    Args:
        model: a pruned (or dense) model whose prunable layers form one chain.

    Returns:
        Layer name -> boolean tensor over its output units, in forward order.
    """
    layers = list(prunable_layers(model).items())
    reach: dict[str, Tensor] = {}
    alive: Tensor | None = None
    for i in range(len(layers) - 1, -1, -1):
        name, m = layers[i]
        units = effective_weight(m).shape[0]
        if alive is None:
            alive = torch.ones(units, dtype=torch.bool)
        else:
            kept = _kept_matrix(layers[i + 1][1]).cpu()  # (next units, next inputs)
            features = (kept & alive[:, None]).any(dim=0)  # next layer's inputs that reach the output
            if features.numel() % units:
                raise ValueError(f"{layers[i + 1][0]}: cannot map {features.numel()} inputs to {units} units of "
                                 f"{name}; output_connected needs the prunable layers to form one chain")
            alive = features.view(units, -1).any(dim=1)  # channel-major flatten: a channel's positions together
        reach[name] = alive
    return dict(reversed(list(reach.items())))


def _site_of_layer(model: nn.Module, x: Tensor) -> dict[str, str]:
    """The activation site that follows each prunable layer in the forward pass (layers without one: absent).

    Read from one forward pass with hooks: a site belongs to the last prunable layer that ran before it.
    """
    layers, sites = prunable_layers(model), activation_sites(model)
    order: list[tuple[str, str]] = []
    hooks = [m.register_forward_hook(lambda *_, n=n: order.append(("layer", n))) for n, m in layers.items()]
    hooks += [a.register_forward_hook(lambda *_, n=n: order.append(("site", n))) for n, a in sites.items()]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in hooks:
            h.remove()
    out, last = {}, None
    for kind, name in order:
        if kind == "layer":
            last = name
        elif last is not None and last not in out:
            out[last] = name
    return out


def alive_units(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """Which units of each activation site have a nonzero activation derivative on some image of `x`.

    The derivative d site(z) / d z (alpha * beta * op'(beta * z) for an `Activation`) is taken with autograd
    at the pre-activation z each image gives the site; a unit is alive when it is nonzero for at least one
    image (and, for a conv channel, one position), dead when it is exactly 0 for all.

    Args:
        model: a model with `Activation` sites (built-in models, or `make_searchable`'s).
        x: a batch of inputs (a validation batch: decisions never read the test split).

    Returns:
        Site name -> boolean tensor over its units (dim 1 of its input), in site order.
    """
    pre: dict[str, Tensor] = {}
    sites = activation_sites(model)
    hooks = [a.register_forward_hook(lambda m, inp, out, n=n: pre.__setitem__(n, inp[0].detach()))
             for n, a in sites.items()]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    alive = {}
    for name, z in pre.items():
        z = z.clone().requires_grad_(True)
        (slope,) = torch.autograd.grad(sites[name](z).sum(), z)  # elementwise op: the sum's gradient is f'(z)
        alive[name] = (slope != 0).transpose(0, 1).flatten(1).any(dim=1).cpu()  # (units,)
    return alive


def mechanism_table(networks: Mapping[str, nn.Module], x: Tensor) -> pd.DataFrame:
    """Per network and prunable layer: units connected to the input / the output, crossed with alive / dead.

    Args:
        networks: name -> pruned model (e.g. {"relu": MP's network, "found": the same with the found operators}).
        x: a validation batch for the dead/alive test (1,000 images is plenty).

    Returns:
        A tidy DataFrame, one row per network and prunable layer (COLUMNS): units; connected_in (a path from
        the input), connected_out (a path to the logits), both; for layers followed by an activation site,
        alive and dead (derivative 0 on every image), dead_and_connected (dead among `both`: a path the
        activation closes), live_connected (alive among `both`: the units that can learn), disconnected_alive
        (alive but cut from the input: constant forward); <NA> for a layer without a site (the logits).
    """
    rows = []
    for net, model in networks.items():
        cin, cout = connected_units(model), output_connected(model)
        site_of, alive = _site_of_layer(model, x), alive_units(model, x)
        for layer in cin:
            both = cin[layer] & cout[layer]
            row = {"network": net, "layer": layer, "units": both.numel(), "connected_in": int(cin[layer].sum()),
                   "connected_out": int(cout[layer].sum()), "both": int(both.sum())}
            a = alive.get(site_of.get(layer))
            if a is not None and a.numel() != both.numel():
                raise ValueError(f"site {site_of[layer]!r} has {a.numel()} units but layer {layer!r} has "
                                 f"{both.numel()}; mechanism_table needs a site right after its layer")
            if a is None:
                row |= {c: pd.NA for c in COLUMNS[6:]}
            else:
                row |= {"alive": int(a.sum()), "dead": int((~a).sum()), "dead_and_connected": int((~a & both).sum()),
                        "live_connected": int((a & both).sum()), "disconnected_alive": int((a & ~cin[layer]).sum())}
            rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.astype({c: "Int64" for c in COLUMNS[2:]})


def collapse(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1000) -> dict:
    """Whether a classifier collapsed to one class on a (validation) split: it predicts one class for every image.

    (Where only a recorded accuracy is at hand, `collapsed_accuracy` compares it with the majority class's share:
    what predicting that class alone scores.)

    Args:
        model: the classifier.
        x, y: the split's inputs and labels.
        batch_size: images per forward pass.

    Returns:
        {"accuracy": %, "majority_share": % of the largest class, "predicted_classes": distinct predictions,
        "collapsed": bool}.
    """
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + batch_size]).argmax(1).cpu() for i in range(0, len(x), batch_size)])
    y = y.cpu()
    correct, majority = int((pred == y).sum()), int(torch.bincount(y).max())
    distinct = int(pred.unique().numel())
    return {"accuracy": 100.0 * correct / len(y), "majority_share": 100.0 * majority / len(y),
            "predicted_classes": distinct, "collapsed": distinct == 1}


def collapsed_accuracy(accuracy: float, labels: Tensor, tol: float = 0.005) -> bool:
    """Whether a recorded accuracy (%) is the majority class's share of `labels`: what a network that predicts
    that class alone scores (recorded accuracies have two decimals, hence the tolerance in points)."""
    share = 100.0 * int(torch.bincount(torch.as_tensor(labels).long().flatten()).max()) / len(labels)
    return abs(float(accuracy) - share) <= tol


def run_mechanism(run_dir: str | os.PathLike, data, n_images: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The mechanism of one run folder: the pruned network every stage starts from, under ReLU and, same weights,
    under the operators SAFS found (alpha = beta = 1); and which of the run's methods ended collapsed.

    Reads the folder's pruned.pt (the dense weights with the run's masks, as `results/runs` ships them) and
    results.json. The dead/alive test and the start networks' `collapse` read the validation split of `data`;
    a method's collapse is read from its recorded test accuracy against the test split's majority share
    (`collapsed_accuracy`): a reported number, not a decision.

    Args:
        run_dir: the run folder.
        data: the run's `Data` (load_data(dataset, seed=the run's seed) carves the same validation split).
        n_images: validation images for the dead/alive test (the first ones of the split).

    Returns:
        (mechanism_table of "relu" and "found", a DataFrame with one row per start network and per method:
        network, split, accuracy, majority_share, predicted_classes (start networks only), collapsed).
    """
    from ..method.activations import set_activations
    from ..run.folders import load_json
    from ..study.shipped import load_network

    run_dir = Path(run_dir)
    res = load_json(run_dir / "results.json")
    networks = {"relu": load_network(run_dir / "pruned.pt"),
                "found": set_activations(load_network(run_dir / "pruned.pt"), res["activations"]["safs"])}
    x, y = next(data.batches("val", batch_size=len(data.val)))
    table = mechanism_table(networks, x[:n_images])
    rows = [{"network": f"start ({n})", "split": "val", **collapse(m, x, y)} for n, m in networks.items()]
    test_share = 100.0 * int(torch.bincount(data.test.y).max()) / len(data.test)
    rows += [{"network": method, "split": "test", "accuracy": acc, "majority_share": test_share,
              "predicted_classes": pd.NA, "collapsed": collapsed_accuracy(acc, data.test.y)}
             for method, acc in res["test_accuracy"].items()]
    return table, pd.DataFrame(rows, columns=["network", "split", "accuracy", "majority_share", "predicted_classes",
                                              "collapsed"])
