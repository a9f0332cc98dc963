"""The generic IR evaluator: one walk over a template's node tree, parameterised by a backend's `ops`.

Two halves:

* **Plans** (numpy, built once at compile time). `plan_template` gives every leaf of a
  template an array key and decides how each variable reference is read: a plain gather,
  or -- when the index array is the group's own grid, a cyclic shift of it or a box
  inside it -- a reshape, `roll` or slice, which is cheaper than a gather on a lattice.
  `plan_block` cuts the templates down to the ground factors touching one Gibbs block
  and marks where each block variable sits, for local conditionals.
* **Evaluation** (any backend). `Evaluator` has one method per IR node kind, found by
  name (`eval_Slot`, `eval_Reduce`, ...); a node kind without one goes to
  `unsupported`. A backend is only its `ops` namespace and array conversion.

Shapes follow ebmlang/ir.py: a node evaluates to `[*prefix, num_rows, *inner]`; leaves
without a prefix (params, data) broadcast against it from the right.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.ir import (
    BINARY_FUNCTIONS,
    UNARY_FUNCTIONS,
    Apply,
    Constant,
    Data,
    Extern,
    FactorGraph,
    FactorTemplate,
    Neural,
    Node,
    ParamRef,
    Reduce,
    Select,
    Slot,
    walk,
)

from .layout import BlockLayout, PackedGroup, PackedRead, ShiftedRead, find_layout

# Activations an `mlp` may name, mapped to the `ops` function that computes them.
ACTIVATIONS = {
    "silu": "silu", "swish": "silu", "relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid",
    "gelu": "gelu", "softplus": "softplus", "elu": "elu", "identity": "identity",
    "linear": "identity",
}

REDUCE_OPS = ("sum", "prod", "mean", "logsumexp", "min", "max")

# What a masked-out entry becomes before reducing, so it changes nothing.
_REDUCE_FILL = {
    "sum": 0.0, "mean": 0.0, "prod": 1.0, "logsumexp": -np.inf, "min": np.inf, "max": -np.inf,
}


# --------------------------------------------------------------------------
# Plans


@dataclass(frozen=True)
class Access:
    """How one Slot or ParamRef reads its (flattened) source.

    kind:
      "gather"    -- take `index` (stored flat under the leaf's key) from the last axis
      "identity"  -- the index is arange(size): a reshape
      "roll"      -- the index is the group's grid rolled by `shifts` along `axes`
                     (only the axes that move): a roll + reshape
      "slice"     -- the index is a box `[start, stop)` per axis of the grid: a slice
      "scalar"    -- a scalar ParamRef (no index)
      "layout"    -- in a block plan with a BlockLayout: each row reads its block
                     variable's cell shifted by a fixed periodic offset (`shifted`)
      "packed"    -- the same read from a packed group's class arrays (`packed`)
    shape: the index array's shape (the value's shape after the prefix).
    grid: the shape of the source group or param.
    """

    kind: str
    shape: tuple[int, ...] = ()
    grid: tuple[int, ...] = ()
    shifts: tuple[int, ...] = ()
    axes: tuple[int, ...] = ()
    box: tuple[tuple[int, int], ...] = ()
    shifted: ShiftedRead | None = None
    packed: PackedRead | None = None


@dataclass(frozen=True, eq=False)
class TemplatePlan:
    """A template ready to evaluate: its leaves' arrays (numpy) under string keys.

    num_rows: ground factors evaluated (all of them, or the rows touching a block).
    The maps are keyed by `id(node)` (nodes hold arrays, so they do not hash by value,
    and torch.compile cannot hash them at all); the template keeps the nodes alive.
    keys: leaf -> key in `arrays` (index, data, mask, constant).
    access: Slot/ParamRef -> how to read it.
    free: for local conditionals, Slot -> key of a boolean array (the slot's index
        shape, one row per evaluated row) that is True where the slot reads the variable
        the row is evaluated for.
    free_everywhere: Slots that read the row's variable at every position: their value
        is the domain's values, with no read of the state at all.
    layout: for a block plan read through a BlockLayout, the layout; its rows are then the
        block's variables in order (num_rows = the block size).
    present: with a layout, the key of a bool [num_rows] array, False for block variables
        this template has no ground factor for (an open boundary): their rows count zero.
    full_masks: Reduce nodes whose mask is true everywhere: it only gives the reduced
        axis its length (a body that does not vary along it is broadcast).
    """

    template: FactorTemplate
    num_rows: int
    keys: Mapping[int, str]
    access: Mapping[int, Access]
    arrays: dict[str, np.ndarray]
    free: Mapping[int, str] = field(default_factory=dict)
    total: "ScaledSum | None" = None
    free_everywhere: frozenset[int] = frozenset()
    layout: BlockLayout | None = None
    present: str | None = None
    full_masks: frozenset[int] = frozenset()


@dataclass(frozen=True, eq=False)
class ScaledSum:
    """A template body read as sign * prod(scalars) * core, where the scalars are the same
    for every row and state (constants, scalar params): the template's total energy is
    then sign * prod(scalars) * sum(core), one full-size multiply fewer per scalar.
    core None: the body is itself such a scalar (total = body * num_rows)."""

    scalars: tuple[Node, ...]
    negate: bool
    core: Node | None


@dataclass(frozen=True, eq=False)
class BlockPlan:
    """The templates touching one Gibbs block, cut down to the rows that touch it.

    targets[t]: for each row of templates[t], the position (0..n-1) in the block of the
    variable that row is evaluated for. A ground factor holding two block variables is
    two rows, one per variable, so every conditional is exact given the rest of the state.
    A template may appear several times, its rows split by which of its slots read the
    row's variable (so those slots need no mask).
    layout: the block's BlockLayout when it has one; templates whose `layout` is set read
    the state through it (no gathers) and need no target.
    """

    def may_be_infinite(self) -> bool:
        """Whether some value's energy could be +inf: a hard constraint, or a function
        that overflows or has poles (log, division, pow, exp, sqrt), an mlp or an extern."""
        risky = {"violation", "log", "div", "pow", "exp", "expm1", "log1p", "sqrt", "mod"}
        return any(
            plan.template.is_constraint
            or isinstance(node, (Neural, Extern))
            or (isinstance(node, Apply) and node.fn in risky)
            for plan in self.templates
            for node in walk(plan.template.body)
        )

    def dense_reads(self) -> set[str]:
        """Groups some row reads from the dense state (not packed, not the free variable)."""
        return {
            node.group
            for plan in self.templates
            for node in walk(plan.template.body)
            if isinstance(node, Slot) and id(node) not in plan.free_everywhere
            and plan.access[id(node)].kind != "packed"
        }

    group: str
    flat_indices: np.ndarray
    values: np.ndarray
    templates: tuple[TemplatePlan, ...]
    targets: tuple[np.ndarray | None, ...]  # None: row r is variable r (a plain add)
    layout: BlockLayout | None = None


def classify_index(index: np.ndarray, grid: tuple[int, ...]) -> Access:
    """Recognise an index array that is a reshape, cyclic shift or box of `grid`'s arange."""
    index = np.asarray(index)
    shape = tuple(index.shape)
    size = int(np.prod(grid, dtype=np.int64)) if grid else 1
    flat = index.reshape(-1)
    if flat.size == 0 or not grid:
        return Access("gather", shape, grid)
    arange = np.arange(size).reshape(grid)
    if flat.size == size:
        if np.array_equal(flat, arange.reshape(-1)):
            return Access("identity", shape, grid)
        first = np.unravel_index(int(flat[0]), grid)
        shifts = tuple(int(-c % n) for c, n in zip(first, grid))
        rolled = np.roll(arange, shifts, axis=tuple(range(len(grid))))
        if np.array_equal(flat, rolled.reshape(-1)):
            # Negative axes: the value has prefix axes in front of the grid's.
            axes = tuple(a - len(grid) for a, shift in enumerate(shifts) if shift)
            return Access("roll", shape, grid, shifts=tuple(x for x in shifts if x), axes=axes)
        return Access("gather", shape, grid)
    start = np.unravel_index(int(flat[0]), grid)
    stop = np.unravel_index(int(flat[-1]), grid)
    extent = [b - a + 1 for a, b in zip(start, stop)]
    if min(extent) >= 1 and int(np.prod(extent)) == flat.size:
        box = tuple((int(a), int(b) + 1) for a, b in zip(start, stop))
        if np.array_equal(flat, arange[tuple(slice(a, b) for a, b in box)].reshape(-1)):
            return Access("slice", shape, grid, box=box)
    return Access("gather", shape, grid)


