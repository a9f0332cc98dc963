"""Exact discrete MAP that can be relied on: merged parallel factors, exact max-product on
forests, the integer program, and "infeasible" only with a proof.

Every expected answer comes from code written here (Viterbi, column dynamic programming
on thin grids, brute force from the factories), never from the solvers under test.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from discrete_mrf_factories import brute_energy, brute_min, random_tree_edges

from ebmlang.inference.discrete_map import (
    choose_map_method,
    solve_ilp,
    solve_map,
    solve_max_product_bp,
    solve_tree,
)
from ebmlang.inference.tabular import HigherFactor, TabularMRF, grid_edges


def viterbi(unary: np.ndarray, transitions: np.ndarray) -> float:
    """Minimum of sum_i unary[i, x_i] + sum_i transitions[i, x_i, x_{i+1}], by a plain loop."""
    cost = unary[0].copy()
    for i in range(1, unary.shape[0]):
        cost = np.min(cost[:, None] + transitions[i - 1], axis=0) + unary[i]
    return float(cost.min())


def split_into_pieces(rng, tables: np.ndarray, pieces: int) -> np.ndarray:
    """`pieces` random tables per edge that sum to `tables`."""
    parts = rng.normal(size=(pieces - 1,) + tables.shape) * 3.0
    return np.concatenate([parts, (tables - parts.sum(axis=0))[None]])


def chain_written_in_pieces(rng, n: int, k: int, pieces: int):
    """A chain whose every edge is `pieces` tables in random orientation: (model, unary, transitions)."""
    unary = rng.normal(size=(n, k))
    transitions = rng.normal(size=(n - 1, k, k))
    edges, tables = [], []
    for part in split_into_pieces(rng, transitions, pieces):
        flip = rng.random(n - 1) < 0.5
        pairs = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1)
        pairs[flip] = pairs[flip][:, ::-1]
        edges.append(pairs)
        tables.append(np.where(flip[:, None, None], part.transpose(0, 2, 1), part))
    order = rng.permutation(pieces * (n - 1))
    mrf = TabularMRF(np.full(n, k), unary, np.concatenate(edges)[order], np.concatenate(tables)[order])
    return mrf, unary, transitions


@pytest.mark.parametrize("seed", range(4))
def test_a_chain_written_as_several_terms_is_solved_exactly(seed):
    rng = np.random.default_rng(seed)
    mrf, unary, transitions = chain_written_in_pieces(rng, n=200, k=5, pieces=3)
    assert mrf.num_edges == 3 * 199
    method, reason = choose_map_method(mrf)
    assert method == "bp" and "a chain (200 variables, 199 edges, no cycle)" in reason
    result = solve_map(mrf)
    assert result.info["proven"] and result.info["exact"]
    assert result.energy == pytest.approx(viterbi(unary, transitions), abs=1e-8)
    # The merged model is the same energy function with one table per pair.
    merged = mrf.merge_parallel_factors()
    assert merged.num_edges == 199
    labels = rng.integers(0, 5, size=(50, 200))
    np.testing.assert_allclose(merged.energy(labels), mrf.energy(labels), atol=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_max_product_on_trees_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, k = 9, 3
    edges = random_tree_edges(rng, n)
    # Two tables per tree edge plus a forbidden pair: the forest is found after merging.
    pairwise = rng.normal(size=(len(edges), k, k))
    pairwise[0, 1, 2] = np.inf
    mrf = TabularMRF(np.full(n, k), rng.normal(size=(n, k)), np.concatenate([edges, edges[:, ::-1]]),
                     np.concatenate([pairwise, rng.normal(size=(len(edges), k, k))]))
    expected_labels, expected = brute_min(mrf)
    result = solve_max_product_bp(mrf)
    assert result.info["exact"] and result.energy == pytest.approx(expected, abs=1e-9)
    assert brute_energy(mrf, result.labels) == pytest.approx(expected, abs=1e-9)


def test_a_forest_of_trees_and_isolated_variables_is_solved_exactly():
    rng = np.random.default_rng(3)
    edges = np.array([[0, 1], [1, 2], [4, 5], [6, 5], [5, 7]])
    mrf = TabularMRF(np.array([2, 3, 2, 3, 2, 3, 2, 2]), rng.normal(size=(8, 3)), edges,
                     rng.normal(size=(5, 3, 3)))
    assert "a forest of 3 trees" in choose_map_method(mrf)[1]
    _, expected = brute_min(mrf)
    assert solve_tree(mrf).energy == pytest.approx(expected, abs=1e-9)


def test_an_infeasible_tree_is_proven_infeasible():
    forbid_equal = np.where(np.eye(2, dtype=bool), np.inf, 0.0)
    forbid_differ = np.where(np.eye(2, dtype=bool), 0.0, np.inf)
    # x0 != x1, x1 != x2 and x0 != x2 would be a cycle; a chain forced both ways is not.
    mrf = TabularMRF(np.full(3, 2), np.zeros((3, 2)), np.array([[0, 1], [1, 2], [0, 1]]),
                     np.stack([forbid_equal, forbid_equal, forbid_differ]))
    result = solve_max_product_bp(mrf)
    assert not result.info["feasible"] and result.info["proven"]


def submodular_written_as_two_non_submodular_pieces(rng, side: int):
    edges = grid_edges((side, side))
    m = len(edges)
    total = rng.normal(size=(m, 2, 2))
    excess = total[:, 0, 0] + total[:, 1, 1] - total[:, 0, 1] - total[:, 1, 0]
    total[:, 0, 1] += np.maximum(excess, 0.0) + rng.uniform(0.1, 1.0, m)
    piece = rng.normal(size=(m, 2, 2))
    piece[:, 0, 0] += 5.0   # each piece alone violates submodularity
    rest = total - piece
    return TabularMRF(np.full(side * side, 2), rng.normal(size=(side * side, 2)),
                      np.concatenate([edges, edges]), np.concatenate([piece, rest])), total, edges


def test_submodularity_is_judged_on_merged_edges():
    rng = np.random.default_rng(0)
    side = 5
    mrf, total, _ = submodular_written_as_two_non_submodular_pieces(rng, side)
    assert not mrf.is_submodular()          # piece by piece it is not ...
    method, _ = choose_map_method(mrf)
    assert method == "graphcut"             # ... merged it is, so the exact cut applies
    horizontal = total[:side * (side - 1)].reshape(side, side - 1, 2, 2)
    vertical = total[side * (side - 1):].reshape(side - 1, side, 2, 2)
    expected = column_dp_minimum(mrf.unary.reshape(side, side, 2), horizontal, vertical, 2)
    assert solve_map(mrf).energy == pytest.approx(expected, abs=1e-9)


def test_higher_factors_over_the_same_variables_are_merged():
    rng = np.random.default_rng(1)
    scopes = np.array([[0, 1, 2], [2, 0, 1], [1, 2, 3], [3, 2, 1]])
    factor = HigherFactor(scopes, rng.normal(size=(4, 27)))
    mrf = TabularMRF(np.full(4, 3), rng.normal(size=(4, 3)), higher=(factor,))
    merged = mrf.merge_parallel_factors()
    assert sum(f.num_factors for f in merged.higher) == 2
    labels = np.array(list(itertools.product(range(3), repeat=4)))
    np.testing.assert_allclose(merged.energy(labels), mrf.energy(labels), atol=1e-12)


def random_constrained(rng, n: int, k: int, density: float, forbid: float) -> TabularMRF:
    pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < density])
    tables = rng.normal(size=(len(pairs), k, k))
    tables[rng.random(tables.shape) < forbid] = np.inf
    unary = rng.normal(size=(n, k))
    unary[rng.random(unary.shape) < forbid / 2] = np.inf
    higher = HigherFactor(np.array([[0, 1, 2], [n - 1, n - 2, 1]]), np.where(
        rng.random((2, k ** 3)) < forbid, np.inf, rng.normal(size=(2, k ** 3))))
    return TabularMRF(np.full(n, k), unary, pairs, tables, (higher,), constant=rng.normal())


@pytest.mark.parametrize("seed", range(12))
def test_the_integer_program_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    mrf = random_constrained(rng, n=7, k=3, density=0.5, forbid=0.25 if seed % 3 else 0.55)
    labels, expected = brute_min(mrf)
    result = solve_ilp(mrf)
    assert result.info["proven"]
    if np.isfinite(expected):
        assert result.info["status"] == "optimal"
        assert result.energy == pytest.approx(expected, abs=1e-7)
        assert brute_energy(mrf, result.labels) == pytest.approx(expected, abs=1e-7)
    else:
        assert result.info["status"] == "infeasible" and not result.info["feasible"]


def column_dp_minimum(unary: np.ndarray, horizontal: np.ndarray, vertical: np.ndarray, k: int) -> float:
    """Exact minimum on a rows x cols grid by dynamic programming over whole columns.

    unary [rows, cols, k]; horizontal [rows, cols-1, k, k] joins (r, c)-(r, c+1);
    vertical [rows-1, cols, k, k] joins (r, c)-(r+1, c)."""
    rows, cols = unary.shape[:2]
    columns = np.array(list(itertools.product(range(k), repeat=rows)))       # [k^rows, rows]
    r = np.arange(rows)

    def inside(c):
        cost = unary[r[None, :], c, columns].sum(axis=1)
        if rows > 1:
            cost = cost + vertical[r[:-1][None, :], c, columns[:, :-1], columns[:, 1:]].sum(axis=1)
        return cost

    best = inside(0)
    for c in range(1, cols):
        link = horizontal[r[None, None, :], c - 1, columns[:, None, :], columns[None, :, :]].sum(axis=2)
        best = np.min(best[:, None] + link, axis=0) + inside(c)
    return float(best.min())


@pytest.mark.parametrize("seed", range(3))
def test_thin_grids_match_column_dynamic_programming(seed):
    rng = np.random.default_rng(seed)
    rows, cols, k = 3, 14, 3
    unary = rng.normal(size=(rows, cols, k))
    horizontal = rng.normal(size=(rows, cols - 1, k, k))
    vertical = rng.normal(size=(rows - 1, cols, k, k))
    ids = np.arange(rows * cols).reshape(rows, cols)
    edges = np.concatenate([np.stack([ids[:, :-1].ravel(), ids[:, 1:].ravel()], 1),
                            np.stack([ids[:-1].ravel(), ids[1:].ravel()], 1)])
    tables = np.concatenate([horizontal.reshape(-1, k, k), vertical.reshape(-1, k, k)])
    mrf = TabularMRF(np.full(rows * cols, k), unary.reshape(-1, k), edges, tables)
    expected = column_dp_minimum(unary, horizontal, vertical, k)
    method, reason = choose_map_method(mrf)   # 3^42 labellings, loopy, not metric: the program
    assert method == "ilp" and "proven minimum" in reason
    result = solve_map(mrf)
    assert result.info["proven"]
    assert result.energy == pytest.approx(expected, abs=1e-7)
    # Loopy BP is only a heuristic here: never below the proven minimum.
    assert solve_max_product_bp(mrf).energy >= expected - 1e-9


def test_pigeonhole_is_proven_infeasible_by_the_integer_program():
    n, k = 12, 11      # 11^12 labellings: too many to enumerate
    differ = np.where(np.eye(k, dtype=bool), np.inf, 0.0)
    pairs = np.array(list(itertools.combinations(range(n), 2)))
    mrf = TabularMRF(np.full(n, k), np.zeros((n, k)), pairs, np.broadcast_to(differ, (len(pairs), k, k)))
    method, _ = choose_map_method(mrf)
    assert method == "ilp"
    result = solve_map(mrf)
    assert result.info["status"] == "infeasible" and result.info["proven"]
