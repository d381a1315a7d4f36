"""The kit on a GPU, checked in one script: every Table 1 model's pipeline, mixed precision and channels-last,
pruned weights, repeatability, and the cost of a paper-preset epoch.

Sized to take under 8 minutes on one H100/H200 (an estimate: it has not run on a GPU yet).

    python benchmarks/gpu_check.py                     # on CUDA: every check, full size
    python benchmarks/gpu_check.py --device cpu        # on the CPU: the same code paths, small (the tests run it)

What it does, on synthetic data in each dataset's real file format (random images: the accuracies mean
nothing, the code paths are the real ones), in temporary folders:

1. the smoke pipeline (`run_safs`, preset smoke) of LeNet-5 / MNIST, VGG-16 / CIFAR-10, ResNet-18 /
   CIFAR-10 and EfficientNet-B0 / ImageNet-16, plain and with `--amp --channels-last` (CUDA only); after
   each, the saved stage-1, stage-2 and SAFS models must keep the magnitude-pruning masks, with every
   pruned weight exactly zero;
2. `--deterministic`: LeNet-5's and ResNet-18's pipelines run twice from scratch must give the same
   numbers and bit-identical final weights;
3. one paper-preset training epoch (the model's training defaults, batch 256, augmentation) of VGG-16
   and ResNet-18 on CIFAR-10-sized data (45,000 training and 5,000 validation images), plain and with
   `--amp --channels-last`: the seconds per epoch that `benchmarks/scaling.py --epoch-seconds` takes.

Small mode (the default on the CPU): the pipeline of LeNet-5 only (`--models` adds others), the
repeat of LeNet-5, and the epoch timed on 64 images, scaled to 45,000. It prints a table and exits 1 if
a check fails.
"""
from __future__ import annotations

import argparse
import os
import pickle
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

MODELS = {"lenet5": "mnist", "vgg16": "cifar10", "resnet18": "cifar10", "efficientnet_b0": "imagenet16"}


# ---------------------------------------------------------------- synthetic data in the real formats


