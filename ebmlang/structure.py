"""Structure queries over a factor graph: pure functions, results cached per graph.

Everything here reads the templates' index arrays with vectorised numpy; no
query builds a per-ground-factor Python object, except `ground_graph`, which is
for small models and refuses large ones.

Ground variables have a global numbering: the groups in `g.variables` order,
each contributing a block `offset + flat index` (see `GroundNumbering`).
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from ebmlang import ir
from ebmlang.errors import EbmError, did_you_mean

# networkx's greedy colouring is used up to this many ground variables; beyond it
# a vectorised Jones-Plassmann colouring (numpy) takes over.
NETWORKX_COLOURING_LIMIT = 50_000
# a factor is tabular when its table over its latent variables has at most this many entries
TABULAR_LIMIT = 2**16
# pairs of slots per ground factor are expanded in chunks of about this many pairs
_PAIR_CHUNK = 4_000_000

_COMPARISON_FUNCTIONS = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not"})

_graph_cache: "weakref.WeakKeyDictionary[ir.FactorGraph, dict]" = weakref.WeakKeyDictionary()
_template_cache: "weakref.WeakKeyDictionary[ir.FactorTemplate, dict]" = weakref.WeakKeyDictionary()


def _cached(cache: weakref.WeakKeyDictionary, owner, key, compute):
    """Memoise `compute()` on `owner` (a frozen graph or template, keyed by identity)."""
    entries = cache.setdefault(owner, {})
    if key not in entries:
        entries[key] = compute()
    return entries[key]


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting: for large int arrays numpy 2's hash-based unique is several times slower."""
    values = np.sort(values)
    if values.size == 0:
        return values
    keep = np.empty(values.shape, dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


# --------------------------------------------------------------------------
# Ground variable numbering


@dataclass(frozen=True)
class GroundNumbering:
    """Ground variable ids: group k's flat index f has id offsets[k] + f."""

    groups: tuple[str, ...]
    offsets: np.ndarray  # [len(groups) + 1], offsets[-1] == total

    @property
    def total(self) -> int:
        return int(self.offsets[-1])

    def offset(self, group: str) -> int:
        return int(self.offsets[self.groups.index(group)])

    def to_global(self, group: str, flat_index) -> np.ndarray:
        """Global ids of flat indices of one group."""
        return self.offset(group) + np.asarray(flat_index, dtype=np.int64)

    def to_local(self, ids) -> tuple[np.ndarray, np.ndarray]:
        """(group position in `groups`, flat index) of each global id."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.total):
            raise ValueError(f"ground variable ids must lie in 0..{self.total - 1}")
        position = np.searchsorted(self.offsets, ids, side="right") - 1
        return position, ids - self.offsets[position]

    def split(self, ids) -> dict[str, np.ndarray]:
        """Global ids -> {group: sorted unique flat indices} (groups with none are left out)."""
        position, flat = self.to_local(_sorted_unique(np.asarray(ids, dtype=np.int64).reshape(-1)))
        return {self.groups[k]: flat[position == k] for k in np.unique(position).tolist()}


def ground_numbering(g: ir.FactorGraph, groups: tuple[str, ...] | None = None) -> GroundNumbering:
    """The numbering over `groups` (default: every variable group, in declaration order)."""
    chosen = tuple(g.variables) if groups is None else tuple(groups)

    def compute() -> GroundNumbering:
        sizes = [g.variables[name].size for name in chosen]
        return GroundNumbering(chosen, _frozen(np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])))

    return _cached(_graph_cache, g, ("numbering", chosen), compute)


# --------------------------------------------------------------------------
# Which ground variables each ground factor touches


@dataclass(frozen=True)
class SlotIncidence:
    """The variables one slot reads: `flat` [num_ground, n] flat indices into
    `group`, -1 where a ragged inner reduction is padded (masked out)."""

    group: str
    flat: np.ndarray


def template_incidence(t: ir.FactorTemplate) -> tuple[SlotIncidence, ...]:
    """Per slot of the template, the ground variables each ground factor reads."""
    return _cached(_template_cache, t, "incidence", lambda: tuple(_incidence(t)))


def _incidence(t: ir.FactorTemplate):
    for slot, valid in _slots_with_validity(t.body, 0, ()):
        index = slot.index
        shape = np.broadcast_shapes(index.shape, valid.shape) if valid is not None else index.shape
        shape = (t.num_ground,) + shape[1:]
        flat = np.broadcast_to(index, shape)
        if valid is not None:
            flat = np.where(np.broadcast_to(valid, shape), flat, -1)
        yield SlotIncidence(slot.group, _frozen(np.ascontiguousarray(flat).reshape(t.num_ground, -1)))


def _slots_with_validity(node: ir.Node, depth: int, masks: tuple[tuple[int, np.ndarray], ...]):
    """Yield (slot, validity mask broadcastable to its index or None) for every slot."""
    if isinstance(node, ir.Slot):
        valid = None
        for mask_depth, mask in masks:
            extra = depth - mask_depth + (1 if node.vector else 0)
            m = np.asarray(mask, dtype=bool).reshape(mask.shape + (1,) * extra)
            valid = m if valid is None else valid & m
        yield node, valid
        return
    if isinstance(node, ir.Reduce):
        inner = masks + (((depth + 1), node.mask),) if node.mask is not None else masks
        yield from _slots_with_validity(node.body, depth + 1, inner)
        return
    for child in node.children():
        yield from _slots_with_validity(child, depth, masks)


def _template_columns(t: ir.FactorTemplate, offsets: dict[str, int]) -> np.ndarray | None:
    """[num_ground, n] ids (group offset + flat index) of the variables of the groups in
    `offsets` that each ground factor reads; -1 at masked padding."""
    columns = []
    for inc in template_incidence(t):
        if inc.group not in offsets:
            continue
        columns.append(np.where(inc.flat >= 0, inc.flat + offsets[inc.group], -1))
    if not columns:
        return None
    return np.concatenate(columns, axis=1)


def _pair_keys(columns: np.ndarray, total: int) -> list[np.ndarray]:
    """Keys lo * total + hi of the distinct id pairs sharing a row of `columns` (with repeats)."""
    num_rows, width = columns.shape
    if width < 2 or num_rows == 0:
        return []
    first, second = np.triu_indices(width, 1)
    rows_per_chunk = max(1, _PAIR_CHUNK // len(first))
    keys = []
    for start in range(0, num_rows, rows_per_chunk):
        block = columns[start:start + rows_per_chunk]
        a = block[:, first].reshape(-1)
        b = block[:, second].reshape(-1)
        keep = (a >= 0) & (b >= 0) & (a != b)
        a, b = a[keep], b[keep]
        chunk = np.minimum(a, b) * total + np.maximum(a, b)
        # wide factors repeat pairs a lot: compact them early to bound memory
        keys.append(_sorted_unique(chunk) if len(first) > 1 else chunk)
    return keys


def _edges(g: ir.FactorGraph, offsets: dict[str, int], total: int) -> np.ndarray:
    """Unique pairs [m, 2] (lo < hi) of ids sharing a ground factor, among the groups in `offsets`."""
    def compute() -> np.ndarray:
        base = max(total, 1)
        keys = []
        for t in g.templates:
            columns = _template_columns(t, offsets)
            if columns is not None:
                keys.extend(_pair_keys(columns, base))
        keys = _sorted_unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.int64)
        return _frozen(np.stack([keys // base, keys % base], axis=1).astype(np.int64))

    return _cached(_graph_cache, g, ("edges", tuple(sorted(offsets.items())), total), compute)


def _offsets(numbering: GroundNumbering) -> dict[str, int]:
    return {name: int(numbering.offsets[k]) for k, name in enumerate(numbering.groups)}


def interaction_edges(g: ir.FactorGraph, latent_only: bool = True) -> np.ndarray:
    """Pairs of ground variables sharing a ground factor: [m, 2] global ids, lo < hi, unique.

    latent_only: only pairs of latent variables (observed ones are fixed data).
    Ids are in the global numbering (`ground_numbering(g)`), either way.
    """
    full = ground_numbering(g)
    offsets = _offsets(full)
    if latent_only:
        offsets = {n: o for n, o in offsets.items() if not g.variables[n].observed}
    return _edges(g, offsets, full.total)


# --------------------------------------------------------------------------
# Colouring


@dataclass(frozen=True)
class Colouring:
    """Colour classes of the latent discrete ground variables.

    No two variables of one class share a ground factor, so a class can be
    resampled at once by block Gibbs. classes[c] maps group -> sorted flat
    indices; colour_of maps group -> colour per flat index.
    method: "bipartite" (BFS parity), "greedy" (networkx largest_first),
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
    edges = _edges(g, _offsets(numbering), n)
    if n == 0:
        return Colouring((), {}, "trivial")
    if len(edges) == 0:
        colours, method = np.zeros(n, dtype=np.int64), "trivial"
    else:
        colours = bipartite_colours(n, edges)
        method = "bipartite"
        if colours is None:
            if n <= NETWORKX_COLOURING_LIMIT:
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
        colour_of[group] = _frozen(block.copy())
        order = np.argsort(block, kind="stable")
        bounds = np.searchsorted(block[order], np.arange(len(used) + 1))
        for c in range(len(used)):
            members = order[bounds[c]:bounds[c + 1]]
            if len(members):
                classes[c][group] = _frozen(members.astype(np.int64))
    return Colouring(tuple(classes), colour_of, method)


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
    pairs = _sorted_unique(src[arcs] * base + colours[dst[arcs]])
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
# Factor classification


@dataclass(frozen=True)
class FactorInfo:
    """What kind of factor a template is.

    arity: most distinct ground variables (observed included) one ground factor reads.
    latent_arity: the same counting latent variables only; `order` names it:
      "constant" (0), "unary" (1), "pairwise" (2) or "higher".
    domains: the domain kinds it touches; latent_groups / observed_groups: which groups.
    differentiable: smooth in its continuous variables (no constraint, no extern,
      no comparison or selection driven by a continuous value).
    tabular: its latent variables are all discrete and the largest per-factor table
      (product of K over a ground factor's distinct latent variables) has at most
      TABULAR_LIMIT entries; table_size is that product (None when not discrete).
    """

    name: str
    term: str
    num_ground: int
    arity: int
    latent_arity: int
    order: str
    domains: tuple[str, ...]
    latent_groups: tuple[str, ...]
    observed_groups: tuple[str, ...]
    is_constraint: bool
    differentiable: bool
    tabular: bool
    table_size: int | None
    has_extern: bool
    has_neural: bool


def classify(template: ir.FactorTemplate, g: ir.FactorGraph) -> FactorInfo:
    """Arity, domains, differentiability and tabularity of one template."""
    return _cached(_graph_cache, g, ("classify", template.name), lambda: _classify(template, g))


def _classify(t: ir.FactorTemplate, g: ir.FactorGraph) -> FactorInfo:
    groups = [n for n in t.groups]
    latent = tuple(n for n in groups if not g.variables[n].observed)
    observed = tuple(n for n in groups if g.variables[n].observed)
    numbering = ground_numbering(g)
    columns = _template_columns(t, _offsets(numbering))
    if columns is None:
        columns = np.full((t.num_ground, 0), -1, dtype=np.int64)
    distinct = _distinct_mask(columns)
    arity = int(distinct.sum(axis=1).max(initial=0))
    is_latent = np.zeros(numbering.total + 1, dtype=bool)
    log_k = np.zeros(numbering.total + 1)
    for k, name in enumerate(numbering.groups):
        var = g.variables[name]
        block = slice(numbering.offsets[k], numbering.offsets[k + 1])
        is_latent[block] = not var.observed
        log_k[block] = math.log(var.domain.num_values) if var.domain.is_discrete else math.inf
    safe = np.where(columns >= 0, columns, numbering.total)  # the extra slot is a harmless sentinel
    latent_distinct = distinct & is_latent[safe]
    latent_arity = int(latent_distinct.sum(axis=1).max(initial=0))
    all_discrete = all(g.variables[n].domain.is_discrete for n in latent)
    table_size = None
    if all_discrete:
        log_size = float(np.where(latent_distinct, log_k[safe], 0.0).sum(axis=1).max(initial=0.0))
        table_size = int(round(math.exp(log_size))) if log_size < 60 else None
    nodes = list(ir.walk(t.body))
    return FactorInfo(
        name=t.name, term=t.term, num_ground=t.num_ground, arity=arity, latent_arity=latent_arity,
        order={0: "constant", 1: "unary", 2: "pairwise"}.get(latent_arity, "higher"),
        domains=tuple(dict.fromkeys(g.variables[n].domain.kind for n in groups)),
        latent_groups=latent, observed_groups=observed, is_constraint=t.is_constraint,
        differentiable=not t.is_constraint and _smooth_in_continuous(t.body, g),
        tabular=all_discrete and table_size is not None and table_size <= TABULAR_LIMIT,
        table_size=table_size,
        has_extern=any(isinstance(n, ir.Extern) for n in nodes),
        has_neural=any(isinstance(n, ir.Neural) for n in nodes),
    )


def _distinct_mask(columns: np.ndarray) -> np.ndarray:
    """Per row, True at the first occurrence of each id >= 0 (column order)."""
    if columns.shape[1] == 0:
        return np.zeros(columns.shape, dtype=bool)
    order = np.argsort(columns, axis=1, kind="stable")
    ordered = np.take_along_axis(columns, order, axis=1)
    first = np.ones(ordered.shape, dtype=bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    first &= ordered >= 0
    mask = np.zeros(columns.shape, dtype=bool)
    np.put_along_axis(mask, order, first, axis=1)
    return mask


def _smooth_in_continuous(body: ir.Node, g: ir.FactorGraph) -> bool:
    def reads_continuous(node: ir.Node) -> bool:
        return any(isinstance(n, ir.Slot) and g.variables[n.group].domain.is_continuous for n in ir.walk(node))

    for node in ir.walk(body):
        if isinstance(node, ir.Extern):
            return False
        if isinstance(node, ir.Apply) and node.fn in _COMPARISON_FUNCTIONS and reads_continuous(node):
            return False
        if isinstance(node, ir.Select) and reads_continuous(node.index):
            return False
    return True


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
