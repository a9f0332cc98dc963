"""The forward pass of a network written in the language (`param f : network(...)`,
ParamInit kind "layers") on any backend's `ops`.

Layer i with weights reads `f.i.weight` and `f.i.bias` in PyTorch's layouts, so the
params of `network([1, 8, 8] -> conv(16, 3) -> relu -> flatten -> dense(1))` are those
of `nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(576, 1))`.
Spectral normalisation divides each weight by its largest singular value, computed
exactly at every call: no power-iteration state, so torch and JAX agree to rounding.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ebmlang.graph.ir import ParamGroup

from .vocabulary import ACTIVATIONS


def network_forward(ops: Any, group: ParamGroup, params: Mapping[str, Any], x: Any) -> Any:
    """`group`'s layers on x [n, *input_shape] -> [n, out_features]."""
    count = int(x.shape[0])
    hidden = x
    for number, layer in enumerate(group.init.layers):
        if layer.has_weights:
            weight = params[f"{group.name}.{number}.weight"]
            bias = params[f"{group.name}.{number}.bias"]
            if group.init.spectral_norm:
                weight = weight / ops.largest_singular_value(ops.reshape(weight, (layer.size, layer.fan_in())))
            if layer.kind == "conv":
                hidden = ops.conv(hidden, weight, bias, layer.stride, layer.padding)
            else:
                hidden = ops.linear(ops.reshape(hidden, (count, weight.shape[1])), weight, bias)
        elif layer.kind == "avgpool":
            hidden = ops.avg_pool(hidden, layer.kernel, layer.stride)
        elif layer.kind == "maxpool":
            hidden = ops.max_pool(hidden, layer.kernel, layer.stride)
        elif layer.kind == "activation":
            hidden = getattr(ops, ACTIVATIONS[layer.activation])(hidden)
        hidden = ops.reshape(hidden, (count,) + tuple(layer.out_shape))  # flatten, and a check of the shape
    return ops.reshape(hidden, (count, group.init.layer_sizes[-1]))
