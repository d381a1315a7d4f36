"""Training and inference of a pruned LeNet-5: the masked dense engine versus the compact engine.

One process, one thread by default. The network is a LeNet-5 trained densely for one epoch on
the training split (seed 0; "trained-ish": its magnitudes, and so its masks, are shaped by
training, as a real run's are), then magnitude-pruned at 90, 95, 98, 99 and 99.5%, layer-wise
and global. For each pruned network:

- epoch: one `train()` epoch (Adam, batch 256, the kit's LeNet-5 defaults) over the whole
  training split, validation included (what every fine-tune, candidate and HPO-trial epoch
  costs), from the same pruned network with `engine="dense"` and `engine="compact"`; the
  engines take turns over the rounds and each keeps its fastest round (other processes on a
  shared machine only ever add time). The two runs' training losses are printed side by side:
  the engines compute the same function, so they agree to float rounding.
- inference: forward passes at batch 1 and 256 under inference mode,
  torch.utils.benchmark.Timer.blocked_autorange, the least median over interleaved rounds.

With --profile, the per-operation profile (torch.profiler) of 20 training steps at 99%
layer-wise for each engine follows the tables.

    OMP_NUM_THREADS=1 SAFS_DATA=/work/shared/data python benchmarks/sparse_training.py [--quick] [--save]

--save writes the tables to figures/sparse_training.md. --quick: 5,000 training images per
epoch, one round, short inference timings (a smoke test of the script, not a measurement).
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

from safs_lite import TrainConfig, build_model, load_data, prune_model, train
from safs_lite.compact import CompactNet, compact
from safs_lite.pruning import clone, input_connected, sparsity_report

SPARSITIES = (0.90, 0.95, 0.98, 0.99, 0.995)
METHODS = ("layerwise", "global")
ENGINES = ("dense", "compact")
BATCHES = (1, 256)
REPO = Path(__file__).resolve().parents[1]


def epoch_seconds(pruned: torch.nn.Module, data, rounds: int, subset: int | None) -> dict[str, dict]:
    """Per engine: the fastest round's seconds for one training epoch with validation, and its losses."""
    out = {e: {"seconds": float("inf")} for e in ENGINES}
    for _ in range(rounds):
        for engine in ENGINES:
            cfg = TrainConfig(epochs=1, select="last", engine=engine, train_subset=subset, seed=0)
            row = train(clone(pruned), data, cfg, progress=False)[0]
            if row["seconds"] < out[engine]["seconds"]:
                out[engine] = row
    return out


def inference_seconds(pruned: torch.nn.Module, min_run_time: float, rounds: int) -> dict[tuple[str, int], float]:
    """(engine, batch) -> seconds per forward pass: the least median over interleaved rounds."""
    gen = torch.Generator().manual_seed(0)
    runs = {"dense": pruned, "compact": CompactNet(pruned)}
    best = {}
    with torch.inference_mode():
        for b in BATCHES:
            x = torch.rand(b, 1, 28, 28, generator=gen)
            ref = pruned(x)
            if not torch.allclose(runs["compact"](x), ref, rtol=1e-4, atol=1e-4):
                raise SystemExit("compact logits differ from the masked model's: a bug, not a result")
            for _ in range(rounds):
                for name, f in runs.items():
                    t = Timer("f(x)", globals={"f": f, "x": x}, num_threads=torch.get_num_threads())
                    sec = t.blocked_autorange(min_run_time=min_run_time).median
                    best[name, b] = min(best.get((name, b), float("inf")), sec)
    return best


def live_units(pruned: torch.nn.Module) -> str:
    """Input-connected units per layer, as conv1/conv2/fc1/fc2/fc3 counts."""
    return "/".join(str(v) for v in input_connected(pruned).values())


