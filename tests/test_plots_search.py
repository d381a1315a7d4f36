"""Tests for the search, activation-scale and HPO plots in safs_lite.study.plots: what each figure draws, and its PNG."""

import matplotlib

matplotlib.use("Agg")  # no display in tests

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from optuna.distributions import CategoricalDistribution, FloatDistribution  # noqa: E402
from optuna.trial import TrialState, create_trial  # noqa: E402

from safs_lite import SearchConfig, random_search, read_history  # noqa: E402
from safs_lite.method.lahc import lahc  # noqa: E402
from safs_lite.study.plots import (
    best_by_evaluations,
    plot_alpha_beta_trajectory,
    plot_hpo_history,
    plot_lahc_trajectory,
    plot_operator_choices,
    plot_param_importance,
    plot_search_comparison,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LAYERS = ["conv1", "conv2", "fc1", "fc2"]
OPS = ["tanh", "elu", "gelu"]


def _assert_small_png(path):
    blob = path.read_bytes()
    assert blob[:8] == PNG_MAGIC
    assert 1_000 < len(blob) < 150_000


def _row(step, vector, fitness, accepted, best, cached=False):
    return {"step": step, "vector": vector, "fitness": fitness, "accepted": accepted, "best_fitness": best,
            "cached": cached, "seconds": 0.0}


def _history():
    """Five hand-made steps: 3 accepted, 2 rejected, one cached revisit (step 3 revisits step 0)."""
    v0 = {"conv1": "tanh", "conv2": "elu", "fc1": "tanh", "fc2": "gelu"}
    v1 = {**v0, "conv1": "elu"}
    v2 = {**v0, "fc1": "gelu"}
    v4 = {**v0, "fc2": "tanh"}
    return [_row(0, v0, 10.0, True, 10.0), _row(1, v1, 12.0, True, 12.0), _row(2, v2, 9.0, False, 12.0),
            _row(3, v0, 10.0, False, 12.0, cached=True), _row(4, v4, 15.0, True, 15.0)]


def _n_tanh(vector):
    return float(sum(op == "tanh" for op in vector.values()))


# ---------------------------------------------------------------- LAHC trajectory


def test_lahc_trajectory_markers_and_lines(tmp_path):
    path = tmp_path / "traj.png"
    fig = plot_lahc_trajectory(_history(), title="toy", path=path)
    (ax,) = fig.axes
    best, current = ax.lines
    np.testing.assert_allclose(best.get_ydata(), [10, 12, 12, 12, 15])
    np.testing.assert_allclose(current.get_ydata(), [10, 12, 12, 12, 15])  # rejected steps keep the state
    accepted, rejected, cached = ax.collections
    np.testing.assert_allclose(accepted.get_offsets(), [[0, 10], [1, 12], [4, 15]])
    np.testing.assert_allclose(rejected.get_offsets(), [[2, 9], [3, 10]])
    np.testing.assert_allclose(cached.get_offsets(), [[3, 10]])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["best so far", "current state", "accepted (3)", "rejected (2)", "cached revisit (1)"]
    assert ax.get_title() == "toy"
    _assert_small_png(path)


def test_lahc_trajectory_current_state_can_fall_below_best():
    """LAHC may accept a worse candidate: the current-state line then drops under the best-so-far line."""
    rows = _history()[:2] + [_row(2, _history()[2]["vector"], 11.0, True, 12.0)]
    (ax,) = plot_lahc_trajectory(rows).axes
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [10, 12, 11])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [10, 12, 12])
    assert len(ax.collections) == 2  # no cached revisits, so no third marker set
    assert "2 evaluations" not in ax.get_title() and "3 evaluations" in ax.get_title()


def test_lahc_trajectory_reads_a_real_search_csv(tmp_path):
    csv = tmp_path / "search.csv"
    result = lahc(_n_tanh, LAYERS, OPS, SearchConfig(steps=15, seed=1), csv_path=csv, progress=False)
    rows = read_history(csv)
    for history in (rows, result, pd.DataFrame(rows)):
        (ax,) = plot_lahc_trajectory(history).axes
        points = sum(len(c.get_offsets()) for c in ax.collections[:2])
        assert points == 16  # every step is either accepted or rejected
        assert ax.lines[0].get_ydata()[-1] == result.best_fitness
        plt.close("all")


def test_lahc_trajectory_rejects_empty_history():
    with pytest.raises(ValueError, match="empty"):
        plot_lahc_trajectory([])


# ---------------------------------------------------------------- operator choices


