"""Tests of safs_lite.method.lahc and safs_lite.method.searchlog: LAHC, random search, the cache and CSV resume (toy objectives, no torch)."""

import random

import pytest

from safs_lite.method import searchlog
from safs_lite.method.lahc import MOVES, SearchConfig, lahc, lahc_accepts, random_search
from safs_lite.method.searchlog import format_vector, parse_vector, read_history

LAYERS = ["conv1", "conv2", "fc1", "fc2", "fc3"]
OPS = ["relu6", "tanh", "elu", "gelu", "symlog"]


def n_tanh(vector):
    """Toy objective: number of layers using tanh (optimum = number of layers)."""
    return float(sum(op == "tanh" for op in vector.values()))


class Counting:
    """Objective wrapper that records every call; raises after ``fail_after`` calls if given."""

    def __init__(self, fn=n_tanh, fail_after=None):
        self.fn, self.fail_after, self.calls = fn, fail_after, []

    def __call__(self, vector):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        self.calls.append(format_vector(vector))
        return self.fn(vector)


def without_seconds(rows):
    return [{key: value for key, value in row.items() if key != "seconds"} for row in rows]


def quiet_lahc(objective, layers=LAYERS, ops=OPS, **kwargs):
    return lahc(objective, layers, ops, progress=False, **kwargs)


# ---------------------------------------------------------------- acceptance rule


def test_accepts_better_or_equal_than_current():
    assert lahc_accepts(0.8, current=0.7, late=0.9)
    assert lahc_accepts(0.7, current=0.7, late=0.9)


def test_accepts_worse_than_current_if_no_worse_than_late_slot():
    assert lahc_accepts(0.6, current=0.7, late=0.5)
    assert lahc_accepts(0.5, current=0.7, late=0.5)


def test_rejects_worse_than_current_and_late_slot():
    assert not lahc_accepts(0.4, current=0.7, late=0.5)


# ---------------------------------------------------------------- moves


def test_moves_keep_layers_and_change_few_positions():
    rng = random.Random(1)
    vector = {layer: "relu6" for layer in LAYERS}
    distinct = dict(zip(LAYERS, OPS))  # every layer a different op, so any swap shows
    assert max(sum(new[k] != distinct[k] for k in LAYERS)
               for new in (MOVES["reference"](distinct, LAYERS, OPS, rng) for _ in range(50))) >= 2
    for _ in range(200):
        one = MOVES["one_layer"](vector, LAYERS, OPS, rng)
        ref = MOVES["reference"](vector, LAYERS, OPS, rng)
        assert list(one) == LAYERS and list(ref) == LAYERS
        assert sum(one[k] != vector[k] for k in LAYERS) <= 1
        assert sum(ref[k] != vector[k] for k in LAYERS) <= 3  # one set + one swap
        assert set(ref.values()) <= set(OPS)
    assert vector == {layer: "relu6" for layer in LAYERS}  # input not modified


def test_single_layer_reference_move_skips_swap():
    result = quiet_lahc(n_tanh, layers=["only"], ops=["elu", "tanh"], config=SearchConfig(steps=15))
    assert result.best == {"only": "tanh"}
    assert result.evaluations == 2  # a space of two vectors; the rest are cache hits
    assert sum(row["cached"] for row in result.history) == 16 - 2


# ---------------------------------------------------------------- LAHC on a toy objective


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("move", ["reference", "one_layer"])
def test_lahc_finds_toy_optimum(seed, move):
    layers, ops = LAYERS[:3], OPS[:3]
    result = quiet_lahc(n_tanh, layers, ops, config=SearchConfig(steps=300, move=move, seed=seed))
    assert result.best == {layer: "tanh" for layer in layers}
    assert result.best_fitness == 3.0


def test_best_is_max_of_evaluated_and_best_column_is_running_max():
    result = quiet_lahc(n_tanh, config=SearchConfig(steps=40, seed=3))
    fitnesses = [row["fitness"] for row in result.history]
    assert result.best_fitness == max(fitnesses)
    assert n_tanh(result.best) == result.best_fitness
    best_column = [row["best_fitness"] for row in result.history]
    running_max = [max(fitnesses[: i + 1]) for i in range(len(fitnesses))]
    assert best_column == running_max
    assert all(a <= b for a, b in zip(best_column, best_column[1:]))
    assert [row["step"] for row in result.history] == list(range(41))


