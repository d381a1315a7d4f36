"""Tests of safs_lite.deploy.export: freezing, checked exports with model cards, sparse layers, and the benchmark."""
from __future__ import annotations

import argparse
import io
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from safs_lite import build_model, load_safs_model, prune_model
from safs_lite.deploy.checks import check_export
from safs_lite.deploy.compact_module import CompactModule
from safs_lite.deploy.export import add_export_parser, export_run
from safs_lite.deploy.formats import load_exported
from safs_lite.deploy.sparse import SparseConv2d, SparseLinear, to_sparse
from safs_lite.method.activations import ACTIVATIONS, Activation, activation_sites
from safs_lite.method.frozen import FrozenActivation, freeze
from safs_lite.method.pruning import prunable_layers
from safs_lite.run.folders import load_json, save_json

REPO = Path(__file__).resolve().parents[1]
OPS = ("tanh", "srs", "symexp", "gelu")


def _pruned(sparsity: float = 0.9, seed: int = 0) -> nn.Module:
    """A pruned LeNet-5 with four different operators and alpha, beta away from 1."""
    model = prune_model(build_model("lenet5", seed=seed), sparsity, "layerwise")
    with torch.no_grad():
        for i, (act, op) in enumerate(zip(activation_sites(model).values(), OPS)):
            act.set_op(op)
            act.alpha.fill_(1.0 + 0.1 * (i + 1))
            act.beta.fill_(0.9 - 0.05 * i)
        for m in prunable_layers(model).values():  # weights moved after pruning, as training does
            m.weight_orig.mul_(1.5)
    return model.eval()


def _x(n: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))


# --------------------------------------------------------------------------- freeze

def test_freeze_equals_pruned_model_and_keeps_the_zeros():
    model = _pruned()
    frozen = freeze(model)
    x = _x()
    with torch.no_grad():
        assert torch.equal(frozen(x), model(x))  # bit for bit, not just close
    layers = prunable_layers(frozen)
    for name, m in prunable_layers(model).items():
        w = layers[name].weight
        assert torch.equal(w[m.weight_mask == 0], torch.zeros_like(w[m.weight_mask == 0]))
        assert torch.equal(w[m.weight_mask == 1], (m.weight_orig * m.weight_mask)[m.weight_mask == 1])
        assert not hasattr(layers[name], "weight_mask")
    assert not any(isinstance(m, Activation) for m in frozen.modules())
    sites = [m for m in frozen.modules() if isinstance(m, FrozenActivation)]
    assert [s.op_name for s in sites] == list(OPS)
    assert all(type(s.alpha) is float and type(s.beta) is float for s in sites)
    names = [n for n, _ in frozen.named_parameters()] + list(frozen.state_dict())
    assert not any(n.endswith(("alpha", "beta")) for n in names)
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    # the original is untouched: still masked, still with its learnable sites
    assert hasattr(model.conv1, "weight_mask") and isinstance(model.acts["conv1"], Activation)


def test_frozen_model_pickles_and_traces():
    frozen, x = freeze(_pruned()), _x(4)
    buf = io.BytesIO()
    torch.save(frozen, buf)
    buf.seek(0)
    assert torch.equal(torch.load(buf, weights_only=False)(x), frozen(x))
    program = torch.export.export(frozen, (x,))
    assert torch.allclose(program.module()(x), frozen(x), atol=1e-6)


@pytest.mark.parametrize("op", list(ACTIVATIONS))
def test_frozen_activation_matches_activation_and_pickles(op):
    act = Activation(op, alpha=1.25, beta=0.75)
    frozen = FrozenActivation(op, act.alpha.item(), act.beta.item())
    x = torch.linspace(-6, 6, 101)
    with torch.no_grad():
        assert torch.equal(frozen(x), act(x))
    assert torch.equal(pickle.loads(pickle.dumps(frozen))(x), frozen(x))


def test_frozen_activation_unknown_op():
    with pytest.raises(ValueError, match="unknown activation operator 'nope'; valid: relu6"):
        FrozenActivation("nope")


# --------------------------------------------------------------------------- the compact form

