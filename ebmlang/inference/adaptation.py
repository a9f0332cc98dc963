"""Dual-averaging adaptation of a step size (or proposal scale) to a target acceptance.

Hoffman & Gelman (2014), "The No-U-Turn Sampler", section 3.2.1, as in Stan and
blackjax. After iteration t with acceptance probability a_t:

    h_t       = (1 - 1/(t + t0)) h_{t-1} + (target - a_t) / (t + t0)
    log e_t   = mu - sqrt(t) / gamma * h_t
    log ebar_t = t^-kappa log e_t + (1 - t^-kappa) log ebar_{t-1}

with mu = log(10 e_0). During warm-up the sampler uses e_t; afterwards it freezes at
ebar (the averaged iterate, which is much less noisy). The state is arrays of shape
[chains]: per-chain adaptation feeds each chain its own acceptance probability,
shared adaptation feeds every chain the mean over chains (so all entries agree).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ebmlang.inference.continuous import Array

# Keeps exp(log step) finite in float32 even when acceptance stays at 1 for a
# whole warm-up (a flat energy); far outside any useful step size.
LOG_STEP_LIMIT = 50.0


@dataclass(frozen=True)
class DualAveragingConfig:
    """Hoffman & Gelman's constants (their defaults; Stan uses the same)."""

    gamma: float = 0.05
    t0: float = 10.0
    kappa: float = 0.75


class DualAveragingState(NamedTuple):
    """Per-chain arrays [chains]; `count` is the number of adaptation updates so far."""

    log_step: Array
    log_step_avg: Array
    error_avg: Array
    count: Array
    mu: Array


def dual_averaging_init(ops: Any, step_size: Array) -> DualAveragingState:
    """Start adapting from `step_size` ([chains]).

    log_step_avg starts at log(step_size) rather than Hoffman & Gelman's 0: the first
    update overwrites it anyway (t^-kappa = 1 at t = 1), and with no warm-up at all the
    frozen step is then the configured one instead of exp(0).
    """
    # Distinct arrays per field: torch.compile guards on aliasing, and a state whose
    # fields share one tensor would compile the step twice (shared, then not).
    log_step = ops.log(step_size)
    return DualAveragingState(log_step, ops.log(step_size), ops.zeros_like(step_size),
                              ops.zeros_like(step_size), log_step + math.log(10.0))


def dual_averaging_update(
    ops: Any,
    state: DualAveragingState,
    acceptance: Array,
    target: float,
    config: DualAveragingConfig = DualAveragingConfig(),
    max_log_step: float = LOG_STEP_LIMIT,
) -> DualAveragingState:
    """One dual-averaging update from acceptance probabilities ([chains]); the step
    stays below exp(max_log_step)."""
    count = state.count + 1.0
    weight = 1.0 / (count + config.t0)
    error_avg = (1.0 - weight) * state.error_avg + weight * (target - acceptance)
    log_step = state.mu - ops.sqrt(count) / config.gamma * error_avg
    log_step = ops.clip(log_step, -LOG_STEP_LIMIT, min(max_log_step, LOG_STEP_LIMIT))
    averaging = ops.exp(-config.kappa * ops.log(count))
    log_step_avg = averaging * log_step + (1.0 - averaging) * state.log_step_avg
    return DualAveragingState(log_step, log_step_avg, error_avg, count, state.mu)


def adapt_step_size(
    ops: Any,
    state: DualAveragingState,
    acceptance: Array,
    *,
    target: float,
    num_warmup: int,
    per_chain: bool,
    config: DualAveragingConfig = DualAveragingConfig(),
    max_step: float | None = None,
) -> tuple[DualAveragingState, Array]:
    """Update during the first `num_warmup` steps, then freeze; returns (state, next step).

    max_step caps the step: where acceptance cannot fall to the target however large
    the step (a flat energy in a reflecting box accepts everything), dual averaging
    would otherwise grow the step without bound.

    Written with `where` instead of `if`, so it traces under `jax.jit`: the warm-up
    test `count < num_warmup` is on an array that lives in the sampler state.
    """
    max_log_step = LOG_STEP_LIMIT if max_step is None else math.log(max_step)
    if num_warmup <= 0:
        # No warm-up (or a kernel built for after it): the frozen step, as the masked
        # update below gives it, without the update's dozens of dispatches on eager torch.
        return state, ops.exp(ops.clip(state.log_step_avg, None, max_log_step))
    if not per_chain:
        acceptance = ops.mean(acceptance, axis=0) * ops.ones_like(acceptance)
    adapting = state.count < num_warmup
    updated = dual_averaging_update(ops, state, acceptance, target, config, max_log_step)
    state = DualAveragingState(*(ops.where(adapting, new, old) for new, old in zip(updated, state)))
    still_adapting = state.count < num_warmup
    log_step = ops.where(still_adapting, state.log_step, state.log_step_avg)
    next_step = ops.exp(ops.minimum(log_step, ops.full_like(log_step, max_log_step)))
    return state, next_step


