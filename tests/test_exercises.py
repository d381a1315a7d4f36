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
    check("04.2", reference_decisions, late_acceptance_step=2)
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
    check("04.2", reference_decisions)  # the function is right, its late-acceptance step not given yet
    check("06.2", not_yet)  # Optuna never sees the unanswered objective
    out = capsys.readouterr().out
    assert out.splitlines() == ["exercise 04.1: not answered yet", "exercise 03.1: not answered yet",
                                "exercise 03.1: not answered yet (same_as_relu is still None)",
                                "exercise 04.2: not answered yet (late_acceptance_step is still None)",
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
    with pytest.raises(AssertionError, match="by Optuna"):  # a strict '>' loses the ties
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
        if ".q" not in name:  # the quizzes are counted in test_quiz.py
            per_notebook.setdefault(name.split(".")[0], []).append(name)
    assert sorted(per_notebook) == ["01", "02", "03", "04", "05", "06", "07", "08", "09"]
    assert all(2 <= len(v) <= 3 for v in per_notebook.values())


def _message(name, answer, **parts):
    with pytest.raises(AssertionError) as err:
        check(name, answer, **parts)
    return str(err.value)


def test_a_wrong_number_says_too_high_or_too_low_never_the_expected_value():
    exact = math.log(65504)  # 03.3: where float16's naive symexp overflows (about 11.09)
    for wrong, direction in ((12.5, "too high"), (9.0, "too low"), ("20", "too high")):
        msg = _message("03.3", wrong)
        assert direction in msg and "11.0" not in msg and "11.1" not in msg and "expected" not in msg
    # 03.1: the tanh scales (alpha 0.5, slope alpha * beta 1.5)
    msg = _message("03.1", (0.8, 3.0), same_as_relu=lambda a, b: b > 0 and math.isclose(a * b, 1.0))
    assert "too high" in msg and "0.5 " not in msg.split("Hint")[0]
    # 01.1: counts per layer say too many / too few, not the right count
    msg = _message("01.1", lambda m: {n: l.weight.numel() + l.bias.numel() for n, l in m.named_children()
                                      if isinstance(l, (torch.nn.Conv2d, torch.nn.Linear))})
    assert "too many" in msg and "150" not in msg and "2400" not in msg
    # 02.2: the ceiling is compared, not printed
    msg = _message("02.2", lambda connected, labels: 100.0)
    assert "too high" in msg and "expected" not in msg
    # 08.1 and 06.3: counts
    msg = _message("08.1", lambda rows, cols, kept: kept * 4)
    assert "too low" in msg
    # 04.2: the step that is wrong, not the right list
    msg = _message("04.2", hill_climbing_decisions)
    assert "step" in msg and "True" not in msg and "expected" not in msg
    msg = _message("04.2", reference_decisions, late_acceptance_step=3)
    assert "late_acceptance_step = 3" in msg and "= 2" not in msg


def test_a_number_rounded_to_two_decimals_and_obvious_types_pass(capsys):
    exact = math.log(65504)
    check("03.3", round(exact, 2))
    check("03.3", np.float32(exact))
    check("03.3", torch.tensor(exact))
    check("03.3", f" {exact:.2f} ")
    check("03.1", ("0.50", np.float64(3.0)), same_as_relu=lambda a, b: b > 0 and math.isclose(a * b, 1.0))
    check("02.1", lambda w, s: (w.abs().flatten().argsort().argsort() >= round(s * w.numel())).view(w.shape).float(),
          conv1_keeps_at_95="8")
    check("02.1", lambda w, s: (w.abs().flatten().argsort().argsort() >= round(s * w.numel())).view(w.shape).float(),
          conv1_keeps_at_95=torch.tensor(8))
    check("04.2", reference_decisions, late_acceptance_step="step 2")
    check("04.2", reference_decisions, late_acceptance_step=np.int64(2))
    check("08.1", lambda rows, cols, kept: str(csr_bytes(rows, cols, kept)))
    check("05.2", lambda lr, wd, m, steps: round((1 - lr * wd / (1 - m)) ** steps, 2))
    out = capsys.readouterr().out.splitlines()
    assert out and all(line.endswith(": correct") for line in out), out


def test_close_keeps_its_signature_for_the_other_notebooks_checks():
    from safs_lite.teach.exercises_base import _close, _given

    _close(1.004, 1.0, 1e-6, "x")  # a 2-decimal rounding
    _close(np.float32(2.0), 2.0, 0.0, "x")
    with pytest.raises(AssertionError, match="x: 1.1 is too high") as err:
        _close(1.1, 1.0, 0.01, "x")
    assert "1.0" not in str(err.value).replace("1.1", "")
    with pytest.raises(AssertionError, match="should be a number"):
        _close("ten", 1.0, 0.01, "x")
    with pytest.raises(NotImplementedError):
        _given(None, "part")
