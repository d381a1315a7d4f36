"""study.factorial: the cells come from the right source at a budget, missing and failed cells are reported and never
silently dropped, the path's steps add up to SAFS - MP, and the declared family is corrected as declared."""
import json
import math

import numpy as np
import pytest

from safs_lite.paths import REPO_ROOT
from safs_lite.run.folders import load_json
from safs_lite.study import factorial as fx


def _run(root, name, own_epochs, acc, evaluations=9):
    folder = root / "evidence" / "runs" / name
    folder.mkdir(parents=True)
    (folder / "stage1.json").write_text(json.dumps({"search": {"evaluations": evaluations}}))
    base = {c: acc[c] for c in ("magnitude_pruning", "stage2", "stage1", "safs")}
    res = {"config": {"budgets": {"finetune_epochs": own_epochs}}, "test_accuracy": base,
           "baselines": {c: {"test_accuracy": acc[c]} for c in ("uniform", "uniform_safs")}}
    (folder / "results.json").write_text(json.dumps(res))


def _finals(root, name, epochs, acc, error_cell=None):
    folder = root / "evidence" / "finals"
    folder.mkdir(parents=True, exist_ok=True)
    cells = {c: ({"error": "FloatingPointError: diverged"} if c == error_cell else {"test_accuracy": v})
             for c, v in acc.items()}
    (folder / f"{name}-e{epochs}.json").write_text(json.dumps({"run": name, "epochs": epochs, "cells": cells}))


def _cells(seed, operator=5.0, stage2=2.0, search=0.0, noise=0.0):
    mp = 50.0 + seed
    rng = np.random.default_rng(seed)
    uniform = mp + operator + noise * rng.standard_normal()
    uniform_safs = uniform + stage2 + noise * rng.standard_normal()
    return {"magnitude_pruning": mp, "stage2": mp + 1.0, "uniform": uniform, "uniform_safs": uniform_safs,
            "stage1": uniform + 0.5, "safs": uniform_safs + search + noise * rng.standard_normal()}


