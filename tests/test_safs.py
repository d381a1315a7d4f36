"""The SAFS pipeline end to end on the smoke preset: CLI, results schema, caching, resume, masks."""
import json
import os
import subprocess
import sys

import pytest
import torch

import safs_lite.run.config
import safs_lite.run.hpo
import safs_lite.training.fitness
from safs_lite import (
    PRESETS,
    SEARCH_SPACE,
    SAFSConfig,
    build_model,
    load_data,
    load_safs_model,
    prune_model,
    run_safs,
    train_dense,
)
from safs_lite.method.pruning import masks, prunable_layers
from safs_lite.run.baselines import DEFAULT_BASELINES

SITES = ["conv1", "conv2", "fc1", "fc2"]
REAL_FINETUNE = safs_lite.run.hpo.finetune_with


def cli(*args):
    return subprocess.run([sys.executable, "-m", "safs_lite", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=900)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """`python -m safs_lite run --preset smoke`, as a user runs it."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    r = cli("run", "--preset", "smoke", "--seed", "0", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    return out, r


def test_cli_run_prints_the_table_next_to_the_papers(smoke_run):
    out, r = smoke_run
    assert "this run" in r.stdout and "paper" in r.stdout and "62.22" in r.stdout
    assert f"{out}/results.json" in r.stdout


def test_results_json_schema(smoke_run):
    out, _ = smoke_run
    res = json.loads((out / "results.json").read_text())
    assert set(res) == {"config", "test_accuracy", "val_accuracy", "baselines", "activations", "alpha_beta",
                        "sparsity", "seconds", "data", "kit", "environment"}
    c = res["config"]
    assert {"model", "dataset", "sparsity", "pruning", "preset", "seed", "budgets"} <= set(c)
    assert (c["model"], c["dataset"], c["sparsity"], c["pruning"], c["preset"], c["seed"]) == \
        ("lenet5", "mnist", 0.99, "layerwise", "smoke", 0)
    assert c["budgets"]["lahc_steps"] == PRESETS["smoke"].lahc_steps
    acc = res["test_accuracy"]
    assert set(acc) == {"dense", "magnitude_pruning", "stage1", "stage2", "safs"}
    assert all(0.0 <= v <= 100.0 for v in acc.values())
    assert set(res["activations"]) == {"stage1", "safs"}
    for ops in res["activations"].values():
        assert list(ops) == SITES and set(ops.values()) <= set(SEARCH_SPACE)
    assert res["activations"]["safs"] == res["activations"]["stage1"]  # SAFS keeps stage 1's operators
    assert set(res["alpha_beta"]) == {"stage2", "safs"}
    for ab in res["alpha_beta"].values():
        assert list(ab) == SITES and all(len(v) == 2 and all(isinstance(x, float) for x in v)
                                         for v in ab.values())
    # stage 2 learned the scales: they moved away from their initial value 1
    assert any(abs(a - 1) > 1e-6 or abs(b - 1) > 1e-6 for a, b in res["alpha_beta"]["stage2"].values())
    assert res["sparsity"]["overall"] == pytest.approx(0.99, abs=1e-3)
    assert set(res["sparsity"]["per_layer"]) == {"conv1", "conv2", "fc1", "fc2", "fc3"}
    assert set(res["val_accuracy"]) == set(acc)
    assert list(res["baselines"]) == list(DEFAULT_BASELINES)  # computed by default, retrained as stage 1
    assert set(res["seconds"]) == {"dense", "magnitude_pruning", "stage1", "stage2", "safs", "total",
                                   *(f"baseline_{n}" for n in DEFAULT_BASELINES)}
    assert res["seconds"]["total"] == pytest.approx(sum(v for k, v in res["seconds"].items() if k != "total"))
    assert set(res["environment"]) == {"python", "torch", "device", "threads"}
    saved = json.loads((out / "config.json").read_text())
    # results.json's config is the run key's, plus how it computed (the key holds amp only when on)
    assert (c["device"], c["amp"], c["channels_last"]) == ("cpu", False, False) and c["threads"] >= 1
    assert saved["config"] == {**{k: v for k, v in c.items() if k not in ("amp", "channels_last")},
                               "data": res["data"]["signature"], "search_space": list(SEARCH_SPACE),
                               "ops_version": saved["config"]["ops_version"], "kit": res["kit"]}
    assert "torchvision" in saved["environment"]


def test_rerun_reuses_every_finished_stage(smoke_run):
    out, _ = smoke_run
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json") if p.name != "results.json"}
    before = json.loads((out / "results.json").read_text())
    r = cli("run", "--preset", "smoke", "--seed", "0", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.json") if p.name != "results.json"} == stamps
    assert json.loads((out / "results.json").read_text()) == before


def test_pruned_weights_stay_zero_through_search_and_hpo(smoke_run):
    """Pruned weights stay exactly zero through stage 1, stage 2 and SAFS, at the magnitude-pruning positions."""
    out, _ = smoke_run
    data = load_data("mnist", quiet=True, seed=0)
    cfg = safs_lite.run.config.TRAIN_DEFAULTS["lenet5"]
    from dataclasses import replace
    dense, _ = train_dense("lenet5", data, replace(cfg, epochs=PRESETS["smoke"].dense_epochs, seed=0),
                           progress=False)
    expected = masks(prune_model(dense, 0.99))
    for stage in ("stage1", "stage2", "safs"):
        model = load_safs_model(out, stage)
        for name, m in prunable_layers(model).items():
            assert torch.equal(m.weight_mask, expected[name]), (stage, name)
            w = m.weight_orig * m.weight_mask
            assert (w[expected[name] == 0] == 0).all()
        kept = {n: int(m.sum()) for n, m in masks(model).items()}
        assert kept == {"conv1": 2, "conv2": 24, "fc1": 307, "fc2": 101, "fc3": 8}


class Killed(Exception):
    """Stands in for a kill: raised from inside a stage."""


def _counting(monkeypatch, module, kill_after=None):
    """Count fine-tunes started through `module` (a candidate or trial has no desc); optionally die."""
    calls = []

    def wrapper(*args, **kwargs):
        if kill_after is not None and len(calls) >= kill_after:
            raise Killed()
        calls.append(kwargs.get("desc", "candidate"))
        return REAL_FINETUNE(*args, **kwargs)

    monkeypatch.setattr(module, "finetune_with", wrapper)
    return calls


def test_interrupted_run_resumes_without_redoing_work(tmp_path, monkeypatch):
    cfg = SAFSConfig(preset="smoke", seed=1, sparsity=0.9)
    steps, trials = PRESETS["smoke"].lahc_steps, PRESETS["smoke"].hpo_trials

    # Reference: one uninterrupted run, counting every fine-tune (candidates start in safs_lite.training.fitness).
    calls = _counting(monkeypatch, safs_lite.training.fitness)
    hpo_calls = _counting(monkeypatch, safs_lite.run.hpo)
    ref = run_safs(cfg, out=tmp_path / "ref", progress=False, baselines=())  # stage-1 candidates only
    evaluations = len(calls)  # stage-1 candidates
    assert 1 <= evaluations <= steps + 1
    assert len(hpo_calls) == 2 * trials

    # Killed during stage 1 after 2 candidate evaluations ...
    calls = _counting(monkeypatch, safs_lite.training.fitness, kill_after=2)
    with pytest.raises(Killed):
        run_safs(cfg, out=tmp_path / "run", progress=False, baselines=())
    rows = (tmp_path / "run" / "stage1_search.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2  # header + the two finished evaluations
    # ... then killed during stage 2 after 2 trials ...
    calls = _counting(monkeypatch, safs_lite.training.fitness)
    hpo_calls = _counting(monkeypatch, safs_lite.run.hpo, kill_after=2)
    with pytest.raises(Killed):
        run_safs(cfg, out=tmp_path / "run", progress=False, baselines=())
    assert len(calls) == evaluations - 2  # finished ones not redone
    assert (tmp_path / "run" / "stage1.json").exists() and not (tmp_path / "run" / "stage2.json").exists()
    # ... and finished: only the missing trials run, and the numbers equal the uninterrupted run's.
    calls = _counting(monkeypatch, safs_lite.training.fitness)
    hpo_calls = _counting(monkeypatch, safs_lite.run.hpo)
    res = run_safs(cfg, out=tmp_path / "run", progress=False, baselines=())
    assert not calls
    assert len(hpo_calls) == 2 * trials - 2
    assert res["test_accuracy"] == ref["test_accuracy"]
    assert res["activations"] == ref["activations"] and res["alpha_beta"] == ref["alpha_beta"]


def test_random_search_as_stage1_spends_lahcs_step_budget(tmp_path):
    cfg = SAFSConfig(preset="smoke", seed=2, sparsity=0.9, search="random")
    run_safs(cfg, out=tmp_path / "rs", progress=False, baselines=())
    rec = json.loads((tmp_path / "rs" / "stage1.json").read_text())
    assert rec["search"]["method"] == "random"
    assert rec["search"]["evaluations"] == PRESETS["smoke"].lahc_steps + 1


def test_random_search_baseline_uses_lahcs_real_budget(tmp_path, monkeypatch):
    """The random baseline gets exactly as many candidate fine-tunes as LAHC really made (its cache answers
    revisited vectors without training), counted at the objective, not read from a preset."""
    import safs_lite.run.baselines
    import safs_lite.run.pipeline

    calls: list[list[int]] = []
    real = safs_lite.run.pipeline.candidate_fitness

    def counting(*args, **kwargs):
        fitness, count = real(*args, **kwargs), []
        calls.append(count)
        return lambda ops: (count.append(1), fitness(ops))[1]

    monkeypatch.setattr(safs_lite.run.pipeline, "candidate_fitness", counting)
    monkeypatch.setattr(safs_lite.run.baselines, "candidate_fitness", counting)
    cfg = SAFSConfig(preset="smoke", seed=2, sparsity=0.9)
    run_safs(cfg, out=tmp_path / "run", progress=False, baselines=("random",))
    lahc_calls, random_calls = (len(c) for c in calls)
    lahc = json.loads((tmp_path / "run" / "stage1.json").read_text())["search"]
    rnd = json.loads((tmp_path / "run" / "baseline_random.json").read_text())["search"]
    assert lahc["evaluations"] == lahc_calls <= PRESETS["smoke"].lahc_steps + 1
    assert rnd["evaluations"] == random_calls == lahc_calls


@pytest.mark.parametrize("args,message", [
    (("--preset", "fast"), "unknown preset 'fast'; valid: smoke, demo, cpu, sweep, paper"),
    (("--model", "alexnet"), "unknown model 'alexnet'"),
    (("--sparsity", "-0.5"), "sparsity must be in [0, 1)"),
    (("--search", "grid"), "unknown search 'grid'; valid: lahc, random, sa, ga"),
    (("--out", "/proc/nowhere/run"), "not writable"),
])
def test_run_bad_input_is_one_line(args, message):
    r = cli("run", *args)
    assert r.returncode == 2
    lines = [line for line in r.stderr.strip().splitlines() if not line.startswith("safs_lite: full MNIST not found")]  # minus the data notice
    assert len(lines) == 1 and message in lines[0], r.stderr


def test_corrupt_or_foreign_run_folder_is_one_line(smoke_run, tmp_path):
    out, _ = smoke_run
    r = cli("run", "--preset", "smoke", "--seed", "5", "--out", str(out))
    assert r.returncode == 2 and "holds a run with another key (seed: 0 -> 5" in r.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{truncated")
    r = cli("run", "--preset", "smoke", "--out", str(broken))
    lines = [line for line in r.stderr.strip().splitlines() if not line.startswith("safs_lite: full MNIST not found")]
    assert r.returncode == 2 and len(lines) == 1 and "corrupt" in lines[0]


def test_operator_vectors_are_validated():
    model = build_model("lenet5")
    with pytest.raises(ValueError, match="unknown"):
        safs_lite.set_activations(model, {"conv1": "nope"})
    with pytest.raises(ValueError):
        safs_lite.set_activations(model, [])
    with pytest.raises(ValueError):
        safs_lite.set_activations(model, ["tanh", "elu"])  # 2 operators for 4 sites


def test_search_and_hpo_never_read_the_test_split(tmp_path, split_reads):
    """Every stage-1 candidate and stage-2 trial reads train and val only; test is read for reports."""
    reads, baselines = split_reads, (*DEFAULT_BASELINES, "uniform_safs")  # the defaults and the stage-2 one
    run_safs(SAFSConfig(preset="smoke", seed=3, sparsity=0.9), out=tmp_path / "run", progress=False,
             baselines=baselines)
    assert any(inside for _, inside in reads) and {s for s, i in reads if i} == {"train", "val"}
    # outside the decisions, test is read once per reported number: dense, MP (before and after), 3 stages,
    # and each baseline's final model (the baselines' candidates and uniform_safs's trials are decisions:
    # validation only)
    assert sum(s == "test" for s, _ in reads) == 1 + 2 + 3 + len(baselines)
