"""Drives a continuous MCMC kernel (MALA, ULA, HMC, RWMH) on a model's continuous block.

The kernel sees a `ModelPotential` over the flat, unconstrained position of the
continuous latent groups; the other groups (observed data and, in mixed
models, the current discrete values) are its context. The potential carries
the temperature (E / T - log|Jacobian| for bounded groups), so kernels run at
T = 1 in that potential.
"""
from __future__ import annotations

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.inference import hmc, langevin, rwmh
from ebmlang.inference.potential import ModelPotential

DEFAULT_STEP = {"mala": 0.1, "ula": 0.01, "hmc": 0.1, "rwmh": 0.5}


def _builders(method: str, step_size: float, adapt_steps: int):
    if method == "mala":
        cfg = langevin.MALAConfig(step_size=step_size, num_warmup=adapt_steps)
        return langevin.mala_init, langevin.build_mala_kernel, cfg
    if method == "ula":
        cfg = langevin.ULAConfig(step_size=step_size)
        return langevin.ula_init, langevin.build_ula_kernel, cfg
    if method == "hmc":
        cfg = hmc.HMCConfig(step_size=step_size, num_warmup=adapt_steps)
        return hmc.hmc_init, hmc.build_hmc_kernel, cfg
    if method == "rwmh":
        cfg = rwmh.RWMHConfig(scale=step_size, num_warmup=adapt_steps)
        return rwmh.rwmh_init, rwmh.build_rwmh_kernel, cfg
    raise EbmError(f"unknown continuous sampler '{method}'", expected="mala, ula, hmc or rwmh")


class ContinuousRunner:
    """Holds the kernel state of the continuous block between steps."""

    def __init__(self, model, method: str, groups, state: dict, temperature: float,
                 adapt_steps: int, step_size: float | None = None):
        self.model = model
        self.method = method
        self.groups = tuple(groups)
        bk = model.backend
        self.backend = bk
        context = {k: v for k, v in state.items() if k not in self.groups}
        self.potential = ModelPotential(model.compiled, model.params, context, self.groups, temperature)
        init, build, config = _builders(method, step_size or DEFAULT_STEP[method], adapt_steps)
        self._init = init
        self.config = config
        kernel = build(bk, config)
        potential = self.potential
        # The potential's context (observed data, discrete values) is an argument so one
        # jitted step serves every sweep of a mixed model.

        def step(key, kernel_state, context):
            return kernel(key, kernel_state, potential.with_context(context))

        def refresh(kernel_state, context):
            local = potential.with_context(context)
            if "grad" in kernel_state._fields:
                energy, grad = local.energy_and_grad(kernel_state.position)
                return kernel_state._replace(energy=energy, grad=grad)
            return kernel_state._replace(energy=local.energy(kernel_state.position))

        self._step = bk.jit(step)
        self._refresh = bk.jit(refresh)
        self.kernel_state = init(bk, self.potential.pack(state), self.potential, config)
        self._context_fixed = not any(
            k for k in context if not model.graph.variables[k].observed and k not in self.groups
            and model.graph.variables[k].domain.is_discrete)
        self.divergences = 0

    def step(self, key, state: dict):
        context = {k: v for k, v in state.items() if k not in self.groups}
        if not self._context_fixed:
            self.kernel_state = self._refresh(self.kernel_state, context)
        self.kernel_state, info = self._step(key, self.kernel_state, context)
        divergent = getattr(info, "is_divergent", None)
        if divergent is not None:
            self.divergences += int(np.sum(self.backend.to_numpy(divergent)))
        values = self.potential.unpack(self.kernel_state.position)
        new_state = dict(state)
        new_state.update(values)
        rate = getattr(info, "acceptance_rate", None)
        return new_state, (None if rate is None else float(np.mean(self.backend.to_numpy(rate))))

    def info(self) -> dict:
        out = {"divergences": self.divergences}
        step = getattr(self.kernel_state, "step_size", None)
        if step is not None:
            out["step_size"] = float(np.mean(self.backend.to_numpy(step)))
        return out
