"""The end-of-notebook quizzes of notebooks 01-06 and 08: three auto-checked questions each, named "<nb>.q<k>".

`exercises.check("02.q1", "b")` checks one answer, as for the exercises (07's and 09's quizzes live in
checks_07.py and checks_09.py). Answers are one letter; case, spaces and brackets do not matter ("B", " (b) ").
A wrong letter says why that option is wrong, never which one is right; None prints "not answered yet".
The questions themselves are in the notebooks' last cells; `QUESTIONS` holds their one-line topics.
"""
from __future__ import annotations

from typing import Callable

from .exercises_base import _quiz

QUESTIONS: dict[str, str] = {
    "01.q1": "which epoch train_dense returns when the validation loss rises at the end",
    "01.q2": "what a cell of the confusion matrix counts",
    "01.q3": "a gap to the paper of 3 seed standard deviations",
    "02.q1": "why 99% layer-wise pruning can cut whole classes off",
    "02.q2": "layer-wise versus global pruning at the same overall sparsity",
    "02.q3": "the accuracy ceiling with 4 of 10 classes connected",
    "03.q1": "alpha * relu(beta * x) with alpha = 2, beta = 0.5",
    "03.q2": "which operator still passes a gradient at negative inputs",
    "03.q3": "why symexp needs numerical care",
    "04.q1": "LAHC with history length L = 1",
    "04.q2": "an LAHC decision: current 70, slot 72, candidate 68",
    "04.q3": "a search whose candidates all tie",
    "05.q1": "learning alpha and beta for ReLU",
    "05.q2": "a unit whose pre-activation is negative on every input",
    "05.q3": "weight decay on alpha and beta",
    "06.q1": "what the successive-halving pruner lets through",
    "06.q2": "why the sparse network gets its own hyperparameter search",
    "06.q3": "rerunning an interrupted study stored in SQLite",
    "08.q1": "what make_searchable does to your network",
    "08.q2": "CSR storage against a dense matrix",
    "08.q3": "where global pruning removes most weights",
}

