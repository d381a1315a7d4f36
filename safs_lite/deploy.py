"""Deployment of the sparse models SAFS finds: freezing, checked export to pt / ONNX / safetensors, sparse layers.

- `freeze(model)`: a plain PyTorch copy of a pruned SAFS model, masks made permanent and every
  activation site's operator, alpha and beta baked in as constants (`FrozenActivation`).
- `export_run(run_dir, format)`: freezes a finished run's model, writes it as ``pt`` (the pickled
  module), ``onnx`` or ``safetensors`` (state dict + a JSON to rebuild it), checks that the written
  file reproduces the run's model on the test split (logits within a tight tolerance, predictions
  exactly), and writes a model card next to it. `check_export` repeats that check on a file.
- `load_exported(path)`: any of those files back as a callable ``images -> logits``.
- `SparseLinear`, `SparseConv2d` and `to_sparse(model, layout)`: the frozen model with its pruned
  layers holding ``torch.sparse`` CSR or COO weights (smaller on disk; faster where the sparsity is
  high, see benchmarks/sparse_inference.py).
- `add_export_parser(subparsers)`: the CLI command ``python -m safs_lite export RUN_DIR``.

Example:
    >>> from safs_lite import build_model, prune_model
    >>> dense = freeze(prune_model(build_model("lenet5", seed=0), 0.99))
    >>> sparse = to_sparse(dense, "csr")
    >>> x = torch.rand(4, 1, 28, 28)
    >>> bool(torch.allclose(sparse(x), dense(x), atol=1e-5))
    True
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import shlex
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .activations import ACTIVATIONS, Activation
from .pruning import export, layer_counts, prunable_layers
from .runs import load_json, save_json

FORMATS: dict[str, tuple[str, ...]] = {  # format -> file suffixes it may be written to (first: the default)
    "pt": (".pt", ".pth"),
    "onnx": (".onnx",),
    "safetensors": (".safetensors",),
}
EXPORT_STAGES = ("stage1", "stage2", "safs")
LAYOUTS = ("csr", "coo")
# The check's tolerance on logits, as in torch.allclose: |exported - run| <= ATOL + RTOL * |run|.
# pt and safetensors run the very same kernels (difference 0); ONNX Runtime's kernels sum in
# another order, which moves float32 logits by ~1e-6 relative.
RTOL = 1e-4
ATOL = 1e-5
FROZEN_FORMAT = "safs_lite-frozen/1"  # names the JSON layout that rebuilds a frozen model
CHECK_BATCH = 1000  # test images per forward pass in the check


# --------------------------------------------------------------------------- freezing

class FrozenActivation(nn.Module):
    """One activation site frozen for inference: alpha * op(beta * x) with op, alpha and beta constants.

    alpha and beta are Python floats (no Parameters, no state-dict entries) and the operator is
    the function itself, fixed when frozen, so the module is plain PyTorch: it pickles (by the
    operator's qualified name), traces and exports to ONNX as constants.

    Args:
        op: registry name of the operator (a key of ``ACTIVATIONS``).
        alpha: output scale.
        beta: input scale.
    """

    def __init__(self, op: str, alpha: float = 1.0, beta: float = 1.0):
        super().__init__()
        if op not in ACTIVATIONS:
            raise ValueError(f"unknown activation operator {op!r}; valid: {', '.join(ACTIVATIONS)}")
        self.op_name = op
        self.fn: Callable[[Tensor], Tensor] = ACTIVATIONS[op]
        self.alpha = float(alpha)
        self.beta = float(beta)

    def forward(self, x: Tensor) -> Tensor:
        """Return alpha * op(beta * x)."""
        # A float32 alpha/beta times x gives the same bits as a 0-dim float32 Parameter would
        # (both are CPU scalars to the kernel); scales of exactly 1 are skipped (x * 1 == x).
        if self.beta != 1.0:
            x = self.beta * x
        x = self.fn(x)
        return x if self.alpha == 1.0 else self.alpha * x

    def extra_repr(self) -> str:
        return f"op={self.op_name!r}, alpha={self.alpha:.6g}, beta={self.beta:.6g}"


def freeze(model: nn.Module) -> nn.Module:
    """A frozen copy of a (pruned) SAFS model for inference; `model` is left untouched.

    The copy has its pruning masks made permanent (plain weights with exact zeros) and every
    `Activation` replaced by a `FrozenActivation` with the same operator, alpha and beta; it is
    in eval mode with gradients off, and its outputs equal the original's bit for bit.

    Args:
        model: any model, pruned (torch.nn.utils.prune masks) or not, with or without
            `Activation` modules (a model frozen before is copied unchanged).

    Returns:
        The frozen copy.
    """
    out = export(model)  # a deep copy, masks removed
    for name, mod in list(out.named_modules()):
        if isinstance(mod, Activation):
            out.set_submodule(name, FrozenActivation(mod.op_name, mod.alpha.item(), mod.beta.item()))
    return out.eval().requires_grad_(False)


class CompactModule(nn.Module):
    """A pruned model's compact-engine forward (`safs_lite.compact`) as a plain inference module.

    It holds a frozen copy of the model (`freeze`) with the pruning masks put back on its pruned
    layers (`weight_orig` holds the frozen weights, zeros included, so `weight_orig * weight_mask`
    is the frozen weight bit for bit), and runs it on the compact engine: live units and kept
    taps only, as gathers and small matrix products. That is what a compact ONNX export
    (`export_run(..., compact=True)`) holds; its outputs equal the masked model's up to float
    rounding order. The engine's plan (which units live, the gather indices) is built here for
    `input_shape`, so tracing (torch.export) meets no data-dependent step.

    Args:
        model: a pruned model the compact engine supports (LeNet-5, MLPs, chains of Conv2d /
            Linear / activations / max pooling / flatten); left untouched.
        input_shape: the (C, H, W) or (features,) one sample has.

    Raises:
        ValueError: if the compact engine cannot run the model, naming why.

    Example:
        >>> from safs_lite import build_model, prune_model
        >>> model = prune_model(build_model("lenet5", seed=0), 0.99).eval()
        >>> x = torch.rand(4, 1, 28, 28)
        >>> bool(torch.allclose(CompactModule(model, (1, 28, 28))(x), model(x), atol=1e-5))
        True
    """

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]):
        super().__init__()
        import torch.nn.utils.prune as prune

        from .compact import CompactNet

        frozen = freeze(model)
        layers = prunable_layers(frozen)
        for name, m in prunable_layers(model).items():
            if hasattr(m, "weight_mask"):
                prune.custom_from_mask(layers[name], "weight", m.weight_mask.detach().clone())
        self.model = frozen.requires_grad_(False)
        self.net = CompactNet(self.model)
        with torch.no_grad():
            self.net(torch.zeros(1, *input_shape, dtype=next(model.parameters()).dtype))

    def _apply(self, fn, recurse=True):
        """`.to(device)`, `.double()` and the like move the plan's index tensors with the weights."""
        super()._apply(fn, recurse)
        self.net.apply_to_plans(fn)
        return self

    def forward(self, x: Tensor) -> Tensor:
        """The logits of the batch `x`, computed on the compact engine."""
        return self.net(x)


def frozen_sites(model: nn.Module) -> dict[str, dict]:
    """The operator, alpha and beta of every activation site, frozen or not, by module name.

    Args:
        model: a model holding `Activation` or `FrozenActivation` modules.

    Returns:
        Module name (e.g. ``"acts.conv1"``) -> ``{"op": str, "alpha": float, "beta": float}``.
    """
    sites = {}
    for name, m in model.named_modules():
        if isinstance(m, FrozenActivation):
            sites[name] = {"op": m.op_name, "alpha": m.alpha, "beta": m.beta}
        elif isinstance(m, Activation):
            sites[name] = {"op": m.op_name, "alpha": m.alpha.item(), "beta": m.beta.item()}
    return sites


def frozen_from_info(info: dict, state_dict: dict[str, Tensor], model: nn.Module | None = None) -> nn.Module:
    """Rebuild a frozen model from its architecture info (see `export_run`'s safetensors JSON) and weights.

    Args:
        info: ``{"format": FROZEN_FORMAT, "model": name, "num_classes": k, "sites": {...}}``.
        state_dict: the frozen model's state dict (weights with their zeros, biases, buffers).
        model: for a network of your own (`safs_lite.search`), an instance of its class (any
            weights); built-in models are rebuilt by name.

    Returns:
        The frozen model, in eval mode.

    Raises:
        ValueError: if the info is not of FROZEN_FORMAT or does not fit the weights.
    """
    from . import build_model  # the package's public name survives module moves

    if not isinstance(info, dict) or info.get("format") != FROZEN_FORMAT:
        got = info.get("format") if isinstance(info, dict) else type(info).__name__
        raise ValueError(f"architecture info of format {got!r}; valid: {FROZEN_FORMAT!r}")
    if model is not None:
        from . import make_searchable

        model = make_searchable(model)  # the run's site names; the sites are replaced just below
    elif info.get("own_model"):
        raise ValueError(f"{info['model']!r} is a network of your own: pass an instance of it (model=...) "
                         "to rebuild it from its weights")
    else:
        model = build_model(info["model"], num_classes=int(info["num_classes"]))
    for name, site in info["sites"].items():
        model.set_submodule(name, FrozenActivation(site["op"], site["alpha"], site["beta"]))
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise ValueError(f"weights do not fit a frozen {info['model']}: {' '.join(first[:2])}") from None
    model.preprocessing = info.get("preprocessing")  # raw samples -> input (`preprocess`); None from older kits
    return model.eval().requires_grad_(False)


# --------------------------------------------------------------------------- writing and loading

def _format_of(path: Path) -> str:
    for fmt, suffixes in FORMATS.items():
        if path.suffix in suffixes:
            return fmt
    valid = ", ".join(s for suffixes in FORMATS.values() for s in suffixes)
    raise ValueError(f"{path}: unknown export file suffix {path.suffix!r}; valid: {valid}")


def _check_format(format: str) -> str:
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; valid: {', '.join(FORMATS)}")
    return format


def _info_path(path: Path) -> Path:
    """The architecture JSON beside a safetensors file: model.safetensors -> model.json."""
    return path.with_suffix(".json")


def preprocessing(data) -> dict:
    """What turns a sample as the data hold it (a raw image) into the model's input, as `Data.batches` does.

    Returns:
        {"input": dtype of the raw samples, "divide": what they are divided by (255 for uint8
        images, else 1), "mean_image": (C, H, W) nested list subtracted next, or None, "mean"/"std":
        per channel, then (x - mean) / std, or None, "formula": the same in words}. Exports carry
        it (`export_run`); `preprocess` applies it.
    """
    raw = data.train.x.dtype
    divide = 255.0 if raw == torch.uint8 else 1.0
    steps = ["x = x / 255" if raw == torch.uint8 else "x = float32(x)"]
    if data.mean_image is not None:
        steps.append("x = x - mean_image")
    if data.mean is not None:
        steps.append("x = (x - mean) / std, per channel (dim 1)")
    return {"input": str(raw).removeprefix("torch."), "divide": divide,
            "mean_image": None if data.mean_image is None else data.mean_image.cpu().tolist(),
            "mean": None if data.mean is None else list(data.mean),
            "std": None if data.std is None else list(data.std), "formula": "; ".join(steps)}


def preprocess(pre: "dict | nn.Module | OnnxModel", x: Tensor) -> Tensor:
    """Raw samples (as the run's data held them: uint8 images for the built-in datasets) -> the model's input.

    Args:
        pre: a `preprocessing` dict, or a model from `load_exported` (its `.preprocessing`).
        x: raw samples (N, ...).

    Example:
        >>> pre = {"input": "uint8", "divide": 255.0, "mean_image": None, "mean": [0.5], "std": [0.5],
        ...        "formula": ""}
        >>> preprocess(pre, torch.full((1, 1, 2, 2), 255, dtype=torch.uint8)).flatten().tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    pre = pre if isinstance(pre, dict) else getattr(pre, "preprocessing", None)
    if pre is None:
        raise ValueError("no preprocessing recorded with this model (exported by an older kit): export it again")
    x = x.float() / pre["divide"] if pre["divide"] != 1.0 else x.float()
    if pre.get("mean_image") is not None:
        x = x - torch.tensor(pre["mean_image"], dtype=torch.float32)
    if pre.get("mean") is not None:
        view = (1, -1) + (1,) * (x.ndim - 2)
        x = (x - torch.tensor(pre["mean"]).view(view)) / torch.tensor(pre["std"]).view(view)
    return x


def _write_pt(frozen: nn.Module, path: Path, info: dict) -> None:
    try:
        torch.save(frozen, path)  # the whole module; load with torch.load(path, weights_only=False)
    except (pickle.PicklingError, AttributeError, TypeError) as err:  # a torch.fx-traced network of one's own
        raise ValueError(f"this {info['model']} cannot be pickled whole ({type(err).__name__}); export it as "
                         "onnx or safetensors") from None


def _write_safetensors(frozen: nn.Module, path: Path, info: dict) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in frozen.state_dict().items()}
    # The info travels twice: in the file's metadata (self-contained) and as a readable JSON beside it.
    save_file(state, str(path), metadata={"safs_lite": json.dumps(info)})
    save_json(_info_path(path), info)


def _write_onnx(frozen: nn.Module, path: Path, info: dict) -> None:
    example = torch.zeros(2, *info["input_shape"])
    # The dynamo exporter (torch.export, the default and recommended one) traces offline and
    # writes the same bytes on every run; batch is the one dynamic dimension.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(frozen, (example,), str(path), dynamo=True, external_data=False,
                          input_names=["images"], output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    import onnx

    model = onnx.load(str(path))
    if info.get("compact"):
        # Fold every constant: the gathered kept weights and the constants of disconnected units are
        # stored as what they are (the exporter's default size limits would keep whole weight_orig and
        # weight_mask tensors and gather from them on every run).
        from onnxscript import optimizer

        model = optimizer.optimize(model, input_size_limit=1 << 40, output_size_limit=1 << 40)
    model.metadata_props.add(key="safs_lite_preprocessing", value=json.dumps(info["preprocessing"]))
    onnx.save(model, str(path))


def export_onnx(model: nn.Module, path: str | os.PathLike, input_shape: tuple[int, ...], compact: bool = False,
                preprocessing: dict | None = None) -> Path:
    """Write a pruned model as one ONNX file (dynamic batch): its frozen form, or with `compact` its compact form.

    Unlike `export_run` this checks nothing against a run; compare the file's outputs yourself
    (`load_exported(path)(x)` against `model(x)`), as benchmarks/sparse_inference.py does.

    Args:
        model: a pruned (or dense) model; left untouched.
        path: the .onnx file to write.
        input_shape: the (C, H, W) or (features,) one sample has.
        compact: write `CompactModule(model)` (live units and kept weights only) instead of `freeze(model)`.
        preprocessing: what turns raw samples into the input (`preprocessing(data)`), stored as metadata.

    Returns:
        The path written.
    """
    path = Path(path)
    module = CompactModule(model, tuple(input_shape)) if compact else freeze(model)
    _write_onnx(module, path, {"input_shape": list(input_shape), "preprocessing": preprocessing,
                               **({"compact": True} if compact else {})})
    return path


_WRITERS = {"pt": _write_pt, "onnx": _write_onnx, "safetensors": _write_safetensors}


class OnnxModel:
    """An ONNX file run by ONNX Runtime on the CPU, called like a model: images (Tensor) -> logits (Tensor).

    Args:
        path: the .onnx file.
        threads: intra-op threads (default: torch's current number).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        meta = self.session.get_modelmeta().custom_metadata_map.get("safs_lite_preprocessing")
        self.preprocessing = None if meta is None else json.loads(meta)

    def __call__(self, x: Tensor) -> Tensor:
        if x.dtype == torch.uint8:  # raw images: the file takes preprocessed float32 input
            how = self.preprocessing["formula"] if self.preprocessing else "the run's preprocessing"
            raise ValueError(f"{self.path.name} takes preprocessed float32 input, got raw uint8 images; apply "
                             f"{how} first (safs_lite.deploy.preprocess(model, x))")
        out = self.session.run(None, {self.input_name: x.detach().cpu().float().contiguous().numpy()})[0]
        return torch.from_numpy(out)


def load_exported(path: str | os.PathLike, model: nn.Module | None = None) -> Callable[[Tensor], Tensor]:
    """Load a file written by `export_run` as a callable images -> logits.

    Args:
        path: a ``.pt``/``.pth`` (pickled frozen module; unpickling runs code, so load only files
            you trust), ``.onnx`` (run by ONNX Runtime) or ``.safetensors`` file (weights; the
            architecture is read from the JSON beside it, else from the file's metadata).
        model: safetensors of a network of your own only: an instance of its class.

    Returns:
        The frozen ``nn.Module`` for pt and safetensors, an `OnnxModel` for onnx.

    Raises:
        ValueError: on an unknown suffix, a missing file or unreadable architecture info.
    """
    path = Path(path)
    fmt = _format_of(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such exported model file")
    if fmt == "pt":
        return torch.load(path, map_location="cpu", weights_only=False).eval()
    if fmt == "onnx":
        return OnnxModel(path)
    from safetensors import safe_open
    from safetensors.torch import load_file

    if _info_path(path).is_file():
        info = load_json(_info_path(path))
    else:
        with safe_open(str(path), framework="pt") as f:
            meta = (f.metadata() or {}).get("safs_lite")
        if meta is None:
            raise ValueError(f"{path}: no architecture info ({_info_path(path).name} missing and none in "
                             "the file's metadata); export it again with export_run")
        info = json.loads(meta)
    return frozen_from_info(info, load_file(str(path)), model)


# --------------------------------------------------------------------------- the check

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
    from . import load_data, load_safs_model

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


# --------------------------------------------------------------------------- export_run and the model card

def default_export_path(run_dir: str | os.PathLike, format: str = "pt", stage: str = "safs",
                        compact: bool = False) -> Path:
    """Where `export_run` writes by default: <run>/export/model.<ext> (model-<stage>.<ext> for other stages;
    model-compact.onnx, model-<stage>-compact.onnx for the compact form)."""
    ext = FORMATS[_check_format(format)][0]
    name = "model" + ("" if stage == "safs" else f"-{stage}") + ("-compact" if compact else "")
    return Path(run_dir) / "export" / f"{name}{ext}"


def _card_path(path: Path, stage: str) -> Path:
    return path.parent / ("model_card.md" if stage == "safs" else f"model_card-{stage}.md")


def run_command(key: dict) -> str:
    """The `python -m safs_lite run` command line (or, for a network of your own, the `search` call) that makes
    a run with this config key."""
    if key.get("own_model"):
        return (f"safs_lite.search({key['model']}(), data, sparsity={key['sparsity']:g}, pruning={key['pruning']!r}, "
                f"preset={key['preset']!r}, seed={key['seed']}, train_dense={key.get('train_dense', False)})")
    parts = ["python", "-m", "safs_lite", "run", "--model", key["model"], "--dataset", key["dataset"],
             "--sparsity", f"{key['sparsity']:g}", "--pruning", key["pruning"], "--preset", key["preset"],
             "--seed", str(key["seed"])]
    for field in ("search", "move", "fitness"):
        if field in key:
            parts += [f"--{field}", str(key[field])]
    if key.get("amp"):
        parts.append("--amp")
    if key.get("channels_last"):
        parts.append("--channels-last")
    if key.get("amp") or key.get("channels_last"):
        parts += ["--device", "cuda"]
    return shlex.join(parts)


def _export_command(run_dir: Path, fmt: str, out: Path | None, stage: str,
                    data_root: str | os.PathLike | None, own_model: str | None = None, compact: bool = False) -> str:
    if own_model:  # a network of your own is exported from Python: its class and data are needed
        extra = (f", out={str(out)!r}" if out is not None else "") + (f", stage={stage!r}" if stage != "safs" else "") \
            + (", compact=True" if compact else "")
        return f"safs_lite.deploy.export_run({str(run_dir)!r}, {fmt!r}{extra}, model={own_model}(), data=data)"
    parts = ["python", "-m", "safs_lite", "export", str(run_dir), "--format", fmt]
    if out is not None:
        parts += ["--out", str(out)]
    if stage != "safs":
        parts += ["--stage", stage]
    if data_root is not None:
        parts += ["--data", str(data_root)]
    if compact:
        parts.append("--compact")
    return shlex.join(parts)


def _layer_table(frozen: nn.Module) -> list[str]:
    rows = ["| layer | shape | weights | kept | sparsity |", "| --- | --- | ---: | ---: | ---: |"]
    layers, counts = prunable_layers(frozen), layer_counts(frozen)
    for name, (n, kept) in counts.items():
        shape = "x".join(map(str, layers[name].weight.shape))
        rows.append(f"| {name} | {shape} | {n:,} | {kept:,} | {100 * (1 - kept / n):.2f}% |")
    total, kept_all = sum(n for n, _ in counts.values()), sum(k for _, k in counts.values())
    rows.append(f"| overall | | {total:,} | {kept_all:,} | {100 * (1 - kept_all / max(total, 1)):.2f}% |")
    return rows


_LOADING = {
    "pt": "model = torch.load({p!r}, weights_only=False)  # the frozen nn.Module (needs safs_lite installed)",
    "onnx": "session = onnxruntime.InferenceSession({p!r}); "
            "logits = session.run(None, {{'images': x.numpy()}})[0]",
    "safetensors": "model = safs_lite.deploy.load_exported({p!r})  # weights + the architecture in "
                   "the JSON beside it (a network of your own: load_exported(path, model=MyNet()))",
}


def model_card(run_dir: Path, key: dict, results: dict, frozen: nn.Module, stage: str,
               checks: dict[str, dict], export_cmds: dict[str, str]) -> str:
    """The markdown model card of a run's exported model.

    Args:
        run_dir: the run folder.
        key: config.json's run key.
        results: results.json.
        frozen: the frozen model.
        stage: the stage exported.
        checks: file name -> `ExportCheck` as a dict, for every export of this stage in the folder.
        export_cmds: file name -> the command that wrote it.

    Returns:
        The card's text.
    """
    data = results.get("data", {})
    acc = results.get("test_accuracy", {})
    lines = [f"# Model card: {key['model']} on {key['dataset']}, {100 * key['sparsity']:g}% {key['pruning']} "
             f"sparsity, SAFS stage `{stage}`", "",
             f"Exported from the SAFS run `{run_dir}` (kit {results.get('kit', key.get('kit', '?'))}). "
             "Activation functions were searched per layer by SAFS (Loni et al. 2023): each site "
             "computes `alpha * op(beta * x)`, frozen here as constants; pruned weights are exact zeros.", "",
             "## Data", "",
             f"- source: {data.get('source', '?')}",
             f"- signature: `{data.get('signature', key.get('data', '?'))}` (every number below is on this data; "
             "the export check refuses other data)", "",
             "## Input preprocessing", "",
             f"The model takes preprocessed float32 input, not raw samples: "
             f"`{(getattr(frozen, 'preprocessing', None) or {}).get('formula', 'not recorded')}` "
             "(`safs_lite.deploy.preprocess(model, raw)`; every export carries it: `model.preprocessing`, "
             "the safetensors JSON, the ONNX metadata `safs_lite_preprocessing`).", "",
             "## Sparsity per layer", "", *_layer_table(frozen), "",
             "## Activation sites", "", "| site | operator | alpha | beta |", "| --- | --- | ---: | ---: |"]
    for name, site in frozen_sites(frozen).items():
        lines.append(f"| {name.removeprefix('acts.')} | {site['op']} | {site['alpha']:.6g} | {site['beta']:.6g} |")
    lines += ["", "## Accuracy (%)", "", "| stage | validation | test |", "| --- | ---: | ---: |"]
    for name in ("dense", "magnitude_pruning", "stage1", "stage2", "safs"):
        rec_path = run_dir / f"{name}.json"
        val = load_json(rec_path).get("val_accuracy") if rec_path.is_file() else None
        mark = " (exported)" if name == stage else ""
        lines.append(f"| {name}{mark} | {'-' if val is None else f'{val:.2f}'} | "
                     f"{'-' if acc.get(name) is None else f'{acc[name]:.2f}'} |")
    lines += ["", "Dense and magnitude-pruning validation accuracies are kept in the shared caches, not in the "
              "run folder.", "", "## Exports (each checked against the run's model on the test split)", ""]
    for name, c in sorted(checks.items()):
        check = ExportCheck(**c)
        lines += [f"- `{name}` ({check.format}): {check.summary()}",
                  f"  - load: `{_LOADING[check.format].format(p=name)}`",
                  f"  - written by: `{export_cmds.get(name, '?')}`"]
    env = load_json(run_dir / "config.json").get("environment", {})
    lines += ["", "## Provenance", "",
              f"- run made by (reconstructed from config.json): `{run_command(key)}`",
              f"- preset budgets: {json.dumps(key.get('budgets', {}))}",
              f"- environment of the run: {', '.join(f'{k} {v}' for k, v in env.items()) or 'not recorded'}", ""]
    return "\n".join(lines)


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


# --------------------------------------------------------------------------- CLI

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


# --------------------------------------------------------------------------- sparse layers

def _sparse(dense: Tensor, layout: str, index_dtype: torch.dtype) -> Tensor:
    """A 2-D dense tensor as a CSR or (coalesced) COO tensor."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown sparse layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    with warnings.catch_warnings():  # "sparse CSR support is in beta": said once here, not per layer
        warnings.simplefilter("ignore", UserWarning)
        if layout == "coo":
            if index_dtype != torch.int64:
                raise ValueError(f"COO indices are int64 in torch.sparse; got index_dtype={index_dtype}")
            return dense.to_sparse_coo().coalesce()
        csr = dense.to_sparse_csr()
        if index_dtype == torch.int64:
            return csr
        if index_dtype != torch.int32:
            raise ValueError(f"index_dtype must be torch.int64 or torch.int32, got {index_dtype}")
        # int32 indices halve the index bytes; torch.sparse.mm takes them on the CPU (MKL).
        return torch.sparse_csr_tensor(csr.crow_indices().to(index_dtype), csr.col_indices().to(index_dtype),
                                       csr.values(), csr.shape)


class SparseLinear(nn.Module):
    """A linear layer whose weight is a ``torch.sparse`` CSR or COO tensor: y = x W^T + b.

    Args:
        weight: (out_features, in_features) weight, dense (converted) or already sparse.
        bias: (out_features,) bias or None.
        layout: "csr" or "coo" (used when `weight` is dense).
        index_dtype: torch.int64, or torch.int32 (CSR only) for smaller files.
    """

    def __init__(self, weight: Tensor, bias: Tensor | None = None, layout: str = "csr",
                 index_dtype: torch.dtype = torch.int64):
        super().__init__()
        w = weight.detach()
        self.register_buffer("weight", w if w.layout != torch.strided else _sparse(w, layout, index_dtype))
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.in_features, self.out_features = int(w.shape[1]), int(w.shape[0])

    @classmethod
    def from_dense(cls, layer: nn.Linear, layout: str = "csr", index_dtype: torch.dtype = torch.int64
                   ) -> SparseLinear:
        """The sparse version of a (frozen, unmasked) nn.Linear."""
        return cls(layer.weight, layer.bias, layout, index_dtype)

    def forward(self, x: Tensor) -> Tensor:
        """Return x W^T + b for x of shape (..., in_features)."""
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        # sparse @ dense is the product torch.sparse supports on every layout: (out, in) @ (in, N).
        y = torch.sparse.mm(self.weight, x2.t()).t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"layout={str(self.weight.layout).removeprefix('torch.sparse_')}, nnz={self.weight._nnz()}")


class SparseConv2d(nn.Module):
    """A 2-D convolution computed as a sparse matrix product over the patch entries its kept weights use.

    The (out, C*kh*kw) weight matrix keeps only its non-zero columns (input channel and kernel
    offset pairs some kept weight reads); for each input size the layer gathers just those rows
    of the unfolded input, one `index_select`, and multiplies them by the sparse weight. At 99%
    sparsity LeNet-5's conv1 reads 2 of its 25 patch entries, so the unfold shrinks with the
    weights; a full `F.unfold` would cost more than the dense convolution.

    Args:
        conv: a frozen nn.Conv2d (groups 1, zero padding).
        layout: "csr" or "coo".
        index_dtype: torch.int64, or torch.int32 (CSR only).

    Raises:
        ValueError: for grouped convolutions or non-zero padding modes.
    """

    def __init__(self, conv: nn.Conv2d, layout: str = "csr", index_dtype: torch.dtype = torch.int64):
        super().__init__()
        if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"SparseConv2d supports groups=1, numeric zero padding; got groups={conv.groups}, "
                             f"padding={conv.padding!r}, padding_mode={conv.padding_mode!r}")
        w = conv.weight.detach()
        self.out_channels, self.in_channels = int(w.shape[0]), int(w.shape[1])
        self.kernel_size, self.stride = tuple(w.shape[2:]), tuple(conv.stride)
        self.padding, self.dilation = tuple(conv.padding), tuple(conv.dilation)
        flat = w.reshape(self.out_channels, -1)
        used = (flat != 0).any(0).nonzero().flatten()  # patch entries (c, i, j) a kept weight reads
        self.register_buffer("used", used)
        self.register_buffer("weight", _sparse(flat[:, used].contiguous(), layout, index_dtype))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())
        self._index: dict[tuple, Tensor] = {}  # (H, W, device) -> gather index; rebuilt, never saved

    def _gather_index(self, h: int, w: int, ho: int, wo: int, device: torch.device) -> Tensor:
        """Flat indices into a padded (C, h, w) image of the used patch entries at every output position."""
        cache = (h, w, str(device))
        if cache not in self._index:
            kh, kw = self.kernel_size
            c, rest = self.used // (kh * kw), self.used % (kh * kw)
            i, j = rest // kw, rest % kw
            base = c * h * w + i * self.dilation[0] * w + j * self.dilation[1]
            rows = torch.arange(ho) * self.stride[0] * w
            cols = torch.arange(wo) * self.stride[1]
            offsets = (rows[:, None] + cols[None, :]).flatten()
            self._index[cache] = (base.cpu()[:, None] + offsets[None, :]).flatten().to(device)
        return self._index[cache]

    def forward(self, x: Tensor) -> Tensor:
        """Return the convolution of x (B, C, H, W)."""
        b = x.shape[0]
        ph, pw = self.padding
        if ph or pw:
            x = F.pad(x, (pw, pw, ph, ph))
        h, w = x.shape[-2:]
        kh, kw = self.kernel_size
        ho = (h - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        wo = (w - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        n_used, n_pos = self.used.numel(), ho * wo
        if n_used == 0:  # every weight pruned: the output is the bias alone
            y = x.new_zeros(b, self.out_channels, ho, wo)
            return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)
        # Gather the used patch entries of every image, (B, used, positions), and lay them out as
        # (used, images x positions) so that the product's rows come out image-major: the final
        # (out, B, positions) -> (B, out, positions) copy then moves whole rows of positions.
        cols = x.reshape(b, -1).index_select(1, self._gather_index(h, w, ho, wo, x.device))
        cols = cols.view(b, n_used, n_pos).transpose(0, 1).reshape(n_used, b * n_pos)
        y = torch.sparse.mm(self.weight, cols).view(self.out_channels, b, n_pos).transpose(0, 1)
        if self.bias is None:
            return y.contiguous().view(b, self.out_channels, ho, wo)
        # One pass adds the bias and writes the contiguous (NCHW) result; a plain `y + bias` would
        # keep y's permuted strides, and pooling such a tensor is twice as slow.
        out = torch.empty(b, self.out_channels, n_pos, dtype=y.dtype, device=y.device)
        torch.add(y, self.bias.view(1, -1, 1), out=out)
        return out.view(b, self.out_channels, ho, wo)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, used_patch_entries={self.used.numel()}, "
                f"layout={str(self.weight.layout).removeprefix('torch.sparse_')}, nnz={self.weight._nnz()}")


def to_sparse(model: nn.Module, layout: str = "csr", conv: bool = True,
              index_dtype: torch.dtype = torch.int64) -> nn.Module:
    """A frozen copy of `model` whose prunable layers hold sparse weights.

    Args:
        model: a pruned or frozen model (it is frozen first: masks permanent, sites constant).
        layout: "csr" or "coo".
        conv: also make Conv2d layers sparse (`SparseConv2d`); False keeps them dense (faster
            at moderate sparsity, see benchmarks/sparse_inference.py).
        index_dtype: torch.int64, or torch.int32 (CSR only) for smaller files.

    Returns:
        The sparse model (eval mode); its outputs equal the frozen model's up to float32
        summation order.

    Raises:
        ValueError: on an unknown layout or index dtype.
    """
    _sparse(torch.zeros(1, 1), layout, index_dtype)  # validate before copying anything
    out = freeze(model)
    for name, m in list(prunable_layers(out).items()):
        if isinstance(m, nn.Linear):
            out.set_submodule(name, SparseLinear.from_dense(m, layout, index_dtype))
        elif conv and isinstance(m, nn.Conv2d) and m.groups == 1 and m.padding_mode == "zeros" \
                and not isinstance(m.padding, str):
            out.set_submodule(name, SparseConv2d(m, layout, index_dtype))
    return out.eval()


def nonzero_weights(model: nn.Module) -> int:
    """Kept (non-zero) weights over the prunable layers of a dense, frozen or sparse model."""
    total = 0
    for m in model.modules():
        if isinstance(m, (SparseLinear, SparseConv2d)):
            total += int((m.weight.values() if m.weight.layout != torch.sparse_coo
                          else m.weight._values()).ne(0).sum())
        elif isinstance(m, (nn.Linear, nn.Conv2d)):
            total += int((m.weight != 0).sum())
    return total


__all__ = ["FORMATS", "FrozenActivation", "CompactModule", "freeze", "frozen_sites", "frozen_from_info", "load_exported",
           "OnnxModel", "ExportCheck", "compare", "check_export", "export_run", "export_onnx", "default_export_path",
           "model_card", "run_command", "add_export_parser", "export_command", "SparseLinear",
           "SparseConv2d", "to_sparse", "nonzero_weights"]
