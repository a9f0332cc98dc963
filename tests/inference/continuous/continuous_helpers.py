"""Test helpers for the continuous kernels: a tiny torch and JAX adapter with exactly
the names the kernels use (`ebmlang.inference.continuous.ArrayBackend`), small
closed-form potentials, and Monte-Carlo tolerances. The real backends live in
`ebmlang.backends`; these adapters keep the kernel tests independent of them.
"""
from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import torch


def _torch_ops() -> types.SimpleNamespace:
    return types.SimpleNamespace(
        exp=torch.exp, log=torch.log, log1p=torch.log1p, sqrt=torch.sqrt, abs=torch.abs,
        square=torch.square, where=torch.where, minimum=torch.minimum, maximum=torch.maximum,
        clip=torch.clip, isfinite=torch.isfinite,
        sum=lambda x, axis=None: torch.sum(x) if axis is None else torch.sum(x, dim=axis),
        mean=lambda x, axis=None: torch.mean(x) if axis is None else torch.mean(x, dim=axis),
        all=lambda x, axis=None: torch.all(x) if axis is None else torch.all(x, dim=axis),
        stack=lambda xs, axis=0: torch.stack(list(xs), dim=axis),
        concatenate=lambda xs, axis=0: torch.cat(list(xs), dim=axis),
        zeros_like=torch.zeros_like, ones_like=torch.ones_like, full_like=torch.full_like,
    )


class TorchAdapter:
    """Keys are integers; `split` derives children with numpy's SeedSequence hashing."""

    name = "torch"

    def __init__(self):
        self.ops = _torch_ops()
        self.dtype = torch.float32

    def key(self, seed: int) -> int:
        return int(seed)

    def split(self, key: int, num: int) -> tuple[int, ...]:
        words = np.random.SeedSequence(int(key)).generate_state(int(num), dtype=np.uint64)
        return tuple(int(w) >> 1 for w in words)  # manual_seed wants < 2^63

    def _generator(self, key: int) -> torch.Generator:
        return torch.Generator().manual_seed(int(key))

    def normal(self, key: int, shape) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=self._generator(key), dtype=self.dtype)

    def uniform(self, key: int, shape) -> torch.Tensor:
        return torch.rand(tuple(shape), generator=self._generator(key), dtype=self.dtype)

    def asarray(self, x) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=self.dtype)

    def to_numpy(self, x) -> np.ndarray:
        return x.detach().cpu().numpy()

    def jit(self, fn):
        return fn


class JaxAdapter:
    name = "jax"

    def __init__(self):
        self.ops = types.SimpleNamespace(
            exp=jnp.exp, log=jnp.log, log1p=jnp.log1p, sqrt=jnp.sqrt, abs=jnp.abs,
            square=jnp.square, where=jnp.where, minimum=jnp.minimum, maximum=jnp.maximum,
            clip=jnp.clip, isfinite=jnp.isfinite, sum=jnp.sum, mean=jnp.mean, all=jnp.all,
            stack=jnp.stack, concatenate=jnp.concatenate, zeros_like=jnp.zeros_like,
            ones_like=jnp.ones_like, full_like=jnp.full_like,
        )
        self.dtype = jnp.float32

    def key(self, seed: int):
        return jax.random.key(int(seed))

    def split(self, key, num: int):
        return jax.random.split(key, int(num))

    def normal(self, key, shape):
        return jax.random.normal(key, tuple(shape), dtype=self.dtype)

    def uniform(self, key, shape):
        return jax.random.uniform(key, tuple(shape), dtype=self.dtype)

    def asarray(self, x):
        return jnp.asarray(np.asarray(x), dtype=self.dtype)

    def to_numpy(self, x) -> np.ndarray:
        return np.asarray(x)

    def jit(self, fn):
        return jax.jit(fn)


# --------------------------------------------------------------------------
# Closed-form potentials


class GaussianPotential:
    """E(x) = (x - mean)^T P (x - mean) / 2 with precision P = inverse(covariance)."""

    def __init__(self, bk, mean, covariance):
        self.mean_np = np.asarray(mean, dtype=float)
        self.covariance_np = np.atleast_2d(np.asarray(covariance, dtype=float))
        self.mean = bk.asarray(self.mean_np)
        self.precision = bk.asarray(np.linalg.inv(self.covariance_np))
        self.ops = bk.ops

    def energy_and_grad(self, x):
        centred = x - self.mean
        grad = centred @ self.precision
        return 0.5 * self.ops.sum(centred * grad, axis=-1), grad

    def energy(self, x):
        return self.energy_and_grad(x)[0]


