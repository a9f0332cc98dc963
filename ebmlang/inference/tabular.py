"""Tabular discrete energy models: every factor is a table of energies.

A `TabularMRF` is the form the discrete MAP solvers and the exact queries of
`ebmlang.inference.discrete_map` work on. It is frozen numpy data:

    E(x) = constant + sum_i unary[i, x_i] + sum_e pairwise[e, x_a, x_b]
                    + sum over higher-order factors of table[f, flat(x_f)]

with `(a, b) = edges[e]`. Variable i takes labels 0..num_labels[i]-1; the tables
are padded to the largest label count `Kmax`, and `unary` is +inf on the padding
labels. `+inf` anywhere is a hard constraint. `-inf` and NaN are refused.

Pairwise and higher-order entries at padding labels never count (the unary
forbids those labels); on construction they are overwritten with the entries of
label 0, so that per-edge checks (submodularity, Potts) only see real labels.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import scipy.sparse as sparse

from ebmlang.errors import EbmError

__all__ = [
    "HigherFactor",
    "TabularMRF",
    "LocalEnergies",
    "TabularModelError",
    "check_colouring",
    "colour_variables",
    "grid_edges",
]


class TabularModelError(EbmError, ValueError):
    """A malformed tabular model, or one a solver cannot take (an `EbmError` and a `ValueError`)."""


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.array(array, copy=True)
    array.setflags(write=False)
    return array


def _check_table_values(name: str, values: np.ndarray) -> None:
    if values.size == 0:
        return
    if np.isnan(values).any():
        raise TabularModelError(f"{name} contains NaN energies",
                                hint="an energy term evaluated to NaN for some label combination")
    if np.isneginf(values).any():
        raise TabularModelError(f"{name} contains -inf energies",
                                hint="an energy must be bounded below; use +inf only for hard constraints")


# --------------------------------------------------------------------------
# Higher-order factors


@dataclass(frozen=True, eq=False)
class HigherFactor:
    """`f` factors of the same arity `k`, each a full table over its variables' labels.

    variables: [f, k] variable indices (distinct within a row).
    table:     [f, R**k] energies; entry `sum_r x_r * R**(k-1-r)` is the energy of the
               labels (x_0, ..., x_{k-1}) of the row's variables (first variable most
               significant, as `np.ravel_multi_index` does). R, the radix, is at least the
               label count of every variable the factor touches. A table of shape
               [f, R, ..., R] is accepted and flattened.
    """

    variables: np.ndarray
    table: np.ndarray

    def __post_init__(self) -> None:
        variables = np.asarray(self.variables)
        if variables.ndim != 2 or variables.shape[1] < 1:
            raise TabularModelError(f"a higher-order factor needs variables of shape [f, k], got {variables.shape}")
        if variables.size and not np.issubdtype(variables.dtype, np.integer):
            raise TabularModelError("higher-order factor variables must be integer indices")
        num_factors, arity = variables.shape
        table = np.asarray(self.table, dtype=np.float64)
        table = table.reshape(num_factors, -1) if table.ndim != 2 else table
        if table.shape[0] != num_factors:
            raise TabularModelError(
                f"higher-order factor table has {table.shape[0]} rows for {num_factors} factors")
        radix = int(round(table.shape[1] ** (1.0 / arity))) if table.shape[1] else 0
        candidates = [r for r in (radix - 1, radix, radix + 1) if r >= 1 and r ** arity == table.shape[1]]
        if not candidates:
            raise TabularModelError(
                f"a table over {arity} variables needs R**{arity} columns, got {table.shape[1]}")
        if arity > 1 and num_factors:
            ordered = np.sort(variables, axis=1)
            if (ordered[:, 1:] == ordered[:, :-1]).any():
                raise TabularModelError("a higher-order factor names the same variable twice",
                                        hint="fold repeated variables into a smaller table")
        _check_table_values("a higher-order factor table", table)
        object.__setattr__(self, "variables", _readonly(variables.astype(np.int64)))
        object.__setattr__(self, "table", _readonly(table))

    @property
    def arity(self) -> int:
        return int(self.variables.shape[1])

    @property
    def num_factors(self) -> int:
        return int(self.variables.shape[0])

    @property
    def radix(self) -> int:
        """R: the label count each axis of the table covers."""
        return int(round(self.table.shape[1] ** (1.0 / self.arity))) if self.table.shape[1] else 1

    @property
    def place_values(self) -> np.ndarray:
        """[k] multipliers turning labels into a flat table column."""
        return self.radix ** np.arange(self.arity - 1, -1, -1, dtype=np.int64)

    def energies(self, labels: np.ndarray) -> np.ndarray:
        """[..., f] energy of each factor for labellings `labels` [..., n]."""
        factor_labels = labels[..., self.variables]  # [..., f, k]
        flat = factor_labels @ self.place_values
        return self.table[np.arange(self.num_factors), flat]


# --------------------------------------------------------------------------
# The model


@dataclass(frozen=True, eq=False)
class TabularMRF:
    """A discrete energy model given by tables (see the module docstring).

    num_labels: [n] label count K_i of each variable (>= 1).
    unary:      [n, Kmax] energies; +inf at labels >= K_i (set on construction) and at
                forbidden labels.
    edges:      [m, 2] variable pairs (any order, no self-loops; duplicates allowed).
    pairwise:   [m, Kmax, Kmax] energy E(x_a = s, x_b = t) of each edge (a, b).
    higher:     factors over more variables, grouped by arity.
    constant:   energy added to every labelling.
    """

    num_labels: np.ndarray
    unary: np.ndarray
    edges: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    pairwise: np.ndarray | None = None
    higher: tuple[HigherFactor, ...] = ()
    constant: float = 0.0

    def __post_init__(self) -> None:
        num_labels = np.asarray(self.num_labels)
        if num_labels.ndim != 1:
            raise TabularModelError(f"num_labels must be a vector [n], got shape {num_labels.shape}")
        num_labels = num_labels.astype(np.int64)
        if num_labels.size and num_labels.min() < 1:
            raise TabularModelError("every variable needs at least one label")
        n = num_labels.size
        unary = np.asarray(self.unary, dtype=np.float64)
        if unary.ndim != 2 or unary.shape[0] != n:
            raise TabularModelError(f"unary must have shape [{n}, Kmax], got {unary.shape}")
        kmax = unary.shape[1]
        if n and num_labels.max() > kmax:
            raise TabularModelError(
                f"unary has {kmax} columns but a variable has {int(num_labels.max())} labels")
        _check_table_values("the unary table", unary)
        unary = np.where(np.arange(kmax)[None, :] >= num_labels[:, None], np.inf, unary)

        edges = np.asarray(self.edges)
        if edges.size == 0:
            edges = np.zeros((0, 2), dtype=np.int64)
        if edges.ndim != 2 or edges.shape[1] != 2 or not np.issubdtype(edges.dtype, np.integer):
            raise TabularModelError(f"edges must be an integer array [m, 2], got {edges.dtype} {edges.shape}")
        edges = edges.astype(np.int64)
        m = edges.shape[0]
        if m and (edges.min() < 0 or edges.max() >= n):
            raise TabularModelError(f"an edge names a variable outside 0..{n - 1}")
        if m and (edges[:, 0] == edges[:, 1]).any():
            raise TabularModelError("an edge joins a variable to itself",
                                    hint="fold the diagonal of that table into the unary term")
        pairwise = np.zeros((0, kmax, kmax)) if self.pairwise is None else self.pairwise
        pairwise = np.asarray(pairwise, dtype=np.float64)
        if pairwise.size == 0 and m == 0:
            pairwise = np.zeros((0, kmax, kmax))
        if pairwise.shape != (m, kmax, kmax):
            raise TabularModelError(f"pairwise must have shape [{m}, {kmax}, {kmax}], got {pairwise.shape}")
        _check_table_values("the pairwise table", pairwise)
        pairwise = _canonical_padding(pairwise, num_labels[edges[:, 0]], num_labels[edges[:, 1]])

        higher = tuple(self.higher or ())
        for factor in higher:
            if not isinstance(factor, HigherFactor):
                raise TabularModelError(f"higher must hold HigherFactor values, got {type(factor).__name__}")
            if factor.num_factors == 0:
                continue
            if factor.variables.min() < 0 or factor.variables.max() >= n:
                raise TabularModelError(f"a higher-order factor names a variable outside 0..{n - 1}")
            if num_labels[factor.variables].max() > factor.radix:
                raise TabularModelError(
                    f"a higher-order table has radix {factor.radix} but one of its variables has "
                    f"{int(num_labels[factor.variables].max())} labels")
        constant = float(self.constant)
        if not np.isfinite(constant):
            raise TabularModelError("the constant energy must be finite")

        object.__setattr__(self, "num_labels", _readonly(num_labels))
        object.__setattr__(self, "unary", _readonly(unary))
        object.__setattr__(self, "edges", _readonly(edges))
        object.__setattr__(self, "pairwise", _readonly(pairwise))
        object.__setattr__(self, "higher", higher)
        object.__setattr__(self, "constant", constant)

    # ---------------------------------------------------------------- shape

    @property
    def num_variables(self) -> int:
        return int(self.num_labels.size)

    @property
    def num_edges(self) -> int:
        return int(self.edges.shape[0])

    @property
    def max_labels(self) -> int:
        """Kmax: the width of the tables."""
        return int(self.unary.shape[1])

    @property
    def is_pairwise(self) -> bool:
        return all(f.num_factors == 0 for f in self.higher)

    @property
    def is_binary(self) -> bool:
        return self.num_variables == 0 or int(self.num_labels.max()) <= 2

    @property
    def allowed(self) -> np.ndarray:
        """[n, Kmax] bool: labels the unary term does not forbid."""
        return np.isfinite(self.unary)

    # --------------------------------------------------------------- energy

    def energy(self, labels: np.ndarray) -> np.ndarray:
        """Energy of labellings `labels` [..., n] (integers); returns [...]. +inf where a
        hard constraint is violated."""
        labels = np.asarray(labels)
        if labels.shape[-1:] != (self.num_variables,):
            raise TabularModelError(
                f"labellings need a last axis of {self.num_variables} variables, got shape {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            rounded = np.rint(labels)
            if not np.array_equal(rounded, labels):
                raise TabularModelError("labels must be integers")
            labels = rounded.astype(np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= self.max_labels):
            raise TabularModelError(f"labels must lie in 0..{self.max_labels - 1}")
        total = self.unary[np.arange(self.num_variables), labels].sum(axis=-1)
        if self.num_edges:
            first = labels[..., self.edges[:, 0]]
            second = labels[..., self.edges[:, 1]]
            total = total + self.pairwise[np.arange(self.num_edges), first, second].sum(axis=-1)
        for factor in self.higher:
            if factor.num_factors:
                total = total + factor.energies(labels).sum(axis=-1)
        return total + self.constant

    # ------------------------------------------------------------ rewriting

    def merge_parallel_edges(self) -> "TabularMRF":
        """The same model with one edge per variable pair: edges are reoriented to
        (smaller, larger) index (tables transposed) and duplicate tables summed."""
        if self.num_edges == 0:
            return self
        flip = self.edges[:, 0] > self.edges[:, 1]
        oriented = np.sort(self.edges, axis=1)
        tables = np.where(flip[:, None, None], self.pairwise.transpose(0, 2, 1), self.pairwise)
        unique_edges, slot = np.unique(oriented, axis=0, return_inverse=True)
        merged = np.zeros((unique_edges.shape[0],) + tables.shape[1:])
        np.add.at(merged, slot.reshape(-1), tables)
        return TabularMRF(self.num_labels, self.unary, unique_edges, merged, self.higher, self.constant)

    def clamp(self, variables: np.ndarray, labels: np.ndarray) -> "TabularMRF":
        """The model conditioned on `variables` taking `labels`: every other label of a
        clamped variable becomes forbidden (+inf unary). Exact queries on the result
        (which skip forbidden labels) are conditional queries on this model."""
        variables = np.asarray(variables, dtype=np.int64).reshape(-1)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if variables.shape != labels.shape:
            raise TabularModelError(f"clamp got {variables.size} variables but {labels.size} labels")
        if variables.size and (variables.min() < 0 or variables.max() >= self.num_variables):
            raise TabularModelError(f"clamp names a variable outside 0..{self.num_variables - 1}")
        if variables.size and (labels.min() < 0 or (labels >= self.num_labels[variables]).any()):
            raise TabularModelError("clamp gives a variable a label outside its domain")
        keep = np.zeros(self.unary.shape, dtype=bool)
        keep[variables, labels] = True
        clamped_rows = np.zeros(self.num_variables, dtype=bool)
        clamped_rows[variables] = True
        unary = np.where(clamped_rows[:, None] & ~keep, np.inf, self.unary)
        return TabularMRF(self.num_labels, unary, self.edges, self.pairwise, self.higher, self.constant)

    @classmethod
    def from_dense_potts(
        cls,
        unary: np.ndarray,
        edges: np.ndarray,
        weights: np.ndarray | float,
        num_labels: np.ndarray | None = None,
        constant: float = 0.0,
    ) -> "TabularMRF":
        """A Potts model: `unary` [n, K] plus `weights[e] * [x_a != x_b]` on each edge.

        num_labels defaults to K for every variable."""
        unary = np.asarray(unary, dtype=np.float64)
        edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        kmax = unary.shape[1]
        weights = np.broadcast_to(np.asarray(weights, dtype=np.float64), (edges.shape[0],))
        differ = 1.0 - np.eye(kmax)
        # w * [a != b] with w = +inf (a hard equality) must stay 0 on the diagonal, not NaN.
        pairwise = np.where(differ[None] > 0, weights[:, None, None], 0.0)
        if num_labels is None:
            num_labels = np.full(unary.shape[0], kmax, dtype=np.int64)
        return cls(num_labels, unary, edges, pairwise, (), constant)

    # --------------------------------------------------------------- checks

    def submodular_edges(self, tol: float = 1e-9) -> np.ndarray:
        """[m] bool: E(0,0) + E(1,1) <= E(0,1) + E(1,0) + tol for each binary edge table.

        +inf entries count as a very large finite value M (the graph-cut surrogate):
        the side with more infinite entries loses, equal counts compare the finite parts.
        """
        if not self.is_binary:
            raise TabularModelError("submodularity is defined here for binary (two-label) models")
        tables = self.pairwise[:, :2, :2] if self.max_labels >= 2 else np.zeros((self.num_edges, 2, 2))
        return _limit_leq(tables[:, 0, 0], tables[:, 1, 1], tables[:, 0, 1], tables[:, 1, 0], tol)

    def is_submodular(self, tol: float = 1e-9) -> bool:
        """Binary, pairwise, and every edge table submodular: graph cut finds the exact minimum."""
        if not (self.is_binary and self.is_pairwise):
            return False
        return bool(self.submodular_edges(tol).all())

    def potts_edges(self, tol: float = 1e-9) -> np.ndarray:
        """[m] bool: the edge table (on real labels) is `w * [a != b] + c` with w >= 0, c finite
        (w = +inf, a hard equality, is allowed)."""
        result = np.zeros(self.num_edges, dtype=bool)
        for chunk in _edge_chunks(self.num_edges, self.max_labels ** 2):
            result[chunk] = self._potts_chunk(chunk, tol)
        return result

    def _potts_chunk(self, chunk: slice, tol: float) -> np.ndarray:
        kmax = self.max_labels
        first_k = self.num_labels[self.edges[chunk, 0]]
        second_k = self.num_labels[self.edges[chunk, 1]]
        tables = self.pairwise[chunk]
        diagonal_value = tables[:, 0, 0]
        off_value = np.where(second_k > 1, tables[:, 0, min(1, kmax - 1)],
                             np.where(first_k > 1, tables[:, min(1, kmax - 1), 0], diagonal_value))
        labels = np.arange(kmax)
        same = labels[:, None] == labels[None, :]
        expected = np.where(same[None], diagonal_value[:, None, None], off_value[:, None, None])
        valid = (labels[None, :, None] < first_k[:, None, None]) & (labels[None, None, :] < second_k[:, None, None])
        matches = (tables == expected) | np.isclose(tables, expected, rtol=0.0, atol=tol)
        shaped = np.all(matches | ~valid, axis=(1, 2))
        weight = off_value - diagonal_value
        return shaped & np.isfinite(diagonal_value) & (weight >= -tol)

    def is_potts_metric(self, tol: float = 1e-9) -> bool:
        """Pairwise, and every edge table is Potts (`w [a != b] + const`, w >= 0):
        alpha-expansion applies, within a factor 2 of the minimum for nonnegative energies."""
        return self.is_pairwise and bool(self.potts_edges(tol).all())

    def expansion_submodular_edges(self, tol: float = 1e-9) -> np.ndarray:
        """[m] bool: every alpha-expansion move on the edge is submodular, i.e.
        V(alpha, alpha) + V(a, b) <= V(a, alpha) + V(alpha, b) for all real labels a, b and
        every alpha both ends can take. Every metric V (and Potts) satisfies it."""
        m, kmax = self.num_edges, self.max_labels
        if m == 0:
            return np.ones(0, dtype=bool)
        first_k = self.num_labels[self.edges[:, 0]]
        second_k = self.num_labels[self.edges[:, 1]]
        # Models usually repeat a few tables on many edges: check each distinct one once.
        # Rows are compared as raw bytes (np.unique(axis=0) is far slower on wide rows).
        keys = np.ascontiguousarray(np.concatenate(
            [self.pairwise.reshape(m, -1), first_k[:, None], second_k[:, None]], axis=1))
        row_bytes = keys.view(np.dtype((np.void, keys.shape[1] * keys.itemsize))).reshape(-1)
        _, representative, which = np.unique(row_bytes, return_index=True, return_inverse=True)
        tables = self.pairwise[representative]
        distinct_first = first_k[representative]
        distinct_second = second_k[representative]
        result = np.ones(tables.shape[0], dtype=bool)
        for chunk in _edge_chunks(tables.shape[0], kmax ** 3):
            result[chunk] = _expansion_submodular_tables(tables[chunk], distinct_first[chunk],
                                                         distinct_second[chunk], tol)
        return result[which.reshape(-1)]

    def is_expansion_submodular(self, tol: float = 1e-9) -> bool:
        """Pairwise and every expansion move submodular (metric terms): alpha-expansion applies."""
        return self.is_pairwise and bool(self.expansion_submodular_edges(tol).all())

    # ------------------------------------------------------------ structure

    def interaction_pairs(self) -> np.ndarray:
        """[p, 2] distinct variable pairs (smaller index first) sharing a factor."""
        pairs = [self.edges]
        for factor in self.higher:
            if factor.num_factors and factor.arity > 1:
                left, right = np.triu_indices(factor.arity, k=1)
                pairs.append(np.stack([factor.variables[:, left].reshape(-1),
                                       factor.variables[:, right].reshape(-1)], axis=1))
        stacked = np.concatenate(pairs, axis=0) if pairs else np.zeros((0, 2), np.int64)
        if stacked.shape[0] == 0:
            return np.zeros((0, 2), dtype=np.int64)
        return np.unique(np.sort(stacked, axis=1), axis=0)


def _expansion_submodular_tables(tables: np.ndarray, first_k: np.ndarray, second_k: np.ndarray,
                                 tol: float) -> np.ndarray:
    """[c] bool: every expansion move on each table [c, K, K] is submodular (+inf as a large M)."""
    kmax = tables.shape[1]
    labels = np.arange(kmax)
    valid = (labels[None, :, None] < first_k[:, None, None]) & (labels[None, None, :] < second_k[:, None, None])
    reaches = labels[None, :] < np.minimum(first_k, second_k)[:, None]  # [c, alpha]
    if np.isfinite(tables).all():
        # All alphas at once: excess[c, alpha, a, b] = V(al,al) + V(a,b) - V(a,al) - V(al,b).
        diagonal = tables[:, labels, labels]
        excess = (diagonal[:, :, None, None] + tables[:, None, :, :]
                  - tables.transpose(0, 2, 1)[:, :, :, None] - tables[:, :, None, :])
        relevant = valid[:, None, :, :] & reaches[:, :, None, None]
        return ~np.any((excess > tol) & relevant, axis=(1, 2, 3))
    ok = np.ones(tables.shape[0], dtype=bool)
    for alpha in range(kmax):
        holds = _limit_leq(
            np.broadcast_to(tables[:, alpha, alpha][:, None, None], tables.shape), tables,
            np.broadcast_to(tables[:, :, alpha][:, :, None], tables.shape),   # V(a, alpha)
            np.broadcast_to(tables[:, alpha, :][:, None, :], tables.shape),   # V(alpha, b)
            tol)
        ok &= ~reaches[:, alpha] | np.all(holds | ~valid, axis=(1, 2))
    return ok


def _edge_chunks(num_edges: int, per_edge: int, budget: int = 2 ** 21):
    """Slices of edges whose [chunk, K, K] temporaries hold about `budget` entries."""
    step = max(1, budget // max(per_edge, 1))
    for start in range(0, num_edges, step):
        yield slice(start, min(start + step, num_edges))


def _canonical_padding(pairwise: np.ndarray, first_k: np.ndarray, second_k: np.ndarray) -> np.ndarray:
    """Pairwise tables with rows/columns at padding labels copied from label 0."""
    if pairwise.shape[0] == 0:
        return pairwise
    labels = np.arange(pairwise.shape[1])
    rows = np.where(labels[None, :] < first_k[:, None], labels[None, :], 0)  # [m, K]
    cols = np.where(labels[None, :] < second_k[:, None], labels[None, :], 0)
    edge = np.arange(pairwise.shape[0])[:, None, None]
    return pairwise[edge, rows[:, :, None], cols[:, None, :]]


def _limit_leq(left_a, left_b, right_a, right_b, tol: float) -> np.ndarray:
    """left_a + left_b <= right_a + right_b + tol, with +inf read as an arbitrarily large M."""
    left_inf = np.isinf(left_a).astype(np.int64) + np.isinf(left_b)
    right_inf = np.isinf(right_a).astype(np.int64) + np.isinf(right_b)

    def finite(x):
        return np.where(np.isinf(x), 0.0, x)

    left = finite(left_a) + finite(left_b)
    right = finite(right_a) + finite(right_b)
    return (left_inf < right_inf) | ((left_inf == right_inf) & (left <= right + tol))


# --------------------------------------------------------------------------
# Helpers on structure


def grid_edges(shape: tuple[int, int]) -> np.ndarray:
    """[m, 2] 4-neighbour edges of a row-major `height x width` grid (right, then down)."""
    height, width = shape
    ids = np.arange(height * width).reshape(height, width)
    horizontal = np.stack([ids[:, :-1].reshape(-1), ids[:, 1:].reshape(-1)], axis=1)
    vertical = np.stack([ids[:-1, :].reshape(-1), ids[1:, :].reshape(-1)], axis=1)
    return np.concatenate([horizontal, vertical], axis=0).astype(np.int64)


def colour_variables(num_variables: int, pairs: np.ndarray, seed: int = 0) -> np.ndarray:
    """[n] colour of each variable such that no pair in `pairs` shares a colour.

    Jones-Plassmann greedy colouring, vectorised: in each round every uncoloured
    variable whose higher-priority neighbours are all coloured takes the smallest
    colour none of them uses. Random priorities keep the number of rounds
    logarithmic in expectation; the seed makes it deterministic.
    """
    colour = np.full(num_variables, -1, dtype=np.int64)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if pairs.shape[0] == 0:
        colour[:] = 0
        return colour
    priority = np.random.default_rng(seed).permutation(num_variables)
    first_wins = priority[pairs[:, 0]] > priority[pairs[:, 1]]
    high = np.where(first_wins, pairs[:, 0], pairs[:, 1])
    low = np.where(first_wins, pairs[:, 1], pairs[:, 0])
    while (colour < 0).any():
        uncoloured = colour < 0
        blocked = np.zeros(num_variables, dtype=bool)
        blocked[low[uncoloured[high]]] = True
        ready = uncoloured & ~blocked
        # A ready variable's coloured neighbours are exactly its higher-priority ones.
        constraining = ready[low]
        colour[ready] = _smallest_unused(low[constraining], colour[high[constraining]], ready)
    return colour


def _smallest_unused(nodes: np.ndarray, used: np.ndarray, ready: np.ndarray) -> np.ndarray:
    """For each ready node (in index order), the smallest colour >= 0 not in `used` at `nodes`."""
    ready_ids = np.flatnonzero(ready)
    result = np.zeros(ready_ids.size, dtype=np.int64)
    if nodes.size == 0:
        return result
    span = int(used.max()) + 2
    codes = np.unique(nodes * span + used)
    node_of, colour_of = codes // span, codes % span
    group_start = np.flatnonzero(np.r_[True, node_of[1:] != node_of[:-1]])
    group_size = np.diff(np.r_[group_start, codes.size])
    rank = np.arange(codes.size) - np.repeat(group_start, group_size)
    # Colours are sorted and distinct within a node: the first gap is where colour > rank.
    gap = np.where(colour_of > rank, rank, np.iinfo(np.int64).max)
    first_gap = np.minimum(np.minimum.reduceat(gap, group_start), group_size)
    position = np.searchsorted(ready_ids, node_of[group_start])
    result[position] = first_gap
    return result


def check_colouring(num_variables: int, pairs: np.ndarray, colouring: np.ndarray) -> np.ndarray:
    """`colouring` as an int array [n], after checking no interacting pair shares a colour."""
    colouring = np.asarray(colouring)
    if colouring.shape != (num_variables,) or not np.issubdtype(colouring.dtype, np.integer):
        raise TabularModelError(f"a colouring must be an integer array [{num_variables}], got "
                                f"{colouring.dtype} {colouring.shape}")
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    clash = colouring[pairs[:, 0]] == colouring[pairs[:, 1]]
    if clash.any():
        a, b = pairs[np.argmax(clash)]
        raise TabularModelError(
            f"the colouring gives variables {a} and {b}, which share a factor, the same colour "
            f"({int(clash.sum())} such pairs)",
            hint="leave colouring=None to compute one")
    return colouring.astype(np.int64)


# --------------------------------------------------------------------------
# Local conditional energies over a colouring


@dataclass(frozen=True, eq=False)
class _ColourClass:
    """Precomputed gathers for one colour class (an independent set of variables).

    Each "contribution row" is one factor touching one member; `gather` [c, L] sums
    the rows into their members.
    """

    members: np.ndarray          # [c] variable ids
    unary: np.ndarray            # [c, K]
    pair_tables: np.ndarray      # [Lp, K_other, K_own]
    pair_other: np.ndarray       # [Lp] the other variable of each edge row
    higher_parts: tuple          # (factor group, position r, factor ids [Lh])
    gather: sparse.csr_matrix    # [c, Lp + sum Lh]


class LocalEnergies:
    """Energies of every label of every variable of a colour class, given the rest.

    `LocalEnergies(mrf, colouring)` groups the factors by the colour class of the
    variable they update once; `table(k, labels)` then costs one gather per factor
    touching class k, vectorised over chains. Members of a class share no factor,
    so updating them all at once from these tables is exact block coordinate
    descent (ICM) or exact block Gibbs.
    """

    def __init__(self, mrf: TabularMRF, colouring: np.ndarray | None = None, seed: int = 0):
        pairs = mrf.interaction_pairs()
        if colouring is None:
            colouring = colour_variables(mrf.num_variables, pairs, seed=seed)
        self.mrf = mrf
        self.colouring = check_colouring(mrf.num_variables, pairs, colouring)
        self.classes = tuple(self._build_class(np.flatnonzero(self.colouring == c))
                             for c in np.unique(self.colouring))

    @property
    def num_colours(self) -> int:
        return len(self.classes)

    def _build_class(self, members: np.ndarray) -> _ColourClass:
        mrf = self.mrf
        n, kmax = mrf.num_variables, mrf.max_labels
        row_of = np.full(n, -1, dtype=np.int64)
        row_of[members] = np.arange(members.size)
        edges = mrf.edges
        as_first = np.flatnonzero(row_of[edges[:, 0]] >= 0)
        as_second = np.flatnonzero(row_of[edges[:, 1]] >= 0)
        pair_tables = np.concatenate([mrf.pairwise[as_first].transpose(0, 2, 1), mrf.pairwise[as_second]])
        pair_other = np.concatenate([edges[as_first, 1], edges[as_second, 0]])
        rows = [row_of[edges[as_first, 0]], row_of[edges[as_second, 1]]]
        higher_parts = []
        for group, factor in enumerate(mrf.higher):
            for position in range(factor.arity if factor.num_factors else 0):
                ids = np.flatnonzero(row_of[factor.variables[:, position]] >= 0)
                if ids.size:
                    higher_parts.append((group, position, ids))
                    rows.append(row_of[factor.variables[ids, position]])
        rows = np.concatenate(rows)
        gather = sparse.csr_matrix((np.ones(rows.size), (rows, np.arange(rows.size))),
                                   shape=(members.size, rows.size))
        return _ColourClass(members, mrf.unary[members], pair_tables, pair_other,
                            tuple(higher_parts), gather)

    def table(self, colour_index: int, labels: np.ndarray) -> np.ndarray:
        """[C, c, K] local energy of each label for the members of class `colour_index`,
        given labellings `labels` [C, n] of everything else (the members' own labels
        are ignored). Factors not touching the class are left out (they are constant)."""
        block = self.classes[colour_index]
        kmax = self.mrf.max_labels
        chains = labels.shape[0]
        parts = []
        if block.pair_other.size:
            rows = np.arange(block.pair_other.size)
            parts.append(block.pair_tables[rows[None, :], labels[:, block.pair_other]])  # [C, Lp, K]
        for group, position, ids in block.higher_parts:
            parts.append(self._higher_part(self.mrf.higher[group], position, ids, labels, kmax))
        local = np.broadcast_to(block.unary, (chains,) + block.unary.shape)
        if not parts:
            return np.array(local)
        stacked = np.concatenate(parts, axis=1)  # [C, L, K]
        summed = block.gather @ stacked.transpose(1, 0, 2).reshape(stacked.shape[1], -1)
        return local + np.asarray(summed).reshape(block.members.size, chains, kmax).transpose(1, 0, 2)

    @staticmethod
    def _higher_part(factor: HigherFactor, position: int, ids: np.ndarray, labels: np.ndarray,
                     kmax: int) -> np.ndarray:
        place = factor.place_values
        others = np.delete(np.arange(factor.arity), position)
        base = labels[:, factor.variables[ids][:, others]] @ place[others]  # [C, Lh]
        radix = factor.radix
        columns = base[..., None] + np.arange(radix) * place[position]       # [C, Lh, R]
        values = factor.table[ids[None, :, None], columns]
        if radix >= kmax:
            return values[..., :kmax]
        # Labels >= R exceed every member's label count: the unary already forbids them.
        return np.concatenate([values, np.zeros(values.shape[:-1] + (kmax - radix,))], axis=-1)
