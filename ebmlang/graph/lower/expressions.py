"""Expressions of a term: each lowers to a compile-time array or an IR node.

A mixin of `_ModelLowerer` (it uses `error`, `variables`, `params`, `consts` and
`inner_scope`). Handlers are found by node class name (`lower_Binary`, ...);
calls are lowered in calls.py. Indexing lives here too, with the bounds checks
that every index into a variable, param or const goes through.
"""
from __future__ import annotations

import numpy as np

from ebmlang.errors import Span, did_you_mean
from ebmlang.graph import ir
from ebmlang.graph.lower.scope import Value, _Scope
from ebmlang.graph.lower.static import _ARITHMETIC, _COMPARISONS, _LOGICAL, _reduce_static, _static_binary
from ebmlang.language import ast
from ebmlang.language.builtin_names import BUILTIN_CONSTANTS


class _ExpressionLowerer:
    """Lowers names, numbers, operators, reductions and indexing."""

    # -- expressions
    def lower_expr(self, expr: ast.Expr, scope: _Scope) -> Value:
        handler = getattr(self, f"lower_{type(expr).__name__}", None)
        if handler is None:
            return self.unsupported(expr)
        return handler(expr, scope)

    def unsupported(self, expr: ast.Expr) -> Value:
        raise self.error(f"cannot lower a {type(expr).__name__} expression here", expr.span,
                         hint="array literals are only allowed in const and param values")

    def static_value(self, expr: ast.Expr, scope: _Scope, what: str) -> np.ndarray:
        value = self.lower_expr(expr, scope)
        if isinstance(value, ir.Node):
            raise self.error(f"{what} must be known at compile time", expr.span,
                             expected="index variables, consts and arithmetic on them",
                             hint="variables and params cannot decide which factors exist")
        return value

    def static_index(self, expr: ast.Expr, scope: _Scope, what: str) -> np.ndarray:
        value = self.static_value(expr, scope, what)
        if not np.issubdtype(value.dtype, np.integer):
            if np.all(np.mod(value, 1) == 0):
                return value.astype(np.int64)
            raise self.error(f"{what} must be an integer", expr.span, expected="integer index arithmetic")
        return value

    def as_node(self, value: Value, span: Span) -> ir.Node:
        if isinstance(value, ir.Node):
            return value
        array = np.asarray(value, dtype=float)
        flat = array.reshape(-1)
        if flat.size == 0 or np.all(flat == flat[0]):
            return ir.Constant(span, float(flat[0]) if flat.size else 0.0)
        return ir.Data(span, array)

    def lower_Number(self, expr: ast.Number, scope: _Scope) -> Value:
        dtype = np.int64 if expr.is_integer else float
        return np.full(scope.leaf_shape, expr.value, dtype=dtype)

    def lower_Name(self, expr: ast.Name, scope: _Scope) -> Value:
        name = expr.name
        if name in scope.indices:
            return scope.indices[name]
        if name in self.variables:
            group = self.variables[name]
            if group.shape:
                raise self.error(
                    f"variable '{name}' has shape {list(group.shape)}; index it here", expr.span,
                    hint=f"write {name}[{', '.join('ijkl'[:len(group.shape)])}] or pass it whole to an mlp")
            return ir.Slot(expr.span, name, np.zeros(scope.leaf_shape, dtype=np.int64))
        if name in self.params:
            param = self.params[name]
            if param.is_neural:
                raise self.error(f"mlp param '{name}' must be called", expr.span, hint=f"write {name}(x)")
            if param.shape:
                raise self.error(f"param '{name}' has shape {list(param.shape)}; index it here", expr.span)
            return ir.ParamRef(expr.span, name, None)
        if name in self.consts or name in BUILTIN_CONSTANTS:
            value = np.asarray(self.consts[name] if name in self.consts else BUILTIN_CONSTANTS[name])
            if value.shape != ():
                raise self.error(f"const '{name}' is an array of shape {list(value.shape)}; index it here",
                                 expr.span)
            dtype = np.int64 if np.issubdtype(value.dtype, np.integer) else float
            return np.full(scope.leaf_shape, value, dtype=dtype)
        known = list(scope.indices) + list(self.variables) + list(self.params) + list(self.consts)
        raise self.error(f"unknown name '{name}'", expr.span, hint=did_you_mean(name, known))

    def lower_Unary(self, expr: ast.Unary, scope: _Scope) -> Value:
        operand = self.lower_expr(expr.operand, scope)
        if expr.op == "+":
            return operand
        if isinstance(operand, ir.Node):
            return ir.Apply(expr.span, "neg" if expr.op == "-" else "not", (operand,))
        return -operand if expr.op == "-" else (operand == 0).astype(float)

    def lower_Indicator(self, expr: ast.Indicator, scope: _Scope) -> Value:
        # comparisons already lower to 0/1 values
        return self.lower_expr(expr.condition, scope)

    def lower_Binary(self, expr: ast.Binary, scope: _Scope) -> Value:
        left = self.lower_expr(expr.left, scope)
        right = self.lower_expr(expr.right, scope)
        if not isinstance(left, ir.Node) and not isinstance(right, ir.Node):
            if expr.op in ("/", "%") and scope.valid is not None:
                right = np.where(scope.valid, right, 1)  # padding must not divide by zero
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                return _static_binary(expr, left, right)
        if expr.op == "^" and not isinstance(right, ir.Node) and np.all(right == 2):
            return ir.Apply(expr.span, "square", (self.as_node(left, expr.left.span),))
        fn = _ARITHMETIC.get(expr.op) or _COMPARISONS.get(expr.op) or _LOGICAL.get(expr.op)
        if fn is None:
            raise self.error(f"unsupported operator '{expr.op}'", expr.span)
        return ir.Apply(expr.span, fn, (self.as_node(left, expr.left.span), self.as_node(right, expr.right.span)))

    def lower_Reduce(self, expr: ast.Reduce, scope: _Scope) -> Value:
        inner, mask = self.inner_scope(expr.index_set, scope)
        body = self.lower_expr(expr.body, inner)
        if isinstance(body, ir.Node):
            return ir.Reduce(expr.span, expr.op, body, mask)
        return _reduce_static(expr.op, np.asarray(body, dtype=float), mask)

    # -- indexing
    def lower_Index(self, expr: ast.Index, scope: _Scope) -> Value:
        base = expr.base
        if isinstance(base, ast.Call) and base.func in self.params and self.params[base.func].is_neural:
            return self.select_output(expr, scope)
        if not isinstance(base, ast.Name):
            raise self.error("only variables, params, consts and mlp outputs can be indexed", expr.span)
        name = base.name
        if name in self.variables:
            kind, shape = "variable", self.variables[name].shape
        elif name in self.params and not self.params[name].is_neural:
            kind, shape = "param", self.params[name].shape
        elif name in self.consts:
            kind, shape = "const", np.shape(self.consts[name])
        else:
            known = list(self.variables) + list(self.params) + list(self.consts)
            raise self.error(f"unknown name '{name}'", base.span, hint=did_you_mean(name, known))
        if len(expr.indices) != len(shape):
            raise self.error(
                f"{kind} '{name}' has {len(shape)} dimension{'s' if len(shape) != 1 else ''} "
                f"but is indexed with {len(expr.indices)}", expr.span, expected=f"{name}[{len(shape)} indices]")
        components = [self.lower_expr(i, scope) for i in expr.indices]
        if kind != "variable" and any(isinstance(c, ir.Node) for c in components):
            components = [c if isinstance(c, ir.Node) else self.integer_index(c, i)
                          for c, i in zip(components, expr.indices)]
            fixed = [(a, c) for a, c in enumerate(components) if not isinstance(c, ir.Node)]
            self.check_bounds(name, tuple(shape[a] for a, _ in fixed), [c for _, c in fixed],
                              tuple(expr.indices[a] for a, _ in fixed), scope)
            cleared = self.clear_padding([c for _, c in fixed], tuple(shape[a] for a, _ in fixed), scope)
            for (axis, _), component in zip(fixed, cleared):
                components[axis] = component
            return self.select_entries(name, kind, tuple(shape), components, expr.indices, expr.span, scope)
        for component, index_expr in zip(components, expr.indices):
            if isinstance(component, ir.Node):
                raise self.error(f"{kind} '{name}' must be indexed by compile-time indices", index_expr.span,
                                 expected="numbers, consts, index variables and arithmetic on them",
                                 hint="which entries a term reads must not depend on variable or param values")
        components = [self.integer_index(c, i) for c, i in zip(components, expr.indices)]
        self.check_bounds(name, shape, components, expr.indices, scope)
        components = self.clear_padding(components, shape, scope)
        if kind == "const":
            table = np.asarray(self.consts[name])
            return table[tuple(np.broadcast_arrays(*components))] if components else table.reshape(scope.leaf_shape)
        flat = (np.ravel_multi_index(tuple(np.broadcast_arrays(*components)), shape) if shape
                else np.zeros(scope.leaf_shape, dtype=np.int64))
        flat = ir.compact_index(flat)
        if kind == "variable":
            return ir.Slot(expr.span, name, flat)
        return ir.ParamRef(expr.span, name, flat)

    def integer_index(self, value: np.ndarray, expr: ast.Expr) -> np.ndarray:
        if np.issubdtype(value.dtype, np.integer):
            return value
        if np.all(np.mod(value, 1) == 0):
            return value.astype(np.int64)
        raise self.error("an index must be an integer", expr.span, expected="integer index arithmetic")

    @staticmethod
    def clear_padding(components: list[np.ndarray], shape: tuple[int, ...], scope: _Scope) -> list[np.ndarray]:
        """Padding positions of ragged inner axes may compute any index (they are masked
        out); where one falls outside the shape, point it at 0 so every gather is valid."""
        if scope.valid is None:
            return components
        return [np.where(scope.valid, c, 0) if np.any((c < 0) | (c >= size)) else c
                for c, size in zip(components, shape)]

    def check_bounds(self, name: str, shape: tuple[int, ...], components: list[np.ndarray],
                     exprs: tuple[ast.Expr, ...], scope: _Scope) -> None:
        """Every ground factor's index must be inside the declared shape."""
        for axis, (value, size, index_expr) in enumerate(zip(components, shape, exprs)):
            bad = (value < 0) | (value >= size)
            if scope.valid is not None:
                bad = bad & scope.valid
            if not np.any(bad):
                continue
            reached = value if scope.valid is None else np.where(scope.valid, value, value.flat[0])
            low, high = int(reached.min()), int(reached.max())
            position = np.unravel_index(int(np.argmax(bad.reshape(-1))), bad.shape)
            at = self.describe_position(scope, position, bad.shape)
            bad_value = int(np.broadcast_to(value, bad.shape)[position])
            raise self.error(
                f"index {axis + 1} of '{name}' is out of range: over the index set it takes values "
                f"{low} to {high}, but dimension {axis + 1} of '{name}' has size {size}; "
                f"it is {bad_value}{at}",
                index_expr.span,
                expected=f"an index from 0 to {size - 1} for every ground factor",
                hint="use (i+1) % N for periodic boundaries, or shrink the range (e.g. 0..N-1)",
            )

    @staticmethod
    def describe_position(scope: _Scope, position: tuple[int, ...], shape: tuple[int, ...]) -> str:
        parts = []
        for name, array in scope.indices.items():
            if "#" in name:
                continue
            # an index constant along an axis is read at 0 there; any position is a valid example
            at = tuple(p if n > 1 else 0 for p, n in zip(position, array.shape))
            parts.append(f"{name}={int(array[at])}")
        return f" at {', '.join(parts)}" if parts else ""
