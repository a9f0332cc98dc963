"""Noise-contrastive estimation (`fit(method="nce")`, learning/nce.py) against closed forms
and maximum-likelihood estimates computed here: a 2-D Gaussian's mean, precision and log Z
on torch and JAX, a mixture weight (written with log / exp, and with a hidden label summed
out), a bounded Beta model's log Z, exact resuming, and bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import betaln, expit

import ebmlang as ebm
from ebmlang.errors import EbmError

GAUSSIAN = """
observed x[2] : real
param m[2] = 0
param P[2, 2] = [[1.0, 0.0], [0.0, 1.0]]
energy quadratic = 0.5 * sum(i in 0..2, j in 0..2) (x[i] - m[i]) * P[i, j] * (x[j] - m[j])
"""
TRUE_MEAN = np.array([1.0, -1.0])
TRUE_PRECISION = np.array([[2.0, -1.2], [-1.2, 1.0]])
N = 2000
NOISE_RATIO = 4

# Two components with known means and sds; only the weight w of the first is learnt.
MEANS, SDS, WEIGHT = (-2.0, 2.0), (0.7, 1.0), 0.3
MIXTURE = """
const mu = [-2.0, 2.0]
const sd = [0.7, 1.0]
observed x : real
param a = 0
# w = sigmoid(a), 1 - w = sigmoid(-a): a normalised density, so log Z = 0
energy mixture = -logsumexp(k in 0..2) (log(sigmoid((1 - 2 * k) * a)) - 0.5 * ((x - mu[k]) / sd[k])^2
                                        - log(sd[k])) + 0.5 * log(2 * pi)
