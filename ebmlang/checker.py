"""Check a parsed program: resolve names, type expressions, evaluate consts, resolve imports.

`check_program(program)` takes the untyped `ast.Program` from the parser and returns an
`ast.CheckedProgram` whose models lowering can consume without re-validating anything:

* every expression has `ty` filled in (`ast.Type`);
* every const is evaluated into `consts` (ints, floats or numpy arrays), and the
  compile-time parts of declarations (shapes, domain arguments, param bounds,
  distribution arguments, mlp sizes, scalar param values) are folded into `Number`s;
* imports are loaded, checked and merged: an imported file's default model appears
  as `Alias`, its named models as `Alias.Name`;
* composites (`model C = A * B`) are checked for consistent shared variables.

Bad input raises `EbmError` (one problem) or `EbmErrors` (several; it is an `EbmError`
whose message and span are the first problem's). Nothing in a `.ebm` file is executed.
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ebmlang import ast, ir
from ebmlang.ast import Span, Type
from ebmlang.errors import EbmError, did_you_mean
from ebmlang.loader import ImportResolver, Loader
from ebmlang.parser import parse_source

__all__ = [
    "check_program",
    "check_source",
    "model_interface",
    "ModelInterface",
    "VariableInfo",
    "evaluate_constant",
    "EbmErrors",
    "BUILTIN_CONSTANTS",
    "BUILTIN_FUNCTIONS",
    "ACTIVATIONS",
    "DISTRIBUTIONS",
]

BUILTIN_CONSTANTS = {"pi": math.pi, "e": math.e}
# Elementwise functions of one argument (names match ir.UNARY_FUNCTIONS).
BUILTIN_FUNCTIONS = ("exp", "log", "softplus", "sigmoid", "tanh", "abs", "sqrt", "relu",
                     "sin", "cos", "log1p", "expm1", "square")
# Functions that keep an integer argument integer (`W[abs(i - j)]`).
_INTEGER_PRESERVING = ("abs", "square")
ACTIVATIONS = ("silu", "relu", "tanh", "sigmoid", "softplus", "gelu", "elu")
DISTRIBUTIONS = ("normal", "uniform")
# Compile-time integers stay well inside float64's exact range.
_MAX_INTEGER = 2 ** 53
# Largest index set the checker enumerates (to evaluate consts or check index bounds).
MAX_CHECKED_GROUND = 2_000_000

_T_INDEX = Type("index")
_T_REAL = Type("real")


class EbmErrors(EbmError):
    """Several independent errors, reported together; acts as the first one."""

    def __init__(self, errors: list[EbmError]):
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.message, first.span, source=first.source,
                         expected=first.expected, hint=first.hint, notes=first.notes)

    def with_source(self, source: str) -> "EbmErrors":
        for err in self.errors:
            err.with_source(source)
        self.source = self.errors[0].source
        self.args = (self.render(),)
        return self

    def render(self) -> str:
        errors = getattr(self, "errors", None)
        if not errors:
            return super().render()
        parts = [err.render() for err in errors]
        return "\n".join(parts) + f"\n{len(errors)} errors"


# ==========================================================================
# Compile-time evaluation


def evaluate_constant(expr: ast.Expr, consts: dict, indices: dict | None = None):
    """The value of a compile-time expression: a Python int/float or a numpy array.

    `consts` maps names to values (`CheckedModel.consts`); `indices` optionally maps
    index names to integer arrays that broadcast together (vectorised evaluation
    over many index tuples). Integer arithmetic stays integer: `/` on two integers
    is floor division and `%` is the floor modulo (numpy semantics). Raises
    EbmError (without source) for division by zero, non-finite results, overflow
    or an out-of-range const-array index.
    """
    with np.errstate(all="ignore"):
        value = _Evaluator(consts, indices or {}).value_of(expr)
    return _to_python(value)


def _to_python(value):
    array = np.asarray(value)
    if array.ndim == 0:
        return int(array) if array.dtype.kind in "iub" else float(array)
    return array


class _Evaluator:
    """Vectorised evaluation; one method per node kind (`eval_<Kind>`)."""

    def __init__(self, consts: dict, indices: dict):
        self.consts = consts
        self.indices = dict(indices)

    def value_of(self, expr: ast.Expr) -> np.ndarray:
        handler = getattr(self, f"eval_{type(expr).__name__}", None)
        if handler is None:
            raise EbmError(f"{_describe(expr)} is not known at compile time", expr.span,
                           expected="numbers, consts, index variables and arithmetic on them")
        value = handler(expr)
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise EbmError("this constant expression is not a finite number", expr.span,
                           hint="check for log(0), sqrt of a negative number or overflow")
        if value.dtype.kind in "iu" and value.size and np.max(np.abs(value)) > _MAX_INTEGER:
            raise EbmError("integer constant too large", expr.span, expected=f"at most 2^53 in size")
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
        elif op in _COMPARE_FUNCTIONS:
            return _COMPARE_FUNCTIONS[op](left, right)
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
        if expr.func in _INTEGER_PRESERVING and value.dtype.kind in "iu":
            return np.abs(value) if expr.func == "abs" else value * value
        return np.asarray(_STATIC_FUNCTIONS[expr.func](value.astype(float)))

    def eval_Index(self, expr: ast.Index) -> np.ndarray:
        table = self.value_of(expr.base)
        if len(expr.indices) != table.ndim:
            raise EbmError(f"{_describe(expr.base)} has {table.ndim} dimension(s) but is indexed with "
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
                    f"{_describe(expr.base)} (size {size})", index.span,
                    expected=f"an index in 0..{size}")
            positions.append(value)
        return np.asarray(table[tuple(np.broadcast_arrays(*positions))] if positions else table)

    def eval_Reduce(self, expr: ast.Reduce) -> np.ndarray:
        inner = _Evaluator(self.consts, self.indices)
        mask = inner.bind(expr.index_set, base_ndim=self._ndim())
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
        values = np.where(mask, body.astype(float), -np.inf)
        top = np.max(values, axis=axes, keepdims=True)
        top = np.where(np.isfinite(top), top, 0.0)
        return np.asarray(np.log(np.sum(np.exp(values - top), axis=axes)) + np.squeeze(top, axis=axes))

    def _ndim(self) -> int:
        return max((np.ndim(v) for v in self.indices.values()), default=0)

    def bind(self, index_set: ast.IndexSet, base_ndim: int) -> np.ndarray:
        """Add one trailing axis per binding to the index environment; the mask of valid tuples."""
        mask = np.ones((1,) * base_ndim, dtype=bool)
        for binding in index_set.bindings:
            start, stop = self.value_of(binding.start), self.value_of(binding.stop)
            for end in (start, stop):
                if end.dtype.kind not in "iub":
                    raise EbmError("a range bound must be an integer", binding.span)
            low, high = int(np.min(start)), int(np.max(stop))
            size = max(high - low, 0)
            outer = np.broadcast_shapes(mask.shape, *(np.shape(v) for v in self.indices.values()))
            if size * int(np.prod(outer, dtype=np.int64)) > MAX_CHECKED_GROUND:
                raise _TooLarge()
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


class _TooLarge(Exception):
    """An index set too big to enumerate at check time (lowering handles it)."""


_COMPARE_FUNCTIONS = {
    "==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
    ">": np.greater, ">=": np.greater_equal,
}
_STATIC_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "exp": np.exp, "log": np.log, "softplus": lambda x: np.logaddexp(0.0, x),
    "sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)), "tanh": np.tanh, "abs": np.abs,
    "sqrt": np.sqrt, "relu": lambda x: np.maximum(x, 0.0), "sin": np.sin, "cos": np.cos,
    "log1p": np.log1p, "expm1": np.expm1, "square": np.square,
}


def _describe(expr: ast.Expr) -> str:
    if isinstance(expr, ast.Name):
        return f"'{expr.name}'"
    if isinstance(expr, ast.Call):
        return f"'{expr.func}(...)'"
    return "this expression"


# ==========================================================================
# Symbols and scopes


@dataclass
class _Symbol:
    """A declared name inside one model."""

    kind: str  # "const" | "param" | "variable" | "extern" | "builtin"
    name: str
    span: Span
    value: object = None               # consts
    shape: tuple[int, ...] = ()        # variables, params, const arrays
    domain: ir.Domain | None = None    # variables
    layers: tuple[int, ...] = ()       # mlp params
    broken: bool = False               # its declaration had an error: stay quiet about uses

    @property
    def is_mlp(self) -> bool:
        return self.kind == "param" and bool(self.layers)

    def describe(self) -> str:
        if self.kind == "variable":
            return f"variable '{self.name}'"
        if self.is_mlp:
            return f"mlp '{self.name}'"
        return f"{self.kind} '{self.name}'"


class _Quiet(Exception):
    """A use of a name whose declaration already failed; its error is reported once."""


@dataclass(frozen=True)
class _Ctx:
    """Where an expression sits: what it may refer to and how to say so in errors."""

    purpose: str                      # e.g. "a shape", "an index", "an energy body"
    compile_time: bool                # no params, no variables
    indices: tuple[tuple[str, Span], ...] = ()
    allow_arrays: bool = False        # const/param values may be whole arrays

    def with_index(self, name: str, span: Span) -> "_Ctx":
        return dataclasses.replace(self, indices=self.indices + ((name, span),))

    def index_names(self) -> set[str]:
        return {n for n, _ in self.indices}

    def as_compile_time(self, purpose: str) -> "_Ctx":
        return dataclasses.replace(self, purpose=purpose, compile_time=True, allow_arrays=False)


class _Scope:
    """The names visible in one model (plus what its enclosing file shares with it)."""

    def __init__(self, file: str, source: str, inherited: dict[str, _Symbol] | None = None):
        self.file = file
        self.source = source
        self.symbols: dict[str, _Symbol] = dict(inherited or {})
        self.inherited = set(self.symbols)
        self.consts: dict[str, object] = {k: s.value for k, s in self.symbols.items() if s.kind == "const"}
        self.all_index_names: dict[str, Span] = {}   # every binding in the model, for hints
        self.used: set[str] = set()
        self.warnings: list[str] = []

    def declare(self, symbol: _Symbol, decl_span: Span) -> None:
        if symbol.name in BUILTIN_CONSTANTS:
            raise EbmError(f"'{symbol.name}' is a built-in constant and cannot be redeclared", decl_span,
                           hint="choose another name")
        if symbol.kind in ("extern",) or symbol.is_mlp:
            if symbol.name in BUILTIN_FUNCTIONS:
                raise EbmError(f"'{symbol.name}' is a built-in function and cannot be redeclared",
                               decl_span, hint="choose another name")
        previous = self.symbols.get(symbol.name)
        if previous is not None:
            raise EbmError(
                f"duplicate name '{symbol.name}': already declared as a {previous.kind}", decl_span,
                hint="every const, variable, param and extern in a model needs its own name",
                notes=[(previous.span, f"'{symbol.name}' first declared here")],
            )
        self.symbols[symbol.name] = symbol
        if symbol.kind == "const":
            self.consts[symbol.name] = symbol.value

    def warn(self, span: Span, message: str) -> None:
        self.warnings.append(f"{span}: warning: {message}")


# ==========================================================================
# Expressions


class _ExprChecker:
    """Types expressions of one model; one method per node kind (`check_<Kind>`)."""

    def __init__(self, scope: _Scope):
        self.scope = scope

    # -- entry points
    def check(self, expr: ast.Expr, ctx: _Ctx) -> ast.Expr:
        handler = getattr(self, f"check_{type(expr).__name__}", None)
        if handler is None:
            raise EbmError(f"a {type(expr).__name__} cannot appear here", expr.span)
        return handler(expr, ctx)

    def scalar(self, expr: ast.Expr, ctx: _Ctx, role: str) -> ast.Expr:
        """Check an expression used as a number (not a condition, not a vector)."""
        checked = self.check(expr, ctx)
        ty = checked.ty
        if ty.kind == "bool":
            raise EbmError(f"{role} must be a number, but this is a condition", expr.span,
                           hint="wrap a condition in [ ] to get 1 where it holds and 0 elsewhere")
        if ty.kind == "vector" and ty.size != 1:
            if isinstance(checked, ast.Call):
                raise EbmError(
                    f"{role} must be a number, but '{checked.func}(...)' gives {ty.size} values", expr.span,
                    hint=f"select one output: {checked.func}(...)[k]")
            raise EbmError(f"{role} must be a number, but this is a group of {ty.size} values", expr.span,
                           hint="index it, e.g. x[i]")
        return checked

    def condition(self, expr: ast.Expr, ctx: _Ctx, role: str) -> ast.Expr:
        checked = self.check(expr, ctx)
        if checked.ty.kind != "bool":
            raise EbmError(f"{role} must be a condition", expr.span,
                           expected="a comparison such as a == b, a < b, combined with and/or/not")
        return checked

    def integer(self, expr: ast.Expr, ctx: _Ctx, role: str) -> ast.Expr:
        """A compile-time integer expression (indices, range bounds, shape sizes)."""
        checked = self.scalar(expr, ctx, role)
        if checked.ty.kind != "index":
            raise EbmError(f"{role} must be an integer known at compile time", expr.span,
                           expected="integer numbers, integer consts, index variables and + - * / % on them",
                           hint="`/` on integers is floor division; use an integer const instead of a real")
        return checked

    # -- leaves
    def check_Number(self, expr: ast.Number, ctx: _Ctx) -> ast.Expr:
        return dataclasses.replace(expr, ty=_T_INDEX if expr.is_integer else _T_REAL)

    def check_Name(self, expr: ast.Name, ctx: _Ctx) -> ast.Expr:
        name = expr.name
        if name in ctx.index_names():
            return dataclasses.replace(expr, ty=_T_INDEX)
        symbol = self.lookup(name, expr.span, ctx)
        if symbol.kind == "builtin":
            return dataclasses.replace(expr, ty=_T_REAL)
        if symbol.kind == "const":
            value = np.asarray(symbol.value)
            if value.ndim:
                if ctx.allow_arrays:
                    kind = "vector"
                    return dataclasses.replace(expr, ty=Type(kind, False, int(value.size)))
                raise EbmError(
                    f"const '{name}' is an array of shape {list(value.shape)}; index it", expr.span,
                    hint=f"e.g. {name}[{', '.join('ijk'[:value.ndim]) if value.ndim <= 3 else '...'}]")
            return dataclasses.replace(expr, ty=_T_INDEX if value.dtype.kind in "iub" else _T_REAL)
        if symbol.kind == "extern":
            raise EbmError(f"extern '{name}' is a function; call it", expr.span, hint=f"e.g. {name}(x[i])")
        if symbol.is_mlp:
            raise EbmError(f"mlp '{name}' is a network; call it", expr.span, hint=f"e.g. {name}(x)[k]")
        self.require_runtime(symbol, expr.span, ctx)
        if symbol.shape:
            dims = ", ".join(str(d) for d in symbol.shape)
            raise EbmError(
                f"{symbol.describe()} has shape [{dims}]; index it", expr.span,
                expected=f"{name}[{', '.join('ijkl'[:len(symbol.shape)]) if len(symbol.shape) <= 4 else '...'}]",
                hint="a whole variable group can only be passed to an mlp" if symbol.kind == "variable" else None)
        return dataclasses.replace(expr, ty=self.element_type(symbol))

    def lookup(self, name: str, span: Span, ctx: _Ctx) -> _Symbol:
        symbol = self.scope.symbols.get(name)
        if symbol is None:
            if name in BUILTIN_CONSTANTS:
                return _Symbol("builtin", name, span, value=BUILTIN_CONSTANTS[name])
            if name in self.scope.all_index_names:
                raise EbmError(
                    f"index '{name}' is not bound here", span,
                    expected="an index bound by this term's [ ... ] or by an enclosing sum/prod/...",
                    notes=[(self.scope.all_index_names[name], f"'{name}' is bound here, but only inside its term or reduction")],
                )
            if name in BUILTIN_FUNCTIONS:
                raise EbmError(f"'{name}' is a function; call it", span, hint=f"e.g. {name}(x)")
            candidates = list(self.scope.symbols) + list(ctx.index_names()) + list(BUILTIN_CONSTANTS)
            raise EbmError(
                f"unknown name '{name}'", span,
                expected="a declared const, param, variable or index", hint=did_you_mean(name, candidates))
        if symbol.broken:
            raise _Quiet()
        self.scope.used.add(name)
        return symbol

    def require_runtime(self, symbol: _Symbol, span: Span, ctx: _Ctx) -> None:
        """Params and variables are not allowed where a compile-time value is needed."""
        if not ctx.compile_time or symbol.kind not in ("param", "variable"):
            return
        if symbol.kind == "param":
            raise EbmError(
                f"param '{symbol.name}' cannot be used in {ctx.purpose}", span,
                expected=f"{ctx.purpose} known at compile time: numbers, consts and index variables",
                hint=f"params are learned; declare a fixed number with `const {symbol.name} = ...`")
        raise EbmError(
            f"variable '{symbol.name}' cannot be used in {ctx.purpose}", span,
            expected=f"{ctx.purpose} known at compile time: numbers, consts and index variables",
            hint="which variables a term reads must not depend on their values")

    @staticmethod
    def element_type(symbol: _Symbol) -> Type:
        if symbol.kind == "variable":
            if symbol.domain.is_discrete:
                return Type("discrete", True)
            return Type("real", True)
        return _T_REAL

    # -- indexing
    def check_Index(self, expr: ast.Index, ctx: _Ctx) -> ast.Expr:
        base = expr.base
        if isinstance(base, ast.Name) and base.name not in ctx.index_names():
            symbol = self.lookup(base.name, base.span, ctx)
            if symbol.kind in ("const", "param", "variable") and not symbol.is_mlp:
                return self.index_array(expr, symbol, ctx)
            if symbol.kind == "builtin":
                raise EbmError(f"'{base.name}' is a number and cannot be indexed", expr.span)
            raise EbmError(f"{symbol.describe()} cannot be indexed", expr.span,
                           hint=f"call it first: {base.name}(...)[k]" if symbol.is_mlp else None)
        checked_base = self.check(base, ctx)
        if checked_base.ty.kind != "vector" or isinstance(checked_base, ast.ArrayLiteral):
            raise EbmError("only variables, params, const arrays and mlp outputs can be indexed", expr.span)
        return self.select(expr, checked_base, ctx)

    def index_array(self, expr: ast.Index, symbol: _Symbol, ctx: _Ctx) -> ast.Expr:
        shape = tuple(np.shape(symbol.value)) if symbol.kind == "const" else symbol.shape
        if symbol.kind != "const":
            self.require_runtime(symbol, expr.base.span, ctx)
        if len(expr.indices) != len(shape):
            what = "a scalar" if not shape else f"{len(shape)}-dimensional (shape [{', '.join(map(str, shape))}])"
            raise EbmError(
                f"{symbol.describe()} is {what} but is indexed with {len(expr.indices)} "
                f"{'index' if len(expr.indices) == 1 else 'indices'}", expr.span,
                expected=f"{len(shape)} {'index' if len(shape) == 1 else 'indices'}" if shape else "no indices",
            )
        index_ctx = ctx.as_compile_time("an index")
        indices = []
        for axis, index in enumerate(expr.indices):
            checked = self.integer(index, index_ctx, "an index")
            self.check_constant_index(checked, shape[axis], axis, symbol.describe(), ctx)
            indices.append(checked)
        base = dataclasses.replace(expr.base, ty=Type("vector", symbol.kind == "variable",
                                                      int(np.prod(shape, dtype=np.int64))))
        if symbol.kind == "const":
            value = np.asarray(symbol.value)
            ty = _T_INDEX if value.dtype.kind in "iub" else _T_REAL
        else:
            ty = self.element_type(symbol)
        return dataclasses.replace(expr, base=base, indices=tuple(indices), ty=ty)

    def check_constant_index(self, index: ast.Expr, size: int, axis: int, what: str, ctx: _Ctx) -> None:
        """An index without index variables is checked against the dimension right away."""
        if _mentions(index, ctx.index_names() | set(self.scope.all_index_names)):
            return
        try:
            value = evaluate_constant(index, self.scope.consts)
        except _TooLarge:
            return
        if np.ndim(value) == 0 and not 0 <= int(value) < size:
            raise EbmError(
                f"index {int(value)} is out of range for dimension {axis + 1} of {what} (size {size})",
                index.span, expected=f"an index in 0..{size}",
                hint="indices start at 0" if int(value) == size else None)

    def select(self, expr: ast.Index, vector: ast.Expr, ctx: _Ctx) -> ast.Expr:
        """`f(x)[k]`: one entry of an mlp's output vector."""
        size = vector.ty.size
        if len(expr.indices) != 1:
            raise EbmError(f"an mlp output is a vector of {size} values and takes one index", expr.span)
        index = self.scalar(expr.indices[0], ctx, "an output index")
        kind = index.ty.kind
        if kind == "real":
            raise EbmError("an output index must be an integer or a discrete variable", index.span)
        if kind == "index":
            self.check_constant_index(index, size, 0, _describe(vector), ctx)
        else:
            symbol = self.discrete_symbol(index)
            if symbol is not None:
                values = symbol.domain.values
                if values.min() < 0 or values.max() >= size:
                    raise EbmError(
                        f"{symbol.describe()} takes values {int(values.min())}..{int(values.max())}, but "
                        f"{_describe(vector)} has only {size} outputs", index.span,
                        expected=f"a selector with values in 0..{size}",
                        notes=[(symbol.span, f"'{symbol.name}' declared here")])
        depends = vector.ty.depends_on_variables or index.ty.depends_on_variables
        return dataclasses.replace(expr, base=vector, indices=(index,), ty=Type("real", depends))

    def discrete_symbol(self, expr: ast.Expr) -> _Symbol | None:
        """The discrete variable an expression reads directly (`y` or `x[i, j]`), if any."""
        base = expr.base if isinstance(expr, ast.Index) else expr
        if isinstance(base, ast.Name):
            symbol = self.scope.symbols.get(base.name)
            if symbol is not None and symbol.kind == "variable" and symbol.domain.is_discrete:
                return symbol
        return None

    # -- calls
    def check_Call(self, expr: ast.Call, ctx: _Ctx) -> ast.Expr:
        func = expr.func
        symbol = self.scope.symbols.get(func)
        if symbol is not None and symbol.broken:
            raise _Quiet()
        if symbol is not None and symbol.is_mlp:
            self.scope.used.add(func)
            return self.call_mlp(expr, symbol, ctx)
        if symbol is not None and symbol.kind == "extern":
            self.scope.used.add(func)
            return self.call_extern(expr, ctx)
        if func in BUILTIN_FUNCTIONS:
            return self.call_builtin(expr, ctx)
        if symbol is not None:
            raise EbmError(f"{symbol.describe()} is not a function", expr.func_span,
                           hint=f"index it with [ ] instead" if symbol.shape else None)
        functions = list(BUILTIN_FUNCTIONS) + [n for n, s in self.scope.symbols.items()
                                               if s.is_mlp or s.kind == "extern"]
        hint = did_you_mean(func, functions)
        if func in DISTRIBUTIONS:
            hint = f"a random initialisation is written `param name ~ {func}(a, b)`"
        elif func in ("min", "max"):
            hint = f"{func} is a reduction: {func}(i in 0..N) body"
        raise EbmError(
            f"unknown function '{func}'", expr.func_span,
            expected="a built-in function (" + ", ".join(BUILTIN_FUNCTIONS) + "), an mlp param or an extern",
            hint=hint or "declare a function registered from Python with `extern " + func + "`")

    def call_builtin(self, expr: ast.Call, ctx: _Ctx) -> ast.Expr:
        if len(expr.args) != 1:
            raise EbmError(f"'{expr.func}' takes one argument, got {len(expr.args)}", expr.span)
        arg = self.scalar(expr.args[0], ctx, f"the argument of {expr.func}")
        self.reject_categorical(arg, f"{expr.func}(...)")
        kind = arg.ty.kind
        if expr.func in _INTEGER_PRESERVING and kind in ("index", "discrete"):
            ty = Type(kind, arg.ty.depends_on_variables)
        else:
            ty = Type("real", arg.ty.depends_on_variables)
        return dataclasses.replace(expr, args=(arg,), ty=ty)

    def call_extern(self, expr: ast.Call, ctx: _Ctx) -> ast.Expr:
        if ctx.compile_time:
            raise EbmError(f"extern '{expr.func}' cannot be used in {ctx.purpose}", expr.span,
                           expected=f"{ctx.purpose} known at compile time")
        if not expr.args:
            raise EbmError(f"extern '{expr.func}' needs at least one argument", expr.span)
        args = tuple(self.scalar(a, ctx, f"an argument of {expr.func}") for a in expr.args)
        depends = any(a.ty.depends_on_variables for a in args)
        return dataclasses.replace(expr, args=args, ty=Type("real", depends))

    def call_mlp(self, expr: ast.Call, symbol: _Symbol, ctx: _Ctx) -> ast.Expr:
        self.require_runtime(symbol, expr.func_span, ctx)
        args: list[ast.Expr] = []
        features = 0
        for arg in expr.args:
            group = self.scope.symbols.get(arg.name) if isinstance(arg, ast.Name) else None
            if (group is not None and group.kind == "variable" and group.shape
                    and arg.name not in ctx.index_names()):
                if group.broken:
                    raise _Quiet()
                self.scope.used.add(arg.name)
                size = int(np.prod(group.shape, dtype=np.int64))
                args.append(dataclasses.replace(arg, ty=Type("vector", True, size)))
                features += size
                continue
            checked = self.check(arg, ctx)
            if checked.ty.kind == "vector":
                raise EbmError(f"an argument of mlp '{symbol.name}' must be a number or a whole variable group",
                               arg.span, hint="networks cannot be chained inside a .ebm file; use one mlp")
            checked = self.scalar(arg, ctx, f"an argument of mlp '{symbol.name}'")
            args.append(checked)
            features += 1
        if not args:
            raise EbmError(f"mlp '{symbol.name}' needs inputs", expr.span)
        if features != symbol.layers[0]:
            raise EbmError(
                f"mlp '{symbol.name}' takes {symbol.layers[0]} inputs but is given {features}", expr.span,
                expected=f"arguments with {symbol.layers[0]} values in total (a group x[D] counts D)",
                notes=[(symbol.span, f"'{symbol.name}' declared with input size {symbol.layers[0]}")])
        depends = any(a.ty.depends_on_variables for a in args)
        return dataclasses.replace(expr, args=tuple(args), ty=Type("vector", depends, symbol.layers[-1]))

    # -- operators
    def check_Unary(self, expr: ast.Unary, ctx: _Ctx) -> ast.Expr:
        if expr.op == "not":
            operand = self.condition(expr.operand, ctx, "the operand of 'not'")
            return dataclasses.replace(expr, operand=operand, ty=operand.ty)
        operand = self.scalar(expr.operand, ctx, f"the operand of unary '{expr.op}'")
        self.reject_categorical(operand, f"'{expr.op}'")
        kind = "real" if operand.ty.kind == "vector" else operand.ty.kind
        return dataclasses.replace(expr, operand=operand, ty=Type(kind, operand.ty.depends_on_variables))

    def check_Binary(self, expr: ast.Binary, ctx: _Ctx) -> ast.Expr:
        op = expr.op
        if op in ("and", "or"):
            left = self.condition(expr.left, ctx, f"the left side of '{op}'")
            right = self.condition(expr.right, ctx, f"the right side of '{op}'")
            depends = left.ty.depends_on_variables or right.ty.depends_on_variables
            return dataclasses.replace(expr, left=left, right=right, ty=Type("bool", depends))
        if op in _COMPARE_FUNCTIONS:
            return self.comparison(expr, ctx)
        left = self.scalar(expr.left, ctx, f"the left side of '{op}'")
        right = self.scalar(expr.right, ctx, f"the right side of '{op}'")
        for side in (left, right):
            self.reject_categorical(side, f"'{op}'")
        kinds = {_numeric_kind(left.ty), _numeric_kind(right.ty)}
        depends = left.ty.depends_on_variables or right.ty.depends_on_variables
        if op == "%" and "real" in kinds:
            real_side = left if _numeric_kind(left.ty) == "real" else right
            raise EbmError("'%' needs integer operands", real_side.span,
                           expected="integers, index variables or discrete variables")
        if kinds == {"index"}:
            kind = "index"
        elif "real" in kinds or op == "/":
            kind = "real"
        else:  # discrete with index/discrete: an integer-valued variable expression
            kind = "discrete"
        return dataclasses.replace(expr, left=left, right=right, ty=Type(kind, depends))

    def comparison(self, expr: ast.Binary, ctx: _Ctx) -> ast.Expr:
        op = expr.op
        left = self.scalar(expr.left, ctx, f"the left side of '{op}'")
        right = self.scalar(expr.right, ctx, f"the right side of '{op}'")
        for side in (left, right):
            if side.ty.kind == "real" and side.ty.depends_on_variables or side.ty.kind == "vector":
                raise EbmError(
                    f"'{op}' compares a real-valued variable", side.span,
                    expected="discrete values (binary, spin, categorical, integer), params or constants",
                    hint="an indicator of a real variable has zero gradient almost everywhere; use a smooth "
                         "penalty (e.g. relu(a - b) or softplus) or a bounded domain `real in [lo, hi]`")
            if op not in ("==", "!="):
                symbol = self.discrete_symbol(side)
                if symbol is not None and symbol.domain.kind == "categorical":
                    raise EbmError(
                        f"'{op}' orders categories, but categorical values are unordered labels", side.span,
                        expected="'==' or '!=' for categorical values",
                        hint="for ordered values declare the variable as `integer in a..b`")
        depends = left.ty.depends_on_variables or right.ty.depends_on_variables
        return dataclasses.replace(expr, left=left, right=right, ty=Type("bool", depends))

    def reject_categorical(self, expr: ast.Expr, what: str) -> None:
        symbol = self.discrete_symbol(expr)
        if symbol is not None and symbol.domain.kind == "categorical":
            raise EbmError(
                f"arithmetic with categorical variable '{symbol.name}' is meaningless ({what})", expr.span,
                expected="a comparison such as [x[i] == y[i]], or a selection f(...)[x]",
                hint="categories are labels; for ordered values use `integer in a..b`")

    def check_Indicator(self, expr: ast.Indicator, ctx: _Ctx) -> ast.Expr:
        condition = self.check(expr.condition, ctx)
        if condition.ty.kind != "bool":
            raise EbmError("an indicator [ ... ] needs a condition", expr.span,
                           expected="a comparison such as [x[i] == y[i]], combined with and/or/not")
        # 0/1 valued: a compile-time integer, a discrete value of discrete variables, or a
        # real when params decide it
        if condition.ty.depends_on_variables:
            ty = Type("discrete", True)
        elif _mentions_kind(condition, self.scope, ("param",)):
            ty = _T_REAL
        else:
            ty = _T_INDEX
        return dataclasses.replace(expr, condition=condition, ty=ty)

    def check_ArrayLiteral(self, expr: ast.ArrayLiteral, ctx: _Ctx) -> ast.Expr:
        if not ctx.allow_arrays:
            if len(expr.items) == 1:
                raise EbmError("an indicator [ ... ] needs a condition", expr.span,
                               expected="a comparison such as [x[i] == y[i]]",
                               hint="parentheses ( ) group arithmetic; brackets [ ] make indicators")
            raise EbmError("an array literal can only be the value of a const or param", expr.span,
                           hint="declare it: `const table = [...]`, then use table[i]")
        items = []
        for item in expr.items:
            checked = self.check(item, ctx)
            if checked.ty.kind == "bool":
                raise EbmError("an array element must be a number", item.span)
            items.append(checked)
        size = sum((i.ty.size or 1) if i.ty.kind == "vector" else 1 for i in items)
        return dataclasses.replace(expr, items=tuple(items), ty=Type("vector", False, size))

    # -- reductions
    def check_Reduce(self, expr: ast.Reduce, ctx: _Ctx) -> ast.Expr:
        index_set, inner = self.index_set(expr.index_set, ctx)
        body = self.scalar(expr.body, inner, f"the body of {expr.op}")
        kind = _numeric_kind(body.ty)
        self.reject_categorical(body, expr.op)
        if expr.op in ("mean", "logsumexp"):
            kind = "real"
        return dataclasses.replace(expr, index_set=index_set, body=body,
                                   ty=Type(kind, body.ty.depends_on_variables))

    def index_set(self, index_set: ast.IndexSet, ctx: _Ctx) -> tuple[ast.IndexSet, _Ctx]:
        """Check the bindings left to right (a range may use earlier indices) and the filter."""
        bindings = []
        inner = ctx
        for binding in index_set.bindings:
            self.check_binding_name(binding, inner)
            range_ctx = inner.as_compile_time("a range")
            start = self.integer(binding.start, range_ctx, "a range bound")
            stop = self.integer(binding.stop, range_ctx, "a range bound")
            bindings.append(dataclasses.replace(binding, start=start, stop=stop))
            inner = inner.with_index(binding.name, binding.span)
        where = None
        if index_set.where is not None:
            where = self.condition(index_set.where, inner.as_compile_time("a where filter"), "a where filter")
        return dataclasses.replace(index_set, bindings=tuple(bindings), where=where), inner

    def check_binding_name(self, binding: ast.Binding, ctx: _Ctx) -> None:
        for name, span in ctx.indices:
            if name == binding.name:
                raise EbmError(
                    f"index '{binding.name}' shadows an index of the same name", binding.span,
                    hint="give the inner index another name",
                    notes=[(span, f"'{name}' is already bound here")])
        symbol = self.scope.symbols.get(binding.name)
        if symbol is not None or binding.name in BUILTIN_CONSTANTS:
            what = symbol.describe() if symbol else f"built-in constant '{binding.name}'"
            raise EbmError(
                f"index '{binding.name}' has the same name as {what}", binding.span,
                hint="give the index another name",
                notes=[(symbol.span, "declared here")] if symbol else ())


