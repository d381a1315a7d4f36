"""Accuracy against sparsity: magnitude pruning and SAFS at several sparsities, both pruning methods.

    python -m safs_lite sweep --seeds 0 1 2

One SAFS run per (sparsity, pruning method, seed), each in its own folder named
from its config (`safs.default_out`), so finished runs are reused and an
interrupted sweep resumes. The results go to a tidy CSV, one row per run and
method (`figures/accuracy_vs_sparsity.csv`, rewritten after every run), and
the figure `figures/accuracy_vs_sparsity.png`: mean and a band of one standard
deviation over seeds, with the paper's 99% layer-wise points marked.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .paths import figures_dir
from .runs import load_json
from .safs import PAPER_TABLE1, SAFSConfig, default_out, run_safs

# From 90% up: below it every method stayed within 0.3 points of the dense network in the kit's first
# sweep (README, "History of this reproduction"); add 0.5 0.7 with --sparsities to see it again.
SPARSITIES = (0.9, 0.95, 0.98, 0.99)
PRUNINGS = ("layerwise", "global")
METHODS = ("magnitude_pruning", "stage1", "stage2", "safs")  # the CSV's methods; the figure shows MP and SAFS
LABELS = {"magnitude_pruning": "magnitude pruning", "stage1": "stage 1", "stage2": "stage 2", "safs": "SAFS"}
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
    return rows


def sweep(preset: str = "sweep", seeds=(0, 1, 2), sparsities=SPARSITIES, prunings=PRUNINGS,
          model: str = "lenet5", dataset: str = "mnist", data_root: str | os.PathLike | None = None,
          runs: str | os.PathLike | None = None, figures: str | os.PathLike | None = None,
          progress: bool = True, device: str = "cpu") -> pd.DataFrame:
    """Run (or reuse) every run of the sweep; write the tidy CSV and the figure.

    Args:
        preset: budget preset of every run ("sweep": about 3 min per run on one core).
        seeds, sparsities, prunings: the grid (sparsities in [0, 1); prunings "layerwise" / "global").
        model, dataset: the setting (default: LeNet-5 on MNIST, the paper's Table 1 row).
        data_root, runs, figures: data, runs and figures folders (defaults: $SAFS_DATA / $SAFS_RUNS /
            $SAFS_FIGURES, else under the repository).
        progress: progress bars.
        device: "cpu" or "cuda".

    Returns:
        The tidy table written to `<figures>/accuracy_vs_sparsity.csv` (columns CSV_COLUMNS).
    """
    configs = sweep_configs(preset, seeds, sparsities, prunings, model, dataset)
    out_dir = figures_dir(figures)
    rows: list[dict] = []
    for cfg in tqdm(configs, desc=f"sweep ({len(configs)} runs)", disable=not progress):
        out = default_out(cfg, runs, data_root=data_root)
        res = run_safs(cfg, out=out, data_root=data_root, runs=runs, progress=progress, device=device)
        rows += result_rows(res, out)
        table = pd.DataFrame(rows, columns=CSV_COLUMNS)
        table.to_csv(out_dir / "accuracy_vs_sparsity.csv", index=False)  # after every run: nothing is lost
    plot_sweep(table, path=out_dir / "accuracy_vs_sparsity.png")
    return table


def paper_points(model: str = "lenet5", dataset: str = "mnist") -> list[dict]:
    """The paper's Table 1 points (99% layer-wise) for the accuracy-versus-sparsity figure."""
    paper = PAPER_TABLE1.get((model, dataset))
    if not paper:
        return []
    # coloured like the method's line (seaborn's first and second hue)
    return [{"label": f"paper: {LABELS[m]} (99% layer-wise)", "x": 0.99, "y": paper[m], "marker": marker,
             "color": color} for m, marker, color in (("magnitude_pruning", "v", "C0"), ("safs", "*", "C1"))]


def plot_sweep(table: pd.DataFrame, path: str | os.PathLike | None = None, methods=("magnitude_pruning", "safs")):
    """The accuracy-versus-sparsity figure of a sweep table: hue = method, line style = pruning."""
    from .plots import plot_accuracy_vs_sparsity

    df = table[table["method"].isin(methods)].copy()
    if df.empty:
        raise ValueError(f"the sweep table has no rows for {', '.join(methods)}")
    df["method"] = df["method"].map(LABELS)
    df = df.rename(columns={"pruning": "pruning method"})
    first = df.iloc[0]
    seeds = df["seed"].nunique()
    title = (f"{first['model']} / {first['dataset']}, preset {first['preset']}: mean "
             + ("and one standard deviation " if seeds > 1 else "") + f"over {seeds} seed(s)")
    return plot_accuracy_vs_sparsity(df, hue="method", style="pruning method", errorbar="sd", path=path,
                                     reference=paper_points(first["model"], first["dataset"]), title=title)


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
