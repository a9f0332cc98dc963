"""Max-product BP, ICM, block Gibbs / annealing, and the method chooser."""
from __future__ import annotations

import numpy as np
import pytest
from discrete_mrf_factories import (
    random_general,
    random_submodular,
    random_tree_edges,
    with_higher,
)

from ebmlang.inference.discrete_map import (
    choose_map_method,
    enumerate_distribution,
    exact_marginals,
    run_block_gibbs,
    solve_annealed_gibbs,
    solve_enumeration,
    solve_icm,
    solve_map,
    solve_max_product_bp,
)
from ebmlang.inference.tabular import HigherFactor, TabularModelError, TabularMRF, grid_edges


def random_tree(seed: int, n: int = 9, k: int = 3) -> TabularMRF:
    rng = np.random.default_rng(seed)
    edges = random_tree_edges(rng, n)
    return TabularMRF(np.full(n, k), rng.normal(size=(n, k)), edges, rng.normal(size=(len(edges), k, k)))


@pytest.mark.parametrize("seed", range(8))
def test_bp_is_exact_on_trees(seed):
    mrf = random_tree(seed)
    result = solve_max_product_bp(mrf, iters=200, damping=0.3, polish=False)
    assert result.info["converged"]
    optimum = solve_enumeration(mrf)
    assert result.energy == pytest.approx(optimum.energy, abs=1e-9)
    np.testing.assert_array_equal(result.labels, optimum.labels)


