"""Export checks: an exported file must reproduce its run's model on the test split (logits within a tight
tolerance, predictions exactly): `compare`, `check_export` and the `ExportCheck` they return."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..run.folders import load_json
from .formats import EXPORT_STAGES, _format_of, load_exported

# The check's tolerance on logits, as in torch.allclose: |exported - run| <= ATOL + RTOL * |run|.
# pt and safetensors run the very same kernels (difference 0); ONNX Runtime's kernels sum in
# another order, which moves float32 logits by ~1e-6 relative.
RTOL = 1e-4


ATOL = 1e-5


CHECK_BATCH = 1000  # test images per forward pass in the check


@dataclass
class ExportCheck:
    """How an exported file compares with the run's model on the test split.

    Attributes:
        format: "pt", "onnx" or "safetensors".
        path: the exported file.
        stage: the run's stage exported.
        images: test images compared.
        max_abs_diff: largest |exported logit - run logit|.
        within_tolerance: every logit within ATOL + RTOL * |run logit|.
        predictions_agree: test images whose predicted class is the same.
        accuracy: test accuracy (%) of the exported model.
        run_accuracy: test accuracy (%) of the run's model, evaluated now.
        recorded_accuracy: test accuracy (%) results.json recorded for the stage (None if absent).
    """

    format: str
    path: str
    stage: str
    images: int
    max_abs_diff: float
    within_tolerance: bool
    predictions_agree: int
    accuracy: float
    run_accuracy: float
    recorded_accuracy: float | None

    @property
    def passed(self) -> bool:
        """Logits within tolerance and every prediction equal."""
        return self.within_tolerance and self.predictions_agree == self.images

    def summary(self) -> str:
        """The check in one line."""
        rec = "" if self.recorded_accuracy is None else f", recorded {self.recorded_accuracy:.2f}%"
        return (f"{'ok' if self.passed else 'FAILED'}: max |logit diff| {self.max_abs_diff:.3g} over "
                f"{self.images} test images (tolerance {ATOL:g} + {RTOL:g}|logit|); predictions agree "
                f"{self.predictions_agree}/{self.images}; test accuracy {self.accuracy:.2f}% "
                f"(run's model {self.run_accuracy:.2f}%{rec})")


@torch.inference_mode()
def _logits(model: Callable[[Tensor], Tensor], data, batch_size: int = CHECK_BATCH) -> tuple[Tensor, Tensor]:
    """(logits, labels) of a model over the test split, in batches."""
    outs, ys = [], []
    for xb, yb in data.batches("test", batch_size):
        outs.append(model(xb.cpu()).float().cpu())
        ys.append(yb.cpu())
    return torch.cat(outs), torch.cat(ys)


def compare(reference: nn.Module, exported: Callable[[Tensor], Tensor], data, fmt: str, path: Path,
            stage: str = "safs", recorded: float | None = None) -> ExportCheck:
    """Compare an exported model with the reference model on a dataset's test split.

    Args:
        reference: the run's model (pruned, with its `Activation` sites).
        exported: the reloaded export (see `load_exported`).
        data: the run's data (a `safs_lite.Data`).
        fmt: the export format, for the record.
        path: the exported file, for the record.
        stage: the run's stage, for the record.
        recorded: the test accuracy the run recorded, for the record.

    Returns:
        The `ExportCheck` (it does not raise; see `ExportCheck.passed`).
    """
    reference.eval()
    want, labels = _logits(reference, data)
    got, _ = _logits(exported, data)
    if got.shape != want.shape:
        raise ValueError(f"{path}: exported model gives logits of shape {tuple(got.shape)}, "
                         f"the run's model {tuple(want.shape)}")
    diff = (got - want).abs()
    finite = bool(torch.isfinite(got).all() and torch.isfinite(want).all())
    pred, ref_pred = got.argmax(1), want.argmax(1)
    return ExportCheck(
        format=fmt, path=str(path), stage=stage, images=len(labels),
        max_abs_diff=float(diff.max()) if len(labels) else 0.0,
        within_tolerance=finite and bool((diff <= ATOL + RTOL * want.abs()).all()),
        predictions_agree=int((pred == ref_pred).sum()),
        accuracy=100.0 * float((pred == labels).float().mean()),
        run_accuracy=100.0 * float((ref_pred == labels).float().mean()),
        recorded_accuracy=recorded)


def _load_run(run_dir: Path, stage: str, data_root: str | os.PathLike | None, model: nn.Module | None = None,
              data=None):
    """(config key, results, data, run's model) of a finished run, after the data-signature check.

    A run of a network of your own (`safs_lite.search`) needs `model` (an instance of its class) and
    `data` (the `Data` it ran on); a built-in run rebuilds both by name.
    """
    from ..data.builtin import load_data
    from ..run.folders import load_safs_model

    if stage not in EXPORT_STAGES:
        raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(EXPORT_STAGES)}")
    for name in ("config.json", "results.json", f"{stage}.pt"):
        if not (run_dir / name).is_file():
            raise ValueError(f"{run_dir}: no {name}; export needs a finished SAFS run folder "
                             "(made by python -m safs_lite run or safs_lite.search)")
    key = load_json(run_dir / "config.json")["config"]
    results = load_json(run_dir / "results.json")
    want = results.get("data", {}).get("signature") or key.get("data")
    if data is None:
        if key.get("own_model"):
            raise ValueError(f"{run_dir} ran on data of your own ({key['dataset']!r}); pass it as data=")
        data = load_data(key["dataset"], root=data_root, seed=key["seed"])
    if data.signature != want:
        raise ValueError(f"{run_dir} was made on data {want}, but the data found now is {data.signature} "
                         f"({data.source}); point --data at the run's data to check the export")
    return key, results, data, load_safs_model(run_dir, stage=stage, model=model)


def check_export(run_dir: str | os.PathLike, path: str | os.PathLike, stage: str = "safs",
                 data_root: str | os.PathLike | None = None) -> ExportCheck:
    """Check an exported file against a run's model on the run's test split.

    Args:
        run_dir: the SAFS run folder.
        path: the exported file (format from its suffix).
        stage: the run's stage the file was exported from.
        data_root: data folder (default $SAFS_DATA); its data must have the run's signature.

    Returns:
        The passed `ExportCheck`.

    Raises:
        ValueError: (one line) if the data differs from the run's, or the exported model's
            logits or predictions differ from the run's model.
    """
    run_dir, path = Path(run_dir), Path(path)
    fmt = _format_of(path)
    _, results, data, reference = _load_run(run_dir, stage, data_root)
    check = compare(reference, load_exported(path), data, fmt, path, stage,
                    results.get("test_accuracy", {}).get(stage))
    _raise_unless_passed(check)
    return check


def _raise_unless_passed(check: ExportCheck) -> None:
    if not check.passed:
        raise ValueError(f"{check.path}: the exported {check.format} model differs from the run's {check.stage} "
                         f"model on the test split (max |logit diff| {check.max_abs_diff:.3g}, tolerance "
                         f"{ATOL:g} + {RTOL:g}|logit|; {check.images - check.predictions_agree} of "
                         f"{check.images} predictions differ)")
