"""Sequential-scan Gibbs for dense discrete groups (inference/dense_scan.py), tested
statistically against exact enumeration written here.

Tolerance: draws within a chain are correlated, so each statistic's standard error is
taken from the spread of the per-chain means (chains are independent): SE = sd / sqrt(C).
Every statistic must lie within 5 SE (+ 0.005 for a float32 energy) of the exact value;
with ~40 statistics per test a false alarm has probability below 1e-4.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import ebmlang
from ebmlang.inference.gibbs import build_gibbs_sweep, gibbs_blocks

CHAINS, STEPS, BURN_IN = 160, 260, 60

SPINS = """
const N = 10
latent s[N] : spin
param W[N, N] ~ normal(0, 0.35)
param b[N] ~ normal(0, 0.3)
energy pairs = -sum(i in 0..N, j in 0..N where i < j) W[i, j] * s[i] * s[j]
energy bias = -sum(i in 0..N) b[i] * s[i]
"""

# Every pair (i, j) and its diagonal: the energy has x_i^2 terms, which for binary units
# are linear; the scan must count them once.
BINARY_WITH_DIAGONAL = """
const N = 10
latent x[N] : binary
param W[N, N] ~ normal(0, 0.3)
param b[N] ~ normal(0, 0.3)
energy pairs = -sum(i in 0..N, j in 0..N) W[i, j] * x[i] * x[j]
energy bias = -sum(i in 0..N) b[i] * x[i]
"""

THREE_VALUED = """
const N = 9
latent z[N] : integer in 0..3
param W[N, N] ~ normal(0, 0.2)
param c[N] ~ normal(0, 0.5)
energy pairs = sum(i in 0..N, j in 0..N where i != j) W[i, j] * z[i] * z[j]
energy shape = sum(i in 0..N) c[i] * square(z[i] - 1)
"""

# A dense spin group coupled to a second latent group: the scan's per-unit terms read h,
# which block Gibbs updates in the same sweep.
COUPLED = """
const N = 10
const H = 3
latent s[N] : spin
latent h[H] : binary
param W[N, N] ~ normal(0, 0.3)
param U[N, H] ~ normal(0, 0.5)
energy pairs = -sum(i in 0..N, j in 0..N where i < j) W[i, j] * s[i] * s[j]
energy hidden = -sum(i in 0..N, k in 0..H) U[i, k] * s[i] * h[k]
"""


def params_of(model):
    return {k: np.asarray(model.backend.to_numpy(v), dtype=np.float64) for k, v in model.params.items()}


def exact_moments(energy, values, n):
    """E[x_i] and E[x_i x_j] under exp(-energy) over every state in values^n."""
    states = np.array(list(itertools.product(values, repeat=n)), dtype=np.float64)
    e = energy(states)
    p = np.exp(-(e - e.min()))
    p /= p.sum()
    return p @ states, np.einsum("s,si,sj->ij", p, states, states)


def assert_moments(draws, mean, second, tolerance_floor=0.005):
    """Per-chain means of x_i and x_i x_j against the exact moments (see module docstring)."""
    draws = draws.astype(np.float64)
    chain_mean = draws.mean(axis=1)  # [C, n]
    chain_second = np.einsum("cdi,cdj->cij", draws, draws) / draws.shape[1]
    for found, exact in ((chain_mean, mean), (chain_second, second)):
        se = found.std(axis=0, ddof=1) / np.sqrt(found.shape[0])
        gap = np.abs(found.mean(axis=0) - exact)
        assert np.all(gap <= 5 * se + tolerance_floor), (gap.max(), (gap / (se + 1e-12)).max())


def scanned(model) -> tuple[str, ...]:
    return build_gibbs_sweep(model.compiled, gibbs_blocks(model.graph)).scanned_groups


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_dense_spins_are_scanned_and_match_enumeration(backend):
    model = ebmlang.loads(SPINS, backend=backend, seed=3)
    assert scanned(model) == ("s",)
    assert "sequential scan" in str(model.plan("sample"))
    p = params_of(model)
    upper = np.triu(p["W"], 1)
    mean, second = exact_moments(lambda s: -np.einsum("si,ij,sj->s", s, upper, s) - s @ p["b"], (-1, 1), 10)
    samples = model.sample(chains=CHAINS, steps=STEPS, burn_in=BURN_IN, seed=1, progress=False)
    assert_moments(samples["s"], mean, second)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_binary_units_with_a_diagonal_term_match_enumeration(backend):
    model = ebmlang.loads(BINARY_WITH_DIAGONAL, backend=backend, seed=5)
    assert scanned(model) == ("x",)
    p = params_of(model)
    mean, second = exact_moments(lambda x: -np.einsum("si,ij,sj->s", x, p["W"], x) - x @ p["b"], (0, 1), 10)
    samples = model.sample(chains=CHAINS, steps=STEPS, burn_in=BURN_IN, seed=2, progress=False)
    assert_moments(samples["x"], mean, second)


def test_three_valued_units_with_nonlinear_unary_terms_match_enumeration():
    model = ebmlang.loads(THREE_VALUED, backend="torch", seed=7)
    assert scanned(model) == ("z",)
    p = params_of(model)
    off = p["W"] * (1 - np.eye(9))

    def energy(z):
        return np.einsum("si,ij,sj->s", z, off, z) + ((z - 1) ** 2) @ p["c"]

    states = np.array(list(itertools.product((0, 1, 2), repeat=9)), dtype=np.float64)
    e = energy(states)
    prob = np.exp(-(e - e.min()))
    prob /= prob.sum()
    # One-hot label frequencies per unit, and the mean of z.
    exact = np.stack([prob @ (states == k) for k in range(3)], axis=-1)  # [N, K]
    samples = model.sample(chains=CHAINS, steps=STEPS, burn_in=BURN_IN, seed=3, progress=False)["z"]
    onehot = (samples[..., None] == np.arange(3)).astype(np.float64).reshape(CHAINS, -1, 27)
    mean, second = exact_moments(energy, (0, 1, 2), 9)
    assert_moments(samples, mean, second)
    chain_frequency = onehot.mean(axis=1)
    se = chain_frequency.std(axis=0, ddof=1) / np.sqrt(CHAINS)
    assert np.all(np.abs(chain_frequency.mean(0) - exact.reshape(-1)) <= 5 * se + 0.005)


def test_a_scanned_group_coupled_to_a_block_group_matches_enumeration():
    model = ebmlang.loads(COUPLED, backend="torch", seed=9)
    assert scanned(model) == ("s",)
    p = params_of(model)
    upper = np.triu(p["W"], 1)

    def energy(x):
        s, h = x[:, :10], x[:, 10:]
        return -np.einsum("si,ij,sj->s", s, upper, s) - np.einsum("si,ik,sk->s", s, p["U"], h)

    states = np.array(list(itertools.product((-1, 1), repeat=10)), dtype=np.float64)
    hidden = np.array(list(itertools.product((0, 1), repeat=3)), dtype=np.float64)
    joint = np.concatenate([np.repeat(states, len(hidden), 0), np.tile(hidden, (len(states), 1))], 1)
    e = energy(joint)
    prob = np.exp(-(e - e.min()))
    prob /= prob.sum()
    mean, second = prob @ joint, np.einsum("s,si,sj->ij", prob, joint, joint)
    samples = model.sample(chains=CHAINS, steps=STEPS, burn_in=BURN_IN, seed=4, progress=False)
    draws = np.concatenate([samples["s"], samples["h"]], axis=-1)
    assert_moments(draws, mean, second)


def test_a_three_way_term_is_not_a_quadratic_form_and_keeps_its_blocks():
    source = SPINS + ("energy triple = -0.1 * sum(i in 0..N, j in 0..N, k in 0..N where i < j and j < k) "
                      "s[i] * s[j] * s[k]\n")
    model = ebmlang.loads(source, backend="torch", seed=3)
    assert scanned(model) == ()
    assert "sequential scan" not in str(model.plan("sample"))
    reason = model.compiled.quadratic("s")
    assert isinstance(reason, str) and "triple" in reason


def test_a_per_unit_energy_that_may_be_infinite_keeps_the_blocks_and_the_plan_says_so():
    # The binary scan compares energy gaps, which +inf would leave undefined.
    source = SPINS + "energy barrier = sum(i in 0..N) -log(1.5 + s[i])\n"
    model = ebmlang.loads(source, backend="torch", seed=3)
    assert scanned(model) == ()
    assert "sequential scan" not in str(model.plan("sample"))
