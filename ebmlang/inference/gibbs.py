"""Chromatic block Gibbs for discrete variables.

A sweep visits the colour classes of the latent discrete ground variables in
turn; all variables of one class are conditionally independent given the rest
(no two share a factor), so one batched local-conditional table per (class,
group) updates them all at once, in every chain.

Pure kernel: `kernel(key, state, params) -> (state, info)`; the state is the
dict of group arrays [chains, *shape].
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

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


def build_gibbs_kernel(compiled, blocks: list[GibbsBlock], temperature: float = 1.0):
    """A sweep over `blocks`; samples exp(-E / temperature).

    The compiled blocks are built here, eagerly, so that the kernel can be traced by
    `jax.jit` (a block first built inside a trace would cache tracers)."""
    backend = compiled.backend
    graph = compiled.graph
    compiled_blocks = [compiled.gibbs_block(b.group, b.indices) for b in blocks]
    draws = [
        _binary_draw(backend, graph.variables[b.group].domain.values, temperature)
        if graph.variables[b.group].domain.num_values == 2
        else _categorical_draw(backend, graph.variables[b.group].domain.values, temperature)
        for b in blocks
    ]

    def kernel(key, state, params):
        keys = backend.split(key, max(len(blocks), 1))
        state = dict(state)
        for block_key, block, draw in zip(keys, compiled_blocks, draws):
            current = state[block.group]
            table = block.conditional(state, params)
            new_values = draw(block_key, table, block.current(current))
            state[block.group] = block.replace(current, new_values)
        return state, GibbsInfo(len(blocks))

    return kernel


def _binary_draw(backend, values, temperature: float):
    """Two values: one uniform per variable against p(second value) = sigmoid((E0 - E1) / T),
    instead of a Gumbel draw per value."""
    ops = backend.ops
    low, high = (float(v) for v in values)
    inverse_temperature = 1.0 / float(temperature)

    def draw(key, table, old):
        gap = (table[..., 0] - table[..., 1]) * inverse_temperature
        take_high = backend.uniform(key, tuple(gap.shape)) < ops.sigmoid(gap)
        new = ops.where(take_high, high, low)
        # Both energies +inf (every value violates a hard constraint) gives a NaN gap: keep
        # the current value, so a neighbour's move can open a value up next sweep.
        return ops.where(gap == gap, new, old)

    return draw


def _categorical_draw(backend, values, temperature: float):
    ops = backend.ops
    label_values = backend.asarray(values)
    inverse_temperature = 1.0 / float(temperature)

    def draw(key, table, old):
        labels = backend.categorical(key, -table * inverse_temperature)
        new = backend.take(label_values, labels)
        # Where every value violates a hard constraint (+inf), the softmax has no mass:
        # keep the current value, so a neighbour's move can open a value up next sweep.
        stuck = ops.all(table == float("inf"), axis=-1)
        return ops.where(stuck, ops.as_float(old), ops.as_float(new))

    return draw
