"""The whole search space of one mask, measured: every per-layer operator vector's stage-1 fitness.

LeNet-5 has 4 activation sites and the library 13 operators (`operators.SEARCH_SPACE`), so stage 1
chooses among 13**4 = 28,561 vectors. This evaluates all of them on one pruned network (a committed
evidence run's `pruned.pt`) with one fixed fidelity (`Fidelity`: by default the `sweep` preset's
stage-1 candidate, 1 epoch on 10,000 training images at lr 1e-2, scored on the validation split),
the way NAS-Bench tables made architecture search comparable: a search then becomes a sequence of
lookups, repeatable a thousand times in seconds.

Layout: one folder per mask and fidelity, `results/landscape/<run>-<key hash>/`, holding `key.json`
(everything the numbers depend on: mask bytes, data signature, fidelity, training defaults, operator
library, kit and torch versions, engine, threads) and the table in chunks of `CHUNK` vectors,
`chunk-00000.csv.gz`, ..., each written whole (an interrupted build loses at most the chunk it was
computing; rerunning resumes). Chunk c holds the vectors with index c * CHUNK ... in the order of
`itertools.product(SEARCH_SPACE, repeat=sites)`. `--shard i/n` computes chunks c with c % n == i, so
processes or machines split the table; `--workers`/`--scheduler` computes the chunks on Dask.

    python -m safs_lite landscape results/evidence/runs/safs-lenet5-mnist-0.99-layerwise-cpu-s0

The test split is never read: a vector's row holds its validation accuracy and loss, its last
training loss and its seconds.
"""
from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch

from ..data.builtin import load_data
from ..method.activations import OPS_VERSION
from ..method.operators import SEARCH_SPACE
from ..paths import results_dir
from ..run.folders import load_json
from ..training.fitness import tiebreak_score
from ..training.loop import NonFiniteLossError, TrainConfig, finetune_with
from ..version import KIT_VERSION
from .shipped import load_network

CHUNK = 500
COLUMNS = ["index", "val_acc", "val_loss", "train_loss", "seconds"]


@dataclass(frozen=True)
class Fidelity:
    """How one vector is scored: a short fine-tune of the pruned network (alpha = beta = 1)."""

    epochs: int = 1
    subset: int | None = 10_000  # training images drawn per epoch (None: the whole split)
    lr: float = 1e-2
    engine: str = "compact"  # named, not "auto": the table's numbers must not depend on a speed heuristic

    def __post_init__(self):
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"fidelity epochs must be a whole number >= 1, got {self.epochs!r}")
        if self.subset is not None and (not isinstance(self.subset, int) or self.subset < 1):
            raise ValueError(f"fidelity subset must be a whole number >= 1 or None, got {self.subset!r}")
        if not self.lr > 0:
            raise ValueError(f"fidelity lr must be > 0, got {self.lr!r}")


def vectors(n_sites: int, space=SEARCH_SPACE) -> itertools.product:
    """Every operator vector, in the table's index order (the last site changes fastest)."""
    return itertools.product(space, repeat=n_sites)


def vector_of(index: int, n_sites: int, space=SEARCH_SPACE) -> tuple[str, ...]:
    """The vector at `index` (base-len(space) digits, the first site most significant)."""
    if not 0 <= index < len(space) ** n_sites:
        raise ValueError(f"vector index {index} outside 0..{len(space) ** n_sites - 1}")
    digits = []
    for _ in range(n_sites):
        index, d = divmod(index, len(space))
        digits.append(space[d])
    return tuple(reversed(digits))


def index_of(ops, space=SEARCH_SPACE) -> int:
    """The table index of a vector (a sequence of operator names, in site order)."""
    index = 0
    for op in ops:
        if op not in space:
            raise ValueError(f"unknown operator {op!r}; valid: {', '.join(space)}")
        index = index * len(space) + space.index(op)
    return index


