"""Templates that are products over their indices, planned as tensor contractions.

`-sum(i in 0..V, k in 0..H) v[i] * W[i, k] * h[k]` lowers to one template of V*H ground
factors; the generic evaluator reads v, W and h once per ground factor and sums. But each
factor of the product depends on only some of the template's indices: v on i, W on (i, k),
h on k. Reading each factor once on the box of its own indices and contracting them,

    einsum("...i,ik,...k->...", v, W, h)       (v @ W @ h over the batch)

is the same sum at the cost of a matrix product, with no per-ground-factor tensor. Index
conditions (`i < j`, `i != k`) are a count of ground factors per point of the index box
(a mask, one more operand); bias sums are matrix-vector products. The contraction order
is the backend's: torch.einsum and jax.numpy.einsum both take it from opt_einsum.

The same plan gives the local field of a variable group in which the energy is linear
(`field_slots`): the contraction of every other factor with the slot's indices kept,
placed at the variables the slot reads. Block Gibbs conditionals use it (conditionals.py).

Planning is numpy, once per template: the box of the template's index values, which
indices each factor depends on (the smallest set of index columns its arrays are a
function of), and a `TemplatePlan` of each factor evaluated at one representative ground
factor per point of its own box, so the evaluator's reads (reshape, slice, gather) apply
unchanged. A template whose body is not a product, whose ground factors fill too little
of their box, or whose factors all depend on every index stays on the evaluator.
"""
from __future__ import annotations

import dataclasses
import string
import weakref
from dataclasses import dataclass

import numpy as np

from ebmlang.graph.ir import Data, FactorGraph, FactorTemplate, Node, ParamRef, Reduce, Slot, walk

from .plans import TemplatePlan
from .template_plan import plan_template
from .totals import _product_factors, is_invariant

# The index box may hold at most this many points per ground factor (plus a little): an
# `i < j` triangle fills half of its square; a chain `j == i + 1` fills 1/N of it and is
# left to the evaluator.
MAX_BOX_PER_GROUND = 2
BOX_SLACK = 64
# Rows compared first when testing which indices a factor depends on: a lattice factor
# that depends on every index is told from a sample, not from all of its rows.
SAMPLE_ROWS = 512
# A product whose factors all depend on every index gains nothing from a contraction; it
# is still planned (for local fields and dense scans) up to this many ground factors.
MAX_PLAIN_GROUND = 1 << 16


@dataclass(frozen=True, eq=False)
class ContractionFactor:
    """One non-invariant factor of a product template, read once per point of its own box.

    dims: the template's index columns it depends on (ascending).
    plan: the factor evaluated at one representative ground factor per point of the box
        of `dims` (row-major): `num_rows` = prod of their extents.
    stateful: it reads a variable (its value has the batch prefix).
    slot: the factor itself when it is a bare, scalar variable read.
    flat: for a slot, the flat index into its group that each box point reads, stored
        under `flat_key`; None when that is arange(group size) (the box is the group's grid).
    """

    node: Node
    dims: tuple[int, ...]
    plan: TemplatePlan
    stateful: bool
    slot: Slot | None = None
    flat: np.ndarray | None = None
    flat_key: str | None = None


