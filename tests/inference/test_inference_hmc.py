"""HMC and NUTS as a new user runs them (issue #19): `method="hmc"` / `"nuts"` through
`Model.sample` and the CLI.

Each test checks the draws against the exact moments with tolerances from the effective
sample size (arviz): a mean within 4 Monte Carlo standard errors (sd / sqrt(ESS)), and a
variance within 4 standard errors of a Gaussian variance, var * sqrt(2 / ESS), with the
ESS of the squared deviations. ESS is arviz's "mean" estimate (what a mean's standard
error needs); its default rank-normalised bulk ESS overstates the ESS of squares by ~25%.
Before the fix every HMC run here ended in 'HMC kept diverging after 10 halvings'.
"""
from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.cli.commands import main as cli_main
from ebmlang.inference.adaptation import warmup_windows
from ebmlang.inference.nuts import checkpoint_tables

BACKENDS = ["torch", "jax"]
METHODS = ["hmc", "nuts"]
GAUSSIAN_MU = np.array([1.0, -1.0])
GAUSSIAN_COV = np.linalg.inv(np.array([[2.0, -1.2], [-1.2, 1.0]]))


def _source(name: str) -> str:
    from pathlib import Path

    return (Path(__file__).parents[2] / "examples" / name).read_text()


def _sample(source: str, backend: str, method: str = "hmc", **options):
    options = {"chains": 4, "steps": 1000, "seed": 0, **options}
    return ebm.loads(source, backend=backend).sample(method=method, progress=False, **options)


def _check_moments(draws: np.ndarray, mean: np.ndarray, cov: np.ndarray, min_ess: float) -> None:
    """draws [chains, draws, D] against the exact mean and covariance (diagonal checked
    against its ESS-based tolerance; off-diagonal via the correlation's variance)."""
    draws = draws.reshape(draws.shape[0], draws.shape[1], -1)
    for d in range(draws.shape[2]):
        sd = np.sqrt(cov[d, d])
        ess = float(az.ess(draws[:, :, d], method="mean"))
        assert ess > min_ess, f"coordinate {d}: ESS {ess:.0f}"
        assert abs(draws[:, :, d].mean() - mean[d]) < 4 * sd / np.sqrt(ess), (d, draws[:, :, d].mean(), ess)
        square = np.square(draws[:, :, d] - mean[d])
        ess_square = float(az.ess(square, method="mean"))
        assert ess_square > min_ess / 2, f"coordinate {d}: ESS of squares {ess_square:.0f}"
        tolerance = 4 * cov[d, d] * np.sqrt(2.0 / ess_square)
        assert abs(square.mean() - cov[d, d]) < tolerance, (d, square.mean(), cov[d, d], ess_square)
    if draws.shape[2] == 2:
        # The cross moment E[(x0 - mu0)(x1 - mu1)]; Var = S00 S11 + S01^2 for a Gaussian.
        cross = (draws[:, :, 0] - mean[0]) * (draws[:, :, 1] - mean[1])
        ess_cross = float(az.ess(cross, method="mean"))
        tolerance = 4 * np.sqrt((cov[0, 0] * cov[1, 1] + cov[0, 1] ** 2) / ess_cross)
        assert abs(cross.mean() - cov[0, 1]) < tolerance, (cross.mean(), cov[0, 1], ess_cross)


def _check_info(samples, chains: int, max_step: float, method: str = "hmc") -> None:
    info = samples.info
    # The adapted step: positive, frozen after warm-up, below leapfrog's stability limit
    # (2 / sqrt(largest precision eigenvalue)) and shared by the chains.
    assert 0.0 < info["step_size"] < max_step
    assert len(info["step_size_per_chain"]) == chains
    assert len(info["divergences_per_chain"]) == chains
    assert sum(info["divergences_per_chain"]) == info["divergences"]
    # Warm-up may diverge while dual averaging finds the scale; sampling should not.
    assert info["divergences_after_warmup"] <= 0.01 * chains * samples.num_draws
    assert info["step_size_halvings"] == 0
    assert 0.6 < samples.acceptance[method] < 0.99


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_samples_a_standard_normal(backend, method):
    samples = _sample("latent x : real\nenergy e = 0.5 * x^2\n", backend, method)
    _check_moments(samples["x"], np.zeros(1), np.eye(1), min_ess=300)
    _check_info(samples, 4, max_step=2.0, method=method)


# The samplers are backend-generic code: torch runs every one on the standard normal, the
# Beta and (NUTS on gaussian.ebm) from the CLI; the long runs below, 10-13 s each on eager
# torch, run on JAX, to keep the suite's time.
LONG_RUNS_ON = ["jax"]


