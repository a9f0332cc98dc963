"""Exact marginals, log Z, mode and draws (model.marginals) against independent code in
this file: forward-backward and Viterbi for HMMs written out in numpy, and brute-force
enumeration of the model's energy for loopy and higher-order models (junction trees).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

import ebmlang as ebm
from ebmlang.errors import EbmError

BACKENDS = ["numpy", "torch", "jax"]
K, T = 3, 7

HMM = f"""
const K = {K}
const T = {T}
param A[K, K] ~ normal(0, 1)
param mu[K] = 0
param start[K] = 0
observed x[T]: real
latent z[T]: categorical(K)
energy first = start[z[0]]
energy move = sum(t in 0..T-1) A[z[t], z[t+1]]
energy emit = sum(t in 0..T) 0.5 * (x[t] - mu[z[t]])^2
"""
RNG = np.random.default_rng(7)
PARAMS = {"A": RNG.normal(size=(K, K)), "mu": np.array([-1.5, 0.0, 1.5]), "start": RNG.normal(size=K)}
X = RNG.normal(size=(3, T)) * 1.5


def forward_backward(x):
    """log Z and posterior marginals [T, K] of the HMM, written out."""
    emit = -0.5 * (x[:, None] - PARAMS["mu"][None, :]) ** 2
    alpha = [-PARAMS["start"] + emit[0]]
    for t in range(1, T):
        alpha.append(logsumexp(alpha[-1][:, None] - PARAMS["A"], axis=0) + emit[t])
    beta = [np.zeros(K)]
    for t in range(T - 1, 0, -1):
        beta.insert(0, logsumexp(-PARAMS["A"] + (emit[t] + beta[0])[None, :], axis=1))
    log_z = logsumexp(alpha[-1])
    return log_z, np.exp(np.array(alpha) + np.array(beta) - log_z)


def viterbi(x):
    emit = 0.5 * (x[:, None] - PARAMS["mu"][None, :]) ** 2
    cost, back = PARAMS["start"] + emit[0], []
    for t in range(1, T):
        total = cost[:, None] + PARAMS["A"]
        back.append(total.argmin(axis=0))
        cost = total.min(axis=0) + emit[t]
    path = [int(cost.argmin())]
    for pointers in reversed(back):
        path.insert(0, int(pointers[path[0]]))
    return np.array(path), float(cost.min())


def hmm(backend):
    return ebm.loads(HMM, backend=backend, dtype="float64").set_params(**PARAMS)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hmm_marginals_log_z_and_mode_match_forward_backward_and_viterbi(backend):
    model = hmm(backend)
    batch = model.marginals(observed={"x": X})
    assert batch.log_z.shape == (3,) and batch.probs["z"].shape == (3, T, K)
    for row, x in enumerate(X):
        log_z, posterior = forward_backward(x)
        path, energy = viterbi(x)
        np.testing.assert_allclose(batch.log_z[row], log_z, atol=1e-9)
        np.testing.assert_allclose(batch.probs["z"][row], posterior, atol=1e-9)
        np.testing.assert_array_equal(batch.mode["z"][row], path)
        np.testing.assert_allclose(batch.mode_energy[row], energy, atol=1e-9)
    single = model.marginals(observed={"x": X[1]})
    np.testing.assert_allclose(single.log_z, batch.log_z[1], atol=1e-12)
    np.testing.assert_allclose(single.probs["z"], batch.probs["z"][1], atol=1e-12)
    assert "tree sum-product, width 1" in single.method and "chain" in single.method


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_exact_draws_follow_the_pair_marginals(backend):
    # 6000 independent draws: each pair frequency has sd <= 0.0065, so 0.03 is > 4.5 sd.
    model = hmm(backend)
    answer = model.marginals(observed={"x": X[0]}, draws=6000, seed=3)
    drawn = answer.draws["z"]
    assert drawn.shape == (6000, T)
    _, posterior = forward_backward(X[0])
    for t in range(T):
        frequency = np.bincount(drawn[:, t], minlength=K) / len(drawn)
        np.testing.assert_allclose(frequency, posterior[t], atol=0.03)
    # the joint of neighbours, from the full enumeration of the chain (3^7 states)
    states = np.array(list(itertools.product(range(K), repeat=T)))
    energies = hmm("numpy").energy({"x": np.broadcast_to(X[0], (len(states), T)), "z": states})
    weights = np.exp(-energies - logsumexp(-energies))
    exact = np.zeros((K, K))
    np.add.at(exact, (states[:, 2], states[:, 3]), weights)
    observed_pairs = np.zeros((K, K))
    np.add.at(observed_pairs, (drawn[:, 2], drawn[:, 3]), 1.0 / len(drawn))
    np.testing.assert_allclose(observed_pairs, exact, atol=0.03)


LOOPY = """
const N = 3
param J = 0.6
param h[N, N] ~ normal(0, 0.5)
param W[2, 2, 2] ~ normal(0, 1)
latent s[N, N]: binary
energy field = sum(i in 0..N, j in 0..N) h[i, j] * s[i, j]
energy right = sum(i in 0..N, j in 0..N-1) -J * [s[i, j] == s[i, j+1]]
energy down = sum(i in 0..N-1, j in 0..N) -J * [s[i, j] == s[i+1, j]]
energy triple = W[s[0, 0], s[1, 1], s[2, 2]]
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_junction_tree_on_a_loopy_grid_with_a_triple_factor_matches_enumeration(backend):
    model = ebm.loads(LOOPY, backend=backend, dtype="float64")
    model.set_params(h=RNG.normal(size=(3, 3)), W=RNG.normal(size=(2, 2, 2)))
    states = np.array(list(itertools.product([0, 1], repeat=9))).reshape(-1, 3, 3)
    energies = ebm.loads(LOOPY, backend="numpy", dtype="float64").set_params(
        **{k: np.asarray(v) for k, v in model.param_values().items()}).energy({"s": states})
    weights = np.exp(-energies - logsumexp(-energies))
    answer = model.marginals()
    assert "junction tree, width" in answer.method
    np.testing.assert_allclose(answer.log_z, logsumexp(-energies), atol=1e-9)
    np.testing.assert_allclose(answer.probs["s"][..., 1], np.tensordot(weights, states, axes=1), atol=1e-9)
    np.testing.assert_array_equal(answer.mode["s"], states[np.argmin(energies)])
    np.testing.assert_allclose(answer.mode_energy, energies.min(), atol=1e-9)
    assert "junction tree, width" in str(model.plan("marginals"))


