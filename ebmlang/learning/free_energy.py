"""Free energies of rows with an independent set summed out, and their gradient, in one
backend pass (no numpy round trip, no argmin, no second forward).

For an independent set S (no factor holds two of its variables) the energy given the rest
is a sum of per-variable tables e_u(k), exact up to a constant per variable, so

    F(rest) = -log sum_{x_S} exp(-E) = E(x_S = v0) - sum_{u in S} log sum_k exp(e_u(v0) - e_u(k)),

at the reference labelling v0 (every variable at the domain's first value). With v0 = 0 and
S whole groups, every product term with a value of S as a factor vanishes at the
reference and is not evaluated: an RBM's free energy given v is its visible biases minus
sum_k softplus(v @ W + c)_k, one contraction and its gradient.

`FreeEnergyObjective(params, state, weights, regs)` returns the per-row free energies and
the gradient of sum_b (weights_b F_b + regs_b F_b^2): the phases of maximum likelihood that
sum the same set, stacked into one batch (data rows +1/B, chain rows -1/C).
"""
from __future__ import annotations

import numpy as np

from ebmlang.learning.exact import VariableSet


class FreeEnergyObjective:
    """One phase estimator's free energies and parameter gradient (see the module docstring).

    usable: False when some summed table may hold +inf (a hard constraint, a log): the
    reference label could then be forbidden, and callers use `sum_out`'s argmin reference."""

    def __init__(self, compiled, summed: VariableSet):
        self.compiled = compiled
        self.summed = summed
        graph, backend = compiled.graph, compiled.backend
        self.blocks = {g: compiled.gibbs_block(g, ix) for g, ix in summed.members.items()}
        self.usable = not any(block.plan.may_be_infinite() for block in self.blocks.values())
        self.reference = {g: float(graph.variables[g].domain.values[0]) for g in summed.members}
        whole = {g for g, ix in summed.members.items() if len(ix) == graph.variables[g].size}
        self.zero_groups = frozenset(g for g in whole if self.reference[g] == 0.0)
        self.whole = frozenset(whole)
        self.energy = compiled.energy_kernel(self.zero_groups)
        self.shapes = {g: graph.variables[g].shape for g in summed.members}
        # A whole group's stand-in, broadcast to each batch: one value, never read.
        self.reference_arrays = {g: backend.ops.zeros((1,) * (1 + len(self.shapes[g]))) + self.reference[g]
                                 for g in self.whole}
        # Once per graph and set: a later fit reuses the jitted pass (no retracing).
        key = ("free energy objective",) + tuple((g, ix.tobytes()) for g, ix in summed.members.items())
        self.value_aux_and_grad = compiled.memo(key, lambda: backend.value_aux_and_grad(self._objective))

    def rows(self, params, state):
        """F per row [batch] (backend, differentiable in params)."""
        backend, ops = self.compiled.backend, self.compiled.backend.ops
        state = dict(state)
        batch = max([v.shape[0] for g, v in state.items() if g not in self.whole]
                    or [v.shape[0] for v in state.values()] or [1])
        for g, ix in self.summed.members.items():
            if g in self.whole:  # its values are never read: callers may leave it out
                state[g] = ops.broadcast_to(self.reference_arrays[g], (batch,) + self.shapes[g])
            else:
                filled = ops.zeros((state[g].shape[0], len(ix))) + self.reference[g]
                state[g] = backend.set_flat(state[g], ix, filled)
        free = self.energy(self.compiled.arrays, state, params)
        for block in self.blocks.values():
            if len(block.plan.values) == 2:  # log(1 + exp(e(v0) - e(v1))): softplus of the gap
                per_unit = ops.softplus(block.gap(state, params))
            else:
                table = block.by_value(state, params)  # [batch, K, n]
                per_unit = ops.logsumexp(table[:, :1] - table, axis=1)
            free = free - ops.sum(per_unit, axis=-1)
        return free

    def _objective(self, params, state, weights, regs):
        return weighted_levels(self.compiled.backend.ops, self.rows(params, state), weights, regs)

    def __call__(self, params, state, weights: np.ndarray, regs: np.ndarray) -> tuple[np.ndarray, dict]:
        """(F per row as numpy float64, gradient of sum_b weights_b F_b + regs_b F_b^2) for
        backend `state` arrays: the phases of one step that sum the same set, stacked."""
        backend = self.compiled.backend
        regs = None if not np.any(regs) else backend.asarray(regs)
        _, free, grads = self.value_aux_and_grad(dict(params), state, backend.asarray(weights), regs)
        return np.asarray(backend.to_numpy(free), dtype=np.float64), grads


class EnergyObjective:
    """The plain energy as a phase estimator of `stacked_phases` (nothing summed out): for
    chains of continuous groups, whose rows' levels are their energies. Pure backend
    code, for the fused scan (fused.py); the step-by-step path weights these states itself
    (`WeightedStates`), which keeps them at hand to locate a non-finite term."""

    whole = frozenset()

    def __init__(self, compiled):
        self.compiled = compiled
        self.energy = compiled.energy_kernel()
        # Once per graph: a later fit reuses the jitted pass (no retracing).
        self.value_aux_and_grad = compiled.memo(("energy objective",),
                                                lambda: compiled.backend.value_aux_and_grad(self._objective))

    def rows(self, params, state):
        """E per row [batch] (backend, differentiable in params)."""
        return self.energy(self.compiled.arrays, state, params)

    def _objective(self, params, state, weights, regs):
        return weighted_levels(self.compiled.backend.ops, self.rows(params, state), weights, regs)


def weighted_levels(ops, levels, weights, regs):
    """(sum_b weights_b L_b + regs_b L_b^2, the levels L): a phase objective's value."""
    weighted = weights * levels if regs is None else weights * levels + regs * levels * levels
    return ops.sum(weighted), levels


def stacked_phases(objectives, estimators, params, energy_reg: float):
    """Free energies and gradients of the phase estimators `estimators` -- (rows, set key,
    share) each -- that have an objective in `objectives` (set key -> FreeEnergyObjective),
    the rows of those summing one set stacked into one pass with weights share / rows.

    Returns (levels, gradients): per estimator its F per row as a backend array (None for
    one without an objective), and one gradient dict per pass. Pure backend code: the
    step-by-step path and the fused scan (fused.py) both call it.
    """
    levels: list = [None] * len(estimators)
    by_set: dict = {}
    for number, (_, key, _) in enumerate(estimators):
        if key in objectives:
            by_set.setdefault(key, []).append(number)
    gradients = []
    for key, members in by_set.items():
        objective = objectives[key]
        ops = objective.compiled.backend.ops
        parts = [estimators[n][0] for n in members]
        sizes = [max(v.shape[0] for v in part.values()) for part in parts]
        # Whole summed groups are set to the reference in `rows`: not stacked.
        rows = parts[0] if len(parts) == 1 else {
            g: ops.concatenate([ops.broadcast_to(p[g], (size,) + tuple(p[g].shape[1:]))
                                for p, size in zip(parts, sizes)], 0)
            for g in parts[0] if g not in objective.whole}
        shares = np.concatenate([np.full(size, estimators[n][2] / size) for n, size in zip(members, sizes)])
        backend = objective.compiled.backend
        _, free, grads = objective.value_aux_and_grad(dict(params), rows, backend.asarray(shares),
                                                      backend.asarray(energy_reg * np.abs(shares))
                                                      if energy_reg else None)
        gradients.append(grads)
        offsets = np.cumsum([0] + sizes)
        for number, start, stop in zip(members, offsets[:-1], offsets[1:]):
            levels[number] = free[start:stop]
    return levels, gradients
