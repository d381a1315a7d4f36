"""Run folders named by their config, atomic result files, and cached training steps.

A run's folder is `<runs>/<kind>-<hash of its config>`; its config, library
versions and results are saved beside each other, and a finished step is
loaded instead of recomputed. Writes are atomic (temp file + rename), so an
interrupted run never leaves a half-written result behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from .paths import runs_dir


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


def run_folder(kind: str, config: dict, root: str | os.PathLike | None = None) -> Path:
    """`<runs>/<kind>-<hash>`, created, with the config saved as config.json."""
    folder = runs_dir(root) / f"{kind}-{config_hash(config)}"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "config.json").exists():
        save_json(folder / "config.json", {"config": config, "environment": environment()})
    return folder


def save_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(path)


def load_json(path: str | os.PathLike) -> Any:
    """Read JSON, with a one-line error for a corrupt file."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: corrupt results file ({err.__class__.__name__}); "
                         "delete it to recompute that step") from None


def save_state(path: str | os.PathLike, state: dict) -> None:
    """torch.save atomically."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".part")
    torch.save(state, tmp)
    tmp.replace(path)


def cpu_state(model: torch.nn.Module) -> dict:
    """The model's state dict with tensors copied to the CPU (ready to save)."""
    return {k: v.detach().cpu().clone() if torch.is_tensor(v) else v for k, v in model.state_dict().items()}


def load_state(path: str | os.PathLike) -> dict:
    """torch.load with a one-line error for a missing or corrupt checkpoint."""
    if not Path(path).exists():
        raise ValueError(f"{path}: missing checkpoint; rerun the command that writes it")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or foreign file
        raise ValueError(f"{path}: corrupt checkpoint ({err.__class__.__name__}); "
                         "delete it to recompute that step") from None
