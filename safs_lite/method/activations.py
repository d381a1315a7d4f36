"""Activation operators and the per-layer activation model f(x) = alpha * op(beta * x).

SAFS (SAFS_METHOD.md, section 2) gives every activation site i its own unary
operator ``op_i`` and a learnable pair of scalars ``alpha_i``, ``beta_i``.
Stage 1 searches the operators with alpha = beta = 1 frozen; stage 2 trains
alpha and beta. This module holds:

- the bare operators (plain functions ``op(x) -> Tensor``), safe in float32
  for |x| up to 1e4 (finite values and gradients);
- the registry ``ACTIVATIONS`` (name -> operator), the searched subset
  ``SEARCH_SPACE`` and the getter ``get_op``;
- ``Activation``, the module for one site;
- helpers for any model that exposes its sites as ``model.acts``, an
  ``nn.ModuleDict`` mapping site name (``"conv1"``, ``"fc1"``, ...) to
  ``Activation``.

Example:
    >>> act = Activation("swish", alpha=2.0, trainable=True)
    >>> act(torch.zeros(3))
    tensor([0., 0., 0.], grad_fn=<MulBackward0>)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Inner constants of the parameterised operators. These are fixed numbers,
# separate from the per-layer alpha/beta. The reference code (automl/SAFS,
# safs/models/activation.py) has no constants of its own: it reuses the
# layer's alpha/beta as the inner parameters, which are 1 during stage 1.
# We keep its stage-1 values wherever they give a distinct operator.
SWISH_BETA = 1.0  # reference: x * sigmoid(beta_layer * x), beta_layer = 1 -> SiLU
TANHSOFT1_P = 1.0  # reference: tanh(alpha_layer * x) * softplus(x), alpha_layer = 1
SRS_A = 1.0  # reference: srs(x, a=alpha_layer, b=beta_layer), both 1 in stage 1
SRS_B = 1.0
# ACON-C in the reference uses p1 = alpha_layer, p2 = beta_layer = 1, which
# makes p1 - p2 = 0 and collapses acon to the identity (a duplicate of
# "linear"); p1 = 1, p2 = 0 would collapse it to swish. p2 = 0.25 keeps a
# distinct operator: slope 1 for x -> +inf, slope 0.25 for x -> -inf (the
# negative slope PReLU starts from, He et al. 2015); p3 = 1 is the ACON
# paper's initial switching factor (Ma et al. 2021).
ACON_P1 = 1.0
ACON_P2 = 0.25
ACON_P3 = 1.0
# exp(20) ~ 4.9e8: large enough that symexp is exponential over any sensible
# pre-activation range, small enough that the next layer (weights * 4.9e8,
# squared in a loss) stays far below float32's max (~3.4e38; exp overflows at 88).
SYMEXP_CLAMP = 20.0

# Part of every SAFS run's cache key: bump it when any operator's definition changes, so runs
# made with the old operators are never reused.
OPS_VERSION = "1"


def _sign(x: Tensor) -> Tensor:
    """Return +1 where x >= 0 and -1 elsewhere (unlike torch.sign, never 0)."""
    # torch.sign(0) = 0 would give the odd operators below a zero gradient at
    # x = 0, where the true derivative is 1.
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


def linear(x: Tensor) -> Tensor:
    """Identity operator (the reference's "linear")."""
    return x


def swish(x: Tensor, beta: float = SWISH_BETA) -> Tensor:
    """Swish, x * sigmoid(beta * x); beta = 1 is SiLU (Ramachandran et al. 2017)."""
    if beta == 1.0:
        return F.silu(x)
    return x * torch.sigmoid(beta * x)


def tanhsoft1(x: Tensor, p: float = TANHSOFT1_P) -> Tensor:
    """TanhSoft-1, tanh(p * x) * softplus(x) (Biswas et al. 2020)."""
    return torch.tanh(p * x) * F.softplus(x)


def acon(x: Tensor, p1: float = ACON_P1, p2: float = ACON_P2, p3: float = ACON_P3) -> Tensor:
    """ACON-C, (p1 - p2) x * sigmoid(p3 (p1 - p2) x) + p2 x (Ma et al. 2021).

    The defaults p1 = 1, p2 = 0.25, p3 = 1 are ours: the reference's stage-1
    values (p1 = p2 = 1) reduce ACON-C to the identity, see ACON_P2 above.
    """
    z = (p1 - p2) * x
    return z * torch.sigmoid(p3 * z) + p2 * x


def srs(x: Tensor, a: float = SRS_A, b: float = SRS_B) -> Tensor:
    """Soft-Root-Sign, x / (x / a + exp(-x / b)) (Zhou et al. 2020).

    Defaults a = b = 1 are the reference's stage-1 values; the SRS paper
    initialises its learnable a, b at 2 and 3 (call ``srs(x, 2.0, 3.0)``).

    Computed as x e / (x e / a + exp(-relu(x) / b)) with e = exp(-relu(-x) / b),
    i.e. numerator and denominator multiplied by exp(x / b) for x < 0, so no
    exp argument is positive: no overflow, and no inf/inf in the gradient. The
    denominator is then >= min(1, 1 - b / (a e)) > 0 whenever a > b / e; for
    a <= b / e the formula itself has a pole at some x < 0, so we refuse it.

    Raises:
        ValueError: if a <= b / e (the operator would divide by zero).
    """
    if not a > b / math.e:
        raise ValueError(f"srs needs a > b/e so its denominator never reaches 0, got a={a}, b={b}")
    e = torch.exp(-F.relu(-x) / b)
    xe = x * e
    return xe / (xe / a + torch.exp(-F.relu(x) / b))


def symlog(x: Tensor) -> Tensor:
    """Symmetric log, sign(x) * log(1 + |x|) (Hafner et al. 2023)."""
    s = _sign(x)
    return s * torch.log1p(s * x)


def symexp(x: Tensor) -> Tensor:
    """Symmetric exp, sign(x) * (exp(|x|) - 1), with |x| clamped at SYMEXP_CLAMP.

    The clamp is ours (the reference overflows to inf for |x| > 88 in float32):
    beyond |x| = 20 the output is constant at +-(exp(20) - 1) and its gradient 0.
    In float16, whose largest value is 65504, the clamp is 10 (exp(10) = 22026),
    so mixed precision on older GPUs stays finite too.
    """
    s = _sign(x)
    clamp = SYMEXP_CLAMP if x.dtype != torch.float16 else 10.0
    return s * torch.expm1((s * x).clamp(max=clamp))


def elish(x: Tensor) -> Tensor:
    """ELiSH: x * sigmoid(x) for x >= 0, (exp(x) - 1) * sigmoid(x) for x < 0 (Basirat & Roth 2018)."""
    # Clamping the exp argument keeps the unused branch finite for large x,
    # so torch.where's backward never multiplies 0 by inf.
    negative = torch.expm1(x.clamp(max=0.0)) * torch.sigmoid(x)
    return torch.where(x >= 0, F.silu(x), negative)


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    # searched (SAFS_METHOD.md section 2)
    "relu6": F.relu6,
    "hardswish": F.hardswish,
    "swish": swish,
    "tanhsoft1": tanhsoft1,
    "acon": acon,
    "gelu": F.gelu,  # exact erf form (approximate="none")
    "srs": srs,
    "elu": F.elu,
    "tanh": torch.tanh,
    "softplus": F.softplus,
    "logsigmoid": F.logsigmoid,  # stable, unlike log(sigmoid(x))
    "symlog": symlog,
    "symexp": symexp,
    # registered but not searched; relu is the baseline
    "relu": F.relu,
    "linear": linear,
    "selu": F.selu,
    "sigmoid": torch.sigmoid,
    "mish": F.mish,
    "hardtanh": F.hardtanh,
    "sin": torch.sin,
    "cos": torch.cos,
    "elish": elish,
}

