"""Export a finished run's model: `export_run(run_dir, format)` freezes it (`method.frozen`), writes it as ``pt``,
``onnx`` or ``safetensors`` (`deploy.formats`), checks that the written file reproduces the run's model on the test
split (`deploy.checks`) and writes a model card next to it (`deploy.cards`). `add_export_parser` and
`export_command`: the CLI command ``python -m safs_lite export RUN_DIR``.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from ..method.frozen import freeze, frozen_sites
from ..run.folders import load_json, save_json
from .cards import _card_path, _export_command, model_card
from .checks import ExportCheck, _load_run, _raise_unless_passed, compare
from .compact_module import CompactModule
from .formats import (
    _WRITERS,
    EXPORT_STAGES,
    FORMATS,
    FROZEN_FORMAT,
    _check_format,
    _info_path,
    load_exported,
    preprocessing,
)


def default_export_path(run_dir: str | os.PathLike, format: str = "pt", stage: str = "safs",
                        compact: bool = False) -> Path:
    """Where `export_run` writes by default: <run>/export/model.<ext> (model-<stage>.<ext> for other stages;
    model-compact.onnx, model-<stage>-compact.onnx for the compact form)."""
    ext = FORMATS[_check_format(format)][0]
    name = "model" + ("" if stage == "safs" else f"-{stage}") + ("-compact" if compact else "")
    return Path(run_dir) / "export" / f"{name}{ext}"


def export_run(run_dir: str | os.PathLike, format: str = "pt", out: str | os.PathLike | None = None,
               stage: str = "safs", data_root: str | os.PathLike | None = None,
               return_check: bool = False, model: nn.Module | None = None,
               data=None, compact: bool = False) -> Path | tuple[Path, ExportCheck]:
    """Export a finished SAFS run's model, check the file against the run, and write its model card.

    Args:
        run_dir: the run folder (holds config.json, results.json and <stage>.pt).
        format: "pt" (the pickled frozen module), "onnx" (ONNX Runtime-ready, dynamic batch) or
            "safetensors" (the frozen state dict; the architecture in a JSON beside it).
        out: the file to write (suffix matching the format); default `default_export_path`.
        stage: "safs" (default), "stage1" or "stage2".
        data_root: data folder (default $SAFS_DATA); its data must have the run's signature.
        return_check: also return the `ExportCheck`.
        model, data: for a run of a network of your own (`safs_lite.search`): an instance of its
            class (any weights) and the `Data` it ran on.
        compact: ONNX only: export the compact engine's form (`CompactModule`: the live units and
            kept weights only, as gathers and small matrix products: at 99% a file a quarter the size,
            faster at large batches, slower at batch 1; benchmarks/sparse_inference.py --onnx) instead
            of the frozen masked model; the same check against the run's model.

    Returns:
        The written file's path (with the check when `return_check`). The model card is
        ``model_card.md`` beside it (``model_card-<stage>.md`` for other stages).

    Raises:
        ValueError: (one line) on an unknown format or stage, a suffix that does not fit the
            format, a folder that is no finished run, data of another signature, compact with
            another format than onnx or a model the compact engine cannot run, or an export
            that does not reproduce the run's model (the file is then removed).
    """
    fmt = _check_format(format)
    if compact and fmt != "onnx":
        raise ValueError(f"a compact export is written as onnx only, got format {fmt!r}")
    run_dir = Path(run_dir)
    key, results, data, reference = _load_run(run_dir, stage, data_root, model, data)
    path = Path(out) if out is not None else default_export_path(run_dir, fmt, stage, compact)
    if path.suffix not in FORMATS[fmt]:
        raise ValueError(f"--out {path}: a {fmt} export must end in {' or '.join(FORMATS[fmt])}")
    frozen = freeze(reference)
    with torch.inference_mode():  # the classes the model tells apart, whatever its last layer is
        num_classes = int(frozen(torch.zeros(1, *data.input_shape)).shape[-1])
    info = {"format": FROZEN_FORMAT, "model": key["model"], "own_model": bool(key.get("own_model")),
            "num_classes": num_classes,
            "input_shape": list(data.input_shape), "sites": frozen_sites(frozen), "stage": stage,
            "run": run_dir.name, "data_signature": data.signature, "preprocessing": preprocessing(data),
            **({"compact": True} if compact else {})}
    frozen.preprocessing = info["preprocessing"]  # pickled with a pt export; the card states it
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name and renamed once checked: a file that does not reproduce the
    # run is never left behind, and an earlier good export at `path` survives a failed one.
    tmp = path.with_name(f"{path.stem}.part{path.suffix}")
    written = [tmp] + ([_info_path(tmp)] if fmt == "safetensors" else [])
    try:
        _WRITERS[fmt](CompactModule(reference, data.input_shape) if compact else frozen, tmp, info)
        check = compare(reference, load_exported(tmp, model), data, fmt, path, stage,
                        results.get("test_accuracy", {}).get(stage))
        _raise_unless_passed(check)
        for part in written:
            part.replace(_info_path(path) if part.suffix == ".json" else path)
    finally:
        for part in written:
            part.unlink(missing_ok=True)
    # The card lists every checked export of this stage in the folder (one record per file).
    card = _card_path(path, stage)
    record_file = card.with_suffix(".json")
    record = load_json(record_file) if record_file.is_file() else {"checks": {}, "commands": {}}
    record["checks"][path.name] = {**asdict(check), "path": path.name}
    record["commands"][path.name] = _export_command(run_dir, fmt, Path(out) if out is not None else None,
                                                    stage, data_root, key["model"] if key.get("own_model") else None,
                                                    compact)
    record["checks"] = {k: v for k, v in record["checks"].items() if (path.parent / k).is_file()}
    save_json(record_file, record)
    card.write_text(model_card(run_dir, key, results, frozen, stage, record["checks"], record["commands"]))
    return (path, check) if return_check else path


def add_export_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``export`` command to the CLI's subparsers (its handler is `export_command`).

    Args:
        subparsers: what ``ArgumentParser.add_subparsers`` returned.

    Returns:
        The command's parser.
    """
    e = subparsers.add_parser("export", help="export a run's sparse model (pt, onnx or safetensors), checked "
                              "against the run on its test split, with a model card")
    e.add_argument("run_dir", help="a finished SAFS run folder (holds config.json and results.json)")
    e.add_argument("--format", default="pt", help=f"{', '.join(FORMATS)} (default pt)")
    e.add_argument("--out", default=None, help="file to write (default: RUN_DIR/export/model.<format>)")
    e.add_argument("--stage", default="safs", help=f"the run's stage to export: {', '.join(EXPORT_STAGES)}")
    e.add_argument("--data", default=None, help="data folder (default $SAFS_DATA, else <repo>/data)")
    e.add_argument("--compact", action="store_true", help="onnx only: export the compact engine's form (live "
                   "units and kept weights only: a smaller file, faster at large batches)")
    e.set_defaults(func=export_command)
    return e


def export_command(args: argparse.Namespace) -> int:
    """Handler of ``python -m safs_lite export``: export, check, and print path, check and model card.

    Args:
        args: the parsed arguments (run_dir, format, out, stage, data, compact).

    Returns:
        0 (errors are raised as one-line ValueError for the CLI's main to print).
    """
    path, check = export_run(args.run_dir, args.format, out=args.out, stage=args.stage, data_root=args.data,
                             return_check=True, compact=args.compact)
    print(f"exported: {path} ({check.format}, {path.stat().st_size:,} bytes)")
    print(f"check: {check.summary()}")
    print(f"model card: {_card_path(path, args.stage)}")
    return 0


__all__ = ["FORMATS", "FrozenActivation", "CompactModule", "freeze", "frozen_sites", "frozen_from_info", "load_exported",
           "OnnxModel", "ExportCheck", "compare", "check_export", "export_run", "export_onnx", "default_export_path",
           "model_card", "run_command", "add_export_parser", "export_command", "SparseLinear",
           "SparseConv2d", "to_sparse", "nonzero_weights"]
