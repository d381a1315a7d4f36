"""Checks of notebook 07's exercises and quiz (the reproduction and its statistics); `exercises.check` runs them.

Every check computes the right answer itself, on data the notebook does not print (synthetic paired
accuracies drawn here, other numbers of masks), and a wrong answer's message says what is wrong (too high, too
low, which case fails, which mistake it looks like) without the expected value.
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable

import numpy as np
from scipy import stats

from .exercises_base import _given

# ---------------------------------------------------------------- helpers


def _number(value: Any, what: str) -> float:
    """A number from an int, a float, a numpy scalar, a 0-d tensor or array, or a string such as "0.25"."""
    if isinstance(value, bool) or value is None:
        raise AssertionError(f"{what} should be a number, got {value!r}")
    try:
        if hasattr(value, "item") and getattr(value, "size", 1) == 1:
            value = value.item()
        if isinstance(value, str):
            value = value.strip().rstrip("%").strip()
        return float(value)
    except (TypeError, ValueError):
        raise AssertionError(f"{what} should be a number, got {type(value).__name__} {value!r}") from None


def _near(got: float, want: float, rel: float = 0.005, abs_tol: float = 0.006) -> bool:
    """Equal up to rounding to 2 decimals (abs 0.006) or 0.5% of the value."""
    return math.isfinite(got) and abs(got - want) <= max(abs_tol, rel * abs(want))


def _direction(got: float, want: float) -> str:
    return "too high" if got > want else "too low"


def _pair(value: Any, what: str) -> tuple[float, float]:
    if not isinstance(value, (tuple, list, np.ndarray)) or len(value) != 2:
        raise AssertionError(f"{what} should return two numbers (low, high), got {value!r}")
    low, high = (_number(v, what) for v in value)
    return low, high


def _paired_data(n: int, seed: int, shift: float = 1.5, mask_spread: float = 12.0,
                 noise: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic paired accuracies (%) over n masks: a large shared mask effect plus a small method effect."""
    rng = np.random.default_rng(seed)
    mask = 40 + mask_spread * rng.standard_normal(n)           # what each mask allows: shared by both methods
    b = mask + rng.standard_normal(n)
    a = mask + shift + noise * rng.standard_exponential(n) - noise  # skewed differences, mean about `shift`
    return np.round(a, 2), np.round(b, 2)


# ---------------------------------------------------------------- 07.1: a paired bootstrap interval


def _percentile_interval(d: np.ndarray, n_resamples: int, seed: int, q: float = 0.95) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_resamples, d.size))].mean(axis=1)
    return tuple(float(x) for x in np.quantile(means, [(1 - q) / 2, (1 + q) / 2]))


def _paired_bootstrap(fn: Callable) -> None:
    n_resamples = 10_000
    for n, seed in ((12, 71), (8, 72)):
        a, b = _paired_data(n, seed)
        d = a - b
        try:
            got = fn(a.copy(), b.copy(), n_resamples, 7)
        except NotImplementedError:
            raise
        except Exception as err:  # noqa: BLE001 - the student's code: say what it raised
            raise AssertionError(f"your function raised {type(err).__name__}: {err} (called with two numpy arrays "
                                 f"of {n} accuracies, n_resamples={n_resamples}, seed=7)") from None
        low, high = _pair(got, "the function")
        assert low <= high, "low should not exceed high: return (low, high)"
        again = _pair(fn(a.copy(), b.copy(), n_resamples, 7), "the function")
        assert again == (low, high), ("the same seed gave two different intervals: draw the resamples from "
                                      "np.random.default_rng(seed), so a run can be repeated")
        se = d.std(ddof=1) / math.sqrt(n)
        tol = 0.15 * se  # the Monte-Carlo error of a 2.5% quantile of 10,000 resampled means is about 0.03 se
        accepted = [_percentile_interval(d, n_resamples, 11)]
        ci = stats.bootstrap((d,), np.mean, n_resamples=n_resamples, method="BCa",
                             rng=np.random.default_rng(11)).confidence_interval
        accepted.append((float(ci.low), float(ci.high)))
        if any(abs(low - w[0]) <= tol and abs(high - w[1]) <= tol for w in accepted):
            continue
        want_low, want_high = accepted[0]
        width, want_width = high - low, want_high - want_low
        unpaired = np.random.default_rng(5)
        means = (a[unpaired.integers(0, n, (n_resamples, n))].mean(1)
                 - b[unpaired.integers(0, n, (n_resamples, n))].mean(1))
        unpaired_width = float(np.diff(np.quantile(means, [0.025, 0.975]))[0])
        raw_width = float(np.diff(np.quantile(d, [0.025, 0.975]))[0])
        narrow90 = _percentile_interval(d, n_resamples, 11, 0.90)
        if abs(width - unpaired_width) < 0.25 * unpaired_width and width > 2 * want_width:
            raise AssertionError("your interval is far too wide, about as wide as resampling the two methods "
                                 "independently gives: resample the masks (indices), keeping each a_i with its "
                                 "b_i, and take the mean of the differences a_i - b_i")
        if abs(width - raw_width) < 0.3 * raw_width and width > 1.8 * want_width:
            raise AssertionError("your interval is too wide, about the spread of single differences: take the "
                                 "percentiles of the resampled *means*, not of the differences")
        if abs(low - narrow90[0]) <= tol and abs(high - narrow90[1]) <= tol:
            raise AssertionError("your interval is too narrow: that looks like a 90% interval; a 95% interval "
                                 "leaves 2.5% of the resampled means on each side")
        wrong = [f"low is {_direction(low, want_low)}" if abs(low - want_low) > tol else "",
                 f"high is {_direction(high, want_high)}" if abs(high - want_high) > tol else ""]
        raise AssertionError(f"on hidden paired data ({n} masks): " + " and ".join(w for w in wrong if w)
                             + " (allowing for the resampling's own noise)")


