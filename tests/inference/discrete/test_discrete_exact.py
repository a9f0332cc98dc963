"""Enumeration and exact queries against a brute-force oracle (itertools + Python loops)."""
from __future__ import annotations

import numpy as np
import pytest
from discrete_mrf_factories import brute_all, brute_boltzmann, brute_min, random_general, with_higher

from ebmlang.errors import EbmError
from ebmlang.inference.discrete_map import (
    EnumerationTooLargeError,
    count_states,
    enumerate_distribution,
    exact_marginals,
    log_partition,
    solve_enumeration,
    top_k,
)
from ebmlang.inference.tabular import TabularMRF


def model(seed: int) -> TabularMRF:
    rng = np.random.default_rng(seed)
    base = random_general(rng, 6, 3, density=0.5, num_labels=[3, 2, 3, 3, 2, 3])
    return with_higher(base, rng, [[0, 2, 3]])


@pytest.mark.parametrize("seed", range(5))
def test_enumeration_finds_the_brute_force_minimum(seed):
    mrf = model(seed)
    labels, energy = brute_min(mrf)
    result = solve_enumeration(mrf)
    assert result.energy == pytest.approx(energy, abs=1e-12)
    assert tuple(result.labels) == labels  # continuous random tables: the minimum is unique
    assert result.info["num_states"] == 3 ** 4 * 2 ** 2


@pytest.mark.parametrize("beta", [1.0, 0.4])
def test_distribution_sums_to_one_and_is_boltzmann(beta):
    mrf = model(10)
    labels, probs = enumerate_distribution(mrf, beta=beta)
    assert probs.sum() == pytest.approx(1.0, abs=1e-12)
    expected = brute_boltzmann(mrf, beta)
    assert len(labels) == len(expected)
    assert len({tuple(x) for x in labels}) == len(labels)  # every labelling once
    for x, p in zip(labels, probs):
        assert p == pytest.approx(expected[tuple(x)], rel=1e-10)


def test_marginals_and_log_partition_match_brute_force():
    mrf = model(11)
    states = brute_all(mrf)
    energies = np.array([e for _, e in states])
    assert log_partition(mrf) == pytest.approx(np.log(np.exp(-energies).sum()), rel=1e-12)
    weights = np.exp(-energies) / np.exp(-energies).sum()
    expected = np.zeros((mrf.num_variables, mrf.max_labels))
    for (x, _), w in zip(states, weights):
        expected[np.arange(len(x)), x] += w
    np.testing.assert_allclose(exact_marginals(mrf), expected, atol=1e-12)


def test_top_k_is_sorted_and_equals_brute_force_ranking():
    mrf = model(12)
    labels, energies = top_k(mrf, 7)
    ranked = sorted(brute_all(mrf), key=lambda item: item[1])[:7]
    assert np.all(np.diff(energies) >= 0)
    np.testing.assert_allclose(energies, [e for _, e in ranked], atol=1e-12)
    assert [tuple(x) for x in labels] == [x for x, _ in ranked]
    np.testing.assert_allclose(mrf.energy(labels), energies, atol=1e-12)


def test_top_k_skips_infeasible_labellings():
    # Three binary variables, all must be equal (hard constraints): only 2 feasible labellings.
    equal = np.array([[0.0, np.inf], [np.inf, 0.0]])
    mrf = TabularMRF(np.full(3, 2), np.array([[0.0, 1.0], [0.0, 0.5], [0.0, 0.2]]),
                     np.array([[0, 1], [1, 2]]), np.stack([equal, equal]))
    labels, energies = top_k(mrf, 5)
    assert [tuple(x) for x in labels] == [(0, 0, 0), (1, 1, 1)]
    np.testing.assert_allclose(energies, [0.0, 1.7])
    _, probs = enumerate_distribution(mrf)
    assert np.count_nonzero(probs) == 2


def test_conditional_query_by_clamping():
    mrf = model(13)
    conditioned = mrf.clamp([1, 4], [1, 0])
    assert count_states(conditioned) == 3 ** 4  # clamped variables are not enumerated
    labels, probs = enumerate_distribution(conditioned)
    joint = brute_boltzmann(mrf)
    given = {x: p for x, p in joint.items() if x[1] == 1 and x[4] == 0}
    total = sum(given.values())
    assert len(labels) == len(given)
    for x, p in zip(labels, probs):
        assert p == pytest.approx(given[tuple(x)] / total, rel=1e-10)


def test_enumeration_refuses_large_state_spaces_with_the_size_and_alternatives():
    mrf = TabularMRF(np.full(30, 2), np.zeros((30, 2)))
    with pytest.raises(EnumerationTooLargeError) as caught:
        solve_enumeration(mrf, max_states=2 ** 20)
    error = caught.value
    assert isinstance(error, EbmError) and isinstance(error, ValueError)
    assert "1,073,741,824" in str(error) and "1,048,576" in str(error)
    assert "graph cut" in error.hint and "max_states" in error.hint
    with pytest.raises(EnumerationTooLargeError, match="about 2\\^300"):
        enumerate_distribution(TabularMRF(np.full(300, 2), np.zeros((300, 2))))


def test_forbidden_unary_labels_shrink_the_enumeration():
    unary = np.zeros((16, 3))
    unary[:, 2] = np.inf  # every variable really binary: 2^16 states, not 3^16
    unary[3, 0] = 1.0
    mrf = TabularMRF(np.full(16, 3), unary)
    assert count_states(mrf) == 2 ** 16
    # Within a 2^16 limit only because forbidden labels are skipped (3^16 would be refused).
    result = solve_enumeration(mrf, max_states=2 ** 16)
    assert result.energy == 0.0 and result.labels[3] == 1 and (result.labels < 2).all()


def test_infeasible_models_are_reported_not_crashed():
    unary = np.array([[np.inf, np.inf], [0.0, 1.0]])
    mrf = TabularMRF(np.full(2, 2), unary)
    result = solve_enumeration(mrf)
    assert result.info["feasible"] is False and np.isinf(result.energy)
    with pytest.raises(EbmError, match="no labelling satisfies"):
        enumerate_distribution(mrf)
    assert log_partition(mrf) == -np.inf
