"""Planning local conditionals: the templates touching one Gibbs block, and the
templates linear in the block variable's value whose coefficients add up to a local field.

`plan_block` cuts every template down to the (ground factor, block variable) pairs where
the factor reads the variable, through the block's strided layout where it has one;
`linear_form` recognises a block template that is `sign * scalars * v * rest`.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ebmlang.graph.ir import FactorGraph, Node, Slot, compact_index, walk
from ebmlang.graph.structure_ground import sorted_unique

from ..layout import PackedGroup, find_layout
from .contraction import ContractionPlan
from .plans import BlockPlan, TemplatePlan
from .template_plan import LayoutRows, NoLayoutRead, plan_template
from .totals import _product_factors, is_invariant

# Ground factors per chunk when finding a block's rows: bounded temporaries on any lattice.
ROW_CHUNK = 1 << 18


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


def plan_block(
    graph: FactorGraph,
    group: str,
    flat_indices: np.ndarray,
    packing: Mapping[str, PackedGroup] | None = None,
    contractions: Sequence[ContractionPlan | None] = (),
    only: Collection[int] | None = None,
) -> BlockPlan:
    """Every template touching the block `group[flat_indices]`, cut to the
    (ground factor, block variable) pairs where the factor reads the variable.

    When the block has a strided layout (a checkerboard colour, backends/layout.py), the
    rows of each template part that reads only fixed-offset neighbours are planned
    through it: one row per block variable, no gathers and no scatter. Groups in
    `packing` are read from their class arrays (PackedGroup) where that is possible;
    `BlockPlan.dense_reads` names those that some row still reads from the dense state.

    contractions: the graph's contraction plans (one per template, or None); a template
    whose plan reduces work and is linear in every block value it reads goes to the
    block's `fields` instead (its local field is one contraction, no per-row tensor).
    only: plan just these templates (by number), e.g. the per-unit terms of a dense scan."""
    variables = graph.variables[group]
    size = len(flat_indices)
    # int32 positions where they fit: the gathers below are as long as the templates.
    position = np.full(variables.size, -1, dtype=np.int32 if variables.size < 2 ** 31 else np.int64)
    position[flat_indices] = np.arange(size)
    layout = find_layout(variables.shape, flat_indices)
    restricted, targets, fields = [], [], []
    for number, template in enumerate(graph.templates):
        slots = [s for s in template.slots if s.group == group]
        if not slots or (only is not None and number not in only):
            continue
        contraction = contractions[number] if number < len(contractions) else None
        if _is_linear_field(contraction, group, flat_indices):
            fields.append(contraction)
            continue
        ground = template.num_ground
        reads = [
            np.broadcast_to(s.index, (ground,) + np.shape(s.index)[1:]).reshape(ground, -1)
            for s in slots
        ]
        rows, target, code = _row_codes(reads, position, size, np.asarray(flat_indices))
        if rows.size == 0:
            continue
        # Parts in code order (a linear-time unique of small ints).
        for kind in np.flatnonzero(np.bincount(code)):
            chosen = compact_index(np.flatnonzero(code == kind))
            if not _ascending(target[chosen]):
                chosen = chosen[np.argsort(target[chosen], kind="stable")]
            prefix = f"t{number}p{kind}"
            owners = (group, np.asarray(flat_indices)[target[chosen]])
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
        layout, tuple(fields),
    )


def _is_linear_field(contraction: ContractionPlan | None, group: str, block: np.ndarray) -> bool:
    """Whether a template's part of the block's conditionals is its contracted local field:
    its plan reduces work, reads the group only through bare slots, and no ground factor
    reads a block variable twice (where it would be quadratic in that value)."""
    if contraction is None or not contraction.reduces:
        return False
    slots = contraction.linear_slots(group)
    if not slots:
        return False
    return len(slots) == 1 or not np.isin(contraction.repeated_reads(group), block).any()


def _row_codes(reads: list[np.ndarray], position: np.ndarray, size: int,
               flat_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (ground factor, block position) pairs where a slot reads a block
    variable, by ascending ground factor (rows, targets), and per pair how each slot reads
    that variable -- 0 nowhere, 1 everywhere, 2 somewhere -- as one base-3 code.

    Scalar slots (one read per factor, a lattice's neighbours) work from the [ground,
    slots] block positions alone, in int32 and int16: on a 16-million-site lattice the
    general path's gathers and int64 patterns held about 100 bytes a pair at once."""
    weights = 3 ** np.arange(len(reads), dtype=np.int64)
    if all(read.shape[1] == 1 for read in reads) and len(reads) < 10:
        ground = len(reads[0])
        starts = range(0, ground, ROW_CHUNK)
        chunks = [[read[start:start + ROW_CHUNK, 0] for read in reads] for start in starts]
        if len(chunks) == 1:
            return _scalar_row_codes(chunks[0], position, weights, 0)
        # Counted first, then filled: concatenating the chunks' results would double them.
        total = sum(int(np.count_nonzero(_distinct_reads(_block_columns(c, position)))) for c in chunks)
        rows = np.empty(total, dtype=compact_index(np.array([ground])).dtype)
        target, code = np.empty(total, dtype=position.dtype), np.empty(total, dtype=np.int16)
        filled = 0
        for start, chunk in zip(starts, chunks):
            part = _scalar_row_codes(chunk, position, weights, start)
            for out, values in zip((rows, target, code), part):
                out[filled:filled + len(values)] = values
            filled += len(part[0])
        return rows, target, code
    codes = sorted_unique(np.concatenate([
        np.nonzero(position[read] >= 0)[0] * size + position[read][position[read] >= 0]
        for read in reads
    ]))
    rows, target = codes // size, codes % size
    owner = flat_indices[target]
    hits = [read[rows] == owner[:, None] for read in reads]  # per slot [R, its positions]
    pattern = np.stack([np.where(h.all(-1), 1, np.where(h.any(-1), 2, 0)) for h in hits], axis=1)
    return rows, target, pattern @ weights


def _scalar_row_codes(reads: list[np.ndarray], position: np.ndarray, weights: np.ndarray, first: int):
    """`_row_codes` of ground factors first, first + 1, ... whose slots read one variable
    each: rows (int32 where the template fits), block positions, int16 codes (3^9 < 2^15)."""
    columns = _block_columns(reads, position)
    rows, slots = np.divmod(np.flatnonzero(_distinct_reads(columns)), columns.shape[1])
    target = columns[rows, slots]
    code = np.zeros(len(rows), dtype=np.int16)
    for slot, weight in enumerate(weights):
        code += (columns[rows, slot] == target).astype(np.int16) * np.int16(weight)
    rows += first
    return compact_index(rows), target, code


def _block_columns(reads: list[np.ndarray], position: np.ndarray) -> np.ndarray:
    """[rows, slots]: the block position each slot reads (-1 outside the block)."""
    columns = np.empty((len(reads[0]), len(reads)), dtype=position.dtype)
    for slot, read in enumerate(reads):
        columns[:, slot] = position[read]
    return columns


def _distinct_reads(columns: np.ndarray) -> np.ndarray:
    """[rows, slots] bool: the slot reads a block variable no earlier slot of its row read."""
    keep = columns >= 0
    for slot in range(1, columns.shape[1]):
        keep[:, slot] &= np.all(columns[:, :slot] != columns[:, slot:slot + 1], axis=1)
    return keep


def _ascending(values: np.ndarray) -> bool:
    return bool(np.all(values[1:] >= values[:-1]))
