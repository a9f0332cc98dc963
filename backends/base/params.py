"""A graph's parameters: the shape of every entry of a params dict (mlp and network params
expand to layers; a network's entries come from its registered module, not from here) and their
initial values drawn from each param's initialiser.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.graph.ir import FactorGraph, ParamGroup

from .checks import located
from .interface import Backend


def expected_param_shapes(graph: FactorGraph) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every entry of a params dict (mlp params expand to layers)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, param in graph.params.items():
        if param.is_network:
            continue  # its shapes come from the module registered for it (CompiledGraph.register_network)
        if param.init.kind == "layers":
            for number, layer in enumerate(param.init.layers):
                if layer.has_weights:
                    shapes[f"{name}.{number}.weight"] = layer.weight_shape()
                    shapes[f"{name}.{number}.bias"] = (layer.size,)
        elif param.is_neural:
            sizes = param.init.layer_sizes
            if len(sizes) < 2:
                raise EbmError(f"mlp '{name}' needs at least an input and an output size", param.span)
            for number, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
                shapes[f"{name}.{number}.weight"] = (int(fan_out), int(fan_in))
                shapes[f"{name}.{number}.bias"] = (int(fan_out),)
        else:
            shapes[name] = tuple(int(n) for n in param.shape)
    return shapes


def init_params(graph: FactorGraph, backend: Backend, key: Any) -> dict[str, Any]:
    """Initial values of every param of `graph`, drawn with `key` (one sub-key per param)."""
    params: dict[str, Any] = {}
    keys = backend.split(key, max(len(graph.params), 1))
    for (name, param), param_key in zip(graph.params.items(), keys):
        with located(graph):
            params.update(_init_param(name, param, backend, param_key))
    return params


def _init_param(name: str, param: ParamGroup, backend: Backend, key: Any) -> dict[str, Any]:
    init, shape = param.init, tuple(param.shape)
    if init.kind == "network":
        return {}  # a network's weights start at its module's values (CompiledGraph.init_params)
    if init.kind == "layers":
        return _init_layers(name, init.layers, backend, key)
    if init.kind == "mlp":
        out = {}
        sizes = init.layer_sizes
        layer_keys = backend.split(key, 2 * (len(sizes) - 1))
        for number, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            # nn.Linear's default: kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
            bound = 1.0 / math.sqrt(fan_in)
            weight = backend.uniform(layer_keys[2 * number], (fan_out, fan_in))
            bias = backend.uniform(layer_keys[2 * number + 1], (fan_out,))
            out[f"{name}.{number}.weight"] = (weight * 2.0 - 1.0) * bound
            out[f"{name}.{number}.bias"] = (bias * 2.0 - 1.0) * bound
        return out
    if init.kind == "value":
        if init.value is None:
            raise EbmError(f"param '{name}' has a value initialiser without a value", param.span)
        try:
            value = np.broadcast_to(np.asarray(init.value, dtype=np.float64), shape)
        except ValueError:
            raise EbmError(
                f"the initial value of param '{name}' has shape {np.shape(init.value)}, "
                f"which does not fit its shape {shape}",
                param.span,
            ) from None
        value = backend.asarray(np.array(value))
    elif init.kind == "normal":
        mean, std = _init_args(name, param, 2)
        value = backend.normal(key, shape) * std + mean
    elif init.kind == "uniform":
        low, high = _init_args(name, param, 2)
        value = backend.uniform(key, shape) * (high - low) + low
    else:
        raise EbmError(
            f"unknown initialiser '{init.kind}' for param '{name}'", param.span,
            expected="a value, normal(mean, std), uniform(low, high) or mlp(...)",
        )
    if param.bounds is not None:
        value = backend.ops.clip(value, float(param.bounds[0]), float(param.bounds[1]))
    return {name: value}


def _init_layers(name: str, layers, backend: Backend, key: Any) -> dict[str, Any]:
    """PyTorch's default for nn.Conv*d and nn.Linear: weights and biases U(±1/sqrt(fan_in))."""
    out = {}
    weighted = [(number, layer) for number, layer in enumerate(layers) if layer.has_weights]
    layer_keys = backend.split(key, 2 * max(len(weighted), 1))
    for position, (number, layer) in enumerate(weighted):
        bound = 1.0 / math.sqrt(layer.fan_in())
        weight = backend.uniform(layer_keys[2 * position], layer.weight_shape())
        bias = backend.uniform(layer_keys[2 * position + 1], (layer.size,))
        out[f"{name}.{number}.weight"] = (weight * 2.0 - 1.0) * bound
        out[f"{name}.{number}.bias"] = (bias * 2.0 - 1.0) * bound
    return out


def _init_args(name: str, param: ParamGroup, count: int) -> tuple[float, ...]:
    if len(param.init.args) != count:
        raise EbmError(
            f"{param.init.kind} initialiser of '{name}' takes {count} numbers, "
            f"got {len(param.init.args)}",
            param.span,
        )
    return tuple(float(a) for a in param.init.args)
