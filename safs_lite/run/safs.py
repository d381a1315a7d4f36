"""The two ways into the SAFS pipeline: `run_safs` for a built-in model by name, `search` for a network of your own.

Both resolve what they are given into objects (model, data, budgets, training
defaults), key and create the run folder (`safs_lite.run.folders`), and call the one
pipeline (`safs_lite.run.pipeline.run`), so a built-in model and yours go through
the same code and write the same results.json.

    >>> from safs_lite import SAFSConfig, run_safs
    >>> results = run_safs(SAFSConfig(sparsity=0.99, preset="smoke"))   # doctest: +SKIP
    >>> from safs_lite import Data, search
    >>> found = search(my_model, Data.from_tensors((x, y), (x_test, y_test)), sparsity=0.9)  # doctest: +SKIP
    >>> found.model, found.activations, found.results["test_accuracy"]   # doctest: +SKIP
"""
from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch
from torch import nn

from ..data.builtin import load_data
from ..data.core import Data
from ..method.activations import activation_sites, get_activations, get_alpha_beta
from ..method.lahc import check_move, check_search
from ..method.pruning import check_pruning, check_sparsity, clone, is_pruned, prune_model
from ..nets.searchable import make_searchable
from ..training.fitness import check_fitness
from ..training.loop import TrainConfig, cuda_options, evaluate
from .baselines import DEFAULT_BASELINES, check_baselines
from .config import DEFAULT_TRAIN, TRAIN_DEFAULTS, RunSpec, SAFSConfig, check_preset
from .folders import check_writable, default_out, load_json, load_safs_model, prepare_out
from .key import key_diff, run_key
from .pipeline import dense, run, stage2_study, train_dense, weights_fingerprint
from .storage import check_storage, this_worker, workers_of


def run_safs(config: SAFSConfig = SAFSConfig(), out: str | os.PathLike | None = None,
             data_root: str | os.PathLike | None = None, runs: str | os.PathLike | None = None,
             progress: bool = True, device: str = "cpu", baselines=DEFAULT_BASELINES,
             storage: str | None = None) -> dict:
    """Run the whole SAFS pipeline for one built-in setting and return (and save) its results.

    Args:
        config: model, dataset, sparsity, pruning, preset, seed, search strategy,
            and (CUDA only) amp / channels_last.
        out: the run folder (default: named from the run's key under the runs folder);
            `results.json` and every stage's record and checkpoint go there.
        data_root: data folder (default $SAFS_DATA, else <repo>/data).
        runs: runs folder for the shared dense / magnitude-pruning caches.
        progress: show progress bars.
        device: "cpu" or "cuda"; the data and the dense model are moved there once.
        baselines: methods of `baselines.BASELINES` computed after stage 1 at the same budget and
            retrained as stage 1 is (default: uniform and swish; random, sa and ga cost a stage 1
            each; uniform_safs, uniform's operators given SAFS's stage 2, costs a stage 2). Not part of
            the run's key; a rerun with more adds only the new ones.
        storage: an Optuna storage URL for the stage-2 studies, shared with other processes
            (`hpo_worker`; `safs_lite.run.storage` lists the forms); default: <out>/<stage>_hpo/study.db.
            Not part of the run's key: it moves no number.

    Returns:
        The results dict written to `<out>/results.json` (keys: config,
        test_accuracy, baselines, activations, alpha_beta, sparsity, seconds, data, kit, environment).
    """
    config.validate()
    baselines = check_baselines(baselines)
    if storage is not None:
        check_storage(storage)
    if (config.amp or config.channels_last) and not str(device).startswith("cuda"):
        raise ValueError(f"--amp and --channels-last need a CUDA device (--device cuda); this run is on {device}")
    if out is not None:
        check_writable(Path(out))  # a bad --out fails before any data is read
    with cuda_options(config.amp, config.channels_last):
        data = load_data(config.dataset, root=data_root, seed=config.seed)
        explicit = out is not None
        out = Path(out) if explicit else default_out(config, runs, data=data, device=device)
        prepare_out(out, run_key(config, data, device), explicit)
        if device != "cpu":
            data = data.to(device)
        budgets, base = config.budgets(), replace(TRAIN_DEFAULTS[config.model], seed=config.seed)
        dense_model, dense_rec = train_dense(config.model, data, replace(base, epochs=budgets.dense_epochs),
                                             runs=runs, progress=progress, device=device)
        return run(config.spec(device), dense_model, dense_rec, data, out, runs, progress,
                   dense_key=dense_rec["config"], storage=storage, baselines=baselines)