# ---------------------------------------------------------------- history length semantics (hand-checked)


def scripted_move(script):
    """A move that returns the next vector of ``script``, so a trace can be checked by hand."""
    queue = list(script)
    return lambda vector, layers, ops, rng: {"x": queue.pop(0)}


FITNESS = {"a": 1.0, "b": 3.0, "c": 2.0, "d": 0.0}


def test_late_acceptance_hand_checked_trace(monkeypatch):
    # L = 2, start at a (1): history [1, 1]
    # step 1: b (3) >= current 1          -> accept; history[1] = 3 -> [1, 3]
    # step 2: c (2) <  current 3, >= history[0] = 1 -> accept (late); history[0] = 2 -> [2, 3]
    # step 3: d (0) <  current 2 and < history[1] = 3 -> reject; history[1] = 2 -> [2, 2]
    # step 4: b (3) again: accept, from the cache
    monkeypatch.setitem(MOVES, "scripted", scripted_move("bcdb"))
    objective = Counting(lambda v: FITNESS[v["x"]])
    config = SearchConfig(steps=4, history=2, move="scripted")
    result = quiet_lahc(objective, ["x"], list(FITNESS), config=config, init={"x": "a"})
    assert [row["vector"]["x"] for row in result.history] == list("abcdb")
    assert [row["accepted"] for row in result.history] == [True, True, True, False, True]
    assert [row["cached"] for row in result.history] == [False, False, False, False, True]
    assert result.best == {"x": "b"} and result.best_fitness == 3.0
    assert result.evaluations == 4 == len(objective.calls)

    # L = 1 is plain hill climbing (ties accepted): the worse move at step 2 is rejected
    monkeypatch.setitem(MOVES, "scripted", scripted_move("bcdb"))
    climb = quiet_lahc(lambda v: FITNESS[v["x"]], ["x"], list(FITNESS),
                       config=SearchConfig(steps=4, history=1, move="scripted"), init={"x": "a"})
    assert [row["accepted"] for row in climb.history] == [True, True, False, False, True]


def test_history_slot_records_current_after_rejection(monkeypatch):
    # L = 2, start at a (1): history [1, 1]
    # step 1: b (3) accepted; history[1] = 3 -> [1, 3]
    # step 2: d (0) rejected; history[0] = current 3 -> [3, 3]  (not left at 1, not set to 0)
    # step 3: c (2) < 3 and < history[1] = 3 -> rejected
    # step 4: c (2) < 3 and < history[0] = 3 -> rejected (a slot left at 1 would accept it)
    monkeypatch.setitem(MOVES, "scripted", scripted_move("bdcc"))
    result = quiet_lahc(lambda v: FITNESS[v["x"]], ["x"], list(FITNESS),
                        config=SearchConfig(steps=4, history=2, move="scripted"), init={"x": "a"})
    assert [row["accepted"] for row in result.history] == [True, True, False, False, False]
    assert result.best == {"x": "b"}


# ---------------------------------------------------------------- determinism and cache


def test_same_seed_same_history_different_seed_differs():
    first = quiet_lahc(n_tanh, config=SearchConfig(steps=25, seed=7))
    again = quiet_lahc(n_tanh, config=SearchConfig(steps=25, seed=7))
    other = quiet_lahc(n_tanh, config=SearchConfig(steps=25, seed=8))
    assert without_seconds(first.history) == without_seconds(again.history)
    assert [r["vector"] for r in first.history] != [r["vector"] for r in other.history]


def test_cache_calls_equal_distinct_vectors():
    objective = Counting()
    # 2 layers x 2 ops = 4 vectors, so 30 steps must revisit
    result = quiet_lahc(objective, ["a", "b"], ["tanh", "elu"], config=SearchConfig(steps=30))
    distinct = {format_vector(row["vector"]) for row in result.history}
    assert len(objective.calls) == result.evaluations == len(distinct) <= 4
    assert len(set(objective.calls)) == len(objective.calls)  # never evaluated twice
    assert any(row["cached"] for row in result.history)
    for row in result.history:
        if row["cached"]:
            assert row["seconds"] == 0.0
    first_seen = {}
    for row in result.history:  # cached == "seen at an earlier step"
        key = format_vector(row["vector"])
        assert row["cached"] == (key in first_seen)
        first_seen.setdefault(key, row["fitness"])


# ---------------------------------------------------------------- random search


