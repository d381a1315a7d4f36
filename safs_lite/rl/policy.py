"""SAFS for a sparse reinforcement-learning policy on Gymnasium's classic-control environments.

The question of notebooks 01-08, asked of a controller: when a policy network is pruned hard,
does searching its activations recover the return that magnitude pruning loses? Notebook
`09_sparse_rl_policy.ipynb` walks through it on CartPole-v1.

Algorithm: REINFORCE with a learned value baseline, written here in ~40 lines. Stable-Baselines3's
PPO was not used: it is not installed with the kit, its policies build their own activation
modules and optimizers (the kit's `Activation` sites and torch.nn.utils.prune masks would have to
be patched into its ActorCritic networks, and every one of its updates re-checked for the mask),
and a short algorithm the student can read is the lesson. The policy's weights are trained
through the masks exactly as the classification fine-tuning does (`weight = weight_orig * mask`
at every forward), so pruned weights stay exactly zero; `tests/test_rl.py` proves it. The value
network is a separate dense MLP used only during training: it is never pruned nor searched
(only the policy is deployed).

Seeds: training episodes, validation episodes (stage 1's and stage 2's fitness) and evaluation
episodes (the reported numbers) come from three disjoint seed ranges (`SEED_RANGES`,
`episode_seeds`), so the reported returns are never seen by the search.

Stages, as in `safs_lite.run.pipeline`: dense training, magnitude pruning + fine-tuning (MP), stage 1
(LAHC over per-site operators, fitness = mean validation return after a short fine-tune; every
fine-tune keeps its best checkpoint on the validation seeds, `finetune`),
stage 2 (Optuna over the fine-tuning learning rates with trainable alpha/beta, fixed operators:
the dense ones for "stage 2 only", stage 1's for SAFS). Every stage's record and checkpoint is cached in
the run folder (`runs.cached_record`, `load_policy`), so a killed run resumes where it stopped.

Example:
    >>> from safs_lite import rl
    >>> res = rl.run_rl("CartPole-v1", 0.9, "layerwise", "smoke", seed=0, out=tmp, progress=False)  # doctest: +SKIP
    >>> sorted(res["test_return"])  # doctest: +SKIP
    ['dense', 'magnitude_pruning', 'safs', 'stage1', 'stage2']
"""
from __future__ import annotations

import copy
import os
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import optuna
import torch
from torch import nn

from ..method.activations import (
    OPS_VERSION,
    SEARCH_SPACE,
    get_activations,
    get_alpha_beta,
    scale_parameters,
    set_activations,
    set_trainable_scales,
)
from ..method.lahc import SearchConfig, lahc
from ..method.pruning import check_pruning, check_sparsity, clone, prune_model, sparsity_report
from ..nets.searchable import make_searchable
from ..run.folders import cached_record, cpu_state, load_json, load_state, prepare_out, save_json, save_state
from ..run.key import compute_key, config_hash, environment
from ..version import KIT_VERSION

ENVS = ("CartPole-v1", "Acrobot-v1")  # classic control: no download at run time
SEED_SPAN = 10**8
SEED_RANGES = {"train": 0, "validation": SEED_SPAN, "evaluation": 2 * SEED_SPAN}  # split -> first seed
DENSE_OP = "tanh"  # the dense policy's activation (usual for small policies)


def check_env(name: str) -> str:
    """Return `name` if it is a supported environment, else raise ValueError listing the valid ones."""
    if name not in ENVS:
        raise ValueError(f"unknown environment {name!r}; valid: {', '.join(ENVS)}")
    return name


def episode_seeds(split: str, n: int, start: int = 0) -> list[int]:
    """Seeds of `n` episodes of one split, from its own range of `SEED_SPAN` seeds.

    Args:
        split: "train", "validation" or "evaluation".
        n: how many episodes.
        start: offset inside the split's range.

    Returns:
        `n` environment seeds; two splits never share one.
    """
    if split not in SEED_RANGES:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SEED_RANGES)}")
    if start < 0 or n < 0 or start + n > SEED_SPAN:
        raise ValueError(f"episodes {start}..{start + n} leave the {split} seed range (0..{SEED_SPAN})")
    return [SEED_RANGES[split] + start + i for i in range(n)]


