"""Layer allocations (layerwise, global, erk, protected) by their properties: the overall target is met, ERK
keeps small layers denser, the protected rule holds, masks hold through training, bad input is one line."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from safs_lite import build_model, masks, prune_model
from safs_lite.method.pruning import (
    PROTECTED_LAST_MAX,
    PRUNING_METHODS,
    _erk_quota,
    allocation_table,
    clone,
    kept_counts,
    layer_sparsities,
    prunable_layers,
)

TARGETS = [0.9, 0.95, 0.99, 0.995]


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))


MODELS = {"lenet5": lambda: build_model("lenet5", seed=0), "mlp": mlp}


def kept(model):
    return {n: int(m.sum()) for n, m in masks(model).items()}


def sizes(model):
    return {n: m.weight.numel() for n, m in prunable_layers(model).items()}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("s", TARGETS)
@pytest.mark.parametrize("method", ["global", "erk", "protected"])
def test_overall_sparsity_is_met_exactly(name, s, method):
    model = MODELS[name]()
    n = sizes(model)
    budget = round((1 - s) * sum(n.values()))
    first = next(iter(n.values()))
    if method == "protected" and (first > budget or name == "lenet5" and s == 0.995):
        with pytest.raises(ValueError, match=f"protected allocation cannot meet sparsity {s}") as err:
            prune_model(model, s, method)
        assert "\n" not in str(err.value)
        return
    prune_model(model, s, method)
    assert sum(kept(model).values()) == budget
    assert sum(int((m.weight == 0).sum()) for m in prunable_layers(model).values()) == sum(n.values()) - budget
    assert kept(model) == kept_counts(MODELS[name](), s, method)  # the planned counts are the pruned ones
    expected = {layer: 1 - k / n[layer] for layer, k in kept(model).items()}
    assert layer_sparsities(MODELS[name](), s, method) == pytest.approx(expected)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("s", TARGETS)
def test_layerwise_meets_the_target_within_one_weight_per_layer(name, s):
    model = prune_model(MODELS[name](), s, "layerwise")
    n = sizes(model)
    assert all(abs(k - (1 - s) * n[layer]) <= 1 for layer, k in kept(model).items())
    assert abs(sum(kept(model).values()) - (1 - s) * sum(n.values())) <= len(n)


@pytest.mark.parametrize("method", ["layerwise", "global"])
@pytest.mark.parametrize("s", [0.5, 0.9, 0.99])
def test_layerwise_and_global_masks_are_torch_prune_as_before(method, s):
    """The two existing allocations still call torch.nn.utils.prune exactly as they did."""
    model = build_model("lenet5", seed=3)
    reference = clone(model)
    layers = prunable_layers(reference)
    if method == "layerwise":
        for m in layers.values():
            prune.l1_unstructured(m, "weight", amount=s)
    else:
        prune.global_unstructured([(m, "weight") for m in layers.values()], pruning_method=prune.L1Unstructured,
                                  amount=s)
    got = masks(prune_model(model, s, method))
    assert all(torch.equal(got[n], m.weight_mask) for n, m in layers.items())


@pytest.mark.parametrize("s", TARGETS)
def test_erk_keeps_small_layers_denser(s):
    k, n = kept_counts(build_model("lenet5"), s, "erk"), sizes(build_model("lenet5"))
    density = {layer: k[layer] / n[layer] for layer in n}
    assert density["conv1"] > density["conv2"] > density["fc1"]
    assert density["fc3"] > density["fc2"] > density["fc1"]
    k = kept_counts(mlp(), s, "erk")
    assert k["4"] / 1000 > k["2"] / 30000 > k["0"] / 235200


def test_erk_density_is_proportional_to_sum_over_product_of_dims():
    """Every layer not kept dense gets density eps * (sum of its dims) / (product of its dims), within one
    weight of rounding; the LeNet-5 conv1 scale is (6 + 1 + 5 + 5) / (6 * 1 * 5 * 5)."""
    model = build_model("lenet5")
    k, n = kept_counts(model, 0.99, "erk"), sizes(model)
    shapes = {layer: m.weight.shape for layer, m in prunable_layers(model).items()}
    raw = {layer: sum(shapes[layer]) / math.prod(shapes[layer]) for layer in n}
    assert raw["conv1"] == pytest.approx(17 / 150)
    eps = sum(k.values()) / sum(raw[layer] * n[layer] for layer in n)  # no layer is dense at 99%
    for layer in n:
        assert abs(k[layer] - eps * raw[layer] * n[layer]) <= 1, layer


def test_erk_keeps_a_layer_dense_when_its_density_would_exceed_one_and_rescales_the_rest():
    """Hand-checked: a 2x2 and a 100x100 layer at 50%. Raw scales 1 and 0.02; eps = 5002 / 204 > 1, so the 2x2
    layer is kept dense (4 weights) and the other gets the remaining 4998 of 10000."""
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 100, bias=False), nn.Linear(100, 100))
    model.prunable = ("0", "2")
    assert kept_counts(model, (10004 - 5002) / 10004, "erk") == {"0": 4, "2": 4998}
    quota = _erk_quota({"a": 4, "b": 10000}, {"a": (2, 2), "b": (100, 100)}, 5002)
    assert quota == pytest.approx({"a": 4.0, "b": 4998.0})


def test_protected_rule_first_dense_last_capped_rest_common():
    model = build_model("lenet5", seed=0)
    k, n = kept_counts(model, 0.99, "protected"), sizes(model)
    assert k["conv1"] == n["conv1"]                                # first layer dense
    assert 1 - k["fc3"] / n["fc3"] <= PROTECTED_LAST_MAX          # last at most 80% sparse
    assert k["fc3"] == round((1 - PROTECTED_LAST_MAX) * n["fc3"])  # the cap binds at 99%
    middle = ("conv2", "fc1", "fc2")
    common = sum(k[m] for m in middle) / sum(n[m] for m in middle)
    assert all(abs(k[m] - common * n[m]) <= 1 for m in middle)     # one common sparsity, raised to meet 99%
    assert 1 - common > 0.99
    # at 50% the common sparsity stays below the cap, so the last layer shares it
    k = kept_counts(model, 0.5, "protected")
    rest = sum(k.values()) - n["conv1"]
    assert k["conv1"] == n["conv1"] and abs(k["fc3"] - rest / (sum(n.values()) - n["conv1"]) * n["fc3"]) <= 1


@pytest.mark.parametrize("method", ["erk", "protected"])
def test_pruned_weights_stay_exactly_zero_through_an_optimizer_step(method):
    torch.manual_seed(0)
    model = prune_model(build_model("lenet5", seed=0), 0.99, method)
    before = {n: m.clone() for n, m in masks(model).items()}
    opt = torch.optim.Adam(model.parameters(), 1e-2, weight_decay=5e-4)
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model(x)
    for name, m in prunable_layers(model).items():
        assert torch.equal(masks(model)[name], before[name])
        assert (m.weight[before[name] == 0] == 0).all() and (m.weight[before[name] == 1] != 0).any()


@pytest.mark.parametrize("call", [lambda m: prune_model(m, 0.9, "ERK"), lambda m: kept_counts(m, 0.9, "erk2"),
                                  lambda m: allocation_table(m, 0.9, ["uniform"])])
def test_bad_allocation_names_are_one_line_errors(call):
    with pytest.raises(ValueError) as err:
        call(build_model("lenet5"))
    assert "\n" not in str(err.value) and str(err.value).endswith("valid: layerwise, global, erk, protected")


def test_cli_offers_every_allocation():
    from safs_lite.cli import build_parser

    parser = build_parser()
    for command in ("demo", "run", "reproduce", "sweep"):
        sub = parser._subparsers._group_actions[0].choices[command]
        [action] = [a for a in sub._actions if "--pruning" in a.option_strings]
        assert all(m in action.help for m in PRUNING_METHODS), (command, action.help)
    assert parser.parse_args(["run", "--pruning", "erk"]).pruning == "erk"


def test_allocation_table_rows_match_pruning_and_ceilings():
    model = build_model("lenet5", seed=0)
    labels = torch.tensor([0] * 50 + [1] * 30 + list(range(10)) * 2)
    table = allocation_table(model, 0.995, labels=labels)
    assert list(table["allocation"].unique()) == ["layerwise", "global", "erk"]  # protected cannot reach 99.5%
    overall = table[table["layer"] == "overall"].set_index("allocation")
    assert overall["kept"].tolist() == [221, 221, 221]  # layerwise: 1 + 12 + 154 + 50 + 4, rounded per layer
    for method in ("erk", "layerwise"):
        rows = table[(table["allocation"] == method) & (table["layer"] != "overall")].set_index("layer")
        assert rows["kept"].to_dict() == kept_counts(model, 0.995, method)
    # global at initialisation empties conv2 and fc1 (their initial weights are the smallest): no class sees
    # the input, so only the largest class (52 of 100 images) can be predicted
    assert overall.loc["global", "ceiling"] == pytest.approx(52.0)
    assert overall.loc["erk", "ceiling"] > 52.0
    assert not masks(model)  # the model itself stays dense