def test_random_search_distinct_exact_budget_and_not_a_walk():
    objective = Counting()
    result = random_search(objective, LAYERS, OPS, evaluations=20, seed=0, progress=False)
    vectors = [format_vector(row["vector"]) for row in result.history]
    assert result.evaluations == 20 == len(objective.calls) == len(set(vectors))
    assert not any(row["cached"] for row in result.history)
    distances = [sum(a[k] != b[k] for k in LAYERS) for a, b in
                 zip([r["vector"] for r in result.history], [r["vector"] for r in result.history][1:])]
    assert max(distances) > 2  # independent samples, not a walk of small moves
    assert result.best_fitness == max(row["fitness"] for row in result.history)
    # accepted == became the new best
    best = float("-inf")
    for row in result.history:
        assert row["accepted"] == (row["fitness"] > best)
        best = max(best, row["fitness"])
        assert row["best_fitness"] == best


def test_random_search_stops_when_space_is_exhausted():
    result = random_search(n_tanh, ["a", "b"], ["tanh", "elu"], evaluations=10, progress=False)
    assert result.evaluations == 4 == len({format_vector(r["vector"]) for r in result.history})
    assert result.best == {"a": "tanh", "b": "tanh"}


def test_random_search_matches_lahc_budget():
    lahc_result = quiet_lahc(n_tanh, config=SearchConfig(steps=20))
    rs = random_search(n_tanh, LAYERS, OPS, evaluations=lahc_result.evaluations, progress=False)
    assert rs.evaluations == lahc_result.evaluations


# ---------------------------------------------------------------- CSV and resume


def test_csv_round_trip(tmp_path):
    path = tmp_path / "run" / "lahc.csv"
    result = quiet_lahc(n_tanh, config=SearchConfig(steps=10), csv_path=path)
    assert path.read_text().splitlines()[0] == ",".join(searchlog.CSV_COLUMNS)
    assert read_history(path) == result.history
    assert parse_vector(format_vector(result.best)) == result.best


@pytest.mark.parametrize("kill_after", [1, 4, 9])
def test_lahc_resume_after_kill_equals_uninterrupted(tmp_path, kill_after):
    config = SearchConfig(steps=25, seed=5)
    full_objective = Counting()
    full = quiet_lahc(full_objective, config=config)

    path = tmp_path / "lahc.csv"
    killed = Counting(fail_after=kill_after)
    with pytest.raises(KeyboardInterrupt):
        quiet_lahc(killed, config=config, csv_path=path)
    assert len(killed.calls) == kill_after
    assert sum(not row["cached"] for row in read_history(path)) == kill_after  # finished work was saved

    resumed_objective = Counting()
    resumed = quiet_lahc(resumed_objective, config=config, csv_path=path)
    all_calls = killed.calls + resumed_objective.calls
    assert len(all_calls) == len(full_objective.calls) == resumed.evaluations
    assert len(set(all_calls)) == len(all_calls)  # no vector evaluated twice
    assert resumed.best == full.best and resumed.best_fitness == full.best_fitness
    assert without_seconds(resumed.history) == without_seconds(full.history)
    assert read_history(path) == resumed.history

    # a third call finds everything done and calls nothing
    idle = Counting()
    assert without_seconds(quiet_lahc(idle, config=config, csv_path=path).history) == without_seconds(full.history)
    assert idle.calls == []


def test_lahc_resume_tolerates_cut_off_last_line(tmp_path):
    config = SearchConfig(steps=12, seed=2)
    path = tmp_path / "lahc.csv"
    full = quiet_lahc(n_tanh, config=config)
    with pytest.raises(KeyboardInterrupt):
        quiet_lahc(Counting(fail_after=3), config=config, csv_path=path)
    with open(path, "a") as file:
        file.write("7,conv1=ta")  # a write interrupted by the kill
    resumed = quiet_lahc(n_tanh, config=config, csv_path=path)
    assert without_seconds(resumed.history) == without_seconds(full.history)
    assert len(read_history(path)) == 13


def test_random_search_resume(tmp_path):
    path = tmp_path / "random.csv"
    full = random_search(n_tanh, LAYERS, OPS, evaluations=15, seed=3, progress=False)
    killed = Counting(fail_after=6)
    with pytest.raises(KeyboardInterrupt):
        random_search(killed, LAYERS, OPS, evaluations=15, seed=3, csv_path=path, progress=False)
    rest = Counting()
    resumed = random_search(rest, LAYERS, OPS, evaluations=15, seed=3, csv_path=path, progress=False)
    assert len(killed.calls) + len(rest.calls) == 15
    assert not set(killed.calls) & set(rest.calls)
    assert without_seconds(resumed.history) == without_seconds(full.history)


