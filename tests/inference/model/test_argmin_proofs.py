"""argmin, conditional and rank on .ebm models, as a user writes them: one model in
several equivalent forms, constraint problems with planted solutions, infeasible
problems, heuristics that fail, and batches of observations, on every backend.

Expected answers come from code in this file (Viterbi, constraint checks written
out, per-row calls compared with batched ones), not from the solvers under test.
"""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.errors import EbmError

BACKENDS = ["numpy", "torch", "jax"]

CHAIN_BODIES = {
    "one table term": """
energy pair[i in 0..N-1] = sum(k in 0..K, l in 0..K) T[k, l] * [x[i] == k and x[i+1] == l]
""",
    "two terms": """
energy pair_a[i in 0..N-1] = sum(k in 0..K, l in 0..K) A[k, l] * [x[i] == k and x[i+1] == l]
energy pair_b[i in 0..N-1] = sum(k in 0..K, l in 0..K) (T[k, l] - A[k, l]) * [x[i] == k and x[i+1] == l]
""",
    "one ground factor per table entry": """
energy pair[i in 0..N-1, k in 0..K, l in 0..K] = T[k, l] * [x[i] == k and x[i+1] == l]
""",
}


def chain_source(body: str, n: int, k: int) -> str:
    return f"""
const N = {n}
const K = {k}
param T[K, K] = 0
param A[K, K] = 0
param U[N, K] = 0
latent x[N] : categorical(K)
energy unary[i in 0..N] = sum(k in 0..K) U[i, k] * [x[i] == k]
""" + body


def viterbi(unary, table):
    cost = unary[0].copy()
    for i in range(1, unary.shape[0]):
        cost = (cost[:, None] + table).min(axis=0) + unary[i]
    return float(cost.min())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("form", list(CHAIN_BODIES))
def test_a_chain_in_any_form_gets_the_viterbi_minimum(backend, form):
    n, k = 40, 4
    rng = np.random.default_rng(5)
    table, split, unary = rng.normal(size=(k, k)), rng.normal(size=(k, k)) * 4, rng.normal(size=(n, k))
    model = ebm.loads(chain_source(CHAIN_BODIES[form], n, k), backend=backend, dtype="float64")
    model.set_params(T=table, A=split, U=unary)
    plan = model.plan("argmin")
    assert plan.method_of("discrete") == "bp" and "a chain (40 variables, 39 edges" in str(plan)
    result = model.argmin()
    assert "exact minimum" in result.reason
    assert result.energy == pytest.approx(viterbi(unary, table), abs=1e-6)
    assert model.energy(x=result["x"])[0] == pytest.approx(result.energy, abs=1e-6)


def queens(n: int, backend: str = "numpy"):
    """examples/queens.ebm on an n x n board."""
    from ebmlang.cli.showcase import load_example

    return load_example("queens.ebm", backend, N=n)


def assert_queens(q: np.ndarray) -> None:
    n = len(q)
    for i in range(n):
        for j in range(i + 1, n):
            assert q[i] != q[j] and abs(int(q[i]) - int(q[j])) != j - i, (i, j, q)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ten_queens_is_solved_and_says_how(backend):
    model = queens(10, backend)
    assert "integer program" in str(model.plan("argmin"))
    result = model.argmin()
    assert result.method == "ilp" and result.energy == 0.0 and result.info["proven"]
    assert_queens(result["q"])


def test_twenty_queens():
    result = queens(20).argmin()
    assert_queens(result["q"])


HARD_SUDOKU = ("800000000003600000070090200050007000000045700000100030001000068008500010090000400")
def sudoku(givens: np.ndarray, backend="numpy"):
    """examples/sudoku.ebm at 9x9 with these clues."""
    from ebmlang.cli.showcase import load_example

    return load_example("sudoku.ebm", backend, n=3, givens=givens.tolist())


