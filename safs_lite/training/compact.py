"""The compact engine: run a pruned network at the cost of the weights it keeps.

A magnitude-pruned network multiplies every pruned zero: at 99% sparsity LeNet-5
costs as much per step as the dense one. `CompactNet` computes the same function
(same logits, loss and gradients, up to float rounding order) from the masked
model's own parameters, on what the masks leave:

- a unit (conv channel or linear neuron) with no kept path to the output is dropped;
- a unit with no kept path from the input outputs a constant, computed once per
  forward pass from its bias and the constants before it (through its activation,
  so bias, alpha and beta keep their gradients) and folded exactly into the next
  layer's bias: a valid convolution of a constant map is the constant times the
  sum of the kept taps, pooling keeps it constant, flatten + linear sums it
  over the positions;
- the remaining units run as small dense layers (the kept rows and columns of
  each weight) or, for convolutions with few kept taps, as a gather of the
  kept taps' shifted windows and one small matrix product; activations and
  pooling run on the live channels only.

The weights are read live (`weight_orig * weight_mask`, indexed at each
forward), so gradients and optimizer steps land on the masked model's own
parameters and every other tool (checkpoints, run folders, export) sees the
usual model. Every parameter the dense network would give a gradient gets
one, a zero tensor where the compact graph does not reach it, so optimizers
with momentum or weight decay move the two engines' parameters alike.

Supported: a chain (no branches) of Conv2d (no padding, groups 1), Linear,
activation sites (`Activation`) or torch's elementwise activation modules,
max pooling, average pooling without padding, flatten and Identity, as `torch.fx` traces it:
LeNet-5, MLPs, and what `make_searchable` makes of such networks. Anything else (residual blocks,
batch norm, dropout, an untraceable forward) is refused by `unsupported` and
runs on the dense engine (`engine_for` says so once per model type).

Example:
    >>> from safs_lite import build_model, prune_model
    >>> model = prune_model(build_model("lenet5", seed=0), 0.99)
    >>> net = CompactNet(model)
    >>> x = torch.rand(4, 1, 28, 28)
    >>> bool(torch.allclose(net(x), model(x), atol=1e-5))
    True
"""
from __future__ import annotations

import logging
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import Tensor, nn

from ..method.activations import ACTIVATIONS, Activation
from ..method.frozen import FrozenActivation
from ..method.pruning import reach_backward, reach_forward, unit_paths

ENGINES = ("dense", "compact", "auto")

# torch's elementwise activation modules: the compact engine applies them to live units and constants alike.
ELEMENTWISE = (nn.Identity, nn.ReLU, nn.ReLU6, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.SELU, nn.CELU,
               nn.Softplus, nn.Mish, nn.Hardtanh, nn.Hardswish, nn.LeakyReLU, nn.LogSigmoid, nn.Tanhshrink)
# A convolution that keeps at most this share of the weights between its live outputs and inputs runs as
# gathered taps (rows of the batch-last input, one matrix product), else as a small dense convolution
# (torch's conv2d, between two layout changes). Measured on LeNet-5 (1 thread, batch 256, training
# steps, CPU ms): the taps are as fast or faster wherever a layer is pruned at all (global 90%, conv1
# keeping 71%: 24 vs 33 with conv1 dense); the dense convolution only pays for an unpruned layer.
TAPS_MAX_DENSITY = 0.9
# "auto" takes the compact engine from this share of pruned weights on (measured as above: about even with
# the dense engine at 80%, slower at 70%, 1.2x faster at 90%, 4.8x at 99%).
AUTO_MIN_SPARSITY = 0.8
# auto's cost model (`predicted_ms`): ms per training step = step x steps + batch x (mac x multiply-adds + element x
# activation/pooling elements) per image, per engine, one CPU thread. Fitted by benchmarks/engine_choice.py
# (non-negative least squares over 100 timings: LeNet-5 masks at 50-99.5%, three allocations, batch 1-256; the
# fit picks the faster engine in 85 of 100 and costs the grid 1.8% over always the faster, the 80% rule 5.1%).
AUTO_COST = {"dense": {"step": 0.156, "mac": 2.53e-7, "element": 0.0},
             "compact": {"step": 0.194, "mac": 1.95e-7, "element": 1.01e-6}}


