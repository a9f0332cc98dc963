"""Forward-backward and Viterbi for an HMM with Gaussian emissions, in numpy, torch and JAX.

The model is examples/hmm.ebm's energy: E(x, z) = -log_start[z_0] - sum_t log_A[z_t, z_t+1]
+ sum_t (0.5 ((x_t - mu[z_t]) / sigma[z_t])^2 + log sigma[z_t]). The loops are the textbook
ones in log space, batched over sequences: alpha_t = logsumexp(alpha_t-1 + log_A) + emit_t
forward, the same backward, posteriors softmax(alpha + beta); Viterbi keeps the argmax
per step and backtracks. numpy in float64 is the oracle; torch runs eagerly and JAX as
`lax.scan` inside `jax.jit` -- what a careful person writes for each.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import logsumexp


def emission_log_weights(x, mu, sigma, lib) -> Any:
    """[B, T, K] -(0.5 ((x - mu) / sigma)^2 + log sigma) in the array library `lib`."""
    scaled = (x[..., None] - mu) / sigma
    return -(0.5 * scaled ** 2 + lib.log(sigma))


def numpy_forward_backward(x, log_start, log_A, mu, sigma) -> tuple[np.ndarray, np.ndarray]:
    """(log Z [B], posteriors [B, T, K]) in float64."""
    emit = emission_log_weights(np.asarray(x, np.float64), mu, sigma, np)
    steps = emit.shape[1]
    alpha = [log_start + emit[:, 0]]
    for t in range(1, steps):
        alpha.append(logsumexp(alpha[-1][:, :, None] + log_A, axis=1) + emit[:, t])
    beta = [np.zeros_like(alpha[0])]
    for t in range(steps - 1, 0, -1):
        beta.append(logsumexp(log_A[None] + (emit[:, t] + beta[-1])[:, None, :], axis=2))
    alpha, beta = np.stack(alpha, 1), np.stack(beta[::-1], 1)
    log_z = logsumexp(alpha[:, -1], axis=1)
    return log_z, np.exp(alpha + beta - log_z[:, None, None])


def path_energy(paths, x, log_start, log_A, mu, sigma) -> np.ndarray:
    """E(x, z) of each path [B, T] (float64)."""
    paths = np.asarray(paths, dtype=np.int64)
    emit = emission_log_weights(np.asarray(x, np.float64), mu, sigma, np)
    rows = np.arange(paths.shape[0])[:, None]
    steps = np.arange(paths.shape[1])[None, :]
    return -(log_start[paths[:, 0]] + log_A[paths[:, :-1], paths[:, 1:]].sum(axis=1)
             + emit[rows, steps, paths].sum(axis=1))


def torch_hmm(log_start, log_A, mu, sigma) -> tuple[Callable, Callable]:
    """(forward_backward(x) -> (log Z, posteriors), viterbi(x) -> paths) over torch tensors."""
    import torch

    def forward_backward(x):
        emit = emission_log_weights(x, mu, sigma, torch)
        steps = emit.shape[1]
        alpha = [log_start + emit[:, 0]]
        for t in range(1, steps):
            alpha.append(torch.logsumexp(alpha[-1][:, :, None] + log_A, 1) + emit[:, t])
        beta = [torch.zeros_like(alpha[0])]
        for t in range(steps - 1, 0, -1):
            beta.append(torch.logsumexp(log_A[None] + (emit[:, t] + beta[-1])[:, None, :], 2))
        alpha, beta = torch.stack(alpha, 1), torch.stack(beta[::-1], 1)
        return torch.logsumexp(alpha[:, -1], 1), torch.softmax(alpha + beta, 2)

    def viterbi(x):
        emit = emission_log_weights(x, mu, sigma, torch)
        score, pointers = log_start + emit[:, 0], []
        for t in range(1, emit.shape[1]):
            score, best = (score[:, :, None] + log_A).max(1)
            score = score + emit[:, t]
            pointers.append(best)
        label = score.argmax(1)
        path = [label]
        for best in reversed(pointers):
            label = best.gather(1, label[:, None])[:, 0]
            path.append(label)
        return torch.stack(path[::-1], 1)

    return forward_backward, viterbi


def jax_hmm(log_start, log_A, mu, sigma) -> tuple[Callable, Callable]:
    """Jitted (forward_backward, viterbi) over JAX arrays, each a `lax.scan` over steps."""
    import jax
    import jax.numpy as jnp

    @jax.jit
    def forward_backward(x):
        emit = jnp.swapaxes(emission_log_weights(x, mu, sigma, jnp), 0, 1)          # [T, B, K]

        def forward(alpha, e):
            alpha = jax.nn.logsumexp(alpha[:, :, None] + log_A, 1) + e
            return alpha, alpha

        def backward(beta, e):
            beta = jax.nn.logsumexp(log_A[None] + (e + beta)[:, None, :], 2)
            return beta, beta

        first = log_start + emit[0]
        _, alpha = jax.lax.scan(forward, first, emit[1:])
        alpha = jnp.concatenate([first[None], alpha], 0)
        _, beta = jax.lax.scan(backward, jnp.zeros_like(first), emit[1:], reverse=True)
        beta = jnp.concatenate([beta, jnp.zeros_like(first)[None]], 0)
        return jax.nn.logsumexp(alpha[-1], 1), jnp.swapaxes(jax.nn.softmax(alpha + beta, 2), 0, 1)

    @jax.jit
    def viterbi(x):
        emit = jnp.swapaxes(emission_log_weights(x, mu, sigma, jnp), 0, 1)

        def forward(score, e):
            total = score[:, :, None] + log_A
            return total.max(1) + e, total.argmax(1)

        score, pointers = jax.lax.scan(forward, log_start + emit[0], emit[1:])

        def back(label, best):
            previous = jnp.take_along_axis(best, label[:, None], 1)[:, 0]
            return previous, label

        first, later = jax.lax.scan(back, score.argmax(1), pointers, reverse=True)
        return jnp.swapaxes(jnp.concatenate([first[None], later], 0), 0, 1)

    return forward_backward, viterbi
