"""What every notebook's checks share: comparing a number, and telling an answer not given yet."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def _close(got: Any, want: float, tol: float, what: str) -> None:
    assert isinstance(got, (int, float, np.floating, np.integer)) or torch.is_tensor(got), \
        f"{what} should be a number, got {type(got).__name__}"
    assert math.isclose(float(got), want, abs_tol=tol), f"{what}: expected {want:.4g}, got {float(got):.4g}"


def _given(value: Any, name: str) -> None:
    """A sub-question's answer must be given: None counts as not answered yet."""
    if value is None:
        raise NotImplementedError(name)
