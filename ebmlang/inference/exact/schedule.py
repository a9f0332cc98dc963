"""The level schedule of a rooted forest: which messages can be sent together.

Nodes at one depth never exchange messages with each other, so a level is one batched
step. Levels are padded to one width W (a chain has W = 1; N parallel chains W = N) so
that the passes are a `scan` over levels with fixed shapes -- one compiled loop on JAX,
a short Python loop elsewhere. Padding slots read a dummy node whose potentials are
zero and send their messages to a spare parent slot W that nothing reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ebmlang.inference.discrete_map.tree_dp import RootedForest


@dataclass(frozen=True)
class LevelSchedule:
    """nodes, edge, child_first, parent_slot: [D, W] (level 0 holds the roots).

    nodes:       node id per slot, `num_nodes` (the dummy) on padding
    edge:        the edge to the parent, `num_edges` (a zero table) on roots and padding
    child_first: True where the edge's table is [child label, parent label]
    parent_slot: the parent's slot in the level above; W (the spare slot) on padding
    direct:      every level's parent slots are 0..W-1 with no padding (parallel chains),
                 so messages go straight to the slot below with no scatter
    siblings:    some parent has more than one child
    """

    nodes: np.ndarray
    edge: np.ndarray
    child_first: np.ndarray
    parent_slot: np.ndarray
    is_real: np.ndarray
    num_nodes: int
    num_edges: int
    direct: bool
    siblings: bool

    @property
    def depth(self) -> int:
        return int(self.nodes.shape[0])

    @property
    def width(self) -> int:
        return int(self.nodes.shape[1])

    @cached_property
    def node_slots(self) -> np.ndarray:
        return self.slot_of_node()

    def slot_of_node(self) -> np.ndarray:
        """[num_nodes] flat position (level * W + slot) of every node."""
        where = np.zeros(self.num_nodes, dtype=np.int64)
        real = self.is_real.reshape(-1)
        where[self.nodes.reshape(-1)[real]] = np.flatnonzero(real)
        return where


def level_schedule(forest: RootedForest, edges: np.ndarray) -> LevelSchedule:
    """The schedule of `forest` (from `rooted_forest`) whose edge ids index `edges` [E, 2]."""
    n = forest.parent.size
    num_edges = int(edges.shape[0])
    depth = forest.depth if n else np.zeros(0, np.int64)
    levels = int(depth.max(initial=0))
    order = np.lexsort((np.arange(n), depth))
    counts = np.bincount(depth, minlength=levels + 1)[1:]
    width = int(counts.max(initial=1))
    nodes = np.full((max(levels, 1), width), n, dtype=np.int64)
    slot_in_level = np.zeros(n, dtype=np.int64)
    start = 0
    for level, count in enumerate(counts):   # over levels (the depth), not nodes
        members = order[start:start + count]
        nodes[level, :count] = members
        slot_in_level[members] = np.arange(count)
        start += count
    is_real = nodes < n
    safe = np.where(is_real, nodes, 0)
    parent = np.where(is_real, forest.parent[safe] if n else 0, -1)
    parent_slot = np.where(parent >= 0, slot_in_level[np.maximum(parent, 0)] if n else 0, width)
    edge = np.where(parent >= 0, forest.edge[safe] if n else 0, num_edges)
    child_first = np.zeros(nodes.shape, dtype=bool)
    has_parent = parent >= 0
    child_first[has_parent] = edges[edge[has_parent], 0] == nodes[has_parent]
    direct = bool(is_real.all() and np.all(parent_slot[1:] == np.arange(width)))
    children = np.bincount(forest.parent[forest.parent >= 0], minlength=n) if n else np.zeros(0, np.int64)
    return LevelSchedule(nodes, edge, child_first, parent_slot, is_real, n, num_edges, direct,
                         bool(children.max(initial=0) > 1))
