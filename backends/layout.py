"""Strided block layouts: Gibbs blocks read and written without a gather or a scatter.

A colour class of a lattice is rarely an arbitrary set of sites. On a checkerboard every
pair of neighbouring cells along the last axis holds exactly one site of each colour; on
a 3-colourable stripe pattern every run of three does. Such a block is a `BlockLayout`:
the grid's last axis is cut into runs of `stride` cells and the block takes one cell of
every run, in row-major order. Its values are then one strided slice per offset and a
select, and a new value is written back with one masked select over the grid.

A ground factor that reads the block variable's neighbour at a fixed (periodic) offset
reads, for the whole block at once, the grid rolled by that offset through the same
layout -- a roll, slices and a select, all of which XLA fuses and torch runs as
contiguous passes, where index arrays would cost a gather per neighbour and a scatter
per update. `plan_block` (backends/evaluator/conditionals.py) uses these reads where they apply and
keeps the general gathers elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ebmlang.graph.ir import compact_index

SHIFT_CHUNK = 1 << 18  # rows per chunk when checking a read's offset

# Layouts are checkerboards (2), stripes of 3 and the like; a larger stride is a sparse
# block better read with a gather.
MAX_STRIDE = 8
# Keys of the layout's arrays among a block's backend arrays.
MEMBER_KEY = "layout_member"


def choice_key(offset: int) -> str:
    return f"layout_choice{offset}"


@dataclass(frozen=True, eq=False)
class BlockLayout:
    """A block holding one cell of every run of `stride` cells along the last grid axis.

    grid: the group's shape. flat_indices: the block, ascending (run r holds site r).
    choices[k - 1]: bool [*grid[:-1], grid[-1] // stride], True where a run's site sits at
        offset k of the run (offset 0 is where no choice is True).
    member: bool grid, True at the block's sites.
    """

    grid: tuple[int, ...]
    stride: int
    flat_indices: np.ndarray
    choices: tuple[np.ndarray, ...]
    member: np.ndarray

    @property
    def size(self) -> int:
        return len(self.flat_indices)

    def arrays(self) -> dict[str, np.ndarray]:
        """The numpy arrays reads and writes need, under their block keys."""
        out = {choice_key(k + 1): choice for k, choice in enumerate(self.choices)}
        out[MEMBER_KEY] = self.member
        return out

    def shift_of(self, index: np.ndarray, grid: tuple[int, ...], positions: np.ndarray) -> tuple[int, ...] | None:
        """The periodic offset d with index[r] = site(positions[r]) + d (mod grid) for every
        row r, where `index` reads a source shaped like the block's grid; None otherwise.

        positions: the block position (0..size-1) each row of `index` is evaluated for."""
        index = np.asarray(index)
        if tuple(grid) != self.grid or index.ndim != 1 or len(index) != len(positions) or not len(index):
            return None
        offset = None
        # In chunks of rows: the coordinates of 8 million rows would be 250 MB at once.
        for start in range(0, len(index), SHIFT_CHUNK):
            sites = np.unravel_index(self.flat_indices[positions[start:start + SHIFT_CHUNK]], self.grid)
            reads = np.unravel_index(index[start:start + SHIFT_CHUNK], self.grid)
            found = []
            for site, read, extent in zip(sites, reads, self.grid):  # axis by axis: no stacked copies
                moved = (read - site) % extent
                if np.any(moved != moved[0]):
                    return None
                found.append(int(moved[0]))
            if offset is not None and tuple(found) != offset:
                return None
            offset = tuple(found)
        return offset


def find_layout(grid: tuple[int, ...], flat_indices: np.ndarray) -> BlockLayout | None:
    """The strided layout of a block of a group shaped `grid`, when it has one.

    Needs the block to hold exactly one cell of every run of `stride` = size / n cells
    (runs never cross a row: the last axis is a multiple of the stride), in ascending
    order. A whole group (stride 1) is left to the plain reshape and roll reads."""
    indices = compact_index(flat_indices)
    size = int(np.prod(grid, dtype=np.int64)) if grid else 0
    count = len(indices)
    if not count or not size or size % count:
        return None
    stride = size // count
    # One unit of a dense group is not a strided layout: each of its stride - 1 choices
    # would be an array and a select, unrolled by jit into thousands of tiny ops.
    if stride < 2 or stride > MAX_STRIDE or count < 2 or grid[-1] % stride:
        return None
    if not np.array_equal(indices // stride, np.arange(count)):
        return None
    offsets = (indices % stride).reshape(tuple(grid[:-1]) + (grid[-1] // stride,))
    member = np.zeros(size, dtype=bool)
    member[indices] = True
    return BlockLayout(
        tuple(grid), stride, indices,
        tuple(offsets == k for k in range(1, stride)),
        member.reshape(grid),
    )


def read_through(ops: Any, layout: BlockLayout, arrays, values: Any, lead: tuple[int, ...]) -> Any:
    """The block's entries of `values` [*lead, *grid]: [*lead, n]."""
    return ops.reshape(_select(ops, layout, values, lead, [(k, 0) for k in range(layout.stride)],
                               [arrays[choice_key(k)] for k in range(1, layout.stride)]),
                       tuple(lead) + (layout.size,))


@dataclass(frozen=True)
class ShiftedRead:
    """Reading, for every block site, the cell at a fixed periodic `offset` from it.

    A site at run offset k reads run offset (k + d) % stride of the run (k + d) // stride
    further along (d: the offset's last component), so the reads are the strided slices
    of the runs, a roll along the run axis where a read crosses into the next run, and one
    select by the choices rolled by the other components; the half-size result is then
    rolled back by those components. Nothing the size of the whole grid is rolled."""

    offset: tuple[int, ...]
    sources: tuple[tuple[int, int], ...]  # per k: (run offset read, runs ahead)

    @staticmethod
    def plan(layout: BlockLayout, offset: tuple[int, ...]) -> tuple["ShiftedRead", list[np.ndarray]]:
        """The read and its choice masks (numpy, rolled by the leading offset)."""
        stride, last = layout.stride, offset[-1]
        sources = tuple(((k + last) % stride, (k + last) // stride) for k in range(stride))
        # The site at p reads row p + d_lead, so the select runs on rows shifted by d_lead:
        # its choices are the block's, rolled forward by d_lead.
        axes = tuple(range(len(offset) - 1))
        masks = [np.roll(choice, offset[:-1], axes) if axes else choice for choice in layout.choices]
        return ShiftedRead(tuple(offset), sources), masks

    def read(self, ops: Any, layout: BlockLayout, values: Any, lead: tuple[int, ...], masks) -> Any:
        return self.roll_back(ops, layout, _select(ops, layout, values, lead, self.sources, masks), lead)

    def roll_back(self, ops: Any, layout: BlockLayout, picked: Any, lead: tuple[int, ...]) -> Any:
        """The selected runs [*lead, *grid[:-1], runs] rolled back by the leading offset,
        flattened to the block's order: [*lead, n]."""
        leading = self.offset[:-1]
        moved = [(-d % n, a - len(leading) - 1) for a, (d, n) in enumerate(zip(leading, layout.grid)) if d]
        if moved:
            picked = ops.roll(picked, tuple(m[0] for m in moved), tuple(m[1] for m in moved))
        return ops.reshape(picked, tuple(lead) + (layout.size,))


def _select(ops: Any, layout: BlockLayout, values: Any, lead: tuple[int, ...], sources, masks) -> Any:
    """[*lead, *grid[:-1], runs]: at each run, source k's cell where the run's choice is k."""
    grid, stride = layout.grid, layout.stride
    runs = ops.reshape(values, tuple(lead) + grid[:-1] + (grid[-1] // stride, stride))
    return _pick(ops, sources, masks, lambda cell: runs[..., cell])


def _pick(ops: Any, sources, masks, array_of) -> Any:
    """Source k where the run's choice is k (masks[k - 1]; source 0 where no mask is set).

    A source is (which, runs ahead): array_of(which) rolled back by `runs ahead` along
    the run axis, built once however many choices share it; a choice whose source is
    source 0's needs no select."""
    cache: dict[tuple[int, int], Any] = {}

    def source(at: tuple[int, int]) -> Any:
        if at not in cache:
            which, ahead = at
            cache[at] = array_of(which) if not ahead else ops.roll(array_of(which), (-ahead,), (-1,))
        return cache[at]

    picked = source(sources[0])
    for k in range(1, len(sources)):
        if sources[k] != sources[0]:
            picked = ops.blend(masks[k - 1], source(sources[k]), picked)
    return picked


def write_through(ops: Any, layout: BlockLayout, arrays, values: Any, new: Any) -> Any:
    """`values` [batch, *grid] with the block's entries replaced by `new` [batch, n]."""
    grid, stride = layout.grid, layout.stride
    batch = values.shape[0]
    # Each run's new value fills the whole run; the member mask keeps only the block's cell.
    runs = ops.reshape(new, (batch,) + grid[:-1] + (grid[-1] // stride, 1))
    spread = ops.reshape(
        ops.broadcast_to(runs, (batch,) + grid[:-1] + (grid[-1] // stride, stride)), (batch,) + grid
    )
    return ops.blend(arrays[MEMBER_KEY], spread, values)


# --------------------------------------------------------------------------
# Packed groups: a sampler's state kept as one array per colour class


@dataclass(frozen=True, eq=False)
class PackedGroup:
    """A group whose Gibbs blocks are the `stride` layouts of one run length, together
    covering every cell once (the two colours of a checkerboard). A sweep over it can
    carry the group as one array per class, [batch, *grid[:-1], runs]: a block's values
    are then its own array, and a neighbour read is a roll of another class's array --
    the packed layout hand-written checkerboard kernels use -- with no dense grid to
    read or write back per update.

    layouts: the classes' layouts, in sweep order. owner: int [*grid[:-1], runs, stride],
    the class of each cell.
    """

    layouts: tuple[BlockLayout, ...]
    owner: np.ndarray

    @property
    def grid(self) -> tuple[int, ...]:
        return self.layouts[0].grid

    def pack(self, ops: Any, arrays_of, values: Any) -> tuple:
        """[batch, *grid] -> one [batch, *grid[:-1], runs] array per class.
        arrays_of(c): the backend arrays of class c's block (its choice masks)."""
        batch, grid = values.shape[0], self.grid
        shape = (batch,) + grid[:-1] + (grid[-1] // self.layouts[0].stride,)
        return tuple(
            ops.reshape(read_through(ops, layout, arrays_of(c), values, (batch,)), shape)
            for c, layout in enumerate(self.layouts)
        )

    def unpack(self, ops: Any, owner_masks, classes: tuple) -> Any:
        """The inverse of `pack`. owner_masks[o][c]: bool [*grid[:-1], runs], True where
        class c owns run offset o."""
        stride = self.layouts[0].stride
        columns = []
        for offset in range(stride):
            column = classes[0]
            for c in range(1, len(classes)):
                column = ops.blend(owner_masks[offset][c], classes[c], column)
            columns.append(column)
        batch = classes[0].shape[0]
        return ops.reshape(ops.stack(columns, -1), (batch,) + self.grid)

    def owner_masks(self) -> list[list[np.ndarray]]:
        return [[self.owner[..., offset] == c for c in range(len(self.layouts))]
                for offset in range(self.layouts[0].stride)]


def find_packing(layouts: list[BlockLayout | None]) -> PackedGroup | None:
    """The PackedGroup of a group's blocks, when they are strided layouts of one stride
    that cover the group exactly once."""
    if not layouts or any(layout is None for layout in layouts):
        return None
    stride, grid = layouts[0].stride, layouts[0].grid
    if len(layouts) != stride or any(l.stride != stride or l.grid != grid for l in layouts):
        return None
    cover = np.zeros(grid, dtype=np.int8)
    for layout in layouts:
        cover += layout.member
    if not np.all(cover == 1):
        return None
    owner = np.zeros(grid, dtype=np.int8)  # a class number, at most MAX_STRIDE
    for c, layout in enumerate(layouts):
        owner[layout.member] = c
    runs = grid[-1] // stride
    return PackedGroup(tuple(layouts), owner.reshape(grid[:-1] + (runs, stride)))


@dataclass(frozen=True)
class PackedRead:
    """A ShiftedRead of a packed group: source k (run offset o_k, q_k runs ahead) is, on
    every run that uses it, a cell of one class c_k, so it is class c_k's array rolled by
    -q_k along the run axis; sources that are the same array need no select. On a
    checkerboard every neighbour is the other colour: a vertical read is that array
    rolled by a row, a horizontal one a select between it and its roll by a run."""

    shifted: ShiftedRead
    sources: tuple[tuple[int, int], ...]  # per k: (class, runs ahead)

    @staticmethod
    def plan(layout: BlockLayout, packing: PackedGroup, offset: tuple[int, ...]) -> "tuple[PackedRead, list[np.ndarray]] | None":
        shifted, masks = ShiftedRead.plan(layout, offset)
        regions = [~np.any(np.stack(masks), axis=0)] + list(masks)
        runs = packing.owner.shape[-2]
        sources = []
        for (cell, ahead), region in zip(shifted.sources, regions):
            owners = np.roll(packing.owner[..., cell], -ahead, axis=-1)[region]
            if owners.size == 0:
                sources.append((0, 0))
                continue
            if not np.all(owners == owners[0]):
                return None
            sources.append((int(owners[0]), int(ahead % runs)))
        return PackedRead(shifted, tuple(sources)), masks

    def read(self, ops: Any, layout: BlockLayout, classes: tuple, lead: tuple[int, ...], masks) -> Any:
        picked = _pick(ops, self.sources, masks, classes.__getitem__)
        return self.shifted.roll_back(ops, layout, picked, lead)
