"""The user's own data: Data.from_tensors / Data.from_datasets, their scaling, splits, signature and errors."""
import numpy as np
import pytest
import torch
from PIL import Image
from test_data import write_idx
from torch import nn
from torch.utils.data import Dataset, IterableDataset, TensorDataset

from safs_lite import Data, TrainConfig, evaluate, train
from safs_lite.data.builtin import load_data


def _features(n=60, f=5, k=3, seed=0):
    """n float feature vectors (n, f), labels 0..k-1 (every class present)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, f, generator=g), torch.arange(n) % k


def _images(n=20, seed=0):
    """n uint8 images (n, 1, 8, 8) and labels 0..3."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 8, 8), generator=g, dtype=torch.uint8), torch.arange(n) % 4


def _all(d, split):
    xs, ys = zip(*d.batches(split, 7))
    return torch.cat(xs), torch.cat(ys)


def _same(a, b):
    """Two Data objects hold the same splits, classes and signature."""
    assert a.num_classes == b.num_classes and a.signature == b.signature
    for sa, sb in zip(a, b):
        assert torch.equal(sa.x, sb.x) and torch.equal(sa.y, sb.y) and sa.x.dtype == sb.x.dtype


# --------------------------------------------------------------------------- behaviour

def test_uint8_images_give_the_batches_load_data_gives(tmp_path):
    write_idx(tmp_path / "MNIST" / "raw", gz=False)
    ref = load_data("mnist", root=tmp_path, val_size=10)
    own = Data.from_tensors((ref.train.x, ref.train.y), (ref.test.x, ref.test.y), val=(ref.val.x, ref.val.y))
    assert own.source == "user tensors (from_tensors)" and own.input_shape == (1, 28, 28)
    for split in ("train", "val", "test"):
        (xo, yo), (xr, yr) = _all(own, split), _all(ref, split)
        assert xo.dtype == torch.float32 and torch.equal(xo, xr) and torch.equal(yo, yr)
        assert torch.equal(xo, getattr(ref, split).x.float() / 255)  # the scaling: uint8 / 255
    # same bytes, same splits: the signature differs only by the name (and the settings hashed for user data)
    assert own.signature.startswith("custom-30-10-12-") and ref.signature.startswith("mnist-30-10-12-")


def test_float_features_are_used_as_given_and_train_an_mlp():
    x, y = _features(200, 4, 3)
    x[:, 0] += 3.0 * y  # a learnable signal
    xt, yt = _features(30, 4, 3, seed=1)
    d = Data.from_tensors((x.double(), y), (xt, yt), seed=0)  # float64 is stored as float32
    assert d.input_shape == (4,) and d.num_classes == 3 and [len(s) for s in d] == [180, 20, 30]
    assert d.train.x.dtype == torch.float32
    xb, yb = _all(d, "test")
    assert torch.equal(xb, xt) and torch.equal(yb, yt)  # unchanged: no /255, no normalisation
    xb[0, 0] = 1e6  # batches are copies: changing one leaves the data alone
    assert d.test.x[0, 0] != 1e6
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    history = train(model, d, TrainConfig(epochs=3, batch_size=32, lr=0.05, seed=0), progress=False)
    assert len(history) == 3 and np.isfinite(history[-1]["train_loss"])
    acc = evaluate(model, d, "val")["accuracy"]
    assert acc > 60.0  # the signal is learnt (chance is 33 %)


def test_float_images_with_per_channel_normalisation():
    x = torch.rand(12, 2, 8, 8)
    y = torch.arange(12) % 2
    d = Data.from_tensors((x, y), (x, y), val=(x, y), mean=(0.5, 0.25), std=(0.5, 2.0))
    xb, _ = _all(d, "val")
    mean, std = torch.tensor([0.5, 0.25]).view(1, 2, 1, 1), torch.tensor([0.5, 2.0]).view(1, 2, 1, 1)
    assert torch.allclose(xb, (x - mean) / std)
    # features: one value per feature (dim 1), or one for all
    f, fy = _features(10, 3, 2)
    d = Data.from_tensors((f, fy), (f, fy), val=(f, fy), mean=[1.0], std=[2.0])
    assert d.mean == (1.0,) and torch.allclose(_all(d, "val")[0], (f - 1) / 2)
    # augmentation works on 4-D images, deterministic per generator
    d = Data.from_tensors(_images(), _images(8), augment=True, crop_pad=2)
    a = torch.cat([xb for xb, _ in d.batches("train", 8, train=True, generator=torch.Generator().manual_seed(1))])
    b = torch.cat([xb for xb, _ in d.batches("train", 8, train=True, generator=torch.Generator().manual_seed(1))])
    assert torch.equal(a, b) and not torch.equal(a, d.train.x.float() / 255)


