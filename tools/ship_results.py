"""Collect the reproduction's small artefacts from a runs folder into the tracked results/ folder.

    SAFS_DATA=/path/to/data python tools/ship_results.py --commit 8e1ecc3

Copies, for the cpu-preset Table 1 runs (seeds 0-2) and every run the sweep table names:
results.json, the stage records, the LAHC and random-search CSVs, the HPO studies as CSV
(no study.db) and the pruned network every stage starts from, kept weights only (found by
matching the run's masks against the dense models in the runs folder). No checkpoints.
With the data at hand it checks that each run's dense network, re-evaluated, gives the
test accuracy the run recorded, and records the data's signature and test class counts.
For the cpu runs it also scores the dense network's hyperparameters exactly like one trial of the
stage-2 study (stage2_defaults.json: the reference line of notebook 06), a few minutes of training.
Writes results/manifest.json and results/README.md; rerun it to refresh them.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import optuna
import torch

from safs_lite import build_model, evaluate, get_activations, load_data, prune_model
from safs_lite.method.pruning import masks
from safs_lite.paths import REPO_ROOT, data_dir, figures_dir, results_dir, runs_dir
from safs_lite.run.config import TRAIN_DEFAULTS
from safs_lite.run.folders import load_json, save_json
from safs_lite.run.results import table1
from safs_lite.study.shipped import save_network, study_to_csv
from safs_lite.study.sweep import TABLE_FILE, load_sweep
from safs_lite.training.fitness import tiebreak_score
from safs_lite.training.loop import finetune_with

FILES = ("config.json", "results.json", "stage1.json", "stage2.json", "safs.json", "stage1_search.csv",
         "stage1_random_search.csv", "stage1_random.json")
STUDIES = ("stage2_hpo", "safs_hpo")
TABLE1_COMMAND = ("python -m safs_lite reproduce --preset cpu --seeds S --threads 1 (one process per seed), "
                  "then collected by python -m safs_lite reproduce --preset cpu --seeds 0 1 2")
SWEEP_COMMAND = ("python -m safs_lite run --preset sweep --sparsity 0.99 --pruning P --seed S --threads 1 "
                 "(one process per run), then collected by python -m safs_lite sweep --preset sweep "
                 "--sparsities 0.99 --seeds 0 1 2")


def shipped_name(folder: Path) -> str:
    """A run folder's name without its key hash: safs-<model>-<dataset>-<sparsity>-<pruning>-<preset>-s<seed>."""
    return folder.name.rsplit("-", 1)[0]


def table1_runs(runs: Path, preset: str, seeds: list[int]) -> list[Path]:
    """The one finished folder of each seed's 99% layer-wise run of `preset`; SystemExit if ambiguous."""
    out = []
    for seed in seeds:
        found = sorted(p for p in runs.glob(f"safs-lenet5-mnist-0.99-layerwise-{preset}-s{seed}-*")
                       if (p / "results.json").exists())
        if len(found) != 1:
            sys.exit(f"seed {seed}: expected one finished {preset} run under {runs}, found {[p.name for p in found]}")
        out += found
    return out


def start_network(folder: Path, runs: Path):
    """The run's pruned starting network: the dense model in `runs` whose mask equals the run's, pruned."""
    cfg = load_json(folder / "config.json")["config"]
    saved = torch.load(folder / "stage1.pt", map_location="cpu", weights_only=True)
    for dense_file in sorted(runs.glob("dense-*/model.pt")):
        model = build_model(cfg["model"])
        try:
            model.load_state_dict(torch.load(dense_file, map_location="cpu", weights_only=True))
        except RuntimeError:  # another architecture
            continue
        pruned = prune_model(model, cfg["sparsity"], cfg["pruning"])
        if all(torch.equal(m, saved[f"{name}.weight_mask"]) for name, m in masks(pruned).items()):
            return pruned, dense_file.parent.name
    return None, None


def sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()[:12]


