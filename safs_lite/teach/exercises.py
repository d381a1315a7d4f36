"""Checks for the notebooks' exercises: `check("04.1", answer)` says whether an answer is right.

Every notebook ends with two or three exercises that run in seconds to minutes on 2 CPU
cores. Each has a check here, named "<notebook>.<exercise>". A check tests the idea on
inputs the notebook does not print. It prints "correct" for a right answer; a wrong one
raises an AssertionError that says what is wrong (which case fails, a number too high or too
low, never the expected value) and, only then, gives a hint. A number rounded to 2 decimals
passes; numpy scalars, 0-d tensors and numeric strings count as numbers. An answer
not given yet (None, or a function that still raises NotImplementedError) prints "not
answered yet" without a hint, so the notebooks run top to bottom as shipped and their
stored outputs give nothing away. Sub-questions are keyword arguments, e.g.
`check("02.1", quantile_mask, conv1_keeps_at_95=8)`. The solutions, with model answers
to each notebook's "why" questions, are in notebooks/solutions/.

Example:
    >>> check("04.1", lambda fitness, current, late: fitness >= current or fitness >= late)
    exercise 04.1: correct
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import numpy as np
import torch

from ..method.activations import get_op
from ..method.lahc import lahc_accepts
from ..method.pruning import accuracy_ceiling, prune_model
from ..nets.models import build_model
from .exercises_base import _close, _given, _integer, _missing, _more_or_less, _number  # shared by every notebook's checks


# ---------------------------------------------------------------- 01: dense training


def _n_weights(fn: Callable) -> None:
    want = {"conv1": 150, "conv2": 2400, "fc1": 30720, "fc2": 10080, "fc3": 840}
    got = fn(build_model("lenet5"))
    assert isinstance(got, dict), f"return a dict layer -> count, got {type(got).__name__}"
    assert set(got) == set(want), f"expected the layers {sorted(want)}, got {sorted(got)}"
    for k in want:
        _more_or_less(_integer(got[k], k), want[k], f"{k}: your count",
                      "too many (count weights only, not biases: m.weight.numel())", "too few")


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


def _quantile_mask(fn: Callable, conv1_keeps_at_95: int | None = None) -> None:
    _given(conv1_keeps_at_95, "conv1_keeps_at_95")
    g = torch.Generator().manual_seed(1)
    for shape, sparsity in (((6, 1, 5, 5), 0.99), ((120, 256), 0.99), ((84, 120), 0.9), ((10, 84), 0.5)):
        w = torch.randn(shape, generator=g)
        got = torch.as_tensor(fn(w, sparsity))
        assert got.shape == w.shape, f"the mask should have the weight's shape {tuple(w.shape)}, got {tuple(got.shape)}"
        keep = w.numel() - round(sparsity * w.numel())
        _more_or_less(int(got.sum()), keep, f"a {tuple(w.shape)} weight at {sparsity:.0%}: your mask keeps",
                      "too many weights (round(sparsity * n) are removed)",
                      "too few weights (round(sparsity * n) are removed)")
        kept, cut = w.abs()[got.bool()], w.abs()[~got.bool()]
        assert cut.numel() == 0 or kept.min() >= cut.max(), "keep the weights with the LARGEST |w|"
    assert _integer(conv1_keeps_at_95, "conv1_keeps_at_95") == 150 - round(0.95 * 150), (
        f"conv1_keeps_at_95 = {conv1_keeps_at_95}: that is not what your quantile_mask keeps for a (6, 1, 5, 5) "
        "weight at 0.95 (run it and count)")


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


def prune_per_layer(model: torch.nn.Module, sparsities: dict[str, float]) -> torch.nn.Module:
    """Magnitude-prune each named layer of `model` (in place) by its own sparsity; layers not named stay dense."""
    from torch.nn.utils import prune

    from ..method.pruning import prunable_layers

    layers = prunable_layers(model)
    unknown = sorted(set(sparsities) - set(layers))
    if unknown:
        raise ValueError(f"no prunable layer {unknown[0]!r}; valid: {', '.join(layers)}")
    for name, sparsity in sparsities.items():
        prune.l1_unstructured(layers[name], "weight", amount=float(sparsity))
    return model


def overall_sparsity(sparsities: dict[str, float], sizes: dict[str, int]) -> float:
    """The network's sparsity when layer `name` of `sizes[name]` weights removes round(s * n) of them."""
    removed = sum(round(float(sparsities.get(name, 0.0)) * n) for name, n in sizes.items())
    return removed / sum(sizes.values())


