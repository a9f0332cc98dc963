"""Structure queries: colourings are proper (checked edge by edge, vectorised), lattices get
the checkerboard, blankets/components/classification match what the models say."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from ir_testing import assert_proper, lower_example, lower_source, pairwise_graph

from ebmlang.errors import EbmError
from ebmlang.graph import ir, structure


def _random_edges(n: int, m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    edges = rng.integers(0, n, size=(m, 2))
    return edges[edges[:, 0] != edges[:, 1]]


@pytest.mark.parametrize("seed", range(4))
def test_greedy_colouring_is_proper_on_random_graphs(seed):
    n = 300
    edges = _random_edges(n, 1200, seed)
    g = pairwise_graph(n, edges)
    colouring = structure.colouring(g)
    assert colouring.method == "greedy"
    assert_proper(colouring, edges, {"x": n}, {"x": 0})
    max_degree = np.bincount(edges.reshape(-1), minlength=n).max()
    assert colouring.num_colours <= max_degree + 1


@pytest.mark.parametrize("seed", range(3))
def test_vectorised_fallback_colouring_is_proper(seed, monkeypatch):
    monkeypatch.setattr(structure, "NETWORKX_COLOURING_LIMIT", 0)
    n = 2000
    edges = _random_edges(n, 9000, seed)
    colouring = structure.colouring(pairwise_graph(n, edges))
    assert colouring.method == "jones-plassmann"
    assert_proper(colouring, edges, {"x": n}, {"x": 0})
    max_degree = np.bincount(edges.reshape(-1), minlength=n).max()
    assert colouring.num_colours <= max_degree + 1


def test_higher_order_factors_colour_every_pair_apart():
    # one factor over x[i], x[i+1], x[i+2]: all three must get different colours
    g = lower_source("""const N = 9
latent x[N] : binary
energy triple[i in 0..N-2] = x[i] * x[i+1] * x[i+2]
""")
    colouring = structure.colouring(g)
    edges = np.array([(i, i + d) for i in range(7) for d in (1, 2)])
    assert_proper(colouring, edges, {"x": 9}, {"x": 0})
    assert colouring.num_colours == 3


@pytest.mark.parametrize("L", [4, 8, 32, 256])
def test_periodic_even_lattice_gets_the_checkerboard(L):
    g = lower_example("ising", L=L)
    colouring = structure.colouring(g)
    # The coordinate parity, verified factor by factor without an edge list.
    assert colouring.method == "checkerboard" and colouring.num_colours == 2
    i, j = np.indices((L, L))
    board = colouring.colour_of["s"].reshape(L, L)
    assert np.array_equal(board, (i + j) % 2) or np.array_equal(board, 1 - (i + j) % 2)
    assert_proper(colouring, structure.interaction_edges(g), {"s": L * L}, {"s": 0})


def test_a_bipartite_graph_that_is_not_a_checkerboard_falls_back_to_bfs_parity():
    # Pairs at distance 2 along a chain: two interleaved paths, bipartite, but i and i + 2
    # have the same coordinate parity.
    g = lower_source("""
const N = 10
latent s[N] : spin
energy skip = -sum(i in 0..N-2) s[i] * s[i + 2]
""")
    colouring = structure.colouring(g)
    assert colouring.method == "bipartite" and colouring.num_colours == 2
    assert_proper(colouring, np.array([(i, i + 2) for i in range(8)]), {"s": 10}, {"s": 0})


@pytest.mark.parametrize("L", [3, 5, 9])
def test_periodic_odd_lattice_is_not_bipartite_but_coloured_properly(L):
    g = lower_example("ising", L=L)
    colouring = structure.colouring(g)
    assert colouring.method == "greedy" and 3 <= colouring.num_colours <= 5
    edges = structure.interaction_edges(g)
    assert_proper(colouring, edges, {"s": L * L}, {"s": 0})


def test_interaction_edges_of_the_lattice_and_of_observed_data():
    g = lower_example("ising", L=6)
    edges = structure.interaction_edges(g)
    assert edges.shape == (2 * 36, 2) and np.all(edges[:, 0] < edges[:, 1])
    denoise = lower_example("denoise", N=4)
    latent = structure.interaction_edges(denoise)
    everything = structure.interaction_edges(denoise, latent_only=False)
    numbering = structure.ground_numbering(denoise)
    y_ids = numbering.to_global("y", np.arange(16))
    assert not np.isin(latent, y_ids).any()
    assert len(everything) == len(latent) + 16  # plus one x-y edge per pixel
    assert len(latent) == 2 * 4 * 3  # open 4x4 grid


def test_bipartite_grid_with_observed_data_uses_two_colours():
    colouring = structure.colouring(lower_example("denoise", N=16))
    assert colouring.method == "checkerboard" and colouring.num_colours == 2
    assert set(colouring.classes[0]) == {"x"}  # observed y is never coloured


def test_rbm_hidden_units_form_one_block():
    g = lower_example("rbm", V=5, H=3)
    assert structure.markov_blanket(g, "h") == ("v",)
    assert structure.markov_blanket(g, "v") == ("h",)
    colouring = structure.colouring(g)
    assert colouring.method == "trivial" and colouring.num_colours == 1
    np.testing.assert_array_equal(colouring.classes[0]["h"], np.arange(3))
    blanket = structure.markov_blanket_of(g, "h", 2)
    assert list(blanket) == ["v"] and blanket["v"].tolist() == [0, 1, 2, 3, 4]


def test_markov_blanket_of_a_lattice_site():
    L = 5
    g = lower_example("ising", L=L)
    assert structure.markov_blanket(g, "s") == ("s",)
    blanket = structure.markov_blanket_of(g, "s", 0)
    assert blanket["s"].tolist() == sorted([1, L - 1, L, (L - 1) * L])
    with pytest.raises(EbmError, match="out of range"):
        structure.markov_blanket_of(g, "s", L * L)
    with pytest.raises(EbmError, match="no variable group 'q'"):
        structure.markov_blanket(g, "q")


def test_connected_components_and_state_space():
    g = lower_source("""latent a[4] : binary
