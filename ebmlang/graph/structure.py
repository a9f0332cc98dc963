"""Structure queries over a factor graph: pure functions, results cached per graph.

Everything here reads the templates' index arrays with vectorised numpy; no
query builds a per-ground-factor Python object, except `ground_graph`, which is
for small models and refuses large ones.

Ground variables have a global numbering: the groups in `g.variables` order,
each contributing a block `offset + flat index` (see `GroundNumbering`).

This module is the public entry: colourings, Markov blankets, components and the
networkx views live here; the ground numbering and incidence (structure_ground.py),
the colouring algorithms (structure_colours.py) and the factor classification
(structure_classify.py) are re-exported from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
from scipy.sparse import csgraph

from ebmlang.errors import EbmError, did_you_mean
from ebmlang.graph import ir
from ebmlang.graph.structure_classify import TABULAR_LIMIT, FactorInfo, classify  # noqa: F401 -- re-exported
from ebmlang.graph.structure_colours import (  # noqa: F401 -- re-exported
    _adjacency,
    bipartite_colours,
    checkerboard_colours,
    greedy_colours,
    jones_plassmann_colours,
)
from ebmlang.graph.structure_ground import (  # noqa: F401 -- re-exported
    GroundNumbering,
    SlotIncidence,
    _cached,
    _edges,
    _frozen,
    _graph_cache,
    _offsets,
    _template_columns,
    ground_numbering,
    interaction_edges,
    template_incidence,
)

# networkx's greedy colouring is used up to this many ground variables; beyond it
# a vectorised Jones-Plassmann colouring (numpy) takes over.
NETWORKX_COLOURING_LIMIT = 50_000
NETWORKX_EDGE_LIMIT = 500_000


# --------------------------------------------------------------------------
# Colouring


@dataclass(frozen=True)
class Colouring:
    """Colour classes of the latent discrete ground variables.

    No two variables of one class share a ground factor, so a class can be
    resampled at once by block Gibbs. classes[c] maps group -> sorted flat
    indices; colour_of maps group -> colour per flat index.
    method: "checkerboard" (coordinate parity of one group's grid, verified factor by
    factor), "bipartite" (BFS parity), "greedy" (networkx largest_first),
    "jones-plassmann" (vectorised), or "trivial" (no interactions).
    """

    classes: tuple[dict[str, np.ndarray], ...]
    colour_of: dict[str, np.ndarray]
    method: str

    @property
    def num_colours(self) -> int:
        return len(self.classes)


def latent_discrete_groups(g: ir.FactorGraph) -> tuple[str, ...]:
    return tuple(n for n, v in g.variables.items() if not v.observed and v.domain.is_discrete)


def colouring(g: ir.FactorGraph) -> Colouring:
    """Colour the latent discrete ground variables so that no class shares a factor."""
    return _cached(_graph_cache, g, "colouring", lambda: _colour(g))


def _colour(g: ir.FactorGraph) -> Colouring:
    groups = latent_discrete_groups(g)
    numbering = ground_numbering(g, groups)
    n = numbering.total
    if n == 0:
        return Colouring((), {}, "trivial")
    # A lattice is usually a checkerboard: verified factor by factor, with no edge list.
    checker = checkerboard_colours(g, groups[0]) if len(groups) == 1 else None
    if checker is not None:
        return _colouring_from_array(numbering, checker, "checkerboard")
    edges = _edges(g, _offsets(numbering), n)
    if len(edges) == 0:
        colours, method = np.zeros(n, dtype=np.int64), "trivial"
    else:
        colours = bipartite_colours(n, edges)
        method = "bipartite"
        if colours is None:
            # networkx keeps a dict per edge (hundreds of bytes): dense groups go vectorised.
            if n <= NETWORKX_COLOURING_LIMIT and len(edges) <= NETWORKX_EDGE_LIMIT:
                colours, method = greedy_colours(n, edges), "greedy"
            else:
                colours, method = jones_plassmann_colours(n, edges), "jones-plassmann"
    if np.any(colours[edges[:, 0]] == colours[edges[:, 1]]):  # pragma: no cover - a bug guard
        raise AssertionError(f"{method} colouring is not proper")
    return _colouring_from_array(numbering, colours, method)


def _colouring_from_array(numbering: GroundNumbering, colours: np.ndarray, method: str) -> Colouring:
    used = np.flatnonzero(np.bincount(colours))
    remap = np.zeros(int(used.max()) + 1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    colours = remap[colours]  # drop unused colours, keep the order
    colour_of, classes = {}, [dict() for _ in used]
    for k, group in enumerate(numbering.groups):
        block = colours[numbering.offsets[k]:numbering.offsets[k + 1]]
        colour_of[group] = _frozen(ir.compact_index(block, smallest=np.int8))
        order = np.argsort(block, kind="stable")
        bounds = np.searchsorted(block[order], np.arange(len(used) + 1))
        for c in range(len(used)):
            members = order[bounds[c]:bounds[c + 1]]
            if len(members):
                classes[c][group] = _frozen(ir.compact_index(members))
    return Colouring(tuple(classes), colour_of, method)


# --------------------------------------------------------------------------
# Markov blankets and components


def markov_blanket(g: ir.FactorGraph, group: str) -> tuple[str, ...]:
    """The variable groups (observed included) with a ground variable that shares a
    ground factor with some ground variable of `group`. `group` itself is listed
    only when its own ground variables interact (e.g. a lattice), so an empty
    result or one without `group` means its ground variables are conditionally
    independent given the listed groups (e.g. an RBM's h given v)."""
    _require_group(g, group)

    def compute() -> tuple[str, ...]:
        found: list[str] = []
        for t in g.templates:
            incidences = template_incidence(t)
            own = [inc.flat for inc in incidences if inc.group == group]
            if not own:
                continue
            own_cols = np.concatenate(own, axis=1)
            own_rows = np.any(own_cols >= 0, axis=1)
            for inc in incidences:
                if inc.group == group:
                    continue
                if np.any(own_rows & np.any(inc.flat >= 0, axis=1)) and inc.group not in found:
                    found.append(inc.group)
            if group not in found and _rows_with_two_distinct(own_cols).any():
                found.append(group)
        return tuple(n for n in g.variables if n in found)

    return _cached(_graph_cache, g, ("blanket", group), compute)


def _rows_with_two_distinct(columns: np.ndarray) -> np.ndarray:
    """Per row: does it hold at least two distinct ids >= 0?"""
    masked = np.where(columns >= 0, columns, np.iinfo(np.int64).max)
    low = masked.min(axis=1)
    high = np.where(columns >= 0, columns, -1).max(axis=1)
    return (high >= 0) & (low != high)


def markov_blanket_of(g: ir.FactorGraph, group: str, flat_index: int) -> dict[str, np.ndarray]:
    """The ground variables sharing a ground factor with variable `group[flat_index]`:
    group -> sorted flat indices (the variable itself left out)."""
    var = _require_group(g, group)
    if not 0 <= int(flat_index) < var.size:
        raise EbmError(f"'{group}' has {var.size} ground variables; {flat_index} is out of range", var.span)
    numbering = ground_numbering(g)
    me = int(numbering.to_global(group, flat_index))
    ids = []
    for t in g.templates:
        columns = _template_columns(t, _offsets(numbering))
        if columns is None:
            continue
        rows = np.any(columns == me, axis=1)
        if rows.any():
            ids.append(columns[rows].reshape(-1))
    if not ids:
        return {}
    ids = np.concatenate(ids)
    ids = ids[(ids >= 0) & (ids != me)]
    return numbering.split(ids)


@dataclass(frozen=True)
class Components:
    """Connected components of the latent interaction graph: labels per group."""

    count: int
    labels: dict[str, np.ndarray] = field(default_factory=dict)


def connected_components(g: ir.FactorGraph) -> Components:
    """Components of the latent ground variables linked through shared factors."""
    def compute() -> Components:
        latent = tuple(n for n in g.variables if not g.variables[n].observed)
        numbering = ground_numbering(g, latent)
        if numbering.total == 0:
            return Components(0, {})
        edges = _edges(g, _offsets(numbering), numbering.total)
        count, labels = csgraph.connected_components(_adjacency(numbering.total, edges), directed=False)
        per_group = {name: _frozen(labels[numbering.offsets[k]:numbering.offsets[k + 1]].astype(np.int64))
                     for k, name in enumerate(latent)}
        return Components(int(count), per_group)

    return _cached(_graph_cache, g, "components", compute)


def discrete_state_space_size(g: ir.FactorGraph, log10: bool = False) -> int | float:
    """Number of joint assignments of the latent discrete ground variables (a Python
    int), or its log10. Continuous latent groups are not counted."""
    groups = [g.variables[n] for n in latent_discrete_groups(g)]
    if log10:
        return float(sum(v.size * math.log10(v.domain.num_values) for v in groups))
    total = 1
    for v in groups:
        total *= v.domain.num_values ** v.size
    return total


def _require_group(g: ir.FactorGraph, group: str) -> ir.VariableGroup:
    if group not in g.variables:
        raise EbmError(f"{g.name} has no variable group '{group}'", hint=did_you_mean(group, g.variables))
    return g.variables[group]


# --------------------------------------------------------------------------
# networkx views


def structure_graph(g: ir.FactorGraph) -> nx.Graph:
    """The bipartite template-level factor graph.

    Nodes ("variable", name) carry shape, domain, observed, size; nodes
    ("factor", template name) carry term, num_ground, params, is_constraint,
    order, arity, latent_arity (see FactorInfo); edges join a factor to each variable group it reads (attribute
    `slots`: how many slots read it). g.graph["params"] maps param -> shape.
    """
    def compute() -> nx.Graph:
        graph = nx.Graph(name=g.name, params={n: p.shape for n, p in g.params.items()})
        for name, var in g.variables.items():
            graph.add_node(("variable", name), kind="variable", bipartite=0, shape=var.shape,
                           domain=str(var.domain), observed=var.observed, size=var.size)
        for t in g.templates:
            node = ("factor", t.name)
            info = classify(t, g)
            graph.add_node(node, kind="factor", bipartite=1, term=t.term, num_ground=t.num_ground,
                           params=t.param_names, is_constraint=t.is_constraint, order=info.order,
                           arity=info.arity, latent_arity=info.latent_arity, expert=t.expert)
            for group in t.groups:
                count = sum(1 for s in t.slots if s.group == group)
                graph.add_edge(node, ("variable", group), slots=count)
        return graph

    return _cached(_graph_cache, g, "structure_graph", compute)


def ground_graph(g: ir.FactorGraph, max_nodes: int = 20000) -> nx.Graph:
    """The bipartite ground factor graph, for small models only.

    Nodes ("variable", group, flat index) and ("factor", template name, k);
    an edge joins each ground factor to each ground variable it reads.
    """
    num_variables = sum(v.size for v in g.variables.values())
    num_factors = sum(t.num_ground for t in g.templates)
    if num_variables + num_factors > max_nodes:
        raise EbmError(
            f"the ground graph of {g.name} has {num_variables} variables and {num_factors} factors, "
            f"more than max_nodes={max_nodes}",
            hint="use structure_graph(g) for the template-level graph, or raise max_nodes for a one-off",
        )
    numbering = ground_numbering(g)
    graph = nx.Graph(name=g.name)
    for name, var in g.variables.items():
        graph.add_nodes_from(((("variable", name, i), {"bipartite": 0, "observed": var.observed})
                              for i in range(var.size)))
    for t in g.templates:
        graph.add_nodes_from(((("factor", t.name, k), {"bipartite": 1, "term": t.term})
                              for k in range(t.num_ground)))
        columns = _template_columns(t, _offsets(numbering))
        if columns is None:
            continue
        rows, cols = np.nonzero(columns >= 0)
        position, flat = numbering.to_local(columns[rows, cols])
        graph.add_edges_from(
            (("factor", t.name, int(k)), ("variable", numbering.groups[p], int(f)))
            for k, p, f in zip(rows.tolist(), position.tolist(), flat.tolist())
        )
    return graph
