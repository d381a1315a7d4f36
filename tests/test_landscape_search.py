"""study.landscape_search: searches on a table spend exactly their budget of distinct vectors, find what is there to
find, and the predictor learns an additive landscape (small synthetic tables: 5 operators x 3 sites)."""
import itertools

import numpy as np
import pytest

from safs_lite.study import landscape_search as ls

SPACE, SITES = ("a", "b", "c", "d", "e"), ["s1", "s2", "s3"]


def _table(interaction=0.0, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    effects = rng.normal(0, 3, (3, 5))
    digits = np.array(list(itertools.product(range(5), repeat=3)))
    fit = 20 + sum(effects[j][digits[:, j]] for j in range(3))
    return fit + interaction * (digits[:, 0] == digits[:, 1]) + noise * rng.standard_normal(len(fit))


def test_every_search_spends_its_budget_of_distinct_vectors_and_reports_the_best_it_saw():
    fit = _table(noise=0.5)
    for method in [*ls.SEARCHES, "single-operator scan"]:
        r = ls.search_once(method, fit, SITES, SPACE, budget=17, seed=3)
        assert r["evaluations"] == (len(SPACE) if method == "single-operator scan" else 17), method
        assert fit[r["best_index"]] == r["best"]
    obj = ls.TableObjective(fit, SITES, SPACE, budget=2)
    obj({"s1": "a", "s2": "a", "s3": "a"}), obj({"s1": "a", "s2": "a", "s3": "a"})  # a revisit is free
    obj({"s1": "b", "s2": "a", "s3": "a"})
    with pytest.raises(ls._Spent):
        obj({"s1": "c", "s2": "a", "s3": "a"})
    assert obj.index({"s1": "b", "s2": "a", "s3": "a"}) == 25 and obj.best == max(fit[0], fit[25])


def test_the_whole_space_always_reaches_the_top_and_the_summary_counts_hits():
    fit = _table(noise=0.5)
    study = ls.search_study(fit, SITES, SPACE, budgets=(125, 5), repeats=20, methods=["random"], progress=False)
    summary = ls.summarise(study, fit).set_index(["method", "budget"])
    assert summary.loc[("random", 125), "p_top"] == 1.0 and summary.loc[("random", 125), "median_percentile"] > 99
    small = summary.loc[("random", 5)]
    assert 0 <= small["p_top_low"] <= small["p_top"] <= small["p_top_high"] <= 1 and small["p_top"] < 1
    assert list(ls.percentile(np.array([1.0, 2.0, 3.0, 4.0]), [1.0, 3.0, 5.0])) == [0.0, 50.0, 100.0]


def test_the_predictor_learns_an_additive_landscape_and_needs_pairs_for_an_interaction():
    additive, coupled = _table(), _table(interaction=8.0)
    idx = np.arange(125)
    train = np.random.default_rng(1).choice(idx, 40, replace=False)
    pred = ls._fit_predict("ridge", train, additive[train], idx, 3, 5, 0)
    assert ls.top_recall(additive, pred, top=0.05) == 1.0 and np.corrcoef(additive, pred)[0, 1] > 0.99
    plain = ls._fit_predict("ridge", idx, coupled, idx, 3, 5, 0)
    pairs = ls._fit_predict("ridge_pairwise", idx, coupled, idx, 3, 5, 0)
    assert np.abs(pairs - coupled).mean() < np.abs(plain - coupled).mean() / 2
    study = ls.predictor_study(additive, 3, 5, ks=(30,), models=("ridge", "random_forest"), repeats=2)
    assert set(study["model"]) == {"ridge", "random_forest"} and (study["spearman"] > 0.5).all()
    found = ls.predictor_search(additive, 3, 5, budget=20, model="ridge", start=10, batch=5)
    assert found["evaluations"] == 20 and found["best"] == additive.max()


def test_the_benchmark_refuses_a_table_still_being_built(tmp_path, capsys):
    import importlib.util
    import json

    from safs_lite.paths import REPO_ROOT

    spec = importlib.util.spec_from_file_location("landscape_study", REPO_ROOT / "benchmarks" / "landscape_study.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    (tmp_path / "key.json").write_text(json.dumps({"sites": SITES, "space": list(SPACE), "run": "none"}))
    assert tool.main([str(tmp_path)]) == 2
    assert "0 of 125 vectors scored" in capsys.readouterr().err
    assert tool.main([str(tmp_path / "nope")]) == 2
