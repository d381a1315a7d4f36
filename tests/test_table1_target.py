"""benchmarks/table1_target.py runs on a fresh clone: with no finished runs under runs/ it reads the committed
evidence study and prints its numbers (issue 28, item 7)."""
import json
import os
import statistics
import subprocess
import sys

from safs_lite.paths import REPO_ROOT


def test_it_reads_the_committed_study_when_runs_holds_none(tmp_path):
    env = {**os.environ, "SAFS_RUNS": str(tmp_path / "runs")}
    done = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "table1_target.py")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "source: the committed study, results/evidence/runs (10 seeds: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)" in out
    root = REPO_ROOT / "results" / "evidence" / "runs"
    runs = [root / f"safs-lenet5-mnist-0.99-layerwise-cpu-s{s}" for s in range(10)]
    safs = [json.loads((r / "results.json").read_text())["test_accuracy"]["safs"] for r in runs]
    ceilings = [json.loads((r / "ceiling.json").read_text())["test_ceiling"] for r in runs]
    mean_row = next(line for line in out.splitlines() if line.startswith("mean "))
    assert f"{statistics.mean(safs):.2f}" in mean_row.split() and f"{statistics.mean(ceilings):.2f}" in mean_row.split()
    assert "goal SAFS - magnitude_pruning: interval [" in out  # the paired comparisons over the ten masks
