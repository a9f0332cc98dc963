"""Shared pieces of the continuous MCMC kernels (ULA, MALA, HMC, RWMH).

Every kernel follows one form (blackjax style):

    state = <sampler>_init(bk, position, potential, config)
    kernel = build_<sampler>_kernel(bk, config)
    state, info = kernel(key, state, potential)

and every kernel is a `RandomKernel` (random_kernel.py): `kernel.draw(key, state)` makes
the step's random numbers and `kernel.move(state, draws, potential)` is the deterministic rest.

`bk` is the array backend (the names used are listed in `ArrayBackend`), `position`
is an array `[chains, D]`, and `potential` offers `energy(position) -> [chains]` and
`energy_and_grad(position) -> ([chains], [chains, D])`. Kernels are pure functions of
their arguments: the random key is always passed in, adaptation state lives in the
sampler state, and no Python control flow depends on array values, so a kernel runs
under `jax.jit` with the potential closed over.

A kernel samples exp(-E / T) for the temperature T in its config. States keep the raw
energy E (and its gradient), so one state can be stepped at several temperatures.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import numpy as np

from ebmlang.errors import EbmError

Array = Any
Key = Any


class ArrayBackend(Protocol):
    """The backend names the kernels use (implemented in `ebmlang.backends`).

    `key(seed)`, `split(key, num)`, `normal(key, shape)`, `uniform(key, shape)` in
    [0, 1), `asarray(x)` (to the backend's float dtype), `to_numpy(x)`, and `ops`
    with numpy-like exp, log, log1p, sqrt, abs, square, where, minimum, maximum,
    clip, sum(x, axis), mean(x, axis), isfinite, all, stack, concatenate,
    zeros_like, ones_like, full_like.
    """

    ops: Any

    def key(self, seed: int) -> Key: ...
    def split(self, key: Key, num: int) -> Any: ...
    def normal(self, key: Key, shape: tuple[int, ...]) -> Array: ...
    def uniform(self, key: Key, shape: tuple[int, ...]) -> Array: ...
    def asarray(self, x: Any) -> Array: ...
    def to_numpy(self, x: Array) -> np.ndarray: ...


class Potential(Protocol):
    """An energy over positions `[chains, D]` (the lead builds these from a compiled model)."""

    def energy(self, position: Array) -> Array: ...
    def energy_and_grad(self, position: Array) -> tuple[Array, Array]: ...


# Blackjax's default: an energy (in units of E / T) rising by more than this over one
# proposal or trajectory means the integrator has blown up, not that the chain moved.
DEFAULT_DIVERGENCE_THRESHOLD = 1000.0
POSITIVE_INFINITY = float("inf")


def check_config(
    config: Any,
    *,
    positive: tuple[str, ...] = (),
    nonnegative: tuple[str, ...] = (),
    probability: tuple[str, ...] = (),
) -> None:
    """Raise an `EbmError` naming the first sampler setting out of range (None is allowed)."""
    rules = [(name, "> 0", lambda v: v > 0) for name in positive]
    rules += [(name, ">= 0", lambda v: v >= 0) for name in nonnegative]
    rules += [(name, "strictly between 0 and 1", lambda v: 0 < v < 1) for name in probability]
    sampler = type(config).__name__.removesuffix("Config")
    for name, wanted, holds in rules:
        value = getattr(config, name)
        if value is not None and not (np.all(np.isfinite(value)) and np.all(holds(np.asarray(value)))):
            raise EbmError(
                f"{sampler} setting '{name}' is {value!r}",
                expected=f"a finite number {wanted}",
                hint=f"pass {name}=... with a value {wanted}",
            )


def per_chain(mask: Array, like: Array) -> Array:
    """`mask` of shape [chains] with trailing unit axes so it broadcasts against `like`."""
    return mask[(slice(None),) + (None,) * (like.ndim - 1)]


def scaled(value: Array, factor: float) -> Array:
    """value * factor, without the multiplication where the (static) factor is 1: the same
    numbers, one dispatch fewer per use on eager torch."""
    return value if isinstance(factor, float) and factor == 1.0 else value * factor


def initial_inverse_mass(bk: ArrayBackend, position: Array, inverse_mass: Any) -> Array:
    """A trajectory sampler's starting inverse mass per chain and coordinate [chains, D]:
    the configured one (None: identity; a number or one entry per coordinate) broadcast."""
    inverse = 1.0 if inverse_mass is None else np.asarray(inverse_mass, dtype=float)
    return bk.ops.ones_like(position) * bk.asarray(np.broadcast_to(inverse, tuple(position.shape[1:])).copy())


def select_chains(ops: Any, mask: Array, new: Array, old: Array) -> Array:
    """Per chain, `new` where `mask` holds and `old` elsewhere."""
    return ops.where(per_chain(mask, new), new, old)


def classify_proposal(
    ops: Any, energy_new: Array, grad_new: Array | None, energy_rise: Array, threshold: float
) -> tuple[Array, Array]:
    """Which proposals may be accepted, and which are divergent.

    usable: a finite energy and (when given) a finite gradient everywhere.
    divergent: NaN or -inf energy, a non-finite gradient at a finite energy, or a
    finite rise of the tempered energy (or Hamiltonian) above `threshold`.
    A proposal at energy +inf is not usable but not divergent either: that is a
    constraint (`violation`) doing its job, and the proposal is simply rejected.
    """
    usable = ops.isfinite(energy_new)
    if grad_new is not None:
        # A sum is non-finite when any term is (or when it overflows, also a blow-up).
        usable = usable & ops.isfinite(ops.sum(grad_new, axis=-1))
    # Usable: divergent if it blew up; not usable: divergent unless it hit a constraint.
    # A usable energy is finite, so this is (~usable & ~hit_constraint) | (usable & blew_up)
    # in fewer operations (each one a dispatch on eager torch).
    divergent = (energy_new != POSITIVE_INFINITY) & (~usable | (energy_rise > threshold))
    return usable, divergent


def metropolis_log_acceptance(ops: Any, log_ratio: Array, usable: Array) -> Array:
    """log min(1, exp(log_ratio)), and -inf where the proposal is not usable."""
    # Where the proposal is not usable log_ratio may be NaN; the outer `where` drops it.
    return ops.where(usable, ops.clip(log_ratio, None, 0.0), -POSITIVE_INFINITY)


def metropolis_accept(ops: Any, uniform: Array, log_acceptance: Array) -> Array:
    """Bool [chains]: accept each proposal with probability exp(log_acceptance), given
    one uniform draw in [0, 1) per chain."""
    return ops.log(uniform) < log_acceptance


def as_float_mask(ops: Any, mask: Array, like: Array) -> Array:
    """A bool mask as 0.0 / 1.0 in the dtype of `like`."""
    return ops.where(mask, ops.ones_like(like), ops.zeros_like(like))


class ChainTrace(NamedTuple):
    """What `run_chain` collected, as numpy arrays with a leading draw axis.

    positions: [draws, chains, D]; info: one array [draws, ...] per info field.
    """

    positions: np.ndarray
    info: dict[str, np.ndarray]


def run_chain(
    bk: ArrayBackend,
    step: Callable[[Key, Any], tuple[Any, Any]],
    key: Key,
    state: Any,
    num_steps: int,
    *,
    num_discard: int = 0,
    thin: int = 1,
) -> tuple[Any, ChainTrace]:
    """Apply `step(key, state) -> (state, info)` `num_steps` times and collect draws.

    `step` is usually `lambda k, s: kernel(k, s, potential)`, jitted by the caller
    where the backend can. Draws after the first `num_discard` steps, every `thin`-th,
    are kept (positions and info fields, as numpy). Returns the final state and the trace.
    """
    positions: list[np.ndarray] = []
    infos: dict[str, list[np.ndarray]] = {}
    for index, step_key in enumerate(bk.split(key, num_steps)):
        state, info = step(step_key, state)
        if index < num_discard or (index - num_discard) % thin:
            continue
        positions.append(bk.to_numpy(state.position))
        for name, value in info._asdict().items():
            infos.setdefault(name, []).append(bk.to_numpy(value))
    stacked = {name: np.stack(values) for name, values in infos.items()}
    empty = np.zeros((0,) + tuple(state.position.shape))
    return state, ChainTrace(np.stack(positions) if positions else empty, stacked)
