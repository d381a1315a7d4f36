"""Your own tensors or datasets as `Data`: the checks and conversions behind `Data.from_tensors` and
`Data.from_datasets` (dtypes, shapes, labels, normalisation, the validation carve-out), each bad value a one-line
error."""
from __future__ import annotations

import math
import re
from typing import Any, Sequence

import torch
from torch import Tensor

from .splits import Split

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


_VALID_X = ("torch.uint8 (images 0..255, divided by 255) or a floating dtype (float16, bfloat16, float32, "
            "float64; used as given)")


_X_DTYPES = (torch.uint8, torch.float16, torch.bfloat16, torch.float32, torch.float64)


_MATERIALISE_BAR = 10_000  # items from which reading a dataset shows a progress bar


def _tensor(a: Any, what: str) -> Tensor:
    """`a` (tensor, numpy array, list) as a detached CPU tensor; ValueError naming `what` otherwise."""
    import numpy as np

    if isinstance(a, Tensor):
        return a.detach().cpu()
    if isinstance(a, np.ndarray) and not a.flags.writeable:
        a = a.copy()  # torch warns about (and may not alias) read-only arrays
    try:
        return torch.as_tensor(a)
    except (TypeError, ValueError, RuntimeError) as err:
        kind = f"array of dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
        raise ValueError(f"{what}: cannot read a {kind} as a numeric tensor ({str(err).splitlines()[0][:120]})") \
            from None


def _pair(pair: Any, split: str) -> Split:
    """Check and convert one (x, y) pair: x uint8 or floating (N, ...), y (N,) int64 labels >= 0."""
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ValueError(f"{split} must be an (x, y) pair, got {type(pair).__name__}"
                         f"{f' of length {len(pair)}' if isinstance(pair, (tuple, list)) else ''}")
    x, y = _tensor(pair[0], f"{split} x"), _tensor(pair[1], f"{split} y")
    if x.ndim < 2:
        raise ValueError(f"{split} x has shape {tuple(x.shape)}; expected (N, ...) with at least one dimension "
                         "per sample, e.g. (N, F) features (x.unsqueeze(1) for one feature)")
    if y.ndim != 1:
        raise ValueError(f"{split} y has shape {tuple(y.shape)}; expected (N,) class labels "
                         "(for one-hot labels use y.argmax(1))")
    if len(x) != len(y):
        raise ValueError(f"{split}: x has {len(x)} samples but y has {len(y)} labels; they must match")
    if len(y) == 0:
        raise ValueError(f"{split} is empty (0 samples); every split needs at least one")
    if x.dtype not in _X_DTYPES:
        raise ValueError(f"{split} x has dtype {x.dtype}; valid: {_VALID_X}; convert with x.float() "
                         "or x.to(torch.uint8)")
    if y.dtype.is_complex:
        raise ValueError(f"{split} y has dtype {y.dtype}; labels must be integers 0..K-1")
    if y.is_floating_point():  # integral floats (e.g. labels read from a float CSV) are fine
        bad = ~torch.isfinite(y) | (y != y.round())
        if bad.any():
            raise ValueError(f"{split} y has the non-integer label {y[bad][0].item()} (at {int(bad.nonzero()[0])}); "
                             "labels must be integer class indices 0..K-1")
    y = y.to(torch.int64)
    if int(y.min()) < 0:
        raise ValueError(f"{split} has the negative label {int(y.min())}; labels must be class indices 0..K-1")
    if x.dtype == torch.float64:
        x = x.float()  # the models compute in float32; half the memory
    if x.is_floating_point():
        bad = ~torch.isfinite(x)
        if bad.any():  # a NaN input makes the first loss NaN, far from its cause
            raise ValueError(f"{split} x has {int(bad.sum())} non-finite values (NaN or inf), the first in sample "
                             f"{int(bad.flatten(1).any(1).nonzero()[0])}; clean or impute them first")
    return Split(x.contiguous(), y.contiguous())


