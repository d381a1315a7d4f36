"""uniform_safs: the best uniform operator given exactly SAFS's stage 2.

Added to a finished run, it is the only thing computed; it decides on validation only."""
import importlib.util
import inspect
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import safs_lite.run.hpo
import safs_lite.run.pipeline
import safs_lite.training.fitness
from safs_lite import PRESETS, SAFSConfig, build_model, load_data, load_safs_model, prune_model, run_safs, train_dense
from safs_lite.method.pruning import masks, prunable_layers
from safs_lite.method.searchlog import read_history
from safs_lite.run.baselines import BASELINES, DEFAULT_BASELINES, candidate_config, choose
from safs_lite.run.config import TRAIN_DEFAULTS
from safs_lite.run.pipeline import weights_fingerprint
from safs_lite.version import KIT_VERSION

CFG = SAFSConfig(preset="smoke", seed=6, sparsity=0.9)
WITH = (*DEFAULT_BASELINES, "uniform_safs")
REPO = Path(__file__).resolve().parents[1]


def _stage2_calls(mp: pytest.MonkeyPatch) -> list[dict]:
    """Every `pipeline.stage2` call from now on, its arguments bound by name (the pruned network as its fingerprint)."""
    calls, real = [], safs_lite.run.pipeline.stage2

    def spy(*args, **kwargs):
        bound = inspect.signature(real).bind(*args, **kwargs)
        bound.apply_defaults()
        calls.append({**bound.arguments, "pruned": weights_fingerprint(bound.arguments["pruned"]),
                      "data": bound.arguments["data"].signature})
        return real(*args, **kwargs)

    mp.setattr(safs_lite.run.pipeline, "stage2", spy)
    return calls


@pytest.fixture(scope="module")
def added(tmp_path_factory):
    """A finished smoke run (default baselines), then the same run asked for uniform_safs too, with every
    training step of the second call counted."""
    out = tmp_path_factory.mktemp("uniform_safs") / "run"
    with pytest.MonkeyPatch.context() as mp:
        calls = _stage2_calls(mp)
        before = run_safs(CFG, out=out, progress=False)
        files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        first, steps = list(calls), {"candidates": 0, "trials": 0, "retrains": [], "trains": 0}
        calls.clear()
        for module, kind in ((safs_lite.training.fitness, "candidates"), (safs_lite.run.hpo, "trials")):
            real = module.finetune_with

            def counted(*args, _real=real, _kind=kind, **kwargs):
                steps[_kind] += 1
                return _real(*args, **kwargs)

            mp.setattr(module, "finetune_with", counted)
        real_retrain, real_train = safs_lite.run.pipeline.finetune_with, safs_lite.run.pipeline.train
        mp.setattr(safs_lite.run.pipeline, "finetune_with",
                   lambda *a, **k: steps["retrains"].append(k.get("desc")) or real_retrain(*a, **k))
        mp.setattr(safs_lite.run.pipeline, "train", lambda *a, **k: steps.__setitem__("trains", 1) or real_train(*a, **k))
        after = run_safs(CFG, out=out, progress=False, baselines=WITH)
    return {"out": out, "before": before, "after": after, "files": files, "first": first, "second": list(calls),
            "steps": steps}


def test_adding_it_to_a_finished_run_computes_only_it_and_leaves_every_other_byte(added):
    out, before, after, steps = added["out"], added["before"], added["after"], added["steps"]
    # nothing but uniform_safs's stage 2 trained: no candidate (its operators are read from uniform's record),
    # the preset's trials, one retrain, no dense or magnitude-pruning training
    assert steps == {"candidates": 0, "trials": PRESETS["smoke"].hpo_trials,
                     "retrains": ["baseline_uniform_safs retrain"], "trains": 0}
    now = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    changed = {name for name, data in added["files"].items() if now.get(name) != data}
    assert changed == {"results.json"}
    assert {name.split("/")[0] for name in set(now) - set(added["files"])} == \
        {"baseline_uniform_safs.json", "baseline_uniform_safs.pt", "baseline_uniform_safs_hpo"}

    def others(res: dict) -> str:  # results.json less what the new baseline adds (its record, its seconds, the total)
        res = json.loads(json.dumps(res))
        res["baselines"].pop("uniform_safs", None)
        res["seconds"].pop("baseline_uniform_safs", None)
        res["seconds"].pop("total")
        return json.dumps(res, sort_keys=True)

    assert others(after) == others(before) and json.loads((out / "results.json").read_text()) == after
    assert list(after["baselines"]) == list(WITH)
    assert after["seconds"]["total"] == pytest.approx(before["seconds"]["total"]
                                                      + after["seconds"]["baseline_uniform_safs"])


