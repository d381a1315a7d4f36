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
- inference: forward passes at batch 1 and 256 under inference mode, the least CPU time per
  pass over interleaved rounds.
- the `cpu` preset's cost per seed, estimated from these epochs: 15 dense epochs (an unpruned
  network: both engines are the dense one) plus 201 to 361 epochs of the pruned network (magnitude
  fine-tune 30; stage 1: 41 candidates and a 30-epoch retrain; stage 2 and SAFS: 20 HPO trials of
  1 to 5 epochs each and a 30-epoch retrain each), at 99% layer-wise.

Times are process CPU seconds (time.process_time; on one thread the wall-clock time of an idle
core), so other jobs on a shared machine do not inflate them; the wall-clock seconds are shown too.

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

from safs_lite import TrainConfig, build_model, load_data, prune_model, train
from safs_lite.method.pruning import clone, input_connected, sparsity_report
from safs_lite.training.compact import CompactNet, compact

SPARSITIES = (0.90, 0.95, 0.98, 0.99, 0.995)
METHODS = ("layerwise", "global")
ENGINES = ("dense", "compact")
BATCHES = (1, 256)
REPO = Path(__file__).resolve().parents[1]


def epoch_seconds(pruned: torch.nn.Module, data, rounds: int, subset: int | None,
                  engines=ENGINES) -> dict[str, dict]:
    """Per engine: the fastest round's epoch (training + validation): its row, with "cpu" the process CPU seconds.

    CPU seconds are the process's own (time.process_time): on a shared machine other processes
    stretch wall-clock time, not these; on an idle core with one thread the two agree.
    """
    out = {e: {"cpu": float("inf")} for e in engines}
    for _ in range(rounds):
        for engine in engines:
            cfg = TrainConfig(epochs=1, select="last", engine=engine, train_subset=subset, seed=0)
            model = clone(pruned)
            t0 = time.process_time()
            row = train(model, data, cfg, progress=False)[0]
            row["cpu"] = time.process_time() - t0
            if row["cpu"] < out[engine]["cpu"]:
                out[engine] = row
    return out


def cpu_per_call(f, x, min_run_time: float) -> float:
    """Process CPU seconds per call of f(x), over a loop of at least `min_run_time` CPU seconds."""
    n, spent = 1, 0.0
    while spent < min_run_time:
        t0 = time.process_time()
        for _ in range(n):
            f(x)
        spent = time.process_time() - t0
        n *= 2
    return spent / (n // 2)


def inference_seconds(pruned: torch.nn.Module, min_run_time: float, rounds: int) -> dict[tuple[str, int], float]:
    """(engine, batch) -> CPU seconds per forward pass: the least over interleaved rounds."""
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
                    f(x)  # warm-up: the compact plan is built at the first call
                    best[name, b] = min(best.get((name, b), float("inf")), cpu_per_call(f, x, min_run_time))
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
             "| pruning | sparsity | live units | dense CPU s | compact CPU s | speed-up | wall s dense / compact "
             "| train loss dense / compact |",
             "| --- | ---: | --- | ---: | ---: | ---: | --- | --- |"]
    print("\n".join(lines), flush=True)
    epochs, pruned_models = {}, {}
    for method in METHODS:
        for s in SPARSITIES:
            pruned = prune_model(clone(dense), s, method)
            pruned_models[method, s] = pruned
            e = epoch_seconds(pruned, data, rounds, subset)
            epochs[method, s] = e
            line = (f"| {method} | {100 * s:g}% ({100 * sparsity_report(pruned)['overall']:.2f}) | "
                    f"{live_units(pruned)} | {e['dense']['cpu']:.2f} | {e['compact']['cpu']:.2f} | "
                    f"{e['dense']['cpu'] / e['compact']['cpu']:.1f}x | "
                    f"{e['dense']['seconds']:.2f} / {e['compact']['seconds']:.2f} | "
                    f"{e['dense']['train_loss']:.5f} / {e['compact']['train_loss']:.5f} |")
            lines.append(line)
            print(line, flush=True)
    inf_lines = ["", "### Inference (forward pass, inference mode; layer-wise pruning; CPU ms per pass)", "",
                 "| sparsity | batch | dense ms | compact ms | speed-up |", "| ---: | ---: | ---: | ---: | ---: |"]
    print("\n".join(inf_lines), flush=True)
    inf = {}
    for s in SPARSITIES:
        sec = inf[s] = inference_seconds(pruned_models["layerwise", s], min_run_time, inf_rounds)
        for b in BATCHES:
            line = (f"| {100 * s:g}% | {b} | {1e3 * sec['dense', b]:.3f} | {1e3 * sec['compact', b]:.3f} | "
                    f"{sec['dense', b] / sec['compact', b]:.1f}x |")
            inf_lines.append(line)
            print(line, flush=True)
    lines += inf_lines
    at = {s: epochs["layerwise", s] for s in (0.90, 0.99)}
    speed = {s: at[s]["dense"]["cpu"] / at[s]["compact"]["cpu"] for s in at}
    inf_speed = inf[0.99]["dense", 256] / inf[0.99]["compact", 256]
    verdict = ["", "Targets (issue 19): epoch at 99% layer-wise at least 5x faster: "
               f"{speed[0.99]:.1f}x ({'met' if speed[0.99] >= 5 else 'NOT met'}); at 90% at least 2x: "
               f"{speed[0.90]:.1f}x ({'met' if speed[0.90] >= 2 else 'NOT met'}); inference at 99%, batch 256, "
               f"at least 5x: {inf_speed:.1f}x ({'met' if inf_speed >= 5 else 'NOT met'})."]
    lines += verdict
    print("\n".join(verdict), flush=True)
    unpruned = epoch_seconds(dense, data, rounds, subset, engines=("dense",))["dense"]["cpu"]
    per_epoch = {e: at[0.99][e]["cpu"] * (1 if subset is None else len(data.train) / subset) for e in ENGINES}
    dense_epoch = unpruned * (1 if subset is None else len(data.train) / subset)
    cost = ["", "### The cpu preset per seed, estimated (99% layer-wise, full training split)", "",
            f"Dense (unpruned) epoch: {dense_epoch:.1f} CPU s. Pruned epoch: dense engine {per_epoch['dense']:.1f} s, "
            f"compact {per_epoch['compact']:.1f} s.", "", "| engine | 15 dense + 201 pruned epochs | "
            "15 dense + 361 pruned epochs |", "| --- | ---: | ---: |"]
    for e in ENGINES:
        lo, hi = (15 * dense_epoch + n * per_epoch[e] for n in (201, 361))
        cost.append(f"| {e} | {lo / 60:.0f} CPU min | {hi / 60:.0f} CPU min |")
    lines += cost
    print("\n".join(cost), flush=True)
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
