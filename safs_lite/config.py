"""Every budget and default of a SAFS run: the presets, the per-model training defaults, and `SAFSConfig`.

A run is named by a `SAFSConfig` (model, dataset, sparsity, pruning method,
preset, seed, search choices); `SAFSConfig.full()` expands it with the
preset's budgets and the model's training defaults, which is what a run
folder's key holds (`safs_lite.runs.run_key`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .data import INPUT_SHAPES, check_dataset
from .fitness import check_fitness
from .lahc import check_move, check_search
from .models import MODELS, check_compatible, check_model
from .pruning import check_pruning, check_sparsity
from .training import TrainConfig


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

    def full(self) -> dict:
        """Every setting used: this config plus the preset's budgets and training defaults.

        amp and channels_last appear only when on, so runs saved before they
        existed keep their folder names (the hash of this dict).
        """
        cfg = {k: v for k, v in asdict(self).items() if k not in ("amp", "channels_last") or v}
        return {**cfg, "budgets": asdict(self.budgets()), "train_defaults": asdict(TRAIN_DEFAULTS[self.model])}