def test_operator_choices_grid_and_counts_from_history(tmp_path):
    path = tmp_path / "ops.png"
    fig = plot_operator_choices(_history(), path=path)
    ax_grid, ax_count = fig.axes
    grid = ax_grid.images[0].get_array()
    assert grid.shape == (4, 5)  # layers x steps
    assert [t.get_text() for t in ax_grid.get_yticklabels()] == LAYERS
    assert [t.get_text() for t in ax_grid.get_xticklabels()] == ["0", "1", "2", "3", "4"]
    cells = [t.get_text() for t in ax_grid.texts]
    assert len(cells) == 20
    assert cells[:5] == ["tanh", "elu", "tanh", "tanh", "tanh"]  # conv1 across the steps
    alpha = ax_grid.images[0].get_alpha()
    np.testing.assert_allclose(alpha[0], [1, 1, 0.3, 0.3, 1])  # rejected steps 2 and 3 are faded
    ops = [t.get_text() for t in ax_count.get_xticklabels()]
    assert ops == ["gelu", "elu", "tanh"]  # registry order
    counts = ax_count.images[0].get_array()
    assert counts.shape == (4, 3)
    assert counts.sum(axis=1).tolist() == [5, 5, 5, 5]  # every step counted once per layer
    assert counts[LAYERS.index("conv1"), ops.index("elu")] == 1
    _assert_small_png(path)


def test_operator_choices_from_named_vectors():
    vectors = {"seed 0": {"conv1": "tanh", "fc1": "elu"}, "seed 1": {"conv1": "tanh", "fc1": "tanh"}}
    fig = plot_operator_choices(vectors)
    ax_grid, ax_count = fig.axes
    assert ax_grid.images[0].get_array().shape == (2, 2)
    assert [t.get_text() for t in ax_grid.get_xticklabels()] == ["seed 0", "seed 1"]
    assert [t.get_text() for t in ax_grid.texts] == ["tanh", "tanh", "elu", "tanh"]
    counts = ax_count.images[0].get_array()
    np.testing.assert_array_equal(counts, [[0, 2], [1, 1]])  # columns elu, tanh


# ---------------------------------------------------------------- search comparison


def test_best_by_evaluations_skips_cached_revisits():
    np.testing.assert_allclose(best_by_evaluations(_history()), [10, 12, 12, 15])


def test_search_comparison_one_line_per_strategy(tmp_path):
    lahc_runs = [lahc(_n_tanh, LAYERS, OPS, SearchConfig(steps=12, seed=s), progress=False) for s in range(3)]
    random_runs = [random_search(_n_tanh, LAYERS, OPS, 10, seed=s, progress=False) for s in range(3)]
    path = tmp_path / "cmp.png"
    fig = plot_search_comparison({"LAHC": lahc_runs, "random": random_runs, "one run": _history()}, path=path)
    (ax,) = fig.axes
    assert len(ax.lines) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["LAHC (mean of 3)", "random (mean of 3)",
                                                                   "one run"]
    shortest = min(r.evaluations for r in lahc_runs)
    assert len(ax.lines[0].get_xdata()) == shortest  # cut at the smallest evaluation count
    np.testing.assert_allclose(ax.lines[1].get_xdata(), np.arange(1, 11))
    expected = np.mean([best_by_evaluations(r) for r in random_runs], axis=0)
    np.testing.assert_allclose(ax.lines[1].get_ydata(), expected)
    np.testing.assert_allclose(ax.lines[2].get_ydata(), [10, 12, 12, 15])
    assert len(ax.collections) == 2  # a band for each multi-run strategy, none for the single run
    for line in ax.lines:
        assert np.all(np.diff(line.get_ydata()) >= 0)  # best so far never decreases
    _assert_small_png(path)


def test_search_comparison_bands():
    runs = [_history(), _history()]
    assert len(plot_search_comparison({"a": runs}, band=None).axes[0].collections) == 0
    assert len(plot_search_comparison({"a": runs}, band="minmax").axes[0].collections) == 1
    with pytest.raises(ValueError, match="band"):
        plot_search_comparison({"a": runs}, band="iqr")
    thin = plot_search_comparison({"a": [_history(), _history(), _history()]}, band=None, show_runs=True)
    lines = thin.axes[0].lines
    assert len(lines) == 4 and [line.get_linewidth() for line in lines] == [0.8, 0.8, 0.8, 1.8]
    np.testing.assert_allclose(lines[0].get_ydata(), best_by_evaluations(_history()))
    with pytest.raises(ValueError, match="no searches"):
        plot_search_comparison({})


# ---------------------------------------------------------------- alpha / beta


