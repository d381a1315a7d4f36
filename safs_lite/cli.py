"""Command line: `python -m safs_lite <command> ...` (also installed as `safs-lite`).

Commands:
    demo       SAFS end to end at a small budget: dense, magnitude pruning, stage 1, stage 2, SAFS.
    run        the SAFS pipeline for one setting; writes OUT/results.json and prints Table 1's five numbers.
    reproduce  one run per seed (finished runs reused); writes figures/table1.csv and table1.md.
    sweep      MP and SAFS at several sparsities, layer-wise and global; writes
               figures/sweep.csv and .png.
    figures    the reproduction's figures from saved runs, without training.
    check      verify a run folder: every file parses, keys agree, saved models match their records.
    hpo-worker add trials to a run's stage-2 studies on a shared Optuna storage, from any process or machine.
    export     a run's sparse model as pt, onnx or safetensors, checked against the run, with a model card.
    landscape  every per-layer operator vector of a committed run's mask, scored at one fidelity (resumable,
               shardable, on Dask with --workers/--scheduler); prints what the table shows so far.
"""
from __future__ import annotations

import argparse
import sys
import time

from .data.splits import DataNotFoundError


def seeds_arg(text: str) -> list[int]:
    """'0-9' or '0,3,5' -> a list of seeds (at least one, each >= 0); anything else: argparse's one-line error."""
    try:
        if "-" in text:
            lo, hi = (int(v) for v in text.split("-"))
            seeds = list(range(lo, hi + 1))
        else:
            seeds = [int(s) for s in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give seeds as FIRST-LAST with FIRST <= LAST (0-9) or as a "
                                         "comma list (0,3,5), each >= 0")
    return seeds


def _demo(args: argparse.Namespace) -> int:
    import torch

    from .data.builtin import load_data
    from .method.searchlog import read_history
    from .run.config import DEMO_SETTING, SAFSConfig
    from .run.folders import default_out
    from .run.results import format_run
    from .run.safs import run_safs
    from .study.plots import plot_lahc_trajectory, save_figure
    from .training.fitness import fitness_label

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
    print(format_run(res))
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

    from .run.config import SAFSConfig
    from .run.folders import default_out
    from .run.results import format_run
    from .run.safs import run_safs

    cfg = SAFSConfig(model=args.model, dataset=args.dataset, sparsity=args.sparsity, pruning=args.pruning,
                     preset=args.preset, seed=args.seed, search=args.search, move=args.move,
                     fitness=args.fitness, amp=args.amp, channels_last=args.channels_last).validate()
    baselines = _baselines(args)  # a bad name fails before any data is read
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _device(args.device)
    if (args.amp or args.channels_last) and device != "cuda":
        raise ValueError(f"--amp and --channels-last need a CUDA device (--device cuda); this run is on {device}")
    out = args.out or default_out(cfg, args.runs, data_root=args.data, device=device)
    t0 = time.perf_counter()
    res = run_safs(cfg, out=args.out, data_root=args.data, runs=args.runs, device=device, storage=args.storage,
                   baselines=baselines)
    print(format_run(res))
    print(f"results: {out}/results.json  ({time.perf_counter() - t0:.0f} s this call; "
          f"{res['seconds']['total']:.0f} s of compute in all stages)")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    import torch

    from .paths import figures_dir
    from .run.results import format_summary
    from .study.reproduce import reproduce

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    table = reproduce(preset=args.preset, seeds=tuple(args.seeds), model=args.model, dataset=args.dataset,
                      sparsity=args.sparsity, pruning=args.pruning, data_root=args.data, runs=args.runs,
                      device=_device(args.device), fitness=args.fitness, workers=args.workers,
                      scheduler=args.scheduler, storage=args.storage, baselines=_baselines(args))
    print(format_summary(table))
    print(f"written: {figures_dir() / 'table1.csv'} and table1.md ({time.perf_counter() - t0:.0f} s this call)")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    import torch

    from .paths import figures_dir
    from .study.sweep import FIGURE_FILE, TABLE_FILE, sweep

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    table = sweep(preset=args.preset, seeds=tuple(args.seeds), sparsities=tuple(args.sparsities),
                  prunings=tuple(args.pruning), model=args.model, dataset=args.dataset, data_root=args.data,
                  runs=args.runs, device=_device(args.device), workers=args.workers, scheduler=args.scheduler,
                  storage=args.storage, baselines=_baselines(args))
    summary = (table[table["method"].isin(["magnitude_pruning", "safs"])]
               .pivot_table(index=["pruning", "sparsity"], columns="method", values="test_accuracy",
                            aggfunc=["mean", "std"]))
    print(summary.to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"written: {figures_dir() / TABLE_FILE} and {FIGURE_FILE} "
          f"({time.perf_counter() - t0:.0f} s this call)")
    return 0


