"""`CompiledGraph`: a factor graph compiled to batched energy functions on one backend.

It holds the plans and backend arrays and evaluates energies (total, per template, per
term) through pure kernels that a backend may `jit`. Gibbs block compilation
(blocks.py) and input checks (checks.py) are its mixins; a backend's subclass adds the
two gradient methods.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

from ebmlang.errors import EbmError
from ebmlang.graph.ir import FactorGraph, Node, Slot

from ..evaluator import EvalContext, Evaluator, group_totals, plan_contractions, plan_graph
from ..evaluator.totals import _product_factors
from .blocks import CompiledBlock, GibbsBlocks
from .checks import InputChecks, located
from .interface import Backend
from .networks import NetworkAdapter, adapt_network
from .params import expected_param_shapes, init_params
from .quadratic import QuadraticForms


class CompiledGraph(GibbsBlocks, QuadraticForms, InputChecks, ABC):
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
            # Per template: its contraction plan, or None (it is summed by the evaluator).
            self.contractions = plan_contractions(graph)
            self.contracted = tuple(c for c in self.contractions if c is not None and c.reduces)
            self.totals = group_totals(tuple(
                p for p, c in zip(self.plans, self.contractions) if c is None or not c.reduces
            ))
            self.param_shapes = expected_param_shapes(graph)
        self.arrays = backend.convert_arrays(
            {k: v for plan in self.plans + self.contracted for k, v in plan.arrays.items()}
        )
        self.read_groups = tuple(
            dict.fromkeys(g for t in graph.templates for g in t.groups)
        )
        self.externs: dict[str, Callable] = {}
        self.networks: dict[str, NetworkAdapter] = {}
        self.evaluator = Evaluator(backend.ops, backend.name, graph, self._lookup_extern, self.networks.get)
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

    def register_network(self, name: str, network: Any) -> NetworkAdapter:
        """Implement `extern name : network(...)` for this compiled graph: a torch
        `nn.Module` on torch, `(apply_fn, params)` on JAX (see networks.py). Its weights
        become the params `name.<path>`; `init_params` starts them at the module's values."""
        group = self.graph.params.get(name)
        if group is None or not group.is_network:
            from ebmlang.errors import did_you_mean

            known = [k for k, p in self.graph.params.items() if p.is_network]
            raise EbmError(f"'{name}' is not a network of model '{self.graph.name}'",
                           hint=did_you_mean(name, known) or (f"networks: {', '.join(known)}" if known else
                                                              "declare one with `extern NAME : network(IN -> OUT)`"))
        with located(self.graph):
            adapter = adapt_network(self.backend.name, group, network)
        self.networks[name] = adapter
        shapes = {k: v for k, v in self.param_shapes.items() if not k.startswith(name + ".")}
        shapes.update({f"{name}.{path}": shape for path, shape in adapter.shapes.items()})
        self.param_shapes = shapes
        self._kernels.clear()
        self._memo.clear()
        self._blocks.clear()
        return adapter

    # -- public evaluation ----------------------------------------------------

    def init_params(self, key: Any) -> dict[str, Any]:
        """Every parameter drawn from its ParamInit; mlp layers get PyTorch's default init;
        a registered network's weights start at its module's values."""
        params = init_params(self.graph, self.backend, key)
        for name, adapter in self.networks.items():
            params.update({f"{name}.{path}": self.backend.asarray(v) for path, v in adapter.values.items()})
        return params

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
        flat = {g: self.ops.reshape(v, (v.shape[0],) + ones + (math.prod(v.shape[1:]),)) for g, v in state.items()}
        packed = {
            g: tuple(self.ops.reshape(c, (c.shape[0],) + ones + tuple(c.shape[1:])) for c in classes)
            for g, classes in packed.items()
        }
        return EvalContext(arrays, flat, params, (batch,) + tuple(extra_prefix), free_values, packed)

    @staticmethod
    def _batch(state: Mapping[str, Any]) -> int:
        # Groups with a batch of 1 broadcast against the others.
        return max([v.shape[0] for v in state.values()] or [1])

    def energy_pure(self, arrays, state, params, zero_groups: frozenset = frozenset()):
        """Total energy [batch]. zero_groups: groups whose values are all zero in `state`;
        templates that are products with one of their values as a factor vanish there and
        are skipped (the free energy of a summed-out binary group needs only the rest)."""
        ctx = self.context(arrays, state, params)
        total = None
        for group in self.totals:
            if zero_groups and all(_vanishes(plan.template.body, zero_groups) for plan in group.plans):
                continue
            value = self.evaluator.group_total(group, ctx)
            total = value if total is None else total + value
        for contraction in self.contracted:
            if zero_groups and any(f.slot is not None and f.slot.group in zero_groups for f in contraction.factors):
                continue
            value = self.evaluator.contraction_total(contraction, ctx)
            total = value if total is None else total + value
        return total if total is not None else self.ops.zeros(ctx.prefix)

    def template_pure(self, arrays, state, params):
        ctx = self.context(arrays, state, params)
        return {p.template.name: self.evaluator.template_value(p, ctx) for p in self.plans}

    def energy_kernel(self, zero_groups: frozenset = frozenset()) -> Callable:
        """`energy_pure` with `zero_groups` fixed, jitted once: (arrays, state, params) -> [batch]."""
        zero_groups = frozenset(zero_groups)
        return self._kernel(("energy", zero_groups),
                            lambda arrays, state, params: self.energy_pure(arrays, state, params, zero_groups))

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


def _vanishes(body: Node, zero_groups: frozenset) -> bool:
    """Whether a template body is a product with a bare value of a zeroed group as a factor."""
    factors, _ = _product_factors(body)
    return any(isinstance(f, Slot) and not f.vector and f.group in zero_groups for f in factors)
