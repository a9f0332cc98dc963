"""The layers of `param f : network(INPUT -> LAYER -> ...)`, resolved and shaped.

A layer is written as a name (`flatten`, `relu`) or a call (`conv(16, 3, padding=1)`);
its arguments are compile-time integers, evaluated by the declaration checker. Shapes
exclude the batch axis and follow PyTorch: a conv or pool runs over every axis after
the channels, mapping a length n to floor((n + 2 * padding - kernel) / stride) + 1;
dense flattens its input. Its own module: check_decls.py declares the param, this
module knows what each layer takes and makes.
"""
from __future__ import annotations

import math
from collections.abc import Callable

from ebmlang.errors import EbmError, did_you_mean
from ebmlang.language import ast
from ebmlang.language.builtin_names import LAYER_ACTIVATIONS, NETWORK_LAYERS

LAYER_FORMS = {
    "conv": "conv(OUT, K), optionally with stride=S (default 1) and padding=P (default 0)",
    "avgpool": "avgpool(K), optionally with stride=S (default K)",
    "maxpool": "maxpool(K), optionally with stride=S (default K)",
    "dense": "dense(OUT)",
    "flatten": "flatten",
}
_ANY_LAYER = "conv(OUT, K), avgpool(K), maxpool(K), dense(OUT), flatten or an activation (relu, swish, ...)"
# Each layer that takes arguments: what its positional arguments are, and its keywords.
_POSITIONAL = {"conv": ("number of output channels", "kernel size"), "avgpool": ("kernel size",),
               "maxpool": ("kernel size",), "dense": ("output size",)}
_KEYWORDS = {"conv": ("stride", "padding"), "avgpool": ("stride",), "maxpool": ("stride",), "dense": ()}

# Evaluates a compile-time integer: (expression, what it is) -> its value.
IntegerOf = Callable[[ast.Expr, str], int]


def output_length(length: int, kernel: int, stride: int, padding: int) -> int:
    """The length a conv or pool leaves along one axis (PyTorch's formula, no dilation)."""
    return (length + 2 * padding - kernel) // stride + 1


def check_input_shape(spec: ast.NetworkLayersSpec) -> None:
    if len(spec.input_shape) > 3:
        raise EbmError(f"a network input has at most 3 axes, not {len(spec.input_shape)}",
                       spec.input_shape[3].span, expected="[C, H, W] (2-d), [C, L] (1-d) or a size D (a vector)")


def check_layers(name: str, spec: ast.NetworkLayersSpec, input_shape: tuple[int, ...],
                 integer_of: IntegerOf) -> tuple[ast.NetworkLayer, ...]:
    """Every layer of the chain, each reading the shape the one before it makes."""
    layers, shape = [], input_shape
    for written in spec.layers:
        layer = _layer(written, shape, integer_of)
        layers.append(layer)
        shape = layer.out_shape
    if not any(layer.kind in ("conv", "dense") for layer in layers):
        raise EbmError(f"network '{name}' has no conv or dense layer, so no weights to learn", spec.span,
                       hint="end it with a dense layer, e.g. `-> dense(1)`")
    return tuple(layers)


