"""The SAFS pipeline as named stages on objects (model, data, budgets): dense, baseline, stage 1, stage 2, SAFS.

    dense -> prune -> magnitude_pruning (fine-tuned)          [the baseline]
                   -> stage1: LAHC over per-layer operators   [stage1]
                   -> baseline: uniform, swish, random, sa, ga [baselines, retrained as stage 1]
                   -> baseline: uniform_safs [the best uniform operator + stage 2]
                   -> stage2: dense operators + learned alpha/beta, HPO  [stage2]
                   -> safs: stage 1's operators + stage 2     [safs]

Each stage is a function a notebook can call on its own; `run` chains them
into one run folder. Names (a model called "lenet5", a preset called "cpu")
are resolved before this module, at the edges (`safs_lite.run.safs`, the CLI).
Every search and HPO decision uses the validation split; the test split is
read only for the reported numbers. Dense training and the baseline are
cached in the runs folder by their key; every other stage's record is saved
in the run folder as soon as it is done (and the LAHC history and the Optuna
study as they go), so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict, replace
from pathlib import Path

import optuna
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.core import Data
from ..method.activations import OPS_VERSION, SEARCH_SPACE, get_activations, get_alpha_beta
from ..method.lahc import SearchConfig, lahc, random_search
from ..method.metaheuristics import genetic_algorithm, simulated_annealing
from ..method.pruning import check_sparsity, clone, load_pruned, prune_model, sparsity_report
from ..nets.models import build_model, check_compatible
from ..training.fitness import candidate_fitness
from ..training.loop import TrainConfig, current_cuda_options, evaluate, finetune_with, train
from ..version import KIT_VERSION
from .baselines import BASELINES, DEFAULT_BASELINES, candidate_config, check_baselines
from .baselines import choose as choose_baseline
from .config import Preset, RunSpec
from .folders import cached_record, cpu_state, load_json, load_state, run_folder, save_json, save_state
from .hpo import best_config, tune
from .key import compute_key, config_hash, environment
from .results import METHODS
from .storage import describe

# ---------------------------------------------------------------- dense training and the baseline (cached)


def dense(model: nn.Module, data: Data, cfg: TrainConfig = TrainConfig(), runs: str | os.PathLike | None = None,
          progress: bool = True, device: str = "cpu", key: dict | None = None,
          desc: str = "dense") -> tuple[nn.Module, dict]:
    """Train `model` (untrained, dense) in place, or load its weights if this exact run exists.

    Args:
        model: the freshly initialised network.
        data: the dataset (its signature is part of the cache key).
        cfg: training budget and hyperparameters; `cfg.seed` seeds shuffling.
        runs: runs folder (default $SAFS_RUNS, else <repo>/runs).
        progress: show a progress bar.
        device: "cpu" or "cuda".
        key: what identifies the untrained model in the cache key (default: a hash of its
            initial weights, structure and operators).
        desc: the progress bar's label.

    Returns:
        (model in eval mode on `device`, record) where record holds the config,
        per-epoch history, validation and test accuracy (percent) and seconds.
    """
    key = {"step": "dense", **(key or {"model": type(model).__name__, "init": weights_fingerprint(model)}),
           "data": data.signature, "train": asdict(cfg), "kit": KIT_VERSION, **_speed_key(device)}
    folder = run_folder("dense", key, runs)
    if (folder / "record.json").exists() and (folder / "model.pt").exists():
        record = load_json(folder / "record.json")
        model.load_state_dict(load_state(folder / "model.pt"))
        return model.to(device).eval(), record
    model.to(device)
    t0 = time.perf_counter()
    history = train(model, data, cfg, progress=progress, desc=desc)
    record = {"config": key, "history": history,
              "val_accuracy": evaluate(model, data, "val")["accuracy"],
              "test_accuracy": evaluate(model, data, "test")["accuracy"],
              "seconds": time.perf_counter() - t0, "environment": environment()}
    save_state(folder / "model.pt", cpu_state(model))
    save_json(folder / "record.json", record)
    return model.eval(), record


def train_dense(model_name: str, data: Data, cfg: TrainConfig = TrainConfig(), runs: str | os.PathLike | None = None,
                progress: bool = True, device: str = "cpu") -> tuple[nn.Module, dict]:
    """`dense` for a built-in model by name: build it (seeded by `cfg.seed`), then train or load it.

    Args:
        model_name: a registered model ("lenet5", ...).
        data, cfg, runs, progress, device: as for `dense`.

    Returns:
        (model in eval mode on `device`, record); see `dense`.
    """
    model = build_model(model_name, num_classes=data.num_classes, seed=cfg.seed)
    check_compatible(model, data.input_shape, model_name)
    return dense(model, data, cfg, runs, progress, device, key={"model": model_name}, desc=f"dense {model_name}")


def magnitude_pruning(dense: nn.Module, data: Data, sparsity: float, method: str = "layerwise",
                      cfg: TrainConfig | None = TrainConfig(), runs: str | os.PathLike | None = None,
                      progress: bool = True, key: dict | None = None) -> tuple[nn.Module, dict]:
    """The baseline: prune a copy of `dense` by weight magnitude and fine-tune it; cached.

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
    dense_key = key or {"weights": weights_fingerprint(dense)}
    cfg_key = asdict(cfg) if cfg is not None else None
    run_key = {"step": "magnitude", "dense": dense_key, "data": data.signature, "sparsity": sparsity,
               "method": method, "finetune": cfg_key, "kit": KIT_VERSION,
               **_speed_key(next(dense.parameters()).device)}
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


