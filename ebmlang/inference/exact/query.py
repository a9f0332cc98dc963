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

from ebmlang.budget import as_budget
from ebmlang.errors import EbmError, check_real_number, check_whole_number, did_you_mean
from ebmlang.graph.values import batch_rows, check_observed
from ebmlang.inference.discrete_argmin import proven_infeasible
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
    exact:   False for loopy BP's approximation (then log_z is the Bethe estimate and info
             has, per row, iterations, converged and the last message change)
    mode / mode_energy: the minimum-energy state and its energy (max-product, or argmin's
    dispatch after loopy BP; computed when first read)
    """

    probs: dict
    values: dict
    log_z: np.ndarray | float
    method: str
    draws: dict = field(default_factory=dict)
    solve_mode: Callable | None = field(default=None, repr=False, compare=False)
    exact: bool = True
    info: dict = field(default_factory=dict)

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


MARGINAL_METHODS = ("exact", "bp")


def exact_answers(model, observed=None, *, beta: float = 1.0, draws: int = 0, seed: int = 0,
                  method: str | None = None, damping: float = 0.5, iters: int = 200, tol: float = 1e-6) -> Marginals:
    """Marginals, log Z, the mode and (with `draws`) exact joint draws of the latent
    discrete variables given `observed` (every continuous variable must be observed).

    method: None (exact when a tree or junction tree fits the budget, else loopy BP for a
    pairwise model), "exact", or "bp" (loopy sum-product with `damping`, `iters`, `tol`)."""
    check_real_number("beta", beta, positive=True)
    check_whole_number("draws", draws, 0)
    if method is not None and method not in MARGINAL_METHODS:
        raise EbmError(f"unknown method {method!r} for marginals", expected="'exact' or 'bp'",
                       hint=did_you_mean(str(method), MARGINAL_METHODS))
    if check_real_number("damping", damping, minimum=0.0) >= 1.0:
        raise EbmError(f"damping must be below 1, got {damping!r}", hint="0.5 mixes old and new messages equally")
    check_whole_number("iters", iters, 1)
    check_real_number("tol", tol, positive=True)
    if method == "bp" and draws:
        raise EbmError("loopy BP gives marginals, not joint draws",
                       hint="sample(...) draws from the model; draws= needs exact inference")
    found, index, batched, rows = model_form(model, observed, tabulated=method == "bp")
    if isinstance(found, str) and (method == "exact" or draws or rows is None or not rows[0].is_pairwise):
        raise EbmError(f"exact inference does not fit: {found}",
                       hint="sample(...) estimates marginals (and draws); argmin(...) still finds the mode"
                       + ("; method='bp' gives loopy BP's approximate marginals" if rows and rows[0].is_pairwise
                          and not draws else ""))
    if isinstance(found, str) or method == "bp":   # (draws were refused above on both paths)
        return _loopy_answers(model, observed, rows, index, batched, found if method is None else None,
                              beta=beta, damping=damping, iters=iters, tol=tol)
    form = found
    program = _program(model, form, index, beta, draws)
    log_z = program.log_partition()
    if not np.all(np.isfinite(log_z)):
        row = int(np.flatnonzero(~np.isfinite(log_z))[0])
        raise proven_infeasible(f" (observed row {row})" if batched else "",
                                "summing over every labelling exactly (log Z = -inf)")
    kmax = int(index.num_labels.max()) if index.total else 1
    marginals = form.variable_marginals(program.node_marginals(), kmax)
    sampled = form.variable_labels(program.sample(model.backend.key(int(seed)), draws)) if draws else None
    values, parts, shapes = _layout(model.graph, index)
    probs, drawn = _per_group(marginals, values, parts, shapes), {}
    if sampled is not None:
        drawn = {g: values[g][sampled[:, :, parts[g]]].reshape((-1, draws) + shapes[g]) for g in index.groups}

    def solve_mode():
        mode, energy = forest_mode(model, form, index, beta, program)
        return ({g: v[0] for g, v in mode.items()}, float(energy[0])) if not batched else (mode, energy)

    if not batched:
        probs, drawn = {g: v[0] for g, v in probs.items()}, {g: v[0] for g, v in drawn.items()}
        log_z = float(log_z[0])
    return Marginals(probs, values, log_z, form.describe(), drawn, solve_mode)


def _program(model, form: ForestForm, index, beta: float, draws: int = 0,
             what: str = "the marginals of") -> ForestProgram:
    """The passes of `form`, once what they hold is checked against the model's budget."""
    rows = form.rows if form.tables is not None else int(np.shape(form.unary)[0])
    kmax = int(index.num_labels.max()) if index.total else 1
    # per row: tables, up, outside and marginals (or the draws' noise) per node and label
    as_budget(model.budget).check(32.0 * rows * max(draws, 1) * form.forest.parent.size * (kmax + 1),
                                  f"{draws:,} joint draws of {index.total:,} variables for {rows:,} rows" if draws
                                  else f"{what} {index.total:,} variables with up to {kmax} labels for {rows:,} rows")
    return ForestProgram(model.backend, form, beta, memo=model.compiled.memo, schedule=form.schedule,
                         params=model.params)


