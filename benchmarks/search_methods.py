"""Stage 1's search against the paper's alternatives: LAHC, simulated annealing, a genetic algorithm, random search.

For each allocation and seed it starts from the evidence run's pruned network (the checkpoint every
stage starts from: results/evidence/runs/<run>/pruned.pt, or rebuilt with the kit's own dense
training and pruning when that run is not collected), and runs the four searches of the kit with
the run's preset (default `sweep`) and stage-1 fitness:

- LAHC: `pipeline.stage1` itself (when the collected run holds its LAHC log, the log is replayed:
  the same vectors, no new evaluation; one of its vectors is re-scored here to check the fitness
  is the run's);
- random, SA, GA: `pipeline.baseline`, the registry's equal-budget searches (`baselines.BASELINES`),
  given LAHC's evaluation count: each scores exactly as many distinct vectors as LAHC did, and a
  revisit comes from the same cache for all four (`searchlog.SearchLog`).

Each final choice is retrained as stage 1 retrains (the preset's fine-tune epochs, alpha = beta = 1).
Every choice is made on the validation split; the test split is read only for the reported numbers.
It prints the best validation fitness after k evaluations per method and seed, the retrained
validation and test accuracy, and the paired differences LAHC - SA, LAHC - GA and LAHC - random
(`stats.paired`: mean, 95% bootstrap interval, Wilcoxon p, wins/ties/losses), per allocation and
over both; it writes figures/search_methods.md (the tables and this command) and
figures/search_methods.png (mean best-so-far fitness against evaluations, one panel per allocation).
Records go to $SAFS_RUNS/search-methods/<run>/ and are read back on a rerun; `--finished-only` computes
nothing and reports the settings whose four records exist (the others are listed as not computed).

    SAFS_DATA=../shared/data SAFS_RUNS=/tmp/search-runs OMP_NUM_THREADS=1 \\
        python benchmarks/search_methods.py [--seeds 0 1 2] [--prunings layerwise global] [--preset sweep]
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from safs_lite.data.builtin import load_data  # noqa: E402
from safs_lite.method.pruning import clone, prune_model  # noqa: E402
from safs_lite.method.searchlog import read_history  # noqa: E402
from safs_lite.paths import figures_dir, results_dir, runs_dir  # noqa: E402
from safs_lite.run.baselines import BASELINES, candidate_config  # noqa: E402
from safs_lite.run.config import TRAIN_DEFAULTS, SAFSConfig  # noqa: E402
from safs_lite.run.folders import cached_record, load_json  # noqa: E402
from safs_lite.run.pipeline import baseline, stage1, train_dense  # noqa: E402
from safs_lite.study.plots import best_by_evaluations, save_figure  # noqa: E402
from safs_lite.study.shipped import load_network  # noqa: E402
from safs_lite.study.stats import paired  # noqa: E402
from safs_lite.training.fitness import candidate_fitness  # noqa: E402

METHODS = {"lahc": "LAHC", "sa": BASELINES["sa"].label, "ga": BASELINES["ga"].label,
           "random": BASELINES["random"].label}


def start_network(cfg: SAFSConfig, data, evidence: Path):
    """The pruned network stage 1 starts from: the collected run's pruned.pt, else rebuilt (dense cached)."""
    if (evidence / "pruned.pt").exists():
        return load_network(evidence / "pruned.pt"), "evidence pruned.pt"
    base = replace(TRAIN_DEFAULTS[cfg.model], seed=cfg.seed)
    dense, _ = train_dense(cfg.model, data, replace(base, epochs=cfg.budgets().dense_epochs), progress=False)
    return prune_model(clone(dense), cfg.sparsity, cfg.pruning), "rebuilt (dense + prune)"