class NoLayoutRead(Exception):
    """A leaf of a template cannot be read through the block's layout (plan_block then
    plans those rows with gathers)."""


@dataclass(frozen=True)
class LayoutRows:
    """Rows of a block plan to read through `layout`: row r is evaluated for the block
    variable at `positions[r]` (ascending, each at most once)."""

    layout: BlockLayout
    positions: np.ndarray
    packing: Mapping[str, PackedGroup] | None = None

    def expand(self, array: np.ndarray, fill) -> np.ndarray:
        """A per-row array [R, ...] spread to one row per block variable, `fill` elsewhere."""
        full = np.full((self.layout.size,) + array.shape[1:], fill, dtype=array.dtype)
        full[self.positions] = array
        return full

    def access(self, index: np.ndarray, grid: tuple[int, ...], group: str | None = None) -> tuple[Access, list[np.ndarray]]:
        """The layout read of a per-row index into a source shaped `grid` (variable group
        `group`, packed or not, or a param), and its masks."""
        offset = self.layout.shift_of(index, grid, self.positions)
        if offset is None:
            raise NoLayoutRead
        if self.packing and group in self.packing:
            planned = PackedRead.plan(self.layout, self.packing[group], offset)
            if planned is None:
                raise NoLayoutRead
            read, masks = planned
            return Access("packed", (self.layout.size,), tuple(grid), packed=read), masks
        shifted, masks = ShiftedRead.plan(self.layout, offset)
        return Access("layout", (self.layout.size,), tuple(grid), shifted=shifted), masks