def _figures(args: argparse.Namespace) -> int:
    from .study.figures import make_figures

    written = make_figures(preset=args.preset, seeds=tuple(args.seeds), model=args.model, dataset=args.dataset,
                           data_root=args.data,
                           sparsity=args.sparsity, pruning=args.pruning, runs=args.runs)
    for path in written:
        print(f"written: {path}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from .run.check import check_report

    problems, unverified = check_report(args.run_dir, data_root=args.data)
    for line in problems:
        print(line)
    for line in unverified:
        print(f"not verified: {line}")
    if problems:
        print(f"{args.run_dir}: {len(problems)} problem(s)")
        return 1
    print(f"{args.run_dir}: ok (every record consistent" + ("; see what was not verified above)" if unverified
                                                            else ", every saved model re-evaluated)"))
    return 0


def _hpo_worker(args: argparse.Namespace) -> int:
    import torch

    from .run.safs import hpo_worker
    from .run.storage import describe

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    stages = ("stage2", "safs") if args.stage == "auto" else (args.stage,)
    report = hpo_worker(args.run_dir, storage=args.storage, stages=stages, data_root=args.data, runs=args.runs,
                        device=_device(args.device))
    where = describe(args.storage) if args.storage else "the run's SQLite files"
    for stage, r in report.items():
        if r["status"] == "finished":
            print(f"{stage}: study finished on {where}, {r['trials']} trials ({r['mine']} run by this worker)")
        elif r["status"] == "already done":
            print(f"{stage}: already done ({args.run_dir}/{stage}.json exists)")
        else:
            print(f"{stage}: stage 1 has not finished, so the study's operators are not known yet; "
                  f"start a worker again once {args.run_dir}/stage1.json exists")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


def _baselines(args: argparse.Namespace) -> tuple[str, ...]:
    from .run.baselines import DEFAULT_BASELINES, check_baselines

    return DEFAULT_BASELINES if args.baselines is None else check_baselines(args.baselines)


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available; use --device cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; valid: auto, cpu, cuda")
    return name


_COMMON = {  # options several commands share, with the same meaning everywhere
    "model": dict(default="lenet5", help="lenet5, vgg16, resnet18 or efficientnet_b0"),
    "dataset": dict(default="mnist", help="mnist, fashion_mnist, cifar10 or imagenet16"),
    "data": dict(default=None, help="data folder (default $SAFS_DATA, else <repo>/data)"),
    "runs": dict(default=None, help="runs folder (default $SAFS_RUNS, else <repo>/runs)"),
    "device": dict(default="cpu", help="cpu, cuda or auto"),
    "threads": dict(type=int, default=None, help="CPU threads (default: all cores)"),
    "storage": dict(default=None, metavar="URL",
                    help="where stage 2's Optuna studies live: sqlite:///PATH, postgresql://USER@HOST/DB, "
                         "mysql://USER@HOST/DB or journal:PATH (default: the run's own SQLite files); "
                         "hpo-worker processes on other machines can then add trials"),
    "workers": dict(type=int, default=None, metavar="N",
                    help="run N runs at once on a Dask LocalCluster of N single-threaded processes"),
    "scheduler": dict(default=None, metavar="ADDRESS",
                      help="run on an existing Dask cluster (tcp://host:8786) whose workers share the data "
                           "and runs folders; docs/scaling_out.md"),
    "baselines": dict(nargs="*", default=None, metavar="NAME",
                      help="baselines each run computes after stage 1, retrained as stage 1 is: uniform, swish, "
                           "random, sa, ga; or uniform_safs: uniform's operators given SAFS's stage 2 (default: "
                           "uniform swish; give none for none)"),
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
    from .deploy.export import add_export_parser
    from .method.lahc import MOVES, SEARCHES
    from .method.pruning import PRUNING_METHODS
    from .run.config import DEMO_SETTING, PRESETS, SAFSConfig
    from .study.sweep import SPARSITIES
    from .training.fitness import FITNESSES

    pruning_help = f"{' or '.join(PRUNING_METHODS)} (the paper: layerwise)"
    preset_help = f"budgets: {', '.join(PRESETS)} (config.PRESETS)"
    fitness_help = (f"stage-1 score of a candidate: {', '.join(FITNESSES)} (default {SAFSConfig.fitness}; "
                    "val_acc is the reference code's)")
    p = argparse.ArgumentParser(prog="python -m safs_lite", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="SAFS end to end in minutes: dense, magnitude pruning, stage 1, stage 2, SAFS")
    d.add_argument("--sparsity", type=float, default=DEMO_SETTING[0])
    d.add_argument("--pruning", default=DEMO_SETTING[1], help=pruning_help)
    d.add_argument("--preset", default="demo", help="demo (default: about 2 minutes), smoke, cpu, sweep, paper")
    d.add_argument("--seed", type=int, default=0)
    _common(d, "model", "dataset", "data", "runs", "threads", "deterministic")
    d.set_defaults(func=_demo)

    r = sub.add_parser("run", help="the SAFS pipeline for one setting (writes OUT/results.json)")
    r.add_argument("--sparsity", type=float, default=0.99)
    r.add_argument("--pruning", default="layerwise", help=pruning_help)
    r.add_argument("--preset", default="smoke", help=preset_help + "; smoke runs in seconds")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--search", default="lahc", help=f"stage-1 search: {', '.join(SEARCHES)} (the paper: lahc; "
                   "random, sa and ga spend LAHC's steps + 1 evaluations)")
    r.add_argument("--move", default="reference", help=f"LAHC move: {', '.join(MOVES)}")
    r.add_argument("--fitness", default=SAFSConfig.fitness, help=fitness_help)
    r.add_argument("--out", default=None, help="run folder (default: runs/safs-<config>-<hash>)")
    r.add_argument("--amp", action="store_true", help="CUDA only: mixed precision (bf16, else fp16)")
    r.add_argument("--channels-last", action="store_true", help="CUDA only: NHWC memory format")
    _common(r, "model", "dataset", "data", "runs", "device", "threads", "deterministic", "storage", "baselines")
    r.set_defaults(func=_run)

    q = sub.add_parser("reproduce", help="Table 1 over seeds: one run per seed, mean and std, next to the paper")
    q.add_argument("--preset", default="cpu", help=preset_help)
    q.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    q.add_argument("--sparsity", type=float, default=0.99)
    q.add_argument("--pruning", default="layerwise", help=pruning_help)
    q.add_argument("--fitness", default=SAFSConfig.fitness, help=fitness_help)
    _common(q, "model", "dataset", "data", "runs", "device", "threads", "deterministic", "workers", "scheduler",
            "storage", "baselines")
    q.set_defaults(func=_reproduce)

    w = sub.add_parser("sweep", help="accuracy vs sparsity: MP and SAFS at several sparsities, both pruning methods")
    w.add_argument("--preset", default="sweep", help=preset_help + "; sweep: about 3 min per run on 1 core")
    w.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    w.add_argument("--sparsities", type=float, nargs="+", default=list(SPARSITIES),
                   help="sparsities to run (default: 0.9 0.95 0.98 0.99)")
    w.add_argument("--pruning", nargs="+", default=["layerwise", "global"],
                   help=f"any of {', '.join(PRUNING_METHODS)} (default: layerwise global)")
    _common(w, "model", "dataset", "data", "runs", "device", "threads", "deterministic", "workers", "scheduler",
            "storage", "baselines")
    w.set_defaults(func=_sweep)

    f = sub.add_parser("figures", help="the reproduction's figures from the saved runs of `reproduce` (no training); "
                       "redraws the sweep figure when figures/sweep.csv exists")
    f.add_argument("--preset", default="cpu", help="the preset `reproduce` ran with")
    f.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    f.add_argument("--sparsity", type=float, default=0.99)
    f.add_argument("--pruning", default="layerwise", help=pruning_help)
    _common(f, "model", "dataset", "data", "runs")
    f.set_defaults(func=_figures)
    c = sub.add_parser("check", help="verify a run folder: files, keys, and every saved model against its record")
    c.add_argument("run_dir", help="a SAFS run folder (holds config.json and results.json)")
    _common(c, "data")
    c.set_defaults(func=_check)
    h = sub.add_parser("hpo-worker", help="add trials to a run's stage-2 studies on a shared storage until each "
                       "has its budget (start as many as you like, on any machine that sees the run folder)")
    h.add_argument("run_dir", help="the run folder (holds config.json); the run itself uses the same --storage")
    h.add_argument("--stage", default="auto", choices=["auto", "stage2", "safs"],
                   help="which study to serve (auto: stage 2's, then SAFS's, skipping finished stages)")
    h.add_argument("--runs", default=None, help="runs folder holding the dense network's cache "
                   "(default: the run folder's parent)")
    _common(h, "storage", "data", "device", "threads")
    h.set_defaults(func=_hpo_worker)
    e = sub.add_parser("rl", help="SAFS for a sparse RL policy (Gymnasium classic control): dense, MP, stage 1, "
                       "stage 2, SAFS mean returns on held-out evaluation seeds")
    e.add_argument("--env", default="CartPole-v1", help="CartPole-v1 or Acrobot-v1")
    e.add_argument("--sparsity", type=float, default=0.9)
    e.add_argument("--pruning", default="layerwise", help=pruning_help)
    e.add_argument("--preset", default="smoke", help="smoke (seconds) or cpu")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", default=None, help="run folder (default: runs/rl-<env>-<setting>-<hash>)")
    _common(e, "runs", "threads")
    e.set_defaults(func=_rl)
    a = sub.add_parser("landscape", help="score every per-layer operator vector on a run's mask (13**4 for "
                       "LeNet-5), in resumable chunks under results/landscape/; prints what the table shows")
    a.add_argument("run_dir", help="a run folder holding pruned.pt and results.json (results/evidence/runs/...)")
    a.add_argument("--subset", type=int, default=10_000, help="training images per candidate epoch (default "
                   "10000, the sweep preset's stage-1 candidate; 0: the whole split)")
    a.add_argument("--epochs", type=int, default=1, help="candidate epochs (default 1)")
    a.add_argument("--lr", type=float, default=1e-2, help="candidate learning rate (default 1e-2)")
    a.add_argument("--shard", default="0/1", help="i/n: compute the chunks c with c %% n == i (default 0/1: all)")
    a.add_argument("--max-chunks", type=int, default=None, help="stop after this many chunks (default: all)")
    a.add_argument("--report", action="store_true", help="compute nothing: print what the table holds so far")
    _common(a, "data", "workers", "scheduler")
    a.set_defaults(func=_landscape)
    add_export_parser(sub)
    return p


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/2") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/2")
    return i, n


def _landscape(args: argparse.Namespace) -> int:
    from .study import landscape as ls

    fidelity = ls.Fidelity(epochs=args.epochs, subset=args.subset or None, lr=args.lr)
    shard = _shard(args.shard)
    if args.max_chunks is not None and args.max_chunks < 0:
        raise ValueError(f"--max-chunks {args.max_chunks}: must be a whole number >= 0")
    if args.report:
        folder = ls.Mask(args.run_dir, args.data).folder(fidelity)
    elif args.workers or args.scheduler:
        folder = ls.build_on_dask(args.run_dir, fidelity, args.workers, args.scheduler, data_root=args.data)
    else:
        folder = ls.build(args.run_dir, fidelity, shard, args.max_chunks, data_root=args.data)
    if not (folder / "key.json").exists():
        raise ValueError(f"no table yet at {folder}: run the command without --report")
    print(ls.format_description(ls.load_table(folder), ls.majority_share(args.run_dir, args.data), folder))
    return 0


def _rl(args: argparse.Namespace) -> int:
    import torch

    from .rl.policy import format_results, run_rl

    torch.set_num_threads(args.threads or torch.get_num_threads())
    print(format_results(run_rl(args.env, args.sparsity, args.pruning, args.preset, args.seed, args.out, args.runs)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; bad input ends in a one-line error and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "threads", None) is not None and args.threads < 1:
            raise ValueError(f"--threads {args.threads}: must be a whole number >= 1")
        if getattr(args, "deterministic", False):
            from .training.loop import set_deterministic

            set_deterministic(True)
        return args.func(args)
    except (ValueError, DataNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:  # NonFiniteLossError: a training run diverged
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished steps are saved; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
