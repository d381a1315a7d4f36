"""`python -m safs_lite check RUN_DIR`: verify that a SAFS run folder says what it is and holds what it says.

Checks, in order (each failure is one line naming the file and what is wrong):

- `config.json` holds a full run key (`runs.run_key`: config, budgets, data signature, operators,
  kit version) and the data found now has that signature;
- every JSON record the run wrote parses (stages, baselines, ceiling, results), and `results.json`
  repeats the stage and baseline records' test accuracies and the key's config;
- every search log (`*_search.csv`) parses, and stage 1's best fitness is the one it recorded;
- every Optuna study database (`*.db`) passes SQLite's integrity check;
- every saved model (`stage1.pt`, `stage2.pt`, `safs.pt`) reloads to its recorded validation and
  test accuracy, operators and alpha/beta (stage 1: exactly 1), with its pruned weights exactly zero
  and the recorded per-layer sparsity.

A slim folder (the shipped ones in `results/`: records, no checkpoints), a key from an older kit in such
a folder, and an RL run (`python -m safs_lite rl`) are verified as far as they allow; `check_report`
says what was not verified, and the command prints it.

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

from ..data.builtin import load_data
from ..data.core import Data
from ..method.activations import get_activations, get_alpha_beta
from ..method.pruning import effective_weight, masks, sparsity_report
from ..method.searchlog import read_history
from ..training.loop import cuda_options, evaluate
from .folders import load_json, load_safs_model
from .results import METHODS

TOLERANCE = 0.2  # accuracy points a re-evaluation on another device or precision may differ by (0.2: 20 of 10,000)
STAGES = METHODS[2:]  # the stages with a saved model: stage1, stage2, safs
KEY_FIELDS = ("model", "dataset", "sparsity", "pruning", "preset", "seed", "budgets", "data", "search_space",
              "ops_version", "kit")


RL_KEY_FIELDS = ("env", "sparsity", "pruning", "preset", "seed", "budgets", "ops", "ops_version", "kit", "torch",
                 "gymnasium", "device", "threads")
RL_STAGES = ("dense", "magnitude_pruning", "stage1", "stage2", "safs")


def check_run(folder: str | os.PathLike, data_root: str | os.PathLike | None = None,
              model: torch.nn.Module | None = None, data: "Data | None" = None) -> list[str]:
    """Every problem found in a run folder, one line each (empty: the folder is consistent). See `check_report`."""
    return check_report(folder, data_root, model, data)[0]


def check_report(folder: str | os.PathLike, data_root: str | os.PathLike | None = None,
                 model: torch.nn.Module | None = None, data: "Data | None" = None) -> tuple[list[str], list[str]]:
    """(every problem found, one line each; what the check could not verify in this folder, one line each).

    Every record the run wrote is read: each JSON file parses; results.json repeats the stage and baseline
    records' test numbers; each search log (`*_search.csv`) parses, stage 1's best fitness is the one recorded;
    each Optuna study database passes SQLite's integrity check. Then, for a SAFS run with its checkpoints, every
    saved model is re-evaluated. A slim folder (as shipped in `results/`: records, no checkpoints), an RL run and a
    key written by an older kit are verified as far as what they hold allows, and the second list says what not.

    Args:
        folder: the run folder.
        data_root: where a built-in dataset is loaded from (default $SAFS_DATA).
        model, data: for a run of a network of your own (`safs_lite.search`): an instance of the
            network (any weights) and the run's data; built-in runs rebuild both by name.
    """
    folder = Path(folder)
    problems: list[str] = []
    unverified: list[str] = []
    if not folder.is_dir():
        return [f"{folder}: not a folder"], []
    parsed: dict[str, object] = {}
    for path in sorted(folder.glob("*.json")):  # every record: a truncated or hand-edited file is a problem
        try:
            parsed[path.name] = load_json(path)
        except ValueError as err:
            problems.append(str(err))

    def read(name: str):
        if name not in parsed and not (folder / name).exists():
            problems.append(f"{folder / name}: missing")
        return parsed.get(name)

    for path in sorted(folder.glob("*.db")):
        problems += _sqlite_problems(path)
        unverified.append(f"{path.name}: opened and checked by SQLite, its trials not replayed")
    saved = read("config.json")
    key = saved.get("config") if isinstance(saved, dict) else None
    results = read("results.json")
    if isinstance(key, dict) and key.get("kind") == "rl":
        return _check_rl(folder, key, results, read, problems, unverified)
    slim = isinstance(results, dict) and not any((folder / f"{stage}.pt").exists() for stage in STAGES)
    if not isinstance(key, dict) or any(f not in key for f in KEY_FIELDS):
        missing = [f for f in KEY_FIELDS if not isinstance(key, dict) or f not in key]
        if not slim or not isinstance(key, dict):
            problems.append(f"{folder / 'config.json'}: no full run key (missing {', '.join(missing)}); "
                            "made by an older kit: rerun it")
            return problems, unverified
        unverified.append(f"config.json: a key written by an older kit (without {', '.join(missing)}): "
                          "the data signature is not checked")
    records = {stage: read(f"{stage}.json") for stage in STAGES}
    if isinstance(results, dict):
        if any(results.get("config", {}).get(k) != key.get(k) for k in ("model", "dataset", "sparsity", "seed")):
            problems.append(f"{folder / 'results.json'}: its config differs from config.json")
        for stage, rec in records.items():
            if isinstance(rec, dict) and results.get("test_accuracy", {}).get(stage) != rec.get("test_accuracy"):
                problems.append(f"{folder / 'results.json'}: {stage} test accuracy differs from {stage}.json")
        for name, summary in (results.get("baselines") or {}).items():
            rec = read(f"baseline_{name}.json")
            if isinstance(rec, dict) and summary.get("test_accuracy") != rec.get("test_accuracy"):
                problems.append(f"{folder / 'results.json'}: baseline {name}'s test accuracy differs from "
                                f"baseline_{name}.json")
        if "data" in key and results.get("data", {}).get("signature") != key["data"]:
            problems.append(f"{folder / 'results.json'}: data signature differs from config.json")
    for path in sorted(folder.glob("*_search.csv")):
        try:
            history = read_history(path)
            rec = records["stage1"] if path.name == "stage1_search.csv" else None
            if isinstance(rec, dict):
                best = max(row["fitness"] for row in history)
                if not math.isclose(best, rec["search"]["best_val_fitness"], abs_tol=1e-9):
                    problems.append(f"{path}: best fitness {best} is not the one stage 1 recorded "
                                    f"({rec['search']['best_val_fitness']})")
        except (OSError, ValueError, KeyError) as err:
            problems.append(f"{path}: {err}")
    if not (folder / "stage1_search.csv").exists():
        problems.append(f"{folder / 'stage1_search.csv'}: missing")

    if slim:
        unverified.append("stage1, stage2, safs models: a slim folder (as shipped in results/) keeps no "
                          "checkpoints, so they are not re-evaluated; rerun the run to re-evaluate them")
        return problems, unverified
    unverified += [f"{p.name}: parsed (the baseline's model is not saved)" for p in folder.glob("baseline_*.json")]
    if key.get("own_model") and (model is None or data is None):
        problems.append(f"{folder}: a run of a network of your own ({key['model']!r} on data {key['dataset']!r}); "
                        "its models are re-evaluated in Python: check_run(folder, model=<your network>, "
                        "data=<its Data>)")
        return problems, unverified
    if data is None:
        data = load_data(key["dataset"], root=data_root, seed=key["seed"])
    if data.signature != key["data"]:
        problems.append(f"{folder}: made on data {key['data']}, but the data found now is {data.signature} "
                        f"({data.source}); point --data at the run's data to re-evaluate its models")
        return problems, unverified
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
    return problems, unverified


def _check_rl(folder: Path, key: dict, results, read, problems: list[str], unverified: list[str]
              ) -> tuple[list[str], list[str]]:
    """An RL run folder: its key, every stage record and results.json's returns against them."""
    missing = [f for f in RL_KEY_FIELDS if f not in key]
    if missing:
        problems.append(f"{folder / 'config.json'}: no full RL run key (missing {', '.join(missing)}); "
                        "made by an older kit: rerun it")
        return problems, unverified
    records = {stage: read(f"{stage}.json") for stage in RL_STAGES}
    if isinstance(results, dict):
        if any(results.get("config", {}).get(k) != key.get(k) for k in ("env", "sparsity", "pruning", "seed")):
            problems.append(f"{folder / 'results.json'}: its config differs from config.json")
        for stage, rec in records.items():
            if isinstance(rec, dict) and results.get("test_return", {}).get(stage) != rec.get("test_return"):
                problems.append(f"{folder / 'results.json'}: {stage} test return differs from {stage}.json")
    unverified.append("the saved policies: an RL run's records are checked, its policies are not re-run")
    return problems, unverified


def _sqlite_problems(path: Path) -> list[str]:
    """SQLite's integrity check of an Optuna study file, as problem lines."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            status = db.execute("PRAGMA integrity_check").fetchone()[0]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as err:
        return [f"{path}: not a readable SQLite database ({err})"]
    if status != "ok":
        return [f"{path}: SQLite integrity check failed ({status})"]
    if "trials" not in tables:
        return [f"{path}: no Optuna trials table"]
    return []


def _how(config: dict, key: dict) -> dict:
    """How to re-evaluate: the run's own device and precision when this machine has them, else the CPU in
    float32 with `TOLERANCE` (a run that records no device was computed on the CPU)."""
    from .key import compute_key

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
