"""Tests for safs_lite.method.operators (curve values, autograd derivatives, properties), the operator figures and the explorer."""

import matplotlib

matplotlib.use("Agg")  # no display in tests

import ipywidgets as widgets  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from safs_lite.method.activations import ACTIVATIONS, SEARCH_SPACE, get_op  # noqa: E402
from safs_lite.method.operators import operator_curves, operator_properties  # noqa: E402
from safs_lite.teach.plots import plot_operators, plot_scaling  # noqa: E402
from safs_lite.teach.widgets import activation_explorer  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _walk(widget):
    """Yield widget and every widget nested in its children."""
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def _find(widget, cls, description=None):
    found = [w for w in _walk(widget) if isinstance(w, cls)
             and (description is None or w.description == description)]
    assert len(found) == 1, f"expected one {cls.__name__} {description or ''}, found {len(found)}"
    return found[0]


def test_default_grid_is_401_points_over_minus5_5_with_exact_zero():
    df = operator_curves("relu")
    assert list(df.columns) == ["operator", "x", "f", "df"]
    assert len(df) == 401
    assert df["x"].iloc[0] == -5.0 and df["x"].iloc[-1] == 5.0
    assert (df["x"] == 0.0).sum() == 1
    assert np.all(np.diff(df["x"]) > 0)


def test_all_operators_by_default_in_registry_order():
    df = operator_curves(x=[0.5])
    assert df["operator"].tolist() == list(ACTIVATIONS)


@pytest.mark.parametrize("alpha, beta", [(1.0, 1.0), (2.0, 0.5), (0.3, 2.5)])
def test_f_matches_alpha_op_beta_x(alpha, beta):
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    df = operator_curves(list(ACTIVATIONS), alpha=alpha, beta=beta, x=x)
    for name, g in df.groupby("operator"):
        expected = alpha * get_op(name)(beta * x)
        np.testing.assert_allclose(g["f"].to_numpy(), expected.numpy(), rtol=1e-12, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("name", ["swish", "tanh", "gelu", "softplus", "symlog", "srs", "logsigmoid"])
@pytest.mark.parametrize("alpha, beta", [(1.0, 1.0), (1.7, 0.6)])
def test_df_matches_finite_differences_on_smooth_ops(name, alpha, beta):
    # Grid off x = 0: symlog is only C^1 there, its second derivative jumps.
    x = np.linspace(-4.9, 4.9, 50)
    h = 1e-5
    df = operator_curves(name, alpha=alpha, beta=beta, x=x)["df"].to_numpy()
    plus = operator_curves(name, alpha=alpha, beta=beta, x=x + h)["f"].to_numpy()
    minus = operator_curves(name, alpha=alpha, beta=beta, x=x - h)["f"].to_numpy()
    np.testing.assert_allclose(df, (plus - minus) / (2 * h), rtol=1e-6, atol=1e-7)


def test_relu6_derivative_is_analytic_away_from_kinks():
    alpha, beta = 2.0, 1.5  # kinks of relu6(beta x) at x = 0 and x = 6 / 1.5 = 4
    df = operator_curves("relu6", alpha=alpha, beta=beta)
    x = df["x"].to_numpy()
    away = (np.abs(x) > 0.01) & (np.abs(x - 4.0) > 0.01)
    expected = np.where((x > 0) & (x < 4.0), alpha * beta, 0.0)
    np.testing.assert_array_equal(df["df"].to_numpy()[away], expected[away])
    assert set(np.unique(df["df"])) <= {0.0, alpha * beta}


def test_unknown_operator_raises_listing_valid_names():
    with pytest.raises(ValueError, match="valid: .*swish"):
        operator_curves(["swish", "not_an_op"])


def test_operator_properties_known_values():
    p = operator_properties()
    assert list(p.index) == list(ACTIVATIONS)
    assert p["searched"].sum() == len(SEARCH_SPACE) and not p.at["relu", "searched"]
    assert p.at["softplus", "f(0)"] == pytest.approx(np.log(2))
    assert p.at["swish", "f'(0)"] == pytest.approx(0.5)
    assert p.at["swish", "min f"] == pytest.approx(-0.278465, abs=1e-4)  # at x ~ -1.278, near a grid point
    assert p.at["relu", "dead x<0"] == 1.0 and p.at["elu", "dead x<0"] == 0.0
    assert p.at["hardswish", "dead x<0"] == pytest.approx(0.4, abs=0.01)  # zero gradient for x < -3
    assert p.at["tanh", "monotone"] and not p.at["swish", "monotone"]
    assert p.at["relu", "x<0 side"] == "-> 0 far left"
    assert p.at["elu", "x<0 side"] == "saturates at -1.00"
    assert p.at["logsigmoid", "x<0 side"] == "passes (unbounded)"
    assert p.at["acon", "f'(-100)"] == pytest.approx(0.25)
    assert p.at["sin", "x<0 side"] == "oscillates"


def test_operator_properties_follow_alpha_beta():
    p = operator_properties("tanh", alpha=2.0, beta=3.0)
    assert p.at["tanh", "f'(0)"] == pytest.approx(6.0)
    assert p.at["tanh", "x<0 side"] == "saturates at -2.00"


def test_plot_operators_one_panel_per_operator_and_png(tmp_path):
    path = tmp_path / "ops.png"
    fig = plot_operators(path=path)
    assert len(fig.axes) == len(ACTIVATIONS)
    titles = [ax.get_title() for ax in fig.axes]
    assert sum(t.endswith("(searched)") for t in titles) == len(SEARCH_SPACE)
    assert "swish (searched)" in titles and "relu (baseline)" in titles and "sin" in titles
    assert all(len(ax.lines) >= 2 for ax in fig.axes)  # f and f'
    blob = path.read_bytes()
    assert blob[:8] == PNG_MAGIC
    assert 1_000 < len(blob) < 200_000


def test_plot_operators_subset_and_scaling(tmp_path):
    fig = plot_operators(["tanh", "relu"], ncols=6)
    assert [ax.get_title() for ax in fig.axes] == ["tanh (searched)", "relu (baseline)"]
    path = tmp_path / "scaling.png"
    fig = plot_scaling(["tanh", "swish"], alphas=(0.5, 2.0), betas=(1.0, 2.0, 3.0), path=path)
    assert len(fig.axes) == 4
    assert [len(ax.lines) for ax in fig.axes] == [2 + 2, 3 + 2, 2 + 2, 3 + 2]  # + the two zero lines
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_explorer_builds_with_registry_options_and_reacts():
    ui = activation_explorer("tanh")
    assert isinstance(ui, widgets.VBox)
    menu = _find(ui, widgets.Dropdown)
    alpha = _find(ui, widgets.FloatSlider, "alpha")
    beta = _find(ui, widgets.FloatSlider, "beta")
    info = _find(ui, widgets.HTML)
    _find(ui, widgets.Output)
    assert list(menu.options) == list(ACTIVATIONS)
    assert menu.value == "tanh" and alpha.value == 1.0 and beta.value == 1.0
    assert alpha.min <= 0.1 and alpha.max >= 3.0
    assert "f(5) = 1.000" in info.value
    alpha.value = 2.0
    assert "f(5) = 2.000" in info.value
    beta.value = 0.5
    expected = 2.0 * np.tanh(2.5)
    assert f"f(5) = {expected:.3f}" in info.value
    menu.value = "relu"
    assert "f(5) = 5.000" in info.value and "f(-5) = 0.000" in info.value  # 2 * relu(0.5 * 5)


def test_explorer_rejects_unknown_default():
    with pytest.raises(ValueError, match="unknown activation operator"):
        activation_explorer("nope")
