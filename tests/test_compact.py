"""The compact engine computes what the masked dense network computes: logits, loss, gradients, steps."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from safs_lite import TrainConfig, build_model, evaluate, make_searchable, prune_model, train
from safs_lite.data.core import Data
from safs_lite.method.activations import (
    ACTIVATIONS,
    Activation,
    activation_sites,
    set_activations,
    set_trainable_scales,
)
from safs_lite.method.pruning import clone, masks, prunable_layers
from safs_lite.training.compact import CompactNet, compact, engine_for, resolve_engine, unsupported
from safs_lite.training.loop import make_optimizer

SPARSITIES = (0.5, 0.9, 0.99, 0.999)
METHODS = ("layerwise", "global")


class MLP(nn.Module):
    """A plain multi-layer perceptron on 8x8 images, with library activation sites."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(64, 48), nn.Linear(48, 32), nn.Linear(32, 10)
        self.acts = nn.ModuleDict({"fc1": Activation(), "fc2": Activation()})

    def forward(self, x):
        x = self.acts["fc1"](self.fc1(x.flatten(1)))
        return self.fc3(self.acts["fc2"](self.fc2(x)))


class FunctionalMLP(nn.Module):
    """An MLP with functional activations, made searchable by fx (a GraphModule subclass)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(64, 40), nn.Linear(40, 10)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(torch.flatten(x, 1))))


class Residual(nn.Module):
    """A tiny residual block: not a chain, so the compact engine must refuse it."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(16, 16), nn.Linear(16, 4), Activation()

    def forward(self, x):
        return self.fc2(x + self.act(self.fc1(x)))


def inputs(shape, batch=6, seed=0):
    """Images with exact zeros and large values, so ReLU zeros and relu6/hardtanh saturation tie in pooling."""
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, *shape, generator=gen) * 3 - 1).clamp(min=0)
    return x, torch.randint(0, 10, (batch,), generator=gen)


def random_scales(model, seed):
    """Trainable alpha/beta away from 1 (and of both signs for beta), so their gradients are exercised;
    for an even seed, frozen at 1 (the stage-1 setting, where the engine skips the scaling)."""
    if seed % 2 == 0:
        return model
    gen = torch.Generator().manual_seed(seed)
    set_trainable_scales(model, True)
    with torch.no_grad():
        for act in activation_sites(model).values():
            act.alpha.fill_(0.5 + torch.rand((), generator=gen).item())
            act.beta.fill_(torch.empty(()).uniform_(-1.5, 1.5, generator=gen).item())
    return model


def grads(model, run, x, y):
    """(logits, loss, {name: grad or None}) of one forward/backward through `run`."""
    model.zero_grad(set_to_none=True)
    out = run(x)
    loss = F.cross_entropy(out, y)
    loss.backward()
    return out.detach(), loss.detach(), {n: None if p.grad is None else p.grad.clone()
                                         for n, p in model.named_parameters()}


def assert_close(actual, expected, what):
    """Equal within 1e-5 relative, with an absolute floor of 1e-6 plus 1e-5 of the tensor's largest
    magnitude: float sums in another order differ by a few ulps of their largest terms, and a
    gradient that sums a batch's worth of O(1e-1) terms to nearly zero (alpha's, beta's) keeps
    an error of about 1e-8 whatever its own size."""
    floor = 1e-6 + 1e-5 * float(expected.abs().max())
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=floor, msg=lambda m: f"{what}: {m}")


