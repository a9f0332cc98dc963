"""The `Evaluator`: its entry points (a template's rows, totals, local-field
coefficients), the dispatch of a node to the `eval_<kind>` method found by name (or to
`unsupported`), and the read of a leaf's source that the leaf handlers share.

The handlers themselves live by node kind in leaves.py, arithmetic.py and calls.py.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ebmlang.errors import EbmError
from ebmlang.graph.ir import Apply, FactorGraph, Node

from .arithmetic import ArithmeticHandlers
from .calls import CallHandlers
from .conditionals import LinearForm
from .context import EvalContext
from .contracted import ContractionHandlers
from .leaves import LeafHandlers
from .plans import Access, ScaledSum, TemplatePlan
from .totals import TotalGroup
from .vocabulary import ACTIVATIONS


class Evaluator(LeafHandlers, ArithmeticHandlers, CallHandlers, ContractionHandlers):
    """Evaluates IR node trees with one backend's `ops`; a method per node kind."""

    def __init__(
        self,
        ops: Any,
        backend_name: str,
        graph: FactorGraph,
        lookup_extern: Callable[[str], Callable | None],
        lookup_network: Callable[[str], Any] = lambda name: None,
    ):
        self.ops = ops
        self.backend_name = backend_name
        self.lookup_extern = lookup_extern
        self.lookup_network = lookup_network
        # mlp param -> (number of layers, ops function of its activation)
        self.mlps = {
            name: (len(p.init.layer_sizes) - 1, getattr(ops, ACTIVATIONS.get(p.init.activation, "silu")))
            for name, p in graph.params.items()
            if p.init.kind == "mlp"
        }
        # network written in the language -> its param group (layers.py runs it)
        self.layer_networks = {name: p for name, p in graph.params.items() if p.init.kind == "layers"}
        # network extern -> its param group (input shape, outputs); the module is looked up per call
        self.network_groups = {name: p for name, p in graph.params.items() if p.is_network}
        self.unary = {
            "neg": lambda x: -x, "exp": ops.exp, "log": ops.log, "softplus": ops.softplus,
            "sigmoid": ops.sigmoid, "tanh": ops.tanh, "abs": ops.abs, "sqrt": ops.sqrt,
            "relu": ops.relu, "sin": ops.sin, "cos": ops.cos, "square": ops.square,
            "not": lambda x: ops.as_float(x == 0), "log1p": ops.log1p, "expm1": ops.expm1,
        }
        self.binary = {
            "add": lambda a, b: a + b, "sub": lambda a, b: a - b,
            "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
            "pow": ops.power, "mod": ops.mod,
            "eq": lambda a, b: ops.as_float(a == b), "ne": lambda a, b: ops.as_float(a != b),
            "lt": lambda a, b: ops.as_float(a < b), "le": lambda a, b: ops.as_float(a <= b),
            "gt": lambda a, b: ops.as_float(a > b), "ge": lambda a, b: ops.as_float(a >= b),
            "and": lambda a, b: ops.as_float(ops.logical_and(a != 0, b != 0)),
            "or": lambda a, b: ops.as_float(ops.logical_or(a != 0, b != 0)),
        }

    # -- entry points ------------------------------------------------------

    def template_value(self, plan: TemplatePlan, ctx: EvalContext):
        """Energy of every row of `plan`: [*ctx.prefix, plan.num_rows]."""
        value = self.ops.broadcast_to(self.evaluate(plan.template.body, plan, ctx), ctx.prefix + (plan.num_rows,))
        if plan.present is not None:
            value = self.ops.where(ctx.arrays[plan.present], value, 0.0)
        return value

    def template_total(self, plan: TemplatePlan, ctx: EvalContext):
        """Sum of `template_value` over the rows, [*ctx.prefix], with invariant factors
        applied after the sum (see ScaledSum)."""
        ops, total = self.ops, plan.total
        shape = ctx.prefix + (plan.num_rows,)
        if total.core is None:
            value = ops.zeros(ctx.prefix) + float(plan.num_rows)
        elif isinstance(total.core, Apply) and total.core.fn == "mul":
            # sum(a * b) as one fused dot product: no full-size temporary in either pass.
            left, right = (self.evaluate(a, plan, ctx) for a in total.core.args)
            if _unbatched(right) or _unbatched(left):
                # One side is the same on every row (a bias): a matrix-vector product,
                # whose gradient is one more (no [batch, rows] temporary in either pass).
                vector, other = (right, left) if _unbatched(right) else (left, right)
                vector = ops.broadcast_to(ops.reshape(vector, (-1,)), (plan.num_rows,))
                value = ops.broadcast_to(ops.matmul(ops.broadcast_to(other, shape), vector), ctx.prefix)
            else:
                value = ops.vecdot(ops.broadcast_to(left, shape), ops.broadcast_to(right, shape))
        else:
            value = ops.sum(ops.broadcast_to(self.evaluate(total.core, plan, ctx), shape), -1)
        return self._scaled(value, total, plan, ctx)

    def _scaled(self, value, total: ScaledSum, plan: TemplatePlan, ctx: EvalContext):
        for scalar in total.scalars:  # size-1 values of any rank: apply as 0-d
            value = value * self.ops.reshape(self.evaluate(scalar, plan, ctx), ())
        return -value if total.negate else value

    def group_total(self, group: TotalGroup, ctx: EvalContext):
        """Sum of the totals of a TotalGroup's templates: [*ctx.prefix]."""
        if len(group.plans) == 1:
            return self.template_total(group.plans[0], ctx)
        ops, first = self.ops, group.plans[0]
        shape = ctx.prefix + (first.num_rows,)
        others = None
        for plan, other in zip(group.plans, group.others):
            value = self.evaluate(other, plan, ctx)
            others = value if others is None else others + value
        shared = self.evaluate(group.shared, first, ctx)
        value = ops.vecdot(ops.broadcast_to(shared, shape), ops.broadcast_to(others, shape))
        return self._scaled(value, first.total, first, ctx)

    def linear_coefficient(self, plan: TemplatePlan, form: LinearForm, ctx: EvalContext):
        """The product of a LinearForm template's `rest`, per row: [batch or 1, 1,
        num_rows] (no value axis; a batch axis of 1 where no state enters it), zero on
        rows the template does not have; neither its scalars nor its sign applied. None when that is 1 on every row (no `rest`, no
        open boundary), so callers add a number instead of a materialised array of ones."""
        ops = self.ops
        if not form.rest and plan.present is None:
            return None
        value = None
        for factor in form.rest:
            read = self.evaluate(factor, plan, ctx)
            value = read if value is None else value * read
        # A coefficient the state does not enter (a bias) keeps a batch axis of 1.
        batched = value is not None and value.ndim > 1 and value.shape[0] != 1
        shape = (ctx.prefix[0] if batched else 1,) + (1,) * (len(ctx.prefix) - 1) + (plan.num_rows,)
        value = ops.broadcast_to(value if value is not None else ops.zeros((1,)) + 1.0, shape)
        if plan.present is not None:
            value = ops.where(ctx.arrays[plan.present], value, 0.0)
        return value

    def scalar_product(self, scalars: tuple[Node, ...], plan: TemplatePlan, ctx: EvalContext):
        value = None
        for scalar in scalars:
            read = self.ops.reshape(self.evaluate(scalar, plan, ctx), ())
            value = read if value is None else value * read
        return value

    def evaluate(self, node: Node, plan: TemplatePlan, ctx: EvalContext):
        method = getattr(self, "eval_" + type(node).__name__, None)
        if method is None:
            return self.unsupported(node)
        return method(node, plan, ctx)

    def unsupported(self, node: Node):
        raise EbmError(
            f"the {self.backend_name} backend cannot evaluate a {type(node).__name__} node",
            node.span,
            hint="add an eval_" + type(node).__name__ + " method to a handler mixin in backends/evaluator/",
        )

    # -- reads shared by the leaf handlers ---------------------------------

    def _read(self, flat, found: Access, key: str | None, plan: TemplatePlan, ctx: EvalContext):
        """Values of `flat` [*lead, size] read as `found` says (arrays under `key`):
        [*lead, *found.shape]."""
        ops = self.ops
        lead = tuple(flat.shape[:-1])
        if found.kind == "layout":
            masks = [ctx.arrays[f"{key}_choice{k}"] for k in range(1, plan.layout.stride)]
            return found.shifted.read(ops, plan.layout, flat, lead, masks)
        index = ctx.arrays.get(key)
        if found.kind == "gather":
            # Gather from a 2-D view: torch's index_select is ~10x slower on [b, 1, n].
            rows = ops.reshape(flat, (-1, flat.shape[-1]))
            return ops.reshape(ops.take(rows, index, -1), lead + found.shape)
        if found.kind == "identity":
            return ops.reshape(flat, lead + found.shape)
        grid = ops.reshape(flat, lead + found.grid)
        if found.kind == "roll":
            moved = ops.roll(grid, found.shifts, found.axes)
        else:
            moved = grid[(...,) + tuple(slice(a, b) for a, b in found.box)]
        return ops.reshape(moved, lead + found.shape)


def _unbatched(value) -> bool:
    """Whether an evaluated operand holds one value per row at most (no batch or value axes)."""
    return all(int(size) == 1 for size in value.shape[:-1])
