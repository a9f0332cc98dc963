"""Sum-of-products templates lowered to tensor contractions (backends/evaluator/contraction.py).

Every expectation is computed here with numpy from the model's own parameters (closed
forms: v @ W @ h, masked quadratic forms), never through the code under test; each model
is also written in a second, equivalent form that must give the same energies.
"""
from __future__ import annotations

import numpy as np
import pytest

import ebmlang
from ebmlang.backends.evaluator import plan_contractions
from ebmlang.backends.layout import find_layout
from ebmlang.graph.reference import reference_energy

BACKENDS = ["numpy", "torch", "jax"]

RBM = """
const V = 7
const H = 5
observed v[V] : binary
latent h[H] : spin
param W[V, H] ~ normal(0, 1)
param b[V] ~ normal(0, 1)
param c[H] ~ normal(0, 1)
energy interaction = -sum(i in 0..V, k in 0..H) v[i] * W[i, k] * h[k]
energy masked = -sum(i in 0..V, k in 0..H where i != k) 0.5 * c[k] * v[i] * W[i, k] * h[k]
energy pairs = sum(i in 0..V, j in 0..V where i < j) 2 * b[i] * v[i] * v[j]
energy counted = sum(i in 0..V, k in 0..H) h[k]
energy bias = -sum(i in 0..V) b[i] * v[i]
"""

# The same energy, every sum written out per index as a nested sum or moved around.
RBM_REWRITTEN = """
const V = 7
const H = 5
observed v[V] : binary
latent h[H] : spin
param W[V, H] ~ normal(0, 1)
param b[V] ~ normal(0, 1)
param c[H] ~ normal(0, 1)
energy interaction = -sum(k in 0..H) h[k] * sum(i in 0..V) W[i, k] * v[i]
energy masked = -0.5 * sum(k in 0..H) c[k] * h[k] * sum(i in 0..V where i != k) v[i] * W[i, k]
energy pairs = sum(j in 0..V) v[j] * sum(i in 0..V where i < j) 2 * b[i] * v[i]
energy counted = V * sum(k in 0..H) h[k]
energy bias = -sum(i in 0..V) v[i] * b[i]
"""


def closed_form(params, v, h):
    """The RBM model's energy per row, by hand."""
    W, b, c = params["W"], params["b"], params["c"]
    V, H = W.shape
    off = np.ones((V, H)) - np.eye(V, H)
    interaction = -np.einsum("ni,ik,nk->n", v, W, h)
    masked = -0.5 * np.einsum("ni,ik,nk,k->n", v, W * off, h, c)
    pairs = 2 * np.einsum("ni,i,ij,nj->n", v, b, np.triu(np.ones((V, V)), 1), v)
    counted = V * h.sum(1)
    return interaction + masked + pairs + counted - v @ b


def numpy_params(model):
    return {k: np.asarray(model.backend.to_numpy(v), dtype=np.float64) for k, v in model.params.items()}


def random_state(batch, seed=0):
    rng = np.random.default_rng(seed)
    return {"v": rng.integers(0, 2, (batch, 7)).astype(float), "h": rng.choice([-1.0, 1.0], (batch, 5))}


