"""Where the kit reads and writes: one place, anchored at the repository root.

Every folder can be moved with an environment variable, which is how the tests
keep runs, data caches and figures out of the working tree:

    SAFS_DATA     dataset cache            (default <repo>/data)
    SAFS_RUNS     run folders, results      (default <repo>/runs)
    SAFS_FIGURES  PNG figures and tables    (default <repo>/figures)
    SAFS_RESULTS  the shipped results       (default <repo>/results, tracked; see safs_lite.study.shipped)
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _folder(env: str, default: str, explicit: str | os.PathLike | None = None) -> Path:
    if explicit is not None:
        return Path(explicit).expanduser().resolve()
    value = os.environ.get(env)
    return Path(value).expanduser().resolve() if value else REPO_ROOT / default


def data_dir(root: str | os.PathLike | None = None) -> Path:
    """Dataset cache: `root` if given, else $SAFS_DATA, else <repo>/data."""
    return _folder("SAFS_DATA", "data", root)


def runs_dir(root: str | os.PathLike | None = None) -> Path:
    """Run folders: `root` if given, else $SAFS_RUNS, else <repo>/runs."""
    return _folder("SAFS_RUNS", "runs", root)


def figures_dir(root: str | os.PathLike | None = None) -> Path:
    """Figures: `root` if given, else $SAFS_FIGURES, else <repo>/figures (created)."""
    path = _folder("SAFS_FIGURES", "figures", root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir(root: str | os.PathLike | None = None) -> Path:
    """The reproduction's shipped results: `root` if given, else $SAFS_RESULTS, else <repo>/results."""
    return _folder("SAFS_RESULTS", "results", root)


def scratch_dir(name: str = "figures") -> Path:
    """A git-ignored folder for what a notebook run writes (its figures): <repo>/build/<name> (created).

    $SAFS_SCRATCH moves it. A notebook run never changes a tracked file; the figures a reader sees are the
    notebook's own outputs.
    """
    root = os.environ.get("SAFS_SCRATCH")
    path = (Path(root).expanduser().resolve() if root else REPO_ROOT / "build") / name
    path.mkdir(parents=True, exist_ok=True)
    return path
