"""Sparse inference of LeNet-5: dense weights with zeros versus torch.sparse CSR/COO layers, time and bytes.

For each sparsity (90, 95, 98, 99% layer-wise magnitude pruning of a freshly built LeNet-5, or the
model of one SAFS run with --run) the frozen model (`safs_lite.method.frozen.freeze`: plain nn.Linear /
nn.Conv2d holding zeros) is timed against `safs_lite.deploy.sparse.to_sparse` variants:

    csr-fc    linear layers as CSR sparse matmuls, convolutions dense
    csr-all   linear layers and convolutions (gathered patches x CSR weight) sparse
    coo-fc    as csr-fc with COO weights
    coo-all   as csr-all with COO weights
    compact   the pruned model on `safs_lite.training.compact.CompactNet` (live units and kept taps only, dense
              small layers; built from the masked model, as training uses it)

at batch 1 (latency) and batch 256 (throughput), one thread by default, with
torch.utils.benchmark.Timer.blocked_autorange under inference_mode: the variants take turns over
7 rounds and each keeps its least round median (other processes on a shared machine only ever
add time). Speed-up = dense time / sparse time (below 1: sparse is slower). Bytes on disk:
torch.save of the frozen state dict (dense), of the sparse state dicts (CSR with int64 and int32
indices, COO), the safetensors file of the dense weights, and (without --quick) the ONNX file of
the frozen model. Every sparse variant's logits are compared with the dense model's (max |diff|
printed; a mismatch stops the benchmark). A last table splits the sparsest model's batch-256 time
by layer: pooling and activations, which weight sparsity does not touch, cap the speed-up.

--onnx: the 99% model exported to ONNX twice (`safs_lite.deploy.formats.export_onnx`): the frozen masked
model (what `export --format onnx` writes) and its compact form (`compact=True`, what `export
--format onnx --compact` writes: live units and kept weights only), each reloaded in ONNX Runtime
(CPU, the same thread count) and checked against the masked model's logits; the CPU time per pass
(process CPU seconds, least over 7 interleaved rounds: on a shared machine other jobs stretch
wall-clock time, not these) at batch 1 and 256, and both files' bytes. With --save its table
replaces the ONNX Runtime section of figures/sparse_inference.md and leaves the rest as it is.

    OMP_NUM_THREADS=1 python benchmarks/sparse_inference.py [--threads 1] [--quick] [--save] [--run RUN_DIR] [--onnx]

--save writes the tables to figures/sparse_inference.md.
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from sparse_training import cpu_per_call  # benchmarks/ is the script's folder
from torch.utils.benchmark import Timer

from safs_lite import build_model, load_safs_model, prune_model
from safs_lite.deploy.formats import OnnxModel, export_onnx
from safs_lite.deploy.sparse import nonzero_weights, to_sparse
from safs_lite.method.frozen import freeze
from safs_lite.method.pruning import prunable_layers
from safs_lite.training.compact import CompactNet

SPARSITIES = (0.90, 0.95, 0.98, 0.99)
BATCHES = (1, 256)
VARIANTS = {  # name -> to_sparse arguments (None: the dense frozen model)
    "dense": None,
    "csr-fc": dict(layout="csr", conv=False),
    "csr-all": dict(layout="csr", conv=True),
    "coo-fc": dict(layout="coo", conv=False),
    "coo-all": dict(layout="coo", conv=True),
}
REPO = Path(__file__).resolve().parents[1]
ONNX_HEAD = "### ONNX Runtime"  # the --onnx section of figures/sparse_inference.md


def saved_bytes(obj: object) -> int:
    """Bytes of torch.save(obj)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return len(buf.getvalue())


def safetensors_bytes(model: torch.nn.Module) -> int:
    """Bytes of the model's state dict as a safetensors file."""
    from safetensors.torch import save

    return len(save({k: v.contiguous() for k, v in model.state_dict().items()}))


def input_shape(model: torch.nn.Module) -> tuple[int, ...]:
    """The (C, H, W) a model takes (LeNet-5's 1x28x28 unless the model states another)."""
    return tuple(getattr(model, "input_shape", (1, 28, 28)))


