"""Property test: on any random network the compact engine accepts, it computes what the dense engine computes.

Hypothesis draws small chains (convolutions of random kernel sizes and strides, max or average pooling whose
window does or does not divide the map, linear-only nets, layers that keep nothing, learned alpha/beta sites),
random masks from 0 to 99.9% and batches of 1 to 64. Forward, every parameter's gradient (None-ness included) and
one optimiser step agree with the dense engine within 1e-5, and pruned weights stay exactly zero. A network the
engine cannot run exactly is refused with a one-line reason and `auto` runs it dense.

`SAFS_PROPERTY_EXAMPLES` sets the number of examples (200 by default; the slow run: 2000).
"""
import copy
import os

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune

from safs_lite.method.activations import ACTIVATIONS, Activation
from safs_lite.method.pruning import prunable_layers
from safs_lite.training.compact import CompactNet, resolve_engine, unsupported

EXAMPLES = int(os.environ.get("SAFS_PROPERTY_EXAMPLES", "200"))


class Chain(nn.Sequential):
    """A plain chain of layers (what the engine accepts: no branches)."""


@st.composite
def networks(draw):
    """(model, input shape): a random chain the engine accepts, masks applied, alpha/beta set."""
    ops = sorted(ACTIVATIONS)
    layers: list[nn.Module] = []
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(5, 14)), draw(st.integers(5, 14))
    shape = (c, h, w)
    for _ in range(draw(st.integers(0, 2))):  # convolutions (zero: a linear-only net on the flattened image)
        k = draw(st.integers(1, min(3, h, w)))
        s = draw(st.integers(1, 2))
        out = draw(st.integers(1, 5))
        layers.append(nn.Conv2d(c, out, k, stride=s, bias=draw(st.booleans())))
        c, h, w = out, (h - k) // s + 1, (w - k) // s + 1
        layers.append(Activation(draw(st.sampled_from(ops)), trainable=draw(st.booleans())))
        if min(h, w) >= 2 and draw(st.booleans()):
            p = draw(st.integers(2, min(3, h, w)))
            pool = draw(st.sampled_from((nn.MaxPool2d, nn.AvgPool2d)))
            layers.append(pool(p))  # stride = kernel: windows that do (12 by 2) or do not (13 by 2) divide the map
            h, w = h // p, w // p
    layers.append(nn.Flatten())
    n = c * h * w
    for _ in range(draw(st.integers(0, 2))):
        out = draw(st.integers(1, 12))
        layers += [nn.Linear(n, out, bias=draw(st.booleans())),
                   Activation(draw(st.sampled_from(ops)), trainable=draw(st.booleans()))]
        n = out
    layers.append(nn.Linear(n, draw(st.integers(2, 5))))
    torch.manual_seed(draw(st.integers(0, 2**16)))
    model = Chain(*layers)
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    with torch.no_grad():
        for act in (m for m in model if isinstance(m, Activation)):
            if act.trainable:  # learned scales away from 1, beta of both signs
                act.alpha.uniform_(0.5, 1.5, generator=gen)
                act.beta.uniform_(-1.5, 1.5, generator=gen)
        for m in prunable_layers(model).values():
            sparsity = draw(st.sampled_from((0.0, 0.3, 0.7, 0.9, 0.99, 0.999, 1.0)))  # 1.0: the layer keeps nothing
            prune.custom_from_mask(m, "weight", (torch.rand(m.weight.shape, generator=gen) >= sparsity).float())
            if m.bias is not None:
                m.bias.uniform_(-0.5, 0.5, generator=gen)
    return model, shape


def _step(model, run, x, y):
    """(logits, {name: grad or None}, {name: parameter after one SGD step with momentum and weight decay})."""
    model.zero_grad(set_to_none=True)
    out = run(x)
    F.cross_entropy(out, y).backward()
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9, weight_decay=1e-3)
    opt.step()
    return out.detach(), grads, {n: p.detach().clone() for n, p in model.named_parameters()}


def _close(actual, expected, what):
    floor = 1e-6 + 1e-5 * float(expected.abs().max()) if expected.numel() else 1e-6
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=floor, msg=lambda m: f"{what}: {m}")


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(net=networks(), batch=st.integers(1, 64), seed=st.integers(0, 2**16))
def test_compact_engine_equals_dense_on_random_networks(net, batch, seed):
    model, shape = net
    assert unsupported(model) is None, unsupported(model)
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, *shape, generator=gen) * 3 - 1).clamp(min=0)  # exact zeros: ties in max pooling
    y = torch.randint(0, model[-1].out_features, (batch,), generator=gen)
    dense = copy.deepcopy(model)
    out_d, g_d, p_d = _step(dense, dense, x, y)
    out_c, g_c, p_c = _step(model, CompactNet(model), x, y)
    _close(out_c, out_d, "logits")
    for name in g_d:
        assert (g_c[name] is None) == (g_d[name] is None), f"{name}: gradient None in one engine only"
        if g_d[name] is not None:
            assert torch.isfinite(g_c[name]).all(), f"{name}: non-finite gradient"
            _close(g_c[name], g_d[name], f"grad {name}")
        _close(p_c[name], p_d[name], f"{name} after one step")
    with torch.inference_mode():
        _close(CompactNet(model)(x), model(x), "logits without autograd")
    for name, m in prunable_layers(model).items():  # pruned weights stay exactly zero after the step
        assert torch.all(m.weight[m.weight_mask == 0] == 0), name


@pytest.mark.parametrize("layer, reason", [
    (nn.Conv2d(1, 2, 3, padding=1), "only Conv2d without padding"),
    (nn.AvgPool2d(2, padding=1), "average pooling with padding"),
    (nn.BatchNorm2d(1), "BatchNorm2d"),
    (nn.Dropout(0.1), "Dropout"),
])
def test_networks_the_engine_cannot_run_exactly_are_refused_and_auto_runs_them_dense(layer, reason):
    model = Chain(nn.Conv2d(1, 1, 1), layer, nn.Flatten(), nn.LazyLinear(3))
    model(torch.rand(2, 1, 8, 8))  # materialise the lazy layer
    for m in prunable_layers(model).values():
        prune.l1_unstructured(m, "weight", 0.99)
    why = unsupported(model)
    assert why is not None and reason in why and "\n" not in why, why
    assert resolve_engine(model, "auto") == "dense"
