"""Automatic activation sites: `make_searchable` turns the activations of any `nn.Module` into SAFS sites.

SAFS searches one operator per activation site. The built-in models keep their
sites in `model.acts`; any other network gets them from `make_searchable`,
which replaces every activation it can express exactly with an `Activation`
(alpha * op(beta * x)) that starts from the original operator, alpha = beta = 1,
frozen, so the network computes the same function as before:

- activation modules (`nn.ReLU`, `nn.GELU`, `nn.SiLU`, ...; table
  `MODULE_FUNCTIONS`) and, where `torch.fx` traces the model, functional calls
  (`F.relu`, `torch.tanh`, `x.relu()`, ...; table `FUNCTION_OPS`);
- each candidate is checked numerically against the library operator, so a
  module or call with other parameters (`nn.LeakyReLU(0.2)`, `nn.ELU(alpha=2)`,
  `F.gelu(x, approximate="tanh")`) is not mistaken for it;
- activations with no exact counterpart in `ACTIVATIONS` (`nn.PReLU`,
  `nn.Softmax`, `nn.Hardsigmoid`, ...) are left alone and listed by
  `unsupported_activations`.

Site names (the keys of `activation_sites` / `get_activations`):

- an activation module called once keeps its module path (`layer1.0.conv`'s
  neighbour `layer1.0.relu`); it is replaced in place;
- a module called at several points (torchvision's `BasicBlock` calls
  `self.relu` twice) becomes one site per call point when fx traces the model:
  the first call keeps the path, the k-th further call gets `<path>_<k>`
  (`layer1.0.relu`, `layer1.0.relu_1`); with module replacement only it is one
  site;
- a functional call becomes `<path of the module whose forward makes it>.<torch
  function name>`, without the prefix at the top level (`relu`, `tanh`,
  `layer2.gelu`); a name already taken in that module gets `_1`, `_2`, ...;
- new sites are never added to a container (`nn.Sequential`, `nn.ModuleList`,
  `nn.ModuleDict`), whose forward or length they would change: they go to the
  nearest other ancestor, the container path joined by "_" (`features_3_relu_1`).

Example:
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> from safs_lite.method.activations import get_activations
    >>> get_activations(make_searchable(net))
    {'1': 'relu'}
"""
from __future__ import annotations

import ast
import builtins
import fnmatch
import inspect
import itertools
import linecache
import os
import textwrap
import traceback
import types
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn.functional as F
import torch.nn.modules.activation as torch_activations
from torch import Tensor, nn

from ..method.activations import ACTIVATIONS, Activation

# torch function name -> library operators it may equal, tried in order; the
# first that matches the actual module or call numerically is used. An empty
# tuple: an activation with no counterpart in ACTIVATIONS (listed, left alone).
FUNCTION_OPS: dict[str, tuple[str, ...]] = {
    "relu": ("relu",),
    "relu6": ("relu6",),
    "hardtanh": ("hardtanh", "relu6"),  # hardtanh(x, 0, 6) is relu6
    "gelu": ("gelu",),  # the exact erf form only
    "silu": ("swish",),  # swish with beta 1
    "elu": ("elu",),  # alpha = 1 only
    "celu": ("elu",),  # celu with alpha = 1 is elu
    "selu": ("selu",),
    "tanh": ("tanh",),
    "sigmoid": ("sigmoid",),
    "hardswish": ("hardswish",),
    "mish": ("mish",),
    "softplus": ("softplus",),  # beta = 1 only
    "logsigmoid": ("logsigmoid",),
    "leaky_relu": ("relu", "linear"),  # slopes 0 and 1; any other slope has no counterpart
    "threshold": ("relu",),  # threshold(x, 0, 0)
    "prelu": (), "rrelu": (), "hardsigmoid": (), "softsign": (), "tanhshrink": (), "softshrink": (),
    "hardshrink": (), "glu": (), "softmax": (), "log_softmax": (), "softmin": (),
}

