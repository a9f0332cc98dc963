"""The generic IR evaluator: one walk over a template's node tree, parameterised by a backend's `ops`.

Two halves:

* **Plans** (numpy, built once at compile time). `plan_template` gives every leaf of a
  template an array key and decides how each variable reference is read: a plain gather,
  or -- when the index array is the group's own grid, a cyclic shift of it or a box
  inside it -- a reshape, `roll` or slice, which is cheaper than a gather on a lattice.
  `plan_block` cuts the templates down to the ground factors touching one Gibbs block
  and marks where each block variable sits, for local conditionals.
* **Evaluation** (any backend). `Evaluator` has one method per IR node kind, found by
  name (`eval_Slot`, `eval_Reduce`, ...); a node kind without one goes to
  `unsupported`. A backend is only its `ops` namespace and array conversion.

Shapes follow ebmlang/ir.py: a node evaluates to `[*prefix, num_rows, *inner]`; leaves
without a prefix (params, data) broadcast against it from the right.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.ir import (
    BINARY_FUNCTIONS,
    UNARY_FUNCTIONS,
    Apply,
    Constant,
    Data,
    Extern,
    FactorGraph,
    FactorTemplate,
    Neural,
    Node,
    ParamRef,
    Reduce,
    Select,
    Slot,
    walk,
)

# Activations an `mlp` may name, mapped to the `ops` function that computes them.
ACTIVATIONS = {
    "silu": "silu", "swish": "silu", "relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid",
    "gelu": "gelu", "softplus": "softplus", "elu": "elu", "identity": "identity",
    "linear": "identity",
}

REDUCE_OPS = ("sum", "prod", "mean", "logsumexp", "min", "max")

# What a masked-out entry becomes before reducing, so it changes nothing.
_REDUCE_FILL = {
    "sum": 0.0, "mean": 0.0, "prod": 1.0, "logsumexp": -np.inf, "min": np.inf, "max": -np.inf,
}


# --------------------------------------------------------------------------
# Plans


@dataclass(frozen=True)
class Access:
    """How one Slot or ParamRef reads its (flattened) source.

    kind:
      "gather"    -- take `index` (stored flat under the leaf's key) from the last axis
      "identity"  -- the index is arange(size): a reshape
      "roll"      -- the index is the group's grid rolled by `shifts`: a roll + reshape
      "slice"     -- the index is a box `[start, stop)` per axis of the grid: a slice
      "scalar"    -- a scalar ParamRef (no index)
    shape: the index array's shape (the value's shape after the prefix).
    grid: the shape of the source group or param.
    """

    kind: str
    shape: tuple[int, ...] = ()
    grid: tuple[int, ...] = ()
    shifts: tuple[int, ...] = ()
    box: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, eq=False)
class TemplatePlan:
    """A template ready to evaluate: its leaves' arrays (numpy) under string keys.

    num_rows: ground factors evaluated (all of them, or the rows touching a block).
    keys: leaf node -> key in `arrays` (index, data, mask, constant).
    access: Slot/ParamRef node -> how to read it.
    free: for local conditionals, Slot node -> key of a boolean array (the slot's index
        shape, one row per evaluated row) that is True where the slot reads the variable
        the row is evaluated for.
    """

    template: FactorTemplate
    num_rows: int
    keys: Mapping[Node, str]
    access: Mapping[Node, Access]
    arrays: dict[str, np.ndarray]
    free: Mapping[Node, str] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class BlockPlan:
    """The templates touching one Gibbs block, cut down to the rows that touch it.

    targets[t]: for each row of templates[t], the position (0..n-1) in the block of the
    variable that row is evaluated for. A ground factor holding two block variables is
    two rows, one per variable, so every conditional is exact given the rest of the state.
    """

    group: str
    flat_indices: np.ndarray
    values: np.ndarray
    templates: tuple[TemplatePlan, ...]
    targets: tuple[np.ndarray, ...]


def classify_index(index: np.ndarray, grid: tuple[int, ...]) -> Access:
    """Recognise an index array that is a reshape, cyclic shift or box of `grid`'s arange."""
    index = np.asarray(index)
    shape = tuple(index.shape)
    size = int(np.prod(grid, dtype=np.int64)) if grid else 1
    flat = index.reshape(-1)
    if flat.size == 0 or not grid:
        return Access("gather", shape, grid)
    arange = np.arange(size).reshape(grid)
    if flat.size == size:
        if np.array_equal(flat, arange.reshape(-1)):
            return Access("identity", shape, grid)
        first = np.unravel_index(int(flat[0]), grid)
        shifts = tuple(int(-c % n) for c, n in zip(first, grid))
        rolled = np.roll(arange, shifts, axis=tuple(range(len(grid))))
        if np.array_equal(flat, rolled.reshape(-1)):
            return Access("roll", shape, grid, shifts=shifts)
        return Access("gather", shape, grid)
    start = np.unravel_index(int(flat[0]), grid)
    stop = np.unravel_index(int(flat[-1]), grid)
    extent = [b - a + 1 for a, b in zip(start, stop)]
    if min(extent) >= 1 and int(np.prod(extent)) == flat.size:
        box = tuple((int(a), int(b) + 1) for a, b in zip(start, stop))
        if np.array_equal(flat, arange[tuple(slice(a, b) for a, b in box)].reshape(-1)):
            return Access("slice", shape, grid, box=box)
    return Access("gather", shape, grid)


