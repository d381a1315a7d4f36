"""How much the BCa bootstrap's bounds move with its resampling seed, and how many resamples keep them still.

For every effect of the factorial (`safs_lite.study.factorial`, the committed study, 30-epoch finals where they
exist, else the runs' own 5-epoch finals) with at least 5 masks, the BCa 95% interval of the mean difference is
computed with `--seeds` resampling seeds at each resample count; the table prints, per count, the largest range
(max - min over seeds) of the lower and of the upper bound over all effects, and the seconds per interval. The
kit reports a bound to 2 decimals, so a count whose ranges stay below 0.05 is enough. The t interval has no
Monte-Carlo error and is printed beside the bootstrap in every table.

    python benchmarks/bootstrap_error.py [--seeds 20] [--counts 10000 50000 100000]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from safs_lite.study import factorial as fx
from safs_lite.study.stats import bootstrap_interval


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--counts", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    args = p.parse_args(argv)
    diffs = []
    for epochs in (30, 5):
        table = fx.wide(fx.load_cells(epochs))
        for setting in dict.fromkeys(table.index.get_level_values("setting")):
            group = table.loc[setting]
            for name, (a, b, _) in fx.EFFECTS.items():
                d = (group[a] - group[b]).dropna().to_numpy(float)
                if len(d) >= 5 and d.std() > 0:
                    diffs.append((f"{setting} {name} (e{epochs})", np.round(d, 9)))
    print(f"{len(diffs)} effects with at least 5 masks; {args.seeds} resampling seeds per count\n")
    print("| resamples | largest range of the lower bound | largest range of the upper bound | worst effect | "
          "s per interval |")
    print("|---:|---:|---:|---|---:|")
    for n in args.counts:
        worst, t0 = (0.0, 0.0, ""), time.perf_counter()
        for label, d in diffs:
            bounds = np.array([bootstrap_interval(d, n_resamples=n, seed=s)[:2] for s in range(args.seeds)])
            lo, hi = np.ptp(bounds[:, 0]), np.ptp(bounds[:, 1])
            if max(lo, hi) > max(worst[0], worst[1]):
                worst = (lo, hi, label)
        per = (time.perf_counter() - t0) / (len(diffs) * args.seeds)
        print(f"| {n} | {worst[0]:.3f} | {worst[1]:.3f} | {worst[2]} | {per:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
