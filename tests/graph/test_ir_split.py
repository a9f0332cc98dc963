"""Additive splitting: which bodies split into which templates, and that splitting and
promotion never change the energy (checked against direct numpy formulas)."""
from __future__ import annotations

import numpy as np
import pytest
from ir_testing import lower_source
from scipy.special import logsumexp

from ebmlang.graph import ir, structure
from ebmlang.graph.lower import MAX_ADDITIVE_PARTS
from ebmlang.graph.reference import reference_term_energies

HEADER = """const N = 4
latent x[N] : real
latent y[N] : real
param a = 1.5
"""


def _term(body: str, term: str = "e") -> tuple[ir.FactorGraph, dict[str, np.ndarray]]:
    g = lower_source(HEADER + f"energy {term} = {body}\n")
    rng = np.random.default_rng(7)
    state = {"x": rng.normal(size=(5, 4)), "y": rng.normal(size=(5, 4))}
    return g, state


@pytest.mark.parametrize("body, parts, direct", [
    # a product distributes over a sum
    ("x[0] * (x[1] + x[2])", 2, lambda x, y: x[:, 0] * (x[:, 1] + x[:, 2])),
    # negation and param scaling of a sum
    ("-a * (x[0] - y[0] + x[1])", 3, lambda x, y: -1.5 * (x[:, 0] - y[:, 0] + x[:, 1])),
    # division by a constant distributes; by a variable it does not
    ("(x[0] + y[1]) / 2", 2, lambda x, y: (x[:, 0] + y[:, 1]) / 2),
    ("(x[0] + y[1]) / x[2]", 1, lambda x, y: (x[:, 0] + y[:, 1]) / x[:, 2]),
    # nonlinear functions keep their argument whole
    ("exp(x[0] + x[1]) + y[0]", 2, lambda x, y: np.exp(x[:, 0] + x[:, 1]) + y[:, 0]),
    # (x0 + x1)(y0 + y1) = 4 parts
    ("(x[0] + x[1]) * (y[0] + y[1])", 4, lambda x, y: (x[:, 0] + x[:, 1]) * (y[:, 0] + y[:, 1])),
    # a variable-free factor is not split: (1 + 2) stays one constant
    ("(1 + 2) * x[0]", 1, lambda x, y: 3 * x[:, 0]),
])
def test_split_counts_and_energy(body, parts, direct):
    g, state = _term(body)
    assert len(g.templates) == parts
    expected_names = ["e"] if parts == 1 else [f"e#{k}" for k in range(parts)]
    assert [t.name for t in g.templates] == expected_names
    assert all(t.term == "e" for t in g.templates)
    energy = reference_term_energies(g, state, {"a": np.array(1.5)})["e"]
    np.testing.assert_allclose(energy, direct(state["x"], state["y"]), rtol=1e-12, atol=1e-12)


def test_too_many_parts_keep_the_term_whole():
    # 2^5 = 32 parts > the cap of 16: the product stays one template
    assert MAX_ADDITIVE_PARTS == 16
    body = " * ".join(f"(x[{k % 4}] + y[{k % 4}])" for k in range(5))
    g, state = _term(body)
    assert [t.name for t in g.templates] == ["e"]
    x, y = state["x"], state["y"]
    direct = np.prod([x[:, k % 4] + y[:, k % 4] for k in range(5)], axis=0)
    np.testing.assert_allclose(reference_term_energies(g, state, {"a": np.array(1.5)})["e"], direct, rtol=1e-12)


def test_promoted_sum_with_dependent_range_and_where():
    g, state = _term("sum(i in 0..N, j in i..N where j != i + 1) x[i] * y[j]")
    (t,) = g.templates
    pairs = [(i, j) for i in range(4) for j in range(i, 4) if j != i + 1]
    assert t.index_names == ("i", "j") and t.index_values.tolist() == [list(p) for p in pairs]
    x, y = state["x"], state["y"]
    direct = sum(x[:, i] * y[:, j] for i, j in pairs)
    np.testing.assert_allclose(reference_term_energies(g, state, {"a": np.array(1.5)})["e"], direct, rtol=1e-12)


def test_product_of_two_sums_binding_the_same_name():
    # both sums bind `i`; after promotion they are two different ground indices
    g, state = _term("(sum(i in 0..N) x[i]) * (sum(i in 0..2) y[i])")
    (t,) = g.templates
    assert t.num_ground == 8 and t.index_names == ("i", "i#1")
    x, y = state["x"], state["y"]
    np.testing.assert_allclose(reference_term_energies(g, state, {"a": np.array(1.5)})["e"],
                               x.sum(axis=1) * y[:, :2].sum(axis=1), rtol=1e-12)
    assert structure.classify(t, g).latent_arity == 2


def test_sum_inside_a_nonlinear_function_stays_a_reduction():
    g, state = _term("log(sum(i in 0..N) exp(x[i]))")
    (t,) = g.templates
    assert t.num_ground == 1
    assert [n.op for n in ir.walk(t.body) if isinstance(n, ir.Reduce)] == ["sum"]
    np.testing.assert_allclose(reference_term_energies(g, state, {"a": np.array(1.5)})["e"],
                               logsumexp(state["x"], axis=1), rtol=1e-12)


def test_term_index_set_and_promoted_sum_combine():
    g = lower_source(HEADER + "energy e[i in 0..N] = x[i] + sum(j in 0..i) y[j] * x[i]\n")
    first, second = g.templates
    assert (first.num_ground, first.index_names) == (4, ("i",))
    assert (second.num_ground, second.index_names) == (6, ("i", "j"))  # 0 + 1 + 2 + 3 pairs
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    direct = x.sum(axis=1) + sum(y[:, j] * x[:, i] for i in range(4) for j in range(i))
    np.testing.assert_allclose(reference_term_energies(g, {"x": x, "y": y}, {"a": np.array(1.5)})["e"], direct)


def test_constraint_conjunction_splits_into_constraint_templates():
    g = lower_source("""const N = 4
latent z[N] : binary
constraint c[i in 0..N-1] : z[i] == 1 and z[i+1] == 1
""")
    assert [t.name for t in g.templates] == ["c#0", "c#1"]
    assert all(t.is_constraint for t in g.templates)
    energy = reference_term_energies(g, {"z": np.array([[1, 1, 1, 1], [1, 1, 0, 1.0]])}, {})["c"]
    assert energy[0] == 0.0 and energy[1] == np.inf
