"""The declarations and terms of one model: a file's top level or a `model Name { }` block.

`ModelChecker.run` checks consts first (in order: a const may only use those above
it), then every variable, param and extern, then the energy and constraint terms, so
a term may use names declared below it. It folds the compile-time parts of each
declaration -- shapes, domains, param values and bounds, distribution arguments, mlp
sizes -- into `Number`s, collects one error per declaration and keeps going, and warns
about declarations no term uses. Expressions are typed by check_expr.py; a term's
index bounds are checked by check_bounds.py.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ebmlang.errors import EbmError, did_you_mean
from ebmlang.language import ast, check_network, domains
from ebmlang.language.ast import Span
from ebmlang.language.builtin_names import ACTIVATIONS, BUILTIN_CONSTANTS, DISTRIBUTIONS
from ebmlang.language.check_bounds import IndexBounds
from ebmlang.language.check_expr import (
    AlreadyReported,
    ExprChecker,
    ExprContext,
    Scope,
    Symbol,
    folded_number,
    walk_expr,
)
from ebmlang.language.consteval import IndexSetTooLarge, evaluate_constant

_CONST_CTX = ExprContext("a const value", compile_time=True, allow_arrays=True)


class ModelChecker:
    """Checks the declarations of one model (top level of a file or a `model Name { }` block)."""

    def __init__(self, name: str, file: str, source: str, inherited: dict[str, Symbol] | None = None, *,
                 max_ground: int, hidden: dict[str, Symbol] | None = None):
        self.name = name
        self.file = file
        self.source = source
        self.max_ground = max_ground
        self.scope = Scope(file, source, inherited, hidden)
        self.exprs = ExprChecker(self.scope, max_ground)
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
        except AlreadyReported:
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
            self.scope.symbols[name] = Symbol(kind, name, decl.span, broken=True)
        elif symbol.span == decl.span:
            symbol.broken = True

    def collect_index_names(self, items) -> None:
        for decl in items:
            for value in _decl_exprs(decl):
                for node in walk_expr(value):
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
        self.scope.declare(Symbol("const", decl.name, decl.span, value=value,
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
            return evaluate_constant(expr, self.scope.consts, max_ground=self.max_ground)
        except IndexSetTooLarge:
            raise EbmError("this reduction is too large to evaluate at compile time", expr.span,
                           expected=f"at most {self.max_ground} terms") from None

    def declare(self, decl: ast.Decl) -> ast.Decl:
        self.check_new_name(decl.name, decl.span)
        handler = {ast.VarDecl: self.declare_variable, ast.ParamDecl: self.declare_param,
                   ast.ExternDecl: self.declare_extern}[type(decl)]
        return handler(decl)

    def shape(self, dims: tuple[ast.Expr, ...], what: str) -> tuple[tuple[ast.Expr, ...], tuple[int, ...]]:
        ctx = ExprContext("a shape", compile_time=True)
        folded, sizes = [], []
        for dim in dims:
            checked = self.exprs.integer(dim, ctx, f"a dimension of {what}")
            size = self.evaluate(checked)
            if size < 1:
                raise EbmError(f"a dimension of {what} is {size}", dim.span, expected="a positive size")
            folded.append(folded_number(size, dim.span))
            sizes.append(int(size))
        return tuple(folded), tuple(sizes)

    def constant(self, expr: ast.Expr, role: str, integer: bool = False):
        ctx = ExprContext(role, compile_time=True)
        checked = self.exprs.integer(expr, ctx, role) if integer else self.exprs.scalar(expr, ctx, role)
        value = self.evaluate(checked)
        return value, folded_number(value, expr.span)

    def declare_variable(self, decl: ast.VarDecl) -> ast.VarDecl:
        what = f"variable '{decl.name}'"
        shape_exprs, shape = self.shape(decl.shape, what)
        spec = decl.domain
        args: tuple[ast.Expr, ...] = ()
        if spec.kind == "bounded":
            (low, low_e), (high, high_e) = (self.constant(a, "a domain bound") for a in spec.args)
            if not low < high:
                raise EbmError(f"empty interval [{low}, {high}]", spec.span, expected="low < high")
            domain, args = domains.bounded(low, high), (low_e, high_e)
        elif spec.kind == "categorical":
            count, count_e = self.constant(spec.args[0], "the number of categories", integer=True)
            if count < 1:
                raise EbmError(f"categorical({count}) has no values", spec.args[0].span,
                               expected="at least 1 category")
            domain, args = domains.categorical(count), (count_e,)
        elif spec.kind == "integer":
            (low, low_e), (high, high_e) = (self.constant(a, "an integer domain bound", integer=True)
                                            for a in spec.args)
            if not low < high:
                raise EbmError(f"the integer range {low}..{high} is empty", spec.span,
                               expected="a..b with a < b (values a, ..., b-1)")
            domain = domains.Domain("integer", num_values=high - low, first_value=low)
            args = (low_e, high_e)
        else:
            domain = {"real": domains.REAL, "binary": domains.BINARY, "spin": domains.SPIN}[spec.kind]
        self.scope.declare(Symbol("variable", decl.name, decl.span, shape=shape, domain=domain), decl.span)
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
        elif isinstance(init, ast.NetworkLayersSpec):
            if decl.shape:
                raise EbmError(f"network '{decl.name}' takes no shape; its input shape is in network(...)",
                               decl.span)
            init, shape, layers = self.written_network(decl.name, init)
        elif isinstance(init, ast.ParamDistribution):
            init = self.distribution(init)
        elif isinstance(init, ast.ParamValue):
            init, value = self.param_value(init, shape, what)
        bounds = decl.bounds
        if bounds is not None and init is None:
            value = 0  # a param without an initialiser starts at zero
        if bounds is not None:
            if layers:
                kind = "network" if isinstance(init, ast.NetworkLayersSpec) else "mlp"
                raise EbmError(f"{kind} '{decl.name}' cannot have bounds", bounds[0].span)
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
        self.scope.declare(Symbol("param", decl.name, decl.span, shape=shape, layers=layers,
                                  written_network=isinstance(init, ast.NetworkLayersSpec)), decl.span)
        return dataclasses.replace(decl, shape=shape_exprs, init=init, bounds=bounds)

    def written_network(self, name: str, spec: ast.NetworkLayersSpec):
        """`network(INPUT -> LAYER -> ...)`: the checked spec, its input shape and (in, out) features."""
        check_network.check_input_shape(spec)
        shape_exprs, shape = self.shape(spec.input_shape, f"the input of network '{name}'")
        layers = check_network.check_layers(
            name, spec, shape, lambda expr, what: int(self.constant(expr, what, integer=True)[0]))
        sizes = (check_network.features(shape), check_network.features(layers[-1].out_shape))
        return dataclasses.replace(spec, input_shape=shape_exprs, layers=layers), shape, sizes

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
            checked = folded_number(value, init.value.span)
        return dataclasses.replace(init, value=checked), value

    def declare_extern(self, decl: ast.ExternDecl) -> ast.ExternDecl:
        spec = decl.network
        if spec is None:
            self.scope.declare(Symbol("extern", decl.name, decl.span), decl.span)
            return decl
        shape_exprs, shape = self.shape(spec.input_shape, f"the input of network '{decl.name}'")
        outputs, outputs_e = self.constant(spec.outputs, "the output size of a network", integer=True)
        if outputs < 1:
            raise EbmError(f"network '{decl.name}' has {outputs} outputs", spec.outputs.span,
                           expected="a positive output size")
        layers = (int(np.prod(shape, dtype=np.int64)), int(outputs))
        self.scope.declare(Symbol("extern", decl.name, decl.span, shape=shape, layers=layers), decl.span)
        return dataclasses.replace(decl, network=dataclasses.replace(spec, input_shape=shape_exprs,
                                                                     outputs=outputs_e))

    # -- terms
    def check_term(self, decl: ast.EnergyDecl | ast.ConstraintDecl) -> ast.Decl:
        # terms have their own namespace: `energy x = x^2` is fine, two terms named x are not
        if decl.name in self.terms:
            raise EbmError(f"duplicate term name '{decl.name}'", decl.name_span,
                           hint="every energy and constraint term in a model needs its own name",
                           notes=[(self.terms[decl.name], f"'{decl.name}' first defined here")])
        self.terms[decl.name] = decl.name_span
        ctx = ExprContext("an energy body" if isinstance(decl, ast.EnergyDecl) else "a constraint", compile_time=False)
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
        IndexBounds(self.scope, self.max_ground).check_term(checked)
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