@dataclass(frozen=True, eq=False)
class ContractionPlan:
    """A template's energy as sign * prod(scalars) * einsum(factors, counts).

    sizes: the extent of each index column's box. counts: the number of ground factors
    at each box point, as a float array shaped `sizes` (an operand); None when every
    point holds exactly one. reduces: some factor depends on fewer than all indices, so
    the contraction does less work than the evaluator's one product per ground factor.
    scalar_plans: the invariant factors, each planned on one row.
    arrays: the numpy arrays of every factor plan, and the counts under `counts_key`.
    """

    template: FactorTemplate
    sizes: tuple[int, ...]
    factors: tuple[ContractionFactor, ...]
    scalars: tuple[tuple[Node, TemplatePlan], ...]
    negate: bool
    counts_key: str | None
    arrays: dict
    reduces: bool
    # What the evaluator works out from the plan alone, once (`remembered`); kept with the
    # plan, so it goes when the plan's graph does.
    memo: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def remembered(self, key, build):
        """`build()` once per `key` for this plan."""
        if key not in self.memo:
            self.memo[key] = build()
        return self.memo[key]

    def describe(self) -> str:
        """The contraction as einsum subscripts, in the template's index names where they
        are single letters ("...i,ik,...k->..."), a counts operand last when there is one."""
        names = self.template.index_names
        letters = "".join(names) if len(set(names)) == len(names) == len("".join(names)) else self.letters
        spec = [self.subscript(f, letters) for f in self.factors] + ([letters] if self.counts_key else [])
        return ",".join(spec) + "->" + ("..." if any(f.stateful for f in self.factors) else "")

    @property
    def letters(self) -> str:
        return string.ascii_letters[: len(self.sizes)]

    def subscript(self, factor: ContractionFactor, letters: str | None = None) -> str:
        letters = letters or self.letters
        return ("..." if factor.stateful else "") + "".join(letters[d] for d in factor.dims)

    def linear_slots(self, group: str) -> tuple[int, ...] | None:
        """Positions of the factors reading `group`, when each is a bare slot (so the energy
        is a sum of products holding the group's values linearly, one per slot); None when
        some other factor reads the group (inside a function, a network, a vector)."""
        return self.remembered(("linear slots", group), lambda: self._linear_slots(group))

    def _linear_slots(self, group: str) -> tuple[int, ...] | None:
        positions = []
        for number, factor in enumerate(self.factors):
            reads = any(isinstance(n, Slot) and n.group == group for n in walk(factor.node))
            if reads and (factor.slot is None or factor.slot.group != group):
                return None
            if reads:
                positions.append(number)
        for node, _ in self.scalars:
            if any(isinstance(n, Slot) and n.group == group for n in walk(node)):
                return None
        return tuple(positions)

    def repeated_reads(self, group: str) -> np.ndarray:
        """Flat indices of `group` that one ground factor reads through two of its slots
        (where the energy is quadratic, not linear, in that variable)."""
        slots = [self.factors[p].slot for p in self.linear_slots(group) or ()]
        ground = self.template.num_ground
        reads = [np.broadcast_to(np.asarray(s.index).reshape(-1), (ground,)) for s in slots]
        found = [a[a == b] for n, a in enumerate(reads) for b in reads[n + 1:]]
        return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


def plan_contractions(graph: FactorGraph) -> tuple[ContractionPlan | None, ...]:
    """A contraction plan for each template of `graph` where one exists (else None);
    computed once per graph (compilation and query planning both ask)."""
    return tuple(_planned(t, graph, f"c{i}") for i, t in enumerate(graph.templates))


def _planned(template: FactorTemplate, graph: FactorGraph, prefix: str) -> ContractionPlan | None:
    # Keyed by template: a graph re-rolled for a query (observed groups clamped) keeps them.
    plans = _PLANNED.setdefault(template, {})
    if prefix not in plans:
        plans[prefix] = plan_contraction(template, graph, prefix)
    return plans[prefix]


_PLANNED: "weakref.WeakKeyDictionary[FactorTemplate, dict]" = weakref.WeakKeyDictionary()