# The doubling/halving search for a first step stops after this many tries per chain
# (a factor 2^30 either way), so a flat energy, accepting any step, still ends.
MAX_STEP_SEARCH = 30


def find_reasonable_step_size(bk: Any, potential: Any, position: Array, energy: Array, grad: Array,
                              step_size: np.ndarray, key: Any, inverse_mass: Any = 1.0) -> np.ndarray:
    """Hoffman & Gelman's Algorithm 4 (Stan's `init_stepsize`), per chain: from `step_size`
    ([chains], numpy), double the step while one leapfrog step from `position` with a fresh
    momentum is accepted with probability above 1/2, or halve it while below. Dual averaging
    then shrinks toward 10x this step (mu), a scale where a trajectory can move; from a
    fixed configured step, mu could be far too large (divergences) or far too small.

    Runs eagerly, once per warm-up (window); the potential is at temperature 1 (E / T).
    Returns the step per chain as numpy.
    """
    ops = bk.ops
    normal = bk.normal(key, tuple(position.shape))
    momentum = normal / ops.sqrt(inverse_mass * ops.ones_like(normal))

    def kinetic(p: Array) -> Array:
        return 0.5 * ops.sum(inverse_mass * ops.square(p), axis=-1)

    start = energy + kinetic(momentum)

    def log_ratio(eps: np.ndarray) -> np.ndarray:
        step = bk.asarray(eps)[:, None]
        p = momentum - 0.5 * step * grad
        x = position + step * inverse_mass * p
        new_energy, new_grad = potential.energy_and_grad(x)
        p = p - 0.5 * step * new_grad
        ratio = bk.to_numpy(start - new_energy - kinetic(p)).astype(float)
        # A blow-up (NaN, inf) is a step far too large: acceptance 0.
        return np.where(np.isfinite(ratio), ratio, -np.inf)

    eps = np.asarray(step_size, dtype=float).copy()
    direction = np.where(log_ratio(eps) > math.log(0.5), 1.0, -1.0)
    active = np.ones(eps.shape, dtype=bool)
    for _ in range(MAX_STEP_SEARCH):
        trial = eps * 2.0 ** direction
        ratio = log_ratio(np.where(active, trial, eps))
        # Keep going while still on the starting side of acceptance 1/2.
        crossed = np.where(direction > 0, ratio < -math.log(2.0), ratio > -math.log(2.0))
        eps = np.where(active, trial, eps)
        active &= ~crossed
        if not active.any():
            break
    return eps


def warmup_windows(num_warmup: int) -> list[tuple[int, int]]:
    """Stan's windowed warm-up: the (start, end) steps of the slow windows in which a
    diagonal mass is estimated, after a fast initial buffer (75 steps) and before a fast
    terminal one (50), doubling from 25 steps with the last stretched to the buffer.
    Below 150 warm-up steps, Stan's fallback: 15% / 75% / 10%."""
    if num_warmup < 20:
        return []
    start, end_buffer, size = 75, 50, 25
    if num_warmup < start + end_buffer + size:
        start, end_buffer = int(0.15 * num_warmup), int(0.1 * num_warmup)
        size = num_warmup - start - end_buffer
    windows, stop = [], num_warmup - end_buffer
    while start < stop:
        end = start + size
        if end + 2 * size > stop:
            end = stop
        windows.append((start, end))
        start, size = end, 2 * size
    return windows


def regularized_variance(draws: np.ndarray) -> np.ndarray:
    """Stan's diagonal mass estimate from draws [n, D]: the sample variance shrunk toward
    1e-3 with weight 5 / (n + 5), so a short window cannot give a zero or huge mass."""
    n = draws.shape[0]
    return (n / (n + 5.0)) * np.var(draws, axis=0, ddof=1) + 1e-3 * (5.0 / (n + 5.0))
