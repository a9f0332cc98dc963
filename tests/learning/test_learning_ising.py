"""Fitting a small Ising model from exact samples recovers its coupling and field."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import softmax

import ebmlang as ebm

SOURCE = """
const L = 3
param J = 0.0
param h = 0.0
latent s[L, L] : spin
energy right[i in 0..L, j in 0..L-1] = -J * s[i,j] * s[i,j+1]
energy down[i in 0..L-1, j in 0..L]  = -J * s[i,j] * s[i+1,j]
energy field[i in 0..L, j in 0..L]   = -h * s[i,j]
"""
TRUE = np.array([0.4, 0.1])  # J, h
EXAMPLES = 2000


def statistics(states):
    """The sufficient statistics (sum of neighbour products, sum of spins) per state."""
    pairs = (states[:, :, :-1] * states[:, :, 1:]).sum((1, 2)) + (states[:, :-1] * states[:, 1:]).sum((1, 2))
    return np.stack([pairs, states.sum((1, 2))], axis=1)


@pytest.fixture(scope="module")
def problem():
    states = np.array(list(itertools.product([-1.0, 1.0], repeat=9))).reshape(-1, 3, 3)
    stats = statistics(states)
    probs = softmax(stats @ TRUE)
    data = states[np.random.default_rng(0).choice(len(states), EXAMPLES, p=probs)]
    # The exact MLE: Newton's method on the convex negative log-likelihood, started at the
    # truth (undamped Newton overshoots from far away).
    target = statistics(data).mean(0)
    theta = TRUE.copy()
    for _ in range(20):
        p = softmax(stats @ theta)
        mean = p @ stats
        cov = (stats - mean).T @ ((stats - mean) * p[:, None])
        theta += np.linalg.solve(cov, target - mean)
    # Standard errors of the MLE from the Fisher information at the true parameters.
    p = softmax(stats @ TRUE)
    centred = stats - p @ stats
    fisher = centred.T @ (centred * p[:, None])
    stderr = np.sqrt(np.diag(np.linalg.inv(fisher)) / EXAMPLES)
    return data, theta, stderr


def fitted(model):
    values = model.param_values()
    return np.array([float(values["J"]), float(values["h"])])


def test_the_sample_mle_is_near_the_truth(problem):
    _, mle, stderr = problem
    # Guards the test's own set-up: 4 standard errors of the MLE (about 0.024 and 0.019).
    assert np.all(np.abs(mle - TRUE) < 4 * stderr)


def test_pcd_with_block_gibbs_recovers_the_mle(problem):
    data, mle, stderr = problem
    model = ebm.loads(SOURCE, backend="torch")
    result = model.fit({"s": data}, method="pcd", epochs=30, batch_size=100, chains=100, lr=0.05,
                       lr_schedule="cosine", seed=1, progress=False)
    assert "PCD-1" in result.description and "block Gibbs" in result.description
    # PCD's stochastic gradient leaves the estimate off the exact MLE by its optimisation
    # noise; with 100 chains and a cosine-annealed rate that was under 0.012 over seeds 1-3.
    # 0.03 is about 5 standard errors of the MLE itself: a wrong sign, scale or a stuck chain
    # would miss it by far more.
    assert np.all(np.abs(fitted(model) - mle) < 0.03), (fitted(model), mle)
    assert np.all(np.abs(fitted(model) - TRUE) < 4 * stderr + 0.03)
    # The exact log-likelihood was tracked (a 3x3 Ising is cheap to enumerate) and improved.
    tracked = result.metric("log_likelihood")
    assert tracked[-1] > tracked[0]


def test_exact_gradient_converges_to_the_mle(problem):
    data, mle, _ = problem
    model = ebm.loads(SOURCE, backend="torch")
    result = model.fit({"s": data}, method="exact", epochs=30, batch_size=500, lr=0.05, lr_schedule="cosine",
                       seed=0, progress=False, eval_every=0)
    # Deterministic gradients up to minibatching (4 batches per epoch): close to the MLE.
    assert np.all(np.abs(fitted(model) - mle) < 0.01), (fitted(model), mle)
    # Its loss is the exact mean negative log-likelihood of the minibatches.
    assert result.losses[-1] < result.losses[0]