# activation module class -> torch function name (a key of FUNCTION_OPS); subclasses included.
MODULE_FUNCTIONS: dict[type[nn.Module], str] = {
    nn.ReLU: "relu", nn.ReLU6: "relu6", nn.Hardtanh: "hardtanh", nn.GELU: "gelu", nn.SiLU: "silu",
    nn.ELU: "elu", nn.CELU: "celu", nn.SELU: "selu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid",
    nn.Hardswish: "hardswish", nn.Mish: "mish", nn.Softplus: "softplus", nn.LogSigmoid: "logsigmoid",
    nn.LeakyReLU: "leaky_relu", nn.Threshold: "threshold",
}

# Every other activation module torch defines (PReLU, Softmax, Hardsigmoid, ...): reported, never converted.
_OTHER_ACTIVATION_MODULES: tuple[type[nn.Module], ...] = tuple(
    cls for cls in vars(torch_activations).values()
    if isinstance(cls, type) and issubclass(cls, nn.Module) and cls.__module__ == torch_activations.__name__
    and cls is not nn.MultiheadAttention and cls not in MODULE_FUNCTIONS
)
_ACTIVATION_MODULES = (*MODULE_FUNCTIONS, *_OTHER_ACTIVATION_MODULES)


def _function_targets() -> dict[object, str]:
    """The functional forms of FUNCTION_OPS (F.relu, torch.relu, torch.relu_, ...) -> torch function name."""
    targets: dict[object, str] = {}
    for base in FUNCTION_OPS:
        for name in (base, base + "_"):
            for namespace in (F, torch, torch._C._nn):
                fn = getattr(namespace, name, None)
                if callable(fn):
                    targets[fn] = base
    return targets


_FUNCTION_TARGETS = _function_targets()
# Tensor methods (x.relu(), x.tanh_(), x.softmax(1), ...) -> torch function name.
_METHOD_TARGETS = {name: base for base in FUNCTION_OPS for name in (base, base + "_") if hasattr(Tensor, name)}

# Inputs on which a candidate must equal the library operator: dense over the range where
# the operators differ (ELU's alpha, leaky slopes, GELU's tanh form ~1e-4 away), plus large values.
_PROBE = torch.cat([torch.linspace(-12.0, 12.0, 2401), torch.tensor([-60.0, -30.0, 30.0, 60.0])]).double()

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_TORCH_DIR = os.path.dirname(torch.__file__)
_forward_ids = itertools.count()


