"""tools/equal_search.py: the run's own LAHC is replayed from its log, not recomputed, and continued until it has
scored the asked number of distinct vectors."""
import importlib.util

from safs_lite.data.builtin import load_data
from safs_lite.paths import REPO_ROOT

RUN = REPO_ROOT / "results" / "evidence" / "runs" / "safs-lenet5-mnist-0.99-global-sweep-s0"


def _tool():
    spec = importlib.util.spec_from_file_location("equal_search", REPO_ROOT / "tools" / "equal_search.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_runs_search_is_replayed_and_extended_to_the_budget(tmp_path):
    tool = _tool()
    own = (RUN / "stage1_search.csv").read_text().splitlines()
    out = tmp_path / "search.csv"
    found = tool.extend_search(RUN, load_data("mnist", seed=0, quiet=True), out, budget=10)  # the offline subset
    lines = out.read_text().splitlines()
    assert lines[: len(own)] == own and len(lines) > len(own)  # the run's own steps kept as they were, then more
    assert found["own_evaluations"] == 9 and found["evaluations"] == 10
    assert found["best_val_fitness"] >= max(float(line.split(",")[2]) for line in own[1:])


def test_cells_are_reused_only_when_the_longer_search_keeps_the_runs_operators(tmp_path):
    import json

    tool = _tool()
    own_ops = json.loads((RUN / "results.json").read_text())["activations"]["stage1"]
    finals = tmp_path / "finals.json"
    finals.write_text(json.dumps({"cells": {"stage1": {"test_accuracy": 70.0}, "safs": {"error": "diverged"}}}))
    reused = tool.same_as_finals(RUN, own_ops, finals)
    assert set(reused) == {"stage1_equal"} and reused["stage1_equal"]["test_accuracy"] == 70.0  # a failed cell: rerun
    assert "finals.json:stage1" in reused["stage1_equal"]["same_as"]
    other = {site: ("swish" if op != "swish" else "elu") for site, op in own_ops.items()}
    assert tool.same_as_finals(RUN, other, finals) == {}  # other operators: computed, never copied
    assert tool.same_as_finals(RUN, own_ops, tmp_path / "missing.json") == {}
