"""fit's options and its refusals of bad input."""
from __future__ import annotations

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.errors import EbmError
from ebmlang.learning import log_prob
from ebmlang.learning.fit import trainable_names

RBM = """
const V = 6
const H = 3
observed v[V] : binary
latent   h[H] : binary
param W[V, H] ~ normal(0, 0.1)
param b[V] = 0
param c[H] = 0
energy interaction = -sum(i in 0..V, k in 0..H) v[i] * W[i,k] * h[k]
energy biases      = -sum(i in 0..V) b[i] * v[i] - sum(k in 0..H) c[k] * h[k]
"""
DATA = {"v": np.random.default_rng(0).integers(0, 2, (40, 6)).astype(float)}


def quick(**options):
    return dict(epochs=1, batch_size=20, progress=False, **options)


def test_bad_training_data_is_located_in_the_source():
    model = ebm.loads(RBM, name="rbm.ebm")
    with pytest.raises(EbmError) as caught:
        model.fit({"v": np.zeros((10, 7))}, **quick())
    assert "shape" in str(caught.value) and "rbm.ebm:4:1" in str(caught.value) and "4 | observed v[V]" in str(caught.value)
    with pytest.raises(EbmError, match="contains 3, outside its domain binary"):
        model.fit({"v": np.full((10, 6), 3.0)}, **quick())
    with pytest.raises(EbmError, match=r"rbm.ebm:5:1: .*different numbers of examples per variable \(v: 10, h: 9\)"):
        model.fit({"v": np.zeros((10, 6)), "h": np.zeros((9, 3))}, **quick())
    with pytest.raises(EbmError, match="did you mean 'v'"):
        model.fit({"vv": np.zeros((10, 6))}, **quick())


def test_bad_options_are_refused_with_hints():
    model = ebm.loads(RBM)
    with pytest.raises(EbmError, match="did you mean 'pcd'"):
        model.fit(DATA, **quick(method="pdc"))
    with pytest.raises(EbmError, match="epochs must be a positive integer"):
        model.fit(DATA, epochs=0, progress=False)
    with pytest.raises(EbmError, match="does not combine with method='pcd'"):
        model.fit(DATA, **quick(method="pcd", loss="nll"))
    with pytest.raises(EbmError, match="needs a discrete target"):
        model.fit(DATA, **quick(loss="hinge"))
    with pytest.raises(EbmError, match="unknown Langevin option"):
        model.fit(DATA, **quick(langevin={"stepz": 3}))
    with pytest.raises(EbmError, match="cannot train parameters"):
        ebm.loads(RBM, backend="numpy").fit(DATA, **quick())


def test_train_selects_params_by_prefix():
    names = ["Prior.beta", "Likelihood.eta", "f.0.weight", "f.0.bias", "w"]
    assert trainable_names(dict.fromkeys(names), ["Likelihood"]) == ["Likelihood.eta"]
    assert trainable_names(dict.fromkeys(names), "f") == ["f.0.weight", "f.0.bias"]
    with pytest.raises(EbmError, match="did you mean 'Prior'"):
        trainable_names(dict.fromkeys(names), ["Priro"])

    model = ebm.loads(RBM, seed=1)
    before = model.param_values()
    model.fit(DATA, **quick(train=["W"], lr=0.1))
    after = model.param_values()
    assert not np.allclose(after["W"], before["W"])
    np.testing.assert_array_equal(after["b"], before["b"])
    np.testing.assert_array_equal(after["c"], before["c"])


def test_param_bounds_hold_during_training():
    source = """
    latent x[3] : binary
    param a = 0.5 in [0, 1]
    energy field[i in 0..3] = -4 * a * x[i]
    """
    model = ebm.loads(source)
    # All-ones data pushes a upward without limit; its declared bound stops it at 1.
    model.fit({"x": np.ones((30, 3))}, method="exact", epochs=20, batch_size=30, lr=0.2, progress=False)
    assert float(model.param_values()["a"]) == pytest.approx(1.0)


def test_divergence_stops_with_advice():
    source = """
    observed x : real
    latent y : categorical(2)
    param w = 1.0
    energy e = exp(w * x) * [y == 1]
    """
    model = ebm.loads(source)
    data = {"x": np.full(10, 50.0), "y": np.ones(10)}
    with pytest.raises(EbmError, match="diverged at epoch 1, step 1.*\n.*hint: lower lr"):
        model.fit(data, loss="energy", epochs=1, batch_size=10, lr=1.0, progress=False)


def test_cd_schedules_weight_decay_and_clipping_run_and_are_reported():
    model = ebm.loads(RBM, seed=0)
    result = model.fit(DATA, method="cd", k=2, epochs=4, batch_size=10, lr=0.05, optimizer="sgd", momentum=0.9,
                       lr_schedule="step", weight_decay=1e-3, grad_clip=0.5, energy_reg=0.01, progress=False)
    assert "CD-2" in result.description
    assert [r["lr"] for r in result.history] == pytest.approx([0.05, 0.05, 0.005, 0.0005])
    # Gradients are clipped after the norm is recorded; the record keeps the raw norm.
    assert all(np.isfinite(r["grad_norm"]) for r in result.history)
    assert "reconstruction_error" in result.history[-1] and "log_likelihood" in result.history[-1]
    assert len(result.losses) == 4


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_pcd_on_both_backends_improves_the_exact_likelihood(backend):
    rng = np.random.default_rng(3)
    prototypes = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=float)
    data = np.abs(prototypes[rng.integers(0, 2, 200)] - (rng.random((200, 6)) < 0.05))
    model = ebm.loads(RBM, backend=backend, seed=0)
    result = model.fit({"v": data}, method="pcd", epochs=8, batch_size=20, lr=0.03, ema=0.95, seed=0,
                       progress=False)
    tracked = result.metric("log_likelihood")
    final = float(np.mean(log_prob(model, {"v": data})))
    # Two noisy prototypes: an RBM gets far above the uniform model's 6 log(1/2) = -4.16
    # (the data's own entropy bound is about -2.4 per example). Eight short epochs end
    # anywhere from -2.4 to -3.6 depending on the initial weights (seeds 0-5 of the model,
    # both backends, tried when the torch keys changed): -3.6 still needs 0.5 nats of
    # learning, which a wrong-signed gradient or frozen chains do not give.
    assert tracked[0] < max(tracked) and final > -3.6, (tracked, final)
