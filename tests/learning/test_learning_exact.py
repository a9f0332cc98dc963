"""Exact log Z, log-likelihoods and predictions against brute-force enumeration."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

import ebmlang as ebm
from ebmlang.errors import EbmError
from ebmlang.learning import log_partition, log_prob, predict

# float32 energies of O(10) carry ~1e-6 relative error; log Z sums thousands of them.
TOLERANCE = 1e-4

SMALL_RBM = """
const V = 7
const H = 5
observed v[V] : binary
latent   h[H] : binary
param W[V, H] ~ normal(0, 1)
param b[V] ~ normal(0, 1)
param c[H] ~ normal(0, 1)
energy interaction = -sum(i in 0..V, k in 0..H) v[i] * W[i,k] * h[k]
energy biases      = -sum(i in 0..V) b[i] * v[i] - sum(k in 0..H) c[k] * h[k]
"""

PERIODIC_ISING = """
const L = 4
param J = 0.45
param h = 0.2
latent s[L, L] : spin
energy coupling[i in 0..L, j in 0..L] = -J * s[i,j] * (s[(i+1) % L, j] + s[i, (j+1) % L])
energy field[i in 0..L, j in 0..L]    = -h * s[i,j]
"""


def all_states(values, n):
    return np.array(list(itertools.product(values, repeat=n)), dtype=float)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_log_partition_of_a_boltzmann_machine_matches_enumeration(backend):
    model = ebm.load("examples/boltzmann.ebm", backend=backend, seed=3)
    rng = np.random.default_rng(0)
    model.set_params(W=rng.normal(0, 0.4, (12, 12)), b=rng.normal(0, 0.4, 12))
    states = all_states([-1.0, 1.0], 12)
    exact = logsumexp(-model.energy(s=states).astype(np.float64))
    assert log_partition(model) == pytest.approx(exact, abs=TOLERANCE * abs(exact) + 1e-4)


def test_rbm_log_partition_and_log_prob_match_the_closed_form():
    model = ebm.loads(SMALL_RBM, seed=1)
    p = model.param_values()
    W, b, c = (p[k].astype(np.float64) for k in ("W", "b", "c"))
    hidden = all_states([0.0, 1.0], 5)
    log_z = logsumexp(hidden @ c + np.logaddexp(0, hidden @ W.T + b).sum(1))
    assert log_partition(model) == pytest.approx(log_z, abs=1e-4)
    visible = all_states([0.0, 1.0], 7)[::9]
    expected = visible @ b + np.logaddexp(0, visible @ W + c).sum(1) - log_z
    np.testing.assert_allclose(log_prob(model, {"v": visible}), expected, atol=1e-4)
    # The visible marginal sums to one over all 2^7 images.
    assert logsumexp(log_prob(model, {"v": all_states([0.0, 1.0], 7)})) == pytest.approx(0.0, abs=1e-4)


def test_joint_log_prob_with_every_variable_given():
    model = ebm.loads(SMALL_RBM, seed=2)
    rng = np.random.default_rng(1)
    v = rng.integers(0, 2, (4, 7)).astype(float)
    h = rng.integers(0, 2, (4, 5)).astype(float)
    expected = -model.energy(v=v, h=h) - log_partition(model)
    np.testing.assert_allclose(log_prob(model, {"v": v, "h": h}), expected, atol=1e-4)


def test_periodic_ising_sums_one_colour_class_analytically():
    model = ebm.loads(PERIODIC_ISING, backend="torch")
    states = all_states([-1.0, 1.0], 16).reshape(-1, 4, 4)
    exact = logsumexp(-model.energy(s=states).astype(np.float64))
    assert log_partition(model) == pytest.approx(exact, abs=1e-4)


def test_constraints_exclude_states_from_log_z():
    source = """
    const N = 6
    latent x[N] : binary
    param a[N] ~ normal(0, 1)
    energy field[i in 0..N] = -a[i] * x[i]
    constraint exclusive[i in 0..N-1] : x[i] + x[i+1] <= 1
    """
    model = ebm.loads(source, seed=4)
    states = all_states([0.0, 1.0], 6)
    allowed = np.all(states[:, :-1] + states[:, 1:] <= 1, axis=1)
    a = model.param_values()["a"].astype(np.float64)
    exact = logsumexp((states @ a)[allowed])
    assert log_partition(model) == pytest.approx(exact, abs=1e-4)
    forbidden = states[~allowed][:2]
    assert np.all(np.isneginf(log_prob(model, {"x": forbidden})))


CLASSIFIER = """
observed x[2] : real
latent   y : categorical(3)
param W[3, 2] ~ normal(0, 1)
param c[3] ~ normal(0, 1)
energy score = -sum(k in 0..3, d in 0..2) [y == k] * W[k, d] * x[d] - sum(k in 0..3) [y == k] * c[k]
"""


def test_conditional_log_prob_given_continuous_inputs_is_a_softmax():
    model = ebm.loads(CLASSIFIER, seed=5)
    p = model.param_values()
    x = np.random.default_rng(2).normal(size=(6, 2))
    logits = x @ p["W"].T.astype(np.float64) + p["c"]
    y = np.array([0, 1, 2, 2, 1, 0])
    expected = logits[np.arange(6), y] - logsumexp(logits, axis=1)
    np.testing.assert_allclose(log_prob(model, {"x": x, "y": y}), expected, atol=1e-5)
    np.testing.assert_array_equal(predict(model, {"x": x})["y"], np.argmax(logits, axis=1))


def test_refuses_an_enumeration_above_the_limit_and_names_ais():
    source = """
    const N = 30
    latent s[N] : spin
    param W[N, N] ~ normal(0, 0.1)
    energy pairs = -sum(i in 0..N, j in 0..N where i < j) W[i, j] * s[i] * s[j]
    """
    model = ebm.loads(source)
    with pytest.raises(EbmError) as caught:
        log_partition(model)
    message = str(caught.value)
    assert "2^29" in message and "ais_log_partition" in message


def test_refuses_to_sum_out_a_continuous_variable():
    model = ebm.load("examples/ring.ebm")
    with pytest.raises(EbmError, match="continuous variables cannot be summed out"):
        log_partition(model)
    with pytest.raises(EbmError, match="ring.ebm:"):
        log_partition(model)


def test_log_prob_rejects_bad_data_with_a_located_error():
    model = ebm.loads(SMALL_RBM)
    with pytest.raises(EbmError, match="outside its domain"):
        log_prob(model, {"v": np.full((2, 7), 2.0)})
    with pytest.raises(EbmError, match="shape"):
        log_prob(model, {"v": np.zeros((2, 8))})
    with pytest.raises(EbmError, match="did you mean 'v'"):
        log_prob(model, {"vv": np.zeros((2, 7))})


def test_log_prob_of_continuous_data_alone_is_refused():
    model = ebm.load("examples/ring.ebm")
    with pytest.raises(EbmError, match="would condition on all of its data"):
        log_prob(model, {"x": np.zeros((3, 2))})
