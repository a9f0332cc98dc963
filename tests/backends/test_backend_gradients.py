"""State and parameter gradients against central finite differences (float64), torch
against JAX, weighted objectives, and the numpy backend's refusal to differentiate."""
from __future__ import annotations

import numpy as np
import pytest
from backend_testing import backend, compiled_example, compiled_hand, example_graph, hand_model, random_state
from hypothesis import given, settings
from hypothesis import strategies as st

from ebmlang.errors import EbmError
from ebmlang.graph.reference import reference_energy, reference_init_params

AUTODIFF = ["torch", "jax"]
SEEDS = st.integers(0, 2**32 - 1)
# Central differences in float64 with h = 1e-6: truncation ~h^2 |f'''| ~ 1e-12 and
# rounding ~1e-16 |f| / h ~ 1e-10 for |f| ~ 1e3, so 1e-6 relative (plus 1e-6 absolute)
# cannot hide a wrong derivative but never trips on noise.
STEP, RTOL, ATOL = 1e-6, 1e-6, 1e-6

# Models with real groups: (model, groups to differentiate).
CONTINUOUS = [("ring_gmm", ("x",)), ("classifier", ("x",)), ("extern", ("x",)), ("sink", ("x",)),
              ("ising", ("s",))]  # spins read as reals: the benchmark's Langevin-style gradient
PARAMETRIC = ["ising", "rbm", "potts", "ring_gmm", "classifier", "extern", "sink"]


def finite_difference_state(energy, state, group):
    """d energy_b / d state[group]_b by central differences, one coordinate at a time."""
    base = state[group]
    grad = np.zeros_like(base)
    flat_grad = grad.reshape(base.shape[0], -1)
    for coordinate in range(flat_grad.shape[1]):
        step = np.zeros(flat_grad.shape[1])
        step[coordinate] = STEP
        step = step.reshape(base.shape[1:])
        up = energy({**state, group: base + step})
        down = energy({**state, group: base - step})
        flat_grad[:, coordinate] = (up - down) / (2 * STEP)
    return grad


def finite_difference_params(objective, params):
    grads = {}
    for name, value in params.items():
        value = np.asarray(value, dtype=np.float64)
        grad = np.zeros(value.size)
        for coordinate in range(value.size):
            step = np.zeros(value.size)
            step[coordinate] = STEP
            up = objective({**params, name: value + step.reshape(value.shape)})
            down = objective({**params, name: value - step.reshape(value.shape)})
            grad[coordinate] = (up - down) / (2 * STEP)
        grads[name] = grad.reshape(value.shape)
    return grads


@pytest.mark.parametrize("name", AUTODIFF)
@pytest.mark.parametrize("model,groups", CONTINUOUS)
@settings(max_examples=3, deadline=None)
@given(seed=SEEDS)
def test_state_gradients_match_finite_differences(name, model, groups, seed):
    hand = hand_model(model)
    rng = np.random.default_rng(seed)
    state, params = hand.sample_state(rng, 3), hand.params(rng)
    compiled = compiled_hand(model, name, "float64")
    to_numpy = backend(name, "float64").to_numpy
    energy, grads = compiled.energy_and_grad_state(state, params, groups)
    np.testing.assert_allclose(to_numpy(energy), hand.energy(state, params), rtol=1e-10, atol=1e-10)
    assert list(grads) == list(groups)
    for group in groups:
        want = finite_difference_state(lambda s: hand.energy(s, params), state, group)
        np.testing.assert_allclose(to_numpy(grads[group]), want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", AUTODIFF)
@pytest.mark.parametrize("model", PARAMETRIC)
@settings(max_examples=2, deadline=None)
@given(seed=SEEDS)
def test_param_gradients_match_finite_differences(name, model, seed):
    hand = hand_model(model)
    rng = np.random.default_rng(seed)
    state, params = hand.sample_state(rng, 4), hand.params(rng)
    compiled = compiled_hand(model, name, "float64")
    to_numpy = backend(name, "float64").to_numpy
    weights = rng.normal(size=4)

    got = {k: to_numpy(v) for k, v in compiled.grad_params(state, params).items()}
    want = finite_difference_params(lambda p: hand.energy(state, p).mean(), params)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=RTOL, atol=ATOL, err_msg=key)

    weighted = {k: to_numpy(v) for k, v in compiled.grad_params(state, params, weights).items()}
    want = finite_difference_params(lambda p: (weights * hand.energy(state, p)).sum(), params)
    for key in want:
        np.testing.assert_allclose(weighted[key], want[key], rtol=RTOL, atol=ATOL, err_msg=key)


CONTINUOUS_EXAMPLES = ["gaussian.ebm", "ring.ebm", "bounded.ebm"]


