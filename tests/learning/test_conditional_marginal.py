"""`sample_marginal(..., observed=...)`: conditional Langevin draws with some groups held
fixed per chain (inpainting), against the closed-form conditional of a Gaussian."""
from __future__ import annotations

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.errors import EbmError
from ebmlang.learning import sample_marginal

RHO = 0.8
# (x, y) ~ N(0, [[1, rho], [rho, 1]]): y | x ~ N(rho x, 1 - rho^2).
GAUSSIAN = f"""
latent x : real
latent y : real
energy joint = 0.5 * (x^2 - 2 * {RHO} * x * y + y^2) / (1 - {RHO}^2)
"""
# The same Gaussian as one group v[2]: holding v[0] (known=) is conditioning on x.
AS_ONE_GROUP = f"""
latent v[2] : real
energy joint = 0.5 * (v[0]^2 - 2 * {RHO} * v[0] * v[1] + v[1]^2) / (1 - {RHO}^2)
"""
MIXTURE = """
latent c : categorical(2)
latent x : real
latent y : real
const m = [-2, 2]
energy spread = 0.5 * (x - m[c])^2 + 0.5 * (y - m[c])^2
"""


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_draws_given_one_value_per_chain_follow_the_gaussian_conditional(backend):
    model = ebm.loads(GAUSSIAN, backend=backend)
    chains = 2000
    given = np.linspace(-2.0, 2.0, chains)
    draws = sample_marginal(model, chains=chains, steps=600, step_size=0.02, seed=0, observed={"x": given})
    assert set(draws) == {"y"} and draws["y"].shape == (chains,)
    residual = draws["y"] - RHO * given
    # ULA at step h on a Gaussian of variance s2 = 0.36 has stationary variance s2 / (1 - h / (2 s2))
    # (2.9% above s2 at h = 0.02); with 2000 chains the sd of the mean is 0.013 and of the variance
    # about 0.012, so 0.05 on the mean and 12% on the variance are 4 standard errors or more.
    assert abs(residual.mean()) < 0.05
    assert residual.var() == pytest.approx((1 - RHO**2) / (1 - 0.02 / (2 * (1 - RHO**2))), rel=0.12)
    # Conditioning moves the draws: the regression slope of y on x is rho.
    assert np.polyfit(given, draws["y"], 1)[0] == pytest.approx(RHO, abs=0.06)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_holding_part_of_a_group_is_conditioning_on_it(backend):
    """Two spellings of one query: x observed as its own group, or v[0] held with known=.
    Same seed, same sampler: the free coordinate gets the same draws, and the held one
    never moves."""
    chains = 500
    given = np.linspace(-2.0, 2.0, chains)
    apart = sample_marginal(ebm.loads(GAUSSIAN, backend=backend), chains=chains, steps=300, step_size=0.02,
                            seed=3, observed={"x": given})["y"]
    values = np.stack([given, np.zeros(chains)], axis=1)
    held = sample_marginal(ebm.loads(AS_ONE_GROUP, backend=backend), chains=chains, steps=300, step_size=0.02,
                           seed=3, observed={"v": values}, known={"v": np.array([True, False])})["v"]
    np.testing.assert_array_equal(held[:, 0], given.astype(held.dtype))
    assert np.polyfit(given, held[:, 1], 1)[0] == pytest.approx(RHO, abs=0.08)
    assert abs(held[:, 1].mean() - apart.mean()) < 0.1 and held[:, 1].std() == pytest.approx(apart.std(), rel=0.15)


def test_a_summed_label_is_inferred_from_the_observed_group():
    """With x observed near +2 the label is almost surely 1, so y centres on +2 (and on -2
    for x near -2): the observed values reach the summed-out label of every chain."""
    model = ebm.loads(MIXTURE)
    given = np.repeat([-2.0, 2.0], 500)
    draws = sample_marginal(model, chains=1000, steps=400, step_size=0.05, seed=1, observed={"x": given})
    assert set(draws) == {"y"}
    assert draws["y"][:500].mean() == pytest.approx(-2.0, abs=0.15)
    assert draws["y"][500:].mean() == pytest.approx(2.0, abs=0.15)
    same = sample_marginal(model, chains=1000, steps=400, step_size=0.05, seed=1, observed={"x": 2.0})
    assert same["y"].mean() == pytest.approx(2.0, abs=0.15)  # one value for every chain


def test_bad_observations_are_clear_errors():
    model = ebm.loads(GAUSSIAN)
    with pytest.raises(EbmError, match="no variable 'z' to observe"):
        sample_marginal(model, chains=4, steps=1, observed={"z": 1.0})
    with pytest.raises(EbmError, match=r"observed 'x' has shape \[3\]"):
        sample_marginal(model, chains=4, steps=1, observed={"x": np.zeros(3)})
    with pytest.raises(EbmError, match="both observed and sampled"):
        sample_marginal(model, chains=4, steps=1, observed={"x": 1.0}, groups=("x", "y"))
    one_group = ebm.loads(AS_ONE_GROUP)
    with pytest.raises(EbmError, match="known= names 'v', which observed= does not give"):
        sample_marginal(one_group, chains=4, steps=1, known={"v": np.array([True, False])})
    with pytest.raises(EbmError, match="must be a boolean mask"):
        sample_marginal(one_group, chains=4, steps=1, observed={"v": np.zeros(2)}, known={"v": np.array([1, 0])})
    with pytest.raises(EbmError, match=r"known\['v'\] has shape \[3\]"):
        sample_marginal(one_group, chains=4, steps=1, observed={"v": np.zeros(2)}, known={"v": np.ones(3, bool)})
