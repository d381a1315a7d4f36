"""study.landscape_fidelity: a fixed sample of the table's vectors retrained, resumable, validation only."""
import numpy as np
import pandas as pd
import pytest

from safs_lite.paths import REPO_ROOT
from safs_lite.study import landscape as ls
from safs_lite.study import landscape_fidelity as lf

RUN = REPO_ROOT / "results" / "evidence" / "runs" / "safs-lenet5-mnist-0.99-layerwise-cpu-s0"
TINY = ls.Fidelity(epochs=1, subset=64, lr=1e-2)


def test_a_larger_sample_keeps_the_smaller_ones_vectors():
    small, large = lf.sample_indices(28561, 10, seed=3), lf.sample_indices(28561, 40, seed=3)
    assert large[:10] == small and len(set(large)) == 40
    assert lf.sample_indices(28561, 10, seed=4) != small
    with pytest.raises(ValueError, match="sample 0: must be between 1 and the 28561 vectors"):
        lf.sample_indices(28561, 0)


def test_the_check_resumes_reads_no_test_image_and_takes_cheap_numbers_from_the_table(tmp_path, monkeypatch,
                                                                                       split_reads):
    monkeypatch.setattr(ls, "CHUNK", 2)
    monkeypatch.setattr(lf, "final_config", lambda run, epochs: lf.TrainConfig(epochs=epochs, train_subset=64,
                                                                                engine="compact", seed=0))
    ls.build(RUN, TINY, max_chunks=1, root=tmp_path, progress=False)  # the table holds vectors 0 and 1
    monkeypatch.setattr(lf, "sample_indices", lambda total, k, seed=0: [1, 5, 9][:k])
    path = lf.check(RUN, sample=2, epochs=1, fidelity=TINY, root=tmp_path, progress=False)
    rows = pd.read_csv(path)
    assert list(rows["index"]) == [1, 5]
    assert {s for s, _ in split_reads} == {"train", "val"}  # neither the table nor the retrains read the test split
    table = ls.load_table(path.parent).set_index("index")
    assert rows.loc[0, "cheap_val_acc"] == pytest.approx(table.at[1, "val_acc"])  # from the table
    direct = ls.Mask(RUN).evaluate(ls.vector_of(5, 4), TINY)  # not in the table: computed at its fidelity
    assert rows.loc[1, "cheap_val_loss"] == pytest.approx(direct["val_loss"], rel=1e-5)

    calls = []
    real = lf.retrain
    monkeypatch.setattr(lf, "retrain", lambda mask, ops, cfg: calls.append(ops) or real(mask, ops, cfg))
    lf.check(RUN, sample=3, epochs=1, fidelity=TINY, root=tmp_path, progress=False)
    grown = pd.read_csv(path)
    assert calls == [ls.vector_of(9, 4)] and list(grown["index"]) == [1, 5, 9]  # only the new vector retrained
    pd.testing.assert_frame_equal(grown.iloc[:2], rows)


def test_rho_is_over_all_vectors_and_over_those_that_learn():
    final = np.array([10.0, 11.0, 30.0, 50.0, 40.0, 60.0])
    cheap = np.array([12.0, 11.0, 20.0, 21.0, 22.0, 23.0])
    rows = pd.DataFrame({"cheap_val_acc": cheap, "cheap_val_loss": 1.0, "final_val_acc": final,
                         "final_seconds": 360.0})
    s = lf.summarise(rows, majority=11.35)
    assert s["learning"] == 4 and s["cpu_hours"] == pytest.approx(0.6)
    assert s["rho"] == pytest.approx(1 - 6 * 4 / 210)  # two pairs swapped: the dead vectors, and 50 / 40
    assert s["rho_learning"] == pytest.approx(1 - 6 * 2 / 60)  # (30, 50, 40, 60) against (20, 21, 22, 23)
