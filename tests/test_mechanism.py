"""Disconnected versus dead units and collapse, on hand-built networks whose answers are known; the gain figure."""
import matplotlib

matplotlib.use("Agg")  # no display in tests

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from safs_lite import build_model, prune_model  # noqa: E402
from safs_lite.method.activations import Activation, set_activations  # noqa: E402
from safs_lite.study.plots import plot_gain_vs_baseline  # noqa: E402
from safs_lite.teach.mechanism import alive_units, collapse, collapsed_accuracy, mechanism_table, output_connected


def tiny(op="relu"):
    """3 inputs -> 4 -> 3 -> 2 logits, masks and weights set by hand (inputs are in [0, 1]).

    Layer "0": unit 0 reads input 0 (+1, bias 0): connected, alive under ReLU;
               unit 1 has no kept weight, bias +1: cut from the input, alive (constant 1);
               unit 2 reads input 1 (-1, bias -0.5): connected, pre-activation always < 0: dead under ReLU;
               unit 3 has no kept weight, bias -1: cut from the input and dead under ReLU; nothing reads it.
    Layer "2": unit 0 reads units 0 and 2 (bias 0.1); unit 1 reads unit 1; unit 2 reads nothing (bias -1).
    Layer "4": logit 0 reads unit 0, logit 1 reads unit 1.
    """
    model = nn.Sequential(nn.Linear(3, 4), Activation(op), nn.Linear(4, 3), Activation(op), nn.Linear(3, 2))
    prune_model(model, 0.0)
    with torch.no_grad():
        for m in (model[0], model[2], model[4]):
            m.weight_mask.zero_()
            m.weight_orig.fill_(1.0)
        model[0].weight_mask[0, 0] = model[0].weight_mask[2, 1] = 1
        model[0].weight_orig[2, 1] = -1.0
        model[0].bias.copy_(torch.tensor([0.0, 1.0, -0.5, -1.0]))
        model[2].weight_mask[0, 0] = model[2].weight_mask[0, 2] = model[2].weight_mask[1, 1] = 1
        model[2].bias.copy_(torch.tensor([0.1, 0.0, -1.0]))
        model[4].weight_mask[0, 0] = model[4].weight_mask[1, 1] = 1
    return model


X = torch.rand(64, 3)


def test_output_connectivity_is_the_reverse_pass():
    assert {k: v.tolist() for k, v in output_connected(tiny()).items()} == {
        "0": [True, True, True, False], "2": [True, True, False], "4": [True, True]}


def test_tiny_network_table_under_relu_by_hand():
    t = mechanism_table({"relu": tiny()}, X).set_index("layer")
    assert t.loc["0", ["units", "connected_in", "connected_out", "both"]].tolist() == [4, 2, 3, 2]
    # alive: units 0 and 1; dead: 2 (connected, negative everywhere) and 3 (cut off, negative bias)
    assert t.loc["0", ["alive", "dead", "dead_and_connected", "live_connected", "disconnected_alive"]].tolist() \
        == [2, 2, 1, 1, 1]
    # layer 2: unit 0 sees the input; unit 1 only the constant unit 1 (alive, disconnected); unit 2 dead
    assert t.loc["2", ["connected_in", "connected_out", "both", "alive", "dead", "disconnected_alive"]].tolist() \
        == [1, 2, 1, 2, 1, 1]
    assert t.loc["4", ["connected_in", "connected_out", "both"]].tolist() == [1, 2, 1]
    assert t.loc["4", ["alive", "dead"]].isna().all()  # the logits have no activation site


def test_the_same_mask_under_tanh_has_no_dead_unit_but_the_same_connectivity():
    t = mechanism_table({"relu": tiny(), "tanh": tiny("tanh")}, X)
    relu, tanh = (t[t["network"] == n].set_index("layer") for n in ("relu", "tanh"))
    cols = ["connected_in", "connected_out", "both"]
    assert relu[cols].equals(tanh[cols])
    assert tanh.loc[["0", "2"], "dead"].tolist() == [0, 0] and relu.loc[["0", "2"], "dead"].tolist() == [2, 1]