def assert_equivalent(model, x, y, label):
    """Logits, loss and every parameter's gradient (None-ness included) of both engines agree."""
    out_d, loss_d, g_d = grads(model, model, x, y)
    out_c, loss_c, g_c = grads(model, CompactNet(model), x, y)
    with torch.inference_mode():  # evaluation takes other kernels (max pooling without indices)
        assert_close(CompactNet(model)(x), model(x), f"{label} logits without autograd")
    assert_close(out_c, out_d, f"{label} logits")
    assert_close(loss_c, loss_d, f"{label} loss")
    for name in g_d:
        assert (g_c[name] is None) == (g_d[name] is None), f"{label} {name}: gradient None in one engine only"
        if g_d[name] is not None:
            assert_close(g_c[name], g_d[name], f"{label} grad {name}")
    for name, m in prunable_layers(model).items():  # pruned weights get exactly the dense gradient: zero
        if hasattr(m, "weight_mask"):
            assert torch.all(g_c[f"{name}.weight_orig"][m.weight_mask == 0] == 0), f"{label} {name}"


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_lenet5_every_operator_matches_dense(sparsity, method):
    x, y = inputs((1, 28, 28), seed=int(sparsity * 1000))
    base = prune_model(build_model("lenet5", seed=1), sparsity, method)
    for k, op in enumerate(ACTIVATIONS):
        model = random_scales(set_activations(clone(base), [op] * 4), seed=k)
        assert_equivalent(model, x, y, f"lenet5 {sparsity} {method} {op}")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_mlp_every_operator_matches_dense(sparsity, method):
    x, y = inputs((1, 8, 8), seed=int(sparsity * 1000))
    torch.manual_seed(2)
    base = prune_model(MLP(), sparsity, method)
    for k, op in enumerate(ACTIVATIONS):
        model = random_scales(set_activations(clone(base), [op, op]), seed=k)
        assert_equivalent(model, x, y, f"mlp {sparsity} {method} {op}")


def test_frozen_scales_get_no_gradient_in_either_engine():
    model = prune_model(build_model("lenet5", seed=0, activation="tanh"), 0.99)
    x, y = inputs((1, 28, 28))
    _, _, g = grads(model, CompactNet(model), x, y)
    assert all(g[n] is None for n in g if n.endswith(("alpha", "beta")))
    assert_equivalent(model, x, y, "frozen scales")


@pytest.mark.parametrize("sparsity", (0.5, 0.95))
def test_searchable_networks_match_dense(sparsity):
    torch.manual_seed(3)
    seq = make_searchable(nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)))
    fx_mlp = make_searchable(FunctionalMLP())
    x, y = inputs((1, 8, 8))
    for net in (seq, fx_mlp):
        assert unsupported(net) is None
        assert_equivalent(random_scales(prune_model(net, sparsity, "global"), 1), x, y, type(net).__name__)


@pytest.mark.parametrize("optimizer", ("adam", "adamw", "sgd"))
def test_optimizer_steps_move_both_engines_alike(optimizer):
    cfg = TrainConfig(optimizer=optimizer, lr=1e-2, weight_decay=1e-2)
    dense = random_scales(prune_model(build_model("lenet5", seed=4, activation="swish"), 0.99), 5)
    comp = clone(dense)
    runs = {"dense": (dense, dense), "compact": (comp, CompactNet(comp))}
    opts = {k: make_optimizer(m, cfg) for k, (m, _) in runs.items()}
    for step in range(3):
        x, y = inputs((1, 28, 28), seed=step)
        for k, (m, run) in runs.items():
            opts[k].zero_grad(set_to_none=True)
            F.cross_entropy(run(x), y).backward()
            opts[k].step()
    for (name, p), q in zip(dense.named_parameters(), comp.parameters()):
        assert_close(q.detach(), p.detach(), f"{optimizer} {name}")


def small_data(shape=(1, 28, 28), n=192, seed=0):
    gen = torch.Generator().manual_seed(seed)
    make = lambda k: (torch.rand(k, *shape, generator=gen), torch.randint(0, 10, (k,), generator=gen))  # noqa: E731
    return Data.from_tensors(make(n), make(64))


