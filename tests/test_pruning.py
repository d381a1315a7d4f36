"""Magnitude pruning by its properties (as open_lth tests it): exact fractions, thresholds, masks that hold."""
import pytest
import torch
import torch.nn.functional as F

from safs_lite import build_model, export, load_pruned, masks, prune_model, sparsity_report
from safs_lite.method.pruning import prunable_layers

SPARSITIES = [0.0, 0.5, 0.7, 0.9, 0.95, 0.98, 0.99]


def dense_weights(model):
    return {n: m.weight.detach().clone() for n, m in prunable_layers(model).items()}


@pytest.mark.parametrize("s", SPARSITIES)
def test_layerwise_sparsity_is_exact_per_layer_within_one_weight(s):
    model = prune_model(build_model("lenet5", seed=0), s, "layerwise")
    report = sparsity_report(model)
    assert set(report) == {"overall", "conv1", "conv2", "fc1", "fc2", "fc3"}
    for name, m in prunable_layers(model).items():
        n = m.weight.numel()
        assert abs(report[name] * n - s * n) <= 1.0, name


def test_layerwise_99_leaves_conv1_two_weights():
    model = prune_model(build_model("lenet5", seed=0), 0.99)
    kept = {n: int(m.sum()) for n, m in masks(model).items()}
    assert kept == {"conv1": 2, "conv2": 24, "fc1": 307, "fc2": 101, "fc3": 8}


@pytest.mark.parametrize("s", SPARSITIES)
def test_global_sparsity_is_exact_overall(s):
    model = prune_model(build_model("lenet5", seed=0), s, "global")
    total = sum(m.weight.numel() for m in prunable_layers(model).values())
    zeros = sum(int((m.weight == 0).sum()) for m in prunable_layers(model).values())
    assert zeros == round(s * total)
    assert sparsity_report(model)["overall"] == pytest.approx(zeros / total)


@pytest.mark.parametrize("method", ["layerwise", "global"])
def test_threshold_separates_kept_from_pruned(method):
    model = build_model("lenet5", seed=1)
    before = dense_weights(model)
    prune_model(model, 0.9, method)
    kept_min, pruned_max = {}, {}
    for name, mask in masks(model).items():
        w = before[name].abs()
        kept_min[name], pruned_max[name] = w[mask == 1].min(), w[mask == 0].max()
        if method == "layerwise":
            assert kept_min[name] >= pruned_max[name], name
    if method == "global":  # one threshold for the whole network
        assert min(kept_min.values()) >= max(pruned_max.values())


def test_kept_weights_keep_their_values():
    model = build_model("lenet5", seed=2)
    before = dense_weights(model)
    prune_model(model, 0.7)
    for name, m in prunable_layers(model).items():
        assert torch.equal(m.weight, before[name] * m.weight_mask)


@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
def test_pruned_weights_stay_exactly_zero_through_optimizer_steps(opt_name):
    """Pruned weights stay exactly zero through fine-tuning (with weight decay and momentum)."""
    torch.manual_seed(0)
    model = prune_model(build_model("lenet5", seed=0), 0.95, "global")
    before = {n: m.clone() for n, m in masks(model).items()}
    orig = {n: m.weight_orig.detach().clone() for n, m in prunable_layers(model).items()}
    params = model.parameters()
    opt = (torch.optim.Adam(params, 1e-2, weight_decay=5e-4) if opt_name == "adam"
           else torch.optim.SGD(params, 0.1, momentum=0.9, weight_decay=5e-4))
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    for _ in range(5):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model(x)  # refresh the masked weights
    for name, m in prunable_layers(model).items():
        assert torch.equal(masks(model)[name], before[name])  # masks never change
        assert (m.weight[before[name] == 0] == 0).all()       # pruned stay exactly 0
    kept_moved = [(m.weight_orig - orig[n])[before[n] == 1].abs().max() for n, m in prunable_layers(model).items()
                  if before[n].any()]
    assert max(kept_moved) > 0  # the kept weights did train
    assert sparsity_report(model)["overall"] == pytest.approx(0.95, abs=1e-4)


