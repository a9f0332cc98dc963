"""Evaluation of the leaves of a node tree: Constant, Data, Slot and ParamRef.

A mixin of `Evaluator` (dispatch.py), which finds these methods by name and supplies
`ops` and `_read`, the read of a leaf's source as its plan's `Access` says.
"""
from __future__ import annotations

from ebmlang.graph.ir import Constant, Data, ParamRef, Slot

from .context import EvalContext
from .plans import TemplatePlan


class LeafHandlers:
    """`eval_<kind>` for the leaf node kinds (array reads, no children)."""

    def eval_Constant(self, node: Constant, plan: TemplatePlan, ctx: EvalContext):
        return ctx.arrays[plan.keys[id(node)]]

    def eval_Data(self, node: Data, plan: TemplatePlan, ctx: EvalContext):
        return ctx.arrays[plan.keys[id(node)]]

    def eval_Slot(self, node: Slot, plan: TemplatePlan, ctx: EvalContext):
        if id(node) in plan.free_everywhere:
            shape = plan.access[id(node)].shape
            return self.ops.reshape(ctx.free_values, (-1,) + (1,) * len(shape))
        found = plan.access[id(node)]
        if found.kind == "packed":
            classes = ctx.packed[node.group]
            key = plan.keys[id(node)]
            masks = [ctx.arrays[f"{key}_choice{k}"] for k in range(1, plan.layout.stride)]
            lead = tuple(classes[0].shape[: len(classes[0].shape) - len(plan.layout.grid)])
            return found.packed.read(self.ops, plan.layout, classes, lead, masks)
        flat = ctx.state[node.group]
        value = self._read(flat, found, plan.keys.get(id(node)), plan, ctx)
        if id(node) in plan.free:
            is_free = ctx.arrays[plan.free[id(node)]]
            candidates = self.ops.reshape(ctx.free_values, (-1,) + (1,) * is_free.ndim)
            value = self.ops.where(is_free, candidates, value)
        return value

    def eval_ParamRef(self, node: ParamRef, plan: TemplatePlan, ctx: EvalContext):
        param = ctx.params[node.param]
        found = plan.access[id(node)]
        if found.kind == "scalar":
            return self.ops.reshape(param, ())
        return self._read(self.ops.reshape(param, (-1,)), found, plan.keys.get(id(node)), plan, ctx)
