"""safs_lite.rl.policy: masks through policy-gradient fine-tuning, seed splits, resume, bad input, the smoke CLI."""
import json

import pytest
import torch

pytest.importorskip("gymnasium")

from safs_lite.cli import main  # noqa: E402
from safs_lite.method.pruning import clone, masks, prunable_layers, prune_model  # noqa: E402
from safs_lite.rl import policy as rl  # noqa: E402
from safs_lite.run.folders import load_json  # noqa: E402

ENV = "CartPole-v1"


def _pruned(sparsity=0.8, method="layerwise"):
    return prune_model(rl.build_policy(4, 2, seed=0), sparsity, method)


@pytest.mark.parametrize("method", ["layerwise", "global"])
def test_pruned_weights_stay_exactly_zero_through_finetuning(method):
    torch.set_num_threads(1)
    model = _pruned(0.8, method)
    before = {k: m.clone() for k, m in masks(model).items()}
    w0 = {n: m.weight.detach().clone() for n, m in prunable_layers(model).items()}
    set_ops = {"act1": "swish", "act2": "elu"}
    p = rl.PRESETS["smoke"]
    tuned, curve, val = rl.finetune(model, ENV, set_ops, 3, p, seed=1, lr=0.05, scale_lr=0.05)
    assert len(curve) == 3
    # The returned checkpoint is the one its validation score belongs to (validation seeds only).
    assert val == pytest.approx(sum(rl.evaluate(tuned, ENV, rl.episode_seeds("validation", p.val_episodes),
                                                p.max_steps)) / p.val_episodes)
    for name, m in prunable_layers(tuned).items():
        mask = before[name]
        assert torch.equal(m.weight_mask, mask)
        assert torch.all(m.weight[mask == 0] == 0)
        assert not torch.equal(m.weight, w0[name])  # the kept weights did train
    assert rl.get_activations(tuned) == set_ops
    assert any(a != 1.0 or b != 1.0 for a, b in rl.get_alpha_beta(tuned).values())  # scales trained too


def test_evaluation_and_search_seeds_never_overlap(monkeypatch):
    val = set(rl.episode_seeds("validation", 1000))
    ev = set(rl.episode_seeds("evaluation", 1000))
    assert not val & ev
    # Training draws its episode seeds in the training range only: record every reset.
    seen = []
    real = rl._rollout

    def spy(policy, env, seed, greedy, gen):
        seen.append((seed, greedy))
        return real(policy, env, seed, greedy, gen)

    monkeypatch.setattr(rl, "_rollout", spy)
    rl.train(rl.build_policy(4, 2), ENV, updates=3, episodes=4, max_steps=20, seed=3)
    train = {s for s, _ in seen}
    assert len(train) == 12 and all(rl.SEED_RANGES["train"] <= s < rl.SEED_SPAN for s in train)
    assert not train & (val | ev)
    with pytest.raises(ValueError, match="leave the validation seed range"):
        rl.episode_seeds("validation", 10, start=rl.SEED_SPAN - 5)


def test_evaluation_is_reproducible_and_greedy():
    model = rl.build_policy(4, 2, seed=0)
    seeds = rl.episode_seeds("evaluation", 3)
    assert rl.evaluate(model, ENV, seeds, 50) == rl.evaluate(clone(model), ENV, seeds, 50)


