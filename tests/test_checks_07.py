"""Notebook 07's checks teach: a right answer prints "correct", an answer rounded to 2 decimals passes, a wrong
one raises an AssertionError that says what is wrong without giving the expected value away, and an answer
not given yet prints "not answered yet"."""
import math
import re

import numpy as np
import pytest
from scipy import stats

from safs_lite.teach.checks_07 import CHECKS, _paired_data, _results
from safs_lite.teach.exercises import check


def paired_bootstrap(a, b, n_resamples, seed):
    d = np.asarray(a, float) - np.asarray(b, float)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_resamples, d.size))].mean(axis=1)
    return tuple(np.quantile(means, [0.025, 0.975]))


def gain_interval(results, ddof=1, q=None, rounded=False):
    d = np.array([r["test_accuracy"]["safs"] - r["test_accuracy"]["magnitude_pruning"] for r in results.values()])
    n = len(d)
    q = stats.t.ppf(0.975, n - 1) if q is None else q
    half = q * d.std(ddof=ddof) / math.sqrt(n)
    low, high = d.mean() - half, d.mean() + half
    return (round(low, 2), round(high, 2)) if rounded else (np.float64(low), np.float64(high))


def smallest_p(n):
    return 2 / 2 ** n


def _hidden_values():
    """Every expected value a check computes, as text, to make sure no message contains one."""
    values = []
    for n, seed in ((12, 71), (8, 72)):
        a, b = _paired_data(n, seed)
        values += list(paired_bootstrap(a, b, 10_000, 11))
    for n, seed in ((7, 81), (4, 82)):
        values += list(gain_interval(_results(n, seed)))
    return [f"{v:.2f}" for v in values] + [f"{v:.3g}" for v in values]


def assert_hides_answer(message):
    for value in _hidden_values():
        assert value not in message, f"the message gives away {value}: {message}"


def test_all_entries_are_registered():
    assert {"07.1", "07.2", "07.3", "07.q1", "07.q2", "07.q3"} <= set(CHECKS)


def test_right_answers_print_correct(capsys):
    check("07.1", paired_bootstrap)
    check("07.2", gain_interval)
    check("07.2", lambda res: gain_interval(res, rounded=True))  # rounded to 2 decimals
    check("07.3", "stage1 - uniform", smallest_p=smallest_p, smallest_n=6)
    check("07.3", "SAFS − uniform_safs", smallest_p=lambda n: np.float64(2.0 ** (1 - n)), smallest_n="6")
    check("07.3", ["stage1 - uniform", "safs - uniform_safs"], smallest_p=smallest_p, smallest_n=6.0)
    check("07.3", "search_with_stage2", smallest_p=smallest_p, smallest_n=6)
    check("07.q1", "c")
    check("07.q2", " B ")
    check("07.q3", "(c)")
    out = capsys.readouterr().out.splitlines()
    assert out == [f"exercise {n}: correct" for n in ("07.1", "07.2", "07.2", "07.3", "07.3", "07.3", "07.3",
                                                        "07.q1", "07.q2", "07.q3")]


def test_unanswered_prints_not_answered_yet(capsys):
    def stub(*args):
        raise NotImplementedError

    check("07.1", stub)
    check("07.2", None)
    check("07.3", None)
    check("07.3", "stage1 - uniform")  # the sub-questions are still open
    check("07.3", "stage1 - uniform", smallest_p=smallest_p)
    for q in ("07.q1", "07.q2", "07.q3"):
        check(q, None)
    out = capsys.readouterr().out.splitlines()
    assert out == ["exercise 07.1: not answered yet", "exercise 07.2: not answered yet",
                   "exercise 07.3: not answered yet", "exercise 07.3: not answered yet (smallest_p is still None)",
                   "exercise 07.3: not answered yet (smallest_n is still None)",
                   "exercise 07.q1: not answered yet", "exercise 07.q2: not answered yet",
                   "exercise 07.q3: not answered yet"]


@pytest.mark.parametrize("fn, words", [
    (lambda a, b, n, s: tuple(np.quantile(np.random.default_rng(s).choice(a, (n, len(a))).mean(1)
                                          - np.random.default_rng(s + 1).choice(b, (n, len(b))).mean(1),
                                          [0.025, 0.975])), "independently"),
    (lambda a, b, n, s: tuple(np.quantile(a - b, [0.025, 0.975])), "too wide"),
    (lambda a, b, n, s: tuple(np.quantile(np.random.default_rng(s).choice(a - b, (n, len(a))).mean(1),
                                          [0.05, 0.95])), "90%"),
    (lambda a, b, n, s: tuple(np.quantile(np.random.default_rng().choice(a - b, (n, len(a))).mean(1),
                                          [0.025, 0.975])), "same seed"),
    (lambda a, b, n, s: (np.mean(a - b) - 1, np.mean(a - b) + 1), "low is"),
])
def test_07_1_wrong_bootstraps_are_named(fn, words):
    with pytest.raises(AssertionError, match=words) as err:
        check("07.1", fn)
    assert_hides_answer(str(err.value))


@pytest.mark.parametrize("fn, words", [
    (lambda res: gain_interval(res, ddof=0), "population std"),
    (lambda res: gain_interval(res, q=1.959964), "normal quantile"),
    (lambda res: gain_interval(res, q=stats.t.ppf(0.95, len(res) - 1)), "one-sided"),
    (lambda res: (lambda d: (np.mean(d), np.std(d, ddof=1)))(
        [r["test_accuracy"]["safs"] - r["test_accuracy"]["magnitude_pruning"] for r in res.values()]), "(mean, std)"),
    (lambda res: tuple(v + 1 for v in gain_interval(res)), "centre is too high"),
])
def test_07_2_wrong_intervals_are_named(fn, words):
    with pytest.raises(AssertionError, match=re.escape(words) if words.startswith("(") else words) as err:
        check("07.2", fn)
    assert_hides_answer(str(err.value))


@pytest.mark.parametrize("answer, words", [
    ("safs - uniform", "mixes two changes"), ("SAFS - MP", "total"), ("safs - magnitude_pruning", "total"),
    ("uniform - magnitude_pruning", "operator effect"), ("banana", "could not read"),
])
def test_07_3_wrong_comparisons_teach(answer, words):
    with pytest.raises(AssertionError, match=words):
        check("07.3", answer, smallest_p=smallest_p, smallest_n=6)


def test_07_3_wilcoxon_sub_questions():
    with pytest.raises(AssertionError, match="one-sided"):
        check("07.3", "stage1 - uniform", smallest_p=lambda n: 1 / 2 ** n, smallest_n=6)
    for n, words in ((5, "too low"), (7, "too high")):
        with pytest.raises(AssertionError, match=words) as err:
            check("07.3", "stage1 - uniform", smallest_p=smallest_p, smallest_n=n)
        assert "6" not in str(err.value).split("Hint")[0]


@pytest.mark.parametrize("name, wrong", [("07.q1", "a"), ("07.q1", "d"), ("07.q2", "c"), ("07.q3", "a"),
                                         ("07.q3", "b")])
def test_quiz_wrong_letters_teach_without_the_letter(name, wrong):
    with pytest.raises(AssertionError) as err:
        check(name, wrong)
    message = str(err.value).split("Hint")[0]
    assert f"not ({wrong})" in message and len(message) > 40
    assert not any(f"({right})" in message for right in "abcd" if right != wrong)
    with pytest.raises(AssertionError, match="one letter"):
        check(name, "z")
