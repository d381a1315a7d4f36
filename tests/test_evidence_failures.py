"""tools/run_evidence.py and tools/collect_evidence.py: a failed run is recorded and the plan goes on; collection
refuses runs on other data or with another key, and lists collected, failed and missing seeds per setting."""
import importlib.util
import json

import pytest

from safs_lite.paths import REPO_ROOT


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def places(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFS_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("SAFS_RUNS", str(tmp_path / "runs"))
    return tmp_path


def test_a_failed_run_is_recorded_and_the_plan_goes_on(places, monkeypatch, capsys):
    tool = _tool("run_evidence")
    done = []

    def fake_run(cfg, progress, baselines):
        if cfg.pruning == "global":
            raise FloatingPointError("stage 2 diverged")
        done.append(cfg.pruning)
        acc = {m: 50.0 for m in ("magnitude_pruning", "stage1", "stage2", "safs")}
        return {"test_accuracy": acc, "baselines": {}, "seconds": {"total": 1.0}}

    monkeypatch.setattr(tool, "run_safs", fake_run)
    monkeypatch.setattr(tool, "train_dense", lambda *a, **k: None)
    assert tool.main(["--plan", "allocations", "--seeds", "0"]) == 1
    assert done == ["erk", "protected", "layerwise"]  # the plan went on after the failure
    record = json.loads((places / "results" / "evidence" / "failed" /
                         "safs-lenet5-mnist-0.99-global-sweep-s0.json").read_text())
    assert record["error"] == "FloatingPointError: stage 2 diverged" and record["config"]["seed"] == 0
    assert "FAILED" in capsys.readouterr().out
    monkeypatch.setattr(tool, "run_safs", lambda cfg, progress, baselines: fake_run(
        type(cfg)(**{**cfg.__dict__, "pruning": "erk"}), progress, baselines))  # now it succeeds
    assert tool.main(["--plan", "allocations", "--seeds", "0", "--allocations", "global"]) == 0
    assert not any((places / "results" / "evidence" / "failed").iterdir())  # a success clears the record


def _finished_run(runs, name, signature, seed=0):
    folder = runs / name
    folder.mkdir(parents=True)
    from safs_lite.version import KIT_VERSION

    (folder / "results.json").write_text(json.dumps({"kit": KIT_VERSION, "data": {"signature": signature},
                                                     "config": {"dataset": "mnist", "seed": seed}}))
    return folder


def test_collection_refuses_other_data_and_another_key_and_lists_the_gaps(places):
    from safs_lite.data.builtin import load_data

    tool = _tool("collect_evidence")
    dest = places / "results" / "evidence" / "runs"
    dest.mkdir(parents=True)
    other = _finished_run(places / "runs", "safs-lenet5-mnist-0.99-global-sweep-s0-aaaa", "mnist-50000-other")
    with pytest.raises(tool.Refused, match="made on data mnist-50000-other"):
        tool.collect(other, dest)
    here = load_data("mnist", seed=0, quiet=True).signature  # the tests' data
    collected = dest / "safs-lenet5-mnist-0.99-global-sweep-s0"
    collected.mkdir()
    (collected / "source.json").write_text(json.dumps({"folder": "safs-lenet5-mnist-0.99-global-sweep-s0-bbbb"}))
    twin = _finished_run(places / "runs", "safs-lenet5-mnist-0.99-global-sweep-s0-cccc", here)
    with pytest.raises(tool.Refused, match="collected from safs-lenet5-mnist-0.99-global-sweep-s0-bbbb"):
        tool.collect(twin, dest)  # another key (threads, data) never overwrites a collected run
    (collected / "results.json").write_text("{}")
    failed = places / "results" / "evidence" / "failed"
    failed.mkdir(parents=True)
    (failed / "safs-lenet5-mnist-0.99-erk-sweep-s3.json").write_text(json.dumps(
        {"run": "safs-lenet5-mnist-0.99-erk-sweep-s3", "error": "FloatingPointError: diverged"}))
    text = tool.status(dest)
    assert "| allocations | mnist 99% global (sweep) | 1: 0 | 0 | 9: 1,2,3,4,5,6,7,8,9 |" in text
    assert "| allocations | mnist 99% erk (sweep) | 0 | 1: 3 (s3: FloatingPointError: diverged) | " \
           "9: 0,1,2,4,5,6,7,8,9 |" in text