def test_carved_validation_is_seeded_disjoint_and_complete():
    x = torch.arange(50, dtype=torch.float32).view(50, 1)  # sample i holds i
    y = torch.arange(50) % 5
    test = (x[:5], y[:5])
    ids = lambda s: set(s.x[:, 0].long().tolist())  # noqa: E731
    d0, d0b = Data.from_tensors((x, y), test, seed=0), Data.from_tensors((x, y), test, seed=0)
    d1 = Data.from_tensors((x, y), test, seed=1)
    assert len(d0.val) == 5 and len(d0.train) == 45  # default val_fraction 0.1
    assert ids(d0.val).isdisjoint(ids(d0.train)) and ids(d0.val) | ids(d0.train) == set(range(50))
    assert ids(d0.val) == ids(d0b.val) and d0.signature == d0b.signature
    assert ids(d0.val) != ids(d1.val) and d0.signature != d1.signature
    assert all(torch.equal(s.y, s.x[:, 0].long() % 5) for s in d0)  # labels follow their samples
    assert len(Data.from_tensors((x, y), test, val_fraction=0.3).val) == 15
    assert len(Data.from_tensors((x, y), test, val_size=7).val) == 7


def test_numpy_inputs_num_classes_and_integral_float_labels():
    x, y = _features(20, 3, 2)
    d = Data.from_tensors((x.numpy(), y.numpy().astype(np.int32)), (x.numpy(), y.float().numpy()),
                          val=(x, y), num_classes=5)
    assert d.num_classes == 5 and all(s.y.dtype == torch.int64 for s in d)
    assert torch.equal(d.test.y, y)
    # num_classes is hashed: the same bytes with another class count are other data
    assert d.signature != Data.from_tensors((x, y), (x, y), val=(x, y)).signature


class _FakeImages(Dataset):
    """A torchvision-style dataset: (PIL image, int label), like MNIST(transform=None)."""

    def __init__(self, x, y, mode="L"):
        self.x, self.y, self.mode = x, y, mode

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        a = self.x[i].permute(1, 2, 0).numpy()  # (H, W, C)
        return Image.fromarray(a[..., 0] if self.mode == "L" else a, mode=self.mode), int(self.y[i])