@dataclass(frozen=True)
class RLPreset:
    """Budgets of one RL run (updates are policy-gradient steps of `episodes` episodes each)."""

    dense_updates: int
    finetune_updates: int  # MP, and the final retraining of stage 1 / stage 2 / SAFS
    stage1_steps: int  # LAHC moves
    stage1_updates: int  # short fine-tune scoring one operator vector
    hpo_trials: int
    trial_updates: int
    episodes: int = 8  # episodes per update
    max_steps: int = 500  # episode cap (the environments' own is 500)
    val_episodes: int = 5
    eval_episodes: int = 10
    lr: float = 3e-3
    check_every: int = 5  # fine-tuning keeps its best checkpoint on validation seeds, checked this often


PRESETS = {
    "smoke": RLPreset(dense_updates=3, finetune_updates=2, stage1_steps=2, stage1_updates=1, hpo_trials=2,
                      trial_updates=1, episodes=2, max_steps=50, val_episodes=2, eval_episodes=3, check_every=1),
    "cpu": RLPreset(dense_updates=150, finetune_updates=30, stage1_steps=8, stage1_updates=8, hpo_trials=4,
                    trial_updates=10),
}


def check_preset(name: str) -> RLPreset:
    """The preset called `name`, else ValueError listing the valid ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown RL preset {name!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[name]


def make_env(name: str, max_steps: int = 500):
    """A Gymnasium environment (`check_env`), episodes capped at `max_steps`."""
    import gymnasium as gym

    return gym.make(check_env(name), max_episode_steps=max_steps)


def build_policy(obs_dim: int, n_actions: int, hidden: int = 64, op: str = DENSE_OP, seed: int = 0) -> nn.Module:
    """obs -> hidden -> hidden -> action logits, with SAFS activation sites `act1`, `act2`."""
    torch.manual_seed(seed)
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[op]
    net = nn.Sequential(OrderedDict(fc1=nn.Linear(obs_dim, hidden), act1=act(), fc2=nn.Linear(hidden, hidden),
                                    act2=act(), out=nn.Linear(hidden, n_actions)))
    return make_searchable(net)


def _value_net(obs_dim: int, hidden: int = 64) -> nn.Module:
    return nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))


def _rollout(policy: nn.Module, env, seed: int, greedy: bool, gen: torch.Generator | None):
    """One episode: (observations, actions, rewards)."""
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards = [], [], []
    done = False
    with torch.no_grad():
        while not done:
            x = torch.as_tensor(obs, dtype=torch.float32)
            logits = policy(x)
            a = int(logits.argmax()) if greedy else int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
            observations.append(x)
            actions.append(a)
            obs, r, term, trunc, _ = env.step(a)
            rewards.append(float(r))
            done = term or trunc
    return observations, actions, rewards


def evaluate(policy: nn.Module, env_name: str, seeds: list[int], max_steps: int = 500) -> list[float]:
    """Undiscounted return of the greedy policy on each seed's episode."""
    env = make_env(env_name, max_steps)
    policy.eval()
    return [float(sum(_rollout(policy, env, s, True, None)[2])) for s in seeds]


