"""Exact discrete MAP as an integer linear program over the local polytope (HiGHS).

The standard MAP-ILP: one binary indicator per allowed label of each variable,
and for every factor whose table is not constant on its allowed entries one
continuous indicator per allowed joint label, tied to the variables' indicators
by marginalisation rows. With integral variable indicators the factor
indicators are forced to the one allowed joint label, so only the variable
indicators need to be integer. Forbidden entries (+inf) get no indicator: a
forbidden label is an upper bound of 0, and a factor that is constant on its
allowed entries becomes conflict rows instead, `y_a(k) + sum_{l forbidden with k}
y_b(l) <= 1`, which is as tight and far smaller (an `!=` constraint over 9
labels is 18 rows instead of 72 indicators).

scipy.optimize.milp runs HiGHS (branch and cut with a dual bound), so the result
is the proven minimum, a labelling with a bound and a gap when the time limit
stops it, or a proof that no labelling satisfies every constraint.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sparse
from scipy.optimize import Bounds, LinearConstraint, milp

from ebmlang.inference.discrete_map.solver_io import MapResult
from ebmlang.inference.tabular import TabularModelError, TabularMRF

DEFAULT_TIME_LIMIT = 60.0


@dataclass
class _Program:
    """Sparse rows of the ILP, filled factor by factor."""

    num_columns: int
    costs: list
    rows: list
    cols: list
    values: list
    lower: list
    upper: list
    num_rows: int = 0

    def add_columns(self, costs: np.ndarray) -> np.ndarray:
        ids = np.arange(self.num_columns, self.num_columns + costs.size)
        self.costs.append(costs)
        self.num_columns += costs.size
        return ids

    def add_rows(self, row_ids: np.ndarray, columns: np.ndarray, values: np.ndarray, count: int,
                 lower: float, upper: float) -> None:
        self.rows.append(row_ids + self.num_rows)
        self.cols.append(columns)
        self.values.append(values)
        self.lower.append(np.full(count, lower))
        self.upper.append(np.full(count, upper))
        self.num_rows += count


def ilp_size(mrf: TabularMRF) -> int:
    """Columns of the program `solve_ilp` would build (what its time grows with)."""
    pairs = 0
    if mrf.num_edges:
        allowed, _, flat = _edge_entries(mrf)
        pairs = int(allowed[~flat].sum())
    higher = sum(int(np.isfinite(f.table).sum()) for f in mrf.higher)
    return int(mrf.allowed.sum() + pairs + higher)


def _edge_entries(mrf: TabularMRF) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(allowed [m, K, K]: both labels allowed and the entry finite; real [m, K, K]: both
    labels allowed; flat [m]: the allowed entries share one value)."""
    first, second = mrf.edges[:, 0], mrf.edges[:, 1]
    real = mrf.allowed[first][:, :, None] & mrf.allowed[second][:, None, :]
    allowed = real & np.isfinite(mrf.pairwise)
    finite = np.where(allowed, mrf.pairwise, 0.0)
    low = np.where(allowed, finite, np.inf).min(axis=(1, 2))
    high = np.where(allowed, finite, -np.inf).max(axis=(1, 2))
    flat = (high - low <= 1e-12 * np.maximum(1.0, np.abs(low))) | ~allowed.any(axis=(1, 2))
    return allowed, real, flat


def solve_ilp(mrf: TabularMRF, time_limit: float = DEFAULT_TIME_LIMIT, mip_rel_gap: float = 0.0,
              presolve: bool = True) -> MapResult:
    """The exact minimum by an integer program solved with HiGHS (scipy.optimize.milp).

    info: status ("optimal", "infeasible" or "time_limit"), proven (optimality or
    infeasibility proven), bound (HiGHS's lower bound on the minimum), gap (relative,
    0 when proven), columns, rows, feasible.
    """
    if time_limit is not None and not time_limit > 0:
        raise TabularModelError(f"time_limit must be positive seconds, got {time_limit}")
    n, kmax = mrf.num_variables, mrf.max_labels
    allowed = mrf.allowed
    if n == 0:
        return MapResult(np.zeros(0, np.int64), float(mrf.energy(np.zeros(0, np.int64))), "ilp",
                         {"status": "optimal", "proven": True, "bound": mrf.constant, "gap": 0.0,
                          "columns": 0, "rows": 0, "feasible": True})
    program = _Program(0, [], [], [], [], [], [])
    node_columns = np.full((n, kmax), -1, dtype=np.int64)
    node_columns[allowed] = program.add_columns(mrf.unary[allowed])
    var_of, label_of = np.nonzero(allowed)
    # One label per variable.
    program.add_rows(var_of, node_columns[var_of, label_of], np.ones(var_of.size), n, 1.0, 1.0)
    constant = mrf.constant + _add_pairwise(program, mrf, node_columns)
    for factor in mrf.higher:
        if factor.num_factors:
            _add_higher(program, factor, node_columns, kmax)
    matrix = sparse.csr_matrix(
        (np.concatenate(program.values), (np.concatenate(program.rows), np.concatenate(program.cols))),
        shape=(program.num_rows, program.num_columns))
    integrality = np.zeros(program.num_columns)
    integrality[node_columns[allowed]] = 1
    options = {"disp": False, "presolve": presolve, "mip_rel_gap": mip_rel_gap}
    if time_limit is not None:
        options["time_limit"] = float(time_limit)
    result = milp(np.concatenate(program.costs), integrality=integrality,
                  bounds=Bounds(np.zeros(program.num_columns), np.ones(program.num_columns)),
                  constraints=LinearConstraint(matrix, np.concatenate(program.lower),
                                               np.concatenate(program.upper)),
                  options=options)
    size = {"columns": program.num_columns, "rows": program.num_rows}
    if result.status == 2:
        labels = np.argmin(mrf.unary, axis=1).astype(np.int64)
        return MapResult(labels, np.inf, "ilp", {"status": "infeasible", "proven": True, "bound": np.inf,
                                                  "gap": 0.0, "feasible": False, **size})
    bound = getattr(result, "mip_dual_bound", None)
    bound = float(bound) + constant if bound is not None and np.isfinite(bound) else -np.inf
    if result.x is None:
        labels = np.argmin(mrf.unary, axis=1).astype(np.int64)
        return MapResult(labels, np.inf, "ilp", {"status": "time_limit", "proven": False, "bound": bound,
                                                  "gap": np.inf, "feasible": False,
                                                  "message": str(result.message), **size})
    chosen = result.x[node_columns.clip(min=0)] * allowed
    labels = np.argmax(chosen, axis=1).astype(np.int64)
    energy = float(mrf.energy(labels))
    proven = result.status == 0
    gap = 0.0 if proven else abs(energy - bound) / max(1.0, abs(energy))
    return MapResult(labels, energy, "ilp",
                     {"status": "optimal" if proven else "time_limit", "proven": bool(proven),
                      "bound": energy if proven else bound, "gap": gap,
                      "feasible": bool(np.isfinite(energy)), **size})


