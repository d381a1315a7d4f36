"""Run folders: named by their key, checked before reuse, written atomically, and read back.

A cached step's folder is `<runs>/<kind>-<hash of its key>`; a SAFS run's is
`<runs>/safs-<model>-<dataset>-...-<hash of run_key>`. Its key, library
versions and results are saved beside each other; a folder holding another
key is never reused. Writes are atomic (temp file + rename), so an
interrupted run never leaves a half-written result behind. The steps that
use these folders are in `safs_lite.run.pipeline`.
"""
from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from ..data.builtin import load_data
from ..data.splits import num_classes
from ..method.pruning import clone, load_pruned, prune_model
from ..nets.models import build_model
from ..paths import data_dir, runs_dir

if TYPE_CHECKING:
    from ..data.core import Data
    from .config import SAFSConfig
from .key import config_hash, environment, key_diff, run_key, run_prefix


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


@functools.lru_cache(maxsize=8)
def _signature_of(dataset: str, root: str, seed: int) -> str:
    return load_data(dataset, root=root, seed=seed).signature


def default_out(cfg: "SAFSConfig", runs: str | os.PathLike | None = None, data: "Data | str | None" = None,
                data_root: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                threads: int | None = None) -> Path:
    """The run folder named from its key: <runs>/safs-<model>-<dataset>-<sparsity>-<pruning>-<preset>-s<seed>-<hash>.

    The hash covers `run_key`, data, device and thread count included: the same config on other
    data (the offline subset, say) or with another thread count gets another folder. Without `data` the dataset is loaded from `data_root`
    (default $SAFS_DATA) to read its signature (once per process).
    """
    if data is None:
        data = _signature_of(cfg.dataset, str(data_dir(data_root)), cfg.seed)
    return runs_dir(runs) / f"{run_prefix(cfg.full())}-{config_hash(run_key(cfg, data, device, threads))}"


def find_finished(cfg: "SAFSConfig", runs: str | os.PathLike | None = None,
                  data_root: str | os.PathLike | None = None) -> Path | None:
    """The finished run folder of `cfg` on the data in `data_root`, made with any device or thread count.

    The run made here and now (`default_out`) is preferred; otherwise the newest finished folder
    whose key differs from this one only in `compute_key`'s fields (a run of `reproduce --workers`,
    one thread per run, read by a process with more). None when there is none.
    """
    out = default_out(cfg, runs, data_root=data_root)
    if (out / "results.json").exists():
        return out
    want = {k: v for k, v in run_key(cfg, _signature_of(cfg.dataset, str(data_dir(data_root)), cfg.seed)).items()
            if k not in ("device", "threads")}
    for other in sorted(out.parent.glob(f"{run_prefix(cfg.full())}-*"), key=lambda p: -p.stat().st_mtime):
        try:
            key = load_json(other / "config.json")["config"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if {k: v for k, v in key.items() if k not in ("device", "threads")} == want and \
                (other / "results.json").exists():
            return other
    return None


def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"--out {out}: not writable ({err.strerror or err})") from None


def prepare_out(out: Path, key: dict, explicit: bool) -> None:
    """Create the run folder, or check that the one there holds this key; note older runs of this config."""
    cfg_file = out / "config.json"
    if cfg_file.exists():
        saved = load_json(cfg_file)
        old = saved.get("config") if isinstance(saved, dict) else None
        if old != key:
            diff = key_diff(old, key) if isinstance(old, dict) else "no readable key"
            hint = "use another --out or delete it" if explicit else "delete it"
            raise ValueError(f"{out} holds a run with another key ({diff}); {hint}")
    elif not explicit and out.parent.is_dir():
        # Same setting made with other data, operators or kit version: say what differs, in one line.
        for other in sorted(out.parent.glob(out.name.rsplit("-", 1)[0] + "-*"), key=lambda p: p.stat().st_mtime):
            try:
                old = load_json(other / "config.json")["config"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            print(f"safs_lite: {other.name} holds this setting with another key ({key_diff(old, key)}); "
                  f"not reused, computing {out.name}", file=sys.stderr)
            break
    check_writable(out)
    if not cfg_file.exists():
        save_json(cfg_file, {"config": key, "environment": environment()})


def cached_record(path: Path, fn: Callable[[], dict], timings: dict, field: str = "test_accuracy") -> dict:
    """Run `fn` once: its record is saved as `path` (<out>/<stage>.json) and loaded on a rerun;
    its seconds go to timings[<stage>]. A saved record without `field` counts as corrupt
    (`safs_lite.rl.policy` keeps "test_return")."""
    if path.exists():
        record = load_json(path)
        if not isinstance(record, dict) or field not in record:
            raise ValueError(f"{path}: corrupt stage record; delete it to recompute that stage")
    else:
        t0 = time.perf_counter()
        record = fn()
        record["seconds"] = time.perf_counter() - t0
        save_json(path, record)
    timings[path.stem] = record["seconds"]
    return record


def load_safs_model(out: str | os.PathLike, stage: str = "safs", model: torch.nn.Module | None = None
                    ) -> torch.nn.Module:
    """Rebuild a finished run's pruned model of one stage ("stage1", "stage2" or "safs").

    Args:
        out: the run folder.
        stage: which stage's checkpoint.
        model: for a run of a network of your own (`safs_lite.search`), an instance of that
            network (any weights: the checkpoint's replace them); built-in models are rebuilt by name.
    """
    out = Path(out)
    full = load_json(out / "config.json")["config"]
    if model is None:
        if full.get("own_model"):
            raise ValueError(f"{out} is a run of a network of your own ({full['model']!r}); pass an instance of "
                             "it: load_safs_model(out, model=...)")
        model = build_model(full["model"], num_classes=num_classes(full["dataset"]))
    else:
        from ..nets.searchable import make_searchable  # the sites the run searched, named as it named them

        model = make_searchable(clone(model))
    prune_model(model, 0.0)  # attach masks; the saved ones overwrite them
    return load_pruned(model, load_state(out / f"{stage}.pt"))