def _per_layer(answer, model: torch.nn.Module | None = None, data=None, target: float = 0.95) -> None:
    import copy

    from ..method.pruning import prunable_layers
    from ..training.loop import evaluate

    assert model is not None and data is not None, "pass the dense model and the data: model=model, data=data"
    assert isinstance(answer, dict), f"give a dict layer -> sparsity, got {type(answer).__name__}"
    sizes = {name: m.weight.numel() for name, m in prunable_layers(model).items()}
    bad = {k: v for k, v in answer.items() if k not in sizes or not 0 <= float(v) < 1}
    assert not bad, f"{bad}: layers are {', '.join(sizes)}, each sparsity in [0, 1)"
    reached = overall_sparsity(answer, sizes)
    assert reached >= target - 1e-9, (
        f"these sparsities remove {reached:.2%} of the network's weights, short of {target:.0%}: the network's "
        "sparsity weighs each layer by its number of weights")
    mine = evaluate(prune_per_layer(copy.deepcopy(model), answer), data, "val")["accuracy"]
    uniform = evaluate(prune_model(copy.deepcopy(model), target), data, "val")["accuracy"]
    assert mine >= uniform, (
        f"your allocation's validation accuracy without fine-tuning, {mine:.2f}%, is too low: below {target:.0%} in "
        "every layer; spend the sparsity where the scan says it costs least")


# ---------------------------------------------------------------- 03: activation library


def _tanh_scales(answer, same_as_relu: Callable | None = None) -> None:
    _given(same_as_relu, "same_as_relu")
    assert isinstance(answer, (tuple, list)) and len(answer) == 2 and None not in answer, \
        "give (alpha, beta) as two numbers"
    alpha, beta = (_number(v, k) for v, k in zip(answer, ("alpha", "beta")))
    _close(alpha, 0.5, 0.03, "the level alpha * tanh(beta * x) saturates at")
    _close(alpha * beta, 1.5, 0.1, "the slope at 0 of alpha * tanh(beta * x)")
    x = torch.linspace(-5, 5, 101)
    for a, b in ((3.0, 1 / 3), (0.2, 5.0), (1.0, 1.0), (2.0, 2.0), (-1.0, -1.0), (-2.0, 0.5), (4.0, 0.25), (0.5, 1.0)):
        want = torch.allclose(a * torch.relu(b * x), torch.relu(x), atol=1e-5)
        assert bool(same_as_relu(a, b)) == want, (
            f"same_as_relu({a:g}, {b:g}) is wrong: compare {a:g} * relu({b:g} * x) with relu(x) at a "
            "negative and a positive x")


def _dead_fraction(fn: Callable) -> None:
    z = torch.linspace(-6, 6, 1201)
    for name in ("relu", "relu6", "hardswish", "elu", "tanh", "symlog"):
        x = z.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(get_op(name)(x).sum(), x)
        _close(fn(name, z), float((grad.abs() < 1e-6).float().mean()), 1e-3,
               f"{name}: fraction of the inputs with |f'(z)| < 1e-6")


def _symexp_half(answer) -> None:
    x = torch.linspace(0, 30, 30001, dtype=torch.float16)
    naive = torch.sign(x) * (torch.exp(x.abs()) - 1)
    want = float(x[torch.isinf(naive)].min())
    _close(answer, want, 0.05, "|x| beyond which the naive symexp is inf in float16")


# ---------------------------------------------------------------- 04: LAHC


