"""Every budget and default of a SAFS run: the presets, the per-model training defaults, and `SAFSConfig`.

A run is named by a `SAFSConfig` (model, dataset, sparsity, pruning method,
preset, seed, search choices); `SAFSConfig.full()` expands it with the
preset's budgets and the model's training defaults, which is what a run
folder's key holds (`safs_lite.run.key.run_key`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..data.splits import INPUT_SHAPES, check_dataset
from ..method.lahc import check_move, check_search
from ..method.pruning import check_pruning, check_sparsity
from ..nets.models import MODELS, check_compatible, check_model
from ..training.fitness import check_fitness
from ..training.loop import TrainConfig


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

    def __post_init__(self):
        """One-line ValueError naming the first bad budget and what is valid."""
        for name in ("dense_epochs", "finetune_epochs", "candidate_epochs", "lahc_history", "hpo_trials",
                     "trial_epochs", "lahc_steps"):
            v, low = getattr(self, name), 0 if name == "lahc_steps" else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"Preset {name} must be an integer >= {low}, got {v!r}")
        for name in ("candidate_subset", "trial_subset"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"Preset {name} must be an integer >= 1 or None (every image), got {v!r}")
        lr = self.candidate_lr
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < float("inf")):
            raise ValueError(f"Preset candidate_lr must be a number > 0 or None (the model's default), got {lr!r}")


# Where the epochs go (benchmarks/fidelity.py and docs/ranking_fidelity.md say why): a stage-1
# candidate is one epoch at lr 1e-2, scored by validation accuracy with the loss breaking ties, which
# ranks operator vectors like a 30-epoch fine-tune (Spearman rho in docs/ranking_fidelity.md) at a tenth of the
# old 3-epoch cost. The epochs saved buy more LAHC steps, more HPO trials (successive halving stops
# most of them after one epoch) and longer final retrains, the same length for every method.
PRESETS: dict[str, Preset] = {
    # The whole pipeline in well under 3 minutes on 2 cores (tests use it).
    "smoke": Preset(dense_epochs=3, finetune_epochs=2, candidate_epochs=1, candidate_subset=1000,
                    lahc_steps=4, lahc_history=3, hpo_trials=3, trial_epochs=2, trial_subset=1000,
                    candidate_lr=1e-2),
    # `make demo`: the whole pipeline in under a minute on 2 idle cores (about 3 with other jobs on them),
    # dense training included.
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

# Training defaults for a network of your own (`safs_lite.search`): LeNet-5's (Adam, lr 1e-3), which
# suit a small network trained from scratch or fine-tuned after pruning; pass `train=` to change them.
DEFAULT_TRAIN = TRAIN_DEFAULTS["lenet5"]


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
    pruning: str = "layerwise"   # "layerwise" (paper), "global", "erk" or "protected" (pruning.PRUNING_METHODS)
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
        check_pruning(self.pruning), check_search(self.search), check_move(self.move), check_fitness(self.fitness)
        # A mismatch (1-channel MNIST into VGG-16, 16x16 ImageNet-16 into VGG-16) fails here, before any
        # data is read or model trained; the model class states its input, no instance is needed.
        check_compatible(MODELS[self.model][0], INPUT_SHAPES[self.dataset], self.model)
        return self

    def budgets(self) -> Preset:
        """The preset's budgets for this model (MODEL_PRESETS overrides PRESETS)."""
        return MODEL_PRESETS.get((self.model, self.preset), PRESETS[self.preset])

    def spec(self, device: str = "cpu") -> "RunSpec":
        """This config resolved: the preset's budgets for this model and the model's training defaults, on `device`.

        amp and channels_last enter the spec (and so the key) only when on.
        """
        extra = tuple((k, True) for k in ("amp", "channels_last") if getattr(self, k))
        return RunSpec(model=self.model, dataset=self.dataset, sparsity=self.sparsity, pruning=self.pruning,
                       preset=self.preset, budgets=self.budgets(), train=TRAIN_DEFAULTS[self.model], seed=self.seed,
                       search=self.search, move=self.move, fitness=self.fitness, extra=extra, device=str(device))

    def full(self) -> dict:
        """Every setting used (`RunSpec.config`): this config plus the preset's budgets and training defaults."""
        return self.spec().config()


@dataclass(frozen=True)
class RunSpec:
    """One SAFS run, fully resolved: what `pipeline.run` runs, and what names it.

    Its run key (`key`), folder name (`folder`) and results.json's "config" (`config`)
    all derive from this one object, so they cannot disagree. `SAFSConfig.spec()`
    builds it for a built-in model; `safs_lite.search` for a network of your own, whose
    weights fingerprint and other facts go in `extra`.
    """

    model: str                   # the network's name (a built-in model, or yours)
    dataset: str                 # the data's name
    sparsity: float
    pruning: str                 # an allocation of `pruning.PRUNING_METHODS`
    preset: str                  # the budgets' name
    budgets: Preset              # the budgets themselves
    train: TrainConfig           # training defaults; every budget is applied to `base`
    seed: int = 0
    search: str = "lahc"         # stage 1's search (`lahc.SEARCHES`)
    move: str = "reference"      # LAHC's move (`lahc.MOVES`)
    fitness: str = "acc_tiebreak"  # stage 1's score (`fitness.FITNESSES`)
    extra: tuple = ()            # (name, value) pairs that identify the run too (own model, CUDA options)
    device: str = "cpu"          # where it computes: in the key with the thread count (`runs.compute_key`)

    @property
    def base(self) -> TrainConfig:
        """The training defaults with the run's seed (what every stage's config is built from)."""
        return replace(self.train, seed=self.seed)

    def config(self) -> dict:
        """Every setting used, as saved in results.json's "config" and hashed into the run's key."""
        fields = {"model": self.model, "dataset": self.dataset, "sparsity": self.sparsity, "pruning": self.pruning,
                  "preset": self.preset, "seed": self.seed, "search": self.search, "move": self.move,
                  "fitness": self.fitness}
        return {**fields, **dict(self.extra), "budgets": asdict(self.budgets), "train_defaults": asdict(self.train)}

    def key(self, data, threads: int | None = None) -> dict:
        """The run key on `data` (a `Data` or its signature) with this device and `threads` (default: the
        current count): `runs.run_key`."""
        from .key import run_key

        return run_key(self.config(), data, self.device, threads)

    def folder(self, data, runs=None, threads: int | None = None):
        """The run folder named from the key: <runs>/safs-<model>-...-s<seed>-<hash>."""
        from .folders import runs_dir
        from .key import config_hash, run_prefix

        return runs_dir(runs) / f"{run_prefix(self.config())}-{config_hash(self.key(data, threads))}"

    def computed(self) -> dict:
        """results.json's "config": `config()` plus how it computed (`runs.computed_on`: device, threads,
        precision), which `check` re-evaluates the same way."""
        from .key import computed_on

        return {**self.config(), **computed_on(self.device)}
