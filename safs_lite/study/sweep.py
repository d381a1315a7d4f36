"""Accuracy against sparsity: magnitude pruning and SAFS at several sparsities, both pruning methods.

    python -m safs_lite sweep --seeds 0 1 2

One SAFS run per (sparsity, pruning method, seed), each in its own folder named
from its key (`runs.default_out`), so finished runs are reused and an
interrupted sweep resumes; `--workers N` runs N at once, `--scheduler ADDRESS` on a
Dask cluster (`safs_lite.study.cluster`). The results go to a tidy CSV, one row per run and
method in the grid's order (`figures/sweep.csv`, rewritten after every run), and
the figure `figures/sweep.png`: mean and a band of one standard
deviation over seeds, with the paper's 99% layer-wise points marked. (The evidence study's
accuracy-versus-sparsity figure, `figures/accuracy_vs_sparsity.png`, is drawn from the
collected evidence runs with intervals by `tools/collect_evidence.py`: `safs_lite.study.evidence`.)
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..method.pruning import PRUNING_METHODS
from ..paths import figures_dir
from ..run.baselines import DEFAULT_BASELINES
from ..run.config import SAFSConfig
from ..run.folders import load_json
from ..run.results import METHODS as TABLE1_METHODS
from ..run.storage import check_storage
from .cluster import check_workers, run_all
from .plots import plot_sweep

# From 90% up: below it every method stayed within 0.3 points of the dense network in the kit's first
# sweep (docs/reproducing.md, "History of this reproduction"); add 0.5 0.7 with --sparsities to see it again.
SPARSITIES = (0.9, 0.95, 0.98, 0.99)
PRUNINGS = PRUNING_METHODS[:2]  # layerwise and global by default; pass prunings= for erk or protected
METHODS = TABLE1_METHODS[1:]  # the CSV's methods (all but dense); the figure shows MP and SAFS
TABLE_FILE, FIGURE_FILE = "sweep.csv", "sweep.png"  # what `sweep` writes in the figures folder
CSV_COLUMNS = ["model", "dataset", "preset", "sparsity", "pruning", "seed", "method", "test_accuracy",
               "val_accuracy", "seconds", "run"]


def sweep_configs(preset: str = "sweep", seeds=(0, 1, 2), sparsities=SPARSITIES, prunings=PRUNINGS,
                  model: str = "lenet5", dataset: str = "mnist") -> list[SAFSConfig]:
    """The sweep's runs, seed by seed (a partial sweep already has whole curves), all validated."""
    configs = [SAFSConfig(model=model, dataset=dataset, sparsity=float(s), pruning=p, preset=preset,
                          seed=int(seed)).validate()
               for seed in seeds for p in prunings for s in sparsities]
    if not configs:
        raise ValueError("the sweep is empty: give at least one seed, sparsity and pruning method")
    return configs


def result_rows(res: dict, out: str | os.PathLike) -> list[dict]:
    """The tidy rows of one finished run: one per method, test (and, where saved, validation) accuracy."""
    out, cfg = Path(out), res["config"]
    rows = []
    for method in METHODS:
        val = None
        if method != "magnitude_pruning":  # each stage record holds its validation accuracy
            val = load_json(out / f"{method}.json").get("val_accuracy")
        rows.append({"model": cfg["model"], "dataset": cfg["dataset"], "preset": cfg["preset"],
                     "sparsity": cfg["sparsity"], "pruning": cfg["pruning"], "seed": cfg["seed"],
                     "method": method, "test_accuracy": res["test_accuracy"][method], "val_accuracy": val,
                     "seconds": res["seconds"][method], "run": out.name})
    for name, b in res.get("baselines", {}).items():  # each retrained as stage 1, chosen on validation
        rows.append({"model": cfg["model"], "dataset": cfg["dataset"], "preset": cfg["preset"],
                     "sparsity": cfg["sparsity"], "pruning": cfg["pruning"], "seed": cfg["seed"],
                     "method": name, "test_accuracy": b["test_accuracy"], "val_accuracy": b["val_accuracy"],
                     "seconds": b["seconds"], "run": out.name})
    return rows


def sweep(preset: str = "sweep", seeds=(0, 1, 2), sparsities=SPARSITIES, prunings=PRUNINGS,
          model: str = "lenet5", dataset: str = "mnist", data_root: str | os.PathLike | None = None,
          runs: str | os.PathLike | None = None, figures: str | os.PathLike | None = None,
          progress: bool = True, device: str = "cpu", workers: int | None = None, scheduler: str | None = None,
          storage: str | None = None, baselines=DEFAULT_BASELINES) -> pd.DataFrame:
    """Run (or reuse) every run of the sweep; write the tidy CSV and the figure.

    Args:
        preset: budget preset of every run ("sweep": about 3 min per run on one core).
        seeds, sparsities, prunings: the grid (sparsities in [0, 1); prunings "layerwise" / "global").
        model, dataset: the setting (default: LeNet-5 on MNIST, the paper's Table 1 row).
        data_root, runs, figures: data, runs and figures folders (defaults: $SAFS_DATA / $SAFS_RUNS /
            $SAFS_FIGURES, else under the repository).
        progress: progress bars.
        device: "cpu" or "cuda".
        workers: run on a LocalCluster of this many single-threaded processes.
        scheduler: run on the Dask cluster at this address (shared data and runs folders).
        storage: an Optuna storage URL for every run's stage-2 studies (`safs_lite.run.storage`).
        baselines: methods of `baselines.BASELINES` every run computes (rows of their own).

    Returns:
        The tidy table written to `<figures>/sweep.csv` (TABLE_FILE; columns CSV_COLUMNS).
    """
    configs = sweep_configs(preset, seeds, sparsities, prunings, model, dataset)
    check_workers(workers, scheduler)
    if storage is not None:
        check_storage(storage)
    out_dir = figures_dir(figures)
    rows: dict[int, list[dict]] = {}

    def write(i: int, res: dict, out: Path) -> None:  # after every run, in the grid's order: nothing is lost
        rows[i] = result_rows(res, out)
        table = pd.DataFrame([r for k in sorted(rows) for r in rows[k]], columns=CSV_COLUMNS)
        table.to_csv(out_dir / TABLE_FILE, index=False)

    run_all(configs, workers, scheduler, data_root=data_root, runs=runs, device=device, progress=progress,
            storage=storage, baselines=baselines, on_result=write, desc="sweep")
    table = pd.DataFrame([r for k in sorted(rows) for r in rows[k]], columns=CSV_COLUMNS)
    plot_sweep(table, path=out_dir / FIGURE_FILE)
    return table


def load_sweep(path: str | os.PathLike) -> pd.DataFrame:
    """Read a sweep CSV back; a file that is not one gives a one-line ValueError."""
    path = Path(path)
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: not a readable sweep table ({err.__class__.__name__})") from None
    missing = set(CSV_COLUMNS) - set(table.columns)
    if missing:
        raise ValueError(f"{path}: not a sweep table, it lacks the columns {sorted(missing)}")
    return table