def test_alive_units_is_the_derivative_of_the_site_and_sees_alpha():
    model = tiny()
    assert {k: v.tolist() for k, v in alive_units(model, X).items()} == {
        "1": [True, True, False, False], "3": [True, True, False]}
    with torch.no_grad():
        model[1].alpha.fill_(0.0)  # alpha = 0: d site / d z = 0 everywhere, every unit of the site is dead
    assert not alive_units(model, X)["1"].any()


def test_lenet5_channels_map_through_the_flatten_and_a_dead_channel_is_found():
    model = prune_model(build_model("lenet5", seed=0), 0.0)
    with torch.no_grad():
        model.fc1.weight_mask.zero_()
        model.fc1.weight_mask[:, 5 * 16 + 7] = 1  # fc1 reads channel 5 only (features 80-95)
        model.conv1.bias[3] = -100.0                # conv1 channel 3 never fires under ReLU
    assert output_connected(model)["conv2"].nonzero().flatten().tolist() == [5]
    assert output_connected(model)["conv1"].all()  # conv2 is dense: every conv1 channel feeds channel 5
    x = torch.rand(16, 1, 28, 28)
    linear = set_activations(prune_model(build_model("lenet5", seed=0), 0.0), {s: "linear" for s in model.acts})
    t = mechanism_table({"relu": model, "linear": linear}, x)
    relu = t[t["network"] == "relu"].set_index("layer")
    assert relu.loc["conv2", ["connected_out", "both"]].tolist() == [1, 1]
    assert alive_units(model, x)["conv1"].tolist() == [True, True, True, False, True, True]
    assert t[t["network"] == "linear"]["dead"].dropna().sum() == 0  # slope 1 everywhere


def test_collapse_on_one_class_and_not_otherwise():
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    constant = nn.Linear(1, 3)
    with torch.no_grad():
        constant.weight.zero_()
        constant.bias.copy_(torch.tensor([0.0, 0.0, 1.0]))  # always class 2: accuracy = its share
    c = collapse(constant, torch.rand(10, 1), y, batch_size=3)
    assert c == {"accuracy": 50.0, "majority_share": 50.0, "predicted_classes": 1, "collapsed": True}
    perfect = nn.Linear(3, 3)
    with torch.no_grad():
        perfect.weight.copy_(torch.eye(3))
        perfect.bias.zero_()
    c = collapse(perfect, nn.functional.one_hot(y, 3).float(), y)
    assert c["accuracy"] == 100.0 and c["predicted_classes"] == 3 and not c["collapsed"]
    counts = torch.tensor([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])  # MNIST's test split
    labels = torch.repeat_interleave(torch.arange(10), counts)
    assert collapsed_accuracy(11.35, labels) and not collapsed_accuracy(11.4, labels)


def test_gain_figure_draws_one_point_per_seed(tmp_path):
    gains = [1.08, -3.93, 27.24, 5.0, 2.5, -1.0, 0.3]
    mp = [25.88, 40.46, 11.35, 30.0, 33.0, 45.0, 50.0]
    alloc = ["layerwise"] * 3 + ["erk"] * 4
    fig = plot_gain_vs_baseline(gains, mp, alloc, majority=11.35, path=tmp_path / "gain.png")
    ax = fig.axes[0]
    offsets = [c.get_offsets() for c in ax.collections]
    assert [len(o) for o in offsets] == [3, 4]
    points = np.concatenate(offsets)
    assert sorted(map(tuple, points.tolist())) == sorted(zip(mp, gains))
    assert [t.get_text() for t in ax.get_legend().get_texts()][:2] == ["layerwise (3 seeds)", "erk (4 seeds)"]
    assert (tmp_path / "gain.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="one value per seed each, got 2, 3 and 2"):
        plot_gain_vs_baseline([1, 2], [1, 2, 3])


def test_bad_chain_is_a_one_line_error():
    class Branch(nn.Module):  # 5 features cannot be read as 3 units
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(2, 3), nn.Linear(5, 2)

    with pytest.raises(ValueError, match="b: cannot map 5 inputs to 3 units of a"):
        output_connected(Branch())


def test_table_columns_are_nullable_integers():
    t = mechanism_table({"relu": tiny()}, X)
    assert all(str(t[c].dtype) == "Int64" for c in t.columns[2:]) and isinstance(t, pd.DataFrame)
