"""A product of experts scores a state with the weighted sum of its experts' energies,
whether it is written in the language (posterior.ebm) or in Python (`a * b`, `a ** w`, rename)."""
from __future__ import annotations

import numpy as np
import pytest

import ebmlang as ebm

EX = "examples"
BACKENDS = ["torch", "jax"]
# float32 energies of ~12k factors are sums of terms of size ~2; 1e-4 relative is well above
# accumulation-order differences and far below a missing or mis-weighted factor (>= 1.5 / ~1e4).
RTOL = 1e-4


def _labels(rng, batch=4, n=64):
    return rng.integers(0, 2, size=(batch, n, n))


@pytest.mark.parametrize("backend", BACKENDS)
def test_language_composites_are_weighted_sums(backend):
    rng = np.random.default_rng(0)
    prior = ebm.load(f"{EX}/prior.ebm", backend=backend)
    likelihood = ebm.load(f"{EX}/likelihood.ebm", backend=backend)
    posterior = ebm.load(f"{EX}/posterior.ebm", model="Posterior", backend=backend)
    sharper = ebm.load(f"{EX}/posterior.ebm", model="Sharper", backend=backend)
    x, y = _labels(rng), _labels(rng)
    e_prior, e_lik = prior.energy(x=x), likelihood.energy(x=x, y=y)
    np.testing.assert_allclose(posterior.energy(x=x, y=y), e_prior + e_lik, rtol=RTOL)
    np.testing.assert_allclose(sharper.energy(x=x, y=y), 2.0 * e_prior + e_lik, rtol=RTOL)
    assert [(e.name, e.weight) for e in posterior.experts] == [("Prior", 1.0), ("Likelihood", 1.0)]
    assert [(e.name, e.weight) for e in sharper.experts] == [("Prior", 2.0), ("Likelihood", 1.0)]
    # Term energies are namespaced per expert and add up to the total.
    terms = sharper.term_energies(x=x, y=y)
    assert set(terms) == {"Prior.right", "Prior.down", "Likelihood.data"}
    np.testing.assert_allclose(sum(terms.values()), sharper.energy(x=x, y=y), rtol=RTOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_python_composites_are_weighted_sums_and_keep_expert_params(backend):
    rng = np.random.default_rng(1)
    # Non-default param values: the composite must carry each expert's current values.
    prior = ebm.load(f"{EX}/prior.ebm", backend=backend).set_params(beta=0.7)
    likelihood = ebm.load(f"{EX}/likelihood.ebm", backend=backend).set_params(eta=3.1)
    x, y = _labels(rng), _labels(rng)
    e_prior, e_lik = prior.energy(x=x), likelihood.energy(x=x, y=y)

    product = prior * likelihood
    np.testing.assert_allclose(product.energy(x=x, y=y), e_prior + e_lik, rtol=RTOL)
    assert [(e.name, e.weight) for e in product.experts] == [(prior.name, 1.0), (likelihood.name, 1.0)]
    assert product.param_values()[f"{prior.name}.beta"] == pytest.approx(0.7)
    assert product.variables["y"].observed and not product.variables["x"].observed

    tempered = prior ** 2.0 * likelihood
    np.testing.assert_allclose(tempered.energy(x=x, y=y), 2.0 * e_prior + e_lik, rtol=RTOL)
    assert [(e.name, e.weight) for e in tempered.experts] == [(prior.name, 2.0), (likelihood.name, 1.0)]

    both_weighted = likelihood * prior ** 0.25
    np.testing.assert_allclose(both_weighted.energy(x=x, y=y), e_lik + 0.25 * e_prior, rtol=RTOL)

    # rename: the prior over y instead of x; composed with the likelihood it now smooths y.
    prior_on_y = prior.rename(x="y")
    assert set(prior_on_y.variables) == {"y"}
    np.testing.assert_allclose(prior_on_y.energy(y=y), prior.energy(x=y), rtol=RTOL)
    smoothed = prior_on_y * likelihood
    np.testing.assert_allclose(smoothed.energy(x=x, y=y), prior.energy(x=y) + e_lik, rtol=RTOL)

    # Renaming a param keeps its value under the new name.
    renamed_param = prior.rename(beta="gamma")
    assert set(renamed_param.params) == {"gamma"}
    np.testing.assert_allclose(renamed_param.energy(x=x), e_prior, rtol=RTOL)


def test_the_same_expert_twice_adds_twice():
    rng = np.random.default_rng(2)
    prior = ebm.load(f"{EX}/prior.ebm")
    x = _labels(rng)
    doubled = prior * prior
    assert len(doubled.experts) == 2 and len(doubled.params) == 2
    np.testing.assert_allclose(doubled.energy(x=x), 2.0 * prior.energy(x=x), rtol=RTOL)
