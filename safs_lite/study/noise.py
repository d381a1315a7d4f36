"""Training noise: how far one mask's final model moves when only the arithmetic or the training seed changes.

`tools/retrain_finals.py` retrains a run's final models (the factorial's cells, each with its recorded operators
and hyperparameters, on the run's own mask) with other training seeds (`--train-seeds 1000 1001 1002`: the order of
batches and the draws of training) and on the other engine (`--engine dense`: the same mathematics, floats added
in another order). Each retrain lands in `results/evidence/finals/<run>-e<E>[-<engine>-t<seed>].json`.

This module reads those replicates and sets two spreads side by side, per setting and cell:

- **within-mask SD**: the standard deviation of one mask's accuracies over its replicates (train seeds x engines),
  pooled over masks (root of the mean variance): what a single run's number carries on top of its mask;
- **between-mask SD**: the standard deviation over masks of each mask's mean: what the evidence study samples.

and the same for the differences the study reads (SAFS - MP, uniform_safs - MP, SAFS - uniform_safs), paired
within a replicate (same train seed and engine). A paired comparison over n masks has a standard error of about
sqrt(between^2 + within^2) / sqrt(n) for the difference's SDs; when the within-mask SD of a difference is as
large as the effect, one run's difference says little about its sign. The engine shift (dense - compact, same
train seed) is reported on its own: it is the "arithmetic alone" part of the noise.

    python -m safs_lite.study.noise [--epochs 30] [--write]   # prints (and writes results/evidence/noise-e30.md)
"""
from __future__ import annotations

import math
import os
import re
import sys

import numpy as np
import pandas as pd

from ..run.folders import load_json
from .factorial import RUN_NAME, evidence_root, setting_label

DIFFERENCES = {"SAFS - MP": ("safs", "magnitude_pruning"), "uniform_safs - MP": ("uniform_safs", "magnitude_pruning"),
               "SAFS - uniform_safs": ("safs", "uniform_safs")}
FILE = re.compile(r"(?P<run>safs-.+-s\d+)-e(?P<epochs>\d+)(?:-(?P<engine>compact|dense)-t(?P<tseed>\d+))?\.json$")


