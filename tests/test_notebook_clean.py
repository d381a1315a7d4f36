"""A notebook run changes no tracked file: notebook 03 (the cheapest, about 10 s) run as a user runs it.

The kernel gets none of the test session's SAFS_* folders (the repo-root conftest.py sets them for every other
test), so the notebook writes where it would on a fresh clone: its figures to the git-ignored scratch folder.
The data folder points at an empty directory (the offline case). Afterwards `git status --porcelain` is what it
was, and no tracked file was rewritten (not even with the same bytes: modification times are compared too).
The executed copy goes to a temporary folder.
"""
import os
import shutil
import subprocess
import sys

import pytest

from safs_lite.paths import REPO_ROOT

NOTEBOOK = REPO_ROOT / "notebooks" / "03_activation_library.ipynb"


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout


def _tracked_mtimes() -> dict[str, int]:
    return {p: os.stat(REPO_ROOT / p).st_mtime_ns for p in _git("ls-files", "-z").split("\0")
            if p and (REPO_ROOT / p).is_file()}


def test_a_notebook_run_changes_no_tracked_file(tmp_path):
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    status, mtimes = _git("status", "--porcelain"), _tracked_mtimes()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFS_")}
    env.update({"SAFS_DATA": str(tmp_path / "no_data"), "SAFS_OFFLINE": "1", "MPLBACKEND": "Agg",
                "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)})
    run = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                          "--output-dir", str(tmp_path), str(NOTEBOOK)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / NOTEBOOK.name).exists()
    assert _git("status", "--porcelain") == status
    changed = [p for p, t in _tracked_mtimes().items() if mtimes.get(p) != t]
    assert not changed, f"the notebook run rewrote tracked files: {changed}"