def make_searchable(model: nn.Module, functional: bool | str = "auto", skip: Iterable[str] = ()) -> nn.Module:
    """Turn every activation of a network into a named SAFS site (see the module docstring for the names).

    Each site is an `Activation` holding the original operator (its `op_name`),
    alpha = beta = 1, frozen, on the device and float type of the model's
    parameters, so the outputs are unchanged. In-place activations
    (`nn.ReLU(inplace=True)`, `x.relu_()`) become out-of-place sites; where fx
    traces, the later uses of the input read the site's output, as the in-place
    original made them do. Activations without an exact counterpart are left
    alone and recorded on the result as `safs_unsupported` (read it with
    `unsupported_activations`).

    With fx (functional True, or "auto" when the model traces) the result's
    forward runs the traced graph, with the activation call points rewritten;
    it is an instance of a subclass of the model's class, so attributes and
    methods stay. If the traced graph depends on `model.training` (e.g.
    stochastic depth), both modes are traced and forward picks one per call.
    Like any fx graph it freezes other Python-level control flow at trace time,
    bypasses hooks of the modules it traces through (hooks of leaf layers such
    as Conv2d, e.g. pruning masks, still run), and cannot be pickled whole:
    save its `state_dict`.

    Args:
        model: any network; left untouched. A built-in model (it has `model.acts`,
            an `nn.ModuleDict` of `Activation`) is returned as it is.
        functional: True: trace with fx (functional calls and one site per call
            point), ValueError if it cannot trace; False: replace activation
            modules only, no tracing; "auto": trace if possible, else replace
            modules only (with a warning), unless the forward source shows
            functional activation calls, which then raise ValueError.
        skip: fnmatch patterns of activations to leave alone (neither sites nor
            listed): a module's path (`"*.scale_activation"`) or, for a
            functional call, `<module path>.<function>` (`"head.sigmoid"`, or
            `"sigmoid"` at the top level).

    Returns:
        A new module (a copy of `model`) whose activations are `Activation` sites;
        it may have none, and `activation_sites` then raises.

    Raises:
        ValueError: on an invalid `functional`; on a `model.acts` that is not an
            `nn.ModuleDict`; if fx is needed (functional True, or "auto" with
            functional calls in the source) but cannot trace the model.
    """
    if not (functional is True or functional is False or functional == "auto"):
        raise ValueError(f"functional must be True, False or 'auto', got {functional!r}")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    acts = getattr(model, "acts", None)
    if isinstance(acts, nn.ModuleDict):
        return model  # built-in: its hand-written sites are the searched ones
    if acts is not None:
        raise ValueError(f"{type(model).__name__}.acts is a {type(acts).__name__}, not the nn.ModuleDict of "
                         "Activation that built-in models use; rename it so make_searchable can add sites")
    from ..method.pruning import clone  # a plain deepcopy fails on a pruned model after a forward pass

    work = clone(model)
    patterns = (skip,) if isinstance(skip, str) else tuple(skip)  # one pattern, not its letters
    unsupported: dict[str, str] = {}
    graphs = points = None
    if functional is not False:
        try:
            graphs = _trace(work)
            points = [_call_points(work, g, patterns) for g in graphs]
            if len(points) == 2 and [p.key for p in points[0]] != [p.key for p in points[1]]:
                raise _TraceFailure("it calls different activations in train() and eval() mode")
        except _TraceFailure as failure:
            graphs = None
            name = type(model).__name__
            if functional is True:
                raise ValueError(f"torch.fx cannot trace {name} ({failure}); make its forward traceable or "
                                 "pass functional=False to convert activation modules only") from None
            calls = _functional_calls_in_source(work)
            if calls:
                raise ValueError(f"torch.fx cannot trace {name} ({failure}), so its functional activation calls "
                                 f"(first: {calls[0]}) cannot become sites; make its forward traceable or pass "
                                 "functional=False to convert activation modules only") from None
            warnings.warn(f"torch.fx cannot trace {name} ({failure}); converted its activation modules only, "
                          "a module called at several points being one site", stacklevel=2)
    if graphs is None:
        _replace_modules(work, patterns, unsupported)
    else:
        _rewrite(work, graphs, points, unsupported)
    work.safs_unsupported = unsupported
    return work


def unsupported_activations(model: nn.Module) -> dict[str, str]:
    """The activations `make_searchable` leaves alone because no operator in ACTIVATIONS computes them.

    Args:
        model: a result of `make_searchable` (its record is returned), a built-in
            model (its activation modules outside the sites are checked) or any
            other network (analysed with `make_searchable(model)` on a copy).

    Returns:
        Name (module path, or the name a functional call's site would get) ->
        what it is and why it was left alone, e.g.
        `{"act": "PReLU(num_parameters=1): no counterpart in ACTIVATIONS"}`.
    """
    recorded = getattr(model, "safs_unsupported", None)
    if isinstance(recorded, dict):
        return dict(recorded)
    if isinstance(getattr(model, "acts", None), nn.ModuleDict):
        found: dict[str, str] = {}
        for path, m in model.named_modules():
            if isinstance(m, _ACTIVATION_MODULES):
                op, why = _module_op(m)
                if op is None:
                    found[path] = f"{m!r}: {why}"
        return found
    return dict(make_searchable(model).safs_unsupported)


# ----------------------------------------------------------------------------- numeric matching


def _match(fn: Callable[[Tensor], Tensor], candidates: tuple[str, ...]) -> tuple[str | None, bool]:
    """Return (the first candidate operator equal to fn on the probe or None, whether fn works in place)."""
    x = _PROBE.clone()
    try:
        out = fn(x)
    except Exception:  # e.g. a signature we do not expect: then it is no known operator
        return None, False
    if not isinstance(out, Tensor) or out.shape != _PROBE.shape:
        return None, False
    inplace = out.data_ptr() == x.data_ptr()
    for op in candidates:
        if torch.allclose(out, ACTIVATIONS[op](_PROBE), rtol=1e-6, atol=1e-7):
            return op, inplace
    return None, inplace


