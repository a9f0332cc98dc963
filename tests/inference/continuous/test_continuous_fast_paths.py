"""The shortcuts that make eager torch steps cheaper (issue #19) compute exactly what the
longer forms did: the same booleans and numbers, so the same draws.

- `classify_proposal` and `metropolis_log_acceptance` in fewer operations;
- `adapt_step_size` with num_warmup = 0 (the frozen step, without the masked update);
- `scaled` skipping a multiplication by 1;
- the sampling runner switching to a kernel without adaptation after warm-up.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.backends import get_backend
from ebmlang.inference.adaptation import adapt_step_size, dual_averaging_init
from ebmlang.inference.continuous import classify_proposal, metropolis_log_acceptance, scaled
from ebmlang.inference.continuous_runner import ContinuousRunner

INF, NAN = float("inf"), float("nan")
THRESHOLD = 1000.0


def reference_classify(energy, grad_sum, rise, threshold):
    """classify_proposal as first written (before the fast path), in numpy."""
    usable = np.isfinite(energy) & np.isfinite(grad_sum)
    hit_constraint = energy == INF
    blew_up = usable & (rise > threshold)
    return usable, (~usable & ~hit_constraint) | blew_up


def reference_log_acceptance(log_ratio, usable):
    log_ratio = np.where(usable, log_ratio, 0.0)
    return np.where(usable, np.minimum(log_ratio, 0.0), -INF)


def all_cases():
    """Every combination of special energies, gradients and rises (one chain each)."""
    energies = [0.5, -3.0, INF, -INF, NAN, 2e3]
    grads = [0.0, INF, NAN]
    rises = [-1.0, 0.0, 999.0, 1001.0, INF, NAN]
    cases = np.array(list(itertools.product(energies, grads, rises)), dtype=np.float32)
    return cases[:, 0], np.stack([cases[:, 1], np.ones_like(cases[:, 1])], axis=1), cases[:, 2]


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_classify_and_acceptance_match_the_long_forms(backend):
    bk = get_backend(backend)
    energy, grad, rise = all_cases()
    usable, divergent = classify_proposal(bk.ops, bk.asarray(energy), bk.asarray(grad), bk.asarray(rise), THRESHOLD)
    want_usable, want_divergent = reference_classify(energy, grad.sum(-1), rise, THRESHOLD)
    np.testing.assert_array_equal(bk.to_numpy(usable), want_usable)
    np.testing.assert_array_equal(bk.to_numpy(divergent), want_divergent)

    log_ratio = np.array([-2.0, 0.0, 3.0, NAN, -INF, INF] * 18, dtype=np.float32)
    got = metropolis_log_acceptance(bk.ops, bk.asarray(log_ratio), usable)
    np.testing.assert_array_equal(bk.to_numpy(got), reference_log_acceptance(log_ratio, want_usable))


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("per_chain", [False, True])
def test_adaptation_without_warmup_is_the_frozen_adaptive_step(backend, per_chain):
    bk = get_backend(backend)
    state = dual_averaging_init(bk.ops, bk.asarray(np.array([0.3, 0.05, 2.0], dtype=np.float32)))
    acceptance = bk.asarray(np.array([0.9, 0.1, NAN], dtype=np.float32))
    # Adapt a few steps, so that log_step and its average differ.
    for _ in range(4):
        state, _ = adapt_step_size(bk.ops, state, acceptance, target=0.6, num_warmup=4, per_chain=per_chain)
    frozen = [adapt_step_size(bk.ops, state, acceptance, target=0.6, num_warmup=warmup, per_chain=per_chain)
              for warmup in (4, 0)]
    (state_adaptive, step_adaptive), (state_fast, step_fast) = frozen
    np.testing.assert_array_equal(bk.to_numpy(step_fast), bk.to_numpy(step_adaptive))
    for fast, adaptive in zip(state_fast, state_adaptive):
        np.testing.assert_array_equal(bk.to_numpy(fast), bk.to_numpy(adaptive))


def test_scaled_skips_only_a_multiplication_by_one():
    x = np.array([1.5, -2.0])
    assert scaled(x, 1.0) is x
    np.testing.assert_array_equal(scaled(x, 0.5), x * 0.5)


GAUSSIAN = """
latent x[3] : real
energy e = 0.5 * (x[0]^2 + 4 * x[1]^2 + (x[2] - x[0])^2)
"""


@pytest.mark.parametrize("method", ["mala", "hmc", "nuts", "rwmh"])
def test_runner_after_warmup_makes_the_same_draws_without_adaptation(method, monkeypatch):
    # Eager torch only: on compiling backends the runner keeps the adaptive kernel.
    backend = "torch"
    switched = []
    compile_step = ContinuousRunner._compile_step
    monkeypatch.setattr(ContinuousRunner, "_compile_step",
                        lambda self, config: switched.append(config.num_warmup) or compile_step(self, config))

    def draws(freeze: bool):
        if not freeze:
            monkeypatch.setattr(ContinuousRunner, "_freeze_adaptation", lambda self: None)
        model = ebm.loads(GAUSSIAN, backend=backend)
        samples = model.sample(chains=3, steps=40, burn_in=20, method=method, seed=4, progress=False)
        return samples["x"], samples.info["step_size"]

    (fast, fast_step) = draws(True)
    assert switched == [20, 0]  # the adaptive kernel, then from step 20 the one without adaptation
    (slow, slow_step) = draws(False)
    np.testing.assert_array_equal(fast, slow)
    assert fast_step == slow_step