def train(policy: nn.Module, env_name: str, updates: int, episodes: int = 8, lr: float = 3e-3,
          scale_lr: float | None = None, max_steps: int = 500, seed: int = 0, gamma: float = 0.99,
          on_update: Callable[[int], None] | None = None) -> list[float]:
    """REINFORCE with a value baseline, in place; pruned layers train through their masks.

    Args:
        policy: the policy (pruned or not); alpha/beta train too if trainable (`set_trainable_scales`).
        env_name: the environment.
        updates: policy-gradient steps.
        episodes: episodes per step (training seeds only).
        lr: Adam's learning rate for the weights (and the value network); the policy's rates decay
            linearly to zero over the updates.
        scale_lr: learning rate of alpha/beta (default `lr`).
        max_steps: episode cap.
        seed: seeds the value network, the action sampling and the training episodes.
        gamma: discount.
        on_update: called with the number of finished updates after each one (e.g. to keep the
            best checkpoint on validation seeds).

    Returns:
        The mean training return of every update.
    """
    env = make_env(env_name, max_steps)
    torch.manual_seed(seed)
    value = _value_net(env.observation_space.shape[0])
    gen = torch.Generator().manual_seed(seed)
    scales = [p for p in scale_parameters(policy) if p.requires_grad]
    ids = {id(p) for p in scales}
    weights = [p for p in policy.parameters() if p.requires_grad and id(p) not in ids]
    groups = [{"params": weights, "lr": lr}] + ([{"params": scales, "lr": scale_lr or lr}] if scales else [])
    opt = torch.optim.Adam(groups)
    vopt = torch.optim.Adam(value.parameters(), lr=lr)
    # Linear decay to zero: the policy settles instead of oscillating around the maximum return.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 - k / max(updates, 1))
    # Training seeds: drawn in the training range from (seed, update), never validation or evaluation seeds.
    rng = np.random.default_rng(seed)
    curve = []
    policy.train()
    for _ in range(updates):
        obs, acts, rets, totals = [], [], [], []
        for s in rng.integers(SEED_RANGES["train"], SEED_RANGES["train"] + SEED_SPAN, episodes):
            o, a, r = _rollout(policy, env, int(s), False, gen)
            g, disc = 0.0, []
            for x in reversed(r):
                g = x + gamma * g
                disc.append(g)
            obs += o
            acts += a
            rets += disc[::-1]
            totals.append(sum(r))
        x, a, g = torch.stack(obs), torch.tensor(acts), torch.tensor(rets)
        v = value(x).squeeze(-1)
        adv = g - v.detach()
        adv = (adv - adv.mean()) / (adv.std() + 1e-8) if len(adv) > 1 else adv
        logp = torch.log_softmax(policy(x), -1).gather(1, a[:, None]).squeeze(1)
        opt.zero_grad()
        (-(logp * adv).mean()).backward()
        opt.step()
        sched.step()
        vopt.zero_grad()
        ((v - g) ** 2).mean().backward()
        vopt.step()
        curve.append(float(np.mean(totals)))
        if on_update is not None:
            on_update(len(curve))
            policy.train()
    return curve


def _spaces(env_name: str) -> tuple[int, int]:
    env = make_env(env_name)
    return env.observation_space.shape[0], env.action_space.n


def _record(policy: nn.Module, env_name: str, p: RLPreset, **extra) -> dict:
    """Returns on the validation and (held-out) evaluation seeds, and the operators."""
    val = evaluate(policy, env_name, episode_seeds("validation", p.val_episodes), p.max_steps)
    test = evaluate(policy, env_name, episode_seeds("evaluation", p.eval_episodes), p.max_steps)
    return {"test_return": float(np.mean(test)), "test_returns": test, "val_return": float(np.mean(val)),
            "activations": get_activations(policy), "sparsity": sparsity_report(policy)["overall"], **extra}


def finetune(pruned: nn.Module, env_name: str, ops: dict, updates: int, p: RLPreset, seed: int,
             lr: float | None = None, scale_lr: float | None = None) -> tuple[nn.Module, list[float], float]:
    """A fine-tuned copy of `pruned` with operators `ops`; trainable alpha/beta when `scale_lr` is given.

    Policy-gradient fine-tuning is noisy (a policy at the maximum return can fall off it a few
    updates later), so every `p.check_every` updates and after the last one the policy is scored on
    the validation seeds, and the best checkpoint is returned (ties: the later one). Validation
    seeds only: the reported evaluation seeds are never looked at.

    Returns:
        (the policy, its training curve, its mean validation return).
    """
    model = set_activations(clone(pruned), ops)
    set_trainable_scales(model, scale_lr is not None)
    seeds = episode_seeds("validation", p.val_episodes)
    best: list = [float("-inf"), None]

    def check(k: int) -> None:
        if k % p.check_every == 0 or k == updates:
            score = float(np.mean(evaluate(model, env_name, seeds, p.max_steps)))
            if score >= best[0]:
                best[:] = [score, copy.deepcopy(model.state_dict())]

    curve = train(model, env_name, updates, p.episodes, lr or p.lr, scale_lr, p.max_steps, seed, on_update=check)
    if best[1] is None:  # no update ran
        best[0] = float(np.mean(evaluate(model, env_name, seeds, p.max_steps)))
    else:
        model.load_state_dict(best[1])
    return model, curve, best[0]


