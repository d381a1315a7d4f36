"""The reproduction's results as shipped in the repository (`results/`): find them and read them.

`runs/` is git-ignored and the reproduction takes hours of CPU time, so the small
artefacts of the runs the README reports are tracked in `results/` (collected by
`tools/ship_results.py`). Notebooks 04-07 read them first, so a fresh clone shows
the README's numbers in seconds. Layout (`results/README.md` says more):

    results/manifest.json            which command and commit made the runs, on which data
    results/table1.csv               Table 1 of the cpu runs (seed rows, mean, std, paper)
    results/accuracy_vs_sparsity.csv the sweep table; its `run` column names folders below
    results/runs/<run prefix>/       results.json, stage records, LAHC and random-search CSVs,
                                     the HPO studies as CSV (stage2_hpo.csv, safs_hpo.csv) and
                                     pruned.pt: the pruned network every stage starts from, kept
                                     weights only (a few KB)

Example:
    >>> folders = shipped_runs("cpu", seeds=(0, 1, 2))  # doctest: +SKIP
    >>> load_json(folders[0] / "results.json")["test_accuracy"]["safs"]  # doctest: +SKIP
    26.96
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import optuna
import pandas as pd
import torch
from torch import nn

from ..data.splits import num_classes
from ..method.pruning import effective_weight, prunable_layers, prune_model
from ..nets.models import build_model
from ..paths import results_dir
from ..run.folders import load_json
from .sweep import load_sweep

STUDY_COLUMNS = ["number", "state", "value", "params", "distributions", "intermediate_values", "user_attrs",
                 "datetime_start", "datetime_complete"]


def manifest(root: str | os.PathLike | None = None) -> dict:
    """results/manifest.json: the data, command and commit behind the shipped runs."""
    path = results_dir(root) / "manifest.json"
    if not path.exists():
        raise ValueError(f"no shipped results at {path.parent}; `python tools/ship_results.py` collects them")
    return load_json(path)


def describe(root: str | os.PathLike | None = None) -> str:
    """One line saying what the shipped results are: data, commit, command."""
    m = manifest(root)
    return (f"shipped results ({results_dir(root).name}/): {len(m['runs'])} runs on {m['data']['description']}, "
            f"made by commit {m['commit']}")


def shipped_runs(preset: str = "cpu", seeds=(0, 1, 2), sparsity: float = 0.99, pruning: str = "layerwise",
                 model: str = "lenet5", dataset: str = "mnist",
                 root: str | os.PathLike | None = None) -> dict[int, Path]:
    """The shipped run folder of each seed that has one (seed -> folder); ValueError if none has.

    Args:
        preset, seeds, sparsity, pruning, model, dataset: which runs (as `figures.find_runs`).
        root: the shipped results folder (default $SAFS_RESULTS, else <repo>/results).
    """
    runs = results_dir(root) / "runs"
    found = {}
    for seed in seeds:
        folder = runs / f"safs-{model}-{dataset}-{sparsity:g}-{pruning}-{preset}-s{seed}"
        if (folder / "results.json").exists():
            found[int(seed)] = folder
    if not found:
        raise ValueError(f"no shipped runs for preset {preset!r}, {100 * sparsity:g}% {pruning}, seeds "
                         f"{list(seeds)} under {runs}")
    return found


def shipped_sweep(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The shipped sweep table (`sweep.CSV_COLUMNS`); its `run` column names folders of `results/runs`."""
    return load_sweep(results_dir(root) / "accuracy_vs_sparsity.csv")


def shipped_test_labels(root: str | os.PathLike | None = None) -> torch.Tensor:
    """Test labels with the class counts of the data the shipped runs were tested on (sorted by class).

    Enough for anything that depends on the counts only, such as `pruning.accuracy_ceiling`,
    without the data itself.
    """
    counts = manifest(root)["data"]["test_class_counts"]
    return torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))


# ---------------------------------------------------------------- compact pruned networks


