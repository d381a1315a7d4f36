"""Cached pipeline steps: dense training and the magnitude-pruning baseline.

Each step saves its model and a JSON record (config, history, accuracies,
seconds, library versions) in a run folder named by its config, and loads
them instead of retraining when they exist. Notebooks, the CLI and the
SAFS stages all go through these functions, so they share cached work.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict

import torch
from torch import nn

from .data import Data
from .models import build_model, check_compatible
from .pruning import check_sparsity, clone, load_pruned, prune_model, sparsity_report
from .runs import cpu_state, environment, load_json, load_state, run_folder, save_json, save_state
from .train import TrainConfig, current_cuda_options, evaluate, train
from .version import KIT_VERSION


def train_dense(model_name: str, data: Data, cfg: TrainConfig = TrainConfig(), runs: str | os.PathLike | None = None,
                progress: bool = True, device: str = "cpu") -> tuple[nn.Module, dict]:
    """Train the dense network (default activations), or load it if this exact run exists.

    Args:
        model_name: a registered model ("lenet5", ...).
        data: the dataset (its fingerprint is part of the cache key).
        cfg: training budget and hyperparameters; `cfg.seed` seeds init and shuffling.
        runs: runs folder (default $SAFS_RUNS, else <repo>/runs).
        progress: show a progress bar.
        device: "cpu" or "cuda".

    Returns:
        (model in eval mode on `device`, record) where record holds the config,
        per-epoch history, validation and test accuracy (percent) and seconds.
    """
    model = build_model(model_name, num_classes=data.num_classes, seed=cfg.seed)
    check_compatible(model, data.input_shape, model_name)
    key = {"step": "dense", "model": model_name, "data": data.signature, "train": asdict(cfg), "kit": KIT_VERSION,
           **_speed_key()}
    folder = run_folder("dense", key, runs)
    if (folder / "record.json").exists() and (folder / "model.pt").exists():
        record = load_json(folder / "record.json")
        model.load_state_dict(load_state(folder / "model.pt"))
        return model.to(device).eval(), record
    model.to(device)
    t0 = time.perf_counter()
    history = train(model, data, cfg, progress=progress, desc=f"dense {model_name}")
    record = {"config": key, "history": history,
              "val_accuracy": evaluate(model, data, "val")["accuracy"],
              "test_accuracy": evaluate(model, data, "test")["accuracy"],
              "seconds": time.perf_counter() - t0, "environment": environment()}
    save_state(folder / "model.pt", cpu_state(model))
    save_json(folder / "record.json", record)
    return model.eval(), record


def magnitude_pruning(dense: nn.Module, data: Data, sparsity: float, method: str = "layerwise",
                      cfg: TrainConfig | None = TrainConfig(), runs: str | os.PathLike | None = None,
                      progress: bool = True, key: dict | None = None) -> tuple[nn.Module, dict]:
    """Prune a copy of `dense` by weight magnitude and fine-tune it (the paper's baseline); cached.

    Args:
        dense: the trained dense model (left untouched).
        data: the dataset.
        sparsity: fraction of weights removed, in [0, 1).
        method: "layerwise" (the paper's) or "global".
        cfg: fine-tuning budget and hyperparameters; None skips fine-tuning.
        runs: runs folder.
        progress: show a progress bar.
        key: identifies `dense` in the cache key (default: a hash of its state dict,
            operators and prunable layers included).

    Returns:
        (pruned model, record) with accuracies before/after fine-tuning and the
        per-layer sparsity report. Pruned weights are exactly zero.
    """
    sparsity = check_sparsity(sparsity)
    dense_key = key or {"weights": _weights_fingerprint(dense)}
    cfg_key = asdict(cfg) if cfg is not None else None
    run_key = {"step": "magnitude", "dense": dense_key, "data": data.signature, "sparsity": sparsity,
               "method": method, "finetune": cfg_key, "kit": KIT_VERSION, **_speed_key()}
    folder = run_folder("magnitude", run_key, runs)
    model = prune_model(clone(dense), sparsity, method)
    if (folder / "record.json").exists() and (folder / "model.pt").exists():
        load_pruned(model, load_state(folder / "model.pt"))
        return model.eval(), load_json(folder / "record.json")
    t0 = time.perf_counter()
    before = {s: evaluate(model, data, s)["accuracy"] for s in ("val", "test")}
    history = []
    if cfg is not None:
        history = train(model, data, cfg, progress=progress, desc=f"fine-tune {method} {sparsity:g}")
    record = {"config": run_key, "history": history,
              "val_before": before["val"], "test_before": before["test"],
              "val_accuracy": evaluate(model, data, "val")["accuracy"],
              "test_accuracy": evaluate(model, data, "test")["accuracy"],
              "sparsity": sparsity_report(model), "seconds": time.perf_counter() - t0,
              "environment": environment()}
    save_state(folder / "model.pt", cpu_state(model))
    save_json(folder / "record.json", record)
    return model.eval(), record


def _speed_key() -> dict:
    """Mixed precision / channels-last change rounding: key cached runs on them (only when on)."""
    opts = current_cuda_options()
    return {"cuda_options": asdict(opts)} if (opts.amp or opts.channels_last) else {}


def _weights_fingerprint(model: nn.Module) -> str:
    import hashlib

    h = hashlib.sha1()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        if torch.is_tensor(v):
            h.update(v.detach().cpu().float().numpy().tobytes())
        else:  # e.g. an activation site's operator name
            h.update(repr(v).encode())
    h.update(repr(getattr(model, "prunable", None)).encode())
    return h.hexdigest()[:12]
