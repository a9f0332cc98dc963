"""Contrastive losses: values, derivatives, and the parameter gradient they give."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

import ebmlang as ebm
from ebmlang.errors import EbmError
from ebmlang.learning.contrastive import Contrastive
from ebmlang.learning.losses import LOSSES, get_loss
from ebmlang.learning.weighted import weighted_gradient


def numeric_slopes(loss, energies, target, margin, eps=1e-6):
    slopes = np.zeros_like(energies)
    for index in np.ndindex(energies.shape):
        up, down = energies.copy(), energies.copy()
        up[index] += eps
        down[index] -= eps
        slopes[index] = (loss(up, target, margin)[0].sum() - loss(down, target, margin)[0].sum()) / (2 * eps)
    return slopes


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_slopes_are_the_derivatives_of_the_loss(name):
    rng = np.random.default_rng(0)
    energies = rng.normal(0, 2, (6, 5))  # distinct values: the losses are differentiable here
    target = rng.integers(0, 5, 6)
    loss = get_loss(name)
    _, slopes = loss(energies, target, 1.0)
    np.testing.assert_allclose(slopes, numeric_slopes(loss, energies, target, 1.0), atol=1e-5)


def test_loss_values_follow_their_definitions():
    energies = np.array([[0.0, 2.0, 3.0], [1.0, 0.5, 4.0]])
    target = np.array([0, 0])
    np.testing.assert_allclose(LOSSES["energy"](energies, target, 1.0)[0], [0.0, 1.0])
    np.testing.assert_allclose(LOSSES["perceptron"](energies, target, 1.0)[0], [0.0, 0.5])
    # hinge: max(0, m + E_y - min_{y' != y} E_y') = max(0, 1 + 0 - 2), max(0, 1 + 1 - 0.5)
    np.testing.assert_allclose(LOSSES["hinge"](energies, target, 1.0)[0], [0.0, 1.5])
    np.testing.assert_allclose(LOSSES["nll"](energies, target, 1.0)[0], energies[:, 0] + logsumexp(-energies, axis=1))
    np.testing.assert_allclose(LOSSES["log"](energies, target, 1.0)[0], np.log1p(np.exp([-2.0, 0.5])))


def test_unknown_loss_gets_a_hint():
    with pytest.raises(EbmError, match="did you mean 'hinge'"):
        get_loss("hinj")


CLASSIFIER = """
observed x[2] : real
latent   y : categorical(3)
param W[3, 2] ~ normal(0, 1)
param c[3] ~ normal(0, 1)
energy score = -sum(k in 0..3, d in 0..2) [y == k] * W[k, d] * x[d] - sum(k in 0..3) [y == k] * c[k]
"""


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("name", ["nll", "hinge", "perceptron"])
def test_weighted_states_give_the_autodiff_gradient_of_the_loss(backend, name):
    """The weights route (one weighted grad_params call) against differentiating the loss
    written directly in the backend's ops."""
    model = ebm.loads(CLASSIFIER, backend=backend, seed=3)
    rng = np.random.default_rng(1)
    batch = {"x": rng.normal(size=(8, 2)), "y": rng.integers(0, 3, 8).astype(float)}
    objective = Contrastive(model, batch, loss=name, margin=1.0)
    weighted = objective.step(model.backend.key(0), batch, model.params)
    grads = weighted_gradient(model, weighted)

    bk = model.backend
    ops = bk.ops
    states = {"x": bk.asarray(np.repeat(batch["x"], 3, axis=0)), "y": bk.asarray(np.tile(np.arange(3.0), 8))}
    onehot = bk.asarray(np.eye(3)[batch["y"].astype(int)])

    def mean_loss(params):
        energies = ops.reshape(model.compiled.energy(states, params), (8, 3))
        true = ops.sum(energies * onehot, axis=1)
        if name == "nll":
            values = true + ops.logsumexp(-energies, axis=1)
        elif name == "perceptron":
            values = true - ops.min(energies, axis=1)
        else:
            wrong = ops.min(energies + onehot * 1e9, axis=1)
            values = ops.maximum(1.0 + true - wrong, 0.0 * true)
        return ops.sum(values) / 8.0

    value, expected = bk.value_and_grad(mean_loss)(dict(model.params))
    assert weighted.loss == pytest.approx(float(bk.to_numpy(value)), rel=1e-5)
    for key in ("W", "c"):
        np.testing.assert_allclose(bk.to_numpy(grads[key]), bk.to_numpy(expected[key]), atol=1e-5)
