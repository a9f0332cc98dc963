"""The backend interface: array primitives, explicit-key randomness, `jit`, and `compile`.

A backend is one file: a subclass of `Backend` (arrays, keys, `ops`) and, when it can
differentiate, a subclass of `CompiledGraph` adding the two gradient methods. Everything
else -- walking the IR, local conditionals, parameter initialisation, input checks --
is shared here and in `backends/evaluator.py`.

Conventions (docs/architecture.md): states are `{group: [batch, *shape]}` float arrays
(discrete groups hold their values), params a flat `{name: array}` dict, and every
random draw takes an explicit key.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ebmlang.errors import EbmError, did_you_mean
from ebmlang.ir import Extern, FactorGraph, ParamGroup, walk

from .evaluator import (
    BlockPlan,
    EvalContext,
    Evaluator,
    group_totals,
    linear_form,
    plan_block,
    plan_graph,
    signature,
)
from .layout import read_through, write_through

FLOAT_DTYPES = ("float32", "float64")

# The names every backend's `ops` namespace provides, with numpy semantics
# (`axis` keywords, broadcasting). Inference kernels may use any of them.
# `blend(mask, x, y)` is `where` for finite x and y (arrays or numbers): a backend may
# compute it arithmetically (torch's `where` on CPU is several times slower than `lerp`).
OPS_NAMES = (
    # elementwise
    "exp", "log", "log1p", "expm1", "sqrt", "abs", "square", "sign", "sin", "cos", "tanh",
    "sigmoid", "softplus", "relu", "silu", "gelu", "elu", "identity", "power", "mod", "round",
    "where", "blend", "minimum", "maximum", "clip", "isfinite", "logical_and", "logical_or",
    "as_float", "as_int",
    # reductions
    "sum", "mean", "prod", "max", "min", "logsumexp", "softmax", "all", "any",
    "argmin", "argmax", "cumsum",
    # shapes and construction
    "stack", "concatenate", "reshape", "broadcast_to", "swapaxes", "roll",
    "zeros", "zeros_like", "ones_like", "full_like", "arange",
    # indexing
    "take", "take_along_axis", "index_add",
    # linear algebra
    "matmul", "einsum", "linear", "vecdot",
)


def check_dtype(dtype: str) -> str:
    """The float dtype name, or an EbmError listing the supported ones."""
    name = str(dtype).replace("torch.", "")
    if name not in FLOAT_DTYPES:
        raise EbmError(
            f"unsupported dtype '{dtype}'", expected="one of " + ", ".join(FLOAT_DTYPES)
        )
    return name


# --------------------------------------------------------------------------
# Keys for backends without a native key type (numpy, torch): a key is a uint64.


def seed_key(seed: int) -> int:
    """A key from an integer seed."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise EbmError(f"a random seed must be an integer, got {type(seed).__name__}")
    return int(seed) % 2**64


def split_seed_key(key: int, num: int = 2) -> tuple[int, ...]:
    """`num` independent keys derived from `key` (numpy SeedSequence hashing)."""
    words = np.random.SeedSequence(int(key)).generate_state(num, dtype=np.uint64)
    return tuple(int(w) for w in words)


# --------------------------------------------------------------------------
# Backend


