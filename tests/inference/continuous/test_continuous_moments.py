"""MALA, HMC and RWMH sample a correlated 2D Gaussian and a tempered 1D one exactly.

Tolerances: 4 standard errors, with the effective sample size taken as
chains x kept draws x a conservative ESS factor per sampler. The factors were set
from arviz's ESS measured on these very runs (worst of x, y, x^2, y^2, xy):
MALA 0.025, RWMH 0.033, HMC(L=5) 0.69 -- the test uses 0.01, 0.01 and 0.2, i.e.
2.5-3.5x fewer effective draws than measured, so a correct sampler passes with a
wide margin while the bias of a wrong MH ratio (e.g. MALA without the proposal
density correction: ULA's O(eps) variance error, tens of percent at these step
sizes) is many tolerances away.
"""
from __future__ import annotations

import numpy as np
import pytest
from continuous_helpers import (
    GaussianPotential,
    assert_gaussian_moments,
    assert_mean_variance,
    first_step,
    make_step,
    start_chains,
)

from ebmlang.inference.continuous import run_chain
from ebmlang.inference.hmc import HMCConfig, build_hmc_kernel, hmc_init
from ebmlang.inference.langevin import MALAConfig, build_mala_kernel, mala_init
from ebmlang.inference.rwmh import RWMHConfig, build_rwmh_kernel, rwmh_init

MEAN = np.array([1.0, -1.0])
SCALES = np.array([1.0, 2.0])
RHO = 0.8
COVARIANCE = np.array([[1.0, RHO * 2.0], [RHO * 2.0, 4.0]])
CHAINS = 2000
WARMUP = 150

SAMPLERS = {
    "mala": (mala_init, build_mala_kernel),
    "hmc": (hmc_init, build_hmc_kernel),
    "rwmh": (rwmh_init, build_rwmh_kernel),
}


def sample(bk, name, config, potential, chains, num_draws, seed=0):
    init, build = SAMPLERS[name]
    init_key, run_key = bk.split(bk.key(seed), 2)
    # Start away from the target (N(0, I), not N(MEAN, COVARIANCE)) so warm-up must converge.
    state = start_chains(bk, init, bk.normal(init_key, (chains, len(potential.mean_np))), potential, config)
    step = make_step(bk, build(bk, config), potential)
    _, trace = run_chain(bk, step, run_key, state, WARMUP + num_draws, num_discard=WARMUP)
    return trace


@pytest.mark.parametrize("per_chain", [False, True])
def test_mala_samples_correlated_gaussian(bk, per_chain):
    potential = GaussianPotential(bk, MEAN, COVARIANCE)
    config = MALAConfig(step_size=0.1, num_warmup=WARMUP, per_chain_step_size=per_chain)
    trace = sample(bk, "mala", config, potential, CHAINS, 400)
    assert_gaussian_moments(trace.positions, MEAN, COVARIANCE, ess=trace.positions.shape[0] * CHAINS * 0.01)
    assert not trace.info["is_divergent"].any()


@pytest.mark.parametrize("inverse_mass", [None, [1.0, 4.0]])
def test_hmc_samples_correlated_gaussian(bk, inverse_mass):
    potential = GaussianPotential(bk, MEAN, COVARIANCE)
    config = HMCConfig(step_size=0.1, num_integration_steps=5, inverse_mass=inverse_mass, num_warmup=WARMUP)
    trace = sample(bk, "hmc", config, potential, CHAINS, 150)
    assert_gaussian_moments(trace.positions, MEAN, COVARIANCE, ess=trace.positions.shape[0] * CHAINS * 0.2)
    assert not trace.info["is_divergent"].any()


def test_rwmh_samples_correlated_gaussian(bk):
    potential = GaussianPotential(bk, MEAN, COVARIANCE)
    config = RWMHConfig(scale=0.5, num_warmup=WARMUP)
    trace = sample(bk, "rwmh", config, potential, CHAINS, 400)
    # Looser than MALA only through its ESS factor (random walks mix more slowly).
    assert_gaussian_moments(trace.positions, MEAN, COVARIANCE, ess=trace.positions.shape[0] * CHAINS * 0.01)
    assert not trace.info["is_divergent"].any()


@pytest.mark.parametrize("name", ["mala", "hmc", "rwmh"])
def test_temperature_two_doubles_the_variance(bk, name):
    # exp(-x^2 / (2 T)) at T = 2 is N(0.5, 2); same ESS factors as above.
    potential = GaussianPotential(bk, [0.5], [[1.0]])
    config = {
        "mala": MALAConfig(step_size=0.5, temperature=2.0, num_warmup=WARMUP),
        "hmc": HMCConfig(step_size=0.5, num_integration_steps=5, temperature=2.0, num_warmup=WARMUP),
        "rwmh": RWMHConfig(scale=1.0, temperature=2.0, num_warmup=WARMUP),
    }[name]
    trace = sample(bk, name, config, potential, CHAINS, 200)
    factor = 0.2 if name == "hmc" else 0.01
    assert_mean_variance(trace.positions, 0.5, 2.0, ess=trace.positions.size * factor)
    # And clearly not the T = 1 variance: a kernel ignoring T fails the check above.
    assert abs(trace.positions.var() - 1.0) > 0.5


def test_temperature_scales_mala_acceptance_like_a_rescaled_energy(bk):
    """At T the chain equals the T = 1 chain on E / T: same key, same draws."""
    potential = GaussianPotential(bk, [0.0], [[1.0]])
    scaled = GaussianPotential(bk, [0.0], [[3.0]])  # E / 3
    start = bk.normal(bk.key(3), (64, 1))
    hot = MALAConfig(step_size=0.3, temperature=3.0)
    _, hot_state, _ = first_step(bk, mala_init, build_mala_kernel, hot, start, potential, bk.key(4))
    _, cold_state, _ = first_step(bk, mala_init, build_mala_kernel, MALAConfig(step_size=0.3), start, scaled, bk.key(4))
    np.testing.assert_allclose(bk.to_numpy(hot_state.position), bk.to_numpy(cold_state.position), rtol=1e-5, atol=1e-6)
