"""Planning one template: an array key for every leaf, how each variable or param
reference is read (gather, reshape, roll, slice, or a block layout's shifted read), and
the checks of its nodes against the graph.

`plan_graph` plans every template of a graph for whole-state energies; Gibbs block plans
(conditionals.py) call `plan_template` with the rows and layout of one block.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.graph.ir import (
    BINARY_FUNCTIONS,
    UNARY_FUNCTIONS,
    Apply,
    Constant,
    Data,
    FactorGraph,
    FactorTemplate,
    Neural,
    Node,
    ParamRef,
    Reduce,
    Slot,
    walk,
)

from ..layout import BlockLayout, PackedGroup, PackedRead, ShiftedRead
from .plans import Access, TemplatePlan
from .totals import scaled_sum
from .vocabulary import ACTIVATIONS, REDUCE_OPS


def classify_index(index: np.ndarray, grid: tuple[int, ...]) -> Access:
    """Recognise an index array that is a reshape, cyclic shift or box of `grid`'s arange."""
    index = np.asarray(index)
    shape = tuple(index.shape)
    size = int(np.prod(grid, dtype=np.int64)) if grid else 1
    flat = index.reshape(-1)
    if flat.size == 0 or not grid:
        return Access("gather", shape, grid)
    if flat.size == size:
        # The grid's arange in int32 where it fits: half of what int64 held per leaf.
        arange = np.arange(size, dtype=np.int64 if size >= 2 ** 31 else np.int32).reshape(grid)
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
        # Only the box itself, not the whole grid's arange (a block's rows are rarely a box).
        box = tuple((int(a), int(b) + 1) for a, b in zip(start, stop))
        strides = np.cumprod((1,) + tuple(grid[:0:-1]))[::-1]
        inside = sum(np.arange(a, b).reshape((-1,) + (1,) * (len(grid) - 1 - axis)) * int(stride)
                     for axis, ((a, b), stride) in enumerate(zip(box, strides)))
        if np.array_equal(flat, np.asarray(inside).reshape(-1)):
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


def plan_graph(graph: FactorGraph) -> tuple[TemplatePlan, ...]:
    """A plan for every template of `graph`, in the graph's order."""
    return tuple(plan_template(t, graph, f"t{i}") for i, t in enumerate(graph.templates))


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
    if param.init.kind == "mlp" and param.init.activation not in ACTIVATIONS:
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
