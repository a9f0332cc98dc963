"""Random-walk Metropolis-Hastings for energies without a usable gradient.

Proposes x' = x + scale * noise (optionally reflected into a box, which keeps the
proposal symmetric) and accepts with probability min(1, exp(-(E(x') - E(x)) / T)).
Only `potential.energy` is called. The scale adapts by dual averaging during warm-up
toward `target_accept`: 0.44 in one dimension, 0.234 in many (Roberts, Gelman & Gilks
1997; Roberts & Rosenthal 2001).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Sequence

import numpy as np

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
    select_chains,
)
from ebmlang.inference.random_kernel import RandomKernel
from ebmlang.inference.transforms import check_bounds, reflect

OPTIMAL_ACCEPT_1D = 0.44
OPTIMAL_ACCEPT_HIGH_D = 0.234


@dataclass(frozen=True)
class RWMHConfig:
    """scale: initial proposal standard deviation (times `proposal_std` per coordinate).

    target_accept: None picks 0.44 for one coordinate and 0.234 otherwise.
    bounds: optional (low, high), numbers or per-coordinate arrays: proposals are
    reflected into the box (for bounded reals sampled in their own coordinates), and
    adaptation never grows the scale past the widest side of the box (beyond that a
    reflected proposal is already about uniform over the box, and on a flat energy
    acceptance stays 1 at any scale, so dual averaging alone would never stop growing it).
    """

    scale: float = 0.5
    proposal_std: float | Sequence[float] | np.ndarray | None = None
    temperature: float = 1.0
    num_warmup: int = 0
    target_accept: float | None = None
    per_chain_step_size: bool = False
    bounds: tuple | None = None
    divergence_threshold: float = DEFAULT_DIVERGENCE_THRESHOLD
    dual_averaging: DualAveragingConfig = field(default_factory=DualAveragingConfig)

    def __post_init__(self):
        check_config(self, positive=("scale", "proposal_std", "temperature"),
                     nonnegative=("num_warmup",), probability=("target_accept",))
        if self.bounds is not None:
            check_bounds(*self.bounds, finite=True)


class RWMHState(NamedTuple):
    """position [chains, D]; energy of E at it [chains]; scale [chains]; adaptation."""

    position: Array
    energy: Array
    scale: Array
    adaptation: DualAveragingState


class RWMHInfo(NamedTuple):
    """All [chains]: acceptance probability, acceptance, divergence (NaN or -inf energy,
    or a rise above the threshold), and the proposal scale used."""

    acceptance_rate: Array
    is_accepted: Array
    is_divergent: Array
    scale: Array


RWMHKernel = Callable[[Key, RWMHState, Potential], tuple[RWMHState, RWMHInfo]]


def rwmh_init(
    bk: ArrayBackend, position: Array, potential: Potential, config: RWMHConfig = RWMHConfig()
) -> RWMHState:
    """An RWMH state at `position` ([chains, D]); only `potential.energy` is used."""
    energy = potential.energy(position)
    scale = bk.ops.full_like(energy, float(config.scale))
    return RWMHState(position, energy, scale, dual_averaging_init(bk.ops, scale))


def build_rwmh_kernel(bk: ArrayBackend, config: RWMHConfig = RWMHConfig()) -> RWMHKernel:
    """An RWMH step `kernel(key, state, potential) -> (state, info)` sampling exp(-E / T)."""
    ops = bk.ops
    inverse_temperature = 1.0 / float(config.temperature)
    std_np = 1.0 if config.proposal_std is None else np.asarray(config.proposal_std, dtype=float)
    proposal_std = 1.0 if config.proposal_std is None else bk.asarray(std_np)
    max_scale = None
    if config.bounds is not None:
        low_np, high_np = check_bounds(*config.bounds, finite=True)
        max_scale = float(np.max((high_np - low_np) / std_np))
        low, high = bk.asarray(low_np), bk.asarray(high_np)

    def draw(key: Key, state: RWMHState) -> tuple[Array, Array]:
        noise_key, accept_key = bk.split(key, 2)
        return bk.normal(noise_key, tuple(state.position.shape)), bk.uniform(accept_key, tuple(state.energy.shape))

    def move(
        state: RWMHState, draws: tuple[Array, Array], potential: Potential
    ) -> tuple[RWMHState, RWMHInfo]:
        noise, accept_uniform = draws
        position = state.position
        step = per_chain(state.scale, position) * proposal_std
        proposal = position + step * noise
        if config.bounds is not None:
            proposal = reflect(ops, proposal, low, high)
        energy = potential.energy(proposal)
        rise = (energy - state.energy) * inverse_temperature
        usable, divergent = classify_proposal(ops, energy, None, rise, config.divergence_threshold)
        log_acceptance = metropolis_log_acceptance(ops, -rise, usable)
        accepted = metropolis_accept(ops, accept_uniform, log_acceptance)
        acceptance_rate = ops.exp(log_acceptance)

        target = config.target_accept
        if target is None:
            target = OPTIMAL_ACCEPT_1D if position.shape[-1] == 1 else OPTIMAL_ACCEPT_HIGH_D
        adaptation, next_scale = adapt_step_size(
            ops, state.adaptation, acceptance_rate,
            target=target, num_warmup=config.num_warmup,
            per_chain=config.per_chain_step_size, config=config.dual_averaging, max_step=max_scale,
        )
        new_state = RWMHState(
            select_chains(ops, accepted, proposal, position),
            select_chains(ops, accepted, energy, state.energy),
            next_scale,
            adaptation,
        )
        return new_state, RWMHInfo(acceptance_rate, accepted, divergent, state.scale)

    return RandomKernel(draw, move)
