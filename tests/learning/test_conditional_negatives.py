"""`fit(..., known=...)`: conditional negatives. On E = a x0^2 / 2 + c (x1 - r x0)^2 / 2, chains
that hold x0 at the data learn the conditional x1 | x0 (c, r) and give `a` no gradient at all:
its positive and negative terms are the same x0. With half the chains free, `a` is learnt too."""
from __future__ import annotations

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.errors import EbmError

SOURCE = """
latent x[2] : real
param a = 0.5 in [0.01, 100]
param c = 0.5 in [0.01, 100]
param r = 0.0
energy marginal = 0.5 * a * x[0]^2
energy conditional = 0.5 * c * (x[1] - r * x[0])^2
"""
A, C, R = 2.0, 4.0, 0.8  # data: x0 ~ N(0, 1/A), x1 | x0 ~ N(R x0, 1/C)


def data(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    x0 = rng.normal(0.0, 1.0 / np.sqrt(A), n)
    return {"x": np.stack([x0, R * x0 + rng.normal(0.0, 1.0 / np.sqrt(C), n)], axis=1)}


# Plain SGD: Adam would blow a rounding-level gradient (float32 chains against float64 data)
# up to a full step, and `a`'s gradient is exactly that small when x0 is held.
OPTIONS = dict(method="ml", epochs=10, batch_size=50, lr=0.1, optimizer="sgd", seed=0, progress=False, eval_every=0,
               langevin={"steps": 30, "step_size": 0.02, "reinit_prob": 0.05})
HOLD_X0 = {"x": np.array([True, False])}


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_chains_holding_x0_learn_the_conditional_and_leave_the_marginal_alone(backend):
    model = ebm.loads(SOURCE, backend=backend)
    result = model.fit(data(), known=HOLD_X0, known_fraction=1.0, **OPTIONS)
    assert "hold the known entries of x (1 of 2)" in result.description
    values = model.param_values()
    assert float(values["a"]) == pytest.approx(0.5, abs=1e-5)  # no gradient: every chain's x0 is its data row's
    # ULA at step 0.02, 400 SGD steps at lr 0.1 (measured r 0.84, c 3.9): r within 0.1 of 0.8, c within 25%.
    assert float(values["r"]) == pytest.approx(R, abs=0.1)
    assert float(values["c"]) == pytest.approx(C, rel=0.25)


def test_half_the_chains_free_learn_the_marginal_too():
    model = ebm.loads(SOURCE)
    model.fit(data(), known=HOLD_X0, known_fraction=0.5, **OPTIONS)
    values = model.param_values()
    assert float(values["a"]) == pytest.approx(A, rel=0.25) and float(values["r"]) == pytest.approx(R, abs=0.1)


def test_bad_known_options_are_clear_errors():
    model = ebm.loads(SOURCE)
    with pytest.raises(EbmError, match=r"known\['x'\] must be a boolean mask of shape \[2\]"):
        model.fit(data(100), known={"x": np.array([1, 0])}, **OPTIONS)
    with pytest.raises(EbmError, match="known= names 'y'"):
        model.fit(data(100), known={"y": np.array([True])}, **OPTIONS)
    with pytest.raises(EbmError, match="known_fraction must lie in"):
        model.fit(data(100), known=HOLD_X0, known_fraction=0.0, **OPTIONS)
    with pytest.raises(EbmError, match="is for maximum likelihood"):
        model.fit(data(100), known=HOLD_X0, method="dsm", epochs=1, progress=False)
