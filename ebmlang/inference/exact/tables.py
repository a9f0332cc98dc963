"""`PairwiseTables`: the unary and pairwise energy tables of a model's latent discrete
variables as backend arrays, planned once per set of observed groups.

Every template is compiled once into a `LocalTable`; a call evaluates each for all
joint labels (one batch per template, with one row per observation only for templates
that read observed values) and adds them into per-variable and per-edge tables with
index_add -- parallel factors merged, no numpy round trip -- so torch and JAX
differentiate log Z (passes.py) with respect to the params, as a CRF's likelihood needs.
"""
from __future__ import annotations

import dataclasses
from functools import cached_property

import numpy as np

from ebmlang.budget import as_budget
from ebmlang.graph.ir import Apply, FactorTemplate
from ebmlang.inference.discrete_map.tree_dp import rooted_forest
from ebmlang.inference.exact.passes import gather
from ebmlang.inference.exact.schedule import LevelSchedule, level_schedule
from ebmlang.inference.local_tables import LocalTable
from ebmlang.inference.tabulate import (
    _factor_positions,
    _latent_slots,
    _slot_variable_ids,
    latent_index,
    slot_reads,
)


class NotPairwise(Exception):
    """A factor reads three or more latent variables (the junction-tree path serves it)."""


def pairwise_tables(compiled, observed, budget=None) -> "PairwiseTables":
    """The model's PairwiseTables with `observed` groups clamped, planned once per set of
    names and shared by every query (NotPairwise when a factor reads three or more)."""
    names = tuple(sorted(observed))
    return compiled.memo(("pairwise tables", names), lambda: PairwiseTables(compiled, names, budget))


