"""Graph colouring algorithms over ground-variable ids: BFS parity, networkx greedy and
vectorised Jones-Plassmann.

Plain functions of (n, edges [m, 2]) that know nothing of factor graphs; `structure.colouring`
picks one and turns its colour array into colour classes.
"""
from __future__ import annotations

import networkx as nx
import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from ebmlang.graph.structure_ground import sorted_unique


def _adjacency(n: int, edges: np.ndarray) -> sparse.csr_matrix:
    data = np.ones(2 * len(edges), dtype=np.int8)
    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    cols = np.concatenate([edges[:, 1], edges[:, 0]])
    return sparse.csr_matrix((data, (rows, cols)), shape=(n, n))


def bipartite_colours(n: int, edges: np.ndarray) -> np.ndarray | None:
    """A 2-colouring by BFS depth parity, or None when the graph has an odd cycle.

    One BFS from a virtual root joined to one vertex per connected component
    (scipy, in C); depth parities follow from the predecessor tree by pointer
    jumping (log2(depth) vectorised steps).
    """
    adjacency = _adjacency(n, edges)
    _, labels = csgraph.connected_components(adjacency, directed=False)
    # the first vertex of each component (labels run 0..count-1)
    first = np.full(int(labels.max()) + 1, n, dtype=np.int64)
    np.minimum.at(first, labels, np.arange(n))
    representatives = first
    root = n
    rows = np.concatenate([edges[:, 0], edges[:, 1], np.full(len(representatives), root)])
    cols = np.concatenate([edges[:, 1], edges[:, 0], representatives])
    extended = sparse.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n + 1, n + 1))
    _, predecessors = csgraph.breadth_first_order(extended, root, directed=True, return_predecessors=True)
    ancestor = predecessors.astype(np.int64)
    ancestor[root] = root
    parity = np.ones(n + 1, dtype=np.int8)
    parity[root] = 0
    while np.any(ancestor != root):
        parity = parity ^ parity[ancestor]
        ancestor = ancestor[ancestor]
    colours = parity[:n].astype(np.int64)
    if np.any(colours[edges[:, 0]] == colours[edges[:, 1]]):
        return None
    return colours


def greedy_colours(n: int, edges: np.ndarray) -> np.ndarray:
    """networkx greedy colouring, largest degree first."""
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(edges.tolist())
    assignment = nx.greedy_color(graph, strategy="largest_first")
    return np.fromiter((assignment[v] for v in range(n)), dtype=np.int64, count=n)


def jones_plassmann_colours(n: int, edges: np.ndarray, seed: int = 0) -> np.ndarray:
    """Vectorised Jones-Plassmann colouring: each round, every uncoloured vertex whose
    random priority beats all its uncoloured neighbours takes the smallest colour
    none of its coloured neighbours has. At most max degree + 1 colours."""
    priority = np.random.default_rng(seed).permutation(n)
    src = np.concatenate([edges[:, 0], edges[:, 1]])
    dst = np.concatenate([edges[:, 1], edges[:, 0]])
    colours = np.full(n, -1, dtype=np.int64)
    while np.any(colours < 0):
        uncoloured = colours < 0
        blocked = np.zeros(n, dtype=bool)
        beaten = uncoloured[src] & uncoloured[dst] & (priority[dst] > priority[src])
        blocked[src[beaten]] = True
        chosen = uncoloured & ~blocked
        colours[chosen] = _smallest_free_colour(np.flatnonzero(chosen), src, dst, colours)
    return colours


def _smallest_free_colour(vertices: np.ndarray, src: np.ndarray, dst: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """For each vertex, the least colour not taken by a coloured neighbour (a vectorised mex)."""
    selected = np.zeros(len(colours), dtype=bool)
    selected[vertices] = True
    arcs = selected[src] & (colours[dst] >= 0)
    base = int(colours.max()) + 2
    pairs = sorted_unique(src[arcs] * base + colours[dst[arcs]])
    owner, taken = pairs // base, pairs % base
    result = np.zeros(len(colours), dtype=np.int64)
    if len(pairs):
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        counts = np.diff(np.r_[starts, len(pairs)])
        rank = np.arange(len(pairs)) - np.repeat(starts, counts)
        # the colours of a vertex's neighbours, sorted and unique: the first gap is the mex
        gap = np.where(taken != rank, rank, np.repeat(counts, counts))
        result[owner[starts]] = np.minimum.reduceat(gap, starts)
    return result[vertices]


def checkerboard_colours(g, group: str) -> np.ndarray | None:
    """The coordinate-parity colouring of one group's grid (sum of coordinates mod 2),
    when it is proper for every ground factor and some factor holds two of its variables;
    None otherwise. Checked factor by factor with one gather per slot, no edge list: a
    16-million-site lattice colours in a second instead of sorting 33 million edges.
    Factors whose slots read several positions each (inner sums, vectors) give None."""
    variables = g.variables[group]
    parity = np.zeros((), dtype=np.int8)
    for axis, extent in enumerate(variables.shape):
        shape = [1] * len(variables.shape)
        shape[axis] = extent
        parity = (parity + (np.arange(extent, dtype=np.int64) % 2).astype(np.int8).reshape(shape)) % 2
    parity = np.broadcast_to(parity, variables.shape).reshape(-1)
    coupled = False
    for template in g.templates:
        slots = [s for s in template.slots if s.group == group]
        if len(slots) < 2:
            continue
        if any(s.vector or np.ndim(s.index) > 1 for s in slots):
            return None
        reads = [np.asarray(s.index).reshape(-1) for s in slots]
        for a in range(len(reads)):
            for b in range(a + 1, len(reads)):
                distinct = reads[a] != reads[b]
                if np.any(distinct & (parity[reads[a]] == parity[reads[b]])):
                    return None
                coupled = coupled or bool(distinct.any())
    # Colour 0 for odd sites: the classes in the order BFS parity gives a connected lattice
    # (its virtual root sits above site 0), so sweeps visit them as before.
    return (1 - parity).astype(np.int64) if coupled else None