def hpo_worker(run_dir: str | os.PathLike, storage: str | None = None, stages=("stage2", "safs"),
               data_root: str | os.PathLike | None = None, runs: str | os.PathLike | None = None,
               device: str = "cpu", progress: bool = True) -> dict[str, dict]:
    """Add trials to a run's stage-2 studies (`python -m safs_lite hpo-worker RUN_DIR`) until each has its budget.

    Start it on any process or machine that sees the run folder and the storage, while the run
    (`run_safs(..., storage=...)`) works: the workers and the run share each study's trial
    budget, and the run retrains with the best trial once the study has finished. A study whose
    stage record exists is skipped; SAFS's study needs stage 1's operators (<run>/stage1.json).

    Args:
        run_dir: the run folder (its config.json names the run).
        storage: the run's storage URL (default: the run's own SQLite files, for processes on its machine).
        stages: the studies to serve, in order: "stage2" and/or "safs".
        data_root: data folder (default $SAFS_DATA); the data must be the run's (its signature is checked).
        runs: the runs folder holding the dense network's cache (default: the run folder's parent).
        device: "cpu" or "cuda".
        progress: progress bars.

    Returns:
        stage -> {"trials": finished trials of the study, "mine": those this process ran,
        "status": "finished", "already done" or "waiting for stage 1"}.
    """
    run_dir = Path(run_dir)
    if storage is not None:
        check_storage(storage)
    for name in stages:
        if name not in ("stage2", "safs"):
            raise ValueError(f"unknown stage {name!r}; valid: stage2, safs")
    if not (run_dir / "config.json").exists():
        raise ValueError(f"{run_dir}: not a run folder (no config.json); give the folder `run` writes")
    key = load_json(run_dir / "config.json")["config"]
    if key.get("own_model"):
        raise ValueError(f"{run_dir} is a run of a network of your own; hpo-worker serves runs of built-in models")
    cfg = SAFSConfig(**{f.name: key[f.name] for f in fields(SAFSConfig) if f.name in key}).validate()
    with cuda_options(cfg.amp, cfg.channels_last):
        data = load_data(cfg.dataset, root=data_root, seed=cfg.seed)
        if run_key(cfg, data, device) != key:
            raise ValueError(f"{run_dir} holds a run with another key ({key_diff(key, run_key(cfg, data, device))}); "
                             "give the run's data (--data), device, thread count (--threads) and kit version")
        if device != "cpu":
            data = data.to(device)
        budgets, base = cfg.budgets(), replace(TRAIN_DEFAULTS[cfg.model], seed=cfg.seed)
        dense_model, _ = train_dense(cfg.model, data, replace(base, epochs=budgets.dense_epochs),
                                     runs=run_dir.parent if runs is None else runs, progress=progress, device=device)
        pruned = prune_model(clone(dense_model), cfg.sparsity, cfg.pruning)
        report = {}
        for name in stages:
            if (run_dir / f"{name}.json").exists():
                report[name] = {"status": "already done"}
                continue
            if name == "safs" and not (run_dir / "stage1.json").exists():
                report[name] = {"status": "waiting for stage 1"}
                continue
            ops = get_activations(pruned) if name == "stage2" else load_json(run_dir / "stage1.json")["activations"]
            study = stage2_study(pruned, data, ops, budgets, base, cfg.seed, run_dir / f"{name}_hpo", name, storage,
                                 progress)
            report[name] = {"status": "finished", "trials": budgets.hpo_trials,
                            "mine": workers_of(study).get(this_worker(), 0)}
    return report


@dataclass
class SAFSResult:
    """What `search` found: the final sparse model, its results (as results.json) and its run folder."""

    model: nn.Module          # the SAFS model: pruned (masks attached), found operators, learned scales
    results: dict             # the same dict as the run folder's results.json
    out: Path                 # the run folder

    @property
    def activations(self) -> dict[str, str]:
        """Site -> operator of the final model."""
        return get_activations(self.model)

    @property
    def alpha_beta(self) -> dict[str, tuple[float, float]]:
        """Site -> (alpha, beta) of the final model."""
        return get_alpha_beta(self.model)

    @property
    def test_accuracy(self) -> dict[str, float]:
        """Table 1's five test accuracies (%) of this run."""
        return self.results["test_accuracy"]


