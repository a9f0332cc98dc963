"""Minibatches gathered from training data put on the backend once per fit
(`dataset.resident_data`) must train exactly as numpy minibatches converted step by step:
the same rows, the same values, so the same parameters to the last bit."""
from __future__ import annotations

import numpy as np
import pytest

import ebmlang
from ebmlang.learning.dataset import minibatches, resident_data
from ebmlang.learning.likelihood import MaximumLikelihood

SOURCE = """
const V = 9
const H = 4
observed v[V] : binary
observed x[2] : real
latent h[H] : binary
param W[V, H] ~ normal(0, 0.1)
param b[V] = 0
param c[H] = 0
param m[2] = 0
energy interaction = -sum(i in 0..V, k in 0..H) v[i] * W[i, k] * h[k]
energy biases = -sum(i in 0..V) b[i] * v[i] - sum(k in 0..H) c[k] * h[k]
energy gauss = 0.5 * sum(d in 0..2) (x[d] - m[d])^2
"""


def data(rows=53, seed=0):
    rng = np.random.default_rng(seed)
    return {"v": (rng.random((rows, 9)) < 0.4).astype(float), "x": rng.normal(1.0, 0.7, (rows, 2))}


@pytest.mark.parametrize("persistent", [True, False], ids=["pcd", "cd"])
def test_backend_batches_train_to_the_same_parameters_as_numpy_batches(monkeypatch, persistent):
    fitted = []
    for resident in (True, False):
        monkeypatch.setattr(MaximumLikelihood, "takes_backend_batches", resident)
        model = ebmlang.loads(SOURCE, backend="torch", seed=2)
        model.fit(data(), method="pcd" if persistent else "cd", epochs=2, batch_size=8, lr=0.05,
                  optimizer="sgd", seed=5, progress=False, eval_every=0)
        fitted.append(model.param_values())
    for name in fitted[0]:
        np.testing.assert_array_equal(fitted[0][name], fitted[1][name], err_msg=name)
    assert np.abs(fitted[0]["W"]).sum() > 0 and np.abs(fitted[0]["m"]).sum() > 0  # it did train


def test_backend_minibatches_hold_the_rows_numpy_minibatches_hold():
    from ebmlang.backends import get_backend

    backend = get_backend("torch")
    arrays = data(rows=23)
    order = np.random.default_rng(1).permutation(23)
    on_backend = list(minibatches(resident_data(backend, arrays), order, 5, backend))
    in_numpy = list(minibatches(arrays, order, 5))
    assert [len(b["v"]) for b in on_backend] == [5, 5, 5, 5, 3]
    for ours, theirs in zip(on_backend, in_numpy):
        for name in arrays:
            np.testing.assert_array_equal(backend.to_numpy(ours[name]), theirs[name].astype(np.float32))
