"""The end-of-notebook quizzes of notebooks 01-06 and 08: three auto-checked questions each, named "<nb>.q<k>".

`exercises.check("02.q1", "b")` checks one answer, as for the exercises (07's and 09's quizzes live in
checks_07.py and checks_09.py).
"""
from __future__ import annotations

from typing import Callable

CHECKS: dict[str, tuple[Callable, str]] = {}
