"""Tests for safs_lite.method.activations: operator formulas, numeric safety, Activation, registry, helpers."""

import math

import pytest
import torch
from torch import nn

from safs_lite.method.activations import (
    ACON_P1,
    ACON_P2,
    ACON_P3,
    ACTIVATIONS,
    SEARCH_SPACE,
    SRS_A,
    SRS_B,
    SYMEXP_CLAMP,
    TANHSOFT1_P,
    Activation,
    activation_sites,
    get_activations,
    get_alpha_beta,
    get_op,
    scale_parameters,
    set_activations,
    set_trainable_scales,
    srs,
)

# Grid with negatives, zero and positives, away from the kinks (relu6 at 6,
# hardswish at +-3) so finite differences stay meaningful.
GRID = torch.tensor([-30.0, -7.0, -3.5, -2.0, -1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0, 2.0, 3.5, 7.0, 30.0],
                    dtype=torch.float64)  # fmt: skip


def _sig(x):
    return 1.0 / (1.0 + torch.exp(-x))


def _softplus(x):
    # log(1 + e^x) written out; exact in float64 on GRID (|x| <= 30).
    return torch.log(1.0 + torch.exp(x))


SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805  # Klambauer et al. 2017

# Formulas written out independently of the module (float64).
REFERENCE = {
    "relu6": lambda x: torch.minimum(torch.maximum(x, torch.zeros_like(x)), torch.full_like(x, 6.0)),
    "hardswish": lambda x: x * torch.clamp(x + 3.0, 0.0, 6.0) / 6.0,
    "swish": lambda x: x / (1.0 + torch.exp(-x)),
    "tanhsoft1": lambda x: torch.tanh(TANHSOFT1_P * x) * _softplus(x),
    "acon": lambda x: (ACON_P1 - ACON_P2) * x * _sig(ACON_P3 * (ACON_P1 - ACON_P2) * x) + ACON_P2 * x,
    "gelu": lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0))),
    "srs": lambda x: x / (x / SRS_A + torch.exp(-x / SRS_B)),
    "elu": lambda x: torch.where(x > 0, x, torch.exp(x) - 1.0),
    "tanh": lambda x: (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x)),
    "softplus": _softplus,
    "logsigmoid": lambda x: -torch.log(1.0 + torch.exp(-x)),
    "symlog": lambda x: torch.sign(x) * torch.log(1.0 + torch.abs(x)),
    "symexp": lambda x: torch.sign(x) * (torch.exp(torch.clamp(torch.abs(x), max=SYMEXP_CLAMP)) - 1.0),
    "relu": lambda x: torch.where(x > 0, x, torch.zeros_like(x)),
    "linear": lambda x: x,
    "selu": lambda x: SELU_SCALE * torch.where(x > 0, x, SELU_ALPHA * (torch.exp(x) - 1.0)),
    "sigmoid": _sig,
    "mish": lambda x: x * torch.tanh(_softplus(x)),
    "hardtanh": lambda x: torch.clamp(x, -1.0, 1.0),
    "sin": lambda x: torch.sin(x),
    "cos": lambda x: torch.cos(x),
    "elish": lambda x: torch.where(x >= 0, x * _sig(x), (torch.exp(x) - 1.0) * _sig(x)),
}

# PyTorch's own implementation as a second oracle, where one exists.
TORCH_ORACLE = {
    "relu6": lambda x: torch.clamp(x, 0.0, 6.0),
    "hardswish": nn.Hardswish(),
    "swish": nn.SiLU(),
    "gelu": nn.GELU(),
    "elu": nn.ELU(),
    "tanh": nn.Tanh(),
    "softplus": lambda x: torch.log1p(torch.exp(x)),
    "logsigmoid": lambda x: torch.log(torch.sigmoid(x)),
    "relu": nn.ReLU(),
    "selu": nn.SELU(),
    "sigmoid": nn.Sigmoid(),
    "mish": nn.Mish(),
    "hardtanh": nn.Hardtanh(),
}


def test_every_operator_has_a_reference_formula():
    assert set(REFERENCE) == set(ACTIVATIONS)
    assert len(ACTIVATIONS) == 22


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_operator_matches_formula(name):
    got = get_op(name)(GRID)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, REFERENCE[name](GRID), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(TORCH_ORACLE))