def save_network(model: nn.Module, path: str | os.PathLike, model_name: str, dataset: str) -> None:
    """Save a pruned built-in model compactly: per prunable layer its kept weights (flat index, value) and bias.

    For a 99%-pruned LeNet-5 that is about 5 KB instead of 360 KB. Operators and scales are not saved:
    `load_network` gives the network with alpha = beta = 1 and the operators you ask for.
    """
    layers = {}
    for name, m in prunable_layers(model).items():
        w = effective_weight(m).flatten()
        kept = w.nonzero().flatten()
        layers[name] = {"shape": list(m.weight_orig.shape if hasattr(m, "weight_orig") else m.weight.shape),
                        "kept": kept.to(torch.int32), "weight": w[kept].clone(),
                        "bias": m.bias.detach().clone() if m.bias is not None else None}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model_name, "dataset": dataset, "layers": layers}, path)


def load_network(path: str | os.PathLike, ops: dict[str, str] | None = None) -> nn.Module:
    """The pruned network `save_network` wrote: masks attached (pruned weights exactly zero), in eval mode.

    Args:
        path: a `pruned.pt` of the shipped results.
        ops: operators per activation site (default: the model's own, relu for LeNet-5).
    """
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(saved["model"], num_classes=num_classes(saved["dataset"]))
    prune_model(model, 0.0)  # attach masks; filled below
    layers = prunable_layers(model)
    with torch.no_grad():
        for name, entry in saved["layers"].items():
            m = layers[name]
            mask, weight = torch.zeros(m.weight_mask.numel()), torch.zeros(m.weight_orig.numel())
            mask[entry["kept"].long()] = 1.0
            weight[entry["kept"].long()] = entry["weight"]
            m.weight_mask.copy_(mask.view_as(m.weight_mask))
            m.weight_orig.copy_(weight.view_as(m.weight_orig))
            if entry["bias"] is not None:
                m.bias.copy_(entry["bias"])
    if ops:
        from ..method.activations import set_activations  # here: only this function needs it

        set_activations(model, ops)
    return model.eval()


# ---------------------------------------------------------------- Optuna studies as CSV


def study_to_csv(study: optuna.Study, path: str | os.PathLike) -> None:
    """Write every trial of a study (state, value, params with their distributions, per-epoch reports) as CSV."""
    rows = [{"number": t.number, "state": t.state.name, "value": t.value,
             "params": json.dumps(t.params),
             "distributions": json.dumps({k: optuna.distributions.distribution_to_json(d)
                                          for k, d in t.distributions.items()}),
             "intermediate_values": json.dumps(t.intermediate_values), "user_attrs": json.dumps(t.user_attrs),
             "datetime_start": t.datetime_start, "datetime_complete": t.datetime_complete}
            for t in study.trials]
    pd.DataFrame(rows, columns=STUDY_COLUMNS).to_csv(path, index=False)


def study_from_csv(path: str | os.PathLike, name: str = "stage2", direction: str = "maximize") -> optuna.Study:
    """An in-memory Optuna study holding the trials `study_to_csv` wrote (for plots and importances)."""
    table = pd.read_csv(path)
    missing = set(STUDY_COLUMNS) - set(table.columns)
    if missing:
        raise ValueError(f"{path}: not a study table, it lacks the columns {sorted(missing)}")
    study = optuna.create_study(study_name=name, direction=direction)
    for row in table.sort_values("number").itertuples():
        state = optuna.trial.TrialState[row.state]
        dists = {k: optuna.distributions.json_to_distribution(v) for k, v in json.loads(row.distributions).items()}
        study.add_trial(optuna.trial.create_trial(
            state=state, value=None if pd.isna(row.value) or state != optuna.trial.TrialState.COMPLETE
            else float(row.value),
            params=json.loads(row.params), distributions=dists, user_attrs=json.loads(row.user_attrs),
            intermediate_values={int(k): v for k, v in json.loads(row.intermediate_values).items()}))
    return study
