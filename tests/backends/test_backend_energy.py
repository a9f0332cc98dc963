"""Energies, per-term and per-factor energies agree with hand-written numpy oracles and
with ebmlang.graph.reference on every example, on every backend and dtype."""
from __future__ import annotations

import numpy as np
import pytest
from backend_testing import (
    CONFIGS,
    EXAMPLES,
    backend,
    close,
    compiled_example,
    compiled_hand,
    every_config,
    example_graph,
    hand_model,
    random_state,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from ir_builders import hand_models

from ebmlang.graph.reference import (
    reference_energy,
    reference_init_params,
    reference_template_energies,
    reference_term_energies,
)

SEEDS = st.integers(0, 2**32 - 1)
FEW = settings(max_examples=6, deadline=None)


def _as_numpy(name, dtype, tree):
    to_numpy = backend(name, dtype).to_numpy
    return {k: to_numpy(v) for k, v in tree.items()}


# The many-template op-coverage model costs seconds of XLA compile per dtype; float64
# and torch float32 cover it.
HAND_CASES = [
    (model, config) for model in sorted(hand_models()) for config in CONFIGS
    if not (model == "sink" and config == ("jax", "float32"))
]


@pytest.mark.parametrize("model,config", HAND_CASES, ids=[f"{m}-{n}-{d}" for m, (n, d) in HAND_CASES])
@FEW
@given(seed=SEEDS)
def test_hand_models_match_their_oracles(model, config, seed):
    name, dtype = config
    batch = 3  # one shape: every new batch size is a new JAX compilation
    hand = hand_model(model)
    rng = np.random.default_rng(seed)
    state, params = hand.sample_state(rng, batch), hand.params(rng)
    compiled = compiled_hand(model, name, dtype)

    terms = _as_numpy(name, dtype, compiled.term_energies(state, params))
    want_terms = {term: fn(state, params) for term, fn in hand.terms.items()}
    scale = sum(np.abs(v) for v in want_terms.values())
    assert set(terms) == set(want_terms)
    for term, want in want_terms.items():
        assert close(terms[term], want, dtype, np.abs(want)), term
    energy = backend(name, dtype).to_numpy(compiled.energy(state, params))
    assert energy.shape == (batch,)
    assert close(energy, hand.energy(state, params), dtype, scale)

    templates = _as_numpy(name, dtype, compiled.template_energies(state, params))
    for template in hand.graph.templates:
        assert templates[template.name].shape == (batch, template.num_ground)
    for term, want in want_terms.items():
        summed = sum(templates[t.name].sum(-1) for t in hand.graph.templates_of(term))
        assert close(summed, want, dtype, np.abs(want)), term


# Each example on three configs: the dtype pairs of each backend are the same code, and
# the hand-built models above run every (backend, dtype).
EXAMPLE_CONFIGS = [("numpy", "float64"), ("torch", "float32"), ("jax", "float64")]


@pytest.mark.parametrize("config", EXAMPLE_CONFIGS, ids=[f"{n}-{d}" for n, d in EXAMPLE_CONFIGS])
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.rsplit("/", 1)[-1])
@settings(max_examples=3, deadline=None)
@given(seed=SEEDS)
def test_examples_match_reference(config, path, seed):
    name, dtype = config
    graph = example_graph(path)
    compiled = compiled_example(path, name, dtype)
    rng = np.random.default_rng(seed)
    state = random_state(graph, rng, 3)
    # numpy-drawn params keep JAX's (slow to compile) PRNG out of this test; init_params
    # has its own tests.
    params = reference_init_params(graph, seed)

    want_templates = reference_template_energies(graph, state, params)
    got_templates = _as_numpy(name, dtype, compiled.template_energies(state, params))
    for template in graph.templates:
        want = want_templates[template.name]
        assert close(got_templates[template.name], want, dtype), template.name
    want_terms = reference_term_energies(graph, state, params)
    got_terms = _as_numpy(name, dtype, compiled.term_energies(state, params))
    scale = sum(np.abs(t).sum(-1) for t in want_templates.values())
    for term in graph.terms:
        assert close(got_terms[term], want_terms[term], dtype, scale), term
    got = backend(name, dtype).to_numpy(compiled.energy(state, params))
    assert close(got, reference_energy(graph, state, params), dtype, scale)


def test_backends_agree_with_each_other_on_the_ring_mixture():
    # torch and JAX against each other (not only against numpy) on one continuous model.
    hand = hand_model("ring_gmm")
    rng = np.random.default_rng(7)
    state, params = hand.sample_state(rng, 16), hand.params(rng)
    torch_energy = backend("torch", "float64").to_numpy(compiled_hand("ring_gmm", "torch", "float64").energy(state, params))
    jax_energy = backend("jax", "float64").to_numpy(compiled_hand("ring_gmm", "jax", "float64").energy(state, params))
    np.testing.assert_allclose(torch_energy, jax_energy, rtol=1e-12)


