"""Tests for safs_lite.study.shipped: the tracked results/ folder reads back as the runs it was collected from."""
import json

import optuna
import pandas as pd
import pytest
import torch

from safs_lite import build_model, prune_model
from safs_lite.method.pruning import accuracy_ceiling, masks
from safs_lite.run.config import TRAIN_DEFAULTS
from safs_lite.run.folders import load_json
from safs_lite.run.hpo import suggest_config
from safs_lite.run.results import COLUMNS, load_table, table1
from safs_lite.study.shipped import (
    load_network,
    manifest,
    save_network,
    shipped_runs,
    shipped_sweep,
    shipped_test_labels,
    study_from_csv,
    study_to_csv,
)


def test_a_pruned_network_round_trips_in_a_few_kilobytes(tmp_path):
    model = prune_model(build_model("lenet5", seed=3), 0.99, "layerwise")
    save_network(model, tmp_path / "pruned.pt", "lenet5", "mnist")
    assert (tmp_path / "pruned.pt").stat().st_size < 20_000
    loaded = load_network(tmp_path / "pruned.pt", ops={"conv1": "tanh"})
    assert all(torch.equal(m, masks(loaded)[name]) for name, m in masks(model).items())
    x = torch.randn(4, 1, 28, 28)
    loaded_relu = load_network(tmp_path / "pruned.pt")
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), loaded_relu(x))
        assert not torch.allclose(model(x), loaded(x))  # conv1 is tanh there
    assert float(loaded.conv1.weight_orig.detach()[~loaded.conv1.weight_mask.bool()].abs().sum()) == 0.0


def test_a_study_round_trips_through_csv(tmp_path):
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(4):
        trial = study.ask()
        suggest_config(trial, TRAIN_DEFAULTS["lenet5"])
        trial.report(10.0 + i, 1)
        if i == 2:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, 20.0 + i)
    study_to_csv(study, tmp_path / "s.csv")
    back = study_from_csv(tmp_path / "s.csv")
    assert [t.state for t in back.trials] == [t.state for t in study.trials]
    assert [t.params for t in back.trials] == [t.params for t in study.trials]
    assert [t.intermediate_values for t in back.trials] == [t.intermediate_values for t in study.trials]
    assert back.best_value == study.best_value and back.best_trial.number == 3
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a study table"):
        study_from_csv(tmp_path / "bad.csv")


def test_the_shipped_results_are_the_tables_they_claim():
    info = manifest()
    folders = shipped_runs("cpu", seeds=(0, 1, 2))
    assert sorted(folders) == [0, 1, 2]
    results = {s: load_json(f / "results.json") for s, f in folders.items()}
    shipped = load_table(folders[0].parent.parent / "table1.csv")
    assert (table1(results)[COLUMNS].round(6) == shipped[COLUMNS].round(6)).all().all()
    sweep = shipped_sweep()
    for _, row in sweep.iterrows():  # every sweep number is the one its shipped run saved
        res = load_json(folders[0].parent / row["run"] / "results.json")
        assert res["test_accuracy"][row["method"]] == row["test_accuracy"]
    assert set(info["runs"]) == {p.name for p in folders[0].parent.iterdir()}
    for name, entry in info["runs"].items():
        assert entry["data_signature"].startswith("mnist-50000-10000-10000-")
        assert {p.name for p in (folders[0].parent / name).iterdir()} == set(entry["files"])
    assert sum(info["data"]["test_class_counts"]) == 10_000


def test_the_shipped_networks_have_the_runs_masks_and_ceilings():
    folders = shipped_runs("cpu", seeds=(0, 1, 2))
    labels = shipped_test_labels()
    assert len(labels) == 10_000
    ceilings = [accuracy_ceiling(load_network(f / "pruned.pt"), labels) for f in folders.values()]
    assert ceilings == pytest.approx([51.79, 81.50, 59.49], abs=0.005)  # the README's ceiling column
    for folder in folders.values():
        res = load_json(folder / "results.json")
        per_layer = pd.Series(res["sparsity"]["per_layer"])
        model = load_network(folder / "pruned.pt")
        kept = {n: 1 - float(m.mean()) for n, m in masks(model).items()}
        assert pd.Series(kept).round(6).equals(per_layer.round(6))
        trials = pd.read_csv(folder / "stage2_hpo.csv")
        assert len(trials) == res["config"]["budgets"]["hpo_trials"]
        assert json.loads(trials["params"].iloc[0]).keys() == {"optimizer", "lr", "momentum", "weight_decay",
                                                                "scheduler"}
