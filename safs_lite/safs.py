"""The SAFS pipeline end to end: the five numbers of the paper's Table 1 for one setting.

    dense -> prune -> magnitude pruning (fine-tuned)          [baseline]
                   -> stage 1: LAHC over per-layer operators  [stage1]
                   -> stage 2: relu + learned alpha/beta, HPO  [stage2]
                   -> stage 1 operators + stage 2              [safs]

Every search and HPO decision uses the validation split; the test split is
read only for the reported numbers. Each stage's result is saved in the run
folder as soon as it is done, and the LAHC history and the Optuna study are
saved as they go, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import functools
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .activations import OPS_VERSION, SEARCH_SPACE, get_activations, get_alpha_beta
from .data import INPUT_SHAPES, Data, check_dataset, load_data, num_classes
from .fitness import FITNESSES, candidate_fitness, check_fitness
from .hpo import best_config, tune
from .models import MODELS, build_model, check_compatible, check_model
from .paths import data_dir, runs_dir
from .pipeline import magnitude_pruning, train_dense
from .pruning import PRUNING_METHODS, check_sparsity, clone, load_pruned, prune_model, sparsity_report
from .runs import config_hash, cpu_state, environment, load_json, load_state, save_json, save_state
from .search import MOVES, SearchConfig, lahc, random_search
from .train import TrainConfig, cuda_options, evaluate, finetune_with
from .version import KIT_VERSION


@dataclass(frozen=True)
class Preset:
    """Budgets of one SAFS run (epochs are passes over the training split or its subset)."""

    dense_epochs: int            # dense training (paper: 200)
    finetune_epochs: int         # magnitude-pruning fine-tune and every final retraining (paper: 200)
    candidate_epochs: int        # one stage-1 candidate evaluation (paper: 80)
    candidate_subset: int | None  # training images per candidate epoch (None: all)
    lahc_steps: int              # LAHC moves (paper: 20)
    lahc_history: int            # LAHC history length L (paper: 3)
    hpo_trials: int              # Optuna trials per stage-2 study (paper: 20, SMAC)
    trial_epochs: int            # one HPO trial (paper: 80)
    trial_subset: int | None     # training images per trial epoch (None: all)
    candidate_lr: float | None = None  # a candidate's learning rate (None: the model's default)


# Where the epochs go (benchmarks/fidelity.py and the README's "Ranking fidelity" say why): a stage-1
# candidate is one epoch at lr 1e-2, scored by validation accuracy with the loss breaking ties, which
# ranks operator vectors like a 30-epoch fine-tune (Spearman rho in the README) at a tenth of the
# old 3-epoch cost. The epochs saved buy more LAHC steps, more HPO trials (successive halving stops
# most of them after one epoch) and longer final retrains, the same length for every method.
PRESETS: dict[str, Preset] = {
    # The whole pipeline in well under 3 minutes on 2 cores (tests use it).
    "smoke": Preset(dense_epochs=3, finetune_epochs=2, candidate_epochs=1, candidate_subset=1000,
                    lahc_steps=4, lahc_history=3, hpo_trials=3, trial_epochs=2, trial_subset=1000,
                    candidate_lr=1e-2),
    # `make demo`: the whole pipeline in about 2 minutes on 2 cores, dense training included.
    # Dense training is the cpu preset's (15 epochs), so the demo's dense network is shared.
    "demo": Preset(dense_epochs=15, finetune_epochs=3, candidate_epochs=1, candidate_subset=5000,
                   lahc_steps=7, lahc_history=3, hpo_trials=6, trial_epochs=3, trial_subset=5000,
                   candidate_lr=1e-2),
    # The benchmark setting: at most 30 minutes per seed on 2 cores with full MNIST.
    "cpu": Preset(dense_epochs=15, finetune_epochs=30, candidate_epochs=1, candidate_subset=None,
                  lahc_steps=40, lahc_history=3, hpo_trials=20, trial_epochs=5, trial_subset=None,
                  candidate_lr=1e-2),
    # The accuracy-versus-sparsity study (12 settings x seeds): about 2-3 minutes per run on 1 core.
    # Dense training is the cpu preset's (15 epochs), so its cached dense networks are reused.
    "sweep": Preset(dense_epochs=15, finetune_epochs=5, candidate_epochs=1, candidate_subset=10000,
                    lahc_steps=8, lahc_history=3, hpo_trials=6, trial_epochs=3, trial_subset=10000,
                    candidate_lr=1e-2),
    # The reference code's budgets (SAFS_METHOD.md section 5): for a GPU. Candidates keep the
    # reference's hyperparameters (candidate_lr None): at 80 epochs the default LR has time to learn.
    "paper": Preset(dense_epochs=200, finetune_epochs=200, candidate_epochs=80, candidate_subset=None,
                    lahc_steps=20, lahc_history=3, hpo_trials=20, trial_epochs=80, trial_subset=None),
}

# The demo's setting (sparsity, pruning), where SAFS's effect shows at the demo's budget.
DEMO_SETTING = (0.98, "global")

# The paper's Table 1 (99% layer-wise sparsity): shown next to ours when the setting matches.
PAPER_TABLE1 = {
    ("lenet5", "mnist"): {"dense": 98.49, "magnitude_pruning": 46.69, "stage1": 61.63, "stage2": 60.20,
                          "safs": 62.22},
    ("vgg16", "cifar10"): {"dense": 86.76, "magnitude_pruning": 70.32, "stage1": 78.11, "stage2": 80.97,
                           "safs": 79.20},
    ("resnet18", "cifar10"): {"dense": 89.86, "magnitude_pruning": 77.55, "stage1": 79.34, "stage2": 82.74,
                              "safs": 83.88},
    ("efficientnet_b0", "imagenet16"): {"dense": 18.41, "magnitude_pruning": 10.96, "stage1": 11.84,
                                        "stage2": 11.70, "safs": 12.50},
}

# Budgets for one model only, (model, preset name) -> Preset, replacing PRESETS[name] for that model.
# Empty: the reference gives every Table 1 row the same budgets (SAFS_METHOD.md section 5), and the
# smoke preset runs each bigger model on tiny data in seconds. Example of an entry:
#     ("vgg16", "cpu"): replace(PRESETS["cpu"], dense_epochs=5, candidate_subset=2000, trial_subset=2000)
MODEL_PRESETS: dict[tuple[str, str], Preset] = {}

# Per-model training defaults (SAFS_METHOD.md section 5). Momentum 0.9 and weight decay 5e-4 are the
# reference's defaults for every SGD model. The step scheduler halves the LR ten times over a run
# (every 20 epochs of 200, as the reference's VGG schedule).
TRAIN_DEFAULTS: dict[str, TrainConfig] = {
    "lenet5": TrainConfig(optimizer="adam", lr=1e-3, momentum=0.9, beta2=0.99, weight_decay=5e-4,
                          scheduler="constant", batch_size=256),
    "vgg16": TrainConfig(optimizer="sgd", lr=1e-3, momentum=0.9, weight_decay=5e-4, scheduler="step",
                         batch_size=256),
    "resnet18": TrainConfig(optimizer="sgd", lr=1e-3, momentum=0.9, weight_decay=5e-4, scheduler="plateau",
                            batch_size=256),
    "efficientnet_b0": TrainConfig(optimizer="sgd", lr=1e-3, momentum=0.9, weight_decay=5e-4,
                                   scheduler="cosine_warm", batch_size=256),
}

STAGES = ("dense", "magnitude_pruning", "stage1", "stage2", "safs")


def check_preset(name: str) -> Preset:
    """The preset called `name`, or ValueError listing the valid ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[name]


