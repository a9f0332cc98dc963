"""The plan records built once per template or Gibbs block at compile time (numpy).

`Access` says how a leaf reads its source, `TemplatePlan` holds a template's keys, reads
and arrays, `ScaledSum` its total split into invariant factors and a core, and `BlockPlan`
the templates cut down to one Gibbs block. Planning (template_plan, totals,
conditionals) builds them; evaluation (dispatch and the handlers) only reads them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ebmlang.graph.ir import Apply, Extern, FactorTemplate, Neural, Node, Slot, walk

from ..layout import BlockLayout, PackedRead, ShiftedRead


def may_be_infinite(template: FactorTemplate) -> bool:
    """Whether a template's energy could be +inf: a hard constraint, or a function that
    overflows or has poles (log, division, pow, exp, sqrt), an mlp or an extern."""
    risky = {"violation", "log", "div", "pow", "exp", "expm1", "log1p", "sqrt", "mod"}
    return template.is_constraint or any(
        isinstance(node, (Neural, Extern)) or (isinstance(node, Apply) and node.fn in risky)
        for node in walk(template.body)
    )


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
    fields: templates linear in the block's values whose local field is a contraction
    (ContractionPlan.linear_slots): computed for the whole group, then taken at the block.
    """

    def may_be_infinite(self) -> bool:
        """Whether some value's energy could be +inf (see `may_be_infinite`)."""
        return any(may_be_infinite(t) for t in tuple(p.template for p in self.templates)
                   + tuple(f.template for f in self.fields))

    def dense_reads(self) -> set[str]:
        """Groups some row reads from the dense state (not packed, not the free variable)."""
        return {
            node.group
            for plan in self.templates
            for node in walk(plan.template.body)
            if isinstance(node, Slot) and id(node) not in plan.free_everywhere
            and plan.access[id(node)].kind != "packed"
        } | {group for field in self.fields for group in field.template.groups}

    group: str
    flat_indices: np.ndarray
    values: np.ndarray
    templates: tuple[TemplatePlan, ...]
    targets: tuple[np.ndarray | None, ...]  # None: row r is variable r (a plain add)
    layout: BlockLayout | None = None
    fields: tuple = ()  # ContractionPlans