CHECKS: dict[str, tuple[Callable, str]] = {
    # ------------------------------------------------------------ 01: dense training
    "01.q1": (_quiz("b", {
        "a": "train_dense does not keep the last epoch (that is TrainConfig(select='last'))",
        "c": "the test set never chooses anything: it is only used for the reported number",
        "d": "a falling training loss with a rising validation loss is overfitting: the training loss cannot pick"}),
        "section 'Train (or load) the dense network': which split picks the epoch?"),
    "01.q2": (_quiz("c", {
        "a": "the rows are the true classes, the columns the predictions",
        "b": "the matrix is not symmetric: 4 read as 9 and 9 read as 4 are two different cells",
        "d": "the cells count images, not probabilities"}),
        "read one cell by its row (true) and its column (predicted)"),
    "01.q3": (_quiz("d", {
        "a": "3 standard deviations of the seed-to-seed spread is more than seed noise usually gives",
        "b": "the gap is larger than the seed noise, but the two runs differ in more than the seed",
        "c": "one run on each side cannot say which setup is better in general; and the budgets differ"}),
        "the spread between seeds measures the noise of one setup; what else differs between the two runs?"),
    # ------------------------------------------------------------ 02: magnitude pruning
    "02.q1": (_quiz("b", {
        "a": "fine-tuning only moves the weights the mask keeps; a unit with no kept input stays cut off",
        "c": "the dead-unit story is notebook 05's; a disconnected output unit has no weight to train at all",
        "d": "layer-wise pruning removes the same fraction in every layer, fc3 included"}),
        "fc3 has 840 weights (84 inputs x 10 classes): how many does 1% leave, and where can they be?"),
    "02.q2": (_quiz("c", {
        "a": "they remove the same NUMBER of weights but not the same weights",
        "b": "that is layer-wise pruning: the same fraction in every layer",
        "d": "global pruning ranks every |w| of the network together, whatever layer it is in"}),
        "global pruning sorts all |w| of the network together"),
    "02.q3": (_quiz("b", {
        "a": "a class whose output unit sees no input still gets a constant logit: one such class can win",
        "c": "fine-tuning cannot reconnect a class: the mask is fixed",
        "d": "the connected classes can all be right; only the other classes are lost"}),
        "the ceiling = the share of images in connected classes + the largest share among the others"),
    # ------------------------------------------------------------ 03: activation library
    "03.q1": (_quiz("a", {
        "b": "alpha multiplies the output, beta the input: for relu both factors come out together",
        "c": "relu(c * x) = c * relu(x) for c >= 0, so nothing flips",
        "d": "beta > 0 keeps the kink at 0; only the slope alpha * beta matters"}),
        "relu is positively homogeneous: alpha * relu(beta * x) = alpha * beta * relu(x) when beta > 0"),
    "03.q2": (_quiz("c", {
        "a": "relu'(z) = 0 for every z < 0",
        "b": "relu6 is relu clipped at 6: its derivative is 0 for z < 0 too",
        "d": "one of them has a derivative that is small but not zero left of 0"}),
        "look at the derivative panels left of 0"),
    "03.q3": (_quiz("a", {
        "b": "symexp(0) = 0 is computed without any division",
        "c": "symexp is differentiable everywhere; the care is about the size of exp(|x|)",
        "d": "the care is about inf and nan, not speed"}),
        "exp(|x|) - 1 for |x| = 100: what does float32 give?"),
    # ------------------------------------------------------------ 04: LAHC
    "04.q1": (_quiz("b", {
        "a": "LAHC never ignores the fitness: it only accepts no-worse moves, whatever L is",
        "c": "simulated annealing accepts worse moves at random with a temperature; LAHC has no randomness in "
             "its rule",
        "d": "LAHC tries one neighbour per step, not all vectors"}),
        "with L = 1 the slot holds the current fitness itself"),
    "04.q2": (_quiz("c", {
        "a": "68 is worse than the current 70, so the first test fails",
        "b": "68 is also worse than the 72 in its slot, so the late test fails too",
        "d": "the rule has no randomness: the same three numbers always give the same decision"}),
        "accept when the candidate is no worse than the current fitness OR no worse than the slot's value"),
    "04.q3": (_quiz("c", {
        "a": "the search returns the best vector seen, and with all ties nothing is better than the first",
        "b": "the search is deterministic given its seed, and its return is the best seen, not the last accepted",
        "d": "ties are accepted (no worse), so the search does move; but it returns the best vector it saw"}),
        "which vector is 'the best seen so far' when every vector ties with the start?"),
    # ------------------------------------------------------------ 05: alpha and beta
    "05.q1": (_quiz("b", {
        "a": "for relu, alpha * relu(beta * x) = alpha * beta * relu(x): the next layer's weights can absorb it",
        "c": "scaling a relu's input by beta > 0 does not change its sign: a dead unit stays dead",
        "d": "weight decay shrinks parameters towards 0; learning scales is a different thing"}),
        "exercise 05.1 folds the scales into the next layer and gets the same logits"),
    "05.q2": (_quiz("a", {
        "b": "relu'(z) is exactly 0 for z < 0, not small",
        "c": "Swish's derivative is not zero for z < 0, so the unit keeps a (small) gradient",
        "d": "a constant output for every input carries no information about the class"}),
        "relu'(z) for z < 0, against swish'(z) for z < 0"),
    "05.q3": (_quiz("a", {
        "b": "decay subtracts a multiple of the parameter: it pulls towards 0, never away",
        "c": "the search does not require decay on the scales; the kit puts them in a group without it",
        "d": "under Adam the decay term acts on every step; with a small gradient it can dominate"}),
        "what does a pull towards 0 do to f(x) = alpha * op(beta * x)?"),
    # ------------------------------------------------------------ 06: HPO
    "06.q1": (_quiz("b", {
        "a": "the pruner stops most trials after their first epoch: that is where the saving comes from",
        "c": "the pruner is deterministic: it compares scores, it does not draw",
        "d": "it keeps the best, not the worst"}),
        "reduction factor 3: each rung keeps about a third of the trials seen so far"),
    "06.q2": (_quiz("a", {
        "b": "the dense hyperparameters are known: they are the paper's (notebook 01's TrainConfig)",
        "c": "the search costs time; it does not save any",
        "d": "the pruning mask is fixed: no hyperparameter changes which weights are kept"}),
        "the paper's section 1 names fine-tuning with the dense net's hyperparameters as a cause of lost accuracy"),
    "06.q3": (_quiz("b", {
        "a": "the SQLite file keeps every finished trial: nothing is redone",
        "c": "loading an existing study by name is what load_if_exists does",
        "d": "the study has a trial budget in all, not per call"}),
        "a study in a SQLite file is found again by its name"),
    # ------------------------------------------------------------ 08: your own model
    "08.q1": (_quiz("a", {
        "b": "make_searchable trains nothing: search does, later",
        "c": "it prunes nothing either: magnitude pruning is the first step of search",
        "d": "the export to ONNX comes after the search"}),
        "section on make_searchable: what does each activation become?"),
    "08.q2": (_quiz("b", {
        "a": "CSR stores only the kept values, with their column indices and the row pointers",
        "c": "at high sparsity the kept values and their indices take far less room than every value",
        "d": "a CSR value is as precise as a dense one: it is the same float32"}),
        "exercise 08.1: bytes of values + column indices + row pointers, against 4 bytes per entry"),
    "08.q3": (_quiz("d", {
        "a": "global pruning does not split the sparsity evenly: it ranks all |w| together",
        "b": "the first layer is not removed first; what matters is the size of its weights",
        "c": "a layer's size alone does not decide it: a big layer with large weights keeps them"}),
        "global pruning removes the smallest |w| of the network, wherever they are"),
}