def test_it_is_exactly_safs_stage_2_on_uniforms_operators(added):
    out, after = added["out"], added["after"]
    [safs_call] = [c for c in added["first"] if c["name"] == "safs"]
    [call] = added["second"]
    uniform = after["baselines"]["uniform"]["activations"]
    assert call["ops"] == uniform and call["name"] == "baseline_uniform_safs"
    same = ("pruned", "data", "budgets", "seed", "out", "storage", "progress")
    assert {k: call[k] for k in same} == {k: safs_call[k] for k in same}
    assert replace(call["base"], seed=call["seed"]) == replace(safs_call["base"], seed=safs_call["seed"])
    rec = json.loads((out / "baseline_uniform_safs.json").read_text())
    safs = json.loads((out / "safs.json").read_text())
    b = after["baselines"]["uniform_safs"]
    assert rec["activations"] == b["activations"] == uniform  # exactly uniform's operators
    assert rec["search"]["ops_from"] == "baseline_uniform.json" and rec["search"]["method"] == "uniform_safs"
    assert (b["evaluations"], b["best_val_fitness"]) == (after["baselines"]["uniform"]["evaluations"],
                                                         after["baselines"]["uniform"]["best_val_fitness"])
    assert rec["hpo"]["trials"] == safs["hpo"]["trials"]
    assert rec["hpo"]["storage"] == "baseline_uniform_safs_hpo/study.db"
    assert len(rec["history"]) == len(safs["history"]) == PRESETS["smoke"].finetune_epochs
    assert b["alpha_beta"] == rec["alpha_beta"] and any(ab != [1.0, 1.0] for ab in b["alpha_beta"].values())
    assert (b["test_accuracy"], b["val_accuracy"]) == (rec["test_accuracy"], rec["val_accuracy"])
    assert "alpha_beta" not in after["baselines"]["uniform"]  # the retrained baselines' records are unchanged


def test_pruned_weights_stay_exactly_zero_through_it(added):
    """Its model has the magnitude-pruning masks, and the pruned weights are exactly zero (as test_safs checks)."""
    data = load_data("mnist", quiet=True, seed=CFG.seed)
    dense, _ = train_dense("lenet5", data, replace(TRAIN_DEFAULTS["lenet5"], epochs=PRESETS["smoke"].dense_epochs,
                                                   seed=CFG.seed), progress=False)
    expected = masks(prune_model(dense, CFG.sparsity))
    model = load_safs_model(added["out"], "baseline_uniform_safs")
    for name, m in prunable_layers(model).items():
        assert torch.equal(m.weight_mask, expected[name]), name
        assert ((m.weight_orig * m.weight_mask)[expected[name] == 0] == 0).all()


def test_without_uniforms_record_it_runs_the_same_scan_on_validation_only(tmp_path, split_reads):
    """No baseline_uniform.json: the single-operator scan runs here (candidates only: train and val), its log is
    uniform's own (uniform reads it back), and the operators are the scan's best on validation, as uniform's are."""
    data = load_data("mnist", quiet=True, seed=0)
    pruned = prune_model(build_model("lenet5", num_classes=data.num_classes, seed=0), 0.9)
    cfg = candidate_config(PRESETS["smoke"], TRAIN_DEFAULTS["lenet5"])
    chosen = choose("uniform_safs", pruned, data, cfg, "acc_tiebreak", 5, out=tmp_path, progress=False)
    assert {split for split, _ in split_reads} == {"train", "val"} and all(inside for _, inside in split_reads)
    rows = read_history(tmp_path / "baseline_uniform_search.csv")
    assert len(rows) == 13 and chosen["ops"] == max(rows, key=lambda r: r["fitness"])["vector"]
    assert chosen["search"]["ops_from"] == "search" and chosen["search"]["method"] == "uniform_safs"
    split_reads.clear()  # uniform itself reads the same scan back from that log: no candidate trains again
    plain = choose("uniform", pruned, data, cfg, "acc_tiebreak", 5, out=tmp_path, progress=False)
    assert not split_reads and plain["ops"] == chosen["ops"]
    assert plain["search"]["best_val_fitness"] == chosen["search"]["best_val_fitness"]


def test_the_registry_says_what_it_is():
    spec = BASELINES["uniform_safs"]
    assert (spec.ops_of, spec.stage2, spec.label) == ("uniform", True, "best uniform operator + stage 2")
    assert [n for n, b in BASELINES.items() if b.stage2] == ["uniform_safs"]
    assert "uniform_safs" not in DEFAULT_BASELINES  # a stage 2 per run: asked for, never implied
    assert list(BASELINES).index("uniform") < list(BASELINES).index("uniform_safs")  # its record comes first


def test_run_evidence_plans_a_collected_run_again_only_for_a_missing_baseline(tmp_path):
    spec = importlib.util.spec_from_file_location("run_evidence", REPO / "tools" / "run_evidence.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    shipped = tmp_path / "results.json"
    assert tool.BASELINES == DEFAULT_BASELINES
    assert tool.plan_baselines(shipped, ("uniform", "swish")) == ("uniform", "swish")  # not collected
    shipped.write_text(json.dumps({"kit": KIT_VERSION, "baselines": {"uniform": {}, "swish": {}, "random": {}}}))
    assert tool.plan_baselines(shipped, ("uniform", "swish")) is None  # done
    # asked for one more: computed, and the collected ones kept (results.json lists only the baselines asked for)
    assert tool.plan_baselines(shipped, ("uniform_safs",)) == ("uniform", "swish", "random", "uniform_safs")
    shipped.write_text(json.dumps({"kit": "0.0.0", "baselines": {"uniform": {}, "swish": {}}}))
    assert tool.plan_baselines(shipped, ("uniform", "swish")) is None  # an older kit's record is kept ...
    assert tool.plan_baselines(shipped, ("uniform", "swish"), rerun_older=True) == ("uniform", "swish")  # ... or redone
    assert tool.plan_baselines(shipped, (), rerun_older=True) == ()  # rerun, with no baseline asked for


def test_run_evidence_refuses_an_allocation_outside_its_plan_in_one_line():
    out = subprocess.run([sys.executable, str(REPO / "tools" / "run_evidence.py"), "--plan", "sweep", "--allocations",
                          "global", "protected"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].endswith(
        "error: allocation(s) protected not in plan 'sweep'; valid: layerwise, global, erk")
