"""Bounded reals: the unconstraining transform, its Jacobian, sampling through it,
and reflection."""
from __future__ import annotations

import numpy as np
import pytest
from continuous_helpers import (
    BetaPotential,
    FlatPotential,
    TorchAdapter,
    assert_mean_variance,
    autodiff_grad,
    make_step,
    start_chains,
)
from scipy import stats

from ebmlang.errors import EbmError
from ebmlang.inference.continuous import run_chain
from ebmlang.inference.langevin import MALAConfig, build_mala_kernel, mala_init
from ebmlang.inference.rwmh import RWMHConfig, build_rwmh_kernel, rwmh_init
from ebmlang.inference.transforms import UnconstrainedPotential, bounded_transform, reflect

# One coordinate of each kind: [0, 1], (-inf, 3], free, [2, 5], [1, inf).
LOW = np.array([0.0, -np.inf, -np.inf, 2.0, 1.0])
HIGH = np.array([1.0, 3.0, np.inf, 5.0, np.inf])


def reference_constrain(z: np.ndarray) -> np.ndarray:
    """The same map written plainly in float64 numpy."""
    x = z.copy()
    x[:, 0] = 1 / (1 + np.exp(-z[:, 0]))
    x[:, 1] = 3 - np.exp(z[:, 1])
    x[:, 3] = 2 + 3 / (1 + np.exp(-z[:, 3]))
    x[:, 4] = 1 + np.exp(z[:, 4])
    return x


def test_round_trip_and_range(bk):
    transform = bounded_transform(bk, LOW, HIGH)
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.uniform(0.01, 0.99, 200), 3 - rng.exponential(2.0, 200), rng.normal(0, 5, 200),
                         rng.uniform(2.05, 4.95, 200), 1 + rng.exponential(2.0, 200)])
    z = transform.unconstrain(bk.asarray(x))
    np.testing.assert_allclose(bk.to_numpy(transform.constrain(z)), x, rtol=1e-4, atol=1e-5)
    wide = rng.uniform(-12, 12, (500, 5))
    constrained = bk.to_numpy(transform.constrain(bk.asarray(wide)))
    np.testing.assert_allclose(constrained, reference_constrain(wide), rtol=1e-5, atol=1e-5)
    assert np.all((constrained >= LOW) & (constrained <= HIGH))


def test_boundary_points_map_to_finite_z(bk):
    transform = bounded_transform(bk, [0.0], [1.0])
    z = bk.to_numpy(transform.unconstrain(bk.asarray([[0.0], [1.0], [-0.5], [1.5]])))
    assert np.isfinite(z).all() and z[0, 0] < -10 and z[1, 0] > 10


def test_jacobian_terms_match_finite_differences(bk):
    transform = bounded_transform(bk, LOW, HIGH)
    z = np.random.default_rng(1).uniform(-4, 4, (100, 5))
    h = 1e-6  # central differences in float64: error ~h^2, far below the float32 tolerance
    slope = (reference_constrain(z + h) - reference_constrain(z - h)) / (2 * h)
    np.testing.assert_allclose(bk.to_numpy(transform.jacobian_diagonal(bk.asarray(z))), slope, rtol=1e-4, atol=1e-6)
    log_slope = np.log(np.abs(slope))
    np.testing.assert_allclose(bk.to_numpy(transform.log_det_jacobian_terms(bk.asarray(z))), log_slope,
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bk.to_numpy(transform.log_det_jacobian(bk.asarray(z))), log_slope.sum(axis=1),
                               rtol=1e-4, atol=1e-4)
    # The derivative of log|dx/dz| from differences of the exact float64 log-slope
    # (differencing the differenced slope above would lose all precision).
    log_slope_grad = (reference_log_slope(z + h) - reference_log_slope(z - h)) / (2 * h)
    np.testing.assert_allclose(bk.to_numpy(transform.grad_log_det_jacobian(bk.asarray(z))), log_slope_grad,
                               rtol=1e-4, atol=1e-5)


def reference_log_slope(z: np.ndarray) -> np.ndarray:
    """log|dx/dz| of `reference_constrain`, by hand: log(w s (1 - s)), z (one-sided), 0."""
    s = 1 / (1 + np.exp(-z))
    return np.column_stack([np.log(s[:, 0] * (1 - s[:, 0])), z[:, 1], np.zeros(len(z)), np.log(3 * s[:, 3] * (1 - s[:, 3])),
                            z[:, 4]])


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_unconstrained_potential_gradient_matches_autodiff(bk, temperature):
    transform = bounded_transform(bk, [0.0], [1.0])
    potential = UnconstrainedPotential(BetaPotential(bk, 2.0, 5.0), transform, temperature)
    # (z = 0 left out: autodiff through |z| in the stable softplus is arbitrary at the kink)
    z = np.linspace(-6, 6, 40)[:, None]
    energy, grad = potential.energy_and_grad(bk.asarray(z))
    np.testing.assert_allclose(bk.to_numpy(grad), autodiff_grad(bk, potential.energy, z), rtol=1e-4, atol=1e-5)
    x = 1 / (1 + np.exp(-z[:, 0]))
    # E_z = -(log x + 4 log(1 - x)) - T log(x (1 - x)), by hand.
    expected = -(np.log(x) + 4 * np.log1p(-x)) - temperature * np.log(x * (1 - x))
    np.testing.assert_allclose(bk.to_numpy(energy), expected, rtol=1e-4, atol=1e-4)