# ---------------------------------------------------------------- the SAFS stages


def retrain(pruned: nn.Module, data: Data, ops: dict[str, str], cfg: TrainConfig, learn_scales: bool,
            name: str, out: Path | None = None, progress: bool = True) -> tuple[nn.Module, dict]:
    """The full-budget retraining that ends every stage: fine-tune `pruned` with `ops`, then report.

    Returns:
        (the model, its record: operators, alpha/beta, validation and test accuracy, sparsity,
        training config and history); the model is saved as <out>/<name>.pt when `out` is given.
    """
    model, history = finetune_with(pruned, data, ops, cfg, learn_scales=learn_scales, progress=progress,
                                   desc=f"{name} retrain")
    if out is not None:
        save_state(Path(out) / f"{name}.pt", cpu_state(model))
    return model, {"activations": get_activations(model),
                   "alpha_beta": {k: list(v) for k, v in get_alpha_beta(model).items()},
                   "val_accuracy": evaluate(model, data, "val")["accuracy"],
                   "test_accuracy": evaluate(model, data, "test")["accuracy"],
                   "sparsity": sparsity_report(model), "train": asdict(cfg), "history": history}


def stage1(pruned: nn.Module, data: Data, budgets: Preset, base: TrainConfig, fitness: str = "acc_tiebreak",
           search: str = "lahc", move: str = "reference", seed: int = 0, out: str | os.PathLike | None = None,
           progress: bool = True) -> dict:
    """Stage 1: search one operator per activation site, then retrain the best vector (alpha = beta = 1).

    Args:
        pruned: the pruned, not yet fine-tuned checkpoint (left untouched); its sites are searched.
        data: the dataset; candidates are scored on its validation split.
        budgets: the preset (candidate epochs and subset, LAHC steps and history, retrain epochs).
        base: the training defaults every budget is applied to.
        fitness: a candidate's score (`fitness.FITNESSES`).
        search: "lahc" (the paper's), or "random", "sa" or "ga" with as many evaluations as LAHC's steps + 1.
        move: LAHC's move (`lahc.MOVES`).
        seed: seeds the search and the training.
        out: run folder for the search's CSV log (resumable) and the retrained model; None keeps
            nothing.
        progress: progress bars.

    Returns:
        The stage record (see `retrain`) plus "search": method, fitness, best validation fitness,
        evaluations, history file.
    """
    base = replace(base, seed=seed)
    csv = Path(out) / "stage1_search.csv" if out is not None else None
    score = candidate_fitness(pruned, data, candidate_config(budgets, base), fitness)
    sites = list(get_activations(pruned))
    if search == "lahc":
        sc = SearchConfig(steps=budgets.lahc_steps, history=budgets.lahc_history, move=move, seed=seed)
        result = lahc(score, sites, SEARCH_SPACE, sc, csv_path=csv, progress=progress)
    elif search == "random":
        result = random_search(score, sites, SEARCH_SPACE, budgets.lahc_steps + 1, seed=seed, csv_path=csv,
                               progress=progress)
    elif search == "sa":
        result = simulated_annealing(score, sites, SEARCH_SPACE, budgets.lahc_steps + 1, seed=seed, csv_path=csv,
                                     progress=progress)
    else:
        result = genetic_algorithm(score, sites, SEARCH_SPACE, budgets.lahc_steps + 1, seed=seed, csv_path=csv,
                                   progress=progress)
    _, rec = retrain(pruned, data, result.best, replace(base, epochs=budgets.finetune_epochs), False, "stage1",
                     out, progress)
    rec["search"] = {"method": search, "fitness": fitness, "best_val_fitness": result.best_fitness,
                     "evaluations": result.evaluations, "history_csv": csv.name if csv else None}
    return rec