# ---------------------------------------------------------------- 07.2: a paired t interval by hand


def _results(n: int, seed: int) -> dict[int, dict]:
    a, b = _paired_data(n, seed, shift=3.0, noise=4.0)
    return {s: {"test_accuracy": {"safs": float(x), "magnitude_pruning": float(y)}} for s, (x, y) in
            enumerate(zip(a, b))}


def _t_interval_by_hand(fn: Callable) -> None:
    for n, seed in ((7, 81), (4, 82)):
        res = _results(n, seed)
        d = np.array([r["test_accuracy"]["safs"] - r["test_accuracy"]["magnitude_pruning"] for r in res.values()])
        got = fn(res)
        low, high = _pair(got, "gain_interval")
        m, s1, s0 = d.mean(), d.std(ddof=1), d.std(ddof=0)
        t = stats.t.ppf(0.975, n - 1)
        want = (m - t * s1 / math.sqrt(n), m + t * s1 / math.sqrt(n))
        if _near(low, want[0]) and _near(high, want[1]):
            continue
        if _near(low, m) and (_near(high, s0) or _near(high, s1)):
            which = "the population std (ddof=0)" if _near(high, s0) else "the sample std"
            raise AssertionError(f"that is (mean, std) with {which}: Table 1's summary of the seeds' spread, not "
                                 "an interval for the mean. Return (low, high) = mean -/+ t * s / sqrt(n)")
        half = (high - low) / 2
        cases = {
            "the population std (ddof=0) in the standard error: the t interval uses the sample std (ddof=1)":
                t * s0 / math.sqrt(n),
            "the normal quantile (1.96): with n masks the t quantile with n - 1 degrees of freedom is larger "
            "(scipy.stats.t.ppf(0.975, n - 1))": 1.959964 * s1 / math.sqrt(n),
            "t * s without dividing by sqrt(n): that is the spread of single masks; the mean's standard error is "
            "s / sqrt(n)": t * s1,
            "the t quantile with n degrees of freedom: the differences' mean uses one, so n - 1 remain":
                stats.t.ppf(0.975, n) * s1 / math.sqrt(n),
            "a one-sided quantile (0.95): a two-sided 95% interval leaves 2.5% on each side":
                stats.t.ppf(0.95, n - 1) * s1 / math.sqrt(n),
        }
        for words, wrong_half in cases.items():
            if _near(half, wrong_half) and _near((low + high) / 2, m):
                raise AssertionError(f"your half-width looks like {words}")
        if not _near((low + high) / 2, m):
            raise AssertionError(f"on hidden runs ({n} seeds) the interval's centre is {_direction((low + high) / 2, m)}"
                                 ": it is the mean of the per-seed differences SAFS - magnitude pruning")
        raise AssertionError(f"on hidden runs ({n} seeds) the interval is {_direction(half, want[1] - m)} wide")


# ---------------------------------------------------------------- 07.3: which comparison isolates the search

