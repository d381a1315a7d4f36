"""Tests for safs_lite.study.plots: what each figure contains, the PNG files, and sparsity_table's counts."""

import matplotlib

matplotlib.use("Agg")  # no display in tests

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from safs_lite import build_model, prune_model, sparsity_report, sparsity_table  # noqa: E402
from safs_lite.study.plots import plot_accuracy_vs_sparsity
from safs_lite.teach.plots import plot_confusion, plot_history  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _data_lines(ax):
    """Lines that carry data (seaborn also adds empty lines as legend handles)."""
    return [line for line in ax.lines if len(line.get_xdata()) > 0]


def _assert_small_png(path):
    blob = path.read_bytes()
    assert blob[:8] == PNG_MAGIC
    assert 1_000 < len(blob) < 150_000


def _history(n=6):
    return [{"epoch": e, "train_loss": 1.0 / e, "train_acc": 90.0 + e, "val_loss": 1.2 / e,
             "val_acc": 89.0 + e, "lr": 1e-3, "seconds": 1.0} for e in range(1, n + 1)]


def test_plot_history_two_panels_train_and_val(tmp_path):
    path = tmp_path / "sub" / "curves.png"
    fig = plot_history(_history(6), title="dense", path=path)
    assert len(fig.axes) == 2
    loss_ax, acc_ax = fig.axes
    for ax in fig.axes:
        lines = _data_lines(ax)
        assert len(lines) == 2
        assert all(list(line.get_xdata()) == [1, 2, 3, 4, 5, 6] for line in lines)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "validation"]
    np.testing.assert_allclose(_data_lines(acc_ax)[1].get_ydata(), [90, 91, 92, 93, 94, 95])
    np.testing.assert_allclose(_data_lines(loss_ax)[0].get_ydata(), [1.0 / e for e in range(1, 7)])
    _assert_small_png(path)


def test_plot_history_without_path_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fig = plot_history(_history(1))
    assert len(fig.axes) == 2
    assert list(tmp_path.iterdir()) == []


def test_plot_confusion_counts(tmp_path):
    y_true = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    y_pred = torch.tensor([0, 1, 1, 1, 2, 0, 2])
    path = tmp_path / "cm.png"
    fig = plot_confusion(y_true, y_pred, num_classes=3, path=path)
    assert len(fig.axes) == 2  # heatmap + colour bar
    expected = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    shown = np.asarray(fig.axes[0].collections[0].get_array()).reshape(3, 3)
    np.testing.assert_array_equal(shown, expected)
    annotations = [int(t.get_text()) for t in fig.axes[0].texts]
    assert annotations == expected.ravel().tolist()
    assert "71.43%" in fig.axes[0].get_title()  # 5 of 7 correct
    _assert_small_png(path)


def test_plot_confusion_rejects_length_mismatch():
    with pytest.raises(ValueError, match="differ in length"):
        plot_confusion([0, 1], [0], num_classes=2)


def _grid(seeds=1):
    rows = []
    for s in (0.5, 0.9, 0.99):
        for method in ("layerwise", "global"):
            for ft in (False, True):
                for seed in range(seeds):
                    acc = 99 - 50 * s * (method == "layerwise") + 5 * ft + seed
                    rows.append({"sparsity": s, "method": method, "finetuned": ft, "seed": seed,
                                 "test_accuracy": acc})
    return pd.DataFrame(rows)


def test_plot_accuracy_vs_sparsity_one_line_per_group(tmp_path):
    path = tmp_path / "acc.png"
    ref = {"label": "paper: magnitude pruning 99%", "x": 0.99, "y": 46.69}
    fig = plot_accuracy_vs_sparsity(_grid(), hue="method", style="finetuned", path=path, reference=ref)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    lines = _data_lines(ax)
    assert len(lines) == 4  # 2 methods x 2 fine-tuning settings
    assert all(list(line.get_xdata()) == [0.5, 0.9, 0.99] for line in lines)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert ref["label"] in labels and "layerwise" in labels and "global" in labels
    star = [c for c in ax.collections if c.get_label() == ref["label"]]
    np.testing.assert_allclose(star[0].get_offsets(), [[0.99, 46.69]])
    assert "weights removed" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["50%", "90%", "99%"]
    _assert_small_png(path)


def test_plot_accuracy_vs_sparsity_aggregates_seeds_with_band():
    fig = plot_accuracy_vs_sparsity(_grid(seeds=3), hue="method", style=None, xscale="linear")
    ax = fig.axes[0]
    lines = _data_lines(ax)
    assert len(lines) == 2  # seeds and fine-tuning are averaged per method
    # Seeds add 0, 1, 2 and fine-tuning adds 0 or 5: mean offset 1 + 2.5 over the base accuracy.
    global_line = [line for line in lines if np.allclose(line.get_ydata(), 99 + 3.5)]
    assert len(global_line) == 1
    assert len(ax.collections) >= 2  # one confidence band per method


def test_sparsity_table_lenet5_layerwise_99():
    model = prune_model(build_model("lenet5", seed=0), 0.99, "layerwise")
    table = sparsity_table(model)
    assert list(table.columns) == ["layer", "weights", "kept", "sparsity"]
    assert table["layer"].tolist() == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert table["weights"].tolist() == [150, 2400, 30720, 10080, 840]
    # l1_unstructured removes round(0.99 * n) weights (Python's round: 148.5 -> 148).
    assert table["kept"].tolist() == [2, 24, 307, 101, 8]
    report = sparsity_report(model)
    for row in table.itertuples():
        assert row.sparsity == pytest.approx(report[row.layer])


def test_sparsity_table_dense_and_global():
    dense = build_model("lenet5", seed=0)
    table = sparsity_table(dense)
    assert (table["kept"] == table["weights"]).all() and (table["sparsity"] == 0).all()
    pruned = prune_model(build_model("lenet5", seed=0), 0.9, "global")
    table = sparsity_table(pruned)
    total = int(table["weights"].sum())
    assert int(table["kept"].sum()) == total - round(0.9 * total)
    assert table["sparsity"].nunique() > 1  # global pruning spreads sparsity unevenly


def test_sparsity_table_reads_current_weights_without_forward_pass():
    model = prune_model(build_model("lenet5", seed=0), 0.5)
    with torch.no_grad():  # an optimizer step moves weight_orig; .weight is refreshed only by forward
        model.conv1.weight_orig.zero_()
        model.conv2.weight_orig.fill_(1.0)
    table = sparsity_table(model).set_index("layer")
    assert int((model.conv1.weight != 0).sum()) == 75  # the stale attribute
    assert table.loc["conv1", "kept"] == 0
    assert table.loc["conv2", "kept"] == 1200  # mask still applies: 50% of 2400
