"""Every example lowers to a well-formed factor graph, and the key examples lower to the
exact templates (names, ground counts, index arrays) the rest of the system relies on."""
from __future__ import annotations

import numpy as np
import pytest
from ir_testing import EXAMPLE_FILES, lower_example

from ebmlang.graph import ir, structure
from ebmlang.graph.lower import lower_program
from ebmlang.language.checker import check_source


def _leaf_depths(node: ir.Node, depth: int = 0, entries: bool = False):
    """(leaf, reduction depth, whether it lays out the entries a Select picks from) for
    every leaf with an index/array."""
    if isinstance(node, (ir.Slot, ir.ParamRef, ir.Data)):
        yield node, depth, entries
    if isinstance(node, ir.Reduce):
        yield from _leaf_depths(node.body, depth + 1)
        return
    if isinstance(node, ir.Select):
        yield from _leaf_depths(node.vector, depth, not isinstance(node.vector, ir.Neural))
        yield from _leaf_depths(node.index, depth)
        return
    for child in node.children():
        yield from _leaf_depths(child, depth)


def _assert_well_formed(g: ir.FactorGraph) -> None:
    assert set(t.term for t in g.templates) <= set(g.terms)
    assert len({t.name for t in g.templates}) == len(g.templates)
    for t in g.templates:
        assert t.num_ground >= 1
        assert t.index_values.shape == (t.num_ground, len(t.index_names))
        for leaf, depth, entries in _leaf_depths(t.body):
            array = leaf.array if isinstance(leaf, ir.Data) else leaf.index
            if array is None:  # a scalar param
                continue
            vector = isinstance(leaf, ir.Slot) and leaf.vector
            assert array.ndim == depth + 1 + (vector or entries), (t.name, leaf)
            assert array.shape[0] in (1, t.num_ground), (t.name, leaf)
            if isinstance(leaf, ir.Slot):
                assert leaf.group in g.variables
                assert array.min() >= 0 and array.max() < g.variables[leaf.group].size
            if isinstance(leaf, ir.ParamRef):
                assert array.min() >= 0 and array.max() < g.params[leaf.param].size
        for name in t.param_names:
            assert name in g.params, (t.name, name)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_model_of_every_example_lowers(path):
    checked = check_source(path.read_text(), str(path))
    assert checked.models, path
    for name in checked.models:
        graph = lower_program(checked, name)
        _assert_well_formed(graph)
    assert lower_program(checked).name == checked.default


def test_ising_coupling_splits_into_two_pairwise_templates():
    L = 5
    g = lower_example("ising", L=L)
    assert [t.name for t in g.templates] == ["coupling#0", "coupling#1", "field"]
    assert [t.term for t in g.templates] == ["coupling", "coupling", "field"]
    i, j = np.divmod(np.arange(L * L), L)
    right_neighbour = {"coupling#0": ((i + 1) % L) * L + j, "coupling#1": i * L + (j + 1) % L}
    for t in g.templates[:2]:
        assert t.num_ground == L * L and t.index_names == ("i", "j")
        np.testing.assert_array_equal(t.index_values, np.stack([i, j], axis=1))
        first, second = (s.index for s in t.slots)
        np.testing.assert_array_equal(first, i * L + j)
        np.testing.assert_array_equal(second, right_neighbour[t.name])
        assert structure.classify(t, g).order == "pairwise"
    assert structure.classify(g.templates[2], g).order == "unary"


