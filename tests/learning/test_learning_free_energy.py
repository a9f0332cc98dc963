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


# -- FreeEnergyObjective: one backend pass, the reference labelling instead of the argmin --


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_the_one_pass_objective_matches_the_rbm_closed_forms(backend):
    from ebmlang.learning.free_energy import FreeEnergyObjective

    model = ebm.loads(RBM, backend=backend, seed=3, dtype="float64")
    p = model.param_values()
    W, b, c = p["W"], p["b"], p["c"]
    rng = np.random.default_rng(1)
    v = rng.integers(0, 2, (7, 6)).astype(float)
    weights, regs = rng.normal(size=7), np.abs(rng.normal(size=7)) * 0.1
    bk = model.backend
    objective = FreeEnergyObjective(model.compiled, whole_groups(model.graph, ["h"]))
    assert objective.usable and objective.zero_groups == {"h"}  # binary h: its products vanish at 0
    # The hidden values passed in are never read.
    state = {"v": bk.asarray(v), "h": bk.asarray(rng.integers(0, 2, (7, 4)).astype(float))}
    free, grads = objective(model.params, state, weights, regs)
    expected = -(v @ b) - np.logaddexp(0, v @ W + c).sum(1)
    np.testing.assert_allclose(free, expected, atol=1e-10)
    # d/dW sum_b (w_b F_b + r_b F_b^2) = sum_b (w_b + 2 r_b F_b) dF_b/dW, dF_b/dW = -v_b p(h|v_b)^T.
    scale = weights + 2 * regs * expected
    hidden_mean = expit(v @ W + c)
    np.testing.assert_allclose(bk.to_numpy(grads["W"]), -(scale[:, None] * v).T @ hidden_mean, atol=1e-9)
    np.testing.assert_allclose(bk.to_numpy(grads["b"]), -scale @ v, atol=1e-9)
    np.testing.assert_allclose(bk.to_numpy(grads["c"]), -scale @ hidden_mean, atol=1e-9)


SPIN_AND_LABELS = """
const V = 5
const H = 3
observed v[V] : spin
latent   h[H] : spin
latent   z[2] : integer in 0..3
param W[V, H] ~ normal(0, 1)
param c[H] ~ normal(0, 1)
param U[2, V] ~ normal(0, 1)
energy interaction = -sum(i in 0..V, k in 0..H) v[i] * W[i,k] * h[k]
energy bias = -sum(k in 0..H) c[k] * h[k]
energy labels = sum(l in 0..2, i in 0..V) U[l, i] * square(z[l] - 1) * v[i]
"""


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("summed", [{"h": [0, 1, 2]}, {"h": [1]}, {"z": [0, 1]}, {"h": [0, 2], "z": [1]}])
def test_the_one_pass_objective_matches_enumeration(backend, summed):
    """Spins (reference -1: nothing vanishes), three labels (logsumexp, not softplus) and
    sets that are part of a group, against a brute-force sum written here."""
    import itertools

    from ebmlang.learning.exact import VariableSet
    from ebmlang.learning.free_energy import FreeEnergyObjective

    model = ebm.loads(SPIN_AND_LABELS, backend=backend, seed=4, dtype="float64")
    p = model.param_values()
    rng = np.random.default_rng(2)
    state = {"v": rng.choice([-1.0, 1.0], (4, 5)), "h": rng.choice([-1.0, 1.0], (4, 3)),
             "z": rng.integers(0, 3, (4, 2)).astype(float)}

    def energy(s):
        return (-np.einsum("bi,ik,bk->b", s["v"], p["W"], s["h"]) - s["h"] @ p["c"]
                + np.einsum("li,bl,bi->b", p["U"], (s["z"] - 1) ** 2, s["v"]))

    members = {g: np.asarray(ix) for g, ix in summed.items()}
    domains = {"h": (-1.0, 1.0), "z": (0.0, 1.0, 2.0)}
    slots = [(g, i) for g, ix in members.items() for i in ix]
    terms = []
    for labelling in itertools.product(*[domains[g] for g, _ in slots]):
        changed = {g: x.copy() for g, x in state.items()}
        for (g, i), value in zip(slots, labelling):
            changed[g][:, i] = value
        terms.append(-energy(changed))
    expected = -np.logaddexp.reduce(np.stack(terms), axis=0)
    objective = FreeEnergyObjective(model.compiled, VariableSet(members))
    bk = model.backend
    free, _ = objective(model.params, {g: bk.asarray(x) for g, x in state.items()}, np.ones(4), np.zeros(4))
    np.testing.assert_allclose(free, expected, atol=1e-9)


def test_a_constrained_set_keeps_the_argmin_reference():
    from ebmlang.learning.free_energy import FreeEnergyObjective

    source = RBM + "constraint some : sum(k in 0..H) h[k] >= 1\n"
    model = ebm.loads(source, backend="torch")
    assert not FreeEnergyObjective(model.compiled, whole_groups(model.graph, ["h"])).usable