def test_a_hard_sudoku_is_solved():
    givens = np.array([int(c) for c in HARD_SUDOKU]).reshape(9, 9)
    x = sudoku(givens).argmin()["x"]
    digits = set(range(1, 10))
    assert all(set(x[r]) == digits for r in range(9))
    assert all(set(x[:, c]) == digits for c in range(9))
    assert all(set(x[3 * (b // 3):3 * (b // 3) + 3, 3 * (b % 3):3 * (b % 3) + 3].ravel()) == digits
               for b in range(9))
    assert (x[givens > 0] == givens[givens > 0]).all()


def test_contradictory_givens_are_proven_infeasible():
    givens = np.array([int(c) for c in HARD_SUDOKU]).reshape(9, 9)
    givens[0, 8] = 8          # a second 8 in the first row
    with pytest.raises(EbmError, match="no labelling satisfies every constraint of the model: proven by"):
        sudoku(givens).argmin()


COLOURING = """
const E = {edges}
const M = {m}
latent colour[{n}] : categorical({k})
constraint proper[t in 0..M] : colour[E[t, 0]] != colour[E[t, 1]]
"""


@pytest.mark.parametrize("seed", range(3))
def test_cubic_graphs_are_three_coloured(seed):
    # Brooks: every connected cubic graph but K4 has a 3-colouring.
    graph = nx.random_regular_graph(3, 40, seed=seed)
    edges = np.array(sorted(graph.edges()))
    model = ebm.loads(COLOURING.format(edges=edges.tolist(), m=len(edges), n=40, k=3), backend="numpy")
    colour = model.argmin()["colour"]
    assert (colour[edges[:, 0]] != colour[edges[:, 1]]).all()


def test_infeasible_colourings_name_their_proof():
    k4 = np.array([[a, b] for a in range(4) for b in range(a + 1, 4)])
    small = ebm.loads(COLOURING.format(edges=k4.tolist(), m=6, n=4, k=3), backend="numpy")
    with pytest.raises(EbmError, match="proven by enumerating every allowed labelling"):
        small.argmin()
    # K4 inside 30 more vertices: too many labellings to enumerate, so the program proves it.
    edges = np.concatenate([k4, np.array([[i, i + 1] for i in range(4, 33)])])
    large = ebm.loads(COLOURING.format(edges=edges.tolist(), m=len(edges), n=34, k=3), backend="numpy")
    with pytest.raises(EbmError, match=r"proven by the integer program \(HiGHS"):
        large.argmin()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ["bp", "icm", "annealed_gibbs", "annealing"])
def test_a_heuristic_never_claims_infeasibility(backend, method):
    model = queens(10, backend)
    options = {"sweeps": 60} if method == "annealing" else {}
    try:
        result = model.argmin(method=method, seed=1, **options)
    except EbmError as error:
        text = str(error)
        assert "does not prove" in text and "no labelling satisfies" not in text
        assert "ilp" in text
    else:
        assert_queens(result["q"])


DENOISE = """
const H = 5
const W = 6
observed y[H, W] : categorical(3)
latent x[H, W] : categorical(3)
param smooth = 0.7
energy data[i in 0..H, j in 0..W] = -1.2 * [x[i, j] == y[i, j]]
energy right[i in 0..H, j in 0..W-1] = -smooth * [x[i, j] == x[i, j+1]]
energy down[i in 0..H-1, j in 0..W] = -smooth * [x[i, j] == x[i+1, j]]
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_batch_of_observations_gets_one_answer_per_row(backend):
    model = ebm.loads(DENOISE, backend=backend, dtype="float64")
    rows = np.random.default_rng(0).integers(0, 3, size=(4, 5, 6))
    batched = model.argmin(observed={"y": rows})
    assert batched["x"].shape == (4, 5, 6) and batched.energy.shape == (4,)
    for r in range(4):
        single = model.argmin(observed={"y": rows[r]})
        np.testing.assert_array_equal(batched["x"][r], single["x"])
        assert batched.energy[r] == pytest.approx(single.energy, abs=1e-9)
        assert model.energy(x=single["x"], y=rows[r])[0] == pytest.approx(single.energy, abs=1e-9)
    # A batch of one is still a batch.
    assert model.argmin(observed={"y": rows[:1]})["x"].shape == (1, 5, 6)


CONDITIONAL = """
observed y[2] : binary
latent x[3] : categorical(3)
param w = 0.9
energy fit[i in 0..2] = -w * [x[i] == y[i]]
energy link[i in 0..2] = 0.4 * [x[i] == x[i+1]]
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_conditional_and_rank_answer_each_row(backend):
    model = ebm.loads(CONDITIONAL, backend=backend, dtype="float64")
    rows = np.array([[0, 1], [1, 1], [1, 0]])
    conditionals = model.conditional(observed={"y": rows}, beta=0.7)
    ranked = model.rank(observed={"y": rows}, k=3)
    assert len(conditionals) == 3 and len(ranked) == 3
    grid = np.array(np.meshgrid(*[range(3)] * 3, indexing="ij")).reshape(3, -1).T
    for r, y in enumerate(rows):
        energies = np.array([model.energy(x=x, y=y)[0] for x in grid])
        weights = np.exp(-0.7 * (energies - energies.min()))
        lookup = {tuple(x): p for x, p in zip(conditionals[r].states["x"].tolist(), conditionals[r].probs)}
        np.testing.assert_allclose([lookup[tuple(x)] for x in grid.tolist()], weights / weights.sum(),
                                   atol=1e-9)
        np.testing.assert_allclose([e for _, e in ranked[r]], np.sort(energies)[:3], atol=1e-9)
    assert not isinstance(model.conditional(observed={"y": rows[0]}), list)


def test_observed_batches_of_different_sizes_are_refused():
    model = ebm.loads("""
observed a[2] : binary
observed b[2] : binary
latent x[2] : binary
energy e[i in 0..2] = [x[i] == a[i]] + [x[i] == b[i]]
""", backend="numpy")
    with pytest.raises(EbmError, match="disagree on the number of rows"):
        model.argmin(observed={"a": np.zeros((3, 2)), "b": np.zeros((2, 2))})
    # One row is shared by every row of the other.
    result = model.argmin(observed={"a": np.zeros((3, 2)), "b": np.zeros((1, 2))})
    assert result["x"].shape == (3, 2)


def test_unknown_argmin_options_are_refused():
    model = queens(6)
    with pytest.raises(EbmError, match="time_limt"):
        model.argmin(time_limt=5)


SMALL_POTTS = """
observed y[3, 3] : binary
latent x[3, 3] : binary
energy data[i in 0..3, j in 0..3] = -1.0 * [x[i, j] == y[i, j]]
energy right[i in 0..3, j in 0..2] = -0.6 * [x[i, j] == x[i, j+1]]
energy right_again[i in 0..3, j in 0..2] = -0.3 * [x[i, j] == x[i, j+1]]
energy down[i in 0..2, j in 0..3] = -0.9 * [x[i, j] == x[i+1, j]]
"""
DISCRETE_METHODS = ["enumeration", "graphcut", "ilp", "alpha_expansion", "bp", "icm", "annealed_gibbs",
                    "annealing"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", DISCRETE_METHODS)
def test_every_discrete_method_runs_on_every_backend(backend, method):
    model = ebm.loads(SMALL_POTTS, backend=backend, dtype="float64")
    y = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0]])
    grid = np.array(np.meshgrid(*[[0, 1]] * 9, indexing="ij")).reshape(9, -1).T.reshape(-1, 3, 3)
    best = model.energy(x=grid, y=np.broadcast_to(y, grid.shape)).min()
    result = model.argmin(observed={"y": y}, method=method)
    assert result.energy >= best - 1e-9
    if method in ("enumeration", "graphcut", "ilp"):   # exact; the rest are heuristics on this loopy grid
        assert result.energy == pytest.approx(best, abs=1e-9)
    assert model.energy(x=result["x"], y=y)[0] == pytest.approx(result.energy, abs=1e-9)