def search(model: nn.Module, data: Data, sparsity: float = 0.9, pruning: str = "global", preset: str = "cpu",
           out: str | os.PathLike | None = None, train: TrainConfig | None = None, train_dense: bool = False,
           seed: int = 0, fitness: str = SAFSConfig.fitness, method: str = "lahc", move: str = "reference",
           name: str | None = None, runs: str | os.PathLike | None = None, progress: bool = True,
           device: str = "cpu", baselines=DEFAULT_BASELINES) -> SAFSResult:
    """SAFS on a network of your own: prune it, search its activations, learn their scales; return the result.

    The network's activations become SAFS sites (`make_searchable`; module activations and, where
    the model traces, functional calls), each starting from its own operator. Then the same
    pipeline as `run_safs`: magnitude pruning (the baseline), stage 1, stage 2 and SAFS, in a
    resumable run folder keyed on the network's weights, the data and every setting.

    Args:
        model: any `nn.Module` classifier returning logits (N, num_classes); left untouched.
        data: your data (`Data.from_tensors`, `Data.from_datasets`) or a built-in dataset (`load_data`).
        sparsity: fraction of the prunable (Conv2d, Linear) weights removed, in [0, 1).
        pruning: "global" (default here: layers of very different sizes) or "layerwise" (the paper's).
        preset: the budgets (`safs_lite.run.config.PRESETS`; "demo" and "cpu" run on a laptop).
        out: the run folder (default: <runs>/safs-<name>-<data>-...-<hash>).
        train: training defaults every budget is applied to (default `config.DEFAULT_TRAIN`:
            Adam, lr 1e-3, batch 256).
        train_dense: train the network first (the preset's dense epochs); by default it is
            taken as already trained and pruned as it is.
        seed: seeds pruning ties, the search, the studies and all training.
        fitness, method, move: stage 1's score, search ("lahc" or "random") and LAHC move.
        name: the network's name in folder names and results (default: its class name).
        runs: runs folder (default $SAFS_RUNS, else <repo>/runs).
        progress: progress bars.
        device: "cpu" or "cuda".
        baselines: methods of `baselines.BASELINES` computed after stage 1 (see `run_safs`).

    Returns:
        A `SAFSResult`: `.model` (the final sparse model), `.results` (written to
        <out>/results.json), `.activations`, `.alpha_beta`, `.test_accuracy`, `.out`.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(data, Data):
        raise ValueError(f"data must be a safs_lite.Data (Data.from_tensors, Data.from_datasets or load_data), "
                         f"got {type(data).__name__}")
    sparsity, budgets = check_sparsity(sparsity), check_preset(preset)
    check_pruning(pruning), check_fitness(fitness), check_search(method), check_move(move)
    if is_pruned(model):
        raise ValueError("model is already pruned; give the dense network (search prunes it)")
    base = replace(train or DEFAULT_TRAIN, seed=seed)
    model = make_searchable(copy.deepcopy(model))
    activation_sites(model)  # no activation to search: a one-line error naming make_searchable
    model.to(device).eval()
    _check_outputs(model, data, device)
    name = name or type(model).__name__
    baselines = check_baselines(baselines)
    spec = RunSpec(model=name, dataset=data.name, sparsity=sparsity, pruning=pruning, preset=preset, budgets=budgets,
                   train=base, seed=seed, search=method, move=move, fitness=fitness,
                   extra=(("train_dense", train_dense), ("weights", weights_fingerprint(model)), ("own_model", True)),
                   device=str(device))
    key = spec.key(data)
    explicit = out is not None
    out = Path(out) if explicit else spec.folder(data, runs)
    prepare_out(out, key, explicit)
    if device != "cpu":
        data = data.to(device)
    if train_dense:
        model, dense_rec = dense(model, data, replace(base, epochs=budgets.dense_epochs), runs, progress, device,
                                 desc=f"dense {name}")
    else:
        dense_rec = {"test_accuracy": evaluate(model, data, "test")["accuracy"],
                     "val_accuracy": evaluate(model, data, "val")["accuracy"], "seconds": 0.0}
        _warn_if_untrained(dense_rec["val_accuracy"], data)
    results = run(spec, model, dense_rec, data, out, runs, progress, baselines=baselines)
    return SAFSResult(load_safs_model(out, "safs", model=model), results, out)


def _warn_if_untrained(val_accuracy: float, data: Data) -> None:
    """Warn when the network `search` takes as trained scores near always answering the most common class."""
    majority = 100.0 * float(torch.bincount(data.val.y.cpu(), minlength=data.num_classes).max()) / len(data.val)
    if val_accuracy <= majority + 0.1 * (100.0 - majority):
        warnings.warn(f"the network scores {val_accuracy:.1f}% on the validation split, near the {majority:.1f}% of "
                      "always answering its most common class: search takes the network as trained; pass "
                      "train_dense=True to train it first", UserWarning, stacklevel=3)


def _check_outputs(model: nn.Module, data: Data, device: str) -> None:
    """One validation batch through the model: logits of shape (N, data.num_classes), or a one-line error."""
    x, _ = next(data.batches("val", batch_size=2))
    try:
        with torch.no_grad():
            y = model(x.to(device))
    except Exception as err:  # any failure here is a model/data mismatch to name
        raise ValueError(f"the model cannot take this data's inputs of shape {tuple(x.shape[1:])} "
                         f"({type(err).__name__}: {str(err).splitlines()[0]})") from None
    if not torch.is_tensor(y) or y.shape != (x.shape[0], data.num_classes):
        shape = tuple(y.shape) if torch.is_tensor(y) else type(y).__name__
        raise ValueError(f"the model returned {shape} for a batch of {x.shape[0]}; SAFS needs logits of shape "
                         f"(N, {data.num_classes}) for the data's {data.num_classes} classes")
