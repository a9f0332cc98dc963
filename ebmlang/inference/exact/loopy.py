"""Loopy sum-product belief propagation: approximate marginals and the Bethe estimate of
log Z where no junction tree fits (pairwise models).

Messages live on the 2m directed edges as energies ([2m, K], +inf allowed: finite parts
and infinity counts are summed apart, as max-product does), updated all at once
(flooding) with damping in the log domain until the largest change is below `tol`.
Beliefs b_i and pair beliefs b_ij give the marginals; the Bethe free energy F = U - H,

    U = sum_i <E_i>_{b_i} + sum_ij <E_ij>_{b_ij},
    H = sum_ij H(b_ij) - sum_i (deg_i - 1) H(b_i),

gives log Z ~ -F, exact on trees at convergence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sparse
from scipy.special import logsumexp

from ebmlang.inference.discrete_map.belief_propagation import _damp, _join_inf, _message_change, _split_inf
from ebmlang.inference.tabular import TabularMRF


@dataclass(frozen=True)
class LoopyResult:
    """marginals [n, K]; log_z the Bethe estimate; iterations, converged, change (the last
    largest message change)."""

    marginals: np.ndarray
    log_z: float
    iterations: int
    converged: bool
    change: float


def _shifted(energies: np.ndarray) -> np.ndarray:
    """Each row moved so its minimum is 0 (an all-inf row, a contradiction, becomes 0)."""
    low = energies.min(axis=-1, keepdims=True)
    return np.where(np.isfinite(low), energies - np.where(np.isfinite(low), low, 0.0), 0.0)


def _probabilities(energies: np.ndarray, axes) -> np.ndarray:
    """exp(-energies) normalised over `axes` (all-inf slices give zeros)."""
    negative = -energies
    top = np.max(negative, axis=axes, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    weights = np.exp(negative - top)
    total = weights.sum(axis=axes, keepdims=True)
    return weights / np.where(total > 0, total, 1.0)


def _entropy(p: np.ndarray, axes) -> np.ndarray:
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=axes)


def _mean_energy(p: np.ndarray, energies: np.ndarray, axes) -> np.ndarray:
    return np.sum(np.where(p > 0, p * np.where(np.isfinite(energies), energies, 0.0), 0.0), axis=axes)


def loopy_sum_product(mrf: TabularMRF, *, beta: float = 1.0, iters: int = 200, damping: float = 0.5,
                      tol: float = 1e-6) -> LoopyResult:
    """Marginals and the Bethe log Z of exp(-beta E) for a pairwise model (parallel edges merged)."""
    mrf = mrf.merge_parallel_factors()
    if not mrf.is_pairwise:
        raise ValueError("loopy sum-product here takes pairwise models")
    n, kmax, m = mrf.num_variables, mrf.max_labels, mrf.num_edges
    unary = beta * mrf.unary
    pairwise = beta * mrf.pairwise
    first, second = mrf.edges[:, 0], mrf.edges[:, 1]
    source, target = np.concatenate([first, second]), np.concatenate([second, first])
    reverse = np.concatenate([np.arange(m) + m, np.arange(m)])
    tables = np.concatenate([pairwise, pairwise.transpose(0, 2, 1)])          # [2m, K_source, K_target]
    into = sparse.csr_matrix((np.ones(2 * m), (target, np.arange(2 * m))), shape=(n, 2 * m))
    unary_finite, unary_count = _split_inf(unary)
    messages = np.zeros((2 * m, kmax))

    def beliefs():
        finite, count = _split_inf(messages)
        return unary_finite + into @ finite, unary_count + into @ count

    converged, change, iteration = m == 0, 0.0, 0
    for iteration in range(1, iters + 1):
        if m == 0:
            break
        finite, count = beliefs()
        own_finite, own_count = _split_inf(messages[reverse])
        cavity = _join_inf(finite[source] - own_finite, count[source] - own_count)   # [2m, K]
        with np.errstate(invalid="ignore"):
            fresh = -logsumexp(-(cavity[:, :, None] + tables), axis=1)
        fresh = _damp(messages, _shifted(np.where(np.isnan(fresh), np.inf, fresh)), damping)
        change = _message_change(messages, fresh)
        messages = fresh
        if change < tol:
            converged = True
            break
    finite, count = beliefs()
    belief_energy = _join_inf(finite, count)
    marginals = _probabilities(belief_energy, 1)
    own_finite, own_count = _split_inf(messages[reverse])
    cavity = _join_inf(finite[source] - own_finite, count[source] - own_count)
    pair_energy = cavity[:m, :, None] + cavity[m:, None, :] + pairwise               # [m, K, K]
    pair_marginals = _probabilities(pair_energy, (1, 2))
    degree = np.bincount(mrf.edges.reshape(-1), minlength=n)
    average = (_mean_energy(marginals, unary, 1).sum()
               + _mean_energy(pair_marginals, pairwise, (1, 2)).sum())
    entropy = _entropy(pair_marginals, (1, 2)).sum() - ((degree - 1) * _entropy(marginals, 1)).sum()
    log_z = float(entropy - average - beta * mrf.constant)
    return LoopyResult(marginals, log_z, iteration, bool(converged), float(change))
