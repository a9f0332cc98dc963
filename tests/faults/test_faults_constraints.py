"""Hard constraints: exact enumeration, argmin and Gibbs never produce a violating state.

The chain model's exact distribution is computed here by brute force from the source's
meaning (3^5 = 243 states), independently of the IR.
"""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.graph.reference import exact_distribution

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

CHAIN = """
const N = 5
latent x[N] : categorical(3)
energy pref[i in 0..N] = 0.7 * [x[i] == 1] - 0.4 * [x[i] == 2]
energy pair[i in 0..N-1] = 0.3 * [x[i] == 0] * [x[i+1] == 2]
constraint differ[i in 0..N-1] : x[i] != x[i+1]
"""


def brute_force() -> tuple[np.ndarray, np.ndarray]:
    """Every labelling of the chain and its probability (0 where a constraint fails)."""
    states = np.array(list(itertools.product(range(3), repeat=5)))
    energy = (0.7 * (states == 1) - 0.4 * (states == 2)).sum(1) \
        + 0.3 * ((states[:, :-1] == 0) & (states[:, 1:] == 2)).sum(1)
    valid = (states[:, :-1] != states[:, 1:]).all(1)
    weight = np.where(valid, np.exp(-energy), 0.0)
    return states, weight / weight.sum()


def violations(x: np.ndarray) -> int:
    return int(np.sum(x[..., :-1] == x[..., 1:]))


def test_exact_enumeration_gives_violating_states_probability_zero():
    states, probs = brute_force()
    model = ebm.loads(CHAIN, backend="torch", name="chain.ebm")
    exact = model.conditional()
    assert exact.probs.shape == (243,)
    by_state = {tuple(s): p for s, p in zip(exact.states["x"].tolist(), exact.probs)}
    for state, p in zip(states.tolist(), probs):
        assert by_state[tuple(state)] == pytest.approx(p, abs=1e-6)
    assert int(np.sum(exact.probs > 0)) == 3 * 2 ** 4
    ref_states, ref_probs = exact_distribution(model.graph, model.param_values())
    assert violations(ref_states["x"][ref_probs > 0]) == 0
    log_p = model.log_prob({"x": np.array([[0, 1, 0, 1, 0], [0, 0, 1, 2, 1]])})
    assert log_p[0] == pytest.approx(np.log(probs[np.all(states == [0, 1, 0, 1, 0], axis=1)][0]), abs=1e-5)
    assert log_p[1] == -np.inf


def test_argmin_is_the_best_valid_state():
    states, probs = brute_force()
    result = ebm.loads(CHAIN, backend="torch", name="chain.ebm").argmin()
    np.testing.assert_array_equal(result["x"], states[np.argmax(probs)])
    assert violations(result["x"]) == 0


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_gibbs_never_visits_a_violating_state_and_matches_the_exact_marginals(backend):
    states, probs = brute_force()
    exact_marginals = np.stack([(probs[:, None] * (states == k)).sum(0) for k in range(3)], -1)
    model = ebm.loads(CHAIN, backend=backend, name="chain.ebm")
    samples = model.sample(chains=64, steps=260, burn_in=60, seed=1, progress=False)
    x = samples["x"]  # [64, 200, 5]
    # Random starts violate the constraint, but every site keeps >= 1 allowed label
    # (2 neighbours, 3 labels), so the first sweep repairs them; afterwards a sweep
    # only ever picks allowed labels.
    assert violations(x) == 0
    assert np.all(np.isfinite(samples.energy))
    marginals = np.stack([(x == k).mean(axis=(0, 1)) for k in range(3)], -1)
    # 12,800 draws, Gibbs on a 5-site chain mixes in a few sweeps (ESS >~ 3,000): the
    # sd of a marginal is <~ 0.01, so 0.05 is a 5-sd bound.
    np.testing.assert_allclose(marginals, exact_marginals, atol=0.05)


SUDOKU_GIVENS = np.array([[1, 0, 0, 0], [0, 0, 3, 0], [0, 4, 0, 0], [0, 0, 0, 2]])


def is_solution(grid: np.ndarray) -> bool:
    rows = all(sorted(r) == [1, 2, 3, 4] for r in grid)
    cols = all(sorted(c) == [1, 2, 3, 4] for c in grid.T)
    boxes = all(sorted(grid[r:r + 2, c:c + 2].ravel()) == [1, 2, 3, 4] for r in (0, 2) for c in (0, 2))
    clues = np.all((SUDOKU_GIVENS == 0) | (grid == SUDOKU_GIVENS))
    return bool(rows and cols and boxes and clues)


def test_sudoku_argmin_solves_the_puzzle():
    result = ebm.load(EXAMPLES / "sudoku.ebm", backend="torch").argmin()
    assert result.energy == 0.0
    assert is_solution(result["x"])


def test_sudoku_gibbs_samples_valid_grids():
    # Fails today: single-site Gibbs from random grids gets stuck in violating states
    # (all 16 chains still have infinite energy after 300 sweeps); see the report.
    samples = ebm.load(EXAMPLES / "sudoku.ebm", backend="torch").sample(chains=8, steps=300, seed=0,
                                                                       progress=False)
    stuck = float(np.mean(np.isinf(samples.energy)))
    assert stuck == 0.0, f"{stuck:.0%} of the recorded draws violate a constraint (infinite energy)"
    grids = samples["x"].reshape(-1, 4, 4)
    assert all(is_solution(g) for g in grids)