def onnx_bytes(model: torch.nn.Module) -> int:
    """Bytes of the model exported to one ONNX file (dynamo exporter)."""
    import warnings

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = os.path.join(tmp, "m.onnx")
        torch.onnx.export(model, (torch.zeros(2, *input_shape(model)),), path, dynamo=True, external_data=False,
                          dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
        return os.path.getsize(path)


def time_models(models: dict[str, torch.nn.Module], x: torch.Tensor, min_run_time: float,
                rounds: int) -> dict[str, float]:
    """Seconds per forward pass of each model on `x`: the least, over rounds, of the median of a round.

    The variants take turns round after round, so a burst of load from other processes hits
    them alike, and the least median keeps the round that ran undisturbed.
    """
    best = {name: float("inf") for name in models}
    with torch.inference_mode():
        for m in models.values():
            m(x)  # warm-up (first-call allocations, gather-index caches)
        for _ in range(rounds):
            for name, m in models.items():
                t = Timer("model(x)", globals={"model": m, "x": x}, num_threads=torch.get_num_threads())
                best[name] = min(best[name], t.blocked_autorange(min_run_time=min_run_time).median)
    return best


def models_for(sparsity: float | None, run: str | None, seed: int = 0
               ) -> tuple[str, torch.nn.Module, torch.nn.Module]:
    """(label, frozen model, pruned model): a fresh LeNet-5 pruned layer-wise, or a run's SAFS model."""
    if run is not None:
        pruned = load_safs_model(run, stage="safs")
        return Path(run).resolve().name, freeze(pruned), pruned.eval()
    pruned = prune_model(build_model("lenet5", seed=seed), sparsity, "layerwise").eval()
    return f"{100 * sparsity:g}%", freeze(pruned), pruned


def bench(label: str, dense: torch.nn.Module, pruned: torch.nn.Module, min_run_time: float, rounds: int,
          quick: bool) -> tuple[list[dict], dict]:
    """Timing rows and the size row of one frozen model (and the compact engine on its pruned original)."""
    gen = torch.Generator().manual_seed(0)
    inputs = {b: torch.rand(b, *input_shape(dense), generator=gen) for b in BATCHES}
    models = {name: dense if args_ is None else to_sparse(dense, **args_) for name, args_ in VARIANTS.items()}
    models["compact"] = CompactNet(pruned)
    rows = []
    with torch.inference_mode():
        ref = dense(inputs[max(BATCHES)])
        outs = {name: m(inputs[max(BATCHES)]) for name, m in models.items()}
    diffs = {name: float((out - ref).abs().max()) for name, out in outs.items()}
    for name, out in outs.items():  # a sparse variant that computes something else is a bug, not a result
        if not torch.allclose(out, ref, atol=1e-4, rtol=1e-4) or not torch.equal(out.argmax(1), ref.argmax(1)):
            raise SystemExit(f"{label} {name}: outputs differ from the dense model's (max abs diff {diffs[name]:.3g})")
    for b in BATCHES:
        secs = time_models(models, inputs[b], min_run_time, rounds)
        for name, sec in secs.items():
            rows.append({"model": label, "batch": b, "variant": name, "ms": 1e3 * sec, "img_s": b / sec,
                         "speedup": secs["dense"] / sec, "max_diff": diffs[name]})
    sizes = {"model": label, "kept": nonzero_weights(dense),
             "dense_pt": saved_bytes(dense.state_dict()),
             "csr_pt": saved_bytes(to_sparse(dense, "csr").state_dict()),
             "csr32_pt": saved_bytes(to_sparse(dense, "csr", index_dtype=torch.int32).state_dict()),
             "coo_pt": saved_bytes(to_sparse(dense, "coo").state_dict()),
             "safetensors": safetensors_bytes(dense),
             "onnx": None if quick else onnx_bytes(dense)}
    return rows, sizes


def onnx_runtime(label: str, pruned: torch.nn.Module, min_run_time: float, rounds: int) -> list[dict]:
    """ONNX Runtime CPU time per forward pass of the masked and the compact ONNX export of `pruned`, and their bytes."""
    gen = torch.Generator().manual_seed(0)
    inputs = {b: torch.rand(b, *input_shape(pruned), generator=gen) for b in BATCHES}
    with tempfile.TemporaryDirectory() as tmp:
        files = {name: export_onnx(pruned, Path(tmp) / f"{name}.onnx", input_shape(pruned), compact=name == "compact")
                 for name in ("masked", "compact")}
        models = {name: OnnxModel(path, threads=torch.get_num_threads()) for name, path in files.items()}
        with torch.inference_mode():
            ref = pruned(inputs[max(BATCHES)])
        diffs = {}
        for name, m in models.items():
            out = m(inputs[max(BATCHES)])
            diffs[name] = float((out - ref).abs().max())
            if not torch.allclose(out, ref, atol=1e-4, rtol=1e-4) or not torch.equal(out.argmax(1), ref.argmax(1)):
                raise SystemExit(f"{label} ONNX {name}: outputs differ from the masked model's (max abs diff "
                                 f"{diffs[name]:.3g})")
        rows = []
        for b in BATCHES:
            secs = {name: float("inf") for name in models}
            for _ in range(rounds):  # interleaved: a burst of load hits both alike
                for name, m in models.items():
                    secs[name] = min(secs[name], cpu_per_call(m, inputs[b], min_run_time))
            rows += [{"model": label, "batch": b, "export": name, "ms": 1e3 * sec, "speedup": secs["masked"] / sec,
                      "bytes": files[name].stat().st_size, "max_diff": diffs[name]} for name, sec in secs.items()]
    return rows


def format_onnx(ort: list[dict], threads: int) -> str:
    """The ONNX Runtime table as a markdown section."""
    out = [f"### ONNX Runtime: the masked export vs the compact export ({ort[0]['model']} layer-wise, {threads} "
           f"thread(s), onnxruntime {_ort_version()})", "",
           "| batch | export | CPU ms / batch | speed-up over masked | file bytes | max abs diff vs masked model |",
           "| ---: | --- | ---: | ---: | ---: | ---: |"]
    out += [f"| {r['batch']} | {r['export']} | {r['ms']:.4f} | {r['speedup']:.2f}x | {r['bytes']:,} | "
            f"{r['max_diff']:.2g} |" for r in ort]
    return "\n".join(out)


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def layer_breakdown(dense: torch.nn.Module, sparse: torch.nn.Module, x: torch.Tensor, min_run_time: float,
                    rounds: int) -> list[dict]:
    """Time of each prunable layer, dense vs sparse, on the inputs it gets; the rest (activations, pooling) last."""
    inputs: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: inputs.__setitem__(name, args[0]))
             for name, m in prunable_layers(dense).items()]
    with torch.inference_mode():
        dense(x)
    for h in hooks:
        h.remove()
    rows = []
    for name, inp in inputs.items():
        secs = time_models({"dense": dense.get_submodule(name), "sparse": sparse.get_submodule(name)}, inp,
                           min_run_time, rounds)
        rows.append({"part": name, **secs})
    total = time_models({"dense": dense, "sparse": sparse}, x, min_run_time, rounds)
    rows.append({"part": "the rest (activations, pooling, flatten)",
                 **{k: total[k] - sum(r[k] for r in rows) for k in ("dense", "sparse")}})
    rows.append({"part": "whole model", **total})
    return rows


