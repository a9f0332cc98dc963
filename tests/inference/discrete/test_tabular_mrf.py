"""TabularMRF: energies, rewriting, structural checks, colourings, local tables."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from discrete_mrf_factories import brute_energy, random_general, with_higher

from ebmlang.errors import EbmError
from ebmlang.inference.tabular import (
    HigherFactor,
    LocalEnergies,
    TabularModelError,
    TabularMRF,
    check_colouring,
    colour_variables,
    grid_edges,
)


def mixed_model(seed: int = 0) -> TabularMRF:
    """Mixed label counts (2, 3, 4) plus two 3-variable factors."""
    rng = np.random.default_rng(seed)
    num_labels = np.array([2, 3, 4, 3, 2, 4, 3])
    base = random_general(rng, 7, 4, density=0.5, num_labels=num_labels)
    return with_higher(base, rng, [[0, 2, 5], [1, 3, 6]])


def all_domain_labellings(mrf: TabularMRF) -> np.ndarray:
    return np.array(list(itertools.product(*[range(int(k)) for k in mrf.num_labels])))


def test_energy_matches_a_loop_over_factors():
    mrf = mixed_model()
    labels = all_domain_labellings(mrf)
    expected = np.array([brute_energy(mrf, x) for x in labels])
    np.testing.assert_allclose(mrf.energy(labels), expected, rtol=0, atol=1e-12)
    # A single labelling [n] gives a scalar.
    assert mrf.energy(labels[3]).shape == ()


def test_labels_beyond_a_domain_cost_infinity_and_padding_entries_are_ignored():
    rng = np.random.default_rng(1)
    pairwise = rng.normal(size=(1, 3, 3))
    mrf = TabularMRF(np.array([2, 3]), np.zeros((2, 3)), np.array([[0, 1]]), pairwise)
    assert np.isinf(mrf.unary[0, 2]) and np.isfinite(mrf.unary[1, 2])
    assert np.isinf(mrf.energy(np.array([2, 0])))
    # Canonicalising the padding row must not change any in-domain energy.
    for a, b in itertools.product(range(2), range(3)):
        assert mrf.energy(np.array([a, b])) == pytest.approx(pairwise[0, a, b], abs=1e-15)
    np.testing.assert_array_equal(mrf.pairwise[0, 2], mrf.pairwise[0, 0])


def test_merge_parallel_edges_keeps_every_energy():
    rng = np.random.default_rng(2)
    edges = np.array([[0, 1], [1, 0], [2, 1], [0, 1], [1, 2]])
    mrf = TabularMRF(np.full(3, 3), rng.normal(size=(3, 3)), edges, rng.normal(size=(5, 3, 3)))
    merged = mrf.merge_parallel_edges()
    assert merged.num_edges == 2
    assert sorted(map(tuple, merged.edges.tolist())) == [(0, 1), (1, 2)]
    labels = all_domain_labellings(mrf)
    np.testing.assert_allclose(merged.energy(labels), mrf.energy(labels), atol=1e-12)


def test_submodularity_per_edge_including_infinite_entries():
    tables = np.array([
        [[0.0, 1.0], [1.0, 0.0]],        # Potts-like: submodular
        [[0.0, -1.0], [-1.0, 0.0]],      # anti-ferromagnetic: not
        [[0.0, np.inf], [0.0, 0.0]],     # x=0 implies y=0: submodular
        [[np.inf, 0.0], [0.0, 0.0]],     # forbids (0,0): not
        [[np.inf, np.inf], [3.0, 1.0]],  # forbids x=0; finite parts compare 1 <= 3: submodular
    ])
    n = len(tables) + 1
    edges = np.stack([np.zeros(len(tables), int), np.arange(1, n)], axis=1)
    mrf = TabularMRF(np.full(n, 2), np.zeros((n, 2)), edges, tables)
    np.testing.assert_array_equal(mrf.submodular_edges(), [True, False, True, False, True])
    assert not mrf.is_submodular()
    keep = TabularMRF(np.full(n, 2), np.zeros((n, 2)), edges[[0, 2, 4]], tables[[0, 2, 4]])
    assert keep.is_submodular()


def test_potts_and_metric_checks():
    rng = np.random.default_rng(3)
    edges = np.array([[0, 1], [1, 2], [2, 0]])
    potts = TabularMRF.from_dense_potts(rng.normal(size=(3, 4)), edges, [0.5, 0.0, np.inf])
    assert potts.is_potts_metric() and potts.is_expansion_submodular()
    labels = np.arange(4)
    distance = np.abs(labels[:, None] - labels[None, :])
    linear = TabularMRF(np.full(3, 4), np.zeros((3, 4)), edges, np.broadcast_to(np.minimum(distance, 2), (3, 4, 4)))
    assert not linear.is_potts_metric()
    assert linear.is_expansion_submodular()  # truncated linear is a metric
    quadratic = TabularMRF(np.full(3, 4), np.zeros((3, 4)), edges,
                           np.broadcast_to(np.minimum(distance ** 2, 5.0), (3, 4, 4)))
    # V(0,2) = 4 > V(0,1) + V(1,2) = 2: the triangle inequality fails.
    np.testing.assert_array_equal(quadratic.expansion_submodular_edges(), [False] * 3)
    negative = TabularMRF.from_dense_potts(np.zeros((3, 4)), edges, [-0.5, 1.0, 1.0])
    np.testing.assert_array_equal(negative.potts_edges(), [False, True, True])
    bumped = np.array(potts.pairwise)
    bumped[1, 2, 3] += 0.1
    assert not TabularMRF(potts.num_labels, potts.unary, edges, bumped).is_potts_metric()


def test_potts_check_respects_unequal_label_counts():
    # 2 x 3 block of a Potts table; the unused padding must not break the check.
    table = np.full((1, 3, 3), 7.0)
    table[0, :2, :] = [[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]]
    mrf = TabularMRF(np.array([2, 3]), np.zeros((2, 3)), np.array([[0, 1]]), table)
    assert mrf.is_potts_metric()


TWO_BINARY = dict(num_labels=np.array([2, 2]), unary=np.zeros((2, 2)))


@pytest.mark.parametrize("fields, fragment", [
    ({**TWO_BINARY, "unary": np.array([[0.0, np.nan], [0.0, 0.0]])}, "NaN"),
    ({**TWO_BINARY, "unary": np.array([[0.0, -np.inf], [0.0, 0.0]])}, "-inf"),
    ({**TWO_BINARY, "num_labels": np.array([2, 3])}, "columns"),
    ({**TWO_BINARY, "num_labels": np.array([2, 0])}, "at least one label"),
    ({**TWO_BINARY, "edges": np.array([[0, 0]]), "pairwise": np.zeros((1, 2, 2))}, "itself"),
    ({**TWO_BINARY, "edges": np.array([[0, 5]]), "pairwise": np.zeros((1, 2, 2))}, "outside"),
    ({**TWO_BINARY, "edges": np.array([[0, 1]]), "pairwise": np.zeros((2, 2, 2))}, "pairwise must have shape"),
])
def test_malformed_models_raise_ebm_errors(fields, fragment):
    with pytest.raises(TabularModelError, match=fragment) as caught:
        TabularMRF(**fields)
    assert isinstance(caught.value, EbmError) and isinstance(caught.value, ValueError)


def test_higher_factor_validation():
    with pytest.raises(TabularModelError, match="R\\*\\*3"):
        HigherFactor(np.array([[0, 1, 2]]), np.zeros((1, 10)))
    with pytest.raises(TabularModelError, match="twice"):
        HigherFactor(np.array([[0, 1, 1]]), np.zeros((1, 8)))
    with pytest.raises(TabularModelError, match="radix"):
        TabularMRF(np.full(3, 3), np.zeros((3, 3)), higher=(HigherFactor(np.array([[0, 1, 2]]), np.zeros((1, 8))),))
    # A [f, R, R, R] table is flattened in row-major order.
    cube = np.arange(27.0).reshape(1, 3, 3, 3)
    factor = HigherFactor(np.array([[0, 1, 2]]), cube)
    assert factor.radix == 3 and factor.energies(np.array([[2, 0, 1]]))[0, 0] == cube[0, 2, 0, 1]


def test_colouring_separates_every_interacting_pair():
    mrf = mixed_model(4)
    colouring = colour_variables(mrf.num_variables, mrf.interaction_pairs(), seed=0)
    pairs = mrf.interaction_pairs()
    assert (colouring[pairs[:, 0]] != colouring[pairs[:, 1]]).all()
    # The 3-variable factors make their variables pairwise adjacent.
    assert len({colouring[0], colouring[2], colouring[5]}) == 3
    grid = grid_edges((20, 30))
    grid_colours = colour_variables(600, grid, seed=1)
    assert (grid_colours[grid[:, 0]] != grid_colours[grid[:, 1]]).all()
    # Greedy colouring uses at most max degree + 1 colours (4-neighbour grid: 5).
    assert grid_colours.max() + 1 <= 5
    with pytest.raises(TabularModelError, match="same colour"):
        check_colouring(600, grid, np.zeros(600, dtype=int))


def test_local_tables_equal_energy_differences():
    mrf = mixed_model(5)
    local = LocalEnergies(mrf)
    rng = np.random.default_rng(5)
    labels = np.stack([rng.integers(0, mrf.num_labels) for _ in range(4)])  # 4 chains
    for colour, block in enumerate(local.classes):
        table = local.table(colour, labels)  # [C, c, K]
        for chain in range(labels.shape[0]):
            for row, variable in enumerate(block.members):
                for label in range(int(mrf.num_labels[variable])):
                    changed = labels[chain].copy()
                    changed[variable] = label
                    base = labels[chain].copy()
                    base[variable] = 0
                    # Factors away from the variable cancel in the difference.
                    expected = brute_energy(mrf, changed) - brute_energy(mrf, base)
                    assert table[chain, row, label] - table[chain, row, 0] == pytest.approx(expected, abs=1e-10)


def test_clamp_forbids_every_other_label():
    mrf = mixed_model(6)
    clamped = mrf.clamp([1, 5], [2, 3])
    assert np.isfinite(clamped.unary[1, 2]) and np.isinf(clamped.unary[1, [0, 1]]).all()
    assert np.isinf(clamped.unary[5, :3]).all()
    labels = all_domain_labellings(mrf)
    keep = (labels[:, 1] == 2) & (labels[:, 5] == 3)
    np.testing.assert_allclose(clamped.energy(labels[keep]), mrf.energy(labels[keep]))
    assert np.isinf(clamped.energy(labels[~keep])).all()
    with pytest.raises(TabularModelError, match="outside its domain"):
        mrf.clamp([0], [2])


def test_expansion_check_matches_a_loop_over_label_triples():
    verdicts = []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        k = int(rng.integers(2, 5))
        edges = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 0]])
        labels = np.arange(k)
        metric = np.minimum(np.abs(labels[:, None] - labels[None, :]), rng.integers(1, k + 1)).astype(float)
        # Metric tables plus sparse small perturbations: some edges stay metric, some break
        # the condition by a little (the check must not need a large violation).
        noise = (rng.random((6, k, k)) < 0.3) * rng.normal(0.0, 0.1, (6, k, k))
        tables = rng.uniform(0.5, 1.5, (6, 1, 1)) * metric + rng.normal(size=(6, 1, 1)) + noise
        mrf = TabularMRF(rng.integers(1, k + 1, 6), np.zeros((6, k)), edges, tables)
        expected = []
        for e, (i, j) in enumerate(edges):
            ki, kj = mrf.num_labels[i], mrf.num_labels[j]
            expected.append(all(
                tables[e, c, c] + tables[e, a, b] <= tables[e, a, c] + tables[e, c, b] + 1e-9
                for c in range(min(ki, kj)) for a in range(ki) for b in range(kj)))
        np.testing.assert_array_equal(mrf.expansion_submodular_edges(), expected)
        verdicts += expected
    assert 0.2 < np.mean(verdicts) < 0.95  # the family really mixes both answers


def test_a_barely_non_metric_table_is_rejected():
    table = np.array([[0.0, 1.0, 2.01], [1.0, 0.0, 1.0], [2.01, 1.0, 0.0]])  # V(0,2) > V(0,1) + V(1,2)
    mrf = TabularMRF(np.full(2, 3), np.zeros((2, 3)), np.array([[0, 1]]), table[None])
    assert not mrf.is_expansion_submodular()
    assert TabularMRF(np.full(2, 3), np.zeros((2, 3)), np.array([[0, 1]]),
                      np.minimum(table, 2.0)[None]).is_expansion_submodular()
