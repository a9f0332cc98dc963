"""Chromatic block Gibbs for discrete variables.

A sweep visits the colour classes of the latent discrete ground variables in
turn; all variables of one class are conditionally independent given the rest
(no two share a factor), so one batched local-conditional table per (class,
group) updates them all at once, in every chain.

Pure kernel: `kernel(key, state, params) -> (state, info)`; the state is the
dict of group arrays [chains, *shape].
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from ebmlang.backends.layout import find_layout, find_packing
from ebmlang.ir import FactorGraph


class GibbsBlock(NamedTuple):
    """One update: the ground variables `indices` (flat) of a discrete `group`."""

    group: str
    indices: np.ndarray
    colour: int


class GibbsInfo(NamedTuple):
    num_blocks: int


def gibbs_blocks(graph: FactorGraph, colour_classes, groups: set[str] | None = None) -> list[GibbsBlock]:
    """Blocks in sweep order from colour classes (a sequence of dicts group -> flat indices)."""
    blocks = []
    for colour, members in enumerate(colour_classes):
        for group, indices in members.items():
            if groups is not None and group not in groups:
                continue
            if graph.variables[group].observed or not graph.variables[group].domain.is_discrete:
                continue
            if len(indices):
                blocks.append(GibbsBlock(group, np.asarray(indices, dtype=np.int64), colour))
    return blocks


class GibbsSweep(NamedTuple):
    """A chromatic Gibbs sweep as pure functions over a sampler-side carry.

    init(state) -> carry; step(key, carry, params) -> carry (one sweep);
    finish(carry) -> state. Groups whose colour classes are strided layouts covering them
    (a checkerboard, backends/layout.py) travel packed in the carry, one array per class,
    so many sweeps between `init` and `finish` never touch the dense lattice.
    """

    init: Callable[[dict], dict]
    step: Callable[[Any, dict, dict], dict]
    finish: Callable[[dict], dict]
    packed_groups: tuple[str, ...]


def build_gibbs_sweep(compiled, blocks: list[GibbsBlock], temperature: float = 1.0, pack: bool = True) -> GibbsSweep:
    """The sweep over `blocks`, sampling exp(-E / temperature).

    The compiled blocks are built here, eagerly, so that `step` can be traced by
    `jax.jit` (a block first built inside a trace would cache tracers)."""
    backend, graph, ops = compiled.backend, compiled.graph, compiled.backend.ops
    packing = _packing(compiled, blocks) if pack else {}
    while True:
        handles = [compiled.gibbs_block(b.group, b.indices, packing) for b in blocks]
        # A group some block still reads through the dense state cannot travel packed.
        dense = set().union(*(h.plan.dense_reads() for h in handles)) & set(packing)
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
    draws = [
        _draw(backend, graph.variables[b.group].domain.values, temperature, h.plan.may_be_infinite())
        for b, h in zip(blocks, handles)
    ]
    keys_needed = max(len(blocks), 1)

    def init(state):
        carry = {g: v for g, v in state.items() if g not in packing}
        packed = {g: p.pack(ops, class_arrays[g].__getitem__, state[g]) for g, p in packing.items()}
        return {"dense": carry, "packed": packed}

    def step(key, carry, params):
        dense = dict(carry["dense"])
        packed = {g: list(classes) for g, classes in carry["packed"].items()}
        for block_key, handle, draw, number in zip(backend.split(key, keys_needed), handles, draws, class_of):
            classes = {g: tuple(c) for g, c in packed.items()}
            table = handle.by_value(dense, params, classes)
            if number is None:
                current = dense[handle.group]
                dense[handle.group] = handle.replace(current, draw(block_key, table, handle.current(current)))
            else:
                current = packed[handle.group][number]
                old = ops.reshape(current, (current.shape[0], -1))
                packed[handle.group][number] = ops.reshape(draw(block_key, table, old), tuple(current.shape))
        return {"dense": dense, "packed": {g: tuple(c) for g, c in packed.items()}}

    def finish(carry):
        state = dict(carry["dense"])
        for g, classes in carry["packed"].items():
            state[g] = packing[g].unpack(ops, owner_masks[g], tuple(classes))
        return state

    return GibbsSweep(init, step, finish, tuple(packing))


def build_gibbs_kernel(compiled, blocks: list[GibbsBlock], temperature: float = 1.0):
    """One sweep as `kernel(key, state, params) -> (state, info)` on dense states."""
    sweep = build_gibbs_sweep(compiled, blocks, temperature)

    def kernel(key, state, params):
        return sweep.finish(sweep.step(key, sweep.init(dict(state)), params)), GibbsInfo(len(blocks))

    return kernel


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


def _draw(backend, values, temperature: float, may_be_infinite: bool):
    if len(values) == 2:
        return _binary_draw(backend, values, temperature, may_be_infinite)
    return _categorical_draw(backend, values, temperature)


def _binary_draw(backend, values, temperature: float, may_be_infinite: bool = True):
    """Two values: one uniform per variable against p(second value) = sigmoid((E0 - E1) / T),
    instead of a Gumbel draw per value. table: [batch, 2, n] (value-major)."""
    ops = backend.ops
    low, high = (float(v) for v in values)
    inverse_temperature = 1.0 / float(temperature)

    def draw(key, table, old):
        p_high = ops.sigmoid((table[:, 0] - table[:, 1]) * inverse_temperature)
        u = backend.uniform(key, tuple(p_high.shape))
        if not may_be_infinite:
            # Discrete domain values are small integers: low + (high - low) * 1 is exact.
            return ops.as_float(u < p_high) * (high - low) + low
        # Both energies +inf (every value violates a hard constraint) gives p = NaN, for
        # which both comparisons are false: keep the current value, so a neighbour's move
        # can open a value up next sweep.
        return ops.where(u < p_high, high, ops.where(u >= p_high, low, old))

    return draw


def _categorical_draw(backend, values, temperature: float):
    ops = backend.ops
    label_values = backend.asarray(values)
    inverse_temperature = 1.0 / float(temperature)

    def draw(key, table, old):
        table = ops.swapaxes(table, -1, -2)  # [batch, n, K]
        labels = backend.categorical(key, -table * inverse_temperature)
        new = backend.take(label_values, labels)
        # Where every value violates a hard constraint (+inf), the softmax has no mass:
        # keep the current value, so a neighbour's move can open a value up next sweep.
        stuck = ops.all(table == float("inf"), axis=-1)
        return ops.where(stuck, ops.as_float(old), ops.as_float(new))

    return draw