def test_alpha_beta_trajectory_one_line_per_layer(tmp_path):
    rows = [{"epoch": e, "layer": layer, "op": op, "alpha": 1 + 0.1 * e * i, "beta": 1 - 0.05 * e}
            for e in range(4) for i, (layer, op) in enumerate([("conv1", "tanh"), ("fc1", "elu")])]
    path = tmp_path / "ab.png"
    fig = plot_alpha_beta_trajectory(pd.DataFrame(rows), path=path)
    ax_alpha, ax_beta = fig.axes
    for ax in fig.axes:
        data_lines = [line for line in ax.lines if not line.get_label().startswith("_")]
        assert [line.get_label() for line in data_lines] == ["conv1 (tanh)", "fc1 (elu)"]
        assert all(list(line.get_xdata()) == [0, 1, 2, 3] for line in data_lines)
        assert len(ax.lines) == 3  # plus the dotted line at the initial value 1
    np.testing.assert_allclose(ax_alpha.lines[2].get_ydata(), [1.0, 1.1, 1.2, 1.3])
    np.testing.assert_allclose(ax_beta.lines[1].get_ydata(), [1.0, 0.95, 0.9, 0.85])
    _assert_small_png(path)


def test_alpha_beta_trajectory_needs_columns():
    with pytest.raises(ValueError, match="beta"):
        plot_alpha_beta_trajectory(pd.DataFrame({"epoch": [0], "layer": ["conv1"], "alpha": [1.0]}))


# ---------------------------------------------------------------- HPO


def _study(n_complete=5, n_pruned=2):
    """An in-memory study with hand-made trials: values 20, 25, 22, 30, 28 (+ pruned ones at 5, 6)."""
    study = optuna.create_study(direction="maximize", study_name="stage2")
    dists = {"lr": FloatDistribution(1e-4, 1e-1, log=True), "optimizer": CategoricalDistribution(["sgd", "adam"])}
    values = [20.0, 25.0, 22.0, 30.0, 28.0]
    for i in range(n_complete):
        params = {"lr": 10 ** (-4 + 0.6 * i), "optimizer": ["sgd", "adam"][i % 2]}
        study.add_trial(create_trial(params=params, distributions=dists, value=values[i]))
    for i in range(n_pruned):
        study.add_trial(create_trial(params={"lr": 1e-3, "optimizer": "sgd"}, distributions=dists,
                                     state=TrialState.PRUNED, intermediate_values={0: 4.0 + i, 1: 5.0 + i}))
    return study


def test_hpo_history_complete_pruned_and_best(tmp_path):
    path = tmp_path / "hpo.png"
    fig = plot_hpo_history(_study(), reference={"label": "dense defaults", "y": 21.0}, path=path)
    (ax,) = fig.axes
    best, reference = ax.lines
    np.testing.assert_allclose(best.get_xdata(), [0, 1, 2, 3, 4, 6])  # extended to the last trial
    np.testing.assert_allclose(best.get_ydata(), [20, 25, 25, 30, 30, 30])
    np.testing.assert_allclose(reference.get_ydata(), [21, 21])
    complete, pruned = ax.collections
    np.testing.assert_allclose(complete.get_offsets(), [[0, 20], [1, 25], [2, 22], [3, 30], [4, 28]])
    np.testing.assert_allclose(pruned.get_offsets(), [[5, 5], [6, 6]])  # at the last reported value
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["best so far", "dense defaults", "complete (5)", "pruned (2, last reported value)"]
    _assert_small_png(path)


def test_hpo_history_only_pruned_trials():
    (ax,) = plot_hpo_history(_study(n_complete=0, n_pruned=2)).axes
    assert len(ax.lines) == 0
    assert len(ax.collections[0].get_offsets()) == 0 and len(ax.collections[1].get_offsets()) == 2


def test_param_importance_one_bar_per_parameter(tmp_path):
    path = tmp_path / "imp.png"
    fig = plot_param_importance(_study(), path=path)
    (ax,) = fig.axes
    assert len(ax.patches) == 2
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert sorted(names) == ["lr", "optimizer"]
    widths = [p.get_width() for p in ax.patches]
    assert widths == sorted(widths)  # the most important on top
    assert abs(sum(widths) - 1.0) < 1e-6  # fANOVA importances are shares
    _assert_small_png(path)


@pytest.mark.parametrize("n_complete", [0, 1])
def test_param_importance_note_with_too_few_trials(n_complete, tmp_path):
    path = tmp_path / "imp.png"
    fig = plot_param_importance(_study(n_complete=n_complete, n_pruned=1), path=path)
    (ax,) = fig.axes
    assert len(ax.patches) == 0
    assert "at least 2 complete trials" in ax.texts[0].get_text()
    assert f"has {n_complete})" in ax.texts[0].get_text()
    assert path.exists()
