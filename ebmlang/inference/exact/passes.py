"""Sum-product and max-product on a rooted forest, level by level, in a backend's ops.

Potentials are log-space: phi = -beta * energy. The upward pass sends each level's
messages to its parents,

    m_c(k_p) = reduce_{k_c} [ up_c(k_c) + phi_cp(k_c, k_p) ],   up_c = phi_c + sum of its children's m,

with reduce = logsumexp (sum-product: log Z, marginals, exact draws) or max (max-product:
the minimum energy and its labels). The downward pass gives each node the log-sum of
everything outside its subtree, so up + down is its unnormalised log-marginal. Everything
is a `scan` over levels of the schedule (schedule.py), batched over rows of observations
[B]; nothing loops over nodes, and torch and JAX differentiate through it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ebmlang.inference.exact.schedule import LevelSchedule


@dataclass
class LevelPotentials:
    """unary [D, B, W, K] log-potentials per level; pairwise [D - 1, B or 1, W, K_child,
    K_parent] those of the edges from levels 1..D-1 to their parents. Labels are the last
    axis: XLA's CPU loops run many times slower with a small axis after them."""

    unary: Any
    pairwise: Any


def level_potentials(backend, schedule: LevelSchedule, unary_energy, pair_energy, beta: float) -> LevelPotentials:
    """Gather per-level log-potentials from energies: unary [B, n, K], pairwise [B or 1, E, K, K]
    (backend arrays or numpy; entries +inf forbid labels)."""
    ops = backend.ops
    unary = -beta * backend.asarray(unary_energy)
    pairs = -beta * backend.asarray(pair_energy)
    rows, _, labels = unary.shape
    pair_rows = pairs.shape[0]    # 1 when no pairwise table reads the observations
    depth, width = schedule.nodes.shape
    padded = not schedule.is_real.all()
    if padded:
        unary = ops.concatenate([unary, ops.zeros((rows, 1, labels))], 1)                # the dummy node
    per_slot = ops.reshape(gather(backend, unary, schedule.nodes.reshape(-1), 1), (rows, depth, width, labels))
    # Row-major per level: each step reads one level's slice, and torch's kernels run
    # markedly slower on transposed or strided slices than on contiguous ones.
    per_slot = ops.contiguous(ops.swapaxes(per_slot, 0, 1))                              # [D, B, W, K]
    if depth == 1:
        return LevelPotentials(per_slot, ops.zeros((0, pair_rows, width, labels, labels)))
    if padded:
        pairs = ops.concatenate([pairs, ops.zeros((pair_rows, 1, labels, labels))], 1)  # the padding's edge
    tables = gather(backend, pairs, schedule.edge[1:].reshape(-1), 1)                   # [B, (D-1)*W, K, K]
    first = schedule.child_first[1:].reshape(-1)
    if not first.all():   # orient every table [child label, parent label]
        flipped = ops.swapaxes(tables, 2, 3)
        tables = flipped if not first.any() else ops.where(
            backend.asarray(first.reshape(1, -1, 1, 1), dtype="bool"), tables, flipped)
    tables = ops.reshape(tables, (pair_rows, depth - 1, width, labels, labels))
    return LevelPotentials(per_slot, ops.contiguous(ops.swapaxes(tables, 0, 1)))         # [D-1, B, W, Kc, Kp]