@dataclass(frozen=True)
class SAFSConfig:
    """One SAFS run: what to prune, how hard, with which budget and seed."""

    model: str = "lenet5"
    dataset: str = "mnist"
    sparsity: float = 0.99
    pruning: str = "layerwise"   # "layerwise" (paper) or "global"
    preset: str = "smoke"
    seed: int = 0
    search: str = "lahc"         # "lahc" (paper) or "random" (baseline at the same evaluation count)
    move: str = "reference"      # LAHC move: "reference" (mutate one layer, then swap two) or "one_layer"
    fitness: str = "acc_tiebreak"  # stage-1 score of a candidate (fitness.FITNESSES); the reference's: "val_acc"
    amp: bool = False            # CUDA only: mixed precision (bf16, or fp16 + GradScaler)
    channels_last: bool = False  # CUDA only: NHWC memory format

    def validate(self) -> "SAFSConfig":
        """Raise ValueError (one line, listing valid values) on any bad field."""
        check_model(self.model), check_dataset(self.dataset), check_sparsity(self.sparsity)
        check_preset(self.preset)
        if self.pruning not in PRUNING_METHODS:
            raise ValueError(f"unknown pruning method {self.pruning!r}; valid: {', '.join(PRUNING_METHODS)}")
        if self.search not in ("lahc", "random"):
            raise ValueError(f"unknown search {self.search!r}; valid: lahc, random")
        if self.move not in MOVES:
            raise ValueError(f"unknown move {self.move!r}; valid: {', '.join(MOVES)}")
        check_fitness(self.fitness)
        # A mismatch (1-channel MNIST into VGG-16, 16x16 ImageNet-16 into VGG-16) fails here, before any
        # data is read or model trained; the model class states its input, no instance is needed.
        check_compatible(MODELS[self.model][0], INPUT_SHAPES[self.dataset], self.model)
        return self

    def budgets(self) -> Preset:
        """The preset's budgets for this model (MODEL_PRESETS overrides PRESETS)."""
        return MODEL_PRESETS.get((self.model, self.preset), PRESETS[self.preset])

    def full(self) -> dict:
        """Every setting used: this config plus the preset's budgets and training defaults.

        amp and channels_last appear only when on, so runs saved before they
        existed keep their folder names (the hash of this dict).
        """
        cfg = {k: v for k, v in asdict(self).items() if k not in ("amp", "channels_last") or v}
        return {**cfg, "budgets": asdict(self.budgets()), "train_defaults": asdict(TRAIN_DEFAULTS[self.model])}