def plan_template(
    template: FactorTemplate,
    graph: FactorGraph,
    prefix: str,
    rows: np.ndarray | None = None,
    owners: tuple[str, np.ndarray] | None = None,
    layout_rows: LayoutRows | None = None,
) -> TemplatePlan:
    """Keys, arrays and read paths for every leaf of `template` (numpy, done once).

    rows: evaluate only these ground factors (in this order, repeats allowed).
    owners: (group, flat index per row): Slots of `group` reading that index are free
        (local conditionals put every value of the domain there).
    layout_rows: read the rows through a block layout (one row per block variable);
        raises NoLayoutRead when a leaf cannot be.
    """
    num_ground = template.num_ground

    def cut(array: np.ndarray) -> np.ndarray:
        # Leaves that vary per ground factor keep the chosen rows; size-1 leading axes broadcast.
        array = np.asarray(array)
        if rows is not None and array.ndim >= 1 and array.shape[0] == num_ground > 1:
            return array[rows]
        return array

    def per_row(array: np.ndarray) -> bool:
        return rows is not None and array.ndim >= 1 and array.shape[0] == num_ground > 1

    def spread(array: np.ndarray, fill) -> np.ndarray:
        # Under a layout, per-row leaves get one row per block variable.
        if layout_rows is not None and per_row(array):
            return layout_rows.expand(cut(array), fill)
        return cut(array)

    keys: dict[int, str] = {}
    access: dict[int, Access] = {}
    arrays: dict[str, np.ndarray] = {}
    free: dict[int, str] = {}
    free_everywhere: set[int] = set()
    full_masks: set[int] = set()
    for number, node in enumerate(walk(template.body)):
        key = f"{prefix}_n{number}"
        at = id(node)
        if isinstance(node, Slot):
            group = _group(graph, node)
            full_index = _checked_index(node, group.size, f"variable group '{group.name}'")
            index = cut(full_index)
            access[at] = classify_index(index, group.shape)
            is_free = None
            if owners is not None and node.group == owners[0]:
                is_free = index == owners[1].reshape((-1,) + (1,) * (index.ndim - 1))
            if is_free is not None and is_free.all():
                free_everywhere.add(at)
                continue
            if layout_rows is not None and per_row(full_index):
                if node.vector or (is_free is not None and is_free.any()):
                    raise NoLayoutRead
                access[at], masks = layout_rows.access(index, group.shape, node.group)
                keys[at] = key
                arrays.update({f"{key}_choice{k + 1}": mask for k, mask in enumerate(masks)})
                continue
            if access[at].kind == "gather":
                keys[at] = key
                arrays[key] = index.reshape(-1).astype(np.int64)
            if is_free is not None and is_free.any():
                free[at] = key + "_free"
                arrays[free[at]] = is_free
        elif isinstance(node, ParamRef):
            param = _param(graph, node.param, node)
            if node.index is None:
                access[at] = Access("scalar", (), param.shape)
                continue
            full_index = _checked_index(node, param.size, f"param '{param.name}'")
            index = cut(full_index)
            if layout_rows is not None and per_row(full_index):
                access[at], masks = layout_rows.access(index, tuple(param.shape))
                keys[at] = key
                arrays.update({f"{key}_choice{k + 1}": mask for k, mask in enumerate(masks)})
                continue
            access[at] = classify_index(index, (param.size,))
            if access[at].kind != "identity":
                access[at] = Access("gather", tuple(index.shape), param.shape)
                keys[at] = key
                arrays[key] = index.reshape(-1).astype(np.int64)
        elif isinstance(node, Data):
            keys[at] = key
            arrays[key] = spread(np.asarray(node.array, dtype=np.float64), 0.0)
        elif isinstance(node, Constant):
            keys[at] = key
            arrays[key] = np.asarray(float(node.value), dtype=np.float64)
        elif isinstance(node, Reduce):
            if node.op not in REDUCE_OPS:
                raise EbmError(
                    f"unknown reduction '{node.op}'", node.span,
                    expected="one of " + ", ".join(REDUCE_OPS),
                )
            if node.mask is not None:
                keys[at] = key
                arrays[key] = spread(np.asarray(node.mask, dtype=bool), True)
                if arrays[key].all():  # only its shape matters: no select per call
                    full_masks.add(at)
        elif isinstance(node, Neural):
            _check_mlp(graph, node)
        elif isinstance(node, Apply):
            _check_apply(node)
    num_rows = num_ground if rows is None else len(rows)
    layout, present = None, None
    if layout_rows is not None:
        layout, num_rows = layout_rows.layout, layout_rows.layout.size
        if len(layout_rows.positions) < num_rows:
            present = f"{prefix}_present"
            arrays[present] = layout_rows.expand(np.ones(len(layout_rows.positions), dtype=bool), False)
    return TemplatePlan(template, num_rows, keys, access, arrays, free, scaled_sum(template.body),
                        frozenset(free_everywhere), layout, present, frozenset(full_masks))