@pytest.mark.parametrize("backend, method", [("torch", "hmc"), ("jax", "hmc"), ("jax", "nuts")])
def test_samples_the_correlated_gaussian_example(backend, method):
    samples = _sample(_source("gaussian.ebm"), backend, method, seed=1)
    _check_moments(samples["x"], GAUSSIAN_MU, GAUSSIAN_COV, min_ess=200)
    # Leapfrog is stable below 2 / sqrt(the largest eigenvalue of the precision seen through
    # the mass): warm-up adapts the inverse mass to the marginal variances (about diag(cov)),
    # so that is D^1/2 Q D^1/2 with D = diag(cov) (the estimate's noise: a 1.5x margin).
    scale = np.sqrt(np.diag(GAUSSIAN_COV))
    whitened = scale[:, None] * np.linalg.inv(GAUSSIAN_COV) * scale[None, :]
    _check_info(samples, 4, max_step=1.5 * 2.0 / np.sqrt(np.linalg.eigvalsh(whitened).max()), method=method)


@pytest.mark.parametrize("backend", LONG_RUNS_ON)
def test_hmc_adapts_a_mass_to_a_badly_scaled_gaussian(backend):
    # With the identity mass the step is set by the narrow direction (sd 0.1, step < 0.2)
    # and the wide one (sd 10) moved ~1.3 per trajectory: an ESS of 5-10 per 1000 draws.
    # Windowed warm-up sets the inverse mass to the variances (0.01, 100), so both
    # directions mix alike and the step, in whitened units, is near 1.
    source = "latent x[2] : real\nenergy e = 0.5 * (x[0] / 0.1)^2 + 0.5 * (x[1] / 10.0)^2\n"
    samples = _sample(source, backend, init={"x": np.zeros(2)})
    _check_moments(samples["x"], np.zeros(2), np.diag([0.01, 100.0]), min_ess=300)
    _check_info(samples, 4, max_step=2.0)
    assert min(samples.info["step_size_per_chain"]) > 0.2  # above the identity mass's bound


@pytest.mark.parametrize("backend", LONG_RUNS_ON)
def test_nuts_adapts_a_mass_to_a_badly_scaled_gaussian(backend):
    # Windowed warm-up estimates the variances (0.01, 100) as the inverse mass, so both
    # directions mix alike: far more ESS than HMC's identity mass gets in fewer steps.
    source = "latent x[2] : real\nenergy e = 0.5 * (x[0] / 0.1)^2 + 0.5 * (x[1] / 10.0)^2\n"
    samples = _sample(source, backend, "nuts", init={"x": np.zeros(2)})
    _check_moments(samples["x"], np.zeros(2), np.diag([0.01, 100.0]), min_ess=300)
    # In whitened coordinates the target is a standard normal: a step near 1.
    _check_info(samples, 4, max_step=2.0, method="nuts")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_samples_the_bounded_beta_example(backend, method):
    # p ~ Beta(2, 5) on [0, 1] (sampled unconstrained, through the logit transform).
    samples = _sample(_source("bounded.ebm"), backend, method, seed=2)
    p = samples["p"]
    a, b = 2.0, 5.0
    for k in range(p.shape[-1]):
        mcse = float(az.mcse(p[:, :, k], method="mean"))
        assert abs(p[:, :, k].mean() - a / (a + b)) < 4 * mcse, (k, p[:, :, k].mean(), mcse)
        assert abs(p[:, :, k].var() - a * b / ((a + b) ** 2 * (a + b + 1))) < 0.005
    assert np.all((p > 0) & (p < 1))
    _check_info(samples, 4, max_step=10.0, method=method)


def test_warmup_windows_and_checkpoints_follow_stan_and_numpyro():
    # Stan's 1000-step warm-up: buffers of 75 and 50, slow windows 25, 50, 100, 200, 500.
    assert warmup_windows(1000) == [(75, 100), (100, 150), (150, 250), (250, 450), (450, 950)]
    assert warmup_windows(100) == [(15, 90)]
    low, high = checkpoint_tables(4)
    # numpyro's examples: leaf 6 -> (max 2, no check), 7 -> checks 0..2, 5 -> check 1.
    assert (high[6], high[7], low[7], low[5], high[5]) == (2, 2, 0, 1, 1)


@pytest.mark.parametrize("method", METHODS)
def test_cli_samples_the_gaussian_example(capsys, method):
    assert cli_main(["sample", "examples/gaussian.ebm", "--method", method, "--steps", "400"]) == 0
    out = capsys.readouterr().out
    assert f"acceptance[{method}]" in out and "diverging" not in out