THREE_WAY = """
latent n[5] : integer in 0..3
param w = 1.0
energy t[i in 0..3] = w * (n[i] + n[i+1] - n[i+2] - 1)^2
energy tilt[i in 0..5] = 0.1 * i * n[i]
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_terms_over_three_variables_are_tabulated_exactly(backend):
    model = ebm.loads(THREE_WAY, backend=backend, dtype="float64")
    grid = np.array(np.meshgrid(*[range(3)] * 5, indexing="ij")).reshape(5, -1).T
    energies = model.energy(n=grid)
    assert model.plan("argmin").method_of("discrete") == "enumeration"
    result = model.argmin()
    assert result.energy == pytest.approx(energies.min(), abs=1e-9)
    # The integer program takes the same tables (three-variable factors as marginalised columns).
    assert model.argmin(method="ilp").energy == pytest.approx(energies.min(), abs=1e-9)
    ranked = model.rank(k=4)
    np.testing.assert_allclose([e for _, e in ranked], np.sort(energies)[:4], atol=1e-9)
    conditional = model.conditional()
    weights = np.exp(-(energies - energies.min()))
    lookup = {tuple(x): p for x, p in zip(conditional.states["n"].tolist(), conditional.probs)}
    np.testing.assert_allclose([lookup[tuple(x)] for x in grid.tolist()], weights / weights.sum(), atol=1e-9)


def test_a_magic_square_with_sums_over_rows_is_solved():
    model = ebm.loads("""
