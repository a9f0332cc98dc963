"""Contrastive losses of energy-based learning (LeCun et al., 2006, "A tutorial on
energy-based learning") for models with observed X and small discrete targets Y.

Every loss is a function of the energy table E[b, s] = E(x_b, y_s) over all joint
target labellings y_s, and returns the per-example loss and its derivative with
respect to the table. The derivative is all learning needs: the parameter gradient
of the mean loss is sum_{b,s} dL/dE[b,s] * dE(x_b, y_s)/dtheta / B, which one weighted
`grad_params` call computes on the expanded batch -- on any backend.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from scipy.special import logsumexp, softmax

from ebmlang.errors import EbmError, did_you_mean
from ebmlang.graph.ir import FactorGraph
from ebmlang.learning.exact import Enumeration, enumerate_states, whole_groups

# The joint target space enumerated per example (e.g. 10 classes; 2^12 labellings).
TARGET_STATE_LIMIT = 4096

LossFunction = Callable[[np.ndarray, np.ndarray, float], tuple[np.ndarray, np.ndarray]]


def _onehot(index: np.ndarray, size: int) -> np.ndarray:
    return np.eye(size)[index]


def _most_offending(energies: np.ndarray, target: np.ndarray) -> np.ndarray:
    """argmin over the wrong labellings y != y_true (LeCun's 'most offending incorrect answer')."""
    masked = energies.copy()
    masked[np.arange(len(target)), target] = np.inf
    return np.argmin(masked, axis=1)


def energy_loss(energies, target, margin):
    """E(x, y): push the correct answer down (works only when the architecture keeps
    other energies from collapsing)."""
    rows = np.arange(len(target))
    return energies[rows, target], _onehot(target, energies.shape[1])


def perceptron_loss(energies, target, margin):
    """E(x, y) - min_y' E(x, y')."""
    rows = np.arange(len(target))
    best = np.argmin(energies, axis=1)
    size = energies.shape[1]
    return energies[rows, target] - energies[rows, best], _onehot(target, size) - _onehot(best, size)


def hinge_loss(energies, target, margin):
    """max(0, m + E(x, y) - min_{y' != y} E(x, y'))."""
    rows = np.arange(len(target))
    wrong = _most_offending(energies, target)
    value = margin + energies[rows, target] - energies[rows, wrong]
    active = (value > 0).astype(np.float64)[:, None]
    size = energies.shape[1]
    return np.maximum(value, 0.0), active * (_onehot(target, size) - _onehot(wrong, size))


def log_loss(energies, target, margin):
    """log(1 + exp(E(x, y) - min_{y' != y} E(x, y'))): a soft hinge."""
    rows = np.arange(len(target))
    wrong = _most_offending(energies, target)
    gap = energies[rows, target] - energies[rows, wrong]
    slope = 0.5 * (1.0 + np.tanh(0.5 * gap))  # sigmoid(gap), stable for large |gap|
    size = energies.shape[1]
    return np.logaddexp(0.0, gap), slope[:, None] * (_onehot(target, size) - _onehot(wrong, size))


def nll_loss(energies, target, margin):
    """E(x, y) + log sum_y' exp(-E(x, y')) = -log p(y | x), exact over the enumerated Y."""
    rows = np.arange(len(target))
    value = energies[rows, target] + logsumexp(-energies, axis=1)
    return value, _onehot(target, energies.shape[1]) - softmax(-energies, axis=1)


LOSSES: dict[str, LossFunction] = {
    "energy": energy_loss,
    "perceptron": perceptron_loss,
    "hinge": hinge_loss,
    "log": log_loss,
    "nll": nll_loss,
}


def get_loss(name: str) -> LossFunction:
    if name not in LOSSES:
        raise EbmError(f"unknown loss '{name}'", expected="one of " + ", ".join(LOSSES),
                       hint=did_you_mean(name, LOSSES))
    return LOSSES[name]


# --------------------------------------------------------------------------
# Energy tables over the target labellings


def target_groups(graph: FactorGraph, data: Mapping[str, np.ndarray], targets: Sequence[str] | None,
                  *, for_prediction: bool = False) -> tuple[str, ...]:
    """The discrete groups a loss ranks (training: latent discrete groups given in the data;
    prediction: discrete groups missing from the data)."""
    if targets is None:
        if for_prediction:
            targets = [g for g, v in graph.variables.items() if g not in data and v.domain.is_discrete]
        else:
            targets = [g for g, v in graph.variables.items()
                       if g in data and not v.observed and v.domain.is_discrete]
    targets = tuple(targets)
    if not targets:
        raise EbmError(
            "a contrastive loss needs a discrete target: a latent discrete variable with values in "
            "the data" if not for_prediction else "there is no discrete variable left to predict",
            hint="e.g. `latent y : categorical(10)` with data={'x': X, 'y': labels}")
    for g in targets:
        var = graph.variables.get(g)
        if var is None:
            raise EbmError(f"target '{g}' is not a variable of {graph.name}",
                           hint=did_you_mean(g, graph.variables))
        if not var.domain.is_discrete:
            raise EbmError(f"target '{g}' is {var.domain}; contrastive losses rank discrete answers",
                           var.span, source=graph.source or None)
    missing = [g for g in graph.variables if g not in data and g not in targets]
    if missing:
        var = graph.variables[missing[0]]
        raise EbmError(f"the data has no values for '{missing[0]}', which is neither a target nor given",
                       var.span, source=graph.source or None,
                       hint="contrastive losses need every non-target variable in the data; for "
                            "hidden variables train by maximum likelihood (loss=None)")
    return targets


def labellings_of(graph: FactorGraph, targets: Sequence[str]) -> dict[str, np.ndarray]:
    """Every joint value of the targets: {group: [S, *shape]} in enumeration order."""
    chunks = list(enumerate_states(graph, targets, max_states=TARGET_STATE_LIMIT,
                                   what="ranking the answers of a contrastive loss"))
    return {g: np.concatenate([c[g] for c in chunks]) for g in targets}


def labelling_index(graph: FactorGraph, targets: Sequence[str], values: Mapping[str, np.ndarray]) -> np.ndarray:
    """The enumeration index of each example's joint target value: int [N]."""
    enumeration = Enumeration.of(graph, whole_groups(graph, targets))
    labels = []
    for g in targets:
        var = graph.variables[g]
        flat = np.asarray(values[g]).reshape(len(values[g]), var.size)
        labels.append(np.searchsorted(var.domain.values, flat))
    return np.concatenate(labels, axis=1) @ enumeration.place


def expand(batch: Mapping[str, np.ndarray], targets: Sequence[str], labellings: Mapping[str, np.ndarray]) -> dict:
    """Every example paired with every target labelling: numpy states [B * S] (example-major)."""
    size = len(next(iter(labellings.values())))
    rows = len(next(iter(batch.values())))
    out = {g: np.repeat(v, size, axis=0) for g, v in batch.items() if g not in targets}
    for g in targets:
        out[g] = np.tile(labellings[g], (rows,) + (1,) * (labellings[g].ndim - 1))
    return out


def energy_table(compiled, params, data: Mapping[str, np.ndarray], targets: Sequence[str],
                 chunk: int = 2 ** 14) -> tuple[np.ndarray, dict]:
    """E(x_n, y_s) for every example and target labelling: ([N, S] float64, labellings)."""
    labellings = labellings_of(compiled.graph, targets)
    size = len(next(iter(labellings.values())))
    rows = len(next(iter(data.values())))
    per_chunk = max(1, chunk // size)
    backend = compiled.backend
    tables = []
    for start in range(0, rows, per_chunk):
        part = {g: v[start:start + per_chunk] for g, v in data.items()}
        states = expand(part, targets, labellings)
        energy = compiled.energy({g: backend.asarray(v) for g, v in states.items()}, params)
        tables.append(backend.to_numpy(energy).astype(np.float64).reshape(-1, size))
    return np.concatenate(tables), labellings
