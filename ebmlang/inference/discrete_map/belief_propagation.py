"""Loopy max-product belief propagation in the min-sum form, then ICM polish.

Messages carry +inf exactly (finite parts and inf counts kept apart); pairwise
messages live on directed edges, higher-order ones in `_HigherMessages`.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sparse

from ebmlang.inference.discrete_map.icm import _icm
from ebmlang.inference.discrete_map.solver_io import MapResult, _initial_labels
from ebmlang.inference.discrete_map.tree_dp import model_forest, solve_tree
from ebmlang.inference.tabular import LocalEnergies, TabularModelError, TabularMRF


def _split_inf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(finite part with inf -> 0, 1.0 where inf): sums of these never form inf - inf."""
    infinite = np.isinf(values)
    return np.where(infinite, 0.0, values), infinite.astype(np.float64)


def _join_inf(finite: np.ndarray, count: np.ndarray) -> np.ndarray:
    return np.where(count > 0.5, np.inf, finite)


def _normalise_messages(messages: np.ndarray) -> np.ndarray:
    """Shift each message so its minimum is 0; an all-inf message (a contradiction
    found by propagation) becomes uninformative rather than NaN."""
    low = messages.min(axis=-1, keepdims=True)
    return np.where(np.isfinite(low), messages - np.where(np.isfinite(low), low, 0.0), 0.0)


def _damp(old: np.ndarray, new: np.ndarray, damping: float) -> np.ndarray:
    if damping <= 0.0:
        return new
    both = np.isfinite(old) & np.isfinite(new)
    return np.where(both, damping * np.where(both, old, 0.0) + (1.0 - damping) * np.where(both, new, 0.0), new)


def _message_change(old: np.ndarray, new: np.ndarray) -> float:
    if old.size == 0:
        return 0.0
    if (np.isinf(old) != np.isinf(new)).any():
        return np.inf
    finite = np.isfinite(old)
    return float(np.abs(np.where(finite, old - np.where(finite, new, 0.0), 0.0)).max())


class _HigherMessages:
    """Factor-to-variable messages of one group of higher-order factors: [f, k, K]."""

    def __init__(self, factor, num_variables: int, kmax: int):
        self.variables = factor.variables
        arity, radix = factor.arity, factor.radix
        table = factor.table.reshape((factor.num_factors,) + (radix,) * arity)
        if radix >= kmax:
            table = table[(slice(None),) + (slice(0, kmax),) * arity]
        else:
            # Labels >= R are beyond every variable of the factor: forbidden by the unary anyway.
            table = np.pad(table, [(0, 0)] + [(0, kmax - radix)] * arity, constant_values=np.inf)
        self.table = table
        self.messages = np.zeros((factor.num_factors, arity, kmax))
        flat = self.variables.reshape(-1)
        self.incidence = sparse.csr_matrix((np.ones(flat.size), (flat, np.arange(flat.size))),
                                           shape=(num_variables, flat.size))

    def update(self, belief_finite: np.ndarray, belief_count: np.ndarray) -> np.ndarray:
        """New (unnormalised) messages from beliefs that include the current ones."""
        own_finite, own_count = _split_inf(self.messages)
        incoming = _join_inf(belief_finite[self.variables] - own_finite,
                             belief_count[self.variables] - own_count)  # [f, k, K]
        arity = self.variables.shape[1]
        out = np.empty_like(self.messages)
        for position in range(arity):
            total = self.table
            for other in range(arity):
                if other != position:
                    shape = [incoming.shape[0]] + [1] * arity
                    shape[other + 1] = incoming.shape[2]
                    total = total + incoming[:, other].reshape(shape)
            axes = tuple(axis + 1 for axis in range(arity) if axis != position)
            out[:, position] = total.min(axis=axes)
        return out


