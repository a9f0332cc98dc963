"""Exact log-likelihood of a small binary RBM, by enumerating one layer.

Energy, with weights W [n_hidden, n_visible] (scikit-learn's `components_` layout):

    E(v, h) = -b·v - c·h - h·W v,         v in {0,1}^V, h in {0,1}^H

Either layer sums out in closed form, leaving a sum over the other:

    free energy   F(v) = -b·v - Σ_j softplus(c_j + W_j·v)
    log Z = logsumexp_h [c·h + Σ_i softplus(b_i + (Wᵀh)_i)]     (2^H terms)
          = logsumexp_v [b·v + Σ_j softplus(c_j + (W v)_j)]     (2^V terms)
    log p(v) = -F(v) - log Z

`log_partition` enumerates the smaller layer in chunks (one matrix product per chunk),
so a 64-visible, 16-hidden RBM costs 65,536 rows of a [chunk, 16] @ [16, 64] product.
"""
from __future__ import annotations

import numpy as np

MAX_ENUMERATED_UNITS = 30  # 2^30 configurations: minutes, not hours
CHUNK = 1 << 14


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def binary_configurations(start: int, stop: int, width: int) -> np.ndarray:
    """float64 [stop - start, width]: the binary expansions of start..stop-1 (bit k in column k)."""
    codes = np.arange(start, stop, dtype=np.int64)
    return ((codes[:, None] >> np.arange(width, dtype=np.int64)) & 1).astype(np.float64)


def free_energy(visible: np.ndarray, weights: np.ndarray, visible_bias: np.ndarray, hidden_bias: np.ndarray) -> np.ndarray:
    """F(v) for visible [N, V]: float64 [N]."""
    v = np.asarray(visible, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    return -(v @ np.asarray(visible_bias, dtype=np.float64)) - softplus(v @ w.T + hidden_bias).sum(axis=1)


def log_partition(
    weights: np.ndarray, visible_bias: np.ndarray, hidden_bias: np.ndarray, chunk: int = CHUNK
) -> float:
    """log Z, exact, enumerating the smaller layer."""
    w = np.asarray(weights, dtype=np.float64)
    b = np.asarray(visible_bias, dtype=np.float64)
    c = np.asarray(hidden_bias, dtype=np.float64)
    n_hidden, n_visible = w.shape
    if b.shape != (n_visible,) or c.shape != (n_hidden,):
        raise ValueError(
            f"biases must have shapes ({n_visible},) and ({n_hidden},) for weights {w.shape}, "
            f"got {b.shape} and {c.shape}"
        )
    if n_hidden <= n_visible:
        enumerated, enumerated_bias, summed_bias, coupling = n_hidden, c, b, w
    else:
        enumerated, enumerated_bias, summed_bias, coupling = n_visible, b, c, w.T
    if enumerated > MAX_ENUMERATED_UNITS:
        raise ValueError(
            f"exact log Z enumerates 2^{enumerated} configurations of the smaller layer; "
            f"more than 2^{MAX_ENUMERATED_UNITS} is out of reach"
        )
    chunk_log_sums = []
    for start in range(0, 1 << enumerated, chunk):
        states = binary_configurations(start, min(start + chunk, 1 << enumerated), enumerated)
        terms = states @ enumerated_bias + softplus(states @ coupling + summed_bias).sum(axis=1)
        top = terms.max()
        chunk_log_sums.append(top + np.log(np.exp(terms - top).sum()))
    return float(np.logaddexp.reduce(chunk_log_sums))


def log_likelihood(
    visible: np.ndarray,
    weights: np.ndarray,
    visible_bias: np.ndarray,
    hidden_bias: np.ndarray,
    log_z: float | None = None,
) -> np.ndarray:
    """log p(v) for each row of visible [N, V]: float64 [N] (log Z computed unless given)."""
    if log_z is None:
        log_z = log_partition(weights, visible_bias, hidden_bias)
    return -free_energy(visible, weights, visible_bias, hidden_bias) - log_z
