"""Compile-time (static) evaluation: numpy semantics of the language's operators.

Declaration expressions (shapes, domains, param values, expert weights) evaluate
here, and so does every part of a term that is known while lowering (index
arithmetic, consts, reductions over them). Kept apart so that the folding rules
(integer index arithmetic, masked reductions) live in one place.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ebmlang.errors import EbmError, did_you_mean
from ebmlang.language import ast
from ebmlang.language.builtin_names import BUILTIN_CONSTANTS

_COMPARISONS = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_ARITHMETIC = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod", "^": "pow"}
_LOGICAL = {"and": "and", "or": "or"}

# numpy versions of the elementwise functions, for compile-time folding.
_STATIC_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "exp": np.exp,
    "log": np.log,
    "softplus": lambda x: np.logaddexp(0.0, x),
    "sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)),
    "tanh": np.tanh,
    "abs": np.abs,
    "sqrt": np.sqrt,
    "relu": lambda x: np.maximum(x, 0),
    "sin": np.sin,
    "cos": np.cos,
    "square": np.square,
    "log1p": np.log1p,
    "expm1": np.expm1,
}


def evaluate_constant(expr: ast.Expr, consts: dict) -> int | float | np.ndarray:
    """Evaluate a compile-time expression (numbers, consts, arithmetic, array literals)."""
    if isinstance(expr, ast.Number):
        return int(expr.value) if expr.is_integer else float(expr.value)
    if isinstance(expr, ast.Name):
        if expr.name in consts:
            return consts[expr.name]
        if expr.name in BUILTIN_CONSTANTS:
            return BUILTIN_CONSTANTS[expr.name]
        raise EbmError(
            f"'{expr.name}' is not a compile-time constant", expr.span,
            expected="a number, a const or arithmetic on them", hint=did_you_mean(expr.name, consts),
        )
    if isinstance(expr, ast.ArrayLiteral):
        items = [np.asarray(evaluate_constant(item, consts)) for item in expr.items]
        shapes = {item.shape for item in items}
        if len(shapes) > 1:
            raise EbmError("the rows of an array literal have different shapes", expr.span)
        return np.stack(items) if items else np.zeros((0,))
    if isinstance(expr, ast.Unary):
        operand = evaluate_constant(expr.operand, consts)
        if expr.op == "-":
            return -operand
        if expr.op == "+":
            return operand
        return np.logical_not(operand).astype(float)
    if isinstance(expr, ast.Binary):
        left = np.asarray(evaluate_constant(expr.left, consts))
        right = np.asarray(evaluate_constant(expr.right, consts))
        value = _static_binary(expr, left, right)
        return value.item() if value.shape == () else value
    if isinstance(expr, ast.Index) and isinstance(expr.base, ast.Name):
        table = np.asarray(evaluate_constant(expr.base, consts))
        position = tuple(int(evaluate_constant(i, consts)) for i in expr.indices)
        if len(position) != table.ndim or not all(0 <= p < n for p, n in zip(position, table.shape)):
            raise EbmError(f"index {list(position)} is outside '{expr.base.name}' of shape {list(table.shape)}",
                           expr.span)
        return table[position].item()
    if isinstance(expr, ast.Call) and expr.func in _STATIC_UNARY and len(expr.args) == 1:
        return _STATIC_UNARY[expr.func](np.asarray(evaluate_constant(expr.args[0], consts), dtype=float))
    raise EbmError("this is not a compile-time constant", expr.span,
                   expected="a number, a const or arithmetic on them")


def _static_binary(expr: ast.Binary, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Numpy semantics of a binary operator on compile-time values.

    Index arithmetic is integer arithmetic (`/` floors, `%` takes the divisor's sign),
    so `(i+1) % L` and `i / 2` mean what they do on indices.
    """
    op = expr.op
    integer = _is_integer_arithmetic(expr, left, right)
    if op in ("/", "%") and integer and np.any(right == 0):
        raise EbmError("division by zero in index arithmetic", expr.span)
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "/":
        return np.floor_divide(left, right) if integer else np.true_divide(left, right)
    if op == "%":
        return np.mod(left, right)
    if op == "^":
        if integer and np.all(right >= 0):
            return np.power(left, right)
        return np.power(left.astype(float), right)
    if op in _COMPARISONS:
        return getattr(np, {"eq": "equal", "ne": "not_equal", "lt": "less", "le": "less_equal",
                            "gt": "greater", "ge": "greater_equal"}[_COMPARISONS[op]])(left, right).astype(float)
    if op == "and":
        return np.logical_and(left != 0, right != 0).astype(float)
    if op == "or":
        return np.logical_or(left != 0, right != 0).astype(float)
    raise EbmError(f"unsupported operator '{op}'", expr.span)


def _is_integer_arithmetic(expr: ast.Binary, left: np.ndarray, right: np.ndarray) -> bool:
    both_int = np.issubdtype(left.dtype, np.integer) and np.issubdtype(right.dtype, np.integer)
    ty = getattr(expr, "ty", None)
    if ty is not None and ty.kind != "index":
        return False
    return both_int


def _reduce_static(op: str, body: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Fold a reduction whose body is known at compile time."""
    if mask is not None:
        mask = np.broadcast_to(mask, np.broadcast_shapes(mask.shape, body.shape))
        body = np.broadcast_to(body, mask.shape)
    fill = {"sum": 0.0, "mean": 0.0, "prod": 1.0, "logsumexp": -np.inf, "min": np.inf, "max": -np.inf}[op]
    masked = body if mask is None else np.where(mask, body, fill)
    if op == "sum":
        return masked.sum(axis=-1)
    if op == "prod":
        return masked.prod(axis=-1)
    if op == "mean":
        count = body.shape[-1] if mask is None else mask.sum(axis=-1)
        return masked.sum(axis=-1) / count
    if op == "min":
        return masked.min(axis=-1)
    if op == "max":
        return masked.max(axis=-1)
    top = masked.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return (np.log(np.exp(masked - top).sum(axis=-1, keepdims=True)) + top)[..., 0]