def _numeric_kind(ty: Type) -> str:
    return "real" if ty.kind == "vector" else ty.kind


def _walk(expr) -> Iterator[ast.Expr]:
    """Every expression node below (and including) `expr`."""
    yield expr
    for f in dataclasses.fields(expr):
        if f.name in ("span", "ty", "func_span"):
            continue
        value = getattr(expr, f.name)
        children = value if isinstance(value, tuple) else (value,)
        for child in children:
            if isinstance(child, (ast.Expr, ast.IndexSet, ast.Binding)):
                yield from _walk(child)


def _mentions(expr: ast.Expr, names: set[str]) -> bool:
    return any(isinstance(node, ast.Name) and node.name in names for node in _walk(expr))


def _mentions_kind(expr: ast.Expr, scope: _Scope, kinds: tuple[str, ...]) -> bool:
    for node in _walk(expr):
        name = node.name if isinstance(node, ast.Name) else node.func if isinstance(node, ast.Call) else None
        symbol = scope.symbols.get(name) if name else None
        if symbol is not None and symbol.kind in kinds:
            return True
    return False


def _number(value, span: Span) -> ast.Number:
    is_integer = isinstance(value, (int, np.integer))
    return ast.Number(span, int(value) if is_integer else float(value), is_integer=is_integer,
                      ty=_T_INDEX if is_integer else _T_REAL)


