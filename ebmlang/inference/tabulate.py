"""Turn the discrete part of a model (observed values clamped) into a `TabularMRF`.

Each template whose ground factors touch at most two distinct latent discrete
variables becomes unary and pairwise energy tables. The tables come from the
compiled energy itself: the template is rewritten so that each of its latent
slots reads from a factor-local copy ("position 0" or "position 1" of every
ground factor), and evaluated once for all label pairs in one batch. So the
tables are exactly the model's energies, whatever expression wrote them.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.graph.ir import FactorGraph, FactorTemplate, Node, Slot, VariableGroup, walk


@dataclass(frozen=True)
class TabularStatus:
    state_space: int
    tabular: bool
    why_not: str = ""


@dataclass(frozen=True)
class LatentIndex:
    """Global numbering of latent discrete ground variables: group -> offset."""

    groups: tuple[str, ...]
    offsets: dict
    sizes: dict
    num_labels: np.ndarray

    @property
    def total(self) -> int:
        return int(sum(self.sizes.values()))


def latent_discrete_groups(graph: FactorGraph, observed) -> list[str]:
    return [n for n, v in graph.variables.items()
            if v.domain.is_discrete and not v.observed and n not in observed]


def latent_index(graph: FactorGraph, observed) -> LatentIndex:
    groups = latent_discrete_groups(graph, observed)
    offsets, sizes, labels, offset = {}, {}, [], 0
    for g in groups:
        var = graph.variables[g]
        offsets[g], sizes[g] = offset, var.size
        labels.append(np.full(var.size, var.domain.num_values, dtype=np.int64))
        offset += var.size
    num_labels = np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)
    return LatentIndex(tuple(groups), offsets, sizes, num_labels)


def _latent_slots(template: FactorTemplate, latent: set[str]) -> list[Slot]:
    return [s for s in template.slots if s.group in latent]


def _slot_variable_ids(template: FactorTemplate, slots, index: LatentIndex) -> np.ndarray | None:
    """[num_ground, num_slots] global variable ids, or None when a slot varies over inner axes."""
    columns = []
    for s in slots:
        if s.vector:
            return None
        arr = np.asarray(s.index)
        flat = arr.reshape(arr.shape[0], -1)
        if flat.shape[1] > 1 and not np.all(flat == flat[:, :1]):
            return None
        col = np.broadcast_to(flat[:, 0], (template.num_ground,))
        columns.append(col + index.offsets[s.group])
    return np.stack(columns, axis=1) if columns else np.zeros((template.num_ground, 0), np.int64)


def tabular_status(graph: FactorGraph, observed) -> TabularStatus:
    index = latent_index(graph, observed)
    # The exact count only matters up to the enumeration limit; beyond 2^62 it is "huge".
    log2_space = float(np.log2(index.num_labels).sum()) if index.total else 0.0
    space = math.prod(int(k) for k in index.num_labels) if log2_space < 62 else 2 ** 62
    latent = set(index.groups)
    for t in graph.templates:
        slots = _latent_slots(t, latent)
        if not slots:
            continue
        ids = _slot_variable_ids(t, slots, index)
        if ids is None:
            return TabularStatus(space, False, f"term '{t.term}' reduces over latent variables inside "
                                               "one factor")
        distinct = _count_distinct(ids)
        if distinct.max(initial=0) > 2:
            return TabularStatus(space, False, f"term '{t.term}' couples {int(distinct.max())} latent "
                                               "variables in one factor (more than pairwise)")
    return TabularStatus(space, True)


def latent_pairs(graph: FactorGraph, observed) -> np.ndarray:
    """[p, 2] distinct pairs of latent discrete ground variables (global ids, smaller first)
    that share a factor, for a model that tabulates: its interaction graph, with every
    parallel term already merged into one edge."""
    index = latent_index(graph, observed)
    latent = set(index.groups)
    pairs = [np.zeros((0, 2), dtype=np.int64)]
    for t in graph.templates:
        slots = _latent_slots(t, latent)
        ids = _slot_variable_ids(t, slots, index) if slots else None
        if ids is None or ids.shape[1] < 2:
            continue
        low, high = ids.min(axis=1), ids.max(axis=1)
        pairs.append(np.stack([low[low != high], high[low != high]], axis=1))
    keys = np.unique(np.concatenate(pairs) @ np.array([index.total, 1]))   # one int per pair: fast unique
    return np.stack([keys // max(index.total, 1), keys % max(index.total, 1)], axis=1)


def _count_distinct(ids: np.ndarray) -> np.ndarray:
    if ids.shape[1] == 0:
        return np.zeros(ids.shape[0], dtype=np.int64)
    ordered = np.sort(ids, axis=1)
    return 1 + np.sum(ordered[:, 1:] != ordered[:, :-1], axis=1)


def tabulate(compiled, params, context: dict, observed=()):
    """The `TabularMRF` of the latent discrete variables given `context` values
    (observed groups and any continuous groups), plus the `LatentIndex` to map back.

    context arrays have a leading batch axis of 1. Parallel factors are merged.
    """
    models, index = tabulate_rows(compiled, params, context, observed)
    return models[0], index


def tabulate_rows(compiled, params, context: dict, observed=()):
    """One `TabularMRF` per row of `context` (arrays [B, ...], or [1, ...] shared by every
    row), all tabulated in one batched evaluation per template, with parallel factors
    merged; plus the `LatentIndex` to map labels back."""
    from ebmlang.inference.tabular import TabularMRF

    graph = compiled.graph
    backend = compiled.backend
    index = latent_index(graph, observed)
    latent = set(index.groups)
    status = tabular_status(graph, observed)
    if not status.tabular:
        raise EbmError(f"cannot tabulate the model: {status.why_not}",
                       hint="use method='annealing' (simulated annealing with block Gibbs)")
    context = {k: backend.to_numpy(v) for k, v in context.items()}
    rows = max((v.shape[0] for v in context.values()), default=1)
    n = index.total
    kmax = int(index.num_labels.max()) if n else 1
    unary = np.zeros((rows, n, kmax))
    edges, tables = [], []
    constant = np.zeros(rows)
    for t in graph.templates:
        slots = _latent_slots(t, latent)
        if not slots:
            constant += _local_energies(compiled, t, {}, context, params, rows, 1, 1).sum(axis=(1, 2, 3))
            continue
        ids = _slot_variable_ids(t, slots, index)
        first = ids[:, 0]
        position = (ids != first[:, None]).astype(np.int64)  # 0: same variable as slot 0, 1: the other
        second = np.where(position.any(axis=1), ids[np.arange(len(ids)), position.argmax(axis=1)], -1)
        groups_at = {id(s): position[:, j] for j, s in enumerate(slots)}
        k1 = kmax if (second >= 0).any() else 1
        table = _local_energies(compiled, t, groups_at, context, params, rows, kmax, k1)  # [B, n_g, k0, k1]
        is_pair = second >= 0
        single = ~is_pair
        if single.any():
            np.add.at(unary.transpose(1, 0, 2), first[single], table[..., 0][:, single].transpose(1, 0, 2))
        if is_pair.any():
            edges.append(np.stack([first[is_pair], second[is_pair]], axis=1))
            tables.append(table[:, is_pair])
    unary[:, np.arange(kmax)[None, :] >= index.num_labels[:, None]] = np.inf
    edges_arr = np.concatenate(edges) if edges else np.zeros((0, 2), np.int64)
    pair_arr = np.concatenate(tables, axis=1) if tables else np.zeros((rows, 0, kmax, kmax))
    models = [TabularMRF(num_labels=index.num_labels, unary=unary[r], edges=edges_arr, pairwise=pair_arr[r],
                         constant=float(constant[r])).merge_parallel_factors() for r in range(rows)]
    return models, index


def _local_energies(compiled, template: FactorTemplate, positions: dict, context, params,
                    rows: int, k0: int, k1: int) -> np.ndarray:
    """Energies of each ground factor of `template` for every label pair, per context row:
    [rows, num_ground, k0, k1].

    positions: id(slot) -> [num_ground] array of 0/1 saying which local position a latent slot reads.
    """
    graph = compiled.graph
    n_g = template.num_ground
    local_groups: dict[str, VariableGroup] = {}
    replaced: dict[int, Slot] = {}
    for node in walk(template.body):
        if isinstance(node, Slot) and id(node) in positions:
            local_name = f"__local_{node.group}"
            var = graph.variables[node.group]
            local_groups[local_name] = VariableGroup(local_name, (2 * n_g,), var.domain, False, var.span)
            pos = positions[id(node)]
            shape = (n_g,) + (1,) * (np.asarray(node.index).ndim - 1)
            replaced[id(node)] = dataclasses.replace(
                node, group=local_name, index=(pos * n_g + np.arange(n_g)).reshape(shape))
    body = _replace_slots(template.body, replaced)
    local_template = dataclasses.replace(template, body=body, name=template.name, term=template.term)
    variables = dict(graph.variables)
    variables.update(local_groups)
    local_graph = dataclasses.replace(graph, variables=variables, templates=(local_template,),
                                      terms=(template.term,))
    local_compiled = compiled.backend.compile(local_graph)
    for name, fn in getattr(compiled, "externs", {}).items():
        local_compiled.register_extern(name, fn)
    pairs = k0 * k1
    batch = rows * pairs
    a = np.repeat(np.arange(k0), k1)
    b = np.tile(np.arange(k1), k0)
    state = {}
    backend = compiled.backend
    for name, arr in context.items():
        # Row-major over (row, label pair): every row sees every label pair.
        per_row = np.broadcast_to(arr[:, None], (rows, pairs) + arr.shape[1:])
        state[name] = backend.asarray(per_row.reshape((batch,) + arr.shape[1:]).copy())
    for local_name in local_groups:
        values = variables[local_name].domain.values
        la = np.minimum(a, len(values) - 1)
        lb = np.minimum(b, len(values) - 1)
        pair_rows = np.concatenate([np.repeat(values[la][:, None], n_g, 1),
                                    np.repeat(values[lb][:, None], n_g, 1)], axis=1)
        state[local_name] = backend.asarray(np.tile(pair_rows, (rows, 1)))
    for name, var in graph.variables.items():
        if name not in state:
            state[name] = backend.asarray(np.zeros((batch,) + var.shape))
    energies = backend.to_numpy(local_compiled.template_energies(state, params)[template.name])
    return energies.reshape(rows, k0, k1, n_g).transpose(0, 3, 1, 2).astype(np.float64)


def _replace_slots(node: Node, replaced: dict) -> Node:
    if id(node) in replaced:
        return replaced[id(node)]
    changes = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, Node):
            new = _replace_slots(value, replaced)
            if new is not value:
                changes[f.name] = new
        elif isinstance(value, tuple) and value and all(isinstance(v, Node) for v in value):
            new_t = tuple(_replace_slots(v, replaced) for v in value)
            if any(x is not y for x, y in zip(new_t, value)):
                changes[f.name] = new_t
    return dataclasses.replace(node, **changes) if changes else node


def labels_to_state(labels: np.ndarray, index: LatentIndex, graph: FactorGraph) -> dict:
    """Per-group value arrays [*shape] from a joint labelling [n]."""
    out = {}
    for g in index.groups:
        var = graph.variables[g]
        lab = labels[index.offsets[g]: index.offsets[g] + index.sizes[g]]
        out[g] = var.domain.values[lab].reshape(var.shape)
    return out