def upward(backend, schedule: LevelSchedule, potentials: LevelPotentials, use_max: bool = False):
    """Sum-product: (up [D, B, W, K], messages to the parents of levels 1..D-1 [D-1, B, W,
    K_parent] -- only where some parent has several children, else None --, None, offset [B]).
    Max-product (use_max): (the roots' up [1, B, W, K], None, the best child label per parent
    label [D-1, B, W, K_parent], offset [B]). Only what the later passes read is kept.

    Sum-product shifts every message so that its largest entry is 0 and sums the shifts into
    `offset` (add it to `root_totals`): unshifted, log-sums grow with the depth of the tree
    and float32 loses their differences (2.5 nats of log Z on a chain of 20,000). Max-product
    leaves them (offset 0): its argmax does not need it, and the best path's score is summed
    afresh by `path_score`."""
    ops = backend.ops
    _, rows, width, labels = potentials.unary.shape
    if schedule.depth == 1:
        return potentials.unary, None, None, ops.zeros((rows,))
    parent_slot = backend.asarray(schedule.parent_slot[1:], dtype="int64")
    real = backend.asarray(schedule.is_real[1:, None, :], dtype="bool")                 # [D-1, 1, W]
    keep_messages = schedule.siblings and not use_max

    def step(incoming, level):
        unary, tables, slots = level
        up = unary + incoming
        total = up[..., None] + tables
        if use_max:   # the argmax needs no shift; the path's score is summed afresh (path_score)
            message, best = ops.max_argmax(total, 2)
            out = (best,)
        else:
            # (an all -inf message, of an infeasible model, turns NaN here: log Z then is not
            # finite either, and the callers refuse it)
            message = ops.logsumexp(total, 2)
            top = ops.max(message, 2)                                                  # [B, W]
            message = message - top[..., None]
            out = (up, message, top) if keep_messages else (up, top)
        if schedule.direct:
            return message, out
        by_slot = ops.swapaxes(message, 1, 2)                                          # [B, K, W]
        spare = ops.zeros((rows, labels, width + 1))
        return ops.swapaxes(ops.index_add(spare, slots, by_slot)[..., :width], 1, 2), out

    start = ops.zeros((rows, width, labels))
    into_roots, outputs = backend.scan(step, start, (potentials.unary[1:], potentials.pairwise, parent_slot),
                                       reverse=True)
    roots = ops.reshape(potentials.unary[0] + into_roots, (1, rows, width, labels))
    if use_max:
        return roots, None, outputs[0], ops.zeros((rows,))
    # one sum over every level's shifts at the end: float32 loses less than a running total
    offset = ops.sum(ops.sum(ops.where(real, outputs[-1], ops.zeros_like(outputs[-1])), 2), 0)
    up, messages = (outputs[0], outputs[1]) if keep_messages else (outputs[0], None)
    return ops.concatenate([roots, up], 0), messages, None, offset


def root_totals(backend, schedule: LevelSchedule, up, use_max: bool = False):
    """Sum over trees of each root's log-sum (or max) over its labels: [B]."""
    ops = backend.ops
    roots = up[0]                                                               # [B, W, K]
    per_root = ops.max(roots, 2) if use_max else ops.logsumexp(roots, 2)
    if schedule.is_real[0].all():
        return ops.sum(per_root, 1)
    real = backend.asarray(schedule.is_real[0][None, :], dtype="bool")
    return ops.sum(ops.where(real, per_root, ops.zeros(tuple(per_root.shape))), 1)


def downward(backend, schedule: LevelSchedule, potentials: LevelPotentials, up, messages):
    """Log-sum of everything outside each node's subtree, per label: [D, B, W, K]."""
    ops = backend.ops
    _, rows, width, labels = potentials.unary.shape
    top = ops.zeros((1, rows, width, labels))
    if schedule.depth == 1:
        return top
    parent_slot = _parent_slots(backend, schedule)

    def step(above, level):
        if schedule.siblings:   # leave this child's own message out of its parent's belief
            tables, slots, up_here, message = level
            parent = above if schedule.direct else ops.take(above, slots, 1)
            finite = ops.isfinite(message)
            parent = ops.where(finite, parent - ops.where(finite, message, ops.zeros_like(message)),
                               ops.full_like(message, -np.inf))
        else:                   # a parent's only child: everything but the child is its unary
            unary, tables, slots = level
            parent = above if schedule.direct else ops.take(above, slots, 1)
        outside = ops.logsumexp(parent[..., None, :] + tables, 3)
        outside = outside - ops.max(outside, 2)[..., None]   # a constant per node: marginals are per node
        below = (up_here if schedule.siblings else unary) + outside
        return below, outside

    if schedule.siblings:
        first, rest = up[0], (potentials.pairwise, parent_slot[1:], up[1:], messages)
    else:
        first, rest = potentials.unary[0], (potentials.unary[1:], potentials.pairwise, parent_slot[1:])
    _, outside = backend.scan(step, first, rest)
    return ops.concatenate([top, outside], 0)