class PairwiseTables:
    """unary [R, n, K], pairwise [R, E, K, K] (edges [E, 2], smaller id first) and the
    constant [R] of the latent discrete part of `compiled` with `observed` groups clamped."""

    def __init__(self, compiled, observed: tuple[str, ...], budget=None):
        graph = compiled.graph
        self.backend = compiled.backend
        self.index = latent_index(graph, observed)
        latent = set(self.index.groups)
        n = self.index.total
        self.kmax = int(self.index.num_labels.max()) if n else 1
        budget = as_budget(budget)
        self.constant_parts, self.unary_parts, self.pair_parts = [], [], []
        pair_keys = []
        for t in _merged_by_scope(graph.templates, latent, self.index):
            slots = _latent_slots(t, latent)
            if not slots:
                self.constant_parts.append(LocalTable(compiled, t, {}, ()))
                continue
            ids, shapes = _slot_variable_ids(t, slots, self.index)
            distinct, count, position = _factor_positions(ids)
            arity = int(count.max())   # at most 2: _merged_by_scope refused wider factors
            budget.check(8.0 * self.kmax ** arity * t.num_ground * (arity + 2),
                         f"tabulating term '{t.term}' ({t.num_ground:,} factors x {self.kmax ** arity:,} labels)",
                         t.span, graph.source)
            table = LocalTable(compiled, t, slot_reads(slots, shapes, position, t.num_ground), (self.kmax,) * arity)
            single = np.flatnonzero(count == 1)
            if single.size:
                self.unary_parts.append((table, single, distinct[single, 0]))
            double = np.flatnonzero(count == 2)
            if double.size:
                first, second = distinct[double, 0], distinct[double, 1]
                pair_keys.append(np.minimum(first, second) * max(n, 1) + np.maximum(first, second))
                self.pair_parts.append((table, double, first > second))
        keys = np.concatenate(pair_keys) if pair_keys else np.zeros(0, np.int64)
        unique, inverse = np.unique(keys, return_inverse=True)
        self.edges = np.stack([unique // max(n, 1), unique % max(n, 1)], axis=1).astype(np.int64)
        offsets = np.cumsum([0] + [len(p[1]) for p in self.pair_parts])
        self.pair_parts = [(table, members, swap, inverse[offsets[i]:offsets[i + 1]])
                           for i, (table, members, swap) in enumerate(self.pair_parts)]
        padding = np.arange(self.kmax)[None, :] >= self.index.num_labels[:, None]
        self.padding = np.where(padding, np.inf, 0.0)                                  # [n, K]

    @property
    def num_variables(self) -> int:
        return self.index.total

    @cached_property
    def forest(self):
        """The rooted forest of the edges (None when they close a cycle)."""
        return rooted_forest(self.num_variables, self.edges)

    @cached_property
    def schedule(self) -> LevelSchedule:
        return level_schedule(self.forest, self.edges)

    def build(self, context: dict, params, rows: int):
        """(unary [R, n, K], pairwise [R, E, K, K], constant [R]) backend arrays; R = rows
        when some table reads the context, else 1 (they broadcast)."""
        ops, backend = self.backend.ops, self.backend
        n, kmax, num_edges = self.index.total, self.kmax, self.edges.shape[0]

        tables = [p[0] for p in self.unary_parts + self.pair_parts] + self.constant_parts
        total_rows = rows if any(t.context_groups for t in tables) else 1

        def evaluate(table: LocalTable, members: np.ndarray):
            energies = table.energies(context, params, rows if table.context_groups else 1)
            part = gather(backend, energies, members, len(energies.shape) - 1)
            return ops.broadcast_to(part, (total_rows,) + tuple(part.shape[1:]))

        unary = ops.zeros((total_rows, kmax, n))
        if self.padding.any():   # labels past a variable's own count are forbidden
            unary = unary + backend.asarray(self.padding.T[None])
        for table, members, variables in self.unary_parts:
            part = evaluate(table, members)                                            # [R, K, (K,) m]
            if len(table.sizes) == 2:
                part = part[:, :, 0]
            unary = _add_at(backend, unary, variables, part)
        pairwise = ops.zeros((1, kmax, kmax, num_edges))
        for table, members, swap, edge_ids in self.pair_parts:
            part = evaluate(table, members) if table.context_groups else gather(
                backend, table.energies(context, params, 1), members, 3)               # [R or 1, K, K, m]
            if swap.any():
                flipped = ops.swapaxes(part, 1, 2)
                part = flipped if swap.all() else ops.where(
                    backend.asarray(swap[None, None, None, :], dtype="bool"), flipped, part)
            pairwise = _add_at(backend, pairwise, edge_ids, part)
        constant = ops.zeros((total_rows,))
        for table in self.constant_parts:
            energies = table.energies(context, params, rows if table.context_groups else 1)
            constant = constant + ops.sum(ops.reshape(energies, (-1, table.template.num_ground)), 1)
        unary = ops.swapaxes(unary, 1, 2)                                               # [R, n, K]
        pairwise = ops.swapaxes(ops.swapaxes(pairwise, 2, 3), 1, 2)                     # [R, E, K, K]
        return unary, pairwise, constant


def _merged_by_scope(templates, latent: set, index) -> list[FactorTemplate]:
    """The templates, with those whose ground factors read the same latent variables row by
    row (the additive parts of one term, `emission#0` and `emission#1`) summed into one, so
    each table is evaluated once. NotPairwise for a whole latent group passed to a network."""
    groups: dict[tuple, list] = {}
    for t in templates:
        slots = _latent_slots(t, latent)
        if not slots:
            groups.setdefault(("constant", id(t)), []).append(t)
            continue
        found = _slot_variable_ids(t, slots, index)
        if found is None:
            raise NotPairwise(f"term '{t.term}' passes a whole latent group to a network")
        distinct, count, _ = _factor_positions(found[0])
        if int(count.max()) > 2:
            raise NotPairwise(f"term '{t.term}' reads {int(count.max())} latent variables in one factor")
        key = (t.num_ground, distinct[:, :2].tobytes(), count.tobytes())
        groups.setdefault(key, []).append(t)
    merged = []
    for members in groups.values():
        if len(members) == 1:
            merged.append(members[0])
            continue
        body = members[0].body
        for other in members[1:]:
            body = Apply(other.body.span, "add", (body, other.body))
        merged.append(dataclasses.replace(members[0], name="+".join(t.name for t in members), body=body,
                                          is_constraint=any(t.is_constraint for t in members)))
    return merged


def _add_at(backend, target, index: np.ndarray, values):
    """`target` plus `values` at `index` on its last axis (a plain sum when `index` is every
    position in order, the usual case of one table per variable or edge)."""
    if index.size == target.shape[-1] and np.array_equal(index, np.arange(index.size)):
        return target + values
    rows = max(target.shape[0], values.shape[0])
    target = backend.ops.broadcast_to(target, (rows,) + tuple(target.shape[1:]))
    values = backend.ops.broadcast_to(values, (rows,) + tuple(values.shape[1:]))
    return backend.ops.index_add(target, backend.asarray(index, dtype="int64"), values)