def test_beta_scales_the_energy():
    model = hmm("numpy")
    hot, cold = model.marginals(observed={"x": X[0]}), model.marginals(observed={"x": X[0]}, beta=2.0)
    scaled = ebm.loads(HMM, backend="numpy", dtype="float64").set_params(
        A=2 * PARAMS["A"], start=2 * PARAMS["start"], mu=PARAMS["mu"])
    # beta = 2 on the original model is the distribution of twice its energy; the
    # emission's 0.5 (x - mu)^2 doubles through x scaled by sqrt(2) and mu by sqrt(2)
    scaled.set_params(mu=np.sqrt(2) * PARAMS["mu"])
    doubled = scaled.marginals(observed={"x": np.sqrt(2) * X[0]})
    np.testing.assert_allclose(cold.log_z, doubled.log_z, atol=1e-9)
    assert not np.allclose(hot.probs["z"], cold.probs["z"])


def test_bad_queries_get_named_errors():
    model = hmm("numpy")
    with pytest.raises(EbmError, match="declared observed but no value"):
        model.marginals()
    mixed = ebm.loads(HMM.replace("observed x[T]: real", "latent x[T]: real"))
    with pytest.raises(EbmError, match="continuous variable observed"):
        mixed.marginals()
    with pytest.raises(EbmError, match="continuous variable observed"):
        mixed.plan("marginals")
    with pytest.raises(EbmError, match="beta"):
        model.marginals(observed={"x": X[0]}, beta=-1.0)
    with pytest.raises(EbmError, match="draws"):
        model.marginals(observed={"x": X[0]}, draws=-2)
    with pytest.raises(EbmError, match="observed"):
        model.marginals(observed={"x": np.zeros(T + 1)})


GRID = """
const N = {n}
param J = {coupling}
param h[N, N] ~ normal(0, 0.5)
latent s[N, N]: categorical(3)
energy field = sum(i in 0..N, j in 0..N, k in 0..3) 0.3 * h[i, j] * k * [s[i, j] == k]
energy right = sum(i in 0..N, j in 0..N-1) -J * [s[i, j] == s[i, j+1]]
energy down = sum(i in 0..N-1, j in 0..N) -J * [s[i, j] == s[i+1, j]]
"""


def grid_enumeration(model, n):
    states = np.array(list(itertools.product(range(3), repeat=n * n))).reshape(-1, n, n)
    energies = model.energy({"s": states})
    weights = np.exp(-energies - logsumexp(-energies))
    probs = np.stack([np.tensordot(weights, states == k, axes=1) for k in range(3)], axis=-1)
    return logsumexp(-energies), probs


@pytest.mark.parametrize("coupling, close", [(0.1, 2e-3), (0.6, 0.08)])
def test_loopy_bp_marginals_and_bethe_log_z_near_enumeration(coupling, close):
    # a 3x3 grid of 3-label Potts variables: 19,683 states to enumerate; weak coupling
    # makes BP nearly exact, moderate coupling leaves the loop error of a few percent
    model = ebm.loads(GRID.format(n=3, coupling=coupling), dtype="float64")
    log_z, probs = grid_enumeration(model, 3)
    answer = model.marginals(method="bp")
    assert not answer.exact and answer.info["converged"] and "loopy sum-product BP" in answer.method
    np.testing.assert_allclose(answer.probs["s"], probs, atol=close)
    assert abs(answer.log_z - log_z) < 10 * close
    exact = model.marginals()
    assert exact.exact and "junction tree" in exact.method
    np.testing.assert_allclose(exact.probs["s"], probs, atol=1e-9)


