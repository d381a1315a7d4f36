"""Strip notebooks for committing: keep text and PNG outputs, drop widget state and timing metadata.

A notebook shows each figure once, as its own PNG output (the figure the run drew, on
the data it had), so the committed notebook, GitHub and the book built by `make book`
show the same figures. A notebook run saves its figures only to a git-ignored scratch
folder (safs_lite.paths.scratch_dir), never into a tracked file. Other image formats
(SVG, JPEG, GIF duplicates of a PNG) are dropped to keep the files small.

Usage:
    python tools/clean_notebooks.py notebooks/*.ipynb
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

DROPPED_MIMES = ("image/svg+xml", "image/jpeg", "image/gif")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def clean_output(output: dict) -> dict | None:
    """One output without widget views or non-PNG images; None if nothing worth keeping remains.

    A widget display (e.g. a tqdm bar) is dropped whole: its text/plain part is only
    the widget's placeholder repr. A figure keeps its PNG and its "<Figure size ...>" line.
    """
    data = output.get("data")
    if data is None:  # stream and error outputs are text: keep them
        return output
    if WIDGET_MIME in data:
        return None
    for mime in DROPPED_MIMES:
        data.pop(mime, None)
    return output if data else None


def clean_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Clean `nb` in place (see module docstring) and return it."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = [o for o in (clean_output(o) for o in cell.outputs) if o is not None]
    return nb


def main(argv: list[str] | None = None) -> int:
    """Clean each notebook named on the command line, in place; print sizes before and after."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for path in args.notebooks:
        before = path.stat().st_size
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        nbformat.write(clean_notebook(nb), path)
        print(f"{path}: {before / 1024:.0f} KB -> {path.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
