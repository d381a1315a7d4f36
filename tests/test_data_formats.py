"""CIFAR-10 and ImageNet-16 loaders on tiny files in the real pickle formats, written by the tests."""
import pickle

import numpy as np
import pytest
import torch

from safs_lite.data.builtin import load_data
from safs_lite.data.splits import DataNotFoundError


def _image_rows(n, offset, pixels):
    """n images as (n, 3 * pixels) uint8 rows, channel-major: image i has planes R = i, G = 100 + i, B = 200."""
    x = np.zeros((n, 3, pixels), dtype=np.uint8)
    for i in range(n):
        x[i, 0], x[i, 1], x[i, 2] = (offset + i) % 100, 100 + (offset + i) % 100, 200
    return x.reshape(n, 3 * pixels)


def _dump(path, obj, protocol=2):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def write_cifar10(root, per_batch=8, n_test=16, seed=0, bytes_keys=False):
    """data_batch_1..5 and test_batch as CIFAR-10's python version has them (Python 2 pickles of dicts).

    Loaded with encoding="latin1" (as torchvision does) the real files give str keys; a
    Python 3 re-save may keep bytes keys, so both are written on request. Image i's red
    plane holds i (its index over all files), its label is random in 0..9.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(seed)
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    files = [(f"data_batch_{b}", per_batch) for b in range(1, 6)] + [("test_batch", n_test)]
    offset = 0
    for name, n in files:
        _dump(folder / name, {key("batch_label"): name, key("labels"): g.integers(0, 10, n).tolist(),
                              key("data"): _image_rows(n, offset, 32 * 32),
                              key("filenames"): [f"img_{offset + i}.png" for i in range(n)]})
        offset += n
    return folder


def write_imagenet16(root, per_batch=4, n_val=12, seed=0, layout="flat"):
    """train_data_batch_1..10 and val_data in the downsampled-ImageNet format (Chrabaszcz et al. 2017).

    'data' (N, 768) uint8 channel-major, 'labels' 1..1000, and 'mean' (768 floats in 0..255,
    the mean training image) in the train batches. layout "zips" puts them in
    Imagenet16_train/ and Imagenet16_val/ as the official zips unpack.
    """
    folder = root / "Imagenet16"
    train_dir = folder / "Imagenet16_train" if layout == "zips" else folder
    val_dir = folder / "Imagenet16_val" if layout == "zips" else folder
    train_dir.mkdir(parents=True, exist_ok=True)
    val_dir.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(seed)
    mean = np.linspace(0.0, 255.0, 768)
    offset = 0
    for b in range(1, 11):
        _dump(train_dir / f"train_data_batch_{b}", {"data": _image_rows(per_batch, offset, 256),
                                                    "labels": g.integers(1, 1001, per_batch).tolist(),
                                                    "mean": mean})
        offset += per_batch
    _dump(val_dir / "val_data", {"data": _image_rows(n_val, offset, 256),
                                 "labels": g.integers(1, 1001, n_val).tolist()})
    return folder


def ids(split):
    return set(split.x[:, 0, 0, 0].tolist())


@pytest.mark.parametrize("bytes_keys", [False, True])
def test_cifar10_pickles_load_channel_major_with_a_seeded_validation_split(tmp_path, bytes_keys):
    write_cifar10(tmp_path, bytes_keys=bytes_keys)
    d = load_data("cifar10", root=tmp_path, seed=0, val_size=10)
    assert [len(s) for s in d] == [30, 10, 16] and d.num_classes == 10
    assert d.train.x.dtype == torch.uint8 and d.input_shape == (3, 32, 32)
    # channel-major rows: the planes come out as channels, constant over each image
    x = d.train.x
    assert torch.equal(x[:, 1], x[:, 0] + 100) and (x[:, 2] == 200).all()
    assert ids(d.train).isdisjoint(ids(d.val)) and ids(d.train) | ids(d.val) == set(range(40))
    assert ids(d.test) == set(range(40, 56))  # test_batch is the test split, untouched
    assert d.augment and d.crop_pad == 4 and d.mean_image is None
    assert d.mean == (0.4914, 0.4822, 0.4465) and d.std == (0.2470, 0.2435, 0.2616)
    assert "cifar-10-batches-py" in d.source


def test_torchvision_refuses_files_it_did_not_download(tmp_path):
    """Why data.py reads the pickles itself: torchvision's CIFAR10 checks md5 sums."""
    from torchvision.datasets import CIFAR10

    write_cifar10(tmp_path)
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        CIFAR10(str(tmp_path), train=True, download=False)


def test_validation_split_is_seeded_and_disjoint(tmp_path):
    write_cifar10(tmp_path)
    a, b, c = (load_data("cifar10", root=tmp_path, seed=s, val_size=10) for s in (0, 0, 1))
    assert ids(a.val) == ids(b.val) and ids(a.val) != ids(c.val)
    assert torch.equal(a.train.x, b.train.x)
    default = load_data("cifar10", root=tmp_path)  # 40 training images: a fifth is the default validation
    assert [len(s) for s in default] == [32, 8, 16]
    with pytest.raises(ValueError, match="val_size must be between 1 and 39"):
        load_data("cifar10", root=tmp_path, val_size=40)


