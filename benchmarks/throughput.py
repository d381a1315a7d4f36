"""Training throughput of LeNet-5 on MNIST: the kit's in-memory loop vs a plain DataLoader loop.

Both loops train the same model (Adam, batch 256) for the same number of
images in the same process; the plain loop is the textbook one:
torchvision.datasets.MNIST with a ToTensor transform and a DataLoader.

    SAFS_DATA=../shared/data python benchmarks/throughput.py [--images 50000] [--repeats 2]

Prints a table and the ratio (target on 2 CPU cores: kit >= 2.5x plain).
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from safs_lite import build_model, load_data


def step(model, opt, xb, yb):
    loss = F.cross_entropy(model(xb), yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def kit_loop(data, images: int) -> float:
    model = build_model("lenet5", seed=0)
    opt = torch.optim.Adam(model.parameters(), 1e-3, betas=(0.9, 0.99), weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for xb, yb in data.batches("train", 256, shuffle=True, generator=gen, train=True, limit=images):
        step(model, opt, xb, yb)
    return time.perf_counter() - t0


def plain_loop(root, images: int, workers: int, train: bool = True) -> float:
    ds = datasets.MNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    loader = DataLoader(ds, batch_size=256, shuffle=True, num_workers=workers)
    model = build_model("lenet5", seed=0)
    opt = torch.optim.Adam(model.parameters(), 1e-3, betas=(0.9, 0.99), weight_decay=5e-4)
    seen = 0
    t0 = time.perf_counter()
    for xb, yb in loader:
        if train:
            step(model, opt, xb, yb)
        seen += len(yb)
        if seen >= images:
            break
    return time.perf_counter() - t0


def kit_data_only(data, images: int) -> float:
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for xb, yb in data.batches("train", 256, shuffle=True, generator=gen, train=True, limit=images):
        pass
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=50_000, help="training images per measurement")
    p.add_argument("--repeats", type=int, default=2, help="measurements per loop (best is kept)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the plain loop")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_data("mnist")
    if data.root is None:
        raise SystemExit("the plain loop needs the MNIST files: set SAFS_DATA (e.g. SAFS_DATA=../shared/data)")
    n = min(args.images, len(data.train))
    kit_loop(data, 2048), plain_loop(data.root, 2048, args.workers)  # warm-up, not timed
    kit = min(kit_loop(data, n) for _ in range(args.repeats))
    plain = min(plain_loop(data.root, n, args.workers) for _ in range(args.repeats))
    print(f"LeNet-5 training on MNIST, {n} images, batch 256, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'loop':<34}{'seconds':>10}{'images/s':>12}")
    print(f"{'safs_lite in-memory batches':<34}{kit:>10.2f}{n / kit:>12.0f}")
    print(f"{f'DataLoader + ToTensor (workers={args.workers})':<34}{plain:>10.2f}{n / plain:>12.0f}")
    print(f"ratio (kit / plain): {plain / kit:.2f}x  (target >= 2.5x)")
    # Where the time goes: the batches alone, without the model.
    kit_data = min(kit_data_only(data, n) for _ in range(args.repeats))
    plain_data = min(plain_loop(data.root, n, args.workers, train=False) for _ in range(args.repeats))
    print(f"data only: kit {kit_data:.2f} s, DataLoader {plain_data:.2f} s; model steps alone ~{kit - kit_data:.2f} s, "
          f"so no loop can beat {plain / max(kit - kit_data, 1e-9):.2f}x here")


if __name__ == "__main__":
    main()