latent b[3] : categorical(3)
energy chain[i in 0..2] = a[i] * a[i+1]
energy lone = [b[0] == b[1]]
""")
    components = structure.connected_components(g)
    # {a0, a1, a2}, {a3}, {b0, b1}, {b2}
    assert components.count == 4
    assert len(set(components.labels["a"][:3])) == 1 and components.labels["a"][3] != components.labels["a"][0]
    assert components.labels["b"][0] == components.labels["b"][1] != components.labels["b"][2]
    assert structure.discrete_state_space_size(g) == 2**4 * 3**3
    assert structure.discrete_state_space_size(g, log10=True) == pytest.approx(np.log10(2**4 * 3**3))
    big = lower_example("ising", L=32)
    assert structure.discrete_state_space_size(big) == 2**1024
    assert structure.discrete_state_space_size(big, log10=True) == pytest.approx(1024 * np.log10(2))


def test_classify_orders_domains_and_tables():
    denoise = lower_example("denoise", N=4)
    data = structure.classify(denoise.templates_of("data")[0], denoise)
    assert (data.arity, data.latent_arity, data.order) == (2, 1, "unary")
    assert data.observed_groups == ("y",) and data.latent_groups == ("x",)
    assert data.tabular and data.table_size == 2
    right = structure.classify(denoise.templates_of("right")[0], denoise)
    assert (right.order, right.table_size, right.domains) == ("pairwise", 4, ("categorical",))

    ring = lower_example("ring")
    mixture = structure.classify(ring.templates[0], ring)
    assert mixture.differentiable and not mixture.tabular and mixture.table_size is None
    assert mixture.latent_arity == 2  # x[0] and x[1] through the inner reduction

    sudoku = lower_example("sudoku")
    row = structure.classify(sudoku.templates_of("row")[0], sudoku)
    assert row.is_constraint and not row.differentiable and row.tabular and row.table_size == 16

    g = lower_source("""const N = 6
latent x[N] : binary
latent r : real
extern g
energy triple[i in 0..N-2] = x[i] * x[i+1] * x[i+2]
energy lse = log(sum(j in 0..N) exp(x[j]))
energy odd = g(r)
""")
    triple = structure.classify(g.templates_of("triple")[0], g)
    assert (triple.order, triple.table_size) == ("higher", 8)
    lse = structure.classify(g.templates_of("lse")[0], g)
    assert (lse.latent_arity, lse.table_size, lse.tabular) == (6, 64, True)
    odd = structure.classify(g.templates_of("odd")[0], g)
    assert odd.has_extern and not odd.differentiable


def test_ragged_padding_is_not_a_variable():
    # sum(j in 0..i+1) keeps an inner axis of length N padded with a mask; padded slots
    # read index 0 but must not count as reads of x[0]
    g = lower_source("""const N = 4
