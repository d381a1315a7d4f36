"""A run's key: everything that changes its numbers (config, data signature, operators and their version, kit,
device and threads), its hash, the readable prefix of its folder name and the difference between two keys.
Imports no config, so the config, the run folders and every tool can use it."""
from __future__ import annotations

import hashlib
import json
import platform
from typing import TYPE_CHECKING, Any

import torch

from ..method.activations import OPS_VERSION, SEARCH_SPACE
from ..version import KIT_VERSION

if TYPE_CHECKING:
    from ..data.core import Data
    from .config import SAFSConfig


def environment() -> dict[str, Any]:
    """Library versions and hardware, saved beside every result."""
    import numpy
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
    }


def config_hash(config: dict) -> str:
    """Short stable hash of a JSON-able config (names run folders)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def compute_key(device: str | torch.device = "cpu", threads: int | None = None) -> dict:
    """Where numbers are computed, as part of a cache or run key: the device and the CPU thread count.

    Both move the last digits of a float sum (a CPU matmul splits its work by thread; a GPU runs
    other kernels), and over a training run those digits move accuracies by tenths of a point
    (docs/guarantees.md). A CUDA device is named by its GPU model.

    Args:
        device: "cpu", "cuda", "cuda:1", ... or a torch.device.
        threads: CPU threads (default: `torch.get_num_threads()` now).

    Example:
        >>> compute_key("cpu", threads=2)
        {'device': 'cpu', 'threads': 2}
    """
    device = torch.device(device)
    name = "cpu"
    if device.type == "cuda":
        name = f"cuda ({torch.cuda.get_device_name(device)})" if torch.cuda.is_available() else "cuda"
    elif device.type != "cpu":
        name = device.type
    return {"device": name, "threads": torch.get_num_threads() if threads is None else int(threads)}


def computed_on(device: str | torch.device = "cpu") -> dict:
    """How a run computes, for its results.json: `compute_key` plus the precision (`cuda_options`' amp)
    and memory format in force; `check` re-evaluates the same way or with its documented tolerance.

    Example:
        >>> sorted(computed_on("cpu"))
        ['amp', 'channels_last', 'device', 'threads']
    """
    from ..training.loop import current_cuda_options

    opts = current_cuda_options()
    return {**compute_key(device), "amp": opts.amp, "channels_last": opts.channels_last}


def run_key(config: "SAFSConfig | dict", data: "Data | str", device: str | torch.device = "cpu",
            threads: int | None = None) -> dict:
    """Everything that changes a SAFS run's numbers: the config with its budgets and training defaults
    (`SAFSConfig.full()`, or such a dict for a model of your own), the data's signature, the searched
    operators and their definitions' version, the kit's version, the device and the CPU thread count
    (`compute_key`; `threads` default: the current count).

    A run folder holds one key (`config.json`); a folder holding another key is never reused.
    """
    signature = data if isinstance(data, str) else data.signature
    full = config if isinstance(config, dict) else config.full()
    return {**full, "data": signature, "search_space": list(SEARCH_SPACE),
            "ops_version": OPS_VERSION, "kit": KIT_VERSION, **compute_key(device, threads)}


def run_prefix(full: dict) -> str:
    """The readable start of a run folder's name: safs-<model>-<dataset>-<sparsity>-<pruning>-<preset>-s<seed>."""
    return (f"safs-{full['model']}-{full['dataset']}-{full['sparsity']:g}-{full['pruning']}-{full['preset']}"
            f"-s{full['seed']}")


def key_diff(old: dict, new: dict, limit: int = 3) -> str:
    """The fields where two keys differ, as "field: old -> new" (nested fields dotted), at most `limit`."""
    diffs = []

    def walk(a, b, path):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in list(a) + [k for k in b if k not in a]:
                walk(a.get(k, "(absent)"), b.get(k, "(absent)"), f"{path}.{k}" if path else k)
        elif a != b:
            diffs.append(f"{path}: {a!r} -> {b!r}")

    walk(old, new, "")
    more = f" (+{len(diffs) - limit} more)" if len(diffs) > limit else ""
    return "; ".join(diffs[:limit]) + more