def stage2(pruned: nn.Module, data: Data, ops: dict[str, str], budgets: Preset, base: TrainConfig, seed: int = 0,
           out: str | os.PathLike | None = None, name: str = "stage2", progress: bool = True,
           storage: str | None = None) -> dict:
    """Stage 2: learn alpha and beta with the weights, hyperparameters chosen by an Optuna study, then retrain.

    Args:
        pruned: the pruned checkpoint (left untouched).
        data: the dataset; trials are scored on its validation split.
        ops: the fixed operators (the dense network's for stage 2 alone, stage 1's for SAFS).
        budgets: the preset (trials, trial epochs and subset, retrain epochs).
        base: the training defaults the study's hyperparameters override.
        seed: seeds the sampler and the training.
        out: run folder for the study (<out>/<name>_hpo/study.db, resumable) and the model; None:
            the study lives in a temporary folder.
        name: "stage2" or "safs" (file names and labels).
        progress: progress bars.
        storage: an Optuna storage URL shared with other processes (`safs_lite.run.storage`; default:
            the run's own SQLite file); it changes where the study lives, not its numbers.

    Returns:
        The stage record (see `retrain`) plus "hpo": best parameters and validation score, trials, storage.
    """
    base = replace(base, seed=seed)
    with (nullcontext(str(Path(out) / f"{name}_hpo")) if out is not None else tempfile.TemporaryDirectory()) as folder:
        study = stage2_study(pruned, data, ops, budgets, base, seed, folder, name, storage, progress)
        _, rec = retrain(pruned, data, ops, best_config(study, replace(base, epochs=budgets.finetune_epochs)), True,
                         name, out, progress)
        where = f"{name}_hpo/study.db" if out is not None else None
        if storage is not None:
            where = f"{describe(storage)} (study {study.study_name})"
        rec["hpo"] = {"best_params": study.best_trial.params, "best_val": study.best_value,
                      "trials": len(study.trials), "storage": where}
    return rec


def stage2_study(pruned: nn.Module, data: Data, ops: dict[str, str], budgets: Preset, base: TrainConfig, seed: int,
                 folder: str | os.PathLike, name: str = "stage2", storage: str | None = None,
                 progress: bool = True) -> optuna.Study:
    """Stage 2's HPO study alone: run, resume or join it (`stage2` and `hpo-worker` share it).

    `folder` is <run>/<name>_hpo (or a temporary folder). The study is named "stage2" in the run's
    own SQLite file (<folder>/study.db, as always) and "<name>-<hash of the run key and stage>" on a
    storage given by URL, which many runs may share: two runs share a study only when their keys
    (<run>/config.json, `runs.run_key`) are equal, whatever their folders are called. The study
    carries the key and the pruned network's fingerprint (`weights_fingerprint`) as user
    attributes; a study holding others is refused with a one-line ValueError.
    """
    trial = replace(base, seed=seed, epochs=budgets.trial_epochs, train_subset=budgets.trial_subset)
    folder = Path(folder).resolve()
    run = folder.parent if folder.name == f"{name}_hpo" else folder
    if (run / "config.json").exists():
        key = load_json(run / "config.json")["config"]
    else:  # no run folder (a temporary one): what the study's trials depend on
        key = {"data": data.signature, "ops": ops, "trial": asdict(trial), "trials": budgets.hpo_trials,
               "seed": seed}
    study_name = "stage2" if storage is None else f"{name}-{config_hash({'run': key, 'stage': name})}"
    return tune(pruned, data, ops, trial, budgets.hpo_trials, folder, seed=seed, storage=storage,
                study_name=study_name, progress=progress,
                attrs={"run_key": key, "pruned": weights_fingerprint(pruned)})


