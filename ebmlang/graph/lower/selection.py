"""Entries of a const or param picked by discrete variables: `mu[z[n]]`, `A[z[t], z[t+1]]`.

A mixin of `_ModelLowerer` (it uses `error`, `spend`, `variables` and `as_node`). The
read lowers to one gather: the entries the variable axes can reach are laid out on a
last axis (a `ParamRef` or `Data` of shape [*leaf, C]), and a `Select` picks the one
the variables' values name. So the energy, its gradient with respect to the param, and
every table built from it read exactly the entry chosen -- never a K-way sum of
indicators.
"""
from __future__ import annotations

import numpy as np

from ebmlang.graph import ir
from ebmlang.graph.lower.scope import _Scope
from ebmlang.language import ast


class _SelectionLowerer:
    """Lowers const and param reads whose index depends on discrete variables."""

    def select_entries(self, name: str, kind: str, shape: tuple[int, ...], components: list,
                       exprs: tuple[ast.Expr, ...], span, scope: _Scope) -> ir.Node:
        """components: per axis, a compile-time integer array (leaf shape) or an IR node."""
        variable_axes = [a for a, c in enumerate(components) if isinstance(c, ir.Node)]
        for axis in variable_axes:
            self.check_selector_range(name, shape[axis], axis, components[axis], exprs[axis], scope)
        reach = [shape[a] for a in variable_axes]
        entries = int(np.prod(reach))
        leaf = tuple(scope.leaf_shape)
        reads = np.broadcast_shapes(leaf, *(np.shape(c) for c in components if not isinstance(c, ir.Node)))
        self.spend(float(np.prod(reads, dtype=np.float64)) * entries,
                   f"'{name}' indexed by variables, {entries:,} reachable entries per read,", span)
        grids = np.meshgrid(*[np.arange(n) for n in reach], indexing="ij")
        columns = []
        for axis, component in enumerate(components):
            if axis in variable_axes:
                column = grids[variable_axes.index(axis)].reshape(-1)
                columns.append(column.reshape((1,) * len(leaf) + (entries,)))
            else:
                columns.append(np.asarray(component, dtype=np.int64)[..., None])
        picked = tuple(np.broadcast_arrays(*columns))
        selector = self.selector_node(components, variable_axes, reach, span)
        if kind == "const":
            table = np.asarray(self.consts[name], dtype=float)
            return ir.Select(span, ir.Data(span, table[picked]), selector)
        flat = np.asarray(np.ravel_multi_index(picked, shape), dtype=np.int64)
        return ir.Select(span, ir.ParamRef(span, name, flat), selector)

    def selector_node(self, components: list, variable_axes: list[int], reach: list[int], span) -> ir.Node:
        """The position, on the last axis of reachable entries, that the variables name (row-major)."""
        node: ir.Node | None = None
        stride = 1
        for axis, size in zip(reversed(variable_axes), reversed(reach)):
            term = components[axis]
            if stride != 1:
                term = ir.Apply(span, "mul", (term, ir.Constant(span, float(stride))))
            node = term if node is None else ir.Apply(span, "add", (term, node))
            stride *= size
        return node

    def check_selector_range(self, name: str, size: int, axis: int, node: ir.Node, expr: ast.Expr,
                             scope: _Scope) -> None:
        """The values the index can take, from the variables' domains, must all be entries."""
        low, high = self.value_bounds(node, expr)
        if scope.valid is not None:
            low, high = np.where(scope.valid, low, 0), np.where(scope.valid, high, 0)
        lowest, highest = float(np.min(low)), float(np.max(high))
        if lowest >= 0 and highest <= size - 1:
            return
        raise self.error(
            f"index {axis + 1} of '{name}' can take values {lowest:g}..{highest:g} (from the domains of the "
            f"variables it reads), but dimension {axis + 1} of '{name}' has size {size}", expr.span,
            expected=f"an index from 0 to {size - 1} for every value of the variables",
            hint="a categorical(K) variable takes values 0..K-1")

    def value_bounds(self, node: ir.Node, expr: ast.Expr) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest value of an integer index expression over the variables' domains."""
        if isinstance(node, ir.Slot):
            low, high = self.variables[node.group].domain.value_range
            return np.asarray(float(low)), np.asarray(float(high))
        if isinstance(node, ir.Constant):
            return np.asarray(node.value), np.asarray(node.value)
        if isinstance(node, ir.Data):
            return node.array, node.array
        if isinstance(node, ir.Apply) and node.fn == "neg":
            low, high = self.value_bounds(node.args[0], expr)
            return -high, -low
        if isinstance(node, ir.Apply) and node.fn in ("add", "sub", "mul"):
            (a_low, a_high), (b_low, b_high) = (self.value_bounds(a, expr) for a in node.args)
            if node.fn == "add":
                return a_low + b_low, a_high + b_high
            if node.fn == "sub":
                return a_low - b_high, a_high - b_low
            products = [a_low * b_low, a_low * b_high, a_high * b_low, a_high * b_high]
            return np.minimum.reduce(np.broadcast_arrays(*products)), np.maximum.reduce(np.broadcast_arrays(*products))
        if isinstance(node, ir.Apply) and node.fn in ("eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not"):
            return np.asarray(0.0), np.asarray(1.0)
        if isinstance(node, ir.Apply) and node.fn == "mod" and isinstance(node.args[1], (ir.Constant, ir.Data)):
            modulus = node.args[1].value if isinstance(node.args[1], ir.Constant) else node.args[1].array
            return np.zeros_like(np.asarray(modulus, dtype=float)), np.abs(modulus) - 1.0
        raise self.error("cannot bound the values of this index", expr.span,
                         expected="discrete variables, consts and index variables combined with + - * %",
                         hint="write the index as a sum of variables and integers")