def _module_function(m: nn.Module) -> str | None:
    """The torch function name of an activation module (most specific class first), else None."""
    for cls in type(m).__mro__:
        if cls in MODULE_FUNCTIONS:
            return MODULE_FUNCTIONS[cls]
    return None


def _module_op(m: nn.Module) -> tuple[str | None, str]:
    """Return (library operator equal to the activation module m, or None; why it has none)."""
    base = _module_function(m)
    if base is None:
        return None, "no counterpart in ACTIVATIONS"
    op, _ = _match(m, FUNCTION_OPS[base])
    if op is None:
        return None, f"no operator in ACTIVATIONS computes it (checked: {', '.join(FUNCTION_OPS[base])})"
    return op, ""


def _has_node(value: object) -> bool:
    """Whether an fx argument (possibly nested) holds a graph node, i.e. depends on tensors of the graph."""
    found = []
    fx.node.map_arg(value, lambda n: found.append(n) or n)
    return bool(found)


@dataclass
class _Point:
    """One activation call point of a traced graph."""

    node: fx.Node
    kind: str  # "module" or "function"
    key: tuple  # identifies the call point across the train and eval graphs
    op: str | None  # library operator, None if unsupported
    description: str  # what it is, for the unsupported list
    inplace: bool
    scope: str  # module path: the module itself (kind "module") or the one whose forward calls it
    base: str  # the module's attribute name, or the torch function name


def _function_point(node: fx.Node, scope: str) -> _Point | None:
    """Classify a call_function / call_method node; None if it is no activation."""
    if node.op == "call_function":
        try:
            base = _FUNCTION_TARGETS.get(node.target)
        except TypeError:  # an unhashable target
            base = None
        module = getattr(node.target, "__module__", None) or "torch"
        module = "torch.nn.functional" if module == "torch._C._nn" else module  # where F.gelu & co. live
        where = f"{module}.{getattr(node.target, '__name__', node.target)}"
    else:
        base = _METHOD_TARGETS.get(node.target) if node.op == "call_method" else None
        where = f"Tensor.{node.target}"
    if base is None:
        return None
    args, kwargs = list(node.args), dict(node.kwargs)
    if args:
        x = args.pop(0)
    else:
        x = kwargs.pop("input", None)
    if not isinstance(x, fx.Node):
        return None  # a constant input: not an activation of the network's data
    shown = ", ".join([a.name if isinstance(a, fx.Node) else repr(a) for a in args]
                      + [f"{k}={v!r}" for k, v in kwargs.items()])
    description = f"{where}({shown})"
    key = ("function", scope, base)
    if _has_node(args) or _has_node(kwargs):
        return _Point(node, "function", key, None, f"{description}: its arguments depend on tensors",
                      False, scope, base)
    if not FUNCTION_OPS[base]:
        return _Point(node, "function", key, None, f"{description}: no counterpart in ACTIVATIONS",
                      False, scope, base)
    if node.op == "call_function":
        op, inplace = _match(lambda t: node.target(t, *args, **kwargs), FUNCTION_OPS[base])
    else:
        op, inplace = _match(lambda t: getattr(t, node.target)(*args, **kwargs), FUNCTION_OPS[base])
    why = f"no operator in ACTIVATIONS computes it (checked: {', '.join(FUNCTION_OPS[base])})"
    return _Point(node, "function", key, op, description if op else f"{description}: {why}", inplace, scope, base)


