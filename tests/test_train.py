"""Models, the training loop, and the cached pipeline steps, on the offline MNIST subset."""
import json
from dataclasses import replace

import pytest
import torch

from safs_lite import (
    TrainConfig,
    build_model,
    evaluate,
    load_data,
    magnitude_pruning,
    prune_model,
    sparsity_report,
    train,
    train_dense,
)
from safs_lite.method.activations import set_trainable_scales
from safs_lite.nets.models import check_compatible
from safs_lite.training.loop import make_optimizer


@pytest.fixture(scope="module")
def mnist():
    return load_data("mnist", quiet=True)  # conftest: offline -> the 5,000-image subset


def test_lenet5_shapes_and_named_sites():
    model = build_model("lenet5")
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert list(model.acts) == ["conv1", "conv2", "fc1", "fc2"]
    assert model.fc1.in_features == 256 and model.fc3.out_features == 10
    assert sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight")) == 44190


def test_build_model_errors_and_seeding():
    with pytest.raises(ValueError, match="unknown model 'resnet1'; valid: lenet5"):
        build_model("resnet1")
    a, b = build_model("lenet5", seed=3), build_model("lenet5", seed=3)
    assert torch.equal(a.conv1.weight, b.conv1.weight)
    with pytest.raises(ValueError, match="expects images of shape"):
        check_compatible(a, (3, 32, 32), "lenet5")


def test_training_learns_and_is_reproducible(mnist):
    cfg = TrainConfig(epochs=3, seed=0)
    m1 = build_model("lenet5", seed=0)
    h1 = train(m1, mnist, cfg, progress=False)
    m2 = build_model("lenet5", seed=0)
    h2 = train(m2, mnist, cfg, progress=False)
    assert [r["val_acc"] for r in h1] == [r["val_acc"] for r in h2]
    assert all(torch.equal(p, q) for p, q in zip(m1.state_dict().values(), m2.state_dict().values())
               if torch.is_tensor(p))
    assert h1[-1]["train_loss"] < h1[0]["train_loss"]
    assert evaluate(m1, mnist, "val")["accuracy"] > 50.0  # chance is 10%
    assert set(h1[0]) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"}


def test_best_validation_epoch_is_restored(mnist):
    model = build_model("lenet5", seed=1)
    hist = train(model, mnist, TrainConfig(epochs=4, lr=3e-2, seed=1), progress=False)
    assert evaluate(model, mnist, "val")["accuracy"] == pytest.approx(max(r["val_acc"] for r in hist))


def test_activation_scales_get_their_own_group_without_weight_decay():
    model = set_trainable_scales(build_model("lenet5"), True)
    opt = make_optimizer(model, TrainConfig(weight_decay=1e-3))
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-3, 0.0]
    assert len(opt.param_groups[1]["params"]) == 8  # alpha and beta of 4 sites
    assert len(make_optimizer(build_model("lenet5"), TrainConfig()).param_groups) == 1  # frozen: none


def test_bad_train_config_is_rejected():
    with pytest.raises(ValueError, match="unknown optimizer 'lion'; valid: sgd, adam, adamw"):
        TrainConfig(optimizer="lion")
    with pytest.raises(ValueError, match="unknown scheduler"):
        TrainConfig(scheduler="linear")


def test_fine_tuning_a_pruned_model_keeps_pruned_weights_zero(mnist):
    """Pruned weights stay exactly zero through fine-tuning."""
    model = prune_model(build_model("lenet5", seed=0), 0.9)
    zero = {n: (m.weight_mask == 0) for n, m in model.named_modules() if hasattr(m, "weight_mask")}
    train(model, mnist, TrainConfig(epochs=2, seed=0), progress=False)
    for n, m in model.named_modules():
        if n in zero:
            assert (m.weight_orig * m.weight_mask)[zero[n]].abs().max() == 0
    assert sparsity_report(model)["conv2"] == pytest.approx(0.9, abs=1 / 2400)


def test_train_dense_is_cached_and_reloaded(mnist, tmp_path):
    cfg = TrainConfig(epochs=2, seed=0)
    m1, r1 = train_dense("lenet5", mnist, cfg, runs=tmp_path, progress=False)
    folders = list(tmp_path.iterdir())
    assert len(folders) == 1 and (folders[0] / "config.json").exists()
    m2, r2 = train_dense("lenet5", mnist, cfg, runs=tmp_path, progress=False)
    assert r1["test_accuracy"] == r2["test_accuracy"]
    assert evaluate(m2, mnist, "test")["accuracy"] == pytest.approx(r1["test_accuracy"])
    assert r1["environment"]["torch"] == torch.__version__
    # a corrupt record is a one-line error, not a traceback from json
    (folders[0] / "record.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt results file") as err:
        train_dense("lenet5", mnist, cfg, runs=tmp_path, progress=False)
    assert "\n" not in str(err.value)


def test_magnitude_pruning_step(mnist, tmp_path):
    dense, _ = train_dense("lenet5", mnist, TrainConfig(epochs=2, seed=0), runs=tmp_path, progress=False)
    pruned, rec = magnitude_pruning(dense, mnist, 0.9, "global", TrainConfig(epochs=1), runs=tmp_path,
                                    progress=False)
    assert rec["sparsity"]["overall"] == pytest.approx(0.9, abs=1e-4)
    assert not hasattr(dense.conv1, "weight_mask")  # the dense model is untouched
    again, rec2 = magnitude_pruning(dense, mnist, 0.9, "global", TrainConfig(epochs=1), runs=tmp_path,
                                    progress=False)
    assert rec2["test_accuracy"] == rec["test_accuracy"]
    assert evaluate(again, mnist, "test")["accuracy"] == pytest.approx(rec["test_accuracy"])
    saved = json.loads(next(tmp_path.glob("magnitude-*/record.json")).read_text())
    assert saved["config"]["method"] == "global" and saved["config"]["sparsity"] == 0.9


def test_bad_budgets_and_class_counts_are_one_line():
    """Issue 22, item 11: build_model(num_classes=0) and presets with impossible budgets were accepted."""
    from safs_lite.run.config import PRESETS

    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match=f"num_classes must be an integer >= 2.*got {bad!r}"):
            build_model("lenet5", num_classes=bad)
    ok = PRESETS["smoke"]
    cases = [(dict(dense_epochs=0), "Preset dense_epochs must be an integer >= 1, got 0"),
             (dict(hpo_trials=0), "Preset hpo_trials must be an integer >= 1, got 0"),
             (dict(lahc_steps=-1), "Preset lahc_steps must be an integer >= 0, got -1"),
             (dict(trial_subset=0), r"Preset trial_subset must be an integer >= 1 or None \(every image\), got 0"),
             (dict(candidate_lr=0.0), "Preset candidate_lr must be a number > 0 or None")]
    for change, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            replace(ok, **change)
        assert "\n" not in str(err.value)
