"""A template's energy total with its invariant factors pulled out, and totals merged
across templates.

`scaled_sum` splits a product body into factors that are the same for every row and
state and a core to sum; `group_totals` merges the totals of templates that share a
factor of a pairwise core into one reduction. `signature` says when two nodes evaluate to
the same values, which both the merging here and the local fields of conditionals use.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ebmlang.graph.ir import Apply, Constant, Data, Node, ParamRef, Slot

from .plans import ScaledSum, TemplatePlan


def is_invariant(node: Node) -> bool:
    """Whether a node has one value for every row, inner position and state."""
    if isinstance(node, Constant):
        return True
    if isinstance(node, ParamRef):
        return node.index is None or np.size(node.index) == 1
    if isinstance(node, Data):
        return np.size(node.array) == 1
    if isinstance(node, Apply):
        return all(is_invariant(a) for a in node.args)
    return False


def scaled_sum(body: Node) -> ScaledSum:
    """Split a body that is a product (with negations) into its invariant factors and the
    product of the rest: `-J * s[i] * s[j]` -> scalars (J,), negated, core s[i] * s[j]."""
    factors, negate = _product_factors(body)
    scalars = tuple(f for f in factors if is_invariant(f))
    rest = [f for f in factors if not is_invariant(f)]
    if not rest:
        return ScaledSum((body,), False, None)
    if not scalars and not negate:
        return ScaledSum((), False, body)
    core = rest[0]
    for factor in rest[1:]:
        core = Apply(factor.span, "mul", (core, factor))
    return ScaledSum(scalars, negate, core)


def _product_factors(node: Node) -> tuple[list[Node], bool]:
    """The factors of a chain of `mul`s and `neg`s, and whether an odd number of negations."""
    if isinstance(node, Apply) and node.fn == "neg":
        factors, negate = _product_factors(node.args[0])
        return factors, not negate
    if isinstance(node, Apply) and node.fn == "mul":
        left, left_negate = _product_factors(node.args[0])
        right, right_negate = _product_factors(node.args[1])
        return left + right, left_negate != right_negate
    return [node], False


@dataclass(frozen=True, eq=False)
class TotalGroup:
    """Templates whose energy totals share their invariant factors and one core factor:
    sum_t c * sum_g a_g * b_tg = c * sum_g a_g * (sum_t b_tg) -- one reduction instead of
    one per template (lowering splits `s[i] * (s[j] + s[k])` into additive templates).

    plans[0]'s core is `shared * others[0]`; plans[t]'s core is `(its copy of shared) * others[t]`.
    A group of one plan is evaluated by `Evaluator.template_total`.
    """

    plans: tuple[TemplatePlan, ...]
    shared: Node | None = None
    others: tuple[Node, ...] = ()


def group_totals(plans: tuple[TemplatePlan, ...]) -> tuple[TotalGroup, ...]:
    """Merge the totals of templates that differ only in one factor of a pairwise core."""
    groups: list[_Merging] = []
    by_key: dict[tuple, _Merging] = {}
    for plan in plans:
        options = _merge_options(plan)
        if not any(key in by_key and by_key[key].join(key, plan, other) for key, _, other in options):
            group = _Merging([plan], {key: (shared, other) for key, shared, other in options})
            groups.append(group)
            for key, _, _ in options:
                by_key.setdefault(key, group)
    return tuple(
        TotalGroup(tuple(g.plans), g.shared, tuple(g.others)) if len(g.plans) > 1
        else TotalGroup((g.plans[0],))
        for g in groups
    )


@dataclass
class _Merging:
    """A TotalGroup being built: until a second plan joins, either factor of the first
    plan's core may turn out to be the shared one (`options`: key -> (shared, other))."""

    plans: list[TemplatePlan]
    options: dict[tuple, tuple[Node, Node]]
    key: tuple | None = None
    shared: Node | None = None
    others: list[Node] = field(default_factory=list)

    def join(self, key: tuple, plan: TemplatePlan, other: Node) -> bool:
        if self.key is None:
            self.key, (self.shared, first) = key, self.options[key]
            self.others = [first]
        elif self.key != key:
            return False
        self.plans.append(plan)
        self.others.append(other)
        return True


def _merge_options(plan: TemplatePlan) -> list[tuple[tuple, Node, Node]]:
    """(key, shared factor, other factor) for each factor of a pairwise core that could be
    shared; the key also holds what else must match (rows, scalars, sign)."""
    total = plan.total
    if not (isinstance(total.core, Apply) and total.core.fn == "mul"):
        return []
    scalars = [signature(s, plan) for s in total.scalars]
    if None in scalars:
        return []
    options = []
    for shared, other in (total.core.args, total.core.args[::-1]):
        key = signature(shared, plan)
        if key is not None:
            options.append(((plan.num_rows, tuple(sorted(scalars, key=repr)), total.negate, key), shared, other))
    return options


def signature(node: Node, plan: TemplatePlan) -> tuple | None:
    """A hashable description equal for nodes that evaluate to the same values; None for
    nodes not worth comparing (mlps, externs, reductions)."""
    if isinstance(node, Constant):
        return ("constant", float(node.value))
    if isinstance(node, Slot):
        found = plan.access[id(node)]
        index = plan.arrays[plan.keys[id(node)]].tobytes() if id(node) in plan.keys else b""
        return ("slot", node.group, node.vector, found, index)
    if isinstance(node, ParamRef):
        index = None if node.index is None else (np.shape(node.index), np.asarray(node.index).tobytes())
        return ("param", node.param, index)
    if isinstance(node, Data):
        return ("data", np.shape(node.array), np.asarray(node.array, dtype=np.float64).tobytes())
    if isinstance(node, Apply):
        args = tuple(signature(a, plan) for a in node.args)
        return None if None in args else ("apply", node.fn) + args
    return None
