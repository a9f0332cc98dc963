"""Discrete MAP (argmin) solvers and exact queries on a `TabularMRF`.

Every solver is `solve_*(mrf, ...) -> MapResult(labels [n], energy, method, info)`
and works on numpy arrays only; loops run over iterations, sweeps, labels or
colour classes, never over variables or factors.

    exact        solve_enumeration (small state spaces), solve_graphcut (binary,
                 pairwise, submodular: Kolmogorov-Zabih construction + max-flow)
    approximate  solve_alpha_expansion (metric / Potts pairwise terms, each move a
                 graph cut), solve_max_product_bp (loopy min-sum BP + ICM polish),
                 solve_icm, solve_annealed_gibbs
    queries      enumerate_distribution, exact_marginals, log_partition, top_k

`choose_map_method` picks a solver and says why in a sentence; `solve_map` runs it.
Hard constraints (+inf energies) are honoured throughout: graph-cut based
solvers replace +inf by a finite M larger than any feasible energy, so the cut
never pays it when a feasible labelling exists. A result whose energy is +inf
means no feasible labelling was found (`info["feasible"]` is False).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import maxflow
import numpy as np
import scipy.sparse as sparse

from ebmlang.inference.tabular import LocalEnergies, TabularModelError, TabularMRF

__all__ = [
    "DEFAULT_MAX_ENUMERATION",
    "DEFAULT_MAX_STATES",
    "EnumerationTooLargeError",
    "GibbsRun",
    "MAP_SOLVERS",
    "MapResult",
    "choose_map_method",
    "count_states",
    "default_annealing_schedule",
    "enumerate_distribution",
    "exact_marginals",
    "expansion_move",
    "log_partition",
    "run_block_gibbs",
    "solve_alpha_expansion",
    "solve_annealed_gibbs",
    "solve_enumeration",
    "solve_graphcut",
    "solve_icm",
    "solve_map",
    "solve_max_product_bp",
    "top_k",
]

DEFAULT_MAX_STATES = 2 ** 22
DEFAULT_MAX_ENUMERATION = 2 ** 20
# Labels x factors gathered per enumeration chunk: bounds the working memory (~100 MB).
_CHUNK_ELEMENTS = 2 ** 22


class MapResult(NamedTuple):
    """A labelling [n] (int64), its energy under the original model, the solver's name,
    and solver-specific details (iterations, bounds, feasibility, ...)."""

    labels: np.ndarray
    energy: float
    method: str
    info: dict


class EnumerationTooLargeError(TabularModelError):
    """Exact enumeration was asked for a state space above its limit."""


# --------------------------------------------------------------------------
# Enumeration and exact queries


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
                     {**info, "feasible": False})


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
                     {"num_states": num_states, "feasible": bool(np.isfinite(best_energy))})


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


# --------------------------------------------------------------------------
# Graph cuts


def _surrogate_tables(mrf: TabularMRF) -> tuple[np.ndarray, np.ndarray, float]:
    """Unary and pairwise tables with +inf replaced by M = 2 S + 1, where S bounds |E|
    of every feasible labelling: any labelling paying M then costs more than any
    feasible one, so a minimum of the surrogate is a minimum of the model."""

    def largest(values: np.ndarray, axes) -> float:
        if values.size == 0:
            return 0.0
        return float(np.abs(np.where(np.isfinite(values), values, 0.0)).max(axis=axes).sum())

    bound = largest(mrf.unary, 1) + largest(mrf.pairwise, (1, 2)) + abs(mrf.constant)
    bound += sum(largest(f.table, 1) for f in mrf.higher)
    big = 2.0 * bound + 1.0
    unary = np.where(np.isinf(mrf.unary), big, mrf.unary)
    pairwise = np.where(np.isinf(mrf.pairwise), big, mrf.pairwise)
    return unary, pairwise, big


def _surrogate_energy(unary: np.ndarray, pairwise: np.ndarray, edges: np.ndarray, labels: np.ndarray) -> float:
    total = unary[np.arange(unary.shape[0]), labels].sum()
    if edges.shape[0]:
        total += pairwise[np.arange(edges.shape[0]), labels[edges[:, 0]], labels[edges[:, 1]]].sum()
    return float(total)


def _binary_min_cut(cost0: np.ndarray, cost1: np.ndarray, first: np.ndarray, second: np.ndarray,
                    tables: np.ndarray) -> tuple[np.ndarray, float]:
    """Exact minimum of sum_i cost_{x_i}[i] + sum_e tables[e, x_first, x_second] over x in {0,1}^n
    for submodular (finite) tables, by the Kolmogorov-Zabih construction.

    With A, B, C, D = T(0,0), T(0,1), T(1,0), T(1,1):
        T(x, y) = A + (C - A) x + (D - C) y + (B + C - A - D) (1 - x) y,
    so each table becomes two linear terms and an arc first -> second of capacity
    B + C - A - D >= 0, cut exactly when x = 0 and y = 1. A node in the sink
    segment takes label 1. Returns (labels [n] int64, minimum value).
    """
    n = cost0.size
    a, b, c, d = tables[:, 0, 0], tables[:, 0, 1], tables[:, 1, 0], tables[:, 1, 1]
    slope = (cost1 - cost0) + np.bincount(first, weights=c - a, minlength=n) \
        + np.bincount(second, weights=d - c, minlength=n)
    offset = cost0.sum() + a.sum() + np.minimum(slope, 0.0).sum()
    if n == 0:
        return np.zeros(0, dtype=np.int64), float(offset)
    # Rounding can leave a submodular table a hair below zero; the cut needs capacities >= 0.
    capacity = np.maximum(b + c - a - d, 0.0)
    graph = maxflow.Graph[float](n, first.size)
    nodes = graph.add_nodes(n)
    graph.add_grid_tedges(nodes, np.maximum(slope, 0.0), np.maximum(-slope, 0.0))
    if first.size:
        graph.add_edges(first, second, capacity, np.zeros_like(capacity))
    flow = graph.maxflow()
    labels = graph.get_grid_segments(nodes).astype(np.int64)
    return labels, float(flow + offset)


def _submodularity_report(mrf: TabularMRF) -> str:
    bad = int((~mrf.submodular_edges()).sum())
    return f"{bad} of {mrf.num_edges} edge tables violate E(0,0)+E(1,1) <= E(0,1)+E(1,0)"


def solve_graphcut(mrf: TabularMRF) -> MapResult:
    """Exact minimum of a binary, pairwise, submodular model by one min-cut (PyMaxflow).

    info: cut_value (the surrogate minimum; equals `energy` when feasible), feasible.
    """
    if not mrf.is_binary:
        raise TabularModelError(
            f"graph cut needs binary variables, but a variable has {int(mrf.num_labels.max())} labels",
            hint="use solve_alpha_expansion (metric/Potts terms) or solve_max_product_bp")
    if not mrf.is_pairwise:
        raise TabularModelError("graph cut needs a pairwise model, but it has higher-order factors",
                                hint="use solve_max_product_bp or solve_annealed_gibbs")
    if not mrf.is_submodular():
        raise TabularModelError(f"graph cut needs submodular edges: {_submodularity_report(mrf)}",
                                hint="use solve_max_product_bp (approximate) or solve_enumeration "
                                     "(small models)")
    n = mrf.num_variables
    if mrf.max_labels < 2:
        labels = np.zeros(n, dtype=np.int64)
        energy = float(mrf.energy(labels))
        return MapResult(labels, energy, "graphcut", {"cut_value": energy, "feasible": bool(np.isfinite(energy))})
    unary, pairwise, _ = _surrogate_tables(mrf)
    labels, cut_value = _binary_min_cut(unary[:, 0], unary[:, 1], mrf.edges[:, 0], mrf.edges[:, 1],
                                        pairwise[:, :2, :2])
    energy = float(mrf.energy(labels))
    return MapResult(labels, energy, "graphcut",
                     {"cut_value": cut_value + mrf.constant, "feasible": bool(np.isfinite(energy))})


def _initial_labels(mrf: TabularMRF, init) -> np.ndarray:
    """`init` checked, or the labels minimising each unary (lowest label on ties)."""
    if init is None:
        return np.argmin(mrf.unary, axis=1).astype(np.int64) if mrf.num_variables else np.zeros(0, np.int64)
    labels = np.asarray(init)
    if labels.shape != (mrf.num_variables,) or not np.issubdtype(labels.dtype, np.integer):
        raise TabularModelError(f"init must be integer labels [{mrf.num_variables}], got "
                                f"{labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or (labels >= mrf.num_labels).any()):
        raise TabularModelError("init gives a variable a label outside its domain")
    return labels.astype(np.int64).copy()


def _expansion_move(unary: np.ndarray, pairwise: np.ndarray, edges: np.ndarray, labels: np.ndarray,
                    alpha: int, can_switch: np.ndarray) -> np.ndarray:
    """The best labelling within one alpha-expansion of `labels`: each variable in
    `can_switch` keeps its label or takes `alpha`. One binary min-cut over the
    switchable variables; an edge with one fixed end becomes a unary term."""
    movable = np.flatnonzero(can_switch)
    node_of = np.full(labels.size, -1, dtype=np.int64)
    node_of[movable] = np.arange(movable.size)
    keep_cost = unary[movable, labels[movable]]
    switch_cost = unary[movable, alpha]
    first, second = edges[:, 0], edges[:, 1]
    a, b = labels[first], labels[second]
    both_keep = pairwise[np.arange(first.size), a, b]
    first_switches = pairwise[:, alpha, :][np.arange(first.size), b]   # V(alpha, b)
    second_switches = pairwise[:, :, alpha][np.arange(first.size), a]  # V(a, alpha)
    both_switch = pairwise[:, alpha, alpha]
    first_free, second_free = can_switch[first], can_switch[second]
    only_first = first_free & ~second_free
    only_second = second_free & ~first_free
    size = movable.size
    keep_cost = keep_cost + np.bincount(node_of[first[only_first]], both_keep[only_first], size) \
        + np.bincount(node_of[second[only_second]], both_keep[only_second], size)
    switch_cost = switch_cost + np.bincount(node_of[first[only_first]], first_switches[only_first], size) \
        + np.bincount(node_of[second[only_second]], second_switches[only_second], size)
    pair = first_free & second_free
    tables = np.stack([np.stack([both_keep[pair], second_switches[pair]], axis=1),
                       np.stack([first_switches[pair], both_switch[pair]], axis=1)], axis=1)
    switch, _ = _binary_min_cut(keep_cost, switch_cost, node_of[first[pair]], node_of[second[pair]], tables)
    moved = labels.copy()
    moved[movable[switch.astype(bool)]] = alpha
    return moved


def expansion_move(mrf: TabularMRF, labels: np.ndarray, alpha: int) -> np.ndarray:
    """The lowest-energy labelling reachable from `labels` [n] by letting any subset of
    variables switch to label `alpha` (one graph cut). Needs expansion-submodular terms."""
    labels = _initial_labels(mrf, labels)
    unary, pairwise, _ = _surrogate_tables(mrf)
    can_switch = mrf.allowed[:, alpha] & (labels != alpha)
    return _expansion_move(unary, pairwise, mrf.edges, labels, alpha, can_switch)


def solve_alpha_expansion(mrf: TabularMRF, max_sweeps: int = 20, init=None, tol: float = 1e-9) -> MapResult:
    """Boykov-Veksler-Zabih alpha-expansion for pairwise models whose every expansion
    move is submodular (metric terms, Potts in particular).

    A sweep tries each label alpha in turn; the move (a graph cut) is kept only if it
    lowers the energy, so the energy never increases. Stops after a sweep without
    improvement. For Potts terms and nonnegative energies the result is within a
    factor 2 of the minimum (more precisely E <= E_unary(x*) + 2 E_pairwise(x*)).

    info: sweeps, moves (accepted), energy_trace (energy after each accepted move,
    surrogate M for +inf), converged, feasible.
    """
    if not mrf.is_pairwise:
        raise TabularModelError("alpha-expansion needs a pairwise model, but it has higher-order factors",
                                hint="use solve_max_product_bp or solve_annealed_gibbs")
    if not mrf.is_expansion_submodular():
        bad = int((~mrf.expansion_submodular_edges()).sum())
        raise TabularModelError(
            f"alpha-expansion needs metric pairwise terms, but {bad} of {mrf.num_edges} edge tables "
            f"violate V(c,c) + V(a,b) <= V(a,c) + V(c,b)",
            hint="use solve_max_product_bp (approximate) or solve_enumeration (small models)")
    labels = _initial_labels(mrf, init)
    unary, pairwise, _ = _surrogate_tables(mrf)
    allowed = mrf.allowed
    current = _surrogate_energy(unary, pairwise, mrf.edges, labels)
    trace = [current]
    converged, sweeps, moves = False, 0, 0
    for sweeps in range(1, max_sweeps + 1):
        improved = False
        for alpha in range(mrf.max_labels):
            can_switch = allowed[:, alpha] & (labels != alpha)
            if not can_switch.any():
                continue
            candidate = _expansion_move(unary, pairwise, mrf.edges, labels, alpha, can_switch)
            energy = _surrogate_energy(unary, pairwise, mrf.edges, candidate)
            if energy < current - tol * max(1.0, abs(current)):
                labels, current, improved = candidate, energy, True
                moves += 1
                trace.append(current)
        if not improved:
            converged = True
            break
    energy = float(mrf.energy(labels))
    return MapResult(labels, energy, "alpha_expansion",
                     {"sweeps": sweeps, "moves": moves, "energy_trace": trace, "converged": converged,
                      "feasible": bool(np.isfinite(energy))})


# --------------------------------------------------------------------------
# Coordinate methods over a colouring: ICM and block Gibbs


def _icm(local: LocalEnergies, labels: np.ndarray, sweeps: int) -> tuple[np.ndarray, int, bool]:
    """ICM from `labels` [n] for up to `sweeps` sweeps: (labels, sweeps run, converged)."""
    labels = labels.copy()
    for sweep in range(1, sweeps + 1):
        changed = False
        for colour in range(local.num_colours):
            members = local.classes[colour].members
            table = local.table(colour, labels[None, :])[0]  # [c, K]
            rows = np.arange(members.size)
            best = np.argmin(table, axis=1)
            now = table[rows, labels[members]]
            # Move only on a strict improvement (beyond rounding), so ICM cannot cycle.
            better = table[rows, best] < now - 1e-12 * np.maximum(1.0, np.abs(np.where(np.isinf(now), 0, now)))
            if better.any():
                labels[members[better]] = best[better]
                changed = True
        if not changed:
            return labels, sweep, True
    return labels, sweeps, False


def solve_icm(mrf: TabularMRF, init=None, sweeps: int = 100, colouring=None, seed: int = 0) -> MapResult:
    """Iterated conditional modes: each colour class in turn sets every member to its
    best label given the rest (members share no factor, so this is exact block
    coordinate descent and the energy never increases).

    init: starting labels (default: each unary's minimum). colouring: [n] colour ids
    (checked), default a greedy colouring of the interaction graph.
    info: sweeps, converged, colours, initial_energy, feasible.
    """
    labels = _initial_labels(mrf, init)
    local = LocalEnergies(mrf, colouring, seed=seed)
    initial_energy = float(mrf.energy(labels))
    labels, sweeps_run, converged = _icm(local, labels, sweeps)
    energy = float(mrf.energy(labels))
    return MapResult(labels, energy, "icm",
                     {"sweeps": sweeps_run, "converged": converged, "colours": local.num_colours,
                      "initial_energy": initial_energy, "feasible": bool(np.isfinite(energy))})


class GibbsRun(NamedTuple):
    """Final labellings of every chain [C, n], and the lowest-energy labelling seen [n]."""

    final: np.ndarray
    best: np.ndarray
    best_energy: float


def run_block_gibbs(mrf: TabularMRF, betas, seed: int | np.random.Generator = 0, num_chains: int = 1,
                    init=None, colouring=None) -> GibbsRun:
    """Chromatic block Gibbs on exp(-beta E): one sweep per entry of `betas` (inverse
    temperatures > 0), each visiting the colour classes in turn and redrawing all
    members of a class at once, in every chain, by the Gumbel-max trick.

    init: [n] or [C, n] labels (default: uniform over allowed labels).
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    betas = np.asarray(betas, dtype=np.float64).reshape(-1)
    if betas.size and not (np.isfinite(betas).all() and (betas > 0).all()):
        raise TabularModelError("every inverse temperature in the schedule must be finite and positive")
    local = LocalEnergies(mrf, colouring, seed=int(rng.integers(2 ** 31)))
    n = mrf.num_variables
    if init is None:
        # Uniform over allowed labels: a random key per label, the allowed one with the largest wins.
        keys = np.where(mrf.allowed[None], rng.random((num_chains, n, mrf.max_labels)), -1.0)
        labels = np.argmax(keys, axis=2)
    else:
        init = np.asarray(init)
        rows = init.reshape(-1, n) if init.ndim == 2 else init[None]
        if rows.shape[0] not in (1, num_chains):
            raise TabularModelError(f"init has {rows.shape[0]} labellings for {num_chains} chains",
                                    expected=f"labels [{n}] or [{num_chains}, {n}]")
        checked = np.stack([_initial_labels(mrf, row) for row in rows])
        labels = np.broadcast_to(checked, (num_chains, n)).copy()
    energies = mrf.energy(labels)
    best_chain = int(np.argmin(energies))
    best, best_energy = labels[best_chain].copy(), float(energies[best_chain])
    for beta in betas:
        for colour in range(local.num_colours):
            members = local.classes[colour].members
            table = local.table(colour, labels)  # [C, c, K]
            stuck = np.isinf(table).all(axis=2)
            scores = -beta * table + rng.gumbel(size=table.shape)
            drawn = np.argmax(scores, axis=2)
            # A member with every label forbidden given its neighbours keeps its label.
            labels[:, members] = np.where(stuck, labels[:, members], drawn)
        energies = mrf.energy(labels)
        chain = int(np.argmin(energies))
        if energies[chain] < best_energy:
            best, best_energy = labels[chain].copy(), float(energies[chain])
    return GibbsRun(labels, best, best_energy)


def _energy_scale(mrf: TabularMRF) -> float:
    """A typical size of one local energy change: the median spread of the finite
    entries of the unary rows and pairwise tables (1.0 when all are flat)."""
    spreads = []
    kmax = mrf.max_labels
    for tables in (mrf.unary, mrf.pairwise.reshape(mrf.num_edges, kmax * kmax)):
        if tables.size:
            finite = np.isfinite(tables)
            high = np.where(finite, tables, -np.inf).max(axis=1)
            low = np.where(finite, tables, np.inf).min(axis=1)
            spread = high - low
            spreads.append(spread[np.isfinite(spread) & (spread > 0)])
    spreads = np.concatenate(spreads) if spreads else np.zeros(0)
    return float(np.median(spreads)) if spreads.size else 1.0


def default_annealing_schedule(mrf: TabularMRF, sweeps: int = 200, hot: float = 2.0,
                               cold: float = 0.02) -> np.ndarray:
    """[sweeps] inverse temperatures, geometric from temperature hot*s to cold*s, where s
    is the model's typical local energy spread: hot enough to cross barriers of a few
    terms at first, frozen (exp(-50) odds against a typical uphill step) at the end."""
    scale = _energy_scale(mrf)
    return 1.0 / np.geomspace(hot * scale, cold * scale, sweeps)


def solve_annealed_gibbs(mrf: TabularMRF, seed: int | np.random.Generator = 0, schedule=None,
                         sweeps: int = 200, num_chains: int = 1, init=None, colouring=None,
                         polish: bool = True) -> MapResult:
    """Simulated annealing with chromatic block Gibbs (the numpy reference version).

    schedule: inverse temperatures, one per sweep (default: `default_annealing_schedule(mrf,
    sweeps)`). The lowest-energy labelling seen in any chain is polished by ICM.
    info: sweeps, chains, sampled_energy (best before polishing), feasible.
    """
    betas = default_annealing_schedule(mrf, sweeps) if schedule is None else np.asarray(schedule, float)
    run = run_block_gibbs(mrf, betas, seed=seed, num_chains=num_chains, init=init, colouring=colouring)
    labels = run.best
    if polish:
        labels, _, _ = _icm(LocalEnergies(mrf, colouring), labels, 100)
    energy = float(mrf.energy(labels))
    return MapResult(labels.astype(np.int64), energy, "annealed_gibbs",
                     {"sweeps": int(betas.size), "chains": num_chains, "sampled_energy": run.best_energy,
                      "feasible": bool(np.isfinite(energy))})


# --------------------------------------------------------------------------
# Loopy max-product (min-sum) belief propagation


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
    than `init`. Exact on trees (unique minimum, enough iterations).

    info: iterations, converged, decoded_energy (best decoding before polishing), feasible.
    """
    if not 0.0 <= damping < 1.0:
        raise TabularModelError(f"damping must lie in [0, 1), got {damping}")
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
                      "feasible": bool(np.isfinite(energy))})


# --------------------------------------------------------------------------
# Choosing a method


MAP_SOLVERS = {
    "enumeration": solve_enumeration,
    "graphcut": solve_graphcut,
    "alpha_expansion": solve_alpha_expansion,
    "bp": solve_max_product_bp,
    "icm": solve_icm,
    "annealed_gibbs": solve_annealed_gibbs,
}


def choose_map_method(mrf: TabularMRF, max_enumeration: int = DEFAULT_MAX_ENUMERATION) -> tuple[str, str]:
    """(method name in MAP_SOLVERS, a sentence saying why).

    In order: enumeration when at most `max_enumeration` joint labellings are allowed;
    graph cut when binary, pairwise and submodular (exact); alpha-expansion when
    pairwise with Potts or metric terms; otherwise loopy max-product BP + ICM.
    """
    _, counts = _choices(mrf)
    if (counts == 0).any():
        return "enumeration", (f"variable {int(np.argmin(counts))} has every label forbidden, so no "
                               "labelling is feasible -> enumeration (reports it)")
    log2_states = float(np.log2(counts).sum()) if counts.size else 0.0
    if log2_states <= math.log2(max(max_enumeration, 1)) + 1e-9:
        return "enumeration", (f"{_describe_size(log2_states)} joint labellings (at most "
                               f"{max_enumeration:,}) -> exact minimum by enumeration")
    m = mrf.num_edges
    if not mrf.is_pairwise:
        num_higher = sum(f.num_factors for f in mrf.higher)
        return "bp", (f"{num_higher} factors join 3 or more variables, so no graph-cut method applies "
                      "-> loopy max-product BP, then ICM (approximate)")
    if mrf.is_binary:
        if mrf.is_submodular():
            return "graphcut", (f"binary, pairwise and submodular (checked on all {m} edge tables) "
                                "-> exact minimum by graph cut")
        return "bp", (f"binary and pairwise but not submodular ({_submodularity_report(mrf)}) "
                      "-> loopy max-product BP, then ICM (approximate)")
    if mrf.is_potts_metric():
        return "alpha_expansion", (f"{int(mrf.num_labels.max())} labels with Potts pairwise terms "
                                   f"(checked on all {m} edge tables) -> alpha-expansion by graph cuts "
                                   "(within a factor 2 of the minimum for nonnegative energies)")
    if mrf.is_expansion_submodular():
        return "alpha_expansion", (f"{int(mrf.num_labels.max())} labels with metric pairwise terms "
                                   f"(every expansion move submodular on all {m} edge tables) "
                                   "-> alpha-expansion by graph cuts (approximate)")
    bad = int((~mrf.expansion_submodular_edges()).sum())
    return "bp", (f"{int(mrf.num_labels.max())} labels and {bad} of {m} edge tables are not metric, "
                  "so alpha-expansion does not apply -> loopy max-product BP, then ICM (approximate)")


def solve_map(mrf: TabularMRF, method: str = "auto", max_enumeration: int = DEFAULT_MAX_ENUMERATION,
              **options) -> MapResult:
    """Run `method` (a name in MAP_SOLVERS, or "auto" for `choose_map_method`);
    `info["reason"]` says why the method was used."""
    if method == "auto":
        method, reason = choose_map_method(mrf, max_enumeration=max_enumeration)
    else:
        reason = "requested"
    solver = MAP_SOLVERS.get(method)
    if solver is None:
        raise TabularModelError(f"unknown discrete MAP method '{method}'",
                                expected=f"one of auto, {', '.join(MAP_SOLVERS)}")
    result = solver(mrf, **options)
    return result._replace(info={**result.info, "reason": reason})