def worst_return(env_name: str, max_steps: int = 500) -> float:
    """The lowest return an episode of `env_name` can give: CartPole-v1 0 (+1 per step kept up), Acrobot-v1
    -max_steps (-1 per step until the goal). `break_point`'s floor: it makes "broken" mean the same on any scale."""
    return -float(max_steps) if check_env(env_name) == "Acrobot-v1" else 0.0


def break_point(returns: dict[float, float], dense: float, floor: float = 0.0) -> float | None:
    """The lowest sparsity whose return has lost at least half of the dense policy's lead over `floor` (None if none).

    Broken means a return at or below floor + (dense - floor) / 2: half the dense return where returns count up from
    0 (CartPole-v1), the midpoint between -max_steps and the dense return where they are negative (Acrobot-v1: pass
    `floor=worst_return(env, max_steps)`). A return better than the dense one never counts as broken. Decide it on
    validation returns, never on the reported ones.

    Args:
        returns: sparsity -> the fine-tuned pruned policy's mean return (any order).
        dense: the dense policy's mean return on the same episodes.
        floor: the lowest return an episode can give (`worst_return`); the dense return must be above it.

    Returns:
        That sparsity, or None.

    Raises:
        ValueError: if the dense return is not above `floor` (for negative returns: pass `floor`).

    Example:
        >>> break_point({0.9: 500.0, 0.97: 11.4, 0.96: 51.4}, 500.0)
        0.96
        >>> break_point({0.8: -85.0, 0.9: -90.0, 0.95: -500.0}, -80.0, floor=worst_return("Acrobot-v1"))
        0.95
    """
    if not dense > floor:
        raise ValueError(f"dense return {dense:g} is not above the floor {floor:g}; pass floor=worst_return(env) "
                         "(the lowest return an episode can give, e.g. -500 for Acrobot-v1)")
    broken = [s for s, r in returns.items() if r <= floor + (dense - floor) / 2]
    return min(broken) if broken else None


def _study(pruned: nn.Module, env_name: str, ops: dict, p: RLPreset, seed: int, path: Path) -> dict:
    """Stage 2: Optuna over lr and alpha/beta's lr (SQLite file, resumable), then the full retraining."""
    study = optuna.create_study(study_name="stage2", storage=f"sqlite:///{path}", direction="maximize",
                                load_if_exists=True, sampler=optuna.samplers.TPESampler(seed=seed))

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 3e-4, 3e-2, log=True)
        slr = trial.suggest_float("scale_lr", 1e-4, 1e-1, log=True)
        return finetune(pruned, env_name, ops, p.trial_updates, p, seed, lr, slr)[2]

    done = len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE])
    if done < p.hpo_trials:
        study.optimize(objective, n_trials=p.hpo_trials - done)
    best = study.best_trial.params
    model, curve, _ = finetune(pruned, env_name, ops, p.finetune_updates, p, seed, best["lr"], best["scale_lr"])
    save_state(path.with_suffix(".pt"), cpu_state(model))
    return _record(model, env_name, p, hyperparameters=best, best_val_trial=study.best_value, curve=curve,
                   alpha_beta={k: list(v) for k, v in get_alpha_beta(model).items()})


