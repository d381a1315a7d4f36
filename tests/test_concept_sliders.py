"""The concept sliders of notebooks 02 and 05 (safs_lite.teach.widgets): their numbers, and that they build and react
without a live kernel."""
import ipywidgets as widgets
import torch

from safs_lite import build_model
from safs_lite.method.pruning import accuracy_ceiling, connected_units, prune_model
from safs_lite.teach.widgets import (bias_slider, connectivity_at, connectivity_line, connectivity_slider, unit_line,
                                     unit_slopes)


def test_connectivity_matches_the_pruning_helpers():
    dense = build_model("lenet5", seed=0)
    labels = torch.randint(0, 10, (500,), generator=torch.Generator().manual_seed(0))
    for sparsity, method in ((0.5, "layerwise"), (0.99, "layerwise"), (0.99, "global")):
        info = connectivity_at(dense, labels, sparsity, method)
        model = prune_model(build_model("lenet5", seed=0), sparsity, method)
        assert info["connected"] == connected_units(model)["fc3"].nonzero().flatten().tolist()
        assert info["ceiling"] == accuracy_ceiling(model, labels)
    assert connectivity_at(dense, labels, 0.5)["connected"] == list(range(10))  # half the weights cut nothing off
    assert "accuracy ceiling 100.00%" in connectivity_line(connectivity_at(dense, labels, 0.5))
    assert dense.fc3.weight.count_nonzero() == dense.fc3.weight.numel()  # the dense model is left as it is


def test_connectivity_slider_reacts():
    dense = build_model("lenet5", seed=0)
    ui = connectivity_slider(dense, torch.zeros(10, dtype=torch.long), default=0.5)
    slider, menu = ui.children[0].children
    info = ui.children[1]
    assert "(10 of 10)" in info.value
    slider.value = 0.99
    assert "99.0%" in info.value and "(10 of 10)" not in info.value
    menu.value = "global"
    assert info.value.startswith("global")


def test_a_very_negative_bias_kills_relu_but_not_swish():
    dead = unit_slopes(-6.0)
    assert dead["max z"] < 0 and dead["relu"] == 0.0 and dead["swish"] == 1.0
    alive = unit_slopes(0.0)
    assert 0.3 < alive["relu"] < 0.7 and alive["swish"] == 1.0
    assert "ReLU DEAD" in unit_line(dead) and "Swish alive" in unit_line(dead)
    ui = bias_slider(default=-6.0)
    assert isinstance(ui, widgets.VBox) and "ReLU DEAD" in ui.children[1].value
    ui.children[0].value = 1.0
    assert "ReLU alive" in ui.children[1].value
