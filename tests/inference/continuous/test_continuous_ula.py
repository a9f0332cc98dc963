"""ULA's stationary law on a Gaussian, its O(eps) bias, and temperature.

On E = x^2 / (2 s^2) at temperature T a ULA step is the AR(1) recursion
x' = rho x + sqrt(2 eps) xi with rho = 1 - eps / (s^2 T), so its stationary variance is
2 eps / (1 - rho^2) = s^2 T / (1 - eps / (2 s^2 T)), and the autocorrelation of x^2
at lag k is rho^(2k): the integrated autocorrelation time of x^2 is
(1 + rho^2) / (1 - rho^2) exactly. Tolerances use that exact ESS (no guessed factor).
"""
from __future__ import annotations

import numpy as np
import pytest
from continuous_helpers import GaussianPotential, assert_mean_variance, make_step, start_chains

from ebmlang.inference.continuous import run_chain
from ebmlang.inference.langevin import ULAConfig, build_ula_kernel, ula_init

CHAINS = 10000
BURN_IN = 300  # variance relaxes as rho^(2t) <= 0.96^t: 0.96^300 ~ 5e-6


_DRAWS: dict = {}


def ula_draws(bk, step_size, variance, temperature=1.0, num_draws=600, seed=0):
    """Kept draws [draws, chains, 1]; cached, as two tests use the same runs."""
    cache_key = (bk.name, step_size, variance, temperature, num_draws, seed)
    if cache_key not in _DRAWS:
        _DRAWS[cache_key] = _run_ula(bk, step_size, variance, temperature, num_draws, seed)
    return _DRAWS[cache_key]


def _run_ula(bk, step_size, variance, temperature, num_draws, seed):
    potential = GaussianPotential(bk, [0.0], [[variance]])
    config = ULAConfig(step_size=step_size, temperature=temperature)
    init_key, run_key = bk.split(bk.key(seed), 2)
    state = start_chains(bk, ula_init, bk.normal(init_key, (CHAINS, 1)), potential, config)
    step = make_step(bk, build_ula_kernel(bk, config), potential)
    _, trace = run_chain(bk, step, run_key, state, BURN_IN + num_draws, num_discard=BURN_IN)
    assert not trace.info["is_divergent"].any()
    return trace.positions


def ula_variance(step_size, variance, temperature=1.0):
    tempered = variance * temperature
    return tempered / (1.0 - step_size / (2.0 * tempered))


def exact_ess(num_samples, step_size, variance, temperature=1.0):
    rho = 1.0 - step_size / (variance * temperature)
    return num_samples * (1.0 - rho ** 2) / (1.0 + rho ** 2)


@pytest.mark.parametrize("step_size, variance", [(0.1, 1.0), (0.02, 1.0), (0.2, 2.0)])
def test_ula_stationary_variance_matches_closed_form(bk, step_size, variance):
    draws = ula_draws(bk, step_size, variance)
    expected = ula_variance(step_size, variance)
    # Half the exact ESS of x^2: the mean's autocorrelation time (1 + rho) / (1 - rho) is
    # (1 + rho)^2 / (1 + rho^2) <= 2 times that of x^2, so this is safe for both moments.
    assert_mean_variance(draws, 0.0, expected, ess=exact_ess(draws.size, step_size, variance) / 2)


def test_ula_bias_shrinks_with_step_size(bk):
    coarse = ula_draws(bk, 0.1, 1.0).var()
    fine = ula_draws(bk, 0.02, 1.0).var()
    # Expected errors 0.053 and 0.010; standard errors ~0.0015 and ~0.0032.
    assert abs(coarse - 1.0) > abs(fine - 1.0) + 0.02
    assert abs(coarse - 1.0) > 0.04


def test_ula_temperature_two_doubles_the_variance(bk):
    draws = ula_draws(bk, 0.02, 1.0, temperature=2.0)
    expected = ula_variance(0.02, 1.0, temperature=2.0)  # 2 / (1 - 0.005)
    assert_mean_variance(draws, 0.0, expected, ess=exact_ess(draws.size, 0.02, 1.0, 2.0) / 2)
