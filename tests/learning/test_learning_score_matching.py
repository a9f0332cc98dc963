"""Score matching (learning/score_matching.py): denoising and sliced, on torch and JAX.

Exact answers come from closed forms written here: the maximum-likelihood mean and
precision of Gaussian data (the score-matching estimator of a Gaussian is its MLE), and a
Gaussian-Bernoulli RBM's free-energy gradient and Hessian in numpy.
"""
from __future__ import annotations

import numpy as np
import pytest

import ebmlang
from ebmlang.errors import EbmError
from ebmlang.learning.score_matching import ScoreMatching

GAUSSIAN = """
observed x[2] : real
param m[2] = 0
param L[2, 2] = 0
energy quadratic = 0.5 * sum(i in 0..2, j in 0..2) (x[i] - m[i]) * (L[i, j] + [i == j]) * (x[j] - m[j])
"""

GB_RBM = """
const V = 3
const H = 4
observed v[V] : real
latent h[H] : binary
param W[V, H] ~ normal(0, 0.7)
param b[V] ~ normal(0, 1)
param c[H] ~ normal(0, 1)
energy gauss = 0.5 * sum(i in 0..V) (v[i] - b[i])^2
energy interaction = -sum(i in 0..V, k in 0..H) v[i] * W[i, k] * h[k]
energy hidden = -sum(k in 0..H) c[k] * h[k]
"""

TRUE_PRECISION = np.array([[2.0, -1.2], [-1.2, 1.0]])
TRUE_MEAN = np.array([1.0, -1.0])


def gaussian_data(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(TRUE_MEAN, np.linalg.inv(TRUE_PRECISION), size=n)


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("method", ["dsm", "ssm"])
def test_a_gaussian_fitted_by_score_matching_is_its_maximum_likelihood_estimate(backend, method):
    data = gaussian_data()
    n = len(data)
    mle_mean = data.mean(0)
    mle_precision = np.linalg.inv(np.cov(data.T, bias=True))
    model = ebmlang.loads(GAUSSIAN, backend=backend, seed=0)
    result = model.fit({"x": data}, method=method, epochs=30, batch_size=100, lr=0.05, optimizer="adam",
                       lr_schedule="cosine", progress=False, eval_every=0, seed=1)
    fitted = model.param_values()
    precision = fitted["L"] + np.eye(2)
    # Standard errors of the MLE itself: sd_i / sqrt(n) for the mean, and the asymptotic
    # Var(P_ij) = (P_ii P_jj + P_ij^2) / n of a Wishart-distributed precision estimate.
    # Score matching is consistent and equals the MLE for Gaussians; what separates them
    # here is SGD noise at the last learning rates and DSM's blur (last noise sd 0.01 of
    # the data's: a 1e-4 relative bias), both well under 3 SE in every run we tried
    # (typically 0.1-0.5 SE): a wrong gradient (a sign, a missing term) moves them by
    # tens of SE.
    mean_se = np.sqrt(np.diag(np.linalg.inv(mle_precision)) / n)
    precision_se = np.sqrt((np.outer(np.diag(mle_precision), np.diag(mle_precision)) + mle_precision ** 2) / n)
    assert np.all(np.abs(fitted["m"] - mle_mean) < 3 * mean_se), (fitted["m"], mle_mean, mean_se)
    assert np.all(np.abs(precision - mle_precision) < 3 * precision_se), (precision, mle_precision)
    assert "score matching" in result.description and len(result.history) == 30


def numpy_free_energy_parts(params, v):
    """A GB-RBM's free energy gradient [B, V] and Hessian [B, V, V] in v, by hand:
    F(v) = 1/2 |v - b|^2 - sum_k softplus(c_k + v . W_k)."""
    W, b, c = params["W"], params["b"], params["c"]
    activation = 1.0 / (1.0 + np.exp(-(v @ W + c)))
    gradient = (v - b) - activation @ W.T
    curvature = activation * (1.0 - activation)
    hessian = np.eye(len(b))[None] - np.einsum("ik,bk,jk->bij", W, curvature, W)
    return gradient, hessian


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_the_losses_of_a_gaussian_bernoulli_rbm_sum_its_hidden_units_out_exactly(backend):
    model = ebmlang.loads(GB_RBM, backend=backend, dtype="float64", seed=3)
    params = {k: np.asarray(v, dtype=np.float64) for k, v in model.param_values().items()}
    rng = np.random.default_rng(5)
    v = rng.normal(size=(6, 3))
    bk = model.backend
    sigma = 0.3
    eps = rng.normal(size=v.shape)

    denoising = ScoreMatching(model, {"v": v}, sliced=False, noise=sigma)
    _, rows, grads = denoising.value_aux_and_grad(dict(model.params), {"v": bk.asarray(v + sigma * eps)},
                                                  {"v": bk.asarray(eps)}, {}, bk.asarray(sigma))
    gradient, _ = numpy_free_energy_parts(params, v + sigma * eps)
    expected = 0.5 * np.sum((sigma * gradient - eps) ** 2, axis=1)
    np.testing.assert_allclose(bk.to_numpy(rows), expected, rtol=1e-9, atol=1e-12)
    assert set(grads) == {"W", "b", "c"} and all(np.all(np.isfinite(bk.to_numpy(g))) for g in grads.values())

    sliced = ScoreMatching(model, {"v": v}, sliced=True)
    directions = rng.normal(size=v.shape)
    _, rows, _ = sliced.value_aux_and_grad(dict(model.params), {"v": bk.asarray(v)},
                                           {"v": bk.asarray(directions)}, {})
    gradient, hessian = numpy_free_energy_parts(params, v)
    expected = 0.5 * np.sum(gradient ** 2, axis=1) - np.einsum("bi,bij,bj->b", directions, hessian, directions)
    np.testing.assert_allclose(bk.to_numpy(rows), expected, rtol=1e-9, atol=1e-12)


def test_the_parameter_gradient_of_denoising_score_matching_matches_finite_differences():
    model = ebmlang.loads(GB_RBM, backend="torch", dtype="float64", seed=4)
    rng = np.random.default_rng(6)
    v, eps, sigma = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)), 0.2
    objective = ScoreMatching(model, {"v": v}, sliced=False, noise=sigma)
    bk = model.backend
    arguments = ({"v": bk.asarray(v + sigma * eps)}, {"v": bk.asarray(eps)}, {}, bk.asarray(sigma))
    value, _, grads = objective.value_aux_and_grad(dict(model.params), *arguments)
    base = {k: np.array(bk.to_numpy(p)) for k, p in model.params.items()}
    for name, index in (("W", (1, 2)), ("b", (0,)), ("c", (3,))):
        shifted = []
        for step in (1e-6, -1e-6):
            moved = {k: p.copy() for k, p in base.items()}
            moved[name][index] += step
            shifted.append(float(bk.to_numpy(objective.value_aux_and_grad(
                {k: bk.asarray(p) for k, p in moved.items()}, *arguments)[0])))
        numeric = (shifted[0] - shifted[1]) / 2e-6
        assert abs(float(bk.to_numpy(grads[name])[index]) - numeric) < 1e-5 * max(1.0, abs(numeric)), name


