"""MALA and HMC on a Gaussian Markov random field, in torch and JAX (hand-written).

Target: the chain GMRF of benchmarks/models/gmrf.ebm,

    E(x) = alpha/2 sum_i x_i^2 + beta/2 sum_i (x_i - x_{i+1})^2 = x^T Q x / 2,
    Q = alpha I + beta L (L the path graph's Laplacian),

so x ~ N(0, Q^-1). The kernels differentiate the energy as a person writing them by
hand would (torch: autograd; JAX: jax.grad of the batch energy summed), with a fixed
step and no adaptation, in ebmlang's conventions so every contender runs the same maths:

    MALA: x' = x - eps grad E(x) + sqrt(2 eps) xi, accepted with the Metropolis-Hastings
          ratio of the Gaussian proposal densities;
    HMC:  p ~ N(0, I), `leapfrog` steps of size eps (half kicks at both ends), accepted
          with probability min(1, exp(-(H' - H))), H = E(x) + |p|^2 / 2.

Every run returns (final positions [chains, N], acceptance rate over chains and steps).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def precision(size: int, alpha: float, beta: float) -> np.ndarray:
    """Q = alpha I + beta L [size, size] (float64)."""
    laplacian = np.diag(np.r_[1.0, 2.0 * np.ones(size - 2), 1.0]) if size > 1 else np.zeros((1, 1))
    laplacian -= np.diag(np.ones(size - 1), 1) + np.diag(np.ones(size - 1), -1)
    return alpha * np.eye(size) + beta * laplacian


def covariance(size: int, alpha: float, beta: float) -> np.ndarray:
    return np.linalg.inv(precision(size, alpha, beta))


def exact_draws(size: int, alpha: float, beta: float, count: int, seed: int) -> np.ndarray:
    """`count` independent draws of x ~ N(0, Q^-1), float32 [count, size]."""
    factor = np.linalg.cholesky(covariance(size, alpha, beta))
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((count, size)) @ factor.T).astype(np.float32)


def energy_numpy(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """E(x) for x [n, size] (float64), for tests."""
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * alpha * (x**2).sum(-1) + 0.5 * beta * (np.diff(x, axis=-1) ** 2).sum(-1)


# --------------------------------------------------------------------------
# torch


def torch_sampler(
    x0: Any, alpha: float, beta: float, step_size: float, steps: int, seed: int, leapfrog: int | None
) -> tuple[Any, float]:
    """MALA (leapfrog=None) or HMC with `leapfrog` steps, eager torch, from x0 [chains, N]."""
    import torch

    generator = torch.Generator(device=x0.device).manual_seed(seed)

    def energy(x: Any) -> Any:
        return 0.5 * alpha * (x * x).sum(1) + 0.5 * beta * ((x[:, 1:] - x[:, :-1]) ** 2).sum(1)

    def energy_and_grad(x: Any) -> tuple[Any, Any]:
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            e = energy(x)
            (grad,) = torch.autograd.grad(e.sum(), x)
        return e.detach(), grad

    x = x0.clone()
    e, grad = energy_and_grad(x)
    accepted = torch.zeros((), dtype=torch.float64)
    noise_scale = (2.0 * step_size) ** 0.5
    for _ in range(steps):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        if leapfrog is None:
            proposal = x - step_size * grad + noise_scale * noise
            e_new, grad_new = energy_and_grad(proposal)
            forward = 0.5 * (noise * noise).sum(1)
            backward = ((x - proposal + step_size * grad_new) ** 2).sum(1) / (4.0 * step_size)
            log_ratio = e - e_new + forward - backward
        else:
            momentum = noise - 0.5 * step_size * grad
            proposal = x
            for leap in range(leapfrog):
                proposal = proposal + step_size * momentum
                e_new, grad_new = energy_and_grad(proposal)
                momentum = momentum - (step_size if leap < leapfrog - 1 else 0.5 * step_size) * grad_new
            log_ratio = e - e_new + 0.5 * ((noise * noise).sum(1) - (momentum * momentum).sum(1))
        u = torch.rand(log_ratio.shape, generator=generator, dtype=x.dtype, device=x.device)
        accept = torch.log(u) < log_ratio
        x = torch.where(accept[:, None], proposal, x)
        e = torch.where(accept, e_new, e)
        grad = torch.where(accept[:, None], grad_new, grad)
        accepted += accept.sum()
    return x, float(accepted) / max(steps * x.shape[0], 1)


# --------------------------------------------------------------------------
# JAX


def jax_sampler_fn(leapfrog: int | None) -> Callable[..., tuple[Any, Any]]:
    """A jitted `run(key, x0, alpha, beta, step_size, steps) -> (x, acceptance rate)`;
    `steps` is traced (`lax.fori_loop`), so a short warm-up compiles the timed program."""
    import jax
    import jax.numpy as jnp

    def energy(x: Any, alpha: Any, beta: Any) -> Any:
        return 0.5 * alpha * (x * x).sum(-1) + 0.5 * beta * ((x[..., 1:] - x[..., :-1]) ** 2).sum(-1)

    def energy_and_grad(x: Any, alpha: Any, beta: Any) -> tuple[Any, Any]:
        e, vjp = jax.vjp(lambda y: energy(y, alpha, beta), x)
        return e, vjp(jnp.ones_like(e))[0]

    @jax.jit
    def run(key: Any, x0: Any, alpha: Any, beta: Any, step_size: Any, steps: Any) -> tuple[Any, Any]:
        def step(_: Any, carry: tuple[Any, ...]) -> tuple[Any, ...]:
            key, x, e, grad, accepted = carry
            key, key_noise, key_accept = jax.random.split(key, 3)
            noise = jax.random.normal(key_noise, x.shape, dtype=x.dtype)
            if leapfrog is None:
                proposal = x - step_size * grad + jnp.sqrt(2.0 * step_size) * noise
                e_new, grad_new = energy_and_grad(proposal, alpha, beta)
                forward = 0.5 * (noise * noise).sum(1)
                backward = ((x - proposal + step_size * grad_new) ** 2).sum(1) / (4.0 * step_size)
                log_ratio = e - e_new + forward - backward
            else:
                def leap(index: Any, inner: tuple[Any, ...]) -> tuple[Any, ...]:
                    position, momentum, _, _ = inner
                    position = position + step_size * momentum
                    e_new, grad_new = energy_and_grad(position, alpha, beta)
                    kick = jnp.where(index < leapfrog - 1, step_size, 0.5 * step_size)
                    return position, momentum - kick * grad_new, e_new, grad_new

                momentum = noise - 0.5 * step_size * grad
                proposal, momentum, e_new, grad_new = jax.lax.fori_loop(
                    0, leapfrog, leap, (x, momentum, e, grad))
                log_ratio = e - e_new + 0.5 * ((noise * noise).sum(1) - (momentum * momentum).sum(1))
            u = jax.random.uniform(key_accept, log_ratio.shape, dtype=x.dtype)
            accept = jnp.log(u) < log_ratio
            x = jnp.where(accept[:, None], proposal, x)
            e = jnp.where(accept, e_new, e)
            grad = jnp.where(accept[:, None], grad_new, grad)
            return key, x, e, grad, accepted + accept.sum(dtype=jnp.int32)

        e, grad = energy_and_grad(x0, alpha, beta)
        carry = (key, x0, e, grad, jnp.zeros((), dtype=jnp.int32))
        _, x, _, _, accepted = jax.lax.fori_loop(0, steps, step, carry)
        return x, accepted / jnp.maximum(steps * x0.shape[0], 1)

    return run