def check_engine(name: str) -> str:
    """Return `name` if it is a training engine, else raise ValueError listing the valid ones."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; valid: {', '.join(ENGINES)}")
    return name


class _Tracer(fx.Tracer):
    """fx tracer that keeps activation sites as leaves (their alpha/beta stay module parameters)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, _sites()) or super().is_leaf_module(m, qualname)


def _sites() -> tuple[type, ...]:
    """The activation-site classes: trainable `Activation`s and frozen ones (alpha, beta constants)."""
    return Activation, FrozenActivation


@dataclass
class _Op:
    """One step of the chain: kind in conv, linear, act, pool, flatten, and what it needs."""

    kind: str
    module: nn.Module | None = None
    pool: dict = field(default_factory=dict)  # max_pool2d keyword arguments


def _chain(model: nn.Module) -> list[_Op] | str:
    """The model's forward as a list of supported steps, or a one-phrase reason it is not one."""
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # noqa: BLE001 - any tracing failure means "not compactable"
        return f"torch.fx cannot trace it ({type(e).__name__})"
    ops: list[_Op] = []
    prev = None
    for node in graph.nodes:
        if node.op == "placeholder":
            if prev is not None:
                return "its forward takes more than one input"
            prev = node
            continue
        if node.op == "output":
            if node.args[0] is not prev:
                return "its output is not the end of one chain of layers"
            break
        if not node.args or node.args[0] is not prev or any(isinstance(a, fx.Node) for a in node.args[1:]) \
                or any(isinstance(v, fx.Node) for v in node.kwargs.values()) or len(node.users) != 1:
            return f"it is not one chain of layers (at {node.name})"
        op = _step(model, node)
        if isinstance(op, str):
            return op
        ops.append(op)
        prev = node
    if not any(o.kind in ("conv", "linear") for o in ops):
        return "it has no Conv2d or Linear layer"
    return ops


def _step(model: nn.Module, node: fx.Node) -> _Op | str:
    """The step of one fx node, or why it is not supported."""
    if node.op == "call_module":
        m = model.get_submodule(node.target)
        if isinstance(m, nn.Conv2d):
            if m.groups != 1 or m.padding_mode != "zeros" or any(p != 0 for p in m.padding) \
                    or any(d != 1 for d in m.dilation) or len(node.args) != 1:
                return f"{node.target}: only Conv2d without padding, dilation or groups is supported"
            return _Op("conv", m)
        if isinstance(m, nn.Linear):
            return _Op("linear", m)
        if isinstance(m, (*_sites(), *ELEMENTWISE)):
            return _Op("act", m) if len(node.args) == 1 else f"{node.target}: unexpected arguments"
        if isinstance(m, nn.MaxPool2d) and not m.return_indices:
            return _Op("pool", pool=dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                                         dilation=m.dilation, ceil_mode=m.ceil_mode))
        if isinstance(m, nn.AvgPool2d):
            return _avg_pool(node.target, dict(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                                               ceil_mode=m.ceil_mode, divisor_override=m.divisor_override))
        if isinstance(m, nn.Flatten) and m.start_dim == 1 and m.end_dim == -1:
            return _Op("flatten")
        return f"{node.target} ({type(m).__name__}) is not supported"
    if node.op == "call_function" and node.target is F.max_pool2d:
        names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
        kw = {**dict(zip(names, node.args[1:])), **node.kwargs}
        if kw.pop("return_indices", False):
            return "max_pool2d with return_indices is not supported"
        return _Op("pool", pool=kw)
    if node.op == "call_function" and node.target is F.avg_pool2d:
        names = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
        return _avg_pool(node.name, {**dict(zip(names, node.args[1:])), **node.kwargs})
    if (node.op == "call_method" and node.target == "flatten") or \
            (node.op == "call_function" and node.target is torch.flatten):
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
        if start == 1 and end == -1:
            return _Op("flatten")
    return f"{node.op} {getattr(node.target, '__name__', node.target)} is not supported"