# ==========================================================================
# Models


_CONST_CTX = _Ctx("a const value", compile_time=True, allow_arrays=True)


class _ModelChecker:
    """Checks the declarations of one model (top level of a file or a `model Name { }` block)."""

    def __init__(self, name: str, file: str, source: str, inherited: dict[str, _Symbol] | None = None):
        self.name = name
        self.file = file
        self.source = source
        self.scope = _Scope(file, source, inherited)
        self.exprs = _ExprChecker(self.scope)
        self.errors: list[EbmError] = []
        self.terms: dict[str, Span] = {}

    def run(self, items: tuple[ast.Decl, ...], span: Span, inherited_decls: tuple[ast.Decl, ...] = ()
            ) -> ast.CheckedModel:
        self.collect_index_names(items)
        consts = [d for d in items if isinstance(d, ast.ConstDecl)]
        others = [d for d in items if not isinstance(d, ast.ConstDecl)]
        for decl in consts:
            self.guard(self.declare_const, decl)
        # every declaration before any term, so terms may use names declared below them
        checked: dict[int, ast.Decl] = {}
        for decl in others:
            if isinstance(decl, (ast.VarDecl, ast.ParamDecl, ast.ExternDecl)):
                result = self.guard(self.declare, decl)
                if result is not None:
                    checked[id(decl)] = result
        for decl in others:
            if isinstance(decl, (ast.EnergyDecl, ast.ConstraintDecl)):
                result = self.guard(self.check_term, decl)
                if result is not None:
                    checked[id(decl)] = result
        decls = tuple(inherited_decls) + tuple(checked[id(d)] for d in others if id(d) in checked)
        self.warn_unused(others)
        consts_out = {k: v for k, v in self.scope.consts.items()}
        consts_out.update(BUILTIN_CONSTANTS)
        return ast.CheckedModel(self.name, self.file, self.source, consts_out, decls, span)

    def guard(self, check: Callable, decl: ast.Decl):
        """Run one declaration's check; record its error and carry on with the next."""
        try:
            return check(decl)
        except _Quiet:
            self.mark_broken(decl)
        except EbmError as err:
            self.errors.append(err.with_source(self.source) if err.span is None or
                               err.span.file == self.file else err)
            self.mark_broken(decl)
        return None

    def mark_broken(self, decl: ast.Decl) -> None:
        name = getattr(decl, "name", None)
        if name is None or isinstance(decl, (ast.EnergyDecl, ast.ConstraintDecl)):
            return
        symbol = self.scope.symbols.get(name)
        if symbol is None:
            kind = {ast.ConstDecl: "const", ast.VarDecl: "variable", ast.ParamDecl: "param",
                    ast.ExternDecl: "extern"}.get(type(decl), "const")
            self.scope.symbols[name] = _Symbol(kind, name, decl.span, broken=True)
        elif symbol.span == decl.span:
            symbol.broken = True

    def collect_index_names(self, items) -> None:
        for decl in items:
            for value in _decl_exprs(decl):
                for node in _walk(value):
                    if isinstance(node, ast.Binding):
                        self.scope.all_index_names.setdefault(node.name, node.span)

    # -- declarations
    def declare_const(self, decl: ast.ConstDecl) -> None:
        self.check_new_name(decl.name, decl.span)
        value_expr = self.exprs.check(decl.value, _CONST_CTX)
        if value_expr.ty.kind == "bool":
            raise EbmError(f"const '{decl.name}' is a condition, not a number", decl.value.span,
                           hint="wrap it in [ ] to get 1 or 0")
        value = self.evaluate(value_expr)
        self.scope.declare(_Symbol("const", decl.name, decl.span, value=value,
                                   shape=tuple(np.shape(value))), decl.span)

    def check_new_name(self, name: str, span: Span) -> None:
        previous = self.scope.symbols.get(name)
        if previous is not None:
            where = "in the enclosing file" if name in self.scope.inherited else ""
            raise EbmError(
                f"duplicate name '{name}': already declared as a {previous.kind} {where}".rstrip(), span,
                hint="every const, variable, param and extern in a model needs its own name",
                notes=[(previous.span, f"'{name}' first declared here")])
        if name in BUILTIN_CONSTANTS:
            raise EbmError(f"'{name}' is a built-in constant and cannot be redeclared", span)

    def evaluate(self, expr: ast.Expr):
        try:
            return evaluate_constant(expr, self.scope.consts)
        except _TooLarge:
            raise EbmError("this reduction is too large to evaluate at compile time", expr.span,
                           expected=f"at most {MAX_CHECKED_GROUND} terms") from None

    def declare(self, decl: ast.Decl) -> ast.Decl:
        self.check_new_name(decl.name, decl.span)
        handler = {ast.VarDecl: self.declare_variable, ast.ParamDecl: self.declare_param,
                   ast.ExternDecl: self.declare_extern}[type(decl)]
        return handler(decl)

    def shape(self, dims: tuple[ast.Expr, ...], what: str) -> tuple[tuple[ast.Expr, ...], tuple[int, ...]]:
        ctx = _Ctx("a shape", compile_time=True)
        folded, sizes = [], []
        for dim in dims:
            checked = self.exprs.integer(dim, ctx, f"a dimension of {what}")
            size = self.evaluate(checked)
            if size < 1:
                raise EbmError(f"a dimension of {what} is {size}", dim.span, expected="a positive size")
            folded.append(_number(size, dim.span))
            sizes.append(int(size))
        return tuple(folded), tuple(sizes)

    def constant(self, expr: ast.Expr, role: str, integer: bool = False):
        ctx = _Ctx(role, compile_time=True)
        checked = self.exprs.integer(expr, ctx, role) if integer else self.exprs.scalar(expr, ctx, role)
        value = self.evaluate(checked)
        return value, _number(value, expr.span)

    def declare_variable(self, decl: ast.VarDecl) -> ast.VarDecl:
        what = f"variable '{decl.name}'"
        shape_exprs, shape = self.shape(decl.shape, what)
        spec = decl.domain
        args: tuple[ast.Expr, ...] = ()
        if spec.kind == "bounded":
            (low, low_e), (high, high_e) = (self.constant(a, "a domain bound") for a in spec.args)
            if not low < high:
                raise EbmError(f"empty interval [{low}, {high}]", spec.span, expected="low < high")
            domain, args = ir.bounded(low, high), (low_e, high_e)
        elif spec.kind == "categorical":
            count, count_e = self.constant(spec.args[0], "the number of categories", integer=True)
            if count < 1:
                raise EbmError(f"categorical({count}) has no values", spec.args[0].span,
                               expected="at least 1 category")
            domain, args = ir.categorical(count), (count_e,)
        elif spec.kind == "integer":
            (low, low_e), (high, high_e) = (self.constant(a, "an integer domain bound", integer=True)
                                            for a in spec.args)
            if not low < high:
                raise EbmError(f"the integer range {low}..{high} is empty", spec.span,
                               expected="a..b with a < b (values a, ..., b-1)")
            domain = ir.Domain("integer", num_values=high - low, first_value=low)
            args = (low_e, high_e)
        else:
            domain = {"real": ir.REAL, "binary": ir.BINARY, "spin": ir.SPIN}[spec.kind]
        self.scope.declare(_Symbol("variable", decl.name, decl.span, shape=shape, domain=domain), decl.span)
        return dataclasses.replace(decl, shape=shape_exprs, domain=dataclasses.replace(spec, args=args))

    def declare_param(self, decl: ast.ParamDecl) -> ast.ParamDecl:
        what = f"param '{decl.name}'"
        shape_exprs, shape = self.shape(decl.shape, what)
        init = decl.init
        layers: tuple[int, ...] = ()
        value = None
        if isinstance(init, ast.NeuralSpec):
            if decl.shape:
                raise EbmError(f"mlp '{decl.name}' takes no shape; its sizes are in mlp(...)", decl.span)
            if len(init.sizes) < 2:
                raise EbmError("an mlp needs an input and an output size", init.span,
                               expected="mlp(IN -> OUT) or mlp(IN -> HIDDEN ... -> OUT)")
            sizes = [self.constant(s, "a layer size", integer=True) for s in init.sizes]
            for (size, _), expr in zip(sizes, init.sizes):
                if size < 1:
                    raise EbmError(f"a layer size is {size}", expr.span, expected="a positive size")
            if init.activation not in ACTIVATIONS:
                raise EbmError(f"unknown activation '{init.activation}'", init.span,
                               expected=", ".join(ACTIVATIONS), hint=did_you_mean(init.activation, ACTIVATIONS))
            layers = tuple(int(s) for s, _ in sizes)
            init = dataclasses.replace(init, sizes=tuple(e for _, e in sizes))
        elif isinstance(init, ast.ParamDistribution):
            init = self.distribution(init)
        elif isinstance(init, ast.ParamValue):
            init, value = self.param_value(init, shape, what)
        bounds = decl.bounds
        if bounds is not None and init is None:
            value = 0  # a param without an initialiser starts at zero
        if bounds is not None:
            if layers:
                raise EbmError(f"mlp '{decl.name}' cannot have bounds", bounds[0].span)
            (low, low_e), (high, high_e) = (self.constant(b, "a param bound") for b in bounds)
            if not low < high:
                raise EbmError(f"empty interval [{low}, {high}]", bounds[0].span, expected="low < high")
            if value is not None and (np.any(np.asarray(value) < low) or np.any(np.asarray(value) > high)):
                if decl.init is None:
                    raise EbmError(f"{what} starts at 0, outside its bounds [{low:g}, {high:g}]", decl.span,
                                   hint=f"give it a value: `param {decl.name} = ... in [{low:g}, {high:g}]`")
                raise EbmError(f"the initial value of {what} lies outside its bounds [{low:g}, {high:g}]",
                               decl.init.span)
            bounds = (low_e, high_e)
        self.scope.declare(_Symbol("param", decl.name, decl.span, shape=shape, layers=layers), decl.span)
        return dataclasses.replace(decl, shape=shape_exprs, init=init, bounds=bounds)

    def distribution(self, init: ast.ParamDistribution) -> ast.ParamDistribution:
        if init.dist not in DISTRIBUTIONS:
            hint = ("did you mean 'normal'?" if init.dist in ("gaussian", "gauss", "norm", "randn")
                    else did_you_mean(init.dist, DISTRIBUTIONS))
            raise EbmError(f"unknown distribution '{init.dist}'", init.span,
                           expected="normal(mean, std) or uniform(low, high)", hint=hint)
        if len(init.args) != 2:
            form = "normal(mean, std)" if init.dist == "normal" else "uniform(low, high)"
            raise EbmError(f"{init.dist} takes 2 arguments, got {len(init.args)}", init.span, expected=form)
        (a, a_e), (b, b_e) = (self.constant(x, f"an argument of {init.dist}") for x in init.args)
        if init.dist == "normal" and not b > 0:
            raise EbmError(f"the standard deviation of normal must be positive, got {b}", init.args[1].span)
        if init.dist == "uniform" and not a < b:
            raise EbmError(f"uniform({a}, {b}) is empty", init.span, expected="uniform(low, high) with low < high")
        return dataclasses.replace(init, args=(a_e, b_e))

    def param_value(self, init: ast.ParamValue, shape: tuple[int, ...], what: str):
        ctx = dataclasses.replace(_CONST_CTX, purpose="a param value")
        if isinstance(init.value, ast.Call) and init.value.func in DISTRIBUTIONS:
            raise EbmError(f"'{init.value.func}(...)' is a distribution, not a value", init.value.span,
                           hint=f"a random initialisation is written `~ {init.value.func}(a, b)`")
        checked = self.exprs.check(init.value, ctx)
        if checked.ty.kind == "bool":
            raise EbmError(f"the value of {what} is a condition, not a number", init.value.span)
        value = self.evaluate(checked)
        array = np.asarray(value)
        try:
            np.broadcast_to(array, shape)
        except ValueError:
            raise EbmError(
                f"the value of {what} has shape {list(array.shape)} but the param has shape {list(shape)}",
                init.value.span, expected="a scalar (used everywhere) or an array of the param's shape") from None
        if array.ndim == 0:
            checked = _number(value, init.value.span)
        return dataclasses.replace(init, value=checked), value

    def declare_extern(self, decl: ast.ExternDecl) -> ast.ExternDecl:
        self.scope.declare(_Symbol("extern", decl.name, decl.span), decl.span)
        return decl

    # -- terms
    def check_term(self, decl: ast.EnergyDecl | ast.ConstraintDecl) -> ast.Decl:
        # terms have their own namespace: `energy x = x^2` is fine, two terms named x are not
        if decl.name in self.terms:
            raise EbmError(f"duplicate term name '{decl.name}'", decl.name_span,
                           hint="every energy and constraint term in a model needs its own name",
                           notes=[(self.terms[decl.name], f"'{decl.name}' first defined here")])
        self.terms[decl.name] = decl.name_span
        ctx = _Ctx("an energy body" if isinstance(decl, ast.EnergyDecl) else "a constraint", compile_time=False)
        index_set = decl.index_set
        if index_set is not None:
            index_set, ctx = self.exprs.index_set(index_set, ctx)
        if isinstance(decl, ast.EnergyDecl):
            body = self.exprs.check(decl.body, ctx)
            if body.ty.kind == "bool":
                raise EbmError(f"the body of energy '{decl.name}' is a condition, not a number", decl.body.span,
                               hint="write `constraint name : condition` for a hard constraint, or wrap it "
                                    "in [ ] for 1/0")
            if body.ty.kind == "vector" and body.ty.size != 1:
                hint = (f"select one output: {body.func}(...)[k]" if isinstance(body, ast.Call)
                        else "an energy is one number per factor")
                raise EbmError(f"the body of energy '{decl.name}' is a vector of {body.ty.size} values, "
                               "not a scalar", decl.body.span, hint=hint)
            self.check_categorical_body(body)
            if not body.ty.depends_on_variables:
                self.scope.warn(decl.name_span, f"energy '{decl.name}' does not depend on any variable")
            checked = dataclasses.replace(decl, index_set=index_set, body=body)
        else:
            condition = self.exprs.condition(decl.condition, ctx, "a constraint")
            if not condition.ty.depends_on_variables:
                self.scope.warn(decl.name_span, f"constraint '{decl.name}' does not depend on any variable")
            checked = dataclasses.replace(decl, index_set=index_set, condition=condition)
        _IndexBounds(self.scope).check_term(checked)
        return checked

    def check_categorical_body(self, body: ast.Expr) -> None:
        self.exprs.reject_categorical(body, "as an energy")

    def warn_unused(self, decls) -> None:
        for decl in decls:
            if isinstance(decl, (ast.VarDecl, ast.ParamDecl)) and decl.name not in self.scope.used:
                symbol = self.scope.symbols.get(decl.name)
                if symbol is not None and not symbol.broken:
                    kind = "variable" if isinstance(decl, ast.VarDecl) else "param"
                    self.scope.warn(decl.span, f"{kind} '{decl.name}' is not used by any term")