@pytest.fixture
def study(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFS_RESULTS", str(tmp_path))
    for s in range(6):
        _run(tmp_path, f"safs-lenet5-mnist-0.99-layerwise-cpu-s{s}", 30, _cells(s, noise=0.3), evaluations=41)
        name = f"safs-lenet5-mnist-0.99-global-sweep-s{s}"
        _run(tmp_path, name, 5, _cells(s, operator=-50))  # the 5-epoch numbers must not be read at 30
        if s < 5:
            _finals(tmp_path, name, 30, _cells(s, operator=3.0, search=4.0, noise=0.2),
                    error_cell="safs" if s == 4 else None)
    return tmp_path


def test_cells_come_from_the_budget_asked_and_gaps_are_kept(study):
    cells = fx.load_cells(30)
    glob = cells[cells["setting"] == "99% global (sweep)"]
    six = cells["cell"].isin(fx.CELLS)
    assert set(glob[(glob["seed"] < 4) & six]["source"]) == {"finals"} and set(cells[(cells["preset"] == "cpu")
                                                                                     & six]["source"]) == {"committed"}
    failed = glob[(glob["seed"] == 4) & (glob["cell"] == "safs")].iloc[0]
    assert math.isnan(failed["test_accuracy"]) and "diverged" in failed["note"]
    unretrained = glob[glob["seed"] == 5]
    assert set(unretrained["source"]) == {"missing"} and "own budget 5" in unretrained["note"].iloc[0]
    eff = fx.effects(cells, n_resamples=2000).set_index(["setting", "effect"])
    total = eff.loc[("99% global (sweep)", "total")]
    assert total["n"] == 4 and total["missing"] == (4, 5) and total["seeds"] == (0, 1, 2, 3)
    assert eff.loc[("99% global (sweep)", "operator")]["n"] == 5  # seed 4's other cells still count
    assert eff.loc[("99% global (sweep)", "operator")]["mean"] == pytest.approx(3.0, abs=0.5)  # not the -50 at 5


def test_equal_evaluation_cells_come_from_equal_search_or_a_search_that_already_had_more(study):
    equal = study / "evidence" / "equal"
    equal.mkdir()
    for s in range(3):
        acc = _cells(s, operator=3.0, search=4.0, noise=0.2)
        (equal / f"safs-lenet5-mnist-0.99-global-sweep-s{s}-e30.json").write_text(json.dumps(
            {"cells": {"stage1_equal": {"test_accuracy": acc["uniform"] + 1.0},
                       "safs_equal": {"test_accuracy": acc["uniform_safs"] - 2.0}}}))
    cells = fx.load_cells(30)
    cpu = cells[(cells["preset"] == "cpu") & cells["cell"].isin(fx.EQUAL_CELLS)]
    assert set(cpu["source"]) == {"committed"} and "41 evaluations" in cpu["note"].iloc[0]
    eff = fx.effects(cells, n_resamples=2000).set_index(["setting", "effect"])
    r = eff.loc[("99% global (sweep)", "search_with_stage2_equal")]
    assert r["n"] == 3 and r["mean"] == pytest.approx(-2.0) and r["missing"] == (3, 4, 5)
    assert eff.loc[("99% layerwise (cpu)", "search_with_stage2_equal")]["mean"] == pytest.approx(
        eff.loc[("99% layerwise (cpu)", "search_with_stage2")]["mean"])  # its own LAHC: no extension needed


def test_the_path_adds_up_to_the_total_and_the_interaction_is_a_difference_of_effects(study):
    eff = fx.effects(fx.load_cells(30), n_resamples=2000).set_index(["setting", "effect"])
    for setting in ("99% layerwise (cpu)", "99% global (sweep)"):
        path = sum(eff.loc[(setting, name)]["mean"] for name in fx.PATH)
        if setting == "99% layerwise (cpu)":  # same masks in every step: the steps add up exactly
            assert path == pytest.approx(eff.loc[(setting, "total")]["mean"], abs=1e-9)
        inter = eff.loc[(setting, fx.INTERACTION)]["mean"]
        expect = eff.loc[(setting, "stage2_on_operator")]["mean"] - eff.loc[(setting, "stage2_on_relu")]["mean"]
        assert inter == pytest.approx(expect, abs=1e-9)
    r = eff.loc[("99% layerwise (cpu)", "operator")]
    assert r["t_low"] < r["mean"] < r["t_high"] and r["boot_low"] < r["mean"] < r["boot_high"]
    assert r["poi"] == 1.0 and r["iqm"] == pytest.approx(5.0, abs=0.5)


def test_the_family_is_holm_corrected_over_every_declared_hypothesis(study):
    family = {"alpha": 0.05, "settings": ["99% layerwise (cpu)", "99% global (sweep)", "99% erk (sweep)"],
              "effects": ["total", "operator", "search_with_stage2"],
              "equivalence": {"effect": "search_with_stage2", "margin": 1.0}}
    fam = fx.primary_family(fx.load_cells(30), family, n_resamples=2000)
    assert len(fam) == 9  # erk has no run: its hypotheses stay in the family with p = 1
    assert (fam[fam["setting"] == "99% erk (sweep)"]["p"] == 1.0).all()
    smallest = fam["p"].min()
    assert fam["p_holm"].min() == pytest.approx(min(1.0, 9 * smallest))
    eq = fam.set_index(["setting", "effect"])
    assert bool(eq.loc[("99% layerwise (cpu)", "search_with_stage2"), "equivalent"])  # search adds 0 +- noise
    assert not eq.loc[("99% global (sweep)", "search_with_stage2"), "equivalent"]  # adds 4 points
    assert eq.loc[("99% global (sweep)", "search_with_stage2"), "reject"] == False  # noqa: E712 - n = 4 cannot
    text = fx.format_family(fam, family)
    assert "too few masks" not in text.split("99% erk")[0] and "9 hypotheses" in text


def test_the_command_reads_the_committed_study():
    runs = sorted((REPO_ROOT / "results" / "evidence" / "runs").glob("safs-lenet5-mnist-0.99-layerwise-cpu-s*"))
    res = [load_json(r / "results.json") for r in runs]
    operator = np.mean([r["baselines"]["uniform"]["test_accuracy"] - r["test_accuracy"]["magnitude_pruning"]
                        for r in res])
    eff = fx.effects(fx.load_cells(30)).set_index(["setting", "effect"])
    assert eff.loc[("99% layerwise (cpu)", "operator")]["mean"] == pytest.approx(operator)
    assert eff.loc[("99% layerwise (cpu)", "operator")]["n"] == len(runs) >= 10


def test_main_prints_the_tables(capsys):
    assert fx.main(["--epochs", "30"]) == 0
    out = capsys.readouterr().out
    assert "| 99% layerwise (cpu) | 10 |" in out and "Primary family: 20 hypotheses" in out


def test_the_readme_answer_is_the_generated_one():
    text = (REPO_ROOT / "README.md").read_text()
    block = text.split(fx.README_START, 1)[1].split(fx.README_END, 1)[0].strip()
    assert block == fx.readme_block().strip()  # rerun `python -m safs_lite.study.factorial --write` after a change
    assert "comes from stage 2" not in text


def test_update_readme_replaces_only_the_marked_block(tmp_path):
    page = tmp_path / "README.md"
    page.write_text(f"intro\n{fx.README_START}\nold\n{fx.README_END}\nrest\n")
    assert fx.update_readme(page, "new") and page.read_text() == f"intro\n{fx.README_START}\nnew\n{fx.README_END}\nrest\n"
    assert not fx.update_readme(page, "new")
    page.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        fx.update_readme(page, "new")


def test_budget_pairs_compare_the_same_masks_retrained_at_both_budgets(study):
    _finals(study, "safs-lenet5-mnist-0.99-global-sweep-s0", 5, _cells(0, operator=3.0, search=9.0))
    pairs = fx.budget_pairs(budget=30, short=5)
    assert [(p["setting"], p["seed"]) for p in pairs] == [("99% global (sweep)", 0)]
    assert pairs[0]["short"] - pairs[0]["long"] == pytest.approx(5.0, abs=1.5)  # search +9 at 5, +4 at 30 (noise)


def test_the_budget_axis_pairs_the_same_masks_across_budgets(study):
    name = "safs-lenet5-mnist-0.99-global-sweep-s{}"
    for s in range(3):
        _finals(study, name.format(s), 5, _cells(s, operator=10.0, search=1.0))
    for s in range(2):
        _finals(study, name.format(s), 100, _cells(s, operator=1.0, search=-2.0))
    axis = fx.budget_axis(budgets=(5, 30, 100))
    glob = axis[axis["setting"] == "99% global (sweep)"].set_index("epochs")
    assert list(glob.index) == [5, 30, 100] and set(glob["seeds"]) == {"0,1"}  # only masks retrained at all three
    e30 = [_cells(s, operator=3.0, search=4.0, noise=0.2) for s in (0, 1)]
    assert glob.loc[30, "total"] == pytest.approx(np.mean([c["safs"] - c["magnitude_pruning"] for c in e30]))
    assert glob.loc[100, "search_with_stage2"] == pytest.approx(-2.0)
    assert (axis["setting"] != "99% layerwise (cpu)").all()  # its finals are the runs' own: never retrained here
    # a budget with too few masks leaves the axis; the others then pair over more masks (seed 4's SAFS failed)
    three = fx.budget_axis(budgets=(5, 30, 100), min_masks=3).set_index("epochs")
    assert list(three.index) == [5, 30] and set(three["n"]) == {3}
    assert "| 99% global (sweep) | 100 | 2 (0,1) |" in fx.format_budget_axis(axis)
