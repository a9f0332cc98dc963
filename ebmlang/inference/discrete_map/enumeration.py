"""Exact minimum and exact queries by enumerating every allowed joint labelling.

`solve_enumeration`, `top_k`, `enumerate_distribution`, `log_partition` and
`exact_marginals` all walk the same chunked labellings, bounded by a state limit;
`count_states` and the size helpers also serve `choose_map_method`.
"""
from __future__ import annotations

import math

import numpy as np

from ebmlang.inference.discrete_map.solver_io import MapResult
from ebmlang.inference.tabular import TabularModelError, TabularMRF

DEFAULT_MAX_STATES = 2 ** 22
# Labels x factors gathered per enumeration chunk: bounds the working memory (~100 MB).
_CHUNK_ELEMENTS = 2 ** 22


class EnumerationTooLargeError(TabularModelError):
    """Exact enumeration was asked for a state space above its limit."""


def _choices(mrf: TabularMRF) -> tuple[np.ndarray, np.ndarray]:
    """Per variable, the labels its unary allows (left-packed, [n, Kmax]) and their count [n]."""
    allowed = mrf.allowed
    counts = allowed.sum(axis=1).astype(np.int64)
    order = np.argsort(~allowed, axis=1, kind="stable")  # allowed labels first, in label order
    return order, counts


def count_states(mrf: TabularMRF) -> int:
    """The number of joint labellings that no unary forbids (what enumeration visits)."""
    _, counts = _choices(mrf)
    return math.prod(int(c) for c in counts) if counts.size else 1


def _describe_size(log2_states: float) -> str:
    if log2_states < 50:
        return f"{round(2 ** log2_states):,}"
    return f"about 2^{log2_states:.1f}"


def _check_enumerable(mrf: TabularMRF, max_states: int, purpose: str) -> int:
    _, counts = _choices(mrf)
    if (counts == 0).any():
        return 0
    log2_states = float(np.log2(counts).sum()) if counts.size else 0.0
    if log2_states > math.log2(max(max_states, 1)) + 1e-9:
        raise EnumerationTooLargeError(
            f"{purpose} by enumeration would visit {_describe_size(log2_states)} joint labellings "
            f"of {mrf.num_variables} variables, above the limit of {max_states:,}",
            expected=f"at most {max_states:,} joint labellings",
            hint="use choose_map_method / solve_map for an argmin (graph cut, alpha-expansion, "
                 "max-product BP), clamp some variables, or raise max_states")
    return count_states(mrf)