class Mask:
    """One committed run's pruned network, its data and training defaults: what a table is built on."""

    def __init__(self, run: str | os.PathLike, data_root: str | os.PathLike | None = None):
        self.run = Path(run)
        if not (self.run / "pruned.pt").exists() or not (self.run / "results.json").exists():
            raise ValueError(f"{self.run}: not a run folder with pruned.pt and results.json")
        self.results = load_json(self.run / "results.json")
        cfg = self.results["config"]
        self.sites = list(self.results["activations"]["stage1"])
        self.base = TrainConfig(**{**cfg["train_defaults"], "seed": cfg["seed"]})
        self.data = load_data(cfg["dataset"], root=data_root, seed=cfg["seed"], quiet=True)
        self.network = load_network(self.run / "pruned.pt")
        self.mask_hash = hashlib.sha1((self.run / "pruned.pt").read_bytes()).hexdigest()[:12]

    def key(self, fidelity: Fidelity) -> dict:
        """Everything a row's numbers depend on."""
        return {"run": self.run.name, "mask": self.mask_hash, "data": self.data.signature,
                "fidelity": asdict(fidelity), "train": asdict(self.base), "sites": self.sites,
                "space": list(SEARCH_SPACE), "ops_version": OPS_VERSION, "kit": KIT_VERSION,
                "torch": torch.__version__, "threads": 1, "device": "cpu", "machine": platform.machine()}

    def folder(self, fidelity: Fidelity, root: str | os.PathLike | None = None) -> Path:
        text = json.dumps(self.key(fidelity), sort_keys=True)
        return results_dir(root) / "landscape" / f"{self.run.name}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"

    def config(self, fidelity: Fidelity) -> TrainConfig:
        return replace(self.base, epochs=fidelity.epochs, train_subset=fidelity.subset, lr=fidelity.lr,
                       engine=fidelity.engine, select="last")

    def evaluate(self, ops: tuple[str, ...], fidelity: Fidelity) -> dict:
        """One vector's row (without its index): validation accuracy and loss, last training loss, seconds."""
        t0 = time.perf_counter()
        try:
            _, history = finetune_with(self.network, self.data, dict(zip(self.sites, ops)), self.config(fidelity))
            row = {k: history[-1][k] for k in ("val_acc", "val_loss", "train_loss")}
        except NonFiniteLossError:  # diverged: the worst score, as stage 1 scores it
            row = {"val_acc": 0.0, "val_loss": float("inf"), "train_loss": float("inf")}
        return {**row, "seconds": round(time.perf_counter() - t0, 4)}