def plan_template(
    template: FactorTemplate,
    graph: FactorGraph,
    prefix: str,
    rows: np.ndarray | None = None,
    owners: tuple[str, np.ndarray] | None = None,
) -> TemplatePlan:
    """Keys, arrays and read paths for every leaf of `template` (numpy, done once).

    rows: evaluate only these ground factors (in this order, repeats allowed).
    owners: (group, flat index per row): Slots of `group` reading that index are free
        (local conditionals put every value of the domain there).
    """
    num_ground = template.num_ground

    def cut(array: np.ndarray) -> np.ndarray:
        # Leaves that vary per ground factor keep the chosen rows; size-1 leading axes broadcast.
        array = np.asarray(array)
        if rows is not None and array.ndim >= 1 and array.shape[0] == num_ground > 1:
            return array[rows]
        return array

    keys: dict[Node, str] = {}
    access: dict[Node, Access] = {}
    arrays: dict[str, np.ndarray] = {}
    free: dict[Node, str] = {}
    for number, node in enumerate(walk(template.body)):
        key = f"{prefix}_n{number}"
        if isinstance(node, Slot):
            group = _group(graph, node)
            index = cut(_checked_index(node, group.size, f"variable group '{group.name}'"))
            access[node] = classify_index(index, group.shape)
            if access[node].kind == "gather":
                keys[node] = key
                arrays[key] = index.reshape(-1).astype(np.int64)
            if owners is not None and node.group == owners[0]:
                owner = owners[1].reshape((-1,) + (1,) * (index.ndim - 1))
                free[node] = key + "_free"
                arrays[free[node]] = index == owner
        elif isinstance(node, ParamRef):
            param = _param(graph, node.param, node)
            if node.index is None:
                access[node] = Access("scalar", (), param.shape)
                continue
            index = cut(_checked_index(node, param.size, f"param '{param.name}'"))
            access[node] = classify_index(index, (param.size,))
            if access[node].kind != "identity":
                access[node] = Access("gather", tuple(index.shape), param.shape)
                keys[node] = key
                arrays[key] = index.reshape(-1).astype(np.int64)
        elif isinstance(node, Data):
            keys[node] = key
            arrays[key] = cut(np.asarray(node.array, dtype=np.float64))
        elif isinstance(node, Constant):
            keys[node] = key
            arrays[key] = np.asarray(float(node.value), dtype=np.float64)
        elif isinstance(node, Reduce):
            if node.op not in REDUCE_OPS:
                raise EbmError(
                    f"unknown reduction '{node.op}'", node.span,
                    expected="one of " + ", ".join(REDUCE_OPS),
                )
            if node.mask is not None:
                keys[node] = key
                arrays[key] = cut(np.asarray(node.mask, dtype=bool))
        elif isinstance(node, Neural):
            _check_mlp(graph, node)
        elif isinstance(node, Apply):
            _check_apply(node)
    num_rows = num_ground if rows is None else len(rows)
    return TemplatePlan(template, num_rows, keys, access, arrays, free)


def plan_graph(graph: FactorGraph) -> tuple[TemplatePlan, ...]:
    """A plan for every template of `graph`, in the graph's order."""
    return tuple(plan_template(t, graph, f"t{i}") for i, t in enumerate(graph.templates))


