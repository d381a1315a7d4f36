"""benchmarks/engine_agreement.py's verdict: within the seed-to-seed spread or not, and the collapse note."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from safs_lite import SAFSConfig

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("engine_agreement", REPO / "benchmarks" / "engine_agreement.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _pairs(acc: dict[tuple[int, str], float]) -> dict:
    """Per seed and engine a results stub whose every stage scores acc[seed, engine]."""
    stages = ("magnitude_pruning", "stage1", "stage2", "safs")
    return {s: {e: {"results": {"test_accuracy": {k: acc[s, e] for k in stages}}, "cpu": 10.0 if e == "dense" else 4.0}
                for e in ("dense", "compact")} for s in (0, 1, 2)}


def test_verdict_compares_each_seeds_difference_with_the_pooled_spread():
    bench, cfg = _bench(), SAFSConfig(preset="smoke")
    dense = {0: {"test_accuracy": 97.0}, 1: {"test_accuracy": 97.5}, 2: {"test_accuracy": 98.0}}
    close = {(0, "dense"): 30.0, (0, "compact"): 30.5, (1, "dense"): 40.0, (1, "compact"): 39.0,
             (2, "dense"): 50.0, (2, "compact"): 50.2}  # seed std about 10, differences at most 1
    text, within = bench.report(cfg, [0, 1, 2], dense, _pairs(close), chance=11.35)
    assert within is True and "too small" not in text
    far = {**close, (2, "compact"): 75.0}  # one seed 25 points apart: beyond the spread
    text, within = bench.report(cfg, [0, 1, 2], dense, _pairs(far), chance=11.35)
    assert within is False
    edge = {**close, (2, "compact"): 50.0 + 9.9}  # a difference of 9.9, under the pooled std (12.6), still agrees
    assert bench.report(cfg, [0, 1, 2], dense, _pairs(edge), chance=11.35)[1] is True


def test_stages_that_learn_nothing_give_no_verdict_and_do_not_decide_it():
    bench, cfg = _bench(), SAFSConfig(preset="smoke")
    dense = {s: {"test_accuracy": 97.0} for s in (0, 1, 2)}
    flat = {(s, e): 11.35 for s in (0, 1, 2) for e in ("dense", "compact")}
    text, within = bench.report(cfg, [0, 1, 2], dense, _pairs(flat), chance=11.35)
    assert within is None and "Verdict: none" in text  # identical chance-level scores are no evidence of agreement
    # one engine at chance, the other learning: a disagreement, whatever the flat stages say
    apart = {(s, e): 11.35 if e == "dense" else 60.0 + s for s in (0, 1, 2) for e in ("dense", "compact")}
    _, within = bench.report(cfg, [0, 1, 2], dense, _pairs(apart), chance=11.35)
    assert within is False
