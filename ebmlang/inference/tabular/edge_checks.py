"""Vectorised predicates over pairwise edge tables, behind `TabularMRF`'s solver checks.

Submodularity with +inf read as an arbitrarily large M, expansion submodularity of
whole batches of tables, and the chunking that bounds their temporaries. They work
on bare arrays, so they live apart from the model that calls them.
"""
from __future__ import annotations

import numpy as np


def _expansion_submodular_tables(tables: np.ndarray, first_k: np.ndarray, second_k: np.ndarray,
                                 tol: float) -> np.ndarray:
    """[c] bool: every expansion move on each table [c, K, K] is submodular (+inf as a large M)."""
    kmax = tables.shape[1]
    labels = np.arange(kmax)
    valid = (labels[None, :, None] < first_k[:, None, None]) & (labels[None, None, :] < second_k[:, None, None])
    reaches = labels[None, :] < np.minimum(first_k, second_k)[:, None]  # [c, alpha]
    if np.isfinite(tables).all():
        # All alphas at once: excess[c, alpha, a, b] = V(al,al) + V(a,b) - V(a,al) - V(al,b).
        diagonal = tables[:, labels, labels]
        excess = (diagonal[:, :, None, None] + tables[:, None, :, :]
                  - tables.transpose(0, 2, 1)[:, :, :, None] - tables[:, :, None, :])
        relevant = valid[:, None, :, :] & reaches[:, :, None, None]
        return ~np.any((excess > tol) & relevant, axis=(1, 2, 3))
    ok = np.ones(tables.shape[0], dtype=bool)
    for alpha in range(kmax):
        holds = _limit_leq(
            np.broadcast_to(tables[:, alpha, alpha][:, None, None], tables.shape), tables,
            np.broadcast_to(tables[:, :, alpha][:, :, None], tables.shape),   # V(a, alpha)
            np.broadcast_to(tables[:, alpha, :][:, None, :], tables.shape),   # V(alpha, b)
            tol)
        ok &= ~reaches[:, alpha] | np.all(holds | ~valid, axis=(1, 2))
    return ok


def _edge_chunks(num_edges: int, per_edge: int, budget: int = 2 ** 21):
    """Slices of edges whose [chunk, K, K] temporaries hold about `budget` entries."""
    step = max(1, budget // max(per_edge, 1))
    for start in range(0, num_edges, step):
        yield slice(start, min(start + step, num_edges))


def _limit_leq(left_a, left_b, right_a, right_b, tol: float) -> np.ndarray:
    """left_a + left_b <= right_a + right_b + tol, with +inf read as an arbitrarily large M."""
    left_inf = np.isinf(left_a).astype(np.int64) + np.isinf(left_b)
    right_inf = np.isinf(right_a).astype(np.int64) + np.isinf(right_b)

    def finite(x):
        return np.where(np.isinf(x), 0.0, x)

    left = finite(left_a) + finite(left_b)
    right = finite(right_a) + finite(right_b)
    return (left_inf < right_inf) | ((left_inf == right_inf) & (left <= right + tol))
