"""Model-level inference against exact answers by enumeration.

Samplers are judged on the *last* draw of many independent chains, so the draws are
independent and plain multinomial error bounds apply. For S states and n draws the
expected total-variation distance between the empirical and true distributions is
at most 0.5 * sqrt(2 S / (pi n)) (sum of sqrt(p) <= sqrt(S)); each threshold below is
about twice that bound, while the bugs these tests guard against (a wrong
temperature, a missed factor, a mis-scattered conditional) move TV by 0.1 or more.
"""
from __future__ import annotations

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.graph.reference import exact_distribution

BACKENDS = ["torch", "jax"]


def joint_rows(states: dict, names) -> np.ndarray:
    """One row of values per joint state, the listed groups flattened side by side."""
    parts = [np.asarray(states[n]).reshape(len(np.asarray(states[n])), -1) for n in names]
    flat = np.concatenate(parts, axis=1)
    return flat


def empirical_vs_exact_tv(model, samples_last: dict, names, beta=1.0, observed=None) -> float:
    exact_states, probs = exact_distribution(model.graph, model.param_values(), observed, beta=beta)
    exact_rows = joint_rows(exact_states, names)
    drawn_rows = joint_rows(samples_last, names)
    keys = {tuple(r): i for i, r in enumerate(exact_rows.tolist())}
    counts = np.zeros(len(probs))
    for r in drawn_rows.tolist():
        counts[keys[tuple(float(x) for x in r)]] += 1
    return 0.5 * np.abs(counts / counts.sum() - probs).sum()


def tv_threshold(num_states: int, draws: int) -> float:
    return 2.0 * 0.5 * np.sqrt(2 * num_states / (np.pi * draws))


ISING_3X3 = """
const L = 3
param J = 1.0
param h = 0.2
latent s[L, L] : spin
energy coupling[i in 0..L, j in 0..L] = -J * s[i,j] * (s[(i+1) % L, j] + s[i, (j+1) % L])
energy field[i in 0..L, j in 0..L] = -h * s[i,j]
"""


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("temperature", [2.5, 4.0])
def test_gibbs_on_3x3_ising_matches_enumeration(backend, temperature):
    model = ebm.loads(ISING_3X3, backend=backend, dtype="float64")
    chains = 6000
    samples = model.sample(chains=chains, steps=150, burn_in=149, temperature=temperature, seed=3, method="gibbs",
                           progress=False)
    assert samples.plan.method_of("discrete") == "gibbs"
    last = {"s": samples["s"][:, -1]}
    tv = empirical_vs_exact_tv(model, last, ["s"], beta=1.0 / temperature)
    assert tv < tv_threshold(2 ** 9, chains), tv
    # The magnetisation distribution is a sharper check of the temperature.
    exact_states, probs = exact_distribution(model.graph, model.param_values(), beta=1.0 / temperature)
    exact_m = np.sum(probs * exact_states["s"].reshape(len(probs), -1).sum(1))
    drawn_m = last["s"].reshape(chains, -1).sum(1)
    assert abs(drawn_m.mean() - exact_m) < 5 * drawn_m.std() / np.sqrt(chains)


