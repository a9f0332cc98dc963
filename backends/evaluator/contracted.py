"""Evaluating contraction plans (contraction.py): a template's energy total, and the
local field of a group the template is linear in, as einsums of the factors read once
per point of their own index boxes. A mixin of the `Evaluator`."""
from __future__ import annotations

from .context import EvalContext
from .contraction import ContractionFactor, ContractionPlan


class ContractionHandlers:
    """`contraction_total` and `contraction_field`; needs the Evaluator's `ops` and `evaluate`."""

    def contraction_total(self, plan: ContractionPlan, ctx: EvalContext):
        """The template's energy summed over its ground factors: [*ctx.prefix]."""
        value = self._contract(plan, ctx, skip=(), keep=())
        return self.ops.broadcast_to(self._signed(value, plan, ctx), ctx.prefix)

    def contraction_field(self, plan: ContractionPlan, group: str, ctx: EvalContext, scale: float = 1.0):
        """d energy / d state[group] when the template is linear in each value it reads of
        the group (`ContractionPlan.linear_slots`): [*ctx.prefix, group size]. Each slot's
        part is the contraction of the other factors with the slot's indices kept, placed
        at the variables it reads (a reshape, or an index_add where the box is not the grid).
        scale: a number the field is multiplied by, with its sign (no product of its own)."""
        ops = self.ops
        size = int(ctx.state[group].shape[-1])
        shape = ctx.prefix + (size,)
        field = None
        for number in plan.linear_slots(group):
            factor = plan.factors[number]
            part = self._contract(plan, ctx, skip=(number,), keep=factor.dims)
            lead = tuple(part.shape[: part.ndim - len(factor.dims)])
            part = ops.reshape(part, lead + (factor.plan.num_rows,))
            if factor.flat_key is not None:
                part = ops.index_add(ops.zeros(lead + (size,)), ctx.arrays[factor.flat_key], part)
            field = part if field is None else field + part
        return ops.broadcast_to(self._signed(field, plan, ctx, scale), shape)

    def contraction_pairs(self, plan: ContractionPlan, slots: tuple[int, ...], keep: tuple[int, ...],
                          ctx: EvalContext):
        """The contraction of every factor but `slots`, the indices `keep` kept, signed and
        flattened: the coefficient of the slots' product at each point (quadratic.py)."""
        value = self._signed(self._contract(plan, ctx, skip=slots, keep=keep), plan, ctx)
        return self.ops.reshape(value, (-1,))

    # -- the einsum --------------------------------------------------------------

    def _contract(self, plan: ContractionPlan, ctx: EvalContext, skip, keep: tuple[int, ...]):
        """sum over the box of counts * prod(factors not in `skip`), the indices `keep`
        kept (in that order): [*lead, *their extents]."""
        ops = self.ops
        skip, keep = tuple(skip), tuple(keep)
        subscripts, numbers, multiplicity, kept, spread = plan.remembered(
            ("contraction", skip, keep), lambda: _contraction_spec(plan, skip, keep))
        operands = [self._factor_value(plan, plan.factors[number], ctx) for number in numbers]
        if plan.counts_key is not None:
            operands.append(ctx.arrays[plan.counts_key])
        value = ops.einsum(subscripts, *operands) if operands else ops.zeros(()) + 1.0
        if multiplicity != 1.0:
            value = value * multiplicity
        if spread is not None:
            lead = tuple(value.shape[: value.ndim - len(kept)])
            value = ops.broadcast_to(ops.reshape(value, lead + spread), lead + tuple(plan.sizes[d] for d in keep))
        return value

    def _factor_value(self, plan: ContractionPlan, factor: ContractionFactor, ctx: EvalContext):
        ops = self.ops
        value = self.evaluate(factor.node, factor.plan, ctx)
        lead = tuple(value.shape[:-1]) if factor.stateful else ()
        value = ops.broadcast_to(value, lead + (factor.plan.num_rows,))
        return ops.reshape(value, lead + tuple(plan.sizes[d] for d in factor.dims))

    def _signed(self, value, plan: ContractionPlan, ctx: EvalContext, scale: float = 1.0):
        for node, scalar_plan in plan.scalars:
            value = value * self.ops.reshape(self.evaluate(node, scalar_plan, ctx), ())
        factor = -scale if plan.negate else scale
        return value if factor == 1.0 else -value if factor == -1.0 else value * factor


def _contraction_spec(plan: ContractionPlan, skip: tuple[int, ...], keep: tuple[int, ...]):
    """What `_contract` does for (plan, skip, keep), worked out once per plan (a sampler
    asks every sweep): the einsum subscripts, the factors it reads, the multiplicity of the indices
    no operand holds (summed, each multiplies by its extent), the kept letters present,
    and the shape to spread the kept indices no operand holds over (None when all are)."""
    letters = plan.letters
    numbers = tuple(n for n in range(len(plan.factors)) if n not in skip)
    subscripts = [plan.subscript(plan.factors[n]) for n in numbers]
    if plan.counts_key is not None:
        subscripts.append(letters)
    present = set("".join(subscripts))
    multiplicity = 1.0
    for dim, size in enumerate(plan.sizes):
        if letters[dim] not in present and dim not in keep:
            multiplicity *= size
    kept = "".join(letters[d] for d in keep if letters[d] in present)
    stateful = any(s.startswith("...") for s in subscripts)
    spec = ",".join(subscripts) + "->" + ("..." if stateful else "") + kept
    spread = None
    if len(kept) < len(keep):
        spread = tuple(plan.sizes[d] if letters[d] in present else 1 for d in keep)
    return spec, numbers, multiplicity, kept, spread
