"""The book folds each exercise's, quiz's and "Why?" section's solution in right after it (tools/build_book.py).

Fast checks on the staged notebooks, no Sphinx and no browser (tests/test_browser.py renders the book and opens the
dropdowns in Chromium): every exercise a notebook checks is followed by a folded dropdown holding the solution
notebook's own code and its stored "correct"; the model answers follow the "Why?" questions; a notebook and its
solutions that disagree stop the build with a message naming the exercises.
"""
from __future__ import annotations

import copy
import json
import re

import pytest

from safs_lite.paths import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def build_book(load_script):
    return load_script("tools/build_book.py")


def _load(path):
    return json.loads(path.read_text())


def _src(cell):
    return "".join(cell["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem[:2])
def test_every_exercise_is_followed_by_its_folded_solution(build_book, path):
    nb, sol = _load(path), _load(REPO_ROOT / "notebooks" / "solutions" / path.name)
    folded = build_book.fold_solutions(nb, sol, path.name)["cells"]
    assert len(folded) > len(nb["cells"])
    asked = [(i, build_book._checks(c)) for i, c in enumerate(folded) if build_book._checks(c)]
    assert len(asked) >= 3, f"{path.name}: exercises and a quiz expected"
    solved = {build_book._checks(c): c for c in sol["cells"] if build_book._checks(c)}
    for i, ids in asked:
        after = folded[i + 1]
        assert "folded-solution" in after["metadata"]["tags"], f"{path.name}: nothing folded after {ids}"
        body = _src(after)
        assert body.lstrip("`").startswith("{dropdown}") and ":open:" not in body, "a solution shown unfolded"
        # the solution notebook's own check cell, verbatim, with its stored output saying "correct"
        assert _src(solved[ids]).strip() in body, f"{path.name}: the dropdown after {ids} lacks its solution code"
        assert re.search(r"exercise \d\d\.\w+: correct", body), f"{path.name}: no stored 'correct' after {ids}"
        assert "not answered yet" not in body
    why = [i for i, c in enumerate(folded) if c["cell_type"] == "markdown" and _src(c).lstrip().startswith("## Why?")]
    assert len(why) == 1 and "Model answers" in _src(folded[why[0] + 1]), f"{path.name}: model answers not folded in"
    # a section heading cannot open inside a directive: the solutions' headings become bold lines
    assert not any(re.search(r"^#+ ", _src(c), re.M) for c in folded if "folded-solution" in c["metadata"].get("tags", []))


def test_a_notebook_and_its_solutions_that_disagree_stop_the_build(build_book):
    path = NOTEBOOKS[2]
    nb, sol = _load(path), _load(REPO_ROOT / "notebooks" / "solutions" / path.name)
    unsolved = copy.deepcopy(sol)
    first = next(i for i, c in enumerate(unsolved["cells"]) if build_book._checks(c))
    gone = build_book._checks(unsolved["cells"].pop(first))
    with pytest.raises(SystemExit, match=re.escape(repr(gone))):
        build_book.fold_solutions(nb, unsolved, path.name)


def test_a_solution_block_keeps_the_answer_written_after_its_check(build_book):
    """Markdown right after a check cell answers that exercise's sub-question: it stays in that exercise's dropdown,
    and the next exercise's block starts at its own heading."""
    cell = lambda kind, text: {"cell_type": kind, "metadata": {}, "source": text, "outputs": []}  # noqa: E731
    sol = {"cells": [cell("markdown", "# Solutions"), cell("code", "import x"),
                     cell("markdown", "**Exercise 99.1: one.** why"), cell("code", 'check("99.1", 1)'),
                     cell("markdown", "The sub-question's answer."),
                     cell("markdown", "**Exercise 99.2: two.**"), cell("code", 'check("99.2", 2)'),
                     cell("markdown", "## Why? Model answers\n\n1. because"),
                     cell("markdown", "## Quiz: answers"), cell("code", 'check(f"99.q{k}", q)')]}
    blocks = build_book.solution_blocks(sol)
    assert [_src(c) for c in blocks[("99.1",)]][-1] == "The sub-question's answer."
    assert _src(blocks[("99.2",)][0]).startswith("**Exercise 99.2")
    assert [_src(c) for c in blocks[("why",)]] == ["## Why? Model answers\n\n1. because"]
    assert _src(blocks[("99.q{k}",)][0]) == "## Quiz: answers"
    assert "import x" not in json.dumps(list(blocks.values()))  # the set-up cells belong to no exercise