def path_score(backend, schedule: LevelSchedule, potentials: LevelPotentials, labels):
    """Sum of the log-potentials along labelled slots [D, B, W]: [B] (one sum, so float32
    keeps the score of a long chain to its own precision)."""
    ops = backend.ops
    real = backend.asarray(schedule.is_real[:, None, :], dtype="bool")                  # [D, 1, W]
    own = ops.take_along_axis(potentials.unary, labels[..., None], 3)[..., 0]            # [D, B, W]
    total = ops.sum(ops.sum(ops.where(real, own, ops.zeros_like(own)), 2), 0)
    if schedule.depth == 1:
        return total
    if schedule.direct:
        parents = labels[:-1]                                                            # [D-1, B, W]
    else:
        slots = np.minimum(schedule.parent_slot[1:], schedule.width - 1)[:, None, :]     # [D-1, 1, W]
        parents = ops.take_along_axis(labels[:-1], backend.asarray(slots, dtype="int64"), 2)
    tables = potentials.pairwise                                                         # [D-1, Bp, W, Kc, Kp]
    levels, pair_rows, width, labels_here, _ = tables.shape
    flat = ops.reshape(tables, (levels, pair_rows, width, labels_here * labels_here))
    entry = labels[1:] * labels_here + parents                                           # [D-1, B, W]
    picked = ops.take_along_axis(flat, entry[..., None], 3)[..., 0]                      # one gather per edge
    edges = ops.where(real[1:], picked, ops.zeros_like(picked))
    return total + ops.sum(ops.sum(edges, 2), 0)


def decode_max(backend, schedule: LevelSchedule, up, best):
    """The maximising labels per slot [D, B, W]: roots by their own maximum, every other
    node by its parent's label through the kept best-child table."""
    ops = backend.ops
    roots = ops.argmax(up[0], 2)                                               # [B, W]
    if schedule.depth == 1:
        return ops.reshape(roots, (1,) + tuple(roots.shape))
    parent_slot = _parent_slots(backend, schedule)

    def step(above, level):
        best_here, slots = level
        parent = above if schedule.direct else ops.take(above, slots, 1)
        labels = ops.take_along_axis(best_here, parent[..., None], 2)[..., 0]
        return labels, labels

    _, below = backend.scan(step, roots, (best, parent_slot[1:]))
    return ops.concatenate([ops.reshape(roots, (1,) + tuple(roots.shape)), below], 0)


def draw(backend, key, schedule: LevelSchedule, potentials: LevelPotentials, up, draws: int):
    """Exact joint draws per slot [D, B, S, W]: the roots from their marginals, every other
    node from p(label | its parent's drawn label) -- forward filtering, backward sampling
    generalised to trees."""
    ops = backend.ops
    depth, rows, width, labels = potentials.unary.shape
    noise = backend.uniform(key, (depth, rows, draws, width, labels))
    root_logits = ops.reshape(up[0], (rows, 1, width, labels))
    roots = backend.gumbel_argmax(noise[0], root_logits + ops.zeros((rows, draws, width, labels)))
    if depth == 1:
        return ops.reshape(roots, (1, rows, draws, width))
    parent_slot = _parent_slots(backend, schedule)

    def step(above, level):
        up_here, tables, slots, uniform = level
        parent = above if schedule.direct else ops.take(above, slots, 2)                 # [B, S, W]
        tables = ops.reshape(tables, (tables.shape[0], 1, width, labels, labels))
        index = ops.reshape(parent, (rows, draws, width, 1, 1))
        chosen = ops.take_along_axis(tables, index, 4)                                   # [B, S, W, K, 1]
        logits = ops.reshape(chosen, (rows, draws, width, labels)) + ops.reshape(up_here, (rows, 1, width, labels))
        labels_here = backend.gumbel_argmax(uniform, logits)
        return labels_here, labels_here

    _, below = backend.scan(step, roots, (up[1:], potentials.pairwise, parent_slot[1:], noise[1:]))
    return ops.concatenate([ops.reshape(roots, (1, rows, draws, width)), below], 0)


def _parent_slots(backend, schedule: LevelSchedule):
    """Parent slots to read from (padding reads slot W - 1; its result is never used)."""
    return backend.asarray(np.minimum(schedule.parent_slot, schedule.width - 1), dtype="int64")


def gather(backend, array, index: np.ndarray, axis: int):
    """`take(array, index, axis)`, skipped when `index` is every position in order (a chain's
    levels read its nodes and edges in order: no copy then)."""
    if index.size == array.shape[axis] and np.array_equal(index, np.arange(index.size)):
        return array
    return backend.ops.take(array, backend.asarray(index, dtype="int64"), axis)
