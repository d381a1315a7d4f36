"""LR schedules over a run's own length, Adam's betas, the stage-1 fitnesses and LAHC on ties."""
import math

import pytest
import torch

from safs_lite import TrainConfig, build_model, load_data, prune_model
from safs_lite.fitness import FITNESSES, candidate_fitness, check_fitness, score, tiebreak_score
from safs_lite.lahc import SearchConfig, lahc
from safs_lite.training import SCHEDULERS, RunSchedule


def lrs(name, epochs, steps_per_epoch=12, losses=None, lr=0.1):
    """The LR used by every batch of a run of `epochs` x `steps_per_epoch` batches."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = RunSchedule(opt, name, epochs * steps_per_epoch)
    out = []
    for t in range(epochs * steps_per_epoch):
        out.append(sched.lr)
        opt.step()
        sched.step(None if losses is None else losses(t))
    return out


@pytest.mark.parametrize("epochs", [1, 3, 80])
def test_each_schedule_does_what_its_name_says_at_any_run_length(epochs):
    n = epochs * 12
    assert set(lrs("constant", epochs)) == {0.1}
    step = lrs("step", epochs)  # halved at every tenth of the run: 10 distinct values, the last lr/2**9
    assert len(set(step)) == 10 and math.isclose(step[-1], 0.1 / 2 ** 9)
    assert all(a >= b for a, b in zip(step, step[1:]))
    cos = lrs("cosine", epochs)  # from lr down to near 0, never rising
    assert cos[0] == 0.1 and cos[-1] < 0.002 and abs(cos[n // 2] - 0.05) < 1e-9
    assert all(a >= b for a, b in zip(cos, cos[1:]))
    warm = lrs("cosine_warm", epochs)  # four cycles: the LR jumps back up three times
    restarts = sum(b > a for a, b in zip(warm, warm[1:]))
    assert restarts == 3 and max(warm) == 0.1 and min(warm) <= 0.1 * 0.25 + 1e-9
    # plateau: a flat training loss gets the LR halved within the run; a falling one never does
    flat = lrs("plateau", epochs, losses=lambda t: 1.0)
    assert flat[0] == 0.1 and flat[-1] < 0.1 and len(flat) == n
    falling = lrs("plateau", epochs, losses=lambda t: 1.0 / (1 + t))
    assert set(falling) == {0.1}


def test_schedule_rejects_unknown_names():
    assert set(SCHEDULERS) == {"constant", "step", "cosine", "cosine_warm", "plateau"}
    with pytest.raises(ValueError, match="unknown scheduler 'linear'; valid: constant"):
        RunSchedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), "linear", 10)


def test_training_history_records_the_scheduled_lr():
    data = load_data("mnist", quiet=True)
    hist = __import__("safs_lite").train(build_model("lenet5"), data,
                                         TrainConfig(epochs=2, lr=0.01, scheduler="cosine", train_subset=512),
                                         progress=False)
    assert hist[0]["lr"] > hist[1]["lr"] > 0  # the last batch of epoch 2 runs near the end of the cosine


def test_adam_beta1_never_above_beta2():
    with pytest.raises(ValueError, match=r"beta1 \(momentum=0.995\) must lie in \[0, beta2=0.99\]"):
        TrainConfig(optimizer="adam", momentum=0.995, beta2=0.99)
    TrainConfig(optimizer="sgd", momentum=0.995)  # SGD momentum has no beta2 to respect
    with pytest.raises(ValueError, match="epochs must be an integer >= 1, got 0"):
        TrainConfig(epochs=0)


def test_hpo_search_space_keeps_beta1_below_beta2():
    import optuna

    from safs_lite.hpo import suggest_config

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    base = TrainConfig(optimizer="adam", beta2=0.99)
    for _ in range(200):
        trial = study.ask()
        cfg = suggest_config(trial, base)  # TrainConfig validates: would raise if beta1 > beta2
        assert 0.1 <= cfg.momentum <= 0.99
        study.tell(trial, 0.0)


def test_tiebreak_orders_equal_accuracies_by_loss_and_never_overrides_accuracy():
    assert tiebreak_score(11.35, 2.2) > tiebreak_score(11.35, 2.3)
    assert tiebreak_score(11.36, 9.99) > tiebreak_score(11.35, 0.0)  # 0.01 points beats any loss
    assert tiebreak_score(11.35, float("inf")) == 11.35 - 1e-3 * 9.99
    row = {"val_acc": 50.0, "val_loss": 1.5}
    assert score("val_acc", row) == 50.0 and score("val_loss", row) == -1.5
    with pytest.raises(ValueError, match="unknown fitness 'accuracy'; valid: val_acc, val_loss, acc_tiebreak"):
        check_fitness("accuracy")


def test_candidate_fitness_scores_validation_only_and_tells_ties_apart():
    data = load_data("mnist", quiet=True)
    pruned = prune_model(build_model("lenet5", seed=0), 0.99)
    cfg = TrainConfig(epochs=1, train_subset=256, select="best")
    reads = []
    real_batches = type(data).batches

    def spy(self, split, *args, **kwargs):
        reads.append(split)
        return real_batches(self, split, *args, **kwargs)

    type(data).batches = spy
    try:
        fit = {name: candidate_fitness(pruned, data, cfg, name) for name in FITNESSES}
        relu = {s: "relu" for s in ("conv1", "conv2", "fc1", "fc2")}
        tanh = {s: "tanh" for s in relu}
        acc = [fit["val_acc"](v) for v in (relu, tanh)]
        tie = [fit["acc_tiebreak"](v) for v in (relu, tanh)]
    finally:
        type(data).batches = real_batches
    assert "test" not in reads and set(reads) == {"train", "val"}
    # the tie-break keeps the accuracy's order and separates what accuracy alone may not
    assert all(0 < a - t < 0.01 for a, t in zip(acc, tie))  # the same accuracy, less a loss term below 0.01
    assert tie[0] != tie[1]
    assert pruned.conv1.weight.count_nonzero() == 2  # the checkpoint is left untouched


def test_lahc_on_ties_walks_but_never_crowns_an_equal_fitness_best():
    """A flat objective: every move is accepted (sideways walk), the best stays the first vector seen."""
    result = lahc(lambda v: 11.35, ["a", "b", "c"], ["x", "y", "z"], SearchConfig(steps=12, seed=0),
                  progress=False)
    assert all(row["accepted"] for row in result.history)
    assert result.best == result.history[0]["vector"]
    assert {row["best_fitness"] for row in result.history} == {11.35}
    # with a tie-break, the same walk's best is the lowest-"loss" vector it saw
    loss = {"x": 2.30, "y": 2.29, "z": 2.31}
    obj = lambda v: tiebreak_score(11.35, sum(loss[o] for o in v.values()) / 3)  # noqa: E731
    result = lahc(obj, ["a", "b", "c"], ["x", "y", "z"], SearchConfig(steps=30, seed=0), progress=False)
    seen = {tuple(r["vector"].values()) for r in result.history}
    best_seen = max(seen, key=lambda k: obj(dict(zip("abc", k))))
    assert tuple(result.best.values()) == best_seen