def score_defaults(pruned, data, cfg: dict) -> dict:
    """The dense hyperparameters scored like one trial of the run's stage-2 study (ReLU, scales learned)."""
    b = cfg["budgets"]
    train = replace(TRAIN_DEFAULTS[cfg["model"]], seed=cfg["seed"], epochs=b["trial_epochs"],
                    train_subset=b["trial_subset"], select="last")
    _, history = finetune_with(pruned, data, get_activations(pruned), train, learn_scales=True)
    return {"what": "the dense hyperparameters scored like one trial of stage2_hpo (the study's objective)",
            "train": asdict(train), "val_acc": history[-1]["val_acc"],
            "score": tiebreak_score(history[-1]["val_acc"], history[-1]["val_loss"]), "history": history}


def collect(folder: Path, runs: Path, dest: Path, data_root: Path | None, defaults: bool = True) -> dict:
    """Copy one run's artefacts into dest/<shipped name>; return its manifest entry."""
    out = dest / shipped_name(folder)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in FILES:
        if (folder / name).exists():
            shutil.copy2(folder / name, out / name)
    for path in sorted(folder.glob("baseline_*.json")) + sorted(folder.glob("baseline_*_search.csv")):
        shutil.copy2(path, out / path.name)  # the baselines' records and search logs (`safs_lite.run.baselines`)
    for study in STUDIES:
        db = folder / study / "study.db"
        if db.exists():
            study_to_csv(optuna.load_study(study_name="stage2", storage=f"sqlite:///{db}"), out / f"{study}.csv")
    res = load_json(folder / "results.json")
    cfg = res["config"]
    entry = {"source": folder.name, "setting": {k: cfg[k] for k in ("model", "dataset", "sparsity", "pruning",
                                                                    "preset", "seed")}}
    model, dense = start_network(folder, runs)
    if model is not None:
        save_network(model, out / "pruned.pt", cfg["model"], cfg["dataset"])
        entry["dense"] = dense
        if data_root is not None:  # the dense network, re-evaluated, must give the recorded accuracy
            data = load_data(cfg["dataset"], root=data_root, seed=cfg["seed"], quiet=True)
            dense_model = build_model(cfg["model"])
            dense_model.load_state_dict(torch.load(runs / dense / "model.pt", weights_only=True))
            acc = evaluate(dense_model, data, "test")["accuracy"]
            if abs(acc - res["test_accuracy"]["dense"]) > 0.005:
                sys.exit(f"{folder.name}: its dense network scores {acc:.2f}% on {data_root}, the run recorded "
                         f"{res['test_accuracy']['dense']:.2f}%: not the data it was made on")
            entry["data_signature"] = data.signature
            if defaults and (folder / "stage2_hpo" / "study.db").exists() and cfg["preset"] == "cpu":
                save_json(out / "stage2_defaults.json", score_defaults(model, data, cfg))
    else:
        print(f"note: {folder.name}: no dense model in {runs} matches its masks; pruned.pt not shipped",
              file=sys.stderr)
    entry["files"] = {p.name: sha1(p) for p in sorted(out.iterdir())}
    return entry


