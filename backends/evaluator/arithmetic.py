"""Evaluation of the nodes computed with `ops` alone: Apply (elementwise functions),
Reduce (sums, products, extrema over the last axis) and Select (an entry of a vector).

A mixin of `Evaluator` (dispatch.py), which finds these methods by name and supplies
`ops`, `evaluate` and the `unary` / `binary` function tables.
"""
from __future__ import annotations

import numpy as np

from ebmlang.graph.ir import Apply, Constant, Reduce, Select

from .context import EvalContext
from .plans import TemplatePlan
from .vocabulary import _REDUCE_FILL


class ArithmeticHandlers:
    """`eval_<kind>` for Apply, Reduce and Select."""

    def eval_Apply(self, node: Apply, plan: TemplatePlan, ctx: EvalContext):
        args = [self.evaluate(a, plan, ctx) for a in node.args]
        if node.fn == "violation":
            return self.ops.where(args[0] != 0, 0.0, np.inf)
        if node.fn in self.unary:
            return self.unary[node.fn](args[0])
        if node.fn == "pow" and isinstance(node.args[1], Constant):
            exponent = float(node.args[1].value)
            if exponent == 2.0:
                return self.ops.square(args[0])
            if exponent.is_integer():
                return self.ops.power(args[0], int(exponent))
        return self.binary[node.fn](args[0], args[1])

    def eval_Reduce(self, node: Reduce, plan: TemplatePlan, ctx: EvalContext):
        ops = self.ops
        body = self.evaluate(node.body, plan, ctx)
        mask = ctx.arrays[plan.keys[id(node)]] if id(node) in plan.keys else None
        masked = mask is not None and id(node) not in plan.full_masks
        if masked:
            body = ops.where(mask, body, _REDUCE_FILL[node.op])
        elif mask is not None:
            full = np.broadcast_shapes(tuple(body.shape), tuple(mask.shape))
            if tuple(body.shape) != full:
                body = ops.broadcast_to(body, full)
        if node.op == "sum":
            return ops.sum(body, -1)
        if node.op == "mean":
            if not masked:
                return ops.mean(body, -1)
            # A mask constant along the reduced axis counts every entry the body has there.
            count = ops.sum(ops.as_float(mask), -1) * (body.shape[-1] if mask.shape[-1] == 1 else 1)
            return ops.sum(body, -1) / count
        if node.op == "prod":
            return ops.prod(body, -1)
        if node.op == "logsumexp":
            return ops.logsumexp(body, -1)
        if node.op == "min":
            return ops.min(body, -1)
        return ops.max(body, -1)

    def eval_Select(self, node: Select, plan: TemplatePlan, ctx: EvalContext):
        ops = self.ops
        vector = self.evaluate(node.vector, plan, ctx)
        if isinstance(node.index, Constant):
            return vector[..., int(node.index.value)]
        # Selectors are integer arithmetic on discrete values and index variables, exact in
        # float32 below 2^24 (lower/selection.py keeps tables under it): no rounding needed.
        index = ops.as_int(self.evaluate(node.index, plan, ctx))
        if all(size == 1 for size in vector.shape[:-1]):
            # one table for every read (`mu[z[n]]`, `A[z[t], z[t+1]]`): a gather by value,
            # without broadcasting the table to every read first
            picked = ops.take(ops.reshape(vector, (-1,)), ops.reshape(index, (-1,)), 0)
            return ops.reshape(picked, tuple(index.shape))
        lead = np.broadcast_shapes(tuple(vector.shape[:-1]), tuple(index.shape))
        vector = ops.broadcast_to(vector, lead + (vector.shape[-1],))
        index = ops.reshape(ops.broadcast_to(index, lead), lead + (1,))
        return ops.reshape(ops.take_along_axis(vector, index, -1), lead)