def test_train_with_either_engine_gives_the_same_history():
    data = small_data()
    pruned = prune_model(build_model("lenet5", seed=5), 0.9, "global")
    hists, models = {}, {}
    for engine in ("dense", "compact"):
        models[engine] = clone(pruned)
        evaluate(models[engine], data, engine=engine)  # a plan made under inference mode must serve training
        cfg = TrainConfig(epochs=2, batch_size=32, lr=3e-3, engine=engine, seed=1)
        hists[engine] = train(models[engine], data, cfg, progress=False)
    for a, b in zip(hists["dense"], hists["compact"]):
        for key in ("train_loss", "val_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), key
        assert abs(b["val_acc"] - a["val_acc"]) <= 100 / 64 + 1e-9  # at most one image flips on a near-tie
    for (name, p), q in zip(models["dense"].named_parameters(), models["compact"].parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)
    for name, mask in masks(models["compact"]).items():  # pruned weights stay exactly zero
        w = dict(models["compact"].named_modules())[name]
        assert torch.all((w.weight_orig * mask)[mask == 0] == 0)
        assert torch.count_nonzero(w.weight_orig.detach() * mask) <= int(mask.sum())
    acc = {e: evaluate(models["compact"], data, "val", engine=e)["accuracy"] for e in ("dense", "compact")}
    assert acc["dense"] == pytest.approx(acc["compact"], abs=100 / 64 + 1e-9)


def test_unsupported_models_fall_back_to_dense_with_one_notice(caplog):
    res = prune_model(Residual(), 0.5)
    assert "chain" in unsupported(res)
    with pytest.warns(UserWarning, match=r"compact engine: Residual is not supported .*dense engine"):
        assert engine_for(res, "compact") is res
    bn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 6 * 6, 10))
    assert "BatchNorm2d" in unsupported(bn)
    assert resolve_engine(prune_model(bn, 0.9), "auto") == "dense"
    with pytest.warns(UserWarning, match="BatchNorm2d"):
        train(bn, small_data((1, 8, 8), n=16), TrainConfig(epochs=1, engine="compact"), progress=False)
    with pytest.raises(ValueError, match="cannot run Residual"):
        CompactNet(res)


def test_engine_setting_is_validated_and_resolves_deterministically():
    with pytest.raises(ValueError, match=r"^unknown engine 'fast'; valid: dense, compact, auto$"):
        TrainConfig(engine="fast")
    with pytest.raises(ValueError, match="unknown engine"):
        evaluate(build_model("lenet5"), small_data(n=4), engine="sparse")
    assert dataclasses.asdict(TrainConfig(engine="compact"))["engine"] == "compact"  # part of every run key
    model = build_model("lenet5", seed=0)
    assert resolve_engine(model, "auto") == "dense"  # nothing pruned: nothing to skip
    assert resolve_engine(prune_model(clone(model), 0.5), "auto") == "dense"  # too little to skip
    assert resolve_engine(prune_model(clone(model), 0.5), "compact") == "compact"
    prune_model(model, 0.9)
    assert [resolve_engine(model, "auto") for _ in range(2)] == ["compact", "compact"]
    assert resolve_engine(model, "dense") == "dense"
    net = compact(model)
    assert compact(model) is net  # cached ...
    with torch.no_grad():
        model.conv1.weight_mask.zero_()  # ... until a mask changes
    assert compact(model) is not net


def test_constants_fold_exactly_when_whole_layers_are_cut():
    """conv2 keeps no weight: every later unit is a constant of the biases, alpha and beta."""
    model = random_scales(prune_model(build_model("lenet5", seed=6, activation="elu"), 0.5), 7)
    with torch.no_grad():
        model.conv2.weight_mask.zero_()
    x, y = inputs((1, 28, 28))
    out = CompactNet(model)(x)
    assert torch.equal(out, out[:1].expand_as(out))  # the same logits for every image
    assert_equivalent(model, x, y, "conv2 cut")
    deep = clone(model)
    with torch.no_grad():
        deep.fc3.weight_mask.zero_()
    assert_equivalent(deep, x, y, "fc3 cut")


@pytest.mark.parametrize("taps", (0.0, 1.0))
def test_dense_and_tap_convolutions_agree(taps, monkeypatch):
    """Both kernels a convolution may take (small dense conv2d, gathered taps) match the dense engine,
    on an unpruned network too (every unit live, no constants)."""
    monkeypatch.setattr("safs_lite.training.compact.TAPS_MAX_DENSITY", taps)
    x, y = inputs((1, 28, 28))
    for k, model in enumerate((build_model("lenet5", seed=7, activation="relu6"),
                               prune_model(build_model("lenet5", seed=7, activation="gelu"), 0.9))):
        assert_equivalent(random_scales(model, k), x, y, f"taps {taps} model {k}")


