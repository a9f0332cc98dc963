"""Calls in a term: neural terms (mlp params), externs and the built-in functions.

A mixin of `_ModelLowerer` (it uses `error`, `variables`, `params`, `externs` and
the expression helpers). An mlp reads whole variable groups (or trailing slices
of them) as vector slots, and `f(x)[y]` selects one entry of its output.
"""
from __future__ import annotations

import numpy as np

from ebmlang.errors import did_you_mean
from ebmlang.graph import ir
from ebmlang.graph.lower.scope import Value, _Scope
from ebmlang.graph.lower.static import _STATIC_UNARY
from ebmlang.language import ast


class _CallLowerer:
    """Lowers function calls and the selection of an mlp's output."""

    def lower_Call(self, expr: ast.Call, scope: _Scope) -> Value:
        func = expr.func
        if func in self.params and self.params[func].is_neural:
            neural = self.neural(expr, scope)
            out = self.params[func].init.layer_sizes[-1]
            if out != 1:
                raise self.error(f"{_kind(self.params[func])} '{func}' has {out} outputs; select one", expr.span,
                                 hint=f"write {func}(...)[y] with a categorical y or an index")
            return ir.Select(expr.span, neural, ir.Constant(expr.span, 0.0))
        if func in self.externs:
            args = tuple(self.as_node(self.lower_expr(a, scope), a.span) for a in expr.args)
            return ir.Extern(expr.span, func, args)
        if func in _STATIC_UNARY:
            if len(expr.args) != 1:
                raise self.error(f"{func} takes one argument, got {len(expr.args)}", expr.span)
            arg = self.lower_expr(expr.args[0], scope)
            if isinstance(arg, ir.Node):
                return ir.Apply(expr.span, func, (arg,))
            return _STATIC_UNARY[func](np.asarray(arg, dtype=float))
        known = list(_STATIC_UNARY) + list(self.externs) + [p for p, g in self.params.items() if g.is_neural]
        raise self.error(f"unknown function '{func}'", expr.func_span, hint=did_you_mean(func, known))

    def neural(self, expr: ast.Call, scope: _Scope) -> ir.Neural:
        """`f(args)`: whole groups (or trailing slices of them) become vector slots."""
        param = self.params[expr.func]
        args: list[ir.Node] = []
        features = 0
        for arg in expr.args:
            node, width = self.neural_argument(arg, scope)
            args.append(node)
            features += width
        expected = param.init.layer_sizes[0]
        if features != expected:
            raise self.error(f"{_kind(param)} '{expr.func}' takes {expected} inputs but gets {features}", expr.span,
                             expected=f"arguments with {expected} features in total")
        return ir.Neural(expr.span, expr.func, tuple(args))

    def neural_argument(self, arg: ast.Expr, scope: _Scope) -> tuple[ir.Node, int]:
        base = arg.base if isinstance(arg, ast.Index) else arg
        if isinstance(base, ast.Name) and base.name in self.variables and base.name not in scope.indices:
            group = self.variables[base.name]
            given = arg.indices if isinstance(arg, ast.Index) else ()
            if len(given) < len(group.shape):
                trailing = group.shape[len(given):]
                width = int(np.prod(trailing))
                if given:
                    leading = [self.static_index(i, scope, "an index") for i in given]
                    self.check_bounds(base.name, group.shape[:len(given)], leading, given, scope)
                    start = np.ravel_multi_index(np.broadcast_arrays(*leading), group.shape[:len(given)])
                    index = start[..., None] * width + np.arange(width)
                else:
                    index = np.arange(width, dtype=np.int64).reshape(scope.leaf_shape + (width,))
                return ir.Slot(arg.span, base.name, index.astype(np.int64), vector=True), width
        return self.as_node(self.lower_expr(arg, scope), arg.span), 1

    def select_output(self, expr: ast.Index, scope: _Scope) -> ir.Node:
        """`f(x)[y]`: one entry of an mlp's output vector."""
        call = expr.base
        out = self.params[call.func].init.layer_sizes[-1]
        kind = _kind(self.params[call.func])
        if len(expr.indices) != 1:
            raise self.error(f"the output of {kind} '{call.func}' takes one index", expr.span)
        neural = self.neural(call, scope)
        index_expr = expr.indices[0]
        index = self.lower_expr(index_expr, scope)
        if isinstance(index, ir.Node):
            self.check_discrete_selector(index, out, index_expr, f"the {out} outputs of {kind} '{call.func}'")
            return ir.Select(expr.span, neural, index)
        index = self.integer_index(index, index_expr)
        self.check_bounds(f"{call.func}(...)", (out,), [index], (index_expr,), scope)
        return ir.Select(expr.span, neural, self.as_node(self.clear_padding([index], (out,), scope)[0],
                                                         index_expr.span))

    def check_discrete_selector(self, node: ir.Node, size: int, expr: ast.Expr, what: str) -> None:
        """A variable used as an index must take values 0..size-1 only."""
        if not isinstance(node, ir.Slot):
            return
        domain = self.variables[node.group].domain
        if not domain.is_discrete:
            raise self.error(f"'{node.group}' is {domain}; only a discrete variable can select an entry",
                             expr.span)
        low, high = domain.value_range
        if low < 0 or high > size - 1:
            raise self.error(
                f"'{node.group}' takes values {low:g}..{high:g} but selects among {what}",
                expr.span, expected=f"values in 0..{size - 1}",
                hint=f"declare it categorical({size})")


def _kind(param: ir.ParamGroup) -> str:
    return "network" if param.init.kind in ("network", "layers") else "mlp"
