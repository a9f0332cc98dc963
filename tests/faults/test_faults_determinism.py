"""Same seed, same backend -> the same numbers, run after run on one model; another
seed -> other numbers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ebmlang as ebm

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SMALL_ISING = (EXAMPLES / "ising.ebm").read_text().replace("const L = 32", "const L = 6")
FIT_MODEL = """
const D = 4
latent v[D] : binary
param b[D] = 0
param W[D, D] = 0
energy bias = -sum(i in 0..D) b[i] * v[i]
energy pair = -sum(i in 0..D, j in 0..D where i < j) W[i, j] * v[i] * v[j]
"""


def draws(model, seed: int, name: str) -> np.ndarray:
    return model.sample(chains=4, steps=30, seed=seed, progress=False)[name]


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_gibbs_repeats_itself_for_a_seed_on_the_same_model(backend):
    # Fails today on jax: the second sample() of a model dies with UnexpectedTracerError
    # (block index arrays cached while tracing the first Gibbs kernel; see the report).
    model = ebm.loads(SMALL_ISING, backend=backend, name="ising.ebm")
    first = draws(model, 5, "s")
    np.testing.assert_array_equal(draws(model, 5, "s"), first)
    # 4 chains x 23 draws x 36 spins: a second seed agreeing everywhere has probability ~0.
    assert np.mean(draws(model, 6, "s") != first) > 0.1


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_langevin_repeats_itself_for_a_seed_on_the_same_model(backend):
    model = ebm.load(EXAMPLES / "gaussian.ebm", backend=backend)
    first = draws(model, 5, "x")
    np.testing.assert_array_equal(draws(model, 5, "x"), first)
    assert not np.allclose(draws(model, 6, "x"), first)


def test_fit_repeats_itself_for_a_seed():
    data = {"v": (np.random.default_rng(0).random((32, 4)) < [0.2, 0.5, 0.7, 0.9]).astype(float)}

    def fitted(seed):
        model = ebm.loads(FIT_MODEL, backend="torch")
        return model.fit(data, method="pcd", epochs=2, batch_size=8, lr=0.1, seed=seed, progress=False,
                         eval_every=0).params

    first = fitted(3)
    for name, value in fitted(3).items():
        np.testing.assert_array_equal(value, first[name])
    assert not np.allclose(fitted(4)["W"], first["W"])