def _call_points(root: nn.Module, graph: fx.Graph, patterns: tuple[str, ...]) -> list[_Point]:
    """Every activation call point of the graph (sites already in place excluded), in graph order."""
    points = []
    for node in graph.nodes:
        if node.op == "call_module":
            m = root.get_submodule(node.target)
            if isinstance(m, Activation) or not isinstance(m, _ACTIVATION_MODULES):
                continue
            if any(fnmatch.fnmatchcase(node.target, p) for p in patterns):
                continue
            op, why = _module_op(m)
            if op is not None and (len(node.args) != 1 or node.kwargs):
                op, why = None, "called with more than one argument"
            inplace = bool(getattr(m, "inplace", False))
            scope, _, base = node.target.rpartition(".")
            points.append(_Point(node, "module", ("module", node.target), op,
                                 f"{m!r}: {why}" if op is None else repr(m), inplace, scope, base))
        elif node.op in ("call_function", "call_method"):
            stack = node.meta.get("nn_module_stack") or {}
            scope = list(stack.values())[-1][0] if stack else ""
            point = _function_point(node, scope)
            if point is None:
                continue
            if any(fnmatch.fnmatchcase(f"{scope}.{point.base}" if scope else point.base, p) for p in patterns):
                continue
            points.append(point)
    return points


# ----------------------------------------------------------------------------- tracing


class _TraceFailure(Exception):
    """fx could not give a graph to rewrite; the message says where and why (one line)."""


class _SiteTracer(fx.Tracer):
    """fx tracer that keeps every activation module (and every existing site) a leaf, subclasses included."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, (Activation, *_ACTIVATION_MODULES)) or super().is_leaf_module(m, module_qualified_name)


def _where(err: BaseException) -> str:
    """`file:line \\`code\\`` of the innermost frame of err's traceback outside torch, or ""."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if not f.filename.startswith(_TORCH_DIR)]
    if not frames:
        return ""
    f = frames[-1]
    return f"at {os.path.basename(f.filename)}:{f.lineno} `{(f.line or '').strip()}`: "


def _trace(root: nn.Module) -> list[fx.Graph]:
    """Trace root in train and in eval mode: [graph] if both agree, else [train graph, eval graph].

    Raises:
        _TraceFailure: if fx cannot trace root.
    """
    modes = {m: m.training for m in root.modules()}
    graphs = []
    try:
        for mode in (True, False):
            root.train(mode)
            try:
                graphs.append(_SiteTracer().trace(root))
            except Exception as err:  # fx raises TraceError, TypeError, RuntimeError, ... from user code
                first = (str(err).strip().splitlines() or [""])[0]
                raise _TraceFailure(f"{_where(err)}{type(err).__name__}: {first}") from None
    finally:
        for m, mode in modes.items():
            m.training = mode
    if graphs[0].python_code("self").src == graphs[1].python_code("self").src:
        return graphs[:1]
    return graphs


def _compile(graph: fx.Graph, name: str) -> Callable:
    """The graph as a Python function forward(self, ...), with its source in linecache for tracebacks."""
    code = graph.python_code(root_module="self")
    filename = f"<safs_lite: traced {name}.forward #{next(_forward_ids)}>"
    linecache.cache[filename] = (len(code.src), None, code.src.splitlines(True), filename)
    namespace = dict(code.globals)
    exec(compile(code.src, filename, "exec"), namespace)
    return namespace["forward"]


def _install_forward(model: nn.Module, graphs: list[fx.Graph]) -> None:
    """Give model a forward that runs the graph(s), via a subclass of its class (attributes and methods stay)."""
    base = getattr(type(model), "_safs_base_class", type(model))
    name = base.__name__
    if len(graphs) == 1:
        forward = _compile(graphs[0], name)
    else:
        train_forward, eval_forward = _compile(graphs[0], name), _compile(graphs[1], name)

        def forward(self, *args, **kwargs):
            return (train_forward if self.training else eval_forward)(self, *args, **kwargs)

        forward.__signature__ = inspect.signature(train_forward)
    model.__class__ = type(name, (base,), {
        "forward": forward, "_safs_base_class": base, "__module__": base.__module__,
        "__qualname__": base.__qualname__, "__doc__": base.__doc__,
    })


# ----------------------------------------------------------------------------- rewriting