def plan_block(graph: FactorGraph, group: str, flat_indices: np.ndarray) -> BlockPlan:
    """Every template touching the block `group[flat_indices]`, cut to the
    (ground factor, block variable) pairs where the factor reads the variable."""
    variables = graph.variables[group]
    position = np.full(variables.size, -1, dtype=np.int64)
    position[flat_indices] = np.arange(len(flat_indices))
    restricted, targets = [], []
    for number, template in enumerate(graph.templates):
        slots = [s for s in template.slots if s.group == group]
        codes = []
        for slot in slots:
            index = np.asarray(slot.index)
            ground = template.num_ground
            read = np.broadcast_to(index, (ground,) + index.shape[1:]).reshape(ground, -1)
            found = position[read]
            hit_rows, _ = np.nonzero(found >= 0)
            codes.append(hit_rows * len(flat_indices) + found[found >= 0])
        if not codes:
            continue
        codes = np.unique(np.concatenate(codes))
        if codes.size == 0:
            continue
        rows, target = codes // len(flat_indices), codes % len(flat_indices)
        owners = (group, np.asarray(flat_indices)[target])
        restricted.append(plan_template(template, graph, f"t{number}", rows, owners))
        targets.append(target)
    return BlockPlan(
        group, np.asarray(flat_indices), variables.domain.values, tuple(restricted), tuple(targets)
    )


def _group(graph: FactorGraph, slot: Slot):
    if slot.group not in graph.variables:
        raise EbmError(
            f"the factor graph reads an undeclared variable group '{slot.group}'", slot.span,
            hint="this is a lowering bug; the template's Slot names a group missing from graph.variables",
        )
    return graph.variables[slot.group]


def _param(graph: FactorGraph, name: str, node: Node):
    if name not in graph.params:
        raise EbmError(
            f"the factor graph reads an undeclared param '{name}'", node.span,
            hint="this is a lowering bug; the template names a param missing from graph.params",
        )
    return graph.params[name]


def _checked_index(node: Node, size: int, what: str) -> np.ndarray:
    index = np.asarray(node.index)
    if not np.issubdtype(index.dtype, np.integer):
        raise EbmError(f"index array into {what} is not integer ({index.dtype})", node.span)
    if index.size and (index.min() < 0 or index.max() >= size):
        raise EbmError(
            f"index out of range for {what} of size {size}: "
            f"indices run from {index.min()} to {index.max()}",
            node.span,
            hint="check the index arithmetic of this term against the declared shape",
        )
    return index


def _check_mlp(graph: FactorGraph, node: Neural) -> None:
    param = _param(graph, node.param, node)
    if not param.is_neural:
        raise EbmError(
            f"'{node.param}' is called like a network but is not an mlp param", node.span,
            notes=[(param.span, f"'{node.param}' is declared here")],
        )
    if param.init.activation not in ACTIVATIONS:
        raise EbmError(
            f"unknown activation '{param.init.activation}' for mlp '{param.name}'", param.span,
            expected="one of " + ", ".join(sorted(ACTIVATIONS)),
        )


def _check_apply(node: Apply) -> None:
    arity = 2 if node.fn in BINARY_FUNCTIONS else 1
    if node.fn not in UNARY_FUNCTIONS + BINARY_FUNCTIONS + ("violation",):
        raise EbmError(f"unknown function '{node.fn}'", node.span)
    if len(node.args) != arity:
        raise EbmError(f"'{node.fn}' takes {arity} argument(s), got {len(node.args)}", node.span)


# --------------------------------------------------------------------------
# Evaluation


@dataclass(frozen=True)
class EvalContext:
    """What a template evaluation reads besides its plan.

    arrays: backend arrays under the plan's keys (index arrays, data, masks, constants).
    state: group -> flattened state [*prefix, size] (prefix [batch] or [batch, 1]).
    params: name -> param array in its declared shape.
    prefix: the leading shape every template value is broadcast to.
    free_values: the block domain's values [K] for local conditionals, else None.
    """

    arrays: Mapping[str, Any]
    state: Mapping[str, Any]
    params: Mapping[str, Any]
    prefix: tuple[int, ...]
    free_values: Any = None


