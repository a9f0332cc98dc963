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


SHORT_RUN = """
observed x[6] : real in [0, 1]
param E : mlp(6 -> 8 -> 1, silu)
energy e = E(x)
"""


def fitted_short_run(fuse: bool, monkeypatch, **options):
    monkeypatch.setattr(fit_module, "FUSE_EPOCHS", fuse)
    model = ebm.loads(SHORT_RUN, backend="jax", seed=1)
    data = np.random.default_rng(0).random((23, 6))  # 2 full batches of 10 and 3
    options = {"recipe": "igebm", "langevin": {"steps": 5, "step_size": 10.0, "noise_scale": 0.005,
                                               "buffer_size": 50}, **options}
    result = model.fit({"x": data}, method="pcd", epochs=2, batch_size=10, seed=3, progress=False, eval_every=0,
                       **options)
    return model.param_values(), result.history


@pytest.mark.parametrize("options", [
    dict(lr=1e-3),
    dict(lr=1e-2, optimizer="sgd", ema=0.9, grad_clip=0.1),
    # The default sampler (in logit coordinates), no energy penalty: the output bias's
    # gradient is 0 up to rounding, which Adam would blow up to a step of lr, so SGD.
    dict(lr=1e-2, optimizer="sgd", recipe=None, langevin={"steps": 3, "step_size": 0.01, "buffer_size": 40}),
])
def test_a_fused_replay_buffer_epoch_gives_the_step_by_step_result(monkeypatch, options):
    """Short-run Langevin from a replay buffer (IGEBM's recipe, and the default sampler):
    the same buffer draws, chains and updates in compiled steps as step by step."""
    stepped, stepped_history = fitted_short_run(False, monkeypatch, **options)
    fused, fused_history = fitted_short_run(True, monkeypatch, **options)
    for name in stepped:
        np.testing.assert_allclose(fused[name], stepped[name], atol=2e-5)
    for before, after in zip(stepped_history, fused_history):
        for stat in ("loss", "grad_norm", "energy_gap", "energy_pos", "energy_neg"):
            assert after[stat] == pytest.approx(before[stat], rel=1e-4, abs=1e-4)


def test_the_buffer_draws_the_hosts_indices_on_the_device():
    """`ReplayBuffer.sample` picks entries on JAX without a host round trip (so a fused
    step can trace it): floor(u * capacity) in integer pieces, equal to the host's float64
    arithmetic for every float32 draw u = m / 2^23 (float32 would round u * capacity)."""
    import jax.numpy as jnp

    from ebmlang.inference.replay import _jax_indices

    m = np.concatenate([np.arange(2 ** 12), np.random.default_rng(0).integers(0, 2 ** 23, 2 ** 16),
                        2 ** 23 - np.arange(1, 2 ** 12)]).astype(np.uint32)
    uniform = m.astype(np.float32) / np.float32(2 ** 23)
    for capacity in (1, 3, 4096, 4097, 10000, 12345, 2 ** 20 + 17, 2 ** 31 - 1):
        host = np.minimum((uniform.astype(np.float64) * capacity).astype(np.int64), capacity - 1)
        np.testing.assert_array_equal(np.asarray(_jax_indices(capacity)(jnp.asarray(uniform))), host)
    rounded = (uniform * np.float32(10000)).astype(np.int64)  # the float32 shortcut is not exact
    assert np.any(rounded != np.minimum((uniform.astype(np.float64) * 10000).astype(np.int64), 9999))


def test_which_replay_buffer_fits_are_fused():
    """The replay-buffer step is fused on JAX when it is pure: not on torch, not with noise
    drawn on the host for the data (data_noise)."""
    from ebmlang.learning.objectives import make_objective
    from ebmlang.learning.optim import make_optimizer
    from ebmlang.learning.recipes import RECIPES

    def pieces(source, backend, data_noise=0.0):
        m = ebm.loads(source, backend=backend)
        objective = make_objective(m, {"x": np.full((4, 6), 0.5)}, method="pcd", loss=None, margin=1.0, k=1,
                                   persistent=True, chains=4, langevin=RECIPES["igebm"].langevin, energy_reg=1.0,
                                   gen_weight=1.0, seed=0)
        optim = make_optimizer(m.backend, "adam", dict(m.params), 0.1)
        return fused_epochs(m, objective, optim, list(m.params), weight_decay=0.0, grad_clip=None, average=None,
                            data_noise=data_noise)

    assert pieces(SHORT_RUN, "jax") is not None
    assert pieces(SHORT_RUN, "torch") is None
    assert pieces(SHORT_RUN, "jax", data_noise=0.03) is None


def test_a_fused_replay_buffer_scan_is_compiled_once_for_every_data_size():
    """One step per call: fits on data sets of other sizes (and ranges, which set the
    buffer's noise) reuse the compiled scan (one shape for full batches, one for a smaller
    last batch) instead of compiling an epoch-long one for each."""
    model = ebm.loads(SHORT_RUN, backend="jax", seed=1)
    options = dict(method="pcd", recipe="igebm", batch_size=10, seed=3, progress=False, eval_every=0,
                   langevin={"steps": 2, "buffer_size": 50})
    rng = np.random.default_rng(0)
    for rows, epochs in ((23, 1), (33, 2), (53, 1)):
        model.fit({"x": rng.random((rows, 6))}, epochs=epochs, **options)
    scans = [v for k, v in model.compiled._memo.items() if isinstance(k, tuple) and k[:1] == ("fused ml epoch",)]
    assert len(scans) == 1 and scans[0]._cache_size() == 2
