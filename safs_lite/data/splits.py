"""The data layer's basic pieces: a `Split` (x, y), seeded train / validation splitting, the built-in datasets'
names, classes and input shapes, and `DataNotFoundError`."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


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


def _cat(splits: list[Split]) -> Split:
    return Split(torch.cat([s.x for s in splits]), torch.cat([s.y for s in splits]))


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


def num_classes(name: str) -> int:
    """Number of classes of a dataset (10, or 1000 for imagenet16)."""
    return NUM_CLASSES[check_dataset(name)]
