"""Model cards: the Markdown file written next to every export (what the run was, how to remake it, the layers and
what they keep, the export check's result, how to load the file)."""
from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

from torch import nn

from ..method.frozen import frozen_sites
from ..method.pruning import layer_counts, prunable_layers
from ..run.folders import load_json
from .checks import ExportCheck


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
        return f"safs_lite.deploy.export.export_run({str(run_dir)!r}, {fmt!r}{extra}, model={own_model}(), data=data)"
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
    "safetensors": "model = safs_lite.deploy.formats.load_exported({p!r})  # weights + the architecture in "
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
             "(`safs_lite.deploy.formats.preprocess(model, raw)`; every export carries it: `model.preprocessing`, "
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