def profile_steps(pruned: torch.nn.Module, steps: int = 20) -> str:
    """torch.profiler tables (self CPU time) of `steps` Adam training steps at batch 256, per engine."""
    from torch.profiler import profile

    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(256, 1, 28, 28, generator=gen), torch.randint(0, 10, (256,), generator=gen)
    out = []
    for engine in ENGINES:
        model = clone(pruned)
        net = model if engine == "dense" else compact(model)
        opt = torch.optim.Adam(model.parameters(), 1e-3)

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()
        for _ in range(3):
            step()
        with profile() as prof:
            for _ in range(steps):
                step()
        out += [f"#### {engine} engine, {steps} steps", "", "```",
                prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), "```", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and with --save, write) its tables."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds per engine (default 2)")
    p.add_argument("--quick", action="store_true", help="5,000 images per epoch, one round (a smoke test)")
    p.add_argument("--profile", action="store_true", help="per-operation profile at 99%% layer-wise")
    p.add_argument("--save", action="store_true", help="write the tables to figures/sparse_training.md")
    args = p.parse_args(argv)
    if args.threads < 1 or args.rounds < 1:
        raise SystemExit(f"--threads and --rounds must be >= 1, got {args.threads} and {args.rounds}")
    torch.set_num_threads(args.threads)
    rounds, subset = (1, 5000) if args.quick else (args.rounds, None)
    min_run_time, inf_rounds = (0.02, 1) if args.quick else (0.2, 5)
    t0 = time.perf_counter()
    data = load_data("mnist", quiet=True)
    dense = build_model("lenet5", seed=0)
    train(dense, data, TrainConfig(epochs=1, select="last", train_subset=subset, seed=0), progress=False)
    lines = [f"## Pruned LeNet-5 on {len(data.train):,} training / {len(data.val):,} validation images: "
             f"dense (masked) vs compact engine, {args.threads} thread(s), torch {torch.__version__}, "
             f"{platform.processor() or platform.machine()}, {'quick' if args.quick else 'full'} timing",
             "", "LeNet-5 trained densely for one epoch (seed 0), then magnitude-pruned. Epoch: one training "
             "epoch (Adam, batch 256) plus validation, fastest of "
             f"{rounds} interleaved round(s). Live units: input-connected units of conv1/conv2/fc1/fc2/fc3.", "",
             "### Epoch time (training + validation)", "",
             "| pruning | sparsity | live units | dense s | compact s | speed-up | train loss dense / compact |",
             "| --- | ---: | --- | ---: | ---: | ---: | --- |"]
    print("\n".join(lines), flush=True)
    epochs, pruned_models = {}, {}
    for method in METHODS:
        for s in SPARSITIES:
            pruned = prune_model(clone(dense), s, method)
            pruned_models[method, s] = pruned
            e = epoch_seconds(pruned, data, rounds, subset)
            epochs[method, s] = e
            line = (f"| {method} | {100 * s:g}% ({100 * sparsity_report(pruned)['overall']:.2f}) | "
                    f"{live_units(pruned)} | {e['dense']['seconds']:.2f} | {e['compact']['seconds']:.2f} | "
                    f"{e['dense']['seconds'] / e['compact']['seconds']:.1f}x | "
                    f"{e['dense']['train_loss']:.5f} / {e['compact']['train_loss']:.5f} |")
            lines.append(line)
            print(line, flush=True)
    inf_lines = ["", "### Inference (forward pass, inference mode; layer-wise pruning)", "",
                 "| sparsity | batch | dense ms | compact ms | speed-up |", "| ---: | ---: | ---: | ---: | ---: |"]
    print("\n".join(inf_lines), flush=True)
    for s in SPARSITIES:
        sec = inference_seconds(pruned_models["layerwise", s], min_run_time, inf_rounds)
        for b in BATCHES:
            line = (f"| {100 * s:g}% | {b} | {1e3 * sec['dense', b]:.3f} | {1e3 * sec['compact', b]:.3f} | "
                    f"{sec['dense', b] / sec['compact', b]:.1f}x |")
            inf_lines.append(line)
            print(line, flush=True)
    lines += inf_lines
    at = {s: epochs["layerwise", s] for s in (0.90, 0.99)}
    speed = {s: at[s]["dense"]["seconds"] / at[s]["compact"]["seconds"] for s in at}
    inf99 = inference_seconds(pruned_models["layerwise", 0.99], min_run_time, inf_rounds)
    inf_speed = inf99["dense", 256] / inf99["compact", 256]
    verdict = ["", "Targets (issue 19): epoch at 99% layer-wise at least 5x faster: "
               f"{speed[0.99]:.1f}x ({'met' if speed[0.99] >= 5 else 'NOT met'}); at 90% at least 2x: "
               f"{speed[0.90]:.1f}x ({'met' if speed[0.90] >= 2 else 'NOT met'}); inference at 99%, batch 256, "
               f"at least 5x: {inf_speed:.1f}x ({'met' if inf_speed >= 5 else 'NOT met'})."]
    lines += verdict
    print("\n".join(verdict), flush=True)
    if args.profile:
        prof = ["", "### Per-operation profile, 99% layer-wise, batch 256", "",
                profile_steps(pruned_models["layerwise", 0.99])]
        lines += prof
        print("\n".join(prof))
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.save:
        path = REPO / "figures" / "sparse_training.md"
        path.write_text("\n".join(lines) + "\n\nMade by `OMP_NUM_THREADS=1 SAFS_DATA=<full MNIST> python "
                        "benchmarks/sparse_training.py --save`.\n")
        print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
