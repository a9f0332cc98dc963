"""Chromatic block Gibbs for discrete variables.

A sweep visits the colour classes of the latent discrete ground variables in
turn; all variables of one class are conditionally independent given the rest
(no two share a factor), so one batched local-conditional table per (class,
group) updates them all at once, in every chain.

Pure kernel: `kernel(key, state, params) -> (state, info)`; the state is the
dict of group arrays [chains, *shape]. `build_gibbs_sweep` gives the same sweep over a
packed carry (init / step / finish) for long runs.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ebmlang.backends.layout import find_layout, find_packing
from ebmlang.budget import Budget
from ebmlang.graph import structure
from ebmlang.graph.ir import FactorGraph, compact_index
from ebmlang.inference.dense_scan import ScanUpdate, build_scan_update, worth_scanning
from ebmlang.inference.random_kernel import RandomKernel
from ebmlang.inference.temperature import along_batch, chain_inverse_temperature


class GibbsBlock(NamedTuple):
    """One update: the ground variables `indices` (flat) of a discrete `group`."""

    group: str
    indices: np.ndarray
    colour: int


class GibbsInfo(NamedTuple):
    num_blocks: int



def check_gibbs_budget(model, names, chains: int) -> None:
    """Refuse, at its declaration, a discrete group whose block updates would not fit the
    model's budget: each draws from a table of every value per variable and chain."""
    graph = model.graph
    budget = getattr(model, "budget", None) or Budget()
    for name in names:
        var = graph.variables[name]
        if var.domain.is_discrete:
            budget.check(8.0 * chains * var.size * var.domain.num_values,
                         f"sampling '{name}' ({chains} chains x {var.size:,} variables x "
                         f"{var.domain.num_values:,} values per conditional)", var.span, graph.source)

def gibbs_blocks(graph: FactorGraph, colour_classes=None, groups: set[str] | None = None) -> list[GibbsBlock]:
    """Blocks in sweep order from colour classes (a sequence of dicts group -> flat indices;
    by default the graph's own colouring), for the latent discrete groups (of `groups`)."""
    if colour_classes is None:
        colour_classes = structure.colouring(graph).classes
    blocks = []
    for colour, members in enumerate(colour_classes):
        for group, indices in members.items():
            if groups is not None and group not in groups:
                continue
            if graph.variables[group].observed or not graph.variables[group].domain.is_discrete:
                continue
            if len(indices):
                blocks.append(GibbsBlock(group, compact_index(indices), colour))
    return blocks


class GibbsSweep(NamedTuple):
    """A chromatic Gibbs sweep as pure functions over a sampler-side carry.

    init(state) -> carry; step(key, carry, params) -> carry (one sweep);
    finish(carry) -> state. Groups whose colour classes are strided layouts covering them
    (a checkerboard, backends/layout.py) travel packed in the carry, one array per class,
    so many sweeps between `init` and `finish` never touch the dense lattice. Groups
    whose colouring is many one-unit blocks and whose energy is a quadratic form are
    scanned unit by unit instead (`scanned_groups`, inference/dense_scan.py).

    `step` is `move(carry, draw(key, carry), params)`: `draw` makes the sweep's uniforms
    (one array per block) and `move` is deterministic, so `Backend.jit_step(draw, move)`
    compiles the move on torch, whose seeded generators cannot be traced. `prepare(params)`
    gives what depends only on the parameters (a scanned group's couplings): a run with
    fixed parameters passes it to every `move` (`move(carry, uniforms, params, prepared)`);
    without it, `move` prepares its own.
    """

    init: Callable[[dict], dict]
    draw: Callable[[Any, dict], tuple]
    move: Callable[[dict, tuple, dict], dict]
    finish: Callable[[dict], dict]
    packed_groups: tuple[str, ...]
    scanned_groups: tuple[str, ...] = ()
    prepare: Callable[[dict], dict] = dict

    def step(self, key: Any, carry: dict, params: dict, prepared: dict | None = None) -> dict:
        return self.move(carry, self.draw(key, carry), params, prepared)


