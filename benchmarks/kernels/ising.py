"""Checkerboard block Gibbs for the periodic 2D Ising model, in numpy, torch and JAX.

Model: p(s) ∝ exp(beta * sum_<ij> s_i s_j) over spins s in {-1, +1}^(L x L) with
periodic boundaries (J = 1, no field). L must be even so the two colours of the
checkerboard are independent given each other.

One sweep resamples every site of colour 0 ((i + j) even), then every site of colour 1,
each from its exact conditional p(s_i = +1 | rest) = sigmoid(2 beta h_i), h_i = the sum
of its 4 neighbours.

The kernels keep the lattice *packed* by colour, the standard layout for checkerboard
updates: colour c of row i lives in a [chains, L, L/2] array at column j' where the site
is (i, 2 j' + ((i + c) % 2)). A site's vertical neighbours are then the other colour at
rows i +- 1, column j'; its horizontal ones are the other colour at j' and at j' - 1
(colour 0 on even rows, colour 1 on odd rows) or j' + 1 (otherwise). Nothing is
computed for the half of the lattice a half-sweep does not touch.

States outside the kernels are int8 arrays [chains, L, L] of +-1 in every library.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def check_lattice(spins_shape: tuple[int, ...]) -> int:
    """The side L of a [chains, L, L] state; raises unless the lattice is square and even."""
    if len(spins_shape) != 3 or spins_shape[1] != spins_shape[2]:
        raise ValueError(f"spins must have shape [chains, L, L], got {spins_shape}")
    side = spins_shape[1]
    if side < 4 or side % 2:
        raise ValueError(f"checkerboard Gibbs needs an even L >= 4, got L = {side}")
    return side


def packed_columns(side: int) -> np.ndarray:
    """int [2, L, L/2]: columns[c, i, j'] = the lattice column of packed site (i, j') of colour c."""
    rows = np.arange(side)[:, None]
    half = 2 * np.arange(side // 2)[None, :]
    return np.stack([half + (rows + colour) % 2 for colour in range(2)])


def shifts_left(side: int) -> np.ndarray:
    """bool [2, L, 1]: True where colour c's second horizontal neighbour is at j' - 1 (else j' + 1)."""
    rows = np.arange(side)[:, None]
    return np.stack([(rows + colour) % 2 == 0 for colour in range(2)])


def pack(spins: Any, side: int) -> list[Any]:
    """[chains, L, L] -> the two colours, each [chains, L, L/2] (numpy, torch or JAX)."""
    rows = np.arange(side)[:, None]
    return [spins[:, rows, columns] for columns in packed_columns(side)]


def unpack_numpy(colours: list[np.ndarray], side: int) -> np.ndarray:
    """The inverse of `pack` for numpy arrays."""
    spins = np.empty((colours[0].shape[0], side, side), dtype=colours[0].dtype)
    rows = np.arange(side)[:, None]
    for columns, values in zip(packed_columns(side), colours):
        spins[:, rows, columns] = values
    return spins


def up_probability_table(beta: float) -> np.ndarray:
    """float32 [9]: table[h + 4] = p(s = +1 | neighbour sum h) = sigmoid(2 beta h)."""
    fields = np.arange(-4, 5, dtype=np.float64)
    return (1.0 / (1.0 + np.exp(-2.0 * beta * fields))).astype(np.float32)


def random_spins(chains: int, side: int, seed: int) -> np.ndarray:
    """A hot start: independent uniform +-1 spins, int8 [chains, L, L]."""
    rng = np.random.default_rng(seed)
    return (2 * rng.integers(0, 2, size=(chains, side, side), dtype=np.int8) - 1).astype(np.int8)


def energy_per_site(spins: np.ndarray) -> np.ndarray:
    """-(1/N) sum_<ij> s_i s_j per chain (J = 1, no beta), float64 [chains]."""
    s = spins.astype(np.float64)
    bonds = s * np.roll(s, 1, axis=1) + s * np.roll(s, 1, axis=2)
    return -bonds.sum(axis=(1, 2)) / (s.shape[1] * s.shape[2])


def abs_magnetisation(spins: np.ndarray) -> np.ndarray:
    """|mean spin| per chain, float64 [chains]."""
    return np.abs(spins.astype(np.float64).mean(axis=(1, 2)))


# --------------------------------------------------------------------------
# numpy


def numpy_sweeps(spins: np.ndarray, beta: float, sweeps: int, seed: int) -> np.ndarray:
    """`sweeps` checkerboard Gibbs sweeps from `spins` (not modified); returns the new state."""
    side = check_lattice(spins.shape)
    left = shifts_left(side)
    table = up_probability_table(beta)
    rng = np.random.default_rng(seed)
    colours = pack(spins.astype(np.int8), side)
    for _ in range(sweeps):
        for colour in range(2):
            other = colours[1 - colour]
            field = (
                np.roll(other, 1, 1) + np.roll(other, -1, 1) + other
                + np.where(left[colour], np.roll(other, 1, 2), np.roll(other, -1, 2))
            )
            up = rng.random(field.shape, dtype=np.float32) < table[field + 4]
            colours[colour] = np.where(up, np.int8(1), np.int8(-1))
    return unpack_numpy(colours, side)


# --------------------------------------------------------------------------
# torch


def torch_sweeps(spins: Any, beta: float, sweeps: int, seed: int) -> Any:
    """The numpy kernel in torch: `spins` an int8 tensor [chains, L, L]; returns a new one."""
    import torch

    side = check_lattice(tuple(spins.shape))
    device = spins.device
    left = torch.from_numpy(shifts_left(side)).to(device)
    table = torch.from_numpy(up_probability_table(beta)).to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    plus, minus = torch.ones((), dtype=torch.int8), -torch.ones((), dtype=torch.int8)
    colours = pack(spins, side)
    for _ in range(sweeps):
        for colour in range(2):
            other = colours[1 - colour]
            field = (
                torch.roll(other, 1, 1) + torch.roll(other, -1, 1) + other
                + torch.where(left[colour], torch.roll(other, 1, 2), torch.roll(other, -1, 2))
            )
            u = torch.rand(field.shape, generator=generator, device=device, dtype=torch.float32)
            colours[colour] = torch.where(u < table[field.long() + 4], plus, minus)
    result = torch.empty_like(spins)
    rows = torch.arange(side, device=device)[:, None]
    for columns, values in zip(torch.from_numpy(packed_columns(side)).to(device), colours):
        result[:, rows, columns] = values
    return result


# --------------------------------------------------------------------------
# JAX


def jax_sweeps_fn() -> Callable[[Any, Any, float, int], Any]:
    """A jitted `run(key, spins, beta, sweeps) -> spins`.

    `beta` and `sweeps` are traced, not static: the loop is a `lax.fori_loop` with a
    runtime trip count, so one compile serves every number of sweeps (and a short
    warm-up compiles exactly the program that is timed).
    """
    import jax
    import jax.numpy as jnp

    @jax.jit
    def run(key: Any, spins: Any, beta: Any, sweeps: Any) -> Any:
        side = check_lattice(spins.shape)
        left = jnp.asarray(shifts_left(side))
        plus, minus = jnp.int8(1), jnp.int8(-1)

        def half_sweep(key: Any, colours: list[Any], colour: int) -> Any:
            other = colours[1 - colour]
            field = (
                jnp.roll(other, 1, 1) + jnp.roll(other, -1, 1) + other
                + jnp.where(left[colour], jnp.roll(other, 1, 2), jnp.roll(other, -1, 2))
            )
            u = jax.random.uniform(key, field.shape, dtype=jnp.float32)
            p_up = jax.nn.sigmoid((2.0 * beta) * field.astype(jnp.float32))
            return jnp.where(u < p_up, plus, minus)

        def sweep(_: Any, carry: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
            key, even, odd = carry
            key, key_even, key_odd = jax.random.split(key, 3)
            even = half_sweep(key_even, [even, odd], 0)
            odd = half_sweep(key_odd, [even, odd], 1)
            return key, even, odd

        even, odd = pack(spins, side)
        _, even, odd = jax.lax.fori_loop(0, sweeps, sweep, (key, even, odd))
        rows = np.arange(side)[:, None]
        columns = packed_columns(side)
        return spins.at[:, rows, columns[0]].set(even).at[:, rows, columns[1]].set(odd)

    return run


# --------------------------------------------------------------------------
# Index arrays (what lowering a `sum over neighbours` produces)


def neighbour_tables(side: int) -> tuple[np.ndarray, np.ndarray]:
    """The checkerboard's flat index arrays: sites int64 [2, L*L/2] (colour c's sites) and
    neighbours int64 [2, L*L/2, 4] (up, down, left, right of each, wrapping around)."""
    check_lattice((1, side, side))
    rows, cols = np.divmod(np.arange(side * side, dtype=np.int64), side)
    colour = (rows + cols) % 2
    neighbours = np.stack(
        [
            ((rows - 1) % side) * side + cols,
            ((rows + 1) % side) * side + cols,
            rows * side + (cols - 1) % side,
            rows * side + (cols + 1) % side,
        ],
        axis=1,
    )
    sites = np.stack([np.flatnonzero(colour == c) for c in range(2)])
    return sites, neighbours[sites]