def test_bp_is_exact_on_a_tree_shaped_factor_graph_with_a_triple_factor():
    # Variables 0,1,2 share a 3-factor; 3 hangs off 0, 4 off 2, 5 off 4: no loops.
    for seed in range(5):
        rng = np.random.default_rng(seed)
        edges = np.array([[0, 3], [4, 2], [4, 5]])
        chain = TabularMRF(np.full(6, 3), rng.normal(size=(6, 3)), edges, rng.normal(size=(3, 3, 3)))
        mrf = with_higher(chain, rng, [[0, 1, 2]])
        result = solve_max_product_bp(mrf, iters=200, damping=0.0, polish=False)
        assert result.info["converged"]
        assert result.energy == pytest.approx(solve_enumeration(mrf).energy, abs=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_bp_and_icm_are_never_worse_than_the_init(seed):
    rng = np.random.default_rng(seed)
    mrf = with_higher(random_general(rng, 10, 3, density=0.5), rng, [[0, 1, 2], [3, 4, 5]])
    init = rng.integers(0, 3, 10)
    start = mrf.energy(init)
    icm = solve_icm(mrf, init=init)
    assert icm.energy <= start + 1e-12 and icm.info["initial_energy"] == pytest.approx(start)
    bp = solve_max_product_bp(mrf, iters=30, init=init)
    assert bp.energy <= start + 1e-12
    # Both polish with ICM, so the result is a local minimum: no single change improves it.
    for result in (icm, bp):
        labels = np.repeat(result.labels[None], 10 * 3, axis=0)
        labels[np.arange(30), np.repeat(np.arange(10), 3)] = np.tile(np.arange(3), 10)
        assert mrf.energy(labels).min() >= result.energy - 1e-12


def test_icm_lowers_the_energy_every_sweep():
    rng = np.random.default_rng(21)
    mrf = random_general(rng, 40, 4, density=0.15)
    init = rng.integers(0, 4, 40)
    energies = [solve_icm(mrf, init=init, sweeps=s).energy for s in range(0, 6)]
    assert np.all(np.diff(energies) <= 1e-12)
    assert energies[-1] < energies[0]


def test_icm_takes_a_given_colouring_and_checks_it():
    mrf = TabularMRF.from_dense_potts(np.random.default_rng(0).random((16, 2)), grid_edges((4, 4)), 0.3)
    checkerboard = (np.add.outer(np.arange(4), np.arange(4)) % 2).reshape(-1)
    result = solve_icm(mrf, colouring=checkerboard)
    assert result.info["colours"] == 2
    with pytest.raises(TabularModelError, match="same colour"):
        solve_icm(mrf, colouring=np.arange(16) % 2)  # vertical neighbours clash


def test_block_gibbs_samples_the_boltzmann_distribution():
    rng = np.random.default_rng(5)
    base = random_general(rng, 6, 3, density=0.6, num_labels=[3, 2, 3, 3, 2, 3])
    mrf = with_higher(base, rng, [[0, 2, 3]])
    chains = 4000
    run = run_block_gibbs(mrf, np.full(60, 1.0), seed=1, num_chains=chains)
    exact = exact_marginals(mrf)
    empirical = np.zeros_like(exact)
    for k in range(mrf.max_labels):
        empirical[:, k] = (run.final == k).mean(axis=0)
    # 4000 independent chains after 60 sweeps (mixing on 6 variables is fast): each
    # marginal's standard error is <= sqrt(0.25 / 4000) = 0.0079; 0.035 is ~4.4 sigma.
    np.testing.assert_allclose(empirical, exact, atol=0.035)
    # Joint check: total variation between empirical and exact over all 324 labellings.
    labels, probs = enumerate_distribution(mrf)
    codes = np.ravel_multi_index(run.final.T, mrf.num_labels)
    counts = np.bincount(codes, minlength=int(np.prod(mrf.num_labels))) / chains
    exact_joint = np.zeros_like(counts)
    exact_joint[np.ravel_multi_index(labels.T, mrf.num_labels)] = probs
    # With S = 324 cells and N = 4000 samples the expected TV of a perfect sampler is about
    # sum_s sqrt(p_s / (2 pi N)) <= sqrt(S / (2 pi N)) = 0.11; a wrong sampler (e.g. one
    # ignoring the 3-factor) is far beyond 0.15.
    assert 0.5 * np.abs(counts - exact_joint).sum() < 0.15
    # Forbidden labels of 2-label variables are never drawn.
    assert run.final[:, [1, 4]].max() <= 1


def test_block_gibbs_checks_its_init():
    mrf = random_general(np.random.default_rng(0), 4, 3)
    with pytest.raises(TabularModelError, match="3 labellings for 2 chains"):
        run_block_gibbs(mrf, [1.0], num_chains=2, init=np.zeros((3, 4), dtype=int))
    with pytest.raises(TabularModelError, match="outside its domain"):
        run_block_gibbs(mrf, [1.0], init=np.full(4, 3))
    with pytest.raises(TabularModelError, match="positive"):
        run_block_gibbs(mrf, [1.0, 0.0])


def test_block_gibbs_detects_a_wrong_model():
    # The same statistic separates distributions: samples of a different model fail it.
    rng = np.random.default_rng(5)
    mrf = random_general(rng, 5, 2, density=0.8)
    other = TabularMRF(mrf.num_labels, mrf.unary, mrf.edges, -np.asarray(mrf.pairwise))
    run = run_block_gibbs(other, np.full(60, 1.0), seed=2, num_chains=4000)
    empirical = np.stack([(run.final == k).mean(axis=0) for k in range(2)], axis=1)
    assert np.abs(empirical - exact_marginals(mrf)).max() > 0.05


@pytest.mark.parametrize("seed", range(5))
def test_annealing_finds_the_minimum_of_small_models(seed):
    rng = np.random.default_rng(seed)
    mrf = with_higher(random_general(rng, 10, 3, density=0.4), rng, [[1, 4, 7]])
    result = solve_annealed_gibbs(mrf, seed=seed, sweeps=150, num_chains=4)
    assert result.energy == pytest.approx(solve_enumeration(mrf).energy, abs=1e-9)
    assert result.energy <= result.info["sampled_energy"] + 1e-12


def constrained_model(seed: int) -> TabularMRF:
    """Loopy 3-label model with forbidden labels and forbidden label pairs."""
    rng = np.random.default_rng(seed)
    mrf = random_general(rng, 10, 3, density=0.35)
    unary = np.array(mrf.unary)
    unary[rng.random(unary.shape) < 0.25] = np.inf
    unary[np.isinf(unary).all(axis=1), 1] = 0.0
    pairwise = np.array(mrf.pairwise)
    pairwise[rng.random(pairwise.shape) < 0.15] = np.inf
    return TabularMRF(mrf.num_labels, unary, mrf.edges, pairwise)


@pytest.mark.parametrize("seed", range(6))
def test_approximate_solvers_respect_hard_constraints(seed):
    mrf = constrained_model(seed)
    optimum = solve_enumeration(mrf)
    assert optimum.info["feasible"]
    for result in (solve_max_product_bp(mrf), solve_annealed_gibbs(mrf, seed=seed, num_chains=4),
                   solve_icm(mrf, init=optimum.labels)):
        assert np.isfinite(result.energy), result.method
        assert result.info["feasible"]
        assert np.isfinite(mrf.unary[np.arange(10), result.labels]).all()
        assert result.energy >= optimum.energy - 1e-9
    # ICM from the unary minimum may stall on a violated pair, but never picks a forbidden label.
    icm = solve_icm(mrf)
    assert np.isfinite(mrf.unary[np.arange(10), icm.labels]).all()


def test_choose_map_method_routes_by_structure():
    rng = np.random.default_rng(0)
    small = random_general(rng, 5, 3, density=1.0)   # every pair joined: loopy
    assert choose_map_method(small)[0] == "enumeration"
    assert "243 joint labellings" in choose_map_method(small)[1]
    chain = TabularMRF(np.full(40, 3), rng.normal(size=(40, 3)), np.stack([np.arange(39), np.arange(1, 40)], 1),
                       rng.normal(size=(39, 3, 3)))
    method, reason = choose_map_method(chain)
    assert method == "bp" and "a chain (40 variables, 39 edges, no cycle)" in reason and "exact" in reason

    grid = grid_edges((12, 12))
    submodular = TabularMRF.from_dense_potts(rng.random((144, 2)), grid, 0.5)
    method, reason = choose_map_method(submodular)
    assert method == "graphcut"
    assert reason == (f"binary, pairwise and submodular (checked on all {len(grid)} edge tables) "
                      "-> exact minimum by graph cut")

    # Small enough for the integer program (a proven minimum) ...
    frustrated = TabularMRF.from_dense_potts(rng.random((144, 2)), grid, -0.5)
    method, reason = choose_map_method(frustrated)
    assert method == "ilp" and "proven minimum" in reason
    # ... while a large frustrated model keeps loopy BP.
    big_grid = grid_edges((40, 40))
    frustrated = TabularMRF.from_dense_potts(rng.random((1600, 2)), big_grid, -0.5)
    method, reason = choose_map_method(frustrated)
    assert method == "bp" and f"{len(big_grid)} of {len(big_grid)} edge tables violate" in reason

    potts = TabularMRF.from_dense_potts(rng.random((1600, 4)), big_grid, 0.5)
    method, reason = choose_map_method(potts)
    assert method == "alpha_expansion" and "Potts" in reason and "factor 2" in reason

    general = random_general(rng, 144, 3, density=0.1)
    assert choose_map_method(general)[0] == "bp"

    higher = TabularMRF(np.full(3000, 2), rng.random((3000, 2)),
                        higher=(HigherFactor(rng.permutation(3000)[:2400].reshape(800, 3), rng.random((800, 8))),
                                HigherFactor(np.arange(3000).reshape(1000, 3), rng.random((1000, 8)))))
    method, reason = choose_map_method(higher)
    assert method == "bp" and "1800 factors join 3 or more variables" in reason
    # Hard constraints go to the integer program whatever the size.
    constrained = TabularMRF.from_dense_potts(rng.random((1600, 4)), big_grid, np.inf)
    assert choose_map_method(constrained)[0] == "ilp"
    # The threshold is the caller's: the same small model is not enumerated under a tiny limit.
    assert choose_map_method(random_submodular(rng, 8), max_enumeration=16)[0] == "graphcut"


def test_solve_map_runs_the_chosen_method_and_says_why():
    rng = np.random.default_rng(1)
    mrf = TabularMRF.from_dense_potts(rng.random((100, 2)), grid_edges((10, 10)), 0.4)
    result = solve_map(mrf)
    assert result.method == "graphcut" and "submodular" in result.info["reason"]
    assert solve_map(mrf, method="icm").energy >= result.energy - 1e-12
    with pytest.raises(TabularModelError, match="unknown discrete MAP method"):
        solve_map(mrf, method="magic")


def test_bp_handles_parallel_edges_and_unequal_label_counts():
    rng = np.random.default_rng(8)
    edges = np.array([[0, 1], [1, 0], [1, 2], [2, 3], [3, 0]])
    mrf = TabularMRF(np.array([2, 3, 4, 3]), rng.normal(size=(4, 4)), edges, rng.normal(size=(5, 4, 4)))
    result = solve_max_product_bp(mrf)
    assert (result.labels < mrf.num_labels).all()
    assert result.energy >= solve_enumeration(mrf).energy - 1e-12
    merged = mrf.merge_parallel_edges()
    assert solve_max_product_bp(merged).energy == pytest.approx(solve_enumeration(merged).energy, abs=1e-9)