def _decl_exprs(decl: ast.Decl) -> list:
    """The expression-like children of a declaration (for walking)."""
    found = []
    for f in dataclasses.fields(decl):
        value = getattr(decl, f.name)
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, (ast.Expr, ast.IndexSet, ast.Binding)):
                found.append(item)
    return found


class _IndexBounds:
    """Checks that every variable/param/const index a term computes stays in range.

    The term's index set (and each reduction's) is enumerated with numpy, so a
    `where` filter or a modulo is taken exactly into account. Index sets larger than
    MAX_CHECKED_GROUND are left to lowering.
    """

    def __init__(self, scope: _Scope):
        self.scope = scope

    def check_term(self, decl) -> None:
        body = decl.body if isinstance(decl, ast.EnergyDecl) else decl.condition
        try:
            with np.errstate(all="ignore"):
                evaluator = _Evaluator(self.scope.consts, {})
                mask = np.ones((), dtype=bool)
                if decl.index_set is not None:
                    mask = evaluator.bind(decl.index_set, base_ndim=0)
                self.visit(body, evaluator, mask)
        except (_TooLarge, _Unchecked):
            return

    def visit(self, expr: ast.Expr, evaluator: _Evaluator, mask: np.ndarray) -> None:
        if isinstance(expr, ast.Reduce):
            inner = _Evaluator(evaluator.consts, evaluator.indices)
            try:
                bound = inner.bind(expr.index_set, base_ndim=max(evaluator._ndim(), mask.ndim))
            except EbmError:
                raise _Unchecked() from None
            # the enclosing mask gains the reduction's trailing axes
            outer = mask.reshape(mask.shape + (1,) * (bound.ndim - mask.ndim))
            self.visit(expr.body, inner, outer & bound)
            return
        for child in _children(expr):
            self.visit(child, evaluator, mask)
        if isinstance(expr, ast.Index) and isinstance(expr.base, ast.Name):
            symbol = self.scope.symbols.get(expr.base.name)
            if symbol is not None and symbol.kind in ("variable", "param", "const"):
                shape = np.shape(symbol.value) if symbol.kind == "const" else symbol.shape
                for axis, index in enumerate(expr.indices):
                    self.check_index(index, shape[axis], axis, symbol, evaluator, mask)
        elif isinstance(expr, ast.Index) and expr.base.ty is not None and expr.base.ty.kind == "vector":
            index = expr.indices[0]
            if index.ty is not None and index.ty.kind == "index":
                self.check_index(index, expr.base.ty.size, 0, None, evaluator, mask, vector=expr.base)

    def check_index(self, index, size, axis, symbol, evaluator, mask, vector=None) -> None:
        try:
            values = np.asarray(evaluator.value_of(index))
        except EbmError:
            raise _Unchecked() from None
        if values.dtype.kind not in "iu":
            return
        shape = np.broadcast_shapes(values.shape, mask.shape)
        values, valid = np.broadcast_to(values, shape), np.broadcast_to(mask, shape)
        bad = valid & ((values < 0) | (values >= size))
        if not np.any(bad):
            return
        position = tuple(int(p[0]) for p in np.nonzero(bad))
        where = []
        for name, array in evaluator.indices.items():
            array = np.broadcast_to(array, shape)
            where.append(f"{name} = {int(array[position])}")
        what = symbol.describe() if symbol is not None else _describe(vector)
        value = int(values[position])
        raise EbmError(
            f"index {value} is out of range for dimension {axis + 1} of {what} (size {size})"
            + (f" when {', '.join(where)}" if where else ""), index.span,
            expected=f"indices in 0..{size} for every index tuple of the term",
            hint="narrow the range (e.g. 0..N-1) or wrap around with % N")


