"""AIS log Z and held-out log-likelihoods of continuous and mixed models against closed forms.

Every check is `|estimate - exact| < 3 SE + slack`: AIS's error is about one delta-method
standard error, and log(mean weight) is biased low by about SE^2 / 2 (Jensen), which the
slack (0.01-0.02 nats, with SEs of 0.01-0.05) covers along with float32 energies.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.special import betaln, logsumexp
from test_learning_exact import SMALL_RBM  # the 7 x 5 binary RBM (one model text for both files)

import ebmlang as ebm
from ebmlang.errors import EbmError
from ebmlang.learning import ais_log_likelihood, ais_log_z, log_prob, log_z

GAUSSIAN_PRECISION = np.array([[2.0, -1.2], [-1.2, 1.0]])   # examples/gaussian.ebm
GAUSSIAN_MEAN = np.array([1.0, -1.0])

BADLY_SCALED = """
const s = [0.1, 10.0]
latent x[2] : real
energy e = 0.5 * sum(i in 0..2) (x[i] / s[i])^2
"""

GB_RBM = """
const V = 3
const H = 4
param W[V, H] = 0.0
param b[V] = 0.0
param c[H] = 0.0
observed v[V] : real
latent   h[H] : binary
energy visible  = 0.5 * sum(i in 0..V) (v[i] - b[i])^2
energy coupling = -sum(i in 0..V, k in 0..H) v[i] * W[i, k] * h[k]
energy hidden   = -sum(k in 0..H) c[k] * h[k]
"""

# One real and one binary variable: Z = sqrt(2 pi) (1 + exp(a^2 / 2 + c)).
MIXED = """
param a = 1.5
param c = -0.5
observed x : real
observed y : binary
energy e = 0.5 * x^2 - a * x * y - c * y
"""

# mixture.ebm at a small size: the log(sigma[z]) term could be infinite for all the
# checker knows, so each row's lowest-energy label is the reference of the sum over z.
SMALL_MIXTURE = """
const K = 2
const N = 3
param log_weight[K] = 0
param mu[K] = 0
param sigma[K] = 1.0 in [0.05, 20]
observed x[N] : real
latent   z[N] : categorical(K)
energy choice = sum(n in 0..N) -log_weight[z[n]]
energy fit    = sum(n in 0..N) (0.5 * ((x[n] - mu[z[n]]) / sigma[z[n]])^2 + log(sigma[z[n]]))
"""

COUPLED_SPINS = """
latent x : real
latent s[3] : spin
energy field = 0.5 * x^2 - x * sum(i in 0..3) s[i]
energy chain = -sum(i in 0..2) s[i] * s[i + 1]
"""

CONTINUOUS_HIDDEN = """
observed x : real
latent   z : real
energy e = 0.5 * z^2 + 0.5 * (x - z)^2
"""


def gaussian_log_z(precision: np.ndarray) -> float:
    return 0.5 * len(precision) * math.log(2 * math.pi) - 0.5 * np.linalg.slogdet(precision)[1]


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_log_z_of_a_correlated_gaussian_is_the_closed_form(backend):
    model = ebm.load("examples/gaussian.ebm", backend=backend)
    result = model.log_z(chains=64, steps=200, seed=1)
    exact = gaussian_log_z(GAUSSIAN_PRECISION)
    assert result.method == "ais" and "HMC" in result.how
    assert abs(result.log_z - exact) < 3 * result.stderr + 0.01
    assert result.stderr < 0.05 and result.ais.effective_sample_size > 32


def test_a_badly_scaled_gaussian_needs_a_base_of_its_scale():
    # sds 0.1 and 10: a base fitted to samples (or given) whitens the coordinates, and one
    # step size then fits both.
    model = ebm.loads(BADLY_SCALED, backend="jax")
    exact = math.log(2 * math.pi) + math.log(0.1) + math.log(10.0)
    samples = np.random.default_rng(0).normal(0.0, [0.1, 10.0], (500, 2))
    fitted = ais_log_z(model, data={"x": samples}, chains=64, steps=200, seed=2)
    assert "fitted to the data" in fitted.base
    assert abs(fitted.log_z - exact) < 3 * fitted.stderr + 0.01 and fitted.stderr < 0.05
    given = ais_log_z(model, base={"x": (0.0, [0.1, 10.0])}, chains=64, steps=200, seed=3)
    assert abs(given.log_z - exact) < 3 * given.stderr + 0.01


def test_a_base_fitted_to_data_narrower_than_the_model_is_widened():
    # An untrained Gaussian-Bernoulli RBM (W = 0: v ~ N(b, I)) scored on data of sd 0.05, as
    # in the first epochs of a fit: the data-fitted base is widened to the model's local
    # scale (sd 1). Unwidened (measured): 0.47 nats low, an ESS of 6 of 64 chains.
    model = ebm.loads(GB_RBM, backend="jax")
    c = np.array([0.5, -0.3, 0.2, 0.0])
    model.set_params(c=c)
    exact = 1.5 * math.log(2 * math.pi) + np.logaddexp(0.0, c).sum()
    data = {"v": np.random.default_rng(14).normal(0.0, 0.05, (100, 3))}
    result = ais_log_z(model, data=data, chains=64, steps=100, seed=15)
    assert "widened to the model's local scale in 3 of 3 coordinates" in result.base
    assert abs(result.log_z - exact) < 3 * result.stderr + 0.01


def test_gaussian_bernoulli_rbm_with_hidden_units_summed_out():
    model = ebm.loads(GB_RBM, backend="jax")
    rng = np.random.default_rng(4)
    W, b, c = rng.normal(0, 0.8, (3, 4)), rng.normal(0, 0.5, 3), rng.normal(0, 0.5, 4)
    model.set_params(W=W, b=b, c=c)
    # Each hidden labelling h leaves a Gaussian in v with mean b + W h:
    # integral exp(-|v - b|^2 / 2 + v.W h) dv = (2 pi)^(3/2) exp(b.W h + |W h|^2 / 2).
    hidden = np.array(list(itertools.product([0.0, 1.0], repeat=4)))
    fields = hidden @ W.T
    exact = 1.5 * math.log(2 * math.pi) + logsumexp(hidden @ c + fields @ b + 0.5 * np.sum(fields ** 2, 1))
    result = model.log_z(chains=64, steps=300, seed=5)
    assert "h summed out exactly" in result.how
    assert abs(result.log_z - exact) < 3 * result.stderr + 0.02 and result.stderr < 0.05
    # log p(v) = -F(v) - log Z, the free energy exact: against the mixture density.
    v = rng.normal(0, 1.5, (5, 3))
    joint = -0.5 * np.sum((v - b) ** 2, 1)[:, None] + (v @ W) @ hidden.T + (hidden @ c)[None, :]
    expected = logsumexp(joint, axis=1) - exact
    values = model.log_prob({"v": v}, log_z=result)
    np.testing.assert_allclose(values, expected, atol=3 * result.stderr + 0.02)


def test_a_mixture_with_its_labels_summed_out():
    model = ebm.loads(SMALL_MIXTURE, backend="torch")
    log_weight, mu, sigma = np.array([0.3, -0.2]), np.array([-2.0, 1.5]), np.array([0.5, 1.2])
    model.set_params(log_weight=log_weight, mu=mu, sigma=sigma)
    # Each point integrates to sum_k w_k sqrt(2 pi): the sigma_k of the density cancel.
    exact = 3 * (0.5 * math.log(2 * math.pi) + logsumexp(log_weight))
    x = np.random.default_rng(11).normal(0, 2, (100, 3))
    result = model.log_z(data={"x": x}, chains=64, steps=200, seed=12)
    assert "z summed out exactly" in result.how
    assert abs(result.log_z - exact) < 3 * result.stderr + 0.02
    # log p(x) = -F(x) - log Z, with -F(x) = sum_n log sum_k exp(log w_k - log sigma_k - ...).
    per_point = logsumexp(log_weight - np.log(sigma) - 0.5 * ((x[..., None] - mu) / sigma) ** 2, axis=-1)
    expected = per_point.sum(1) - exact
    np.testing.assert_allclose(model.log_prob({"x": x}, log_z=result), expected, atol=3 * result.stderr + 0.02)


def test_held_out_log_likelihood_of_gaussian_data():
    model = ebm.load("examples/gaussian.ebm", backend="jax")
    rng = np.random.default_rng(6)
    test = rng.multivariate_normal(GAUSSIAN_MEAN + 0.3, np.linalg.inv(GAUSSIAN_PRECISION), 200)
    centred = test - GAUSSIAN_MEAN
    exact = np.mean(-0.5 * np.einsum("ni,ij,nj->n", centred, GAUSSIAN_PRECISION, centred)
                    - gaussian_log_z(GAUSSIAN_PRECISION))
    metric = ais_log_likelihood(model, {"x": test}, chains=64, steps=200, seed=7)
    assert set(metric) == {"log_likelihood", "log_likelihood_se", "log_likelihood_ess"}
    assert abs(metric["log_likelihood"] - exact) < 3 * metric["log_likelihood_se"] + 0.01
    # Model.log_prob of continuous data is AIS by default, one value per example.
    values = model.log_prob({"x": test}, chains=64, steps=200, seed=8)
    assert values.shape == (200,) and abs(values.mean() - exact) < 0.15


def test_standard_errors_are_honest_across_seeds():
    # A deliberately cheap run (10 steps, 32 chains): errors of about 0.15 nats. If the
    # standard error is right, z = (estimate - exact) / SE is roughly N(0, 1) and the mean
    # of 40 z^2 is chi^2_40 / 40, inside [0.45, 1.84] with 99.8% probability; the bounds
    # add room for the SE's own noise (it is estimated from 32 weights) and the Jensen
    # bias. An SE too small by half gives a mean z^2 near 4, one twice too large 0.25.
    # The base (sd 2) is about as wide as the target (sds 2.2 and 0.6): a base narrower
    # than the target gives heavy-tailed weights, whose SE is too small at so few steps
    # (measured: mean z^2 2.7 with the standard base) -- the low ESS then says so.
    model = ebm.load("examples/gaussian.ebm", backend="jax")
    exact = gaussian_log_z(GAUSSIAN_PRECISION)
    results = [ais_log_z(model, chains=32, steps=10, seed=seed, scale=2.0) for seed in range(40)]
    z = np.array([(r.log_z - exact) / r.stderr for r in results])
    assert 0.35 < np.mean(z ** 2) < 2.5, z
    assert 0.05 < np.median([r.stderr for r in results]) < 0.5


def test_bounded_reals_are_annealed_through_their_transform():
    # examples/bounded.ebm: three Beta(2, 5) energies on p in [0, 1], Z = B(2, 5)^3.
    model = ebm.load("examples/bounded.ebm", backend="jax")
    exact = 3 * betaln(2.0, 5.0)
    result = ais_log_z(model, chains=64, steps=200, seed=9)
    assert "unconstrained" in result.base
    assert abs(result.log_z - exact) < 3 * result.stderr + 0.01


def test_mixed_data_scores_the_joint_and_discrete_models_use_their_own_routes():
    model = ebm.loads(MIXED, backend="jax")
    exact = 0.5 * math.log(2 * math.pi) + math.log1p(math.exp(1.5 ** 2 / 2 - 0.5))
    result = model.log_z(chains=64, steps=200, seed=10)
    assert abs(result.log_z - exact) < 3 * result.stderr + 0.01
    x, y = np.array([-1.0, 0.5, 2.0]), np.array([0.0, 1.0, 1.0])
    joint = -(0.5 * x ** 2 - 1.5 * x * y + 0.5 * y) - exact
    values = log_prob(model, {"x": x, "y": y}, method="ais", log_z=result)
    np.testing.assert_allclose(values, joint, atol=3 * result.stderr + 0.01)
    # An all-discrete model: exact where enumeration fits, else (asked) block-Gibbs AIS.
    boltzmann = ebm.load("examples/boltzmann.ebm", backend="torch", seed=0)
    exact_result = log_z(boltzmann)
    assert exact_result.method == "exact" and exact_result.stderr == 0.0
    sampled = log_z(boltzmann, method="ais", chains=64, steps=100, seed=11)
    assert sampled.method == "ais" and "Gibbs" in sampled.how
    assert abs(sampled.log_z - exact_result.log_z) < 3 * sampled.stderr + 0.02
    # A binary RBM's log p(v) by AIS: the free energy exact, log Z sampled.
    rbm = ebm.loads(SMALL_RBM, backend="torch", seed=1)
    v = (np.random.default_rng(12).random((20, 7)) < 0.5).astype(float)
    estimate = rbm.log_z(method="ais", chains=64, steps=200, seed=13)
    np.testing.assert_allclose(rbm.log_prob({"v": v}, method="ais", log_z=estimate), log_prob(rbm, {"v": v}),
                               atol=3 * estimate.stderr + 0.02)


def test_unsupported_models_are_refused_with_a_hint():
    coupled = ebm.loads(COUPLED_SPINS, backend="jax")
    with pytest.raises(EbmError, match="not independent given x") as caught:
        coupled.log_z()
    assert "not supported" in caught.value.hint
    hidden = ebm.loads(CONTINUOUS_HIDDEN, backend="jax")
    with pytest.raises(EbmError, match="integrated out of every example") as caught:
        hidden.log_prob({"x": np.zeros(3)}, log_z=0.0)
    assert "give data for 'z'" in caught.value.hint
    gaussian = ebm.load("examples/gaussian.ebm", backend="jax")
    with pytest.raises(EbmError, match="increase strictly"):
        ais_log_z(gaussian, betas=[0.0, 0.6, 0.5, 1.0])
    with pytest.raises(EbmError, match="leapfrog"):
        ais_log_z(gaussian, leapfrog=0)
    with pytest.raises(EbmError, match="unknown AIS base"):
        ais_log_z(gaussian, base="uniform")
    with pytest.raises(EbmError, match="for method='ais'"):
        log_prob(gaussian, {"x": np.zeros((2, 2))}, chains=10)
