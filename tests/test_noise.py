"""safs_lite.study.noise: within-mask against between-mask spread of the retrained finals, on files written here."""
from __future__ import annotations

import json
import math

import pytest

from safs_lite.study import noise

RUN = "safs-lenet5-mnist-0.99-global-sweep-s{}"


def _write(root, seed, values, engine=None, tseed=None, errors=()):
    """A finals file of mask `seed` holding MP and SAFS at 30 epochs (as tools/retrain_finals.py writes them)."""
    folder = root / "evidence" / "finals"
    folder.mkdir(parents=True, exist_ok=True)
    tag = "" if engine is None else f"-{engine}-t{tseed}"
    cells = {c: ({"error": "RuntimeError: diverged"} if c in errors else {"test_accuracy": v})
             for c, v in values.items()}
    rec = {"run": RUN.format(seed), "epochs": 30, "cells": cells}
    if engine is not None:
        rec.update(engine=engine, train_seed=tseed)
    (folder / f"{RUN.format(seed)}-e30{tag}.json").write_text(json.dumps(rec))


@pytest.fixture
def root(tmp_path):
    # mask 0: MP 70, 72, 74 over three replicates (variance 4); mask 1: MP 80, 80, 80 (variance 0)
    _write(tmp_path, 0, {"magnitude_pruning": 70, "safs": 75})
    _write(tmp_path, 0, {"magnitude_pruning": 72, "safs": 75}, "compact", 1000)
    _write(tmp_path, 0, {"magnitude_pruning": 74, "safs": 75}, "dense", 0)
    _write(tmp_path, 1, {"magnitude_pruning": 80, "safs": 90})
    _write(tmp_path, 1, {"magnitude_pruning": 80, "safs": 86}, "compact", 1000)
    _write(tmp_path, 1, {"magnitude_pruning": 80, "safs": 88}, "dense", 1, errors=("magnitude_pruning",))
    _write(tmp_path, 2, {"magnitude_pruning": 60, "safs": 61})  # one replicate: between-mask only
    return tmp_path


def test_replicates_are_read_with_their_engine_and_train_seed(root):
    reps = noise.load_replicates(30, root)
    assert len(reps) == 14
    own = reps[(reps["seed"] == 0) & (reps["file"].str.endswith("-e30.json"))]
    assert set(own["engine"]) == {"compact"} and set(own["train_seed"]) == {0}
    assert set(reps[reps["file"].str.contains("dense")]["train_seed"]) == {0, 1}
    failed = reps[reps["test_accuracy"].isna()]
    assert len(failed) == 1 and "diverged" in failed["note"].iloc[0]


def test_within_mask_sd_is_pooled_over_masks_with_replicates_and_failures_are_counted(root):
    sp = noise.spread(noise.load_replicates(30, root)).set_index("cell")
    mp = sp.loc["magnitude_pruning"]
    # mask 0 variance 4, mask 1 (80, 80; the dense retrain failed) variance 0: pooled sqrt(2); mask 2 has one value
    assert mp["masks"] == 2 and mp["failed"] == 1
    assert mp["within_sd"] == pytest.approx(math.sqrt(2))
    # the mask means 72, 80, 60 spread by their own SD
    assert mp["between_sd"] == pytest.approx(float(__import__("numpy").std([72, 80, 60], ddof=1)))
    # SAFS - MP paired within each replicate: mask 0 gives 5, 3, 1 (variance 4); mask 1 gives 10, 6 (variance 8)
    diff = sp.loc["SAFS - MP"]
    assert diff["within_sd"] == pytest.approx(math.sqrt(6))
    assert diff["failed"] == 1


def test_engine_shift_pairs_the_same_mask_and_train_seed(root):
    shift = noise.engine_shift(noise.load_replicates(30, root)).set_index("cell")
    # dense against the run's own compact at its own train seed: mask 0 MP 74 - 70 = +4; mask 1's dense MP failed
    assert shift.loc["magnitude_pruning", "pairs"] == 1 and shift.loc["magnitude_pruning", "mean"] == pytest.approx(4)
    assert shift.loc["safs", "pairs"] == 2 and shift.loc["safs", "mean"] == pytest.approx((0 + -2) / 2)


def test_the_report_says_when_nothing_is_replicated(tmp_path):
    _write(tmp_path, 0, {"magnitude_pruning": 70, "safs": 75})
    assert "No mask has two replicates yet" in noise.report(30, tmp_path)
    assert "no retrained finals" in noise.report(30, tmp_path / "elsewhere")


def test_the_command_reads_the_committed_finals(capsys):
    assert noise.main([]) == 0  # results/evidence/finals as committed (no --write: nothing tracked is touched)
    out = capsys.readouterr().out
    assert out.startswith("Training noise at 30-epoch finals")