def _accepts(fn: Callable) -> None:
    assert bool(fn(50.0, 60.0, 45.0)), (
        "the worked example fails: candidate 50, current 60, 45 recorded L steps ago")
    for f in (40.0, 45.0, 50.0, 60.0, 62.0):
        for current, late in ((60.0, 45.0), (45.0, 60.0), (50.0, 50.0)):
            want = lahc_accepts(f, current, late)
            assert bool(fn(f, current, late)) == want, (
                f"candidate {f:g}, current {current:g}, late {late:g}: your rule {'rejects' if want else 'accepts'} "
                "it, wrongly (ties count as no worse)")


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


def _first_wrong_step(fn: Callable, start: float, cands: list[float], history: int) -> int | None:
    want = reference_decisions(start, cands, history)
    got = [bool(v) for v in fn(start, list(cands), history)]
    assert len(got) == len(cands), f"return one decision per candidate ({len(cands)}), got {len(got)}"
    return next((step for step, (g, w) in enumerate(zip(got, want), start=1) if g != w), None)


def late_acceptances(start: float, candidates: list[float], history: int) -> list[int]:
    """The steps (1, 2, ...) LAHC accepts and hill climbing (L = 1) would reject."""
    lahc, hill = reference_decisions(start, candidates, history), reference_decisions(start, candidates, 1)
    return [step for step, (a, h) in enumerate(zip(lahc, hill), start=1) if a and not h]


def _decisions(fn: Callable, late_acceptance_step: Any = None) -> None:
    for start, cands, history in ((40.0, [48.0, 44.0, 41.0, 46.0, 39.0], 3), (10.0, [12.0, 11.0, 13.0, 10.5], 2)):
        step = _first_wrong_step(fn, start, cands, history)
        if step is not None:
            accepted = reference_decisions(start, cands, history)[step - 1]
            late_accept = step in late_acceptances(start, cands, history)
            raise AssertionError(
                f"L = {history}, start {start:g}, candidates {cands}: your decision at step {step} (candidate "
                f"{cands[step - 1]:g}) is wrong" + (": look again at a candidate worse than the current fitness but no "
                                                    "worse than its slot (a late acceptance)" if late_accept else "")
                + ("" if accepted or late_accept else ": a rejected candidate leaves the current fitness as it is"))
    rng = np.random.default_rng(3)
    for history in (1, 3, 5):
        for _ in range(20):
            cands = [float(v) for v in rng.integers(0, 10, 12)]
            step = _first_wrong_step(fn, 5.0, cands, history)
            assert step is None, (f"L = {history}, start 5, candidates {cands}: your decision at step {step} is wrong "
                                  "(slot = step % L; write the current fitness into the slot after deciding)")
    if late_acceptance_step is not None:
        text = str(late_acceptance_step).strip().lower().removeprefix("step").strip()
        step = _integer(text, "late_acceptance_step")
        want = late_acceptances(50.0, [60.0, 55.0, 45.0, 58.0], 3)[0]
        assert step == want, (
            f"late_acceptance_step = {step}: not the late acceptance of lahc_decisions(50.0, [60, 55, 45, 58], 3); "
            "find the step LAHC accepts although its candidate is worse than the current fitness")
    _missing({"late_acceptance_step": late_acceptance_step})


# ---------------------------------------------------------------- 05: alpha and beta


def _fold(fn: Callable) -> None:
    from ..method.activations import get_alpha_beta

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
        what = f"lr {lr:g}, wd {wd:g}, momentum {momentum:g}, {steps} steps: your prediction"
        got = _number(fn(lr, wd, momentum, steps), what)
        assert math.isclose(got, p.item(), rel_tol=0.01, abs_tol=0.005 + 1e-9), (
            f"{what}, {got:.4g}, is too {'high' if got > p.item() else 'low'}"
            + ("; momentum m sums the decay over about 1 / (1 - m) steps" if momentum else ""))


# ---------------------------------------------------------------- 06: HPO


