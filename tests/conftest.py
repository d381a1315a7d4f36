"""Fixtures shared by the test modules (the repo-root conftest.py sets up folders and the Agg backend)."""
import matplotlib.pyplot as plt
import pytest


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every figure a test opened, so figures do not pile up across tests."""
    yield
    plt.close("all")
