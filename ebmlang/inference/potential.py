"""The continuous part of a model as a potential over one flat position array.

Continuous MCMC kernels and gradient-based minimisers see a position
`[chains, D]`: the latent continuous groups flattened and concatenated.
Bounded reals (`real in [a, b]`) are sampled in unconstrained coordinates
z with x = a + (b - a) * sigmoid(z); the potential adds -log|dx/dz| so that
the samples of x follow exp(-E(x)) exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ebmlang.graph.ir import FactorGraph
from ebmlang.inference.continuous import scaled
from ebmlang.inference.temperature import chain_inverse_temperature


@dataclass(frozen=True)
class GroupLayout:
    group: str
    shape: tuple[int, ...]
    offset: int
    size: int
    low: float | None
    high: float | None

    @property
    def bounded(self) -> bool:
        return self.low is not None


def continuous_layout(graph: FactorGraph, groups) -> tuple[GroupLayout, ...]:
    layout, offset = [], 0
    for name in groups:
        var = graph.variables[name]
        dom = var.domain
        layout.append(GroupLayout(name, var.shape, offset, var.size,
                                  dom.low if dom.kind == "bounded" else None,
                                  dom.high if dom.kind == "bounded" else None))
        offset += var.size
    return tuple(layout)


class ModelPotential:
    """energy(position) and energy_and_grad(position) for the continuous latent groups,
    the other groups held fixed at `context` (observed data and current discrete values)."""

    def __init__(self, compiled, params, context: dict, groups, temperature: float = 1.0,
                 transform_bounded: bool = True):
        self.compiled = compiled
        self.backend = compiled.backend
        self.params = params
        self.context = dict(context)
        self.layout = continuous_layout(compiled.graph, groups)
        self.groups = tuple(groups)
        self.inverse_temperature = 1.0 / float(temperature)
        self.transform_bounded = transform_bounded
        self.dim = sum(g.size for g in self.layout)

    def with_context(self, context: dict) -> "ModelPotential":
        return self.with_inputs(self.params, context)

    def cache_key(self) -> tuple:
        """What a function built around this potential (params and context as arguments)
        depends on: a jitted loop cached under it serves every potential with this key."""
        return ("model", self.groups, self.inverse_temperature, self.transform_bounded)

    def with_inputs(self, params, context: dict) -> "ModelPotential":
        """The same potential at other params and context (a cheap copy, traceable)."""
        clone = object.__new__(ModelPotential)
        clone.__dict__.update(self.__dict__)
        clone.params = params
        clone.context = dict(context)
        return clone

    # -- coordinates -------------------------------------------------------
    def unpack(self, position) -> dict:
        """Model values per group (bounded groups mapped back into [a, b])."""
        ops = self.backend.ops
        chains = position.shape[0]
        out = {}
        for g in self.layout:
            flat = position[:, g.offset:g.offset + g.size]
            if g.bounded and self.transform_bounded:
                flat = g.low + (g.high - g.low) * _sigmoid(ops, flat)
            out[g.group] = ops.reshape(flat, (chains,) + g.shape)
        return out

    def pack(self, values: dict):
        """Position from model values (bounded groups mapped to unconstrained z)."""
        ops = self.backend.ops
        parts = []
        for g in self.layout:
            flat = ops.reshape(values[g.group], (values[g.group].shape[0], g.size))
            if g.bounded and self.transform_bounded:
                eps = 1e-6
                u = ops.clip((flat - g.low) / (g.high - g.low), eps, 1 - eps)
                flat = ops.log(u) - ops.log1p(-u)
            parts.append(flat)
        return ops.concatenate(parts, axis=1)

    # -- energy ------------------------------------------------------------
    def energy(self, position):
        return self.energy_and_grad(position, need_grad=False)[0]

    def energy_and_grad(self, position, need_grad: bool = True):
        ops = self.backend.ops
        values = self.unpack(position)
        state = {**self.context, **values}
        if need_grad:
            energy, grads = self.compiled.energy_and_grad_state(state, self.params, self.groups)
        else:
            energy, grads = self.compiled.energy(state, self.params), None
        chains = position.shape[0]
        inverse_temperature = self.inverse_temperature
        per_chain = chain_inverse_temperature(self.params)
        if per_chain is not None:  # a temperature per chain (replica exchange): [chains]
            energy = energy * per_chain
            per_chain = ops.reshape(per_chain, (chains, 1))
        energy = scaled(energy, inverse_temperature)
        grad_parts = []
        for g in self.layout:
            if need_grad:
                grad = scaled(ops.reshape(grads[g.group], (chains, g.size)), inverse_temperature)
                if per_chain is not None:
                    grad = grad * per_chain
            if g.bounded and self.transform_bounded:
                z = position[:, g.offset:g.offset + g.size]
                s = _sigmoid(ops, z)
                width = g.high - g.low
                # -log|dx/dz| = -(log width + log s + log(1 - s)); softplus form is stable.
                log_jac = np.log(width) - _softplus(ops, -z) - _softplus(ops, z)
                energy = energy - ops.sum(log_jac, axis=1)
                if need_grad:
                    grad = grad * width * s * (1 - s) - (1 - 2 * s)
            if need_grad:
                grad_parts.append(grad)
        if not need_grad:
            return energy, None
        return energy, grad_parts[0] if len(grad_parts) == 1 else ops.concatenate(grad_parts, axis=1)


def _sigmoid(ops, z):
    return 1.0 / (1.0 + ops.exp(-z))


def _softplus(ops, z):
    return ops.maximum(z, 0.0 * z) + ops.log1p(ops.exp(-ops.abs(z)))
