"""Exact sums over independent units: free energies and their parameter gradients."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

import ebmlang as ebm
from ebmlang.learning.exact import FreeEnergyGradient, is_independent_set, sum_out, whole_groups

RBM = """
const V = 6
const H = 4
observed v[V] : binary
latent   h[H] : binary
param W[V, H] ~ normal(0, 1)
param b[V] ~ normal(0, 1)
param c[H] ~ normal(0, 1)
energy interaction = -sum(i in 0..V, k in 0..H) v[i] * W[i,k] * h[k]
energy biases      = -sum(i in 0..V) b[i] * v[i] - sum(k in 0..H) c[k] * h[k]
"""


def test_independence_follows_the_factors():
    model = ebm.loads(RBM)
    graph = model.graph
    assert is_independent_set(graph, whole_groups(graph, ["h"]))
    assert is_independent_set(graph, whole_groups(graph, ["v"]))
    assert not is_independent_set(graph, whole_groups(graph, ["v", "h"]))
    lattice = ebm.load("examples/ising.ebm")
    assert not is_independent_set(lattice.graph, whole_groups(lattice.graph, ["s"]))


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_free_energy_gradients_match_the_rbm_closed_forms(backend):
    model = ebm.loads(RBM, backend=backend, seed=2)
    p = {k: v.astype(np.float64) for k, v in model.param_values().items()}
    W, b, c = p["W"], p["b"], p["c"]
    rng = np.random.default_rng(0)
    v = rng.integers(0, 2, (5, 6)).astype(float)
    h = rng.integers(0, 2, (5, 4)).astype(float)
    weights = rng.normal(size=5)
    graph = model.graph

    # Sum h out given v: F(v) = -b.v - sum_k softplus(c_k + v.W[:, k]).
    units = whole_groups(graph, ["h"])
    summed = sum_out(model.compiled, model.params, {"v": v, "h": h}, units)
    free = -(v @ b) - np.logaddexp(0, v @ W + c).sum(1)
    np.testing.assert_allclose(-summed.log_sum, free, atol=1e-4)
    grads = FreeEnergyGradient(model.compiled, units)(model.params, summed, weights)
    hidden_mean = expit(v @ W + c)
    np.testing.assert_allclose(model.backend.to_numpy(grads["W"]), -(weights[:, None] * v).T @ hidden_mean, atol=1e-4)
    np.testing.assert_allclose(model.backend.to_numpy(grads["c"]), -weights @ hidden_mean, atol=1e-4)
    np.testing.assert_allclose(model.backend.to_numpy(grads["b"]), -weights @ v, atol=1e-4)

    # Sum v out given h: F(h) = -c.h - sum_i softplus(b_i + W[i].h).
    units = whole_groups(graph, ["v"])
    summed = sum_out(model.compiled, model.params, {"v": v, "h": h}, units)
    np.testing.assert_allclose(-summed.log_sum, -(h @ c) - np.logaddexp(0, h @ W.T + b).sum(1), atol=1e-4)
    grads = FreeEnergyGradient(model.compiled, units)(model.params, summed, weights)
    visible_mean = expit(h @ W.T + b)
    np.testing.assert_allclose(model.backend.to_numpy(grads["W"]), -(weights[:, None] * visible_mean).T @ h, atol=1e-4)
    np.testing.assert_allclose(model.backend.to_numpy(grads["b"]), -weights @ visible_mean, atol=1e-4)
