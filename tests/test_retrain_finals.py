"""tools/retrain_finals.py: the factorial's cells read from a committed run, and a run on other data is never
retrained as if it were the committed one."""
import importlib.util
import shutil

import pytest

from safs_lite.paths import REPO_ROOT

RUN = "safs-lenet5-mnist-0.99-global-sweep-s0"


def _tool():
    spec = importlib.util.spec_from_file_location("retrain_finals", REPO_ROOT / "tools" / "retrain_finals.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_each_cell_takes_its_own_operators_and_final_training():
    tool, run = _tool(), REPO_ROOT / "results" / "evidence" / "runs" / RUN
    ops, cfg, learn = tool.cell_plan(run, "magnitude_pruning")
    assert set(ops.values()) == {"relu"} and not learn and cfg.lr == 1e-3 and cfg.epochs == 5 and cfg.seed == 0
    ops, cfg, learn = tool.cell_plan(run, "safs")
    safs = tool.load_json(run / "safs.json")
    assert ops == safs["activations"] and learn and cfg.lr == safs["train"]["lr"] != 1e-3
    ops, _, learn = tool.cell_plan(run, "uniform")
    assert len(set(ops.values())) == 1 and not learn  # one operator everywhere, dense hyperparameters
    assert tool.committed(run, "uniform_safs") == tool.load_json(run / "baseline_uniform_safs.json")["test_accuracy"]


def test_a_run_made_on_other_data_is_skipped_in_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "evidence" / "runs").mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "results" / "evidence" / "runs" / RUN, tmp_path / "evidence" / "runs" / RUN)
    monkeypatch.setenv("SAFS_RESULTS", str(tmp_path))  # the tests' data is the offline subset, not full MNIST
    assert _tool().main(["--epochs", "1", "--allocations", "global", "--seeds", "0"]) == 0
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if not line.startswith("safs_lite: full MNIST not found")]  # the data fallback's own notice
    assert len(err) == 1 and err[0].startswith(f"{RUN}: made on data mnist-50000") and "skipped" in err[0]
    assert not any((tmp_path / "evidence" / "finals").iterdir())


def test_a_cell_retrains_and_records_each_epoch():
    from safs_lite.data.builtin import load_data

    tool, run = _tool(), REPO_ROOT / "results" / "evidence" / "runs" / RUN
    rec = tool.retrain_cell(run, "safs", 2, load_data("mnist", seed=0, quiet=True))  # the offline subset here
    assert len(rec["val_by_epoch"]) == 2 and rec["val_accuracy"] == max(rec["val_by_epoch"])  # best epoch kept
    assert rec["learn_scales"] and rec["train"]["epochs"] == 2
    assert rec["alpha_beta"] != {k: [1.0, 1.0] for k in rec["alpha_beta"]}  # stage 2's scales were trained


def test_a_training_seed_and_an_engine_are_applied_and_recorded():
    from safs_lite.data.builtin import load_data

    tool, run = _tool(), REPO_ROOT / "results" / "evidence" / "runs" / RUN
    data = load_data("mnist", seed=0, quiet=True)
    own = tool.retrain_cell(run, "magnitude_pruning", 1, data)
    other = tool.retrain_cell(run, "magnitude_pruning", 1, data, seed=7)
    dense = tool.retrain_cell(run, "magnitude_pruning", 1, data, engine="dense")
    assert (own["train"]["seed"], other["train"]["seed"]) == (0, 7) and own["train"]["engine"] == "compact"
    assert other["val_by_epoch"] != own["val_by_epoch"]  # another order of batches: another network
    assert dense["train"]["engine"] == "dense" and dense["val_by_epoch"][0] == pytest.approx(own["val_by_epoch"][0],
                                                                                           abs=1.0)


def test_train_seeds_take_own_or_a_non_negative_integer():
    import argparse

    tool = _tool()
    assert tool.train_seed_arg("own") is None and tool.train_seed_arg("1000") == 1000
    for bad in ("-1", "seven"):
        with pytest.raises(argparse.ArgumentTypeError, match=f"'{bad}': a training seed is 'own' or an integer"):
            tool.train_seed_arg(bad)


def test_trial_hyperparameters_override_the_cells_recorded_ones():
    from safs_lite.data.builtin import load_data

    tool, run = _tool(), REPO_ROOT / "results" / "evidence" / "runs" / RUN
    trial = {"optimizer": "sgd", "lr": 0.003, "momentum": 0.5, "weight_decay": 1e-4, "scheduler": "constant"}
    rec = tool.retrain_cell(run, "safs", 1, load_data("mnist", seed=0, quiet=True), params=trial)
    assert {k: rec["train"][k] for k in trial} == trial and rec["learn_scales"]
    assert rec["operators"] == tool.load_json(run / "safs.json")["activations"]  # the cell's operators kept