class _Unchecked(Exception):
    """An index set the checker cannot enumerate exactly; lowering checks it."""


def _children(expr: ast.Expr) -> list[ast.Expr]:
    found = []
    for f in dataclasses.fields(expr):
        if f.name in ("span", "ty", "func_span", "index_set"):
            continue
        value = getattr(expr, f.name)
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, ast.Expr):
                found.append(item)
    return found


# ==========================================================================
# Files, imports and composites


@dataclass
class _Session:
    """State of one `check_program` call: loaded imports and the import chain."""

    resolver: ImportResolver
    loaded: dict[str, tuple[ast.CheckedProgram, str | None]] = field(default_factory=dict)
    chain: list[str] = field(default_factory=list)


def check_program(program: ast.Program, *, loader: Loader | None = None,
                  allow_root: str | os.PathLike | None = None) -> ast.CheckedProgram:
    """Type-check a parsed program and resolve its imports.

    loader: reads an imported file given its path (default: the file system);
      e.g. `{"prior.ebm": text}.__getitem__` for programs kept in memory. Import
      paths are relative to the importing file.
    allow_root: a directory imports may also come from (by default only the
      directory of the top file and below; the working directory for "<string>").
    Returns a CheckedProgram; raises EbmError (or EbmErrors, several) on any problem.
    """
    resolver = ImportResolver(program.file, loader=loader, allow_root=allow_root)
    session = _Session(resolver)
    session.chain.append(resolver.identity(program.file))
    checked, _ = _check_file(program, session)
    return checked