def build_gibbs_sweep(compiled, blocks: list[GibbsBlock], temperature: float = 1.0, pack: bool = True) -> GibbsSweep:
    """The sweep over `blocks`, sampling exp(-E / temperature).

    The compiled blocks are built here, eagerly, so that `step` can be traced by
    `jax.jit` (a block first built inside a trace would cache tracers)."""
    backend, graph, ops = compiled.backend, compiled.graph, compiled.backend.ops
    scans = _scans(compiled, blocks, temperature)
    # Each scanned group's blocks become one scan, where its first block was.
    order = []
    for block in blocks:
        if block.group not in scans:
            order.append(("block", block))
        elif ("scan", block.group) not in order:
            order.append(("scan", block.group))
    blocks = [what for kind, what in order if kind == "block"]
    packing = _packing(compiled, blocks) if pack else {}
    scan_reads = set().union(*(scan.reads for scan in scans.values()))
    while True:
        handles = [compiled.gibbs_block(b.group, b.indices, packing) for b in blocks]
        # A group some block or scan still reads through the dense state cannot travel packed.
        dense = set().union(scan_reads, *(h.plan.dense_reads() for h in handles)) & set(packing)
        if not dense:
            break
        packing = {g: p for g, p in packing.items() if g not in dense}
    class_of = [
        _class_index(packing[b.group], b.indices) if b.group in packing else None for b in blocks
    ]
    class_arrays = {
        g: [next(h.arrays for h, c in zip(handles, class_of) if h.group == g and c == number)
            for number in range(len(p.layouts))]
        for g, p in packing.items()
    }
    owner_masks = {
        g: [[backend.asarray(m, "bool") for m in row] for row in p.owner_masks()] for g, p in packing.items()
    }
    updates = [
        _update(backend, graph.variables[b.group].domain.values, temperature, h.plan.may_be_infinite())
        for b, h in zip(blocks, handles)
    ]
    # Two-valued blocks draw from the energy gap of their two values (`CompiledBlock.gap`).
    binary = [graph.variables[b.group].domain.num_values == 2 for b in blocks]
    # Per block, the trailing shape of its uniforms: one per variable, or one per variable
    # and value for a Gumbel draw over more than two values.
    block_shapes = iter([
        (len(b.indices),) + ((len(values),) if len(values) > 2 else ())
        for b in blocks
        for values in [graph.variables[b.group].domain.values]
    ])
    uniform_shapes = [scans[what].uniform_shape if kind == "scan" else next(block_shapes) for kind, what in order]
    keys_needed = max(len(order), 1)

    def init(state):
        carry = {g: v for g, v in state.items() if g not in packing}
        packed = {g: p.pack(ops, class_arrays[g].__getitem__, state[g]) for g, p in packing.items()}
        return {"dense": carry, "packed": packed}

    def draw(key, carry):
        batch = _leading_batch(carry)
        return tuple(
            backend.uniform(block_key, (batch,) + shape)
            for block_key, shape in zip(backend.split(key, keys_needed), uniform_shapes)
        )

    block_steps = list(zip(handles, updates, class_of, binary))
    steps = [scans[what] if kind == "scan" else block_steps.pop(0) for kind, what in order]

    def prepare(params):
        return {group: scan.couplings(params) for group, scan in scans.items()}

    def move(carry, uniforms, params, prepared=None):
        dense = dict(carry["dense"])
        packed = {g: list(classes) for g, classes in carry["packed"].items()}
        prepared = prepare(params) if prepared is None else prepared
        beta = chain_inverse_temperature(params)  # [chains] under replica exchange, else None
        for uniform, step in zip(uniforms, steps):
            if isinstance(step, ScanUpdate):
                dense = step.move(dense, uniform, params, prepared[step.group])
                continue
            handle, update, number, two_valued = step
            classes = {g: tuple(c) for g, c in packed.items()}
            table = handle.gap(dense, params, classes) if two_valued else handle.by_value(dense, params, classes)
            if number is None:
                current = dense[handle.group]
                dense[handle.group] = handle.replace(current, update(uniform, table, handle.current(current), beta))
            else:
                current = packed[handle.group][number]
                old = ops.reshape(current, (current.shape[0], -1))
                packed[handle.group][number] = ops.reshape(update(uniform, table, old, beta), tuple(current.shape))
        return {"dense": dense, "packed": {g: tuple(c) for g, c in packed.items()}}

    def finish(carry):
        state = dict(carry["dense"])
        for g, classes in carry["packed"].items():
            state[g] = packing[g].unpack(ops, owner_masks[g], tuple(classes))
        return state

    return GibbsSweep(init, draw, move, finish, tuple(packing), tuple(scans), prepare)


