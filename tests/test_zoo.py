"""VGG-16, ResNet-18 and EfficientNet-B0: structure (torchvision as the oracle), sites, pruning, and
the other three rows of Table 1 end to end on tiny data in the real formats."""
import json
import os
import subprocess
import sys

import pytest
import torch
import torchvision
from test_data_formats import write_cifar10, write_imagenet16
from torch import nn

from safs_lite import (
    PRESETS,
    Activation,
    SAFSConfig,
    build_model,
    get_activations,
    load_safs_model,
    prune_model,
    run_safs,
    set_activations,
    sparsity_report,
)
from safs_lite.method.pruning import prunable_layers
from safs_lite.nets.models import check_compatible
from safs_lite.run.folders import default_out
from safs_lite.run.results import PAPER_TABLE1

RESNET_SITES = ["stem"] + [f"layer{s}_{b}_{ab}" for s in range(1, 5) for b in range(2) for ab in "ab"]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {"vgg16": build_model("vgg16", seed=0), "resnet18": build_model("resnet18", seed=0),
            "efficientnet_b0": build_model("efficientnet_b0", num_classes=1000, seed=0)}


def test_shapes_and_sites(models):
    x32 = torch.randn(2, 3, 32, 32)
    assert models["vgg16"](x32).shape == (2, 10)
    assert models["resnet18"](x32).shape == (2, 10)
    assert models["resnet18"](torch.randn(2, 3, 16, 16)).shape == (2, 10)  # any size
    eff = models["efficientnet_b0"]
    assert eff(torch.randn(2, 3, 16, 16)).shape == (2, 1000) and eff(x32).shape == (2, 1000)
    assert build_model("efficientnet_b0", num_classes=7).classifier[1].out_features == 7
    assert list(models["vgg16"].acts) == [f"conv{i}" for i in range(1, 14)]
    assert list(models["resnet18"].acts) == RESNET_SITES
    sites = list(eff.acts)
    assert len(sites) == 49 and sites[:5] == ["stem", "block0_dwise", "block0_se", "block1_expand", "block1_dwise"]
    assert sites[-1] == "head" and "block0_expand" not in sites  # block 0 has no expansion
    assert all(isinstance(a, Activation) for m in models.values() for a in m.acts.values())
    assert set(get_activations(eff).values()) == {"swish"}
    assert set(get_activations(models["vgg16"]).values()) == {"relu"}
    assert not any(isinstance(m, nn.SiLU) for m in eff.modules())  # every SiLU is now a searchable site


def _load_matching(dst: nn.Module, src_state: dict) -> None:
    """Copy tensors into dst in order (same architecture, other names)."""
    dst_state = dst.state_dict()
    assert len(dst_state) == len(src_state)
    dst.load_state_dict({k: v for k, v in zip(dst_state, src_state.values())})


def test_vgg16_is_the_16_layer_configuration(models):
    """Our conv stack equals torchvision's vgg16_bn features (configuration "D", 13 convs)."""
    ours = models["vgg16"].eval()
    ref = torchvision.models.vgg16_bn(weights=None).features.eval()
    state = {k: v for k, v in ours.state_dict().items() if not k.startswith(("acts.", "fc."))}
    _load_matching(ref, state)
    feats = {}
    ours.fc.register_forward_pre_hook(lambda m, inp: feats.update(x=inp[0]))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours(x)
        assert torch.allclose(feats["x"], ref(x).flatten(1), atol=1e-5)
    assert sum(isinstance(m, nn.Conv2d) for m in ours.modules()) == 13


def test_resnet_block_is_torchvision_basic_block(models):
    """Activation after the residual addition, none on the shortcut: torchvision's BasicBlock as the oracle."""
    from torchvision.models.resnet import BasicBlock

    net = models["resnet18"].eval()
    ours = net.layer2[0]  # 64 -> 128, stride 2: has a projection shortcut
    ref = BasicBlock(64, 128, 2, downsample=nn.Sequential(nn.Conv2d(64, 128, 1, 2, bias=False),
                                                          nn.BatchNorm2d(128))).eval()
    _load_matching(ref, ours.state_dict())
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        assert torch.allclose(ours(x, net.acts["layer2_0_a"], net.acts["layer2_0_b"]), ref(x), atol=1e-6)
    assert not any(isinstance(m, Activation) for m in ours.shortcut.modules())


