"""Sequential-scan Gibbs for a fully connected Boltzmann machine over spins, in torch and JAX.

Model: p(s) ∝ exp(sum_{i<j} W_ij s_i s_j + sum_i b_i s_i), s in {-1, +1}^N. With the
symmetric couplings J = triu(W, 1) + triu(W, 1)^T (zero diagonal), the field of unit i is
f_i = J[i] . s + b_i and p(s_i = +1 | rest) = sigmoid(2 f_i). One sweep updates units
0 .. N-1 in order, each from its exact conditional given the current values of all others:
the loop a practitioner writes by hand, J built once outside it.

States are [chains, N] float arrays of +-1.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def couplings(weights: np.ndarray) -> np.ndarray:
    """J = triu(W, 1) + its transpose: the symmetric, zero-diagonal couplings of `i < j` pairs."""
    upper = np.triu(np.asarray(weights, dtype=np.float64), 1)
    return upper + upper.T


def torch_sweeps(coupling: Any, bias: Any) -> Callable[[Any, Any, int], Any]:
    """`run(generator, spins, sweeps) -> spins` (torch; spins are updated in place on a copy)."""
    import torch

    def run(generator: "torch.Generator", spins: "torch.Tensor", sweeps: int) -> "torch.Tensor":
        spins = spins.clone()
        chains, units = spins.shape
        for _ in range(sweeps):
            uniform = torch.rand(chains, units, generator=generator, dtype=spins.dtype)
            for i in range(units):
                field = spins @ coupling[i] + bias[i]
                spins[:, i] = torch.where(uniform[:, i] < torch.sigmoid(2.0 * field), 1.0, -1.0)
        return spins

    return run


def jax_sweeps(coupling: Any, bias: Any) -> Callable[[Any, Any, Any], Any]:
    """`run(key, spins, sweeps) -> spins`, jitted once; `sweeps` is traced (a fori_loop bound)."""
    import jax
    import jax.numpy as jnp

    def sweep(key, spins):
        uniform = jax.random.uniform(key, spins.shape, spins.dtype)

        def unit(i, spins):
            field = spins @ coupling[i] + bias[i]
            return spins.at[:, i].set(jnp.where(uniform[:, i] < jax.nn.sigmoid(2.0 * field), 1.0, -1.0))

        return jax.lax.fori_loop(0, spins.shape[1], unit, spins)

    @jax.jit
    def run(key, spins, sweeps):
        def body(t, spins):
            return sweep(jax.random.fold_in(key, t), spins)

        return jax.lax.fori_loop(0, sweeps, body, spins)

    return run