def is_invariant(node: Node) -> bool:
    """Whether a node has one value for every row, inner position and state."""
    if isinstance(node, Constant):
        return True
    if isinstance(node, ParamRef):
        return node.index is None or np.size(node.index) == 1
    if isinstance(node, Data):
        return np.size(node.array) == 1
    if isinstance(node, Apply):
        return all(is_invariant(a) for a in node.args)
    return False


def scaled_sum(body: Node) -> ScaledSum:
    """Split a body that is a product (with negations) into its invariant factors and the
    product of the rest: `-J * s[i] * s[j]` -> scalars (J,), negated, core s[i] * s[j]."""
    factors, negate = _product_factors(body)
    scalars = tuple(f for f in factors if is_invariant(f))
    rest = [f for f in factors if not is_invariant(f)]
    if not rest:
        return ScaledSum((body,), False, None)
    if not scalars and not negate:
        return ScaledSum((), False, body)
    core = rest[0]
    for factor in rest[1:]:
        core = Apply(factor.span, "mul", (core, factor))
    return ScaledSum(scalars, negate, core)


def _product_factors(node: Node) -> tuple[list[Node], bool]:
    """The factors of a chain of `mul`s and `neg`s, and whether an odd number of negations."""
    if isinstance(node, Apply) and node.fn == "neg":
        factors, negate = _product_factors(node.args[0])
        return factors, not negate
    if isinstance(node, Apply) and node.fn == "mul":
        left, left_negate = _product_factors(node.args[0])
        right, right_negate = _product_factors(node.args[1])
        return left + right, left_negate != right_negate
    return [node], False


@dataclass(frozen=True, eq=False)
class TotalGroup:
    """Templates whose energy totals share their invariant factors and one core factor:
    sum_t c * sum_g a_g * b_tg = c * sum_g a_g * (sum_t b_tg) -- one reduction instead of
    one per template (lowering splits `s[i] * (s[j] + s[k])` into additive templates).

    plans[0]'s core is `shared * others[0]`; plans[t]'s core is `(its copy of shared) * others[t]`.
    A group of one plan is evaluated by `Evaluator.template_total`.
    """

    plans: tuple[TemplatePlan, ...]
    shared: Node | None = None
    others: tuple[Node, ...] = ()


def group_totals(plans: tuple[TemplatePlan, ...]) -> tuple[TotalGroup, ...]:
    """Merge the totals of templates that differ only in one factor of a pairwise core."""
    groups: list[_Merging] = []
    by_key: dict[tuple, _Merging] = {}
    for plan in plans:
        options = _merge_options(plan)
        if not any(key in by_key and by_key[key].join(key, plan, other) for key, _, other in options):
            group = _Merging([plan], {key: (shared, other) for key, shared, other in options})
            groups.append(group)
            for key, _, _ in options:
                by_key.setdefault(key, group)
    return tuple(
        TotalGroup(tuple(g.plans), g.shared, tuple(g.others)) if len(g.plans) > 1
        else TotalGroup((g.plans[0],))
        for g in groups
    )


@dataclass
class _Merging:
    """A TotalGroup being built: until a second plan joins, either factor of the first
    plan's core may turn out to be the shared one (`options`: key -> (shared, other))."""

    plans: list[TemplatePlan]
    options: dict[tuple, tuple[Node, Node]]
    key: tuple | None = None
    shared: Node | None = None
    others: list[Node] = field(default_factory=list)

    def join(self, key: tuple, plan: TemplatePlan, other: Node) -> bool:
        if self.key is None:
            self.key, (self.shared, first) = key, self.options[key]
            self.others = [first]
        elif self.key != key:
            return False
        self.plans.append(plan)
        self.others.append(other)
        return True


def _merge_options(plan: TemplatePlan) -> list[tuple[tuple, Node, Node]]:
    """(key, shared factor, other factor) for each factor of a pairwise core that could be
    shared; the key also holds what else must match (rows, scalars, sign)."""
    total = plan.total
    if not (isinstance(total.core, Apply) and total.core.fn == "mul"):
        return []
    scalars = [signature(s, plan) for s in total.scalars]
    if None in scalars:
        return []
    options = []
    for shared, other in (total.core.args, total.core.args[::-1]):
        key = signature(shared, plan)
        if key is not None:
            options.append(((plan.num_rows, tuple(sorted(scalars, key=repr)), total.negate, key), shared, other))
    return options


def signature(node: Node, plan: TemplatePlan) -> tuple | None:
    """A hashable description equal for nodes that evaluate to the same values; None for
    nodes not worth comparing (mlps, externs, reductions)."""
    if isinstance(node, Constant):
        return ("constant", float(node.value))
    if isinstance(node, Slot):
        found = plan.access[id(node)]
        index = plan.arrays[plan.keys[id(node)]].tobytes() if id(node) in plan.keys else b""
        return ("slot", node.group, node.vector, found, index)
    if isinstance(node, ParamRef):
        index = None if node.index is None else (np.shape(node.index), np.asarray(node.index).tobytes())
        return ("param", node.param, index)
    if isinstance(node, Data):
        return ("data", np.shape(node.array), np.asarray(node.array, dtype=np.float64).tobytes())
    if isinstance(node, Apply):
        args = tuple(signature(a, plan) for a in node.args)
        return None if None in args else ("apply", node.fn) + args
    return None


