"""Discrete variables indexing consts and params (`mu[z[n]]`, `A[z[t], z[t+1]]`,
`W[y, d]`): the same energies and parameter gradients as the K-way indicator form,
tables and Gibbs conditionals that read the chosen entry, and located errors for
indices that could leave the array."""
from __future__ import annotations

import re

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.errors import EbmError

HEADER = """
const K = 3
const D = 4
const N = 5
const scale = [0.5, 1.0, 2.0]
param mu[K] ~ normal(0, 1)
param A[K, K] ~ normal(0, 1)
param W[K, D] ~ normal(0, 1)
observed x[N, D]: real
latent z[N]: categorical(K)
latent y: categorical(K)
"""
INDEXED = HEADER + """
energy centre = sum(n in 0..N, d in 0..D) 0.5 * scale[z[n]] * (x[n, d] - mu[z[n]])^2
energy move = sum(n in 0..N-1) A[z[n], z[n+1]]
energy label = sum(n in 0..N, d in 0..D) -W[y, d] * x[n, d]
"""
INDICATORS = HEADER + """
energy centre = sum(n in 0..N, d in 0..D, k in 0..K) [z[n] == k] * 0.5 * scale[k] * (x[n, d] - mu[k])^2
energy move = sum(n in 0..N-1, k in 0..K, l in 0..K) [z[n] == k and z[n+1] == l] * A[k, l]
energy label = sum(n in 0..N, d in 0..D, k in 0..K) -[y == k] * W[k, d] * x[n, d]
"""
RNG = np.random.default_rng(11)
PARAMS = {"mu": RNG.normal(size=3), "A": RNG.normal(size=(3, 3)), "W": RNG.normal(size=(3, 4))}
STATES = {"x": RNG.normal(size=(6, 5, 4)), "z": RNG.integers(0, 3, size=(6, 5)), "y": RNG.integers(0, 3, size=6)}


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_indexed_and_indicator_forms_give_the_same_energies(backend):
    indexed = ebm.loads(INDEXED, backend=backend, dtype="float64").set_params(**PARAMS)
    indicators = ebm.loads(INDICATORS, backend=backend, dtype="float64").set_params(**PARAMS)
    np.testing.assert_allclose(indexed.energy(STATES), indicators.energy(STATES), atol=1e-10)
    # a hand computation of one row
    x, z, y = STATES["x"][0], STATES["z"][0], STATES["y"][0]
    hand = (0.5 * np.array([0.5, 1.0, 2.0])[z][:, None] * (x - PARAMS["mu"][z][:, None]) ** 2).sum()
    hand += PARAMS["A"][z[:-1], z[1:]].sum() - (PARAMS["W"][y][None, :] * x).sum()
    np.testing.assert_allclose(indexed.energy({k: v[0] for k, v in STATES.items()}), hand, atol=1e-10)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_parameter_gradients_reach_only_the_chosen_entries(backend):
    indexed = ebm.loads(INDEXED, backend=backend, dtype="float64").set_params(**PARAMS)
    indicators = ebm.loads(INDICATORS, backend=backend, dtype="float64").set_params(**PARAMS)
    state = {k: indexed.backend.asarray(v) for k, v in STATES.items()}
    ours = indexed.compiled.grad_params(state, indexed.params)
    theirs = indicators.compiled.grad_params(state, indicators.params)
    for name in PARAMS:
        np.testing.assert_allclose(indexed.backend.to_numpy(ours[name]), indicators.backend.to_numpy(theirs[name]),
                                   atol=1e-9)
    # A's gradient counts the transitions the states make (grad_params averages the batch)
    counts = np.zeros((3, 3))
    for z in STATES["z"]:
        np.add.at(counts, (z[:-1], z[1:]), 1.0)
    np.testing.assert_allclose(indexed.backend.to_numpy(ours["A"]), counts / len(STATES["z"]), atol=1e-9)


def test_conditionals_and_argmin_read_the_chosen_entries():
    indexed = ebm.loads(INDEXED, backend="numpy", dtype="float64").set_params(**PARAMS)
    indicators = ebm.loads(INDICATORS, backend="numpy", dtype="float64").set_params(**PARAMS)
    observed = {"x": STATES["x"][0]}
    ours, theirs = indexed.marginals(observed), indicators.marginals(observed)
    np.testing.assert_allclose(ours.log_z, theirs.log_z, atol=1e-9)
    np.testing.assert_allclose(ours.probs["z"], theirs.probs["z"], atol=1e-9)
    np.testing.assert_allclose(ours.probs["y"], theirs.probs["y"], atol=1e-9)
    assert indexed.argmin(observed=observed).energy == pytest.approx(indicators.argmin(observed=observed).energy)


@pytest.mark.parametrize("index, message", [
    ("mu[q[0]]", "takes values from 0 to 3, but dimension 1 of param 'mu' has size 3 (indices 0 to 2)"),
    ("mu[s[0]]", "takes values from -1 to 1"),
    ("mu[r[0]]", "is real-valued"),
    ("x[0, z[0]]", "cannot be indexed by a variable"),
    ("mu[c[0] + 1]", "can take values from 1 to 3"),
    ("A[z[0], 3]", "out of range"),
])
def test_indices_that_could_leave_the_array_are_located_errors(index, message):
    source = (HEADER + "latent q[1]: categorical(4)\nlatent s[1]: spin\nlatent r[1]: real\n"
              "latent c[1]: integer in 0..K\n" + f"energy bad = {index}\n")
    with pytest.raises(EbmError, match=re.escape(message)) as info:
        ebm.loads(source)
    assert "<string>:" in str(info.value) and "^" in str(info.value)


def test_arithmetic_selectors_stay_in_range_when_bounded():
    model = ebm.loads(HEADER + "latent c[N]: integer in 0..K\n"
                      "energy shifted = sum(n in 0..N-1) A[c[n], (c[n+1] + 1) % K]\n",
                      backend="numpy", dtype="float64").set_params(**PARAMS)
    c = STATES["z"][0]
    expected = PARAMS["A"][c[:-1], (c[1:] + 1) % 3].sum()
    np.testing.assert_allclose(model.energy({"x": STATES["x"][0], "z": c, "y": 0, "c": c}), expected, atol=1e-12)
    distance = ebm.loads(HEADER + "latent c[N]: integer in 0..K\nenergy gap = mu[abs(c[0] - c[1])]\n",
                         backend="numpy", dtype="float64").set_params(**PARAMS)
    np.testing.assert_allclose(distance.energy({"x": STATES["x"][0], "z": c, "y": 0, "c": c}),
                               PARAMS["mu"][abs(c[0] - c[1])], atol=1e-12)