def solve_max_product_bp(mrf: TabularMRF, iters: int = 100, damping: float = 0.5, tol: float = 1e-6,
                         init=None, polish: bool = True) -> MapResult:
    """Loopy max-product belief propagation in the min-sum form, flooding schedule.

    Messages live on the 2m directed edges ([2m, Kmax]) and, for higher-order
    factors, factor -> variable ([f, k, Kmax]); +inf entries are carried exactly
    (finite parts and inf counts are summed apart). Damping mixes finite entries of
    the old and new messages. Each iteration decodes the beliefs; the best decoding
    seen (or `init`, if lower) is polished by ICM, so the result is never worse
    than `init`. On a model whose merged interaction graph is a forest (a chain, a
    tree) it runs the exact two-pass schedule of `tree_dp.solve_tree` instead.

    info: iterations, converged, decoded_energy (best decoding before polishing), feasible.
    """
    if not 0.0 <= damping < 1.0:
        raise TabularModelError(f"damping must lie in [0, 1), got {damping}")
    mrf = mrf.merge_parallel_factors()
    forest = model_forest(mrf)
    if forest is not None:
        return solve_tree(mrf, forest)
    n, kmax, m = mrf.num_variables, mrf.max_labels, mrf.num_edges
    first, second = mrf.edges[:, 0], mrf.edges[:, 1]
    source = np.concatenate([first, second])
    target = np.concatenate([second, first])
    reverse = np.concatenate([np.arange(m) + m, np.arange(m)])
    tables = np.concatenate([mrf.pairwise, mrf.pairwise.transpose(0, 2, 1)])  # [2m, K_source, K_target]
    into = sparse.csr_matrix((np.ones(2 * m), (target, np.arange(2 * m))), shape=(n, 2 * m))
    messages = np.zeros((2 * m, kmax))
    higher = [_HigherMessages(f, n, kmax) for f in mrf.higher if f.num_factors]
    unary_finite, unary_count = _split_inf(mrf.unary)

    def beliefs():
        finite, count = unary_finite.copy(), unary_count.copy()
        for incidence, values in [(into, messages)] + [(h.incidence, h.messages) for h in higher]:
            if values.size:
                part_finite, part_count = _split_inf(values.reshape(-1, kmax))
                finite += incidence @ part_finite
                count += incidence @ part_count
        return finite, count

    best_labels = _initial_labels(mrf, init) if init is not None else None
    best_energy = float(mrf.energy(best_labels)) if init is not None else np.inf
    converged, iteration = False, 0
    for iteration in range(1, iters + 1):
        finite, count = beliefs()
        decoded = np.argmin(_join_inf(finite, count), axis=1).astype(np.int64)
        decoded_energy = float(mrf.energy(decoded))
        if best_labels is None or decoded_energy < best_energy:
            best_labels, best_energy = decoded, decoded_energy
        change = 0.0
        if m:
            own_finite, own_count = _split_inf(messages[reverse])
            cavity = _join_inf(finite[source] - own_finite, count[source] - own_count)  # [2m, K]
            fresh = _normalise_messages((cavity[:, :, None] + tables).min(axis=1))
            fresh = _damp(messages, fresh, damping)
            change = max(change, _message_change(messages, fresh))
        for h in higher:
            h_fresh = _damp(h.messages, _normalise_messages(h.update(finite, count)), damping)
            change = max(change, _message_change(h.messages, h_fresh))
            h.messages = h_fresh
        if m:
            messages = fresh
        if change < tol:
            converged = True
            break
    finite, count = beliefs()
    decoded = np.argmin(_join_inf(finite, count), axis=1).astype(np.int64)
    decoded_energy = float(mrf.energy(decoded))
    if best_labels is None or decoded_energy < best_energy:
        best_labels, best_energy = decoded, decoded_energy
    labels = best_labels
    if polish:
        labels, _, _ = _icm(LocalEnergies(mrf), labels, 100)
    energy = float(mrf.energy(labels))
    return MapResult(labels, energy, "bp",
                     {"iterations": iteration, "converged": converged, "decoded_energy": best_energy,
                      "exact": False, "proven": False, "feasible": bool(np.isfinite(energy))})
