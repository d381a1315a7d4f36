"""Where stage 2's Optuna studies live, and how several processes share one study without overrunning it.

Storage URLs (`--storage`):

    sqlite:///PATH                  a SQLite file; the default, <run>/<stage>_hpo/study.db (local disks only)
    postgresql://USER@HOST/DB       a PostgreSQL server (psycopg2); mysql://USER@HOST/DB a MySQL one
    journal:PATH                    Optuna's JournalStorage on a file: safe on NFS, no server

Every process working on a study (the run itself, `python -m safs_lite hpo-worker`) takes its
trials one at a time under a lock held across processes and machines (an O_EXCL lock file next
to a file storage, an advisory lock on a database server): it counts the finished and running
trials and starts one only while they are fewer than the budget, so a study never runs past it.
A running trial carries its worker's host, PID namespace, pid and a heartbeat; one whose worker
died (a dead pid in the same host and PID namespace, or no heartbeat for GRACE_S, wherever the
worker ran: a pid reused by another process does not keep a trial alive) is marked failed and
tried again with the same hyperparameters, by whichever worker comes next. The heartbeat thread
outlives a failed write (the storage briefly unreachable) and stops only with its trial.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
HEARTBEAT_S = 10.0   # a running trial's worker writes a heartbeat this often
GRACE_S = 60.0       # a trial of another host without a heartbeat for this long is lost
POLL_S = 1.0         # a worker with nothing to start looks again after this long

# System attributes of a kit trial (not shown as user attributes by optuna-dashboard's table).
HOST, PID, BEAT, SLOT, RETRY_OF, LOST = ("safs:host", "safs:pid", "safs:heartbeat", "safs:slot", "safs:retry_of",
                                         "safs:lost")
PIDNS = "safs:pidns"  # which pids a worker's pid is one of: boot and PID namespace (containers share hostnames)
_HOSTNAME = socket.gethostname()


def _pid_namespace() -> str:
    """This process's boot id and PID namespace: two processes compare pids only when these are equal."""
    parts = []
    with contextlib.suppress(OSError):
        parts.append(open("/proc/sys/kernel/random/boot_id").read().strip()[:8])
    with contextlib.suppress(OSError):
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return "/".join(parts) or "unknown"


_PIDNS = _pid_namespace()
_ACTIVE: set[int] = set()  # ids of the trials this process is running now
STORAGE_FORMS = "sqlite:///PATH, postgresql://USER@HOST/DB, mysql://USER@HOST/DB, journal:PATH"


def check_storage(url: str) -> str:
    """`url` if it names a storage the kit can share (see the module docstring), else a one-line ValueError."""
    if isinstance(url, str) and url.startswith("journal:") and len(url) > len("journal:"):
        return url
    if _backend(url) not in ("sqlite", "postgresql", "mysql"):
        raise ValueError(f"unknown storage {url!r}; valid: {STORAGE_FORMS}")
    return url


def _backend(url: str) -> str | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).get_backend_name()
    except (ArgumentError, AttributeError, ValueError):
        return None


def describe(url: str) -> str:
    """The URL as it may be printed or saved: without a password."""
    if url.startswith("journal:"):
        return url
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The Optuna storage behind `url` (checked first)."""
    check_storage(url)
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(url[len("journal:"):]))
    return optuna.storages.get_storage(url)


@contextlib.contextmanager
def claim_lock(url: str, study_name: str) -> Iterator[None]:
    """Hold the study's lock, shared by every process and machine using `url`, for the block."""
    if url.startswith("journal:") or _backend(url) == "sqlite":
        from optuna.storages.journal import JournalFileOpenLock

        path = url[len("journal:"):] + ".claims" if url.startswith("journal:") else _sqlite_path(url)
        lock = JournalFileOpenLock(path)  # creates PATH.lock with O_EXCL: atomic on NFSv3 and later
        lock.acquire()
        try:
            yield
        finally:
            lock.release()
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    digest = hashlib.sha1(study_name.encode()).digest()
    with create_engine(url, poolclass=NullPool).connect() as conn:  # the lock dies with the connection
        if _backend(url) == "postgresql":
            key = int.from_bytes(digest[:8], "big", signed=True)
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            unlock, args = "SELECT pg_advisory_unlock(:k)", {"k": key}
        else:  # mysql
            name = "safs-" + digest.hex()[:40]
            conn.execute(text("SELECT GET_LOCK(:n, -1)"), {"n": name})
            unlock, args = "SELECT RELEASE_LOCK(:n)", {"n": name}
        try:
            yield
        finally:
            conn.execute(text(unlock), args)


def _sqlite_path(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).database or "study.db"


@dataclass(frozen=True)
class Claim:
    """The next trial a worker starts: its slot (seeds its sampler) and, for a retry, fixed parameters."""

    slot: int                  # seed * 1000 + slot seeds the trial's TPE sampler (serially: trials finished before it)
    params: dict | None = None  # a lost trial's hyperparameters, tried again; None: sample new ones
    retry_of: int | None = None  # that lost trial's number


