"""The baselines registry: SA, GA, the uniform scan and Swish, at LAHC's budget, decided on validation, retrained as stage 1.

uniform_safs (the uniform operator given SAFS's stage 2 instead of the retrain): test_uniform_safs.py."""
import json
import random
import zlib

import pytest

import safs_lite.training.fitness
from safs_lite import PRESETS, SAFSConfig, load_safs_model, run_safs
from safs_lite.method.activations import SEARCH_SPACE
from safs_lite.method.lahc import SearchConfig, lahc
from safs_lite.method.metaheuristics import genetic_algorithm, sa_temperature, simulated_annealing, uniform_scan
from safs_lite.method.pruning import prunable_layers
from safs_lite.method.searchlog import read_history
from safs_lite.run.baselines import BASELINES, DEFAULT_BASELINES, check_baselines
from safs_lite.run.results import accuracies, table1

LAYERS = ["conv1", "conv2", "fc1", "fc2"]
OPS = list(SEARCH_SPACE)


def rugged(vector):
    """A deterministic toy objective over the real search space (13^4 vectors), with many local optima."""
    return random.Random(zlib.crc32(",".join(vector.values()).encode())).random() + sum(o == "tanh" for o in vector.values())


class Counter:
    def __init__(self, fn=rugged, kill_after=None):
        self.fn, self.calls, self.kill_after = fn, [], kill_after

    def __call__(self, vector):
        if self.kill_after is not None and len(self.calls) >= self.kill_after:
            raise KeyboardInterrupt
        self.calls.append(tuple(vector.values()))
        return self.fn(vector)


SEARCHES = {
    "sa": lambda f, n, seed=0, csv=None: simulated_annealing(f, LAYERS, OPS, n, seed=seed, csv_path=csv,
                                                             progress=False),
    "ga": lambda f, n, seed=0, csv=None: genetic_algorithm(f, LAYERS, OPS, n, seed=seed, csv_path=csv,
                                                           progress=False),
}


@pytest.mark.parametrize("name", SEARCHES)
@pytest.mark.parametrize("steps", [5, 40])
def test_equal_budget_counts_distinct_calls_like_lahc(name, steps):
    """LAHC's cache-reduced evaluation count is the budget: SA and GA make exactly that many objective calls."""
    lahc_calls = Counter()
    budget = lahc(lahc_calls, LAYERS, OPS, SearchConfig(steps=steps, seed=1), progress=False).evaluations
    assert budget == len(set(lahc_calls.calls)) == len(lahc_calls.calls)  # LAHC's count: distinct, cached free
    calls = Counter()
    result = SEARCHES[name](calls, budget, seed=1)
    assert result.evaluations == len(calls.calls) == len(set(calls.calls)) == budget
    assert sum(not row["cached"] for row in result.history) == budget
    assert result.best_fitness == max(rugged(dict(zip(LAYERS, c))) for c in calls.calls)


@pytest.mark.parametrize("name", SEARCHES)
def test_search_beats_its_own_start_on_a_toy(name):
    """With 60 evaluations both find a better vector than their first one on 10 seeds out of 10."""
    for seed in range(10):
        result = SEARCHES[name](Counter(), 60, seed=seed)
        assert result.best_fitness > result.history[0]["fitness"]


@pytest.mark.parametrize("name", SEARCHES)
def test_resume_after_kill_equals_uninterrupted(tmp_path, name):
    ref = SEARCHES[name](Counter(), 25, seed=3)
    with pytest.raises(KeyboardInterrupt):
        SEARCHES[name](Counter(kill_after=9), 25, seed=3, csv=tmp_path / "h.csv")
    calls = Counter()
    res = SEARCHES[name](calls, 25, seed=3, csv=tmp_path / "h.csv")
    assert len(calls.calls) == 25 - 9  # finished evaluations come from the file
    assert res.best == ref.best and res.best_fitness == ref.best_fitness
    assert [r["vector"] for r in res.history] == [r["vector"] for r in ref.history]


def test_sa_accepts_worse_early_and_not_late(monkeypatch):
    """The acceptance rule: exp(delta / T), T cooling from t_start to t_end over the budget."""
    assert sa_temperature(0, 41, 2.0, 0.02) == 2.0
    assert sa_temperature(40, 41, 2.0, 0.02) == pytest.approx(0.02)
    temps = [sa_temperature(k, 41, 2.0, 0.02) for k in range(41)]
    assert all(a > b for a, b in zip(temps, temps[1:]))
    # An objective that only gets worse away from the start: every accepted move early is a downhill one.
    start = None

    def downhill(vector):
        nonlocal start
        start = start or dict(vector)
        return -float(sum(vector[k] != start[k] for k in vector))

    res = simulated_annealing(downhill, LAYERS, OPS, 30, seed=0, t_start=50.0, t_end=49.0, progress=False)
    hot = sum(r["accepted"] for r in res.history[1:])
    start = None
    res = simulated_annealing(downhill, LAYERS, OPS, 30, seed=0, t_start=1e-3, t_end=1e-4, progress=False)
    cold = sum(r["accepted"] for r in res.history[1:] if r["fitness"] < -0.5)
    assert hot >= 20 and cold == 0