def test_engine_cache_does_not_keep_models_alive():
    import gc
    import weakref

    model = prune_model(build_model("lenet5"), 0.9)
    engine_for(model, "compact")(torch.zeros(2, 1, 28, 28))
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


class OddPooling(nn.Module):
    """3x3 convolutions on 28x28 images: 26 -> 13 and 11 -> 5 under 2x2 pooling (the last row and column of the
    second map lie outside every window), then a 3x3 pooling over 13 rows."""

    def __init__(self, pool2=2):
        super().__init__()
        self.conv1, self.conv2, self.act1, self.act2 = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 6, 3), nn.ReLU(), nn.ReLU()
        self.pool2 = pool2
        self.fc = nn.LazyLinear(10)

    def forward(self, x):
        x = F.max_pool2d(self.act1(self.conv1(x)), 2)
        x = F.max_pool2d(self.act2(self.conv2(x)), self.pool2)
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("pool2", (2, 3))
def test_pooling_that_does_not_divide_the_map_gets_exact_gradients(pool2, monkeypatch):
    # uninitialised memory made visible: every torch.empty_like is NaN (what reused memory may hold on any machine)
    monkeypatch.setattr(torch, "empty_like", lambda t, **kw: torch.full_like(t, float("nan"), **kw))
    torch.manual_seed(0)
    model = OddPooling(pool2)
    model(torch.rand(1, 1, 28, 28))  # materialise the lazy layer
    model = prune_model(model, 0.9, "global")
    x, y = inputs((1, 28, 28), batch=8)
    assert_equivalent(model, x, y, f"pool {pool2}")


def test_plan_work_counts_every_weight_of_an_unpruned_net_and_less_as_the_masks_keep_less():
    from safs_lite.training.compact import plan_work

    model = build_model("lenet5", seed=0)
    full = 6 * 25 * 24 * 24 + 16 * 6 * 25 * 8 * 8 + 120 * 256 + 84 * 120 + 10 * 84  # LeNet-5's multiply-adds
    prune_model(model, 0.0)
    work = plan_work(model, (1, 28, 28))
    assert work["dense"]["macs"] == work["compact"]["macs"] == full  # nothing pruned: the same work
    macs = [plan_work(prune_model(build_model("lenet5", seed=0), s), (1, 28, 28))["compact"]["macs"]
            for s in (0.5, 0.9, 0.99)]
    assert macs[0] > macs[1] > macs[2] and plan_work(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1)), (1, 4, 4)) \
        .startswith("0: only Conv2d without padding")


def test_auto_takes_the_engine_its_cost_model_predicts_faster(monkeypatch):
    from safs_lite.training import compact as C

    model = prune_model(build_model("lenet5", seed=0), 0.99)
    shape = (1, 28, 28)
    ratio = [C.predicted_ms(model, shape, b)["compact"] / C.predicted_ms(model, shape, b)["dense"] for b in (1, 256)]
    assert ratio[1] < ratio[0]  # per-step overheads weigh less in a large batch: the batch size enters the choice
    for cheap, expect in (("compact", "compact"), ("dense", "dense")):
        other = "dense" if cheap == "compact" else "compact"
        monkeypatch.setitem(C.AUTO_COST, cheap, {"step": 0.0, "mac": 0.0, "element": 0.0})
        monkeypatch.setitem(C.AUTO_COST, other, {"step": 1.0, "mac": 1.0, "element": 1.0})
        assert [resolve_engine(model, "auto", shape, b) for b in (1, 256)] == [expect, expect]
        assert (engine_for(model, "auto", shape, 256) is model) == (expect == "dense")
    assert resolve_engine(model, "auto") == "compact"  # no shape or batch given: the pruned-share rule
    assert resolve_engine(build_model("lenet5", seed=0), "auto", shape, 256) == "dense"  # nothing to skip
