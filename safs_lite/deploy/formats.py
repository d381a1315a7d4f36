"""Export file formats: ``pt`` (the pickled frozen module), ``onnx`` and ``safetensors`` (state dict plus a JSON
that rebuilds the model), the preprocessing an exported model expects, and `load_exported(path)`, which reads any of
them back as a callable ``images -> logits``."""
from __future__ import annotations

import json
import os
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from ..method.frozen import FrozenActivation, freeze
from ..run.folders import load_json, save_json
from .compact_module import CompactModule

FORMATS: dict[str, tuple[str, ...]] = {  # format -> file suffixes it may be written to (first: the default)
    "pt": (".pt", ".pth"),
    "onnx": (".onnx",),
    "safetensors": (".safetensors",),
}


EXPORT_STAGES = ("stage1", "stage2", "safs")


FROZEN_FORMAT = "safs_lite-frozen/1"  # names the JSON layout that rebuilds a frozen model


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
    from ..nets.models import build_model

    if not isinstance(info, dict) or info.get("format") != FROZEN_FORMAT:
        got = info.get("format") if isinstance(info, dict) else type(info).__name__
        raise ValueError(f"architecture info of format {got!r}; valid: {FROZEN_FORMAT!r}")
    if model is not None:
        from ..nets.searchable import make_searchable

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
                             f"{how} first (safs_lite.deploy.formats.preprocess(model, x))")
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