@pytest.mark.parametrize("args, match", [
    ({"env_name": "Pong-v5"}, "unknown environment 'Pong-v5'; valid: CartPole-v1, Acrobot-v1"),
    ({"sparsity": 1.0}, "sparsity must be in"),
    ({"sparsity": "lots"}, "sparsity must be a number"),
    ({"pruning": "random"}, "unknown pruning method 'random'"),
    ({"preset": "huge"}, "unknown RL preset 'huge'; valid: smoke, cpu"),
])
def test_bad_input_is_a_one_line_value_error(tmp_path, args, match):
    kwargs = {"env_name": ENV, "sparsity": 0.5, "pruning": "layerwise", "preset": "smoke", "out": tmp_path / "r"}
    with pytest.raises(ValueError, match=match) as err:
        rl.run_rl(**{**kwargs, **args}, progress=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_resume_after_a_kill_does_not_redo_finished_stages(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    out = tmp_path / "run"
    real = rl._study
    calls = []

    def killed(*a, **k):  # stage 2 dies: dense, MP and stage 1 are saved
        raise KeyboardInterrupt

    monkeypatch.setattr(rl, "_study", killed)
    with pytest.raises(KeyboardInterrupt):
        rl.run_rl(ENV, 0.8, "global", "smoke", seed=2, out=out, progress=False)
    for stage in ("dense", "magnitude_pruning", "stage1"):
        assert (out / f"{stage}.json").exists()
    assert not (out / "results.json").exists()

    def forbidden(*a, **k):
        raise AssertionError("a finished stage was recomputed")

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    real_train = rl.train
    monkeypatch.setattr(rl, "_study", counted)
    monkeypatch.setattr(rl, "lahc", forbidden)
    # Training before stage 2 starts would be dense, MP or stage 1 again.
    monkeypatch.setattr(rl, "train", lambda *a, **k: real_train(*a, **k) if calls else forbidden())
    res = rl.run_rl(ENV, 0.8, "global", "smoke", seed=2, out=out, progress=False)
    assert len(calls) == 2  # only stage 2 and SAFS ran
    assert set(res["test_return"]) == {"dense", "magnitude_pruning", "stage1", "stage2", "safs"}


def test_run_folder_refuses_another_key(tmp_path):
    out = tmp_path / "run"
    rl.prepare_out(out, rl.rl_key(ENV, 0.5, "layerwise", "smoke", 0), True)
    with pytest.raises(ValueError, match="holds a run with another key"):
        rl.run_rl(ENV, 0.5, "layerwise", "smoke", seed=1, out=out, progress=False)


def test_smoke_pipeline_via_the_cli_and_same_seed_same_numbers(tmp_path, capsys):
    torch.set_num_threads(1)
    argv = ["rl", "--env", ENV, "--sparsity", "0.9", "--pruning", "layerwise", "--preset", "smoke", "--seed", "0",
            "--threads", "1"]
    assert main(argv + ["--out", str(tmp_path / "a")]) == 0
    first = capsys.readouterr().out
    for name in ("dense", "magnitude_pruning", "stage1", "stage2", "safs", "SAFS gain over MP"):
        assert name in first
    res = load_json(tmp_path / "a" / "results.json")
    assert res["sparsity"] == pytest.approx(0.9, abs=0.01)
    assert main(argv + ["--out", str(tmp_path / "b")]) == 0  # a fresh folder: recomputed, same numbers
    assert load_json(tmp_path / "b" / "results.json")["test_return"] == res["test_return"]
    assert main(["rl", "--env", "Nope", "--out", str(tmp_path / "c")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    # `check` knows an RL folder: its key and records verified, what it cannot verify said
    assert main(["check", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "older kit" not in out and "not verified: the saved policies" in out
    rec = load_json(tmp_path / "b" / "stage2.json")
    rec["test_return"] += 1.0
    (tmp_path / "b" / "stage2.json").write_text(json.dumps(rec))
    assert main(["check", str(tmp_path / "b")]) == 1
    assert "stage2 test return differs from stage2.json" in capsys.readouterr().out


def test_the_rl_key_and_folder_follow_the_kits_conventions(tmp_path):
    key = rl.rl_key(ENV, 0.9, "layerwise", "smoke", 3)
    assert {"ops_version", "gymnasium", "device", "threads", "kit"} <= set(key) and key["device"] == "cpu"
    assert rl.rl_prefix(key) == f"rl-{ENV}-0.9-layerwise-smoke-s3"
    assert rl.rl_prefix(key) != rl.rl_prefix(rl.rl_key(ENV, 0.9, "layerwise", "cpu", 3))  # the preset is in the name


def test_stage_checkpoints_reload_to_the_recorded_returns_and_episodes_match_evaluate(tmp_path):
    torch.set_num_threads(1)
    p = rl.PRESETS["smoke"]
    pruned = _pruned(0.9)
    recs = rl.pruned_stages(pruned, ENV, p, seed=4, out=tmp_path / "s4")
    seeds = rl.episode_seeds("evaluation", p.eval_episodes)
    for stage, rec in recs.items():
        policy = rl.load_policy(tmp_path / "s4", stage, pruned)
        assert rl.get_activations(policy) == rec["activations"]
        assert rl.evaluate(policy, ENV, seeds, p.max_steps) == rec["test_returns"]
        for name, m in prunable_layers(policy).items():  # same mask, pruned weights still zero
            assert torch.equal(m.weight_mask, masks(pruned)[name]) and torch.all(m.weight[m.weight_mask == 0] == 0)
        ep = rl.episode(policy, ENV, seeds[0], p.max_steps)
        assert ep["observations"].shape == (len(ep["actions"]), 4)
        assert ep["rewards"].sum() == rec["test_returns"][0]
    # A rerun loads every stage instead of recomputing it.
    again = rl.pruned_stages(pruned, ENV, p, seed=4, out=tmp_path / "s4", say=lambda s, r: r)
    assert {k: r["seconds"] for k, r in again.items()} == {k: r["seconds"] for k, r in recs.items()}
    with pytest.raises(ValueError, match="unknown RL stage 'dense'; valid: magnitude_pruning, stage1"):
        rl.load_policy(tmp_path / "s4", "dense", pruned)


def test_break_point_is_the_lowest_sparsity_at_or_below_half_the_dense_return():
    assert rl.break_point({0.98: 9.0, 0.9: 500.0, 0.96: 250.0, 0.97: 300.0}, 500.0) == 0.96  # ties count, any order
    assert rl.break_point({0.9: 500.0, 0.95: 251.0}, 500.0) is None


def test_break_point_holds_for_negative_returns():
    floor = rl.worst_return("Acrobot-v1")  # -500: an episode that never reaches the goal
    assert floor == -500.0 and rl.worst_return("CartPole-v1") == 0.0
    assert rl.break_point({0.8: -85.0, 0.9: -90.0, 0.95: -500.0}, -80.0, floor) == 0.95
    assert rl.break_point({0.8: -70.0, 0.9: -75.0}, -80.0, floor) is None  # better than dense: not broken
    assert rl.break_point({0.9: -290.0, 0.95: -291.0}, -80.0, floor) == 0.9  # the midpoint of -500 and -80 counts
    with pytest.raises(ValueError, match="dense return -80 is not above the floor 0"):
        rl.break_point({0.8: -85.0}, -80.0)  # negative returns without a floor: an error, never a wrong answer


def test_cartpole_strip_draws_each_observation(tmp_path):
    import numpy as np

    from safs_lite.rl.plots import plot_cartpole_strip, pole_tip

    obs = np.array([[0.0, 0, 0.0, 0], [1.0, 0, 0.2, 0], [-2.0, 0, -0.1, 0]])
    fig = plot_cartpole_strip({"a": obs, "b": obs[:2]}, frames=3, path=tmp_path / "strip.png")
    assert len(fig.axes) == 6 and (tmp_path / "strip.png").stat().st_size > 1000
    assert [ax.get_title() for ax in fig.axes[3:]] == ["step 1", "step 1", "step 2"]  # 2 steps, 3 frames: one repeats
    pole = fig.axes[1].lines[-1]  # frame 2 of row "a": x = 1, leaning right by 0.2 rad
    assert list(pole.get_xdata()) == pytest.approx([1.0, pole_tip(obs[1])[0]])
    assert pole_tip(obs[1]) == pytest.approx((1 + np.sin(0.2), np.cos(0.2)))
