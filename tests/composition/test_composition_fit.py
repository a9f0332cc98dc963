"""fit(train=[prefix]) on a composite trains one expert's params and leaves the others bit-identical."""
from __future__ import annotations

import numpy as np
import pytest

import ebmlang as ebm

N = 64


def _data(count=8, seed=0):
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:N, :N]
    clean = np.stack([((rows - rng.integers(20, 44)) ** 2 + (cols - rng.integers(20, 44)) ** 2
                       < rng.integers(10, 20) ** 2).astype(int) for _ in range(count)])
    noisy = np.where(rng.random(clean.shape) < 0.15, 1 - clean, clean)
    return {"x": clean, "y": noisy}


@pytest.mark.parametrize("train, trained, frozen", [
    (["Likelihood"], "Likelihood.eta", "Prior.beta"),
    (["Prior"], "Prior.beta", "Likelihood.eta"),
])
def test_fit_with_train_prefix_updates_only_that_expert(train, trained, frozen):
    posterior = ebm.load("examples/posterior.ebm", model="Posterior")
    before = {k: v.copy() for k, v in posterior.param_values().items()}
    posterior.fit(_data(), method="pcd", epochs=2, batch_size=4, lr=0.05, optimizer="sgd", seed=0,
                  train=train, progress=False, eval_every=0)
    after = posterior.param_values()
    assert after[trained] != before[trained]
    assert after[frozen].tobytes() == before[frozen].tobytes()


def test_fit_without_train_prefix_moves_both_experts():
    """The control: with nothing frozen the same run moves both params, so the test above is not vacuous."""
    posterior = ebm.load("examples/posterior.ebm", model="Posterior")
    before = {k: v.copy() for k, v in posterior.param_values().items()}
    posterior.fit(_data(), method="pcd", epochs=2, batch_size=4, lr=0.05, optimizer="sgd", seed=0,
                  progress=False, eval_every=0)
    after = posterior.param_values()
    assert all(after[k] != before[k] for k in before)
