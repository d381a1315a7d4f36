"""Tests of `safs_lite.search`: SAFS on a network and data of your own, through the same pipeline as run_safs."""
import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from safs_lite import (
    Data,
    SAFSConfig,
    get_activations,
    load_data,
    load_safs_model,
    masks,
    run_safs,
    search,
    train_dense,
)
from safs_lite.method.pruning import prunable_layers
from safs_lite.run.baselines import DEFAULT_BASELINES
from safs_lite.run.config import PRESETS, TRAIN_DEFAULTS


class MixedMLP(nn.Module):
    """A small classifier with a module activation and functional ones (what make_searchable must find)."""

    def __init__(self, n_in=16, n_classes=3):
        super().__init__()
        self.fc1 = nn.Linear(n_in, 32)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(32, 32)
        self.out = nn.Linear(32, n_classes)

    def forward(self, x):
        x = self.act1(self.fc1(x.flatten(1)))
        x = F.gelu(self.fc2(x))
        return self.out(x)


def blobs(n, seed, n_in=16, n_classes=3):
    """Three Gaussian blobs in 16 dimensions: learnable in a few epochs, not at once."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, n_in, generator=torch.Generator().manual_seed(99)) * 1.5
    y = torch.randint(0, n_classes, (n,), generator=g)
    return centres[y] + torch.randn(n, n_in, generator=g), y


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """One smoke SAFS run of MixedMLP on blob data, trained densely first."""
    data = Data.from_tensors(blobs(600, 0), blobs(200, 1), seed=0, name="blobs")
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("own") / "run"
    found = search(MixedMLP(), data, sparsity=0.8, pruning="global", preset="smoke", out=out, train_dense=True,
                   progress=False)
    return data, found, out


def test_search_runs_the_whole_pipeline_on_a_network_of_ones_own(own):
    data, found, out = own
    saved = json.loads((out / "results.json").read_text())
    assert saved["test_accuracy"] == found.results["test_accuracy"]
    assert set(found.test_accuracy) == {"dense", "magnitude_pruning", "stage1", "stage2", "safs"}
    assert saved["config"]["model"] == "MixedMLP" and saved["data"]["signature"] == data.signature
    # The sites follow the module path, the functional gelu included; the found operators are the model's.
    assert list(found.activations) == list(found.results["activations"]["safs"])
    assert found.activations == found.results["activations"]["safs"]
    assert len(found.activations) == 2
    # The dense network learned (blobs are separable), and the final model reproduces its recorded accuracy.
    assert found.test_accuracy["dense"] > 60
    from safs_lite import evaluate
    assert evaluate(found.model, data, "test")["accuracy"] == pytest.approx(found.test_accuracy["safs"])


def test_search_result_is_sparse_with_pruned_weights_exactly_zero(own):
    _, found, _ = own
    layers = prunable_layers(found.model)
    assert set(masks(found.model)) == set(layers) == {"fc1", "fc2", "out"}
    zeros = sum(int((m.weight_orig * m.weight_mask == 0).sum()) for m in layers.values())
    total = sum(m.weight_orig.numel() for m in layers.values())
    assert zeros / total == pytest.approx(0.8, abs=0.01)
    for m in layers.values():  # the weights the network computes with are zero wherever the mask is
        assert torch.all(m.weight[m.weight_mask == 0] == 0)


def test_search_resumes_and_needs_the_network_to_reload(own):
    data, found, out = own
    again = search(MixedMLP(), data, sparsity=0.8, pruning="global", preset="smoke", out=out, train_dense=True,
                   progress=False)  # same seed, same init: the same key, every stage loaded
    assert again.results["test_accuracy"] == found.results["test_accuracy"]
    with pytest.raises(ValueError, match="network of your own.*pass an instance"):
        load_safs_model(out)
    reloaded = load_safs_model(out, model=MixedMLP())
    assert get_activations(reloaded) == found.activations
    x, _ = next(data.batches("test", batch_size=64))
    assert torch.equal(reloaded.eval()(x), found.model.eval()(x))


def test_search_never_reuses_a_folder_made_with_other_data(own):
    data, _, out = own
    other = Data.from_tensors(blobs(600, 5), blobs(200, 1), seed=0, name="blobs")
    with pytest.raises(ValueError, match=r"holds a run with another key \(.*data"):
        search(MixedMLP(), other, sparsity=0.8, pruning="global", preset="smoke", out=out, train_dense=True,
               progress=False)


def test_builtin_model_through_search_gives_run_safs_numbers(tmp_path, monkeypatch):
    """One code path: LeNet-5 given as an object to `search` scores exactly as `run_safs` by name."""
    monkeypatch.setitem(PRESETS, "tiny", replace(PRESETS["smoke"], lahc_steps=2, hpo_trials=2, trial_epochs=1))
    cfg = SAFSConfig(sparsity=0.9, pruning="layerwise", preset="tiny", seed=0)
    by_name = run_safs(cfg, out=tmp_path / "by_name", progress=False)
    data = load_data("mnist", seed=0)
    base = replace(TRAIN_DEFAULTS["lenet5"], seed=0)
    dense, _ = train_dense("lenet5", data, replace(base, epochs=PRESETS["tiny"].dense_epochs), progress=False)
    by_object = search(dense, data, sparsity=0.9, pruning="layerwise", preset="tiny", out=tmp_path / "by_object",
                       train=TRAIN_DEFAULTS["lenet5"], progress=False)
    assert by_object.results["test_accuracy"] == by_name["test_accuracy"]
    assert by_object.results["activations"] == by_name["activations"]


def test_search_rejects_bad_input_in_one_line(own):
    data, _, _ = own
    cases = [
        (dict(model="not a model"), "model must be a torch.nn.Module, got str"),
        (dict(data=[1, 2]), "data must be a safs_lite.Data"),
        (dict(model=MixedMLP(n_classes=5)), r"returned \(2, 5\).*\(N, 3\)"),
        (dict(model=MixedMLP(n_in=7)), r"cannot take this data's inputs of shape \(16,\)"),
        (dict(sparsity=1.5), "sparsity must be in"),
        (dict(pruning="random"), "unknown pruning method 'random'"),
        (dict(preset="huge"), "unknown preset 'huge'"),
        (dict(model=nn.Sequential(nn.Flatten(), nn.Linear(16, 3))), "make_searchable"),
    ]
    for change, message in cases:
        kwargs = dict(model=MixedMLP(), data=data, sparsity=0.8, preset="smoke", progress=False) | change
        with pytest.raises(ValueError, match=message) as err:
            search(**kwargs)
        assert "\n" not in str(err.value)


def test_search_decides_on_validation_only(own, split_reads, tmp_path):
    """The test split is read only for reported numbers: never inside a candidate's or a trial's fine-tune."""
    data, _, _ = own
    search(MixedMLP(), data, sparsity=0.8, preset="smoke", out=tmp_path / "run", progress=False)
    assert any(inside for _, inside in split_reads)
    assert {s for s, inside in split_reads if inside} == {"train", "val"}
    # outside the decisions: dense (given, so read once), MP before and after, the three stages, the baselines
    assert sum(s == "test" for s, _ in split_reads) == 1 + 2 + 3 + len(DEFAULT_BASELINES)


def test_export_of_ones_own_network_is_checked_on_ones_own_data(own):
    from safs_lite.deploy.export import export_run
    from safs_lite.deploy.formats import load_exported

    data, found, out = own
    with pytest.raises(ValueError, match="data of your own.*pass it as data="):
        export_run(out, "onnx", model=MixedMLP())
    for fmt in ("onnx", "safetensors"):
        path, check = export_run(out, fmt, model=MixedMLP(), data=data, return_check=True)
        assert check.passed and check.predictions_agree == check.images == len(data.test)
    card = (path.parent / "model_card.md").read_text()
    assert "safs_lite.search(MixedMLP(), data, sparsity=0.8" in card
    assert all(f"| {site} | {op} |" in card for site, op in found.activations.items())
    x, _ = next(data.batches("test", batch_size=50))
    with pytest.raises(ValueError, match="network of your own: pass an instance"):
        load_exported(path)
    assert torch.allclose(load_exported(path, model=MixedMLP())(x), found.model.eval()(x), atol=1e-6)
    # the traced network cannot be pickled whole: a one-line error naming the formats that work
    with pytest.raises(ValueError, match="cannot be pickled whole.*onnx or safetensors"):
        export_run(out, "pt", model=MixedMLP(), data=data)


def test_check_of_ones_own_run_names_what_it_needs_then_passes(own):
    """Issue 22, item 11: `check` on a run of one's own network ended in "unknown dataset 'blobs'"."""
    from safs_lite.cli import main
    from safs_lite.run.check import check_run

    data, _, out = own
    [line] = check_run(out)
    assert "a run of a network of your own ('MixedMLP' on data 'blobs')" in line and "check_run(folder, model=" in line
    assert main(["check", str(out)]) == 1
    assert check_run(out, model=MixedMLP(), data=data) == []  # every stage model re-evaluated to its record


def test_search_warns_when_the_network_it_takes_as_trained_is_not(own, monkeypatch):
    """Issue 22, item 11: an untrained network scores near the majority class; search says so and names
    train_dense=True, and stays quiet for a trained one."""
    import warnings

    import safs_lite.run.safs
    from safs_lite import TrainConfig, train

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop()

    data, _, _ = own
    monkeypatch.setattr(safs_lite.run.safs, "run", stop)  # the warning comes before the pipeline
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match=r"near the .*% of always answering its most common class.*train_dense=True"):
        with pytest.raises(Stop):
            search(MixedMLP(), data, sparsity=0.8, preset="smoke", progress=False)
    torch.manual_seed(0)
    trained = MixedMLP()
    train(trained, data, TrainConfig(epochs=5, batch_size=64), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        with pytest.raises(Stop):
            search(trained, data, sparsity=0.8, preset="smoke", progress=False)