def check_source(text: str, file: str = "<string>", *, loader: Loader | None = None,
                 allow_root: str | os.PathLike | None = None) -> ast.CheckedProgram:
    """Parse and check source text in one step."""
    return check_program(parse_source(text, file), loader=loader, allow_root=allow_root)


_TOP_LEVEL_DECLS = (ast.ConstDecl, ast.VarDecl, ast.ParamDecl, ast.EnergyDecl, ast.ConstraintDecl,
                    ast.ExternDecl)


def _check_file(program: ast.Program, session: _Session) -> tuple[ast.CheckedProgram, str | None]:
    """Check one file; also returns the key of its top-level model (None if it has none)."""
    file, source = program.file, program.source
    errors: list[EbmError] = []
    models: dict[str, ast.CheckedModel | ast.CheckedComposite] = {}
    model_spans: dict[str, Span] = {}
    warnings: list[str] = []

    def record(err: EbmError) -> None:
        if isinstance(err, EbmErrors):
            errors.extend(err.errors)
        else:
            errors.append(err.with_source(source) if err.span is None or err.span.file == file else err)

    def claim(name: str, span: Span) -> bool:
        if name in model_spans:
            record(EbmError(f"duplicate model name '{name}'", span,
                            notes=[(model_spans[name], f"'{name}' first defined here")]))
            return False
        model_spans[name] = span
        return True

    top_items = tuple(d for d in program.items if isinstance(d, _TOP_LEVEL_DECLS))
    named = [d for d in program.items if isinstance(d, (ast.ModelBlock, ast.ModelDef))]
    imports = [d for d in program.items if isinstance(d, ast.ImportDecl)]
    top_name = _top_model_name(file, {d.name for d in named} | {d.alias for d in imports})
    failed: set[str] = set()  # models whose errors are already reported

    # imports: each imported model joins this file's models under its alias
    for decl in imports:
        if decl.alias in _RESERVED_MODEL_NAMES:
            record(EbmError(f"'{decl.alias}' cannot be an import alias", decl.span))
            continue
        try:
            imported, imported_top = _load_import(decl, program, session)
        except EbmError as err:
            record(err)
            failed.add(decl.alias)
            continue
        if claim(decl.alias, decl.span):
            for key, model in _aliased_models(imported, imported_top, decl.alias).items():
                models[key] = model
                model_spans.setdefault(key, decl.span)
            warnings.extend(imported.warnings)

    # the top-level model; model blocks see its consts and externs
    top = _ModelChecker(top_name, file, source)
    top_model = top.run(top_items, program.span)
    errors.extend(top.errors)
    warnings.extend(top.scope.warnings)
    shared = {k: s for k, s in top.scope.symbols.items() if s.kind in ("const", "extern")}
    shared_decls = tuple(d for d in top_model.decls if isinstance(d, ast.ExternDecl))
    has_terms = any(isinstance(d, (ast.EnergyDecl, ast.ConstraintDecl)) for d in top_items)
    has_content = any(not isinstance(d, (ast.ConstDecl, ast.ExternDecl)) for d in top_items)
    top_key = None
    if (has_terms or has_content or not named) and claim(top_name, program.span):
        models[top_name] = top_model
        top_key = top_name

    last_named = None
    for position, decl in enumerate(named):
        if not claim(decl.name, decl.span):
            continue
        if isinstance(decl, ast.ModelBlock):
            checker = _ModelChecker(decl.name, file, source, inherited=shared)
            model = checker.run(decl.items, decl.span, inherited_decls=shared_decls)
            errors.extend(checker.errors)
            warnings.extend(checker.scope.warnings)
            if checker.errors:
                failed.add(decl.name)
                continue
            models[decl.name] = model
        else:
            if _model_refs(decl.expr) & failed:
                failed.add(decl.name)  # its parts already reported their errors
                continue
            try:
                below = {d.name for d in named[position:]}
                models[decl.name] = _check_composite(decl, models, top.scope.consts, file, source, below)
            except EbmError as err:
                record(err)
                failed.add(decl.name)
                continue
        last_named = decl.name

    if errors:
        # report in reading order: imported files' errors first, then this file's by position
        errors.sort(key=lambda e: (e.span is not None and e.span.file == file,
                                   (e.span.line, e.span.column) if e.span is not None else (0, 0)))
        raise errors[0] if len(errors) == 1 else EbmErrors(errors)
    if has_terms or last_named is None:
        default = top_name
        if not has_terms and top_key is not None:
            warnings.append(f"{file}:1:1: warning: model '{top_name}' has no energy terms or constraints")
    else:
        default = last_named
    return ast.CheckedProgram(file, source, models, default, tuple(warnings)), top_key