def optuna_promotions(scores: list[float], reduction_factor: int = 3) -> list[bool]:
    """Which trials Optuna's SuccessiveHalvingPruner lets past the first rung, for first-epoch scores arriving
    one trial at a time (maximised; min_resource 1, as `safs_lite.run.hpo` sets it). Runs Optuna itself."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="maximize", pruner=optuna.pruners.SuccessiveHalvingPruner(
            min_resource=1, reduction_factor=reduction_factor))
        out = []
        for score in scores:
            trial = study.ask()
            trial.report(float(score), 1)
            pruned = trial.should_prune()
            study.tell(trial, None if pruned else float(score),
                       state=optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.COMPLETE)
            out.append(not pruned)
        return out
    finally:
        optuna.logging.set_verbosity(level)


def _promotions(fn: Callable) -> None:
    rng = np.random.default_rng(6)
    streams = [[5.0, 5.0, 4.0, 6.0, 6.0, 1.0, 6.0], [3.0, 1.0, 2.0, 2.0, 2.0, 3.0]]
    streams += [[float(v) for v in rng.integers(0, 6, n)] for n in (5, 9, 12, 20) for _ in range(3)]
    for scores in streams:
        want = optuna_promotions(scores)
        got = [bool(v) for v in fn(list(scores))]
        assert len(got) == len(scores), f"return one True/False per trial ({len(scores)}), got {len(got)}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert g == w, (f"scores arriving in the order {scores}: trial {i} (score {scores[i]:g}) is not "
                            f"{'promoted' if g else 'pruned'} by Optuna; "
                            f"it competes with the {i + 1} scores seen so far, its own included")


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
    from ..study.shipped import shipped_runs, study_from_csv

    for seed, folder in shipped_runs("cpu").items():
        study = study_from_csv(folder / "stage2_hpo.csv")
        want = sum(len(t.intermediate_values) for t in study.trials)
        got = _integer(fn(study), f"seed {seed}: the number of epochs")
        _more_or_less(got, want, f"seed {seed}: your count of the epochs the study trained",
                      "too many (each trial reports once per epoch: count its intermediate_values)",
                      "too few (each trial reports once per epoch: count its intermediate_values)")


# ---------------------------------------------------------------- 08: your own model


def _csr_bytes(fn: Callable) -> None:
    g = torch.Generator().manual_seed(8)
    for rows, cols, keep in ((64, 128, 0.05), (10, 64, 0.2), (300, 50, 0.01), (7, 9, 0.5)):
        dense = torch.randn(rows, cols, generator=g) * (torch.rand(rows, cols, generator=g) < keep)
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            csr = dense.to_sparse_csr()
        want = sum(t.numel() * t.element_size() for t in (csr.values(), csr.col_indices(), csr.crow_indices()))
        kept = int((dense != 0).sum())
        got = _integer(fn(rows, cols, kept), "the number of bytes")
        _more_or_less(got, want, f"a {rows} x {cols} float32 matrix with {kept} kept weights (dense: "
                      f"{4 * rows * cols} bytes): your CSR size", "too high", "too low")


def _global_keep(fn: Callable) -> None:
    from torch.nn.utils import prune

    g = torch.Generator().manual_seed(9)
    for scales, sparsity in (((0.5, 0.1, 0.3), 0.9), ((1.0, 1.0), 0.5), ((0.05, 2.0, 0.2, 1.0), 0.95)):
        weights = {f"layer{i}": torch.randn(int(n), generator=g) * s
                   for i, (s, n) in enumerate(zip(scales, torch.randint(20, 400, (len(scales),), generator=g)))}
        mods = {k: torch.nn.Linear(1, 1) for k in weights}
        for k, m in mods.items():
            m.weight = torch.nn.Parameter(weights[k].clone())
        prune.global_unstructured([(m, "weight") for m in mods.values()], prune.L1Unstructured, amount=sparsity)
        want = {k: int(m.weight_mask.sum()) for k, m in mods.items()}
        got = fn(weights, sparsity)
        case = f"layers of {[w.numel() for w in weights.values()]} weights (std {list(scales)}) at {sparsity:.0%} global"
        assert isinstance(got, dict) and set(got) == set(want), f"{case}: return a dict with one count per layer"
        for k in want:
            _more_or_less(_integer(got[k], k), want[k], f"{case}: your count for {k}", "too many kept", "too few kept")


CHECKS: dict[str, tuple[Callable, str]] = {
    "01.1": (_n_weights, "which modules hold the weights notebook 02 prunes, and which attribute is the weight?"),
    "01.2": (_confusion, "the row is the true class, the column the prediction; try it on 3 images by hand"),
    "02.1": (_quantile_mask, "count how many weights to remove first, then keep the rest by |w|; round() as "
                             "l1_unstructured does"),
    "02.2": (_ceiling, "a class whose output unit sees no input can still be predicted: how often, at best?"),
    "02.3": (_per_layer, "the scan shows which layers lose little when pruned hard: prune those harder, and "
                         "recompute the network's sparsity from the layer sizes"),
    "03.1": (_tanh_scales, "tanh itself saturates at 1 with slope 1 at 0; relu(c * x) = c * relu(x) only for c >= 0"),
    "03.2": (_dead_fraction, "autograd gives f'(z) at every z at once if you differentiate the sum of the outputs"),
    "03.3": (_symexp_half, "float16's largest finite number is 65504; solve exp(|x|) - 1 = 65504 or try torch"),
    "04.1": (_accepts, "LAHC compares the candidate with two values; hill climbing uses only one of them"),
    "04.2": (_decisions, "which slot does step k read, and when is it overwritten: before or after the decision?"),
    "05.1": (_fold, "relu is positively homogeneous: where can the factor alpha * beta go instead?"),
    "05.2": (_sgd_shrink, "with zero gradient, momentum accumulates the decay term itself; simulate a few steps"),
    "06.1": (_promotions, "Optuna keeps the best max(1, n // 3) of the n first-rung scores seen so far; ties?"),
    "06.2": (_optuna_objective, "suggest on a log scale; the value Optuna maximises should peak at lr = 10^-2.5"),
    "06.3": (_epochs_used, "each trial reports once per epoch it trained"),
    "08.1": (_csr_bytes, "CSR stores each kept value, its column index and one row pointer per row plus one; "
                         "torch uses 8-byte indices"),
    "08.2": (_global_keep, "global pruning sorts |w| of all layers together"),
}


def _register() -> None:
    """Add the checks kept in modules of their own (07 and 09: statistics and RL; the quizzes) to CHECKS."""
    from . import checks_07, checks_09, quiz

    for module in (checks_07, checks_09, quiz):
        clash = set(module.CHECKS) & set(CHECKS)
        if clash:
            raise ValueError(f"exercise names defined twice: {sorted(clash)}")
        CHECKS.update(module.CHECKS)


_register()


def check(name: str, answer: Any, **parts: Any) -> None:
    """Check the answer to exercise `name` ("04.1", ...): print "correct" if it is right.

    An answer not given yet (None, or a function that still raises NotImplementedError)
    prints "not answered yet" and nothing else; a wrong answer raises an error that says
    what is wrong and gives a hint. Nothing is returned, so a notebook cell shows only the
    printed line.

    Args:
        name: the exercise, "<notebook>.<number>".
        answer: what the exercise asks for (a function, a number or a tuple).
        **parts: sub-questions, as the exercise names them (None: not answered yet).

    Raises:
        AssertionError: the answer is wrong; the message says how, then gives a hint.
        ValueError: no exercise is called `name`.
    """
    if name not in CHECKS:
        raise ValueError(f"no exercise {name!r}; valid: {', '.join(CHECKS)}")
    fn, hint = CHECKS[name]
    try:
        if answer is None:
            raise NotImplementedError
        fn(answer, **parts)
    except NotImplementedError as missing:
        what = f" ({missing.args[0]} is still None)" if missing.args and isinstance(missing.args[0], str) else ""
        print(f"exercise {name}: not answered yet{what}")
        return
    except AssertionError as err:
        raise AssertionError(f"exercise {name} is not right yet: {err}\nHint: {hint}") from None
    print(f"exercise {name}: correct")