@pytest.mark.parametrize("sparsity", [0.9, 0.99, 0.999])
def test_compact_module_computes_the_masked_model(sparsity):
    """CompactModule (what a compact ONNX export holds) gives the masked model's logits, skips what the masks
    drop, and leaves the model as it was."""
    model = _pruned(sparsity)
    before = {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    module, x = CompactModule(model, (1, 28, 28)), _x(64)
    with torch.no_grad():
        want = model(x)
        assert torch.allclose(module(x), want, rtol=1e-5, atol=1e-6)
        assert torch.allclose(module(x[:1]), want[:1], rtol=1e-5, atol=1e-6)  # batch 1 too (the plan is per shape)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert isinstance(model.acts["conv1"], Activation) and not any(p.requires_grad for p in module.parameters())
    # the sites frozen with their constants, the masks back on: the compact engine reads only what is kept
    assert not any(isinstance(m, Activation) for m in module.modules())
    for name, m in prunable_layers(model).items():
        assert torch.equal(module.model.get_submodule(name).weight_mask, m.weight_mask)


def test_compact_module_moves_its_plan_with_its_weights():
    """`.to(...)` moves the plan's index tensors too (a CUDA move would otherwise mismatch): on the meta device every
    plan tensor follows the weights; a round trip through float64 computes the masked model in float64."""
    model = _pruned(0.99)
    module, x = CompactModule(model, (1, 28, 28)), _x(8)
    tensors = module.net.plan_tensors()
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    with torch.no_grad():
        assert torch.allclose(module.double()(x.double()), model.double()(x.double()), rtol=1e-9, atol=1e-12)
    assert {t.dtype for t in module.net.plan_tensors() if t.is_floating_point()} == {torch.float64}
    module.to("meta")
    assert {t.device.type for t in module.net.plan_tensors()} == {"meta"}
    assert {p.device.type for p in module.parameters()} == {"meta"}


def test_compact_module_refuses_what_the_engine_cannot_run():
    bn = prune_model(nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 26 * 26, 10)),
                     0.9)
    with pytest.raises(ValueError, match=r"^the compact engine cannot run Sequential: .*BatchNorm2d.*supported$"):
        CompactModule(bn, (1, 28, 28))


def test_compact_onnx_export_reproduces_the_run_and_holds_only_what_is_kept(run_dir, tmp_path):
    import onnx

    path, check = export_run(run_dir, "onnx", compact=True, return_check=True)
    assert path == run_dir / "export" / "model-compact.onnx" and path.is_file()
    assert check.passed and check.predictions_agree == check.images == 1000 and check.max_abs_diff < 1e-4
    results = load_json(run_dir / "results.json")
    assert check.accuracy == pytest.approx(results["test_accuracy"]["safs"])
    reference, exported = load_safs_model(run_dir, "safs").eval(), load_exported(path)
    x = _x(5)
    with torch.no_grad():
        assert torch.allclose(exported(x), reference(x), rtol=1e-4, atol=1e-5)
    # the file stores the kept block of each layer, not the full weight_orig and weight_mask tensors
    graph = onnx.load(str(path)).graph
    floats = sum(int(torch.tensor(list(t.dims)).prod()) for t in graph.initializer if t.data_type == 1)
    total = sum(m.weight.numel() for m in prunable_layers(freeze(reference)).values())
    assert floats < 0.1 * total, (floats, total)
    assert exported.preprocessing["formula"] == "x = x / 255"
    card = (path.parent / "model_card.md").read_text()
    assert "`model-compact.onnx` (onnx): ok" in card and f"export {run_dir} --format onnx --compact" in card


def test_compact_export_is_onnx_only(run_dir, tmp_path):
    with pytest.raises(ValueError, match=r"^a compact export is written as onnx only, got format 'pt'$"):
        export_run(run_dir, "pt", compact=True)
    sub = argparse.ArgumentParser(prog="python -m safs_lite").add_subparsers(dest="command")
    add_export_parser(sub)
    args = sub._name_parser_map["export"].parse_args([str(run_dir), "--format", "safetensors", "--compact"])
    with pytest.raises(ValueError, match="onnx only, got format 'safetensors'"):
        args.func(args)


# --------------------------------------------------------------------------- sparse layers

