"""Checks for the notebooks' exercises: `check("04.1", answer)` says whether an answer is right.

Every notebook ends with two or three exercises that run in seconds to minutes on 2 CPU
cores. Each has a check here, named "<notebook>.<exercise>". A check prints "correct"
for a right answer and raises an AssertionError that says what is wrong for a wrong one.
An answer not given yet (a function that still raises NotImplementedError, or None)
gets a hint instead of an error, so the notebooks run top to bottom as shipped. The
solutions are in notebooks/solutions/.

Example:
    >>> check("04.1", lambda fitness, current, late: fitness >= current or fitness >= late)
    exercise 04.1: correct
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from .activations import get_op
from .lahc import lahc_accepts
from .models import build_model
from .pruning import accuracy_ceiling, prune_model


def _close(got: Any, want: float, tol: float, what: str) -> None:
    assert isinstance(got, (int, float, np.floating, np.integer)) or torch.is_tensor(got), \
        f"{what} should be a number, got {type(got).__name__}"
    assert math.isclose(float(got), want, abs_tol=tol), f"{what}: expected {want:.4g}, got {float(got):.4g}"


# ---------------------------------------------------------------- 01: dense training


def _n_weights(fn: Callable) -> None:
    want = {"conv1": 150, "conv2": 2400, "fc1": 30720, "fc2": 10080, "fc3": 840}
    got = fn(build_model("lenet5"))
    assert isinstance(got, dict), f"return a dict layer -> count, got {type(got).__name__}"
    assert set(got) == set(want), f"expected the layers {sorted(want)}, got {sorted(got)}"
    wrong = {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    assert not wrong, ("(yours, right) per layer: " + str(wrong) + "; count weights only, not biases "
                       "(m.weight.numel())")


def _confusion(fn: Callable) -> None:
    g = torch.Generator().manual_seed(0)
    y_true, y_pred = torch.randint(0, 4, (200,), generator=g), torch.randint(0, 4, (200,), generator=g)
    want = torch.bincount(4 * y_true + y_pred, minlength=16).view(4, 4)
    got = torch.as_tensor(np.asarray(fn(y_true, y_pred, 4)))
    assert tuple(got.shape) == (4, 4), f"expected a 4 x 4 matrix for 4 classes, got shape {tuple(got.shape)}"
    if torch.equal(got.long(), want.T):
        raise AssertionError("rows and columns are swapped: row i should count the images whose true class is i")
    assert torch.equal(got.long(), want), "some counts differ: cell [i, j] counts images of class i predicted as j"


# ---------------------------------------------------------------- 02: magnitude pruning


def _quantile_mask(fn: Callable) -> None:
    g = torch.Generator().manual_seed(1)
    for shape, sparsity in (((6, 1, 5, 5), 0.99), ((120, 256), 0.99), ((84, 120), 0.9), ((10, 84), 0.5)):
        w = torch.randn(shape, generator=g)
        got = torch.as_tensor(fn(w, sparsity))
        assert got.shape == w.shape, f"the mask should have the weight's shape {tuple(w.shape)}, got {tuple(got.shape)}"
        keep = w.numel() - round(sparsity * w.numel())
        assert int(got.sum()) == keep, (f"{tuple(w.shape)} at {sparsity:.0%}: keep {keep} of {w.numel()} weights "
                                        f"(round(sparsity * n) are removed), yours keeps {int(got.sum())}")
        kept, cut = w.abs()[got.bool()], w.abs()[~got.bool()]
        assert cut.numel() == 0 or kept.min() >= cut.max(), "keep the weights with the LARGEST |w|"


def _ceiling(fn: Callable) -> None:
    g = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 10, (1000,), generator=g)
    for connected in ([2, 3, 7, 8], [0, 1, 2, 3, 4, 7, 9], [], list(range(10))):
        model = prune_model(build_model("lenet5"), 0.0)
        alive = torch.zeros(10, dtype=torch.bool)
        alive[connected] = True
        model.fc3.weight_mask.mul_(alive[:, None].float())  # classes outside `connected` lose their inputs
        _close(fn(connected, labels), accuracy_ceiling(model, labels), 1e-6,
               f"ceiling for connected classes {connected} (in %)")


# ---------------------------------------------------------------- 03: activation library


def _tanh_scales(answer) -> None:
    assert isinstance(answer, (tuple, list)) and len(answer) == 2 and None not in answer, \
        "give (alpha, beta) as two numbers"
    alpha, beta = map(float, answer)
    _close(alpha, 0.5, 0.03, "the level tanh saturates at is alpha")
    _close(alpha * beta, 1.5, 0.1, "the slope at 0 of alpha * tanh(beta * x) is alpha * beta")


def _dead_fraction(fn: Callable) -> None:
    z = torch.linspace(-6, 6, 1201)
    for name in ("relu", "relu6", "hardswish", "elu", "tanh", "symlog"):
        x = z.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(get_op(name)(x).sum(), x)
        _close(fn(name, z), float((grad.abs() < 1e-6).float().mean()), 1e-3,
               f"{name}: fraction of the inputs with |f'(z)| < 1e-6")


def _symexp_flat(answer) -> None:
    assert answer is not None, "give a number"
    _close(answer, 20.0, 0.5, "|x| beyond which symexp's gradient is exactly 0 (look at SYMEXP_CLAMP)")


# ---------------------------------------------------------------- 04: LAHC


def _accepts(fn: Callable) -> None:
    assert bool(fn(50.0, 60.0, 45.0)), (
        "the worked example: 50 is worse than the current 60 but no worse than 45 recorded L steps ago: accept")
    for f in (40.0, 45.0, 50.0, 60.0, 62.0):
        for current, late in ((60.0, 45.0), (45.0, 60.0), (50.0, 50.0)):
            want = lahc_accepts(f, current, late)
            assert bool(fn(f, current, late)) == want, (
                f"candidate {f}, current {current}, late {late}: should {'' if want else 'not '}be accepted "
                "(ties count as no worse)")


def reference_decisions(start: float, candidates: list[float], history: int) -> list[bool]:
    """LAHC's accept/reject decisions for a sequence of candidate fitnesses (the kit's `lahc` loop)."""
    current, late, out = start, [start] * history, []
    for step, fitness in enumerate(candidates, start=1):
        slot = step % history
        accepted = lahc_accepts(fitness, current, late[slot])
        if accepted:
            current = fitness
        late[slot] = current  # recorded after the decision
        out.append(accepted)
    return out


def _decisions(fn: Callable) -> None:
    rng = np.random.default_rng(3)
    for history in (1, 3, 5):
        for _ in range(20):
            cands = [float(v) for v in rng.integers(0, 10, 12)]
            want = reference_decisions(5.0, cands, history)
            got = [bool(v) for v in fn(5.0, cands, history)]
            assert got == want, (f"L = {history}, start 5, candidates {cands}: expected {want}, got {got} (slot = "
                                 "step % L; write the current fitness into the slot after deciding)")


# ---------------------------------------------------------------- 05: alpha and beta


def _fold(fn: Callable) -> None:
    from .activations import get_alpha_beta

    g = torch.Generator().manual_seed(4)
    model = build_model("lenet5", seed=4)
    for act in model.acts.values():
        act.alpha.data, act.beta.data = torch.rand((), generator=g) * 2 + 0.2, torch.rand((), generator=g) * 2 + 0.2
    x = torch.rand(8, 1, 28, 28, generator=g)
    with torch.no_grad():
        want = model(x)
        folded = fn(model)
        got = folded(x)
    assert folded is not model, "return a new model (copy.deepcopy(model)), leave the original as it is"
    scales = get_alpha_beta(folded)
    assert all(abs(a - 1) < 1e-6 and abs(b - 1) < 1e-6 for a, b in scales.values()), \
        f"every alpha and beta of the folded model should be 1, got {scales}"
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5), (
        "the folded model computes other logits: relu's alpha * beta multiplies the layer's output, so it goes into "
        "the NEXT layer's weight (conv1's into conv2, conv2's into fc1, fc1's into fc2, fc2's into fc3)")


def _sgd_shrink(fn: Callable) -> None:
    for lr, wd, momentum, steps in ((1e-3, 5e-4, 0.9, 5880), (1e-3, 1e-2, 0.9, 5880), (1e-2, 1e-2, 0.0, 500),
                                    (1e-2, 1e-3, 0.5, 2000)):
        p = torch.nn.Parameter(torch.tensor(1.0))
        opt = torch.optim.SGD([p], lr=lr, momentum=momentum, weight_decay=wd)
        for _ in range(steps):
            opt.zero_grad()
            (0.0 * p).backward()
            opt.step()
        got = fn(lr, wd, momentum, steps)
        assert got is not None and math.isclose(float(got), p.item(), rel_tol=0.01), (
            f"lr {lr:g}, wd {wd:g}, momentum {momentum:g}, {steps} steps: SGD leaves {p.item():.4f}, you predict "
            f"{float(got):.4f}" + ("; momentum m sums the decay over about 1 / (1 - m) steps" if momentum else ""))


# ---------------------------------------------------------------- 06: HPO


def _top_third(fn: Callable) -> None:
    for scores in ([10.0, 30.0, 20.0], [5.0, 1.0, 9.0, 7.0, 3.0, 8.0], [1.0, 2.0], [4.0, 4.0, 4.0, 1.0, 9.0, 2.0,
                                                                                    8.0, 3.0, 7.0]):
        n = max(1, len(scores) // 3)
        want = set(sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:n])
        got = set(fn(scores))
        assert got == want, (f"scores {scores}: the top third (at least one, {n} here) are trials {sorted(want)}, "
                             f"got {sorted(got)}")


def _optuna_objective(fn: Callable) -> None:
    import optuna

    try:  # one call on a fixed trial first: an unanswered objective stops here, before Optuna logs a failure
        fn(optuna.trial.FixedTrial({"lr": 10 ** -2.5}))
    except ValueError as err:
        raise AssertionError(f"suggest one parameter called 'lr' ({err})") from None
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(fn, n_trials=30)
    assert "lr" in study.best_params, "suggest a parameter called 'lr' (trial.suggest_float('lr', ..., log=True))"
    lr = study.best_params["lr"]
    assert 1e-4 <= lr <= 1e-1, "search lr in [1e-4, 1e-1]"
    assert 10 ** -2.8 <= lr <= 10 ** -2.2, f"after 30 trials the best lr should be near 10^-2.5, got {lr:.2g}"


def _epochs_used(fn: Callable) -> None:
    from .shipped import shipped_runs, study_from_csv

    for seed, folder in shipped_runs("cpu").items():
        study = study_from_csv(folder / "stage2_hpo.csv")
        want = sum(len(t.intermediate_values) for t in study.trials)
        got = fn(study)
        assert got == want, (f"seed {seed}: the study trained {want} epochs in all (each trial reports once per "
                             f"epoch: count its intermediate_values), got {got}")


# ---------------------------------------------------------------- 07: reproduction


def _best_global_seed(answer) -> None:
    from .shipped import shipped_sweep

    assert isinstance(answer, (tuple, list)) and len(answer) == 2 and None not in answer, "give (seed, gain)"
    table = shipped_sweep().query("sparsity == 0.99 and pruning == 'global'")
    acc = table.pivot_table(index="seed", columns="method", values="test_accuracy")
    gains = acc["safs"] - acc["magnitude_pruning"]
    assert int(answer[0]) == int(gains.idxmax()), "not that seed: compare the SAFS gain of the three global runs"
    _close(answer[1], float(gains.max()), 0.01, "its SAFS gain (points, SAFS - MP)")


def _gain_summary(fn: Callable) -> None:
    from .results import table1
    from .runs import load_json
    from .shipped import shipped_runs

    results = {s: load_json(f / "results.json") for s, f in shipped_runs("cpu").items()}
    got = fn(results)
    assert isinstance(got, (tuple, list)) and len(got) == 2, "return (mean, std)"
    table = table1(results)
    _close(got[0], table.loc["mean", "safs_gain"], 1e-6, "mean SAFS gain")
    if math.isclose(float(got[1]), float(np.std([r["test_accuracy"]["safs"] - r["test_accuracy"]["magnitude_pruning"]
                                                for r in results.values()])), abs_tol=1e-6):
        raise AssertionError("that is the population std (ddof=0); Table 1 uses the sample std (ddof=1)")
    _close(got[1], table.loc["std", "safs_gain"], 1e-6, "std of the SAFS gain over seeds (ddof=1)")


CHECKS: dict[str, tuple[Callable, str]] = {
    "01.1": (_n_weights, "loop over model.named_modules() and count m.weight.numel() of each Conv2d and Linear"),
    "01.2": (_confusion, "cm[t, p] += 1 for every pair, or torch.bincount(k * y_true + y_pred, minlength=k * k)"),
    "02.1": (_quantile_mask, "the (1 - sparsity) quantile of |w| is close; torch.topk(|w|.flatten(), keep) is exact"),
    "02.2": (_ceiling, "share (%) of labels in the connected classes, plus the largest share among the others"),
    "03.1": (_tanh_scales, "tanh saturates at 1 and has slope 1 at 0: alpha scales both, beta only the slope"),
    "03.2": (_dead_fraction, "x = z.clone().requires_grad_(True); torch.autograd.grad(get_op(name)(x).sum(), x)"),
    "03.3": (_symexp_flat, "operator_curves('symexp', x=np.linspace(-40, 40, 801)) shows where df becomes 0"),
    "04.1": (_accepts, "accept if the candidate is no worse than the current fitness OR than the late one"),
    "04.2": (_decisions, "late = [start] * L; for step 1, 2, ...: slot = step % L, decide, then late[slot] = current"),
    "05.1": (_fold, "c = alpha * beta of a site; multiply the next layer's weight by c, set alpha = beta = 1"),
    "05.2": (_sgd_shrink, "each step multiplies p by about (1 - lr * wd / (1 - momentum))"),
    "06.1": (_top_third, "sort the indices by score, highest first, and keep max(1, n // 3)"),
    "06.2": (_optuna_objective, "lr = trial.suggest_float('lr', 1e-4, 1e-1, log=True); return -(log10(lr) + 2.5) ** 2"),
    "06.3": (_epochs_used, "sum(len(t.intermediate_values) for t in study.trials)"),
    "07.1": (_best_global_seed, "set the run browser to 99% global and step through the seeds"),
    "07.2": (_gain_summary, "gains = [r['test_accuracy']['safs'] - r['test_accuracy']['magnitude_pruning'] ...]"),
}


def check(name: str, answer: Any) -> None:
    """Check the answer to exercise `name` ("04.1", ...): print "correct" if it is right.

    An answer not given yet (None, or a function that still raises NotImplementedError)
    prints a hint instead; nothing is returned, so a notebook cell shows only the printed line.

    Args:
        name: the exercise, "<notebook>.<number>".
        answer: what the exercise asks for (a function, a number or a tuple).

    Raises:
        AssertionError: the answer is wrong; the message says how.
        ValueError: no exercise is called `name`.
    """
    if name not in CHECKS:
        raise ValueError(f"no exercise {name!r}; valid: {', '.join(CHECKS)}")
    fn, hint = CHECKS[name]
    try:
        if answer is None:
            raise NotImplementedError
        fn(answer)
    except NotImplementedError:
        print(f"exercise {name}: not answered yet. Hint: {hint}")
        return
    except AssertionError as err:
        raise AssertionError(f"exercise {name} is not right yet: {err}") from None
    print(f"exercise {name}: correct")