def _norm(mean: Sequence[float] | None, std: Sequence[float] | None,
          sample_shape: torch.Size) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """Check mean/std: both or neither, one value or one per channel (dim 1), std > 0."""
    if mean is None and std is None:
        return None, None
    if mean is None or std is None:
        raise ValueError(f"give both mean and std, or neither (got mean={mean!r}, std={std!r})")
    as_tuple = lambda v: tuple(float(a) for a in (v.tolist() if hasattr(v, "tolist") else  # noqa: E731
                                                   v if isinstance(v, (tuple, list)) else [v]))
    mean, std = as_tuple(mean), as_tuple(std)
    channels = sample_shape[0]
    for label, v in (("mean", mean), ("std", std)):
        if len(v) not in (1, channels):
            raise ValueError(f"{label} has {len(v)} values; valid: 1 or one per channel ({channels}, "
                             f"dim 1 of x, samples of shape {tuple(sample_shape)})")
    if not all(math.isfinite(m) for m in mean) or not all(math.isfinite(s) and s > 0 for s in std):
        raise ValueError(f"mean must be finite and std finite and > 0, got mean={mean}, std={std}")
    if len(mean) != len(std):  # broadcast the single one, so batches can view both alike
        mean, std = (mean * len(std), std) if len(mean) == 1 else (mean, std * len(mean))
    return mean, std


def _carve_size(n: int, val_fraction: float | None, val_size: int | None) -> int:
    """Validation samples to carve out of n training samples; ValueError if impossible."""
    if val_fraction is not None and val_size is not None:
        raise ValueError(f"give val_fraction or val_size, not both (got {val_fraction!r} and {val_size!r})")
    if n < 2:
        raise ValueError(f"train has {n} sample: too few to carve a validation split (need at least 2); "
                         "pass val=(x, y)")
    if val_size is not None:
        if isinstance(val_size, bool) or not isinstance(val_size, int) or not 0 < val_size < n:
            raise ValueError(f"val_size must be an integer in 1..{n - 1} (train has {n} samples), got {val_size!r}")
        return val_size
    frac = 0.1 if val_fraction is None else val_fraction
    if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {frac!r}")
    return min(max(1, round(frac * n)), n - 1)  # at least one sample on each side


def _item_x(x: Any, what: str) -> Tensor:
    """One dataset item's x as a tensor: PIL images as uint8 (C, H, W), anything else as it is."""
    if hasattr(x, "getbands") and hasattr(x, "convert"):  # a PIL image, without importing PIL
        import numpy as np

        if x.mode.startswith("I;16"):  # 16-bit grey: scaled to [0, 1] as float32, not clipped to 0..255
            a = np.asarray(x).astype(np.float32) / 65535.0
            return torch.from_numpy(a).unsqueeze(0)
        if x.mode in ("1", "P", "LA", "PA"):
            x = x.convert("RGBA" if "A" in x.mode else "RGB" if x.mode == "P" else "L")
        a = np.asarray(x)
        t = torch.from_numpy(a.copy())
        return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1).contiguous()  # HWC -> CHW
    return x if isinstance(x, Tensor) else _tensor(x, what)


def _item_y(y: Any) -> Any:
    return y.item() if hasattr(y, "item") and getattr(y, "ndim", 0) == 0 else y


def _materialise(ds: Any, split: str, progress: bool) -> tuple[Tensor, Tensor]:
    """Read a dataset of (x, y) items into (x (N, ...), y (N,)) tensors, once."""
    from torch.utils.data import TensorDataset

    if isinstance(ds, TensorDataset) and len(ds.tensors) == 2:
        return ds.tensors[0], ds.tensors[1]  # already tensors: no need to read item by item
    try:
        n = len(ds)
    except TypeError:  # an IterableDataset: no length, read it as it comes
        n = None
    items = iter(ds) if n is None else (ds[i] for i in range(n))
    from tqdm.auto import tqdm

    bar = tqdm(items, total=n, desc=f"reading {split}", unit="item", leave=False,
               disable=not progress or (n or 0) < _MATERIALISE_BAR)
    xs: list[Tensor] = []
    ys: list[Any] = []
    for i, item in enumerate(bar):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(f"{split} dataset item {i} is a {type(item).__name__}"
                             f"{f' of length {len(item)}' if isinstance(item, (tuple, list)) else ''}; "
                             "expected an (x, y) pair")
        x = _item_x(item[0], f"{split} dataset item {i}: x").detach().cpu()
        if xs and (x.shape != xs[0].shape or x.dtype != xs[0].dtype):
            raise ValueError(f"{split} dataset item {i}: x is {x.dtype} {tuple(x.shape)} but item 0 is "
                             f"{xs[0].dtype} {tuple(xs[0].shape)}; every item needs the same shape and dtype")
        xs.append(x)
        ys.append(_item_y(item[1]))
    bar.close()
    if not xs:
        raise ValueError(f"{split} is empty (0 samples); every split needs at least one")
    try:
        y = torch.as_tensor(ys)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{split} dataset: labels must be ints or 0-d tensors, got e.g. {ys[0]!r}") from None
    return torch.stack(xs), y
