"""Model-level continuous inference against closed forms.

Moments are judged with standard errors from chains x draws divided by a
conservative integrated autocorrelation time (10 for MALA on these well-conditioned
2-D targets; MALA's measured tau here is 2-4), with 5-sigma bounds.
"""
from __future__ import annotations

import numpy as np
import pytest

import ebmlang as ebm

TAU = 10.0


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_mala_on_the_gaussian_example_matches_its_closed_form(backend):
    model = ebm.load("examples/gaussian.ebm", backend=backend, dtype="float64")
    samples = model.sample(chains=200, steps=800, burn_in=300, seed=0, progress=False, method="mala")
    assert samples.plan.method_of("continuous") == "mala"
    x = samples.flat("x")
    mean = np.array([1.0, -1.0])
    cov = np.linalg.inv(np.array([[2.0, -1.2], [-1.2, 1.0]]))
    n_eff = len(x) / TAU
    assert np.all(np.abs(x.mean(0) - mean) < 5 * np.sqrt(np.diag(cov) / n_eff))
    # var of a sample covariance entry: (S_ii S_jj + S_ij^2) / n
    cov_se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov ** 2) / n_eff)
    assert np.all(np.abs(np.cov(x.T) - cov) < 5 * cov_se)
    assert 0.45 < samples.acceptance["mala"] < 0.7  # adapted toward 0.574


def test_bounded_example_samples_its_beta_marginals():
    model = ebm.load("examples/bounded.ebm", backend="torch", dtype="float64")
    samples = model.sample(chains=200, steps=600, burn_in=200, seed=1, progress=False)
    p = samples.flat("p")
    assert p.min() >= 0 and p.max() <= 1
    a, b = 2.0, 5.0  # Beta(2, 5): mean 2/7, variance ab / ((a+b)^2 (a+b+1))
    var = a * b / ((a + b) ** 2 * (a + b + 1))
    n_eff = len(p) / TAU
    assert np.all(np.abs(p.mean(0) - a / (a + b)) < 5 * np.sqrt(var / n_eff))
    assert np.all(np.abs(p.var(0) - var) < 0.1 * var)


def test_langevin_on_the_ring_visits_all_modes_evenly():
    model = ebm.load("examples/ring.ebm", backend="jax")
    samples = model.sample(chains=512, steps=600, seed=2, progress=False)
    x = samples["x"][:, -1]
    mode = np.round(np.arctan2(x[:, 1], x[:, 0]) / (2 * np.pi / 8)).astype(int) % 8
    share = np.bincount(mode, minlength=8) / len(mode)
    # 512 independent final states: the binomial sd of a share of 1/8 is 0.015; mixing
    # between modes is slow, so allow 0.125 +- 0.07 (a missed mode gives 0).
    assert np.all(np.abs(share - 1 / 8) < 0.07), share
    radius = np.linalg.norm(x, axis=1)
    assert abs(np.median(radius) - 4.0) < 0.2


def test_ula_bias_shrinks_with_the_step_size():
    """Along the stiff eigen-direction (precision lam = 2.8) ULA's stationary variance is
    1 / (lam (1 - eps lam / 2)) in closed form; that direction mixes in ~1/(eps lam) steps."""
    model = ebm.load("examples/gaussian.ebm", backend="torch", dtype="float64")
    precision = np.array([[2.0, -1.2], [-1.2, 1.0]])
    lams, vecs = np.linalg.eigh(precision)
    lam, direction = lams[-1], vecs[:, -1]
    errors = []
    for step in (0.3, 0.05):
        samples = model.sample(chains=400, steps=700, burn_in=300, method="ula", step_size=step, seed=3,
                               progress=False)
        projected = (samples["x"] - np.array([1.0, -1.0])) @ direction  # [chains, draws]
        variance = projected.var()
        predicted = 1 / (lam * (1 - step * lam / 2))
        assert variance == pytest.approx(predicted, rel=0.05)
        errors.append(abs(variance - 1 / lam))
    assert errors[1] < errors[0] / 3, errors


def test_continuous_argmin_finds_the_gaussian_mode():
    model = ebm.load("examples/gaussian.ebm", backend="torch", dtype="float64")
    result = model.argmin()
    np.testing.assert_allclose(result["x"], [1.0, -1.0], atol=1e-5)
    assert result.energy == pytest.approx(0.0, abs=1e-9)
