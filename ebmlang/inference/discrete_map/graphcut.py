"""Exact minimum of a binary, pairwise, submodular model by one min-cut (PyMaxflow).

Also the graph-cut machinery alpha-expansion reuses: the +inf -> M surrogate
tables and energy, and the Kolmogorov-Zabih binary min-cut.
"""
from __future__ import annotations

import maxflow
import numpy as np

from ebmlang.inference.discrete_map.solver_io import MapResult
from ebmlang.inference.tabular import TabularModelError, TabularMRF


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
    Parallel edges are merged first: submodularity is a property of the merged tables.
    """
    mrf = mrf.merge_parallel_factors()
    if not mrf.is_binary:
        raise TabularModelError(
            f"graph cut needs binary variables, but a variable has {int(mrf.num_labels.max())} labels",
            hint="use method 'ilp' (exact, solve_ilp) or 'alpha_expansion' (metric/Potts terms)")
    if not mrf.is_pairwise:
        raise TabularModelError("graph cut needs a pairwise model, but it has higher-order factors",
                                hint="use method 'ilp' (exact, solve_ilp) or 'bp' (solve_max_product_bp)")
    if not mrf.is_submodular():
        raise TabularModelError(f"graph cut needs submodular edges: {_submodularity_report(mrf)}",
                                hint="use method 'ilp' (exact, solve_ilp) or 'bp' (approximate)")
    n = mrf.num_variables
    if mrf.max_labels < 2:
        labels = np.zeros(n, dtype=np.int64)
        energy = float(mrf.energy(labels))
        return MapResult(labels, energy, "graphcut", {"cut_value": energy, "feasible": bool(np.isfinite(energy)),
                                                      "proven": True})
    unary, pairwise, _ = _surrogate_tables(mrf)
    labels, cut_value = _binary_min_cut(unary[:, 0], unary[:, 1], mrf.edges[:, 0], mrf.edges[:, 1],
                                        pairwise[:, :2, :2])
    energy = float(mrf.energy(labels))
    return MapResult(labels, energy, "graphcut",
                     {"cut_value": cut_value + mrf.constant, "feasible": bool(np.isfinite(energy)),
                      "proven": True})
