"""The GMRF and NUTS benchmarks' hand-written kernels and peer adapters against the
closed-form covariance of their Gaussian targets (they are the baselines ebmlang is timed
against, so they must sample the right law)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.kernels import gmrf  # noqa: E402

SIZE, ALPHA, BETA = 12, 0.5, 1.0
CHAINS = 4000
STEPS = 15
METHODS = {"MALA": (0.1, None), "HMC": (0.3, 5)}


def assert_stationary(x: np.ndarray) -> None:
    """Chains started from exact draws must stay exact: E[x_i^2] and E[x_i x_(i+1)] per
    coordinate within 4.5 standard errors of the closed form (independent chains)."""
    x = np.asarray(x, dtype=np.float64)
    assert np.all(np.isfinite(x))
    cov = gmrf.covariance(SIZE, ALPHA, BETA)
    for products, exact in ((x * x, np.diag(cov)), (x[:, :-1] * x[:, 1:], np.diag(cov, 1))):
        error = products.std(axis=0, ddof=1) / math.sqrt(len(x))
        assert np.all(np.abs(products.mean(axis=0) - exact) < 4.5 * error), (products.mean(axis=0), exact)


def test_precision_is_the_energy() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, SIZE))
    q = gmrf.precision(SIZE, ALPHA, BETA)
    np.testing.assert_allclose(gmrf.energy_numpy(x, ALPHA, BETA), 0.5 * np.einsum("ni,ij,nj->n", x, q, x))


def test_ebm_model_energy_matches_the_closed_form() -> None:
    import ebmlang as ebm

    model = ebm.loads((REPO_ROOT / "benchmarks" / "models" / "gmrf.ebm").read_text().replace("N = 1000", f"N = {SIZE}"),
                      backend="numpy")
    model.set_params(alpha=ALPHA, beta=BETA)
    x = np.random.default_rng(1).standard_normal((3, SIZE))
    np.testing.assert_allclose(model.energy({"x": x}), gmrf.energy_numpy(x, ALPHA, BETA), rtol=1e-5)


@pytest.mark.parametrize("method", list(METHODS))
def test_torch_sampler_keeps_the_gmrf_law(method: str) -> None:
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        step, leapfrog = METHODS[method]
        x0 = torch.from_numpy(gmrf.exact_draws(SIZE, ALPHA, BETA, CHAINS, seed=3))
        x, rate = gmrf.torch_sampler(x0, ALPHA, BETA, step, STEPS, seed=1, leapfrog=leapfrog)
    finally:
        torch.set_num_threads(threads)
    assert 0.5 < rate < 1.0
    assert_stationary(x.numpy())
    assert not np.allclose(x.numpy(), x0.numpy())


@pytest.mark.parametrize("method", list(METHODS))
def test_jax_sampler_keeps_the_gmrf_law(method: str) -> None:
    jax = pytest.importorskip("jax")
    step, leapfrog = METHODS[method]
    x0 = jax.numpy.asarray(gmrf.exact_draws(SIZE, ALPHA, BETA, CHAINS, seed=3))
    x, rate = gmrf.jax_sampler_fn(leapfrog)(jax.random.key(1), x0, ALPHA, BETA, step, STEPS)
    assert 0.5 < float(rate) < 1.0
    assert_stationary(np.asarray(x))


@pytest.mark.parametrize("method", list(METHODS))
def test_blackjax_adapter_keeps_the_gmrf_law(method: str) -> None:
    jax = pytest.importorskip("jax")
    pytest.importorskip("blackjax")
    from benchmarks.peers.blackjax_gmrf import blackjax_gmrf_fn

    step, leapfrog = METHODS[method]
    x0 = jax.numpy.asarray(gmrf.exact_draws(SIZE, ALPHA, BETA, CHAINS, seed=3))
    x, rate = blackjax_gmrf_fn(ALPHA, BETA, step, leapfrog)(jax.random.key(1), x0, STEPS)
    assert 0.5 < float(rate) < 1.0
    assert_stationary(np.asarray(x))


@pytest.mark.parametrize("peer", ["numpyro", "blackjax"])
def test_nuts_peers_sample_a_correlated_gaussian(peer: str) -> None:
    jax = pytest.importorskip("jax")
    pytest.importorskip(peer)
    from benchmarks.peers import nuts_peers
    from benchmarks.workloads.nuts import dense_precision

    dim, chains, draws = 4, 8, 400
    precision = dense_precision(dim, seed=0)
    matrix = jax.numpy.asarray(precision, dtype=jax.numpy.float32)
    x0 = np.random.default_rng(0).standard_normal((chains, dim)).astype(np.float32)
    build = nuts_peers.numpyro_nuts_fn if peer == "numpyro" else nuts_peers.blackjax_nuts_fn
    # The peers run in float32, as in the benchmark's own process; a float64 model earlier in
    # the test session switches JAX's x64 mode on, under which their while loops mix dtypes.
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        x = np.asarray(build(lambda v: 0.5 * v @ (matrix @ v), x0, 200, draws)(0), dtype=np.float64)
    finally:
        jax.config.update("jax_enable_x64", previous)
    assert x.shape == (chains, draws, dim)
    variance = np.diag(np.linalg.inv(precision))
    # 3200 autocorrelated draws (NUTS on a 4-d Gaussian: ESS about the draw count): a sample
    # variance within 20% is loose enough never to fail a right sampler, tight enough to catch
    # a wrong sign or a missing factor 1/2 (a factor 2 in the variance).
    np.testing.assert_allclose(x.reshape(-1, dim).var(axis=0), variance, rtol=0.2)
