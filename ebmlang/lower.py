"""Lowering: a checked program becomes a factor graph (`ir.FactorGraph`).

Each energy term turns into one or more factor templates. The term's index set
becomes a numpy grid of index tuples (one row per ground factor); every
variable reference becomes a `Slot` whose flat indices are computed over that
grid in one vectorised numpy expression. Nothing here loops over ground factors.

Three ideas carry most of the weight:

* **Static values.** Index arithmetic, consts and `pi` evaluate while lowering:
  an expression lowers either to a numpy array (a compile-time value, shaped
  `[num_ground or 1, *inner]` like an IR leaf) or to an IR `Node`. Where the two
  meet, the array becomes a `Constant` or `Data` leaf.
* **Additive splitting.** A body that is a sum of parts (after distributing
  products and scalings over sums, and promoting a top-level `sum(...)` to extra
  ground indices) becomes one template per part, so `-J*s[i,j]*(s[i+1,j] +
  s[i,j+1])` is two pairwise templates and block Gibbs can colour the lattice.
* **Index sets as flat expansions.** A binding's range may depend on enclosing
  indices; rows are expanded with `np.repeat`, filtered by `where`, and, inside
  a reduction that stays in the factor, padded into an inner axis with a mask.

Composite models (`model C = A * B`) lower each expert and combine them with
`ebmlang.compose`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ebmlang import ast
from ebmlang import ir
from ebmlang.ast import Span
from ebmlang.builtin_names import BUILTIN_CONSTANTS
from ebmlang.compose import compose, observe, rename
from ebmlang.errors import EbmError, did_you_mean

# A body splits into at most this many additive parts; beyond it the term stays whole.
MAX_ADDITIVE_PARTS = 16

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


# --------------------------------------------------------------------------
# Entry point


def lower_program(checked: ast.CheckedProgram, model: str | None = None) -> ir.FactorGraph:
    """Lower one model of a checked program (its default model when `model` is None)."""
    return _ProgramLowerer(checked).lower(checked.default if model is None else model, None)


def lower_model(model: ast.CheckedModel) -> ir.FactorGraph:
    """Lower one plain (non-composite) checked model."""
    return _ModelLowerer(model).lower()


# --------------------------------------------------------------------------
# Programs and composites


class _ProgramLowerer:
    """Lowers models by name, each once; composites recurse into their experts."""

    def __init__(self, checked: ast.CheckedProgram):
        self.checked = checked
        self.done: dict[str, ir.FactorGraph] = {}
        self.in_progress: list[str] = []

    def lower(self, name: str, span: Span | None) -> ir.FactorGraph:
        if name in self.done:
            return self.done[name]
        models = self.checked.models
        if name not in models:
            raise EbmError(
                f"no model named '{name}'", span, source=self.checked.source,
                expected="one of: " + ", ".join(sorted(models)) if models else "a model",
                hint=did_you_mean(name, models),
            )
        if name in self.in_progress:
            cycle = " -> ".join(self.in_progress + [name])
            raise EbmError(f"model definitions form a cycle: {cycle}", span, source=self.checked.source)
        self.in_progress.append(name)
        try:
            entry = models[name]
            if isinstance(entry, ast.CheckedComposite):
                graph = self._lower_composite(entry)
            else:
                graph = lower_model(entry)
        finally:
            self.in_progress.pop()
        self.done[name] = graph
        return graph

    # -- composites
    def _source_of(self, file: str) -> str:
        if file == self.checked.file:
            return self.checked.source
        for entry in self.checked.models.values():
            if isinstance(entry, ast.CheckedModel) and entry.file == file:
                return entry.source
        return ""

    def _lower_composite(self, composite: ast.CheckedComposite) -> ir.FactorGraph:
        source = self._source_of(composite.span.file)
        graph = self._lower_model_expr(composite.expr, composite, source, top_name=composite.name)
        return dataclasses.replace(graph, name=composite.name, file=composite.span.file, source=source)

    def _lower_model_expr(
        self, expr: ast.ModelExpr, composite: ast.CheckedComposite, source: str, top_name: str
    ) -> ir.FactorGraph:
        if isinstance(expr, ast.ModelObserve):
            # `(A * B) | y` observes a variable of the product; no extra expert level
            base = self._lower_model_expr(expr.base, composite, source, top_name)
            return observe(base, expr.names, span=expr.span, source=source)
        experts = _flatten_product(expr, composite, source)
        lowered: list[tuple[str, ir.FactorGraph, float | str]] = []
        used: dict[str, int] = {}
        for leaf, label, weight in experts:
            graph = self._lower_leaf(leaf, composite, source)
            used[label] = used.get(label, 0) + 1
            unique = label if used[label] == 1 else f"{label}_{used[label]}"
            lowered.append((unique, graph, weight))
        return compose(lowered, top_name, span=expr.span, source=source)

    def _lower_leaf(self, leaf: ast.ModelExpr, composite: ast.CheckedComposite, source: str) -> ir.FactorGraph:
        if isinstance(leaf, ast.ModelRef):
            return self.lower(leaf.name, leaf.span)
        if isinstance(leaf, ast.ModelRename):
            base = self._lower_leaf(leaf.base, composite, source)
            return rename(base, dict(leaf.renames), span=leaf.span, source=source)
        if isinstance(leaf, ast.ModelObserve):
            base = self._lower_leaf(leaf.base, composite, source)
            return observe(base, leaf.names, span=leaf.span, source=source)
        # a parenthesised product or power used under a rename/observe
        return self._lower_model_expr(leaf, composite, source, top_name=_model_label(leaf))


def _model_label(expr: ast.ModelExpr) -> str:
    """The expert name of a model expression: the model it refers to, through renames/observes."""
    if isinstance(expr, ast.ModelRef):
        return expr.name
    if isinstance(expr, (ast.ModelRename, ast.ModelObserve, ast.ModelPower)):
        return _model_label(expr.base)
    if isinstance(expr, ast.ModelProduct):
        return "_".join(_model_label(f) for f in expr.factors)
    return "expert"


def _flatten_product(
    expr: ast.ModelExpr, composite: ast.CheckedComposite, source: str
) -> list[tuple[ast.ModelExpr, str, float | str]]:
    """`(A * B) ^ 2 * C ^ w` -> [(A, 2.0), (B, 2.0), (C, "w")]: weights distribute over products."""

    def visit(node: ast.ModelExpr, scale: float, learnable: str | None):
        if isinstance(node, ast.ModelProduct):
            for factor in node.factors:
                yield from visit(factor, scale, learnable)
            return
        if isinstance(node, ast.ModelPower):
            weight = _model_weight(node.weight, composite, source)
            if isinstance(weight, str):
                if learnable is not None or scale != 1.0:
                    raise EbmError(
                        "an expert can carry one weight: a number or a single learnable param",
                        node.span, source=source,
                        hint=f"fold the numbers into the initial value of '{weight}'",
                    )
                yield from visit(node.base, scale, weight)
            else:
                if learnable is not None:
                    raise EbmError(
                        "an expert can carry one weight: a number or a single learnable param",
                        node.span, source=source,
                        hint=f"fold the number into the initial value of '{learnable}'",
                    )
                yield from visit(node.base, scale * weight, learnable)
            return
        yield node, _model_label(node), (learnable if learnable is not None else scale)

    return list(visit(expr, 1.0, None))


def _model_weight(expr: ast.Expr, composite: ast.CheckedComposite, source: str) -> float | str:
    """A number (or const) is a fixed weight; any other name is a learnable weight param."""
    if isinstance(expr, ast.Name) and expr.name not in composite.consts and expr.name not in BUILTIN_CONSTANTS:
        return expr.name
    try:
        value = evaluate_constant(expr, composite.consts)
    except EbmError as err:
        raise err.with_source(source)
    array = np.asarray(value, dtype=float)
    if array.shape != ():
        raise EbmError("an expert's weight must be a scalar", expr.span, source=source)
    return float(array)


# --------------------------------------------------------------------------
# Compile-time evaluation of declaration expressions (shapes, domains, param values)


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


# --------------------------------------------------------------------------
# Scopes and index sets


@dataclass(frozen=True)
class _Scope:
    """Where an expression is lowered: the index variables bound so far.

    depth: number of enclosing reductions that stay inside the factor.
    indices: index name -> int64 array of ndim depth+1, broadcastable to
      [num_ground, *inner] (size-1 axes where an index does not vary).
    valid: bool array (same convention) marking real positions, False on the
      padding of inner axes whose length varies; None when all are real.
    """

    depth: int
    indices: dict[str, np.ndarray]
    valid: np.ndarray | None = None

    @property
    def leaf_shape(self) -> tuple[int, ...]:
        return (1,) * (self.depth + 1)


_ROOT_SCOPE = _Scope(0, {})


def _free_index_names(exprs: Iterable[ast.Expr | None], bound: dict[str, np.ndarray], own: set[str]) -> list[str]:
    names: list[str] = []
    for expr in exprs:
        for node in _walk_ast(expr):
            if isinstance(node, ast.Name) and node.name in bound and node.name not in own and node.name not in names:
                names.append(node.name)
    return names


def _walk_ast(node):
    """Every AST expression node under `node` (parents first)."""
    if node is None:
        return
    if isinstance(node, (ast.Expr, ast.IndexSet)):
        yield node
    if dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            if f.name in ("span", "ty", "func_span"):
                continue
            value = getattr(node, f.name)
            if isinstance(value, tuple):
                for item in value:
                    if dataclasses.is_dataclass(item):
                        yield from _walk_ast(item)
            elif dataclasses.is_dataclass(value):
                yield from _walk_ast(value)


# --------------------------------------------------------------------------
# Additive splitting (on the typed AST, before lowering)


@dataclass(frozen=True)
class _Part:
    """One additive part of a body: `expr` summed over the extra index sets `promoted`."""

    expr: ast.Expr
    promoted: tuple[ast.IndexSet, ...] = ()


class _Splitter:
    """Splits a body into additive parts; None when it would exceed the cap."""

    def __init__(self, mentions_variables: Callable[[ast.Expr], bool], cap: int = MAX_ADDITIVE_PARTS):
        self.mentions_variables = mentions_variables
        self.cap = cap
        self.fresh = 0

    def split(self, expr: ast.Expr) -> list[_Part] | None:
        parts = self._split(expr)
        return parts if parts is not None and len(parts) <= self.cap else None

    def _split(self, expr: ast.Expr) -> list[_Part] | None:
        if not self.mentions_variables(expr):
            return [_Part(expr)]  # a compile-time or params-only factor: no reason to split it
        if isinstance(expr, ast.Binary) and expr.op in ("+", "-"):
            left, right = self._split(expr.left), self._split(expr.right)
            if left is None or right is None or len(left) + len(right) > self.cap:
                return None
            if expr.op == "-":
                right = [self._negate(p, expr.span) for p in right]
            return left + right
        if isinstance(expr, ast.Unary) and expr.op in ("-", "+"):
            parts = self._split(expr.operand)
            if parts is None or expr.op == "+":
                return parts
            return [self._negate(p, expr.span) for p in parts]
        if isinstance(expr, ast.Binary) and expr.op == "*":
            left, right = self._split(expr.left), self._split(expr.right)
            if left is None or right is None or len(left) * len(right) > self.cap:
                return None
            return [self._product(lp, rp, expr) for lp in left for rp in right]
        if isinstance(expr, ast.Binary) and expr.op == "/" and not self.mentions_variables(expr.right):
            left = self._split(expr.left)
            if left is None:
                return None
            return [_Part(dataclasses.replace(expr, left=p.expr), p.promoted) for p in left]
        if isinstance(expr, ast.Reduce) and expr.op == "sum" and self.mentions_variables(expr.body):
            body = self._split(expr.body)
            if body is None:
                return None
            return [_Part(p.expr, (expr.index_set,) + p.promoted) for p in body]
        return [_Part(expr)]

    @staticmethod
    def _negate(part: _Part, span: Span) -> _Part:
        if isinstance(part.expr, ast.Unary) and part.expr.op == "-":
            return _Part(part.expr.operand, part.promoted)
        return _Part(ast.Unary(span, "-", part.expr, ty=getattr(part.expr, "ty", None)), part.promoted)

    def _product(self, left: _Part, right: _Part, expr: ast.Binary) -> _Part:
        # Two promoted sums may bind the same index name (`sum(i) a[i] * sum(i) b[i]`):
        # the right one's is renamed to a fresh name that no source program can spell.
        taken = {b.name for s in left.promoted for b in s.bindings}
        right_expr, right_sets = right.expr, right.promoted
        for name in [b.name for s in right.promoted for b in s.bindings if b.name in taken]:
            self.fresh += 1
            fresh = f"{name}#{self.fresh}"
            right_expr = _rename_index(right_expr, name, fresh)
            right_sets = tuple(_rename_index(s, name, fresh) for s in right_sets)
        product = dataclasses.replace(expr, left=left.expr, right=right_expr)
        return _Part(product, left.promoted + right_sets)


def _split_conjunction(condition: ast.Expr, cap: int = MAX_ADDITIVE_PARTS) -> list[_Part]:
    """`a and b` -> [a, b]: a constraint is violated when any conjunct is."""
    parts: list[ast.Expr] = []

    def visit(expr: ast.Expr) -> None:
        if isinstance(expr, ast.Binary) and expr.op == "and":
            visit(expr.left)
            visit(expr.right)
        elif isinstance(expr, ast.Indicator):
            visit(expr.condition)
        else:
            parts.append(expr)

    visit(condition)
    return [_Part(p) for p in parts] if len(parts) <= cap else [_Part(condition)]


def _rename_index(node, old: str, new: str):
    """A copy of an AST subtree with index name `old` renamed to `new`."""
    if isinstance(node, ast.Name):
        return dataclasses.replace(node, name=new) if node.name == old else node
    if isinstance(node, ast.Binding):
        renamed = dataclasses.replace(node, start=_rename_index(node.start, old, new),
                                      stop=_rename_index(node.stop, old, new))
        return dataclasses.replace(renamed, name=new) if node.name == old else renamed
    if not dataclasses.is_dataclass(node) or isinstance(node, (ast.Span, ast.Type)):
        return node
    changes = {}
    for f in dataclasses.fields(node):
        if f.name in ("span", "ty", "func_span"):
            continue
        value = getattr(node, f.name)
        if isinstance(value, tuple):
            changes[f.name] = tuple(_rename_index(v, old, new) for v in value)
        elif dataclasses.is_dataclass(value):
            changes[f.name] = _rename_index(value, old, new)
    return dataclasses.replace(node, **changes) if changes else node


# --------------------------------------------------------------------------
# Plain models


Value = np.ndarray | ir.Node  # a compile-time array or an IR node


class _ModelLowerer:
    """Lowers one CheckedModel. Expression handlers are found by node class name
    (`lower_Binary`, ...); anything else goes to `unsupported`."""

    def __init__(self, model: ast.CheckedModel):
        self.model = model
        self.consts = dict(model.consts)
        self.variables: dict[str, ir.VariableGroup] = {}
        self.params: dict[str, ir.ParamGroup] = {}
        self.externs: set[str] = set()

    # -- errors
    def error(self, message: str, span: Span | None, **kwargs) -> EbmError:
        return EbmError(message, span, source=self.model.source, **kwargs)

    def const(self, expr: ast.Expr) -> int | float | np.ndarray:
        try:
            return evaluate_constant(expr, self.consts)
        except EbmError as err:
            raise err.with_source(self.model.source)

    def const_int(self, expr: ast.Expr, what: str) -> int:
        value = np.asarray(self.const(expr))
        if value.shape != () or not float(value).is_integer():
            raise self.error(f"{what} must be an integer", expr.span, expected="an integer constant")
        return int(value)

    # -- the model
    def lower(self) -> ir.FactorGraph:
        terms_decls = []
        for decl in self.model.decls:
            if isinstance(decl, ast.VarDecl):
                self.variables[decl.name] = self.lower_variable(decl)
            elif isinstance(decl, ast.ParamDecl):
                self.params[decl.name] = self.lower_param(decl)
            elif isinstance(decl, ast.ExternDecl):
                self.externs.add(decl.name)
            elif isinstance(decl, (ast.EnergyDecl, ast.ConstraintDecl)):
                terms_decls.append(decl)
        templates: list[ir.FactorTemplate] = []
        for decl in terms_decls:
            templates.extend(self.lower_term(decl))
        return ir.FactorGraph(
            name=self.model.name,
            variables=dict(self.variables),
            params=dict(self.params),
            templates=tuple(templates),
            terms=tuple(d.name for d in terms_decls),
            externs=frozenset(self.externs),
            file=self.model.file,
            source=self.model.source,
        )

    def lower_shape(self, dims: tuple[ast.Expr, ...], what: str) -> tuple[int, ...]:
        shape = tuple(self.const_int(d, f"a dimension of {what}") for d in dims)
        for dim, size in zip(dims, shape):
            if size <= 0:
                raise self.error(f"a dimension of {what} is {size}", dim.span, expected="a positive size")
        return shape

    def lower_variable(self, decl: ast.VarDecl) -> ir.VariableGroup:
        spec = decl.domain
        args = [self.const(a) for a in spec.args]
        if spec.kind == "real":
            domain = ir.REAL
        elif spec.kind == "bounded":
            low, high = float(args[0]), float(args[1])
            if not low < high:
                raise self.error(f"empty interval [{low:g}, {high:g}]", spec.span, expected="low < high")
            domain = ir.bounded(low, high)
        elif spec.kind == "binary":
            domain = ir.BINARY
        elif spec.kind == "spin":
            domain = ir.SPIN
        elif spec.kind == "categorical":
            k = self.const_int(spec.args[0], "the number of categories")
            if k < 1:
                raise self.error(f"categorical({k}) has no values", spec.span, expected="at least 1 category")
            domain = ir.categorical(k)
        elif spec.kind == "integer":
            first = self.const_int(spec.args[0], "the start of an integer domain")
            stop = self.const_int(spec.args[1], "the end of an integer domain")
            if stop <= first:
                raise self.error(f"integer in {first}..{stop} has no values", spec.span,
                                 hint="ranges are half-open: a..b holds a, a+1, ..., b-1")
            domain = ir.Domain("integer", num_values=stop - first, first_value=first)
        else:
            raise self.error(f"unknown domain '{spec.kind}'", spec.span)
        shape = self.lower_shape(decl.shape, f"'{decl.name}'")
        return ir.VariableGroup(decl.name, shape, domain, decl.role == "observed", decl.span)

    def lower_param(self, decl: ast.ParamDecl) -> ir.ParamGroup:
        shape = self.lower_shape(decl.shape, f"'{decl.name}'")
        init = decl.init
        if init is None:
            param_init = ir.ParamInit("value", value=np.zeros(shape))
        elif isinstance(init, ast.ParamValue):
            value = np.asarray(self.const(init.value), dtype=float)
            try:
                value = np.broadcast_to(value, shape).copy()
            except ValueError:
                raise self.error(
                    f"a value of shape {list(value.shape)} does not fit param '{decl.name}' of shape {list(shape)}",
                    init.span, expected="a scalar (broadcast) or an array of the param's shape",
                ) from None
            param_init = ir.ParamInit("value", value=value)
        elif isinstance(init, ast.ParamDistribution):
            if init.dist not in ("normal", "uniform"):
                raise self.error(f"unknown initial distribution '{init.dist}'", init.span,
                                 expected="normal(mean, std) or uniform(low, high)",
                                 hint=did_you_mean(init.dist, ("normal", "uniform")))
            args = tuple(float(self.const(a)) for a in init.args)
            if len(args) != 2:
                raise self.error(f"{init.dist} takes 2 arguments, got {len(args)}", init.span)
            param_init = ir.ParamInit(init.dist, args=args)
        elif isinstance(init, ast.NeuralSpec):
            sizes = tuple(self.const_int(s, "an mlp layer size") for s in init.sizes)
            if len(sizes) < 2 or min(sizes) < 1:
                raise self.error("an mlp needs at least an input and an output size", init.span,
                                 expected="mlp(IN -> HIDDEN -> OUT)")
            param_init = ir.ParamInit("mlp", layer_sizes=sizes, activation=init.activation)
        else:
            raise self.error(f"unsupported initialisation of '{decl.name}'", decl.span)
        bounds = None
        if decl.bounds is not None:
            bounds = (float(self.const(decl.bounds[0])), float(self.const(decl.bounds[1])))
        return ir.ParamGroup(decl.name, shape, param_init, decl.span, bounds)

    # -- terms
    def mentions_variables(self, expr: ast.Expr) -> bool:
        return any(isinstance(n, ast.Name) and n.name in self.variables for n in _walk_ast(expr))

    def lower_term(self, decl: ast.EnergyDecl | ast.ConstraintDecl) -> list[ir.FactorTemplate]:
        is_constraint = isinstance(decl, ast.ConstraintDecl)
        body = decl.condition if is_constraint else decl.body
        if is_constraint:
            parts = _split_conjunction(body)
        else:
            parts = _Splitter(self.mentions_variables).split(body) or [_Part(body)]
        scope, num_ground, names = _ROOT_SCOPE, 1, []
        if decl.index_set is not None:
            scope, num_ground = self.promote(decl.index_set, scope, num_ground)
            names = [b.name for b in decl.index_set.bindings]
        templates = []
        for k, part in enumerate(parts):
            part_scope, part_ground, part_names = scope, num_ground, list(names)
            for index_set in part.promoted:
                part_scope, part_ground = self.promote(index_set, part_scope, part_ground)
                part_names += [b.name for b in index_set.bindings]
            if part_ground == 0:
                continue  # an empty index set: the part contributes nothing
            node = self.as_node(self.lower_expr(part.expr, part_scope), part.expr.span)
            if is_constraint:
                node = ir.Apply(part.expr.span, "violation", (node,))
            index_values = (
                np.stack([np.broadcast_to(part_scope.indices[n], (part_ground,)) for n in part_names], axis=1)
                if part_names else np.zeros((part_ground, 0), dtype=np.int64)
            )
            templates.append(ir.FactorTemplate(
                name=decl.name if len(parts) == 1 else f"{decl.name}#{k}",
                term=decl.name,
                body=node,
                num_ground=int(part_ground),
                index_names=tuple(part_names),
                index_values=index_values.astype(np.int64, copy=False),
                is_constraint=is_constraint,
                span=decl.span if len(parts) == 1 else part.expr.span,
            ))
        return templates

    # -- index sets
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
            total = int(counts.sum())
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

    def lower_Call(self, expr: ast.Call, scope: _Scope) -> Value:
        func = expr.func
        if func in self.params and self.params[func].is_neural:
            neural = self.neural(expr, scope)
            out = self.params[func].init.layer_sizes[-1]
            if out != 1:
                raise self.error(f"mlp '{func}' has {out} outputs; select one", expr.span,
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
            raise self.error(f"mlp '{expr.func}' takes {expected} inputs but gets {features}", expr.span,
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
        flat = np.asarray(flat, dtype=np.int64)
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

    def select_output(self, expr: ast.Index, scope: _Scope) -> ir.Node:
        """`f(x)[y]`: one entry of an mlp's output vector."""
        call = expr.base
        out = self.params[call.func].init.layer_sizes[-1]
        if len(expr.indices) != 1:
            raise self.error(f"the output of mlp '{call.func}' takes one index", expr.span)
        neural = self.neural(call, scope)
        index_expr = expr.indices[0]
        index = self.lower_expr(index_expr, scope)
        if isinstance(index, ir.Node):
            self.check_discrete_selector(index, out, index_expr, f"the {out} outputs of mlp '{call.func}'")
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
        values = domain.values
        if values.min() < 0 or values.max() > size - 1:
            raise self.error(
                f"'{node.group}' takes values {values.min():g}..{values.max():g} but selects among {what}",
                expr.span, expected=f"values in 0..{size - 1}",
                hint=f"declare it categorical({size})")


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