def write_data(root: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """MNIST (IDX), CIFAR-10 (pickled batches) and ImageNet-16 (pickled batches) of random images under root."""
    g = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _idx(raw / f"{prefix}-images-idx3-ubyte", g.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        _idx(raw / f"{prefix}-labels-idx1-ubyte", g.integers(0, 10, n, dtype=np.uint8))
    cifar = root / "cifar-10-batches-py"
    cifar.mkdir()
    per = -(-n_train // 5)
    for name, n in [(f"data_batch_{b}", per) for b in range(1, 6)] + [("test_batch", n_test)]:
        _pickle(cifar / name, {"data": g.integers(0, 256, (n, 3072), dtype=np.uint8),
                               "labels": g.integers(0, 10, n).tolist(), "batch_label": name})
    imagenet = root / "Imagenet16"
    imagenet.mkdir()
    per = -(-n_train // 10)
    for b in range(1, 11):
        _pickle(imagenet / f"train_data_batch_{b}", {"data": g.integers(0, 256, (per, 768), dtype=np.uint8),
                                                     "labels": g.integers(1, 1001, per).tolist(),
                                                     "mean": np.full(768, 127.5)})
    _pickle(imagenet / "val_data", {"data": g.integers(0, 256, (n_test, 768), dtype=np.uint8),
                                    "labels": g.integers(1, 1001, n_test).tolist()})
    return root


def _idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.tobytes())


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


# ---------------------------------------------------------------- the checks


def pipeline(model: str, amp: bool, device: str, data_root: Path, work: Path, tag: str) -> tuple[dict, Path]:
    """The smoke pipeline of `model` in its own run and runs folders; (results, run folder)."""
    from safs_lite import SAFSConfig, run_safs

    cfg = SAFSConfig(model=model, dataset=MODELS[model], preset="smoke", sparsity=0.99, seed=0, amp=amp,
                     channels_last=amp)
    out = work / f"{model}-{tag}"
    return run_safs(cfg, out=out, data_root=data_root, runs=work / f"runs-{model}-{tag}", progress=False,
                    device=device), out


def pruned_weights_problem(out: Path) -> str | None:
    """None if every stage's model keeps the same masks with its pruned weights exactly zero, else what is wrong."""
    from safs_lite.method.pruning import effective_weight, masks
    from safs_lite.run.folders import load_safs_model

    reference = None
    for stage in ("stage1", "stage2", "safs"):
        model = load_safs_model(out, stage)
        found = masks(model)
        if reference is None:
            reference = found
        if found.keys() != reference.keys() or any(not torch.equal(found[k], reference[k]) for k in found):
            return f"{stage}: its masks differ from stage 1's"
        modules = dict(model.named_modules())
        for name, mask in found.items():
            if bool((effective_weight(modules[name])[mask == 0] != 0).any()):
                return f"{stage}: {name} has non-zero pruned weights"
    kept = sum(int(m.sum()) for m in reference.values()) / sum(m.numel() for m in reference.values())
    if abs(kept - 0.01) > 1e-3:
        return f"kept fraction {kept:.4f}, not 0.01"
    return None


def repeat_problem(a: tuple[dict, Path], b: tuple[dict, Path]) -> str | None:
    """None if two runs gave the same numbers and bit-identical final weights, else the first difference."""
    for key in ("test_accuracy", "activations", "alpha_beta"):
        if a[0][key] != b[0][key]:
            return f"{key} differs: {a[0][key]} vs {b[0][key]}"
    wa = torch.load(a[1] / "safs.pt", weights_only=True)
    wb = torch.load(b[1] / "safs.pt", weights_only=True)
    for k in wa:
        if torch.is_tensor(wa[k]) and not torch.equal(wa[k], wb[k]):
            return f"safs.pt: {k} differs"
    return None


def epoch_seconds(model_name: str, amp: bool, device: str, images: int) -> float:
    """Seconds of one paper-preset training epoch (with its validation) over `images` CIFAR-10-sized images."""
    from dataclasses import replace

    from safs_lite import Data, build_model, train
    from safs_lite.run.config import TRAIN_DEFAULTS
    from safs_lite.training.loop import cuda_options

    g = torch.Generator().manual_seed(0)
    n_val = max(images // 9, 16)  # 45,000 / 5,000 as in the kit's CIFAR-10 split
    x = torch.randint(0, 256, (images + n_val, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (images + n_val,), generator=g)
    data = Data.from_tensors((x[:images], y[:images]), (x[:16], y[:16]), val=(x[images:], y[images:]),
                             name="cifar10-sized", augment=True, crop_pad=4).to(device)
    model = build_model(model_name, num_classes=10, seed=0).to(device)
    cfg = replace(TRAIN_DEFAULTS[model_name], epochs=1, select="last")
    with cuda_options(amp, amp):
        if device.startswith("cuda"):  # warm-up: kernel selection and autotuning are not part of an epoch
            train(model, data, replace(cfg, train_subset=min(images, 1024)), progress=False)
            _sync(device)
        t0 = time.perf_counter()
        train(model, data, cfg, progress=False)
        _sync(device)
    return time.perf_counter() - t0


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--small", action=argparse.BooleanOptionalAction, default=None,
                   help="small sizes (default: on for the CPU, off for CUDA)")
    p.add_argument("--models", nargs="+", default=None, choices=list(MODELS),
                   help="pipelines to run (default: all four; LeNet-5 only in small mode)")
    args = p.parse_args(argv)
    if args.device not in ("cpu", "cuda"):
        print(f"error: unknown device {args.device!r}; valid: cuda, cpu", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda: no CUDA device is available; use --device cpu", file=sys.stderr)
        return 2
    small = args.device == "cpu" if args.small is None else args.small
    models = args.models or (["lenet5"] if small else list(MODELS))
    variants = [False, True] if args.device == "cuda" else [False]  # --amp --channels-last need CUDA
    repeats = ["lenet5"] if small else ["lenet5", "resnet18"]
    epoch_images = 64 if small else 45_000
    if args.device == "cpu":
        torch.set_num_threads(1)
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU (1 thread)"
    print(f"gpu_check on {name}: torch {torch.__version__}, {'small' if small else 'full'} mode; "
          f"synthetic data in the real formats (accuracies are meaningless, code paths are real)", flush=True)

    from safs_lite.training.loop import set_deterministic

    rows, failed, start = [], 0, time.perf_counter()

    def record(check: str, model: str, variant: str, seconds: float, problem: str | None, detail: str = "") -> None:
        nonlocal failed
        failed += problem is not None
        rows.append((check, model, variant, "ok" if problem is None else "FAIL", f"{seconds:.1f}",
                     problem or detail))
        print(f"  {check}: {model} {variant}: {'ok' if problem is None else 'FAIL ' + problem} ({seconds:.1f} s)",
              flush=True)

    with tempfile.TemporaryDirectory(prefix="safs_gpu_check_") as tmp:
        work = Path(tmp)
        data_root = write_data(work / "data", n_train=640 if small else 5_000, n_test=128 if small else 1_000)
        for model in models:
            for amp in variants:
                variant = "--amp --channels-last" if amp else "plain"
                t0 = time.perf_counter()
                try:
                    res, out = pipeline(model, amp, args.device, data_root, work, "amp" if amp else "plain")
                    problem = pruned_weights_problem(out)
                    detail = f"SAFS {res['test_accuracy']['safs']:.1f}%, pruned weights zero, masks kept"
                except Exception as err:  # noqa: BLE001 (reported in the table)
                    problem, detail = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}", ""
                record("pipeline", model, variant, time.perf_counter() - t0, problem, detail)
            if args.device == "cpu":
                rows.append(("pipeline", model, "--amp --channels-last", "n/a", "-", "CUDA only"))
        set_deterministic(True)
        try:
            for model in repeats:
                t0 = time.perf_counter()
                try:
                    runs = [pipeline(model, False, args.device, data_root, work, f"det{i}") for i in (1, 2)]
                    problem = repeat_problem(*runs)
                    if problem is None and not (torch.are_deterministic_algorithms_enabled()
                                                and os.environ.get("CUBLAS_WORKSPACE_CONFIG")):
                        problem = "deterministic mode was not on (set_deterministic did not take effect)"
                except Exception as err:  # noqa: BLE001
                    problem = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                record("--deterministic repeat", model, "plain", time.perf_counter() - t0, problem,
                       "two runs from scratch: same numbers, bit-identical weights, deterministic algorithms on")
        finally:
            set_deterministic(False)
        for model in ("vgg16", "resnet18"):
            for amp in variants:
                variant = "--amp --channels-last" if amp else "plain"
                t0 = time.perf_counter()
                seconds = epoch_seconds(model, amp, args.device, epoch_images)
                scaled = seconds * 45_000 / epoch_images
                detail = (f"{scaled:.1f} s per paper-preset epoch (45,000 images"
                          + (f"; measured on {epoch_images}, scaled)" if epoch_images != 45_000 else ")"))
                record("epoch time", model, variant, time.perf_counter() - t0, None, detail)
    widths = [max(len(str(r[i])) for r in rows + [HEADER]) for i in range(len(HEADER))]
    print()
    for r in [HEADER] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())
    print(f"\n{len(rows)} rows, {failed} failed, {time.perf_counter() - start:.0f} s in all")
    return 1 if failed else 0


HEADER = ("check", "model", "variant", "result", "seconds", "detail")

if __name__ == "__main__":
    sys.exit(main())
