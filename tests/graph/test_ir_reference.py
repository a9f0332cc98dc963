"""The numpy reference evaluator against energies worked out by hand or by brute force."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from ir_testing import lower_example, lower_source
from scipy.special import logsumexp

from ebmlang.errors import EbmError
from ebmlang.graph import ir
from ebmlang.graph.reference import (
    enumerate_states,
    exact_distribution,
    reference_energy,
    reference_init_params,
    reference_template_energies,
    reference_term_energies,
)


def test_ising_3x3_configuration_by_hand():
    g = lower_example("ising", L=3)
    s = np.array([[1, 1, -1],
                  [1, -1, -1],
                  [1, 1, 1]], dtype=float)
    # Periodic bonds, counted by hand: each site's down and right neighbour.
    # down  (s[i,j] s[i+1,j]): row0-row1: 1, -1, 1; row1-row2: 1, -1, -1; row2-row0: 1, 1, -1  -> sum 1
    # right (s[i,j] s[i,j+1]): row0: 1, -1, -1; row1: -1, 1, -1; row2: 1, 1, 1                 -> sum 1
    # so coupling = -J * (1 + 1) = -1.4 and field = -h * sum(s) = -0.5 * 3 = -1.5.
    params = {"J": np.array(0.7), "h": np.array(0.5)}
    terms = reference_term_energies(g, {"s": s[None]}, params)
    assert terms["coupling"] == pytest.approx([-1.4])
    assert terms["field"] == pytest.approx([-1.5])
    # the two coupling templates are the two bond directions, -J * 1 each
    per_template = reference_template_energies(g, {"s": s[None]}, params)
    assert per_template["coupling#0"].shape == (1, 9)
    assert per_template["coupling#0"].sum() == pytest.approx(-0.7)
    assert per_template["coupling#1"].sum() == pytest.approx(-0.7)
    assert reference_energy(g, {"s": s[None]}, params) == pytest.approx([-2.9])


def test_rbm_with_two_visible_and_two_hidden_units_by_hand():
    g = lower_example("rbm", V=2, H=2)
    params = {"W": np.array([[0.5, -1.0], [2.0, 0.25]]), "b": np.array([0.1, -0.2]), "c": np.array([0.3, 0.4])}
    state = {"v": np.array([[1.0, 0.0]]), "h": np.array([[1.0, 1.0]])}
    # v W h = 0.5 - 1.0 = -0.5; b.v = 0.1; c.h = 0.7  ->  E = 0.5 - 0.1 - 0.7 = -0.3
    terms = reference_term_energies(g, state, params)
    assert terms["interaction"] == pytest.approx([0.5])
    assert terms["biases"] == pytest.approx([-0.8])
    assert reference_energy(g, state, params) == pytest.approx([-0.3])


def test_ring_at_a_point_on_the_ring():
    g = lower_example("ring")
    # at x = (R, 0): |x - mu_k|^2 = 2 R^2 (1 - cos(2 pi k / K)), R = 4, K = 8
    k = np.arange(8)
    squared = 2 * 16.0 * (1 - np.cos(2 * np.pi * k / 8))
    sigma = 0.5
    expected = -logsumexp(-squared / (2 * sigma**2))
    energy = reference_energy(g, {"x": np.array([[4.0, 0.0]])}, {"sigma": np.array(sigma)})
    assert energy == pytest.approx([expected], rel=1e-12)
    # nearest centre dominates: E ~ 0 minus log(1 + tiny)
    assert -1e-6 < expected <= 0


def test_potts_row_by_hand():
    g = lower_source("""const N = 5
latent x[N] : categorical(3)
param beta = 1.25
energy smooth[i in 0..N-1] = -beta * [x[i] == x[i+1]]
""")
    # x = 0 0 1 1 2 has two equal neighbour pairs -> E = -2 beta
    energy = reference_energy(g, {"x": np.array([[0, 0, 1, 1, 2.0]])}, {"beta": np.array(1.25)})
    assert energy == pytest.approx([-2.5])


def test_mlp_matches_a_hand_written_forward_pass():
    g = lower_source("""latent x[3] : real
latent y : categorical(2)
param f : mlp(3 -> 4 -> 2, tanh)
energy e = -f(x)[y]
""")
    params = reference_init_params(g, seed=3)
    x = np.array([[0.5, -1.0, 2.0], [0.0, 0.1, 0.2]])
    y = np.array([1.0, 0.0])
    hidden = np.tanh(x @ params["f.0.weight"].T + params["f.0.bias"])
    logits = hidden @ params["f.1.weight"].T + params["f.1.bias"]
    expected = -logits[np.arange(2), y.astype(int)]
    np.testing.assert_allclose(reference_energy(g, {"x": x, "y": y}, params), expected, rtol=1e-12)


def test_externs_are_called_elementwise():
    g = lower_source("""latent x[3] : real
