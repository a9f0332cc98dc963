"""The energy of the data groups alone, for objectives that score data without sampling
(score matching, noise-contrastive estimation) and for estimates of log Z over them.

    E_obs(x) = E(x)                                   the model has no other variables
    E_obs(x) = F(x) = -log sum_h exp(-E(x, h))        the others are discrete and
                                                      independent given x: summed exactly

so p(x) is proportional to exp(-E_obs(x)) either way: a Gaussian-Bernoulli RBM's visible
units are scored through its free energy, softplus of the contracted field per hidden
unit (free_energy.py). `ObservedEnergy.rows(params, state)` is pure backend code,
differentiable in the params and in the state's continuous groups.
"""
from __future__ import annotations

from collections.abc import Sequence

from ebmlang.errors import EbmError
from ebmlang.learning.exact import is_independent_set, whole_groups
from ebmlang.learning.free_energy import FreeEnergyObjective


class ObservedEnergy:
    """E_obs of the data groups `observed` (see the module docstring); `what` names the
    method in errors ("denoising score matching")."""

    def __init__(self, model, observed: Sequence[str], what: str):
        graph = model.graph
        self.compiled = model.compiled
        self.observed = tuple(observed)
        self.hidden = tuple(g for g in graph.variables if g not in self.observed)
        self.continuous = tuple(g for g in self.observed if not graph.variables[g].domain.is_discrete)
        self.free: FreeEnergyObjective | None = None
        if self.hidden:
            continuous_hidden = [g for g in self.hidden if not graph.variables[g].domain.is_discrete]
            units = whole_groups(graph, self.hidden)
            if continuous_hidden or not is_independent_set(graph, units):
                variable = graph.variables[(continuous_hidden or list(self.hidden))[0]]
                raise EbmError(
                    f"{what} scores the data through its energy with the other variables summed out, "
                    f"but '{variable.name}' cannot be summed exactly"
                    + (" (it is continuous)" if continuous_hidden else
                       " (the groups without data are not independent given the data)"),
                    variable.span, source=graph.source or None,
                    hint="give data for every variable, or use method='pcd' (sampled negatives), which "
                         "handles any hidden variables")
            self.free = FreeEnergyObjective(model.compiled, units)
            if not self.free.usable:
                variable = graph.variables[self.hidden[0]]
                raise EbmError(f"{what} needs a finite energy for every value of '{variable.name}' "
                               "(a hard constraint can forbid the reference value)", variable.span,
                               source=graph.source or None, hint="use method='pcd'")
        self.energy = model.compiled.energy_kernel()

    def rows(self, params, state):
        """E_obs per row [batch] of the backend `state` (the data groups)."""
        if self.free is not None:
            return self.free.rows(params, state)
        return self.energy(self.compiled.arrays, state, params)

    @property
    def description(self) -> str:
        if self.free is None:
            return "the energy of the data"
        summed = ", ".join(self.free.summed.members)
        return f"the free energy of the data, {summed} summed out exactly"
