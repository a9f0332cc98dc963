"""A linear-chain CRF trained with fit(loss="nll"): the exact -log p(y | x) by sum-product
(learning/structured.py) against the same loss by enumerating every labelling, written in
this test; and training on data drawn from known weights."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import logsumexp

import ebmlang as ebm
from ebmlang.cli.showcase import load_example
from ebmlang.learning.structured import chain_likelihood
from ebmlang.learning.weighted import weighted_gradient

T, F, C = 4, 3, 3
RNG = np.random.default_rng(5)
TRUE = {"W": RNG.normal(size=(C, F)), "b": RNG.normal(size=C) * 0.3, "A": RNG.normal(size=(C, C))}


def crf(backend, **consts):
    return load_example("crf.ebm", backend, **{"T": T, "F": F, "C": C, **consts})


def enumerated_nll(params, x, y):
    """Mean -log p(y | x) over examples, every labelling enumerated (C^T of them)."""
    labellings = np.array(list(itertools.product(range(C), repeat=T)))

    def energy(xn, yn):
        return (-(params["W"][yn] * xn).sum() - params["b"][yn].sum() - params["A"][yn[:-1], yn[1:]].sum())

    values = []
    for xn, yn in zip(x, y):
        all_e = np.array([energy(xn, lab) for lab in labellings])
        values.append(energy(xn, yn) + logsumexp(-all_e))
    return float(np.mean(values))


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_chain_likelihood_loss_and_gradient_match_enumeration(backend):
    model = crf(backend).set_params(**TRUE)
    model.compiled  # noqa: B018 -- compiled once before the objective plans its tables
    x = RNG.normal(size=(5, T, F))
    y = RNG.integers(0, C, size=(5, T))
    objective = chain_likelihood(model, {"x": x, "y": y}, ("y",), "81")
    assert "sum-product" in objective.name
    weighted = objective.step(None, {"x": x, "y": y}, model.params)
    assert weighted.loss == pytest.approx(enumerated_nll(TRUE, x, y), abs=1e-4)
    grads = weighted_gradient(model, weighted)
    step = 1e-4
    for name, shape in (("A", (C, C)), ("W", (C, F)), ("b", (C,))):
        numeric = np.zeros(shape)
        for index in np.ndindex(shape):
            for sign in (1, -1):
                moved = {k: v.copy() for k, v in TRUE.items()}
                moved[name][index] += sign * step
                numeric[index] += sign * enumerated_nll(moved, x, y) / (2 * step)
        np.testing.assert_allclose(model.backend.to_numpy(grads[name]), numeric, atol=2e-3)


def test_fit_learns_a_crf_from_exact_draws():
    truth = crf("numpy", T=10, C=4, F=6)
    rng = np.random.default_rng(2)
    params = {"W": rng.normal(size=(4, 6)) * 1.5, "b": np.zeros(4), "A": rng.normal(size=(4, 4)) * 1.5}
    truth.set_params(**params)
    x = rng.normal(size=(600, 10, 6))
    y = truth.marginals(observed={"x": x}, draws=1, seed=4).draws["y"][:, 0]
    model = crf("torch", T=10, C=4, F=6)
    result = model.fit({"x": x, "y": y}, loss="nll", epochs=30, lr=0.05, batch_size=100, progress=False)
    assert "sum-product" in result.description
    losses = result.losses
    assert losses[-1] < losses[0] - 1.0
    # trained on these draws, its training NLL is below that of the weights that drew them
    truth_nll = np.mean(truth.energy({"x": x, "y": y}) + truth.marginals(observed={"x": x}).log_z)
    learned = crf("numpy", T=10, C=4, F=6).set_params(
        **{k: np.asarray(v, dtype=float) for k, v in model.param_values().items()})
    learned_nll = np.mean(learned.energy({"x": x, "y": y}) + learned.marginals(observed={"x": x}).log_z)
    assert learned_nll < truth_nll + 0.05
    # the Viterbi tags of the learned model agree with the truth's far above chance (1/4)
    decoded = model.argmin(observed={"x": x[:100]}).state["y"]
    reference = truth.argmin(observed={"x": x[:100]}).state["y"]
    assert np.mean(decoded == reference) > 0.85


def test_loopy_targets_with_too_many_labellings_are_refused_with_a_reason():
    source = """
const N = 4
param J = 0.5
observed x[N, N]: real
latent y[N, N]: binary
energy fit = sum(i in 0..N, j in 0..N) -x[i, j] * y[i, j]
energy right = sum(i in 0..N, j in 0..N-1) -J * [y[i, j] == y[i, j+1]]
energy down = sum(i in 0..N-1, j in 0..N) -J * [y[i, j] == y[i+1, j]]
"""
    model = ebm.loads(source, backend="torch")
    data = {"x": RNG.normal(size=(6, 4, 4)), "y": RNG.integers(0, 2, size=(6, 4, 4))}
    with pytest.raises(ebm.EbmError) as info:
        model.fit(data, loss="nll", epochs=1, progress=False)
    assert "2^16.0 joint labellings of y" in str(info.value) and "form a cycle" in str(info.value)
