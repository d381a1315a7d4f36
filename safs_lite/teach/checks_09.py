"""Checks of notebook 09's exercises and quiz (the sparse RL policy); `exercises.check` runs them.

A wrong answer says which case fails and whether the number is too high or too low, never the expected value.
A sub-question still None counts as not answered yet (after the parts that are given have been checked).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..paths import results_dir
from .exercises_base import _missing, _number, _quiz

# A number rounded to 2 decimals passes: |answer - exact| <= 0.005 (plus float slack).
ROUNDED_2 = 0.005 + 1e-9
SEEDS_FILE = "rl/09_cartpole_seeds.json"  # benchmarks/rl_seeds_09.py writes it; notebook 09 reads it


def _near(got: Any, want: float, what: str, tol: float = ROUNDED_2) -> None:
    """`got` within `tol` of `want`; else say too high or too low (not the expected value)."""
    x = _number(got, what)
    if not math.isclose(x, want, abs_tol=tol):
        raise AssertionError(f"{what}: {x:g} is too {'high' if x > want else 'low'}")


# ---------------------------------------------------------------- 09.1: returns-to-go


def _sums_backwards(rewards: list[float], gamma: float) -> list[float]:
    out, run = [], 0.0
    for r in reversed(rewards):
        run = r + gamma * run
        out.append(run)
    return out[::-1]


def _as_list(got: Any) -> list[float]:
    if hasattr(got, "detach"):
        got = got.detach().cpu().numpy()
    if hasattr(got, "tolist"):
        got = got.tolist()
    assert isinstance(got, (list, tuple)), f"return a list of numbers (one G_t per step), got {type(got).__name__}"
    return [_number(x, "each G_t") for x in got]


FIRST = {"first", "start", "beginning", "early", "earliest", "earlier", "0"}
LAST = {"last", "end", "late", "latest", "later", "final"}


def _returns_to_go(fn: Callable, g0_of_10_steps: Any = None, largest_g_steps: Any = None) -> None:
    g = np.random.default_rng(9)
    for n, gamma in ((1, 0.99), (5, 0.9), (40, 0.99), (12, 1.0), (7, 0.0)):
        rewards = [float(r) for r in g.normal(1.0, 1.0, n).round(2)]
        want = _sums_backwards(rewards, gamma)
        got = _as_list(fn(list(rewards), gamma))
        assert len(got) == n, f"{n} rewards give {n} returns, one per step; got {len(got)}"
        if n > 1 and gamma not in (0.0, 1.0) and np.allclose(got, [sum(gamma ** k * r for k, r in
                                                                     enumerate(rewards[:t + 1][::-1]))
                                                                 for t in range(n)]):
            raise AssertionError("those are discounted sums of the PAST rewards; G_t sums the rewards from step t on")
        bad = [t for t in range(n) if not math.isclose(got[t], want[t], rel_tol=1e-9, abs_tol=1e-9)]
        if bad:
            t = bad[0]
            raise AssertionError(f"a hidden episode of {n} rewards at gamma {gamma}: G_{t} is too "
                                 f"{'high' if got[t] > want[t] else 'low'} (the first step that is wrong"
                                 + (", the last step: G there is its own reward" if t == n - 1 else "") + ")")
    if g0_of_10_steps is not None:
        g0 = _sums_backwards([1.0] * 10, 0.99)[0]
        x = _number(g0_of_10_steps, "g0_of_10_steps")
        if math.isclose(x, 10.0):
            raise AssertionError("g0_of_10_steps = 10 is the undiscounted sum (the episode's length); discount it")
        _near(x, g0, "g0_of_10_steps (G_0 of 10 rewards of 1 at gamma 0.99)")
    if largest_g_steps is not None:
        words = set(re.findall(r"[a-z0-9]+", str(largest_g_steps).strip().lower()))
        if words & LAST:
            raise AssertionError("largest_g_steps: not the last steps: near the end G_t sums only the few rewards left")
        if "middle" in words:
            raise AssertionError("largest_g_steps: not the middle: every reward is 1, so the more steps remain, the "
                                 "larger G_t")
        assert words & FIRST, (f"largest_g_steps: answer 'first' or 'last' (the steps at the start or at the end of "
                               f"the episode); got {largest_g_steps!r}")
    _missing({"g0_of_10_steps": g0_of_10_steps, "largest_g_steps": largest_g_steps})


# ---------------------------------------------------------------- 09.2: the breaking point


def _sparsity(value: Any, what: str) -> float:
    x = _number(value, what)
    return x / 100 if x > 1 else x  # 96 or "96%" means 0.96


def shipped_sweep(path: str | None = None) -> tuple[dict[float, float], float]:
    """(sparsity -> median fine-tuned validation return over the sweep seeds, dense validation return) of the
    committed results file the notebook reads."""
    res = json.loads((results_dir() / SEEDS_FILE if path is None else Path(path)).read_text())
    return {float(s): float(np.median(list(v.values()))) for s, v in res["sweep"].items()}, float(res["dense_val"])


def _break_point(fn: Callable, break_on_sweep: Any = None) -> None:
    cases = (({0.8: 500.0, 0.9: 480.0, 0.95: 260.0, 0.97: 120.0}, 500.0, 0.97),
             ({0.99: 9.4, 0.9: 500.0, 0.96: 40.0, 0.98: 300.0}, 500.0, 0.96),  # any order; non-monotone
             ({0.5: 100.0, 0.6: 50.0, 0.7: 10.0}, 100.0, 0.6),  # exactly half counts
             ({0.9: 300.0, 0.95: 260.0}, 500.0, None))  # never broken
    for k, (returns, dense, want) in enumerate(cases, 1):
        got = fn(dict(returns), dense)
        case = f"hidden sweep {k} of {len(cases)} (dense {dense:g})"
        if want is None:
            assert got is None, (f"{case}: you returned {got!r}, but no sparsity there is at or below half the "
                                 "dense return")
            continue
        assert got is not None, f"{case}: you returned None, but some sparsity there is at or below half"
        x = _sparsity(got, "the breaking point")
        if not math.isclose(x, want):
            if x > want:
                raise AssertionError(f"{case}: you returned {x:g}, too high: a lower sparsity is already at or below "
                                     "half the dense return (exactly half counts; the dict is not sorted)")
            raise AssertionError(f"{case}: you returned {x:g}, too low: that sparsity is above half the dense return")
    if break_on_sweep is not None:
        median, dense = shipped_sweep()
        from ..rl.policy import break_point
        want = break_point(median, dense)
        x = _sparsity(break_on_sweep, "break_on_sweep")
        if not math.isclose(x, want, abs_tol=1e-6):
            raise AssertionError(f"break_on_sweep: {x:g} is too {'high' if x > want else 'low'}; run your function "
                                 "on the MEDIAN fine-tuned returns over the sweep's seeds")
    _missing({"break_on_sweep": break_on_sweep})


# ---------------------------------------------------------------- the quiz


_Q1 = _quiz("b", {"a": "with n pairs the smallest two-sided Wilcoxon p is 2 / 2**n; work it out for n = 5",
                  "c": "0.031 is one-sided (1 / 2**5); the kit reports the two-sided p",
                  "d": "even the most lopsided 5 seeds (all wins) cannot go that low"})
_Q2 = _quiz("c", {"a": "the median is not faster: every seed's fine-tune still runs",
                  "b": "the validation episodes are the same for every seed; what changes is the fine-tune",
                  "d": "the median does not make SAFS look better; it makes the breaking point a property of the "
                       "mask, not of one lucky or unlucky fine-tune"})
_Q3 = _quiz("a", {"b": "they were trainable (stage 2 turns them on); seed 0's moved a lot",
                  "c": "scales that never move cannot tell you that 1 is best; they only tell you the budget was "
                       "too small to try anything else",
                  "d": "the operators were searched in stage 1; alpha/beta are stage 2's, trained with their own rate"})

CHECKS: dict[str, tuple[Callable, str]] = {
    "09.1": (_returns_to_go, ("go backwards from the last step: G_t = r_t + gamma * G_(t+1), with G after the end = "
                              "0; with a reward of 1 per step, G_t counts (discounted) the steps left")),
    "09.2": (_break_point, ("keep the sparsities whose return is <= dense / 2 (ties count), then take the smallest; "
                            "the dict's order is not the sparsities' order")),
    "09.q1": (_Q1, "a paired two-sided test over n seeds has only 2**n sign patterns"),
    "09.q2": (_Q2, "cell 'Where magnitude pruning breaks': look at the per-seed columns at the breaking point"),
    "09.q3": (_Q3, "Adam moves a parameter by about its learning rate per update"),
}