def test_resnet_sites_run_once_each_and_the_second_takes_the_sum(models):
    net = models["resnet18"].eval()
    calls, seen = [], {}
    hooks = [a.register_forward_pre_hook(lambda m, inp, s=s: calls.append(s)) for s, a in net.acts.items()]
    block = net.layer3[0]
    hooks += [net.acts["layer3_0_b"].register_forward_pre_hook(lambda m, inp: seen.update(act=inp[0])),
              block.bn2.register_forward_hook(lambda m, i, out: seen.update(main=out)),
              block.shortcut.register_forward_hook(lambda m, i, out: seen.update(short=out))]
    with torch.no_grad():
        net(torch.randn(2, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert calls == RESNET_SITES
    assert torch.allclose(seen["act"], seen["main"] + seen["short"])


def test_efficientnet_equals_torchvision_with_a_stride_1_stem(models):
    ours = models["efficientnet_b0"].eval()
    ref = torchvision.models.efficientnet_b0(weights=None, num_classes=1000)
    ref.features[0][0].stride = (1, 1)
    ref.load_state_dict({k: v for k, v in ours.state_dict().items() if not k.startswith("acts.")
                         and not k.endswith((".alpha", ".beta", "_extra_state"))})
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref.eval()(x), atol=1e-5)
    # the sites are the very modules torchvision's forward calls
    assert ours.features[0][2] is ours.acts["stem"] and ours.features[8][2] is ours.acts["head"]
    assert ours.features[1][0].block[1].activation is ours.acts["block0_se"]


@pytest.mark.parametrize("name", ["vgg16", "resnet18", "efficientnet_b0"])
def test_set_activations_changes_the_forward(models, name):
    model = models[name].eval()
    x = torch.randn(2, 3, 32, 32)
    first = next(iter(model.acts))
    with torch.no_grad():
        before = model(x)
        set_activations(model, {first: "tanh"})
        after = model(x)
    assert get_activations(model)[first] == "tanh"
    assert not torch.equal(before, after)  # the site is the module the forward calls
    set_activations(model, {s: "swish" if name == "efficientnet_b0" else "relu" for s in model.acts})


def test_layerwise_pruning_covers_every_conv_and_linear():
    expect = {
        "vgg16": {f"conv{i}" for i in range(1, 14)} | {"fc"},
        "resnet18": {"conv1", "fc", "layer2.0.shortcut.0", "layer3.0.shortcut.0", "layer4.0.shortcut.0"}
        | {f"layer{s}.{b}.conv{c}" for s in range(1, 5) for b in range(2) for c in (1, 2)},
    }
    for name in ("vgg16", "resnet18", "efficientnet_b0"):
        model = build_model(name, seed=0)
        layers = prunable_layers(model)
        every = {n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
        assert set(layers) == every == expect.get(name, every)
        report = sparsity_report(prune_model(model, 0.99))
        assert all(abs(v - 0.99) < 0.005 for v in report.values()), report
    assert len(every) == 82  # EfficientNet-B0: 79 block convs (SE included), stem, head conv, classifier
    assert {"features.1.0.block.1.fc1", "features.1.0.block.1.fc2", "classifier.1"} <= every


def test_model_dataset_mismatch_is_one_line_before_training():
    with pytest.raises(ValueError) as err:
        check_compatible(build_model("vgg16"), (1, 28, 28), "vgg16")
    msg = str(err.value)
    assert "\n" not in msg and "(3, 32, 32)" in msg and "(1, 28, 28)" in msg
    with pytest.raises(ValueError, match=r"vgg16 expects images of shape \(3, 32, 32\).*\(3, 16, 16\)"):
        SAFSConfig(model="vgg16", dataset="imagenet16").validate()
    with pytest.raises(ValueError, match="resnet18 expects 3-channel images of any size"):
        SAFSConfig(model="resnet18", dataset="fashion_mnist").validate()
    with pytest.raises(ValueError, match="need a CUDA device"):
        run_safs(SAFSConfig(amp=True), device="cpu")


@pytest.mark.parametrize("args,message", [
    (("--model", "vgg16", "--dataset", "mnist"), "vgg16 expects images of shape (3, 32, 32) (C, H, W) but the "
                                                 "data has (1, 28, 28)"),
    (("--channels-last",), "--amp and --channels-last need a CUDA device (--device cuda); this run is on cpu"),
])
def test_cli_bad_input_is_one_line(args, message, tmp_path):
    r = subprocess.run([sys.executable, "-m", "safs_lite", "run", "--out", str(tmp_path / "x"), *args],
                       capture_output=True, text=True, env=dict(os.environ), timeout=300)
    lines = [line for line in r.stderr.strip().splitlines() if not line.startswith("safs_lite: full MNIST not found")]  # minus the data notice
    assert r.returncode == 2 and len(lines) == 1 and message in lines[0], r.stderr
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_device_options_are_recorded_only_when_on():
    """amp/channels_last join the config (and its hash) only when set, so older run folders keep their names."""
    plain = SAFSConfig(preset="cpu").full()
    assert "amp" not in plain and "channels_last" not in plain
    on = SAFSConfig(model="vgg16", dataset="cifar10", preset="paper", amp=True, channels_last=True)
    assert on.full()["amp"] is True and on.full()["channels_last"] is True
    assert default_out(on, data="cifar10-sig") != default_out(SAFSConfig(model="vgg16", dataset="cifar10",
                                                                          preset="paper"), data="cifar10-sig")
    assert on.full()["budgets"]["dense_epochs"] == PRESETS["paper"].dense_epochs == 200
    assert on.full()["train_defaults"]["optimizer"] == "sgd"


# ------------------------------------------------------------------ Table 1 rows end to end

ROWS = [("vgg16", "cifar10"), ("resnet18", "cifar10"), ("efficientnet_b0", "imagenet16")]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """20 training images (16 train + 4 validation) and 16 test images per dataset, in the real formats."""
    root = tmp_path_factory.mktemp("tiny_data")
    write_cifar10(root, per_batch=4, n_test=16)
    write_imagenet16(root, per_batch=2, n_val=16)
    return root


@pytest.mark.parametrize("model,dataset", ROWS)
def test_table1_row_runs_end_to_end(tiny_root, tmp_path, model, dataset):
    cfg = SAFSConfig(model=model, dataset=dataset, preset="smoke", seed=0)
    res = run_safs(cfg, out=tmp_path / "run", data_root=tiny_root, progress=False)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved == json.loads(json.dumps(res))
    assert set(res) == {"config", "test_accuracy", "val_accuracy", "baselines", "activations", "alpha_beta",
                        "sparsity", "seconds", "data", "kit", "environment"}
    assert (res["config"]["model"], res["config"]["dataset"]) == (model, dataset)
    assert set(res["test_accuracy"]) == {"dense", "magnitude_pruning", "stage1", "stage2", "safs"}
    assert all(0.0 <= v <= 100.0 for v in res["test_accuracy"].values())
    sites = list(build_model(model).acts)
    for ops in res["activations"].values():
        assert list(ops) == sites
    assert res["activations"]["safs"] == res["activations"]["stage1"]
    for ab in res["alpha_beta"].values():
        assert list(ab) == sites and all(len(v) == 2 for v in ab.values())
    assert res["sparsity"]["overall"] == pytest.approx(0.99, abs=1e-3)
    assert set(res["sparsity"]["per_layer"]) == set(prunable_layers(build_model(model)))
    assert set(res["seconds"]) == {"dense", "magnitude_pruning", "stage1", "stage2", "safs", "total",
                                   *(f"baseline_{n}" for n in res["baselines"])}
    assert (model, dataset) in PAPER_TABLE1
    net = load_safs_model(tmp_path / "run", "safs")  # rebuilt with the dataset's number of classes
    shape = (2, 3, 16, 16) if dataset == "imagenet16" else (2, 3, 32, 32)
    assert net.eval()(torch.zeros(shape)).shape == (2, 1000 if dataset == "imagenet16" else 10)
    assert get_activations(net) == res["activations"]["safs"]


def _tiny(root, dataset):
    from safs_lite import load_data

    return load_data(dataset, root=root, seed=0)


def test_same_seed_same_result_with_dropout_and_stochastic_depth(tiny_root):
    """EfficientNet-B0 draws random numbers in training (dropout, stochastic depth): still reproducible."""
    from safs_lite import TrainConfig, train

    data = _tiny(tiny_root, "imagenet16")
    states = []
    for _ in range(2):
        model = build_model("efficientnet_b0", num_classes=1000, seed=0)
        train(model, data, TrainConfig(epochs=2, optimizer="sgd", lr=0.1, seed=3, select="last"), progress=False)
        states.append(model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(states[0].values(), states[1].values()) if torch.is_tensor(a))


def test_mixed_precision_and_channels_last_loop(tiny_root, monkeypatch):
    """The CUDA branch of the training loop, with CPU bfloat16 autocast standing in for CUDA's."""
    import importlib

    from safs_lite import TrainConfig, evaluate, train

    train_mod = importlib.import_module("safs_lite.training.loop")  # the module; safs_lite.train is the function

    monkeypatch.setattr(train_mod, "_cuda_setup", lambda device: (
        lambda: torch.autocast("cpu", dtype=torch.bfloat16), torch.channels_last, torch.bfloat16))
    data = _tiny(tiny_root, "cifar10")
    model = prune_model(build_model("resnet18", seed=0), 0.9)
    history = train(model, data, TrainConfig(epochs=1, optimizer="sgd", seed=0), progress=False)
    assert history[-1]["train_loss"] == history[-1]["train_loss"] < float("inf")  # finite, not NaN
    assert model.conv1.weight_orig.is_contiguous(memory_format=torch.channels_last)
    assert 0.0 <= evaluate(model, data, "test")["accuracy"] <= 100.0
    assert sparsity_report(model)["overall"] == pytest.approx(0.9, abs=1e-3)  # masks hold under autocast