def run_key(config: SAFSConfig, data: "Data | str") -> dict:
    """Everything that changes a SAFS run's numbers: the config with its budgets and training defaults,
    the data's signature, the searched operators and their definitions' version, and the kit's version.

    A run folder holds one key (`config.json`); a folder holding another key is never reused.
    """
    signature = data if isinstance(data, str) else data.signature
    return {**config.full(), "data": signature, "search_space": list(SEARCH_SPACE),
            "ops_version": OPS_VERSION, "kit": KIT_VERSION}


@functools.lru_cache(maxsize=8)
def _signature_of(dataset: str, root: str, seed: int) -> str:
    return load_data(dataset, root=root, seed=seed).signature


def default_out(cfg: SAFSConfig, runs: str | os.PathLike | None = None, data: "Data | str | None" = None,
                data_root: str | os.PathLike | None = None) -> Path:
    """The run folder named from its key: <runs>/safs-<model>-<dataset>-<sparsity>-<pruning>-<preset>-s<seed>-<hash>.

    The hash covers `run_key`, data included: the same config on other data (the offline
    subset, say) gets another folder. Without `data` the dataset is loaded from `data_root`
    (default $SAFS_DATA) to read its signature (once per process).
    """
    if data is None:
        data = _signature_of(cfg.dataset, str(data_dir(data_root)), cfg.seed)
    return runs_dir(runs) / f"{_prefix(cfg)}-{config_hash(run_key(cfg, data))}"


def _prefix(cfg: SAFSConfig) -> str:
    return f"safs-{cfg.model}-{cfg.dataset}-{cfg.sparsity:g}-{cfg.pruning}-{cfg.preset}-s{cfg.seed}"


def key_diff(old: dict, new: dict, limit: int = 3) -> str:
    """The fields where two keys differ, as "field: old -> new" (nested fields dotted), at most `limit`."""
    diffs = []

    def walk(a, b, path):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in list(a) + [k for k in b if k not in a]:
                walk(a.get(k, "(absent)"), b.get(k, "(absent)"), f"{path}.{k}" if path else k)
        elif a != b:
            diffs.append(f"{path}: {a!r} -> {b!r}")

    walk(old, new, "")
    more = f" (+{len(diffs) - limit} more)" if len(diffs) > limit else ""
    return "; ".join(diffs[:limit]) + more


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"--out {out}: not writable ({err.strerror or err})") from None


