"""Mixed models whose discrete part, given the continuous values, is a tree: the sampler
draws it in one exact block. Checked against closed forms written in this file: a
Gaussian mixture's marginal (a weighted sum of Gaussians) and an HMM with latent
emissions, whose hidden path integrates the emissions out exactly."""
from __future__ import annotations

import itertools

import arviz as az
import numpy as np
import pytest
from scipy.special import logsumexp

import ebmlang as ebm
from ebmlang.errors import EbmError

MIXTURE = """
const K = 3
param log_weight[K] = 0
param mu[K] = 0
observed noise: real
latent x: real
latent z: categorical(K)
energy choice = -log_weight[z]
energy fit = 0.5 * (x - mu[z])^2
"""
MU = np.array([-3.0, 0.5, 2.5])
LOG_WEIGHT = np.log(np.array([0.5, 0.3, 0.2]))


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_mixture_sampled_in_exact_blocks_matches_the_closed_form(backend):
    model = ebm.loads(MIXTURE.replace("observed noise: real\n", ""), backend=backend, dtype="float64")
    model.set_params(mu=MU, log_weight=LOG_WEIGHT)
    plan = model.plan("sample")
    assert plan.block("discrete").method == "exact" and "one exact joint draw" in str(plan)
    samples = model.sample(chains=16, steps=1000, burn_in=200, seed=1, progress=False)
    x = samples.draws["x"].reshape(-1)
    weights = np.exp(LOG_WEIGHT)
    # 16 x 800 correlated draws: leaving the component at -3 takes x half-way to 0.5,
    # so the labels' integrated autocorrelation is ~35 (ESS ~400, measured with ArviZ,
    # for MALA and NUTS on both backends); each frequency within 4 of its standard errors.
    for k, weight in enumerate(weights):
        indicator = (samples.draws["z"] == k).astype(float).reshape(16, -1)
        ess = float(az.ess(indicator))
        assert ess > 100, (k, ess)
        assert abs(indicator.mean() - weight) < 4 * np.sqrt(weight * (1 - weight) / ess), (k, indicator.mean(), ess)
    mean = weights @ MU
    variance = 1.0 + weights @ (MU - mean) ** 2
    # The same 4 standard errors for the moments of x, from its own ESS; Var[(x - m)^2]
    # from the mixture's exact fourth central moment (x | k ~ N(mu_k, 1), d = mu_k - m).
    chains = samples.draws["x"].reshape(16, -1)
    ess = float(az.ess(chains))
    assert abs(x.mean() - mean) < 4 * np.sqrt(variance / ess), (x.mean(), mean, ess)
    d = MU - mean
    fourth = weights @ (d ** 4 + 6 * d ** 2 + 3)
    square = (chains - mean) ** 2
    ess_square = float(az.ess(square))
    assert abs(square.mean() - variance) < 4 * np.sqrt((fourth - variance ** 2) / ess_square), \
        (square.mean(), variance, ess_square)


HMM = """
const K = 2
const T = 4
param A[K, K] = 0
param mu[K] = 0
latent x[T]: real
latent z[T]: categorical(K)
energy move = sum(t in 0..T-1) A[z[t], z[t+1]]
energy emit = sum(t in 0..T) 0.5 * (x[t] - mu[z[t]])^2
"""


def test_hidden_path_with_latent_emissions_matches_enumeration():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(2, 2))
    model = ebm.loads(HMM, backend="torch", dtype="float64").set_params(A=A, mu=np.array([-1.0, 1.0]))
    assert model.plan("sample").block("discrete").method == "exact"
    samples = model.sample(chains=8, steps=2000, burn_in=100, seed=2, progress=False)
    paths = samples.draws["z"].reshape(-1, 4)
    # the emissions integrate to the same constant for every path: p(z) ∝ exp(-sum A)
    states = np.array(list(itertools.product(range(2), repeat=4)))
    energies = A[states[:, :-1], states[:, 1:]].sum(axis=1)
    exact = np.exp(-energies - logsumexp(-energies))
    codes = paths @ (2 ** np.arange(3, -1, -1))
    frequency = np.bincount(codes, minlength=16) / len(codes)
    np.testing.assert_allclose(frequency, exact, atol=0.03)


def test_exact_method_refused_for_loopy_discrete_parts():
    loopy = """
latent s[3]: binary
energy ring = sum(i in 0..3) [s[i] == s[(i + 1) % 3]]
"""
    model = ebm.loads(loopy)
    with pytest.raises(EbmError, match="cycle"):
        model.sample(method="exact", steps=2, progress=False)
    chain = loopy.replace("sum(i in 0..3)", "sum(i in 0..3 where i < 2)")
    draws = ebm.loads(chain).sample(method="exact", chains=2, steps=3, progress=False)
    assert draws.draws["s"].shape[:2] == (2, 3)
