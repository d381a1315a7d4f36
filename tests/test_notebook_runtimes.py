"""The runtimes the docs quote are the ones tools/notebook_runtimes.py measured (results/notebook_runtimes.json),
and the 'committed run' column is what each committed notebook's own last cell printed."""
from __future__ import annotations

import json
import re

import pytest

from safs_lite.paths import REPO_ROOT

MEASURED = json.loads((REPO_ROOT / "results" / "notebook_runtimes.json").read_text())["notebooks"]
NOTEBOOKS = sorted(p.name for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def tool(load_script):
    return load_script("tools/notebook_runtimes.py")


def test_every_notebook_was_measured_and_ran():
    assert sorted(MEASURED) == NOTEBOOKS
    assert all(r["ok"] for r in MEASURED.values()), [n for n, r in MEASURED.items() if not r["ok"]]


def test_docs_table_quotes_the_measurements(tool):
    rows = {m[1]: (m[2], m[3]) for m in re.finditer(r"^\| `(\d\d_\w+\.ipynb)` \|.*\| (\d+) s \| (\d+) s \(",
                                                         (REPO_ROOT / "docs" / "notebooks.md").read_text(), re.M)}
    assert sorted(rows) == NOTEBOOKS
    for name, (fresh, printed) in rows.items():
        assert int(fresh) == round(MEASURED[name]["wall_s"]), name
        assert int(printed) == round(tool.printed_time(REPO_ROOT / "notebooks" / name)), f"{name}: rerun the tool"


def test_learners_table_quotes_the_measurements():
    text = (REPO_ROOT / "notebooks" / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(\d\d_\w+)` \|.*\| (\d+) s \|", text, re.M))
    assert rows and all(int(s) == round(MEASURED[f"{n}.ipynb"]["wall_s"]) for n, s in rows.items()), rows
    for n in ("08", "09"):
        name = next(x for x in NOTEBOOKS if x.startswith(n))
        assert f"{round(MEASURED[name]['wall_s'])} s for {n}" in text


def test_printed_time_reads_both_timing_lines(tool, tmp_path):
    for text, seconds in (("this run: 32 s from kernel start, 2 CPU cores\n", 32.0),
                          ("this run took 11 s from the first code cell\n", 11.0),
                          ("notebook compute: 312.4 s (5 min 12 s)\n", 312.4)):
        nb = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "stream", "text": ["other\n", text]}]}]}
        (tmp_path / "x.ipynb").write_text(json.dumps(nb))
        assert tool.printed_time(tmp_path / "x.ipynb") == seconds


def test_docs_only_copies_the_printed_times_into_a_page(tool, tmp_path):
    page = tmp_path / "notebooks.md"
    row = "| `07_reproduce_paper.ipynb` | the answer first | 19 s | 999 s (committed results) |\n"
    page.write_text("intro\n" + row)
    assert tool.update_docs(page)
    printed = round(tool.printed_time(REPO_ROOT / "notebooks" / "07_reproduce_paper.ipynb"))
    assert page.read_text() == "intro\n" + row.replace("999 s", f"{printed} s")
    assert not tool.update_docs(page)  # already current
