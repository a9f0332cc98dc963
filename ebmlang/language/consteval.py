"""Compile-time evaluation of constant and index expressions.

`evaluate_constant` folds what the checker must know before lowering -- const values,
shapes, domain bounds, expert weights -- and `Evaluator.bind` enumerates an index set
(every tuple of a term's or a reduction's indices, with its `where` filter) as numpy
arrays, so index bounds can be checked over all tuples at once. Nothing here types an
expression: the expression checker has done that before anything is evaluated.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ebmlang.errors import EbmError, did_you_mean
from ebmlang.language import ast
from ebmlang.language.builtin_names import BUILTIN_CONSTANTS, INTEGER_PRESERVING

# Compile-time integers stay well inside float64's exact range.
_MAX_INTEGER = 2 ** 53
# Largest index set enumerated when the caller gives no limit of its own; the checker
# passes `checker.MAX_CHECKED_GROUND`, which callers may lower.
MAX_ENUMERATED = 2_000_000



def evaluate_constant(expr: ast.Expr, consts: dict, indices: dict | None = None, *,
                      max_ground: int = MAX_ENUMERATED):
    """The value of a compile-time expression: a Python int/float or a numpy array.

    `consts` maps names to values (`CheckedModel.consts`); `indices` optionally maps
    index names to integer arrays that broadcast together (vectorised evaluation
    over many index tuples). Integer arithmetic stays integer: `/` on two integers
    is floor division and `%` is the floor modulo (numpy semantics). Raises
    EbmError (without source) for division by zero, non-finite results, overflow
    or an out-of-range const-array index, and IndexSetTooLarge for a reduction over more
    than `max_ground` index tuples.
    """
    with np.errstate(all="ignore"):
        value = Evaluator(consts, indices or {}, max_ground).value_of(expr)
    return to_python(value)


def to_python(value):
    """A 0-d result as a Python int or float (callers compare and format it); arrays stay arrays."""
    array = np.asarray(value)
    if array.ndim == 0:
        return int(array) if array.dtype.kind in "iub" else float(array)
    return array


class Evaluator:
    """Vectorised evaluation; one method per node kind (`eval_<Kind>`)."""

    def __init__(self, consts: dict, indices: dict, max_ground: int):
        self.consts = consts
        self.indices = dict(indices)
        self.max_ground = max_ground

    def nested(self) -> "Evaluator":
        """An evaluator for a reduction's body: it binds more indices without changing ours."""
        return Evaluator(self.consts, self.indices, self.max_ground)

    def value_of(self, expr: ast.Expr) -> np.ndarray:
        handler = getattr(self, f"eval_{type(expr).__name__}", None)
        if handler is None:
            raise EbmError(f"{describe_expr(expr)} is not known at compile time", expr.span,
                           expected="numbers, consts, index variables and arithmetic on them")
        value = handler(expr)
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise EbmError("this constant expression is not a finite number", expr.span,
                           hint="check for log(0), sqrt of a negative number or overflow")
        if value.dtype.kind in "iu" and value.size and np.max(np.abs(value)) > _MAX_INTEGER:
            raise EbmError("integer constant too large", expr.span, expected="at most 2^53 in size")
        return value

    def eval_Number(self, expr: ast.Number) -> np.ndarray:
        if expr.is_integer:
            return np.asarray(int(expr.value), dtype=np.int64) if abs(expr.value) <= _MAX_INTEGER else \
                np.asarray(float(expr.value))
        return np.asarray(float(expr.value))

    def eval_Name(self, expr: ast.Name) -> np.ndarray:
        if expr.name in self.indices:
            return np.asarray(self.indices[expr.name])
        if expr.name in self.consts:
            return np.asarray(self.consts[expr.name])
        if expr.name in BUILTIN_CONSTANTS:
            return np.asarray(BUILTIN_CONSTANTS[expr.name])
        raise EbmError(f"'{expr.name}' is not known at compile time", expr.span,
                       expected="a number, a const or an index",
                       hint=did_you_mean(expr.name, list(self.consts) + list(self.indices)))

    def eval_ArrayLiteral(self, expr: ast.ArrayLiteral) -> np.ndarray:
        items = [self.value_of(item) for item in expr.items]
        shapes = {item.shape for item in items}
        if len(shapes) != 1:
            raise EbmError("array rows have different shapes", expr.span,
                           expected="a rectangular array: every row the same length")
        return np.stack(items)

    def eval_Unary(self, expr: ast.Unary) -> np.ndarray:
        value = self.value_of(expr.operand)
        if expr.op == "-":
            return -value
        if expr.op == "not":
            return np.logical_not(value)
        return value

    def eval_Binary(self, expr: ast.Binary) -> np.ndarray:
        left, right = self.value_of(expr.left), self.value_of(expr.right)
        op = expr.op
        integers = left.dtype.kind in "iub" and right.dtype.kind in "iub"
        if op in ("/", "%") and np.any(right == 0):
            raise EbmError("division by zero", expr.right.span)
        if op == "+":
            result = left + right
        elif op == "-":
            result = left - right
        elif op == "*":
            result = left * right
        elif op == "/":
            result = np.floor_divide(left, right) if integers else left / right
        elif op == "%":
            result = np.mod(left, right)
        elif op == "^":
            if integers and np.any(right < 0):
                raise EbmError("an integer to a negative power is not an integer", expr.span,
                               hint="write a real base for a real result, e.g. 2.0 ^ -1")
            result = np.power(left, right)
        elif op in COMPARE_FUNCTIONS:
            return COMPARE_FUNCTIONS[op](left, right)
        elif op == "and":
            return np.logical_and(left, right)
        else:  # or
            return np.logical_or(left, right)
        if integers and result.dtype.kind in "iu":
            # numpy integers wrap around silently; redo the operation in floats to catch it.
            shadow = {"+": np.add, "-": np.subtract, "*": np.multiply, "^": np.power}.get(op)
            if shadow is not None:
                exact = shadow(left.astype(float), right.astype(float))
                if np.any(np.abs(exact) > _MAX_INTEGER):
                    raise EbmError("integer constant too large", expr.span, expected="at most 2^53 in size")
        return np.asarray(result)

    def eval_Indicator(self, expr: ast.Indicator) -> np.ndarray:
        return np.asarray(self.value_of(expr.condition), dtype=np.int64)

    def eval_Call(self, expr: ast.Call) -> np.ndarray:
        if expr.func not in _STATIC_FUNCTIONS or len(expr.args) != 1:
            raise EbmError(f"'{expr.func}(...)' is not known at compile time", expr.span)
        value = self.value_of(expr.args[0])
        if expr.func in INTEGER_PRESERVING and value.dtype.kind in "iu":
            return np.abs(value) if expr.func == "abs" else value * value
        return np.asarray(_STATIC_FUNCTIONS[expr.func](value.astype(float)))

    def eval_Index(self, expr: ast.Index) -> np.ndarray:
        table = self.value_of(expr.base)
        if len(expr.indices) != table.ndim:
            raise EbmError(f"{describe_expr(expr.base)} has {table.ndim} dimension(s) but is indexed with "
                           f"{len(expr.indices)}", expr.span)
        positions = []
        for axis, index in enumerate(expr.indices):
            value = self.value_of(index)
            if value.dtype.kind not in "iub":
                raise EbmError("an index must be an integer", index.span)
            size = table.shape[axis]
            bad = (value < 0) | (value >= size)
            if np.any(bad):
                raise EbmError(
                    f"index {int(value[bad].flat[0])} is out of range for dimension {axis + 1} of "
                    f"{describe_expr(expr.base)} (size {size})", index.span,
                    expected=f"an index in 0..{size}")
            positions.append(value)
        return np.asarray(table[tuple(np.broadcast_arrays(*positions))] if positions else table)

    def eval_Reduce(self, expr: ast.Reduce) -> np.ndarray:
        inner = self.nested()
        mask = inner.bind(expr.index_set, base_ndim=self.index_ndim())
        body = inner.value_of(expr.body)
        count = len(expr.index_set.bindings)
        shape = np.broadcast_shapes(body.shape, mask.shape)
        body, mask = np.broadcast_to(body, shape), np.broadcast_to(mask, shape)
        axes = tuple(range(len(shape) - count, len(shape)))
        op = expr.op
        if op == "sum":
            return np.asarray(np.where(mask, body, 0).sum(axis=axes))
        if op == "prod":
            return np.asarray(np.where(mask, body, 1).prod(axis=axes))
        if op == "mean":
            total = np.where(mask, body, 0).sum(axis=axes)
            n = mask.sum(axis=axes)
            if np.any(n == 0):
                raise EbmError("mean over an empty index set", expr.index_set.span)
            return np.asarray(total / n)
        if op in ("min", "max"):
            if np.any(mask.sum(axis=axes) == 0):
                raise EbmError(f"{op} over an empty index set", expr.index_set.span)
            fill = np.inf if op == "min" else -np.inf
            values = np.where(mask, body.astype(float), fill)
            result = values.min(axis=axes) if op == "min" else values.max(axis=axes)
            return np.asarray(result.astype(body.dtype)) if body.dtype.kind in "iu" else np.asarray(result)
        # logsumexp
        if np.any(mask.sum(axis=axes) == 0):
            raise EbmError("logsumexp over an empty index set (it would be -inf)", expr.index_set.span)
        values = np.where(mask, body.astype(float), -np.inf)
        top = np.max(values, axis=axes, keepdims=True)
        top = np.where(np.isfinite(top), top, 0.0)
        return np.asarray(np.log(np.sum(np.exp(values - top), axis=axes)) + np.squeeze(top, axis=axes))

    def index_ndim(self) -> int:
        """How many index axes the bound indices span (a nested reduction adds axes after them)."""
        return max((np.ndim(v) for v in self.indices.values()), default=0)

    def bind(self, index_set: ast.IndexSet, base_ndim: int) -> np.ndarray:
        """Add one trailing axis per binding to the index environment; the mask of valid tuples."""
        mask = np.ones((1,) * base_ndim, dtype=bool)
        for binding in index_set.bindings:
            start, stop = self.value_of(binding.start), self.value_of(binding.stop)
            for end in (start, stop):
                if end.dtype.kind not in "iub":
                    raise EbmError("a range bound must be an integer", binding.span)
            if np.size(start) == 0 or np.size(stop) == 0:
                low, high = 0, 0  # no outer tuple: the range is empty everywhere
            else:
                low, high = int(np.min(start)), int(np.max(stop))
            size = max(high - low, 0)
            outer = np.broadcast_shapes(mask.shape, *(np.shape(v) for v in self.indices.values()))
            if size * int(np.prod(outer, dtype=np.int64)) > self.max_ground:
                raise IndexSetTooLarge()
            # existing indices and the mask gain a trailing axis of length 1
            self.indices = {k: np.asarray(v)[..., None] for k, v in self.indices.items()}
            mask = mask[..., None]
            start, stop = start[..., None], stop[..., None]
            ndim = mask.ndim
            values = (low + np.arange(size, dtype=np.int64)).reshape((1,) * (ndim - 1) + (size,))
            self.indices[binding.name] = values
            mask = mask & (values >= start) & (values < stop)
        if index_set.where is not None:
            mask = mask & self.value_of(index_set.where).astype(bool)
        return mask


class IndexSetTooLarge(Exception):
    """An index set too big to enumerate at check time (lowering handles it)."""


COMPARE_FUNCTIONS = {
    "==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
    ">": np.greater, ">=": np.greater_equal,
}
_STATIC_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "exp": np.exp, "log": np.log, "softplus": lambda x: np.logaddexp(0.0, x),
    "sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)), "tanh": np.tanh, "abs": np.abs,
    "sqrt": np.sqrt, "relu": lambda x: np.maximum(x, 0.0), "sin": np.sin, "cos": np.cos,
    "log1p": np.log1p, "expm1": np.expm1, "square": np.square,
}


def describe_expr(expr: ast.Expr) -> str:
    """How an error message names an expression: by its name where it has one."""
    if isinstance(expr, ast.Name):
        return f"'{expr.name}'"
    if isinstance(expr, ast.Call):
        return f"'{expr.func}(...)'"
    return "this expression"
