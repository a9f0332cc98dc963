"""Drives a continuous MCMC kernel (MALA, ULA, HMC, NUTS, RWMH) on a model's continuous block.

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
from ebmlang.inference import hmc, langevin, nuts, rwmh
from ebmlang.inference.adaptation import (
    dual_averaging_init,
    find_reasonable_step_size,
    regularized_variance,
    warmup_windows,
)
from ebmlang.inference.continuous import select_chains
from ebmlang.inference.potential import ModelPotential

# HMC draws each trajectory's step from step * (1 +- 0.5): with one fixed step, L leapfrog steps
# can rotate a Gaussian direction by nearly half a period, so chains flip around the mean
# without changing radius (means look superb, variances mix slowly); see HMCConfig.
HMC_JITTER = 0.5
DEFAULT_STEP = {"mala": 0.1, "ula": 0.01, "hmc": 0.1, "nuts": 0.1, "rwmh": 0.5}
# A step in which more than half the chains diverge halves the step size; a sampler
# still diverging after this many halvings (1/1024 of its step) has a deeper problem.
MAX_STEP_HALVINGS = 10
# Where each method keeps its step size: a kernel-state field (adapted by dual averaging),
# or only the config the kernel was built from (ULA).
# Mean acceptance probability below which Metropolis chains count as frozen.
FROZEN_ACCEPTANCE = 1e-3
_LABEL = {"mala": "Langevin (MALA)", "ula": "Langevin (ULA)", "hmc": "HMC", "nuts": "NUTS",
          "rwmh": "random-walk Metropolis"}
_STEP_FIELD = {"mala": "step_size", "hmc": "step_size", "nuts": "step_size", "rwmh": "scale", "ula": None}
# Trajectory samplers whose warm-up starts from Hoffman & Gelman's reasonable first step and
# whose dual averaging absorbs divergences (a divergent trajectory is acceptance 0, which
# pulls the step down): halving on top of that fights the adaptation (issue #19), so these
# only count divergences, per chain, as Stan does.
_TRAJECTORY = ("hmc", "nuts")


def _eager(*args):
    """A function that `backend.jit` returns unchanged exactly when the backend runs eagerly."""
    return args


def _builders(method: str, step_size: float, adapt_steps: int):
    if method == "mala":
        cfg = langevin.MALAConfig(step_size=step_size, num_warmup=adapt_steps)
        return langevin.mala_init, langevin.build_mala_kernel, cfg
    if method == "ula":
        cfg = langevin.ULAConfig(step_size=step_size)
        return langevin.ula_init, langevin.build_ula_kernel, cfg
    if method == "hmc":
        cfg = hmc.HMCConfig(step_size=step_size, num_warmup=adapt_steps, step_size_jitter=HMC_JITTER)
        return hmc.hmc_init, hmc.build_hmc_kernel, cfg
    if method == "nuts":
        cfg = nuts.NUTSConfig(step_size=step_size, num_warmup=adapt_steps)
        return nuts.nuts_init, nuts.build_nuts_kernel, cfg
    if method == "rwmh":
        cfg = rwmh.RWMHConfig(scale=step_size, num_warmup=adapt_steps)
        return rwmh.rwmh_init, rwmh.build_rwmh_kernel, cfg
    raise EbmError(f"unknown continuous sampler '{method}'", expected="mala, ula, hmc, nuts or rwmh")


class ContinuousRunner:
    """Holds the kernel state of the continuous block between steps."""

    def __init__(self, model, method: str, groups, state: dict, temperature: float,
                 adapt_steps: int, step_size: float | None = None, per_chain_step_size: bool = False):
        self.model = model
        self.method = method
        self.groups = tuple(groups)
        bk = model.backend
        self.backend = bk
        context = {k: v for k, v in state.items() if k not in self.groups}
        self.potential = ModelPotential(model.compiled, model.params, context, self.groups, temperature)
        init, build, config = _builders(method, step_size or DEFAULT_STEP[method], adapt_steps)
        if per_chain_step_size and hasattr(config, "per_chain_step_size"):
            # Each chain adapts its own step (replica exchange: one temperature per chain).
            config = dataclasses.replace(config, per_chain_step_size=True)
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
        self.chain_divergences = np.zeros(int(self.kernel_state.energy.shape[0]), dtype=int)
        # Divergences after warm-up: there the step is frozen, so these point at the model.
        self.sampling_divergences = 0
        self.steps_taken = 0
        self.adapt_steps = int(adapt_steps)
        self._find_first_step = method in _TRAJECTORY + ("mala",) and adapt_steps > 0
        self.halvings = 0
        self._recovering = False
        # NUTS keeps its inverse mass in the state: windowed warm-up adapts it (Stan).
        self._windows = warmup_windows(self.adapt_steps) if "inverse_mass" in self.kernel_state._fields else []
        self._window_draws: list[np.ndarray] = []
        self._adapting_mass = bool(self._windows)

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

            if not kernel.traceable:
                return lambda key, kernel_state, *args: move(kernel_state, kernel.draw(key, kernel_state), *args)
            return self.backend.fused_step(kernel.draw, move)

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
        if self._find_first_step:
            self._find_first_step = False
            search_key, key = self.backend.split(key, 2)
            self._start_warmup(search_key, context)
        before = self.kernel_state
        self.kernel_state, info = self._step(key, before, context, self.potential.params)
        divergent = getattr(info, "is_divergent", None)
        flags = np.zeros(0, dtype=bool) if divergent is None else self.backend.to_numpy(divergent).astype(bool)
        diverged = int(np.sum(flags))
        self.divergences += diverged
        if flags.size:
            self.chain_divergences += flags
        self.steps_taken += 1
        if self.steps_taken > self.adapt_steps:
            self.sampling_divergences += diverged
        if self._adapting_mass:
            self._adapt_mass(key, context)
        if self.steps_taken == self.adapt_steps:
            self._freeze_adaptation()
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
        if self.method in _TRAJECTORY:
            return new_state, rate
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

    def _freeze_adaptation(self) -> None:
        """At the end of warm-up, step with a kernel built without adaptation (num_warmup=0):
        from here on the adaptive kernel's update is masked off, so this one makes the same
        draws, without the update's few dozen operations per step (dispatches on eager torch).
        Only where steps run eagerly (`jit` is the identity): a compiled backend would pay a
        second compilation, and its compiler drops the masked update's cost anyway."""
        adaptation = getattr(self.kernel_state, "adaptation", None)
        if adaptation is None or not getattr(self.config, "num_warmup", 0) or self.backend.jit(_eager) is not _eager:
            return
        if np.all(self.backend.to_numpy(adaptation.count) >= self.config.num_warmup):
            self._compile_step(dataclasses.replace(self.config, num_warmup=0))

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
            # Dual averaging restarts from the halved step, and its mu, the point it shrinks
            # toward, is the halved step itself (at the usual 10x, adaptation climbed straight
            # back to the diverging step: MALA on a 1,000-d Gaussian halved ten times and
            # failed), but it keeps its update count: warm-up still ends when burn-in does,
            # and after it the step stays frozen. (Only MALA and RWMH get here: trajectory
            # samplers count divergences as acceptance 0 and never halve.)
            adaptation = dual_averaging_init(self.backend.ops, step)._replace(
                count=self.kernel_state.adaptation.count, mu=self.backend.ops.log(step))
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

    def _adapt_mass(self, key, context) -> None:
        """Stan's windowed warm-up: collect draws in each slow window; at its end set the
        inverse mass to their regularised variance, find a reasonable step for it and
        restart dual averaging there; at the end of warm-up freeze the averaged step."""
        bk = self.backend
        done = self.steps_taken
        start, end = self._windows[0] if self._windows else (done, done)
        if start < done <= end:
            self._window_draws.append(bk.to_numpy(self.kernel_state.position).astype(float))
        if self._windows and done == end:
            draws = np.concatenate(self._window_draws)
            self._window_draws = []
            self._windows.pop(0)
            variance = regularized_variance(draws)
            inverse_mass = bk.ops.ones_like(self.kernel_state.position) * bk.asarray(variance)
            self.kernel_state = self.kernel_state._replace(inverse_mass=inverse_mass)
            # A word of the step's key its draws do not use (they take the first four).
            self._start_warmup(bk.split(key, 8)[-1], context)
        if done == self.adapt_steps:
            self._adapting_mass = False
            # The restarted adaptation has had fewer updates than num_warmup: freeze it now.
            adaptation = self.kernel_state.adaptation
            count = bk.ops.full_like(adaptation.count, float(self.adapt_steps))
            self.kernel_state = self.kernel_state._replace(
                step_size=bk.ops.exp(adaptation.log_step_avg), adaptation=adaptation._replace(count=count))

    def _start_warmup(self, key, context) -> None:
        """Replace the configured first step by Hoffman & Gelman's reasonable one, and start
        dual averaging there: mu = log(10 eps0) is set here once and never restarted."""
        bk = self.backend
        state = self.kernel_state
        potential = self._template.with_inputs(self.potential.params, context)
        inverse_mass = getattr(state, "inverse_mass", getattr(self.config, "inverse_mass", None))
        if inverse_mass is None:
            inverse_mass = 1.0
        elif not hasattr(inverse_mass, "shape") or isinstance(inverse_mass, np.ndarray):
            inverse_mass = bk.asarray(np.asarray(inverse_mass, dtype=float))
        configured = bk.to_numpy(state.step_size).astype(float)
        # MALA's step eps is one leapfrog step of h = sqrt(2 eps) (x' = x - h^2/2 grad E + h xi),
        # so the search runs on h and its answer goes back as h^2 / 2.
        leapfrog = np.sqrt(2.0 * configured) if self.method == "mala" else configured
        eps = find_reasonable_step_size(bk, potential, state.position, state.energy, state.grad,
                                        leapfrog, key, inverse_mass)
        if self.method == "mala":
            eps = 0.5 * eps ** 2
        if not getattr(self.config, "per_chain_step_size", False):
            # One shared step: the chains' geometric mean, as dual averaging then adapts it
            # from the mean acceptance over chains.
            eps = np.full_like(eps, np.exp(np.mean(np.log(eps))))
        step = bk.asarray(eps)
        adaptation = dual_averaging_init(bk.ops, step)
        if self.method == "mala":
            # Stan's 10x is for trajectories of many leapfrog steps; one MALA step at 10x
            # the reasonable one diverges in high dimensions: shrink toward the step itself.
            adaptation = adaptation._replace(mu=bk.ops.log(step))
        self.kernel_state = state._replace(step_size=step, adaptation=adaptation)

    def reorder_chains(self, order, state: dict) -> None:
        """Give chain i the position chain order[i] had (replica exchange swaps states between
        chains; each chain's step size, adaptation and temperature stay with it), with the
        energy and gradient recomputed at `state` (the new values of the other groups)."""
        positions = self.backend.ops.take(self.kernel_state.position, self.backend.asarray(order, "int64"), axis=0)
        context = {k: v for k, v in state.items() if k not in self.groups}
        self.kernel_state = self._refresh(self.kernel_state._replace(position=positions), context,
                                          self.potential.params)

    def step_sizes(self) -> np.ndarray:
        """The current step size of each chain (ULA: the configured one)."""
        field = _STEP_FIELD[self.method]
        if field is None:
            return np.full(self.chain_divergences.shape, float(self.config.step_size))
        return self.backend.to_numpy(getattr(self.kernel_state, field)).astype(float)

    def info(self) -> dict:
        """Divergences (in all, per chain, and after warm-up), the final step size (proposal
        scale for RWMH), per chain too, and how often it was halved."""
        return {"divergences": self.divergences, "divergences_per_chain": self.chain_divergences.tolist(),
                "divergences_after_warmup": self.sampling_divergences, "step_size": self.step_size(),
                "step_size_per_chain": self.step_sizes().tolist(), "step_size_halvings": self.halvings}