def test_nuts_on_jax_runs_a_float32_model_with_64_bit_mode_on():
    # Another float64 model in the process turns JAX's x64 mode on; a float32 model's
    # trajectory loops must still carry one dtype (they once met float64 starting values).
    import jax

    import ebmlang

    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        model = ebmlang.loads("latent x[2] : real\nenergy e = 0.5 * sum(i in 0..2) x[i]^2\n", backend="jax")
        draws = model.sample(chains=4, steps=60, method="nuts", progress=False)["x"]
    finally:
        jax.config.update("jax_enable_x64", previous)
    assert draws.shape == (4, 45, 2) and np.all(np.isfinite(draws))


# A label z picks the mean of x: z ~ (0.3, 0.7) on means (-1, 2), x | z ~ N(mu_z, 1). The
# modes overlap, so Gibbs on z given x and a trajectory on x given z mix well; exactly,
# P(z = 1) = 0.7, E[x] = 0.3 * -1 + 0.7 * 2 = 1.1 and Var[x] = 1 + 0.3 * 0.7 * 3^2 = 2.89.
MIXED = """
latent z : binary
latent x : real
energy label = -log(0.3 + 0.4 * z)
energy fit = 0.5 * (x - (3 * z - 1))^2
"""


@pytest.mark.parametrize("backend, method", [("jax", "hmc"), ("jax", "nuts"), ("torch", "nuts")])
def test_samples_a_mixed_discrete_continuous_model(backend, method):
    samples = _sample(MIXED, backend, method, chains=8, steps=500)
    # z alone given x is a one-variable block: the plan draws it exactly, then the trajectory.
    assert [b.method for b in samples.plan.blocks] == ["exact", method]
    x, z = samples["x"].reshape(8, -1), samples["z"].reshape(8, -1)
    ess_x = float(az.ess(x, method="mean"))
    ess_z = float(az.ess(z.astype(float), method="mean"))
    assert ess_x > 200 and ess_z > 200, (ess_x, ess_z)
    # 4 standard errors from the draws' own ESS (sd of z's indicator: sqrt(0.21)).
    assert abs(z.mean() - 0.7) < 4 * np.sqrt(0.21 / ess_z), (z.mean(), ess_z)
    assert abs(x.mean() - 1.1) < 4 * np.sqrt(2.89 / ess_x), (x.mean(), ess_x)
    square = np.square(x - 1.1)
    ess_square = float(az.ess(square, method="mean"))
    # Var of (x - m)^2 for this mixture is E[(x-m)^4] - 2.89^2 (its fourth moment, computed
    # exactly below from the components' moments).
    fourth = sum(w * (d ** 4 + 6 * d ** 2 + 3) for w, d in ((0.3, -2.1), (0.7, 0.9)))
    assert abs(square.mean() - 2.89) < 4 * np.sqrt((fourth - 2.89 ** 2) / ess_square), (square.mean(), ess_square)
    assert samples.info["divergences_after_warmup"] <= 0.01 * x.size


def test_the_plan_chooses_nuts_for_smooth_continuous_models_and_says_why():
    plan = ebm.loads("latent x[3] : real\nenergy e = 0.5 * sum(i in 0..3) x[i]^2\n").plan("sample")
    block = plan.block("continuous")
    assert block.method == "nuts" and "NUTS" in block.reason and "mass" in block.reason
    assert ebm.loads(MIXED).plan("sample").method_of("continuous") == "nuts"


def test_mala_adapts_on_a_thousand_dimensional_gaussian_field():
    # Before: dual averaging restarted after each halving aiming at 10x the halved step,
    # and MALA on this field failed with 'kept diverging after 10 halvings'. Now its first
    # step comes from the same search as HMC's, shrinking toward that step itself.
    n, alpha, beta = 1000, 0.1, 1.0
    source = (f"const N = {n}\nlatent x[N] : real\nenergy field = 0.5 * {alpha} * sum(i in 0..N) x[i]^2\n"
              f"energy smooth[i in 0..N-1] = 0.5 * {beta} * (x[i] - x[i+1])^2\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a halving or two in the first steps
        samples = _sample(source, "jax", "mala", chains=8, steps=600, burn_in=300)
    assert 0.45 < samples.acceptance["mala"] < 0.7  # adapted toward 0.574
    # Neighbour differences mix fast (the field's stiff directions): E[(x_i - x_i+1)^2] from
    # the exact covariance Q^-1; 8 x 300 draws of 999 differences, within 5%.
    precision = alpha * np.eye(n) + beta * (np.diag(np.r_[1.0, 2.0 * np.ones(n - 2), 1.0])
                                            - np.eye(n, k=1) - np.eye(n, k=-1))
    cov = np.linalg.inv(precision)
    exact = np.mean(np.diag(cov)[:-1] + np.diag(cov)[1:] - 2 * np.diag(cov, 1))
    x = samples["x"]
    measured = np.mean(np.square(x[..., :-1] - x[..., 1:]))
    assert abs(measured / exact - 1) < 0.05, (measured, exact)
