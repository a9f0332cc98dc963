"""Langevin samplers for a ring of Gaussians, in torch and JAX (hand-written).

Target: p(x) ∝ sum_k N(x; mu_k, sigma^2 I) in 2D, mu_k = r (cos 2πk/K, sin 2πk/K).
Its score is closed-form: grad log p(x) = sum_k w_k(x) (mu_k - x) / sigma^2 with
w(x) = softmax_k(-|x - mu_k|^2 / (2 sigma^2)); the kernels use it directly, as a person
writing this by hand would.

Step (the convention of blackjax, so step sizes mean the same everywhere):
    x' = x + eps * grad log p(x) + sqrt(2 eps) * xi,   xi ~ N(0, I)
ULA takes every step; MALA accepts x' with probability
    min(1, p(x') q(x | x') / (p(x) q(x' | x))),  log q(b | a) = -|b - a - eps grad log p(a)|^2 / (4 eps).

Every run returns (final positions [chains, 2], fraction of accepted proposals over all
chains and steps; 1.0 for ULA).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def ring_means(modes: int, radius: float) -> np.ndarray:
    """float32 [modes, 2]: the mode centres, evenly spaced on a circle."""
    angles = 2.0 * np.pi * np.arange(modes) / modes
    return (radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)).astype(np.float32)


def log_density_numpy(x: np.ndarray, means: np.ndarray, sigma: float) -> np.ndarray:
    """Unnormalised log p for points x [n, 2] (float64), for tests."""
    squared = ((x[:, None, :] - means[None, :, :]) ** 2).sum(-1) / (2.0 * sigma**2)
    top = (-squared).max(axis=1)
    return top + np.log(np.exp(-squared - top[:, None]).sum(axis=1))


def nearest_mode(x: np.ndarray, means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest mode [n], squared distance to it [n]) for points x [n, 2]."""
    squared = ((x[:, None, :].astype(np.float64) - means[None, :, :]) ** 2).sum(-1)
    nearest = squared.argmin(axis=1)
    return nearest, squared[np.arange(len(x)), nearest]


def ula_stationary_msd(sigma: float, step_size: float) -> float:
    """E|x - mu|^2 under ULA's own stationary law for one isolated N(mu, sigma^2 I) in 2D.

    Per coordinate ULA is x' = (1 - a) x + sqrt(2 eps) xi with a = eps / sigma^2, whose
    stationary variance is 2 eps / (1 - (1 - a)^2) = sigma^2 / (1 - a / 2); the exact
    target's is sigma^2 (MALA's limit). The ring's other modes are >= 6 sigma away,
    so their pull is negligible.
    """
    return 2.0 * sigma**2 / (1.0 - step_size / (2.0 * sigma**2))


# --------------------------------------------------------------------------
# torch


def torch_langevin(
    x0: Any, means: Any, sigma: float, step_size: float, steps: int, seed: int, adjusted: bool
) -> tuple[Any, float]:
    """ULA (adjusted=False) or MALA from x0 [chains, 2]; torch tensors, float32."""
    import torch

    generator = torch.Generator(device=x0.device).manual_seed(seed)
    inverse_variance = 1.0 / sigma**2
    noise_scale = (2.0 * step_size) ** 0.5

    def log_density_and_score(x: Any) -> tuple[Any, Any]:
        offsets = means[None, :, :] - x[:, None, :]  # [n, K, 2]
        logits = -0.5 * inverse_variance * (offsets * offsets).sum(-1)  # [n, K]
        weights = torch.softmax(logits, dim=1)
        score = inverse_variance * (weights[:, :, None] * offsets).sum(1)
        # ULA never looks at log p; eager torch would compute it anyway.
        return (torch.logsumexp(logits, dim=1) if adjusted else None), score

    x = x0.clone()
    log_p, score = log_density_and_score(x)
    accepted = torch.zeros((), dtype=torch.float64)
    for _ in range(steps):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        proposal = x + step_size * score + noise_scale * noise
        if not adjusted:
            x = proposal
            log_p, score = log_density_and_score(x)
            continue
        log_p_new, score_new = log_density_and_score(proposal)
        forward = ((proposal - x - step_size * score) ** 2).sum(1)
        backward = ((x - proposal - step_size * score_new) ** 2).sum(1)
        log_ratio = log_p_new - log_p - (backward - forward) / (4.0 * step_size)
        u = torch.rand(log_ratio.shape, generator=generator, dtype=x.dtype, device=x.device)
        accept = torch.log(u) < log_ratio
        x = torch.where(accept[:, None], proposal, x)
        log_p = torch.where(accept, log_p_new, log_p)
        score = torch.where(accept[:, None], score_new, score)
        accepted += accept.sum()
    rate = float(accepted) / (steps * x.shape[0]) if adjusted and steps else 1.0
    return x, rate


# --------------------------------------------------------------------------
# JAX


def jax_langevin_fn(adjusted: bool) -> Callable[..., tuple[Any, Any]]:
    """A jitted `run(key, x0, means, sigma, step_size, steps) -> (x, acceptance rate)`.

    `steps` is traced (a `lax.fori_loop` with a runtime trip count), so a short warm-up
    compiles the very program that is timed.
    """
    import jax
    import jax.numpy as jnp

    def log_density_and_score(x: Any, means: Any, sigma: Any) -> tuple[Any, Any]:
        offsets = means[None, :, :] - x[:, None, :]
        logits = -0.5 / sigma**2 * (offsets * offsets).sum(-1)
        weights = jax.nn.softmax(logits, axis=1)
        score = (weights[:, :, None] * offsets).sum(1) / sigma**2
        return jax.nn.logsumexp(logits, axis=1), score

    @jax.jit
    def run(key: Any, x0: Any, means: Any, sigma: Any, step_size: Any, steps: Any) -> tuple[Any, Any]:
        def step(_: Any, carry: tuple[Any, ...]) -> tuple[Any, ...]:
            key, x, log_p, score, accepted = carry
            key, key_noise, key_accept = jax.random.split(key, 3)
            noise = jax.random.normal(key_noise, x.shape, dtype=x.dtype)
            proposal = x + step_size * score + jnp.sqrt(2.0 * step_size) * noise
            log_p_new, score_new = log_density_and_score(proposal, means, sigma)
            if not adjusted:
                return key, proposal, log_p_new, score_new, accepted
            forward = ((proposal - x - step_size * score) ** 2).sum(1)
            backward = ((x - proposal - step_size * score_new) ** 2).sum(1)
            log_ratio = log_p_new - log_p - (backward - forward) / (4.0 * step_size)
            u = jax.random.uniform(key_accept, log_ratio.shape, dtype=x.dtype)
            accept = jnp.log(u) < log_ratio
            x = jnp.where(accept[:, None], proposal, x)
            log_p = jnp.where(accept, log_p_new, log_p)
            score = jnp.where(accept[:, None], score_new, score)
            return key, x, log_p, score, accepted + accept.sum(dtype=jnp.int32)

        log_p, score = log_density_and_score(x0, means, sigma)
        carry = (key, x0, log_p, score, jnp.zeros((), dtype=jnp.int32))
        _, x, _, _, accepted = jax.lax.fori_loop(0, steps, step, carry)
        rate = accepted / jnp.maximum(steps * x0.shape[0], 1) if adjusted else jnp.ones(())
        return x, rate

    return run
