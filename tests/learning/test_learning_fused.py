"""JAX runs a maximum-likelihood epoch as one compiled scan (learning/fused.py) where every
piece of a step is pure; it must give the step-by-step run's result."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.learning.fused import fused_epochs

fit_module = importlib.import_module("ebmlang.learning.fit")  # the module (the package exports the function)

RBM = """
const V = 12
const H = 5
observed v[V] : binary
latent   h[H] : binary
param W[V, H] ~ normal(0, 0.1)
param b[V] = 0
param c[H] = 0
energy interaction = -sum(i in 0..V, k in 0..H) v[i] * W[i,k] * h[k]
energy biases      = -sum(i in 0..V) b[i] * v[i] - sum(k in 0..H) c[k] * h[k]
"""


def fitted(fuse: bool, monkeypatch, **options):
    monkeypatch.setattr(fit_module, "FUSE_EPOCHS", fuse)
    model = ebm.loads(RBM, backend="jax", seed=1)
    data = (np.random.default_rng(0).random((47, 12)) < 0.4).astype(float)  # 4 full batches of 10 and 7
    result = model.fit({"v": data}, method="pcd", epochs=2, batch_size=10, seed=3, progress=False, eval_every=0,
                       **options)
    return model.param_values(), result.history


@pytest.mark.parametrize("options", [
    dict(optimizer="adam", lr=0.05, ema=0.9, weight_decay=0.01, grad_clip=0.5, lr_schedule="cosine"),
    dict(optimizer="sgd", lr=0.1, momentum=0.5, rao_blackwell="hidden", energy_reg=0.01, k=2),
])
def test_a_fused_epoch_gives_the_step_by_step_result(monkeypatch, options):
    stepped, stepped_history = fitted(False, monkeypatch, **options)
    fused, fused_history = fitted(True, monkeypatch, **options)
    for name in stepped:  # float32 rounding of a different summation order, over 10 updates
        np.testing.assert_allclose(fused[name], stepped[name], atol=2e-5)
    for before, after in zip(stepped_history, fused_history):
        for stat in ("loss", "grad_norm", "energy_gap"):
            assert after[stat] == pytest.approx(before[stat], rel=1e-4, abs=1e-4)


def test_only_pure_steps_are_fused():
    model = ebm.loads(RBM, backend="jax")
    torch_model = ebm.loads(RBM, backend="torch")
    from ebmlang.learning.objectives import make_objective
    from ebmlang.learning.optim import make_optimizer

    data = {"v": np.zeros((4, 12))}

    def pieces(m, **options):
        objective = make_objective(m, data, method=options.get("method", "pcd"), loss=None, margin=1.0, k=1,
                                   persistent=True, chains=4, langevin=None, energy_reg=0.0, gen_weight=1.0,
                                   seed=0)
        optim = make_optimizer(m.backend, "sgd", dict(m.params), 0.1)
        return fused_epochs(m, objective, optim, list(m.params), weight_decay=0.0, grad_clip=None, average=None)

    assert pieces(model) is not None
    assert pieces(torch_model) is None  # torch runs step by step
    assert pieces(model, method="cd") is None  # chains restart at the data each step