class _Names:
    """Allocates site names in the module tree (see the module docstring)."""

    def __init__(self, root: nn.Module):
        self.root = root
        self.taken: set[tuple[str, str]] = set()

    def new(self, scope: str, base: str, first: int) -> str:
        """A free attribute name `base`, `base_<first>`, `base_<first + 1>`, ... in scope; returns its path."""
        parent_path, prefix = scope, ""
        while parent_path and isinstance(self.root.get_submodule(parent_path), _CONTAINERS):
            parent_path, _, leaf = parent_path.rpartition(".")
            prefix = f"{leaf}_{prefix}"
        parent = self.root.get_submodule(parent_path)
        stem = prefix + base
        for k in itertools.count(first):
            name = f"{stem}_{k}" if k else stem
            if (parent_path, name) not in self.taken and not hasattr(parent, name):
                break
        self.taken.add((parent_path, name))
        return f"{parent_path}.{name}" if parent_path else name


def _site_factory(root: nn.Module) -> Callable[[str], Activation]:
    """A maker of sites (alpha = beta = 1, frozen) on the device and float type of root's parameters."""
    like = next((t for t in itertools.chain(root.parameters(), root.buffers()) if t.is_floating_point()), None)
    if like is None:
        return Activation
    return lambda op: Activation(op).to(device=like.device, dtype=like.dtype)


def _add_site(root: nn.Module, path: str, site: Activation) -> None:
    parent_path, _, name = path.rpartition(".")
    root.get_submodule(parent_path).add_module(name, site)


def _replace_everywhere(root: nn.Module, new: dict[int, Activation]) -> None:
    """Replace every occurrence of each module (by id) with its site, aliases included."""
    for parent in list(root.modules()):
        # _modules, not named_children(): the latter skips a second name for the same module.
        for name, child in list(parent._modules.items()):
            if child is not None and id(child) in new:
                setattr(parent, name, new[id(child)])


