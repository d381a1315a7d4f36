"""Tests for safs_lite.nets.searchable: automatic activation sites on any nn.Module."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v3_small, resnet18

from safs_lite import make_searchable, unsupported_activations
from safs_lite.method.activations import (
    Activation,
    activation_sites,
    get_activations,
    get_alpha_beta,
    set_activations,
    set_trainable_scales,
)
from safs_lite.method.pruning import load_pruned, masks, prune_model
from safs_lite.nets.models import build_model


class MixedMLP(nn.Module):
    """Module and functional activations, a module called twice and an unsupported PReLU."""

    def __init__(self):
        super().__init__()
        self.fc = nn.ModuleList(nn.Linear(8, 8) for _ in range(7))
        self.relu = nn.ReLU()
        self.gelu = nn.GELU()
        self.prelu = nn.PReLU()
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x = self.relu(self.fc[0](x))
        x = F.relu(self.fc[1](x))
        x = torch.tanh(self.fc[2](x))
        x = self.fc[3](x).relu()
        x = self.gelu(self.fc[4](x))
        x = self.prelu(self.fc[5](x))
        x = self.relu(self.fc[6](x))  # the same module again: its own site when fx traces
        return self.head(x)


MLP_SITES = {"relu": "relu", "gelu": "gelu", "relu_1": "relu", "tanh": "tanh", "relu_2": "relu", "relu_3": "relu"}


def call_count(net: nn.Module, x: torch.Tensor, types: tuple) -> int:
    """How many times modules of these types run in one forward pass: the number of call points."""
    calls = []
    handles = [m.register_forward_hook(lambda *_: calls.append(1)) for m in net.modules() if isinstance(m, types)]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return len(calls)


def test_mixed_mlp_sites_outputs_and_unsupported():
    torch.manual_seed(0)
    net, x = MixedMLP(), torch.randn(5, 8)
    sm = make_searchable(net)
    assert get_activations(sm) == MLP_SITES
    assert list(activation_sites(sm)) == list(MLP_SITES)  # named_modules order: existing modules, then new sites
    assert all(a.alpha.item() == 1 and a.beta.item() == 1 and not a.trainable for a in activation_sites(sm).values())
    assert set(unsupported_activations(sm)) == {"prelu"} and "PReLU" in unsupported_activations(sm)["prelu"]
    assert isinstance(sm.prelu, nn.PReLU) and isinstance(sm, MixedMLP)
    assert isinstance(net.relu, nn.ReLU) and not hasattr(net, "relu_1")  # the input model is untouched
    torch.testing.assert_close(sm(x), net(x))
    before = sm(x)
    set_activations(sm, {"relu_1": "symexp"})
    assert not torch.allclose(sm(x), before)
    set_activations(sm, {"relu_1": "relu", "relu_3": "tanh"})  # the second call of self.relu alone
    assert not torch.allclose(sm(x), before)
    assert sm.relu.op_name == "relu"


def test_functional_false_converts_modules_only():
    torch.manual_seed(0)
    net, x = MixedMLP(), torch.randn(5, 8)
    sm = make_searchable(net, functional=False)
    assert get_activations(sm) == {"relu": "relu", "gelu": "gelu"}  # the shared module is one site
    assert get_activations(make_searchable(net, skip="relu*")) == {"gelu": "gelu", "tanh": "tanh"}
    torch.testing.assert_close(sm(x), net(x))
    set_activations(sm, {"relu": "linear"})
    net.relu = nn.Identity()
    torch.testing.assert_close(sm(x), net(x))  # both calls of self.relu changed


@pytest.mark.parametrize("act, op", [
    (nn.ReLU(), "relu"), (nn.ReLU(inplace=True), "relu"), (nn.ReLU6(), "relu6"), (nn.GELU(), "gelu"),
    (nn.SiLU(), "swish"), (nn.ELU(), "elu"), (nn.CELU(), "elu"), (nn.SELU(), "selu"), (nn.Tanh(), "tanh"),
    (nn.Sigmoid(), "sigmoid"), (nn.Hardswish(), "hardswish"), (nn.Mish(), "mish"), (nn.Softplus(), "softplus"),
    (nn.LogSigmoid(), "logsigmoid"), (nn.Hardtanh(), "hardtanh"), (nn.Hardtanh(0.0, 6.0), "relu6"),
    (nn.LeakyReLU(0.0), "relu"), (nn.Threshold(0.0, 0.0), "relu"),
    (nn.LeakyReLU(0.2), None), (nn.LeakyReLU(), None), (nn.ELU(alpha=2.0), None),
    (nn.GELU(approximate="tanh"), None), (nn.Softplus(beta=2.0), None), (nn.Hardsigmoid(), None),
    (nn.PReLU(), None), (nn.Softmax(dim=1), None), (nn.Threshold(0.5, 0.0), None),
], ids=repr)
def test_module_activations_map_only_when_numerically_equal(act, op):
    net, x = nn.Sequential(nn.Linear(4, 4), act, nn.Linear(4, 2)), torch.randn(6, 4) * 5
    expected = net(x)
    sm = make_searchable(net)
    if op is None:
        assert list(unsupported_activations(sm)) == ["1"] and sm[1] is not act and type(sm[1]) is type(act)
        with pytest.raises(ValueError, match="left its activations alone"):
            activation_sites(sm)
    else:
        assert get_activations(sm) == {"1": op} and unsupported_activations(sm) == {}
    torch.testing.assert_close(sm(x), expected)


class Functional(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fc, self.fn = nn.Linear(4, 4), fn

    def forward(self, x):
        return self.fn(self.fc(x)) * 2


@pytest.mark.parametrize("fn, site, op", [
    (lambda x: F.hardtanh(x, 0.0, 6.0), "hardtanh", "relu6"),
    (lambda x: F.silu(x), "silu", "swish"),
    (lambda x: torch.sigmoid(x), "sigmoid", "sigmoid"),
    (lambda x: F.leaky_relu(x, 0.0), "leaky_relu", "relu"),
    (lambda x: F.leaky_relu(x, 0.2), "leaky_relu", None),
    (lambda x: F.gelu(x, approximate="tanh"), "gelu", None),
    (lambda x: F.elu(x, alpha=2.0), "elu", None),
    (lambda x: F.softmax(x, dim=1), "softmax", None),
], ids=["hardtanh06", "silu", "sigmoid", "leaky0", "leaky02", "gelu_tanh", "elu2", "softmax"])
def test_functional_calls_map_only_when_numerically_equal(fn, site, op):
    net, x = Functional(fn), torch.randn(6, 4) * 5
    sm = make_searchable(net)
    if op is None:
        assert list(unsupported_activations(sm)) == [site]
    else:
        assert get_activations(sm) == {site: op}
    torch.testing.assert_close(sm(x), net(x))


class InPlace(nn.Module):
    """In-place activations whose results are discarded: only the mutation of their input counts."""

    def __init__(self):
        super().__init__()
        self.fc = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.fc[0](x)
        self.act(y)
        y = self.fc[1](y)
        F.elu(y, inplace=True)
        z = self.fc[2](y)
        z.relu_()
        return z + y


def test_inplace_activations_keep_their_effect():
    torch.manual_seed(0)
    net, x = InPlace(), torch.randn(6, 4) * 3
    sm = make_searchable(net)
    assert get_activations(sm) == {"act": "relu", "elu": "elu", "relu": "relu"}
    torch.testing.assert_close(sm(x), net(x))
    set_activations(sm, ["linear"] * 3)  # now the network without activations
    y = net.fc[1](net.fc[0](x))
    torch.testing.assert_close(sm(x), net.fc[2](y) + y)


def test_resnet18_sites_outputs_pruning_and_state_dict():
    torch.manual_seed(0)
    net, x = resnet18(weights=None, num_classes=10).eval(), torch.randn(2, 3, 32, 32)
    sm = make_searchable(net).eval()
    sites = activation_sites(sm)
    assert len(sites) == call_count(net, x, (nn.ReLU,)) == 17
    assert {"relu", "layer1.0.relu", "layer1.0.relu_1", "layer4.1.relu_1"} <= set(sites)
    assert set(get_activations(sm).values()) == {"relu"} and unsupported_activations(sm) == {}
    assert not any(isinstance(m, nn.ReLU) for m in sm.modules())
    with torch.no_grad():
        torch.testing.assert_close(sm(x), net(x))

    # state_dict round trip into a fresh make_searchable'd network
    set_activations(sm, {"layer1.0.relu_1": "tanh", "relu": "swish"})
    fresh = make_searchable(resnet18(weights=None, num_classes=10)).eval()
    fresh.load_state_dict(sm.state_dict())
    assert get_activations(fresh) == get_activations(sm)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), sm(x))

    # pruning, one training step with trainable scales: pruned weights stay zero
    prune_model(sm, 0.8)
    set_trainable_scales(sm, True)
    sm.train()
    opt = torch.optim.SGD(sm.parameters(), lr=0.1)
    F.cross_entropy(sm(x), torch.tensor([1, 2])).backward()
    assert sites["layer2.1.relu_1"].alpha.grad is not None
    opt.step()
    assert get_alpha_beta(sm)["relu"] != (1.0, 1.0)
    sm.eval()
    with torch.no_grad():
        out = sm(x)
    for name, layer in sm.named_modules():
        if hasattr(layer, "weight_mask"):
            assert (layer.weight[layer.weight_mask == 0] == 0).all(), name
    assert len(masks(sm)) == 21
    loaded = load_pruned(make_searchable(resnet18(weights=None, num_classes=10)), sm.state_dict()).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), out)
    twin = copy.deepcopy(sm)
    set_activations(twin, {"relu": "elu"})
    assert get_activations(sm)["relu"] == "swish"
    with torch.no_grad():
        torch.testing.assert_close(copy.deepcopy(sm)(x), out)


def test_mobilenet_v3_small_sites_unsupported_and_state_dict():
    torch.manual_seed(0)
    net, x = mobilenet_v3_small(weights=None, num_classes=10).eval(), torch.randn(1, 3, 64, 64)
    sm = make_searchable(net).eval()
    sites = get_activations(sm)
    assert len(sites) == call_count(net, x, (nn.ReLU, nn.Hardswish))
    assert set(sites.values()) == {"relu", "hardswish"} and sites["features.0.2"] == "hardswish"
    gates = [n for n, m in net.named_modules() if isinstance(m, nn.Hardsigmoid)]
    assert list(unsupported_activations(sm)) == gates and len(gates) == 9  # squeeze-excitation gates
    with torch.no_grad():
        torch.testing.assert_close(sm(x), net(x))
    set_activations(sm, ["elu"] * len(sites))
    fresh = make_searchable(mobilenet_v3_small(weights=None, num_classes=10)).eval()
    fresh.load_state_dict(sm.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), sm(x))
    skipped = make_searchable(net, skip=["*.scale_activation", "classifier.*"])
    assert unsupported_activations(skipped) == {} and len(activation_sites(skipped)) == len(sites) - 1


@pytest.mark.parametrize("name", ["lenet5", "vgg16", "resnet18", "efficientnet_b0"])
def test_builtin_models_are_returned_unchanged(name):
    model = build_model(name, seed=0)
    before = get_activations(model)
    assert make_searchable(model) is model
    assert get_activations(model) == before
    assert {k: v.op_name for k, v in activation_sites(model).items()} == before
    assert unsupported_activations(model) == {}


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = nn.Tanh()

    def forward(self, x):
        x = self.fc(x)
        if x.sum() > 0:
            x = F.relu(x)
        return self.act(x)


class BranchyModules(Branchy):
    def __init__(self):
        super().__init__()
        self.act2 = nn.ReLU()

    def forward(self, x):
        x = self.act(self.fc(x))
        if x.sum() > 0:
            x = self.act2(x)
        return x


def test_untraceable_model_with_functional_calls_raises_one_line():
    with pytest.raises(ValueError, match=r"cannot trace Branchy .*if x\.sum\(\) > 0.*first: F\.relu in "
                                         r"Branchy\.forward at test_searchable\.py:\d+") as err:
        make_searchable(Branchy())
    assert "\n" not in str(err.value) and "functional=False" in str(err.value)
    sm = make_searchable(Branchy(), functional=False)
    assert get_activations(sm) == {"act": "tanh"}


def test_untraceable_model_with_modules_only_falls_back():
    torch.manual_seed(0)
    net, x = BranchyModules(), torch.randn(3, 4)
    with pytest.warns(UserWarning, match="converted its activation modules only"):
        sm = make_searchable(net)
    assert get_activations(sm) == {"act": "tanh", "act2": "relu"}
    torch.testing.assert_close(sm(x), net(x))
    torch.testing.assert_close(sm(-x), net(-x))
    with pytest.raises(ValueError, match="cannot trace BranchyModules"):
        make_searchable(net, functional=True)


class ModeDependent(nn.Module):
    """Its traced graph depends on self.training (like torchvision's stochastic depth)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return F.dropout(F.relu(self.fc(x)), 0.5, self.training).tanh()


def test_model_whose_graph_depends_on_training_mode():
    net, x = ModeDependent(), torch.randn(4, 8)
    sm = make_searchable(net)
    assert get_activations(sm) == {"relu": "relu", "tanh": "tanh"}
    torch.manual_seed(1)
    expected = net(x)
    torch.manual_seed(1)
    torch.testing.assert_close(sm(x), expected)
    sm.eval(), net.eval()
    torch.testing.assert_close(sm(x), net(x))
    set_activations(sm, {"relu": "linear"})
    torch.testing.assert_close(sm(x), net.fc(x).tanh())


class SharedBlocks(nn.Module):
    """A Sequential called twice, and one ReLU registered under two names."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
        self.a = nn.ReLU()
        self.b = self.a

    def forward(self, x):
        return self.b(self.a(self.body(self.body(x))))


def test_shared_modules_one_site_per_call_point():
    torch.manual_seed(0)
    net, x = SharedBlocks(), torch.randn(3, 4)
    sm = make_searchable(net)
    assert get_activations(sm) == {"body.1": "tanh", "a": "relu", "body_1_1": "tanh", "a_1": "relu"}
    assert len(sm.body) == 2 and sm.b is sm.a  # no site added inside the Sequential; the alias follows
    torch.testing.assert_close(sm(x), net(x))
    assert get_activations(make_searchable(net, functional=False)) == {"body.1": "tanh", "a": "relu"}
    again = make_searchable(sm)
    assert get_activations(again) == get_activations(sm)
    torch.testing.assert_close(again(x), net(x))


def test_errors_and_generic_activation_sites():
    with pytest.raises(ValueError, match="functional must be True, False or 'auto', got 'yes'"):
        make_searchable(nn.ReLU(), functional="yes")
    with pytest.raises(ValueError, match=r"Linear has no activation sites.*make_searchable\(model\)"):
        activation_sites(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="found no activation"):
        activation_sites(make_searchable(nn.Linear(2, 2)))
    net = nn.Sequential(nn.Linear(2, 2), Activation("elu"), nn.Sequential(Activation("tanh")))
    assert list(activation_sites(net)) == ["1", "2.0"] and make_searchable(net) is not net
    assert get_activations(make_searchable(net)) == {"1": "elu", "2.0": "tanh"}
    double = make_searchable(nn.Sequential(nn.Linear(2, 2).double(), nn.ReLU()))
    assert double[1].alpha.dtype == torch.float64  # sites follow the network's float type
