"""Stage 2: learn alpha/beta jointly with the weights, with hyperparameters tuned by Optuna.

A trial fine-tunes a copy of the pruned checkpoint with fixed operators,
trainable activation scales (their own parameter group, no weight decay) and
the trial's hyperparameters, reporting its validation score every epoch:
validation accuracy with validation loss as the tie-break (`fitness.tiebreak_score`),
so trials that all sit at the majority-class accuracy are still ranked. A
successive-halving pruner (a multi-fidelity method: every trial gets one
epoch, the best third of them three, ...) stops the others, so more
configurations are tried for the same epochs. The study lives in a SQLite file, so an
interrupted study resumes; each trial's sampler is seeded from the study seed
and the trial number, so a resumed study proposes exactly what an
uninterrupted one would.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import optuna
from torch import nn
from tqdm.auto import tqdm

from .data import Data
from .fitness import tiebreak_score
from .train import OPTIMIZERS, SCHEDULERS, NonFiniteLossError, TrainConfig, finetune_with  # noqa: F401

optuna.logging.set_verbosity(optuna.logging.WARNING)

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def suggest_config(trial: optuna.Trial, base: TrainConfig) -> TrainConfig:
    """The reference's search space (SAFS_METHOD.md section 5), applied on top of `base`.

    One change: momentum (Adam's beta1) ends at `base.beta2` (0.99 for LeNet-5) instead
    of 0.999, so Adam's beta1 never exceeds its beta2.
    """
    return replace(
        base,
        optimizer=trial.suggest_categorical("optimizer", list(OPTIMIZERS)),
        lr=trial.suggest_float("lr", 1e-4, 1e-1, log=True),
        momentum=trial.suggest_float("momentum", 0.1, base.beta2),
        weight_decay=trial.suggest_float("weight_decay", 1e-5, 1e-1, log=True),
        scheduler=trial.suggest_categorical("scheduler", list(SCHEDULERS)),
    )


def tune(pruned: nn.Module, data: Data, ops: dict[str, str], base: TrainConfig, trials: int,
         folder: str | os.PathLike, seed: int = 0, storage: str | None = None,
         progress: bool = True) -> optuna.Study:
    """Run (or resume) the HPO study for stage 2 and return it.

    Args:
        pruned: the pruned checkpoint every trial starts from.
        data: the dataset; trials are scored on its validation split only.
        ops: the fixed operators (relu everywhere for "stage 2 only", stage 1's for SAFS).
        base: budget of a trial (epochs, train_subset, batch size); the search
            space overrides optimizer, lr, momentum, weight decay and scheduler.
        trials: number of finished trials wanted (complete or pruned).
        folder: where the default SQLite storage goes (`study.db`).
        seed: seeds the TPE sampler and the trials' training.
        storage: an Optuna storage URL (default: sqlite:///<folder>/study.db).
        progress: show a progress bar over trials.

    Returns:
        The study (best trial: `study.best_trial`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{folder / 'study.db'}"
    # Successive halving on epochs: a trial goes on past epoch 1 (then 3, 9, ...) only if its
    # score is in the top third of the trials that reached that epoch.
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    study = optuna.create_study(study_name="stage2", storage=storage, direction="maximize",
                                pruner=pruner, load_if_exists=True)
    if study.user_attrs.get("ops", ops) != ops:
        raise ValueError(f"{storage}: this study tuned other operators ({study.user_attrs['ops']}); "
                         "use another folder or delete it")
    study.set_user_attr("ops", ops)

    def objective(trial: optuna.Trial) -> float:
        cfg = replace(suggest_config(trial, base), seed=seed, select="last")

        def report(row: dict) -> None:
            trial.set_user_attr(f"val_acc_{row['epoch']}", row["val_acc"])
            trial.report(tiebreak_score(row["val_acc"], row["val_loss"]), row["epoch"])
            if row["epoch"] < cfg.epochs and trial.should_prune():  # stopping after the last epoch saves nothing
                raise optuna.TrialPruned()

        try:
            _, history = finetune_with(pruned, data, ops, cfg, learn_scales=True, on_epoch=report)
        except NonFiniteLossError as err:  # diverged: stop the trial like a pruned one, say why
            trial.set_user_attr("diverged", str(err))
            raise optuna.TrialPruned() from None
        return tiebreak_score(history[-1]["val_acc"], history[-1]["val_loss"])

    done = sum(t.state in FINISHED for t in study.trials)
    bar = tqdm(total=trials, initial=min(done, trials), desc="HPO trials", disable=not progress, leave=False)
    while done < trials:
        # A fresh sampler per trial, seeded by (seed, trial index): resuming proposes what an
        # uninterrupted study would have, because TPE only depends on the history and its seed.
        study.sampler = optuna.samplers.TPESampler(seed=seed * 1000 + done,
                                                   n_startup_trials=max(2, trials // 3))
        _drop_unfinished(study)
        study.optimize(objective, n_trials=1, catch=())
        done = sum(t.state in FINISHED for t in study.trials)
        bar.update(1)
        if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
            bar.set_postfix(best=f"{study.best_value:.2f}")
    bar.close()
    return study


def _drop_unfinished(study: optuna.Study) -> None:
    """Mark trials left RUNNING by a killed process as failed, so they are not counted."""
    for t in study.trials:
        if t.state == optuna.trial.TrialState.RUNNING:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)


def best_config(study: optuna.Study, base: TrainConfig) -> TrainConfig:
    """The best trial's hyperparameters on top of `base` (for the full-budget retraining)."""
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        raise ValueError(f"no trial of the study completed ({len(study.trials)} pruned, diverged or failed); "
                         "run more trials or narrow the learning-rate range")
    p = study.best_trial.params
    return replace(base, optimizer=p["optimizer"], lr=p["lr"], momentum=p["momentum"],
                   weight_decay=p["weight_decay"], scheduler=p["scheduler"])