class Backend(ABC):
    """Array primitives, randomness and compilation for one array library.

    name: the entry-point name ("numpy", "torch", "jax").
    device: where arrays live (backend-specific string, e.g. "cpu", "cuda:0").
    dtype: "float32" or "float64" -- the float dtype of states, params and energies.
    ops: a namespace of numpy-like functions on this backend's arrays (OPS_NAMES).
    """

    name: str = "abstract"
    compiled_class: type["CompiledGraph"]
    index_dtype: str = "int64"  # integer dtype of the IR's index arrays on this backend

    def __init__(self, device: str | None = None, dtype: str = "float32"):
        self.dtype = check_dtype(dtype)
        self.device = device
        self.externs: dict[str, Callable] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r}, dtype={self.dtype!r})"

    # -- arrays --------------------------------------------------------------

    @property
    @abstractmethod
    def ops(self) -> Any:
        """The numpy-like namespace over this backend's arrays."""

    @abstractmethod
    def asarray(self, x: Any, dtype: str | None = None) -> Any:
        """`x` as a backend array; dtype defaults to the backend float dtype
        ("float32", "float64", "int32", "int64" or "bool" otherwise)."""

    @abstractmethod
    def to_numpy(self, x: Any) -> np.ndarray:
        """A numpy copy of a backend array (detached from any autodiff graph)."""

    def zeros(self, shape: tuple[int, ...]) -> Any:
        return self.asarray(np.zeros(shape))

    def full(self, shape: tuple[int, ...], value: float) -> Any:
        return self.asarray(np.full(shape, value))

    def take(self, values: Any, labels: Any) -> Any:
        """`values[labels]`: entries of a 1-D array at integer labels of any shape
        (e.g. domain values at labels drawn by `categorical`)."""
        return self.ops.reshape(
            self.ops.take(values, self.ops.reshape(labels, (-1,)), 0), tuple(labels.shape)
        )

    @abstractmethod
    def set_flat(self, array: Any, flat_indices: Any, values: Any) -> Any:
        """A copy of `array` [batch, *shape] whose entries at `flat_indices` (into the
        flattened shape) are `values` [batch, n]; the input is left unchanged."""

    # -- randomness (explicit keys) --------------------------------------------

    @abstractmethod
    def key(self, seed: int) -> Any:
        """A random key from an integer seed."""

    @abstractmethod
    def split(self, key: Any, num: int = 2) -> tuple:
        """`num` new independent keys from `key`."""

    @abstractmethod
    def uniform(self, key: Any, shape: tuple[int, ...]) -> Any:
        """Uniform draws in [0, 1) of the backend float dtype."""

    @abstractmethod
    def normal(self, key: Any, shape: tuple[int, ...]) -> Any:
        """Standard normal draws of the backend float dtype."""

    @abstractmethod
    def categorical(self, key: Any, logits: Any) -> Any:
        """Integer labels drawn with probabilities softmax(logits) over the last axis."""

    @abstractmethod
    def gumbel_argmax(self, uniform: Any, logits: Any) -> Any:
        """argmax over the last axis of logits + Gumbel noise made from `uniform` (draws in
        [0, 1) of the logits' shape): a categorical draw given its random numbers."""

    @abstractmethod
    def randint(self, key: Any, shape: tuple[int, ...], low: int, high: int) -> Any:
        """Integers uniform in [low, high)."""

    # -- transformation ----------------------------------------------------------

    @abstractmethod
    def jit(self, fn: Callable) -> Callable:
        """`fn` compiled for this backend where that is possible (identity otherwise)."""

    def jit_step(self, draw: Callable, move: Callable) -> Callable:
        """`step(key, state, *args) = move(state, draw(key, state), *args)`, compiled where
        possible: a random step split into its draws and a deterministic move, so that a
        backend whose random numbers cannot be traced still compiles the move."""
        return self.jit(lambda key, state, *args: move(state, draw(key, state), *args))

    def value_and_grad(self, fn: Callable) -> Callable:
        """`fn(x, *args) -> scalar` turned into `(x, *args) -> (value, grad wrt x)`;
        `x` may be an array or a dict of arrays."""
        raise EbmError(
            f"the {self.name} backend cannot differentiate",
            hint="use get_backend('torch') or get_backend('jax') for gradients",
        )

    # -- externs and compilation ---------------------------------------------------

    def register_extern(self, name: str, fn: Callable) -> None:
        """Implement `extern name` for every graph compiled by this backend.
        `fn` takes and returns this backend's arrays and must broadcast elementwise."""
        if not callable(fn):
            raise EbmError(f"extern '{name}' must be registered with a callable")
        self.externs[name] = fn

    def compile(self, graph: FactorGraph) -> "CompiledGraph":
        """The batched energy functions of `graph` on this backend."""
        return self.compiled_class(graph, self)

    def convert_arrays(self, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Plan arrays (numpy) as backend arrays, keeping integer and boolean kinds."""
        out = {}
        for key, value in arrays.items():
            if value.dtype == bool:
                out[key] = self.asarray(value, "bool")
            elif np.issubdtype(value.dtype, np.integer):
                out[key] = self.asarray(value, self.index_dtype)
            else:
                out[key] = self.asarray(value)
        return out


# --------------------------------------------------------------------------
# Compiled graph


@dataclass(frozen=True, eq=False)
class CompiledBlock:
    """One Gibbs block (a group's variables at flat indices) compiled for local updates:
    its conditional table and the reads and writes of its values in a state array.

    The methods take the sampler's own, already checked, backend arrays (no input checks),
    so a sweep can call them inside `jit`. A block with a strided layout (a checkerboard
    colour) reads and writes through slices and selects, the whole group through a
    reshape; any other through a gather and a scatter.
    """

    plan: BlockPlan
    arrays: dict
    kernel: Callable
    backend: "Backend"

    @property
    def group(self) -> str:
        return self.plan.group

    @property
    def whole_group(self) -> bool:
        return self.plan.layout is None and "indices" not in self.arrays

    def conditional(self, state: Mapping[str, Any], params: Mapping[str, Any], packed=None) -> Any:
        """Energy of each value of each block variable given the rest: [batch, n, K].
        packed: class arrays of the groups the block was planned packed (`gibbs_block`)."""
        return self.backend.ops.swapaxes(self.by_value(state, params, packed), -1, -2)

    def by_value(self, state: Mapping[str, Any], params: Mapping[str, Any], packed=None) -> Any:
        """The same energies value-major, [batch, K, n] (each value's row contiguous)."""
        return self.kernel(self.arrays, state, params, packed or {})

    def current(self, values: Any) -> Any:
        """The block's entries of a group array [batch, *shape]: [batch, n]."""
        ops, batch = self.backend.ops, values.shape[0]
        if self.plan.layout is not None:
            return read_through(ops, self.plan.layout, self.arrays, values, (batch,))
        flat = ops.reshape(values, (batch, -1))
        return flat if self.whole_group else ops.take(flat, self.arrays["indices"], 1)

    def replace(self, values: Any, new: Any) -> Any:
        """A copy of the group array `values` with the block's entries set to `new` [batch, n]."""
        ops = self.backend.ops
        if self.plan.layout is not None:
            return write_through(ops, self.plan.layout, self.arrays, values, new)
        if self.whole_group:
            return ops.reshape(ops.as_float(new), tuple(values.shape))
        return self.backend.set_flat(values, self.plan.flat_indices, new)


@contextmanager
def located(graph: FactorGraph):
    """Errors raised inside quote the graph's source line."""
    try:
        yield
    except EbmError as error:
        if graph.source:
            error.with_source(graph.source)
        raise


class CompiledGraph(ABC):
    """A factor graph compiled to batched functions on one backend.

    Index arrays are converted to backend arrays once, here; each call walks the small
    node trees (or, under `jit`, is traced once) and does only batched array work.
    """

    def __init__(self, graph: FactorGraph, backend: Backend):
        self.graph = graph
        self.backend = backend
        self.ops = backend.ops
        with located(graph):
            self.plans = plan_graph(graph)
            self.totals = group_totals(self.plans)
            self.param_shapes = expected_param_shapes(graph)
        self.arrays = backend.convert_arrays(
            {k: v for plan in self.plans for k, v in plan.arrays.items()}
        )
        self.read_groups = tuple(
            dict.fromkeys(g for t in graph.templates for g in t.groups)
        )
        self.externs: dict[str, Callable] = {}
        self.evaluator = Evaluator(backend.ops, backend.name, graph, self._lookup_extern)
        self._kernels: dict[Any, Callable] = {}
        self._memo: dict[Any, Any] = {}
        self._blocks: dict[tuple[str, bytes], CompiledBlock] = {}

    def __repr__(self) -> str:
        return f"<CompiledGraph {self.graph.name!r} on {self.backend!r}>"

    # -- externs -----------------------------------------------------------------

    def register_extern(self, name: str, fn: Callable) -> None:
        """Implement `extern name` for this compiled graph (overrides the backend's)."""
        if not callable(fn):
            raise EbmError(f"extern '{name}' must be registered with a callable")
        self.externs[name] = fn
        # Traced kernels captured the previous implementation.
        self._kernels.clear()
        self._memo.clear()
        self._blocks.clear()

    def _lookup_extern(self, name: str) -> Callable | None:
        return self.externs.get(name) or self.backend.externs.get(name)

    # -- public evaluation ----------------------------------------------------

    def init_params(self, key: Any) -> dict[str, Any]:
        """Every parameter drawn from its ParamInit; mlp layers get PyTorch's default init."""
        return init_params(self.graph, self.backend, key)

    def energy(self, state: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
        """Total energy of each state: [batch]."""
        state, params = self.inputs(state, params)
        return self._kernel("energy", self.energy_pure)(self.arrays, state, params)

    def template_energies(self, state: Mapping[str, Any], params: Mapping[str, Any]) -> dict:
        """Energy of every ground factor: {template name: [batch, num_ground]}."""
        state, params = self.inputs(state, params)
        return self._kernel("templates", self.template_pure)(self.arrays, state, params)

    def term_energies(self, state: Mapping[str, Any], params: Mapping[str, Any]) -> dict:
        """Energy per term of the model: {term: [batch]} (sums of its templates)."""
        templates = self.template_energies(state, params)
        terms = {}
        for template in self.graph.templates:
            energy = self.ops.sum(templates[template.name], -1)
            terms[template.term] = terms[template.term] + energy if template.term in terms else energy
        batch = next(iter(templates.values())).shape[0] if templates else self._batch(state)
        return {t: terms[t] if t in terms else self.ops.zeros((batch,)) for t in self.graph.terms}

    def local_conditional(
        self, group: str, flat_indices: Any, state: Mapping[str, Any], params: Mapping[str, Any]
    ) -> Any:
        """Energy of every value label of each listed variable of a discrete group, the rest
        of the state held fixed: [batch, n, K], correct up to a constant per variable.

        Only factors touching the listed variables are evaluated, once per template with a
        value axis; the cut-down index arrays are cached per (group, indices).
        """
        block = self._block(group, flat_indices)
        state, params = self.inputs(state, params)
        return block.conditional(state, params)

    @abstractmethod
    def energy_and_grad_state(
        self, state: Mapping[str, Any], params: Mapping[str, Any], groups: tuple[str, ...]
    ) -> tuple[Any, dict[str, Any]]:
        """(energy [batch], {group: d energy / d state[group]}) treating the groups as real."""

    @abstractmethod
    def grad_params(
        self, state: Mapping[str, Any], params: Mapping[str, Any], weights: Any = None
    ) -> dict[str, Any]:
        """Gradient w.r.t. every param of mean(energy) over the batch, or, with `weights`
        [batch], of sum(weights * energy) (pass +1/n and -1/m to get a CD gradient)."""

    def complete_grads(self, groups: tuple[str, ...], grads: dict, batch: int) -> dict:
        """State gradients in `groups` order; zeros for groups no term reads."""
        return {
            g: grads[g] if g in grads else self.ops.zeros((batch,) + self.graph.variables[g].shape)
            for g in groups
        }

    # -- pure kernels: (arrays, state, params) -> arrays ------------------------

    def context(self, arrays, state, params, extra_prefix=(), free_values=None, packed=None) -> EvalContext:
        """The evaluation context of a batch: flattened state, packed groups' class arrays
        (with the same extra prefix axes) and the value prefix."""
        packed = packed or {}
        batch = self._batch({**state, **{g: classes[0] for g, classes in packed.items()}})
        ones = tuple(1 for _ in extra_prefix)
        flat = {g: self.ops.reshape(v, (v.shape[0],) + ones + (-1,)) for g, v in state.items()}
        packed = {
            g: tuple(self.ops.reshape(c, (c.shape[0],) + ones + tuple(c.shape[1:])) for c in classes)
            for g, classes in packed.items()
        }
        return EvalContext(arrays, flat, params, (batch,) + tuple(extra_prefix), free_values, packed)

    @staticmethod
    def _batch(state: Mapping[str, Any]) -> int:
        # Groups with a batch of 1 broadcast against the others.
        return max([v.shape[0] for v in state.values()] or [1])

    def energy_pure(self, arrays, state, params):
        ctx = self.context(arrays, state, params)
        total = None
        for group in self.totals:
            value = self.evaluator.group_total(group, ctx)
            total = value if total is None else total + value
        return total if total is not None else self.ops.zeros(ctx.prefix)

    def template_pure(self, arrays, state, params):
        ctx = self.context(arrays, state, params)
        return {p.template.name: self.evaluator.template_value(p, ctx) for p in self.plans}

    def memo(self, key: Any, build: Callable[[], Any]) -> Any:
        """`build()` once per `key` for this graph, e.g. a jitted sampler step that later
        runs reuse instead of retracing (JAX) or recompiling (torch.compile) a fresh
        closure. Forgotten when an extern is registered, like the kernels."""
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    def _kernel(self, name: Any, fn: Callable) -> Callable:
        if name not in self._kernels:
            self._kernels[name] = self.backend.jit(fn)
        return self._kernels[name]

    # -- local conditionals -------------------------------------------------------

    def gibbs_block(self, group: str, flat_indices: Any, packing: Mapping | None = None) -> CompiledBlock:
        """The compiled block `group[flat_indices]` (checked and cached): build it outside
        any `jit` trace, then call its methods inside. packing: {group: PackedGroup} of
        groups a sampler carries packed (backends/layout.py)."""
        return self._block(group, flat_indices, packing)

    def _block(self, group: str, flat_indices: Any, packing: Mapping | None = None) -> CompiledBlock:
        indices = np.asarray(self.backend.to_numpy(flat_indices))
        packing = dict(packing or {})
        packed_key = tuple(sorted(
            (g, tuple(layout.flat_indices.tobytes() for layout in p.layouts)) for g, p in packing.items()
        ))
        cache_key = (group, indices.astype(np.int64).tobytes(), packed_key)
        if cache_key not in self._blocks:
            with located(self.graph):
                indices = self._check_block(group, indices)
                plan = plan_block(self.graph, group, indices, packing)
            arrays = dict(self.backend.convert_arrays(
                {k: v for t in plan.templates for k, v in t.arrays.items()}
            ))
            arrays.update(self.backend.convert_arrays(
                {f"target{i}": target.astype(np.int64)
                 for i, target in enumerate(plan.targets) if target is not None}
            ))
            arrays["values"] = self.backend.asarray(plan.values)
            if plan.layout is not None:
                arrays.update(self.backend.convert_arrays(plan.layout.arrays()))
            elif not np.array_equal(indices, np.arange(self.graph.variables[group].size)):
                arrays.update(self.backend.convert_arrays({"indices": indices}))
            self._blocks[cache_key] = CompiledBlock(
                plan, arrays, self.backend.jit(self._conditional_kernel(plan)), self.backend
            )
        return self._blocks[cache_key]

    def _conditional_kernel(self, plan: BlockPlan) -> Callable:
        """[batch, K, n] energies of a block's values. Templates linear in the value
        (`linear_form`) are summed per variable first -- one local field per group of
        equal scalar factors -- and spread over the values once at the end.

        (A binary block could return only E(v0) - E(v1), one op fewer for eager torch;
        under jax.jit that smaller output let XLA fuse the neighbour rolls into one
        loop and ran the 64x64 Ising sweep 35% slower, so every block returns the table.)"""
        ops, evaluator = self.ops, self.evaluator
        size, num_values = len(plan.flat_indices), len(plan.values)
        forms = [linear_form(t) if target is None else None for t, target in zip(plan.templates, plan.targets)]
        scalar_groups: dict[tuple, list[int]] = {}
        for i, form in enumerate(forms):
            if form is not None:
                signatures = [signature(s, plan.templates[i]) for s in form.scalars]
                # Scalars without a comparable signature keep their template to itself.
                key = (i,) if None in signatures else (form.negate,) + tuple(sorted(map(repr, signatures)))
                scalar_groups.setdefault(key, []).append(i)

        def conditional(arrays, state, params, packed=None):
            ctx = self.context(arrays, state, params, (num_values,), arrays["values"], packed)
            table = None
            field = None
            for members in scalar_groups.values():
                summed, ones = None, 0
                for i in members:
                    coefficient = evaluator.linear_coefficient(plan.templates[i], forms[i], ctx)
                    if coefficient is None:  # 1 on every row
                        ones += 1
                    else:
                        summed = coefficient if summed is None else summed + coefficient
                if ones:
                    summed = float(ones) if summed is None else summed + float(ones)
                first = forms[members[0]]
                scale = evaluator.scalar_product(first.scalars, plan.templates[members[0]], ctx)
                # The sign joins the (0-d) scale, not the per-variable sum.
                if first.negate:
                    scale = -1.0 if scale is None else -scale
                if scale is not None:
                    summed = scale if isinstance(summed, float) and summed == 1.0 else summed * scale
                field = summed if field is None else field + summed
            if field is not None:
                table = ops.reshape(arrays["values"], (num_values, 1)) * field
            for i, (template, target) in enumerate(zip(plan.templates, plan.targets)):
                if forms[i] is not None:
                    continue
                rows = evaluator.template_value(template, ctx)
                if target is None:
                    table = rows if table is None else table + rows
                else:  # several rows per variable: scatter-add them (into a full table:
                    # a field of numbers alone is only [K, 1])
                    full = ctx.prefix + (size,)
                    into = ops.zeros(full) if table is None else ops.broadcast_to(table, full)
                    table = ops.index_add(into, arrays[f"target{i}"], rows)
            table = table if table is not None else ops.zeros(ctx.prefix + (size,))
            return ops.broadcast_to(table, ctx.prefix + (size,))
        return conditional

    def _check_block(self, group: str, indices: np.ndarray) -> np.ndarray:
        variables = self.graph.variables.get(group)
        if variables is None:
            raise EbmError(
                f"no variable group '{group}' in model '{self.graph.name}'",
                hint=did_you_mean(group, self.graph.variables),
            )
        if not variables.domain.is_discrete:
            raise EbmError(
                f"local conditionals need a discrete group; '{group}' is {variables.domain}",
                variables.span,
                hint="update continuous groups with energy_and_grad_state (Langevin, HMC)",
            )
        if indices.size == 0:
            raise EbmError(f"empty block of '{group}'")
        if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
            raise EbmError(f"block indices of '{group}' must be a 1-D integer array")
        if indices.min() < 0 or indices.max() >= variables.size:
            raise EbmError(
                f"block indices of '{group}' must lie in 0..{variables.size - 1}", variables.span
            )
        if np.unique(indices).size != indices.size:
            raise EbmError(f"block indices of '{group}' repeat a variable", variables.span)
        return indices.astype(np.int64)

    # -- inputs ----------------------------------------------------------------------

    def inputs(self, state: Mapping[str, Any], params: Mapping[str, Any]) -> tuple[dict, dict]:
        """Checked and converted (state, params); an EbmError on bad input.

        The returned state holds the groups the templates read (or, when they read none,
        whatever was given, to carry the batch size); params hold the graph's params.
        """
        self.check_externs()
        return self.check_state(state, self.convert), self.check_params(params, self.convert)

    def convert(self, value: Any) -> Any:
        """`value` as a backend float array (no copy when it already is one)."""
        return self.backend.asarray(value)

    def check_state(self, state: Mapping[str, Any], convert: Callable) -> dict:
        """Names, shapes and batch sizes of a state dict, converted with `convert`."""
        graph = self.graph
        if not isinstance(state, Mapping):
            raise EbmError("a state must be a dict {group: array [batch, *shape]}")
        converted = {}
        batch = None
        for name, value in state.items():
            group = graph.variables.get(name)
            if group is None:
                raise EbmError(
                    f"state names '{name}', which is not a variable group of model '{graph.name}'",
                    hint=did_you_mean(name, graph.variables)
                    or "groups: " + ", ".join(graph.variables),
                )
            array = convert(value)
            if tuple(array.shape[1:]) != group.shape or len(array.shape) != len(group.shape) + 1:
                raise EbmError(
                    f"state['{name}'] has shape {tuple(array.shape)}; "
                    f"expected {_batched(group.shape)}",
                    group.span,
                    hint="states carry a leading batch axis",
                ).with_source(graph.source)
            if batch not in (None, 1) and array.shape[0] not in (1, batch):
                raise EbmError(
                    f"state['{name}'] has batch {array.shape[0]} but other groups have {batch}",
                    group.span,
                    hint="give every group the same batch size (a batch of 1 broadcasts)",
                ).with_source(graph.source)
            batch = array.shape[0] if batch in (None, 1) else batch
            converted[name] = array
        for name in self.read_groups:
            if name not in converted:
                group = graph.variables[name]
                raise EbmError(
                    f"state has no values for variable group '{name}'",
                    group.span,
                    hint=f"pass state['{name}'] with shape {_batched(group.shape)}",
                ).with_source(graph.source)
        if self.read_groups:
            return {name: converted[name] for name in self.read_groups}
        return converted

    def check_params(self, params: Mapping[str, Any], convert: Callable) -> dict:
        """Every param the graph needs, with its declared shape, converted with `convert`."""
        if not isinstance(params, Mapping):
            raise EbmError("params must be a dict {name: array}")
        ready = {}
        for name, shape in self.param_shapes.items():
            declared = self.graph.params.get(name) or self.graph.params[name.rsplit(".", 2)[0]]
            if name not in params:
                raise EbmError(
                    f"params has no entry '{name}'", declared.span,
                    hint="compiled.init_params(backend.key(seed)) creates every param",
                ).with_source(self.graph.source)
            array = convert(params[name])
            if tuple(array.shape) != shape:
                raise EbmError(
                    f"params['{name}'] has shape {tuple(array.shape)}; expected {shape}",
                    declared.span,
                ).with_source(self.graph.source)
            ready[name] = array
        return ready

    def check_externs(self) -> None:
        """Every extern the graph calls has an implementation."""
        for name in self.graph.externs:
            if self._lookup_extern(name) is None:
                raise EbmError(
                    f"extern '{name}' has no implementation for the {self.backend.name} backend",
                    extern_span(self.graph, name),
                    hint=f"call register_extern('{name}', fn) on the backend or compiled graph",
                ).with_source(self.graph.source)

    def check_groups(self, groups: str | tuple[str, ...]) -> tuple[str, ...]:
        """The groups to differentiate: names of variable groups of the graph."""
        groups = (groups,) if isinstance(groups, str) else tuple(groups)
        for name in groups:
            if name not in self.graph.variables:
                raise EbmError(
                    f"no variable group '{name}' in model '{self.graph.name}'",
                    hint=did_you_mean(name, self.graph.variables)
                    or "groups: " + ", ".join(self.graph.variables),
                )
        return groups


def _batched(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(["batch", *map(str, shape)]) + "]"


def expected_param_shapes(graph: FactorGraph) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every entry of a params dict (mlp params expand to layers)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, param in graph.params.items():
        if param.is_neural:
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


def _init_args(name: str, param: ParamGroup, count: int) -> tuple[float, ...]:
    if len(param.init.args) != count:
        raise EbmError(
            f"{param.init.kind} initialiser of '{name}' takes {count} numbers, "
            f"got {len(param.init.args)}",
            param.span,
        )
    return tuple(float(a) for a in param.init.args)


def extern_span(graph: FactorGraph, name: str):
    """Where an extern is first used (or the first template's span)."""
    for template in graph.templates:
        for node in walk(template.body):
            if isinstance(node, Extern) and node.name == name:
                return node.span
    return None
