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
