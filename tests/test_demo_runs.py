"""The README's demo numbers are the ones benchmarks/demo_runs.py committed (results/demo_runs.json)."""
import json
import re

from safs_lite.paths import REPO_ROOT

RUNS = json.loads((REPO_ROOT / "results" / "demo_runs.json").read_text())["runs"]
README = (REPO_ROOT / "README.md").read_text()
METHODS = ("dense", "magnitude_pruning", "stage1", "stage2", "safs")


def _gain(key):
    return RUNS[key]["val"]["safs"] - RUNS[key]["val"]["magnitude_pruning"]


def test_the_setting_choice_is_the_measured_one():
    full = f"{_gain('full-98-global-t1'):+.2f} / {_gain('full-99-global-t1'):+.2f}\npoints on full MNIST"
    offline = f"{_gain('offline-98-global-t1'):+.2f} / {_gain('offline-99-global-t1'):+.2f} on the offline subset"
    assert full in README and offline in README
    worst = {s: min(_gain(f"full-{s}-global-t1"), _gain(f"offline-{s}-global-t1")) for s in (98, 99)}
    assert worst[98] > worst[99] and "98% global is the better worst case" in README  # the README's own reason


def test_the_threads_table_and_the_full_mnist_line_are_the_measured_runs():
    for threads in (2, 1):
        row = re.search(rf"^\| {threads} \(`[^|]*\|(.*)\|$", README, re.M).group(1)
        assert [float(x) for x in row.split("|")] == [RUNS[f"offline-98-global-t{threads}"]["test"][m]
                                                      for m in METHODS]
    full = RUNS["full-98-global-t1"]
    assert (f"magnitude pruning {full['test']['magnitude_pruning']:.2f}% test accuracy,\nSAFS "
            f"{full['test']['safs']:.2f}%") in README and f"in {full['seconds']:.0f} s of compute" in README
    from safs_lite.version import KIT_VERSION

    assert all(r["kit"] == KIT_VERSION for r in RUNS.values()), "a new kit version: rerun benchmarks/demo_runs.py"
