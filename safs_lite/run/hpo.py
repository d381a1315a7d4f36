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
uninterrupted one would. On a shared storage (PostgreSQL, MySQL, a journal
file: `safs_lite.run.storage`) several processes add trials to one study, up to
its budget in total, and a trial whose process died is retried.
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import optuna
from torch import nn
from tqdm.auto import tqdm

from ..data.core import Data
from ..training.fitness import tiebreak_score
from ..training.loop import OPTIMIZERS, SCHEDULERS, NonFiniteLossError, TrainConfig, finetune_with  # noqa: F401
from .storage import (
    FINISHED,
    POLL_S,
    Claim,
    claim_lock,
    describe,
    give_up,
    heartbeat,
    mark_running,
    next_claim,
    open_storage,
    reap,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

PARAMS = ("optimizer", "lr", "momentum", "weight_decay", "scheduler")  # what `suggest_config` tunes


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
         folder: str | os.PathLike, seed: int = 0, storage: str | None = None, study_name: str = "stage2",
         progress: bool = True, attrs: dict | None = None) -> optuna.Study:
    """Run, resume or join the HPO study for stage 2 and return it once `trials` trials have finished.

    Several processes may call this on one study (`python -m safs_lite hpo-worker`): each
    starts trials while the finished and running ones are fewer than `trials`, then waits for
    the others' to finish; a trial whose process died is retried (`safs_lite.run.storage`). Alone,
    a process runs exactly what it always ran: trial k's sampler is seeded by (seed, k).

    Args:
        pruned: the pruned checkpoint every trial starts from.
        data: the dataset; trials are scored on its validation split only.
        ops: the fixed operators (relu everywhere for "stage 2 only", stage 1's for SAFS).
        base: budget of a trial (epochs, train_subset, batch size); the search
            space overrides optimizer, lr, momentum, weight decay and scheduler.
        trials: number of finished trials wanted (complete or pruned), by all processes together.
        folder: where the default SQLite storage goes (`study.db`).
        seed: seeds the TPE sampler and the trials' training.
        storage: an Optuna storage URL (`storage.check_storage`; default: sqlite:///<folder>/study.db).
        study_name: the study's name in the storage (unique per run and stage on a shared one).
        progress: show a progress bar over trials.
        attrs: what else identifies the study (JSON-able; `pipeline.stage2_study` gives the run key
            and the pruned network's fingerprint): saved as user attributes next to the operators;
            a study that holds other values is refused with a one-line ValueError.

    Returns:
        The study (best trial: `study.best_trial`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{folder / 'study.db'}"
    with claim_lock(url, "safs_lite"):  # a new database gets its tables once, whoever comes first
        store = open_storage(url)
    # Successive halving on epochs: a trial goes on past epoch 1 (then 3, 9, ...) only if its
    # score is in the top third of the trials that reached that epoch.
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    with claim_lock(url, study_name):  # two workers starting at once create the study once
        study = optuna.create_study(study_name=study_name, storage=store, direction="maximize",
                                    pruner=pruner, load_if_exists=True)
    if study.user_attrs.get("ops", ops) != ops:
        raise ValueError(f"{describe(url)}: study {study_name!r} tuned other operators ({study.user_attrs['ops']}); "
                         "use another folder or storage, or delete it")
    study.set_user_attr("ops", ops)
    for k, v in (attrs or {}).items():
        if study.user_attrs.get(k, v) != v:
            raise ValueError(f"{describe(url)}: study {study_name!r} belongs to another run (its {k} differs: "
                             f"{_short(study.user_attrs[k])} here {_short(v)}); use another storage, or delete "
                             "the study")
        study.set_user_attr(k, v)

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

    def finished() -> int:
        return len(study.get_trials(deepcopy=False, states=FINISHED))

    bar = tqdm(total=trials, initial=min(finished(), trials), desc="HPO trials", disable=not progress, leave=False)
    while True:
        with claim_lock(url, study_name):  # one process at a time decides what runs next
            reap(study, store)
            claim = next_claim(study.get_trials(deepcopy=False), trials, PARAMS)
            trial = None
            if isinstance(claim, Claim):
                # A fresh sampler per trial, seeded by (seed, slot): resuming proposes what an
                # uninterrupted study would have, because TPE only depends on the history and its seed.
                study.sampler = optuna.samplers.TPESampler(seed=seed * 1000 + claim.slot,
                                                           n_startup_trials=max(2, trials // 3))
                if claim.params is not None:  # a lost trial: the same hyperparameters again
                    study.enqueue_trial(claim.params)
                trial = study.ask()
                mark_running(store, trial._trial_id, claim)
        if claim == "done":
            break
        if trial is not None:
            _run_trial(study, store, trial, objective)
        else:  # the other workers run the rest: wait for them (or for a lost trial to retry)
            time.sleep(POLL_S)
        bar.n = min(finished(), trials)
        if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
            bar.set_postfix(best=f"{study.best_value:.2f}", refresh=False)
        bar.refresh()
    bar.close()
    return study


def _short(value) -> str:
    """A key (hashed) or a fingerprint, short enough for a one-line error."""
    if isinstance(value, dict):
        from .key import config_hash

        return f"key hash {config_hash(value)}"
    return repr(value)


def _run_trial(study: optuna.Study, store: optuna.storages.BaseStorage, trial: optuna.Trial, objective) -> None:
    """Run one claimed trial with a heartbeat and tell its end, as `study.optimize` would."""
    with heartbeat(store, trial._trial_id):
        try:
            value, state = objective(trial), optuna.trial.TrialState.COMPLETE
        except optuna.TrialPruned:
            value, state = None, optuna.trial.TrialState.PRUNED
        except optuna.exceptions.UpdateFinishedTrialError:  # given up as lost by another worker: its retry counts
            return
        except BaseException as err:  # stopped (an interrupt, an error): fail it, to be retried, and stop
            give_up(study, store, trial, err)
            raise
    try:
        study.tell(trial, value, state=state)
    except (RuntimeError, ValueError):  # given up as lost by another worker while it ran: its retry counts
        pass


def best_config(study: optuna.Study, base: TrainConfig) -> TrainConfig:
    """The best trial's hyperparameters on top of `base` (for the full-budget retraining)."""
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        raise ValueError(f"no trial of the study completed ({len(study.trials)} pruned, diverged or failed); "
                         "run more trials or narrow the learning-rate range")
    p = study.best_trial.params
    return replace(base, optimizer=p["optimizer"], lr=p["lr"], momentum=p["momentum"],
                   weight_decay=p["weight_decay"], scheduler=p["scheduler"])
