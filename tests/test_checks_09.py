"""Notebook 09's checks (safs_lite/teach/checks_09.py): right answers pass, a 2-decimal rounding passes, a wrong
answer fails without showing the expected value, None is "not answered yet", and every sub-question is checked."""
import json

import numpy as np
import pytest
import torch

from safs_lite.rl.policy import break_point
from safs_lite.teach.checks_09 import CHECKS
from safs_lite.teach.exercises import check

G0 = sum(0.99 ** k for k in range(10))  # 9.5617...


def returns_to_go(rewards, gamma):
    out, g = [], 0.0
    for r in reversed(rewards):
        g = r + gamma * g
        out.append(g)
    return out[::-1]


def wrong_last_step(rewards, gamma):  # forgets the last reward
    out = returns_to_go(rewards, gamma)
    return out[:-1] + [0.0]


@pytest.fixture
def sweep_file(tmp_path, monkeypatch):
    """A results file like results/rl/09_cartpole_seeds.json whose median sweep breaks at 0.97 (seed 1 alone: 0.96)."""
    (tmp_path / "rl").mkdir()
    sweep = {"0.9": {"0": 500.0, "1": 500.0, "2": 500.0}, "0.96": {"0": 400.0, "1": 40.0, "2": 300.0},
             "0.97": {"0": 11.0, "1": 300.0, "2": 20.0}, "0.98": {"0": 9.0, "1": 9.0, "2": 9.0}}
    (tmp_path / "rl" / "09_cartpole_seeds.json").write_text(json.dumps({"sweep": sweep, "dense_val": 500.0}))
    monkeypatch.setenv("SAFS_RESULTS", str(tmp_path))
    return 0.97


def assert_hidden(name, answer, hidden, **parts):
    """A wrong answer raises AssertionError and its message shows none of the `hidden` strings."""
    with pytest.raises(AssertionError) as err:
        check(name, answer, **parts)
    msg = str(err.value)
    assert "Hint" in msg
    for h in hidden:
        assert h not in msg, f"{name}'s message shows the expected value {h}: {msg}"
    return msg


def test_every_check_is_registered():
    assert set(CHECKS) == {"09.1", "09.2", "09.q1", "09.q2", "09.q3"}


def test_09_1_right_and_rounded(capsys):
    for g0 in (G0, round(G0, 2), np.float32(G0), torch.tensor(G0), "9.56"):
        check("09.1", returns_to_go, g0_of_10_steps=g0, largest_g_steps="first")
        assert capsys.readouterr().out.strip() == "exercise 09.1: correct"
    check("09.1", lambda r, g: np.array(returns_to_go(r, g)), g0_of_10_steps=9.56, largest_g_steps=" The START ")
    assert "correct" in capsys.readouterr().out


def test_09_1_wrong_answers_hide_the_expected_value():
    msg = assert_hidden("09.1", returns_to_go, ["9.56", "9.562"], g0_of_10_steps=9.6, largest_g_steps="first")
    assert "too high" in msg
    assert "too low" in assert_hidden("09.1", returns_to_go, ["9.56"], g0_of_10_steps=9.5, largest_g_steps="first")
    assert "undiscounted" in assert_hidden("09.1", returns_to_go, ["9.56"], g0_of_10_steps=10, largest_g_steps="first")
    assert "too low" in assert_hidden("09.1", wrong_last_step, [], g0_of_10_steps=9.56, largest_g_steps="first")
    with pytest.raises(AssertionError, match="PAST rewards"):
        check("09.1", lambda r, g: returns_to_go(r[::-1], g)[::-1], g0_of_10_steps=9.56, largest_g_steps="first")


def test_09_1_largest_g_steps_is_checked():
    assert "last" in assert_hidden("09.1", returns_to_go, [], g0_of_10_steps=9.56, largest_g_steps="last")
    assert "middle" in assert_hidden("09.1", returns_to_go, [], g0_of_10_steps=9.56, largest_g_steps="the middle")


def test_09_1_not_answered_yet(capsys):
    check("09.1", None)
    assert capsys.readouterr().out.strip() == "exercise 09.1: not answered yet"
    check("09.1", returns_to_go, g0_of_10_steps=9.56)
    out = capsys.readouterr().out
    assert "not answered yet (largest_g_steps" in out and "Hint" not in out
    check("09.1", returns_to_go, largest_g_steps="first")
    assert "not answered yet (g0_of_10_steps" in capsys.readouterr().out

    def unanswered(rewards, gamma):
        raise NotImplementedError

    check("09.1", unanswered, g0_of_10_steps=None)
    assert "not answered yet" in capsys.readouterr().out


def test_09_2_function_cases():
    check("09.2", break_point, break_on_sweep=None)  # the function alone: right, the sub-question not answered
    msg = assert_hidden("09.2", lambda ret, dense: min([s for s, r in ret.items() if r < dense / 2], default=None),
                        ["expected 0.6", "0.6,", "answer is 0.6"])
    assert "too high" in msg and "exactly half" in msg
    msg = assert_hidden("09.2", lambda ret, dense: next((s for s, r in ret.items() if r <= dense / 2), None),
                        ["0.96"])
    assert "too high" in msg
    msg = assert_hidden("09.2", lambda ret, dense: max([s for s, r in ret.items() if r <= dense / 2], default=None),
                        [])
    assert "too high" in msg
    always = assert_hidden("09.2", lambda ret, dense: min([s for s, r in ret.items() if r <= dense / 2], default=min(ret)),
                           [])
    assert "hidden sweep 4" in always and "no sparsity" in always
    assert "too low" in assert_hidden("09.2", lambda ret, dense: min(ret), [])


def test_09_2_break_on_sweep(sweep_file, capsys):
    for answer in (sweep_file, f"{sweep_file:.2f}", 97, "97%", np.float64(sweep_file)):
        check("09.2", break_point, break_on_sweep=answer)
        assert capsys.readouterr().out.strip() == "exercise 09.2: correct"
    assert "too low" in assert_hidden("09.2", break_point, ["0.97"], break_on_sweep=0.96)  # one seed's point, not the median's
    assert "too high" in assert_hidden("09.2", break_point, ["0.97"], break_on_sweep=0.98)
    check("09.2", break_point)
    assert "not answered yet (break_on_sweep" in capsys.readouterr().out


def test_09_2_break_on_sweep_on_the_shipped_file(capsys):
    from safs_lite.teach.checks_09 import shipped_sweep

    median, dense = shipped_sweep()
    check("09.2", break_point, break_on_sweep=break_point(median, dense))
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("name,right", [("09.q1", "b"), ("09.q2", "c"), ("09.q3", "a")])
def test_quiz(name, right, capsys):
    for answer in (right, right.upper(), f" {right} ", f"({right})"):
        check(name, answer)
        assert capsys.readouterr().out.strip() == f"exercise {name}: correct"
    for wrong in "abcd":
        if wrong != right:
            msg = assert_hidden(name, wrong, [f"({right})", f"answer is {right}"])
            assert f"not ({wrong})" in msg
    with pytest.raises(AssertionError, match="one letter"):
        check(name, "e")
    check(name, None)
    assert capsys.readouterr().out.strip() == f"exercise {name}: not answered yet"
