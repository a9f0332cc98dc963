"""Local conditionals against brute force: set each block variable to each value, take
the oracle energy, and compare up to a constant per variable."""
from __future__ import annotations

import numpy as np
import pytest
from backend_testing import (
    CONFIGS,
    EXAMPLES,
    backend,
    check_block,
    close,
    compiled_example,
    compiled_hand,
    example_graph,
    hand_model,
    random_state,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from ebmlang.errors import EbmError
from ebmlang.graph.reference import reference_energy, reference_init_params
from ebmlang.graph.structure import colouring

SEEDS = st.integers(0, 2**32 - 1)


DISCRETE = [("ising", "s"), ("ising_open", "s"), ("rbm", "h"), ("rbm", "v"), ("potts", "x"),
            ("classifier", "y"), ("sink", "k"), ("tricky", "z")]


EAGER_CONFIGS = [c for c in CONFIGS if c[0] != "jax"]


@pytest.mark.parametrize("config", EAGER_CONFIGS, ids=[f"{n}-{d}" for n, d in EAGER_CONFIGS])
@pytest.mark.parametrize("model,group", DISCRETE)
@settings(max_examples=4, deadline=None)
@given(seed=SEEDS, data=st.data())
def test_conditionals_match_brute_force_for_any_block(config, model, group, seed, data):
    # Any block, even one whose variables share factors: each row is the variable's
    # conditional given the current values of all the others. (JAX compiles a kernel
    # per block, so it gets the fixed blocks of the next test instead of random ones.)
    name, dtype = config
    hand = hand_model(model)
    rng = np.random.default_rng(seed)
    state, params = hand.sample_state(rng, 2), hand.params(rng)
    size = hand.graph.variables[group].size
    indices = data.draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=size, unique=True))
    compiled = compiled_hand(model, name, dtype)
    check_block(compiled, lambda s: hand.energy(s, params), group, np.array(indices), state, params, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("model,group", DISCRETE)
def test_jax_conditionals_of_a_whole_group(dtype, model, group):
    hand = hand_model(model)
    rng = np.random.default_rng(9)
    state, params = hand.sample_state(rng, 2), hand.params(rng)
    # every variable at once, in a scrambled order: most pairs share factors
    indices = rng.permutation(hand.graph.variables[group].size)
    compiled = compiled_hand(model, "jax", dtype)
    check_block(compiled, lambda s: hand.energy(s, params), group, indices, state, params, dtype)


# JAX compiles a kernel per block; its float32 conditionals are covered by the whole-group test.
CLASS_CONFIGS = [c for c in CONFIGS if c != ("jax", "float32")]


@pytest.mark.parametrize("config", CLASS_CONFIGS, ids=[f"{n}-{d}" for n, d in CLASS_CONFIGS])
@pytest.mark.parametrize("model", ["ising", "potts", "tricky", "rbm"])
def test_conditionals_of_every_colour_class(config, model):
    name, dtype = config
    hand = hand_model(model)
    rng = np.random.default_rng(5)
    state, params = hand.sample_state(rng, 3), hand.params(rng)
    compiled = compiled_hand(model, name, dtype)
    classes = colouring(hand.graph).classes
    assert classes
    for members in classes:
        for group, indices in members.items():
            check_block(compiled, lambda s: hand.energy(s, params), group, indices, state, params, dtype)


SUDOKU_SOLUTION = np.array([[1, 3, 2, 4], [4, 2, 3, 1], [2, 4, 1, 3], [3, 1, 4, 2]], dtype=float)

DISCRETE_EXAMPLES = [p for p in EXAMPLES if any(
    not v.observed and v.domain.is_discrete for v in example_graph(p).variables.values())]


@pytest.mark.parametrize("name", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("path", DISCRETE_EXAMPLES, ids=lambda p: p.rsplit("/", 1)[-1])
def test_example_conditionals_match_the_reference(name, path):
    graph = example_graph(path)
    rng = np.random.default_rng(8)
    state = random_state(graph, rng, 2)
    if path.endswith("sudoku.ebm"):  # random grids break constraints away from any block
        state = {"x": np.repeat(SUDOKU_SOLUTION[None], 2, axis=0)}
    if path.endswith("queens.ebm"):  # so do random boards
        state = {"q": np.repeat(np.array([[0, 2, 5, 7, 9, 4, 8, 1, 3, 6]], dtype=float), 2, axis=0)}
    params = reference_init_params(graph, 3)
    compiled = compiled_example(path, name, "float64")
    for members in colouring(graph).classes[:2]:
        for group, indices in members.items():
            # at most 12 variables per class: brute force costs n * K reference energies
            chosen = rng.choice(indices, size=min(12, len(indices)), replace=False)
            check_block(compiled, lambda s: reference_energy(graph, s, params), group, chosen, state, params, "float64")


def test_a_violated_value_is_infinite_in_the_table():
    hand = hand_model("potts")
    state, params = hand.sample_state(np.random.default_rng(0), 2), hand.params(np.random.default_rng(1))
    for name in ("numpy", "torch", "jax"):
        table = backend(name, "float64").to_numpy(
            compiled_hand("potts", name, "float64").local_conditional("x", [0, 4], state, params))
        assert np.all(np.isposinf(table[:, 0, 1])) and np.all(np.isfinite(table[:, 0, [0, 2]]))
        assert np.all(np.isfinite(table[:, 1]))


def test_block_plans_are_cached_per_group_and_indices():
    compiled = backend("torch", "float64").compile(hand_model("ising").graph)
    hand = hand_model("ising")
    state, params = hand.sample_state(np.random.default_rng(0), 2), hand.params(np.random.default_rng(0))
    compiled.local_conditional("s", np.array([0, 2]), state, params)
    compiled.local_conditional("s", [0, 2], state, params)
    assert len(compiled._blocks) == 1
    compiled.local_conditional("s", [1, 3], state, params)
    assert len(compiled._blocks) == 2


def test_only_templates_touching_the_block_are_evaluated():
    from ebmlang.backends.evaluator import plan_block

    graph = hand_model("rbm").graph
    plan = plan_block(graph, "h", np.array([1]))
    assert {t.template.name for t in plan.templates} == {"interaction", "hidden_bias"}
    # interaction rows: every visible unit's factor reads h[1] once
    interaction = plan.templates[[t.template.name for t in plan.templates].index("interaction")]
    assert interaction.num_rows == graph.variables["v"].size


def test_conditionals_work_inside_an_outer_jax_jit():
    import jax

    hand = hand_model("ising")
    state, params = hand.sample_state(np.random.default_rng(0), 2), hand.params(np.random.default_rng(0))
    compiled = compiled_hand("ising", "jax", "float64")
    inside = jax.jit(lambda s, p: compiled.local_conditional("s", np.array([0, 5, 10]), s, p))
    outside = compiled.local_conditional("s", np.array([0, 5, 10]), state, params)
    np.testing.assert_allclose(np.asarray(inside(state, params)), np.asarray(outside), rtol=1e-12)


@pytest.mark.parametrize("group,indices,message", [
    ("q", [0], "no variable group 'q'"),
    ("x", [0], "need a discrete group"),
    ("k", [0, 4], "must lie in 0..3"),
    ("k", [1, 1], "repeat a variable"),
    ("k", [], "empty block"),
])
def test_bad_blocks_are_errors(group, indices, message):
    hand = hand_model("sink")
    state, params = hand.sample_state(np.random.default_rng(0), 1), hand.params(np.random.default_rng(0))
    with pytest.raises(EbmError, match=message):
        compiled_hand("sink", "numpy", "float64").local_conditional(group, np.array(indices, dtype=np.int64), state, params)


def test_lattice_class_rows_need_no_masks_and_no_scatter():
    # A checkerboard class of the periodic Ising: every part of every template reads the
    # row's variable through one whole slot, and covers each variable once, in order.
    from ebmlang.backends.evaluator import plan_block

    graph = hand_model("ising").graph
    members = colouring(graph).classes[0]["s"]
    plan = plan_block(graph, "s", members)
    # coupling split three ways (the variable as centre, right or down neighbour), and field
    assert [t.template.name for t in plan.templates] == ["coupling"] * 3 + ["field"]
    for template, target in zip(plan.templates, plan.targets):
        assert len(template.free_everywhere) == 1 and not template.free
        assert target is None


def test_rows_reading_the_variable_at_some_inner_positions_keep_a_mask():
    from ebmlang.backends.evaluator import plan_block

    graph = hand_model("tricky").graph
    plan = plan_block(graph, "z", np.array([2]))
    inner = [t for t in plan.templates if t.template.name == "inner"]
    # factors i != 2 read z[2] at one inner position (a mask); factor 2 reads it as its own
    # z[i] (no mask) and also at its masked-out inner position j = 2 (a mask)
    assert sorted((len(t.free_everywhere), len(t.free)) for t in inner) == [(0, 1), (1, 1)]