def _add_pairwise(program: _Program, mrf: TabularMRF, node_columns: np.ndarray) -> float:
    """Rows and columns of every edge; returns the constant energy moved out of the tables."""
    m = mrf.num_edges
    if m == 0:
        return 0.0
    first, second = mrf.edges[:, 0], mrf.edges[:, 1]
    allowed, real, flat = _edge_entries(mrf)
    finite = np.where(allowed, mrf.pairwise, 0.0)
    # Edges whose allowed entries share one value: a constant plus conflict rows.
    low = np.where(allowed, finite, np.inf).min(axis=(1, 2))
    constant = float(np.where(np.isfinite(low), low, 0.0)[flat].sum())
    _add_conflicts(program, first[flat], second[flat], real[flat] & ~allowed[flat], node_columns)
    edge, left, right = np.nonzero(allowed[~flat])
    _add_marginalised(program, mrf.edges[~flat], edge, np.stack([left, right], axis=1),
                      finite[~flat][edge, left, right], node_columns, mrf.max_labels)
    return constant


def _add_conflicts(program, first, second, forbidden, node_columns) -> None:
    """y_a(k) + sum_{l: (k, l) forbidden} y_b(l) <= 1 for every label k of a (and the same from b)."""
    for own, other, table in ((first, second, forbidden), (second, first, forbidden.transpose(0, 2, 1))):
        edge, label, other_label = np.nonzero(table)
        if edge.size == 0:
            continue
        keys = edge * table.shape[1] + label
        unique_keys, row = np.unique(keys, return_inverse=True)
        row_edge, row_label = unique_keys // table.shape[1], unique_keys % table.shape[1]
        columns = np.concatenate([node_columns[own[row_edge], row_label], node_columns[other[edge], other_label]])
        row_ids = np.concatenate([np.arange(unique_keys.size), row.reshape(-1)])
        program.add_rows(row_ids, columns, np.ones(columns.size), unique_keys.size, -np.inf, 1.0)


def _add_marginalised(program, variables, which, joint, costs, node_columns, kmax) -> None:
    """One column per allowed joint label (`which` factor [c], its labels `joint` [c, arity],
    `costs` [c]) of factors over `variables` [f, arity]; for every position p and label k
    a row sum over the factor's columns with x_p = k equals y_{x_p}(k). A variable label
    with no allowed joint label on some factor gets y = 0."""
    columns = program.add_columns(costs)
    everything = np.arange(variables.shape[0] * kmax)
    for position in range(variables.shape[1]):
        keys = which * kmax + joint[:, position]
        unique_keys, row = np.unique(keys, return_inverse=True)
        node = node_columns[variables[unique_keys // kmax, position], unique_keys % kmax]
        program.add_rows(np.concatenate([row.reshape(-1), np.arange(unique_keys.size)]),
                         np.concatenate([columns, node]),
                         np.concatenate([np.ones(columns.size), -np.ones(unique_keys.size)]),
                         unique_keys.size, 0.0, 0.0)
        unused = np.setdiff1d(everything, unique_keys)
        lone = node_columns[variables[unused // kmax, position], unused % kmax]
        lone = lone[lone >= 0]
        if lone.size:
            program.add_rows(np.arange(lone.size), lone, np.ones(lone.size), lone.size, 0.0, 0.0)


def _add_higher(program, factor, node_columns, kmax) -> None:
    """One column per allowed joint label of each factor, marginalised onto each position."""
    arity, radix = factor.arity, factor.radix
    digits = np.stack(np.unravel_index(np.arange(radix ** arity), (radix,) * arity), axis=1)  # [R^k, k]
    in_range = (digits < kmax).all(axis=1)
    labels = np.minimum(digits, kmax - 1)
    variable_ok = np.ones((factor.num_factors, radix ** arity), dtype=bool)
    for position in range(arity):
        variable_ok &= node_columns[factor.variables[:, position][:, None], labels[None, :, position]] >= 0
    allowed = np.isfinite(factor.table) & variable_ok & in_range[None]
    which, config = np.nonzero(allowed)
    _add_marginalised(program, factor.variables, which, labels[config], factor.table[which, config],
                      node_columns, kmax)