def test_rbm_interaction_sum_is_promoted_to_pairwise_ground_factors():
    g = lower_example("rbm", V=6, H=4)
    interaction, visible_bias, hidden_bias = g.templates
    assert interaction.name == "interaction" and interaction.index_names == ("i", "k")
    assert interaction.num_ground == 24
    v_slot, h_slot = interaction.slots
    i, k = interaction.index_values.T
    np.testing.assert_array_equal(v_slot.index, i)
    np.testing.assert_array_equal(h_slot.index, k)
    # W[i, k] is read at the flat index i * H + k of each ground factor
    (w_ref,) = [n for n in ir.walk(interaction.body) if isinstance(n, ir.ParamRef)]
    np.testing.assert_array_equal(w_ref.index, i * 4 + k)
    # `-sum(i) b[i]*v[i] - sum(k) c[k]*h[k]` is two additive parts with their own ground indices
    assert (visible_bias.name, visible_bias.num_ground, visible_bias.groups) == ("biases#0", 6, ("v",))
    assert (hidden_bias.name, hidden_bias.num_ground, hidden_bias.groups) == ("biases#1", 4, ("h",))
    assert structure.markov_blanket(g, "h") == ("v",)


def test_where_filter_keeps_only_matching_index_tuples():
    g = lower_example("boltzmann", N=5)
    pairs = g.templates[0]
    assert pairs.num_ground == 10
    i, j = pairs.index_values.T
    assert np.all(i < j)
    assert {tuple(r) for r in pairs.index_values.tolist()} == {(a, b) for a in range(5) for b in range(a + 1, 5)}


def test_sudoku_constraints_and_filtered_clues():
    g = lower_example("sudoku")
    clue = g.templates_of("clue")[0]
    assert clue.is_constraint and clue.num_ground == 4  # four nonzero givens
    assert isinstance(clue.body, ir.Apply) and clue.body.fn == "violation"
    assert all(t.is_constraint for t in g.templates)
    assert [t.num_ground for t in g.templates_of("row")] == [4 * 6]


def test_ring_keeps_logsumexp_inside_with_folded_centres():
    g = lower_example("ring")
    (t,) = g.templates
    assert t.num_ground == 1
    reduces = [n for n in ir.walk(t.body) if isinstance(n, ir.Reduce)]
    # An unfiltered reduction still carries an all-True mask: it gives the reduced axis its
    # length (K = 8) even where the body does not depend on the index.
    assert [r.op for r in reduces] == ["logsumexp"]
    assert reduces[0].mask.shape[-1] == 8 and reduces[0].mask.all()
    # R*cos(2*pi*k/K) is a compile-time array over the inner axis k: Data [1, K]
    data = [n.array for n in ir.walk(t.body) if isinstance(n, ir.Data)]
    k = np.arange(8)
    expected = {tuple(np.round(4.0 * np.cos(2 * np.pi * k / 8), 12)),
                tuple(np.round(4.0 * np.sin(2 * np.pi * k / 8), 12))}
    assert {tuple(np.round(d.reshape(-1), 12)) for d in data if d.shape == (1, 8)} == expected


def test_classifier_selects_an_mlp_output_with_a_vector_slot():
    g = lower_example("classifier", D=5, C=3)
    (t,) = g.templates
    (select,) = [n for n in ir.walk(t.body) if isinstance(n, ir.Select)]
    assert isinstance(select.vector, ir.Neural) and select.vector.param == "f"
    (x_slot,) = select.vector.args
    assert x_slot.vector and x_slot.group == "x"
    np.testing.assert_array_equal(x_slot.index, np.arange(5)[None])
    assert isinstance(select.index, ir.Slot) and select.index.group == "y"
    assert g.params["f"].init.kind == "mlp" and g.params["f"].init.layer_sizes == (5, 128, 3)


def test_param_initialisations():
    g = lower_example("rbm", V=3, H=2)
    assert g.params["W"].init.kind == "normal" and g.params["W"].init.args == (0.0, 0.01)
    assert g.params["b"].init.kind == "value"
    np.testing.assert_array_equal(g.params["b"].init.value, np.zeros(3))
    bounded = lower_example("bounded")
    assert bounded.params["a"].bounds == (0.5, 20.0)
    np.testing.assert_array_equal(bounded.params["a"].init.value, np.full(3, 2.0))
    assert bounded.variables["p"].domain == ir.bounded(0.0, 1.0)
    sudoku = lower_example("sudoku")
    assert sudoku.variables["x"].domain == ir.Domain("integer", num_values=4, first_value=1)