def test_cifar10_batches_crop_flip_and_normalise(tmp_path):
    write_cifar10(tmp_path)
    d = load_data("cifar10", root=tmp_path, val_size=10)
    mean, std = torch.tensor(d.mean).view(1, 3, 1, 1), torch.tensor(d.std).view(1, 3, 1, 1)
    xb, yb = next(d.batches("val", 256))
    assert torch.allclose(xb, (d.val.x.float() / 255 - mean) / std)  # evaluation: normalised only
    g = torch.Generator().manual_seed(0)
    xa, ya = next(d.batches("train", 256, shuffle=True, generator=g, train=True))
    assert xa.shape == (30, 3, 32, 32) and ya.shape == (30,) and xa.dtype == torch.float32
    # crops padded with black: some pixels equal the normalised 0, none of the originals are exactly black
    black = (-mean / std).view(3)
    assert ((xa == black.view(1, 3, 1, 1)).all(1)).any()
    # a batch of 9 with batch size 4 during training drops the single last image (batch norm needs 2)
    assert [len(y) for _, y in d.batches("train", 4, train=True, limit=9)] == [4, 4]
    assert [len(y) for _, y in d.batches("train", 4, limit=9)] == [4, 4, 1]


@pytest.mark.parametrize("layout", ["flat", "zips"])
def test_imagenet16_pickles_mean_image_and_labels(tmp_path, layout):
    write_imagenet16(tmp_path, layout=layout)
    d = load_data("imagenet16", root=tmp_path, seed=0, val_size=8)
    assert [len(s) for s in d] == [32, 8, 12] and d.num_classes == 1000
    assert d.input_shape == (3, 16, 16) and d.train.x.dtype == torch.uint8
    assert torch.equal(d.train.x[:, 1], d.train.x[:, 0] + 100)
    assert ids(d.test) == set(range(40, 52))  # val_data is the reported test set, never the validation split
    assert ids(d.train).isdisjoint(ids(d.val)) and ids(d.train) | ids(d.val) == set(range(40))
    labels = torch.cat([d.train.y, d.val.y, d.test.y])
    assert labels.min() >= 0 and labels.max() <= 999  # 1..1000 in the files
    assert torch.allclose(d.mean_image, torch.linspace(0, 255, 768, dtype=torch.float64).float().view(3, 16, 16) / 255)
    assert d.augment and d.crop_pad == 0 and d.mean is None
    xb, _ = next(d.batches("test", 256))
    assert torch.allclose(xb, d.test.x.float() / 255 - d.mean_image)  # mean-image subtraction, in batch
    # training augmentation is a horizontal flip only (as the reference's mirrored copies)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(32, generator=torch.Generator().manual_seed(0))
    xa, _ = next(d.batches("train", 256, shuffle=True, generator=g, train=True))
    plain = d.train.x[order].float() / 255 - d.mean_image
    same = (xa == plain).flatten(1).all(1)
    mirrored = (xa == plain.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all() and same.any() and mirrored.any()


def test_missing_imagenet16_is_one_clear_line(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_data("imagenet16", root=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "Imagenet16" in msg and "SAFS_DATA" in msg and "val_data" in msg


def _corrupt(kind, folder, dataset):
    """Break one file of a written dataset; return the file's name."""
    name = "data_batch_3" if dataset == "cifar10" else "train_data_batch_1"
    path = folder / name
    d = pickle.loads(path.read_bytes()) if path.exists() else None
    if kind == "missing":
        path.unlink()
    elif kind == "garbage":
        path.write_bytes(b"\x80\x02this is not a pickle")
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif kind == "not_a_dict":
        _dump(path, [1, 2, 3])
    elif kind == "no_labels":
        del d["labels"]
        _dump(path, d)
    elif kind == "no_mean":
        d.pop("mean", None)
        d.pop("data")  # cifar10: a missing key of its own
        _dump(path, d)
    elif kind == "wrong_shape":
        d["data"] = d["data"][:, :-8]
        _dump(path, d)
    elif kind == "float_data":
        d["data"] = d["data"].astype(np.float32) / 255
        _dump(path, d)
    elif kind == "bad_labels":
        d["labels"] = [5000] * len(d["labels"])
        _dump(path, d)
    elif kind == "too_few_labels":
        d["labels"] = d["labels"][:-1]
        _dump(path, d)
    return name


KINDS = ["missing", "garbage", "truncated", "not_a_dict", "no_labels", "no_mean", "wrong_shape", "float_data",
         "bad_labels", "too_few_labels"]


@pytest.mark.parametrize("dataset", ["cifar10", "imagenet16"])
@pytest.mark.parametrize("kind", KINDS)
def test_malformed_files_are_one_line_naming_the_file(tmp_path, dataset, kind):
    folder = write_cifar10(tmp_path) if dataset == "cifar10" else write_imagenet16(tmp_path)
    name = _corrupt(kind, folder, dataset)
    with pytest.raises(DataNotFoundError) as err:
        load_data(dataset, root=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and name in msg and msg.startswith(dataset), msg


def test_imagenet16_without_label_offset_is_caught(tmp_path):
    """Labels 0..999 (an already shifted file) are not silently shifted again."""
    folder = write_imagenet16(tmp_path)
    d = pickle.loads((folder / "val_data").read_bytes())
    d["labels"] = [0] * len(d["labels"])
    _dump(folder / "val_data", d)
    with pytest.raises(DataNotFoundError, match=r"val_data.*labels in 1\.\.1000"):
        load_data("imagenet16", root=tmp_path)
