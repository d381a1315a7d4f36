"""Tests for the end-of-notebook quizzes (safs_lite.teach.quiz): three one-letter questions per notebook 01-06 and 08,
checked like the exercises: the right letter prints "correct" whatever its case or spacing, a wrong one says why that
option is wrong without naming the right one, None prints "not answered yet"."""
import re
from pathlib import Path

import nbformat
import pytest

from safs_lite.teach import quiz
from safs_lite.teach.exercises import CHECKS, check

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
OWN = ("01", "02", "03", "04", "05", "06", "08")
RIGHT = {"01": "bcd", "02": "bcb", "03": "aca", "04": "bcc", "05": "baa", "06": "bab", "08": "abd"}


def test_every_notebook_has_three_quiz_questions_registered():
    for nn in OWN:
        assert [n for n in CHECKS if n.startswith(f"{nn}.q")] == [f"{nn}.q1", f"{nn}.q2", f"{nn}.q3"]
    assert set(quiz.QUESTIONS) == set(quiz.CHECKS)


@pytest.mark.parametrize("nn", OWN)
def test_the_right_letter_passes_in_any_case_or_spacing(nn, capsys):
    for k, letter in enumerate(RIGHT[nn], start=1):
        check(f"{nn}.q{k}", letter)
        check(f"{nn}.q{k}", f" ({letter.upper()}) ")
    assert capsys.readouterr().out.splitlines() == [f"exercise {nn}.q{k}: correct" for k in (1, 2, 3) for _ in (0, 1)]


@pytest.mark.parametrize("nn", OWN)
def test_a_wrong_letter_says_why_without_naming_the_right_one(nn):
    for k, right in enumerate(RIGHT[nn], start=1):
        for wrong in sorted(set("abcd") - {right}):
            with pytest.raises(AssertionError, match=rf"not \({wrong}\)") as err:
                check(f"{nn}.q{k}", wrong)
            assert f"({right})" not in str(err.value)


def test_none_is_not_answered_yet_and_other_answers_are_refused(capsys):
    check("02.q1", None)
    assert capsys.readouterr().out == "exercise 02.q1: not answered yet\n"
    for bad in ("e", "ab", 3):
        with pytest.raises(AssertionError, match="one letter"):
            check("02.q1", bad)


# Notebook 02's quiz (02.q1-q3) is registered; its cells join notebook 02 at its next full-MNIST run.
IN_NOTEBOOKS = tuple(nn for nn in OWN if nn != "02")


@pytest.mark.parametrize("nn", IN_NOTEBOOKS)
def test_the_notebooks_ship_unanswered_and_the_solutions_answer(nn):
    student = next(NOTEBOOKS.glob(f"{nn}_*.ipynb"))
    solution = NOTEBOOKS / "solutions" / student.name
    for path, answered in ((student, False), (solution, True)):
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if c.cell_type == "code" and f'check(f"{nn}.q{{k}}", answer)' in c.source]
        assert len(cells) == 1, path.name
        given = re.findall(r'^q(\d) = (None|"[a-d]")', cells[0].source, re.M)
        assert [k for k, _ in given] == ["1", "2", "3"], path.name
        if answered:
            assert "".join(v.strip('"') for _, v in given) == RIGHT[nn]
        else:
            assert all(v == "None" for _, v in given)
        shown = "".join(o.get("text", "") for o in cells[0].get("outputs", []))
        want = "correct" if answered else "not answered yet"
        assert shown.splitlines() == [f"exercise {nn}.q{k}: {want}" for k in (1, 2, 3)], path.name