@every_config
def test_a_violated_constraint_gives_infinite_energy(config):
    name, dtype = config
    hand = hand_model("potts")
    state = hand.sample_state(np.random.default_rng(0), 4)
    state["x"][1, 0, 0] = 1.0  # the constraint says x[0, 0] != 1
    params = hand.params(np.random.default_rng(1))
    compiled = compiled_hand("potts", name, dtype)
    energy = backend(name, dtype).to_numpy(compiled.energy(state, params))
    assert np.isposinf(energy[1]) and np.all(np.isfinite(energy[[0, 2, 3]]))
    terms = _as_numpy(name, dtype, compiled.term_energies(state, params))
    assert np.isposinf(terms["corner"][1]) and np.all(np.isfinite(terms["pair"]))


@every_config
def test_a_group_with_batch_one_broadcasts(config):
    name, dtype = config
    hand = hand_model("rbm")
    rng = np.random.default_rng(3)
    state, params = hand.sample_state(rng, 6), hand.params(rng)
    state["v"] = state["v"][:1]
    compiled = compiled_hand("rbm", name, dtype)
    got = backend(name, dtype).to_numpy(compiled.energy(state, params))
    want = hand.energy({"v": np.repeat(state["v"], 6, 0), "h": state["h"]}, params)
    assert close(got, want, dtype)


def test_params_only_terms_broadcast_over_the_batch():
    # A term with no variables still gives [batch, num_ground] energies.
    from ir_builders import span

    from ebmlang.graph.ir import (
        REAL,
        Apply,
        FactorGraph,
        FactorTemplate,
        ParamGroup,
        ParamInit,
        ParamRef,
        Slot,
        VariableGroup,
    )

    at = span("reg.ebm", 1)
    graph = FactorGraph(
        "Reg", {"x": VariableGroup("x", (2,), REAL, False, at)},
        {"w": ParamGroup("w", (3,), ParamInit("value", value=np.array([1.0, -2.0, 3.0])), at)},
        (FactorTemplate("reg", "reg", Apply(at, "square", (ParamRef(at, "w", np.arange(3)),)), 3, ("i",), span=at),
         FactorTemplate("pull", "pull", Apply(at, "square", (Slot(at, "x", np.arange(2)),)), 2, ("i",), span=at)),
        ("reg", "pull"),
    )
    for name in ("numpy", "torch", "jax"):
        compiled = backend(name, "float64").compile(graph)
        params = compiled.init_params(backend(name, "float64").key(0))
        templates = compiled.template_energies({"x": np.zeros((4, 2))}, params)
        np.testing.assert_allclose(backend(name, "float64").to_numpy(templates["reg"]), np.tile([1.0, 4.0, 9.0], (4, 1)))
        np.testing.assert_allclose(backend(name, "float64").to_numpy(compiled.energy({"x": np.ones((4, 2))}, params)), 16.0)


@every_config
def test_empty_templates_and_size_one_scalar_params(config):
    # A `where` filter can leave a template with no ground factors; a param read through a
    # [1, 1] index is still a scalar factor of the whole template.
    from ir_builders import span

    from ebmlang.graph.ir import (
        REAL,
        Apply,
        FactorGraph,
        FactorTemplate,
        ParamGroup,
        ParamInit,
        ParamRef,
        Reduce,
        Slot,
        VariableGroup,
    )

    name, dtype = config
    at = span("edge.ebm", 1)
    nothing = np.zeros(0, dtype=np.int64)
    graph = FactorGraph(
        "Edge", {"x": VariableGroup("x", (3,), REAL, False, at)},
        {"w": ParamGroup("w", (1,), ParamInit("value", value=np.array([2.0])), at)},
        (FactorTemplate("empty", "empty", Apply(at, "mul", (Slot(at, "x", nothing), Slot(at, "x", nothing))), 0, ("i",), span=at),
         FactorTemplate("scaled", "scaled", Apply(at, "mul", (ParamRef(at, "w", np.zeros((1, 1), dtype=np.int64)),
                                                               Reduce(at, "sum", Slot(at, "x", np.arange(3)[None, :])))), 1, span=at)),
        ("empty", "scaled"),
    )
    compiled = backend(name, dtype).compile(graph)
    params = compiled.init_params(backend(name, dtype).key(0))
    state = {"x": np.array([[1.0, 2.0, 3.0], [0.0, 1.0, -1.0]])}
    to_numpy = backend(name, dtype).to_numpy
    np.testing.assert_allclose(to_numpy(compiled.energy(state, params)), [12.0, 0.0])
    terms = {k: to_numpy(v) for k, v in compiled.term_energies(state, params).items()}
    np.testing.assert_allclose(terms["empty"], [0.0, 0.0])
    assert to_numpy(compiled.template_energies(state, params)["empty"]).shape == (2, 0)