def _redirect(graph: fx.Graph, old: fx.Node, new: fx.Node) -> None:
    """Make the uses of old that come after new read new (what an in-place activation did to its input)."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    for user in list(old.users):
        if user is not new and order[user] > order[new]:
            user.replace_input_with(old, new)


def _rewrite(root: nn.Module, graphs: list[fx.Graph], points: list[list[_Point]],
             unsupported: dict[str, str]) -> None:
    """Add a site per supported call point, rewrite every graph to call it, install the forward.

    Args:
        root: the model (a copy), modified in place.
        graphs: its train-mode graph, and its eval-mode graph where the two differ.
        points: the call points of each graph (`_call_points`), the same keys in the same order.
        unsupported: filled with the call points left alone.
    """
    names = _Names(root)
    new_site = _site_factory(root)
    first_site: dict[int, Activation] = {}  # id(module) -> site of its first call point
    sites: list[str | None] = []  # per call point: the site path, None if left alone
    calls: dict[str, int] = {}
    for p in points[0]:
        if p.kind == "module":
            target = p.node.target
            k = calls[target] = calls.get(target, -1) + 1
            if p.op is None:
                unsupported.setdefault(target, p.description)
                sites.append(None)
                continue
            if k == 0:
                first_site[id(root.get_submodule(target))] = new_site(p.op)
                sites.append(target)
            else:
                path = names.new(p.scope, p.base, 1)
                _add_site(root, path, new_site(p.op))
                sites.append(path)
        else:
            path = names.new(p.scope, p.base, 0)
            if p.op is None:
                unsupported[path] = p.description
                sites.append(None)
            else:
                _add_site(root, path, new_site(p.op))
                sites.append(path)
    _replace_everywhere(root, first_site)
    for graph, graph_points in zip(graphs, points):
        for p, path in zip(graph_points, sites):
            if path is None:
                continue
            node = p.node
            x = node.args[0] if node.args else node.kwargs["input"]
            if p.kind == "module":
                node.target = path
                site = node
            else:
                with graph.inserting_before(node):
                    site = graph.call_module(path, (x,))
                site.meta = dict(node.meta)
                node.replace_all_uses_with(site)
                graph.erase_node(node)
            if p.inplace:
                _redirect(graph, x, site)
        graph.lint()
    _install_forward(root, graphs)


def _replace_modules(root: nn.Module, patterns: tuple[str, ...], unsupported: dict[str, str]) -> None:
    """Replace each supported activation module (one site per instance, however often called) in place."""
    new: dict[int, Activation] = {}
    new_site = _site_factory(root)
    for path, m in root.named_modules():
        if not path or isinstance(m, Activation) or not isinstance(m, _ACTIVATION_MODULES):
            continue
        if any(fnmatch.fnmatchcase(path, p) for p in patterns):
            continue
        op, why = _module_op(m)
        if op is None:
            unsupported[path] = f"{m!r}: {why}"
        else:
            new[id(m)] = new_site(op)
    _replace_everywhere(root, new)


# ----------------------------------------------------------------------------- source scan


_MISSING = object()


def _resolve(expr: ast.expr, namespace: dict) -> object:
    """The object a Name / Attribute chain names in a module namespace, or _MISSING (a local, an expression)."""
    if isinstance(expr, ast.Name):
        return namespace.get(expr.id, getattr(builtins, expr.id, _MISSING))
    if isinstance(expr, ast.Attribute):
        obj = _resolve(expr.value, namespace)
        return _MISSING if obj is _MISSING else getattr(obj, expr.attr, _MISSING)
    return _MISSING


def _rooted_at(expr: ast.expr, name: str) -> bool:
    """Whether expr is `name` or an attribute chain on it (self.a.b)."""
    while isinstance(expr, ast.Attribute):
        expr = expr.value
    return isinstance(expr, ast.Name) and expr.id == name


def _calls_in(fn: Callable) -> list[str]:
    """Functional activation calls that FUNCTION_OPS can convert, found in fn's source, as `what at file:line`."""
    try:
        lines, start = inspect.getsourcelines(fn)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError):
        return []  # no source (built in, generated): nothing we can point at
    namespace = getattr(fn, "__globals__", {})
    func = tree.body[0] if tree.body and isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)) else None
    self_name = func.args.args[0].arg if func and func.args.args else "self"
    found = []
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call):
            continue
        f, hit = call.func, None
        if isinstance(f, ast.Name):
            target = _resolve(f, namespace)
            hit = f.id if _convertible(target) else None
        elif isinstance(f, ast.Attribute) and FUNCTION_OPS.get(f.attr.rstrip("_")):
            owner = _resolve(f.value, namespace)
            if owner is _MISSING:
                # x.relu(): a tensor method, unless it is a module attribute like self.relu(x)
                hit = None if _rooted_at(f.value, self_name) else ast.unparse(f)
            elif isinstance(owner, types.ModuleType) and _convertible(getattr(owner, f.attr, None)):
                hit = ast.unparse(f)
        if hit:
            where = f"{os.path.basename(inspect.getsourcefile(fn) or '?')}:{start + call.lineno - 1}"
            found.append((call.lineno, f"{hit} in {fn.__qualname__} at {where}"))
    return [text for _, text in sorted(found)]


def _convertible(fn: object) -> bool:
    """Whether fn is a functional activation with possible library counterparts (F.relu, torch.tanh, ...)."""
    try:
        base = _FUNCTION_TARGETS.get(fn)
    except TypeError:
        return False
    return bool(base and FUNCTION_OPS[base])


def _functional_calls_in_source(model: nn.Module) -> list[str]:
    """Functional activation calls in the forward source of every module class of model, outside torch.nn."""
    seen, found = set(), []
    for m in model.modules():
        fn = getattr(type(m), "forward", None)
        if fn is None or fn in seen or isinstance(m, (Activation, *_ACTIVATION_MODULES)):
            continue
        seen.add(fn)
        if getattr(fn, "__module__", "").startswith("torch.nn"):
            continue
        found += _calls_in(fn)
    return found


__all__ = ["make_searchable", "unsupported_activations", "FUNCTION_OPS", "MODULE_FUNCTIONS"]
