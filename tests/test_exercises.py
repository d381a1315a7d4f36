"""Tests for safs_lite.exercises: a check passes a right answer, explains a wrong one, and waits for a missing one."""
import pytest

from safs_lite.exercises import CHECKS, check, reference_decisions


def not_yet(*args):
    raise NotImplementedError


def test_a_right_answer_prints_correct(capsys):
    check("04.1", lambda f, current, late: f >= current or f >= late)
    check("04.2", reference_decisions)
    assert capsys.readouterr().out.splitlines() == ["exercise 04.1: correct", "exercise 04.2: correct"]


def test_a_missing_answer_gives_a_hint_without_an_error(capsys):
    check("04.1", not_yet)
    check("03.1", None)
    check("06.2", not_yet)  # Optuna never sees the unanswered objective
    out = capsys.readouterr().out
    assert "exercise 04.1: not answered yet. Hint:" in out and "exercise 03.1: not answered yet" in out
    assert "exercise 06.2: not answered yet" in out and "failed" not in out


def test_a_wrong_answer_says_what_is_wrong():
    with pytest.raises(AssertionError, match="exercise 04.1 is not right yet: the worked example"):
        check("04.1", lambda f, current, late: f >= current)  # hill climbing
    with pytest.raises(AssertionError, match="rows and columns are swapped"):
        check("01.2", lambda t, p, k: __import__("torch").bincount(k * p + t, minlength=k * k).view(k, k))
    with pytest.raises(AssertionError, match="population std"):
        check("07.2", lambda res: (sum(g := [r["test_accuracy"]["safs"] - r["test_accuracy"]["magnitude_pruning"]
                                             for r in res.values()]) / len(g), __import__("numpy").std(g)))
    with pytest.raises(ValueError, match="valid: 01.1"):
        check("9.9", None)


def test_every_notebook_has_two_or_three_exercises():
    per_notebook = {}
    for name in CHECKS:
        per_notebook.setdefault(name.split(".")[0], []).append(name)
    assert sorted(per_notebook) == ["01", "02", "03", "04", "05", "06", "07"]
    assert all(2 <= len(v) <= 3 for v in per_notebook.values())