def test_operator_matches_pytorch(name):
    torch.testing.assert_close(get_op(name)(GRID), TORCH_ORACLE[name](GRID), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_operator_gradient_matches_finite_differences(name):
    # float64 gradcheck away from every kink (0, +-1, +-3, 6): checks the stable rewrites.
    x = torch.tensor([-5.0, -2.0, -0.5, -0.1, 0.1, 0.5, 2.0, 4.5], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(get_op(name), (x,))


def test_acon_is_distinct_from_swish_and_identity():
    x = torch.linspace(-5, 5, 11, dtype=torch.float64)
    assert not torch.allclose(get_op("acon")(x), get_op("swish")(x))
    assert not torch.allclose(get_op("acon")(x), x)


def test_srs_with_paper_constants_and_pole_guard():
    x = GRID
    torch.testing.assert_close(srs(x, 2.0, 3.0), x / (x / 2.0 + torch.exp(-x / 3.0)))
    # a <= b/e puts a zero of the denominator at some x < 0: refused.
    with pytest.raises(ValueError, match="a > b/e"):
        srs(x, 1.0, 3.0)


def test_odd_operators_have_unit_slope_at_zero():
    # torch.sign(0) = 0 would give these a zero gradient at 0; the true slope is 1.
    for name in ("symlog", "symexp"):
        x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        get_op(name)(x).sum().backward()
        assert x.grad.item() == 1.0, name


SAFETY_POINTS = [-1e4, -100.0, -1.0, 0.0, 1.0, 100.0, 1e4]


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_operator_is_finite_in_float32(name):
    x = torch.tensor(SAFETY_POINTS, dtype=torch.float32, requires_grad=True)
    y = get_op(name)(x)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all(), y
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(grad).all(), grad


@pytest.mark.parametrize("name", ["symexp", "srs", "logsigmoid", "elish"])
def test_guarded_operators_stay_finite_inside_activation(name):
    # beta scales the input first: beta = 50 pushes 1e4 to 5e5.
    act = Activation(name, alpha=0.5, beta=50.0, trainable=True)
    x = torch.tensor(SAFETY_POINTS, requires_grad=True)
    y = act(x).sum()
    y.backward()
    assert torch.isfinite(y)
    for g in (x.grad, act.alpha.grad, act.beta.grad):
        assert torch.isfinite(g).all()


@pytest.mark.parametrize("name", ["relu", "swish", "tanh", "srs", "symexp", "acon"])
def test_activation_computes_alpha_op_beta_x(name):
    act = Activation(name, alpha=1.7, beta=-0.6)
    x = torch.linspace(-4, 4, 9)
    torch.testing.assert_close(act(x), 1.7 * get_op(name)(-0.6 * x))


@pytest.mark.parametrize("name", SEARCH_SPACE)
def test_activation_gradcheck_in_alpha_beta_and_x(name):
    act = Activation(name, alpha=1.3, beta=0.7, trainable=True).double()
    x = torch.tensor([-2.0, -0.4, 0.3, 1.1, 2.5], dtype=torch.float64, requires_grad=True)

    def f(x, alpha, beta):
        return torch.func.functional_call(act, {"alpha": alpha, "beta": beta}, (x,))

    assert torch.autograd.gradcheck(f, (x, act.alpha, act.beta))


def test_activation_analytic_scale_gradients():
    # f = alpha * tanh(beta x): df/dalpha = tanh(beta x), df/dbeta = alpha x (1 - tanh^2(beta x)).
    act = Activation("tanh", alpha=2.0, beta=0.5, trainable=True)
    x = torch.tensor([-1.0, 0.5, 2.0])
    act(x).sum().backward()
    t = torch.tanh(0.5 * x)
    torch.testing.assert_close(act.alpha.grad, t.sum())
    torch.testing.assert_close(act.beta.grad, (2.0 * x * (1 - t**2)).sum())


def test_frozen_and_trainable_switch():
    act = Activation("elu")
    assert not act.trainable
    assert not act.alpha.requires_grad and not act.beta.requires_grad
    assert isinstance(act.alpha, nn.Parameter) and act.alpha.dim() == 0
    assert act.alpha.item() == 1.0 and act.beta.item() == 1.0
    assert act.set_trainable(True) is act
    assert act.trainable and act.alpha.requires_grad and act.beta.requires_grad
    act.set_trainable(False)
    assert not act.trainable
    assert Activation("elu", trainable=True).trainable


def test_scales_are_in_state_dict_even_when_frozen():
    act = Activation("gelu", alpha=3.0, beta=0.25)
    sd = act.state_dict()
    assert set(sd) == {"alpha", "beta", "_extra_state"}
    assert sd["alpha"].item() == 3.0 and sd["beta"].item() == 0.25
    other = Activation("relu")
    other.load_state_dict(sd)  # the operator travels in the state_dict too
    assert other.alpha.item() == 3.0 and other.beta.item() == 0.25
    assert other.op_name == "gelu"


def test_set_op_and_repr():
    act = Activation("relu", alpha=2.0)
    assert act.op_name == "relu"
    assert act.set_op("symlog") is act
    assert act.op_name == "symlog"
    x = torch.tensor([-3.0, 3.0])
    torch.testing.assert_close(act(x), 2.0 * get_op("symlog")(x))
    with pytest.raises(ValueError, match="nope"):
        act.set_op("nope")
    with pytest.raises(ValueError):
        act.op_name = "ReLU"
    assert act.op_name == "symlog"
    assert "op='symlog'" in repr(act) and "alpha=2" in repr(act) and "beta=1" in repr(act)
    with pytest.raises(ValueError):
        Activation("nope")


def test_registry_and_search_space():
    assert SEARCH_SPACE == (
        "relu6", "hardswish", "swish", "tanhsoft1", "acon", "gelu", "srs",
        "elu", "tanh", "softplus", "logsigmoid", "symlog", "symexp",
    )  # fmt: skip
    assert "relu" not in SEARCH_SPACE and "relu" in ACTIVATIONS
    assert set(SEARCH_SPACE) <= set(ACTIVATIONS)
    assert all(name == name.lower() for name in ACTIVATIONS)
    assert get_op("tanh") is ACTIVATIONS["tanh"]


def test_get_op_unknown_lists_valid_names():
    with pytest.raises(ValueError) as info:
        get_op("nope")
    msg = str(info.value)
    assert "'nope'" in msg and "\n" not in msg
    assert all(name in msg for name in ACTIVATIONS)


class TinyNet(nn.Module):
    """Two conv-like and two fc-like sites, enough to exercise the helpers."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.acts = nn.ModuleDict({site: Activation() for site in ("conv1", "conv2", "fc1", "fc2")})

    def forward(self, x):
        for act in self.acts.values():
            x = act(self.fc(x))
        return x


def test_activation_sites_and_get_activations():
    net = TinyNet()
    sites = activation_sites(net)
    assert list(sites) == ["conv1", "conv2", "fc1", "fc2"]
    assert sites["fc1"] is net.acts["fc1"]
    assert get_activations(net) == dict.fromkeys(sites, "relu")


@pytest.mark.parametrize(
    "acts",
    [None, nn.ModuleList([Activation()]), nn.ModuleDict(), nn.ModuleDict({"a": nn.ReLU()})],
    ids=["missing", "not-moduledict", "empty", "wrong-type"],
)
def test_activation_sites_rejects_models_without_sites(acts):
    net = nn.Linear(2, 2)
    if acts is not None:
        net.acts = acts
    with pytest.raises(ValueError, match="acts|activation sites"):
        activation_sites(net)


def test_set_activations_dict_and_sequence():
    net = TinyNet()
    assert set_activations(net, {"conv2": "tanh", "fc2": "symexp"}) is net
    assert get_activations(net) == {"conv1": "relu", "conv2": "tanh", "fc1": "relu", "fc2": "symexp"}
    set_activations(net, ["elu", "gelu", "srs", "acon"])
    assert get_activations(net) == {"conv1": "elu", "conv2": "gelu", "fc1": "srs", "fc2": "acon"}
    set_activations(net, ("relu",) * 4)
    assert set(get_activations(net).values()) == {"relu"}
    x = torch.randn(3, 4)
    set_activations(net, ["linear"] * 4)
    y = x
    for _ in range(4):
        y = net.fc(y)
    torch.testing.assert_close(net(x), y)


@pytest.mark.parametrize(
    "ops, match",
    [
        ({"conv1": "tanh", "fc1": "nope"}, "unknown activation operator 'nope'"),
        (["tanh", "elu", "nope", "gelu"], "unknown activation operator 'nope'"),
        ({"conv1": "tanh", "conv9": "elu"}, "unknown activation site"),
        (["tanh", "elu"], "got 2 operators for 4"),
        (["tanh"] * 5, "got 5 operators for 4"),
        ([], "empty"),
        ({}, "empty"),
        ("tanh", "string"),
    ],
)
def test_set_activations_bad_input_leaves_model_unchanged(ops, match):
    net = TinyNet()
    set_activations(net, ["swish", "elu", "gelu", "tanh"])
    before = get_activations(net)
    with pytest.raises(ValueError, match=match) as info:
        set_activations(net, ops)
    assert "\n" not in str(info.value)
    assert get_activations(net) == before


def test_error_messages_name_what_is_valid():
    net = TinyNet()
    with pytest.raises(ValueError) as info:
        set_activations(net, {"conv9": "tanh"})
    assert all(site in str(info.value) for site in ("conv1", "conv2", "fc1", "fc2"))
    with pytest.raises(ValueError) as info:
        set_activations(net, ["tanh", "elu", "gelu", "bogus"])
    assert "symexp" in str(info.value)


def test_alpha_beta_helpers():
    net = TinyNet()
    assert get_alpha_beta(net) == dict.fromkeys(["conv1", "conv2", "fc1", "fc2"], (1.0, 1.0))
    params = scale_parameters(net)
    assert len(params) == 8 and all(isinstance(p, nn.Parameter) for p in params)
    assert params[0] is net.acts["conv1"].alpha and params[1] is net.acts["conv1"].beta
    assert {id(p) for p in params}.isdisjoint({id(p) for p in net.fc.parameters()})
    assert not any(p.requires_grad for p in params)
    assert set_trainable_scales(net, True) is net
    assert all(p.requires_grad for p in params)
    with torch.no_grad():
        net.acts["fc1"].alpha.fill_(2.5)
        net.acts["fc1"].beta.fill_(0.5)
    assert get_alpha_beta(net)["fc1"] == (2.5, 0.5)
    set_trainable_scales(net, False)
    assert not any(p.requires_grad for p in params)


def test_scale_parameters_get_their_own_optimizer_group():
    # The use the helper exists for: alpha/beta without weight decay, trained with the weights.
    net = TinyNet()
    set_activations(net, ["swish", "tanh", "elu", "gelu"])
    set_trainable_scales(net, True)
    scales = scale_parameters(net)
    scale_ids = {id(p) for p in scales}
    weights = [p for p in net.parameters() if id(p) not in scale_ids]
    opt = torch.optim.SGD([{"params": weights}, {"params": scales, "weight_decay": 0.0}], lr=0.1,
                          weight_decay=0.5)  # fmt: skip
    before = get_alpha_beta(net)
    net(torch.randn(8, 4)).pow(2).sum().backward()
    opt.step()
    after = get_alpha_beta(net)
    assert any(after[s] != before[s] for s in before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_every_operator_is_finite_with_finite_gradients_in_every_dtype(dtype):
    """All 22 operators, on [-1e4, 1e4] and densely near 0, in the dtypes mixed precision uses."""
    from safs_lite.method.activations import ACTIVATIONS

    grid = torch.cat([torch.linspace(-1e4, 1e4, 2001), torch.linspace(-30, 30, 601)])
    bad = []
    for name, op in ACTIVATIONS.items():
        x = grid.to(dtype).requires_grad_(True)
        y = op(x)
        y.float().sum().backward()
        if not (torch.isfinite(y).all() and torch.isfinite(x.grad).all()):
            bad.append(name)
    assert len(ACTIVATIONS) == 22 and bad == []
