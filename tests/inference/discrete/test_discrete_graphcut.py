"""Graph cut (exact) and alpha-expansion (bounded) against enumeration."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from discrete_mrf_factories import brute_energy, random_edges, random_general, random_potts, random_submodular

from ebmlang.inference.discrete_map import expansion_move, solve_alpha_expansion, solve_enumeration, solve_graphcut
from ebmlang.inference.tabular import TabularModelError, TabularMRF


@pytest.mark.parametrize("seed", range(25))
def test_graph_cut_equals_the_enumeration_minimum(seed):
    rng = np.random.default_rng(seed)
    mrf = random_submodular(rng, int(rng.integers(4, 13)), density=float(rng.uniform(0.2, 0.7)))
    assert mrf.is_submodular()
    exact = solve_enumeration(mrf)
    cut = solve_graphcut(mrf)
    # Same minimum up to float rounding in the flow (sums of ~50 terms of size ~1).
    assert cut.energy == pytest.approx(exact.energy, abs=1e-9)
    np.testing.assert_array_equal(cut.labels, exact.labels)
    # The cut value is the energy: the construction is an exact reparametrisation.
    assert cut.info["cut_value"] == pytest.approx(cut.energy, abs=1e-9)


def test_graph_cut_respects_hard_constraints():
    rng = np.random.default_rng(100)
    for _ in range(10):
        mrf = random_submodular(rng, 10, density=0.4)
        pairwise = np.array(mrf.pairwise)
        unary = np.array(mrf.unary)
        # Implications x_a = 0 -> x_b = 0 (E(0,1) = inf, submodular) and a forbidden label.
        pairwise[rng.random(mrf.num_edges) < 0.3, 0, 1] = np.inf
        unary[rng.integers(10), 1] = np.inf
        constrained = TabularMRF(mrf.num_labels, unary, mrf.edges, pairwise, constant=mrf.constant)
        assert constrained.is_submodular()
        exact = solve_enumeration(constrained)
        cut = solve_graphcut(constrained)
        assert np.isfinite(exact.energy)
        assert cut.energy == pytest.approx(exact.energy, abs=1e-9)
        assert cut.info["feasible"]


def test_graph_cut_refuses_what_it_cannot_solve():
    rng = np.random.default_rng(7)
    mrf = random_submodular(rng, 6)
    frustrated = np.array(mrf.pairwise)
    frustrated[0] = [[0.0, -1.0], [-1.0, 0.0]]
    with pytest.raises(TabularModelError, match="1 of .* edge tables violate") as caught:
        solve_graphcut(TabularMRF(mrf.num_labels, mrf.unary, mrf.edges, frustrated))
    assert "'ilp'" in caught.value.hint
    with pytest.raises(TabularModelError, match="binary"):
        solve_graphcut(random_potts(rng, 5, 3))


def pairwise_part(mrf: TabularMRF, labels) -> float:
    return float(mrf.pairwise[np.arange(mrf.num_edges), labels[mrf.edges[:, 0]], labels[mrf.edges[:, 1]]].sum())


def test_alpha_expansion_is_within_the_potts_bound_and_usually_exact():
    exact_count = 0
    seeds = range(20)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        mrf = random_potts(rng, 8, 3, density=0.5)
        optimum = solve_enumeration(mrf)
        result = solve_alpha_expansion(mrf)
        # Boykov-Veksler-Zabih: E(x) <= E_unary(x*) + 2 E_pairwise(x*) for Potts, nonnegative terms.
        unary_part = optimum.energy - pairwise_part(mrf, optimum.labels)
        assert result.energy <= unary_part + 2 * pairwise_part(mrf, optimum.labels) + 1e-9
        assert result.energy <= 2 * optimum.energy + 1e-9
        assert result.energy >= optimum.energy - 1e-9
        trace = np.array(result.info["energy_trace"])
        assert np.all(np.diff(trace) < 0)  # only improving moves are kept
        assert trace[-1] == pytest.approx(result.energy)
        exact_count += bool(np.isclose(result.energy, optimum.energy, atol=1e-9))
    # Expansion is strong on small Potts models; 20/20 exact was observed, allow a few misses.
    assert exact_count >= 16


@pytest.mark.parametrize("seed", range(6))
def test_each_expansion_move_is_the_best_in_its_neighbourhood(seed):
    rng = np.random.default_rng(seed)
    labels = np.arange(4)
    distance = np.minimum(np.abs(labels[:, None] - labels[None, :]), 2).astype(float)
    edges = random_edges(rng, 8, 0.5)
    weights = rng.uniform(0.2, 1.5, len(edges))
    # Per-edge offsets give V(c, c) != 0 (and negative entries); every move stays submodular.
    mrf = TabularMRF(np.full(8, 4), rng.uniform(0, 3, (8, 4)), edges,
                     weights[:, None, None] * distance + rng.normal(size=(len(edges), 1, 1)))
    assert mrf.is_expansion_submodular()
    current = rng.integers(0, 4, 8)
    for alpha in range(4):
        moved = expansion_move(mrf, current, alpha)
        assert np.all((moved == current) | (moved == alpha))
        free = np.flatnonzero(current != alpha)
        candidates = np.repeat(current[None], 2 ** free.size, axis=0)
        for row, subset in enumerate(itertools.product([False, True], repeat=free.size)):
            candidates[row, free[list(subset)]] = alpha
        assert mrf.energy(moved) == pytest.approx(mrf.energy(candidates).min(), abs=1e-9)


def test_alpha_expansion_is_exact_on_a_hand_checked_case():
    # Chain 0-1-2 with Potts weight 1. Labels 0/1/2 preferred by unaries, but the middle
    # variable's weak preference for 2 loses to agreeing with both neighbours on 0:
    # x = (0, 0, 0) costs 0 + 1 + 0.5 = 1.5; (0, 2, 0) costs 0 + 0 + 0.5 + 2 = 2.5;
    # (0, 0, 1) costs 0 + 1 + 0 + 1 = 2.0.
    unary = np.array([[0.0, 3.0, 3.0], [1.0, 1.0, 0.0], [0.5, 0.0, 3.0]])
    mrf = TabularMRF.from_dense_potts(unary, np.array([[0, 1], [1, 2]]), 1.0)
    result = solve_alpha_expansion(mrf)
    np.testing.assert_array_equal(result.labels, [0, 0, 0])
    assert result.energy == pytest.approx(1.5)
    assert solve_enumeration(mrf).energy == pytest.approx(1.5)


def test_alpha_expansion_on_metric_terms_stays_within_2c():
    labels = np.arange(4)
    distance = np.minimum(np.abs(labels[:, None] - labels[None, :]), 2).astype(float)  # truncated linear
    for seed in range(10):
        rng = np.random.default_rng(seed)
        edges = random_edges(rng, 8, 0.5)
        weights = rng.uniform(0.2, 1.0, len(edges))
        mrf = TabularMRF(np.full(8, 4), rng.uniform(0, 3, (8, 4)), edges, weights[:, None, None] * distance)
        assert mrf.is_expansion_submodular() and not mrf.is_potts_metric()
        optimum = solve_enumeration(mrf)
        result = solve_alpha_expansion(mrf)
        # For a metric, c = max V / min nonzero V = 2 here: E <= 2c E(x*).
        assert optimum.energy - 1e-9 <= result.energy <= 4 * optimum.energy + 1e-9
        assert np.all(np.diff(result.info["energy_trace"]) < 0)


def test_alpha_expansion_respects_hard_constraints():
    for seed in range(10):
        rng = np.random.default_rng(seed)
        mrf = random_potts(rng, 9, 3, density=0.4)
        weights = mrf.pairwise[:, 0, 1].copy()
        weights[rng.random(len(weights)) < 0.3] = np.inf  # hard equalities
        unary = np.array(mrf.unary)
        unary[rng.random(unary.shape) < 0.2] = np.inf     # forbidden labels
        unary[np.isinf(unary).all(axis=1), 0] = 0.0
        hard = TabularMRF.from_dense_potts(unary, mrf.edges, weights)
        optimum = solve_enumeration(hard)
        result = solve_alpha_expansion(hard)
        assert np.isfinite(optimum.energy) == result.info["feasible"]
        if np.isfinite(optimum.energy):
            assert np.isfinite(unary[np.arange(9), result.labels]).all()
            assert result.energy >= optimum.energy - 1e-9


def test_alpha_expansion_refuses_non_metric_terms():
    rng = np.random.default_rng(3)
    with pytest.raises(TabularModelError, match="metric"):
        solve_alpha_expansion(random_general(rng, 5, 3, density=0.8))


def test_graph_cut_energy_is_the_brute_force_energy_of_its_labels():
    rng = np.random.default_rng(9)
    mrf = random_submodular(rng, 9)
    result = solve_graphcut(mrf)
    assert result.energy == pytest.approx(brute_energy(mrf, result.labels), abs=1e-12)