_CELL = {"magnitude_pruning": "magnitude_pruning", "magnitudepruning": "magnitude_pruning", "mp": "magnitude_pruning",
         "relu": "magnitude_pruning", "stage1": "stage1", "uniform": "uniform", "uniform_safs": "uniform_safs",
         "uniformsafs": "uniform_safs", "uniform+stage2": "uniform_safs", "safs": "safs", "stage2": "stage2"}
_EFFECT = {"search_without_stage2": ("stage1", "uniform"), "search_with_stage2": ("safs", "uniform_safs"),
           "total": ("safs", "magnitude_pruning"), "operator": ("uniform", "magnitude_pruning"),
           "stage2_on_operator": ("uniform_safs", "uniform"), "stage2_on_relu": ("stage2", "magnitude_pruning"),
           "stage2_on_search": ("safs", "stage1"), "operator_with_stage2": ("uniform_safs", "stage2")}
_RIGHT = ({"stage1", "uniform"}, {"safs", "uniform_safs"})
_WHY_NOT = {
    frozenset({"safs", "uniform"}): "SAFS - uniform mixes two changes: the per-layer operators *and* stage 2 (SAFS "
    "gets stage 2, the uniform baseline the dense hyperparameters). Compare like with like: both sides with the "
    "same fine-tuning",
    frozenset({"safs", "magnitude_pruning"}): "SAFS - MP is the total: leaving ReLU, stage 2 and the per-layer "
    "choice all at once",
    frozenset({"stage1", "magnitude_pruning"}): "stage 1 - MP mixes leaving ReLU with choosing per layer: a single "
    "good operator already leaves ReLU",
    frozenset({"uniform", "magnitude_pruning"}): "uniform - MP is the operator effect: no per-layer search in it",
    frozenset({"safs", "stage1"}): "SAFS - stage 1 is stage 2's effect on the searched operators",
    frozenset({"uniform_safs", "uniform"}): "uniform_safs - uniform is stage 2's effect on the single operator",
    frozenset({"stage2", "magnitude_pruning"}): "stage 2 - MP is stage 2's effect on ReLU",
    frozenset({"safs", "stage2"}): "SAFS - stage 2 mixes leaving ReLU with choosing per layer",
    frozenset({"uniform_safs", "stage2"}): "uniform_safs - stage 2 is the single operator's effect, stage 2 on both",
}