_RESERVED_MODEL_NAMES = ("main",)


def _model_ref_nodes(expr: ast.ModelExpr) -> list[ast.ModelRef]:
    if isinstance(expr, ast.ModelRef):
        return [expr]
    if isinstance(expr, ast.ModelProduct):
        return [r for f in expr.factors for r in _model_ref_nodes(f)]
    return _model_ref_nodes(expr.base)


def _model_refs(expr: ast.ModelExpr) -> set[str]:
    return {r.name for r in _model_ref_nodes(expr)}


def _top_model_name(file: str, taken: set[str]) -> str:
    """The top-level model is named after its file (`ising.ebm` -> `ising`), else `main`."""
    stem = os.path.splitext(os.path.basename(file))[0]
    if stem.isidentifier() and stem not in taken and not file.startswith("<"):
        return stem
    name = "main"
    while name in taken:
        name = "_" + name
    return name


def _load_import(decl: ast.ImportDecl, program: ast.Program, session: _Session
                 ) -> tuple[ast.CheckedProgram, str | None]:
    target = session.resolver.resolve(decl.path, program.file, decl.span)
    identity = session.resolver.identity(target)
    if identity in session.chain:
        start = session.chain.index(identity)
        cycle = [os.path.basename(p) for p in session.chain[start:]] + [os.path.basename(identity)]
        raise EbmError(f"import cycle: {' -> '.join(cycle)}", decl.span,
                       hint="a file cannot import itself, directly or through other files")
    if identity in session.loaded:
        return session.loaded[identity]
    text = session.resolver.read(target, decl.span)
    imported_program = parse_source(text, target)
    session.chain.append(identity)
    try:
        result = _check_file(imported_program, session)
    finally:
        session.chain.pop()
    session.loaded[identity] = result
    return result


def _aliased_models(imported: ast.CheckedProgram, top_key: str | None, alias: str) -> dict:
    """`Alias` for the imported file's default model, `Alias.Name` for its named models."""
    rename = {key: f"{alias}.{key}" for key in imported.models}
    if top_key is not None and top_key == imported.default:
        rename[top_key] = alias
    out = {rename[key]: _rekey(model, rename[key], rename) for key, model in imported.models.items()}
    if rename[imported.default] != alias:
        out[alias] = _rekey(imported.models[imported.default], alias, rename)
    return out


def _rekey(model, new_key: str, rename: dict[str, str]):
    if isinstance(model, ast.CheckedModel):
        return dataclasses.replace(model, name=new_key)
    return dataclasses.replace(model, name=new_key, expr=_rename_refs(model.expr, rename))


def _rename_refs(expr: ast.ModelExpr, rename: dict[str, str]) -> ast.ModelExpr:
    if isinstance(expr, ast.ModelRef):
        return dataclasses.replace(expr, name=rename.get(expr.name, expr.name))
    if isinstance(expr, ast.ModelProduct):
        return dataclasses.replace(expr, factors=tuple(_rename_refs(f, rename) for f in expr.factors))
    return dataclasses.replace(expr, base=_rename_refs(expr.base, rename))


# -- composites ------------------------------------------------------------


@dataclass(frozen=True)
class VariableInfo:
    """A variable group as a model presents it to the outside."""

    shape: tuple[int, ...]
    domain: ir.Domain
    observed: bool
    span: Span


@dataclass(frozen=True)
class ModelInterface:
    """What a (possibly composite) model offers: its variables, params and terms."""

    variables: dict[str, VariableInfo]
    params: dict[str, Span]
    terms: tuple[str, ...] = ()


_VarInfo = VariableInfo
_Signature = ModelInterface


def model_interface(program: ast.CheckedProgram, name: str | None = None) -> ModelInterface:
    """The variables (after renames/observes), params and terms of one checked model.

    `name` defaults to the program's default model. A composite names its params and
    terms after the expert they come from (`Prior.beta`, `Prior.right`), as composition
    does; a learnable expert weight (`A ^ w`) is the plain param `w`.
    """
    return _model_signature(program.default if name is None else name, program.models, {})


def _model_signature(key: str, models: dict, memo: dict) -> _Signature:
    if key in memo:
        return memo[key]
    model = models[key]
    if isinstance(model, ast.CheckedComposite):
        signature = _top_signature(model.expr, models, memo)
    else:
        variables, params, terms = {}, {}, []
        for decl in model.decls:
            if isinstance(decl, ast.VarDecl):
                variables[decl.name] = _VarInfo(tuple(int(d.value) for d in decl.shape),
                                                _domain_of(decl.domain), decl.role == "observed", decl.span)
            elif isinstance(decl, ast.ParamDecl):
                params[decl.name] = decl.span
            elif isinstance(decl, (ast.EnergyDecl, ast.ConstraintDecl)):
                terms.append(decl.name)
        signature = _Signature(variables, params, tuple(terms))
    memo[key] = signature
    return signature


