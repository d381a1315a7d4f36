"""Table 1 over several seeds: run (or reuse) one SAFS run per seed, then mean and spread.

    python -m safs_lite reproduce --preset cpu --seeds 0 1 2

Each seed's run lives in its own folder named from its config (`safs.default_out`),
so finished runs are reused and an interrupted job resumes. The table is
written as `figures/table1.csv` (one row per seed, then mean, std and the
paper's row) and `figures/table1.md`.
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .paths import figures_dir
from .safs import PAPER_TABLE1, SAFSConfig, run_safs

COLUMNS = ["dense", "magnitude_pruning", "stage1", "stage2", "safs", "safs_gain"]
HEADERS = ["Dense", "Magnitude pruning", "Stage 1", "Stage 2", "SAFS", "SAFS gain"]


def reproduce(preset: str = "cpu", seeds=(0, 1, 2), model: str = "lenet5", dataset: str = "mnist",
              sparsity: float = 0.99, pruning: str = "layerwise", data_root: str | os.PathLike | None = None,
              runs: str | os.PathLike | None = None, figures: str | os.PathLike | None = None,
              progress: bool = True, device: str = "cpu", compare_search: bool = True,
              fitness: str | None = None) -> pd.DataFrame:
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
        compare_search: also run random search at LAHC's evaluation count in every run
            (for `python -m safs_lite figures`; it does not change the table).
        fitness: stage-1 fitness (default: `SAFSConfig`'s; "val_acc" is the reference code's).

    Returns:
        The table: one row per seed, then "mean", "std" and (when the setting is the
        paper's) "paper"; columns COLUMNS plus "seconds".
    """
    extra = {"fitness": fitness} if fitness else {}
    configs = [SAFSConfig(model=model, dataset=dataset, sparsity=sparsity, pruning=pruning, preset=preset,
                          seed=s, **extra).validate() for s in seeds]
    if not configs:
        raise ValueError("give at least one seed")
    results = {}
    for cfg in tqdm(configs, desc=f"reproduce ({len(configs)} seeds)", disable=not progress):
        results[cfg.seed] = run_safs(cfg, data_root=data_root, runs=runs, progress=progress, device=device,
                                     compare_search=compare_search)
    table = table1(results)
    out = figures_dir(figures)
    table.to_csv(out / "table1.csv", index_label="row")
    (out / "table1.md").write_text(to_markdown(table, configs[0], len(configs)))
    return table


def table1(results: dict[int, dict]) -> pd.DataFrame:
    """Table 1 from finished runs' results.json dicts (seed -> dict), all of one setting.

    Returns:
        One row per seed ("seed S"), then "mean", "std" and, when the setting is the
        paper's (99% layer-wise, a Table 1 model), "paper"; columns COLUMNS plus "seconds".
    """
    if not results:
        raise ValueError("no runs to tabulate")
    rows = {}
    for seed, res in results.items():
        acc = dict(res["test_accuracy"])
        rows[f"seed {seed}"] = {**acc, "safs_gain": acc["safs"] - acc["magnitude_pruning"],
                                "seconds": res["seconds"]["total"]}
    table = pd.DataFrame.from_dict(rows, orient="index")[COLUMNS + ["seconds"]]
    summary = {"mean": table.mean(), "std": table.std(ddof=1) if len(table) > 1 else table.mean() * float("nan")}
    table = pd.concat([table, pd.DataFrame(summary).T])
    cfg = next(iter(results.values()))["config"]
    if (cfg["sparsity"], cfg["pruning"]) == (0.99, "layerwise") and (cfg["model"], cfg["dataset"]) in PAPER_TABLE1:
        paper = PAPER_TABLE1[(cfg["model"], cfg["dataset"])]
        table.loc["paper"] = {**paper, "safs_gain": paper["safs"] - paper["magnitude_pruning"]}
    return table


def to_markdown(table: pd.DataFrame, cfg: SAFSConfig | dict, n_seeds: int) -> str:
    """Table 1 as a markdown table: mean ± std over seeds next to the paper's row."""
    c = cfg if isinstance(cfg, dict) else asdict(cfg)  # a SAFSConfig or a results.json "config"
    lines = [f"{c['model']} / {c['dataset']}, {100 * c['sparsity']:g}% {c['pruning']} sparsity, preset "
             f"`{c['preset']}`, {n_seeds} seed(s); test accuracy (%)", "",
             "| | " + " | ".join(HEADERS) + " |", "|---" * (len(HEADERS) + 1) + "|"]
    row = lambda name: f"| {name} | " + " | ".join(f"{table.loc[name, c]:.2f}" for c in COLUMNS) + " |"  # noqa: E731
    lines += [row(name) for name in table.index if name.startswith("seed")]
    mean, std = table.loc["mean"], table.loc["std"]
    lines.append("| **mean ± std** | " + " | ".join(f"**{mean[c]:.2f} ± {std[c]:.2f}**" for c in COLUMNS) + " |")
    if "paper" in table.index:
        lines.append(row("paper"))
    return "\n".join(lines) + "\n"


def format_summary(table: pd.DataFrame) -> str:
    """A compact plain-text table for the terminal."""
    return table[COLUMNS].to_string(float_format=lambda v: f"{v:.2f}")


def load_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a written table1.csv back (index: seed rows, mean, std, paper)."""
    return pd.read_csv(Path(path), index_col="row")
