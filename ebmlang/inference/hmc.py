"""Hamiltonian Monte Carlo: L leapfrog steps with a diagonal mass and an MH correction.

Samples exp(-E / T): the Hamiltonian is H(x, p) = E(x) / T + sum(p^2 / m) / 2 with
momentum p ~ N(0, diag(m)), so the leapfrog kicks use grad E / T. The step size adapts
by dual averaging during warm-up (as MALA) toward `target_accept`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Sequence

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.inference.adaptation import (
    DualAveragingConfig,
    DualAveragingState,
    adapt_step_size,
    dual_averaging_init,
)
from ebmlang.inference.continuous import (
    DEFAULT_DIVERGENCE_THRESHOLD,
    Array,
    ArrayBackend,
    Key,
    Potential,
    check_config,
    classify_proposal,
    initial_inverse_mass,
    metropolis_accept,
    metropolis_log_acceptance,
    per_chain,
    scaled,
    select_chains,
)
from ebmlang.inference.random_kernel import RandomKernel


@dataclass(frozen=True)
class HMCConfig:
    """num_integration_steps: leapfrog steps L per proposal.

    inverse_mass: None (identity), a number, or one entry per coordinate [D] (a diagonal
    inverse mass, ideally the posterior variances): the start; in a model's sampling run,
    Stan's windowed warm-up replaces it by the draws' regularised variances, as for NUTS.
    target_accept 0.8 is Stan's default (the optimum for HMC sits around 0.65; higher
    targets trade speed for robustness).
    Warm-up and per-chain step sizes work as in `MALAConfig`.
    step_size_jitter: each proposal draws its step uniformly from step * (1 +- jitter)
    (Neal 2011, section 5.4.2.2). With a fixed step, trajectories of L steps resonate with
    the target's periods: acceptance is then not monotone in the step size, and
    adaptation can settle far from its target; a jitter of 0.1-0.2 smooths that out.
    """

    step_size: float = 0.1
    num_integration_steps: int = 10
    step_size_jitter: float = 0.0
    inverse_mass: float | Sequence[float] | np.ndarray | None = None
    temperature: float = 1.0
    num_warmup: int = 0
    target_accept: float = 0.8
    per_chain_step_size: bool = False
    divergence_threshold: float = DEFAULT_DIVERGENCE_THRESHOLD
    dual_averaging: DualAveragingConfig = field(default_factory=DualAveragingConfig)

    def __post_init__(self):
        check_config(self, positive=("step_size", "num_integration_steps", "inverse_mass", "temperature"),
                     nonnegative=("num_warmup",), probability=("target_accept",))
        if not 0.0 <= self.step_size_jitter < 1.0:
            raise EbmError(
                f"HMC setting 'step_size_jitter' is {self.step_size_jitter!r}",
                expected="a fraction in [0, 1)",
                hint="pass step_size_jitter=0.1, say (0 disables it)",
            )
        if int(self.num_integration_steps) != self.num_integration_steps:
            raise EbmError(
                f"HMC setting 'num_integration_steps' is {self.num_integration_steps!r}",
                expected="a whole number of leapfrog steps >= 1",
                hint="pass num_integration_steps=10, say",
            )


class HMCState(NamedTuple):
    """position [chains, D]; energy/grad of E at it; step_size [chains]; inverse_mass
    [chains, D] (the config's, until windowed warm-up sets it, as for NUTS); adaptation."""

    position: Array
    energy: Array
    grad: Array
    step_size: Array
    inverse_mass: Array
    adaptation: DualAveragingState


class HMCInfo(NamedTuple):
    """All [chains]: acceptance probability, acceptance, divergence (NaN, -inf, non-finite
    gradient or a Hamiltonian error above the threshold), the Hamiltonian error
    H(end) - H(start) of the trajectory, and the step size used (jittered, if so)."""

    acceptance_rate: Array
    is_accepted: Array
    is_divergent: Array
    energy_error: Array
    step_size: Array


HMCKernel = Callable[[Key, HMCState, Potential], tuple[HMCState, HMCInfo]]


def hmc_init(
    bk: ArrayBackend, position: Array, potential: Potential, config: HMCConfig = HMCConfig()
) -> HMCState:
    """An HMC state at `position` ([chains, D]) with the configured step and inverse mass."""
    energy, grad = potential.energy_and_grad(position)
    step_size = bk.ops.full_like(energy, float(config.step_size))
    inv_mass = initial_inverse_mass(bk, position, config.inverse_mass)
    return HMCState(position, energy, grad, step_size, inv_mass, dual_averaging_init(bk.ops, step_size))


def build_hmc_kernel(bk: ArrayBackend, config: HMCConfig = HMCConfig()) -> HMCKernel:
    """An HMC step `kernel(key, state, potential) -> (state, info)` sampling exp(-E / T)."""
    ops = bk.ops
    inverse_temperature = 1.0 / float(config.temperature)
    num_steps = int(config.num_integration_steps)

    def draw(key: Key, state: HMCState) -> tuple[Array, Array, Array | None]:
        momentum_key, accept_key, jitter_key = bk.split(key, 3)
        chains = tuple(state.step_size.shape)
        jitter = bk.uniform(jitter_key, chains) if config.step_size_jitter > 0 else None
        return bk.normal(momentum_key, tuple(state.position.shape)), bk.uniform(accept_key, chains), jitter

    def move(
        state: HMCState, draws: tuple[Array, Array, Array | None], potential: Potential
    ) -> tuple[HMCState, HMCInfo]:
        normal, accept_uniform, jitter = draws
        start = state.position
        step_size = state.step_size
        if jitter is not None:
            step_size = step_size * (1.0 + config.step_size_jitter * (2.0 * jitter - 1.0))
        step = per_chain(step_size, start)
        inverse_mass = state.inverse_mass

        def kinetic(momentum: Array) -> Array:
            return 0.5 * ops.sum(inverse_mass * ops.square(momentum), axis=-1)

        momentum = normal / ops.sqrt(inverse_mass)
        start_hamiltonian = scaled(state.energy, inverse_temperature) + kinetic(momentum)

        # Leapfrog; L is static, so this unrolls under jit (no Python test on array values).
        # The factors every leap shares are formed once (the same products, in the same order,
        # as written per leap: eager torch pays a dispatch per operation).
        drift = step * inverse_mass
        full_kick, half_kick = scaled(step, inverse_temperature), scaled(0.5 * step, inverse_temperature)
        position, grad = start, state.grad
        momentum = momentum - half_kick * grad
        for leap in range(num_steps):
            position = position + drift * momentum
            energy, grad = potential.energy_and_grad(position)
            momentum = momentum - (full_kick if leap < num_steps - 1 else half_kick) * grad

        energy_error = scaled(energy, inverse_temperature) + kinetic(momentum) - start_hamiltonian
        usable, divergent = classify_proposal(ops, energy, grad, energy_error, config.divergence_threshold)
        log_acceptance = metropolis_log_acceptance(ops, -energy_error, usable)
        accepted = metropolis_accept(ops, accept_uniform, log_acceptance)
        acceptance_rate = ops.exp(log_acceptance)

        adaptation, next_step = adapt_step_size(
            ops, state.adaptation, acceptance_rate,
            target=config.target_accept, num_warmup=config.num_warmup,
            per_chain=config.per_chain_step_size, config=config.dual_averaging,
        )
        new_state = HMCState(
            select_chains(ops, accepted, position, start),
            select_chains(ops, accepted, energy, state.energy),
            select_chains(ops, accepted, grad, state.grad),
            next_step,
            inverse_mass,
            adaptation,
        )
        return new_state, HMCInfo(acceptance_rate, accepted, divergent, energy_error, step_size)

    return RandomKernel(draw, move)