"""
# The same mixture with its label z hidden and summed out exactly (observed_energy.py):
# written without log or division, which would keep z from being summed in one pass.
HIDDEN_LABEL = """
const mu = [-2.0, 2.0]
const inv_var = [2.0408163265306123, 1.0]
const log_sd = [-0.35667494393873245, 0.0]
observed x : real
latent z : categorical(2)
param logit[2] = 0
energy choice = -logit[z]
energy fit = 0.5 * (x - mu[z]) * (x - mu[z]) * inv_var[z] + log_sd[z]
"""


def gaussian_data() -> np.ndarray:
    return np.random.default_rng(1).multivariate_normal(TRUE_MEAN, np.linalg.inv(TRUE_PRECISION), size=N)


def fit_gaussian(backend: str, **options):
    model = ebm.loads(GAUSSIAN, backend=backend)
    settings = dict(method="nce", epochs=20, batch_size=50, lr=0.1, lr_schedule="cosine",
                    noise_ratio=NOISE_RATIO, progress=False, seed=0)
    result = model.fit({"x": gaussian_data()}, **{**settings, **options})
    values = model.param_values()
    # Only P's symmetric part enters the energy.
    return values["m"], 0.5 * (values["P"] + values["P"].T), result


def gaussian_log_z(precision: np.ndarray) -> float:
    return 0.5 * len(precision) * math.log(2 * math.pi) - 0.5 * math.log(np.linalg.det(precision))


@pytest.mark.slow  # two full NCE fits of 2,000 points to within 2 SE: ~10 s
def test_gaussian_fit_matches_mle_and_its_log_z_on_torch_and_jax():
    data = gaussian_data()
    mle_mean = data.mean(axis=0)
    mle_precision = np.linalg.inv(np.cov(data.T, bias=True))
    # The MLE's sampling standard errors: sd / sqrt(N) for the mean, and for the precision
    # (inverse Wishart, asymptotically) Var(P_ij) = (P_ij^2 + P_ii P_jj) / N.
    se_mean = np.sqrt(np.diag(np.linalg.inv(mle_precision)) / N)
    diagonal = np.diag(mle_precision)
    se_precision = np.sqrt((mle_precision ** 2 + np.outer(diagonal, diagonal)) / N)
    # Tolerance: NCE is consistent but less efficient than the MLE; with noise equal to the
    # data density its asymptotic variance is about (1 + 1/nu) times the MLE's (Gutmann &
    # Hyvarinen 2012, sec. 2.4), so NCE - MLE (the MLE is efficient: Var(T - MLE) =
    # Var(T) - Var(MLE)) has sd about SE / sqrt(nu) = SE / 2 here. q is the data's own
    # Gaussian, so only that term, Adam's noise and the fresh noise draws separate the two:
    # 2 SE is four sds of the difference (the largest seen over 8 seeds: 0.55 SE).
    fits = {backend: fit_gaussian(backend) for backend in ("torch", "jax")}
    for backend, (mean, precision, result) in fits.items():
        assert result.method == "nce"
        assert "Gaussian fitted to the data (mean, full covariance); log Z learnt" in result.description
        assert np.all(np.abs(mean - mle_mean) < 2 * se_mean), (backend, mean, mle_mean, se_mean)
        assert np.all(np.abs(precision - mle_precision) < 2 * se_precision), (backend, precision, mle_precision)
        # c is the fitted params' log normaliser only at the joint optimum; the last Adam
        # steps (the lr decayed to ~0 by the cosine schedule) leave it within ~0.01 (seen:
        # <= 0.006), while an error in the noise weighting would shift it by log(nu) = 1.4.
        log_z = result.history[-1]["log_z"]
        assert abs(log_z - gaussian_log_z(precision)) < 0.02, (backend, log_z, gaussian_log_z(precision))
        record = result.history[-1]
        assert 0.5 < record["accuracy"] <= 1.0 and 0.5 < record["eval_accuracy"] <= 1.0
        assert math.isfinite(record["eval_loss"])
    (torch_mean, torch_precision, torch_result), (jax_mean, jax_precision, jax_result) = fits["torch"], fits["jax"]
    # Different random streams: the two agree as two NCE fits of the same data do.
    assert np.all(np.abs(torch_mean - jax_mean) < 2 * se_mean)
    assert np.all(np.abs(torch_precision - jax_precision) < 2 * se_precision)
    assert abs(torch_result.history[-1]["log_z"] - jax_result.history[-1]["log_z"]) < 0.05


def mixture_data() -> np.ndarray:
    rng = np.random.default_rng(2)
    first = rng.random(N) < WEIGHT
    return np.where(first, rng.normal(MEANS[0], SDS[0], N), rng.normal(MEANS[1], SDS[1], N))


def mixture_mle(x: np.ndarray) -> tuple[float, float]:
    """The weight's MLE (a fine grid of the exact log-likelihood) and its standard error
    (observed Fisher information of the weight)."""
    first, second = (np.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi)) for m, s in zip(MEANS, SDS))
    grid = np.linspace(0.01, 0.99, 9801)
    weight = float(grid[np.argmax(np.log(grid[:, None] * first + (1 - grid[:, None]) * second).sum(axis=1))])
    density = weight * first + (1 - weight) * second
    return weight, float(1 / np.sqrt(np.sum(((first - second) / density) ** 2)))


@pytest.mark.parametrize("source, backend", [(MIXTURE, "torch"), (HIDDEN_LABEL, "jax")], ids=["logsumexp-torch",
                                                                                              "hidden-label-jax"])
def test_mixture_weight_recovered(source, backend):
    x = mixture_data()
    mle, se = mixture_mle(x)
    model = ebm.loads(source, backend=backend)
    result = model.fit({"x": x}, method="nce", epochs=20, batch_size=50, lr=0.05, lr_schedule="cosine",
                       noise_ratio=NOISE_RATIO, progress=False)
    values = model.param_values()
    if "a" in values:
        weight, log_z = float(expit(values["a"])), 0.0
    else:
        logits = values["logit"]
        weight = float(np.exp(logits[0]) / np.exp(logits).sum())
        log_z = float(np.log(np.exp(logits).sum()) + 0.5 * math.log(2 * math.pi))
    # Here q (one Gaussian over two modes) is far from the data, so NCE is less efficient
    # than the MLE; over 6 seeds at these settings |w - w_mle| stayed below 0.5 SE (the
    # hidden-label form: 0.6). 3 SE from the MLE, and 4 from the true weight (the MLE itself
    # is 1.1 SE from it on these data).
    assert abs(weight - mle) < 3 * se, (weight, mle, se)
    assert abs(weight - WEIGHT) < 4 * se, (weight, WEIGHT, se)
    # c's own sampling error is ~ 1 / sqrt(N) = 0.02 (seen: |error| <= 0.021 over 6 seeds).
    assert abs(result.history[-1]["log_z"] - log_z) < 0.1, (result.history[-1]["log_z"], log_z)
    if backend == "jax":
        assert "z summed out exactly" in result.description


def test_bounded_domain_beta_log_z():
    """Noise outside [0, 1] has p = 0 (never scored there): the learnt c matches the Beta
    function of the fitted a, b, and a, b match the MLE."""
    from scipy.stats import beta

    source = """
    param a = 1.0 in [0.1, 50]
    param b = 1.0 in [0.1, 50]
    observed p : real in [0, 1]
    energy beta = -(a - 1) * log(p) - (b - 1) * log1p(-p)
    """
    x = np.random.default_rng(3).beta(2.0, 5.0, N)
    mle_a, mle_b, _, _ = beta.fit(x, floc=0, fscale=1)
    model = ebm.loads(source, backend="torch")
    result = model.fit({"p": x}, method="nce", epochs=20, batch_size=50, lr=0.05, lr_schedule="cosine",
                       noise_ratio=NOISE_RATIO, progress=False)
    values = model.param_values()
    # The MLE's standard errors here are about 0.06 (a) and 0.16 (b); NCE with a Gaussian
    # q that puts 8% of its draws outside [0, 1] is less efficient (seen: 0.004 and 0.055
    # away on torch, 0.04 and 0.09 on JAX).
    assert abs(float(values["a"]) - mle_a) < 0.2 and abs(float(values["b"]) - mle_b) < 0.5, (values, mle_a, mle_b)
    assert abs(result.history[-1]["log_z"] - betaln(values["a"], values["b"])) < 0.05


def test_resumed_fit_continues_exactly(tmp_path):
    """log Z and its optimiser's state go into the checkpoints: a fit interrupted after 2
    epochs and resumed ends where an uninterrupted 3-epoch run does."""
    options = dict(epochs=3, lr=0.05, lr_schedule=None, batch_size=200)
    mean, precision, straight = fit_gaussian("torch", **options)
    fit_gaussian("torch", **{**options, "epochs": 2}, checkpoint_dir=tmp_path)
    resumed_mean, resumed_precision, resumed = fit_gaussian("torch", **options, checkpoint_dir=tmp_path)
    assert resumed.resumed_from == 2
    np.testing.assert_allclose(resumed_mean, mean, rtol=0, atol=1e-6)
    np.testing.assert_allclose(resumed_precision, precision, rtol=0, atol=1e-6)
    assert resumed.history[-1]["log_z"] == pytest.approx(straight.history[-1]["log_z"], abs=1e-6)


def test_discrete_data_is_refused():
    source = """
    observed v[3] : binary
    param b[3] = 0
    energy bias = -sum(i in 0..3) b[i] * v[i]
    """
    model = ebm.loads(source, backend="torch")
    with pytest.raises(EbmError) as caught:
        model.fit({"v": np.ones((10, 3))}, method="nce", progress=False)
    message = str(caught.value)
    assert "noise-contrastive estimation (method='nce') needs continuous data, but 'v' is binary" in message
    assert "observed v[3] : binary" in message  # located at its declaration
    assert "method='pcd'" in message


@pytest.mark.parametrize("ratio", [0, -1.0, float("nan"), "4"])
def test_noise_ratio_must_be_positive(ratio):
    model = ebm.loads(GAUSSIAN, backend="torch")
    with pytest.raises(EbmError, match="noise_ratio must be"):
        model.fit({"x": gaussian_data()[:10]}, method="nce", noise_ratio=ratio, progress=False)
