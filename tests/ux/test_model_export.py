"""`Model.to_torch()` and `Model.to_jax()`: the energy in a user's own training loop.

The exported energies are the model's, their parameter gradients are right, a user's
optimiser steps reach the model (shared memory on torch, `set_params` otherwise), and bad
states are EbmErrors that name the variable, not tracebacks from inside a backend.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import ebmlang as ebm

# Not an example: a learnable vector and scalar, a real and a binary variable, and a
# term that reads both (a Gaussian whose mean moves with the label).
SOURCE = """\
const D = 3
latent x[D] : real
latent z : binary
param w[D] = 0.5
param b = -0.25
energy fit[i in 0..D] = 0.5 * (x[i] - w[i] * z)^2
energy bias = -b * z + 0.1 * sum(i in 0..D) w[i]^2
"""
BACKENDS = ("torch", "jax")


def batch(rows: int = 6, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(rows, 3)), "z": rng.integers(0, 2, size=rows).astype(float)}


def model(backend: str, dtype: str = "float32") -> ebm.Model:
    m = ebm.loads(SOURCE, backend=backend, dtype=dtype)
    return m.set_params(w=[0.3, -1.2, 0.8], b=0.4)


def torch_state(state: dict, dtype=torch.float32) -> dict:
    return {name: torch.tensor(value, dtype=dtype) for name, value in state.items()}


# --------------------------------------------------------------------------
# energies and gradients


@pytest.mark.parametrize("backend", BACKENDS)
def test_exported_energies_are_the_model_energies(backend):
    m, state = model(backend), batch()
    expected = m.energy(state)
    module = m.to_torch()
    assert isinstance(module, torch.nn.Module)
    np.testing.assert_allclose(module(torch_state(state)).detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    fn, params = m.to_jax()
    assert sorted(params) == ["b", "w"]
    np.testing.assert_allclose(np.asarray(fn(state, params)), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(jax.jit(fn)(state, params)), expected, rtol=1e-5, atol=1e-6)


def test_a_numpy_model_exports_to_both_frameworks():
    m, state = model("numpy"), batch()
    np.testing.assert_allclose(m.to_torch()(torch_state(state)).detach().numpy(), m.energy(state), rtol=1e-5)
    fn, params = m.to_jax()
    np.testing.assert_allclose(np.asarray(fn(state, params)), m.energy(state), rtol=1e-5)


def test_torch_parameter_gradient_matches_finite_differences():
    m, state = model("torch", "float64"), batch()
    module = m.to_torch()
    module(torch_state(state, torch.float64)).sum().backward()
    grads = {name: p.grad.numpy() for name, p in module.named_params().items()}
    step = 1e-6
    for name, value in m.param_values().items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            shifted = []
            for sign in (1, -1):
                moved = value.copy()
                moved[index] += sign * step
                shifted.append(ebm.loads(SOURCE, backend="numpy", dtype="float64")
                               .set_params(**{**m.param_values(), name: moved}).energy(state).sum())
            numeric[index] = (shifted[0] - shifted[1]) / (2 * step)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_and_jax_parameter_gradients_agree(backend):
    m, state = model(backend), batch()
    module = m.to_torch()
    module(torch_state(state)).mean().backward()
    fn, params = m.to_jax()
    jax_grads = jax.jit(jax.grad(lambda p: fn(state, p).mean()))(params)
    for name, p in module.named_params().items():
        np.testing.assert_allclose(p.grad.numpy(), np.asarray(jax_grads[name]), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------
# a user's own training loop


def test_a_torch_training_loop_changes_the_model_it_came_from():
    m, data = model("torch"), batch(rows=32, seed=1)
    before_params, before = m.param_values(), m.energy(data)
    module = m.to_torch()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    for _ in range(5):
        loss = module(torch_state(data)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = m.energy(data)
    assert not np.allclose(m.param_values()["w"], before_params["w"])
    assert after.mean() < before.mean()  # the loop lowered the data's energy, and the model sees it
    np.testing.assert_allclose(after, module(torch_state(data)).detach().numpy(), rtol=1e-6)
    # set_params(module) on the shared tensors keeps them shared: later steps still show.
    m.set_params(module)
    trained_b = m.param_values()["b"]
    with torch.no_grad():
        module.params["b"].add_(1.0)
    assert m.param_values()["b"] == pytest.approx(trained_b + 1.0)


@pytest.mark.parametrize("moved", ["jax model", "module.double()"])
def test_copied_torch_parameters_come_back_with_set_params(moved):
    m = model("jax") if moved == "jax model" else model("torch")
    module = m.to_torch() if moved == "jax model" else m.to_torch().double()
    dtype = torch.float32 if moved == "jax model" else torch.float64
    data = batch(rows=16, seed=2)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05)
    for _ in range(3):
        loss = module(torch_state(data, dtype)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    before = m.energy(data)
    np.testing.assert_allclose(m.energy(data), before)  # copies: the model has not moved yet
    assert m.set_params(module) is m
    np.testing.assert_allclose(m.energy(data), module(torch_state(data, dtype)).detach().numpy(), rtol=1e-5)
    assert not np.allclose(m.energy(data), before)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_jax_training_loop_comes_back_with_set_params(backend):
    m, data = model(backend), batch(rows=32, seed=3)
    before = m.energy(data)
    fn, params = m.to_jax()
    step = jax.jit(jax.value_and_grad(lambda p: fn(data, p).mean()))
    for _ in range(5):
        _, grads = step(params)
        params = {name: params[name] - 0.1 * grads[name] for name in params}
    np.testing.assert_allclose(m.energy(data), before)  # JAX arrays are values
    m.set_params(params)
    np.testing.assert_allclose(m.energy(data), np.asarray(fn(data, params)), rtol=1e-5)
    assert m.energy(data).mean() < before.mean()


# --------------------------------------------------------------------------
# bad input


def assert_error(call, *needles: str) -> None:
    with pytest.raises(ebm.EbmError) as caught:
        call()
    for needle in needles:
        assert needle in str(caught.value), f"{needle!r} not in:\n{caught.value}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_states_are_located_errors(backend):
    m = model(backend)
    module, (fn, params) = m.to_torch(), m.to_jax()
    good = batch()
    cases = [
        ({**good, "xx": good["x"]}, ["state names 'xx'", "did you mean 'x'"]),
        ({"x": good["x"][:, :2], "z": good["z"]}, ["state['x'] has shape (6, 2); expected [batch, 3]",
                                                  "latent x[D] : real"]),
        ({"x": good["x"][0], "z": good["z"]}, ["state['x'] has shape (3,)", "leading batch axis"]),
        ({"x": good["x"]}, ["state has no values for variable group 'z'", "pass state['z'] with shape [batch]"]),
        ({"x": good["x"], "z": good["z"][:4]}, ["state['z'] has batch 4 but other groups have 6"]),
    ]
    for state, needles in cases:
        assert_error(lambda: module(torch_state(state)), *needles)
        assert_error(lambda: fn(state, params), *needles)
        assert_error(lambda: jax.jit(fn)(state, params), *needles)
    assert_error(lambda: module(good["x"]), "a state must be a dict")
    assert_error(lambda: fn(good, {"w": params["w"]}), "params has no entry 'b'")
    assert_error(lambda: fn(good, {**params, "w": jnp.zeros(2)}), "params['w'] has shape (2,); expected (3,)")


def test_set_params_refuses_what_it_cannot_use():
    m = model("torch")
    assert_error(lambda: m.set_params([1.0, 2.0]), "set_params takes a dict", "got list")
    assert_error(lambda: m.set_params({"ww": 1.0}), "no parameter 'ww'", "did you mean 'w'")
    assert_error(lambda: m.set_params({"w": np.zeros(2)}), "cannot set param 'w' of shape [3]")
    assert_error(lambda: m.set_params({"b": float("nan")}), "param 'b' would hold NaN")
    # A Parameter that requires grad is read without a fuss.
    m.set_params({"b": torch.nn.Parameter(torch.tensor(2.5))}, w=0.0)
    assert m.param_values()["b"] == 2.5 and (m.param_values()["w"] == 0).all()


def test_an_extern_for_one_backend_is_not_exported_to_the_other():
    m = ebm.loads("extern g\nlatent x : real\nparam a = 1.0\nenergy e = a * g(x)", backend="torch")
    m.register_extern("g", lambda t: t ** 2)
    np.testing.assert_allclose(m.to_torch()({"x": torch.tensor([2.0])}).detach().numpy(), [4.0])
    assert_error(m.to_jax, "extern 'g', implemented for the torch backend", "backend='jax'", "register_extern")
