"""Build the notebooks' book: a static HTML site from the executed notebooks, without running them.

Copies the learners' README (notebooks/README.md, the landing page, with a table of contents added), the
notebooks and their solutions into build/book/src, then runs Sphinx with MyST-NB (docs/book/conf.py;
execution off), offline. Open build/book/html/index.html in a browser.

Usage:
    python tools/build_book.py [--out build/book]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def toc(notebooks: list[str], solutions: list[str]) -> str:
    """The toctrees appended to the landing page: the notebooks in order, then their solutions."""
    lines = ["", "```{toctree}", ":caption: Notebooks", ":maxdepth: 1", "", *notebooks, "```", "",
             "```{toctree}", ":caption: Solutions", ":maxdepth: 1", "", *solutions, "```", ""]
    return "\n".join(lines)


def stage(src: Path) -> None:
    """Copy the README, the notebooks and the solutions into `src`, the README as index.md."""
    if src.exists():
        shutil.rmtree(src)
    (src / "solutions").mkdir(parents=True)
    books = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    sols = sorted(p.name for p in (NOTEBOOKS / "solutions").glob("[0-9][0-9]_*.ipynb"))
    for name in books:
        shutil.copy(NOTEBOOKS / name, src / name)
    for name in sols:
        shutil.copy(NOTEBOOKS / "solutions" / name, src / "solutions" / name)
    readme = (NOTEBOOKS / "README.md").read_text()
    (src / "index.md").write_text(readme + toc([n[:-6] for n in books], [f"solutions/{n[:-6]}" for n in sols]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "book", help="build folder (default build/book)")
    args = parser.parse_args(argv)
    src, html = args.out / "src", args.out / "html"
    stage(src)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(ROOT / "docs" / "book"),
           "-d", str(args.out / "doctrees"), str(src), str(html)]
    done = subprocess.run(cmd)
    if done.returncode == 0:
        print(f"book: {html / 'index.html'}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
