"""Tests for safs_lite.teach.exercises: a check passes a right answer, explains a wrong one (and only then hints), waits
for a missing one without a hint, and tests the idea on inputs the notebooks do not print."""
import math

import numpy as np
import pytest
import torch

from safs_lite.teach.exercises import CHECKS, check, optuna_promotions, reference_decisions


def not_yet(*args):
    raise NotImplementedError


def hill_climbing_decisions(start, candidates, history):
    """A wrong 04.2 answer: ignores the history list (L = 1 whatever L is)."""
    return reference_decisions(start, candidates, 1)


def promotions(scores):
    """06.1 done right: Optuna's rule, a tie with the threshold is promoted."""
    out = []
    for i, s in enumerate(scores):
        seen = sorted(scores[:i + 1])
        out.append(s >= seen[-max(1, len(seen) // 3)])
    return out


def csr_bytes(rows, cols, kept):
    return kept * (4 + 8) + (rows + 1) * 8


def global_keep(weights, sparsity):
    flat = torch.cat([w.flatten().abs() for w in weights.values()])
    keep = flat.numel() - round(sparsity * flat.numel())
    threshold = flat.topk(keep).values.min()
    return {k: int((w.abs() >= threshold).sum()) for k, w in weights.items()}


def test_a_right_answer_prints_correct(capsys):
    check("04.1", lambda f, current, late: f >= current or f >= late)
    check("04.2", reference_decisions)
    check("06.1", promotions)
    check("08.1", csr_bytes)
    check("08.2", global_keep)
    check("03.1", (0.5, 3.0), same_as_relu=lambda a, b: b > 0 and math.isclose(a * b, 1.0))
    check("03.3", math.log(65504))
    assert capsys.readouterr().out.splitlines() == [f"exercise {n}: correct"
                                                    for n in ("04.1", "04.2", "06.1", "08.1", "08.2", "03.1", "03.3")]


def test_a_missing_answer_says_so_without_a_hint(capsys):
    check("04.1", not_yet)
    check("03.1", None)
    check("03.1", (0.5, 3.0))  # the sub-question is still open
    check("06.2", not_yet)  # Optuna never sees the unanswered objective
    out = capsys.readouterr().out
    assert out.splitlines() == ["exercise 04.1: not answered yet", "exercise 03.1: not answered yet",
                                "exercise 03.1: not answered yet (same_as_relu is still None)",
                                "exercise 06.2: not answered yet"]
    assert "Hint" not in out


def test_a_wrong_answer_says_what_is_wrong_then_hints():
    with pytest.raises(AssertionError, match=r"(?s)exercise 04.1 is not right yet: the worked example.*\nHint: "):
        check("04.1", lambda f, current, late: f >= current)  # hill climbing
    with pytest.raises(AssertionError, match="rows and columns are swapped"):
        check("01.2", lambda t, p, k: torch.bincount(k * p + t, minlength=k * k).view(k, k))
    with pytest.raises(AssertionError, match="population std"):
        check("07.2", lambda res: (sum(g := [r["test_accuracy"]["safs"] - r["test_accuracy"]["magnitude_pruning"]
                                             for r in res.values()]) / len(g), np.std(g)))
    with pytest.raises(ValueError, match="valid: 01.1"):
        check("9.9", None)


def test_04_2_catches_an_answer_without_late_acceptance():
    with pytest.raises(AssertionError, match="a late acceptance"):
        check("04.2", hill_climbing_decisions)


def test_06_1_follows_optunas_pruner_and_its_tie_rule():
    stream = [5.0, 5.0, 4.0, 6.0, 6.0, 1.0, 6.0]
    assert optuna_promotions(stream) == promotions(stream)
    with pytest.raises(AssertionError, match="promoted by Optuna"):  # a strict '>' loses the ties
        check("06.1", lambda scores: [s > sorted(scores[:i + 1])[-max(1, (i + 1) // 3)] or i == 0
                                      for i, s in enumerate(scores)])
    with pytest.raises(AssertionError):  # all scores known at once: not how the pruner sees them
        check("06.1", lambda scores: [s >= sorted(scores)[-max(1, len(scores) // 3)] for s in scores])


def test_sub_questions_are_checked():
    with pytest.raises(AssertionError, match="same_as_relu"):  # forgets that beta < 0 flips relu
        check("03.1", (0.5, 3.0), same_as_relu=lambda a, b: math.isclose(a * b, 1.0))
    with pytest.raises(AssertionError, match="conv1_keeps_at_95"):
        check("02.1", lambda w, s: (w.abs().flatten().argsort().argsort() >= round(s * w.numel())).view(w.shape)
              .float(), conv1_keeps_at_95=7)  # 150 - ceil(142.5)
    with pytest.raises(AssertionError, match="float16"):
        check("03.3", 20.0)  # the float32 clamp, not float16's overflow


def test_every_notebook_has_two_or_three_exercises():
    per_notebook = {}
    for name in CHECKS:
        per_notebook.setdefault(name.split(".")[0], []).append(name)
    assert sorted(per_notebook) == ["01", "02", "03", "04", "05", "06", "07", "08", "09"]
    assert all(2 <= len(v) <= 3 for v in per_notebook.values())


def test_09_returns_to_go_and_break_point():
    from safs_lite.rl.policy import break_point

    def returns_to_go(rewards, gamma):
        out, g = [], 0.0
        for r in reversed(rewards):
            g = r + gamma * g
            out.append(g)
        return out[::-1]

    def past_sums(rewards, gamma):  # accumulates forwards: the rewards before step t, not after it
        out, g = [], 0.0
        for r in rewards:
            g = r + gamma * g
            out.append(g)
        return out

    check("09.1", returns_to_go, g0_of_10_steps=returns_to_go([1.0] * 10, 0.99)[0])
    check("09.2", break_point)
    with pytest.raises(AssertionError, match="PAST rewards"):
        check("09.1", past_sums, g0_of_10_steps=9.56)
    with pytest.raises(AssertionError, match="g0_of_10_steps"):  # undiscounted: the episode's length
        check("09.1", returns_to_go, g0_of_10_steps=10)
    with pytest.raises(AssertionError, match=r"(?s)expected 0.6, got 0.7.*Hint"):  # exactly half must count
        check("09.2", lambda ret, dense: min([s for s, r in ret.items() if r < dense / 2], default=None))
    with pytest.raises(AssertionError, match="expected 0.96, got 0.99"):  # the first in dict order, not the lowest
        check("09.2", lambda ret, dense: next((s for s, r in ret.items() if r <= dense / 2), None))
