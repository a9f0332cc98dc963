"""Exact sums over discrete states: enumeration in chunks, and analytic sums over
conditionally independent variables.

Two tools that evaluation and learning share:

* **Enumeration.** The joint labellings of a set of discrete ground variables are
  the integers `0 .. prod(K_i) - 1` in mixed radix; a chunk of codes decodes to
  labels (and values) in one vectorised step.
* **Independent sets.** When no factor reads two variables of a set `A`, the
  variables of `A` are independent given everything else, and

      sum_a exp(-E(d, a)) = exp(-E(d, a*)) prod_j sum_k exp(-(e_j(k) - e_j(a*_j)))

  where `e_j` is the local conditional table of variable j (one batched
  `local_conditional` call per group) and `a*` the per-variable minimising labels
  (so no `inf - inf` arises when a constraint forbids some labels). This is the RBM
  free energy, and the same identity gives exact expectations over `A`.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from ebmlang.errors import EbmError
from ebmlang.graph.ir import FactorGraph, VariableGroup

# Enumerate at most this many joint states per example (2^22: a few seconds on a CPU).
EXACT_STATE_LIMIT = 2 ** 22
# Values (states x variables) per evaluated chunk: bounds the memory of one batch.
CHUNK_VALUES = 2 ** 21


@dataclass(frozen=True)
class VariableSet:
    """Some ground variables of some discrete groups: group -> sorted flat indices."""

    members: Mapping[str, np.ndarray]

    @property
    def size(self) -> int:
        return int(sum(len(v) for v in self.members.values()))

    def log_count(self, graph: FactorGraph) -> float:
        """log of the number of joint labellings."""
        return float(sum(len(ix) * math.log(graph.variables[g].domain.num_values)
                         for g, ix in self.members.items()))

    def without(self, other: "VariableSet") -> "VariableSet":
        out = {}
        for g, ix in self.members.items():
            keep = np.setdiff1d(ix, other.members.get(g, np.zeros(0, np.int64)))
            if len(keep):
                out[g] = keep
        return VariableSet(out)


def whole_groups(graph: FactorGraph, groups: Sequence[str]) -> VariableSet:
    return VariableSet({g: np.arange(graph.variables[g].size, dtype=np.int64) for g in groups})


def with_roles(graph: FactorGraph, clamped: Sequence[str]) -> FactorGraph:
    """A copy of `graph` in which exactly the `clamped` groups are observed."""
    variables = {n: dataclasses.replace(v, observed=n in clamped) for n, v in graph.variables.items()}
    return dataclasses.replace(graph, variables=variables)


def is_independent_set(graph: FactorGraph, variables: VariableSet) -> bool:
    """True when no ground factor reads two distinct variables of the set (they are then
    independent given all other variables)."""
    if variables.size <= 1:
        return True
    member_id, offset = {}, 0
    for g, ix in variables.members.items():
        ids = np.full(graph.variables[g].size, -1, dtype=np.int64)
        ids[ix] = np.arange(len(ix)) + offset
        member_id[g] = ids
        offset += len(ix)
    for template in graph.templates:
        reads = []
        for slot in template.slots:
            if slot.group not in member_id:
                continue
            index = np.asarray(slot.index)
            ground = np.broadcast_to(index, (template.num_ground,) + index.shape[1:])
            reads.append(member_id[slot.group][ground.reshape(template.num_ground, -1)])
        if not reads:
            continue
        # Sorted ids per ground factor; -1 marks reads of variables outside the set.
        ids = np.sort(np.concatenate(reads, axis=1), axis=1)
        if np.any((ids[:, 1:] != ids[:, :-1]) & (ids[:, :-1] >= 0)):
            return False
    return True


def largest_independent_class(graph: FactorGraph, free: VariableSet) -> VariableSet:
    """The colour class of the free discrete variables (others clamped) with the most
    joint labellings: the variables to sum analytically. Empty when nothing is free."""
    if free.size == 0:
        return VariableSet({})
    from ebmlang.graph import structure

    clamped = [g for g in graph.variables if g not in free.members]
    classes = structure.colouring(with_roles(graph, clamped)).classes
    best, best_log = VariableSet({}), 0.0
    for members in classes:
        candidate = VariableSet({g: np.sort(np.asarray(ix, dtype=np.int64))
                                 for g, ix in members.items() if g in free.members and len(ix)})
        log_count = candidate.log_count(graph)
        if log_count > best_log:
            best, best_log = candidate, log_count
    return best


# --------------------------------------------------------------------------
# Enumeration


@dataclass(frozen=True)
class Enumeration:
    """Mixed-radix decoding of joint labellings of a `VariableSet`."""

    variables: VariableSet
    radix: np.ndarray  # [n] labels per variable
    place: np.ndarray  # [n] place value of each variable in the code

    @classmethod
    def of(cls, graph: FactorGraph, variables: VariableSet) -> "Enumeration":
        radix = np.concatenate([np.full(len(ix), graph.variables[g].domain.num_values, np.int64)
                                for g, ix in variables.members.items()] or [np.zeros(0, np.int64)])
        # Last variable varies fastest, like np.ndindex.
        place = np.ones_like(radix)
        if len(radix) > 1:
            place[:-1] = np.cumprod(radix[::-1])[::-1][1:]
        return cls(variables, radix, place)

    @property
    def count(self) -> int:
        return int(np.prod(self.radix)) if len(self.radix) else 1

    def labels(self, codes: np.ndarray) -> np.ndarray:
        """[len(codes), n] labels of the joint codes."""
        return (np.asarray(codes, dtype=np.int64)[:, None] // self.place[None, :]) % self.radix[None, :]

    def write(self, graph: FactorGraph, state: dict, codes: np.ndarray) -> dict:
        """`state` (numpy group arrays [len(codes), *shape]) with the set's variables
        overwritten by the values of `codes`."""
        labels = self.labels(codes)
        column = 0
        for g, ix in self.variables.members.items():
            var = graph.variables[g]
            flat = state[g].reshape(len(codes), var.size).copy()
            flat[:, ix] = var.domain.values[labels[:, column:column + len(ix)]]
            state[g] = flat.reshape((len(codes),) + var.shape)
            column += len(ix)
        return state


def reference_state(graph: FactorGraph, batch: int, groups: Sequence[str]) -> dict:
    """Every listed discrete group at its first value: numpy [batch, *shape]."""
    return {g: np.full((batch,) + graph.variables[g].shape, graph.variables[g].domain.values[0])
            for g in groups}


def chunk_size(graph: FactorGraph) -> int:
    total = sum(v.size * (v.domain.num_values or 1) for v in graph.variables.values())
    return int(np.clip(CHUNK_VALUES // max(total, 1), 64, 2 ** 16))


# --------------------------------------------------------------------------
# Analytic sums over an independent set


def independent_tables(compiled, params, state: dict, summed: VariableSet) -> dict:
    """Local conditional tables [batch, n, K] (numpy float64) of the summed variables."""
    backend = compiled.backend
    return {g: backend.to_numpy(compiled.local_conditional(g, ix, state, params)).astype(np.float64)
            for g, ix in summed.members.items()}


@dataclass(frozen=True)
class Summed:
    """An independent set summed out of a batch of states (see `sum_out`).

    state: numpy states with the summed variables at their lowest-energy labels a*;
    labels: group -> those labels [batch, n]; tables: group -> [batch, n, K];
    log_sum: log sum_a exp(-E(state, a)) per row, i.e. minus the free energy [batch].
    """

    state: dict
    labels: dict
    tables: dict
    log_sum: np.ndarray

    @property
    def finite_tables(self) -> bool:
        return all(np.all(np.isfinite(t)) for t in self.tables.values())


def sum_out(compiled, params, state: Mapping[str, np.ndarray], summed: VariableSet) -> Summed:
    """Sum the independent set `summed` out of each row of `state` (numpy, every group;
    the summed entries are ignored). -inf where every labelling is forbidden."""
    backend = compiled.backend
    graph = compiled.graph
    as_backend = {g: backend.asarray(v) for g, v in state.items()}
    tables = independent_tables(compiled, params, as_backend, summed)
    labels = {g: np.argmin(t, axis=-1) for g, t in tables.items()}
    best = dict(state)
    for g, ix in summed.members.items():
        var = graph.variables[g]
        flat = np.array(best[g], dtype=np.float64).reshape(-1, var.size)
        flat[:, ix] = var.domain.values[labels[g]]
        best[g] = flat.reshape((-1,) + var.shape)
    best_energy = backend.to_numpy(compiled.energy({g: backend.asarray(v) for g, v in best.items()},
                                                   params)).astype(np.float64)
    total = -best_energy
    for table in tables.values():
        lowest = table.min(axis=-1, keepdims=True)
        finite = np.isfinite(lowest)
        shifted = table - np.where(finite, lowest, 0.0)
        with np.errstate(invalid="ignore"):
            per_variable = np.where(finite[..., 0], logsumexp(-shifted, axis=-1), -np.inf)
        total = total + per_variable.sum(axis=-1)
    return Summed(best, labels, tables, total)


def log_sum_over(compiled, params, state: Mapping[str, np.ndarray], summed: VariableSet) -> np.ndarray:
    """log sum_a exp(-E(state, a)) over the independent set `summed`, per batch row
    ([batch] float64). `state` is numpy and must hold every group."""
    if summed.size == 0:
        backend = compiled.backend
        energy = compiled.energy({g: backend.asarray(v) for g, v in state.items()}, params)
        return -backend.to_numpy(energy).astype(np.float64)
    return sum_out(compiled, params, state, summed).log_sum


class FreeEnergyGradient:
    """d/dtheta of sum_b w_b F(state_b), F the free energy with an independent set summed out:

        F = E(a*) - sum_j log sum_k exp(e_j(a*_j) - e_j(k)),

    differentiated through the energy and the local conditional tables by the backend
    (`value_and_grad`, jitted once on JAX). Its gradient is E_{p(a | rest)}[dE/dtheta] --
    the exact hidden-unit expectation of RBM learning -- at the cost of one energy and
    one table evaluation per row, instead of one energy per hidden labelling."""

    def __init__(self, compiled, summed: VariableSet):
        self.compiled = compiled
        self.summed = summed
        self.value_and_grad = compiled.backend.value_and_grad(self._objective)

    def _objective(self, params, state, weights, labels):
        ops = self.compiled.backend.ops
        total = ops.sum(self.compiled.energy(state, params) * weights)
        for g, ix in self.summed.members.items():
            table = self.compiled.local_conditional(g, ix, state, params)
            at_best = ops.take_along_axis(table, labels[g][..., None], -1)
            total = total - ops.sum(ops.sum(ops.logsumexp(at_best - table, axis=-1), axis=-1) * weights)
        return total

    def __call__(self, params, summed: Summed, weights: np.ndarray) -> dict:
        """The gradient dict for rows already summed out by `sum_out`."""
        backend = self.compiled.backend
        state = {g: backend.asarray(v) for g, v in summed.state.items()}
        labels = {g: backend.asarray(v, backend.index_dtype) for g, v in summed.labels.items()}
        _, grads = self.value_and_grad(dict(params), state, backend.asarray(weights), labels)
        return grads


# --------------------------------------------------------------------------
# Free energies


def check_enumerable(graph: FactorGraph, free: Sequence[str], what: str) -> None:
    """An EbmError when a free group is continuous (no exact sum exists)."""
    for g in free:
        var: VariableGroup = graph.variables[g]
        if not var.domain.is_discrete:
            raise EbmError(
                f"{what} needs a sum over '{g}', which is {var.domain}: continuous variables "
                "cannot be summed out exactly",
                var.span, source=graph.source or None,
                hint=f"pass values for '{g}' in the data (it is then conditioned on), "
                     "or estimate the quantity by sampling")


def log_marginal(compiled, params, clamped: Mapping[str, np.ndarray], *, batch: int | None = None,
                 max_states: int = EXACT_STATE_LIMIT, what: str = "an exact log-probability") -> np.ndarray:
    """log sum over every unclamped variable of exp(-E), per row of the clamped values.

    clamped: group -> numpy [N, *shape] (all the same N); groups not named are summed
    out: a largest independent class analytically, the rest by enumeration in chunks.
    Returns float64 [N] (N = batch when nothing is clamped).
    """
    graph = compiled.graph
    n_rows = next(iter(clamped.values())).shape[0] if clamped else (batch or 1)
    free_groups = [g for g in graph.variables if g not in clamped]
    check_enumerable(graph, free_groups, what)
    free = whole_groups(graph, free_groups)
    summed = largest_independent_class(graph, free)
    enumerated = free.without(summed)
    if enumerated.log_count(graph) > math.log(max_states):
        raise EbmError(
            f"{what} would enumerate 2^{enumerated.log_count(graph) / math.log(2):.1f} joint states of "
            f"{', '.join(enumerated.members)} (limit {max_states} = 2^{math.log2(max_states):.0f})",
            hint="estimate log Z by annealed importance sampling: "
                 "ebmlang.learning.ais_log_partition(model, chains=..., steps=...)")
    enumeration = Enumeration.of(graph, enumerated)
    per_row = enumeration.count
    total = n_rows * per_row
    chunk = chunk_size(graph)
    out = np.full(n_rows, -np.inf)
    for start in range(0, total, chunk):
        codes = np.arange(start, min(start + chunk, total), dtype=np.int64)
        rows, state_codes = codes // per_row, codes % per_row
        state = {g: np.asarray(v, dtype=np.float64)[rows] for g, v in clamped.items()}
        state.update(reference_state(graph, len(codes), free_groups))
        state = enumeration.write(graph, state, state_codes)
        values = log_sum_over(compiled, params, state, summed)
        np.logaddexp.at(out, rows, values)
    return out


def enumerate_states(graph: FactorGraph, groups: Sequence[str], max_states: int = EXACT_STATE_LIMIT,
                     what: str = "enumeration", hint: str = "use fewer or smaller discrete variables here"
                     ) -> Iterator[dict]:
    """Every joint value of the discrete `groups`, in chunks: numpy {group: [n, *shape]}."""
    check_enumerable(graph, groups, what)
    variables = whole_groups(graph, groups)
    # Compared in logs: the count itself can overflow int64.
    if variables.log_count(graph) > math.log(max_states):
        raise EbmError(f"{what} would enumerate 2^{variables.log_count(graph) / math.log(2):.1f} joint states "
                       f"of {', '.join(groups)} (limit {max_states})",
                       hint=hint)
    enumeration = Enumeration.of(graph, variables)
    chunk = chunk_size(graph)
    for start in range(0, enumeration.count, chunk):
        codes = np.arange(start, min(start + chunk, enumeration.count), dtype=np.int64)
        yield enumeration.write(graph, reference_state(graph, len(codes), groups), codes)
