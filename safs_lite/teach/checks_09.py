"""Checks of notebook 09's exercises (the sparse RL policy); `exercises.check` runs them."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .exercises_base import _close, _given

# ---------------------------------------------------------------- 09: sparse RL policy


def _returns_to_go(fn: Callable, g0_of_10_steps: float | None = None) -> None:
    _given(g0_of_10_steps, "g0_of_10_steps")
    g = np.random.default_rng(9)
    for n, gamma in ((1, 0.99), (5, 0.9), (40, 0.99), (12, 1.0), (7, 0.0)):
        rewards = [float(r) for r in g.normal(1.0, 1.0, n).round(2)]
        want, run = [], 0.0
        for r in reversed(rewards):
            run = r + gamma * run
            want.append(run)
        want = want[::-1]
        got = fn(list(rewards), gamma)
        got = [float(x) for x in (got.tolist() if hasattr(got, "tolist") else got)]
        assert len(got) == n, f"{n} rewards give {n} returns, one per step; got {len(got)}"
        if n > 1 and gamma not in (0.0, 1.0) and np.allclose(got, [sum(gamma ** k * r for k, r in
                                                                     enumerate(rewards[:t + 1][::-1]))
                                                                 for t in range(n)]):
            raise AssertionError("those are discounted sums of the PAST rewards; G_t sums the rewards from step t on")
        assert np.allclose(got, want, atol=1e-9), (f"rewards {rewards[:4]}..., gamma {gamma}: expected "
                                                   f"{[round(x, 4) for x in want[:3]]}..., got {[round(x, 4) for x in got[:3]]}...")
    _close(g0_of_10_steps, sum(0.99 ** k for k in range(10)), 1e-3, "g0_of_10_steps (G_0 of 10 rewards of 1 at gamma 0.99)")


def _break_point(fn: Callable) -> None:
    cases = (({0.8: 500.0, 0.9: 480.0, 0.95: 260.0, 0.97: 120.0}, 500.0, 0.97),
             ({0.99: 9.4, 0.9: 500.0, 0.96: 40.0, 0.98: 300.0}, 500.0, 0.96),  # any order; non-monotone
             ({0.5: 100.0, 0.6: 50.0, 0.7: 10.0}, 100.0, 0.6),  # exactly half counts
             ({0.9: 300.0, 0.95: 260.0}, 500.0, None))  # never broken
    for returns, dense, want in cases:
        got = fn(dict(returns), dense)
        assert (got is None) == (want is None), (f"sweep {returns}, dense {dense}: expected {want}, got {got} "
                                                 "(None when no sparsity is at or below half the dense return)")
        assert want is None or math.isclose(float(got), want), f"sweep {returns}, dense {dense}: expected {want}, got {got}"


CHECKS: dict[str, tuple[Callable, str]] = {
    "09.1": (_returns_to_go, "go backwards from the last step: G_t = r_t + gamma * G_(t+1), with G after the end = 0"),
    "09.2": (_break_point, "keep the sparsities whose return is <= dense / 2 (ties count), then take the smallest; the "
                           "dict's order is not the sparsities' order"),
}