def safs(pruned: nn.Module, data: Data, stage1_ops: dict[str, str], budgets: Preset, base: TrainConfig,
         seed: int = 0, out: str | os.PathLike | None = None, progress: bool = True,
         storage: str | None = None) -> dict:
    """SAFS: stage 2 on stage 1's operators (the paper's full method). Same record as `stage2`."""
    return stage2(pruned, data, stage1_ops, budgets, base, seed, out, name="safs", progress=progress, storage=storage)


def baseline(name: str, pruned: nn.Module, data: Data, budgets: Preset, base: TrainConfig, fitness: str,
             evaluations: int, seed: int = 0, out: str | os.PathLike | None = None, progress: bool = True,
             storage: str | None = None) -> dict:
    """A baseline of `baselines.BASELINES`, chosen on validation, then retrained exactly as stage 1 is or,
    for one with `Baseline.stage2` (uniform_safs), given exactly SAFS's stage 2 on its operators.

    Args:
        name: "uniform", "swish", "random", "sa", "ga" or "uniform_safs".
        pruned: the pruned checkpoint (left untouched).
        data, budgets, base, fitness, seed: as for `stage1`.
        evaluations: LAHC's evaluation count (stage 1's record), the budget of the equal-budget searches.
        out: run folder for the search CSV and the retrained model (<out>/baseline_<name>.pt; a stage-2
            baseline's study is <out>/baseline_<name>_hpo/study.db).
        progress: progress bars.
        storage: where a stage-2 baseline's Optuna study lives (as for `stage2`).

    Returns:
        The stage record (see `retrain`; a stage-2 baseline's adds "hpo", see `stage2`) plus "search": method,
        best validation fitness, evaluations, history file, seconds spent searching.
    """
    spec = BASELINES[check_baselines(name)[0]]
    base = replace(base, seed=seed)
    chosen = choose_baseline(name, pruned, data, candidate_config(budgets, base), fitness, evaluations, seed, out,
                             progress)
    if spec.stage2:
        rec = stage2(pruned, data, chosen["ops"], budgets, base, seed, out, f"baseline_{name}", progress, storage)
    else:
        _, rec = retrain(pruned, data, chosen["ops"], replace(base, epochs=budgets.finetune_epochs), False,
                         f"baseline_{name}", out, progress)
    rec["search"] = chosen["search"]
    return rec


# ---------------------------------------------------------------- the whole run