const S = 3
latent x[S, S] : integer in 1..10
constraint differ[a in 0..S*S, b in 0..S*S where a < b] : x[a / S, a % S] != x[b / S, b % S]
constraint rows[r in 0..S] : sum(c in 0..S) x[r, c] == 15
constraint cols[c in 0..S] : sum(r in 0..S) x[r, c] == 15
constraint diag : sum(k in 0..S) x[k, k] == 15
constraint anti : sum(k in 0..S) x[k, S - 1 - k] == 15
""", backend="numpy")
    x = model.argmin()["x"]
    assert sorted(x.ravel().tolist()) == list(range(1, 10))
    assert (x.sum(axis=0) == 15).all() and (x.sum(axis=1) == 15).all()
    assert np.trace(x) == 15 and np.trace(x[:, ::-1]) == 15


def test_bad_argmin_arguments_are_located_errors():
    model = ebm.loads(DENOISE, backend="numpy")
    y = np.zeros((5, 6), dtype=int)
    bad = [dict(method="ilp", time_limit="5"), dict(method="annealing", sweeps=-5), dict(seed="a"),
           dict(method="annealing", time_limit=2), dict(time_limit=float("nan")), dict(method="BP")]
    for options in bad:
        with pytest.raises(EbmError):
            model.argmin(observed={"y": y}, **options)
    with pytest.raises(EbmError, match="did you mean 'bp'"):
        model.argmin(observed={"y": y}, method="BP")
    with pytest.raises(EbmError, match="has no rows"):
        model.argmin(observed={"y": np.zeros((0, 5, 6))})
    with pytest.raises(EbmError, match="k, the number of states to rank, must be a whole number"):
        model.rank(observed={"y": y}, k=1.5)
    assert model.argmin(observed={"y": y}, method="annealing").info["proven"] is False
    assert model.argmin(observed={"y": np.stack([y, y])}).info["proven"] is True


def test_rank_of_an_infeasible_model_says_so():
    k3 = np.array([[0, 1], [1, 2], [0, 2]])
    model = ebm.loads(COLOURING.format(edges=k3.tolist(), m=3, n=3, k=2), backend="numpy")
    with pytest.raises(EbmError, match="proven by enumerating"):
        model.rank(k=2)
