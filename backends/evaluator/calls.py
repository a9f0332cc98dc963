"""Evaluation of the nodes that call something beyond `ops`: Neural (an mlp param's
layers) and Extern (a function the user registered on the backend or compiled graph).

A mixin of `Evaluator` (dispatch.py), which finds these methods by name and supplies
`ops`, `evaluate`, the mlps' layer counts and activations, and the extern lookup.
"""
from __future__ import annotations

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.graph.ir import Extern, Neural, Slot

from .context import EvalContext
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
        layers, activation = self.mlps[node.param]
        for number in range(layers):
            weight = ctx.params[f"{node.param}.{number}.weight"]
            bias = ctx.params[f"{node.param}.{number}.bias"]
            hidden = ops.linear(hidden, weight, bias)
            if number < layers - 1:
                hidden = activation(hidden)
        return hidden

    def eval_Extern(self, node: Extern, plan: TemplatePlan, ctx: EvalContext):
        fn = self.lookup_extern(node.name)
        if fn is None:
            raise EbmError(
                f"extern '{node.name}' has no implementation for the {self.backend_name} backend",
                node.span,
                hint=f"call register_extern('{node.name}', fn) on the backend or compiled graph",
            )
        return fn(*[self.evaluate(a, plan, ctx) for a in node.args])