latent x[N] : binary
energy pre[i in 0..N] = log(sum(j in 0..i+1) exp(x[j]))
""")
    (t,) = g.templates
    assert any(isinstance(n, ir.Reduce) and n.mask is not None for n in ir.walk(t.body))
    info = structure.classify(t, g)
    assert info.latent_arity == 4
    incidence = structure.template_incidence(t)[0].flat
    assert (incidence >= 0).sum(axis=1).tolist() == [1, 2, 3, 4]
    assert structure.markov_blanket_of(g, "x", 3)["x"].tolist() == [0, 1, 2]
    np.testing.assert_array_equal(structure.markov_blanket_of(g, "x", 0)["x"], [1, 2, 3])


def test_structure_graph_is_bipartite_with_attributes():
    g = lower_example("rbm", V=4, H=2)
    sg = structure.structure_graph(g)
    assert nx.is_bipartite(sg)
    assert sg.nodes[("variable", "v")]["observed"] and sg.nodes[("variable", "h")]["shape"] == (2,)
    assert sg.nodes[("factor", "interaction")]["params"] == ("W",)
    assert sg.nodes[("factor", "interaction")]["num_ground"] == 8
    assert set(sg[("factor", "interaction")]) == {("variable", "v"), ("variable", "h")}
    assert sg.graph["params"] == {"W": (4, 2), "b": (4,), "c": (2,)}


def test_ground_graph_for_small_models_and_refusal_for_large():
    g = lower_example("ising", L=3)
    gg = structure.ground_graph(g)
    assert gg.number_of_nodes() == 9 + 3 * 9
    assert gg.number_of_edges() == 2 * 9 + 2 * 9 + 9
    assert gg.degree[("variable", "s", 4)] == 2 + 2 + 1  # its own two bonds, two neighbours', its field
    with pytest.raises(EbmError, match="more than max_nodes=20"):
        structure.ground_graph(g, max_nodes=20)


def test_ground_numbering_round_trip():
    g = lower_example("denoise", N=3)
    numbering = structure.ground_numbering(g)
    assert numbering.groups == ("y", "x") and numbering.total == 18
    ids = numbering.to_global("x", [0, 8])
    assert ids.tolist() == [9, 17]
    position, flat = numbering.to_local([0, 9, 17])
    assert position.tolist() == [0, 1, 1] and flat.tolist() == [0, 0, 8]
    assert {k: v.tolist() for k, v in numbering.split([17, 2, 9, 2]).items()} == {"y": [2], "x": [0, 8]}


def test_results_are_cached_per_graph():
    g = lower_example("ising", L=4)
    assert structure.colouring(g) is structure.colouring(g)
    assert structure.interaction_edges(g) is structure.interaction_edges(g)
    other = lower_example("ising", L=6)
    assert structure.colouring(other).colour_of["s"].shape == (36,)


def test_index_arrays_are_stored_compactly_with_a_margin():
    from ebmlang.graph.ir import compact_index

    assert compact_index(np.array([0, 5, 70000])).dtype == np.int32
    assert compact_index(np.array([0, 2 ** 31 - 1])).dtype == np.int64  # no room for +1
    assert compact_index(np.array([-2, 3]), smallest=np.int8).dtype == np.int8
    assert compact_index(np.array([0, 127]), smallest=np.int8).dtype == np.int16
    assert compact_index(np.array([0, 4095]), smallest=np.int16).dtype == np.int16
    assert compact_index(np.zeros((4, 0), dtype=np.int64)).shape == (4, 0)
    values = np.array([3, 1, 4, 1, 5])
    assert np.array_equal(compact_index(values), values)
    # A large lattice's templates and slots hold int16 coordinates and int32 flat indices.
    graph = lower_source("const L = 300\nlatent s[L, L] : spin\nparam J = 1.0\n"
                          "energy e[i in 0..L, j in 0..L] = -J * s[i, j] * s[(i + 1) % L, j]\n")
    template = graph.templates[0]
    assert template.index_values.dtype == np.int16
    assert {s.index.dtype for s in template.slots} == {np.dtype(np.int32)}


def test_colouring_is_proper_when_global_ids_squared_leave_int32():
    # 50,003 variables: a pair key lo * total + hi passes 2^31 -- computed in int32 from
    # compact flat indices, it wrapped and put the triangle's three spins in one class.
    graph = lower_source("latent a[50000] : spin\nlatent t[3] : spin\n"
                         "energy u[i in 0..50000] = -0.1 * a[i]\n"
                         "energy tri = -0.8 * (t[0] * t[1] + t[1] * t[2] + t[0] * t[2])\n")
    colours = structure.colouring(graph).colour_of["t"]
    assert len(set(colours.tolist())) == 3


def test_a_contraction_over_a_wide_negative_range_keeps_its_box():
    # Index values from -20000 to 19999 fit int16 one by one but not their spread: the
    # box extent (max - min + 1) must not wrap.
    import ebmlang

    model = ebmlang.loads("latent v[40000] : binary\nlatent h[2] : binary\nparam W[40000, 2] = 0.001\n"
                          "energy e = -sum(i in -20000..20000, k in 0..2) v[i + 20000] * W[i + 20000, k] * h[k]\n",
                          backend="numpy", dtype="float64")
    assert model.graph.templates[0].index_values.dtype != np.int16
    np.testing.assert_allclose(model.energy(v=np.ones(40000), h=np.ones(2)), [-80.0], rtol=1e-12)