class Evaluator:
    """Evaluates IR node trees with one backend's `ops`; a method per node kind."""

    def __init__(
        self,
        ops: Any,
        backend_name: str,
        graph: FactorGraph,
        lookup_extern: Callable[[str], Callable | None],
    ):
        self.ops = ops
        self.backend_name = backend_name
        self.lookup_extern = lookup_extern
        # mlp param -> (number of layers, ops function of its activation)
        self.mlps = {
            name: (len(p.init.layer_sizes) - 1, getattr(ops, ACTIVATIONS.get(p.init.activation, "silu")))
            for name, p in graph.params.items()
            if p.is_neural
        }
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
        value = self.evaluate(plan.template.body, plan, ctx)
        return self.ops.broadcast_to(value, ctx.prefix + (plan.num_rows,))

    def evaluate(self, node: Node, plan: TemplatePlan, ctx: EvalContext):
        method = getattr(self, "eval_" + type(node).__name__, None)
        if method is None:
            return self.unsupported(node)
        return method(node, plan, ctx)

    def unsupported(self, node: Node):
        raise EbmError(
            f"the {self.backend_name} backend cannot evaluate a {type(node).__name__} node",
            node.span,
            hint="add an eval_" + type(node).__name__ + " method to backends/evaluator.py",
        )

    # -- leaves ------------------------------------------------------------

    def eval_Constant(self, node: Constant, plan: TemplatePlan, ctx: EvalContext):
        return ctx.arrays[plan.keys[node]]

    def eval_Data(self, node: Data, plan: TemplatePlan, ctx: EvalContext):
        return ctx.arrays[plan.keys[node]]

    def eval_Slot(self, node: Slot, plan: TemplatePlan, ctx: EvalContext):
        flat = ctx.state[node.group]
        value = self._read(flat, plan.access[node], ctx.arrays.get(plan.keys.get(node)))
        if node in plan.free:
            is_free = ctx.arrays[plan.free[node]]
            candidates = self.ops.reshape(ctx.free_values, (-1,) + (1,) * is_free.ndim)
            value = self.ops.where(is_free, candidates, value)
        return value

    def eval_ParamRef(self, node: ParamRef, plan: TemplatePlan, ctx: EvalContext):
        param = ctx.params[node.param]
        found = plan.access[node]
        if found.kind == "scalar":
            return self.ops.reshape(param, ())
        return self._read(self.ops.reshape(param, (-1,)), found, ctx.arrays.get(plan.keys.get(node)))

    def _read(self, flat, found: Access, index):
        """Values of `flat` [*lead, size] at an index described by `found`: [*lead, *found.shape]."""
        ops = self.ops
        lead = tuple(flat.shape[:-1])
        if found.kind == "gather":
            return ops.reshape(ops.take(flat, index, -1), lead + found.shape)
        if found.kind == "identity":
            return ops.reshape(flat, lead + found.shape)
        grid = ops.reshape(flat, lead + found.grid)
        axes = tuple(range(-len(found.grid), 0))
        if found.kind == "roll":
            moved = ops.roll(grid, found.shifts, axes)
        else:
            moved = grid[(...,) + tuple(slice(a, b) for a, b in found.box)]
        return ops.reshape(moved, lead + found.shape)

    # -- interior nodes ----------------------------------------------------

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
        if node in plan.keys:
            body = ops.where(ctx.arrays[plan.keys[node]], body, _REDUCE_FILL[node.op])
        if node.op == "sum":
            return ops.sum(body, -1)
        if node.op == "mean":
            if node not in plan.keys:
                return ops.mean(body, -1)
            mask = ctx.arrays[plan.keys[node]]
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

    def eval_Select(self, node: Select, plan: TemplatePlan, ctx: EvalContext):
        ops = self.ops
        vector = self.evaluate(node.vector, plan, ctx)
        if isinstance(node.index, Constant):
            return vector[..., int(node.index.value)]
        index = ops.as_int(ops.round(self.evaluate(node.index, plan, ctx)))
        lead = np.broadcast_shapes(tuple(vector.shape[:-1]), tuple(index.shape))
        vector = ops.broadcast_to(vector, lead + (vector.shape[-1],))
        index = ops.reshape(ops.broadcast_to(index, lead), lead + (1,))
        return ops.reshape(ops.take_along_axis(vector, index, -1), lead)

    def eval_Extern(self, node: Extern, plan: TemplatePlan, ctx: EvalContext):
        fn = self.lookup_extern(node.name)
        if fn is None:
            raise EbmError(
                f"extern '{node.name}' has no implementation for the {self.backend_name} backend",
                node.span,
                hint=f"call register_extern('{node.name}', fn) on the backend or compiled graph",
            )
        return fn(*[self.evaluate(a, plan, ctx) for a in node.args])
