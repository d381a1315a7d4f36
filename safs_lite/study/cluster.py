"""Many independent SAFS runs at once, on Dask: worker processes on this machine, or a cluster of machines.

    python -m safs_lite sweep --preset sweep --workers 2               # a LocalCluster of 2 worker processes
    python -m safs_lite reproduce --scheduler tcp://10.0.0.5:8786      # an existing cluster (SLURM: docs/scaling_out.md)

`run_all` is how `reproduce` and `sweep` run their runs. Each run is one task, computed by
`run_safs` in a single-threaded worker and saved in its own folder of the shared runs folder;
runs that have finished are read back before anything is submitted. A dense network that
several runs share (the runs of one seed) is trained once, by a task of its own, before them.
A run that fails is reported with its config while the others go on. Every run is seeded and
single-threaded, so its numbers are those of a serial call with `--threads 1`.
"""
from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from tqdm.auto import tqdm

from ..data.builtin import load_data
from ..paths import data_dir, runs_dir
from ..run.baselines import DEFAULT_BASELINES
from ..run.config import TRAIN_DEFAULTS, SAFSConfig
from ..run.folders import _signature_of, default_out, load_json
from ..run.safs import run_safs
from ..training.loop import cuda_options


class RunsFailed(ValueError):
    """Some runs failed (each was reported); the others finished and are saved."""


def check_workers(workers: int | None, scheduler: str | None) -> None:
    """One-line ValueError for a bad --workers / --scheduler pair."""
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"--workers must be a positive number of processes, got {workers!r}")
    if workers is not None and scheduler is not None:
        raise ValueError(f"give --workers ({workers}) or --scheduler ({scheduler}), not both")


def run_all(configs: Sequence[SAFSConfig], workers: int | None = None, scheduler: str | None = None,
            data_root: str | os.PathLike | None = None, runs: str | os.PathLike | None = None,
            device: str = "cpu", progress: bool = True, baselines=DEFAULT_BASELINES,
            storage: str | None = None, on_result: Callable[[int, dict, Path], None] | None = None,
            desc: str = "runs") -> list[dict]:
    """Run (or read back) every config's SAFS run, here or on a Dask cluster; results in the configs' order.

    Args:
        configs: the runs (validated).
        workers: run on a LocalCluster of this many single-threaded worker processes.
        scheduler: run on the Dask cluster whose scheduler has this address (tcp://host:8786);
            its workers must see the same data and runs folders (a shared file system).
            Neither: one after another in this process.
        data_root, runs, device, baselines, storage: passed to every `run_safs`.
        progress: a progress bar of runs done (serially: also each run's own bars).
        on_result: called as on_result(index, results, run folder) when a run is done or read back.
        desc: the progress bar's label.

    Returns:
        Each run's results dict (its results.json), in the order of `configs`.

    Raises:
        RunsFailed: after every other run finished, when some failed (each is named on stderr).
    """
    check_workers(workers, scheduler)
    # Workers get absolute folders: their working directory and environment may differ from this one.
    data_root, runs = str(data_dir(data_root)), str(runs_dir(runs))
    # A worker runs single-threaded (`_worker_setup`): its runs' keys, and so their folders, say 1 thread.
    threads = None if workers is None and scheduler is None else 1
    outs = [default_out(cfg, runs, data_root=data_root, device=device, threads=threads) for cfg in configs]
    results: dict[int, dict] = {}
    failures: list[str] = []
    kwargs = dict(data_root=data_root, runs=runs, device=device, baselines=baselines, storage=storage)

    def done(i: int, res: dict) -> None:
        _check_data(configs[i], res, data_root, outs[i])
        results[i] = res
        if on_result is not None:
            on_result(i, res, outs[i])

    if workers is None and scheduler is None:
        for i, cfg in enumerate(tqdm(configs, desc=f"{desc} ({_runs(len(configs))})", disable=not progress)):
            try:
                done(i, run_safs(cfg, progress=progress, **kwargs))
            except Exception as err:  # noqa: BLE001 (named and counted; the other runs go on)
                failures.append(_report(cfg, outs[i], err))
        return _finish(results, failures, len(configs))

    todo: dict[Path, list[int]] = {}  # run folder -> the configs naming it (a seed given twice runs once)
    for i, cfg in enumerate(configs):
        if (outs[i] / "results.json").exists():  # finished: read back, never submitted
            try:
                done(i, load_json(outs[i] / "results.json"))
            except ValueError as err:  # unreadable, or computed on other data
                failures.append(_report(cfg, outs[i], err))
        else:
            todo.setdefault(outs[i], []).append(i)
    if todo:
        from dask.distributed import as_completed

        with _client(workers, scheduler) as client:
            bar = tqdm(total=len(configs), initial=len(results), desc=f"{desc} ({_runs(len(configs))})",
                       disable=not progress)
            dense, futures = {}, {}  # one task per dense network the runs need, before them
            for n, (out, indices) in enumerate(todo.items()):
                cfg = configs[indices[0]]
                group = _dense_group(cfg)
                if group not in dense:
                    dense[group] = client.submit(_train_dense, cfg, data_root, runs, device, pure=False,
                                                 key=f"dense-{cfg.model}-{cfg.dataset}-s{cfg.seed}-{len(dense)}")
                futures[client.submit(_run_one, cfg, dense[group], kwargs, pure=False, key=out.name,
                                      priority=-n)] = indices  # submitted first, started first
            for future in as_completed(futures):
                indices = futures[future]
                if future.status == "finished":
                    try:
                        for i in indices:
                            done(i, future.result())
                    except ValueError as err:  # computed on other data: not a result of this run
                        failures.append(_report(configs[indices[0]], outs[indices[0]], err, bar))
                else:
                    failures.append(_report(configs[indices[0]], outs[indices[0]], future.exception(), bar))
                bar.update(len(indices))
            bar.close()
    return _finish(results, failures, len(configs))