def run_setting(cfg: SAFSConfig, out: Path) -> tuple[dict, dict]:
    """Every method's record on one (allocation, seed): method -> record; plus facts about the start."""
    run = f"safs-{cfg.model}-{cfg.dataset}-{cfg.sparsity:g}-{cfg.pruning}-{cfg.preset}-s{cfg.seed}"
    evidence = results_dir() / "evidence" / "runs" / run
    data = load_data(cfg.dataset, seed=cfg.seed, quiet=True)
    pruned, source = start_network(cfg, data, evidence)
    budgets, base = cfg.budgets(), replace(TRAIN_DEFAULTS[cfg.model], seed=cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    facts = {"run": run, "start": source}
    log = evidence / "stage1_search.csv"
    if log.exists() and not (out / "stage1_search.csv").exists():
        shutil.copy2(log, out / "stage1_search.csv")  # replayed by stage1: same vectors, no evaluation
    if log.exists():  # re-score the log's first vector: the fitness here must be the run's
        first = read_history(log)[0]
        score = candidate_fitness(pruned, data, candidate_config(budgets, base), cfg.fitness)
        facts["rescore"] = (first["fitness"], score(first["vector"]))
    timings: dict = {}
    recs = {"lahc": cached_record(out / "stage1.json", lambda: stage1(
        pruned, data, budgets, base, cfg.fitness, "lahc", cfg.move, cfg.seed, out, progress=False), timings)}
    evaluations = recs["lahc"]["search"]["evaluations"]
    for name in ("sa", "ga", "random"):
        recs[name] = cached_record(out / f"baseline_{name}.json", lambda: baseline(
            name, pruned, data, budgets, base, cfg.fitness, evaluations, cfg.seed, out, progress=False), timings)
    if (evidence / "stage1.json").exists():  # the run's own stage 1: same seed, same machine, same numbers
        s1 = load_json(evidence / "stage1.json")
        facts["run_stage1"] = (s1["val_accuracy"], s1["test_accuracy"])
    facts["seconds"] = timings
    return recs, facts


def curve(out: Path, name: str) -> np.ndarray:
    """Best validation fitness after k = 1..evaluations distinct evaluations of one method's search."""
    csv = out / ("stage1_search.csv" if name == "lahc" else f"baseline_{name}_search.csv")
    return best_by_evaluations(read_history(csv))


def fmt_ci(r: dict) -> str:
    ci = "n < 2" if math.isnan(r["ci_low"]) else f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
    return f"{r['mean_diff']:+.2f} {ci}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--prunings", nargs="+", default=["layerwise", "global"])
    p.add_argument("--sparsity", type=float, default=0.99)
    p.add_argument("--preset", default="sweep")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the evidence runs used 1)")
    p.add_argument("--finished-only", action="store_true", help="compute nothing: report the settings whose "
                   "records exist")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows, curves, facts, skipped = [], {}, [], []
    for pruning in args.prunings:
        for seed in args.seeds:
            cfg = SAFSConfig(sparsity=args.sparsity, pruning=pruning, preset=args.preset, seed=seed).validate()
            out = runs_dir() / "search-methods" / f"{cfg.sparsity:g}-{pruning}-{cfg.preset}-s{seed}"
            names = ["stage1.json"] + [f"baseline_{n}.json" for n in ("sa", "ga", "random")]
            if args.finished_only and not all((out / n).exists() for n in names):
                skipped.append(f"{pruning} s{seed}")
                continue
            recs, fact = run_setting(cfg, out)
            facts.append(fact)
            for name, rec in recs.items():
                c = curve(out, name)
                curves[(pruning, seed, name)] = c
                rows.append({"pruning": pruning, "seed": seed, "method": name,
                             "evaluations": rec["search"]["evaluations"],
                             "best val fitness": rec["search"]["best_val_fitness"],
                             "val": rec["val_accuracy"], "test": rec["test_accuracy"],
                             "operators": " ".join(rec["activations"].values())})
            print(f"{pruning} s{seed} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    budget = table.groupby(["pruning", "seed"])["evaluations"].agg(["min", "max"])
    if (budget["min"] != budget["max"]).any():
        raise SystemExit(f"unequal evaluation counts:\n{budget}")
    # best-so-far after k evaluations, per method and seed
    k_max = int(table["evaluations"].max())
    traj = pd.DataFrame([{"pruning": pr, "seed": s, "method": m,
                          **{f"k={k + 1}": v for k, v in enumerate(c)}} for (pr, s, m), c in curves.items()])
    # paired differences: LAHC minus each alternative, on the retrained validation and test accuracy
    stats_rows = []
    scopes = [(pr, table[table["pruning"] == pr]) for pr in args.prunings]
    for scope, part in scopes + ([("all", table)] if len(scopes) > 1 else []):
        wide = {split: part.pivot_table(index=["pruning", "seed"], columns="method", values=split)
                for split in ("best val fitness", "val", "test")}
        for other in ("sa", "ga", "random"):
            row = {"allocation": scope, "comparison": f"LAHC - {METHODS[other]}"}
            for split, w in wide.items():
                r = paired(w["lahc"], w[other])
                row[f"{split} diff [95% CI]"] = fmt_ci(r)
                if split == "test":
                    row.update({"n": r["n"], "Wilcoxon p (test)": f"{r['p_wilcoxon']:.3g}",
                                "W/T/L (test)": f"{r['wins']}/{r['ties']}/{r['losses']}"})
            stats_rows.append(row)
    comp = pd.DataFrame(stats_rows)
    means = table.groupby(["pruning", "method"], sort=False)[["evaluations", "best val fitness", "val", "test"]].mean()
    checks = pd.DataFrame([{"run": f["run"], "start network": f["start"],
                            "LAHC log's first fitness (run's, here)": "%.9f, %.9f" % f["rescore"] if "rescore" in f
                            else "-",
                            "run's stage 1 val/test": "%.2f / %.2f" % f["run_stage1"] if "run_stage1" in f else "-"}
                           for f in facts])
    command = ("SAFS_DATA=../shared/data SAFS_RUNS=/tmp/search-runs OMP_NUM_THREADS=1 python "
               "benchmarks/search_methods.py " + " ".join(sys.argv[1:]))
    text = "\n".join([
        "# Stage-1 search methods at equal evaluation counts", "",
        f"Made by `{command}` ({time.perf_counter() - t0:.0f} s wall, records read back where they existed). "
        f"{100 * args.sparsity:g}% sparsity, preset `{args.preset}`, seeds {args.seeds}"
        + (f" (not computed, left out: {', '.join(skipped)})" if skipped else "") + "; each search scores as many "
        "distinct vectors as LAHC (revisits come from the cache and are free for all four); every choice on the "
        "validation split, each retrained as stage 1 is; test accuracy is reported, never used. With the same seed "
        "all four start from the same random vector, and the genetic algorithm's initial population (8) is random "
        "search's first 8 samples, so at 9 evaluations the two differ only in the GA's one bred child.", "",
        "## Per seed", "", table.to_markdown(index=False, floatfmt=".2f"), "",
        "## Means over seeds", "", means.to_markdown(floatfmt=".2f"), "",
        "## LAHC minus each alternative (paired by seed; 95% BCa bootstrap interval of the mean, 10,000 resamples)",
        "", "`best val fitness`: the search's best candidate score (validation); `val` and `test`: the retrained "
        "choice.", "", comp.to_markdown(index=False), "",
        f"## Best validation fitness after k evaluations (k = 1..{k_max})", "",
        traj.to_markdown(index=False, floatfmt=".2f"), "",
        "## Checks", "", "The start network and, where the evidence run is collected, its LAHC log's first vector "
        "re-scored here against the log, and the run's own stage 1 (compare with the LAHC rows above).", "",
        checks.to_markdown(index=False), ""])
    print(text)
    path = figures_dir() / "search_methods.md"
    path.write_text(text)
    fig, axes = plt.subplots(1, len(args.prunings), figsize=(5.2 * len(args.prunings), 3.6), squeeze=False)
    for ax, pruning in zip(axes[0], args.prunings):
        for i, name in enumerate(METHODS):
            seeds = [s for s in args.seeds if (pruning, s, name) in curves]
            n = min(len(curves[(pruning, s, name)]) for s in seeds)  # a seed whose LAHC revisited has fewer
            stack = np.stack([curves[(pruning, s, name)][:n] for s in seeds])
            x = np.arange(1, stack.shape[1] + 1)
            mean = stack.mean(0)
            ax.plot(x, mean, drawstyle="steps-post", color=f"C{i}", lw=1.8, ls=("-", "-", "--", ":")[i],
                    label=METHODS[name])
            if len(seeds) > 1:
                sem = stack.std(0, ddof=1) / np.sqrt(len(seeds))
                ax.fill_between(x, mean - sem, mean + sem, step="post", color=f"C{i}", alpha=0.12, lw=0)
        ax.set_title(f"{100 * args.sparsity:g}% {pruning}, preset {args.preset}, mean of {len(seeds)} seeds",
                     fontsize=9)
        ax.set_xlabel("evaluations (distinct vectors scored)")
        ax.set_ylabel("best validation fitness so far (%)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("Stage-1 searches at equal evaluation counts (band: +- one standard error; each mean up to the "
                 "smallest evaluation count among its seeds)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, figures_dir() / "search_methods.png")
    print(f"written: {path} and {figures_dir() / 'search_methods.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
