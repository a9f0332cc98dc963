"""Types inside one model: the expression checker.

`ExprChecker` types every expression node, one method per node kind (`check_<Kind>`),
and rejects what cannot mean anything (arithmetic on categories, comparisons of real
variables, params where a compile-time value is needed). The names it resolves come
from check_scope.py (`Scope`, `Symbol`, `ExprContext`), re-exported here. Declarations
themselves are checked in check_decls.py.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ebmlang.errors import EbmError, did_you_mean
from ebmlang.language import ast
from ebmlang.language.ast import Span, Type
from ebmlang.language.builtin_names import BUILTIN_CONSTANTS, BUILTIN_FUNCTIONS, DISTRIBUTIONS, INTEGER_PRESERVING
from ebmlang.language.check_scope import (  # noqa: F401 -- folded_number, walk_expr re-exported
    T_INDEX,
    T_REAL,
    AlreadyReported,
    ExprContext,
    Scope,
    Symbol,
    _mentions,
    _mentions_kind,
    folded_number,
    hidden_note,
    walk_expr,
)
from ebmlang.language.consteval import COMPARE_FUNCTIONS, IndexSetTooLarge, describe_expr, evaluate_constant


class ExprChecker:
    """Types expressions of one model; one method per node kind (`check_<Kind>`)."""

    def __init__(self, scope: Scope, max_ground: int):
        self.scope = scope
        self.max_ground = max_ground

    # -- entry points
    def check(self, expr: ast.Expr, ctx: ExprContext) -> ast.Expr:
        handler = getattr(self, f"check_{type(expr).__name__}", None)
        if handler is None:
            raise EbmError(f"a {type(expr).__name__} cannot appear here", expr.span)
        return handler(expr, ctx)

    def scalar(self, expr: ast.Expr, ctx: ExprContext, role: str) -> ast.Expr:
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

    def condition(self, expr: ast.Expr, ctx: ExprContext, role: str) -> ast.Expr:
        checked = self.check(expr, ctx)
        if checked.ty.kind != "bool":
            raise EbmError(f"{role} must be a condition", expr.span,
                           expected="a comparison such as a == b, a < b, combined with and/or/not")
        return checked

    def integer(self, expr: ast.Expr, ctx: ExprContext, role: str) -> ast.Expr:
        """A compile-time integer expression (indices, range bounds, shape sizes)."""
        checked = self.scalar(expr, ctx, role)
        if checked.ty.kind != "index":
            raise EbmError(f"{role} must be an integer known at compile time", expr.span,
                           expected="integer numbers, integer consts, index variables and + - * / % on them",
                           hint="`/` on integers is floor division; use an integer const instead of a real")
        return checked

    # -- leaves
    def check_Number(self, expr: ast.Number, ctx: ExprContext) -> ast.Expr:
        return dataclasses.replace(expr, ty=T_INDEX if expr.is_integer else T_REAL)

    def check_Name(self, expr: ast.Name, ctx: ExprContext) -> ast.Expr:
        name = expr.name
        if name in ctx.index_names():
            return dataclasses.replace(expr, ty=T_INDEX)
        symbol = self.lookup(name, expr.span, ctx)
        if symbol.kind == "builtin":
            return dataclasses.replace(expr, ty=T_REAL)
        if symbol.kind == "const":
            value = np.asarray(symbol.value)
            if value.ndim:
                if ctx.allow_arrays:
                    kind = "vector"
                    return dataclasses.replace(expr, ty=Type(kind, False, int(value.size)))
                raise EbmError(
                    f"const '{name}' is an array of shape {list(value.shape)}; index it", expr.span,
                    hint=f"e.g. {name}[{', '.join('ijk'[:value.ndim]) if value.ndim <= 3 else '...'}]")
            return dataclasses.replace(expr, ty=T_INDEX if value.dtype.kind in "iub" else T_REAL)
        if symbol.kind == "extern":
            raise EbmError(f"extern '{name}' is a function; call it", expr.span, hint=f"e.g. {name}(x[i])")
        if symbol.is_mlp:
            called = "a function" if symbol.written_network else "a network"
            raise EbmError(f"{symbol.describe()} is {called}; call it", expr.span, hint=f"e.g. {name}(x)[k]")
        self.require_runtime(symbol, expr.span, ctx)
        if symbol.shape:
            dims = ", ".join(str(d) for d in symbol.shape)
            raise EbmError(
                f"{symbol.describe()} has shape [{dims}]; index it", expr.span,
                expected=f"{name}[{', '.join('ijkl'[:len(symbol.shape)]) if len(symbol.shape) <= 4 else '...'}]",
                hint="a whole variable group can only be passed to an mlp" if symbol.kind == "variable" else None)
        return dataclasses.replace(expr, ty=self.element_type(symbol))

    def lookup(self, name: str, span: Span, ctx: ExprContext) -> Symbol:
        symbol = self.scope.symbols.get(name)
        if symbol is None:
            if name in BUILTIN_CONSTANTS:
                return Symbol("builtin", name, span, value=BUILTIN_CONSTANTS[name])
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
                f"unknown name '{name}'", span, expected="a declared const, param, variable or index",
                **(hidden_note(self.scope, name, span) or {"hint": did_you_mean(name, candidates)}))
        if symbol.broken:
            raise AlreadyReported()
        self.scope.used.add(name)
        return symbol

    def require_runtime(self, symbol: Symbol, span: Span, ctx: ExprContext) -> None:
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
    def element_type(symbol: Symbol) -> Type:
        if symbol.kind == "variable":
            if symbol.domain.is_discrete:
                return Type("discrete", True)
            return Type("real", True)
        return T_REAL

    # -- indexing
    def check_Index(self, expr: ast.Index, ctx: ExprContext) -> ast.Expr:
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

    def index_array(self, expr: ast.Index, symbol: Symbol, ctx: ExprContext) -> ast.Expr:
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
            if not ctx.compile_time and _mentions_kind(index, self.scope, ("variable",)):
                indices.append(self.variable_index(index, shape[axis], axis, symbol, ctx))
                continue
            checked = self.integer(index, index_ctx, "an index")
            self.check_constant_index(checked, shape[axis], axis, symbol.describe(), ctx)
            indices.append(checked)
        base = dataclasses.replace(expr.base, ty=Type("vector", symbol.kind == "variable",
                                                      int(np.prod(shape, dtype=np.int64))))
        if symbol.kind == "const":
            value = np.asarray(symbol.value)
            ty = T_INDEX if value.dtype.kind in "iub" else T_REAL
        else:
            ty = self.element_type(symbol)
        if any(i.ty.depends_on_variables for i in indices):   # an entry picked by variables
            ty = Type("real" if ty.kind == "index" else ty.kind, True)
        return dataclasses.replace(expr, base=base, indices=tuple(indices), ty=ty)

    def variable_index(self, index: ast.Expr, size: int, axis: int, symbol: Symbol, ctx: ExprContext) -> ast.Expr:
        """`mu[z[n]]`, `A[z[t], z[t+1]]`: a discrete variable picks an entry of a const or param."""
        if symbol.kind == "variable":
            raise EbmError(
                f"variable '{symbol.name}' cannot be indexed by a variable", index.span,
                expected="numbers, consts and index variables",
                hint="which variables a term reads must not depend on their values; "
                     "a discrete variable may index a const or a param, e.g. mu[z[n]]")
        checked = self.scalar(index, ctx, "an index")
        if checked.ty.kind != "discrete":
            raise EbmError(
                f"an index must be an integer, but {describe_expr(index)} is real-valued", index.span,
                expected="a discrete variable (categorical, integer, binary, spin), index variables "
                         "and + - * % on them",
                hint="declare the variable categorical(K) to pick one of K entries")
        self.check_selector(checked, size, f"dimension {axis + 1} of {symbol.describe()} has size {size} "
                                           f"(indices 0 to {size - 1})")
        return checked

    def check_selector(self, index: ast.Expr, size: int, what: str) -> None:
        """A discrete variable read as an index must take values 0..size-1 only (arithmetic on
        variables is bounded when the model is lowered)."""
        selector = self.discrete_symbol(index)
        if selector is None:
            return
        low, high = selector.domain.value_range
        if low < 0 or high >= size:
            hint = ("indices count from 0; a spin s picks entry 0 or 1 as [s == 1]" if low < 0 else
                    f"declare it categorical({size})" if selector.domain.kind == "categorical" else
                    f"shift it into 0 to {size - 1}, e.g. {selector.name}[...] - {int(low)}" if low > 0 and
                    high - low < size else None)
            raise EbmError(
                f"{selector.describe()} takes values from {int(low)} to {int(high)}, but {what}", index.span,
                expected=f"a variable whose values lie from 0 to {size - 1}", hint=hint,
                notes=[(selector.span, f"'{selector.name}' declared here")])

    def check_constant_index(self, index: ast.Expr, size: int, axis: int, what: str, ctx: ExprContext) -> None:
        """An index without index variables is checked against the dimension right away."""
        if _mentions(index, ctx.index_names() | set(self.scope.all_index_names)):
            return
        try:
            value = evaluate_constant(index, self.scope.consts, max_ground=self.max_ground)
        except IndexSetTooLarge:
            return
        if np.ndim(value) == 0 and not 0 <= int(value) < size:
            raise EbmError(
                f"index {int(value)} is out of range for dimension {axis + 1} of {what} (size {size})",
                index.span, expected=f"an index in 0..{size}",
                hint="indices start at 0" if int(value) == size else None)

    def select(self, expr: ast.Index, vector: ast.Expr, ctx: ExprContext) -> ast.Expr:
        """`f(x)[k]`: one entry of an mlp's output vector."""
        size = vector.ty.size
        if len(expr.indices) != 1:
            raise EbmError(f"an mlp output is a vector of {size} values and takes one index", expr.span)
        index = self.scalar(expr.indices[0], ctx, "an output index")
        kind = index.ty.kind
        if kind == "real":
            raise EbmError("an output index must be an integer or a discrete variable", index.span)
        if kind == "index":
            self.check_constant_index(index, size, 0, describe_expr(vector), ctx)
        else:
            self.check_selector(index, size, f"{describe_expr(vector)} has only {size} outputs")
        depends = vector.ty.depends_on_variables or index.ty.depends_on_variables
        return dataclasses.replace(expr, base=vector, indices=(index,), ty=Type("real", depends))

    def discrete_symbol(self, expr: ast.Expr) -> Symbol | None:
        """The discrete variable an expression reads directly (`y` or `x[i, j]`), if any."""
        base = expr.base if isinstance(expr, ast.Index) else expr
        if isinstance(base, ast.Name):
            symbol = self.scope.symbols.get(base.name)
            if symbol is not None and symbol.kind == "variable" and symbol.domain.is_discrete:
                return symbol
        return None

    def categorical_symbol(self, expr: ast.Expr) -> Symbol | None:
        """The categorical variable an expression reads directly, if any."""
        symbol = self.discrete_symbol(expr)
        return symbol if symbol is not None and symbol.domain.kind == "categorical" else None

    # -- calls
    def check_Call(self, expr: ast.Call, ctx: ExprContext) -> ast.Expr:
        func = expr.func
        if expr.keywords:
            raise EbmError("keyword arguments are only for network layers", expr.keywords[0].span,
                           expected=f"positional arguments only: {func}(a, ...)",
                           hint="keywords such as stride= and padding= go in the layers of "
                                "`param f : network([C, H, W] -> conv(8, 3, padding=1) -> ...)`")
        symbol = self.scope.symbols.get(func)
        if symbol is not None and symbol.broken:
            raise AlreadyReported()
        if symbol is not None and (symbol.is_mlp or symbol.is_network):
            self.scope.used.add(func)
            return self.call_mlp(expr, symbol, ctx)
        if symbol is not None and symbol.kind == "extern":
            self.scope.used.add(func)
            return self.call_extern(expr, ctx)
        if func in BUILTIN_FUNCTIONS:
            return self.call_builtin(expr, ctx)
        if symbol is not None:
            raise EbmError(f"{symbol.describe()} is not a function", expr.func_span,
                           hint="index it with [ ] instead" if symbol.shape else None)
        functions = list(BUILTIN_FUNCTIONS) + [n for n, s in self.scope.symbols.items()
                                               if s.is_mlp or s.kind == "extern"]
        hint = did_you_mean(func, functions)
        if func in DISTRIBUTIONS:
            hint = f"a random initialisation is written `param name ~ {func}(a, b)`"
        elif func in ("min", "max"):
            hint = f"{func} is a reduction: {func}(i in 0..N) body"
        hint = hint or "declare a function registered from Python with `extern " + func + "`"
        raise EbmError(
            f"unknown function '{func}'", expr.func_span,
            expected="a built-in function (" + ", ".join(BUILTIN_FUNCTIONS) + "), an mlp param or an extern",
            **(hidden_note(self.scope, func, expr.func_span) or {"hint": hint}))

    def call_builtin(self, expr: ast.Call, ctx: ExprContext) -> ast.Expr:
        if len(expr.args) != 1:
            raise EbmError(f"'{expr.func}' takes one argument, got {len(expr.args)}", expr.span)
        arg = self.scalar(expr.args[0], ctx, f"the argument of {expr.func}")
        self.reject_categorical(arg, f"{expr.func}(...)")
        kind = arg.ty.kind
        if expr.func in INTEGER_PRESERVING and kind in ("index", "discrete"):
            ty = Type(kind, arg.ty.depends_on_variables)
        else:
            ty = Type("real", arg.ty.depends_on_variables)
        return dataclasses.replace(expr, args=(arg,), ty=ty)

    def call_extern(self, expr: ast.Call, ctx: ExprContext) -> ast.Expr:
        if ctx.compile_time:
            raise EbmError(f"extern '{expr.func}' cannot be used in {ctx.purpose}", expr.span,
                           expected=f"{ctx.purpose} known at compile time")
        if not expr.args:
            raise EbmError(f"extern '{expr.func}' needs at least one argument", expr.span)
        args = tuple(self.scalar(a, ctx, f"an argument of {expr.func}") for a in expr.args)
        depends = any(a.ty.depends_on_variables for a in args)
        return dataclasses.replace(expr, args=args, ty=Type("real", depends))

    def call_mlp(self, expr: ast.Call, symbol: Symbol, ctx: ExprContext) -> ast.Expr:
        """`f(x, ...)` for an mlp param or a network extern: whole groups and numbers,
        concatenated into one feature vector (a network reshapes it to its input shape)."""
        self.require_runtime(symbol, expr.func_span, ctx)
        what = symbol.describe()
        if symbol.is_network and ctx.compile_time:
            raise EbmError(f"{what} cannot be used in {ctx.purpose}", expr.span,
                           expected=f"{ctx.purpose} known at compile time")
        args: list[ast.Expr] = []
        features = 0
        for arg in expr.args:
            group = self.scope.symbols.get(arg.name) if isinstance(arg, ast.Name) else None
            if (group is not None and group.kind == "variable" and group.shape
                    and arg.name not in ctx.index_names()):
                if group.broken:
                    raise AlreadyReported()
                self.scope.used.add(arg.name)
                size = int(np.prod(group.shape, dtype=np.int64))
                args.append(dataclasses.replace(arg, ty=Type("vector", True, size)))
                features += size
                continue
            checked = self.check(arg, ctx)
            if checked.ty.kind == "vector":
                raise EbmError(f"an argument of {what} must be a number or a whole variable group",
                               arg.span, hint="networks cannot be chained inside a .ebm file; use one network")
            checked = self.scalar(arg, ctx, f"an argument of {what}")
            args.append(checked)
            features += 1
        if not args:
            raise EbmError(f"{what} needs inputs", expr.span)
        if features != symbol.layers[0]:
            shape = f" (shape [{', '.join(map(str, symbol.shape))}])" if symbol.has_input_shape else ""
            raise EbmError(
                f"{what} takes {symbol.layers[0]} inputs{shape} but is given {features}", expr.span,
                expected=f"arguments with {symbol.layers[0]} values in total (a group x[D] counts D)",
                notes=[(symbol.span, f"'{symbol.name}' declared with input size {symbol.layers[0]}{shape}")])
        depends = any(a.ty.depends_on_variables for a in args)
        return dataclasses.replace(expr, args=tuple(args), ty=Type("vector", depends, symbol.layers[-1]))

    # -- operators
    def check_Unary(self, expr: ast.Unary, ctx: ExprContext) -> ast.Expr:
        if expr.op == "not":
            operand = self.condition(expr.operand, ctx, "the operand of 'not'")
            return dataclasses.replace(expr, operand=operand, ty=operand.ty)
        operand = self.scalar(expr.operand, ctx, f"the operand of unary '{expr.op}'")
        self.reject_categorical(operand, f"'{expr.op}'")
        kind = "real" if operand.ty.kind == "vector" else operand.ty.kind
        return dataclasses.replace(expr, operand=operand, ty=Type(kind, operand.ty.depends_on_variables))

    def check_Binary(self, expr: ast.Binary, ctx: ExprContext) -> ast.Expr:
        op = expr.op
        if op in ("and", "or"):
            left = self.condition(expr.left, ctx, f"the left side of '{op}'")
            right = self.condition(expr.right, ctx, f"the right side of '{op}'")
            depends = left.ty.depends_on_variables or right.ty.depends_on_variables
            return dataclasses.replace(expr, left=left, right=right, ty=Type("bool", depends))
        if op in COMPARE_FUNCTIONS:
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

    def comparison(self, expr: ast.Binary, ctx: ExprContext) -> ast.Expr:
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
            if op not in ("==", "!=") and self.categorical_symbol(side) is not None:
                raise EbmError(
                    f"'{op}' orders categories, but categorical values are unordered labels", side.span,
                    expected="'==' or '!=' for categorical values",
                    hint="for ordered values declare the variable as `integer in a..b`")
        depends = left.ty.depends_on_variables or right.ty.depends_on_variables
        return dataclasses.replace(expr, left=left, right=right, ty=Type("bool", depends))

    def reject_categorical(self, expr: ast.Expr, what: str) -> None:
        symbol = self.categorical_symbol(expr)
        if symbol is not None:
            raise EbmError(
                f"arithmetic with categorical variable '{symbol.name}' is meaningless ({what})", expr.span,
                expected="a comparison such as [x[i] == y[i]], or a selection f(...)[x]",
                hint="categories are labels; for ordered values use `integer in a..b`")

    def check_Indicator(self, expr: ast.Indicator, ctx: ExprContext) -> ast.Expr:
        condition = self.check(expr.condition, ctx)
        if condition.ty.kind != "bool":
            raise EbmError("an indicator [ ... ] needs a condition", expr.span,
                           expected="a comparison such as [x[i] == y[i]], combined with and/or/not")
        # 0/1 valued: a compile-time integer, a discrete value of discrete variables, or a
        # real when params decide it
        if condition.ty.depends_on_variables:
            ty = Type("discrete", True)
        elif _mentions_kind(condition, self.scope, ("param",)):
            ty = T_REAL
        else:
            ty = T_INDEX
        return dataclasses.replace(expr, condition=condition, ty=ty)

    def check_ArrayLiteral(self, expr: ast.ArrayLiteral, ctx: ExprContext) -> ast.Expr:
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
    def check_Reduce(self, expr: ast.Reduce, ctx: ExprContext) -> ast.Expr:
        index_set, inner = self.index_set(expr.index_set, ctx)
        body = self.scalar(expr.body, inner, f"the body of {expr.op}")
        kind = _numeric_kind(body.ty)
        self.reject_categorical(body, expr.op)
        if expr.op in ("mean", "logsumexp"):
            kind = "real"
        return dataclasses.replace(expr, index_set=index_set, body=body,
                                   ty=Type(kind, body.ty.depends_on_variables))

    def index_set(self, index_set: ast.IndexSet, ctx: ExprContext) -> tuple[ast.IndexSet, ExprContext]:
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

    def check_binding_name(self, binding: ast.Binding, ctx: ExprContext) -> None:
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