extern g
energy e[i in 0..2] = g(x[i], x[i+1])
""")
    x = np.array([[1.0, 2.0, 3.0]])
    assert reference_energy(g, {"x": x}, {}, externs={"g": lambda a, b: a * b + 1}) == pytest.approx([2 + 1 + 6 + 1])
    with pytest.raises(EbmError, match="extern 'g'"):
        reference_energy(g, {"x": x}, {})


def test_constraints_give_zero_or_infinity():
    g = lower_example("sudoku")
    # solved by hand from the givens x[0,0]=1, x[1,2]=3, x[2,1]=4, x[3,3]=2
    valid = np.array([[1, 3, 2, 4],
                      [4, 2, 3, 1],
                      [2, 4, 1, 3],
                      [3, 1, 4, 2]], dtype=float)
    relabelled = np.choose(valid.astype(int) - 1, [2, 1, 3, 4]).astype(float)  # swap symbols 1 and 2
    swapped = valid.copy()
    swapped[0, [1, 2]] = swapped[0, [2, 1]]  # rows stay permutations; columns 1, 2 repeat
    terms = reference_term_energies(g, {"x": np.stack([valid, relabelled, swapped])}, {})
    assert {k: v.tolist() for k, v in terms.items()} == {
        "clue": [0.0, np.inf, 0.0],  # relabelling breaks the givens only
        "row": [0.0, 0.0, 0.0],
        "col": [0.0, 0.0, np.inf],
        "box": [0.0, 0.0, np.inf],  # 2 moves into box 0, which already holds a 2
    }


def test_ragged_inner_reductions_match_brute_force():
    g = lower_source("""const N = 5
latent x[N] : real
energy m[i in 0..N] = logsumexp(j in 0..i+1 where j != 2) x[j] * i
energy nest = max(i in 0..N) min(j in i..N) (x[i] - x[j])^2
energy avg[i in 0..N] = mean(j in 0..N where j < i or j == 0) x[j]
""")
    assert any(isinstance(n, ir.Reduce) and n.mask is not None for t in g.templates for n in ir.walk(t.body))
    x = np.random.default_rng(0).normal(size=(4, 5))
    terms = reference_term_energies(g, {"x": x}, {})
    m = sum(logsumexp(np.stack([x[:, j] * i for j in range(i + 1) if j != 2], axis=1), axis=1)
            for i in range(5))
    nest = np.max(np.stack([np.min(np.stack([(x[:, i] - x[:, j]) ** 2 for j in range(i, 5)], 1), 1)
                            for i in range(5)], 1), 1)
    avg = sum(np.mean(np.stack([x[:, j] for j in range(5) if j < i or j == 0], 1), 1) for i in range(5))
    np.testing.assert_allclose(terms["m"], m, rtol=1e-12)
    np.testing.assert_allclose(terms["nest"], nest, rtol=1e-12)
    np.testing.assert_allclose(terms["avg"], avg, rtol=1e-12)


def test_enumerate_states_lists_every_assignment_once():
    g = lower_source("""latent a[2] : integer in 0..3
latent s : spin
observed y : real
energy e = a[0] * s + a[1] * y
""")
    states = enumerate_states(g, {"y": np.array(0.5)})
    assert states["a"].shape == (18, 2) and states["s"].shape == (18,) and states["y"].shape == (18,)
    rows = {(int(a0), int(a1), int(s)) for (a0, a1), s in zip(states["a"], states["s"])}
    assert rows == set(itertools.product(range(3), range(3), (-1, 1)))
    # mixed radix: the first ground variable changes slowest, the last fastest
    assert states["a"][:2, 0].tolist() == [0, 0] and states["s"][:2].tolist() == [-1, 1]
    assert np.all(states["y"] == 0.5)
    with pytest.raises(EbmError, match="too many to enumerate"):
        enumerate_states(g, {"y": np.array(0.5)}, max_states=17)
    with pytest.raises(EbmError, match="observed variable 'y'"):
        enumerate_states(g)


def test_exact_distribution_of_a_tiny_ising_matches_brute_force():
    g = lower_example("ising", L=2)
    params = {"J": np.array(0.4), "h": np.array(0.3)}
    states, probs = exact_distribution(g, params)
    assert probs.shape == (16,) and probs.sum() == pytest.approx(1.0)
    # brute force with explicit periodic bonds on a 2x2 torus (each bond appears twice)
    weights = []
    for spins in itertools.product((-1, 1), repeat=4):
        s = np.array(spins, dtype=float).reshape(2, 2)
        bonds = sum(s[i, j] * (s[(i + 1) % 2, j] + s[i, (j + 1) % 2]) for i in range(2) for j in range(2))
        weights.append(np.exp(-(-0.4 * bonds - 0.3 * s.sum())))
    weights = np.array(weights) / np.sum(weights)
    np.testing.assert_allclose(probs, weights, rtol=1e-12)


def test_init_params_shapes_and_determinism():
    g = lower_source("""latent x[3] : real
param W[3, 2] ~ uniform(-1, 1)
param b[2] = 0.5
param f : mlp(3 -> 5 -> 1)
energy e = sum(i in 0..3, k in 0..2) W[i, k] * x[i] + b[0] * f(x)
""")
    first, again, other = (reference_init_params(g, seed) for seed in (1, 1, 2))
    assert set(first) == {"W", "b", "f.0.weight", "f.0.bias", "f.1.weight", "f.1.bias"}
    assert first["W"].shape == (3, 2) and np.all(np.abs(first["W"]) <= 1)
    np.testing.assert_array_equal(first["b"], [0.5, 0.5])
    assert first["f.0.weight"].shape == (5, 3) and first["f.1.weight"].shape == (1, 5)
    assert np.all(np.abs(first["f.0.weight"]) <= 1 / np.sqrt(3))  # PyTorch default bound 1/sqrt(fan_in)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["W"], other["W"])


def test_state_shape_errors_are_clear():
    g = lower_example("ising", L=3)
    with pytest.raises(EbmError, match="state of 's' has shape"):
        reference_energy(g, {"s": np.ones((2, 9))}, {"J": 1.0, "h": 0.0})
    with pytest.raises(EbmError, match="no state given for variable 's'"):
        reference_energy(g, {}, {"J": 1.0, "h": 0.0})