@dataclass(frozen=True, eq=False)
class LinearForm:
    """A block plan's template that is `sign * scalars * v * rest`, linear in the value v
    of the row's variable (one free slot, as a factor of the product): its rows are
    values ⊗ coefficient, so a conditional sums the coefficients of all such templates
    per variable -- the local field -- and multiplies by the values once."""

    scalars: tuple[Node, ...]
    negate: bool
    rest: tuple[Node, ...]


def linear_form(plan: TemplatePlan) -> LinearForm | None:
    """The LinearForm of a block plan's template, or None when it is not linear in v."""
    factors, negate = _product_factors(plan.template.body)
    free = [f for f in factors if isinstance(f, Slot) and id(f) in plan.free_everywhere and not f.vector]
    if len(free) != 1 or plan.free:
        return None
    others = [f for f in factors if f is not free[0]]
    if any(isinstance(n, Slot) and id(n) in plan.free_everywhere for f in others for n in walk(f)):
        return None
    scalars = tuple(f for f in others if is_invariant(f))
    rest = tuple(f for f in others if not is_invariant(f))
    return LinearForm(scalars, negate, rest)


def plan_graph(graph: FactorGraph) -> tuple[TemplatePlan, ...]:
    """A plan for every template of `graph`, in the graph's order."""
    return tuple(plan_template(t, graph, f"t{i}") for i, t in enumerate(graph.templates))


def plan_block(
    graph: FactorGraph,
    group: str,
    flat_indices: np.ndarray,
    packing: Mapping[str, PackedGroup] | None = None,
) -> BlockPlan:
    """Every template touching the block `group[flat_indices]`, cut to the
    (ground factor, block variable) pairs where the factor reads the variable.

    When the block has a strided layout (a checkerboard colour, backends/layout.py), the
    rows of each template part that reads only fixed-offset neighbours are planned
    through it: one row per block variable, no gathers and no scatter. Groups in
    `packing` are read from their class arrays (PackedGroup) where that is possible;
    `BlockPlan.dense_reads` names those that some row still reads from the dense state."""
    variables = graph.variables[group]
    size = len(flat_indices)
    position = np.full(variables.size, -1, dtype=np.int64)
    position[flat_indices] = np.arange(size)
    layout = find_layout(variables.shape, flat_indices)
    restricted, targets = [], []
    for number, template in enumerate(graph.templates):
        slots = [s for s in template.slots if s.group == group]
        if not slots:
            continue
        ground = template.num_ground
        reads = [
            np.broadcast_to(s.index, (ground,) + np.shape(s.index)[1:]).reshape(ground, -1)
            for s in slots
        ]
        codes = np.unique(np.concatenate([
            np.nonzero(position[read] >= 0)[0] * size + position[read][position[read] >= 0]
            for read in reads
        ]))
        if codes.size == 0:
            continue
        rows, target = codes // size, codes % size
        owner = np.asarray(flat_indices)[target]
        # How each slot reads the row's variable: 0 nowhere, 1 everywhere, 2 somewhere.
        hits = [read[rows] == owner[:, None] for read in reads]  # per slot [R, its positions]
        pattern = np.stack([np.where(h.all(-1), 1, np.where(h.any(-1), 2, 0)) for h in hits], axis=1)
        # One base-3 code per row; parts in code order (a linear-time unique of small ints).
        code = pattern @ (3 ** np.arange(pattern.shape[1], dtype=np.int64))
        for kind in np.flatnonzero(np.bincount(code)):
            chosen = np.flatnonzero(code == kind)
            chosen = chosen[np.argsort(target[chosen], kind="stable")]
            prefix = f"t{number}p{kind}"
            owners = (group, owner[chosen])
            positions = target[chosen]
            if layout is not None and np.all(np.diff(positions) > 0):
                try:
                    restricted.append(plan_template(
                        template, graph, prefix, rows[chosen], owners, LayoutRows(layout, positions, packing)
                    ))
                    targets.append(None)
                    continue
                except NoLayoutRead:
                    pass
            restricted.append(plan_template(template, graph, prefix, rows[chosen], owners))
            # Rows covering every block variable once, in order, add without a scatter.
            in_order = len(chosen) == size and np.array_equal(positions, np.arange(size))
            targets.append(None if in_order else positions)
    return BlockPlan(
        group, np.asarray(flat_indices), variables.domain.values, tuple(restricted), tuple(targets),
        layout,
    )


def _group(graph: FactorGraph, slot: Slot):
    if slot.group not in graph.variables:
        raise EbmError(
            f"the factor graph reads an undeclared variable group '{slot.group}'", slot.span,
            hint="this is a lowering bug; the template's Slot names a group missing from graph.variables",
        )
    return graph.variables[slot.group]


def _param(graph: FactorGraph, name: str, node: Node):
    if name not in graph.params:
        raise EbmError(
            f"the factor graph reads an undeclared param '{name}'", node.span,
            hint="this is a lowering bug; the template names a param missing from graph.params",
        )
    return graph.params[name]


