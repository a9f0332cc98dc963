"""Random tabular models and a brute-force oracle for the discrete inference tests.

The oracle deliberately uses plain Python loops over factors and itertools over
labellings, sharing no code with `TabularMRF.energy`, so it can catch bugs there.
"""
from __future__ import annotations

import itertools

import numpy as np

from ebmlang.inference.tabular import HigherFactor, TabularMRF


def brute_energy(mrf: TabularMRF, labels) -> float:
    labels = [int(v) for v in labels]
    total = mrf.constant
    for i, label in enumerate(labels):
        total += mrf.unary[i, label]
    for (a, b), table in zip(mrf.edges.tolist(), mrf.pairwise):
        total += table[labels[a], labels[b]]
    for factor in mrf.higher:
        radix = factor.radix
        for variables, table in zip(factor.variables.tolist(), factor.table):
            column = 0
            for v in variables:
                column = column * radix + labels[v]
            total += table[column]
    return float(total)


def brute_all(mrf: TabularMRF):
    """[(labels tuple, energy)] over every labelling in the domains (num_labels)."""
    ranges = [range(int(k)) for k in mrf.num_labels]
    return [(x, brute_energy(mrf, x)) for x in itertools.product(*ranges)]


def brute_min(mrf: TabularMRF) -> tuple[tuple, float]:
    return min(brute_all(mrf), key=lambda item: item[1])


def brute_boltzmann(mrf: TabularMRF, beta: float = 1.0) -> dict:
    states = brute_all(mrf)
    energies = np.array([e for _, e in states])
    weights = np.exp(-beta * (energies - energies[np.isfinite(energies)].min()))
    weights /= weights.sum()
    return {x: w for (x, _), w in zip(states, weights)}


def random_edges(rng: np.random.Generator, n: int, density: float) -> np.ndarray:
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < density]
    if not pairs:
        pairs = [(0, 1)]
    edges = np.array(pairs)
    # Random orientation: solvers must not assume first < second.
    flip = rng.random(len(edges)) < 0.5
    edges[flip] = edges[flip][:, ::-1]
    return edges


def random_submodular(rng: np.random.Generator, n: int, density: float = 0.4) -> TabularMRF:
    edges = random_edges(rng, n, density)
    pairwise = rng.normal(size=(len(edges), 2, 2))
    excess = pairwise[:, 0, 0] + pairwise[:, 1, 1] - pairwise[:, 0, 1] - pairwise[:, 1, 0]
    # Push the off-diagonal up just enough (plus a random margin) to make each table submodular.
    pairwise[:, 0, 1] += np.maximum(excess, 0.0) + rng.uniform(0.0, 1.0, len(edges))
    return TabularMRF(np.full(n, 2), rng.normal(size=(n, 2)), edges, pairwise, constant=rng.normal())


def random_potts(rng: np.random.Generator, n: int, k: int, density: float = 0.4) -> TabularMRF:
    """Nonnegative unaries and weights, so the factor-2 bound of alpha-expansion applies."""
    edges = random_edges(rng, n, density)
    return TabularMRF.from_dense_potts(rng.uniform(0, 2, size=(n, k)), edges,
                                       rng.uniform(0.2, 1.5, size=len(edges)))


def random_general(rng: np.random.Generator, n: int, k: int, density: float = 0.4,
                   num_labels=None) -> TabularMRF:
    edges = random_edges(rng, n, density)
    labels = np.full(n, k) if num_labels is None else np.asarray(num_labels)
    return TabularMRF(labels, rng.normal(size=(n, k)), edges, rng.normal(size=(len(edges), k, k)))


def with_higher(mrf: TabularMRF, rng: np.random.Generator, variables) -> TabularMRF:
    variables = np.asarray(variables)
    radix = mrf.max_labels
    factor = HigherFactor(variables, rng.normal(size=(variables.shape[0], radix ** variables.shape[1])))
    return TabularMRF(mrf.num_labels, mrf.unary, mrf.edges, mrf.pairwise, (factor,), mrf.constant)


def random_tree_edges(rng: np.random.Generator, n: int) -> np.ndarray:
    parents = [int(rng.integers(0, i)) for i in range(1, n)]
    return np.array([(p, i) for i, p in zip(range(1, n), parents)])
