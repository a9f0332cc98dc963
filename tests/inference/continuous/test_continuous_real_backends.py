"""The kernels on the project's real backends (`ebmlang.backends`: numpy, torch, jax):
the contract test that the names the kernels use (ArrayBackend) are the ones the
backends provide. The statistical tests elsewhere use the small adapters in
continuous_helpers; here each kernel family runs once per backend."""
from __future__ import annotations

import numpy as np
import pytest
from continuous_helpers import BetaPotential, GaussianPotential, assert_gaussian_moments, assert_mean_variance

from ebmlang.backends import available_backends, get_backend
from ebmlang.inference.continuous import run_chain
from ebmlang.inference.hmc import HMCConfig, build_hmc_kernel, hmc_init
from ebmlang.inference.langevin import MALAConfig, build_mala_kernel, mala_init
from ebmlang.inference.replay import ReplayBuffer, short_run_langevin
from ebmlang.inference.rwmh import RWMHConfig, build_rwmh_kernel, rwmh_init
from ebmlang.inference.transforms import UnconstrainedPotential, bounded_transform

BACKENDS = [name for name in ("numpy", "torch", "jax") if name in available_backends()]
COVARIANCE = np.array([[1.0, 1.6], [1.6, 4.0]])
WARMUP, DRAWS, CHAINS = 100, 200, 1000


@pytest.fixture(params=BACKENDS)
def real_bk(request):
    return get_backend(request.param)


def draws_of(bk, init, build, config, potential, dim):
    state = init(bk, bk.normal(bk.key(0), (CHAINS, dim)), potential, config)
    kernel = build(bk, config)
    step = bk.jit(lambda key, s: kernel(key, s, potential))
    _, trace = run_chain(bk, step, bk.key(1), state, WARMUP + DRAWS, num_discard=WARMUP)
    assert not trace.info["is_divergent"].any()
    return trace.positions


@pytest.mark.parametrize("name", ["mala", "hmc"])
def test_gradient_kernels_sample_a_correlated_gaussian(real_bk, name):
    potential = GaussianPotential(real_bk, [1.0, -1.0], COVARIANCE)
    if name == "mala":
        draws = draws_of(real_bk, mala_init, build_mala_kernel, MALAConfig(num_warmup=WARMUP), potential, 2)
        ess_factor = 0.01  # as in test_continuous_moments (measured 0.025)
    else:
        config = HMCConfig(num_integration_steps=5, num_warmup=WARMUP, step_size_jitter=0.1, inverse_mass=[1.0, 4.0])
        draws = draws_of(real_bk, hmc_init, build_hmc_kernel, config, potential, 2)
        ess_factor = 0.2  # as in test_continuous_moments (measured 0.69)
    assert_gaussian_moments(draws, [1.0, -1.0], COVARIANCE, ess=draws.shape[0] * CHAINS * ess_factor)


def test_rwmh_with_reflection_and_mala_through_a_transform_sample_beta(real_bk):
    """Beta(2, 5) twice: RWMH reflected in [0, 1], and MALA on logit coordinates.
    ESS factor 0.05 as in test_continuous_transforms (measured >= 0.31)."""
    mean, variance, kurtosis = 2 / 7, 10 / 392, -0.12
    beta = BetaPotential(real_bk, 2.0, 5.0)
    rwmh = RWMHConfig(num_warmup=WARMUP, bounds=(0.0, 1.0))
    state = rwmh_init(real_bk, real_bk.asarray(np.full((CHAINS, 1), 0.5)), beta, rwmh)
    kernel = build_rwmh_kernel(real_bk, rwmh)
    _, trace = run_chain(real_bk, real_bk.jit(lambda key, s: kernel(key, s, beta)), real_bk.key(2), state,
                         WARMUP + DRAWS, num_discard=WARMUP)
    assert_mean_variance(trace.positions, mean, variance, ess=trace.positions.size * 0.05, excess_kurtosis=kurtosis)

    transform = bounded_transform(real_bk, 0.0, 1.0)
    unconstrained = UnconstrainedPotential(beta, transform)
    z = draws_of(real_bk, mala_init, build_mala_kernel, MALAConfig(num_warmup=WARMUP), unconstrained, 1)
    x = real_bk.to_numpy(transform.constrain(real_bk.asarray(z.reshape(-1, 1))))
    assert_mean_variance(x, mean, variance, ess=x.size * 0.05, excess_kurtosis=kurtosis)


def test_replay_buffer_and_short_run_chains(real_bk):
    buffer = ReplayBuffer.create(real_bk, real_bk.key(0), 50, (2,), reinit_prob=0.0)
    buffer = buffer.push(real_bk.asarray(np.full((50, 2), 3.0)))
    starts = buffer.sample(real_bk.key(1), 8)
    np.testing.assert_array_equal(real_bk.to_numpy(starts), 3.0)
    potential = GaussianPotential(real_bk, [0.0, 0.0], np.eye(2))
    # No noise, gradients clipped to 1: exactly 10 steps of 0.1 toward 0.
    moved = short_run_langevin(real_bk, real_bk.key(2), starts, potential, steps=10, step_size=0.1,
                               noise_scale=0.0, grad_clip=1.0)
    np.testing.assert_allclose(real_bk.to_numpy(moved), 2.0, rtol=1e-5)