SEARCH_SPACE: tuple[str, ...] = (
    "relu6", "hardswish", "swish", "tanhsoft1", "acon", "gelu", "srs",
    "elu", "tanh", "softplus", "logsigmoid", "symlog", "symexp",
)  # fmt: skip


def _check_op(name: object) -> str:
    """Return name if it is a registered operator, else raise ValueError."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"unknown activation operator {name!r}; valid: {', '.join(ACTIVATIONS)}")
    return name


def get_op(name: str) -> Callable[[Tensor], Tensor]:
    """Look up a bare operator by name.

    Args:
        name: registry key, e.g. ``"swish"``.

    Returns:
        The operator, a function ``op(x) -> Tensor``.

    Raises:
        ValueError: if name is not in ACTIVATIONS; the message lists the valid names.
    """
    return ACTIVATIONS[_check_op(name)]


class Activation(nn.Module):
    """One activation site: alpha * op(beta * x) with scalar, optionally trainable alpha, beta.

    alpha and beta are always ``nn.Parameter`` (0-dim), so they are in the
    state_dict and can get their own optimiser group even while frozen. The
    operator is looked up by name at every call, so ``op_name`` is the single
    source of truth.

    Args:
        op: registry name of the operator.
        alpha: initial output scale.
        beta: initial input scale.
        trainable: whether alpha and beta get gradients.
    """

    def __init__(self, op: str = "relu", alpha: float = 1.0, beta: float = 1.0, trainable: bool = False):
        super().__init__()
        self._op_name = _check_op(op)
        self.alpha = nn.Parameter(torch.tensor(float(alpha)), requires_grad=trainable)
        self.beta = nn.Parameter(torch.tensor(float(beta)), requires_grad=trainable)

    @property
    def op_name(self) -> str:
        """Registry name of the current operator."""
        return self._op_name

    @op_name.setter
    def op_name(self, name: str) -> None:
        self._op_name = _check_op(name)

    def set_op(self, name: str) -> Activation:
        """Change the operator (validated); alpha and beta are kept. Returns self."""
        self.op_name = name
        return self

    @property
    def trainable(self) -> bool:
        """Whether alpha and beta currently receive gradients."""
        return self.alpha.requires_grad

    def set_trainable(self, flag: bool) -> Activation:
        """Freeze (False) or unfreeze (True) alpha and beta. Returns self."""
        self.alpha.requires_grad_(flag)
        self.beta.requires_grad_(flag)
        return self

    def forward(self, x: Tensor) -> Tensor:
        """Return alpha * op(beta * x)."""
        return self.alpha * ACTIVATIONS[self._op_name](self.beta * x)

    def get_extra_state(self) -> dict:
        # The operator travels with alpha/beta in the state_dict, so a checkpoint is self-contained.
        return {"op": self._op_name}

    def set_extra_state(self, state: dict) -> None:
        self.op_name = state["op"]

    def extra_repr(self) -> str:
        return (
            f"op={self._op_name!r}, alpha={self.alpha.item():.4g}, "
            f"beta={self.beta.item():.4g}, trainable={self.trainable}"
        )


def activation_sites(model: nn.Module) -> dict[str, Activation]:
    """Return the model's activation sites, in definition order.

    A built-in model keeps its sites in ``model.acts``; any other model's sites
    are its ``Activation`` submodules (what ``safs_lite.make_searchable`` makes
    of its activations), named by their ``named_modules()`` path, e.g.
    ``"layer1.0.relu"``. A module registered under several paths is one site.

    Args:
        model: a module with ``model.acts``, a non-empty ``nn.ModuleDict`` of
            ``Activation``; or, without ``acts``, one with ``Activation`` submodules.

    Returns:
        Site name -> ``Activation`` (the live modules, not copies).

    Raises:
        ValueError: if ``model.acts`` is not a ModuleDict, empty, or holds
            something other than ``Activation``; or if the model has no
            ``acts`` and no ``Activation`` submodule.
    """
    acts = getattr(model, "acts", None)
    if acts is None:
        sites = {name: m for name, m in model.named_modules() if name and isinstance(m, Activation)}
        if not sites:
            left = getattr(model, "safs_unsupported", None)  # set by make_searchable
            if left is None:
                why = "safs_lite.make_searchable(model) turns its activations (nn.ReLU, F.relu, ...) into sites"
            elif left:
                why = f"make_searchable left its activations alone ({'; '.join(f'{k}: {v}' for k, v in left.items())})"
            else:
                why = "make_searchable found no activation in it"
            raise ValueError(f"{type(model).__name__} has no activation sites: no model.acts and no "
                             f"Activation submodule; {why}")
        return sites
    if not isinstance(acts, nn.ModuleDict):
        raise ValueError(
            f"{type(model).__name__} has no activation sites: expected model.acts to be an "
            f"nn.ModuleDict of Activation, got {type(acts).__name__}"
        )
    if len(acts) == 0:
        raise ValueError(f"{type(model).__name__}.acts is empty: the model has no activation sites")
    wrong = [name for name, m in acts.items() if not isinstance(m, Activation)]
    if wrong:
        raise ValueError(f"{type(model).__name__}.acts entries {wrong} are not Activation modules")
    return dict(acts.items())


def get_activations(model: nn.Module) -> dict[str, str]:
    """Return the operator name of every site.

    Args:
        model: a model with ``model.acts`` (see ``activation_sites``).

    Returns:
        Site name -> operator name, e.g. ``{"conv1": "tanh", "fc1": "elu"}``.
    """
    return {site: act.op_name for site, act in activation_sites(model).items()}


def set_activations(model: nn.Module, ops: Mapping[str, str] | Sequence[str]) -> nn.Module:
    """Set the operators of a model's sites, validating everything before changing anything.

    Args:
        model: a model with ``model.acts`` (see ``activation_sites``).
        ops: either site name -> operator name (sites left out keep their
            operator), or one operator name per site in site order.

    Returns:
        The same model, modified in place.

    Raises:
        ValueError: on an empty ``ops``, an unknown site, an unknown operator,
            a sequence whose length differs from the number of sites, or a
            bare string; the model is then left unchanged.
    """
    sites = activation_sites(model)
    if isinstance(ops, str):
        # A string is a Sequence too; "tanh" would otherwise read as 4 operators.
        raise ValueError(f"ops must be a dict or a sequence of operator names, got the string {ops!r}")
    if len(ops) == 0:
        raise ValueError(f"ops is empty; give a dict or one operator per site for sites {list(sites)}")
    if isinstance(ops, Mapping):
        unknown = [site for site in ops if site not in sites]
        if unknown:
            raise ValueError(f"unknown activation site(s) {unknown}; valid sites: {list(sites)}")
        new = dict(ops)
    else:
        ops = list(ops)
        if len(ops) != len(sites):
            raise ValueError(f"got {len(ops)} operators for {len(sites)} activation sites {list(sites)}")
        new = dict(zip(sites, ops))
    for name in new.values():
        _check_op(name)
    for site, name in new.items():
        sites[site].set_op(name)
    return model


def get_alpha_beta(model: nn.Module) -> dict[str, tuple[float, float]]:
    """Return the current (alpha, beta) of every site.

    Args:
        model: a model with ``model.acts`` (see ``activation_sites``).

    Returns:
        Site name -> (alpha, beta) as Python floats.
    """
    return {site: (act.alpha.item(), act.beta.item()) for site, act in activation_sites(model).items()}


def set_trainable_scales(model: nn.Module, flag: bool) -> nn.Module:
    """Freeze (False, stage 1) or unfreeze (True, stage 2) alpha and beta at every site.

    Args:
        model: a model with ``model.acts`` (see ``activation_sites``).
        flag: whether alpha and beta should receive gradients.

    Returns:
        The same model, modified in place.
    """
    for act in activation_sites(model).values():
        act.set_trainable(flag)
    return model


def scale_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Return every activation module's alpha and beta, e.g. for an optimiser group without weight decay.

    Works on any model (one without activation sites gives an empty list).

    Args:
        model: any module.

    Returns:
        [alpha_1, beta_1, alpha_2, beta_2, ...] in module order.
    """
    return [p for m in model.modules() if isinstance(m, Activation) for p in (m.alpha, m.beta)]