# law on the box, its mean, variance and excess kurtosis, at temperature T
LAWS = {
    "uniform[0,1]": (lambda bk: FlatPotential(bk), 0.0, 1.0, 1.0, stats.uniform(0, 1)),
    "uniform[-1,3]": (lambda bk: FlatPotential(bk), -1.0, 3.0, 1.0, stats.uniform(-1, 4)),
    "beta(2,5)": (lambda bk: BetaPotential(bk, 2.0, 5.0), 0.0, 1.0, 1.0, stats.beta(2, 5)),
    # Beta(2,5)^(1/2) is Beta(1.5, 3): the Jacobian must enter as T log|dx/dz|.
    "beta(2,5) at T=2": (lambda bk: BetaPotential(bk, 2.0, 5.0), 0.0, 1.0, 2.0, stats.beta(1.5, 3)),
}
CHAINS, WARMUP, DRAWS = 2000, 150, 200


@pytest.mark.parametrize("law", list(LAWS))
def test_mala_through_the_transform_samples_the_bounded_law(bk, law):
    make_potential, low, high, temperature, exact = LAWS[law]
    transform = bounded_transform(bk, low, high)
    potential = UnconstrainedPotential(make_potential(bk), transform, temperature)
    config = MALAConfig(step_size=0.5, temperature=temperature, num_warmup=WARMUP)
    state = start_chains(bk, mala_init, bk.normal(bk.key(0), (CHAINS, 1)), potential, config)
    step = make_step(bk, build_mala_kernel(bk, config), potential)
    _, trace = run_chain(bk, step, bk.key(1), state, WARMUP + DRAWS, num_discard=WARMUP)
    draws = bk.to_numpy(transform.constrain(bk.asarray(trace.positions.reshape(-1, 1))))
    mean, variance, kurtosis = (float(m) for m in exact.stats(moments="mvk"))
    # ESS factor 0.05: arviz measured >= 0.31 on these runs (x and (x - mean)^2).
    assert_mean_variance(draws, mean, variance, ess=draws.size * 0.05, excess_kurtosis=kurtosis)
    assert not trace.info["is_divergent"].any()


@pytest.mark.parametrize("law", ["uniform[-1,3]", "beta(2,5)"])
def test_rwmh_with_reflection_samples_the_bounded_law(bk, law):
    make_potential, low, high, temperature, exact = LAWS[law]
    config = RWMHConfig(scale=0.5, num_warmup=WARMUP, bounds=(low, high), temperature=temperature)
    potential = make_potential(bk)
    start = bk.asarray(np.random.default_rng(0).uniform(low + 0.1 * (high - low), high - 0.1 * (high - low), (CHAINS, 1)))
    state = start_chains(bk, rwmh_init, start, potential, config)
    step = make_step(bk, build_rwmh_kernel(bk, config), potential)
    _, trace = run_chain(bk, step, bk.key(1), state, WARMUP + DRAWS, num_discard=WARMUP)
    draws = trace.positions
    assert np.all((draws >= low) & (draws <= high))
    mean, variance, kurtosis = (float(m) for m in exact.stats(moments="mvk"))
    # ESS factor 0.05; arviz measured >= 0.31 on these runs (1.0 on the uniforms, where
    # the scale grows to the box width and every reflected proposal is accepted).
    assert_mean_variance(draws, mean, variance, ess=draws.size * 0.05, excess_kurtosis=kurtosis)


def test_reflect_matches_the_folding_formula(bk):
    low, high = np.array([0.0, -1.0]), np.array([1.0, 3.0])
    width = high - low
    x = np.random.default_rng(2).uniform(low - 7 * width, high + 7 * width, (1000, 2))
    folded = np.mod(x - low, 2 * width)
    expected = low + np.where(folded > width, 2 * width - folded, folded)
    result = bk.to_numpy(reflect(bk.ops, bk.asarray(x), bk.asarray(low), bk.asarray(high)))
    np.testing.assert_allclose(result, expected, atol=1e-4)
    far = bk.to_numpy(reflect(bk.ops, bk.asarray([[100.0, -100.0]]), bk.asarray(low), bk.asarray(high)))
    assert np.all((far >= low) & (far <= high))


def test_bad_bounds_are_errors_with_hints():
    bk = TorchAdapter()  # checked in numpy before any backend array exists
    with pytest.raises(EbmError, match="empty") as caught:
        bounded_transform(bk, [0.0, 2.0], [1.0, 2.0])
    assert "low < high" in str(caught.value) and caught.value.hint
    with pytest.raises(EbmError, match="finite bounds"):
        RWMHConfig(bounds=(0.0, np.inf))
