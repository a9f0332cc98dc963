"""Turn the discrete part of a model (observed values clamped) into a `TabularMRF`.

Each template whose ground factors touch at most MAX_TABULAR_ARITY distinct latent
discrete variables becomes unary, pairwise and higher-order energy tables. The
tables come from the compiled energy itself: the template is rewritten so that each
of its latent slots (each element of a slot that reads several, as `sum(j) x[i, j]`
does) reads from a factor-local copy ("position p" of every ground factor), and
evaluated once for every joint label of the positions in one batch. So the tables
are exactly the model's energies, whatever expression wrote them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ebmlang.budget import as_budget
from ebmlang.errors import EbmError
from ebmlang.graph.ir import FactorGraph, FactorTemplate, Slot


@dataclass(frozen=True)
class TabularStatus:
    state_space: int
    tabular: bool
    why_not: str = ""
    arity: int = 0   # the most latent variables one factor reads


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


# A factor over more latent variables than this, or whose table would have more entries
# than MAX_TABLE_ENTRIES, is not tabulated (annealing serves such models).
MAX_TABULAR_ARITY = 6
MAX_TABLE_ENTRIES = 2 ** 16


def _slot_variable_ids(template: FactorTemplate, slots, index: LatentIndex):
    """([num_ground, C] global variable id of every latent element the factor reads, one
    column per element of each slot; [per slot, its columns' shape]), or None when a slot
    is a whole group passed to a network."""
    columns, shapes = [], []
    for s in slots:
        if s.vector:
            return None
        arr = np.asarray(s.index)
        full = np.broadcast_to(arr, (template.num_ground,) + arr.shape[1:])
        shapes.append(arr.shape[1:])
        # int64 ids: the flat indices may be int32 (ir.compact_index) and codes multiply them.
        columns.append(full.reshape(template.num_ground, -1).astype(np.int64) + index.offsets[s.group])
    if not columns:
        return np.zeros((template.num_ground, 0), np.int64), []
    return np.concatenate(columns, axis=1), shapes


def _factor_positions(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each ground factor, its distinct variables in order of first reading ([n_g, C],
    -1 padded), how many there are ([n_g]), and which of them each column reads ([n_g, C])."""
    n_g, num_columns = ids.shape
    distinct = np.full((n_g, max(num_columns, 1)), -1, dtype=np.int64)
    count = np.zeros(n_g, dtype=np.int64)
    position = np.zeros((n_g, num_columns), dtype=np.int64)
    rows = np.arange(n_g)
    for column in range(num_columns):  # over the factor's few slot elements, not its ground factors
        seen = distinct == ids[:, column][:, None]
        found = seen.any(axis=1)
        position[:, column] = np.where(found, seen.argmax(axis=1), count)
        new = ~found
        distinct[rows[new], count[new]] = ids[new, column]
        count += new
    return distinct, count, position


def slot_reads(slots, shapes, position: np.ndarray, num_ground: int) -> dict:
    """id(slot) -> [num_ground, *inner] local position each element of each latent slot reads
    (`position` from `_factor_positions`, its columns slot by slot as `_slot_variable_ids` lays them)."""
    reads, start = {}, 0
    for slot, shape in zip(slots, shapes):
        size = int(np.prod(shape, dtype=np.int64))
        reads[id(slot)] = position[:, start:start + size].reshape((num_ground,) + shape)
        start += size
    return reads


def tabular_status(graph: FactorGraph, observed) -> TabularStatus:
    index = latent_index(graph, observed)
    # The exact count only matters up to the enumeration limit; beyond 2^62 it is "huge".
    log2_space = float(np.log2(index.num_labels).sum()) if index.total else 0.0
    space = math.prod(int(k) for k in index.num_labels) if log2_space < 62 else 2 ** 62
    latent = set(index.groups)
    kmax = int(index.num_labels.max()) if index.total else 1
    widest_factor = 0
    for t in graph.templates:
        slots = _latent_slots(t, latent)
        if not slots:
            continue
        found = _slot_variable_ids(t, slots, index)
        if found is None:
            return TabularStatus(space, False, f"term '{t.term}' passes a whole latent group to a network")
        _, count, _ = _factor_positions(found[0])
        arity = int(count.max(initial=0))
        widest_factor = max(widest_factor, arity)
        if arity > MAX_TABULAR_ARITY or float(kmax) ** arity > MAX_TABLE_ENTRIES:
            own = max(graph.variables[s.group].domain.num_values for s in slots)
            if own < kmax and float(own) ** arity <= MAX_TABLE_ENTRIES:
                widest = max(latent, key=lambda g: graph.variables[g].domain.num_values)
                return TabularStatus(space, False, f"every table is padded to the largest label count, {kmax:,} "
                                                   f"(of '{widest}'), and term '{t.term}' couples {arity} latent "
                                                   f"variables: {float(kmax) ** arity:.3g} joint labels per factor, "
                                                   "more than a table holds")
            return TabularStatus(space, False, f"term '{t.term}' couples {arity} latent variables with up to "
                                               f"{kmax} labels in one factor ({float(kmax) ** arity:.3g} "
                                               "joint labels, more than a table holds)")
    return TabularStatus(space, True, arity=widest_factor)


def latent_pairs(graph: FactorGraph, observed) -> np.ndarray:
    """[p, 2] distinct pairs of latent discrete ground variables (global ids, smaller first)
    that share a factor, for a model that tabulates: its interaction graph, with every
    parallel term already merged into one edge."""
    index = latent_index(graph, observed)
    latent = set(index.groups)
    pairs = [np.zeros((0, 2), dtype=np.int64)]
    for t in graph.templates:
        slots = _latent_slots(t, latent)
        found = _slot_variable_ids(t, slots, index) if slots else None
        if found is None or found[0].shape[1] < 2:
            continue
        distinct, count, _ = _factor_positions(found[0])
        for a in range(distinct.shape[1]):          # every pair of a factor's distinct variables
            for b in range(a + 1, distinct.shape[1]):
                both = count > b
                low = np.minimum(distinct[both, a], distinct[both, b])
                high = np.maximum(distinct[both, a], distinct[both, b])
                pairs.append(np.stack([low, high], axis=1))
    keys = np.unique(np.concatenate(pairs) @ np.array([index.total, 1]))   # one int per pair: fast unique
    return np.stack([keys // max(index.total, 1), keys % max(index.total, 1)], axis=1)


def tabulate(compiled, params, context: dict, observed=(), budget=None):
    """The `TabularMRF` of the latent discrete variables given `context` values
    (observed groups and any continuous groups), plus the `LatentIndex` to map back.

    context arrays have a leading batch axis of 1. Parallel factors are merged.
    """
    models, index = tabulate_rows(compiled, params, context, observed, budget)
    return models[0], index


def tabulate_rows(compiled, params, context: dict, observed=(), budget=None):
    """One `TabularMRF` per row of `context` (arrays [B, ...], or [1, ...] shared by every
    row), all tabulated in one batched evaluation per template, with parallel factors
    merged; plus the `LatentIndex` to map labels back. Each template's evaluation (every
    label pair of every ground factor, per row) is checked against `budget` first."""
    from ebmlang.inference.tabular import HigherFactor, TabularMRF

    graph = compiled.graph
    backend = compiled.backend
    index = latent_index(graph, observed)
    latent = set(index.groups)
    status = tabular_status(graph, observed)
    if not status.tabular:
        raise EbmError(f"cannot tabulate the model: {status.why_not}",
                       hint="argmin(method='annealing') still works (simulated annealing with block Gibbs); "
                            "exact conditionals and ranking need the tables, and sample() approximates them")
    context = {k: backend.to_numpy(v) for k, v in context.items()}
    rows = max((v.shape[0] for v in context.values()), default=1)
    n = index.total
    kmax = int(index.num_labels.max()) if n else 1
    budget = as_budget(budget)
    widest = max(index.groups, key=lambda g: graph.variables[g].domain.num_values, default=None)
    budget.check(8.0 * rows * n * kmax, f"the label tables of {n:,} discrete variables with up to {kmax:,} "
                 "labels each", graph.variables[widest].span if widest else None, graph.source)
    state_size = sum(v.size for v in graph.variables.values())
    unary = np.zeros((rows, n, kmax))
    edges, tables = [], []
    higher: dict[int, tuple[list, list]] = {}
    constant = np.zeros(rows)
    for t in graph.templates:
        slots = _latent_slots(t, latent)
        if not slots:
            constant += _local_energies(compiled, t, {}, context, params, rows, ()).sum(axis=1)
            continue
        ids, shapes = _slot_variable_ids(t, slots, index)
        distinct, count, position = _factor_positions(ids)
        arity = int(count.max())
        reads = slot_reads(slots, shapes, position, t.num_ground)
        budget.check(8.0 * rows * kmax ** arity * (3 * t.num_ground + state_size),
                     f"tabulating term '{t.term}' ({t.num_ground:,} factors x {kmax ** arity:,} joint labels)",
                     t.span, graph.source)
        table = _local_energies(compiled, t, reads, context, params, rows, (kmax,) * arity)  # [B, n_g, K, ...]
        for d in np.unique(count):
            members = count == d
            # Axes beyond a factor's own variables are never read: take label 0 there.
            part = table[:, members][(slice(None), slice(None)) + (slice(None),) * d + (0,) * (arity - d)]
            if d == 1:
                np.add.at(unary.transpose(1, 0, 2), distinct[members, 0], part.transpose(1, 0, 2))
            elif d == 2:
                edges.append(distinct[members, :2])
                tables.append(part)
            else:
                variables, parts = higher.setdefault(int(d), ([], []))
                variables.append(distinct[members, :d])
                parts.append(part.reshape(rows, int(members.sum()), -1))
    unary[:, np.arange(kmax)[None, :] >= index.num_labels[:, None]] = np.inf
    edges_arr = np.concatenate(edges) if edges else np.zeros((0, 2), np.int64)
    pair_arr = np.concatenate(tables, axis=1) if tables else np.zeros((rows, 0, kmax, kmax))
    models = []
    for r in range(rows):
        factors = tuple(HigherFactor(np.concatenate(v), np.concatenate([p[r] for p in ps]))
                        for v, ps in higher.values())
        models.append(TabularMRF(num_labels=index.num_labels, unary=unary[r], edges=edges_arr,
                                 pairwise=pair_arr[r], higher=factors,
                                 constant=float(constant[r])).merge_parallel_factors())
    return models, index


def _local_energies(compiled, template: FactorTemplate, reads: dict, context, params,
                    rows: int, sizes: tuple[int, ...]) -> np.ndarray:
    """Energies of each ground factor of `template` for every joint label of its local
    positions, per context row: [rows, num_ground, *sizes] (see LocalTable)."""
    from ebmlang.inference.local_tables import LocalTable

    table = LocalTable(compiled, template, reads, sizes)
    backend = compiled.backend
    values = {k: backend.asarray(v) for k, v in context.items() if k in table.context_groups}
    energies = backend.to_numpy(table.energies(values, params, rows))
    return np.moveaxis(energies, -1, 1).astype(np.float64)


def labels_to_state(labels: np.ndarray, index: LatentIndex, graph: FactorGraph) -> dict:
    """Per-group value arrays [*shape] from a joint labelling [n]."""
    out = {}
    for g in index.groups:
        var = graph.variables[g]
        lab = labels[index.offsets[g]: index.offsets[g] + index.sizes[g]]
        out[g] = var.domain.values[lab].reshape(var.shape)
    return out
