"""Command line: `python -m safs_lite <command> ...` (also installed as `safs-lite`).

Commands:
    demo   train LeNet-5, prune it by magnitude, fine-tune, print the accuracies.
"""
from __future__ import annotations

import argparse
import sys
import time

from .data import DataNotFoundError


def _demo(args: argparse.Namespace) -> int:
    import torch

    from .data import load_data
    from .pipeline import magnitude_pruning, train_dense
    from .data import check_dataset
    from .models import check_model
    from .pruning import PRUNING_METHODS, check_sparsity
    from .train import TrainConfig

    check_model(args.model), check_dataset(args.dataset), check_sparsity(args.sparsity)
    if args.pruning not in PRUNING_METHODS:
        raise ValueError(f"unknown pruning method {args.pruning!r}; valid: {', '.join(PRUNING_METHODS)}")
    torch.set_num_threads(args.threads or torch.get_num_threads())
    t0 = time.perf_counter()
    data = load_data(args.dataset, root=args.data, seed=args.seed)
    print(f"data: {data.source} ({len(data.train)} train / {len(data.val)} val / {len(data.test)} test)")
    dense, rec = train_dense(args.model, data, TrainConfig(epochs=args.epochs, seed=args.seed), runs=args.runs)
    print(f"dense {args.model}: test accuracy {rec['test_accuracy']:.2f}%  "
          f"(val {rec['val_accuracy']:.2f}%, {len(rec['history'])} epochs)")
    ft = TrainConfig(epochs=args.finetune_epochs, seed=args.seed)
    pruned, prec = magnitude_pruning(dense, data, args.sparsity, args.pruning, ft, runs=args.runs)
    rep = prec["sparsity"]
    layers = "  ".join(f"{k} {100 * v:.1f}%" for k, v in rep.items() if k != "overall")
    print(f"pruned {args.pruning} to {100 * rep['overall']:.2f}% sparsity ({layers})")
    print(f"magnitude pruning: test accuracy {prec['test_before']:.2f}% before fine-tuning, "
          f"{prec['test_accuracy']:.2f}% after {args.finetune_epochs} epochs")
    print(f"done in {time.perf_counter() - t0:.0f} s (runs are cached: a rerun is instant)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the CLI."""
    p = argparse.ArgumentParser(prog="python -m safs_lite", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="train LeNet-5, prune it, fine-tune, print dense and pruned accuracy")
    d.add_argument("--model", default="lenet5")
    d.add_argument("--dataset", default="mnist")
    d.add_argument("--sparsity", type=float, default=0.99)
    d.add_argument("--pruning", default="layerwise", help="layerwise (paper) or global")
    d.add_argument("--epochs", type=int, default=15, help="dense training epochs")
    d.add_argument("--finetune-epochs", type=int, default=5, help="fine-tuning epochs after pruning")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--data", default=None, help="data folder (default $SAFS_DATA, else <repo>/data)")
    d.add_argument("--runs", default=None, help="runs folder (default $SAFS_RUNS, else <repo>/runs)")
    d.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    d.set_defaults(func=_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; bad input ends in a one-line error and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, DataNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished steps are saved; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
