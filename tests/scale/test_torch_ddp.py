"""Data-parallel fit over 2 gloo processes on localhost against a one-process fit.

The first launch starts the forkserver (imports torch once, a few seconds); the
later ones fork from it in well under a second.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logit

import ebmlang as ebm
from ebmlang.distributed import fit_distributed
from ebmlang.distributed.torch_ddp import slice_rows
from ebmlang.errors import EbmError

PAIRWISE = """
const D = 4
latent v[D] : binary
param b[D] = 0
param W[D, D] = 0
energy bias = -sum(i in 0..D) b[i] * v[i]
energy pair = -sum(i in 0..D, j in 0..D where i < j) W[i, j] * v[i] * v[j]
"""

INDEPENDENT = """
const D = 3
latent v[D] : binary
param b[D] = 0
energy bias = -sum(i in 0..D) b[i] * v[i]
"""


def pairwise_data() -> dict:
    rng = np.random.default_rng(0)
    return {"v": (rng.random((62, 4)) < [0.2, 0.5, 0.7, 0.9]).astype(float)}


@pytest.mark.parametrize("size,world", [(13, 2), (14, 2), (10, 3), (2, 4), (1, 1)])
def test_slices_cover_every_row_once(size, world):
    rows = np.concatenate([np.arange(size)[slice_rows(size, r, world)] for r in range(world)])
    np.testing.assert_array_equal(rows, np.arange(size))
    lengths = [len(range(size)[slice_rows(size, r, world)]) for r in range(world)]
    assert max(lengths) - min(lengths) <= 1


def test_two_ranks_match_one_process_on_the_full_batch():
    # method="exact" has no sampling noise: the size-weighted sum of the two slice
    # gradients is the full-minibatch gradient, so the runs differ by float rounding
    # only. batch_size=13 makes unequal slices (7 + 6, then 5 + 5 for the last 10 rows),
    # which an unweighted average of the ranks would not reproduce. ema=0.8: the
    # parameter average runs identically on every rank.
    options = dict(method="exact", epochs=4, batch_size=13, lr=0.05, optimizer="adam", seed=11, ema=0.8)
    single = ebm.loads(PAIRWISE, backend="torch")
    expected = single.fit(pairwise_data(), progress=False, **options)
    parallel = ebm.loads(PAIRWISE, backend="torch")
    result = fit_distributed(parallel, pairwise_data(), world_size=2, **options)
    for name in ("b", "W"):
        assert np.abs(expected.params[name]).max() > 0.1  # the fit moved the params
        np.testing.assert_allclose(result.params[name], expected.params[name], rtol=0, atol=2e-6)
        np.testing.assert_allclose(parallel.param_values()[name], expected.params[name], rtol=0, atol=2e-6)
    np.testing.assert_allclose(result.losses, expected.losses, rtol=1e-6)
    assert "data-parallel over 2 processes (gloo)" in result.description


def test_persistent_chains_per_rank_reach_the_maximum_likelihood_estimate():
    # Independent binary units: the MLE is b_i = logit(mean of v_i), exactly. Each rank
    # keeps 32 persistent chains; the model mean they estimate has sd
    # sqrt(p(1-p)/64) ~ 0.05 per step, and SGD with a cosine-decayed lr averages it
    # down to ~0.03 in b, so 0.2 is > 6 sd away from a false failure yet far below the
    # error of a run whose ranks disagreed or whose negatives were wrong (b stuck near 0
    # or off by the logit of a biased mean, >= 0.5 here).
    means = np.array([0.2, 0.5, 0.85])
    data = {"v": (np.arange(100)[:, None] < means[None, :] * 100).astype(float)}
    model = ebm.loads(INDEPENDENT, backend="torch")
    result = fit_distributed(model, data, world_size=2, method="pcd", epochs=300, batch_size=100, chains=64,
                             lr=0.5, optimizer="sgd", lr_schedule="cosine", seed=2)
    np.testing.assert_allclose(result.params["b"], logit(means), atol=0.2)
    assert "PCD-1: 32 persistent chains" in result.description


def test_a_failing_rank_is_reported_as_its_error():
    model = ebm.loads(PAIRWISE, backend="torch")
    # Both ranks fail alike; which one reports first (the other may be stopped before it
    # writes its report) depends on scheduling, so any rank's report is right.
    with pytest.raises(EbmError, match=r"rank [01]: a minibatch of 1 examples .* cannot be shared by 2 processes"):
        fit_distributed(model, pairwise_data(), world_size=2, method="exact", epochs=1, batch_size=1)


def test_bad_requests_fail_before_any_process_starts():
    model = ebm.loads(PAIRWISE, backend="torch")
    with pytest.raises(EbmError, match="does not take checkpoint_dir"):
        fit_distributed(model, pairwise_data(), checkpoint_dir="/tmp/x")
    with pytest.raises(EbmError, match="world_size must be a positive integer"):
        fit_distributed(model, pairwise_data(), world_size=0)
    with pytest.raises(EbmError, match="contains 2, outside its domain binary"):
        fit_distributed(model, {"v": np.full((4, 4), 2.0)})
    jax_model = ebm.loads(PAIRWISE, backend="jax")
    with pytest.raises(EbmError, match="model uses the jax backend"):
        fit_distributed(jax_model, pairwise_data())


def test_a_nan_energy_stops_every_rank_naming_the_term():
    source = PAIRWISE + "param s = -1.0\nenergy root = sqrt(s) * v[0]\n"
    model = ebm.loads(source, backend="torch", name="nan.ebm")
    with pytest.raises(EbmError, match=r"rank \d: energy term 'root' is nan") as caught:
        fit_distributed(model, pairwise_data(), world_size=2, method="exact", epochs=1, batch_size=16)
    assert caught.value.span.line == 9
    assert "9 | energy root = sqrt(s) * v[0]" in str(caught.value)
