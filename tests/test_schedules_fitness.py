"""LR schedules over a run's own length, Adam's betas, the stage-1 fitnesses and LAHC on ties."""
import math

import pytest
import torch

from safs_lite import TrainConfig, build_model, load_data, prune_model
from safs_lite.method.lahc import SearchConfig, lahc
from safs_lite.training.fitness import FITNESSES, candidate_fitness, check_fitness, score, tiebreak_score
from safs_lite.training.loop import SCHEDULERS, RunSchedule


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

    from safs_lite.run.hpo import suggest_config

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
    assert tiebreak_score(11.35, 12.0) > tiebreak_score(11.35, 15.0)  # large losses are still told apart
    assert tiebreak_score(11.35, float("inf")) < tiebreak_score(11.35, 1e6)  # non-finite: the worst loss


@pytest.mark.parametrize("n", [10_000, 50_000, 1_000_000])
def test_tiebreak_never_ranks_lower_accuracy_above_higher(n):
    """Issue 22, item 2: with a validation split above 10,000 images one image is worth less than the
    old loss term (up to 0.00999): tiebreak_score(10.004, 9.0) < tiebreak_score(10.000, 2.0)."""
    step = 100 / n
    for base in (0.0, 10.0, 99.0):
        for worse_loss, better_loss in ((9.0, 2.0), (float("inf"), 0.0), (1e9, 0.0)):
            assert tiebreak_score(base + step, worse_loss) > tiebreak_score(base, better_loss)
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


def _tiny(n_train=33, n_val=64, seed=0):
    from safs_lite import Data

    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(n_train + n_val, 1, 28, 28, generator=g), torch.randint(0, 10, (n_train + n_val,), generator=g)
    return Data.from_tensors((x[:n_train], y[:n_train]), (x[n_train:], y[n_train:]),
                             val=(x[n_train:], y[n_train:]))


def test_a_schedule_through_train_spans_exactly_the_batches_run():
    """Issue 22, item 10: 33 images in batches of 32 run one batch per epoch (a final 1-image batch is
    dropped), so a 4-epoch cosine spans 4 batches: the last batch runs at lr (1 + cos(3 pi / 4)) / 2."""
    from safs_lite.training.loop import train_batches

    hist = __import__("safs_lite").train(build_model("lenet5"), _tiny(), TrainConfig(
        epochs=4, lr=0.1, batch_size=32, scheduler="cosine", select="last"), progress=False)
    assert [row["lr"] for row in hist] == pytest.approx([0.1 * (1 + math.cos(math.pi * t / 4)) / 2
                                                         for t in range(4)])
    data = _tiny(n_train=65)
    for n, bs in ((33, 32), (65, 32), (64, 32), (1, 32), (5, 1), (2, 1)):
        split = __import__("safs_lite").Split(data.train.x[:n], data.train.y[:n])
        assert train_batches(n, bs) == len(list(data.batches(split, bs, train=True))), (n, bs)


def test_train_subset_must_be_a_positive_count():
    """Issue 22, item 11: train_subset=0 was a ZeroDivisionError deep in `train`."""
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match=f"train_subset must be an integer >= 1 or None .*got {bad!r}"):
            TrainConfig(train_subset=bad)


def _count_syncs(monkeypatch):
    """Count the kit's reads that make the host wait for the device (`.item()`, `bool()`, `float()`, `int()`
    called from safs_lite/training.py; torch's own, e.g. Adam's CPU step counter, are not device reads)."""
    import sys

    calls = []

    def spy(real):
        def read(self, *args, **kwargs):
            if sys._getframe(1).f_code.co_filename.endswith("safs_lite/training.py"):
                calls.append(sys._getframe(1).f_lineno)
            return real(self, *args, **kwargs)
        return read

    for name in ("item", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, spy(getattr(torch.Tensor, name)))
    return calls


@pytest.mark.parametrize("scheduler", ["constant", "plateau"])
def test_training_on_a_gpu_path_reads_the_device_a_few_times_per_epoch_not_per_batch(monkeypatch, scheduler):
    """Issue 22, item 6: the CUDA path (forced here on the CPU) checks the loss every SYNC_EVERY batches,
    not every batch, and `evaluate` reads its sums once."""
    import safs_lite.training.loop as tr

    monkeypatch.setattr(tr, "_sync_every", lambda device: 8, raising=False)
    data = _tiny(n_train=320)
    model = build_model("lenet5", seed=0)
    calls = _count_syncs(monkeypatch)
    tr.train(model, data, TrainConfig(epochs=2, batch_size=8, scheduler=scheduler, select="last"), progress=False)
    batches = 2 * 40
    assert len(calls) <= 2 * (40 // 8 + 4) + 10, len(calls)  # a few per check and per epoch, not per batch
    calls.clear()
    tr.evaluate(model, data, "val", batch_size=8)  # 8 batches
    assert len(calls) <= 2 and batches > 40


def test_a_non_finite_step_on_the_gpu_path_never_stays_in_the_weights(monkeypatch):
    """Issue 22, item 6: with checks every 4 batches, a NaN image in batch 6 of the first epoch stops
    training and the weights are those of the last check before it: finite, pruned ones exactly zero."""
    import safs_lite.training.loop as tr
    from safs_lite.method.pruning import masks

    monkeypatch.setattr(tr, "_sync_every", lambda device: 4, raising=False)
    data = _tiny(n_train=64)
    order = torch.randperm(64, generator=torch.Generator().manual_seed(0))  # the first epoch's order, seed 0
    data.train.x = data.train.x.clone()
    data.train.x[order[5 * 8]] = float("nan")  # first image of batch 6
    model = prune_model(build_model("lenet5", seed=0), 0.9)
    cfg = TrainConfig(epochs=1, batch_size=8, select="last")
    with pytest.raises(tr.NonFiniteLossError, match="epoch 1, batch 6"):
        tr.train(model, data, cfg, progress=False)
    state = model.state_dict()
    assert all(bool(torch.isfinite(v).all()) for v in state.values() if torch.is_tensor(v) and v.is_floating_point())
    for name, mask in masks(model).items():
        module = dict(model.named_modules())[name]
        assert bool(((module.weight_orig.detach() * mask)[mask == 0] == 0).all())  # NaN x 0 would be NaN
    assert not torch.equal(state["conv1.weight_orig"], build_model("lenet5", seed=0).state_dict()["conv1.weight"])


def test_a_step_that_overflows_the_weights_on_the_gpu_path_is_rolled_back(monkeypatch):
    """The GPU path's check also reads the weights: a step on a finite loss that makes them non-finite is never
    kept (nor copied as the state to roll back to)."""
    import safs_lite.training.loop as tr

    monkeypatch.setattr(tr, "_sync_every", lambda device: 4, raising=False)
    model = build_model("lenet5", seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items() if torch.is_tensor(v)}
    real, steps = torch.optim.Adam.step, []

    def overflowing(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        steps.append(1)
        if len(steps) == 4:  # the last step before the first check: every loss so far was finite
            with torch.no_grad():
                model.fc2.bias.fill_(float("inf"))  # as if the step overflowed
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", overflowing)
    with pytest.raises(tr.NonFiniteLossError, match=r"non-finite weights at epoch 1 \(the loss stayed finite\)"):
        tr.train(model, _tiny(n_train=64), TrainConfig(epochs=1, batch_size=8, select="last"), progress=False)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # the state before training