def energies(model, state):
    bk = model.backend
    value = model.compiled.energy({g: bk.asarray(x) for g, x in state.items()}, model.params)
    return np.asarray(bk.to_numpy(value), dtype=np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
def test_contracted_energies_match_the_closed_form_in_both_forms(backend):
    state = random_state(6)
    for source in (RBM, RBM_REWRITTEN):
        model = ebmlang.loads(source, backend=backend, dtype="float64", seed=4)
        expected = closed_form(numpy_params(model), state["v"], state["h"])
        np.testing.assert_allclose(energies(model, state), expected, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(reference_energy(model.graph, state, numpy_params(model)), expected, atol=1e-10)


def test_the_products_over_index_boxes_are_planned_as_contractions():
    model = ebmlang.loads(RBM, backend="numpy", dtype="float64")
    planned = {t.name: c for t, c in zip(model.graph.templates, plan_contractions(model.graph))}
    assert planned["interaction"].reduces and planned["interaction"].describe() == "...i,ik,...k->..."
    assert planned["masked"].counts_key is not None  # i != k: a count mask over the box
    assert planned["pairs"].reduces and planned["counted"].reduces
    # A bias reads every index in every factor: nothing to contract.
    assert planned["bias"] is None or not planned["bias"].reduces
    text = str(model.plan("sample"))
    assert "interaction: 35 ground factors -> one contraction, einsum '...i,ik,...k->...'" in text


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_batch_gives_each_row_its_own_energy(backend):
    model = ebmlang.loads(RBM, backend=backend, dtype="float64", seed=1)
    state = random_state(5, seed=2)
    batch = energies(model, state)
    one_by_one = [energies(model, {g: x[r:r + 1] for g, x in state.items()})[0] for r in range(5)]
    np.testing.assert_allclose(batch, one_by_one, atol=1e-10)
    # A group with a batch of one broadcasts against the others.
    shared = {"v": state["v"][:1], "h": state["h"]}
    np.testing.assert_allclose(energies(model, shared),
                               closed_form(numpy_params(model), np.repeat(state["v"][:1], 5, 0), state["h"]),
                               atol=1e-10)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_parameter_gradients_of_the_contraction_are_the_sufficient_statistics(backend):
    source = """
const V = 6
const H = 4
observed v[V] : binary
latent h[H] : binary
param W[V, H] ~ normal(0, 1)
energy interaction = -sum(i in 0..V, k in 0..H) v[i] * W[i, k] * h[k]
"""
    model = ebmlang.loads(source, backend=backend, dtype="float64")
    rng = np.random.default_rng(3)
    v, h = rng.integers(0, 2, (8, 6)).astype(float), rng.integers(0, 2, (8, 4)).astype(float)
    weights = rng.normal(size=8)
    bk = model.backend
    grads = model.compiled.grad_params({"v": bk.asarray(v), "h": bk.asarray(h)}, model.params,
                                       weights=bk.asarray(weights))
    # d/dW sum_b w_b E_b = -sum_b w_b v_b h_b^T
    np.testing.assert_allclose(bk.to_numpy(grads["W"]), -np.einsum("b,bi,bk->ik", weights, v, h), atol=1e-10)


def exact_conditional(model, state, group, indices):
    """[batch, n, K] energies by setting each listed variable to each value (reference oracle)."""
    params = numpy_params(model)
    values = model.graph.variables[group].domain.values
    table = np.zeros((len(next(iter(state.values()))), len(indices), len(values)))
    for n, u in enumerate(indices):
        for a, value in enumerate(values):
            changed = {g: x.copy() for g, x in state.items()}
            changed[group][:, u] = value
            table[:, n, a] = reference_energy(model.graph, changed, params)
    return table


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("group, indices", [("h", range(5)), ("v", range(7)), ("v", [1, 4, 6]), ("h", [2])])
def test_block_conditionals_take_contracted_fields(backend, group, indices):
    model = ebmlang.loads(RBM, backend=backend, dtype="float64", seed=5)
    state = random_state(4, seed=7)
    bk = model.backend
    indices = np.asarray(list(indices))
    table = bk.to_numpy(model.compiled.local_conditional(
        group, bk.asarray(indices, "int64"), {g: bk.asarray(x) for g, x in state.items()}, model.params))
    expected = exact_conditional(model, state, group, indices)
    # Conditionals are exact up to a constant per variable.
    np.testing.assert_allclose(table - table[..., :1], expected - expected[..., :1], atol=1e-9)
    assert model.compiled.gibbs_block(group, indices).plan.fields  # the contraction path was taken


def block_and_exact_table(source, backend, group, indices):
    """(model, its compiled block group[indices] with a field, a backend state, the exact
    [batch, n, K] energies of that state's block values by enumeration)."""
    model = ebmlang.loads(source, backend=backend, dtype="float64", seed=5)
    state = random_state(4, seed=7)
    indices = np.asarray(list(indices))
    block = model.compiled.gibbs_block(group, indices)
    assert block.has_field
    expected = exact_conditional(model, state, group, indices)
    return model, block, {g: model.backend.asarray(x) for g, x in state.items()}, expected


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("group, indices", [("h", range(5)), ("v", range(7)), ("v", [1, 4, 6])])
def test_a_binary_block_local_field_is_the_energy_gap_per_unit_of_value(backend, group, indices):
    # E(x_u = high) - E(x_u = low) = (high - low) * field_u, for binary v (0, 1) and spin h
    # (-1, +1): the sampler and the free energy read only the field of such blocks.
    model, block, state, expected = block_and_exact_table(RBM, backend, group, indices)
    field = np.asarray(model.backend.to_numpy(block.field(state, model.params)))
    low, high = model.graph.variables[group].domain.values
    np.testing.assert_allclose((high - low) * field, expected[..., 1] - expected[..., 0], atol=1e-9)



SCALED = RBM + """param beta = 0.7
energy scaled = beta * sum(i in 0..V, k in 0..H) v[i] * W[i, k] * h[k]
energy scaled_bias = -2 * beta * sum(k in 0..H) c[k] * h[k]
"""


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("source", [RBM, SCALED], ids=["rbm", "scalar-scaled"])
@pytest.mark.parametrize("group, indices", [("h", range(5)), ("v", range(7)), ("v", [1, 4, 6])])
def test_a_two_valued_block_gap_is_the_difference_of_its_two_energies(backend, source, group, indices):
    # gap = E(first value) - E(second value), with the values' difference, the terms' signs
    # and their scalar params folded into one factor: it must equal the table it replaces.
    model, block, state, expected = block_and_exact_table(source, backend, group, indices)
    gap = np.asarray(model.backend.to_numpy(block.gap(state, model.params)))
    np.testing.assert_allclose(gap, expected[..., 0] - expected[..., 1], atol=1e-9)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_bias_gradients_are_the_weighted_sums_of_the_states(backend):
    # A bias sum is a matrix-vector product over the batch; its gradient must still be
    # -sum_b w_b v_b, whichever side of the product the param is written on.
    source = """
const V = 6
observed v[V] : binary
param b[V] ~ normal(0, 1)
param a[V] ~ normal(0, 1)
energy left = -sum(i in 0..V) b[i] * v[i]
energy right = 3 * sum(i in 0..V) v[i] * a[i]
"""
    model = ebmlang.loads(source, backend=backend, dtype="float64")
    rng = np.random.default_rng(4)
    v = rng.integers(0, 2, (9, 6)).astype(float)
    weights = rng.normal(size=9)
    bk = model.backend
    grads = model.compiled.grad_params({"v": bk.asarray(v)}, model.params, weights=bk.asarray(weights))
    np.testing.assert_allclose(bk.to_numpy(grads["b"]), -weights @ v, atol=1e-10)
    np.testing.assert_allclose(bk.to_numpy(grads["a"]), 3 * weights @ v, atol=1e-10)
    params = numpy_params(model)
    np.testing.assert_allclose(energies(model, {"v": v}), -v @ params["b"] + 3 * v @ params["a"], atol=1e-10)

def test_a_template_reading_one_variable_twice_keeps_the_per_factor_path():
    # With the diagonal i == j the energy is quadratic in v[i]: not a linear field.
    source = RBM + "energy square = sum(i in 0..V, j in 0..V) b[j] * v[i] * v[j]\n"
    model = ebmlang.loads(source, backend="numpy", dtype="float64", seed=6)
    state = random_state(3, seed=8)
    indices = np.arange(7)
    table = model.compiled.local_conditional("v", indices, state, model.params)
    expected = exact_conditional(model, state, "v", indices)
    np.testing.assert_allclose(table - table[..., :1], expected - expected[..., :1], atol=1e-9)
    fields = {c.template.name for c in model.compiled.gibbs_block("v", indices).plan.fields}
    assert "square" not in fields and "pairs" in fields
    # Quadratic in v[i]: the table is not values * field, so the block has no field.
    assert not model.compiled.gibbs_block("v", indices).has_field


def test_torch_and_jax_agree_on_contracted_energies_and_conditionals():
    state = random_state(4, seed=9)
    params = numpy_params(ebmlang.loads(RBM, backend="numpy", dtype="float64", seed=11))
    found = []
    for backend in ("torch", "jax"):
        model = ebmlang.loads(RBM, backend=backend, dtype="float64").set_params(**params)
        bk = model.backend
        table = bk.to_numpy(model.compiled.local_conditional(
            "h", bk.asarray(np.arange(5), "int64"), {g: bk.asarray(x) for g, x in state.items()}, model.params))
        found.append((energies(model, state), np.asarray(table)))
    np.testing.assert_allclose(found[0][0], found[1][0], atol=1e-10)
    np.testing.assert_allclose(found[0][1], found[1][1], atol=1e-10)


def test_a_sparse_index_set_stays_on_the_evaluator():
    # A chain j == i + 1 fills 1/N of its box: contracting over the box would cost N times more.
    source = """
const N = 50
latent s[N] : spin
param J[N, N] = 1
energy chain = -sum(i in 0..N, j in 0..N where j == i + 1) J[i, j] * s[i] * s[j]
"""
    model = ebmlang.loads(source, backend="numpy", dtype="float64")
    assert plan_contractions(model.graph)[0] is None
    s = np.random.default_rng(0).choice([-1.0, 1.0], (3, 50))
    np.testing.assert_allclose(energies(model, {"s": s}), -np.sum(s[:, :-1] * s[:, 1:], 1), atol=1e-10)


def test_one_unit_of_a_dense_group_is_not_a_strided_layout():
    assert find_layout((200,), np.array([17])) is None
    assert find_layout((200,), np.arange(0, 200, 100)) is None  # stride 100: a sparse pair
    assert find_layout((8, 8), np.arange(0, 64, 2)) is not None  # a checkerboard-like stripe still is