RBM_4_3 = """
observed v[4] : binary
latent h[3] : binary
param W[4, 3] = [[1.0, -0.5, 0.3], [-1.2, 0.8, 0.1], [0.4, 0.4, -0.9], [0.0, -0.7, 1.1]]
param b[4] = [0.2, -0.3, 0.1, 0.0]
param c[3] = [-0.1, 0.2, 0.3]
energy interaction = -sum(i in 0..4, k in 0..3) v[i] * W[i,k] * h[k]
energy biases = -sum(i in 0..4) b[i] * v[i] - sum(k in 0..3) c[k] * h[k]
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_gibbs_on_rbm_joint_matches_enumeration(backend):
    source = RBM_4_3.replace("observed v", "latent v")
    model = ebm.loads(source, backend=backend, dtype="float64")
    chains = 8000
    samples = model.sample(chains=chains, steps=40, burn_in=39, seed=1, progress=False)
    last = {"v": samples["v"][:, -1], "h": samples["h"][:, -1]}
    tv = empirical_vs_exact_tv(model, last, ["v", "h"])
    assert tv < tv_threshold(2 ** 7, chains), tv


@pytest.mark.parametrize("backend", BACKENDS)
def test_gibbs_from_local_fields_on_spin_units_at_a_temperature_matches_enumeration(backend):
    # Spin hidden units (values -1, +1) and a temperature: the binary blocks draw from
    # their contracted local field alone, p(+1) = sigmoid(2 f / T) -- a wrong scale of the
    # field (values' gap) or a missed temperature moves TV far past the threshold.
    source = RBM_4_3.replace("observed v", "latent v").replace("latent h[3] : binary", "latent h[3] : spin")
    model = ebm.loads(source, backend=backend, dtype="float64")
    temperature, chains = 1.7, 8000
    samples = model.sample(chains=chains, steps=40, burn_in=39, seed=3, temperature=temperature, progress=False)
    compiled = model.compiled
    assert all(compiled.gibbs_block(g, np.arange(n)).has_field for g, n in (("v", 4), ("h", 3)))
    last = {"v": samples["v"][:, -1], "h": samples["h"][:, -1]}
    tv = empirical_vs_exact_tv(model, last, ["v", "h"], beta=1.0 / temperature)
    assert tv < tv_threshold(2 ** 7, chains), tv


@pytest.mark.parametrize("backend", BACKENDS)
def test_clamped_rbm_samples_the_exact_conditional(backend):
    model = ebm.loads(RBM_4_3, backend=backend, dtype="float64")
    v = np.array([1.0, 0.0, 1.0, 1.0])
    chains = 8000
    samples = model.sample(chains=chains, steps=5, burn_in=4, observed={"v": v}, seed=2, progress=False)
    params = model.param_values()
    p_on = 1 / (1 + np.exp(-(v @ params["W"] + params["c"])))
    drawn = samples["h"][:, -1].mean(0)
    assert np.all(np.abs(drawn - p_on) < 5 * np.sqrt(p_on * (1 - p_on) / chains))
    # The exact conditional query gives the same distribution in closed form.
    cond = model.conditional(observed={"v": v})
    marginal = (cond.probs[:, None] * cond.states["h"]).sum(0)
    np.testing.assert_allclose(marginal, p_on, atol=1e-9)


POTTS_CHAIN = """
const N = 5
const K = 3
latent x[N] : categorical(K)
param beta = 0.8
const field = [[0.5, 0.0, -0.2], [0.0, 0.3, 0.0], [-0.4, 0.0, 0.6], [0.0, 0.0, 0.0], [0.2, -0.1, 0.0]]
energy smooth[i in 0..N-1] = -beta * [x[i] == x[i+1]]
energy unary[i in 0..N, k in 0..K] = -field[i, k] * [x[i] == k]
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_gibbs_on_potts_chain_matches_enumeration(backend):
    model = ebm.loads(POTTS_CHAIN, backend=backend, dtype="float64")
    chains = 8000
    samples = model.sample(chains=chains, steps=40, burn_in=39, seed=5, progress=False, method="gibbs")
    tv = empirical_vs_exact_tv(model, {"x": samples["x"][:, -1]}, ["x"])
    assert tv < tv_threshold(3 ** 5, chains), tv


@pytest.mark.parametrize("backend", BACKENDS)
def test_argmin_rank_and_conditional_agree_with_enumeration(backend):
    model = ebm.loads(POTTS_CHAIN, backend=backend, dtype="float64")
    states, probs = exact_distribution(model.graph, model.param_values())
    energies = model.energy(x=states["x"])
    best = int(np.argmin(energies))
    result = model.argmin()
    assert result.method == "bp" and "a chain" in result.reason and "exact minimum" in result.reason
    np.testing.assert_array_equal(result["x"], states["x"][best].astype(np.int64))
    assert result.energy == pytest.approx(energies[best], abs=1e-9)
    ranked = model.rank(k=4)
    order = np.argsort(energies, kind="stable")[:4]
    np.testing.assert_allclose([e for _, e in ranked], energies[order], atol=1e-9)
    cond = model.conditional(beta=0.5)
    assert cond.probs.sum() == pytest.approx(1.0)
    weights = np.exp(-0.5 * (cond.energies - cond.energies.min()))
    np.testing.assert_allclose(cond.probs, weights / weights.sum(), atol=1e-12)


def test_samples_convert_to_arviz_with_chains_and_draws():
    model = ebm.loads(ISING_3X3, backend="torch")
    samples = model.sample(chains=4, steps=40, burn_in=10, temperature=4.0, seed=0, progress=False)
    data = samples.to_arviz()
    assert data.posterior["s"].shape[:2] == (4, 30)
    assert "energy" in data.sample_stats
    import arviz as az

    rhat = az.rhat(data.sample_stats["energy"].to_dataset(name="energy"))
    assert np.isfinite(float(rhat["energy"]))
