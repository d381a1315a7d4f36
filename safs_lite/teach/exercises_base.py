"""What every notebook's checks share: reading a number, comparing it, and telling an answer not given yet.

A wrong answer says which case fails and whether a number is too high or too low, never the expected value,
so a check can be run again and again without giving the answer away. A number rounded to 2 decimals passes.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

# A number rounded to 2 decimals passes: |answer - exact| <= 0.005 (plus float slack).
ROUNDED_2 = 0.005 + 1e-9


def _number(value: Any, what: str) -> float:
    """`value` as a float: ints, floats, numpy scalars, one-element tensors/arrays and numeric strings ("0.5",
    " 12 ", "98.5%")."""
    if isinstance(value, bool) or value is None:
        raise AssertionError(f"{what} should be a number, got {value!r}")
    if callable(getattr(value, "numel", None)) or isinstance(value, (np.ndarray, np.generic)):  # tensor / numpy
        size = value.numel() if callable(getattr(value, "numel", None)) else value.size
        assert size == 1, f"{what} should be one number, got {size} values"
        value = value.item()
    if isinstance(value, str):
        value = value.strip().rstrip("%").strip()
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise AssertionError(f"{what} should be a number, got {type(value).__name__} {value!r}") from None
    assert math.isfinite(out), f"{what} should be a finite number, got {out}"
    return out


def _integer(value: Any, what: str) -> int:
    """`value` as an int (8, 8.0, "8", np.int64(8), a 0-d tensor); a non-whole number fails."""
    x = _number(value, what)
    assert x == round(x), f"{what} should be a whole number, got {x:g}"
    return int(round(x))


def _close(got: Any, want: float, tol: float, what: str) -> None:
    """`got` within `tol` of `want`, or `want` rounded to 2 decimals; else say too high or too low.

    The message never holds `want`: it names the case (`what`) and the direction only.
    """
    x = _number(got, what)
    if not math.isclose(x, float(want), abs_tol=max(float(tol), ROUNDED_2)):
        raise AssertionError(f"{what}: {x:.4g} is too {'high' if x > want else 'low'}")


def _more_or_less(got: int | float, want: int | float, what: str, more: str = "too many", less: str = "too few") -> None:
    """Exact comparison of two counts; the message says `more` or `less`, never `want`."""
    if got != want:
        raise AssertionError(f"{what}: {got:g} is {more if got > want else less}")


def _given(value: Any, name: str) -> None:
    """A sub-question's answer must be given: None counts as not answered yet."""
    if value is None:
        raise NotImplementedError(name)


def _missing(parts: dict[str, Any]) -> None:
    """Raise NotImplementedError naming the first sub-question still None (not answered yet)."""
    for name, value in parts.items():
        _given(value, name)


def _letter(answer: Any, options: str) -> str:
    """A multiple-choice answer as one lower-case letter: "B", " b ", "(b)" and "b." all read as "b"."""
    got = str(answer).strip().strip("()[].").strip().lower()
    assert len(got) == 1 and got in options, f"answer with one letter of {', '.join(options)}; got {answer!r}"
    return got


def _quiz(right: str, wrong: dict[str, str]) -> Callable[[Any], None]:
    """A multiple-choice check: `right` is the right letter, `wrong` says for each other letter why it is not."""
    options = "".join(sorted(set(wrong) | {right}))

    def check(answer: Any) -> None:
        got = _letter(answer, options)
        if got != right:
            raise AssertionError(f"not ({got}): {wrong[got]}")
    return check