def _comparison(value: Any) -> frozenset:
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, str) for v in value):
        parts = list(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace("−", "-").replace("–", "-")
        text = re.sub(r"\s+", "", text.replace("stage 2", "stage2").replace("stage 1", "stage1"))
        if text in _EFFECT:
            parts = list(_EFFECT[text])
        else:
            parts = text.split("-")
    else:
        raise AssertionError("give the comparison as a string such as 'a - b' (cells: magnitude_pruning, stage2, "
                             "uniform, uniform_safs, stage1, safs)")
    cells = [_CELL.get(re.sub(r"\s+", "", p.lower()).replace("-", "_")) for p in parts]
    if len(cells) != 2 or None in cells:
        raise AssertionError(f"could not read {value!r} as a difference of two of the six cells (magnitude_pruning, "
                             "stage2, uniform, uniform_safs, stage1, safs), e.g. 'stage1 - magnitude_pruning'")
    return frozenset(cells)


def _isolate_search(answer, smallest_p: Callable | None = None, smallest_n=None) -> None:
    answers = answer if isinstance(answer, (list, set)) and not (len(answer) == 2 and all(
        isinstance(a, str) and a.strip().lower() in _CELL for a in answer)) else [answer]
    for one in answers:
        pair = _comparison(one)
        if set(pair) not in _RIGHT:
            raise AssertionError(f"{one!r}: {_WHY_NOT.get(pair, 'those two cells differ in more than the per-layer choice')}"
                                 ". The per-layer search is isolated only where both sides share the fine-tuning "
                                 "and only the operators differ (one for every layer against one per layer)")
    _given(smallest_p, "smallest_p")
    assert callable(smallest_p), "smallest_p should be a function of n (the number of masks)"
    for n in (3, 4, 7, 10, 12):
        want = float(stats.wilcoxon(np.arange(1.0, n + 1), alternative="two-sided", method="exact").pvalue)
        got = _number(smallest_p(n), f"smallest_p({n})")
        if _near(got, want, rel=0.005, abs_tol=0.0):
            continue
        if _near(got, want / 2, rel=0.005, abs_tol=0.0):
            raise AssertionError(f"smallest_p({n}) is the one-sided p: the two-sided test counts all-positive and "
                                 "all-negative outcomes")
        raise AssertionError(f"smallest_p({n}) is {_direction(got, want)}: with no ties, every one of the 2^n sign "
                             "patterns is equally likely under the null; which patterns are as extreme as all "
                             "differences positive, two-sided?")
    _given(smallest_n, "smallest_n")
    n = _number(smallest_n, "smallest_n")
    want_n = next(k for k in range(1, 30) if 2 / 2 ** k < 0.05)
    assert n == int(n), "smallest_n should be a whole number of masks"
    assert int(n) == want_n, (f"smallest_n is {_direction(n, want_n)}: find the first n whose smallest two-sided p "
                              "is below 0.05")


# ---------------------------------------------------------------- quiz 07.q1-07.q3


def _letter(value: Any, options: str) -> str:
    text = str(value).strip().lower().strip("().[] ")
    assert len(text) == 1 and text in options, f"answer with one letter, one of {', '.join(options)} (got {value!r})"
    return text


def _paper_setting_effects() -> dict:
    from ..study.factorial import PATH, effects, load_cells

    cells = load_cells(30)
    cells = cells[cells["setting"] == "99% layerwise (cpu)"]
    return effects(cells, n_resamples=200).set_index("effect").loc[[*PATH, "total"]].to_dict("index")


def _q1(answer) -> None:
    got = _letter(answer, "abcd")
    eff = _paper_setting_effects()
    letter = {"search_with_stage2": "a", "stage2_on_operator": "b", "operator": "c"}
    want = "d" if eff["total"]["t_low"] <= 0 else letter[max(letter, key=lambda k: eff[k]["mean"])]
    why = {"a": "the per-layer search adds the smallest step of the three at the paper's setting, and its interval "
                "contains 0: read the waterfall's third bar",
           "b": "stage 2 adds a little, but look at the height of the waterfall's first bar",
           "c": "look again at the heights of the three steps in the waterfall",
           "d": "SAFS - MP's interval at the paper's setting lies above 0: the gain is not noise"}
    assert got == want, f"not ({got}): {why[got]}"


def _q2(answer) -> None:
    got = _letter(answer, "abcd")
    why = {"a": "Holm changes no p-value's bias; it guards a whole family of tests against false claims",
           "c": "Holm adjusts p-values, not intervals, and it makes claims harder, not easier",
           "d": "the exploratory comparisons use the same masks; what matters is how many tests are read"}
    assert got == "b", f"not ({got}): {why.get(got, '')}"


def _q3(answer) -> None:
    from statsmodels.stats.weightstats import ttost_paired

    from ..study.factorial import load_cells, load_family, wide

    got = _letter(answer, "abcd")
    family = load_family()
    table = wide(load_cells(30)).loc["99% layerwise (cpu)"][["safs", "uniform_safs"]].dropna()
    d = (table["safs"] - table["uniform_safs"]).to_numpy(float)
    low, high = stats.t.interval(0.95, d.size - 1, loc=d.mean(), scale=stats.sem(d))
    margin = family["equivalence"]["margin"]
    equivalent = ttost_paired(table["safs"].to_numpy(float), table["uniform_safs"].to_numpy(float),
                              -margin, margin)[0] < family["alpha"]
    want = "b" if equivalent else "d" if high < 0 else "c"
    why = {"a": "an interval that contains 0 does not show that the effect is 0: absence of evidence is not "
                "evidence of absence",
           "b": "equivalence within the margin needs its own test (TOST), and here it is not significant",
           "c": "re-read the interval and the equivalence test's result",
           "d": "the interval contains 0, so a loss is not shown either"}
    assert got == want, f"not ({got}): {why[got]}"


CHECKS: dict[str, tuple[Callable, str]] = {
    "07.1": (_paired_bootstrap, "resample the masks' indices with replacement n_resamples times, take the mean of "
                                "a - b over each resample, and the 2.5% and 97.5% percentiles of those means"),
    "07.2": (_t_interval_by_hand, "d = SAFS - MP per seed; mean(d) -/+ t.ppf(0.975, n - 1) * d.std(ddof=1) / sqrt(n)"),
    "07.3": (_isolate_search, "a comparison isolates one change when its two cells differ in that change only; "
                              "for the Wilcoxon test, count the sign patterns at least as extreme as all-positive"),
    "07.q1": (_q1, "the waterfall (MP -> single operator -> + stage 2 -> per-layer search) at the paper's setting"),
    "07.q2": (_q2, "at alpha 0.05, how many false positives do 20 tests of true null hypotheses give on average?"),
    "07.q3": (_q3, "an interval containing 0 and an equivalence test are two different questions"),
}
