"""Index sets as flat expansions: the ground rows of a term and the inner axes of a reduction.

A mixin of `_ModelLowerer` (it uses `error`, `static_index` and `static_value`):
a binding's range may depend on enclosing indices; rows are expanded with
`np.repeat`, filtered by `where`, and, inside a reduction that stays in the
factor, padded into an inner axis with a mask.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.graph import ir
from ebmlang.graph.lower.scope import _Scope, _walk_ast
from ebmlang.graph.lower.static import evaluate_constant
from ebmlang.language import ast


def _children(node):
    """The expressions directly under `node`."""
    for f in dataclasses.fields(node):
        if f.name in ("span", "ty", "func_span"):
            continue
        value = getattr(node, f.name)
        for item in (value if isinstance(value, tuple) else (value,)):
            if isinstance(item, ast.Expr):
                yield item


def _free_index_names(exprs: Iterable[ast.Expr | None], bound: dict[str, np.ndarray], own: set[str]) -> list[str]:
    names: list[str] = []
    for expr in exprs:
        for node in _walk_ast(expr):
            if isinstance(node, ast.Name) and node.name in bound and node.name not in own and node.name not in names:
                names.append(node.name)
    return names


class _IndexSetLowerer:
    """Enumerates index sets: promoted to ground indices, or as a reduction's inner axis."""

    def check_term_size(self, decl, body: ast.Expr) -> None:
        """Refuse a term whose index tuples (its own times every nested reduction's, with
        constant ranges) are over the budget, before any of them is enumerated."""
        own = self._extent_bound(decl.index_set) if decl.index_set is not None else 1.0
        tuples, depth = self._nested_tuples(body)
        width = depth + (len(decl.index_set.bindings) if decl.index_set is not None else 0) + 2
        total = own * tuples
        self.spend(total * width, f"term '{decl.name}', with up to {total:,.0f} index tuples,", decl.span)
        # A network called per tuple holds its widest layer for every tuple of every state.
        layers = [_widest_layer(self.params[node.func].init) for node in _walk_ast(body)
                  if isinstance(node, ast.Call) and node.func in self.params
                  and self.params[node.func].init.kind in ("mlp", "layers")]
        if layers:
            self.spend(total * 2 * max(layers), f"term '{decl.name}', a network over up to {total:,.0f} index "
                       f"tuples with layers of up to {max(layers):,} units, per state,", decl.span)
        # Every term's index arrays stay in the graph: their sum is held to the budget too.
        self.index_elements += total * width
        self.spend(self.index_elements, f"term '{decl.name}' brings the model's index tuples to "
                   f"{self.index_elements / width:,.0f} or more, which", decl.span)

    def _nested_tuples(self, expr) -> tuple[float, int]:
        """(largest product of reduction extents along one nesting path, bindings on it)."""
        if expr is None:
            return 1.0, 0
        if isinstance(expr, ast.Reduce):
            inner, depth = self._nested_tuples(expr.body)
            return self._extent_bound(expr.index_set) * inner, depth + len(expr.index_set.bindings)
        best = (1.0, 0)
        for child in _children(expr):
            best = max(best, self._nested_tuples(child))
        return best

    def _extent_bound(self, index_set: ast.IndexSet) -> float:
        """The product of the bindings' constant range lengths (ranges that depend on other
        indices are left to `enumerate_index_set`, which checks each step)."""
        product = 1.0
        for binding in index_set.bindings:
            try:
                start = evaluate_constant(binding.start, self.consts)
                stop = evaluate_constant(binding.stop, self.consts)
            except EbmError:
                continue
            if np.ndim(start) == 0 and np.ndim(stop) == 0:
                product *= max(float(stop) - float(start), 0.0)
        return product

    def enumerate_index_set(
        self, index_set: ast.IndexSet, context: dict[str, np.ndarray], num_contexts: int
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """All index tuples of `index_set` for each of `num_contexts` contexts.

        context: enclosing index name -> 1-D array [num_contexts] of its value.
        Returns (context id per tuple [R], binding name -> value per tuple [R]),
        tuples ordered by context then lexicographically; ranges may depend on
        enclosing and earlier indices, `where` filters.
        """
        rows = np.arange(num_contexts, dtype=np.int64)
        # every env array holds one value per current row (1-D, length len(rows))
        env = {n: np.broadcast_to(a, rows.shape) for n, a in context.items()}
        own: dict[str, np.ndarray] = {}
        for binding in index_set.bindings:
            if binding.name in env:
                raise self.error(f"index '{binding.name}' is already bound here", binding.span,
                                 hint="give the inner index a different name")
            scope = _Scope(0, env)
            start = np.broadcast_to(self.static_index(binding.start, scope, "the start of a range"), rows.shape)
            stop = np.broadcast_to(self.static_index(binding.stop, scope, "the end of a range"), rows.shape)
            counts = np.clip(stop - start, 0, None)
            total = float(counts.sum(dtype=np.float64))
            self.spend(total * (len(env) + 2), f"the index set with '{binding.name}', {total:,.0f} index tuples "
                       f"of {len(env) + 1} indices,", binding.span)
            total = int(total)
            repeat = np.repeat(np.arange(len(rows)), counts)
            offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
            env = {n: a[repeat] for n, a in env.items()}
            own = {n: a[repeat] for n, a in own.items()}
            value = start[repeat] + offsets
            env[binding.name] = value
            own[binding.name] = value
            rows = rows[repeat]
        if index_set.where is not None:
            keep = self.static_value(index_set.where, _Scope(0, env), "a `where` filter")
            keep = np.broadcast_to(keep != 0, rows.shape)
            rows = rows[keep]
            own = {n: a[keep] for n, a in own.items()}
        return rows, own

    def promote(self, index_set: ast.IndexSet, scope: _Scope, num_ground: int) -> tuple[_Scope, int]:
        """Add the bindings of `index_set` as ground indices: every row of `scope`
        is repeated once per index tuple (ranges may depend on the row's indices)."""
        own = {b.name for b in index_set.bindings}
        free = _free_index_names(
            [e for b in index_set.bindings for e in (b.start, b.stop)] + [index_set.where], scope.indices, own)
        if free:
            context = {n: np.broadcast_to(scope.indices[n], (num_ground,)) for n in free}
            parents, values = self.enumerate_index_set(index_set, context, num_ground)
        else:
            inner, values = self.enumerate_index_set(index_set, {}, 1)
            count = len(inner)
            self.spend(float(count) * num_ground * (len(values) + len(scope.indices) + 1),
                       f"{float(count) * num_ground:,.0f} ground factors", index_set.span)
            parents = np.repeat(np.arange(num_ground, dtype=np.int64), count)
            values = {n: (np.tile(v, num_ground) if num_ground > 1 else v) for n, v in values.items()}
        total = len(parents)
        indices = {
            n: (a if a.shape[0] == 1 else a[parents]) for n, a in scope.indices.items()
        }
        indices.update(values)
        return _Scope(0, indices), total

    def inner_scope(self, index_set: ast.IndexSet, scope: _Scope) -> tuple[_Scope, np.ndarray | None]:
        """A new inner axis for a reduction that stays inside the factor.

        Returns the scope one level deeper and the reduction's mask (None when
        every context has the same index tuples, so nothing is padded).
        """
        own = {b.name for b in index_set.bindings}
        free = _free_index_names(
            [e for b in index_set.bindings for e in (b.start, b.stop)] + [index_set.where], scope.indices, own)
        context_shape = (np.broadcast_shapes(*(scope.indices[n].shape for n in free)) if free
                         else scope.leaf_shape)
        num_contexts = int(np.prod(context_shape))
        context = {n: np.broadcast_to(scope.indices[n], context_shape).reshape(-1) for n in free}
        rows, values = self.enumerate_index_set(index_set, context, num_contexts)
        counts = np.bincount(rows, minlength=num_contexts)
        length = max(int(counts.max(initial=0)), 1)
        self.spend(float(num_contexts) * length * (len(values) + len(scope.indices) + 2),
                   f"the reduction over {', '.join(b.name for b in index_set.bindings)}, padded to "
                   f"{num_contexts:,} x {length:,} entries,", index_set.span)
        position = np.arange(len(rows)) - (np.cumsum(counts) - counts)[rows]
        indices = {n: a[..., None] for n, a in scope.indices.items()}
        for name, value in values.items():
            grid = np.zeros((num_contexts, length), dtype=np.int64)
            grid[rows, position] = value
            indices[name] = grid.reshape(context_shape + (length,))
        # The mask always travels with the Reduce: it carries the reduced axis's length even
        # when the body does not depend on the reduction index (`sum(i in 0..3) 2` is 6).
        mask = np.ones((1,) * len(context_shape) + (length,), dtype=bool)
        if not np.all(counts == length):
            mask = np.zeros((num_contexts, length), dtype=bool)
            mask[rows, position] = True
            mask = mask.reshape(context_shape + (length,))
        valid = scope.valid[..., None] if scope.valid is not None else None
        if mask is not None:
            valid = mask if valid is None else valid & mask
        return _Scope(scope.depth + 1, indices, valid), mask


def _widest_layer(init: ir.ParamInit) -> int:
    """The most numbers a network holds at once for one input: its widest layer."""
    return max(init.layer_sizes + tuple(math.prod(layer.out_shape) for layer in init.layers))
