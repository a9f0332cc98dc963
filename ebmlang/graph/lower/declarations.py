"""Declarations of a plain model: variable groups, params and their shapes.

A mixin of `_ModelLowerer` (it uses `model`, `consts` and `error` from there):
every value here is a compile-time constant, evaluated with `evaluate_constant`.
"""
from __future__ import annotations

import math

import numpy as np

from ebmlang.errors import EbmError, did_you_mean
from ebmlang.graph import ir
from ebmlang.graph.lower.static import evaluate_constant
from ebmlang.language import ast


class _DeclarationLowerer:
    """Lowers `var` and `param` declarations (domains, shapes, initial values)."""

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

    def lower_shape(self, dims: tuple[ast.Expr, ...], what: str, span) -> tuple[int, ...]:
        shape = tuple(self.const_int(d, f"a dimension of {what}") for d in dims)
        for dim, size in zip(dims, shape):
            if size <= 0:
                raise self.error(f"a dimension of {what} is {size}", dim.span, expected="a positive size")
        elements = math.prod(shape)
        self.spend(elements, f"{what}, with {elements:,} elements of shape {list(shape)},", span)
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
        shape = self.lower_shape(decl.shape, f"variable '{decl.name}'", decl.span)
        return ir.VariableGroup(decl.name, shape, domain, decl.role == "observed", decl.span)

    def lower_param(self, decl: ast.ParamDecl) -> ir.ParamGroup:
        shape = self.lower_shape(decl.shape, f"param '{decl.name}'", decl.span)
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
            weights = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
            self.spend(weights, f"the network '{decl.name}', with {weights:,} weights,", init.span)
            param_init = ir.ParamInit("mlp", layer_sizes=sizes, activation=init.activation)
        elif isinstance(init, ast.NetworkLayersSpec):
            param_init = self.lower_layers(decl.name, init)
        else:
            raise self.error(f"unsupported initialisation of '{decl.name}'", decl.span)
        bounds = None
        if decl.bounds is not None:
            bounds = (float(self.const(decl.bounds[0])), float(self.const(decl.bounds[1])))
        return ir.ParamGroup(decl.name, shape, param_init, decl.span, bounds)

    def lower_layers(self, name: str, spec: ast.NetworkLayersSpec) -> ir.ParamInit:
        """`param f : network(INPUT -> LAYER -> ...)`: the checked chain, as IR layers."""
        shape = tuple(self.const_int(d, "a network input size") for d in spec.input_shape)
        layers = tuple(ir.Layer(layer.kind, layer.in_shape, layer.out_shape, size=layer.size, kernel=layer.kernel,
                                stride=layer.stride, padding=layer.padding, activation=layer.activation,
                                span=layer.span) for layer in spec.layers)
        weights = sum(math.prod(layer.weight_shape()) + layer.size for layer in layers if layer.has_weights)
        self.spend(weights, f"the network '{name}', with {weights:,} weights,", spec.span)
        sizes = (math.prod(shape), math.prod(layers[-1].out_shape))
        return ir.ParamInit("layers", layer_sizes=sizes, input_shape=shape, layers=layers,
                            spectral_norm=spec.spectral_norm)

    def lower_network(self, decl: ast.ExternDecl) -> ir.ParamGroup:
        """`extern net : network(IN -> OUT)`: a param group whose entries (`net.<path>`)
        come from the module registered from Python."""
        spec = decl.network
        shape = tuple(self.const_int(d, "a network input size") for d in spec.input_shape)
        outputs = self.const_int(spec.outputs, "a network output size")
        size = int(np.prod(shape, dtype=np.int64))
        return ir.ParamGroup(decl.name, (), ir.ParamInit("network", layer_sizes=(size, outputs), input_shape=shape),
                             decl.span)