def next_claim(trials: Sequence[FrozenTrial], budget: int, param_names: Sequence[str]) -> Claim | str:
    """What a worker does next: "done" (the budget is finished), "wait" (the rest is running) or a `Claim`.

    A lost trial (its worker died or was interrupted) with all its parameters is tried again
    first, with the same parameters and slot; otherwise the slot is the number of finished and
    running trials (in a serial study, the trials finished so far), and never one a live trial holds.
    """
    live = [t for t in trials if t.state in FINISHED or t.state == TrialState.RUNNING]
    if sum(t.state in FINISHED for t in live) >= budget:
        return "done"
    if len(live) >= budget:
        return "wait"
    retried = {t.system_attrs.get(RETRY_OF) for t in trials}
    for t in trials:
        if (t.state == TrialState.FAIL and LOST in t.system_attrs and t.number not in retried
                and set(param_names) <= set(t.params)):
            return Claim(slot=t.system_attrs.get(SLOT, len(live)), params=dict(t.params), retry_of=t.number)
    slots = [t.system_attrs[SLOT] for t in live if SLOT in t.system_attrs]
    return Claim(slot=max(len(live), max(slots, default=-1) + 1))


def mark_running(storage: optuna.storages.BaseStorage, trial_id: int, claim: Claim) -> None:
    """Say whose trial this is (host, pid, heartbeat) and which slot it fills."""
    for key, value in ((HOST, _HOSTNAME), (PIDNS, _PIDNS), (PID, os.getpid()), (BEAT, time.time()),
                       (SLOT, claim.slot)):
        storage.set_trial_system_attr(trial_id, key, value)
    if claim.retry_of is not None:
        storage.set_trial_system_attr(trial_id, RETRY_OF, claim.retry_of)


def is_lost(trial: FrozenTrial, now: float | None = None, grace: float = GRACE_S) -> bool:
    """Whether a RUNNING trial's worker is gone: no heartbeat for `grace` s, or (in this host and PID
    namespace) a dead pid, or this process not running it."""
    attrs = trial.system_attrs
    if PID not in attrs:  # started by an older kit, or its worker died before saying whose it was
        return True
    if attrs[HOST] == _HOSTNAME and attrs.get(PIDNS, _PIDNS) == _PIDNS:  # its pid is one of ours
        if attrs[PID] == os.getpid():
            return trial._trial_id not in _ACTIVE
        if not _pid_alive(attrs[PID]):
            return True
    return (now or time.time()) - attrs[BEAT] > grace  # a live pid may be another process that reused it


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    try:  # a killed child its parent has not collected yet is a zombie: dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def reap(study: optuna.Study, storage: optuna.storages.BaseStorage, grace: float = GRACE_S) -> list[int]:
    """Mark every RUNNING trial whose worker is gone as failed (to be retried); their numbers."""
    lost = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_lost(t, grace=grace):
            try:
                storage.set_trial_system_attr(t._trial_id, LOST, "its worker stopped")
                study.tell(t.number, state=TrialState.FAIL)
            except (RuntimeError, ValueError):  # it finished in the meantime: nothing to retry
                continue
            lost.append(t.number)
    return lost


def give_up(study: optuna.Study, storage: optuna.storages.BaseStorage, trial: optuna.Trial,
            err: BaseException) -> None:
    """This process stops a trial (an exception or an interrupt): mark it failed, to be retried."""
    with contextlib.suppress(RuntimeError, ValueError):
        storage.set_trial_system_attr(trial._trial_id, LOST, f"interrupted: {type(err).__name__}")
        study.tell(trial, state=TrialState.FAIL)


@contextlib.contextmanager
def heartbeat(storage: optuna.storages.BaseStorage, trial_id: int, every: float = HEARTBEAT_S) -> Iterator[None]:
    """Write the trial's heartbeat every `every` seconds from a thread while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                storage.set_trial_system_attr(trial_id, BEAT, time.time())
            except Exception:  # finished or given up meanwhile: stop; the storage unreachable: beat again later
                with contextlib.suppress(Exception):
                    if storage.get_trial(trial_id).state != TrialState.RUNNING:
                        return

    thread = threading.Thread(target=beat, name=f"safs-heartbeat-{trial_id}", daemon=True)
    _ACTIVE.add(trial_id)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        _ACTIVE.discard(trial_id)


def workers_of(study: optuna.Study) -> dict[tuple[str, int], int]:
    """(host, pid) -> finished trials, for every worker that finished one."""
    counts: dict[tuple[str, int], int] = {}
    for t in study.get_trials(deepcopy=False, states=FINISHED):
        if PID in t.system_attrs:
            who = (t.system_attrs[HOST], t.system_attrs[PID])
            counts[who] = counts.get(who, 0) + 1
    return counts


def this_worker() -> tuple[str, int]:
    """(host, pid) of this process, as its trials record it."""
    return _HOSTNAME, os.getpid()