@pytest.mark.parametrize("layout", ["csr", "coo"])
@pytest.mark.parametrize("conv", [True, False])
def test_sparse_model_equals_dense(layout, conv):
    dense = freeze(_pruned(0.95))
    sparse = to_sparse(dense, layout, conv=conv)
    kinds = {type(m) for m in sparse.modules()}
    assert SparseLinear in kinds and (SparseConv2d in kinds) == conv
    for n in (1, 7):
        x = _x(n)
        with torch.no_grad():
            assert torch.allclose(sparse(x), dense(x), atol=1e-5, rtol=1e-5)
    assert torch.equal(sparse(x).argmax(1), dense(x).argmax(1))


def test_sparse_conv_with_stride_padding_and_int32_indices():
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    with torch.no_grad():
        conv.weight[torch.rand(conv.weight.shape, generator=torch.Generator().manual_seed(0)) < 0.8] = 0
    x = torch.randn(5, 3, 11, 9)
    for layer in (SparseConv2d(conv, "csr"), SparseConv2d(conv, "csr", torch.int32), SparseConv2d(conv, "coo")):
        assert torch.allclose(layer(x), conv(x), atol=1e-5)
    with torch.no_grad():
        conv.weight.zero_()  # every weight pruned: the bias alone
    assert torch.allclose(SparseConv2d(conv)(x), conv(x))


def test_sparse_linear_on_leading_dims():
    lin = nn.Linear(6, 4)
    layer = SparseLinear.from_dense(lin, "csr")
    x = torch.randn(2, 3, 6)
    assert torch.allclose(layer(x), lin(x), atol=1e-6)


def test_sparse_model_is_smaller_on_disk_at_99_percent():
    dense = freeze(_pruned(0.99))

    def size(state: dict) -> int:
        buf = io.BytesIO()
        torch.save(state, buf)
        return len(buf.getvalue())

    assert size(to_sparse(dense, "csr").state_dict()) * 2 <= size(dense.state_dict())


def test_to_sparse_bad_layout():
    with pytest.raises(ValueError, match="unknown sparse layout 'bsr'; valid: csr, coo"):
        to_sparse(_pruned(), "bsr")


# --------------------------------------------------------------------------- export of a real run

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """One finished smoke SAFS run (about 10-60 s on 2 cores)."""
    from safs_lite.run.safs import SAFSConfig, run_safs

    out = tmp_path_factory.mktemp("safs_run") / "run"
    run_safs(SAFSConfig(model="lenet5", dataset="mnist", sparsity=0.99, pruning="layerwise", preset="smoke",
                        seed=0), out=out, progress=False)
    return out


@pytest.mark.parametrize("fmt", ["pt", "onnx", "safetensors"])
def test_export_run_checks_and_writes_a_model_card(run_dir, fmt):
    path, check = export_run(run_dir, fmt, return_check=True)
    assert path == run_dir / "export" / f"model.{fmt}" and path.is_file()
    assert check.passed and check.predictions_agree == check.images == 1000
    assert check.max_abs_diff == 0.0 if fmt != "onnx" else check.max_abs_diff < 1e-4
    results = load_json(run_dir / "results.json")
    assert check.accuracy == pytest.approx(results["test_accuracy"]["safs"])
    card = (path.parent / "model_card.md").read_text()
    for op in results["activations"]["safs"].values():
        assert f"| {op} |" in card
    for layer, s in results["sparsity"]["per_layer"].items():
        assert f"| {layer} |" in card and f"{100 * s:.2f}%" in card
    assert results["data"]["signature"] in card and f"`{path.name}` ({fmt}): ok" in card
    assert "python -m safs_lite run --model lenet5 --dataset mnist --sparsity 0.99" in card
    assert f"python -m safs_lite export {run_dir} --format {fmt}" in card
    # the file loads back to the run's model
    reference, exported = load_safs_model(run_dir, "safs").eval(), load_exported(path)
    x = _x(3)
    with torch.no_grad():
        assert torch.allclose(exported(x), reference(x), atol=1e-5)
    if fmt == "safetensors":
        assert path.with_suffix(".json").is_file()
        assert check_export(run_dir, path).passed


