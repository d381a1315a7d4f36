"""tools/hpo_transfer.py: the transfer of stage 2's HPO pick to the final budget, read from trial files."""
from __future__ import annotations

import json
import math

import pytest



@pytest.fixture(scope="module")
def tool(load_script):
    return load_script("tools/hpo_transfer.py")


def _trial(score, val, test, state="COMPLETE"):
    return {"params": {}, "state": state, "hpo_score": score, "final": {"val_accuracy": val, "test_accuracy": test}}


def _write(folder, name, best, trials, study_trials=None):
    rec = {"run": name, "stage": "safs", "epochs": 30, "reproduced": True, "best_trial": best,
           "trials": {str(k): v for k, v in enumerate(trials)}, "study_trials": study_trials or len(trials)}
    (folder / f"{name}-safs-e30.json").write_text(json.dumps(rec))


def test_the_pick_that_wins_the_short_race_and_loses_the_long_one_shows_as_regret(tool, tmp_path):
    # HPO scores rank trial 0 first, but at 30 epochs trial 2 (third by HPO score) is best on validation
    _write(tmp_path, "a", 0, [_trial(60, 70, 69), _trial(55, 72, 71), _trial(50, 80, 79),
                              _trial(40, 75, 74), _trial(None, 90, 90, state="PRUNED")])
    (row,) = tool.summarise(tmp_path)
    assert row["completed"] == 4 and row["trials"] == 5
    assert row["rho"] == pytest.approx(-0.8)  # finals ranked (1, 2, 4, 3) against scores (4, 3, 2, 1): 1 - 6 * 18 / 60
    assert row["regret_val"] == pytest.approx(90 - 70)  # the pruned trial's final counts as a candidate it missed
    assert (row["pick_test"], row["rerank_test"]) == (69, 79)  # top 3 by HPO score, re-ranked on validation


def test_the_re_rank_takes_the_trials_the_study_got_furthest_with(tool, tmp_path):
    # one trial completed; the others stopped at epoch 1 or 2 by successive halving: the top 3 are the completed
    # one and the two that reached epoch 2, whatever the epoch-1 scores of the rest
    pruned = lambda score, epoch, val, test: {**_trial(score, val, test, "PRUNED"), "last_epoch": epoch}  # noqa: E731
    _write(tmp_path, "d", 0, [{**_trial(60, 80, 79), "last_epoch": 3}, pruned(40, 2, 85, 84), pruned(30, 2, 70, 69),
                              pruned(55, 1, 95, 94)])
    (row,) = tool.summarise(tmp_path)
    assert row["rerank_test"] == 84 and row["regret_val"] == pytest.approx(95 - 80)
    assert row["completed"] == 1 and math.isnan(row["rho"])  # no rank correlation from one completed trial
    assert "| n/a |" in tool.table([row])


def test_the_re_rank_never_reads_the_test_set(tool, tmp_path):
    # trial 1 has the best test accuracy but not the best validation: the re-rank must not take it
    _write(tmp_path, "b", 0, [_trial(60, 70, 60), _trial(55, 71, 99), _trial(50, 80, 61)])
    (row,) = tool.summarise(tmp_path)
    assert row["rerank_test"] == 61


def test_a_run_with_too_few_retrained_trials_is_listed_not_dropped(tool, tmp_path):
    _write(tmp_path, "c", 0, [_trial(60, 70, 69)], study_trials=6)  # 1 of the study's 6 trials retrained so far
    (row,) = tool.summarise(tmp_path)
    assert row["note"] == "1 trials retrained, 1 completed"
    assert "c-safs-e30.json" in tool.table([row])


def test_bad_runs_are_refused_in_one_line(tool, capsys):
    with pytest.raises(SystemExit):
        tool.main(["--runs", "no-such-run"])
    assert "--runs no-such-run: no committed run of that name" in capsys.readouterr().err


def test_the_summary_reads_the_committed_files(tool, capsys):
    assert tool.main(["--summary"]) == 0  # results/evidence/hpo_transfer as committed; nothing written
    assert capsys.readouterr().out.startswith("| run | stage | trials (completed)")
