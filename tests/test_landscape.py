"""study.landscape: the whole-space table is indexed as documented, resumes and shards, is keyed on what changes
it, reads no test image, and its description measures what it says (dead share, best single operator, additivity)."""
import itertools

import numpy as np
import pandas as pd
import pytest

from safs_lite.cli import main as cli
from safs_lite.method.operators import SEARCH_SPACE
from safs_lite.paths import REPO_ROOT
from safs_lite.study import landscape as ls

RUN = REPO_ROOT / "results" / "evidence" / "runs" / "safs-lenet5-mnist-0.99-layerwise-cpu-s0"
TINY = ls.Fidelity(epochs=1, subset=64, lr=1e-2)


def test_index_order_is_the_product_order_and_round_trips():
    for index, ops in enumerate(itertools.islice(ls.vectors(4), 0, 2000, 7)):
        assert ls.vector_of(index * 7, 4) == ops and ls.index_of(ops) == index * 7
    last = len(SEARCH_SPACE) ** 4 - 1
    assert ls.vector_of(last, 4) == (SEARCH_SPACE[-1],) * 4
    with pytest.raises(ValueError, match="outside"):
        ls.vector_of(last + 1, 4)
    with pytest.raises(ValueError, match="unknown operator 'nope'"):
        ls.index_of(["relu6", "nope"])


def test_chunks_resume_shard_and_equal_a_direct_evaluation(tmp_path, monkeypatch, split_reads):
    monkeypatch.setattr(ls, "CHUNK", 2)
    folder = ls.build(RUN, TINY, shard=(1, 2), max_chunks=2, root=tmp_path, progress=False)
    assert sorted(p.name for p in folder.glob("chunk-*")) == ["chunk-00001.csv.gz", "chunk-00003.csv.gz"]
    assert {s for s, _ in split_reads} == {"train", "val"}  # the table never reads a test image
    first = ls.chunk_path(folder, 1).read_bytes()
    ls.build(RUN, TINY, shard=(0, 2), max_chunks=1, root=tmp_path, progress=False)  # the other shard
    ls.build(RUN, TINY, shard=(1, 2), max_chunks=1, root=tmp_path, progress=False)  # resumes: chunk 5, not 1
    assert ls.chunk_path(folder, 1).read_bytes() == first
    assert sorted(int(p.name[6:11]) for p in folder.glob("chunk-*")) == [0, 1, 3, 5]
    table = ls.load_table(folder)
    assert list(table["index"]) == [0, 1, 2, 3, 6, 7, 10, 11] and not table.attrs["complete"]
    row = table[table["index"] == 7].iloc[0]
    direct = ls.Mask(RUN).evaluate(ls.vector_of(7, 4), TINY)  # the same seed gives the same numbers
    assert (row["val_acc"], row["val_loss"]) == pytest.approx((direct["val_acc"], direct["val_loss"]), rel=1e-5)
    assert tuple(row[s] for s in table.attrs["key"]["sites"]) == ls.vector_of(7, 4)


def test_another_fidelity_or_a_changed_key_never_mixes_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(ls, "CHUNK", 1)
    a = ls.build(RUN, TINY, max_chunks=1, root=tmp_path, progress=False)
    b = ls.build(RUN, ls.Fidelity(epochs=1, subset=32, lr=1e-2), max_chunks=1, root=tmp_path, progress=False)
    assert a != b
    key = (a / "key.json").read_text().replace('"kit": "', '"kit": "0.0.0-')
    (a / "key.json").write_text(key)
    with pytest.raises(ValueError, match="differs from this build's key"):
        ls.build(RUN, TINY, max_chunks=1, root=tmp_path, progress=False)


def _synthetic(effects, interaction=0.0):
    """A complete table over 3 operators and 3 sites whose accuracy is the sum of per-site effects (+ one pair)."""
    space, sites = ("a", "b", "c"), ["s1", "s2", "s3"]
    rows = []
    for i, ops in enumerate(itertools.product(space, repeat=3)):
        acc = 20 + sum(effects[j][space.index(op)] for j, op in enumerate(ops))
        acc += interaction * (ops[0] == ops[1] == "c")
        rows.append({"index": i, "val_acc": acc, "val_loss": 1.0, "train_loss": 1.0, "seconds": 0.5,
                     **dict(zip(sites, ops))})
    table = pd.DataFrame(rows)
    table["fitness"] = table["val_acc"]
    table.attrs.update(key={"sites": sites, "space": list(space)}, complete=True)
    return table


def test_description_measures_dead_share_best_single_and_additivity():
    effects = [(0, 5, -9), (0, 1, 2), (0, -3, 4)]
    d = ls.describe(_synthetic(effects), dead_level=12.0)
    assert d["r2_main"] == pytest.approx(1.0) and d["best"]["ops"] == ["b", "c", "c"]
    assert d["best_single"]["ops"] == ["b", "b", "b"] and d["best_single"]["val_acc"] == 23
    assert d["dead_share"] == pytest.approx(np.mean([20 + sum(e[k] for e, k in zip(effects, ks)) <= 12
                                                      for ks in itertools.product(range(3), repeat=3)]))
    coupled = ls.describe(_synthetic(effects, interaction=30.0), dead_level=0.0)
    assert coupled["r2_main"] < 0.9 and coupled["r2_pairwise"] == pytest.approx(1.0)
    assert coupled["best"]["ops"] == ["c", "c", "c"]


def test_the_command_reports_and_refuses_bad_values(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAFS_RESULTS", str(tmp_path))
    monkeypatch.setattr(ls, "CHUNK", 2)
    assert cli(["landscape", str(RUN), "--subset", "64", "--max-chunks", "1"]) == 0
    out = capsys.readouterr().out
    assert "2 of 28561 vectors scored" in out and "partial table" in out
    assert cli(["landscape", str(RUN), "--shard", "2/2"]) == 2
    assert "--shard '2/2'" in capsys.readouterr().err
    assert cli(["landscape", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
