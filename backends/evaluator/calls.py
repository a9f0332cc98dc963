"""Evaluation of the nodes that call something beyond `ops`: Neural (an mlp param's
layers, a network written in the language (layers.py), or a network extern's registered
module) and Extern (a function the user registered on the backend or compiled graph).

A mixin of `Evaluator` (dispatch.py), which finds these methods by name and supplies
`ops`, `evaluate`, the mlps' layer counts and activations, and the extern lookup.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.graph.ir import Extern, Neural, ParamGroup, Slot

from .context import EvalContext
from .layers import network_forward
from .plans import TemplatePlan


class CallHandlers:
    """`eval_<kind>` for Neural and Extern."""

    def eval_Neural(self, node: Neural, plan: TemplatePlan, ctx: EvalContext):
        ops = self.ops
        values = [self.evaluate(a, plan, ctx) for a in node.args]
        vector = [isinstance(a, Slot) and a.vector for a in node.args]
        lead = np.broadcast_shapes(
            *(tuple(v.shape[:-1]) if is_vec else tuple(v.shape) for v, is_vec in zip(values, vector))
        )
        features = [
            ops.broadcast_to(v, lead + (v.shape[-1],)) if is_vec
            else ops.reshape(ops.broadcast_to(v, lead), lead + (1,))
            for v, is_vec in zip(values, vector)
        ]
        hidden = features[0] if len(features) == 1 else ops.concatenate(features, -1)
        if node.param in self.network_groups:
            return self.network_call(node, hidden, ctx)
        if node.param in self.layer_networks:
            group = self.layer_networks[node.param]
            x = self.network_inputs(hidden, group)
            return self.network_outputs(network_forward(ops, group, ctx.params, x), hidden, group)
        layers, activation = self.mlps[node.param]
        for number in range(layers):
            weight = ctx.params[f"{node.param}.{number}.weight"]
            bias = ctx.params[f"{node.param}.{number}.bias"]
            hidden = ops.linear(hidden, weight, bias)
            if number < layers - 1:
                hidden = activation(hidden)
        return hidden

    def network_call(self, node: Neural, features, ctx: EvalContext):
        """A network extern on features [*lead, F]: the module runs on [n, *input_shape]
        with the model's values of its weights, and gives [*lead, OUT]."""
        group = self.network_groups[node.param]
        adapter = self.lookup_network(node.param)
        if adapter is None:
            raise EbmError(f"network '{node.param}' has no module registered", node.span,
                           hint=f"call model.register_network('{node.param.rsplit('.', 1)[-1]}', module)")
        x = self.network_inputs(features, group)
        weights = {path: ctx.params[f"{node.param}.{path}"] for path in adapter.names}
        out = adapter.apply(weights, x)
        check_network_output(out, int(x.shape[0]), group, node.param, tuple(x.shape))
        return self.network_outputs(out, features, group)

    def network_inputs(self, features, group: ParamGroup):
        """Features [*lead, F] as a batch of network inputs [n, *input_shape]."""
        count = int(np.prod(tuple(features.shape[:-1]), dtype=np.int64))
        return self.ops.reshape(features, (count,) + tuple(group.init.input_shape))

    def network_outputs(self, out, features, group: ParamGroup):
        """A network's outputs [n, OUT] (or [n]) back under the features' lead axes."""
        return self.ops.reshape(out, tuple(features.shape[:-1]) + (group.init.layer_sizes[-1],))

    def eval_Extern(self, node: Extern, plan: TemplatePlan, ctx: EvalContext):
        fn = self.lookup_extern(node.name)
        if fn is None:
            raise EbmError(
                f"extern '{node.name}' has no implementation for the {self.backend_name} backend",
                node.span,
                hint=f"call register_extern('{node.name}', fn) on the backend or compiled graph",
            )
        return fn(*[self.evaluate(a, plan, ctx) for a in node.args])


def check_network_output(out: Any, count: int, group: ParamGroup, name: str, input_shape: tuple) -> None:
    """The output of a network on `count` inputs is [count] (one output) or [count, OUT]."""
    outputs = group.init.layer_sizes[-1]
    shape = tuple(int(n) for n in getattr(out, "shape", ()))
    if shape == (count, outputs) or (outputs == 1 and shape == (count,)):
        return
    expected = f"[{count}] or [{count}, 1]" if outputs == 1 else f"[{count}, {outputs}]"
    raise EbmError(
        f"network '{name}' returned shape {list(shape)} for an input of shape {list(input_shape)}; "
        f"its declaration says {outputs} output{'s' if outputs != 1 else ''}", group.span,
        expected=f"an output of shape {expected} (the batch first)",
        hint="make the module's output fit the declaration, or change the declaration's output size")
