"""A model with continuous observed and discrete hidden variables: Gibbs and Langevin
alternate in the negative chains, and the hidden label is summed out exactly."""
from __future__ import annotations

import numpy as np

import ebmlang as ebm

SOURCE = """
observed x[2] : real
latent   z : categorical(2)
param mu[2, 2] = 0
energy component = sum(k in 0..2, d in 0..2) [z == k] * (x[d] - mu[k, d])^2 / 2
"""


def test_gaussian_mixture_with_a_hidden_label_recovers_its_means():
    truth = np.array([[-2.0, 1.0], [2.0, -1.0]])
    rng = np.random.default_rng(0)
    data = truth[rng.integers(0, 2, 1000)] + rng.normal(size=(1000, 2))
    model = ebm.loads(SOURCE)
    model.set_params(mu=[[-0.5, 0.0], [0.5, 0.0]])  # one start per side: no label switching
    result = model.fit({"x": data}, method="pcd", epochs=12, batch_size=100, chains=100, lr=0.05, seed=0,
                       progress=False, langevin={"steps": 10, "step_size": 0.05})
    assert "alternating" in result.description and "z summed out" in result.description
    # Each mean is estimated from ~500 points with unit variance (standard error 0.045);
    # allow for Adam's steps and the Langevin negatives (they started 1.5-2 away).
    np.testing.assert_allclose(model.param_values()["mu"], truth, atol=0.25)