def _domain_of(spec: ast.DomainSpec) -> ir.Domain:
    values = [a.value for a in spec.args]
    if spec.kind == "bounded":
        return ir.bounded(*values)
    if spec.kind == "categorical":
        return ir.categorical(values[0])
    if spec.kind == "integer":
        return ir.Domain("integer", num_values=int(values[1] - values[0]), first_value=int(values[0]))
    return {"real": ir.REAL, "binary": ir.BINARY, "spin": ir.SPIN}[spec.kind]


def _experts(expr: ast.ModelExpr, weight: ast.Name | None = None):
    """The experts of a model expression with their learnable weight (if any); numeric
    weights and products distribute, as in `(A * B) ^ 2 * C ^ w` -> A, B, C."""
    if isinstance(expr, ast.ModelProduct):
        for factor in expr.factors:
            yield from _experts(factor, weight)
    elif isinstance(expr, ast.ModelPower):
        yield from _experts(expr.base, expr.weight if isinstance(expr.weight, ast.Name) else weight)
    else:
        yield expr, weight


def _expert_label(expr: ast.ModelExpr) -> str:
    if isinstance(expr, ast.ModelRef):
        return expr.name
    if isinstance(expr, ast.ModelProduct):
        return "_".join(_expert_label(f) for f in expr.factors)
    return _expert_label(expr.base)


def _composite_signature(expr: ast.ModelExpr, models: dict, memo: dict) -> _Signature:
    """Unify the experts' variables by name; their params and terms keep the expert's name."""
    variables: dict[str, _VarInfo] = {}
    params: dict[str, Span] = {}
    terms: list[str] = []
    used: dict[str, int] = {}
    for leaf, weight in _experts(expr):
        signature = _leaf_signature(leaf, models, memo)
        label = _expert_label(leaf)
        used[label] = used.get(label, 0) + 1
        if used[label] > 1:
            label = f"{label}_{used[label]}"
        for name, info in signature.variables.items():
            other = variables.get(name)
            if other is None:
                variables[name] = info
                continue
            if other.shape != info.shape or other.domain != info.domain:
                raise EbmError(
                    f"experts disagree about shared variable '{name}': "
                    f"{_var_text(name, other)} vs {_var_text(name, info)}", leaf.span,
                    hint="variables with the same name are unified; rename one with A[x -> x2]",
                    notes=[(other.span, f"'{name}' declared here as {_var_text(name, other)}"),
                           (info.span, f"and here as {_var_text(name, info)}")])
            variables[name] = dataclasses.replace(other, observed=other.observed or info.observed)
        params.update({f"{label}.{p}": span for p, span in signature.params.items()})
        terms.extend(f"{label}.{t}" for t in signature.terms)
        if weight is not None:  # a learnable weight: one scalar param, shared by name
            if weight.name in signature.variables:
                raise EbmError(f"the weight '{weight.name}' has the name of a variable of {_label(leaf)}",
                               weight.span, hint="name the learnable weight something else",
                               notes=[(signature.variables[weight.name].span, f"'{weight.name}' declared here")])
            params.setdefault(weight.name, weight.span)
    return _Signature(variables, params, tuple(terms))


def _top_signature(expr: ast.ModelExpr, models: dict, memo: dict) -> _Signature:
    """A composite's own expression: `(A * B) | y` observes y of the product A * B."""
    if isinstance(expr, ast.ModelObserve):
        return _observed(expr, _top_signature(expr.base, models, memo))
    return _composite_signature(expr, models, memo)


def _leaf_signature(expr: ast.ModelExpr, models: dict, memo: dict) -> _Signature:
    if isinstance(expr, (ast.ModelProduct, ast.ModelPower)):
        return _composite_signature(expr, models, memo)
    if isinstance(expr, ast.ModelRef):
        if expr.name not in models:
            raise EbmError(
                f"unknown model '{expr.name}'", expr.span,
                expected="a model defined above, an imported alias or Alias.Name",
                hint=did_you_mean(expr.name, models) or (
                    "a model can only use models defined above it" if models else None))
        return _model_signature(expr.name, models, memo)
    base = _leaf_signature(expr.base, models, memo)
    if isinstance(expr, ast.ModelRename):
        return _renamed(expr, base)
    return _observed(expr, base)


def _observed(expr: ast.ModelObserve, base: _Signature) -> _Signature:
    variables = dict(base.variables)
    for name in expr.names:
        # params of experts carry the expert's name (`A.w`) by now
        param = next((p for p in base.params if p == name or p.endswith("." + name)), None)
        if name not in variables and param is not None:
            raise EbmError(f"'{name}' is a param, not a variable; only variables can be observed", expr.span,
                           notes=[(base.params[param], f"'{name}' declared here")])
        if name not in variables:
            raise EbmError(f"cannot observe '{name}': no variable of that name", expr.span,
                           expected="one of: " + ", ".join(sorted(variables)),
                           hint=did_you_mean(name, variables))
        variables[name] = dataclasses.replace(variables[name], observed=True)
    return _Signature(variables, base.params, base.terms)


def _renamed(expr: ast.ModelRename, base: _Signature) -> _Signature:
    names = list(base.variables) + list(base.params)
    seen: set[str] = set()
    for old, new in expr.renames:
        if old in seen:
            raise EbmError(f"'{old}' is renamed twice", expr.span)
        seen.add(old)
        if old not in names:
            raise EbmError(
                f"cannot rename '{old}': {_label(expr.base)} has no variable or param of that name",
                expr.span, expected="one of: " + ", ".join(sorted(names)), hint=did_you_mean(old, names))
        if new != old and new in names and new not in dict(expr.renames):
            raise EbmError(f"cannot rename '{old}' to '{new}': {_label(expr.base)} already has a '{new}'",
                           expr.span, hint="rename to a fresh name (renames apply all at once)")
    targets = [new for _, new in expr.renames]
    for target in targets:
        if targets.count(target) > 1:
            raise EbmError(f"two names are renamed to '{target}'", expr.span,
                           hint="each rename needs its own target name")
    renames = dict(expr.renames)
    variables = {renames.get(k, k): v for k, v in base.variables.items()}
    params = {renames.get(k, k): v for k, v in base.params.items()}
    return _Signature(variables, params, base.terms)


def _label(expr: ast.ModelExpr) -> str:
    if isinstance(expr, ast.ModelRef):
        return f"model '{expr.name}'"
    return "the model"


def _var_text(name: str, info: _VarInfo) -> str:
    dims = f"[{', '.join(map(str, info.shape))}]" if info.shape else ""
    return f"{name}{dims} : {info.domain}"


def _check_composite(decl: ast.ModelDef, models: dict, consts: dict, file: str, source: str,
                     below: set[str] = frozenset()) -> ast.CheckedComposite:
    for ref in _model_refs(decl.expr):
        if ref not in models and ref in below:
            ref_span = next(r.span for r in _model_ref_nodes(decl.expr) if r.name == ref)
            raise EbmError(f"model '{ref}' is used before it is defined", ref_span, source=source,
                           hint="a model can only use models defined above it; move this line down")
    try:
        expr = _check_weights(decl.expr, consts)
        _top_signature(expr, models, {})
    except EbmError as err:
        raise err.with_source(source) if err.span is not None and err.span.file == file else err
    return ast.CheckedComposite(decl.name, expr, decl.span, dict(consts))


def _check_weights(expr: ast.ModelExpr, consts: dict) -> ast.ModelExpr:
    """Type each `A ^ w`: a number, a const expression, or one name (a learnable weight)."""
    if isinstance(expr, ast.ModelRef):
        return expr
    if isinstance(expr, ast.ModelProduct):
        return dataclasses.replace(expr, factors=tuple(_check_weights(f, consts) for f in expr.factors))
    base = _check_weights(expr.base, consts)
    if not isinstance(expr, ast.ModelPower):
        return dataclasses.replace(expr, base=base)
    weight = expr.weight
    if isinstance(weight, ast.Name) and weight.name not in consts and weight.name not in BUILTIN_CONSTANTS:
        return dataclasses.replace(expr, base=base, weight=dataclasses.replace(weight, ty=_T_REAL))
    for node in _walk(weight):
        if isinstance(node, ast.Name) and node.name not in consts and node.name not in BUILTIN_CONSTANTS:
            raise EbmError(
                f"'{node.name}' in a weight expression is not a const", node.span,
                expected="a number, a const expression, or a single name for a learnable weight",
                hint=f"write `^ {node.name}` alone for a learnable weight")
    try:
        with np.errstate(all="ignore"):
            value = _to_python(_Evaluator(consts, {}).value_of(weight))
    except _TooLarge:
        raise EbmError("weight expression too large to evaluate", weight.span) from None
    if np.ndim(value) != 0:
        raise EbmError("an expert's weight must be a single number", weight.span)
    if value < 0:
        raise EbmError(f"an expert's weight must not be negative, got {value:g}", weight.span,
                       hint="a weight is an inverse temperature: 0 switches the expert off, 1 leaves it as is")
    return dataclasses.replace(expr, base=base, weight=_number(float(value), weight.span))