@pytest.mark.parametrize("name", AUTODIFF)
@pytest.mark.parametrize("example", CONTINUOUS_EXAMPLES)
def test_example_gradients_match_finite_differences_of_the_reference(name, example):
    from backend_testing import ROOT

    path = f"{ROOT}/examples/{example}"
    graph = example_graph(path)
    rng = np.random.default_rng(11)
    state = random_state(graph, rng, 3)
    params = reference_init_params(graph, 5)
    compiled = compiled_example(path, name, "float64")
    to_numpy = backend(name, "float64").to_numpy
    groups = tuple(graph.latent)
    _, grads = compiled.energy_and_grad_state(state, params, groups)
    for group in groups:
        want = finite_difference_state(lambda s: reference_energy(graph, s, params), state, group)
        np.testing.assert_allclose(to_numpy(grads[group]), want, rtol=RTOL, atol=ATOL)
    got = {k: to_numpy(v) for k, v in compiled.grad_params(state, params).items()}
    want = finite_difference_params(lambda p: reference_energy(graph, state, p).mean(), params)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=RTOL, atol=ATOL, err_msg=key)


def test_torch_and_jax_gradients_agree_in_float32():
    hand = hand_model("classifier")
    rng = np.random.default_rng(2)
    state, params = hand.sample_state(rng, 8), hand.params(rng)
    results = {}
    for name in AUTODIFF:
        compiled = compiled_hand("classifier", name, "float32")
        to_numpy = backend(name, "float32").to_numpy
        _, grads = compiled.energy_and_grad_state(state, params, ("x",))
        results[name] = {"x": to_numpy(grads["x"]),
                         **{k: to_numpy(v) for k, v in compiled.grad_params(state, params).items()}}
    for key, value in results["torch"].items():
        # float32 with O(10) accumulated products: 1e-4 relative to the gradient scale.
        np.testing.assert_allclose(results["jax"][key], value, rtol=1e-4, atol=1e-4 * np.abs(value).max(), err_msg=key)


@pytest.mark.parametrize("name", AUTODIFF)
def test_a_group_no_term_reads_has_zero_gradient(name):
    from ir_builders import span

    from ebmlang.graph.ir import REAL, Apply, FactorGraph, FactorTemplate, Slot, VariableGroup

    at = span("unused.ebm", 1)
    graph = FactorGraph(
        "Unused",
        {"x": VariableGroup("x", (2,), REAL, False, at), "z": VariableGroup("z", (3,), REAL, False, at)},
        {}, (FactorTemplate("pull", "pull", Apply(at, "square", (Slot(at, "x", np.arange(2)),)), 2, ("i",), span=at),),
        ("pull",),
    )
    compiled = backend(name, "float64").compile(graph)
    state = {"x": np.array([[1.0, -2.0]]), "z": np.ones((1, 3))}
    energy, grads = compiled.energy_and_grad_state(state, {}, ("z", "x"))
    assert list(grads) == ["z", "x"]
    np.testing.assert_array_equal(backend(name, "float64").to_numpy(grads["z"]), np.zeros((1, 3)))
    np.testing.assert_allclose(backend(name, "float64").to_numpy(grads["x"]), [[2.0, -4.0]])


def test_torch_gradients_do_not_touch_the_callers_tensors():
    import torch

    hand = hand_model("ring_gmm")
    rng = np.random.default_rng(4)
    state = {k: torch.tensor(v, requires_grad=True) for k, v in hand.sample_state(rng, 2).items()}
    params = {k: torch.tensor(v, requires_grad=True) for k, v in hand.params(rng).items()}
    compiled = compiled_hand("ring_gmm", "torch", "float64")
    energy, grads = compiled.energy_and_grad_state(state, params, ("x",))
    assert not energy.requires_grad and state["x"].grad is None
    assert all(p.grad is None for p in params.values())
    # energy() itself stays differentiable for callers that backprop through it
    compiled.energy(state, params).sum().backward()
    np.testing.assert_allclose(state["x"].grad.numpy(), grads["x"].numpy(), rtol=1e-12)


def test_numpy_backend_refuses_gradients_with_a_hint():
    hand = hand_model("ring_gmm")
    state, params = hand.sample_state(np.random.default_rng(0), 2), hand.params(np.random.default_rng(0))
    compiled = compiled_hand("ring_gmm", "numpy", "float64")
    with pytest.raises(EbmError, match="cannot differentiate") as error:
        compiled.energy_and_grad_state(state, params, ("x",))
    assert "torch" in error.value.hint
    with pytest.raises(EbmError, match="cannot differentiate"):
        compiled.grad_params(state, params)


@pytest.mark.parametrize("name", AUTODIFF)
def test_unknown_group_to_differentiate_is_an_error(name):
    hand = hand_model("ring_gmm")
    state, params = hand.sample_state(np.random.default_rng(0), 2), hand.params(np.random.default_rng(0))
    with pytest.raises(EbmError, match="no variable group 'xx'") as error:
        compiled_hand("ring_gmm", name, "float64").energy_and_grad_state(state, params, ("xx",))
    assert "did you mean 'x'" in error.value.hint