class _Stream(IterableDataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __iter__(self):
        return iter(zip(self.x.numpy(), torch.unbind(self.y)))  # numpy x, 0-d tensor y


def test_from_datasets_equals_from_tensors():
    x, y = _features(40, 6, 4)
    xt, yt = _features(10, 6, 4, seed=1)
    ref = Data.from_tensors((x, y), (xt, yt), seed=3, val_size=8)
    own = Data.from_datasets(TensorDataset(x, y), TensorDataset(xt, yt), seed=3, val_size=8)
    _same(own, ref)
    assert own.source == "user datasets (from_datasets: TensorDataset)"
    _same(Data.from_datasets(_Stream(x, y), _Stream(xt, yt), seed=3, val_size=8), ref)
    # PIL images, grey and colour, are read as uint8 (C, H, W): the same as the uint8 tensors
    for mode, channels in (("L", 1), ("RGB", 3)):
        g = torch.Generator().manual_seed(channels)
        xi = torch.randint(0, 256, (16, channels, 8, 8), generator=g, dtype=torch.uint8)
        yi = torch.arange(16) % 4
        ref = Data.from_tensors((xi, yi), (xi[:4], yi[:4]), val=(xi[4:8], yi[4:8]))
        own = Data.from_datasets(_FakeImages(xi, yi, mode), _FakeImages(xi[:4], yi[:4], mode),
                                 val=_FakeImages(xi[4:8], yi[4:8], mode))
        _same(own, ref)
        assert own.input_shape == (channels, 8, 8) and "_FakeImages" in own.source


def test_signature_covers_every_label_and_value():
    x, y = _images()
    base = Data.from_tensors((x, y), (x, y), val=(x, y)).signature
    y2 = y.clone()
    y2[7] = (y2[7] + 1) % 4
    assert Data.from_tensors((x, y2), (x, y), val=(x, y)).signature != base
    x2 = x.clone()
    x2[3, 0, 5, 5] ^= 1
    assert Data.from_tensors((x, y), (x2, y), val=(x, y)).signature != base
    assert Data.from_tensors((x, y), (x, y), val=(x, y)).signature == base
    f, fy = _features(10, 3, 2)
    half = Data.from_tensors((f.bfloat16(), fy), (f.bfloat16(), fy), val=(f.bfloat16(), fy))  # numpy lacks bfloat16
    assert half.signature.startswith("custom-10-10-10-") and _all(half, "val")[0].dtype == torch.float32


# --------------------------------------------------------------------------- errors: one line naming the value

X, Y = _features(20, 3, 2)
OK = (X, Y)


@pytest.mark.parametrize("kwargs,match", [
    (dict(train=(X, Y[:19])), r"train: x has 20 samples but y has 19 labels"),
    (dict(train=(X, Y.float() + 0.5)), r"train y has the non-integer label 0\.5 "),
    (dict(test=(X, torch.full((20,), float("nan")))), r"test y has the non-integer label nan "),
    (dict(train=(X, Y - 1)), r"train has the negative label -1; labels must be class indices"),
    (dict(val=(X, Y + 5), num_classes=3), r"val has label 6, out of range for num_classes=3 \(valid 0\.\.2\)"),
    (dict(num_classes=1), r"num_classes must be an integer >= 2, got 1"),
    (dict(train=(X, Y * 0), test=(X, Y * 0)), r"every label is 0: a classifier needs at least 2 classes"),
    (dict(test=(X[:0], Y[:0])), r"test is empty \(0 samples\)"),
    (dict(test=(X[:, :2], Y)), r"test x has samples of shape \(2,\) but train has \(3,\)"),
    (dict(val=(X.view(20, 3, 1), Y)), r"val x has samples of shape \(3, 1\) but train has \(3,\)"),
    (dict(train=(X > 0, Y)), r"train x has dtype torch\.bool; valid: torch\.uint8 .*floating dtype \(float16"),
    (dict(train=(X.to(torch.complex64), Y)), r"train x has dtype torch\.complex64; valid: torch\.uint8"),
    (dict(train=(X.long(), Y)), r"train x has dtype torch\.int64; valid: .*convert with x\.float\(\)"),
    (dict(test=((X * 255).to(torch.uint8), Y)), r"test x is torch\.uint8 but train x is torch\.float32"),
    (dict(train=(X[:, 0], Y)), r"train x has shape \(20,\); expected \(N, \.\.\.\)"),
    (dict(train=(X, torch.nn.functional.one_hot(Y))), r"train y has shape \(20, 2\); expected \(N,\)"),
    (dict(val_fraction=1.5), r"val_fraction must be in \(0, 1\), got 1\.5"),
    (dict(val_fraction=0.0), r"val_fraction must be in \(0, 1\), got 0\.0"),
    (dict(val_size=20), r"val_size must be an integer in 1\.\.19 \(train has 20 samples\), got 20"),
    (dict(val_size=3, val_fraction=0.2), r"give val_fraction or val_size, not both"),
    (dict(val=OK, val_size=3), r"with val given, leave them out"),
    (dict(train=(X[:1], Y[:1]), test=(X, Y)), r"train has 1 sample: too few to carve a validation split"),
    (dict(train=(X.clone().index_fill_(0, torch.tensor([4]), float("nan")), Y)),
     r"train x has 3 non-finite values \(NaN or inf\), the first in sample 4"),
    (dict(mean=(0.5,)), r"give both mean and std, or neither \(got mean=\(0\.5,\), std=None\)"),
    (dict(mean=(0.0, 0.0), std=(1.0, 1.0)), r"mean has 2 values; valid: 1 or one per channel \(3"),
    (dict(mean=(0.0,), std=(0.0,)), r"std finite and > 0, got mean=\(0\.0,\), std=\(0\.0,\)"),
    (dict(augment=True), r"augment needs images \(N, C, H, W\), got samples of shape \(3,\)"),
    (dict(name="mnist"), r"name 'mnist' is a built-in dataset's"),
    (dict(name="my/data"), r"name must be letters, digits, .*got 'my/data'"),
    (dict(train=(X,)), r"train must be an \(x, y\) pair, got tuple of length 1"),
    (dict(train=(np.array(["a"] * 20), Y)), r"train x: cannot read a array of dtype <U1 as a numeric tensor"),
])
def test_bad_input_is_one_clear_line(kwargs, match):
    args = dict(train=OK, test=OK) | kwargs
    with pytest.raises(ValueError, match=match) as err:
        Data.from_tensors(**args)
    assert "\n" not in str(err.value)


def test_bad_datasets_are_one_clear_line():
    x, y = _features(6, 2, 2)

    class Odd(Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return (torch.zeros(2 + (i == 2)), 0) if i < 3 else None

    with pytest.raises(ValueError, match=r"train dataset item 2: x is torch\.float32 \(3,\) but item 0 is "
                                         r"torch\.float32 \(2,\)"):
        Data.from_datasets(Odd(), TensorDataset(x, y))
    with pytest.raises(ValueError, match=r"test dataset item 0 is a tuple of length 1; expected an \(x, y\) pair"):
        Data.from_datasets(TensorDataset(x, y), TensorDataset(x))
    with pytest.raises(ValueError, match=r"test is empty \(0 samples\)"):
        Data.from_datasets(TensorDataset(x, y), _Stream(x[:0], y[:0]))
    with pytest.raises(ValueError, match=r"train y has the non-integer label 0\.5"):
        Data.from_datasets(TensorDataset(x, y + 0.5), TensorDataset(x, y))


def test_a_signature_follows_the_settings_of_a_replaced_dataset():
    """Issue 22, item 4: `dataclasses.replace` kept the memoised signature, so caches and run folders of
    other batches (augmented, normalised otherwise) were reused. Built-in data keeps its old signature
    as long as its settings are those `load_data` gave it."""
    from dataclasses import replace

    from safs_lite import load_data

    x, y = _images()
    own = Data.from_tensors((x, y), (x, y), val=(x, y))
    before = own.signature
    for changed in (replace(own, augment=True), replace(own, mean=(0.5,), std=(0.25,)), replace(own, num_classes=9)):
        assert changed.signature != before
    assert replace(own).signature == before and own.signature == before
    mnist = load_data("mnist", seed=0)
    old = mnist.signature
    assert replace(mnist, source="elsewhere").signature == old  # not a setting of the batches
    shifted = replace(mnist, augment=True, mean=(0.1307,), std=(0.3081,))
    assert shifted.signature != old and shifted.signature.startswith("mnist-")
    assert replace(shifted, augment=False, mean=None, std=None).signature == old


def test_16_bit_images_are_scaled_not_clipped():
    """Issue 22, item 5: a 16-bit grey PIL image ("I;16") was converted to 8 bits, clipping every value above
    255 to white; it is now float32 in [0, 1] (value / 65535)."""
    import numpy as np
    from PIL import Image

    values = np.array([[0, 255], [1000, 60000]], dtype=np.uint16)
    img = Image.new("I;16", (2, 2))
    img.putdata(values.ravel().tolist())
    items = [(img, 0), (img, 1)] * 4
    data = Data.from_datasets(items, items[:2], val=items[:2], progress=False)
    x = data.train.x[0]
    assert x.dtype == torch.float32 and x.shape == (1, 2, 2)
    assert torch.allclose(x[0], torch.tensor(values / 65535.0, dtype=torch.float32))
