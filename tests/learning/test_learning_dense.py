"""Fitting a fully connected Boltzmann machine: the chains are scanned unit by unit (the
colouring has one unit per colour) and the energy is one contraction; PCD must recover
the exact MLE computed here by Newton's method over all 2^10 states."""
from __future__ import annotations

import itertools

import numpy as np
from scipy.special import softmax

import ebmlang as ebm
from ebmlang.inference.gibbs import build_gibbs_sweep, gibbs_blocks

N = 10
SOURCE = f"""
const N = {N}
param J = 0.0
param h = 0.0
latent s[N] : spin
energy pairs = -J * sum(i in 0..N, j in 0..N where i < j) s[i] * s[j]
energy field = -h * sum(i in 0..N) s[i]
"""
TRUE = np.array([0.15, -0.2])  # J, h
EXAMPLES = 3000


def statistics(states):
    spins = states.sum(1)
    return np.stack([(spins ** 2 - N) / 2, spins], axis=1)  # sum_{i<j} s_i s_j, sum_i s_i


def test_pcd_with_a_dense_scan_recovers_the_mle():
    states = np.array(list(itertools.product([-1.0, 1.0], repeat=N)))
    stats = statistics(states)
    data = states[np.random.default_rng(0).choice(len(states), EXAMPLES, p=softmax(stats @ TRUE))]
    target, theta = statistics(data).mean(0), TRUE.copy()
    for _ in range(20):  # Newton on the convex negative log-likelihood, from the truth
        p = softmax(stats @ theta)
        mean = p @ stats
        theta += np.linalg.solve((stats - mean).T @ ((stats - mean) * p[:, None]), target - mean)

    model = ebm.loads(SOURCE, backend="torch")
    assert build_gibbs_sweep(model.compiled, gibbs_blocks(model.graph)).scanned_groups == ("s",)
    model.fit({"s": data}, method="pcd", epochs=25, batch_size=100, chains=100, lr=0.02,
              lr_schedule="cosine", seed=1, progress=False, eval_every=0)
    values = model.param_values()
    found = np.array([float(values["J"]), float(values["h"])])
    # The MLE's standard errors here are about 0.004 (J) and 0.01 (h); PCD's optimisation
    # noise with 100 chains and a cosine rate stays well inside 0.03. A wrong field, a
    # missing factor 2 in the couplings or a stuck chain misses by far more.
    assert np.all(np.abs(found - theta) < 0.03), (found, theta)
