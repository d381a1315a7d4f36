"""`Data`: a dataset as in-memory tensors, split train / validation / test, batched directly.

Small image datasets fit in memory as uint8 tensors, so the training loop slices batches out of one tensor
instead of decoding images one by one in a DataLoader (see benchmarks/throughput.py for what that buys).
Your own data: `Data.from_tensors((x, y), (x_test, y_test))` or `Data.from_datasets(train_ds, test_ds)`.
The dtype of x decides the scaling: uint8 images are divided by 255 in `Data.batches` (as the built-in
datasets), floating x (features (N, F), float images, ...) are used as given.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor

from .own import _NAME, _carve_size, _materialise, _norm, _pair
from .splits import DATASETS, Split, _split


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
