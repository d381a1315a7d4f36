"""Table 1 over several seeds: run (or reuse) one SAFS run per seed, then mean and spread.

    python -m safs_lite reproduce --preset cpu --seeds 0 1 2

Each seed's run lives in its own folder named from its key (`runs.default_out`),
so finished runs are reused and an interrupted job resumes. `--workers N` runs
the seeds at once in N processes, `--scheduler ADDRESS` on a Dask cluster
(`safs_lite.study.cluster`). The table is
written as `figures/table1.csv` (one row per seed, then mean, std and the
paper's row) and `figures/table1.md`.
"""
from __future__ import annotations

import os

import pandas as pd

from ..paths import figures_dir
from ..run.baselines import DEFAULT_BASELINES
from ..run.config import SAFSConfig
from ..run.results import table1, to_markdown
from ..run.storage import check_storage
from .cluster import check_workers, run_all


def reproduce(preset: str = "cpu", seeds=(0, 1, 2), model: str = "lenet5", dataset: str = "mnist",
              sparsity: float = 0.99, pruning: str = "layerwise", data_root: str | os.PathLike | None = None,
              runs: str | os.PathLike | None = None, figures: str | os.PathLike | None = None,
              progress: bool = True, device: str = "cpu", baselines=DEFAULT_BASELINES,
              fitness: str | None = None, workers: int | None = None, scheduler: str | None = None,
              storage: str | None = None) -> pd.DataFrame:
    """Run or reuse one SAFS run per seed and write Table 1 with mean and standard deviation.

    Args:
        preset: budget preset of every run.
        seeds: the seeds (one run each).
        model, dataset, sparsity, pruning: the setting (default: the paper's LeNet-5 row).
        data_root: data folder (default $SAFS_DATA, else <repo>/data).
        runs: runs folder (default $SAFS_RUNS, else <repo>/runs).
        figures: where table1.csv / table1.md go (default $SAFS_FIGURES, else <repo>/figures).
        progress: progress bars.
        device: "cpu" or "cuda".
        baselines: methods of `baselines.BASELINES` every run computes after stage 1 (they add
            columns; they change no other number).
        fitness: stage-1 fitness (default: `SAFSConfig`'s; "val_acc" is the reference code's).
        workers: run the seeds on a LocalCluster of this many single-threaded processes.
        scheduler: run them on the Dask cluster at this address (shared data and runs folders).
        storage: an Optuna storage URL for every run's stage-2 studies (`safs_lite.run.storage`).

    Returns:
        The table: one row per seed, then "mean", "std" and (when the setting is the
        paper's) "paper"; columns `results.COLUMNS` plus "seconds".
    """
    extra = {"fitness": fitness} if fitness else {}
    configs = [SAFSConfig(model=model, dataset=dataset, sparsity=sparsity, pruning=pruning, preset=preset,
                          seed=s, **extra).validate() for s in seeds]
    if not configs:
        raise ValueError("give at least one seed")
    check_workers(workers, scheduler)
    if storage is not None:
        check_storage(storage)
    done = run_all(configs, workers, scheduler, data_root=data_root, runs=runs, device=device, progress=progress,
                   baselines=baselines, storage=storage, desc="reproduce")
    table = table1({cfg.seed: res for cfg, res in zip(configs, done)})
    out = figures_dir(figures)
    table.to_csv(out / "table1.csv", index_label="row")
    (out / "table1.md").write_text(to_markdown(table, configs[0], len(configs)))
    return table