def test_mismatching_csv_raises(tmp_path):
    path = tmp_path / "lahc.csv"
    quiet_lahc(n_tanh, config=SearchConfig(steps=5, seed=0), csv_path=path)
    before = path.read_text()
    with pytest.raises(ValueError, match="different search"):
        quiet_lahc(n_tanh, config=SearchConfig(steps=5, seed=1), csv_path=path)
    with pytest.raises(ValueError, match="different search"):
        quiet_lahc(n_tanh, layers=LAYERS[:4], config=SearchConfig(steps=5), csv_path=path)
    assert path.read_text() == before  # a rejected resume writes nothing


def test_csv_with_same_vectors_but_other_decisions_raises(monkeypatch, tmp_path):
    path = tmp_path / "lahc.csv"
    objective = lambda v: FITNESS[v["x"]]  # noqa: E731
    monkeypatch.setitem(MOVES, "scripted", scripted_move("bcdb"))
    quiet_lahc(objective, ["x"], list(FITNESS), config=SearchConfig(steps=4, history=2, move="scripted"),
               init={"x": "a"}, csv_path=path)
    monkeypatch.setitem(MOVES, "scripted", scripted_move("bcdb"))  # same vectors, L = 1 rejects step 2
    with pytest.raises(ValueError, match="different search"):
        quiet_lahc(objective, ["x"], list(FITNESS), config=SearchConfig(steps=4, history=1, move="scripted"),
                   init={"x": "a"}, csv_path=path)


@pytest.mark.parametrize("text", [
    "step,vector,fitness\n",  # broken header
    "step,vector,fitness,accepted,best_fitness,cached,seconds\n0,conv1=tanh,oops,True,1.0,False,0.1\n",
    "step,vector,fitness,accepted,best_fitness,cached,seconds\n0,conv1=tanh,1.0,maybe,1.0,False,0.1\n",
    "step,vector,fitness,accepted,best_fitness,cached,seconds\n0,conv1:tanh,1.0,True,1.0,False,0.1\n",
    "step,vector,fitness,accepted,best_fitness,cached,seconds\n3,conv1=tanh,1.0,True,1.0,False,0.1\n",
])
def test_corrupt_csv_raises_naming_file(tmp_path, text):
    path = tmp_path / "broken.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match="broken.csv"):
        read_history(path)
    with pytest.raises(ValueError, match="broken.csv"):
        quiet_lahc(n_tanh, config=SearchConfig(steps=3), csv_path=path)


# ---------------------------------------------------------------- input validation


@pytest.mark.parametrize("kwargs, message", [
    ({"layers": []}, "layers is empty"),
    ({"ops": []}, "ops is empty"),
    ({"ops": ["tanh", "tanh"]}, "duplicate"),
    ({"layers": ["a=b"]}, "without"),
    ({"config": SearchConfig(steps=-1)}, "steps must be >= 0"),
    ({"config": SearchConfig(history=0)}, "history length must be >= 1"),
    ({"config": SearchConfig(move="teleport")}, "valid moves: one_layer, reference"),
    ({"init": {"conv1": "tanh"}}, "init must map exactly"),
    ({"init": {layer: "swish2" for layer in LAYERS}}, "unknown ops"),
])
def test_lahc_bad_inputs_raise(kwargs, message):
    args = {"layers": LAYERS, "ops": OPS, **kwargs}
    with pytest.raises(ValueError, match=message):
        lahc(n_tanh, progress=False, **args)


@pytest.mark.parametrize("layers, ops, evaluations, message", [
    ([], OPS, 5, "layers is empty"),
    (LAYERS, [], 5, "ops is empty"),
    (LAYERS, OPS, 0, "evaluations must be >= 1"),
])
def test_random_search_bad_inputs_raise(layers, ops, evaluations, message):
    with pytest.raises(ValueError, match=message):
        random_search(n_tanh, layers, ops, evaluations=evaluations, progress=False)


def test_nan_fitness_raises():
    with pytest.raises(ValueError, match="NaN"):
        quiet_lahc(lambda v: float("nan"), config=SearchConfig(steps=2))