def test_export_makes_masks_permanent_and_keeps_zeros():
    model = prune_model(build_model("lenet5", seed=0), 0.9)
    out = export(model)
    keys = set(out.state_dict())
    assert not any(k.endswith(("_orig", "_mask")) for k in keys)
    assert sparsity_report(out) == sparsity_report(model)
    x = torch.randn(8, 1, 28, 28)
    assert torch.equal(out(x), model(x))
    fresh = build_model("lenet5")
    fresh.load_state_dict(out.state_dict())  # a plain model loads it
    assert sparsity_report(fresh)["overall"] == pytest.approx(sparsity_report(model)["overall"])


def test_load_pruned_round_trip():
    model = prune_model(build_model("lenet5", seed=0), 0.98, "global")
    fresh = load_pruned(build_model("lenet5", seed=5), model.state_dict())
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(fresh(x), model(x))
    assert {n: int(m.sum()) for n, m in masks(fresh).items()} == {n: int(m.sum()) for n, m in masks(model).items()}


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, "half"])
def test_sparsity_outside_range_is_rejected(bad):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        prune_model(build_model("lenet5"), bad)


def test_bad_method_and_double_pruning_are_rejected():
    with pytest.raises(ValueError, match="layerwise, global"):
        prune_model(build_model("lenet5"), 0.5, "random")
    model = prune_model(build_model("lenet5"), 0.5)
    with pytest.raises(ValueError, match="already pruned"):
        prune_model(model, 0.5)


def test_connected_units_follow_kept_weights_through_the_chain():
    from safs_lite.method.pruning import accuracy_ceiling, connected_units, input_connected

    model = prune_model(build_model("lenet5"), 0.0)  # masks attached, all ones
    with torch.no_grad():
        model.conv1.weight_mask.zero_()
        model.conv1.weight_mask[2, 0, 1, 1] = 1           # only filter 2 sees the image
        model.conv2.weight_mask[:, 2] = 0                  # nothing reads channel 2 ...
        model.conv2.weight_mask[5, 2, 0, 0] = 1            # ... except filter 5
        model.fc1.weight_mask.zero_()
        model.fc1.weight_mask[7, 5 * 16 + 3] = 1           # channel 5's features start at 5 * 4 * 4
        model.fc1.weight_mask[8, 4 * 16 + 3] = 1           # reads channel 4: unconnected
        model.fc3.weight_mask[:4] = 0                      # classes 0-3 get no input
    units = connected_units(model)
    assert units["conv1"].nonzero().flatten().tolist() == [2]
    assert units["conv2"].nonzero().flatten().tolist() == [5]
    assert units["fc1"].nonzero().flatten().tolist() == [7]
    assert input_connected(model) == {"conv1": 1, "conv2": 1, "fc1": 1, "fc2": 84, "fc3": 6}
    labels = torch.tensor([0] * 10 + [4] * 5 + [1] * 3)
    # connected classes (4-9) hold 5 images; of the rest, class 0's 10 can be the constant prediction
    assert accuracy_ceiling(model, labels) == pytest.approx(100 * 15 / 18)
    assert accuracy_ceiling(build_model("lenet5"), labels) == pytest.approx(100.0)


def test_a_loaded_pruned_model_shows_its_masked_weights_before_any_forward():
    """`weight` of a pruned layer is weight_orig * mask right after loading (torch refreshes it only in a forward;
    the compact engine never runs that hook)."""
    from safs_lite.method.pruning import load_pruned

    src = prune_model(build_model("lenet5", seed=0), 0.9)
    fresh = prune_model(build_model("lenet5", seed=1), 0.0)
    load_pruned(fresh, src.state_dict())
    for name, m in prunable_layers(fresh).items():
        assert torch.equal(m.weight, m.weight_orig * m.weight_mask), name
        assert (m.weight[m.weight_mask == 0] == 0).all()
