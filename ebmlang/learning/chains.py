"""Moving states for learning: block Gibbs and short-run Langevin, alternating, with
some groups clamped; and exact expectations over independent discrete units.

`ChainSampler(model, clamped)` advances a batch of full states: one chromatic Gibbs
sweep over the free discrete groups, then `steps` short-run Langevin (SGLD) steps on
the free continuous groups, each conditioned on the other's current values.

`expectation_states(...)` turns a batch of states into weighted states whose weighted
sum of any function that is additive over the units -- every energy and every energy
gradient, when no factor reads two units -- equals its exact expectation under
p(units | rest). This is the Rao-Blackwellised phase of RBM training (the `p(h | v)`
of Hinton's CD), written for any model with conditionally independent latent units.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import softmax

from ebmlang.errors import EbmError
from ebmlang.learning.exact import VariableSet, independent_tables, minimising_state, with_roles


@dataclass(frozen=True)
class LangevinOptions:
    """Short-run Langevin for continuous negatives (Du & Mordatch, 2019).

    steps per sweep; step_size; noise_scale (None: sqrt(2 step_size), i.e. ULA at T = 1);
    grad_clip (elementwise, None: off); buffer_size and reinit_prob of the replay buffer
    used when every free variable is continuous and chains are persistent.
    """

    steps: int = 20
    step_size: float = 0.01
    noise_scale: float | None = None
    grad_clip: float | None = None
    buffer_size: int = 10000
    reinit_prob: float = 0.05

    @property
    def noise(self) -> float:
        return float(np.sqrt(2.0 * self.step_size)) if self.noise_scale is None else float(self.noise_scale)

    @classmethod
    def from_user(cls, value) -> "LangevinOptions":
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - set(cls.__dataclass_fields__)
            if unknown:
                raise EbmError(f"unknown Langevin option(s): {', '.join(sorted(unknown))}",
                               expected=", ".join(cls.__dataclass_fields__))
            return cls(**value)
        raise EbmError("langevin= takes a dict of options or a LangevinOptions",
                       hint="langevin={'steps': 20, 'step_size': 0.01}")


class ChainSampler:
    """Gibbs sweeps over the free discrete groups alternating with short-run Langevin on
    the free continuous groups; `clamped` groups never move."""

    def __init__(self, model, clamped: Sequence[str], langevin: LangevinOptions = LangevinOptions()):
        from ebmlang import structure
        from ebmlang.inference.gibbs import build_gibbs_kernel, gibbs_blocks

        graph = model.graph
        self.model = model
        self.backend = model.backend
        self.langevin = langevin
        free = [g for g in graph.variables if g not in clamped]
        self.discrete = [g for g in free if graph.variables[g].domain.is_discrete]
        self.continuous = [g for g in free if not graph.variables[g].domain.is_discrete]
        self.gibbs = None
        if self.discrete:
            roles = with_roles(graph, clamped)
            blocks = gibbs_blocks(roles, structure.colouring(roles).classes, set(self.discrete))
            self.gibbs = self.backend.jit(build_gibbs_kernel(model.compiled, blocks, 1.0))

    @property
    def moves(self) -> bool:
        return bool(self.discrete or self.continuous)

    def potential(self, state: Mapping, params):
        from ebmlang.inference.potential import ModelPotential

        return ModelPotential(self.model.compiled, params, dict(state), self.continuous)

    def sweep(self, key, state: Mapping, params) -> dict:
        """One Gibbs sweep, then `langevin.steps` SGLD steps (backend arrays in and out)."""
        from ebmlang.inference.replay import short_run_langevin

        discrete_key, continuous_key = self.backend.split(key, 2)
        state = dict(state)
        if self.gibbs is not None:
            state, _ = self.gibbs(discrete_key, state, params)
            state = dict(state)
        if self.continuous:
            potential = self.potential(state, params)
            options = self.langevin
            position = short_run_langevin(self.backend, continuous_key, potential.pack(state), potential,
                                          options.steps, options.step_size, options.noise, options.grad_clip)
            state.update(potential.unpack(position))
        return state

    def run(self, key, state: Mapping, params, sweeps: int) -> dict:
        for sweep_key in self.backend.split(key, max(sweeps, 1))[:sweeps]:
            state = self.sweep(sweep_key, state, params)
        return dict(state)


def random_values(backend, key, graph, groups: Sequence[str], n: int) -> dict:
    """Starting values for groups without data, drawn with `key`: uniform labels, uniform
    on bounded intervals, standard normal for reals (numpy [n, *shape])."""
    out = {}
    for group_key, g in zip(backend.split(key, max(len(groups), 1)), groups):
        var = graph.variables[g]
        shape = (n,) + var.shape
        if var.domain.is_discrete:
            uniform = np.asarray(backend.to_numpy(backend.uniform(group_key, shape)), dtype=np.float64)
            labels = np.minimum((uniform * var.domain.num_values).astype(np.int64), var.domain.num_values - 1)
            out[g] = var.domain.values[labels]
        elif var.domain.kind == "bounded":
            uniform = np.asarray(backend.to_numpy(backend.uniform(group_key, shape)), dtype=np.float64)
            out[g] = var.domain.low + (var.domain.high - var.domain.low) * uniform
        else:
            out[g] = np.asarray(backend.to_numpy(backend.normal(group_key, shape)), dtype=np.float64)
    return out


# --------------------------------------------------------------------------
# Exact expectations over independent units


def expectation_size(graph, units: VariableSet) -> int:
    """Weighted states per example that `expectation_states` makes: 1 + sum_j (K_j - 1)."""
    return 1 + sum(len(ix) * (graph.variables[g].domain.num_values - 1) for g, ix in units.members.items())


def expectation_states(compiled, params, state: Mapping, units: VariableSet) -> tuple[dict, np.ndarray]:
    """States [B * R] and weights [B, R] (rows sum to 1) such that for any f additive over
    the units, sum_r w[b, r] f(state_r) = E_{p(units | rest of state b)} f.

    Writing a* for the most probable labels: f(a) = f(a*) + sum_j [f(a*_j <- a_j) - f(a*)]
    for additive f, so E f = (1 - sum_j (1 - p_j(a*_j))) f(a*) + sum_j sum_{k != a*_j}
    p_j(k) f(a* with unit j set to k). Row 0 of each example is a*, the rest single flips.
    """
    graph = compiled.graph
    backend = compiled.backend
    as_backend = {g: backend.asarray(v) for g, v in state.items()}
    tables = independent_tables(compiled, params, as_backend, units)
    numpy_state = {g: np.asarray(backend.to_numpy(v), dtype=np.float64) for g, v in state.items()}
    best = minimising_state(graph, numpy_state, tables, units)
    batch = len(next(iter(best.values())))
    parts = [{g: v[:, None] for g, v in best.items()}]
    weight_parts = []
    reference_weight = np.ones(batch)
    for g, ix in units.members.items():
        var = graph.variables[g]
        k = var.domain.num_values
        probs = softmax(-tables[g], axis=-1)  # [B, n, K]
        best_label = np.argmin(tables[g], axis=-1)  # [B, n]
        others = (best_label[..., None] + np.arange(1, k)) % k  # [B, n, K-1]
        other_probs = np.take_along_axis(probs, others, axis=-1)
        reference_weight -= other_probs.sum(axis=(1, 2))
        n_alt = len(ix) * (k - 1)
        flips = {h: np.repeat(v[:, None], n_alt, axis=1) for h, v in best.items()}
        flat = flips[g].reshape(batch, len(ix), k - 1, var.size)
        flat[np.arange(batch)[:, None, None], np.arange(len(ix))[None, :, None],
             np.arange(k - 1)[None, None, :], ix[None, :, None]] = var.domain.values[others]
        flips[g] = flat.reshape((batch, n_alt) + var.shape)
        parts.append(flips)
        weight_parts.append(other_probs.reshape(batch, n_alt))
    weights = np.concatenate([reference_weight[:, None]] + weight_parts, axis=1)
    rows = weights.shape[1]
    states = {g: np.concatenate([p[g] for p in parts], axis=1).reshape((batch * rows,) + graph.variables[g].shape)
              for g in best}
    return states, weights