def test_export_command_prints_path_check_and_card(run_dir, tmp_path, capsys):
    sub = argparse.ArgumentParser(prog="python -m safs_lite").add_subparsers(dest="command")
    add_export_parser(sub)
    out = tmp_path / "m.safetensors"
    args = sub._name_parser_map["export"].parse_args([str(run_dir), "--format", "safetensors", "--out", str(out)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert f"exported: {out}" in printed and "check: ok" in printed
    assert f"model card: {tmp_path / 'model_card.md'}" in printed and out.is_file()


def test_corrupted_export_raises_and_is_removed(run_dir, tmp_path, monkeypatch):
    import safs_lite.deploy.export as deploy

    real = deploy.freeze

    def tampered(model):
        frozen = real(model)
        with torch.no_grad():
            frozen.fc3.bias[0] += 1.0  # one changed number
        return frozen

    out, fresh = tmp_path / "good.safetensors", tmp_path / "bad.safetensors"
    good = export_run(run_dir, "safetensors", out=out).read_bytes()
    monkeypatch.setattr(deploy, "freeze", tampered)
    with pytest.raises(ValueError, match=r"differs from the run's safs model on the test split \(max \|logit diff\| 1"):
        export_run(run_dir, "safetensors", out=fresh)
    assert not fresh.exists() and not fresh.with_suffix(".json").exists()
    with pytest.raises(ValueError, match="differs from the run's"):  # over an earlier good export
        export_run(run_dir, "safetensors", out=out)
    assert out.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == \
        ["good.json", "good.safetensors", "model_card.json", "model_card.md"]


def test_export_refuses_other_data(run_dir, tmp_path):
    other = tmp_path / "run"
    shutil.copytree(run_dir, other, ignore=shutil.ignore_patterns("export"))
    results = load_json(other / "results.json")
    results["data"]["signature"] = "mnist-60000-10000-10000-0123456789ab"
    save_json(other / "results.json", results)
    with pytest.raises(ValueError, match="was made on data mnist-60000-10000-10000-0123456789ab, but the data found"):
        export_run(other, "pt")
    assert not (other / "export").exists()


def test_export_bad_arguments(run_dir, tmp_path):
    with pytest.raises(ValueError, match="unknown export format 'tflite'; valid: pt, onnx, safetensors"):
        export_run(run_dir, "tflite")
    with pytest.raises(ValueError, match="unknown stage 'dense'; valid: stage1, stage2, safs"):
        export_run(run_dir, "pt", stage="dense")
    with pytest.raises(ValueError, match=r"a onnx export must end in \.onnx"):
        export_run(run_dir, "onnx", out=tmp_path / "model.pt")
    with pytest.raises(ValueError, match="no config.json; export needs a finished SAFS run"):
        export_run(tmp_path, "pt")


# --------------------------------------------------------------------------- the benchmark

def test_sparse_inference_benchmark_quick():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "sparse_inference.py"), "--quick"],
                         capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    for s in ("90%", "95%", "98%", "99%"):
        for b in (1, 256):
            assert f"| {s} | {b} | csr-all |" in res.stdout and f"| {s} | {b} | coo-fc |" in res.stdout
        assert f"\n| {s} | " in res.stdout.split("Bytes on disk")[1]
    assert "speed-up" in res.stdout and "dense / CSR" in res.stdout and "written:" not in res.stdout


@pytest.mark.parametrize("fmt", ["pt", "onnx", "safetensors"])
def test_exports_carry_their_input_preprocessing(run_dir, fmt, tmp_path):
    """Issue 22, item 9: an export did not say how raw images become its input, so raw images gave wrong
    predictions without an error. Each format now carries the preprocessing; applied to the raw test images
    it gives the run's predictions; ONNX refuses raw uint8 images in one line."""
    from safs_lite import load_data
    from safs_lite.deploy.formats import preprocess

    path = export_run(run_dir, fmt, out=tmp_path / f"m.{fmt}")
    exported = load_exported(path)
    assert exported.preprocessing["formula"] == "x = x / 255" and exported.preprocessing["input"] == "uint8"
    data = load_data("mnist", seed=0)
    raw = data.test.x[:64]
    batch, _ = next(data.batches("test", 64))
    assert torch.equal(preprocess(exported, raw), batch)
    reference = load_safs_model(run_dir, "safs").eval()
    with torch.no_grad():
        assert torch.equal(exported(preprocess(exported, raw)).argmax(1), reference(batch).argmax(1))
    assert "## Input preprocessing" in (tmp_path / "model_card.md").read_text()
    if fmt == "onnx":
        with pytest.raises(ValueError, match=r"got raw uint8 images; apply x = x / 255 first") as err:
            exported(raw)
        assert "\n" not in str(err.value)
