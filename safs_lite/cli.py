"""Command line: `python -m safs_lite <command> ...` (also installed as `safs-lite`).

Commands:
    demo       SAFS end to end at a small budget: dense, magnitude pruning, stage 1, stage 2, SAFS.
    run        the SAFS pipeline for one setting; writes OUT/results.json and prints Table 1's five numbers.
    reproduce  one run per seed (finished runs reused); writes figures/table1.csv and table1.md.
    sweep      MP and SAFS at several sparsities, layer-wise and global; writes
               figures/accuracy_vs_sparsity.csv and .png.
    figures    the reproduction's figures from saved runs, without training.
    check      verify a run folder: every file parses, keys agree, saved models match their records.
"""
from __future__ import annotations

import argparse
import sys
import time

from .data import DataNotFoundError


def _demo(args: argparse.Namespace) -> int:
    import torch

    from .data import load_data
    from .figures import fitness_label
    from .plots import plot_lahc_trajectory, save_figure
    from .safs import DEMO_SETTING, SAFSConfig, default_out, run_safs
    from .search import read_history

    cfg = SAFSConfig(model=args.model, dataset=args.dataset, sparsity=args.sparsity, pruning=args.pruning,
                     preset=args.preset, seed=args.seed).validate()
    torch.set_num_threads(args.threads or torch.get_num_threads())
    t0 = time.perf_counter()
    data = load_data(args.dataset, root=args.data, seed=args.seed)
    print(f"data: {data.source} ({len(data.train)} train / {len(data.val)} val / {len(data.test)} test)")
    b = cfg.budgets()
    print(f"SAFS on {cfg.model} / {cfg.dataset} at {100 * cfg.sparsity:g}% {cfg.pruning} sparsity, preset "
          f"{cfg.preset}: dense {b.dense_epochs} epochs, {b.lahc_steps + 1} LAHC candidates, "
          f"2 x {b.hpo_trials} HPO trials, {b.finetune_epochs}-epoch retrains")
    out = default_out(cfg, args.runs, data=data)
    res = run_safs(cfg, data_root=args.data, runs=args.runs)
    print(format_table(res))
    scales = res["alpha_beta"]["safs"]
    print("learned scales (SAFS): " + ", ".join(f"{k}: {a:.2f} * {res['activations']['safs'][k]}({b:.2f} x)"
                                               for k, (a, b) in scales.items()))
    fig = plot_lahc_trajectory(read_history(out / "stage1_search.csv"), ylabel=fitness_label(res),
                               title="stage 1 (LAHC): the fitness of each candidate")
    save_figure(fig, out / "lahc_trajectory.png")
    print(f"results: {out}/results.json; LAHC trajectory: {out}/lahc_trajectory.png")
    if (cfg.sparsity, cfg.pruning) == DEMO_SETTING:
        print("the paper's setting (99% layer-wise) with the benchmark budgets: "
              "python -m safs_lite run --preset cpu --sparsity 0.99 --pruning layerwise")
    print(f"done in {time.perf_counter() - t0:.0f} s (finished stages are saved: a rerun prints at once)")
    return 0


def _run(args: argparse.Namespace) -> int:
    import torch

    from .safs import PAPER_TABLE1, SAFSConfig, default_out, run_safs

    cfg = SAFSConfig(model=args.model, dataset=args.dataset, sparsity=args.sparsity, pruning=args.pruning,
                     preset=args.preset, seed=args.seed, search=args.search, move=args.move,
                     fitness=args.fitness, amp=args.amp, channels_last=args.channels_last).validate()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _device(args.device)
    if (args.amp or args.channels_last) and device != "cuda":
        raise ValueError(f"--amp and --channels-last need a CUDA device (--device cuda); this run is on {device}")
    out = args.out or default_out(cfg, args.runs, data_root=args.data)
    t0 = time.perf_counter()
    res = run_safs(cfg, out=args.out, data_root=args.data, runs=args.runs, device=device)
    print(format_table(res, PAPER_TABLE1.get((cfg.model, cfg.dataset))
                       if cfg.sparsity == 0.99 and cfg.pruning == "layerwise" else None))
    print(f"results: {out}/results.json  ({time.perf_counter() - t0:.0f} s this call; "
          f"{res['seconds']['total']:.0f} s of compute in all stages)")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    import torch

    from .paths import figures_dir
    from .reproduce import format_summary, reproduce

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    table = reproduce(preset=args.preset, seeds=tuple(args.seeds), model=args.model, dataset=args.dataset,
                      sparsity=args.sparsity, pruning=args.pruning, data_root=args.data, runs=args.runs,
                      device=_device(args.device), fitness=args.fitness)
    print(format_summary(table))
    print(f"written: {figures_dir() / 'table1.csv'} and table1.md ({time.perf_counter() - t0:.0f} s this call)")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    import torch

    from .paths import figures_dir
    from .sweep import sweep

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    table = sweep(preset=args.preset, seeds=tuple(args.seeds), sparsities=tuple(args.sparsities),
                  prunings=tuple(args.pruning), model=args.model, dataset=args.dataset, data_root=args.data,
                  runs=args.runs, device=_device(args.device))
    summary = (table[table["method"].isin(["magnitude_pruning", "safs"])]
               .pivot_table(index=["pruning", "sparsity"], columns="method", values="test_accuracy",
                            aggfunc=["mean", "std"]))
    print(summary.to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"written: {figures_dir() / 'accuracy_vs_sparsity.csv'} and .png "
          f"({time.perf_counter() - t0:.0f} s this call)")
    return 0