def n_chunks(n_sites: int, space=SEARCH_SPACE) -> int:
    return -(-len(space) ** n_sites // CHUNK)


def chunk_path(folder: Path, chunk: int) -> Path:
    return folder / f"chunk-{chunk:05d}.csv.gz"


def _start(mask: Mask, fidelity: Fidelity, root) -> Path:
    """The table's folder with its key.json; a folder whose key differs is refused."""
    folder = mask.folder(fidelity, root)
    folder.mkdir(parents=True, exist_ok=True)
    key = mask.key(fidelity)
    if (folder / "key.json").exists():
        if load_json(folder / "key.json") != key:
            raise ValueError(f"{folder}/key.json differs from this build's key: another kit, data or mask")
    else:
        (folder / "key.json").write_text(json.dumps(key, indent=1, sort_keys=True) + "\n")
    return folder


def build_chunk(mask: Mask, fidelity: Fidelity, folder: Path, chunk: int) -> Path:
    """Compute one chunk's rows and write them whole (gzip'd CSV, written to a temporary name first)."""
    total = len(SEARCH_SPACE) ** len(mask.sites)
    rows = []
    for index in range(chunk * CHUNK, min((chunk + 1) * CHUNK, total)):
        rows.append({"index": index, **mask.evaluate(vector_of(index, len(mask.sites)), fidelity)})
    path = chunk_path(folder, chunk)
    tmp = path.with_suffix(".tmp")
    with gzip.GzipFile(tmp, "wb", mtime=0) as f:  # mtime 0: the same rows give the same bytes
        f.write(pd.DataFrame(rows, columns=COLUMNS).to_csv(index=False, float_format="%.6g").encode())
    tmp.replace(path)
    return path


def build(run: str | os.PathLike, fidelity: Fidelity = Fidelity(), shard: tuple[int, int] = (0, 1),
          max_chunks: int | None = None, root: str | os.PathLike | None = None,
          data_root: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Compute this shard's missing chunks of the table of `run`'s mask, serially, one thread. Returns its folder."""
    from tqdm.auto import tqdm

    i, n = shard
    torch.set_num_threads(1)
    mask = Mask(run, data_root)
    folder = _start(mask, fidelity, root)
    todo = [c for c in range(n_chunks(len(mask.sites))) if c % n == i and not chunk_path(folder, c).exists()]
    for c in tqdm(todo[:max_chunks], desc=f"{mask.run.name} chunks", disable=not progress):
        build_chunk(mask, fidelity, folder, c)
    return folder


def _chunk_task(run: str, fidelity: Fidelity, folder: str, chunk: int, data_root) -> str:
    from .cluster import _worker_setup

    _worker_setup()
    return str(build_chunk(_task_mask(run, data_root), fidelity, Path(folder), chunk))


_MASKS: dict = {}


def _task_mask(run: str, data_root) -> Mask:
    """A worker's mask, loaded once per process (data and network)."""
    if (run, data_root) not in _MASKS:
        _MASKS[(run, data_root)] = Mask(run, data_root)
    return _MASKS[(run, data_root)]


def build_on_dask(run: str | os.PathLike, fidelity: Fidelity = Fidelity(), workers: int | None = None,
                  scheduler: str | None = None, root=None, data_root=None, progress: bool = True) -> Path:
    """Compute every missing chunk as one Dask task each (a LocalCluster of `workers`, or `scheduler`)."""
    from dask.distributed import as_completed
    from tqdm.auto import tqdm

    from .cluster import _client, check_workers

    check_workers(workers, scheduler)
    mask = Mask(run, data_root)
    folder = _start(mask, fidelity, root)
    todo = [c for c in range(n_chunks(len(mask.sites))) if not chunk_path(folder, c).exists()]
    with _client(workers, scheduler) as client:
        futures = [client.submit(_chunk_task, str(mask.run), fidelity, str(folder), c,
                                 None if data_root is None else str(data_root), pure=False) for c in todo]
        for future in tqdm(as_completed(futures), total=len(futures), desc="chunks", disable=not progress):
            future.result()
    return folder


def load_table(folder: str | os.PathLike) -> pd.DataFrame:
    """The table so far: one row per vector, its operators per site, its parts and its fitness (acc_tiebreak)."""
    folder = Path(folder)
    key = load_json(folder / "key.json")
    parts = [pd.read_csv(p) for p in sorted(folder.glob("chunk-*.csv.gz"))]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    ops = [vector_of(int(i), len(key["sites"]), tuple(key["space"])) for i in table["index"]]
    for j, site in enumerate(key["sites"]):
        table[site] = [v[j] for v in ops]
    table["fitness"] = [tiebreak_score(a, l) for a, l in zip(table["val_acc"], table["val_loss"])]
    table.attrs["key"] = key
    table.attrs["complete"] = len(table) == len(key["space"]) ** len(key["sites"])
    return table.sort_values("index", ignore_index=True)


def majority_share(run: str | os.PathLike, data_root=None) -> float:
    """The largest class's share of the validation split (%): a network that predicts one class scores this."""
    cfg = load_json(Path(run) / "results.json")["config"]
    y = load_data(cfg["dataset"], root=data_root, seed=cfg["seed"], quiet=True).val.y
    return 100.0 * torch.bincount(y).max().item() / len(y)


def describe(table: pd.DataFrame, dead_level: float) -> dict:
    """What the landscape is: size, how many vectors are dead, the best vector against the best single operator,
    and how additive the fitness is (share of variance of per-layer main effects vs pairwise interactions).

    Args:
        table: `load_table`'s rows (complete or not: the numbers say over how many vectors).
        dead_level: validation accuracy at or below which a vector counts as dead (the majority share).
    """
    sites = table.attrs["key"]["sites"]
    y = table["val_acc"]
    single = table[table[sites].nunique(axis=1) == 1]
    best, best_single = table.loc[table["fitness"].idxmax()], single.loc[single["fitness"].idxmax()] \
        if len(single) else None
    out = {"vectors": len(table), "complete": table.attrs["complete"],
           "dead_share": float((y <= dead_level + 1e-9).mean()),
           "best": {"ops": [best[s] for s in sites], "val_acc": float(best["val_acc"])},
           "wall_seconds": float(table["seconds"].sum()), "median_seconds": float(table["seconds"].median())}
    if best_single is not None:
        out["best_single"] = {"ops": [best_single[s] for s in sites], "val_acc": float(best_single["val_acc"]),
                              "percentile": float((table["fitness"] < best_single["fitness"]).mean() * 100)}
    out.update(additivity(table, sites, "val_acc"))
    return out


def additivity(table: pd.DataFrame, sites: list[str], column: str) -> dict:
    """Variance of `column` explained by per-site main effects, and by main effects plus all pairwise interactions
    (least squares on one-hot operators, which on the complete table is the exact ANOVA decomposition)."""
    import numpy as np

    y = table[column].to_numpy(float)
    if len(y) < 2 or y.var() == 0:
        return {"r2_main": float("nan"), "r2_pairwise": float("nan")}

    def r2(design: pd.DataFrame) -> float:
        x = np.column_stack([np.ones(len(y)), design.to_numpy(float)])
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        return float(1 - ((y - x @ coef) ** 2).sum() / ((y - y.mean()) ** 2).sum())

    main = pd.get_dummies(table[sites].astype(str), drop_first=True)
    pairs = [pd.get_dummies(table[a].astype(str) + "|" + table[b].astype(str), prefix=f"{a}x{b}", drop_first=True)
             for a, b in itertools.combinations(sites, 2)]
    return {"r2_main": r2(main), "r2_pairwise": r2(pd.concat([main, *pairs], axis=1))}


def format_description(table: pd.DataFrame, dead_level: float, folder: Path | None = None) -> str:
    """`describe` as a few lines for the terminal."""
    if table.empty:
        return f"{folder}: no vectors scored yet"
    d = describe(table, dead_level)
    total = len(table.attrs["key"]["space"]) ** len(table.attrs["key"]["sites"])
    lines = [f"{folder or 'table'}: {d['vectors']} of {total} vectors scored "
             f"({d['wall_seconds'] / 3600:.2f} hours of one thread's wall time, median {d['median_seconds']:.3f} s "
             "per vector; on shared cores, a paused build counts its pause)",
             f"dead (validation accuracy <= majority class {dead_level:.2f}%): {100 * d['dead_share']:.1f}%",
             f"best vector: {' '.join(d['best']['ops'])} ({d['best']['val_acc']:.2f}%)"]
    if "best_single" in d:
        b = d["best_single"]
        lines.append(f"best single operator: {b['ops'][0]} everywhere ({b['val_acc']:.2f}%, "
                     f"percentile {b['percentile']:.1f} of the scored vectors)")
    lines.append(f"variance of validation accuracy explained: per-layer main effects {d['r2_main']:.3f}, "
                 f"with pairwise interactions {d['r2_pairwise']:.3f}")
    if not d["complete"]:
        lines.append("(partial table: these numbers are over the vectors scored so far, in index order)")
    return "\n".join(lines)