def _checked_index(node: Node, size: int, what: str) -> np.ndarray:
    index = np.asarray(node.index)
    if not np.issubdtype(index.dtype, np.integer):
        raise EbmError(f"index array into {what} is not integer ({index.dtype})", node.span)
    if index.size and (index.min() < 0 or index.max() >= size):
        raise EbmError(
            f"index out of range for {what} of size {size}: "
            f"indices run from {index.min()} to {index.max()}",
            node.span,
            hint="check the index arithmetic of this term against the declared shape",
        )
    return index


def _check_mlp(graph: FactorGraph, node: Neural) -> None:
    param = _param(graph, node.param, node)
    if not param.is_neural:
        raise EbmError(
            f"'{node.param}' is called like a network but is not an mlp param", node.span,
            notes=[(param.span, f"'{node.param}' is declared here")],
        )
    if param.init.activation not in ACTIVATIONS:
        raise EbmError(
            f"unknown activation '{param.init.activation}' for mlp '{param.name}'", param.span,
            expected="one of " + ", ".join(sorted(ACTIVATIONS)),
        )


def _check_apply(node: Apply) -> None:
    arity = 2 if node.fn in BINARY_FUNCTIONS else 1
    if node.fn not in UNARY_FUNCTIONS + BINARY_FUNCTIONS + ("violation",):
        raise EbmError(f"unknown function '{node.fn}'", node.span)
    if len(node.args) != arity:
        raise EbmError(f"'{node.fn}' takes {arity} argument(s), got {len(node.args)}", node.span)


# --------------------------------------------------------------------------
# Evaluation


@dataclass(frozen=True)
class EvalContext:
    """What a template evaluation reads besides its plan.

    arrays: backend arrays under the plan's keys (index arrays, data, masks, constants).
    state: group -> flattened state [*prefix, size] (prefix [batch] or [batch, 1]).
    params: name -> param array in its declared shape.
    prefix: the leading shape every template value is broadcast to.
    free_values: the block domain's values [K] for local conditionals, else None.
    packed: group -> class arrays [*prefix, *grid[:-1], runs] of packed groups (PackedGroup).
    """

    arrays: Mapping[str, Any]
    state: Mapping[str, Any]
    params: Mapping[str, Any]
    prefix: tuple[int, ...]
    free_values: Any = None
    packed: Mapping[str, tuple] | None = None


