"""`python -m safs_lite check RUN_DIR`: verify that a SAFS run folder says what it is and holds what it says.

Checks, in order (each failure is one line naming the file and what is wrong):

- `config.json` holds a full run key (`runs.run_key`: config, budgets, data signature, operators,
  kit version) and the data found now has that signature;
- every stage record (`stage1.json`, `stage2.json`, `safs.json`) and `results.json` parses, and
  `results.json` repeats the stage records' test accuracies and the key's config;
- the LAHC history (`stage1_search.csv`) parses and its best fitness is the one stage 1 recorded;
- every saved model (`stage1.pt`, `stage2.pt`, `safs.pt`) reloads to its recorded validation and
  test accuracy, operators and alpha/beta (stage 1: exactly 1), with its pruned weights exactly zero
  and the recorded per-layer sparsity.

Models are re-evaluated the way the run computed (results.json's config: device and `amp`, from
`runs.computed_on`): on the CPU, or on the same GPU model with the same precision, the accuracies
must repeat to 1e-6 points. Where that is not possible here (a GPU run checked on the CPU, a
mixed-precision run re-evaluated in float32), they are re-evaluated on the CPU in float32 and may
differ by `TOLERANCE` points (rounding flips the predictions of near-tied images only); the
problem line says which way it was re-evaluated.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from .activations import get_activations, get_alpha_beta
from .data import Data, load_data
from .pruning import effective_weight, masks, sparsity_report
from .runs import load_json, load_safs_model
from .searchlog import read_history
from .results import METHODS
from .training import cuda_options, evaluate

TOLERANCE = 0.2  # accuracy points a re-evaluation on another device or precision may differ by (0.2: 20 of 10,000)
STAGES = METHODS[2:]  # the stages with a saved model: stage1, stage2, safs
KEY_FIELDS = ("model", "dataset", "sparsity", "pruning", "preset", "seed", "budgets", "data", "search_space",
              "ops_version", "kit")


def check_run(folder: str | os.PathLike, data_root: str | os.PathLike | None = None,
              model: torch.nn.Module | None = None, data: "Data | None" = None) -> list[str]:
    """Every problem found in a run folder, one line each (empty: the folder is consistent).

    Args:
        folder: the run folder.
        data_root: where a built-in dataset is loaded from (default $SAFS_DATA).
        model, data: for a run of a network of your own (`safs_lite.search`): an instance of the
            network (any weights) and the run's data; built-in runs rebuild both by name.
    """
    folder = Path(folder)
    problems: list[str] = []

    def read(name: str):
        path = folder / name
        if not path.exists():
            problems.append(f"{path}: missing")
            return None
        try:
            return load_json(path)
        except ValueError as err:
            problems.append(str(err))
            return None

    if not folder.is_dir():
        return [f"{folder}: not a folder"]
    saved = read("config.json")
    key = saved.get("config") if isinstance(saved, dict) else None
    if not isinstance(key, dict) or any(f not in key for f in KEY_FIELDS):
        missing = [f for f in KEY_FIELDS if not isinstance(key, dict) or f not in key]
        problems.append(f"{folder / 'config.json'}: no full run key (missing {', '.join(missing)}); "
                        "made by an older kit: rerun it")
        return problems
    records = {stage: read(f"{stage}.json") for stage in STAGES}
    results = read("results.json")
    if isinstance(results, dict):
        if any(results.get("config", {}).get(k) != key.get(k) for k in ("model", "dataset", "sparsity", "seed")):
            problems.append(f"{folder / 'results.json'}: its config differs from config.json")
        for stage, rec in records.items():
            if isinstance(rec, dict) and results.get("test_accuracy", {}).get(stage) != rec.get("test_accuracy"):
                problems.append(f"{folder / 'results.json'}: {stage} test accuracy differs from {stage}.json")
        if results.get("data", {}).get("signature") != key["data"]:
            problems.append(f"{folder / 'results.json'}: data signature differs from config.json")
    if isinstance(records["stage1"], dict):
        try:
            history = read_history(folder / "stage1_search.csv")
            best = max(row["fitness"] for row in history)
            if not math.isclose(best, records["stage1"]["search"]["best_val_fitness"], abs_tol=1e-9):
                problems.append(f"{folder / 'stage1_search.csv'}: best fitness {best} is not the one stage 1 "
                                f"recorded ({records['stage1']['search']['best_val_fitness']})")
        except (OSError, ValueError, KeyError) as err:
            problems.append(f"{folder / 'stage1_search.csv'}: {err}")

    if key.get("own_model") and (model is None or data is None):
        problems.append(f"{folder}: a run of a network of your own ({key['model']!r} on data {key['dataset']!r}); "
                        "its models are re-evaluated in Python: check_run(folder, model=<your network>, "
                        "data=<its Data>)")
        return problems
    if data is None:
        data = load_data(key["dataset"], root=data_root, seed=key["seed"])
    if data.signature != key["data"]:
        problems.append(f"{folder}: made on data {key['data']}, but the data found now is {data.signature} "
                        f"({data.source}); point --data at the run's data to re-evaluate its models")
        return problems
    how = _how(results.get("config", {}) if isinstance(results, dict) else {}, key)
    for stage, rec in records.items():
        if not isinstance(rec, dict):
            continue
        try:
            loaded = load_safs_model(folder, stage, model=model if key.get("own_model") else None)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            problems.append(f"{folder / (stage + '.pt')}: {err}")
            continue
        problems += _check_model(folder / f"{stage}.pt", loaded, rec, data, stage, how)
    return problems


def _how(config: dict, key: dict) -> dict:
    """How to re-evaluate: the run's own device and precision when this machine has them, else the CPU in
    float32 with `TOLERANCE` (a run that records no device was computed on the CPU)."""
    from .runs import compute_key

    device = config.get("device", key.get("device", "cpu"))
    amp = bool(config.get("amp", key.get("amp", False)))
    channels_last = bool(config.get("channels_last", key.get("channels_last", False)))
    if device == "cpu" and not amp:
        return {"device": "cpu", "amp": False, "channels_last": False, "tol": 1e-6, "label": ""}
    if device.startswith("cuda") and torch.cuda.is_available() and compute_key("cuda")["device"] == device:
        return {"device": "cuda", "amp": amp, "channels_last": channels_last, "tol": 1e-6, "label": ""}
    recorded = device + (" with amp" if amp else "")
    return {"device": "cpu", "amp": False, "channels_last": False, "tol": TOLERANCE,
            "label": f" (run on {recorded}, re-evaluated on the cpu in float32: tolerance {TOLERANCE} points)"}


def _check_model(path: Path, model: torch.nn.Module, rec: dict, data, stage: str, how: dict | None = None
                 ) -> list[str]:
    how = how or {"device": "cpu", "amp": False, "channels_last": False, "tol": 1e-6, "label": ""}
    out = []
    with cuda_options(how["amp"], how["channels_last"]):
        on = model.to(how["device"])
        for split in ("val", "test"):
            got, want = evaluate(on, data, split)["accuracy"], rec.get(f"{split}_accuracy")
            if want is None or abs(got - want) > how["tol"]:
                out.append(f"{path}: {split} accuracy {got:.4f} after reload, recorded {want}{how['label']}")
    model.cpu()
    if get_activations(model) != rec.get("activations"):
        out.append(f"{path}: operators {get_activations(model)} differ from the record's {rec.get('activations')}")
    scales = {k: list(v) for k, v in get_alpha_beta(model).items()}
    if stage == "stage1" and any(v != [1.0, 1.0] for v in scales.values()):
        out.append(f"{path}: stage 1 must keep alpha = beta = 1, found {scales}")
    recorded = rec.get("alpha_beta", {})
    if any(not all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(scales[k], recorded.get(k, [])))
           or len(recorded.get(k, [])) != 2 for k in scales):
        out.append(f"{path}: alpha/beta {scales} differ from the record's {recorded}")
    for name, mask in masks(model).items():
        weight = effective_weight(dict(model.named_modules())[name])
        if not bool(torch.isfinite(weight).all()) or bool((weight[mask == 0] != 0).any()):
            out.append(f"{path}: {name} has non-zero pruned weights")
    report, want = sparsity_report(model), rec.get("sparsity", {})
    if any(not math.isclose(report[k], want.get(k, -1.0), abs_tol=1e-9) for k in report):
        out.append(f"{path}: sparsity {report} differs from the record's {want}")
    return out