def test_torch_and_jax_agree_on_the_denoising_loss_and_its_gradient():
    found = []
    data = gaussian_data(200, seed=2)
    source = GB_RBM.replace("const V = 3", "const V = 2")
    params = ebmlang.loads(source, backend="numpy", dtype="float64", seed=7).param_values()
    for backend in ("torch", "jax"):
        model = ebmlang.loads(source, backend=backend, dtype="float64").set_params(params)
        objective = ScoreMatching(model, {"v": data}, sliced=False, noise=0.5)
        bk = model.backend
        eps = np.random.default_rng(1).normal(size=data.shape)
        value, _, grads = objective.value_aux_and_grad(dict(model.params), {"v": bk.asarray(data + 0.5 * eps)},
                                                       {"v": bk.asarray(eps)}, {}, bk.asarray(0.5))
        found.append((float(bk.to_numpy(value)), np.asarray(bk.to_numpy(grads["W"]))))
    assert found[0][0] == pytest.approx(found[1][0], rel=1e-9)
    np.testing.assert_allclose(found[0][1], found[1][1], rtol=1e-8)


def test_score_matching_says_what_it_cannot_do():
    with pytest.raises(EbmError, match="needs continuous data"):
        ebmlang.loads("observed z[3] : binary\nparam a[3] = 0\nenergy e = -sum(i in 0..3) a[i] * z[i]\n",
                      backend="torch").fit({"z": np.ones((4, 3))}, method="dsm", progress=False)
    continuous_hidden = GAUSSIAN + "latent y : real\nenergy tie = 0.5 * (y - x[0])^2\n"
    with pytest.raises(EbmError, match="cannot be summed exactly") as error:
        ebmlang.loads(continuous_hidden, backend="torch").fit({"x": gaussian_data(8)}, method="ssm", progress=False)
    assert "latent y : real" in str(error.value) and "method='pcd'" in str(error.value)
    model = ebmlang.loads(GAUSSIAN, backend="torch")
    with pytest.raises(EbmError, match="noise must be a positive number"):
        model.fit({"x": gaussian_data(8)}, method="dsm", noise=(1.0, -0.1), progress=False)
    with pytest.raises(EbmError, match="projections must be a whole number"):
        model.fit({"x": gaussian_data(8)}, method="ssm", projections=0, progress=False)


def test_data_parallel_fits_refuse_the_sampling_free_methods_for_now():
    from ebmlang.distributed.torch_ddp import fit_data_parallel

    model = ebmlang.loads(GAUSSIAN, backend="torch")
    for method in ("dsm", "ssm", "nce"):
        with pytest.raises(EbmError, match=f"method='{method}' does not run data-parallel yet"):
            fit_data_parallel(model, {"x": gaussian_data(8)}, method=method)
