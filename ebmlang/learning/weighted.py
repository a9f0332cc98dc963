"""What every objective hands to `fit`: states with gradient weights (`WeightedStates`),
and the helpers objectives share to build them.

Every gradient learning needs here is a weighted sum of energy gradients (and, where
independent units are summed out, of free-energy gradients),

    grad L = sum_m w_m dE(state_m)/dtheta + sum_b u_b dF(row_b)/dtheta,

so `weighted_gradient` makes one weighted `grad_params` call plus one
`FreeEnergyGradient` call per summed part -- the same on torch and JAX.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ebmlang.learning.exact import FreeEnergyGradient, Summed


@dataclass
class FreeEnergyRows:
    """Rows whose free energies (an independent set summed out) enter the gradient:
    sum_b weights[b] * dF(row_b)/dtheta."""

    gradient: FreeEnergyGradient
    summed: Summed
    weights: np.ndarray


@dataclass
class WeightedStates:
    """states: numpy {group: [M, *shape]}; weights [M]: the gradient is
    sum_m weights[m] * dE(state_m)/dtheta, plus that of each `free` part, plus each of
    `grads` (gradients an estimator computed itself, e.g. FreeEnergyObjective's);
    loss: the objective's value on the batch."""

    states: dict
    weights: np.ndarray
    loss: float
    stats: dict = field(default_factory=dict)
    free: list[FreeEnergyRows] = field(default_factory=list)
    grads: list[dict] = field(default_factory=list)


def weighted_gradient(model, weighted: WeightedStates) -> dict:
    """The parameter gradient a `WeightedStates` stands for (backend arrays by name)."""
    bk = model.backend
    parts = []
    if len(weighted.weights):
        states = {g: bk.asarray(v) for g, v in weighted.states.items()}
        parts.append(model.compiled.grad_params(states, model.params, weights=bk.asarray(weighted.weights)))
    parts += [rows.gradient(model.params, rows.summed, rows.weights) for rows in weighted.free] + weighted.grads
    return add_gradients(parts) if parts else None


def add_gradients(parts: list[dict]) -> dict:
    """The sum of gradient dicts with the same names."""
    total = parts[0]
    for part in parts[1:]:
        total = {name: total[name] + part[name] for name in total}
    return total


def concat_states(parts) -> dict:
    return {g: np.concatenate([p[g] for p in parts]) for g in parts[0]}


def energies_of(compiled, params, states: Mapping[str, np.ndarray]) -> np.ndarray:
    backend = compiled.backend
    energy = compiled.energy({g: backend.asarray(v) for g, v in states.items()}, params)
    return backend.to_numpy(energy).astype(np.float64)


def backend_state(bk, state: Mapping) -> dict:
    return {g: bk.asarray(v) for g, v in state.items()}


def numpy_state(backend, state: Mapping) -> dict:
    return {g: np.asarray(backend.to_numpy(v), dtype=np.float64) for g, v in state.items()}


def phase_weights(mix: np.ndarray, level: np.ndarray, sign: float, energy_reg: float) -> np.ndarray:
    """Gradient weights [B * R] of one phase: example b has R rows with mixture weights
    mix[b] (summing to 1, so the rows average to its energy or free energy level[b]);
    the phase contributes sign * mean_b level_b + energy_reg * mean_b level_b^2."""
    return (mix * (sign + 2.0 * energy_reg * level[:, None]) / mix.shape[0]).reshape(-1)