def test_loopy_bp_is_exact_on_a_chain_and_batches():
    model = hmm("numpy")
    answer = model.marginals(observed={"x": X}, method="bp", tol=1e-10)
    for row, x in enumerate(X):
        log_z, posterior = forward_backward(x)
        np.testing.assert_allclose(answer.log_z[row], log_z, atol=1e-7)
        np.testing.assert_allclose(answer.probs["z"][row], posterior, atol=1e-7)
    assert all(answer.info["converged"])


def test_a_grid_too_wide_for_a_junction_tree_falls_back_to_loopy_bp_and_says_so():
    model = ebm.loads(GRID.format(n=20, coupling=0.2))
    assert "approximate: loopy sum-product BP" in str(model.plan("marginals"))
    answer = model.marginals(iters=300)
    assert not answer.exact and "exact inference does not fit" in answer.method
    assert answer.probs["s"].shape == (20, 20, 3)
    np.testing.assert_allclose(answer.probs["s"].sum(axis=-1), 1.0, atol=1e-9)
    with pytest.raises(EbmError, match="not joint draws|does not fit"):
        model.marginals(draws=5)
    with pytest.raises(EbmError, match="exact inference does not fit"):
        model.marginals(method="exact")


def test_marginal_options_are_checked():
    model = hmm("numpy")
    with pytest.raises(EbmError, match="unknown method 'gibs'"):
        model.marginals(observed={"x": X[0]}, method="gibs")
    with pytest.raises(EbmError, match="damping must be below 1"):
        model.marginals(observed={"x": X[0]}, method="bp", damping=1.0)
    with pytest.raises(EbmError, match="iters"):
        model.marginals(observed={"x": X[0]}, method="bp", iters=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixture_example_responsibilities_match_bayes_rule(backend):
    from ebmlang.cli.showcase import load_example

    model = load_example("mixture.ebm", backend, N=12)
    rng = np.random.default_rng(5)
    log_weight, mu, sigma = np.log([0.5, 0.3, 0.2]), rng.normal(size=(3, 2)) * 2, np.array([0.5, 1.0, 1.5])
    model.set_params(log_weight=log_weight, mu=mu, sigma=sigma)
    points = rng.normal(size=(2, 12, 2)) * 2                      # two datasets, one answer each
    answer = model.marginals(observed={"x": points})
    for row, x in enumerate(points):
        # Bayes' rule, point by point: p(z = k | x) ∝ w_k prod_d N(x_d; mu_kd, sigma_k)
        energy = -log_weight + (0.5 * ((x[:, None, :] - mu[None]) / sigma[None, :, None]) ** 2).sum(axis=2) \
            + 2 * np.log(sigma)
        expected = np.exp(-energy - logsumexp(-energy, axis=1, keepdims=True))
        np.testing.assert_allclose(answer.probs["z"][row], expected, atol=2e-5)
        np.testing.assert_allclose(answer.log_z[row], logsumexp(-energy, axis=1).sum(), rtol=1e-5)
    assert "forest of 12 trees" in answer.method


MIXED_LABELS = """
const N = 3
param W[2, 4] ~ normal(0, 1)
param V[4, 2] ~ normal(0, 1)
param c[4] ~ normal(0, 1)
latent a[N]: categorical(2)
latent b[N]: categorical(4)
energy down = sum(i in 0..N) W[a[i], b[i]]
energy up = sum(i in 0..N-1) V[b[i], a[i+1]]
energy own = sum(i in 0..N) c[b[i]]
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_chain_of_variables_with_different_label_counts_matches_enumeration(backend):
    model = ebm.loads(MIXED_LABELS, backend=backend, dtype="float64")
    reference = ebm.loads(MIXED_LABELS, backend="numpy", dtype="float64").set_params(
        **{k: np.asarray(v) for k, v in model.param_values().items()})
    a_states = np.array(list(itertools.product(range(2), repeat=3)))
    b_states = np.array(list(itertools.product(range(4), repeat=3)))
    a = np.repeat(a_states, len(b_states), axis=0)
    b = np.tile(b_states, (len(a_states), 1))
    energies = reference.energy({"a": a, "b": b})
    weights = np.exp(-energies - logsumexp(-energies))
    answer = model.marginals(draws=3000, seed=2)
    assert "tree sum-product" in answer.method
    np.testing.assert_allclose(answer.log_z, logsumexp(-energies), atol=1e-9)
    np.testing.assert_allclose(answer.probs["a"], np.stack([weights @ (a == k) for k in range(2)], -1), atol=1e-9)
    np.testing.assert_allclose(answer.probs["b"], np.stack([weights @ (b == k) for k in range(4)], -1), atol=1e-9)
    # the mode is a minimiser (this model has exact ties: any of them will do)
    np.testing.assert_allclose(reference.energy(answer.mode), energies.min(), atol=1e-9)
    np.testing.assert_allclose(answer.mode_energy, energies.min(), atol=1e-9)
    assert answer.draws["b"].max() <= 3 and answer.draws["a"].max() <= 1   # no label past a variable's own
    # 3000 draws: a frequency's sd is below 0.0092, so 0.04 is over 4 sd
    np.testing.assert_allclose(np.mean(answer.draws["b"] == 3, axis=0), answer.probs["b"][:, 3], atol=0.04)