def run(spec: RunSpec, dense_model: nn.Module, dense_record: dict, data: Data, out: str | os.PathLike,
        runs: str | os.PathLike | None = None, progress: bool = True, dense_key: dict | None = None,
        storage: str | None = None, baselines=DEFAULT_BASELINES) -> dict:
    """Chain the stages after dense training into one run folder and return (and save) Table 1's results.

    Args:
        spec: the run (`config.RunSpec`): model and data names, sparsity, allocation, budgets, training
            defaults, seed, stage 1's choices and device; results.json's "config" is `spec.computed()`.
        dense_model: the trained dense network (left untouched).
        dense_record: its record (at least "test_accuracy" and "seconds").
        data: the dataset.
        out: the run folder (created and keyed by the caller: `runs.prepare_out` with `spec.key(data)`).
        runs: runs folder of the baseline's cache.
        progress: progress bars.
        dense_key: identifies the dense network in the baseline's cache key (default: its weights' hash).
        storage: where stage 2's and SAFS's Optuna studies live (`stage2`); no number depends on it.
        baselines: the methods of `baselines.BASELINES` to compute after stage 1 (each retrained as
            stage 1 is, or given stage 2 as SAFS is: <out>/baseline_<name>.json); not part of the key: no
            other number depends on them, and a rerun with more computes only the new ones.

    Returns:
        The results dict written to <out>/results.json (keys: config, test_accuracy, baselines,
        activations, alpha_beta, sparsity, seconds, data, kit, environment).
    """
    out, names = Path(out), check_baselines(baselines)
    budgets, base, seed = spec.budgets, spec.base, spec.seed
    timings = {"dense": dense_record["seconds"]}
    bar = tqdm(total=len(METHODS) + len(names), initial=1, desc=f"SAFS {100 * spec.sparsity:g}% {spec.pruning}",
               disable=not progress)
    ft = replace(base, epochs=budgets.finetune_epochs)
    _, mp_rec = magnitude_pruning(dense_model, data, spec.sparsity, spec.pruning, ft, runs=runs, progress=progress,
                                  key=dense_key)
    timings["magnitude_pruning"] = mp_rec["seconds"]
    bar.update(1)
    pruned = prune_model(clone(dense_model), spec.sparsity, spec.pruning)  # the checkpoint every stage starts from
    s1 = cached_record(out / "stage1.json", lambda: stage1(pruned, data, budgets, base, spec.fitness, spec.search,
                                                           spec.move, seed, out, progress), timings)
    bar.update(1)
    found = {}
    for name in names:
        found[name] = cached_record(out / f"baseline_{name}.json",
                                    lambda: baseline(name, pruned, data, budgets, base, spec.fitness,
                                                     s1["search"]["evaluations"], seed, out, progress, storage),
                                    timings)
        bar.update(1)
    s2 = cached_record(out / "stage2.json", lambda: stage2(pruned, data, get_activations(pruned), budgets, base,
                                                           seed, out, "stage2", progress, storage), timings)
    bar.update(1)
    sf = cached_record(out / "safs.json", lambda: safs(pruned, data, s1["activations"], budgets, base, seed, out,
                                                       progress, storage), timings)
    bar.update(1)
    bar.close()
    timings["total"] = sum(timings.values())
    results = {
        "config": spec.computed(),
        "test_accuracy": {"dense": dense_record["test_accuracy"], "magnitude_pruning": mp_rec["test_accuracy"],
                          "stage1": s1["test_accuracy"], "stage2": s2["test_accuracy"], "safs": sf["test_accuracy"]},
        "val_accuracy": {"dense": dense_record.get("val_accuracy"), "magnitude_pruning": mp_rec["val_accuracy"],
                         "stage1": s1["val_accuracy"], "stage2": s2["val_accuracy"], "safs": sf["val_accuracy"]},
        "baselines": {name: {"test_accuracy": rec["test_accuracy"], "val_accuracy": rec["val_accuracy"],
                             "activations": rec["activations"], **{k: rec["search"][k] for k in
                                                                    ("best_val_fitness", "evaluations")},
                             **({"alpha_beta": rec["alpha_beta"]} if BASELINES[name].stage2 else {}),
                             "seconds": rec["seconds"]} for name, rec in found.items()},
        "activations": {"stage1": s1["activations"], "safs": sf["activations"]},
        "alpha_beta": {"stage2": s2["alpha_beta"], "safs": sf["alpha_beta"]},
        "sparsity": {"overall": sf["sparsity"]["overall"],
                     "per_layer": {k: v for k, v in sf["sparsity"].items() if k != "overall"}},
        "seconds": timings,
        "data": {"source": data.source, "signature": data.signature},
        "kit": KIT_VERSION,
        "environment": {k: environment()[k] for k in ("python", "torch", "device", "threads")},
    }
    save_json(out / "results.json", results)
    return results


def _speed_key(device: str | torch.device = "cpu") -> dict:
    """What moves a cached step's numbers besides its settings: the operators' definitions
    (`OPS_VERSION`), the device and CPU thread count (`runs.compute_key`), and mixed precision /
    channels-last (only when on)."""
    opts = current_cuda_options()
    cuda = {"cuda_options": asdict(opts)} if (opts.amp or opts.channels_last) else {}
    return {"ops_version": OPS_VERSION, **compute_key(device), **cuda}


def weights_fingerprint(model: nn.Module) -> str:
    """A short hash of a model's state dict (weights, operators, masks) and prunable-layer choice."""
    h = hashlib.sha1()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        if torch.is_tensor(v):
            h.update(v.detach().cpu().float().numpy().tobytes())
        else:  # e.g. an activation site's operator name
            h.update(repr(v).encode())
    h.update(repr(getattr(model, "prunable", None)).encode())
    return h.hexdigest()[:12]
