"""Exact inference under hostile inputs: infeasible models, budgets, long chains in
float32, contradictions found by loopy BP, and training data a model forbids. Expected
answers come from code in this file (forward-backward in float64)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.cli.showcase import load_example
from ebmlang.errors import EbmError

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from benchmarks.kernels import hmm as reference  # noqa: E402 -- the float64 forward-backward oracle

INFEASIBLE = """
const T = 5
latent z[T] : categorical(2)
constraint alternate[t in 0..T-1] : z[t] != z[t+1]
constraint same : z[0] == z[1]
"""


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_marginals_of_an_infeasible_model_are_refused_with_the_proof(backend):
    model = ebm.loads(INFEASIBLE, backend=backend)
    for options in ({}, {"draws": 3}):
        with pytest.raises(EbmError, match="no labelling satisfies every constraint.*log Z = -inf"):
            model.marginals(**options)


def test_loopy_bp_reports_a_contradiction_instead_of_a_converged_answer():
    model = ebm.loads("""
latent a: categorical(3)
latent b: categorical(3)
latent c: categorical(3)
constraint ab: a != b
constraint bc: b != c
constraint ca: c != a
constraint pinned: a == 0 and b == 0
""")
    with pytest.raises(EbmError, match="no labelling satisfies every constraint.*loopy BP"):
        model.marginals(method="bp")


def test_draws_and_batches_are_held_to_the_budget():
    hmm = load_example("hmm.ebm", "numpy")
    with pytest.raises(EbmError, match="2,000,000 joint draws .* more than the budget"):
        hmm.marginals(observed={"x": np.zeros((4, 100))}, draws=2_000_000)
    small = ebm.load(Path(__file__).resolve().parents[3] / "examples" / "hmm.ebm", backend="numpy", budget="20MiB")
    with pytest.raises(EbmError, match="marginals of 100 variables .* for 50,000 rows"):
        small.marginals(observed={"x": np.zeros((50_000, 100))})
    with pytest.raises(EbmError, match="not joint draws"):
        hmm.marginals(observed={"x": np.zeros(100)}, method="bp", draws=2)


def test_the_plan_and_the_run_agree_under_a_small_budget():
    source = """
const N = 4
param J[4, 4] ~ normal(0, 1)
latent s[N, N]: categorical(4)
energy right = sum(i in 0..N, j in 0..N-1) J[s[i, j], s[i, j+1]]
energy down = sum(i in 0..N-1, j in 0..N) J[s[i, j], s[i+1, j]]
"""
    tight, roomy = ebm.loads(source, budget="50MiB"), ebm.loads(source)
    assert "loopy sum-product BP" in str(tight.plan("marginals")) and not tight.marginals().exact
    assert "junction tree, width" in str(roomy.plan("marginals")) and roomy.marginals().exact


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_a_long_chain_in_float32_keeps_log_z_and_the_mode_energy_to_float32_accuracy(backend):
    steps = 6000
    model = load_example("hmm.ebm", backend, T=steps)
    params = {"log_start": np.log(np.ones(3) / 3), "log_A": np.log(np.full((3, 3), 0.05) + 0.85 * np.eye(3)),
              "mu": np.array([-2.0, 0.0, 2.0]), "sigma": np.array([1.0, 0.7, 1.3])}
    model.set_params(**params)
    x = np.random.default_rng(0).normal(size=(2, steps)) * 2
    log_z, posterior = reference.numpy_forward_backward(x, *params.values())
    answer = model.marginals(observed={"x": x})
    # |log Z| is about 1e4 here: float32 alone rounds it by ~1e-3; unnormalised messages
    # drifted by nats over such a chain
    np.testing.assert_allclose(answer.log_z, log_z, atol=0.02)
    np.testing.assert_allclose(answer.probs["z"], posterior, atol=1e-4)
    best = model.argmin(observed={"x": x})
    exact_energy = reference.path_energy(best.state["z"], x, *params.values())
    np.testing.assert_allclose(best.energy, exact_energy, atol=0.02)


def test_training_data_the_model_forbids_is_named():
    crf = load_example("crf.ebm", "torch", T=10)
    source = crf.graph.source + "\nconstraint first : y[0] != 3\n"
    model = ebm.loads(source, backend="torch")
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, size=(64, 10))
    y[:, 0] = 3
    with pytest.raises(EbmError, match="infinite energy"):
        model.fit({"x": rng.normal(size=(64, 10, 8)), "y": y}, loss="nll", epochs=1, progress=False)
    with pytest.raises(EbmError, match="add the example axis"):
        model.fit({"x": rng.normal(size=(10, 8)), "y": y[0]}, loss="nll", epochs=1, progress=False)