def forest_mode(model, form: ForestForm, index, beta: float = 1.0, program: ForestProgram | None = None):
    """(the minimum-energy state per group [B, *shape], its energy [B]) by max-product."""
    node_labels, energy = (program or _program(model, form, index, beta, what="max-product over")).minimum()
    labels = form.variable_labels(node_labels)
    values, parts, shapes = _layout(model.graph, index)
    return {g: values[g][labels[:, parts[g]]].reshape((-1,) + shapes[g]) for g in index.groups}, energy


def _layout(graph, index):
    """(values, slice of the latent numbering, shape) per latent discrete group."""
    values = {g: graph.variables[g].domain.values.astype(np.int64) for g in index.groups}
    parts = {g: slice(index.offsets[g], index.offsets[g] + index.sizes[g]) for g in index.groups}
    return values, parts, {g: graph.variables[g].shape for g in index.groups}


def _per_group(marginals: np.ndarray, values, parts, shapes) -> dict:
    """[B, n, K] variable marginals -> group -> [B, *shape, K_group]."""
    return {g: marginals[:, parts[g], :len(values[g])].reshape((-1,) + shapes[g] + (len(values[g]),))
            for g in values}


def _loopy_answers(model, observed, rows, index, batched, why_not_exact, *, beta, damping, iters, tol) -> Marginals:
    from ebmlang.inference.exact.loopy import loopy_sum_product

    if not rows[0].is_pairwise:
        raise EbmError("loopy BP here takes pairwise models; a factor reads three or more latent variables",
                       hint="sample(...) estimates marginals")
    results = [loopy_sum_product(mrf, beta=beta, iters=iters, damping=damping, tol=tol) for mrf in rows]
    for row, result in enumerate(results):
        if not np.all(result.marginals.sum(axis=1) > 0.5):
            raise proven_infeasible(f" (observed row {row})" if batched else "",
                                    "loopy BP's propagation, which left a variable with no allowed label")
    values, parts, shapes = _layout(model.graph, index)
    probs = _per_group(np.stack([r.marginals for r in results]), values, parts, shapes)
    log_z = np.array([r.log_z for r in results])
    info = {"iterations": [r.iterations for r in results], "converged": [r.converged for r in results],
            "change": [r.change for r in results]}
    settled = all(info["converged"])
    method = (f"approximate: loopy sum-product BP, damping {damping:g}, "
              f"{'converged' if settled else 'NOT converged'} in at most {max(info['iterations'])} iterations"
              + (f" (exact inference does not fit: {why_not_exact})" if isinstance(why_not_exact, str) else ""))

    def solve_mode():
        found = model.argmin(observed=observed)
        state = {g: found.state[g] for g in index.groups}
        return state, found.energy

    if not batched:
        probs, log_z = {g: v[0] for g, v in probs.items()}, float(log_z[0])
        info = {k: v[0] for k, v in info.items()}
    return Marginals(probs, values, log_z, method, {}, solve_mode, exact=False, info=info)


def exact_model_form(model, observed) -> tuple[ForestForm, object, bool]:
    """(the ForestForm of the model's latent discrete part per observed row, the latent
    index, whether a batch was passed); a located error when there is none."""
    found, index, batched, _ = model_form(model, observed)
    if isinstance(found, str):
        raise EbmError(f"exact inference does not fit: {found}",
                       hint="sample(...) estimates marginals; argmin(...) still finds the mode")
    return found, index, batched


def model_form(model, observed, tabulated: bool = False):
    """(the ForestForm of the latent discrete part per observed row, or why there is none;
    the latent index; whether a batch was passed; the rows' TabularMRFs when they were
    tabulated -- always when `tabulated`, else only off the forest path)."""
    from ebmlang.inference.exact.tables import NotPairwise, pairwise_tables
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
    status = model.compiled.memo(("tabular status", tuple(sorted(obs))), lambda: tabular_status(graph, tuple(obs)))
    if not status.tabular:
        raise EbmError(f"exact inference does not fit: {status.why_not}",
                       hint="sample(...) estimates marginals; argmin(method='annealing') finds a low state")
    try:
        tables = pairwise_tables(model.compiled, obs, model.budget)
    except NotPairwise:
        tables = None
    if tables is not None and tables.num_variables == 0:
        raise EbmError("the model has no latent discrete variables to sum over",
                       hint="every discrete variable is observed; energy(...) gives the answer")
    forest = tables.forest if tables is not None else None
    if forest is not None and tabulated is False:   # the passes build the tables themselves
        form = ForestForm(None, tables.edges, None, None, forest, 1, tables.num_variables,
                          schedule=tables.schedule, tables=tables, context=context, rows=count)
        return form, tables.index, batched, None
    rows, index = tabulate_rows(model.compiled, model.params, context, observed=tuple(obs), budget=model.budget)
    if index.total == 0:
        raise EbmError("the model has no latent discrete variables to sum over",
                       hint="every discrete variable is observed; energy(...) gives the answer")
    if tabulated is True:   # loopy BP was asked for: no decomposition needed
        return "loopy BP was asked for", index, batched, rows
    return exact_form(rows, model.budget), index, batched, rows