class Evaluator:
    """Evaluates IR node trees with one backend's `ops`; a method per node kind."""

    def __init__(
        self,
        ops: Any,
        backend_name: str,
        graph: FactorGraph,
        lookup_extern: Callable[[str], Callable | None],
    ):
        self.ops = ops
        self.backend_name = backend_name
        self.lookup_extern = lookup_extern
        # mlp param -> (number of layers, ops function of its activation)
        self.mlps = {
            name: (len(p.init.layer_sizes) - 1, getattr(ops, ACTIVATIONS.get(p.init.activation, "silu")))
            for name, p in graph.params.items()
            if p.is_neural
        }
        self.unary = {
            "neg": lambda x: -x, "exp": ops.exp, "log": ops.log, "softplus": ops.softplus,
            "sigmoid": ops.sigmoid, "tanh": ops.tanh, "abs": ops.abs, "sqrt": ops.sqrt,
            "relu": ops.relu, "sin": ops.sin, "cos": ops.cos, "square": ops.square,
            "not": lambda x: ops.as_float(x == 0), "log1p": ops.log1p, "expm1": ops.expm1,
        }
        self.binary = {
            "add": lambda a, b: a + b, "sub": lambda a, b: a - b,
            "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
            "pow": ops.power, "mod": ops.mod,
            "eq": lambda a, b: ops.as_float(a == b), "ne": lambda a, b: ops.as_float(a != b),
            "lt": lambda a, b: ops.as_float(a < b), "le": lambda a, b: ops.as_float(a <= b),
            "gt": lambda a, b: ops.as_float(a > b), "ge": lambda a, b: ops.as_float(a >= b),
            "and": lambda a, b: ops.as_float(ops.logical_and(a != 0, b != 0)),
            "or": lambda a, b: ops.as_float(ops.logical_or(a != 0, b != 0)),
        }

    # -- entry points ------------------------------------------------------

    def template_value(self, plan: TemplatePlan, ctx: EvalContext):
        """Energy of every row of `plan`: [*ctx.prefix, plan.num_rows]."""
        value = self.ops.broadcast_to(self.evaluate(plan.template.body, plan, ctx), ctx.prefix + (plan.num_rows,))
        if plan.present is not None:
            value = self.ops.where(ctx.arrays[plan.present], value, 0.0)
        return value

    def template_total(self, plan: TemplatePlan, ctx: EvalContext):
        """Sum of `template_value` over the rows, [*ctx.prefix], with invariant factors
        applied after the sum (see ScaledSum)."""
        ops, total = self.ops, plan.total
        shape = ctx.prefix + (plan.num_rows,)
        if total.core is None:
            value = ops.zeros(ctx.prefix) + float(plan.num_rows)
        elif isinstance(total.core, Apply) and total.core.fn == "mul":
            # sum(a * b) as one fused dot product: no full-size temporary in either pass.
            left, right = (self.evaluate(a, plan, ctx) for a in total.core.args)
            value = ops.vecdot(ops.broadcast_to(left, shape), ops.broadcast_to(right, shape))
        else:
            value = ops.sum(ops.broadcast_to(self.evaluate(total.core, plan, ctx), shape), -1)
        return self._scaled(value, total, plan, ctx)

    def _scaled(self, value, total: ScaledSum, plan: TemplatePlan, ctx: EvalContext):
        for scalar in total.scalars:  # size-1 values of any rank: apply as 0-d
            value = value * self.ops.reshape(self.evaluate(scalar, plan, ctx), ())
        return -value if total.negate else value

    def group_total(self, group: TotalGroup, ctx: EvalContext):
        """Sum of the totals of a TotalGroup's templates: [*ctx.prefix]."""
        if len(group.plans) == 1:
            return self.template_total(group.plans[0], ctx)
        ops, first = self.ops, group.plans[0]
        shape = ctx.prefix + (first.num_rows,)
        others = None
        for plan, other in zip(group.plans, group.others):
            value = self.evaluate(other, plan, ctx)
            others = value if others is None else others + value
        shared = self.evaluate(group.shared, first, ctx)
        value = ops.vecdot(ops.broadcast_to(shared, shape), ops.broadcast_to(others, shape))
        return self._scaled(value, first.total, first, ctx)

    def linear_coefficient(self, plan: TemplatePlan, form: LinearForm, ctx: EvalContext):
        """The product of a LinearForm template's `rest`, per row: [*ctx.prefix[:1], 1,
        num_rows] (no value axis), zero on rows the template does not have; neither its
        scalars nor its sign applied. None when that is 1 on every row (no `rest`, no
        open boundary), so callers add a number instead of a materialised array of ones."""
        ops = self.ops
        if not form.rest and plan.present is None:
            return None
        value = None
        for factor in form.rest:
            read = self.evaluate(factor, plan, ctx)
            value = read if value is None else value * read
        shape = ctx.prefix[:1] + (1,) * (len(ctx.prefix) - 1) + (plan.num_rows,)
        value = ops.broadcast_to(value if value is not None else ops.zeros((1,)) + 1.0, shape)
        if plan.present is not None:
            value = ops.where(ctx.arrays[plan.present], value, 0.0)
        return value

    def scalar_product(self, scalars: tuple[Node, ...], plan: TemplatePlan, ctx: EvalContext):
        value = None
        for scalar in scalars:
            read = self.ops.reshape(self.evaluate(scalar, plan, ctx), ())
            value = read if value is None else value * read
        return value

    def evaluate(self, node: Node, plan: TemplatePlan, ctx: EvalContext):
        method = getattr(self, "eval_" + type(node).__name__, None)
        if method is None:
            return self.unsupported(node)
        return method(node, plan, ctx)

    def unsupported(self, node: Node):
        raise EbmError(
            f"the {self.backend_name} backend cannot evaluate a {type(node).__name__} node",
            node.span,
            hint="add an eval_" + type(node).__name__ + " method to backends/evaluator.py",
        )

    # -- leaves ------------------------------------------------------------

    def eval_Constant(self, node: Constant, plan: TemplatePlan, ctx: EvalContext):
        return ctx.arrays[plan.keys[id(node)]]

    def eval_Data(self, node: Data, plan: TemplatePlan, ctx: EvalContext):
        return ctx.arrays[plan.keys[id(node)]]

    def eval_Slot(self, node: Slot, plan: TemplatePlan, ctx: EvalContext):
        if id(node) in plan.free_everywhere:
            shape = plan.access[id(node)].shape
            return self.ops.reshape(ctx.free_values, (-1,) + (1,) * len(shape))
        found = plan.access[id(node)]
        if found.kind == "packed":
            classes = ctx.packed[node.group]
            key = plan.keys[id(node)]
            masks = [ctx.arrays[f"{key}_choice{k}"] for k in range(1, plan.layout.stride)]
            lead = tuple(classes[0].shape[: len(classes[0].shape) - len(plan.layout.grid)])
            return found.packed.read(self.ops, plan.layout, classes, lead, masks)
        flat = ctx.state[node.group]
        value = self._read(flat, found, plan.keys.get(id(node)), plan, ctx)
        if id(node) in plan.free:
            is_free = ctx.arrays[plan.free[id(node)]]
            candidates = self.ops.reshape(ctx.free_values, (-1,) + (1,) * is_free.ndim)
            value = self.ops.where(is_free, candidates, value)
        return value

    def eval_ParamRef(self, node: ParamRef, plan: TemplatePlan, ctx: EvalContext):
        param = ctx.params[node.param]
        found = plan.access[id(node)]
        if found.kind == "scalar":
            return self.ops.reshape(param, ())
        return self._read(self.ops.reshape(param, (-1,)), found, plan.keys.get(id(node)), plan, ctx)

    def _read(self, flat, found: Access, key: str | None, plan: TemplatePlan, ctx: EvalContext):
        """Values of `flat` [*lead, size] read as `found` says (arrays under `key`):
        [*lead, *found.shape]."""
        ops = self.ops
        lead = tuple(flat.shape[:-1])
        if found.kind == "layout":
            masks = [ctx.arrays[f"{key}_choice{k}"] for k in range(1, plan.layout.stride)]
            return found.shifted.read(ops, plan.layout, flat, lead, masks)
        index = ctx.arrays.get(key)
        if found.kind == "gather":
            # Gather from a 2-D view: torch's index_select is ~10x slower on [b, 1, n].
            rows = ops.reshape(flat, (-1, flat.shape[-1]))
            return ops.reshape(ops.take(rows, index, -1), lead + found.shape)
        if found.kind == "identity":
            return ops.reshape(flat, lead + found.shape)
        grid = ops.reshape(flat, lead + found.grid)
        if found.kind == "roll":
            moved = ops.roll(grid, found.shifts, found.axes)
        else:
            moved = grid[(...,) + tuple(slice(a, b) for a, b in found.box)]
        return ops.reshape(moved, lead + found.shape)

    # -- interior nodes ----------------------------------------------------

    def eval_Apply(self, node: Apply, plan: TemplatePlan, ctx: EvalContext):
        args = [self.evaluate(a, plan, ctx) for a in node.args]
        if node.fn == "violation":
            return self.ops.where(args[0] != 0, 0.0, np.inf)
        if node.fn in self.unary:
            return self.unary[node.fn](args[0])
        if node.fn == "pow" and isinstance(node.args[1], Constant):
            exponent = float(node.args[1].value)
            if exponent == 2.0:
                return self.ops.square(args[0])
            if exponent.is_integer():
                return self.ops.power(args[0], int(exponent))
        return self.binary[node.fn](args[0], args[1])

    def eval_Reduce(self, node: Reduce, plan: TemplatePlan, ctx: EvalContext):
        ops = self.ops
        body = self.evaluate(node.body, plan, ctx)
        mask = ctx.arrays[plan.keys[id(node)]] if id(node) in plan.keys else None
        masked = mask is not None and id(node) not in plan.full_masks
        if masked:
            body = ops.where(mask, body, _REDUCE_FILL[node.op])
        elif mask is not None:
            full = np.broadcast_shapes(tuple(body.shape), tuple(mask.shape))
            if tuple(body.shape) != full:
                body = ops.broadcast_to(body, full)
        if node.op == "sum":
            return ops.sum(body, -1)
        if node.op == "mean":
            if not masked:
                return ops.mean(body, -1)
            # A mask constant along the reduced axis counts every entry the body has there.
            count = ops.sum(ops.as_float(mask), -1) * (body.shape[-1] if mask.shape[-1] == 1 else 1)
            return ops.sum(body, -1) / count
        if node.op == "prod":
            return ops.prod(body, -1)
        if node.op == "logsumexp":
            return ops.logsumexp(body, -1)
        if node.op == "min":
            return ops.min(body, -1)
        return ops.max(body, -1)

    def eval_Neural(self, node: Neural, plan: TemplatePlan, ctx: EvalContext):
        ops = self.ops
        values = [self.evaluate(a, plan, ctx) for a in node.args]
        vector = [isinstance(a, Slot) and a.vector for a in node.args]
        lead = np.broadcast_shapes(
            *(tuple(v.shape[:-1]) if is_vec else tuple(v.shape) for v, is_vec in zip(values, vector))
        )
        features = [
            ops.broadcast_to(v, lead + (v.shape[-1],)) if is_vec
            else ops.reshape(ops.broadcast_to(v, lead), lead + (1,))
            for v, is_vec in zip(values, vector)
        ]
        hidden = features[0] if len(features) == 1 else ops.concatenate(features, -1)
        layers, activation = self.mlps[node.param]
        for number in range(layers):
            weight = ctx.params[f"{node.param}.{number}.weight"]
            bias = ctx.params[f"{node.param}.{number}.bias"]
            hidden = ops.linear(hidden, weight, bias)
            if number < layers - 1:
                hidden = activation(hidden)
        return hidden

    def eval_Select(self, node: Select, plan: TemplatePlan, ctx: EvalContext):
        ops = self.ops
        vector = self.evaluate(node.vector, plan, ctx)
        if isinstance(node.index, Constant):
            return vector[..., int(node.index.value)]
        index = ops.as_int(ops.round(self.evaluate(node.index, plan, ctx)))
        lead = np.broadcast_shapes(tuple(vector.shape[:-1]), tuple(index.shape))
        vector = ops.broadcast_to(vector, lead + (vector.shape[-1],))
        index = ops.reshape(ops.broadcast_to(index, lead), lead + (1,))
        return ops.reshape(ops.take_along_axis(vector, index, -1), lead)

    def eval_Extern(self, node: Extern, plan: TemplatePlan, ctx: EvalContext):
        fn = self.lookup_extern(node.name)
        if fn is None:
            raise EbmError(
                f"extern '{node.name}' has no implementation for the {self.backend_name} backend",
                node.span,
                hint=f"call register_extern('{node.name}', fn) on the backend or compiled graph",
            )
        return fn(*[self.evaluate(a, plan, ctx) for a in node.args])