class BetaPotential:
    """E(x) = -((a - 1) log x + (b - 1) log(1 - x)) on (0, 1), one coordinate."""

    def __init__(self, bk, a: float, b: float):
        self.a, self.b, self.ops = a, b, bk.ops

    def energy_and_grad(self, x):
        ops = self.ops
        energy = -((self.a - 1) * ops.log(x) + (self.b - 1) * ops.log1p(-x))
        grad = -((self.a - 1) / x - (self.b - 1) / (1 - x))
        return ops.sum(energy, axis=-1), grad

    def energy(self, x):
        return self.energy_and_grad(x)[0]


class FlatPotential:
    """E = 0 everywhere (a uniform law once a transform or reflection bounds it)."""

    def __init__(self, bk):
        self.ops = bk.ops

    def energy_and_grad(self, x):
        return self.ops.sum(self.ops.zeros_like(x), axis=-1), self.ops.zeros_like(x)

    def energy(self, x):
        return self.energy_and_grad(x)[0]


def make_step(bk, kernel, potential):
    """`step(key, state)` with the potential closed over, jitted on JAX (which also
    checks that the kernel traces: no Python branching on array values)."""
    return bk.jit(lambda key, state: kernel(key, state, potential))


# --------------------------------------------------------------------------
# Monte-Carlo tolerances


def assert_gaussian_moments(draws: np.ndarray, mean, covariance, ess: float, z: float = 4.0) -> None:
    """Check the pooled mean and covariance of `draws` [draws, chains, D] against the truth.

    For `ess` effectively independent draws from a Gaussian, the standard error of a
    mean is sqrt(S_ii / ess) and of a covariance entry sqrt((S_ii S_jj + S_ij^2) / ess)
    (the Wishart variance). `z` standard errors is the tolerance; callers pass an ESS
    derived from chains x draws and a conservative ESS factor (see each test).
    """
    mean = np.asarray(mean, dtype=float)
    covariance = np.atleast_2d(np.asarray(covariance, dtype=float))
    flat = draws.reshape(-1, draws.shape[-1]).astype(np.float64)
    sample_mean = flat.mean(axis=0)
    sample_cov = np.atleast_2d(np.cov(flat, rowvar=False))
    mean_se = np.sqrt(np.diag(covariance) / ess)
    variances = np.diag(covariance)
    cov_se = np.sqrt((np.outer(variances, variances) + covariance ** 2) / ess)
    assert np.all(np.abs(sample_mean - mean) < z * mean_se), (sample_mean, mean, z * mean_se)
    assert np.all(np.abs(sample_cov - covariance) < z * cov_se), (sample_cov, covariance, z * cov_se)


def assert_mean_variance(samples: np.ndarray, mean: float, variance: float, ess: float,
                         excess_kurtosis: float = 0.0, z: float = 4.0) -> None:
    """Mean and variance of scalar `samples` against the truth, `z` standard errors.

    SE(mean) = sqrt(var / ess); SE(variance) = var sqrt((2 + excess_kurtosis) / ess)
    (the large-sample variance of the sample variance for any law with that kurtosis).
    """
    flat = np.asarray(samples, dtype=np.float64).ravel()
    mean_se = np.sqrt(variance / ess)
    variance_se = variance * np.sqrt((2.0 + excess_kurtosis) / ess)
    assert abs(flat.mean() - mean) < z * mean_se, (flat.mean(), mean, z * mean_se)
    assert abs(flat.var() - variance) < z * variance_se, (flat.var(), variance, z * variance_se)


def autodiff_grad(bk, scalar_fn, x: np.ndarray) -> np.ndarray:
    """d sum(scalar_fn(x)) / dx by the backend's own autodiff (a reference for the
    closed-form gradients, which never use autodiff themselves)."""
    if bk.name == "jax":
        return np.asarray(jax.grad(lambda v: jnp.sum(scalar_fn(v)))(bk.asarray(x)))
    tensor = bk.asarray(x).requires_grad_(True)
    scalar_fn(tensor).sum().backward()
    return tensor.grad.numpy()


def start_chains(bk, init, position, potential, config):
    """`init(bk, position, potential, config)`, jitted on JAX: one compile instead of
    one per eager operation (which dominated the JAX tests' run time)."""
    return bk.jit(lambda start: init(bk, start, potential, config))(position)


def first_step(bk, init, build, config, position, potential, key):
    """Start chains at `position` and take one kernel step, as one program (jitted on
    JAX); returns (start state, next state, info)."""
    kernel = build(bk, config)

    def start_and_step(start, step_key):
        state = init(bk, start, potential, config)
        return (state, *kernel(step_key, state, potential))

    return bk.jit(start_and_step)(position, key)