def format_tables(rows: list[dict], sizes: list[dict], parts: list[dict], parts_label: str, header: str) -> str:
    """The timing, size and breakdown tables and the verdict on the issue's goals, as markdown."""
    out = [header, "", "### Time per forward pass (median) and speed-up over dense weights", "",
           "| model | batch | variant | ms / batch | images / s | speed-up | max abs diff vs dense |",
           "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        mark = "" if r["variant"] == "dense" or round(r["speedup"], 2) >= 1 else " (slower)"
        out.append(f"| {r['model']} | {r['batch']} | {r['variant']} | {r['ms']:.4f} | {r['img_s']:,.0f} | "
                   f"{r['speedup']:.2f}x{mark} | {r['max_diff']:.2g} |")
    out += ["", "### Bytes on disk (state dict via torch.save unless noted) and size ratio dense / CSR", "",
            "| model | kept weights | dense .pt | CSR .pt | CSR int32 .pt | COO .pt | dense safetensors | "
            "dense onnx | dense / CSR | dense / CSR int32 |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in sizes:
        onnx = "-" if s["onnx"] is None else f"{s['onnx']:,}"
        out.append(f"| {s['model']} | {s['kept']:,} | {s['dense_pt']:,} | {s['csr_pt']:,} | {s['csr32_pt']:,} | "
                   f"{s['coo_pt']:,} | {s['safetensors']:,} | {onnx} | {s['dense_pt'] / s['csr_pt']:.1f}x | "
                   f"{s['dense_pt'] / s['csr32_pt']:.1f}x |")
    out += ["", f"### Where the time goes: {parts_label}", "",
            "| part | dense ms | sparse ms | speed-up |", "| --- | ---: | ---: | ---: |"]
    for r in parts:
        out.append(f"| {r['part']} | {1e3 * r['dense']:.3f} | {1e3 * r['sparse']:.3f} | "
                   f"{r['dense'] / r['sparse']:.2f}x |")
    last, big = sizes[-1], [r for r in rows if r["model"] == sizes[-1]["model"] and r["batch"] == max(BATCHES)]
    best = max((r for r in big if r["variant"] != "dense"), key=lambda r: r["speedup"])
    out += ["", f"Goals at {last['model']}: CSR state dict {last['dense_pt'] / last['csr_pt']:.1f}x smaller than the "
            f"dense one (goal: at least 2x; {'met' if last['dense_pt'] >= 2 * last['csr_pt'] else 'NOT met'}); "
            f"fastest sparse variant at batch {max(BATCHES)}: {best['variant']}, {best['speedup']:.2f}x the dense "
            f"model's speed (goal: faster; {'met' if best['speedup'] > 1 else 'NOT met'} on this machine)."]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and with --save, write) its tables."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--quick", action="store_true", help="short timings, no ONNX size (a smoke test)")
    p.add_argument("--save", action="store_true", help="write the tables to figures/sparse_inference.md")
    p.add_argument("--run", default=None, help="time a SAFS run's model instead of fresh pruned LeNet-5s")
    p.add_argument("--onnx", action="store_true", help="only the ONNX Runtime table: masked vs compact export, 99%%")
    args = p.parse_args(argv)
    if args.threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    min_run_time, rounds = (0.02, 1) if args.quick else (0.1, 7)
    t0 = time.perf_counter()
    path = REPO / "figures" / "sparse_inference.md"
    old = path.read_text() if path.exists() else ""
    onnx_section = old[old.index(ONNX_HEAD):] if ONNX_HEAD in old else ""
    if args.onnx:
        label, _, pruned = models_for(max(SPARSITIES), args.run)
        text = format_onnx(onnx_runtime(label, pruned, min_run_time, rounds), args.threads)
        print(text)
        print(f"\n({time.perf_counter() - t0:.0f} s)")
        if args.save:
            rest = old[:old.index(ONNX_HEAD)] if onnx_section else old + "\n"
            path.write_text(f"{rest}{text}\n\nMade by `OMP_NUM_THREADS={args.threads} python "
                            "benchmarks/sparse_inference.py --onnx --save`.\n")
            print(f"written: {path}")
        return 0
    rows, sizes = [], []
    for s in ([None] if args.run else SPARSITIES):
        label, dense, pruned = models_for(s, args.run)
        r, z = bench(label, dense, pruned, min_run_time, rounds, args.quick)
        rows += r
        sizes.append(z)
    # The last (sparsest) model: which layers the sparse weights speed up, and what they cannot.
    x = torch.rand(max(BATCHES), *input_shape(dense), generator=torch.Generator().manual_seed(0))
    parts = layer_breakdown(dense, to_sparse(dense, "csr"), x, min_run_time, rounds)
    parts_label = f"{label}, batch {max(BATCHES)}, dense vs csr-all"
    header = (f"## Sparse inference, LeNet-5 ({'SAFS run' if args.run else 'layer-wise magnitude pruning'}), "
              f"{args.threads} thread(s), torch {torch.__version__}, {platform.processor() or platform.machine()}, "
              f"{'quick' if args.quick else 'full'} timing (least of {rounds} interleaved rounds' medians)")
    text = format_tables(rows, sizes, parts, parts_label, header)
    print(text)
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.save:  # the ONNX Runtime section (--onnx) stays as it was
        path.write_text(text + "\n\nMade by `OMP_NUM_THREADS=1 python benchmarks/sparse_inference.py --save`.\n"
                        + (f"\n{onnx_section}" if onnx_section else ""))
        print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
