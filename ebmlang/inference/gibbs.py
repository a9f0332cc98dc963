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
    """A sweep over `blocks`; samples exp(-E / temperature)."""
    backend = compiled.backend
    graph = compiled.graph
    label_values = {
        b.group: backend.asarray(graph.variables[b.group].domain.values) for b in blocks
    }
    ops = backend.ops
    flat_indices = [backend.asarray(b.indices, dtype="int64") for b in blocks]
    inverse_temperature = 1.0 / float(temperature)

    def kernel(key, state, params):
        keys = backend.split(key, max(len(blocks), 1))
        state = dict(state)
        for block_key, block, indices in zip(keys, blocks, flat_indices):
            table = compiled.local_conditional(block.group, block.indices, state, params)
            labels = backend.categorical(block_key, -table * inverse_temperature)
            new_values = backend.take(label_values[block.group], labels)
            # Where every label violates a hard constraint (+inf), the softmax has no mass:
            # keep the current value, so a neighbour's move can open a label up next sweep.
            current = state[block.group]
            old_values = ops.take(ops.reshape(current, (current.shape[0], -1)), indices, 1)
            stuck = ops.all(table == float("inf"), axis=-1)
            new_values = ops.where(stuck, ops.as_float(old_values), ops.as_float(new_values))
            state[block.group] = backend.set_flat(current, block.indices, new_values)
        return state, GibbsInfo(len(blocks))

    return kernel