def _labellings(mrf: TabularMRF, num_states: int):
    """Yield (state ids [B], labels [B, n]) over every allowed joint labelling, in
    row-major order (the last variable changes fastest)."""
    choices, counts = _choices(mrf)
    n = mrf.num_variables
    strides = np.ones(n, dtype=np.int64)
    if n > 1:
        strides[:-1] = np.cumprod(counts[::-1][:-1])[::-1]
    width = n + mrf.num_edges + sum(f.num_factors * f.arity for f in mrf.higher)
    chunk = max(1, _CHUNK_ELEMENTS // max(width, 1))
    columns = np.arange(n)[None, :]
    for start in range(0, num_states, chunk):
        ids = np.arange(start, min(start + chunk, num_states), dtype=np.int64)
        digits = (ids[:, None] // strides[None, :]) % np.maximum(counts, 1)[None, :]
        yield ids, choices[columns, digits]


def _energies(mrf: TabularMRF, num_states: int) -> np.ndarray:
    return np.concatenate([mrf.energy(labels) for _, labels in _labellings(mrf, num_states)]
                          or [np.zeros(0)])


def _no_labelling(mrf: TabularMRF, method: str, info: dict) -> MapResult:
    labels = np.argmin(mrf.unary, axis=1) if mrf.num_variables else np.zeros(0, np.int64)
    return MapResult(labels.astype(np.int64), float(mrf.energy(labels)), method,
                     {**info, "feasible": False, "proven": True})


def solve_enumeration(mrf: TabularMRF, max_states: int = DEFAULT_MAX_STATES) -> MapResult:
    """Exact minimum by visiting every allowed joint labelling (in chunks).

    Raises EnumerationTooLargeError (an EbmError and a ValueError) above `max_states`.
    Ties go to the first labelling in row-major label order.
    """
    num_states = _check_enumerable(mrf, max_states, "the exact minimum")
    if num_states == 0:
        return _no_labelling(mrf, "enumeration", {"num_states": 0})
    best_energy, best_labels = np.inf, None
    for _, labels in _labellings(mrf, num_states):
        energies = mrf.energy(labels)
        i = int(np.argmin(energies))
        if best_labels is None or energies[i] < best_energy:
            best_energy, best_labels = float(energies[i]), labels[i]
    return MapResult(best_labels.astype(np.int64), best_energy, "enumeration",
                     {"num_states": num_states, "feasible": bool(np.isfinite(best_energy)), "proven": True})


def top_k(mrf: TabularMRF, k: int, max_states: int = DEFAULT_MAX_STATES) -> tuple[np.ndarray, np.ndarray]:
    """The k lowest-energy feasible labellings [k', n] and their energies [k'], sorted
    ascending (ties in row-major label order). k' < k when fewer labellings are feasible."""
    if k < 1:
        raise TabularModelError(f"top_k needs k >= 1, got {k}")
    num_states = _check_enumerable(mrf, max_states, "ranking labellings")
    keep_ids = np.zeros(0, dtype=np.int64)
    keep_energies = np.zeros(0)
    keep_labels = np.zeros((0, mrf.num_variables), dtype=np.int64)
    for ids, labels in _labellings(mrf, num_states):
        energies = mrf.energy(labels)
        feasible = np.isfinite(energies)
        keep_ids = np.concatenate([keep_ids, ids[feasible]])
        keep_energies = np.concatenate([keep_energies, energies[feasible]])
        keep_labels = np.concatenate([keep_labels, labels[feasible]])
        if keep_ids.size > k:
            order = np.lexsort((keep_ids, keep_energies))[:k]
            keep_ids, keep_energies, keep_labels = keep_ids[order], keep_energies[order], keep_labels[order]
    order = np.lexsort((keep_ids, keep_energies))
    return keep_labels[order].astype(np.int64), keep_energies[order]


def enumerate_distribution(mrf: TabularMRF, beta: float = 1.0,
                           max_states: int = DEFAULT_MAX_STATES) -> tuple[np.ndarray, np.ndarray]:
    """Every allowed joint labelling [S, n] and its Boltzmann probability
    exp(-beta E) / Z [S]. Labellings a unary forbids are left out (probability 0);
    those violating another hard constraint are kept with probability 0."""
    num_states = _check_enumerable(mrf, max_states, "the exact distribution")
    energies = _energies(mrf, num_states)
    probs = _boltzmann(energies, beta)
    labels = np.concatenate([labels for _, labels in _labellings(mrf, num_states)])
    return labels.astype(np.int64), probs


def _boltzmann(energies: np.ndarray, beta: float) -> np.ndarray:
    if beta <= 0:
        raise TabularModelError(f"beta must be positive, got {beta}")
    feasible = np.isfinite(energies)
    if not feasible.any():
        raise TabularModelError("no labelling satisfies the hard constraints, so the distribution "
                                "is undefined", hint="check the +inf entries (constraints) of the model")
    shifted = np.where(feasible, energies - energies[feasible].min(), np.inf)
    weights = np.exp(-beta * shifted)
    return weights / weights.sum()


def log_partition(mrf: TabularMRF, beta: float = 1.0, max_states: int = DEFAULT_MAX_STATES) -> float:
    """log Z = log sum_x exp(-beta E(x)), exactly."""
    num_states = _check_enumerable(mrf, max_states, "the partition function")
    energies = _energies(mrf, num_states)
    feasible = np.isfinite(energies)
    if not feasible.any():
        return -np.inf
    low = energies[feasible].min()
    return float(-beta * low + np.log(np.exp(-beta * (energies[feasible] - low)).sum()))


def exact_marginals(mrf: TabularMRF, beta: float = 1.0, max_states: int = DEFAULT_MAX_STATES) -> np.ndarray:
    """[n, Kmax] exact single-variable marginals P(x_i = k) under exp(-beta E) / Z."""
    num_states = _check_enumerable(mrf, max_states, "exact marginals")
    probs = _boltzmann(_energies(mrf, num_states), beta)
    n, kmax = mrf.num_variables, mrf.max_labels
    totals = np.zeros(n * kmax)
    cell_offset = (np.arange(n) * kmax)[None, :]
    for ids, labels in _labellings(mrf, num_states):
        cells = (cell_offset + labels).reshape(-1)
        totals += np.bincount(cells, weights=np.repeat(probs[ids], n), minlength=n * kmax)
    return totals.reshape(n, kmax)
