"""The searches and the accuracy predictor on a landscape table: which search reaches the top of the space?

Reads one table built by `python -m safs_lite landscape <run>` (results/landscape/<run>-<key>/) and prints:

1. the landscape (`landscape.describe`): dead share, best vector against the best single operator, additivity;
2. every search of the kit (LAHC with history 1, 3 and 10, simulated annealing, the genetic algorithm, random
   search) `--repeats` times at the kit's budgets (9 distinct evaluations: the `sweep` preset's LAHC; 13: the
   library's size, the single-operator scan's; 41: the `cpu` preset's LAHC) and the single-operator scan: the
   best fitness found, its median percentile in the table, and the probability of reaching the top 1% with a
   Wilson 95% interval;
3. the predictor (ridge on one-hot operators, with pairwise site interactions, a random forest, gradient
   boosting) fitted on k = 25 ... 500 vectors: Spearman and top-1% recall on the rest, mean over repeats;
4. predictor-guided search against LAHC (L=3) at equal real evaluations: probability of reaching the top 1%.

Lookups only, no training: minutes on one core. A table still being built is refused unless `--partial`
(then only the scored vectors count as the space: for trying the script, not for numbers).

    python benchmarks/landscape_study.py results/landscape/<folder> [--repeats 1000] [--partial]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from safs_lite.study import landscape as L
from safs_lite.study import landscape_search as S


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("table", help="a landscape folder (holds key.json and chunk-*.csv.gz)")
    p.add_argument("--repeats", type=int, default=1000)
    p.add_argument("--predictor-repeats", type=int, default=10)
    p.add_argument("--partial", action="store_true", help="use a table still being built (its scored vectors)")
    args = p.parse_args(argv)
    folder = Path(args.table)
    if not (folder / "key.json").exists():
        print(f"error: {folder} is not a landscape table (no key.json)", file=sys.stderr)
        return 2
    table = L.load_table(folder)
    key = table.attrs["key"]
    if not table.attrs["complete"] and not args.partial:
        total = len(key["space"]) ** len(key["sites"])
        print(f"error: {folder}: {len(table)} of {total} vectors scored; rerun "
              f"`python -m safs_lite landscape` to finish it (or --partial to try the script)", file=sys.stderr)
        return 2
    sites, space = key["sites"], key["space"]
    if table.attrs["complete"]:
        fitness = table["fitness"].to_numpy()
    else:  # a partial table: a dense array over the whole space, unscored vectors the worst possible
        fitness = np.full(len(space) ** len(sites), -np.inf)
        fitness[table["index"].to_numpy()] = table["fitness"].to_numpy()
    from safs_lite.paths import results_dir

    run = results_dir() / "evidence" / "runs" / key["run"]
    dead = L.majority_share(run) if (run / "results.json").exists() else float(table["val_acc"].min())
    print(L.format_description(table, dead_level=dead, folder=folder), "\n")
    study = S.search_study(fitness, sites, space, budgets=(9, 13, 41), repeats=args.repeats)
    scored = fitness[np.isfinite(fitness)]
    summary = S.summarise(study, scored)
    print(summary.to_markdown(index=False, floatfmt=".3f"), "\n")
    if table.attrs["complete"]:
        pred = S.predictor_study(fitness, len(sites), len(space), repeats=args.predictor_repeats)
        print(pred.groupby(["k", "model"])[["spearman", "top1_recall"]].mean().unstack("model")
              .to_markdown(floatfmt=".3f"), "\n")
        threshold = np.quantile(fitness, 0.99)
        rows = []
        for budget in (13, 41):
            guided = [S.predictor_search(fitness, len(sites), len(space), budget, seed=r)["best"] >= threshold
                      for r in range(min(args.repeats, 200))]
            lahc = study[(study["method"] == "lahc (L=3)") & (study["budget"] == budget)]["best"] >= threshold
            rows.append({"evaluations": budget, "predictor-guided P(top 1%)": np.mean(guided),
                         "LAHC (L=3) P(top 1%)": lahc.mean()})
        print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