def features(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def _layer(written: ast.Expr, in_shape: tuple[int, ...], integer_of: IntegerOf) -> ast.NetworkLayer:
    if isinstance(written, ast.Number):
        size = f"{written.value:g}"
        raise EbmError("a bare number is not a network layer", written.span, expected=_ANY_LAYER,
                       hint=f"write dense({size}) for a dense layer with {size} outputs")
    if isinstance(written, ast.Call):
        name, called = written.func, True
    elif isinstance(written, ast.Name):
        name, called = written.name, False
    else:
        raise EbmError("expected a network layer", written.span, expected=_ANY_LAYER)
    span = written.span
    if name in LAYER_ACTIVATIONS or name == "flatten":
        if called:
            raise EbmError(f"'{name}' takes no arguments", span, hint=f"write `-> {name}`")
        if name == "flatten":
            return ast.NetworkLayer("flatten", in_shape, (features(in_shape),), span)
        return ast.NetworkLayer("activation", in_shape, in_shape, span, activation=name)
    if name not in _POSITIONAL:
        raise EbmError(f"unknown network layer '{name}'", written.func_span if called else span,
                       expected=_ANY_LAYER, hint=did_you_mean(name, NETWORK_LAYERS + LAYER_ACTIVATIONS))
    if not called:
        raise EbmError(f"{name} needs its arguments", span, expected=LAYER_FORMS[name])
    first, *rest = _arguments(written, integer_of)
    if name == "dense":
        return ast.NetworkLayer("dense", in_shape, (first,), span, size=first)
    if len(in_shape) < 2:
        raise EbmError(f"{name} needs an input with channels, but its input here is a vector "
                       f"[{in_shape[0]}]", span, expected="an input shape [C, L] (1-d) or [C, H, W] (2-d)",
                       hint="a vector (a size D, or what dense or flatten make) takes dense layers and activations")
    if name == "conv":
        out, kernel = first, rest[0]
        stride, padding = rest[1] or 1, rest[2] or 0
        channels = (out,)
    else:
        out, kernel, padding = 0, first, 0
        stride = rest[0] or kernel
        channels = in_shape[:1]
    lengths = tuple(output_length(n, kernel, stride, padding) for n in in_shape[1:])
    if min(lengths) < 1:
        where = "x".join(map(str, in_shape[1:])) if len(in_shape) > 2 else f"length-{in_shape[1]}"
        padded = f" (padding {padding})" if name == "conv" else ""
        raise EbmError(f"{name} with kernel {kernel} on a {where} input{padded} leaves no output", span,
                       expected=f"a kernel of at most {min(in_shape[1:]) + 2 * padding}",
                       hint="use a smaller kernel or add padding=" if name == "conv" else None)
    return ast.NetworkLayer(name, in_shape, channels + lengths, span, size=out, kernel=kernel,
                            stride=stride, padding=padding)


def _arguments(call: ast.Call, integer_of: IntegerOf) -> list[int]:
    """The positional values of a layer, then each of its keywords' (0 where not given)."""
    name = call.func
    wanted, allowed = _POSITIONAL[name], _KEYWORDS[name]
    if len(call.args) != len(wanted):
        count = f"{len(wanted)} argument{'s' if len(wanted) > 1 else ''}"
        raise EbmError(f"{name} takes {count} ({', '.join(wanted)}), got {len(call.args)}", call.span,
                       expected=LAYER_FORMS[name])
    values = [_positive(arg, f"the {role} of {name}", integer_of) for arg, role in zip(call.args, wanted)]
    given: dict[str, ast.Keyword] = {}
    for keyword in call.keywords:
        if keyword.name not in allowed:
            options = f"{name}'s options are {' and '.join(allowed)}" if allowed else f"{name} takes no options"
            raise EbmError(f"{name} has no option '{keyword.name}'", keyword.span, expected=LAYER_FORMS[name],
                           hint=did_you_mean(keyword.name, allowed) or options)
        if keyword.name in given:
            raise EbmError(f"'{keyword.name}' is given twice", keyword.span,
                           notes=[(given[keyword.name].span, "first given here")])
        given[keyword.name] = keyword
    for option in allowed:
        keyword = given.get(option)
        if keyword is None:
            values.append(0)
        elif option == "padding":
            values.append(_count(keyword.value, f"the padding of {name}", integer_of, least=0))
        else:
            values.append(_positive(keyword.value, f"the {option} of {name}", integer_of))
    return values


def _positive(expr: ast.Expr, what: str, integer_of: IntegerOf) -> int:
    return _count(expr, what, integer_of, least=1)


def _count(expr: ast.Expr, what: str, integer_of: IntegerOf, least: int) -> int:
    value = integer_of(expr, what)
    if value < least:
        raise EbmError(f"{what} is {value}", expr.span,
                       expected="a positive integer" if least else "an integer of at least 0")
    return value


# --------------------------------------------------------------------------
# Written back as source (export summaries, `ebm check`)


def network_source(input_shape: tuple[int, ...], layers, spectral_norm: bool) -> str:
    """`network([1, 8, 8] -> conv(16, 3, padding=1) -> relu -> dense(1))`, from checked
    layers (`ast.NetworkLayer` or `ir.Layer`: the same fields); default keywords left out."""
    chain = " -> ".join([f"[{', '.join(map(str, input_shape))}]"] + [layer_source(layer) for layer in layers])
    return f"network({chain}{', spectral_norm' if spectral_norm else ''})"


def layer_source(layer) -> str:
    if layer.kind == "activation":
        return layer.activation
    if layer.kind == "flatten":
        return "flatten"
    if layer.kind == "dense":
        return f"dense({layer.size})"
    if layer.kind == "conv":
        options = [f"stride={layer.stride}"] * (layer.stride != 1) + [f"padding={layer.padding}"] * (layer.padding != 0)
        return f"conv({', '.join([str(layer.size), str(layer.kernel)] + options)})"
    stride = f", stride={layer.stride}" if layer.stride != layer.kernel else ""
    return f"{layer.kind}({layer.kernel}{stride})"