def _check_data(cfg: SAFSConfig, res: dict, data_root: str, out: Path) -> None:
    """ValueError unless a run's results were computed on the data this process finds in `data_root`.

    A worker that lacks the data falls back to what it has (MNIST: the 5,000-image subset); its
    numbers would otherwise land in the table under this run's name.
    """
    want = _signature_of(cfg.dataset, data_root, cfg.seed)
    got = res.get("data", {}).get("signature") if isinstance(res, dict) else None
    if got != want:
        source = res.get("data", {}).get("source") if isinstance(res, dict) else None
        raise ValueError(f"{out.name}: computed on data {got} ({source}), not on {want} found in {data_root}; "
                         "give every worker the same data (--data on a shared file system)")


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _finish(results: dict[int, dict], failures: list[str], n: int) -> list[dict]:
    if failures:
        raise RunsFailed(f"{len(failures)} of {_runs(n)} failed ({'; '.join(failures)}); the others are saved, "
                         "and a rerun computes only the failed ones")
    return [results[i] for i in range(n)]


def _report(cfg: SAFSConfig, out: Path, err: BaseException, bar=None) -> str:
    """Say on stderr which run failed and why, in one line; return a short form for the summary."""
    what = (f"{cfg.model}/{cfg.dataset} sparsity {cfg.sparsity:g} {cfg.pruning} preset {cfg.preset} "
            f"seed {cfg.seed}")
    why = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
    line = f"run failed: {what} ({out.name}): {why}"
    (bar.write if bar is not None else tqdm.write)(line, file=sys.stderr)
    return f"{what}: {why}"


def _dense_group(cfg: SAFSConfig) -> tuple:
    """What the dense network of a run depends on: runs of one group share it."""
    return cfg.model, cfg.dataset, cfg.seed, cfg.budgets().dense_epochs, cfg.amp, cfg.channels_last


class _client:
    """A Dask client on a new LocalCluster (closed afterwards) or on the scheduler at `scheduler`."""

    def __init__(self, workers: int | None, scheduler: str | None):
        self.workers, self.scheduler, self.cluster = workers, scheduler, None

    def __enter__(self):
        import logging

        from dask.distributed import Client, LocalCluster

        if self.scheduler is not None:
            try:
                self.client = Client(self.scheduler)  # waits distributed.comm.timeouts.connect (30 s)
            except (OSError, TimeoutError, ValueError) as err:
                raise ValueError(f"--scheduler {self.scheduler}: no Dask scheduler answers there "
                                 f"({type(err).__name__}); start one (docs/scaling_out.md) or use --workers N") \
                    from None
            return self.client
        # One thread per process: runs are single-threaded, so N processes use N cores.
        self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                    dashboard_address=None, silence_logs=logging.ERROR)
        self.client = Client(self.cluster)
        return self.client

    def __exit__(self, *exc):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _worker_setup() -> None:
    """One thread per run, and glibc's usual memory behaviour back in a Dask worker.

    Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also pins glibc's mmap
    threshold at 128 KiB: every tensor of a training step is then mapped and unmapped, and a run
    took 1.7x as long as in a plain process (measured, LeNet-5). The thresholds are set to the
    values glibc's own adaptive setting reaches instead.
    """
    import torch

    torch.set_num_threads(1)  # one core per worker: N workers, N runs at full speed, and serial numbers
    if os.environ.get("MALLOC_TRIM_THRESHOLD_") and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
        except OSError:  # not glibc: nothing to undo
            return
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: 32 MiB
        libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD: 64 MiB


def _train_dense(cfg: SAFSConfig, data_root: str, runs: str, device: str) -> str:
    """Task: train (or find cached) the dense network that `cfg`'s run starts from; its cache folder name."""
    from ..run.pipeline import train_dense

    _worker_setup()
    with cuda_options(cfg.amp, cfg.channels_last):
        data = load_data(cfg.dataset, root=data_root, seed=cfg.seed, quiet=True)
        if device != "cpu":
            data = data.to(device)
        base = replace(TRAIN_DEFAULTS[cfg.model], seed=cfg.seed, epochs=cfg.budgets().dense_epochs)
        train_dense(cfg.model, data, base, runs=runs, progress=False, device=device)
    return "dense network ready"


def _run_one(cfg: SAFSConfig, _dense: str, kwargs: dict) -> dict:
    """Task: one SAFS run (after its dense network's task); its results dict."""
    _worker_setup()
    return run_safs(cfg, progress=False, **kwargs)