def _avg_pool(where: str, kw: dict) -> _Op | str:
    """Average pooling as a step, or why not: a unit that is constant must stay constant through it, which padding,
    ceil mode (windows of other sizes at the border) and a divisor override (a constant scaled) would break."""
    padding = kw.get("padding", 0)
    if padding not in (0, (0, 0)) or kw.get("ceil_mode") or kw.get("divisor_override") is not None:
        return f"{where}: average pooling with padding, ceil_mode or divisor_override is not supported"
    return _Op("avgpool", pool={k: kw[k] for k in ("kernel_size", "stride") if k in kw})


def unsupported(model: nn.Module) -> str | None:
    """Why the compact engine cannot run `model` (one phrase), or None if it can."""
    ops = _chain(model)
    return ops if isinstance(ops, str) else None


def _weight(m: nn.Module) -> tuple[Tensor, Tensor | None]:
    """(the parameter holding the weight, the 0/1 mask or None) of a conv or linear layer."""
    if hasattr(m, "weight_mask"):
        return m.weight_orig, m.weight_mask
    return m.weight, None


class _Layer:
    """A conv or linear layer restricted to its live output rows and live input columns."""

    TENSORS = ("conn_out", "lo", "x_idx", "w_idx", "sub_mask")  # what its plan holds (moved with the model)

    def __init__(self, m: nn.Module, conv: bool, in_shape: tuple[int, ...], conn_in: Tensor, live_in: Tensor,
                 live_out: Tensor, conn_out: Tensor):
        self.m, self.conv = m, conv
        w, mask = _weight(m)
        dev = w.device
        kept = ((mask != 0) if mask is not None else torch.ones(w.shape, dtype=torch.bool)).cpu()
        live_in, live_out = live_in.cpu(), live_out.cpu()
        self.const_in = bool((~conn_in).any())  # some input units are constants: fold them into the bias
        self.const_out = bool((~conn_out).any())
        self.conn_out, self.lo = conn_out.to(dev), live_out.to(dev)
        self.n_live, self.taps = len(live_out), False
        if conv:
            _, h, wd = in_shape
            self.out_hw = ((h - w.shape[2]) // m.stride[0] + 1, (wd - w.shape[3]) // m.stride[1] + 1)
        if self.n_live == 0:
            return
        if conv:
            i_n, kh, kw = w.shape[1:]
            sub = kept[live_out][:, live_in]  # (lo, li, kh, kw)
            self.stride = m.stride
            used = sub.any(0)  # (li, kh, kw): the taps some live row keeps
            self.n_taps = int(used.sum())
            self.taps = int(sub.sum()) <= TAPS_MAX_DENSITY * sub.numel()
            if self.taps:
                ci, ki, kj = used.nonzero(as_tuple=True)  # local input channel, tap row, tap column
                # the input positions each tap reads, as flat indices into (li, h, w), for every output position
                r = torch.arange(self.out_hw[0])[:, None] * m.stride[0]
                c = torch.arange(self.out_hw[1])[None, :] * m.stride[1]
                base = (r * wd + c).flatten()
                self.x_idx = ((ci * h * wd + ki * wd + kj)[:, None] + base[None, :]).flatten().to(dev)
                rows = live_out[:, None] * i_n + live_in[ci][None, :]
                w_idx = rows * (kh * kw) + (ki * kw + kj)[None, :]
                self.w_shape = (len(live_out), self.n_taps)
            else:
                rows = live_out[:, None] * i_n + live_in[None, :]  # (lo, li)
                w_idx = rows[..., None] * (kh * kw) + torch.arange(kh * kw)
                self.w_shape = (len(live_out), len(live_in), kh, kw)
        else:
            w_idx = live_out[:, None] * w.shape[1] + live_in[None, :]
            self.w_shape = (len(live_out), len(live_in))
        self.w_idx = w_idx.flatten().to(dev)
        self.sub_mask = None if mask is None else mask.reshape(-1)[self.w_idx].view(self.w_shape)

    def run(self, x: Tensor | None, c: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
        """(live outputs or None, constant vector over all output units or None) from the live inputs and constants."""
        m = self.m
        w, mask = _weight(m)
        b, live = m.bias, self.n_live > 0 and x is not None
        if b is None and self.const_in and c is not None:
            b = torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
        fold = self.const_in and c is not None
        if fold:  # the inputs' constants -> their exact effect on every output
            wm = w if mask is None else w * mask
            b = b + (wm.sum((2, 3)) @ c if self.conv else wm @ c)
        c_out = None
        if self.const_out:
            c_out = torch.where(self.conn_out, 0.0, b) if b is not None else \
                torch.zeros(self.conn_out.shape, dtype=w.dtype, device=w.device)
        if not live:
            return None, c_out
        ws = w.reshape(-1).index_select(0, self.w_idx).view(self.w_shape)
        if self.sub_mask is not None:
            ws = ws * self.sub_mask
        bl = None if b is None else b.index_select(0, self.lo)[:, None]
        batch = x.shape[-1]
        if self.conv and not self.taps:  # a small dense convolution, in torch's (B, C, H, W) layout
            y = F.conv2d(x.permute(3, 0, 1, 2), ws, None if bl is None else bl[:, 0], self.stride)
            return y.permute(1, 2, 3, 0).contiguous(), c_out
        if self.conv:  # the kept taps' windows, gathered as rows: (taps x positions, B), then one product
            x = x.reshape(-1, batch).index_select(0, self.x_idx).view(self.n_taps, -1)
        y = ws @ x if bl is None else torch.addmm(bl, ws, x)
        return (y.view(self.n_live, *self.out_hw, batch) if self.conv else y), c_out


def _bare(act: nn.Module) -> Callable[[Tensor], Tensor]:
    """The site's operator alone where alpha and beta are frozen at 1 (1 * x is x exactly), else the site."""
    if isinstance(act, Activation) and not act.alpha.requires_grad and not act.beta.requires_grad \
            and act.alpha.item() == 1.0 and act.beta.item() == 1.0:
        return ACTIVATIONS[act.op_name]
    return act


class _WindowMax(torch.autograd.Function):
    """Max pooling over non-overlapping k x k windows of a batch-last (C, H, W, B) map.

    Forward: a max of the k * k window slices, contiguous over the batch. Backward: each
    window's gradient goes to its first element equal to the max, in row-major window order:
    where torch's CPU max_pool2d sends it (a tie is not split).
    """

    @staticmethod
    def forward(ctx, x, k):
        out = _window_max(x, k)
        ctx.save_for_backward(x, out)
        ctx.k = k
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        # zeros, not empty: rows and columns past the last whole window (13 rows pooled by 2) get no gradient
        parts, views = _windows(x, ctx.k), _windows(torch.zeros_like(x), ctx.k)
        free = None  # windows whose max is not yet claimed by an earlier element
        for t, (part, view) in enumerate(zip(parts, views)):
            hit = part == out
            if free is not None:
                hit &= free
            if t < len(parts) - 1:
                free = ~hit if free is None else free & ~hit
            torch.mul(grad, hit, out=view)
        return views[0]._base, None


def _windows(x: Tensor, k: tuple[int, int]) -> list[Tensor]:
    """The k[0] * k[1] strided views of a (C, H, W, B) map, one per window element in row-major order."""
    c, h, w, b = x.shape
    oh, ow = h // k[0], w // k[1]
    x6 = x[:, :oh * k[0], :ow * k[1]].reshape(c, oh, k[0], ow, k[1], b)
    return [x6[:, :, i, :, j] for i in range(k[0]) for j in range(k[1])]


def _window_max(x: Tensor, k: tuple[int, int]) -> Tensor:
    """Max over non-overlapping windows of a (C, H, W, B) map."""
    parts = _windows(x, k)
    out = parts[0]
    for v in parts[1:]:
        out = torch.maximum(out, v)
    return out


def _max_pool(x: Tensor, pool: dict) -> Tensor:
    """F.max_pool2d(x, **pool) on a batch-last (C, H, W, B) map, same values and gradients.

    Non-overlapping windows (LeNet-5's) take `_WindowMax`, several times faster than torch's CPU
    kernel at a few channels; other poolings run F.max_pool2d itself.
    """
    k, s = pool["kernel_size"], pool.get("stride") or pool["kernel_size"]
    k, s = (k, k) if isinstance(k, int) else tuple(k), (s, s) if isinstance(s, int) else tuple(s)
    plain = k == s and pool.get("padding", 0) in (0, (0, 0)) and pool.get("dilation", 1) in (1, (1, 1)) \
        and not pool.get("ceil_mode", False)
    if not plain:
        return F.max_pool2d(x.permute(3, 0, 1, 2), **pool).permute(1, 2, 3, 0).contiguous()
    if x.requires_grad and torch.is_grad_enabled():
        return _WindowMax.apply(x, k)
    return _window_max(x, k)


class _ZeroGrads(torch.autograd.Function):
    """Identity on the output; gives each listed parameter a zero gradient (what the dense engine gives it)."""

    @staticmethod
    def forward(ctx, out, *params):
        ctx.meta = [(p.shape, p.dtype, p.device) for p in params]
        return out.clone()

    @staticmethod
    def backward(ctx, grad, *_):
        return (grad, *(torch.zeros(s, dtype=d, device=v) for s, d, v in ctx.meta))


class CompactNet:
    """The masked `model`'s function, computed on the units and weights its masks keep.

    Not an `nn.Module`: it holds no parameters of its own, it reads `model`'s
    (so `model.parameters()`, its optimizer and its state dict are the ones to
    use). The plan (which units are live or constant, the gather indices) is
    built from the masks at the first call for each input shape; build a new
    `CompactNet` after changing the masks.

    Args:
        model: a pruned (or dense) network the engine supports (see `unsupported`).

    Raises:
        ValueError: if the model is not supported, naming why.
    """

    def __init__(self, model: nn.Module):
        ops = _chain(model)
        if isinstance(ops, str):
            raise ValueError(f"the compact engine cannot run {type(model).__name__}: {ops}")
        self.ops = ops  # no reference to `model` itself: the engine cache holds CompactNets weakly by model
        self.params = [p for o in ops if o.module is not None for p in o.module.parameters()]
        self._plans: dict[tuple[int, ...], list] = {}
        self._missing: dict[tuple, list] = {}  # (input shape, trainable parameters) -> the ones the graph misses
        self._work: dict[tuple[int, ...], dict] = {}  # input shape -> `plan_work`'s counts
        self._probing = False

    def _plan(self, in_shape: tuple[int, ...]) -> list:
        """Per step: (kind, step data), from forward (connected) and backward (useful) reachability."""
        dev = self.params[0].device if self.params else torch.device("cpu")
        shapes, conns = [in_shape], [torch.ones(in_shape[0], dtype=torch.bool)]
        for op in self.ops:  # forward: which units see the input, and each stage's shape
            shape, conn = shapes[-1], conns[-1]
            if op.kind in ("conv", "linear"):
                w, mask = _weight(op.module)
                kept = (mask != 0).cpu() if mask is not None else torch.ones(w.shape, dtype=torch.bool)
                if op.kind == "conv":
                    if len(shape) != 3 or shape[0] != w.shape[1]:
                        raise ValueError(f"conv input of shape {shape} does not fit weight {tuple(w.shape)}")
                    kh, kw = w.shape[2:]
                    s = op.module.stride
                    shape = (w.shape[0], (shape[1] - kh) // s[0] + 1, (shape[2] - kw) // s[1] + 1)
                else:
                    if len(shape) != 1 or shape[0] != w.shape[1]:
                        raise ValueError(f"linear input of shape {shape} does not fit weight {tuple(w.shape)}")
                    shape = (w.shape[0],)
                conn = reach_forward(unit_paths(kept), conn)
            elif op.kind in ("pool", "avgpool"):
                if len(shape) != 3:
                    raise ValueError(f"pooling needs (C, H, W) inputs, got {shape}")
                pool = F.max_pool2d if op.kind == "pool" else F.avg_pool2d
                probe = pool(torch.zeros(1, 1, *shape[1:]), **op.pool)
                shape = (shape[0], *probe.shape[2:])
            elif op.kind == "flatten":
                if len(shape) > 1:
                    hw = shape[1] * shape[2] if len(shape) == 3 else 1
                    conn = conn.repeat_interleave(hw)
                    shape = (int(torch.tensor(shape).prod()),)
            shapes.append(shape)
            conns.append(conn)
        useful = [None] * len(conns)  # backward: which units reach the output through kept weights
        useful[-1] = torch.ones_like(conns[-1])
        for k in range(len(self.ops) - 1, -1, -1):
            op, u = self.ops[k], useful[k + 1]
            if op.kind in ("conv", "linear"):
                w, mask = _weight(op.module)
                kept = (mask != 0).cpu() if mask is not None else torch.ones(w.shape, dtype=torch.bool)
                u = reach_backward(unit_paths(kept), u)
            elif op.kind == "flatten" and len(shapes[k]) > 1:  # a channel lives whole: all its positions
                u = u.view(shapes[k][0], -1).any(1)
                useful[k + 1] = u.repeat_interleave(useful[k + 1].numel() // shapes[k][0])
            useful[k] = u
        lives = [(c & u).nonzero().flatten() for c, u in zip(conns, useful)]
        plan = []
        for k, op in enumerate(self.ops):
            if op.kind in ("conv", "linear"):
                data = _Layer(op.module, op.kind == "conv", shapes[k], conns[k], lives[k], lives[k + 1],
                              conns[k + 1])
            elif op.kind == "act":
                data = (op.module, conns[k].to(dev))
            elif op.kind == "flatten":
                data = shapes[k][1] * shapes[k][2] if len(shapes[k]) == 3 else 1
            else:
                data = op.pool
            plan.append((op.kind, data))
        # the first layer reads only the live input units; the output puts live units and constants together
        n_out = shapes[-1][0]
        in_live = None if len(lives[0]) == shapes[0][0] else lives[0].to(dev)
        out_live = lives[-1].to(dev)
        return plan, in_live, (out_live if len(out_live) < n_out else None, shapes[-1])

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def plan_tensors(self) -> list[Tensor]:
        """Every tensor the built plans hold (gather indices, live units, masks)."""
        found: list[Tensor] = []
        self.apply_to_plans(lambda t: found.append(t) or t)
        return found

    def apply_to_plans(self, fn: Callable[[Tensor], Tensor]) -> None:
        """Replace every tensor of the built plans by fn(tensor), as `nn.Module._apply` does to parameters and
        buffers (`.to(device)`, `.double()`): an owner module moves its plans with its weights."""
        def opt(t):
            return None if t is None else fn(t)

        for key, (plan, in_live, (out_live, shape)) in list(self._plans.items()):
            for k, (kind, data) in enumerate(plan):
                if kind in ("conv", "linear"):
                    for attr in _Layer.TENSORS:
                        if hasattr(data, attr):
                            setattr(data, attr, opt(getattr(data, attr)))
                elif kind == "act":
                    plan[k] = ("act", (data[0], fn(data[1])))
            self._plans[key] = (plan, opt(in_live), (opt(out_live), shape))

    def forward(self, x: Tensor) -> Tensor:
        """The model's output for the batch `x`, computed compactly."""
        key = tuple(x.shape[1:])
        if key not in self._plans:
            with torch.inference_mode(False), torch.no_grad():  # plain tensors: a later training step saves them
                self._plans[key] = self._plan(key)
        plan, in_live, (out_live, out_shape) = self._plans[key]
        if in_live is not None:
            x = x.index_select(1, in_live)
        # batch-last layout, (units, B) or (C, H, W, B): every gather takes whole rows, every layer is one product
        x = x.permute(*range(1, x.dim()), 0).contiguous()
        batch, c = x.shape[-1], None
        for kind, data in plan:
            if kind in ("conv", "linear"):
                x, c = data.run(x, c)
            elif kind == "act":
                act, conn = data
                if x is not None:
                    x = _bare(act)(x)
                if c is not None:
                    c = torch.where(conn, 0.0, act(c))
            elif kind == "pool":
                if x is not None:
                    x = _max_pool(x, data)
            elif kind == "avgpool":  # constants stay constant: a window's mean of a constant map
                if x is not None:
                    x = F.avg_pool2d(x.permute(3, 0, 1, 2), **data).permute(1, 2, 3, 0).contiguous()
            else:  # flatten
                if x is not None:
                    x = x.reshape(-1, batch)
                if c is not None:
                    c = c.repeat_interleave(data)
        if x is not None:
            x = x.permute(x.dim() - 1, *range(x.dim() - 1))  # back to batch-first
        if out_live is not None or x is None:  # some outputs are constants: place the live outputs among them
            spatial = (1,) * (len(out_shape) - 1)
            base = c.view(1, -1, *spatial).expand(batch, -1, *out_shape[1:])
            x = base if x is None else base.index_copy(1, out_live, x)
        if torch.is_grad_enabled() and not self._probing:
            missing = self._unreached(key, x.dtype, x.device)
            if missing:
                x = _ZeroGrads.apply(x, *missing)
        return x

    def _unreached(self, key: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> list:
        """The trainable parameters the compact graph of this plan gives no gradient (a dropped unit's bias, a site
        before a layer that keeps nothing): found once per plan and set of trainable parameters by one probe
        through autograd (the graph's shape depends on the plan, not on the batch), so each training step adds
        zeros only where the dense engine's would be the sole gradient."""
        trainable = tuple(p for p in self.params if p.requires_grad)
        cache_key = (key, tuple(id(p) for p in trainable))
        if cache_key not in self._missing:
            self._probing = True
            try:
                with torch.enable_grad():
                    out = self.forward(torch.zeros(1, *key, dtype=dtype, device=device))
                    grads = torch.autograd.grad(out.sum(), trainable, allow_unused=True) \
                        if trainable and out.requires_grad else (None,) * len(trainable)
            finally:
                self._probing = False
            self._missing[cache_key] = [p for p, g in zip(trainable, grads) if g is None]
        return self._missing[cache_key]


# model -> (mask signature, CompactNet or the reason it is unsupported); weak, so models are not kept alive
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_NOTICED: set[tuple[str, str, str]] = set()
log = logging.getLogger(__name__)


def _signature(model: nn.Module) -> tuple:
    """What a compact plan depends on besides the graph: every mask tensor and its in-place version."""
    return tuple((name, id(m.weight_mask), m.weight_mask._version) for name, m in model.named_modules()
                 if hasattr(m, "weight_mask"))


def _pruned_share(model: nn.Module) -> float:
    """The share of pruned weights in the model's masked layers (0 without masks)."""
    ms = [m.weight_mask for m in model.modules() if hasattr(m, "weight_mask")]
    total = sum(m.numel() for m in ms)
    return 1.0 - float(sum(m.sum() for m in ms)) / total if total else 0.0


def compact(model: nn.Module) -> CompactNet | str:
    """The (cached) `CompactNet` of `model`, or the reason the engine cannot run it.

    The cache is rebuilt when a mask is replaced or changed in place (e.g. by `load_pruned`).
    """
    sig = _signature(model)
    hit = _CACHE.get(model)
    if hit is not None and hit[0] == sig:
        return hit[1]
    why = unsupported(model)
    net = why if why is not None else CompactNet(model)
    _CACHE[model] = (sig, net)
    return net


def plan_work(model: nn.Module, sample_shape: tuple[int, ...]) -> dict[str, dict[str, int]] | str:
    """What one image costs each engine, counted from the compact plan: multiply-adds of the conv and linear
    layers (`macs`), activation and pooling elements (`elements`) and steps (`steps`); or why the compact engine
    cannot run the model. The dense engine computes every unit and weight; the compact one the live units and,
    per convolution, the kept taps it gathers (or the small dense convolution it runs).
    """
    net = compact(model)
    if isinstance(net, str):
        return net
    key = tuple(sample_shape)
    if key not in net._work:
        net._work[key] = _count_work(net, key)
    return net._work[key]


def _count_work(net: "CompactNet", sample_shape: tuple[int, ...]) -> dict[str, dict[str, int]]:
    with torch.no_grad():
        plan = net._plan(sample_shape)[0]
    dense = {"macs": 0, "elements": 0, "steps": 0}
    comp = {"macs": 0, "elements": 0, "steps": 0}
    hw, units, live = (1, 1), 0, 0
    for kind, data in plan:
        for work in (dense, comp):
            work["steps"] += 1
        if kind in ("conv", "linear"):
            w, _ = _weight(data.m)
            hw = data.out_hw if data.conv else (1, 1)
            n = hw[0] * hw[1]
            dense["macs"] += w.numel() * n
            units, live = w.shape[0], data.n_live
            if data.n_live:
                gathered = data.conv and data.taps
                per = data.n_taps if gathered else int(torch.tensor(data.w_shape[1:]).prod())
                comp["macs"] += data.n_live * per * n
                comp["elements"] += data.n_taps * n if gathered else 0  # the gathered windows
        elif kind == "act":
            dense["elements"] += units * hw[0] * hw[1]
            comp["elements"] += live * hw[0] * hw[1]
        elif kind in ("pool", "avgpool"):
            dense["elements"] += units * hw[0] * hw[1]
            comp["elements"] += live * hw[0] * hw[1]
            pool = F.max_pool2d if kind == "pool" else F.avg_pool2d
            hw = tuple(pool(torch.zeros(1, 1, *hw), **data).shape[2:])
        else:  # flatten
            units, live, hw = units * hw[0] * hw[1], live * hw[0] * hw[1], (1, 1)
    return {"dense": dense, "compact": comp}


def predicted_ms(model: nn.Module, sample_shape: tuple[int, ...], batch_size: int) -> dict[str, float] | str:
    """auto's cost model: ms per training step (forward, backward, Adam step, one thread) of each engine,
    AUTO_COST's constants times `plan_work`'s counts; or why the compact engine cannot run the model."""
    work = plan_work(model, sample_shape)
    if isinstance(work, str):
        return work
    return {e: AUTO_COST[e]["step"] * w["steps"] + batch_size * (AUTO_COST[e]["mac"] * w["macs"]
                                                                  + AUTO_COST[e]["element"] * w["elements"])
            for e, w in work.items()}


def resolve_engine(model: nn.Module, engine: str = "auto", sample_shape: tuple[int, ...] | None = None,
                   batch_size: int | None = None) -> str:
    """The engine `engine` means for `model` where it is now: "dense" or "compact".

    "auto" on the CPU, given the shape of one sample and the batch size (as `train` and `evaluate` give them),
    takes the engine `predicted_ms` predicts faster for a training step: it counts from the compact plan what
    each engine computes per image (multiply-adds, activation and pooling elements, steps) and prices it with
    AUTO_COST, which `benchmarks/engine_choice.py` measured and fitted (docs/compact_engine.md). Without them
    it takes compact from AUTO_MIN_SPARSITY pruned weights on. Never compact on CUDA (the dense kernels are not
    the bottleneck a pruned LeNet-5's are on a CPU core), nor for a model the engine does not support. The
    choice depends only on the model's structure, masks, device, sample shape and batch size, so the same run
    resolves the same way every time.
    "compact" on a model the engine does not support gives "dense" with a one-line
    warning (once per model type and reason).

    Raises:
        ValueError: if engine is not one of ENGINES.
    """
    check_engine(engine)
    if engine == "dense":
        return "dense"
    if engine == "auto":
        p = next(model.parameters(), None)
        if p is None or p.device.type != "cpu" or _pruned_share(model) == 0.0:
            return "dense"
        if sample_shape is None or batch_size is None:
            if _pruned_share(model) < AUTO_MIN_SPARSITY:
                return "dense"
        else:
            cost = predicted_ms(model, tuple(sample_shape), batch_size)
            if not isinstance(cost, str) and cost["compact"] >= cost["dense"]:
                return "dense"
    net = compact(model)
    if isinstance(net, str):
        key = (type(model).__name__, net, engine)
        if key not in _NOTICED:
            _NOTICED.add(key)
            msg = f"compact engine: {type(model).__name__} is not supported ({net}); it runs on the dense engine"
            if engine == "compact":
                warnings.warn(msg, stacklevel=3)
            else:
                log.info(msg)
        return "dense"
    return "compact"


def engine_for(model: nn.Module, engine: str = "auto", sample_shape: tuple[int, ...] | None = None,
               batch_size: int | None = None) -> Callable[[Tensor], Tensor]:
    """What to call on a batch to run `model` on `engine`: the model itself, or its `CompactNet`.

    Example:
        >>> from safs_lite import build_model, prune_model
        >>> type(engine_for(prune_model(build_model("lenet5"), 0.9), "compact")).__name__
        'CompactNet'
    """
    return compact(model) if resolve_engine(model, engine, sample_shape, batch_size) == "compact" else model