def test_uniform_scan_scores_each_operator_once_and_keeps_the_best():
    calls = Counter(lambda v: {"tanh": 3.0, "elu": 5.0}.get(v["conv1"], 1.0))
    res = uniform_scan(calls, LAYERS, OPS, progress=False)
    assert len(calls.calls) == len(OPS) and all(len(set(c)) == 1 for c in calls.calls)
    assert res.best == {layer: "elu" for layer in LAYERS} and res.best_fitness == 5.0


def test_ga_keeps_population_and_bad_inputs():
    with pytest.raises(ValueError, match="population must be an integer >= 2, got 1"):
        genetic_algorithm(rugged, LAYERS, OPS, 10, population=1, progress=False)
    with pytest.raises(ValueError, match=r"mutation must be a probability in \[0, 1\], got 1.5"):
        genetic_algorithm(rugged, LAYERS, OPS, 10, mutation=1.5, progress=False)
    with pytest.raises(ValueError, match="evaluations must be an integer >= 1, got 0"):
        simulated_annealing(rugged, LAYERS, OPS, 0, progress=False)
    with pytest.raises(ValueError,
                       match="unknown baseline 'mish'; valid: uniform, swish, random, sa, ga, uniform_safs$"):
        check_baselines(["uniform", "mish"])
    assert check_baselines(["ga", "uniform"]) == ("uniform", "ga")  # registry order


RETRAINED = tuple(n for n, b in BASELINES.items() if not b.stage2)  # every baseline retrained as stage 1 is


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory):
    """A smoke run at 90% with every baseline retrained as stage 1 is (the offline subset: seconds)."""
    out = tmp_path_factory.mktemp("baselines") / "run"
    res = run_safs(SAFSConfig(preset="smoke", seed=4, sparsity=0.9), out=out, progress=False, baselines=RETRAINED)
    return out, res


def test_every_baseline_is_recorded_and_retrained_like_stage1(baseline_run):
    out, res = baseline_run
    stage1 = json.loads((out / "stage1.json").read_text())
    assert list(res["baselines"]) == list(RETRAINED) == ["uniform", "swish", "random", "sa", "ga"]
    for name, b in res["baselines"].items():
        rec = json.loads((out / f"baseline_{name}.json").read_text())
        assert rec["train"] == stage1["train"]  # same retrain: epochs, optimizer, lr, seed
        assert len(rec["history"]) == len(stage1["history"]) == PRESETS["smoke"].finetune_epochs
        assert all(ab == [1.0, 1.0] for ab in rec["alpha_beta"].values())  # scales stay 1, as in stage 1
        assert b["test_accuracy"] == rec["test_accuracy"] == accuracies(res)[name]
        assert res["seconds"][f"baseline_{name}"] == rec["seconds"] > 0
        model = load_safs_model(out, f"baseline_{name}")
        for layer, m in prunable_layers(model).items():  # pruned weights exactly zero in every checkpoint
            assert ((m.weight_orig * m.weight_mask)[m.weight_mask == 0] == 0).all()
    assert set(res["baselines"]["swish"]["activations"].values()) == {"swish"}
    assert res["baselines"]["swish"]["evaluations"] == 0
    uniform = read_history(out / "baseline_uniform_search.csv")
    assert [set(r["vector"].values()) for r in uniform] == [{op} for op in SEARCH_SPACE]
    best = max(uniform, key=lambda r: r["fitness"])["vector"]
    assert res["baselines"]["uniform"]["activations"] == best  # the best on validation, not on test
    for name in ("random", "sa", "ga"):
        assert res["baselines"][name]["evaluations"] == stage1["search"]["evaluations"]
        rows = read_history(out / f"baseline_{name}_search.csv")
        assert sum(not r["cached"] for r in rows) == stage1["search"]["evaluations"]
        assert res["baselines"][name]["best_val_fitness"] == max(r["fitness"] for r in rows)
    table = table1({4: res})
    assert list(table.columns[-6:]) == [*RETRAINED, "seconds"]


def test_baselines_are_read_back_and_added_without_recomputing(baseline_run, tmp_path, monkeypatch):
    out, res = baseline_run
    calls = []
    real = safs_lite.training.fitness.finetune_with
    monkeypatch.setattr(safs_lite.training.fitness, "finetune_with", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = run_safs(SAFSConfig(preset="smoke", seed=4, sparsity=0.9), out=out, progress=False,
                     baselines=RETRAINED)
    assert not calls and again == res
    fewer = run_safs(SAFSConfig(preset="smoke", seed=4, sparsity=0.9), out=out, progress=False, baselines=())
    assert fewer["baselines"] == {} and fewer["test_accuracy"] == res["test_accuracy"]


def test_default_baselines_are_cheap_ones():
    assert not any(BASELINES[n].equal_budget or BASELINES[n].stage2 for n in DEFAULT_BASELINES)
    assert all(BASELINES[n].equal_budget for n in ("random", "sa", "ga"))
