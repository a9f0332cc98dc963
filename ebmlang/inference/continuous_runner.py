"""Drives a continuous MCMC kernel (MALA, ULA, HMC, RWMH) on a model's continuous block.

The kernel sees a `ModelPotential` over the flat, unconstrained position of the
continuous latent groups; the other groups (observed data and, in mixed
models, the current discrete values) are its context. The potential carries
the temperature (E / T - log|Jacobian| for bounded groups), so kernels run at
T = 1 in that potential.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.inference import hmc, langevin, rwmh
from ebmlang.inference.adaptation import dual_averaging_init
from ebmlang.inference.continuous import select_chains
from ebmlang.inference.potential import ModelPotential

DEFAULT_STEP = {"mala": 0.1, "ula": 0.01, "hmc": 0.1, "rwmh": 0.5}
# A step in which more than half the chains diverge halves the step size; a sampler
# still diverging after this many halvings (1/1024 of its step) has a deeper problem.
MAX_STEP_HALVINGS = 10
# Where each method keeps its step size: a kernel-state field (adapted by dual averaging),
# or only the config the kernel was built from (ULA).
# Mean acceptance probability below which Metropolis chains count as frozen.
FROZEN_ACCEPTANCE = 1e-3
_LABEL = {"mala": "Langevin (MALA)", "ula": "Langevin (ULA)", "hmc": "HMC", "rwmh": "random-walk Metropolis"}
_STEP_FIELD = {"mala": "step_size", "hmc": "step_size", "rwmh": "scale", "ula": None}


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
        self._build = build
        # What cached steps close over: the potential without this run's params and
        # context, which the steps take as arguments.
        self._template = template = self.potential.with_inputs({}, {})
        self._compile_step(config)

        def build_refresh():
            def refresh(kernel_state, context, params):
                local = template.with_inputs(params, context)
                if "grad" in kernel_state._fields:
                    energy, grad = local.energy_and_grad(kernel_state.position)
                    return kernel_state._replace(energy=energy, grad=grad)
                return kernel_state._replace(energy=local.energy(kernel_state.position))

            return bk.jit(refresh)

        self._refresh = model.compiled.memo(("refresh",) + self._potential_key(), build_refresh)
        self.kernel_state = init(bk, self.potential.pack(state), self.potential, config)
        self._context_fixed = not any(
            k for k in context if not model.graph.variables[k].observed and k not in self.groups
            and model.graph.variables[k].domain.is_discrete)
        self.divergences = 0
        self.halvings = 0
        self._recovering = False

    def _potential_key(self) -> tuple:
        potential = self.potential
        return (self.groups, potential.inverse_temperature, potential.transform_bounded)

    def _compile_step(self, config) -> None:
        """The jitted kernel step for `config`, built once per model graph: later runs with
        the same sampler settings reuse it (a new closure would retrace or recompile)."""
        template = self._template

        def build_step():
            kernel = self._build(self.backend, config)

            # The potential's context (observed data, discrete values) and the params are
            # arguments, so one jitted step serves every sweep and every run.
            def move(kernel_state, draws, context, params):
                return kernel.move(kernel_state, draws, template.with_inputs(params, context))

            return self.backend.jit_step(kernel.draw, move)

        key = ("continuous step", self.method, repr(config)) + self._potential_key()
        self._step = self.model.compiled.memo(key, build_step)

    def step_size(self) -> float:
        """The current step size (proposal scale for RWMH), averaged over chains."""
        field = _STEP_FIELD[self.method]
        if field is None:
            return float(self.config.step_size)
        return float(np.mean(self.backend.to_numpy(getattr(self.kernel_state, field))))

    def step(self, key, state: dict):
        context = {k: v for k, v in state.items() if k not in self.groups}
        if not self._context_fixed:
            self.kernel_state = self._refresh(self.kernel_state, context, self.potential.params)
        before = self.kernel_state
        self.kernel_state, info = self._step(key, before, context, self.potential.params)
        divergent = getattr(info, "is_divergent", None)
        flags = np.zeros(0, dtype=bool) if divergent is None else self.backend.to_numpy(divergent).astype(bool)
        diverged = int(np.sum(flags))
        self.divergences += diverged
        if diverged and self.method == "ula":
            # ULA has no Metropolis test to reject a blow-up: undo it, or the chain runs off
            # to where no smaller step can bring it back.
            self.kernel_state = type(before)(*(select_chains(self.backend.ops, divergent, old, new)
                                               for new, old in zip(self.kernel_state, before)))
        values = self.potential.unpack(self.kernel_state.position)
        new_state = dict(state)
        new_state.update(values)
        rate = getattr(info, "acceptance_rate", None)
        rate = None if rate is None else float(np.mean(self.backend.to_numpy(rate)))
        if 2 * diverged > flags.size:
            self._halve_step_size(f"{_LABEL[self.method]} diverged in {diverged} of {flags.size} chains", new_state)
            self._recovering = True
        elif self._recovering and rate is not None:
            # Just below the diverging step, Metropolis chains often stay frozen (every
            # proposal overshoots and is rejected): keep halving until they move again.
            if rate < FROZEN_ACCEPTANCE:
                self._halve_step_size(f"after diverging, {_LABEL[self.method]} still rejects every proposal "
                                      f"(mean acceptance {rate:.2g} in {flags.size} chains)", new_state)
            else:
                self._recovering = False
        return new_state, rate

    def _halve_step_size(self, why: str, state: dict) -> None:
        """Halve the step after a step where most chains diverged, with a warning; after
        MAX_STEP_HALVINGS, or where the chains' own energy is not finite, an EbmError."""
        old = self.step_size()
        energy = self.backend.to_numpy(self.kernel_state.energy)
        if np.any(np.isnan(energy) | np.isneginf(energy)):
            from ebmlang.inference.diagnostics import locate_nonfinite

            # A smaller step cannot help where the chains already are.
            raise locate_nonfinite(self.model, state)
        if self.halvings >= MAX_STEP_HALVINGS:
            raise self._divergence_error(old, state)
        self.halvings += 1
        field = _STEP_FIELD[self.method]
        if field is None:
            self.config = dataclasses.replace(self.config, step_size=0.5 * self.config.step_size)
            self._compile_step(self.config)
        else:
            step = 0.5 * getattr(self.kernel_state, field)
            # Dual averaging restarts from the halved step (its mu, the point it shrinks
            # toward, is 10x that), but keeps its update count: warm-up still ends when
            # burn-in does, and after it the step stays frozen at the halved value.
            adaptation = dual_averaging_init(self.backend.ops, step)._replace(
                count=self.kernel_state.adaptation.count)
            self.kernel_state = self.kernel_state._replace(**{field: step, "adaptation": adaptation})
        warnings.warn(f"{why}; reducing the step size from {old:.4g} to {self.step_size():.4g} "
                      f"({self.method}, halving {self.halvings} of at most {MAX_STEP_HALVINGS})",
                      RuntimeWarning, stacklevel=4)

    def _divergence_error(self, step: float, state: dict) -> EbmError:
        energy = self.backend.to_numpy(self.kernel_state.energy)
        if not np.all(np.isfinite(energy)):
            from ebmlang.inference.diagnostics import locate_nonfinite

            return locate_nonfinite(self.model, state)
        # The term with the largest energy where the chains are is the usual culprit (a stiff
        # or unbounded term): point at it.
        graph = self.model.graph
        terms = self.model.compiled.term_energies(state, self.model.params)
        sizes = {name: float(np.abs(self.backend.to_numpy(value)).max()) for name, value in terms.items()}
        worst = max(sizes, key=sizes.get) if sizes else None
        template = next((t for t in graph.templates if t.term == worst), None)
        return EbmError(f"{self.method.upper()} kept diverging after {MAX_STEP_HALVINGS} halvings of the step "
                        f"size (now {step:.4g}): most chains' proposals still blow up the energy"
                        + (f"; the largest term where the chains are is '{worst}' ({sizes[worst]:.3g})"
                           if worst is not None else ""),
                        template.span if template is not None else None, source=graph.source,
                        hint="the energy may be unbounded below or extremely stiff; check the terms' "
                             "signs and scales, or start from a better init=... with a smaller step_size")

    def info(self) -> dict:
        """Divergences, the final step size (proposal scale for RWMH) and how often it was halved."""
        return {"divergences": self.divergences, "step_size": self.step_size(),
                "step_size_halvings": self.halvings}