def pruned_stages(pruned: nn.Module, env_name: str, p: RLPreset, seed: int, out: Path, timings: dict | None = None,
                  say: Callable[[str, dict], dict] | None = None) -> dict[str, dict]:
    """MP, stage 1, stage 2 and SAFS from one pruned policy; each stage is cached in `out` (a rerun resumes).

    `run_rl` calls it after the dense stage; a notebook can call it with one pruned policy and several
    seeds (the seed then changes the fine-tuning episodes, the action sampling, the value network and the
    search, not the mask). Checkpoints: `<out>/<stage>.pt` (`load_policy`).

    Args:
        pruned: the pruned policy every stage starts from (left untouched).
        env_name: the environment.
        p: the budgets (`check_preset`).
        seed: seeds the fine-tuning, the search and the study.
        out: folder for the stages' records, checkpoints, the search log and the studies.
        timings: gets each stage's seconds.
        say: called with (stage, record) after each stage; returns the record.

    Returns:
        {"magnitude_pruning", "stage1", "stage2", "safs"} -> the stage's record.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings = {} if timings is None else timings
    say = say or (lambda stage, rec: rec)
    dense_ops = get_activations(pruned)

    def mp_stage() -> dict:
        model, curve, _ = finetune(pruned, env_name, dense_ops, p.finetune_updates, p, seed)
        save_state(out / "magnitude_pruning.pt", cpu_state(model))
        return _record(model, env_name, p, curve=curve)

    def stage1_stage() -> dict:
        def fitness(vector: dict) -> float:
            return finetune(pruned, env_name, vector, p.stage1_updates, p, seed)[2]

        res = lahc(fitness, list(dense_ops), list(SEARCH_SPACE), SearchConfig(steps=p.stage1_steps, seed=seed),
                   init=dense_ops, csv_path=out / "stage1.csv", progress=False)
        model, curve, _ = finetune(pruned, env_name, res.best, p.finetune_updates, p, seed)
        save_state(out / "stage1.pt", cpu_state(model))
        return _record(model, env_name, p, curve=curve,
                       search={"best_val_fitness": res.best_fitness, "evaluations": res.evaluations})

    mp_rec = say("magnitude_pruning", cached_record(out / "magnitude_pruning.json", mp_stage, timings, "test_return"))
    s1 = say("stage1", cached_record(out / "stage1.json", stage1_stage, timings, "test_return"))
    s2 = say("stage2", cached_record(out / "stage2.json", lambda: _study(pruned, env_name, dense_ops, p, seed,
                                                                        out / "stage2.db"), timings, "test_return"))
    sf = say("safs", cached_record(out / "safs.json", lambda: _study(pruned, env_name, s1["activations"], p, seed,
                                                                    out / "safs.db"), timings, "test_return"))
    return {"magnitude_pruning": mp_rec, "stage1": s1, "stage2": s2, "safs": sf}


def load_policy(out: str | os.PathLike, stage: str, pruned: nn.Module) -> nn.Module:
    """A finished stage's policy from its run folder: a copy of `pruned` with the stage's operators and weights.

    Args:
        out: the run folder (or `pruned_stages`' folder).
        stage: "magnitude_pruning", "stage1", "stage2" or "safs".
        pruned: the pruned policy the stages started from (same mask; its weights are replaced).

    Returns:
        The policy, in eval mode.
    """
    stages = ("magnitude_pruning", "stage1", "stage2", "safs")
    if stage not in stages:
        raise ValueError(f"unknown RL stage {stage!r}; valid: {', '.join(stages)}")
    out = Path(out)
    model = set_activations(clone(pruned), load_json(out / f"{stage}.json")["activations"])
    model.load_state_dict(load_state(out / f"{stage}.pt"))
    return model.eval()


def episode(policy: nn.Module, env_name: str, seed: int, max_steps: int = 500) -> dict[str, np.ndarray]:
    """One greedy episode, as `evaluate` plays it: observations (T, obs_dim), actions (T,) and rewards (T,).

    Example:
        >>> ep = episode(build_policy(4, 2), "CartPole-v1", episode_seeds("evaluation", 1)[0])  # doctest: +SKIP
        >>> ep["observations"].shape, ep["rewards"].sum()  # doctest: +SKIP
        ((9, 4), 9.0)
    """
    policy.eval()
    obs, acts, rews = _rollout(policy, make_env(env_name, max_steps), seed, True, None)
    return {"observations": torch.stack(obs).numpy(), "actions": np.asarray(acts), "rewards": np.asarray(rews)}


def rl_key(env_name: str, sparsity: float, pruning: str, preset: str, seed: int) -> dict:
    """Everything that changes an RL run's numbers (hashed into its folder name): the setting and budgets, the
    searched operators and their definitions' version, the kit, torch and gymnasium versions, the device and the
    CPU thread count (`runs.compute_key`; RL runs compute on the CPU)."""
    import gymnasium

    return {"kind": "rl", "env": env_name, "sparsity": sparsity, "pruning": pruning, "preset": preset,
            "budgets": asdict(check_preset(preset)), "seed": seed, "ops": list(SEARCH_SPACE), "dense_op": DENSE_OP,
            "ops_version": OPS_VERSION, "kit": KIT_VERSION, "torch": torch.__version__,
            "gymnasium": gymnasium.__version__, **compute_key("cpu")}


def rl_prefix(key: dict) -> str:
    """The readable start of an RL run folder's name: rl-<env>-<sparsity>-<pruning>-<preset>-s<seed>."""
    return f"rl-{key['env']}-{key['sparsity']:g}-{key['pruning']}-{key['preset']}-s{key['seed']}"


def run_rl(env_name: str, sparsity: float, pruning: str = "layerwise", preset: str = "cpu", seed: int = 0,
           out: str | os.PathLike | None = None, runs: str | os.PathLike | None = None,
           progress: bool = True) -> dict:
    """Dense, MP, stage 1, stage 2 and SAFS for one policy; resumes from the run folder.

    Args:
        env_name: a name of `ENVS`.
        sparsity: fraction of the policy's weights removed, in [0, 1).
        pruning: "layerwise" or "global" (any `pruning.PRUNING_METHODS`).
        preset: a name of `PRESETS`.
        seed: seeds the policy's init, training and the search.
        out: run folder (default: `<runs>/rl-<env>-<sparsity>-<pruning>-<preset>-s<seed>-<hash>`).
        runs: the runs folder when `out` is not given.
        progress: print one line per finished stage.

    Returns:
        The dict saved as <out>/results.json (test_return and val_return per stage, operators, seconds).
    """
    env_name, sparsity, pruning = check_env(env_name), check_sparsity(sparsity), check_pruning(pruning)
    p = check_preset(preset)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed {seed!r}: must be a whole number >= 0")  # checked before the run folder is made
    key = rl_key(env_name, sparsity, pruning, preset, seed)
    explicit = out is not None
    if out is None:
        from ..paths import runs_dir

        out = runs_dir(runs) / f"{rl_prefix(key)}-{config_hash(key)}"
    out = Path(out)
    prepare_out(out, key, explicit)
    timings: dict = {}
    obs_dim, n_act = _spaces(env_name)

    def say(stage: str, rec: dict) -> dict:
        if progress:
            print(f"{stage}: test return {rec['test_return']:.1f} (validation {rec['val_return']:.1f})", flush=True)
        return rec

    def dense_stage() -> dict:
        model = build_policy(obs_dim, n_act, seed=seed)
        curve = train(model, env_name, p.dense_updates, p.episodes, p.lr, None, p.max_steps, seed)
        save_state(out / "dense.pt", cpu_state(model))
        return _record(model, env_name, p, curve=curve)

    dense_rec = say("dense", cached_record(out / "dense.json", dense_stage, timings, "test_return"))
    dense = build_policy(obs_dim, n_act, seed=seed)
    dense.load_state_dict(load_state(out / "dense.pt"))
    pruned = prune_model(clone(dense), sparsity, pruning)  # every later stage starts from this checkpoint
    recs = {"dense": dense_rec, **pruned_stages(pruned, env_name, p, seed, out, timings, say)}
    s1, s2, sf = recs["stage1"], recs["stage2"], recs["safs"]
    timings["total"] = sum(timings.values())
    results = {"config": key, "test_return": {k: r["test_return"] for k, r in recs.items()},
               "val_return": {k: r["val_return"] for k, r in recs.items()},
               "test_returns": {k: r["test_returns"] for k, r in recs.items()},
               "activations": {"stage1": s1["activations"], "safs": sf["activations"]},
               "alpha_beta": {"stage2": s2["alpha_beta"], "safs": sf["alpha_beta"]},
               "sparsity": sf["sparsity"], "seconds": timings,
               "environment": {k: environment()[k] for k in ("python", "torch", "device", "threads")}}
    save_json(out / "results.json", results)
    return results


def format_results(results: dict) -> str:
    """The five mean returns side by side, with SAFS's gain over magnitude pruning."""
    t = results["test_return"]
    names = ("dense", "magnitude_pruning", "stage1", "stage2", "safs")
    lines = [f"{'method':<18} {'test return':>11} {'val return':>10}"]
    lines += [f"{n:<18} {t[n]:>11.1f} {results['val_return'][n]:>10.1f}" for n in names]
    gain = t["safs"] - t["magnitude_pruning"]
    ratio = f" ({t['safs'] / t['magnitude_pruning']:.2f}x)" if t["magnitude_pruning"] > 0 else ""
    lines.append(f"SAFS gain over MP: {gain:+.1f}{ratio}; operators {results['activations']['safs']}")
    return "\n".join(lines)