def load_replicates(epochs: int = 30, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per retrained cell at `epochs`: setting, seed (the mask), run, cell, engine, train_seed,
    test_accuracy (NaN where the retrain failed, with its error in `note`), file."""
    base = evidence_root(root)
    rows = []
    for path in sorted((base / "finals").glob(f"safs-*-e{epochs}*.json")):
        f = FILE.match(path.name)
        m = RUN_NAME.match(f["run"]) if f and int(f["epochs"]) == epochs else None
        if not m:
            continue
        rec = load_json(path)
        engine = rec.get("engine", f["engine"] or "compact")
        tseed = rec.get("train_seed", int(f["tseed"]) if f["tseed"] else int(m["seed"]))
        meta = {"setting": setting_label(m["dataset"], float(m["sparsity"]), m["pruning"], m["preset"]),
                "seed": int(m["seed"]), "run": f["run"], "engine": engine, "train_seed": int(tseed), "file": path.name}
        for cell, c in rec["cells"].items():
            rows.append({**meta, "cell": cell, "test_accuracy": math.nan if "error" in c else c["test_accuracy"],
                         "note": c.get("error", "")})
    return pd.DataFrame(rows, columns=["setting", "seed", "run", "cell", "engine", "train_seed", "test_accuracy",
                                       "note", "file"])


def _with_differences(reps: pd.DataFrame) -> pd.DataFrame:
    """The replicates plus one row per difference of DIFFERENCES, paired within a replicate (run, engine, seed)."""
    if reps.empty:
        return reps
    wide = reps.set_index(["setting", "seed", "run", "engine", "train_seed", "cell"])["test_accuracy"].unstack("cell")
    extra = []
    for name, (a, b) in DIFFERENCES.items():
        if a in wide and b in wide:
            d = (wide[a] - wide[b]).rename("test_accuracy").reset_index()
            extra.append(d.assign(cell=name))
    return pd.concat([reps[["setting", "seed", "run", "engine", "train_seed", "cell", "test_accuracy"]], *extra],
                     ignore_index=True)


def spread(reps: pd.DataFrame) -> pd.DataFrame:
    """Per setting and cell (or difference): masks with at least two replicates, replicates per mask (min-max),
    the pooled within-mask SD, the between-mask SD of the mask means, and their ratio. NaN values (failed
    retrains) are left out and counted in `failed`; never dropped silently."""
    out = []
    data = _with_differences(reps)
    for (setting, cell), g in data.groupby(["setting", "cell"], sort=False):
        failed = int(g["test_accuracy"].isna().sum())
        per_mask = g.dropna(subset=["test_accuracy"]).groupby("seed")["test_accuracy"]
        counts = per_mask.count()
        repeated = counts[counts >= 2].index
        variances = per_mask.var(ddof=1).loc[repeated]
        means = per_mask.mean()
        within = float(np.sqrt(variances.mean())) if len(repeated) else math.nan
        between = float(means.std(ddof=1)) if len(means) >= 2 else math.nan
        out.append({"setting": setting, "cell": cell, "masks": int(len(repeated)),
                    "replicates": f"{counts.min()}-{counts.max()}" if len(counts) else "0",
                    "within_sd": within, "between_sd": between,
                    "ratio": within / between if between and not math.isnan(between) else math.nan,
                    "failed": failed})
    return pd.DataFrame(out, columns=["setting", "cell", "masks", "replicates", "within_sd", "between_sd", "ratio",
                                      "failed"])


def engine_shift(reps: pd.DataFrame) -> pd.DataFrame:
    """Per setting and cell: dense - compact at the same mask and train seed (mean, SD, largest |shift|, pairs)."""
    data = _with_differences(reps)
    wide = data.set_index(["setting", "cell", "seed", "train_seed", "engine"])["test_accuracy"].unstack("engine")
    if not {"dense", "compact"} <= set(wide.columns):
        return pd.DataFrame(columns=["setting", "cell", "pairs", "mean", "sd", "largest"])
    d = (wide["dense"] - wide["compact"]).dropna()
    rows = [{"setting": s, "cell": c, "pairs": len(g), "mean": g.mean(), "sd": g.std(ddof=1) if len(g) > 1 else math.nan,
             "largest": g.abs().max()} for (s, c), g in d.groupby(level=["setting", "cell"], sort=False)]
    return pd.DataFrame(rows)


def report(epochs: int = 30, root: str | os.PathLike | None = None) -> str:
    reps = load_replicates(epochs, root)
    if reps.empty:
        return f"no retrained finals at {epochs} epochs under {evidence_root(root) / 'finals'}"
    sp = spread(reps)
    sp = sp[sp["masks"] > 0]
    lines = [f"Training noise at {epochs}-epoch finals: one mask's spread over its replicates (train seeds x engines)"
             " against the spread over masks (test accuracy, points).", ""]
    if sp.empty:
        lines.append("No mask has two replicates yet (tools/retrain_finals.py --train-seeds ... / --engine dense).")
    else:
        lines += ["| setting | cell | masks | replicates per mask | within-mask SD | between-mask SD | within / between |"
                  " failed |", "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r.setting} | {r.cell} | {r.masks} | {r.replicates} | {r.within_sd:.2f} | {r.between_sd:.2f} |"
                  f" {r.ratio:.2f} | {r.failed} |" for r in sp.itertuples()]
    shift = engine_shift(reps)
    if not shift.empty:
        lines += ["", "Engine shift, dense - compact at the same mask and train seed:", "",
                  "| setting | cell | pairs | mean | SD | largest abs |", "|---|---|---|---|---|---|"]
        lines += [f"| {r.setting} | {r.cell} | {r.pairs} | {r.mean:+.2f} | {r.sd:.2f} | {r.largest:.2f} |"
                  for r in shift.itertuples()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=30, help="the final budget to read (default 30)")
    p.add_argument("--write", action="store_true", help="also write results/evidence/noise-e<E>.md")
    args = p.parse_args(argv)
    text = report(args.epochs)
    print(text)
    if args.write:
        path = evidence_root() / f"noise-e{args.epochs}.md"
        path.write_text(f"<!-- python -m safs_lite.study.noise --epochs {args.epochs} --write -->\n{text}\n")
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