def _prepare_out(out: Path, key: dict, explicit: bool) -> None:
    """Create the run folder, or check that the one there holds this key; note older runs of this config."""
    cfg_file = out / "config.json"
    if cfg_file.exists():
        saved = load_json(cfg_file)
        old = saved.get("config") if isinstance(saved, dict) else None
        if old != key:
            diff = key_diff(old, key) if isinstance(old, dict) else "no readable key"
            hint = "use another --out or delete it" if explicit else "delete it"
            raise ValueError(f"{out} holds a run with another key ({diff}); {hint}")
    elif not explicit and out.parent.is_dir():
        # Same setting made with other data, operators or kit version: say what differs, in one line.
        for other in sorted(out.parent.glob(out.name.rsplit("-", 1)[0] + "-*"), key=lambda p: p.stat().st_mtime):
            try:
                old = load_json(other / "config.json")["config"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            print(f"safs_lite: {other.name} holds this setting with another key ({key_diff(old, key)}); "
                  f"not reused, computing {out.name}", file=sys.stderr)
            break
    _check_writable(out)
    if not cfg_file.exists():
        save_json(cfg_file, {"config": key, "environment": environment()})


def _stage(out: Path, name: str, fn, timings: dict) -> dict:
    """Run `fn` once: its record is saved as <out>/<name>.json and loaded on a rerun."""
    path = out / f"{name}.json"
    if path.exists():
        record = load_json(path)
        if not isinstance(record, dict) or "test_accuracy" not in record:
            raise ValueError(f"{path}: corrupt stage record; delete it to recompute that stage")
    else:
        t0 = time.perf_counter()
        record = fn()
        record["seconds"] = time.perf_counter() - t0
        save_json(path, record)
    timings[name] = record["seconds"]
    return record


def run_safs(config: SAFSConfig = SAFSConfig(), out: str | os.PathLike | None = None,
             data_root: str | os.PathLike | None = None, runs: str | os.PathLike | None = None,
             progress: bool = True, device: str = "cpu", compare_search: bool = False) -> dict:
    """Run the whole SAFS pipeline for one setting and return (and save) its results.

    Args:
        config: model, dataset, sparsity, pruning, preset, seed, search strategy,
            and (CUDA only) amp / channels_last.
        out: the run folder (default: named from the config under the runs folder);
            `results.json` and every stage's record and checkpoint go there.
        data_root: data folder (default $SAFS_DATA, else <repo>/data).
        runs: runs folder for the shared dense / magnitude-pruning caches.
        progress: show progress bars.
        device: "cpu" or "cuda"; the data and the dense model are moved there once.
        compare_search: also run random search with the same fitness and as many
            evaluations as LAHC made, after stage 1 (history in
            `<out>/stage1_random_search.csv`, summary in `stage1_random.json`); the
            reported numbers do not depend on it. Off by default (it costs about
            one more stage 1 search).

    Returns:
        The results dict written to `<out>/results.json` (keys: config,
        test_accuracy, activations, alpha_beta, sparsity, seconds, environment).
    """
    config.validate()
    if (config.amp or config.channels_last) and not str(device).startswith("cuda"):
        raise ValueError(f"--amp and --channels-last need a CUDA device (--device cuda); this run is on {device}")
    with cuda_options(config.amp, config.channels_last):
        return _run_safs(config, out, data_root, runs, progress, device, compare_search)


def _run_safs(config: SAFSConfig, out: str | os.PathLike | None, data_root: str | os.PathLike | None,
              runs: str | os.PathLike | None, progress: bool, device: str, compare_search: bool = False) -> dict:
    """`run_safs` without the argument checks, inside its `cuda_options` block."""
    preset, full = config.budgets(), config.full()
    if out is not None:
        _check_writable(Path(out))  # a bad --out fails before any data is read
    data = load_data(config.dataset, root=data_root, seed=config.seed)
    key = run_key(config, data)
    explicit = out is not None
    out = Path(out) if explicit else default_out(config, runs, data=data)
    _prepare_out(out, key, explicit)
    if device != "cpu":
        data = data.to(device)
    base = replace(TRAIN_DEFAULTS[config.model], seed=config.seed)
    timings: dict[str, float] = {}
    bar = tqdm(total=len(STAGES), desc=f"SAFS {config.model} {config.sparsity:g}", disable=not progress)

    # Dense and magnitude pruning: shared caches (a sweep reuses the dense net across sparsities).
    # Seconds are what each stage cost when it was computed (also when loaded from the cache).
    dense, dense_rec = train_dense(config.model, data, replace(base, epochs=preset.dense_epochs), runs=runs,
                                   progress=progress, device=device)
    timings["dense"] = dense_rec["seconds"]
    bar.update(1)
    ft = replace(base, epochs=preset.finetune_epochs)
    _, mp_rec = magnitude_pruning(dense, data, config.sparsity, config.pruning, ft, runs=runs,
                                  progress=progress, key=dense_rec["config"])
    timings["magnitude_pruning"] = mp_rec["seconds"]
    bar.update(1)
    pruned = prune_model(clone(dense), config.sparsity, config.pruning)  # the checkpoint every stage starts from
    sites = list(get_activations(pruned))
    relu = {s: MODELS[config.model][1] for s in sites}

    def final(ops: dict, cfg: TrainConfig, learn_scales: bool, name: str) -> dict:
        model, history = finetune_with(pruned, data, ops, cfg, learn_scales=learn_scales, progress=progress,
                                       desc=f"{name} retrain")
        save_state(out / f"{name}.pt", cpu_state(model))
        return {"activations": get_activations(model),
                "alpha_beta": {k: list(v) for k, v in get_alpha_beta(model).items()},
                "val_accuracy": evaluate(model, data, "val")["accuracy"],
                "test_accuracy": evaluate(model, data, "test")["accuracy"],
                "sparsity": sparsity_report(model), "train": asdict(cfg), "history": history}

    cand = replace(base, epochs=preset.candidate_epochs, train_subset=preset.candidate_subset,
                   lr=preset.candidate_lr or base.lr)
    fitness = candidate_fitness(pruned, data, cand, config.fitness)  # a short fine-tune, alpha = beta = 1

    def stage1() -> dict:
        csv = out / "stage1_search.csv"
        if config.search == "lahc":
            sc = SearchConfig(steps=preset.lahc_steps, history=preset.lahc_history, move=config.move,
                              seed=config.seed)
            result = lahc(fitness, sites, SEARCH_SPACE, sc, csv_path=csv, progress=progress)
        else:  # same number of evaluations as LAHC's steps + 1 would normally make
            result = random_search(fitness, sites, SEARCH_SPACE, preset.lahc_steps + 1, seed=config.seed,
                                   csv_path=csv, progress=progress)
        rec = final(result.best, ft, False, "stage1")
        rec.update(search={"method": config.search, "fitness": config.fitness, "best_val_fitness": result.best_fitness,
                           "evaluations": result.evaluations, "history_csv": csv.name})
        return rec

    def stage2_for(ops: dict, name: str) -> dict:
        trial = replace(base, epochs=preset.trial_epochs, train_subset=preset.trial_subset)
        study = tune(pruned, data, ops, trial, preset.hpo_trials, out / f"{name}_hpo", seed=config.seed,
                     progress=progress)
        rec = final(ops, best_config(study, ft), True, name)
        rec["hpo"] = {"best_params": study.best_trial.params, "best_val": study.best_value,
                      "trials": len(study.trials), "storage": f"{name}_hpo/study.db"}
        return rec

    s1 = _stage(out, "stage1", stage1, timings)
    if compare_search and config.search == "lahc" and not (out / "stage1_random.json").exists():
        # The equal-budget baseline: as many distinct evaluations as LAHC made, same fitness.
        t0 = time.perf_counter()
        rnd = random_search(fitness, sites, SEARCH_SPACE, s1["search"]["evaluations"], seed=config.seed,
                            csv_path=out / "stage1_random_search.csv", progress=progress)
        save_json(out / "stage1_random.json",
                  {"best": rnd.best, "best_val_fitness": rnd.best_fitness, "evaluations": rnd.evaluations,
                   "history_csv": "stage1_random_search.csv", "seconds": time.perf_counter() - t0})
    bar.update(1)
    s2 = _stage(out, "stage2", lambda: stage2_for(relu, "stage2"), timings)
    bar.update(1)
    sf = _stage(out, "safs", lambda: stage2_for(s1["activations"], "safs"), timings)
    bar.update(1)
    bar.close()

    timings["total"] = sum(timings.values())
    results = {
        "config": full,
        "test_accuracy": {"dense": dense_rec["test_accuracy"], "magnitude_pruning": mp_rec["test_accuracy"],
                          "stage1": s1["test_accuracy"], "stage2": s2["test_accuracy"],
                          "safs": sf["test_accuracy"]},
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


def load_safs_model(out: str | os.PathLike, stage: str = "safs") -> torch.nn.Module:
    """Rebuild a finished run's pruned model of one stage ("stage1", "stage2" or "safs")."""
    out = Path(out)
    full = load_json(out / "config.json")["config"]
    model = build_model(full["model"], num_classes=num_classes(full["dataset"]))
    prune_model(model, 0.0)  # attach masks; the saved ones overwrite them
    return load_pruned(model, load_state(out / f"{stage}.pt"))