README = """# Shipped results

The small artefacts of the reproduction runs the README reports, tracked so that notebooks 04-07
show them on a fresh clone in seconds (`runs/`, where runs are made, is git-ignored; the runs took
hours). Read them with `safs_lite.study.shipped` (`shipped_runs`, `shipped_sweep`, `load_network`,
`study_from_csv`); refresh them with

    SAFS_DATA=/path/to/data python tools/ship_results.py --commit <commit that made the runs>

**Made by** commit {commit} of this kit, on {data}: `load_data("mnist")` with the torchvision files;
data signature per seed in `manifest.json`; each run's dense network was re-evaluated on that data
and gave the test accuracy the run recorded. Their run folders were named with that commit's keys;
the current kit keys folders on the data signature and its version as well, so these runs are read
from here, not recomputed.

| what | command | runs |
|---|---|---|
| Table 1, `cpu` preset, 99% layer-wise | `{table1_command}` | {table1_runs} |
| 99% sweep, `sweep` preset, layer-wise and global | `{sweep_command}` | {sweep_runs} |

Files:

- `table1.csv`: Table 1 from the shipped `results.json` files (`safs_lite.run.results.table1`): one row per
  seed, mean, std, the paper's row. `accuracy_vs_sparsity.csv`: the sweep table, one row per run and
  method; its `run` column names a folder of `runs/`.
- `runs/safs-<model>-<dataset>-<sparsity>-<pruning>-<preset>-s<seed>/`: `config.json` (the run's key at
  that commit), `results.json`, `stage1.json` / `stage2.json` / `safs.json` (each stage's record with its
  per-epoch history), `stage1_search.csv` (the LAHC log), `stage1_random_search.csv` and
  `stage1_random.json` (random search at LAHC's budget, cpu runs), `stage2_hpo.csv` / `safs_hpo.csv`
  (every Optuna trial: state, value, parameters, per-epoch scores; `study_from_csv` rebuilds the study),
  `stage2_defaults.json` (cpu runs: the dense hyperparameters scored like one trial of the stage-2 study,
  computed by `tools/ship_results.py` on the same data) and `pruned.pt`: the pruned network every stage of the run starts from (the dense network with the
  run's masks), kept weights and biases only, about 5 KB (`load_network`). No checkpoint of a
  fine-tuned stage is shipped.
- `manifest.json`: the same facts, machine-readable, with a SHA-1 prefix of every file.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=None, help="runs folder (default $SAFS_RUNS, else runs/)")
    parser.add_argument("--sweep", type=Path, default=None,
                        help="sweep table naming the sweep runs (default <figures>/sweep.csv)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default results/)")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--commit", default=None, help="commit that made the runs (default: HEAD)")
    parser.add_argument("--no-data-check", action="store_true",
                        help="skip re-evaluating the dense networks (and scoring the dense defaults)")
    parser.add_argument("--no-defaults", action="store_true", help="do not score the dense defaults (minutes)")
    args = parser.parse_args(argv)
    runs, out = runs_dir(args.runs), results_dir(args.out)
    sweep_csv = args.sweep or figures_dir() / TABLE_FILE
    commit = args.commit or subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                                           capture_output=True, text=True).stdout.strip()
    data_root = None if args.no_data_check else data_dir()
    sweep = load_sweep(sweep_csv)
    folders = table1_runs(runs, args.preset, args.seeds) + [runs / r for r in sweep["run"].unique()]
    (out / "runs").mkdir(parents=True, exist_ok=True)
    entries = {}
    for folder in folders:
        entry = collect(folder, runs, out / "runs", data_root, not args.no_defaults)
        entries[shipped_name(folder)] = entry
        print(f"{folder.name} -> {out.name}/runs/{shipped_name(folder)} ({len(entry['files'])} files)")
    results = {int(e["setting"]["seed"]): load_json(out / "runs" / name / "results.json")
               for name, e in entries.items() if e["setting"]["preset"] == args.preset}
    table1(results).to_csv(out / "table1.csv", index_label="row")
    sweep.assign(run=sweep["run"].map(lambda r: r.rsplit("-", 1)[0])).to_csv(out / "accuracy_vs_sparsity.csv",
                                                                           index=False)
    data = load_data("mnist", root=data_root, quiet=True) if data_root else None
    description = "full MNIST (50,000 train / 10,000 validation / 10,000 test images)" if data and \
        len(data.train) == 50_000 else (data.source if data else "unchecked data")
    info = {"commit": commit, "data": {"description": description,
                                       "source": data.source.split(" in /")[0] if data else None,  # no local path
                                       "test_class_counts": torch.bincount(data.test.y).tolist() if data else None},
            "commands": {"table1": TABLE1_COMMAND, "sweep": SWEEP_COMMAND},
            "collected_by": "python tools/ship_results.py", "runs": entries}
    save_json(out / "manifest.json", info)
    names = lambda preset: ", ".join(f"`{n}`" for n, e in entries.items() if e["setting"]["preset"] == preset)  # noqa: E731
    (out / "README.md").write_text(README.format(commit=commit, data=description, table1_command=TABLE1_COMMAND,
                                                 sweep_command=SWEEP_COMMAND, table1_runs=names(args.preset),
                                                 sweep_runs=names("sweep")))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{len(entries)} runs shipped to {out} ({size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