def _figures(args: argparse.Namespace) -> int:
    from .figures import make_figures

    written = make_figures(preset=args.preset, seeds=tuple(args.seeds), model=args.model, dataset=args.dataset,
                           data_root=args.data,
                           sparsity=args.sparsity, pruning=args.pruning, runs=args.runs)
    for path in written:
        print(f"written: {path}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from .check import check_run

    problems = check_run(args.run_dir, data_root=args.data)
    for line in problems:
        print(line)
    if problems:
        print(f"{args.run_dir}: {len(problems)} problem(s)")
        return 1
    print(f"{args.run_dir}: ok (key, records, history and every saved model consistent)")
    return 0


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available; use --device cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; valid: auto, cpu, cuda")
    return name


def format_table(res: dict, paper: dict | None = None) -> str:
    """Table 1's five numbers (and the SAFS gain) of one run, next to the paper's when given."""
    acc = dict(res["test_accuracy"])
    acc["safs_gain"] = acc["safs"] - acc["magnitude_pruning"]
    cols = ["dense", "magnitude_pruning", "stage1", "stage2", "safs", "safs_gain"]
    heads = ["Dense", "Magnitude pruning", "Stage 1", "Stage 2", "SAFS", "SAFS gain"]
    c = res["config"]
    lines = [f"{c['model']} / {c['dataset']}, {100 * c['sparsity']:g}% {c['pruning']} sparsity, "
             f"preset {c['preset']}, seed {c['seed']} (test accuracy, %)",
             f"{'':<12}" + "".join(f"{h:>19}" for h in heads)]
    fmt = lambda k, v: f"{v:+19.2f}" if k == "safs_gain" else f"{v:19.2f}"  # noqa: E731
    lines.append(f"{'this run':<12}" + "".join(fmt(k, acc[k]) for k in cols))
    if paper:
        p = dict(paper, safs_gain=paper["safs"] - paper["magnitude_pruning"])
        lines.append(f"{'paper':<12}" + "".join(fmt(k, p[k]) for k in cols))
    ops = ", ".join(f"{k}={v}" for k, v in res["activations"]["safs"].items())
    lines.append(f"operators found: {ops}")
    return "\n".join(lines)


_COMMON = {  # options several commands share, with the same meaning everywhere
    "model": dict(default="lenet5", help="lenet5, vgg16, resnet18 or efficientnet_b0"),
    "dataset": dict(default="mnist", help="mnist, fashion_mnist, cifar10 or imagenet16"),
    "data": dict(default=None, help="data folder (default $SAFS_DATA, else <repo>/data)"),
    "runs": dict(default=None, help="runs folder (default $SAFS_RUNS, else <repo>/runs)"),
    "device": dict(default="cpu", help="cpu, cuda or auto"),
    "threads": dict(type=int, default=None, help="CPU threads (default: all cores)"),
    "deterministic": dict(action="store_true",
                          help="repeatable CUDA runs (torch.use_deterministic_algorithms): slower kernels; "
                               "CPU runs are repeatable without it"),
}


def _common(parser: argparse.ArgumentParser, *names: str) -> None:
    """Add the shared options `names` (keys of _COMMON) to a command's parser."""
    for name in names:
        parser.add_argument(f"--{name}", **_COMMON[name])



def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the CLI."""
    from .fitness import FITNESSES
    from .safs import DEMO_SETTING, SAFSConfig
    from .sweep import SPARSITIES

    fitness_help = (f"stage-1 score of a candidate: {', '.join(FITNESSES)} (default {SAFSConfig.fitness}; "
                    "val_acc is the reference code's)")
    p = argparse.ArgumentParser(prog="python -m safs_lite", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="SAFS end to end in minutes: dense, magnitude pruning, stage 1, stage 2, SAFS")
    d.add_argument("--sparsity", type=float, default=DEMO_SETTING[0])
    d.add_argument("--pruning", default=DEMO_SETTING[1], help="layerwise (paper) or global")
    d.add_argument("--preset", default="demo", help="demo (default: about 2 minutes), smoke, cpu, sweep, paper")
    d.add_argument("--seed", type=int, default=0)
    _common(d, "model", "dataset", "data", "runs", "threads", "deterministic")
    d.set_defaults(func=_demo)

    r = sub.add_parser("run", help="the SAFS pipeline for one setting (writes OUT/results.json)")
    r.add_argument("--sparsity", type=float, default=0.99)
    r.add_argument("--pruning", default="layerwise", help="layerwise (paper) or global")
    r.add_argument("--preset", default="smoke",
                   help="smoke (seconds), cpu (benchmark), sweep (short budgets), paper (GPU)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--search", default="lahc", help="stage-1 search: lahc (paper) or random")
    r.add_argument("--move", default="reference", help="LAHC move: reference or one_layer")
    r.add_argument("--fitness", default=SAFSConfig.fitness, help=fitness_help)
    r.add_argument("--out", default=None, help="run folder (default: runs/safs-<config>-<hash>)")
    r.add_argument("--amp", action="store_true", help="CUDA only: mixed precision (bf16, else fp16)")
    r.add_argument("--channels-last", action="store_true", help="CUDA only: NHWC memory format")
    _common(r, "model", "dataset", "data", "runs", "device", "threads", "deterministic")
    r.set_defaults(func=_run)

    q = sub.add_parser("reproduce", help="Table 1 over seeds: one run per seed, mean and std, next to the paper")
    q.add_argument("--preset", default="cpu", help="smoke, cpu (default), sweep or paper")
    q.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    q.add_argument("--sparsity", type=float, default=0.99)
    q.add_argument("--pruning", default="layerwise")
    q.add_argument("--fitness", default=SAFSConfig.fitness, help=fitness_help)
    _common(q, "model", "dataset", "data", "runs", "device", "threads", "deterministic")
    q.set_defaults(func=_reproduce)

    w = sub.add_parser("sweep", help="accuracy vs sparsity: MP and SAFS at several sparsities, both pruning methods")
    w.add_argument("--preset", default="sweep", help="smoke, sweep (about 3 min per run on 1 core), cpu or paper")
    w.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    w.add_argument("--sparsities", type=float, nargs="+", default=list(SPARSITIES),
                   help="sparsities to run (default: 0.9 0.95 0.98 0.99)")
    w.add_argument("--pruning", nargs="+", default=["layerwise", "global"], help="layerwise and/or global")
    _common(w, "model", "dataset", "data", "runs", "device", "threads", "deterministic")
    w.set_defaults(func=_sweep)

    f = sub.add_parser("figures", help="the reproduction's figures from the saved runs of `reproduce` (no training); "
                       "redraws the sweep figure when figures/accuracy_vs_sparsity.csv exists")
    f.add_argument("--preset", default="cpu", help="the preset `reproduce` ran with")
    f.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    f.add_argument("--sparsity", type=float, default=0.99)
    f.add_argument("--pruning", default="layerwise")
    _common(f, "model", "dataset", "data", "runs")
    f.set_defaults(func=_figures)
    c = sub.add_parser("check", help="verify a run folder: files, keys, and every saved model against its record")
    c.add_argument("run_dir", help="a SAFS run folder (holds config.json and results.json)")
    _common(c, "data")
    c.set_defaults(func=_check)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; bad input ends in a one-line error and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "deterministic", False):
            from .train import set_deterministic

            set_deterministic(True)
        return args.func(args)
    except (ValueError, DataNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished steps are saved; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
