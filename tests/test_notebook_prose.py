"""Every decimal number the notebooks' prose states is either computed on the page or a listed constant.

A sentence that quotes a measurement must get it from the computation: the number appears in an output of
the same notebook (a printed line, a table, or a Markdown cell built from the values with
`IPython.display.Markdown`). The test reads the stored notebooks, so it checks what a reader sees.
"""
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PAGES = sorted(NOTEBOOKS.glob("*.ipynb")) + sorted((NOTEBOOKS / "solutions").glob("*.ipynb"))

# Constants that are not measurements of the kit: settings, targets an exercise sets, a course number.
ALLOWED = {
    "0.9", "0.99", "0.999",  # Adam's betas, the sparsity levels 90% / 99% written as fractions
    "99.9",                  # a sparsity level named in the going-further ideas
    "0.5", "1.5",            # exercise 03.1's target: saturate at 0.5, slope 1.5 at 0
    "6.5940",                # MIT's course 6.5940, credited for the per-layer sensitivity scan
}
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.]*\d)")
CODE = re.compile(r"```.*?```|`[^`\n]*`|\]\([^)]*\)|\$[^$\n]*\$|\b0[1-9]\.[1-9]\b", re.S)  # code, links, maths, exercise names


def prose_numbers(cell_source: str) -> list[str]:
    """The decimal numbers of a markdown cell outside code, links and maths."""
    return DECIMAL.findall(CODE.sub(" ", cell_source))


def output_text(nb: nbformat.NotebookNode) -> str:
    """Every text the notebook's code cells output (streams, plain text, Markdown, HTML)."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            for mime in ("text/plain", "text/markdown", "text/html"):
                parts.append(out.get("data", {}).get(mime, ""))
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


def test_decimal_numbers_are_found():
    assert prose_numbers("accuracy 98.78% (`lr 1e-3`, `x = 0.5`), rho 0.716, [fig](a/1.2.png), 5e-4, v0.2.0, "
                         "exercise 05.1, 4.85e8") == ["98.78", "0.716"]


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(NOTEBOOKS)))
def test_every_number_in_the_prose_is_in_an_output(path):
    nb = nbformat.read(path, as_version=4)
    outputs = output_text(nb)
    missing = [(i, n) for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown"
               for n in prose_numbers(cell.source) if n not in ALLOWED and n not in outputs]
    assert not missing, f"{path.name}: numbers in markdown cells that no output shows (cell, number): {missing}"


# Measured times and counts in the prose: an integer with a unit of time or repetition ("106 s", "3 min",
# "12 times", "4x") must be in an output of the same notebook too. Settings named with a unit (budgets such as
# "200 epochs") are not caught: epochs, steps and seeds are no units here.
TIMED = re.compile(r"(?<![\w.,])\d[\d,]* ?(?:s|min|seconds|minutes|times|x)\b")
TIMED_ALLOWED = {"2 x", "3 x", "4 x", "5 x", "8 x"}  # shapes written "5 x 5" / "8 x 8" (images, kernels)
# Every notebook and solution.
TIMED_PAGES = PAGES


def prose_timed(cell_source: str) -> list[str]:
    """The integers with a unit of time or repetition of a markdown cell, outside code, links and maths."""
    return [m.group(0) for m in TIMED.finditer(CODE.sub(" ", cell_source))]


def test_timed_numbers_are_found():
    assert prose_timed("measured 106 s and 58s, about 3 min, 12 times faster, 4x; `took 9 s`, 15 epochs, "
                       "2 CPU cores, 1,000 images, 8x8 digits") == ["106 s", "58s", "3 min", "12 times", "4x"]


def shown(timed: str, outputs: str) -> bool:
    """Whether an output shows `timed`, spaced or not ("58 s", "58s"); "14 times" may be printed "14 x"."""
    number, unit = re.match(r"([\d,]+) ?(.*)", timed).groups()
    units = {unit, "x"} if unit == "times" else {unit}
    return any(re.search(rf"(?<![\w.,]){re.escape(number)} ?{re.escape(u)}\b", outputs) for u in units)


@pytest.mark.parametrize("path", TIMED_PAGES, ids=lambda p: str(p.relative_to(NOTEBOOKS)))
def test_every_measured_time_in_the_prose_is_in_an_output(path):
    nb = nbformat.read(path, as_version=4)
    outputs = output_text(nb)
    missing = [(i, n) for i, cell in enumerate(nb.cells) if cell.cell_type == "markdown"
               for n in prose_timed(cell.source)
               if n not in TIMED_ALLOWED and not shown(n, outputs)]
    assert not missing, f"{path.name}: times or counts in markdown cells that no output shows (cell, text): {missing}"
