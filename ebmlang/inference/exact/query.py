"""Exact queries on a model's discrete latent variables given its observed ones:
marginals, log Z, the minimum and independent joint draws, batched over observations.

The model is tabulated (tabulate.py: the tables are its own energies), turned into a
forest or a junction tree (junction.py) and solved by the level passes on the model's
backend (program.py).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ebmlang.errors import EbmError, check_real_number, check_whole_number
from ebmlang.graph.values import batch_rows, check_observed
from ebmlang.inference.exact.junction import ForestForm, exact_form
from ebmlang.inference.exact.program import ForestProgram


@dataclass(frozen=True)
class Marginals:
    """Exact answers for the latent discrete variables (a leading batch axis [B] on every
    array when the observations were a batch).

    probs:   group -> [*shape, K] probability of each value (in `values[group]` order)
    values:  group -> [K] the values the last axis of probs stands for
    log_z:   log sum over latent states of exp(-beta E), observed values fixed
    draws:   group -> [S, *shape] independent exact draws (when asked for)
    method:  how it was computed, e.g. "exact: tree sum-product, width 1 (a chain ...)"
    mode / mode_energy: the minimum-energy state and its energy (max-product, computed
    when first read)
    """

    probs: dict
    values: dict
    log_z: np.ndarray | float
    method: str
    draws: dict = field(default_factory=dict)
    solve_mode: Callable | None = field(default=None, repr=False, compare=False)

    def mean(self, group: str) -> np.ndarray:
        """The expected value of each variable of `group`."""
        return self.probs[group] @ self.values[group].astype(float)

    @cached_property
    def _mode(self) -> tuple[dict, np.ndarray | float]:
        return self.solve_mode()

    @property
    def mode(self) -> dict:
        return self._mode[0]

    @property
    def mode_energy(self) -> np.ndarray | float:
        return self._mode[1]


def exact_answers(model, observed=None, *, beta: float = 1.0, draws: int = 0, seed: int = 0) -> Marginals:
    """Marginals, log Z, the mode and (with `draws`) exact joint draws of the latent
    discrete variables given `observed` (every continuous variable must be observed)."""
    check_real_number("beta", beta, positive=True)
    check_whole_number("draws", draws, 0)
    form, index, batched = exact_model_form(model, observed)
    program = ForestProgram(model.backend, form, beta, memo=model.compiled.memo)
    kmax = int(index.num_labels.max()) if index.total else 1
    graph = model.graph
    marginals = form.variable_marginals(program.node_marginals(), kmax)
    sampled = form.variable_labels(program.sample(model.backend.key(int(seed)), draws)) if draws else None
    values = {g: graph.variables[g].domain.values.astype(np.int64) for g in index.groups}
    parts = {g: slice(index.offsets[g], index.offsets[g] + index.sizes[g]) for g in index.groups}
    shapes = {g: graph.variables[g].shape for g in index.groups}
    probs, drawn = {}, {}
    for g in index.groups:
        k = len(values[g])
        probs[g] = marginals[:, parts[g], :k].reshape((-1,) + shapes[g] + (k,))
        if sampled is not None:
            drawn[g] = values[g][sampled[:, :, parts[g]]].reshape((-1, draws) + shapes[g])
    log_z = program.log_partition()

    def solve_mode():
        node_labels, energy = program.minimum()
        labels = form.variable_labels(node_labels)
        mode = {g: values[g][labels[:, parts[g]]].reshape((-1,) + shapes[g]) for g in index.groups}
        return ({g: v[0] for g, v in mode.items()}, float(energy[0])) if not batched else (mode, energy)

    if not batched:
        probs, drawn = {g: v[0] for g, v in probs.items()}, {g: v[0] for g, v in drawn.items()}
        log_z = float(log_z[0])
    return Marginals(probs, values, log_z, form.describe(), drawn, solve_mode)


def exact_model_form(model, observed) -> tuple[ForestForm, object, bool]:
    """(the ForestForm of the model's latent discrete part per observed row, the latent
    index, whether a batch was passed); a located error when there is none."""
    from ebmlang.inference.discrete_map.tree_dp import rooted_forest
    from ebmlang.inference.exact.tables import NotPairwise, PairwiseTables
    from ebmlang.inference.plan import unobserved_continuous_error
    from ebmlang.inference.tabulate import tabular_status, tabulate_rows

    graph = model.graph
    obs = check_observed(graph, observed, source=graph.source)
    batched = any(np.shape(v) != tuple(graph.variables[k].shape) for k, v in (observed or {}).items())
    continuous = [k for k, v in graph.variables.items() if not v.domain.is_discrete and k not in obs]
    if continuous:
        raise unobserved_continuous_error(continuous, "exact marginals")
    context = {k: model.backend.asarray(v) for k, v in obs.items()}
    count = batch_rows(obs, "observed batches")
    status = tabular_status(graph, tuple(obs))
    if not status.tabular:
        raise EbmError(f"exact inference does not fit: {status.why_not}",
                       hint="sample(...) estimates marginals; argmin(method='annealing') finds a low state")
    try:
        tables = model.compiled.memo(("pairwise tables", tuple(sorted(obs))),
                                     lambda: PairwiseTables(model.compiled, tuple(sorted(obs)), model.budget))
    except NotPairwise:
        tables = None
    if tables is not None and tables.num_variables == 0:
        raise EbmError("the model has no latent discrete variables to sum over",
                       hint="every discrete variable is observed; energy(...) gives the answer")
    forest = rooted_forest(tables.num_variables, tables.edges) if tables is not None else None
    if forest is not None:
        unary, pairwise, constant = tables.build(context, model.params, count)
        ops = model.backend.ops
        unary = ops.broadcast_to(unary, (count,) + tuple(unary.shape[1:]))
        constant = model.backend.to_numpy(ops.broadcast_to(constant, (count,))).astype(np.float64)
        return ForestForm(unary, tables.edges, pairwise, constant, forest, 1, tables.num_variables), \
            tables.index, batched
    rows, index = tabulate_rows(model.compiled, model.params, context, observed=tuple(obs), budget=model.budget)
    if index.total == 0:
        raise EbmError("the model has no latent discrete variables to sum over",
                       hint="every discrete variable is observed; energy(...) gives the answer")
    form = exact_form(rows, model.budget)
    if isinstance(form, str):
        raise EbmError(f"exact inference does not fit: {form}",
                       hint="sample(...) estimates marginals; argmin(...) still finds the mode")
    return form, index, batched