def build_gibbs_kernel(compiled, blocks: list[GibbsBlock], temperature: float = 1.0) -> RandomKernel:
    """One sweep as `kernel(key, state, params) -> (state, info)` on dense states; a
    `RandomKernel`, so `backend.jit_step(kernel.draw, kernel.move)` compiles it."""
    sweep = build_gibbs_sweep(compiled, blocks, temperature)

    def move(state, uniforms, params):
        # The sweep's draws read only the batch, which a dense state has too.
        return sweep.finish(sweep.move(sweep.init(dict(state)), uniforms, params)), GibbsInfo(len(blocks))

    return RandomKernel(sweep.draw, move)


def _scans(compiled, blocks: list[GibbsBlock], temperature: float) -> dict:
    """{group: ScanUpdate} for the groups a sequential scan sweeps better than their blocks."""
    counts: dict[str, int] = {}
    for block in blocks:
        counts[block.group] = counts.get(block.group, 0) + 1
    scans = {}
    for group, count in counts.items():
        if worth_scanning(compiled.graph.variables[group], count):
            update = build_scan_update(compiled, group, temperature)
            if update is not None:
                scans[group] = update
    return scans


def _packing(compiled, blocks: list[GibbsBlock]) -> dict:
    """{group: PackedGroup} for the groups whose blocks are layouts that cover them once."""
    by_group: dict[str, list] = {}
    for block in blocks:
        shape = compiled.graph.variables[block.group].shape
        by_group.setdefault(block.group, []).append(find_layout(shape, block.indices))
    found = {g: find_packing(layouts) for g, layouts in by_group.items()}
    return {g: p for g, p in found.items() if p is not None}


def _class_index(packing, indices: np.ndarray) -> int:
    for number, layout in enumerate(packing.layouts):
        if np.array_equal(layout.flat_indices, indices):
            return number
    raise ValueError("block is not a class of its packed group")


def _leading_batch(tree: Any) -> int:
    """The chains of a carry or a dense state: the largest leading axis of its arrays
    (groups with a batch of 1, such as shared observed data, broadcast)."""
    if isinstance(tree, dict):
        return max([_leading_batch(v) for v in tree.values()] or [1])
    if isinstance(tree, (tuple, list)):
        return max([_leading_batch(v) for v in tree] or [1])
    return tree.shape[0]


def _update(backend, values, temperature: float, may_be_infinite: bool):
    """`update(uniform, table, old) -> new values` of one block, from its conditional table
    (two values: from the gap of their energies, `CompiledBlock.gap`)."""
    if len(values) == 2:
        return _binary_update(backend, values, temperature, may_be_infinite)
    return _categorical_update(backend, values, temperature)


def _binary_update(backend, values, temperature: float, may_be_infinite: bool = True):
    """Two values: one uniform per variable against p(second value) = sigmoid((E0 - E1) / T),
    instead of a Gumbel draw per value. gap: E0 - E1 [batch, n]."""
    ops = backend.ops
    low, high = (float(v) for v in values)
    inverse_temperature = 1.0 / float(temperature)

    def update(u, gap, old, beta=None):
        if beta is not None:  # a temperature per chain (replica exchange)
            gap = gap * along_batch(ops, beta, gap)
        p_high = ops.sigmoid(gap if inverse_temperature == 1.0 else gap * inverse_temperature)
        if not may_be_infinite:
            return _between(ops, ops.as_float(u < p_high), low, high)
        # Both energies +inf (every value violates a hard constraint) gives p = NaN, for
        # which both comparisons are false: keep the current value, so a neighbour's move
        # can open a value up next sweep.
        return ops.where(u < p_high, high, ops.where(u >= p_high, low, old))

    return update


def _between(ops, chosen, low: float, high: float):
    """low where `chosen` is 0, high where it is 1 (exact: domain values are small
    integers); no arithmetic for the binary domain's 0 and 1."""
    if (low, high) == (0.0, 1.0):
        return chosen
    return chosen * (high - low) + low


def _categorical_update(backend, values, temperature: float):
    ops = backend.ops
    label_values = backend.asarray(values)
    inverse_temperature = 1.0 / float(temperature)

    def update(u, table, old, beta=None):
        table = ops.swapaxes(table, -1, -2)  # [batch, n, K]
        if beta is not None:  # a temperature per chain (replica exchange)
            table = table * along_batch(ops, beta, table)
        labels = backend.gumbel_argmax(u, -table if inverse_temperature == 1.0 else -table * inverse_temperature)
        new = backend.take(label_values, labels)
        # Where every value violates a hard constraint (+inf), the softmax has no mass:
        # keep the current value, so a neighbour's move can open a value up next sweep.
        stuck = ops.all(table == float("inf"), axis=-1)
        return ops.where(stuck, ops.as_float(old), ops.as_float(new))

    return update