def plan_contraction(template: FactorTemplate, graph: FactorGraph, prefix: str) -> ContractionPlan | None:
    """The contraction plan of one template, or None when it is not a product over a box
    its ground factors fill well enough (see the module docstring)."""
    ground = template.num_ground
    index_values = np.asarray(template.index_values)
    if ground < 2 or index_values.ndim != 2 or index_values.shape[0] != ground or not index_values.shape[1]:
        return None
    factors, negate = _product_factors(template.body)
    low = index_values.min(axis=0)
    sizes = tuple(int(s) for s in index_values.max(axis=0) - low + 1)
    box = int(np.prod(sizes, dtype=np.float64))
    if box > MAX_BOX_PER_GROUND * ground + BOX_SLACK:
        return None
    varying = {number: _varying_arrays(node, ground) for number, node in enumerate(factors) if not is_invariant(node)}
    # Repeats are harmless in the sample; a large template none of whose factors can drop
    # an index there is left before any full-size array is made (a 4096 x 4096 lattice).
    sample = np.random.default_rng(0).integers(0, ground, size=min(SAMPLE_ROWS, ground))
    sampled = index_values[sample] - low
    if ground > MAX_PLAIN_GROUND and not any(
        _is_function_of(columns, sampled, sizes, [d for d in range(len(sizes)) if d != dim], sample)
        for columns in varying.values() for dim in range(len(sizes))
    ):
        return None
    coords = index_values - low
    points = np.ravel_multi_index(coords.T, sizes)
    counts = np.bincount(points, minlength=box)
    dims_of = {number: _dims_of(columns, coords, sizes, sample) for number, columns in varying.items()}
    reduces = any(len(dims) < len(sizes) for dims in dims_of.values())
    if not dims_of or (not reduces and ground > MAX_PLAIN_GROUND):
        return None
    arrays: dict = {}
    planned, scalars = [], []
    for number, node in enumerate(factors):
        factor_prefix = f"{prefix}f{number}"
        if number not in dims_of:
            plan = plan_template(_with_body(template, node), graph, factor_prefix, rows=np.zeros(1, np.int64))
            scalars.append((node, plan))
            arrays.update(plan.arrays)
            continue
        dims = dims_of[number]
        rows = _representatives(coords, sizes, dims)
        plan = plan_template(_with_body(template, node), graph, factor_prefix, rows=rows)
        arrays.update(plan.arrays)
        slot = node if isinstance(node, Slot) and not node.vector else None
        flat, flat_key = None, None
        if slot is not None:
            index = np.broadcast_to(np.asarray(slot.index).reshape(-1), (ground,))[rows]
            if not np.array_equal(index, np.arange(graph.variables[slot.group].size)):
                flat, flat_key = index.astype(np.int64), f"{factor_prefix}_flat"
                arrays[flat_key] = flat
        stateful = any(isinstance(n, Slot) for n in walk(node))
        planned.append(ContractionFactor(node, dims, plan, stateful, slot, flat, flat_key))
    counts_key = None
    if not np.all(counts == 1):
        counts_key = f"{prefix}_counts"
        arrays[counts_key] = counts.reshape(sizes).astype(np.float64)
    return ContractionPlan(template, sizes, tuple(planned), tuple(scalars), negate, counts_key, arrays, reduces)


def _with_body(template: FactorTemplate, body: Node) -> FactorTemplate:
    return dataclasses.replace(template, body=body)


def _varying_arrays(node: Node, ground: int) -> list[np.ndarray]:
    """The arrays of a factor's leaves that vary over ground factors, as [ground, -1]."""
    found = []
    for leaf in walk(node):
        array = (leaf.index if isinstance(leaf, (Slot, ParamRef)) else
                 leaf.array if isinstance(leaf, Data) else
                 leaf.mask if isinstance(leaf, Reduce) else None)
        if array is None:
            continue
        array = np.asarray(array)
        if array.ndim and array.shape[0] == ground:
            found.append(array.reshape(ground, -1))
    return found


def _dims_of(columns: list[np.ndarray], coords: np.ndarray, sizes: tuple[int, ...], sample: np.ndarray):
    """The smallest set of index columns (greedy, in order) the arrays are a function of."""
    dims = list(range(len(sizes)))
    for dim in range(len(sizes)):
        trial = [d for d in dims if d != dim]
        if _is_function_of(columns, coords[sample], sizes, trial, sample) and _is_function_of(
            columns, coords, sizes, trial, None
        ):
            dims = trial
    return tuple(dims)


def _is_function_of(columns, coords, sizes, dims, rows) -> bool:
    """Whether every array has one row value per point of the box of `dims` (over the
    ground factors `rows`, all when None)."""
    keys = _keys(coords, sizes, dims)
    first = np.full(int(np.prod([sizes[d] for d in dims], dtype=np.int64)), -1, dtype=np.int64)
    order = np.arange(len(keys))
    first[keys[::-1]] = order[::-1]  # the first row of each key wins
    representative = first[keys]
    for array in columns:
        array = array if rows is None else array[rows]
        if not np.array_equal(array[representative], array):
            return False
    return True


def _keys(coords: np.ndarray, sizes: tuple[int, ...], dims) -> np.ndarray:
    if not dims:
        return np.zeros(len(coords), dtype=np.int64)
    return np.ravel_multi_index(coords[:, list(dims)].T, [sizes[d] for d in dims]).astype(np.int64)


def _representatives(coords: np.ndarray, sizes: tuple[int, ...], dims) -> np.ndarray:
    """One ground factor per point of the box of `dims` (row-major); points no ground
    factor projects to get factor 0, whose value the counts multiply by zero."""
    keys = _keys(coords, sizes, dims)
    rows = np.zeros(int(np.prod([sizes[d] for d in dims], dtype=np.int64)), dtype=np.int64)
    rows[keys[::-1]] = np.arange(len(keys), dtype=np.int64)[::-1]
    return rows
