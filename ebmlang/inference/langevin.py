"""Langevin kernels: unadjusted (ULA) and Metropolis-adjusted (MALA).

Both discretise the Langevin diffusion whose stationary law is exp(-E / T):

    x' = x - eps * grad E(x) / T + sqrt(2 eps) * noise

ULA takes every such step (biased by O(eps): on E = x^2 / (2 s^2) its stationary
variance is s^2 T / (1 - eps / (2 s^2 T))); MALA treats it as a proposal and accepts
it with the Metropolis-Hastings ratio using the exact Gaussian proposal densities,
so exp(-E / T) is its exact stationary law for every step size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

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
    metropolis_accept,
    metropolis_log_acceptance,
    per_chain,
    scaled,
    select_chains,
)
from ebmlang.inference.random_kernel import RandomKernel

# --------------------------------------------------------------------------
# ULA


@dataclass(frozen=True)
class ULAConfig:
    step_size: float = 0.01
    temperature: float = 1.0
    divergence_threshold: float = DEFAULT_DIVERGENCE_THRESHOLD

    def __post_init__(self):
        check_config(self, positive=("step_size", "temperature"))


class ULAState(NamedTuple):
    """position [chains, D]; energy [chains] and grad [chains, D] of E (not E / T) there."""

    position: Array
    energy: Array
    grad: Array


class ULAInfo(NamedTuple):
    """is_divergent [chains]: the step hit NaN, -inf or a non-finite gradient (the chain
    stayed put), or the tempered energy rose by more than the divergence threshold."""

    is_divergent: Array


ULAKernel = Callable[[Key, ULAState, Potential], tuple[ULAState, ULAInfo]]


def ula_init(
    bk: ArrayBackend, position: Array, potential: Potential, config: ULAConfig = ULAConfig()
) -> ULAState:
    """A ULA state at `position` ([chains, D])."""
    energy, grad = potential.energy_and_grad(position)
    return ULAState(position, energy, grad)


def build_ula_kernel(bk: ArrayBackend, config: ULAConfig = ULAConfig()) -> ULAKernel:
    """A ULA step `kernel(key, state, potential) -> (state, info)`.

    ULA has no accept/reject, so a step is always taken, except that a chain whose new
    energy or gradient is not finite keeps its old position (a NaN would otherwise
    poison the chain for good); such steps are reported as divergent.
    """
    ops = bk.ops
    step_size = float(config.step_size)
    inverse_temperature = 1.0 / float(config.temperature)
    noise_scale = (2.0 * step_size) ** 0.5

    def draw(key: Key, state: ULAState) -> Array:
        return bk.normal(key, tuple(state.position.shape))

    def move(state: ULAState, noise: Array, potential: Potential) -> tuple[ULAState, ULAInfo]:
        proposal = state.position - (step_size * inverse_temperature) * state.grad + noise_scale * noise
        energy, grad = potential.energy_and_grad(proposal)
        rise = scaled(energy - state.energy, inverse_temperature)
        usable, divergent = classify_proposal(ops, energy, grad, rise, config.divergence_threshold)
        new_state = ULAState(
            select_chains(ops, usable, proposal, state.position),
            select_chains(ops, usable, energy, state.energy),
            select_chains(ops, usable, grad, state.grad),
        )
        return new_state, ULAInfo(divergent)

    return RandomKernel(draw, move)


# --------------------------------------------------------------------------
# MALA


@dataclass(frozen=True)
class MALAConfig:
    """step_size: the initial step (the whole run's, without warm-up).

    num_warmup: the first steps adapt the step size by dual averaging toward
    `target_accept` (0.574: Roberts & Rosenthal's optimum for MALA); afterwards it is
    frozen. per_chain_step_size: each chain adapts its own step, else one shared step
    adapts to the mean acceptance over chains.
    """

    step_size: float = 0.1
    temperature: float = 1.0
    num_warmup: int = 0
    target_accept: float = 0.574
    per_chain_step_size: bool = False
    divergence_threshold: float = DEFAULT_DIVERGENCE_THRESHOLD
    dual_averaging: DualAveragingConfig = field(default_factory=DualAveragingConfig)

    def __post_init__(self):
        check_config(self, positive=("step_size", "temperature"),
                     nonnegative=("num_warmup",), probability=("target_accept",))


class MALAState(NamedTuple):
    """position [chains, D]; energy/grad of E at it; step_size [chains]; adaptation."""

    position: Array
    energy: Array
    grad: Array
    step_size: Array
    adaptation: DualAveragingState


class MALAInfo(NamedTuple):
    """All [chains]: Metropolis acceptance probability, whether the proposal was taken,
    whether it diverged (NaN/-inf energy, non-finite gradient, energy blow-up), and the
    step size used for this step."""

    acceptance_rate: Array
    is_accepted: Array
    is_divergent: Array
    step_size: Array


MALAKernel = Callable[[Key, MALAState, Potential], tuple[MALAState, MALAInfo]]


def mala_init(
    bk: ArrayBackend, position: Array, potential: Potential, config: MALAConfig = MALAConfig()
) -> MALAState:
    """A MALA state at `position` ([chains, D]) with the configured initial step size."""
    energy, grad = potential.energy_and_grad(position)
    step_size = bk.ops.full_like(energy, float(config.step_size))
    return MALAState(position, energy, grad, step_size, dual_averaging_init(bk.ops, step_size))


def build_mala_kernel(bk: ArrayBackend, config: MALAConfig = MALAConfig()) -> MALAKernel:
    """A MALA step `kernel(key, state, potential) -> (state, info)` sampling exp(-E / T)."""
    ops = bk.ops
    inverse_temperature = 1.0 / float(config.temperature)

    def draw(key: Key, state: MALAState) -> tuple[Array, Array]:
        noise_key, accept_key = bk.split(key, 2)
        return bk.normal(noise_key, tuple(state.position.shape)), bk.uniform(accept_key, tuple(state.energy.shape))

    def move(
        state: MALAState, draws: tuple[Array, Array], potential: Potential
    ) -> tuple[MALAState, MALAInfo]:
        noise, accept_uniform = draws
        position = state.position
        step = per_chain(state.step_size, position)
        drift = scaled(step, inverse_temperature)
        proposal = position - drift * state.grad + ops.sqrt(2.0 * step) * noise
        energy, grad = potential.energy_and_grad(proposal)

        # log q(proposal | x) = -|sqrt(2 eps) noise|^2 / (4 eps) = -|noise|^2 / 2; the
        # reverse move's mean is the Langevin drift from the proposal.
        log_forward = -0.5 * ops.sum(ops.square(noise), axis=-1)
        reverse_residual = position - (proposal - drift * grad)
        log_reverse = -ops.sum(ops.square(reverse_residual), axis=-1) / (4.0 * state.step_size)
        rise = scaled(energy - state.energy, inverse_temperature)
        usable, divergent = classify_proposal(ops, energy, grad, rise, config.divergence_threshold)
        log_acceptance = metropolis_log_acceptance(ops, log_reverse - log_forward - rise, usable)
        accepted = metropolis_accept(ops, accept_uniform, log_acceptance)
        acceptance_rate = ops.exp(log_acceptance)

        adaptation, next_step = adapt_step_size(
            ops, state.adaptation, acceptance_rate,
            target=config.target_accept, num_warmup=config.num_warmup,
            per_chain=config.per_chain_step_size, config=config.dual_averaging,
        )
        new_state = MALAState(
            select_chains(ops, accepted, proposal, position),
            select_chains(ops, accepted, energy, state.energy),
            select_chains(ops, accepted, grad, state.grad),
            next_step,
            adaptation,
        )
        return new_state, MALAInfo(acceptance_rate, accepted, divergent, state.step_size)

    return RandomKernel(draw, move)
