"""Fixtures shared by the test modules (the repo-root conftest.py sets up folders and the Agg backend)."""
import matplotlib.pyplot as plt
import pytest
import torch

import safs_lite.run.hpo
import safs_lite.training.fitness
from safs_lite.data.core import Data


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every figure a test opened, so figures do not pile up across tests."""
    yield
    plt.close("all")


@pytest.fixture
def split_reads(monkeypatch):
    """Every split a batch is cut from, as (split, inside a decision): a stage-1 candidate's or a
    stage-2 trial's fine-tune counts as a decision (the test split must never be read there)."""
    reads, inside = [], []
    real_batches = Data.batches

    def spy(self, split, *args, **kwargs):
        reads.append((split, bool(inside)))
        return real_batches(self, split, *args, **kwargs)

    def deciding(module):
        real = module.finetune_with

        def wrapper(*args, **kwargs):
            inside.append(1)
            try:
                return real(*args, **kwargs)
            finally:
                inside.pop()
        monkeypatch.setattr(module, "finetune_with", wrapper)

    monkeypatch.setattr(Data, "batches", spy)
    deciding(safs_lite.training.fitness)  # stage-1 candidates
    deciding(safs_lite.run.hpo)      # stage-2 trials
    return reads


@pytest.fixture
def one_thread():
    """This process computes with one thread, as worker processes do (the same numbers in both)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def load_script():
    """Import a script of tools/ or benchmarks/ as a module: `load_script("tools/build_book.py")`."""
    import importlib.util

    from safs_lite.paths import REPO_ROOT

    def load(rel: str):
        spec = importlib.util.spec_from_file_location((REPO_ROOT / rel).stem, REPO_ROOT / rel)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load
