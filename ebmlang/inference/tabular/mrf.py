"""`TabularMRF`: the frozen tabular energy model (see `ebmlang.inference.tabular`).

Construction and validation, shape queries, energy evaluation, rewriting (merging
parallel edges, clamping, Potts construction), the per-model checks that pick a
solver, and the interaction graph. The edge-table arithmetic behind the checks is
in `edge_checks`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ebmlang.inference.tabular.edge_checks import _edge_chunks, _expansion_submodular_tables, _limit_leq
from ebmlang.inference.tabular.higher_factor import HigherFactor
from ebmlang.inference.tabular.validation import TabularModelError, _check_table_values, _readonly


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
        first, second = self.edges[:, 0], self.edges[:, 1]
        flip = first > second
        keys = np.minimum(first, second) * self.num_variables + np.maximum(first, second)
        if not flip.any() and (keys[1:] > keys[:-1]).all():
            return self  # already one edge per pair, in order
        tables = np.where(flip[:, None, None], self.pairwise.transpose(0, 2, 1), self.pairwise)
        unique_keys, slot = np.unique(keys, return_inverse=True)
        unique_edges = np.stack([unique_keys // self.num_variables, unique_keys % self.num_variables], axis=1)
        if unique_keys.size == keys.size:
            merged = np.empty_like(tables)
            merged[slot.reshape(-1)] = tables
        else:
            merged = np.zeros((unique_keys.size,) + tables.shape[1:])
            np.add.at(merged, slot.reshape(-1), tables)
        return TabularMRF(self.num_labels, self.unary, unique_edges, merged, self.higher, self.constant)

    def merge_parallel_factors(self) -> "TabularMRF":
        """The same model with one table per set of variables: parallel edges summed (as
        `merge_parallel_edges`) and higher-order factors over the same variables (in any
        order) summed into one. Structural checks (submodularity, trees, BP) need this:
        one edge written as several terms is still one edge."""
        merged = self.merge_parallel_edges()
        groups = tuple(_merge_same_scope(f) for f in merged.higher if f.num_factors)
        if all(a is b for a, b in zip(groups, (f for f in merged.higher if f.num_factors))) \
                and len(groups) == len(merged.higher):
            return merged
        return TabularMRF(merged.num_labels, merged.unary, merged.edges, merged.pairwise, groups,
                          merged.constant)

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

    @property
    def has_constraints(self) -> bool:
        """Some table forbids (+inf) a combination of real labels: a hard constraint."""
        if np.isinf(np.where(np.arange(self.max_labels)[None, :] < self.num_labels[:, None],
                             self.unary, 0.0)).any():
            return True
        return bool(np.isinf(self.pairwise).any()) or any(np.isinf(f.table).any() for f in self.higher)

    def violations(self, labels: np.ndarray) -> int:
        """How many table entries of `labels` [n] are +inf (constraints it breaks)."""
        labels = np.asarray(labels, dtype=np.int64)
        count = int(np.isinf(self.unary[np.arange(self.num_variables), labels]).sum())
        if self.num_edges:
            count += int(np.isinf(self.pairwise[np.arange(self.num_edges), labels[self.edges[:, 0]],
                                                labels[self.edges[:, 1]]]).sum())
        return count + sum(int(np.isinf(f.energies(labels)).sum()) for f in self.higher if f.num_factors)

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
        keys = np.concatenate([self.pairwise.reshape(m, -1), first_k[:, None], second_k[:, None]], axis=1)
        _, representative, which = np.unique(_row_bytes(keys), return_index=True, return_inverse=True)
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
        n = self.num_variables
        keys = np.unique(np.minimum(stacked[:, 0], stacked[:, 1]) * n + np.maximum(stacked[:, 0], stacked[:, 1]))
        return np.stack([keys // n, keys % n], axis=1)


def _row_bytes(rows: np.ndarray) -> np.ndarray:
    """Each row of a 2-d array as one raw-bytes value: np.unique on these is far faster than
    np.unique(axis=0) (the order of the distinct rows is not numeric)."""
    rows = np.ascontiguousarray(rows)
    return rows.view(np.dtype((np.void, rows.shape[1] * rows.itemsize))).reshape(-1)


def _merge_same_scope(factor: HigherFactor) -> HigherFactor:
    """`factor` with its rows reordered to sorted variables and rows over one set summed."""
    order = np.argsort(factor.variables, axis=1, kind="stable")
    scopes = np.take_along_axis(factor.variables, order, axis=1)
    _, first, slot = np.unique(_row_bytes(scopes), return_index=True, return_inverse=True)
    unique_scopes = scopes[first]
    slot = slot.reshape(-1)
    if unique_scopes.shape[0] == factor.num_factors and (order == np.arange(factor.arity)).all():
        return factor
    radix, arity = factor.radix, factor.arity
    tables = factor.table.reshape((factor.num_factors,) + (radix,) * arity)
    # Row f's table indexed by sorted positions: axis j of the result is the variable at order[f, j].
    # Rows sharing a permutation are transposed together (at most arity! groups).
    permuted = np.empty_like(tables)
    permutations, which = np.unique(order, axis=0, return_inverse=True)
    for p, permutation in enumerate(permutations):
        rows = which.reshape(-1) == p
        permuted[rows] = tables[rows].transpose((0,) + tuple(int(a) + 1 for a in permutation))
    merged = np.zeros((unique_scopes.shape[0],) + permuted.shape[1:])
    np.add.at(merged, slot, permuted)
    return HigherFactor(unique_scopes, merged.reshape(unique_scopes.shape[0], -1))


def _canonical_padding(pairwise: np.ndarray, first_k: np.ndarray, second_k: np.ndarray) -> np.ndarray:
    """Pairwise tables with rows/columns at padding labels copied from label 0."""
    if pairwise.shape[0] == 0:
        return pairwise
    labels = np.arange(pairwise.shape[1])
    rows = np.where(labels[None, :] < first_k[:, None], labels[None, :], 0)  # [m, K]
    cols = np.where(labels[None, :] < second_k[:, None], labels[None, :], 0)
    edge = np.arange(pairwise.shape[0])[:, None, None]
    return pairwise[edge, rows[:, :, None], cols[:, None, :]]
