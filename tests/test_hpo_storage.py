"""Stage-2 studies shared by several processes: a journal file and a real PostgreSQL server, the exact
trial budget, no trial evaluated twice, a killed worker's trial retried, and `hpo-worker` on a real run."""
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from test_data import write_idx

import safs_lite.run.hpo
from safs_lite import PRESETS, SAFSConfig, run_safs
from safs_lite.run.key import config_hash
from safs_lite.run.storage import LOST, PID, RETRY_OF, SLOT, check_storage, next_claim, open_storage

TRIALS = 6

# One worker process: tune() on a small pruned LeNet-5 and synthetic data, each trial slowed so that
# the processes overlap; it waits at a barrier until every worker has started.
WORKER = r"""
import os, sys, time, pathlib, torch
torch.set_num_threads(1)
from dataclasses import replace
import safs_lite.run.hpo as hpo
from safs_lite import Data, build_model, get_activations, prune_model
from safs_lite.run.config import TRAIN_DEFAULTS
url, name, trials, slow, barrier, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), \
    pathlib.Path(sys.argv[5]), int(sys.argv[6])
g = torch.Generator().manual_seed(0)
x, y = torch.rand(384, 1, 28, 28, generator=g), torch.randint(0, 10, (384,), generator=g)
data = Data.from_tensors((x[:256], y[:256]), (x[320:], y[320:]), val=(x[256:320], y[256:320]))
model = prune_model(build_model("lenet5", seed=0), 0.9)
real = hpo.finetune_with
def slowed(*args, **kwargs):
    time.sleep(slow)
    return real(*args, **kwargs)
hpo.finetune_with = slowed
(barrier / str(os.getpid())).touch()
while len(list(barrier.iterdir())) < n:
    time.sleep(0.05)
base = replace(TRAIN_DEFAULTS["lenet5"], epochs=1, batch_size=64)
study = hpo.tune(model, data, get_activations(model), base, trials, barrier.parent / "folder", seed=0,
                 storage=url, study_name=name, progress=False)
print("finished", len(study.get_trials(states=hpo.FINISHED)))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL cluster (Debian's package) on a Unix socket in a temporary folder, stopped after."""
    bindir = _pg_bin()
    if bindir is None:
        message = "PostgreSQL is not installed (apt-get install postgresql; .ci/run installs it)"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="safs_pg_"))
    as_user = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the package's postgres user
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    run = lambda *cmd: subprocess.run(as_user + [str(c) for c in cmd], check=True, capture_output=True,  # noqa: E731
                                      text=True, timeout=120)
    run(bindir / "initdb", "-D", root / "data", "-A", "trust", "-U", "postgres", "--no-sync")
    run(bindir / "pg_ctl", "-D", root / "data", "-l", root / "log", "-w", "-o",
        f"-k {root} -p {port} -c listen_addresses='' -c fsync=off", "start")
    try:
        yield f"postgresql+psycopg2://postgres@/postgres?host={root}&port={port}"
    finally:
        run(bindir / "pg_ctl", "-D", root / "data", "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["journal", "postgresql"])
def storage(request, tmp_path):
    if request.param == "journal":
        return f"journal:{tmp_path / 'studies.log'}"
    return request.getfixturevalue("postgres_url")


def _workers(storage, name, n, slow, tmp_path):
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return [subprocess.Popen([sys.executable, str(script), storage, name, str(TRIALS), str(slow), str(barrier),
                              str(n)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(n)]


def _finished(trials):
    return [t for t in trials if t.state in safs_lite.run.hpo.FINISHED]


def test_two_processes_finish_exactly_the_budget_without_duplicates(storage, tmp_path):
    procs = _workers(storage, "shared", 2, 0.3, tmp_path)
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    trials = optuna.load_study(study_name="shared", storage=open_storage(storage)).trials
    done = _finished(trials)
    assert len(trials) == len(done) == TRIALS  # nothing failed, nothing ran past the budget
    assert len({tuple(sorted(t.params.items())) for t in done}) == TRIALS  # no configuration twice
    assert sorted(t.system_attrs[SLOT] for t in done) == list(range(TRIALS))
    assert {t.system_attrs[PID] for t in done} == {p.pid for p in procs}  # both added trials
    assert all(o[0].strip() == f"finished {TRIALS}" for o in outs)  # each waited for the study's end


def test_a_worker_killed_mid_trial_does_not_stop_the_study(storage, tmp_path):
    procs = _workers(storage, "killed", 2, 0.6, tmp_path)
    victim, survivor = procs
    store = open_storage(storage)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill the victim in the middle of one of its trials
        try:
            running = optuna.load_study(study_name="killed", storage=store).get_trials(
                states=(optuna.trial.TrialState.RUNNING,))
        except KeyError:  # the study does not exist yet
            running = []
        if any(t.system_attrs.get(PID) == victim.pid and len(t.params) == len(safs_lite.run.hpo.PARAMS)
               for t in running):  # sampled: now training
            break
        time.sleep(0.1)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    out, err = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, err[-2000:]
    trials = optuna.load_study(study_name="killed", storage=store).trials
    done, failed = _finished(trials), [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(done) == TRIALS and len(failed) == 1 and LOST in failed[0].system_attrs
    assert failed[0].system_attrs[PID] == victim.pid
    retry = [t for t in done if t.system_attrs.get(RETRY_OF) == failed[0].number]
    assert len(retry) == 1 and retry[0].params == failed[0].params  # retried with the same hyperparameters
    assert len({tuple(sorted(t.params.items())) for t in done}) == TRIALS
    assert out.strip() == f"finished {TRIALS}"


def test_claims_fill_the_budget_and_retry_lost_trials_first():
    def trial(number, state, slot, **attrs):
        return optuna.trial.create_trial(state=state, value=1.0 if state.name == "COMPLETE" else None,
                                         params={"lr": 0.1 * (number + 1)},
                                         distributions={"lr": optuna.distributions.FloatDistribution(0, 1)},
                                         system_attrs={SLOT: slot, **attrs})

    S = optuna.trial.TrialState
    trials = [trial(0, S.COMPLETE, 0), trial(1, S.FAIL, 1, **{LOST: "its worker stopped"}), trial(2, S.RUNNING, 2)]
    for i, t in enumerate(trials):
        t.number = i
    claim = next_claim(trials, 4, ["lr"])
    assert (claim.slot, claim.params, claim.retry_of) == (1, {"lr": 0.2}, 1)  # the lost trial, same parameters
    retried = trials + [trial(3, S.RUNNING, 1, **{RETRY_OF: 1})]
    retried[3].number = 3
    assert next_claim(retried, 4, ["lr"]).params is None and next_claim(retried, 4, ["lr"]).slot == 3
    assert next_claim(retried, 3, ["lr"]) == "wait"  # the rest is running elsewhere
    assert next_claim([trials[0]], 1, ["lr"]) == "done"


@pytest.mark.parametrize("url", ["redis://localhost", "journal:", "sqlite", "postgres://x@y/z"])
def test_a_bad_storage_is_one_line(url):
    with pytest.raises(ValueError, match=r"unknown storage .*; valid: sqlite:///PATH, postgresql://"):
        check_storage(url)


class Killed(Exception):
    """Stands in for a kill inside a stage-2 trial."""


def test_hpo_worker_finishes_a_runs_studies_and_the_numbers_do_not_change(tmp_path, monkeypatch, one_thread):
    """A run stopped in its first stage-2 trial; `hpo-worker` finishes both studies on the journal storage;
    the run then only retrains, and ends with the numbers of an uninterrupted run on its own SQLite files."""
    cfg = SAFSConfig(preset="smoke", seed=3, sparsity=0.9)
    journal = f"journal:{tmp_path / 'studies.log'}"
    data = tmp_path / "data"  # a small MNIST in the real format: 800 training and 200 validation images
    write_idx(data / "MNIST" / "raw", n_train=1000, n_test=200, gz=False)
    ref = run_safs(cfg, out=tmp_path / "ref", data_root=data, progress=False)

    def dies(*args, **kwargs):
        raise Killed()

    monkeypatch.setattr(safs_lite.run.hpo, "finetune_with", dies)
    with pytest.raises(Killed):
        run_safs(cfg, out=tmp_path / "run", data_root=data, progress=False, storage=journal)
    monkeypatch.undo()
    r = subprocess.run([sys.executable, "-m", "safs_lite", "hpo-worker", str(tmp_path / "run"), "--storage", journal,
                        "--data", str(data), "--runs", os.environ["SAFS_RUNS"]],  # where the run's dense network is
                       capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    trials = PRESETS["smoke"].hpo_trials
    assert f"stage2: study finished on {journal}, {trials} trials ({trials} run by this worker)" in r.stdout
    assert f"safs: study finished on {journal}, {trials} trials ({trials} run by this worker)" in r.stdout
    calls = []
    monkeypatch.setattr(safs_lite.run.hpo, "finetune_with", lambda *a, **k: calls.append(1))
    res = run_safs(cfg, out=tmp_path / "run", data_root=data, progress=False, storage=journal)
    assert not calls  # every trial was the worker's
    assert res["test_accuracy"] == ref["test_accuracy"] and res["alpha_beta"] == ref["alpha_beta"]
    names = {s.study_name for s in optuna.get_all_study_summaries(open_storage(journal))}
    key = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert names == {f"{stage}-{config_hash({'run': key, 'stage': stage})}" for stage in ("stage2", "safs")}
    r2 = subprocess.run([sys.executable, "-m", "safs_lite", "hpo-worker", str(tmp_path / "run"), "--storage",
                         "mongodb://x"], capture_output=True, text=True, timeout=300)
    assert r2.returncode == 2 and r2.stderr.strip().splitlines()[-1].startswith("error: unknown storage 'mongodb://x'")


def _tiny_stage2_inputs(seed: int = 0):
    import torch

    from safs_lite import Data, build_model, get_activations, prune_model
    from safs_lite.run.config import TRAIN_DEFAULTS, Preset

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(192, 1, 28, 28, generator=g), torch.randint(0, 10, (192,), generator=g)
    data = Data.from_tensors((x[:128], y[:128]), (x[160:], y[160:]), val=(x[128:160], y[128:160]))
    pruned = prune_model(build_model("lenet5", seed=seed), 0.9)
    budgets = Preset(dense_epochs=1, finetune_epochs=1, candidate_epochs=1, candidate_subset=64, lahc_steps=1,
                     lahc_history=1, hpo_trials=2, trial_epochs=1, trial_subset=64)
    base = replace(TRAIN_DEFAULTS["lenet5"], batch_size=64)
    return pruned, data, get_activations(pruned), budgets, base


def test_runs_whose_folders_share_a_basename_each_run_their_own_trials(tmp_path, monkeypatch):
    """Issue 22, item 1: /a/r0 and /b/r0 (other keys) on one journal storage: the second run does not
    borrow the first one's finished study; a study holding another pruned network is refused in one line."""
    from safs_lite.run.folders import save_json
    from safs_lite.run.pipeline import stage2_study

    journal = f"journal:{tmp_path / 'studies.log'}"
    calls = []
    real = safs_lite.run.hpo.finetune_with
    monkeypatch.setattr(safs_lite.run.hpo, "finetune_with", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    pruned, data, ops, budgets, base = _tiny_stage2_inputs()
    studies = []
    for parent, sparsity in (("a", 0.9), ("b", 0.99)):
        run = tmp_path / parent / "r0"
        save_json(run / "config.json", {"config": {"model": "lenet5", "sparsity": sparsity, "seed": 0}})
        before = len(calls)
        studies.append(stage2_study(pruned, data, ops, budgets, base, 0, run / "stage2_hpo", "stage2", journal,
                                    progress=False))
        assert len(calls) - before == budgets.hpo_trials  # each run ran its own trials
    assert studies[0].study_name != studies[1].study_name
    assert studies[1].user_attrs["run_key"]["sparsity"] == 0.99
    other, *_ = _tiny_stage2_inputs(seed=1)  # same run key, another pruned network
    with pytest.raises(ValueError, match=r"belongs to another run \(its pruned differs") as err:
        stage2_study(other, data, ops, budgets, base, 0, tmp_path / "a" / "r0" / "stage2_hpo", "stage2", journal,
                     progress=False)
    assert "\n" not in str(err.value)


def test_the_heartbeat_outlives_a_failed_write_and_stops_with_its_trial():
    """Issue 22, item 8: the heartbeat thread stopped for good on any exception (a storage briefly
    unreachable), so a live worker's trial was later reaped as lost."""
    from safs_lite.run.storage import BEAT, heartbeat

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    real, failures = storage.set_trial_system_attr, []

    def flaky(trial_id, key, value):
        if key == BEAT and not failures:
            failures.append(1)
            raise OSError("storage unreachable")
        real(trial_id, key, value)

    storage.set_trial_system_attr = flaky
    with heartbeat(storage, trial._trial_id, every=0.02):
        deadline = time.time() + 5
        while BEAT not in storage.get_trial(trial._trial_id).system_attrs and time.time() < deadline:
            time.sleep(0.02)
    assert failures and BEAT in storage.get_trial(trial._trial_id).system_attrs  # beat again after the error


def test_a_trial_is_lost_by_heartbeat_across_pid_namespaces_and_reused_pids():
    """Issue 22, item 8: workers in separate PID namespaces sharing a hostname judged each other's pids (and
    reaped live trials); a dead worker whose pid another process reused kept its trial running forever."""
    from optuna.trial import TrialState, create_trial

    from safs_lite.run.storage import _HOSTNAME, _PIDNS, BEAT, GRACE_S, HOST, PIDNS, is_lost

    def running(pid, beat_age, pidns=_PIDNS):
        return create_trial(state=TrialState.RUNNING, system_attrs={HOST: _HOSTNAME, PID: pid, PIDNS: pidns,
                                                                   BEAT: time.time() - beat_age})

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    assert is_lost(running(int(dead), 0.0))  # a dead pid here: lost at once
    assert not is_lost(running(int(dead), 0.0, pidns="another-container"))  # not our pid: its heartbeat decides
    assert is_lost(running(int(dead), GRACE_S + 1, pidns="another-container"))
    assert not is_lost(running(os.getppid(), 0.0))  # a live pid with a fresh heartbeat: running
    assert is_lost(running(os.getppid(), GRACE_S + 1))  # a live pid (reused?) without a heartbeat: lost


def _scripted_finetune(score_of, die=None):
    """A stand-in for `finetune_with` whose validation accuracy per epoch is score_of(cfg, epoch); `die` (a list
    of learning rates) makes the first trial with that lr stop after reporting epoch 1, as a killed worker."""
    def finetune(pruned, data, ops, cfg, learn_scales=False, on_epoch=None, **kwargs):
        history = []
        for epoch in range(1, cfg.epochs + 1):
            row = {"epoch": epoch, "val_acc": score_of(cfg, epoch), "val_loss": 1.0}
            history.append(row)
            on_epoch(row)
            if die is not None and epoch == 1 and not die:
                die.append(cfg.lr)
                raise Killed()
        return None, history
    return finetune


def test_the_pruner_stops_trials_at_a_rung_inside_tune(tmp_path, monkeypatch):
    """Successive halving inside `tune`: after epoch 1 only the top third of the trials that reached it go on;
    every PRUNED trial scored below a trial that went on at that rung."""
    pruned, data, ops, budgets, base = _tiny_stage2_inputs()
    monkeypatch.setattr(safs_lite.run.hpo, "finetune_with", _scripted_finetune(lambda cfg, e: 100 * cfg.lr + e))
    study = safs_lite.run.hpo.tune(pruned, data, ops, replace(base, epochs=3), 9, tmp_path, seed=0, progress=False)
    states = [t.state for t in study.trials]
    pruned_trials = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert len(study.trials) == 9 and pruned_trials and optuna.trial.TrialState.COMPLETE in states
    for t in pruned_trials:
        assert list(t.intermediate_values) == [1]  # stopped at the first rung, not after the last epoch
        went_on = [u.intermediate_values[1] for u in study.trials if 2 in u.intermediate_values
                   and u.number < t.number]
        assert not went_on or t.intermediate_values[1] < max(went_on)


def test_a_trial_that_reported_then_died_is_retried_with_its_parameters(tmp_path, monkeypatch):
    """A trial that reported epoch 1 and then lost its worker is failed (LOST) and retried, once, with the same
    hyperparameters; the study still ends with exactly its budget of finished trials."""
    pruned, data, ops, budgets, base = _tiny_stage2_inputs()
    died: list[float] = []
    monkeypatch.setattr(safs_lite.run.hpo, "finetune_with", _scripted_finetune(lambda cfg, e: 50.0 + e, died))
    with pytest.raises(Killed):
        safs_lite.run.hpo.tune(pruned, data, ops, replace(base, epochs=2), 3, tmp_path, seed=0, progress=False)
    study = safs_lite.run.hpo.tune(pruned, data, ops, replace(base, epochs=2), 3, tmp_path, seed=0, progress=False)
    [lost] = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert LOST in lost.system_attrs and lost.intermediate_values == {1: pytest.approx(51.0, abs=1e-5)}
    [retry] = [t for t in study.trials if t.system_attrs.get(RETRY_OF) == lost.number]
    assert retry.params == lost.params and retry.params["lr"] == died[0]
    assert retry.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    assert len(study.get_trials(states=safs_lite.run.hpo.FINISHED)) == 3
