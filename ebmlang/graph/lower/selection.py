"""Entries of a const or param picked by discrete variables: `mu[z[n]]`, `A[z[t], z[t+1]]`.

A mixin of `_ModelLowerer` (it uses `error`, `variables` and `as_node`). The read
lowers to one gather: a `Select` from the whole flattened array (a `ParamRef` or `Data`
of shape [1, ..., 1, size]) at the flat position `base + offset`, where `base` comes from
the compile-time indices and `offset` from the variables (row-major strides). So the
energy, its gradient with respect to the param, and every table built from it read
exactly the entry chosen -- never a K-way sum of indicators, and no per-read copy of the
entries the variables could reach.
"""
from __future__ import annotations

import numpy as np

from ebmlang.graph import ir
from ebmlang.graph.lower.scope import _Scope
from ebmlang.language import ast

# Entries are picked by an index computed in the backend's float type: float32 counts
# every integer exactly up to 2^24.
MAX_EXACT_ENTRY = 2 ** 24


class _SelectionLowerer:
    """Lowers const and param reads whose index depends on discrete variables."""

    def select_entries(self, name: str, kind: str, shape: tuple[int, ...], components: list,
                       exprs: tuple[ast.Expr, ...], span, scope: _Scope) -> ir.Node:
        """components: per axis, a compile-time integer array (leaf shape) or an IR node."""
        variable_axes = [a for a, c in enumerate(components) if isinstance(c, ir.Node)]
        for axis in variable_axes:
            self.check_selector_range(name, shape[axis], axis, components[axis], exprs[axis], scope)
        strides = [int(np.prod(shape[a + 1:], dtype=np.int64)) for a in range(len(shape))]
        size = int(np.prod(shape, dtype=np.int64))
        if size > MAX_EXACT_ENTRY:
            raise self.error(f"'{name}' has {size:,} entries; an index that variables choose reaches at most "
                             f"{MAX_EXACT_ENTRY:,}", span, hint="index it by index variables instead")
        leaf = tuple(scope.leaf_shape)
        base = np.zeros(leaf, dtype=np.int64)
        for axis, component in enumerate(components):
            if axis not in variable_axes:
                base = base + np.asarray(component, dtype=np.int64) * strides[axis]
        offset: ir.Node | None = None
        for axis in variable_axes:
            term = components[axis]
            if strides[axis] != 1:
                term = ir.Apply(span, "mul", (term, ir.Constant(span, float(strides[axis]))))
            offset = term if offset is None else ir.Apply(span, "add", (offset, term))
        index = offset if not base.any() else ir.Apply(span, "add", (self.as_node(base, span), offset))
        entries = (1,) * len(leaf) + (size,)
        if kind == "const":
            table = np.asarray(self.consts[name], dtype=float)
            return ir.Select(span, ir.Data(span, table.reshape(entries)), index)
        return ir.Select(span, ir.ParamRef(span, name, np.arange(size, dtype=np.int64).reshape(entries)), index)

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
            f"index {axis + 1} of '{name}' can take values from {lowest:g} to {highest:g} (from the domains of "
            f"the variables it reads), but dimension {axis + 1} of '{name}' has size {size}", expr.span,
            expected=f"an index from 0 to {size - 1} for every value of the variables",
            hint="shift or wrap the index into range, e.g. (c + 1) % K")

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
        if isinstance(node, ir.Apply) and node.fn in ("abs", "square"):
            low, high = self.value_bounds(node.args[0], expr)
            magnitude_low = np.where(low > 0, low, np.where(high < 0, -high, 0.0))
            magnitude_high = np.maximum(np.abs(low), np.abs(high))
            return (magnitude_low, magnitude_high) if node.fn == "abs" else (magnitude_low ** 2, magnitude_high ** 2)
        if isinstance(node, ir.Apply) and node.fn in ("eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not"):
            return np.asarray(0.0), np.asarray(1.0)
        if isinstance(node, ir.Apply) and node.fn == "mod" and isinstance(node.args[1], (ir.Constant, ir.Data)):
            modulus = node.args[1].value if isinstance(node.args[1], ir.Constant) else node.args[1].array
            return np.zeros_like(np.asarray(modulus, dtype=float)), np.abs(modulus) - 1.0
        raise self.error("cannot bound the values of this index", expr.span,
                         expected="discrete variables, consts and index variables combined with + - * %, abs, square",
                         hint="write the index as a sum of variables and integers")
