"""Networks written in the language (ParamInit kind "layers") on every backend, against
PyTorch's own modules: the same params dict loaded into an `nn.Sequential` of Conv2d /
Conv1d, pooling, Flatten and Linear must give the same outputs, which is what "identical
parameter layouts" means. Graphs are built by hand from the IR so this file tests the
backends alone; tests/language/test_network_layers.py tests the front end."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ebmlang.backends import get_backend
from ebmlang.errors import Span
from ebmlang.graph import reference
from ebmlang.graph.ir import (
    REAL,
    Constant,
    FactorGraph,
    FactorTemplate,
    Layer,
    Neural,
    ParamGroup,
    ParamInit,
    Select,
    Slot,
    VariableGroup,
)

AT = Span("net.ebm", 3, 1, 3, 20)


def chain(input_shape, *specs):
    """ir.Layers with shapes computed here, independently of the front end."""
    layers, shape = [], tuple(input_shape)
    for kind, *args in specs:
        size = kernel = padding = 0
        stride, activation = 1, ""
        if kind == "conv":
            size, kernel, stride, padding = args
            spatial = tuple((n + 2 * padding - kernel) // stride + 1 for n in shape[1:])
            out = (size,) + spatial
        elif kind in ("avgpool", "maxpool"):
            kernel, stride = args
            out = (shape[0],) + tuple((n - kernel) // stride + 1 for n in shape[1:])
        elif kind == "dense":
            size, = args
            out = (size,)
        elif kind == "flatten":
            out = (int(np.prod(shape)),)
        else:
            activation, kind, out = kind, "activation", shape
        layers.append(Layer(kind, shape, out, size, kernel, stride, padding, activation, AT))
        shape = out
    return tuple(layers)


def network_graph(input_shape, layers, spectral_norm=False, name="f"):
    """x[*input_shape] real observed; energy = f(x)[0]."""
    size = int(np.prod(input_shape))
    outputs = int(np.prod(layers[-1].out_shape))
    init = ParamInit("layers", layer_sizes=(size, outputs), input_shape=tuple(input_shape), layers=layers,
                     spectral_norm=spectral_norm)
    body = Select(AT, Neural(AT, name, (Slot(AT, "x", np.arange(size)[None, :], vector=True),)), Constant(AT, 0.0))
    return FactorGraph("Net", {"x": VariableGroup("x", tuple(input_shape), REAL, False, AT)},
                       {name: ParamGroup(name, (), init, AT)},
                       (FactorTemplate("e", "e", body, 1, span=AT),), ("e",), file="net.ebm", source="\n" * 5)


def sequential(layers, spectral_norm=False):
    """The nn.Sequential the layers name, PyTorch's own modules."""
    modules = []
    for layer in layers:
        spatial = len(layer.in_shape) - 1
        if layer.kind == "conv":
            conv = (torch.nn.Conv1d, torch.nn.Conv2d)[spatial - 1]
            modules.append(conv(layer.in_shape[0], layer.size, layer.kernel, layer.stride, layer.padding))
        elif layer.kind == "dense":
            modules.append(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(int(np.prod(layer.in_shape)),
                                                                                   layer.size)))
        elif layer.kind == "avgpool":
            modules.append((torch.nn.AvgPool1d, torch.nn.AvgPool2d)[spatial - 1](layer.kernel, layer.stride))
        elif layer.kind == "maxpool":
            modules.append((torch.nn.MaxPool1d, torch.nn.MaxPool2d)[spatial - 1](layer.kernel, layer.stride))
        elif layer.kind == "flatten":
            modules.append(torch.nn.Flatten())
        else:
            modules.append({"relu": torch.nn.ReLU(), "silu": torch.nn.SiLU(), "swish": torch.nn.SiLU(),
                            "tanh": torch.nn.Tanh(), "elu": torch.nn.ELU(), "softplus": torch.nn.Softplus(),
                            "gelu": torch.nn.GELU()}[layer.activation])
    return torch.nn.Sequential(*modules).double()


def torch_outputs(layers, params, name, x, spectral_norm=False):
    """nn.Sequential with the params loaded by their names (dense layers sit one level down)."""
    net = sequential(layers)
    state = {}
    for key, value in params.items():
        number, part = key[len(name) + 1:].split(".")
        value = np.asarray(value, dtype=float)
        if spectral_norm and part == "weight":
            value = value / np.linalg.svd(value.reshape(len(value), -1), compute_uv=False)[0]
        inner = ".1" if layers[int(number)].kind == "dense" else ""
        state[f"{number}{inner}.{part}"] = torch.as_tensor(value)
    net.load_state_dict(state)
    with torch.no_grad():
        return net(torch.as_tensor(x)).numpy()


CHAINS = {
    "conv_pool_dense": ((1, 8, 8), (("conv", 4, 3, 1, 1), ("swish",), ("conv", 6, 3, 2, 1), ("relu",),
                                    ("avgpool", 2, 2), ("dense", 1))),
    "maxpool_flatten": ((2, 7, 6), (("conv", 3, 2, 1, 0), ("tanh",), ("maxpool", 2, 1), ("flatten",),
                                    ("dense", 5), ("elu",), ("dense", 1))),
    "conv1d": ((3, 10), (("conv", 4, 3, 2, 2), ("softplus",), ("avgpool", 3, 2), ("dense", 1))),
    "dense_only": ((6,), (("dense", 4), ("gelu",), ("dense", 1))),
}


@pytest.mark.parametrize("chain_name", sorted(CHAINS))
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_layers_match_pytorch_modules_on_every_backend(chain_name, spectral_norm):
    input_shape, specs = CHAINS[chain_name]
    layers = chain(input_shape, *specs)
    graph = network_graph(input_shape, layers, spectral_norm)
    rng = np.random.default_rng(3)
    params = reference.reference_init_params(graph, seed=1)
    x = rng.normal(size=(5,) + input_shape)
    expected = torch_outputs(layers, params, "f", x, spectral_norm)[:, 0]

    np.testing.assert_allclose(reference.reference_energy(graph, {"x": x}, params), expected, rtol=1e-9, atol=1e-9)
    for name in ("numpy", "torch", "jax"):
        backend = get_backend(name, dtype="float64")
        compiled = backend.compile(graph)
        energy = backend.to_numpy(compiled.energy({"x": backend.asarray(x)}, backend.convert_arrays(params)))
        np.testing.assert_allclose(energy, expected, rtol=1e-9, atol=1e-9, err_msg=name)


# Central differences in float64 with h = 1e-6 (as test_backend_gradients.py): truncation
# ~1e-12 and rounding ~1e-10, so 1e-6 cannot hide a wrong derivative. Networks are small
# so the coordinate-by-coordinate differences stay cheap.
STEP, TOLERANCE = 1e-6, 1e-6
SMALL = ((2, 5, 5), (("conv", 3, 3, 2, 1), ("silu",), ("maxpool", 2, 1), ("dense", 2), ("tanh",), ("dense", 1)))


def central_difference(fn, value):
    grad = np.zeros(value.size)
    for coordinate in range(value.size):
        step = np.zeros(value.size)
        step[coordinate] = STEP
        grad[coordinate] = (fn(value + step.reshape(value.shape)) - fn(value - step.reshape(value.shape))) / (2 * STEP)
    return grad.reshape(value.shape)


@pytest.mark.parametrize("name", ["torch", "jax"])
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_gradients_match_finite_differences(name, spectral_norm):
    input_shape, specs = SMALL
    graph = network_graph(input_shape, chain(input_shape, *specs), spectral_norm)
    params = reference.reference_init_params(graph, seed=4)
    x = np.random.default_rng(5).normal(size=(3,) + input_shape)
    backend = get_backend(name, dtype="float64")
    compiled = backend.compile(graph)
    energy, grads = compiled.energy_and_grad_state({"x": x}, params, ("x",))
    for row in range(3):
        want = central_difference(lambda v: reference.reference_energy(graph, {"x": v[None]}, params)[0], x[row])
        np.testing.assert_allclose(backend.to_numpy(grads["x"])[row], want, rtol=TOLERANCE, atol=TOLERANCE)
    got = {k: backend.to_numpy(v) for k, v in compiled.grad_params({"x": x}, params).items()}
    assert set(got) == set(params) == {"f.0.weight", "f.0.bias", "f.3.weight", "f.3.bias", "f.5.weight", "f.5.bias"}
    for key, value in params.items():
        want = central_difference(lambda v: reference.reference_energy(graph, {"x": x}, {**params, key: v}).mean(),
                                  np.asarray(value))
        np.testing.assert_allclose(got[key], want, rtol=TOLERANCE, atol=TOLERANCE, err_msg=key)


def test_float32_torch_and_jax_agree_on_one_params_dict():
    """The same float32 params (drawn once) give the same energies on both backends."""
    input_shape, specs = CHAINS["conv_pool_dense"]
    graph = network_graph(input_shape, chain(input_shape, *specs), spectral_norm=True)
    params = {k: v.astype(np.float32) for k, v in reference.reference_init_params(graph, seed=2).items()}
    x = np.random.default_rng(0).uniform(size=(16,) + input_shape).astype(np.float32)
    energies = {}
    for name in ("torch", "jax"):
        backend = get_backend(name, dtype="float32")
        compiled = backend.compile(graph)
        energies[name] = backend.to_numpy(compiled.energy({"x": backend.asarray(x)}, backend.convert_arrays(params)))
    np.testing.assert_allclose(energies["torch"], energies["jax"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_initial_params_follow_pytorch_defaults(name):
    """Shapes in PyTorch's layout, values U(±1/sqrt(fan_in)) for weights and biases."""
    input_shape, specs = CHAINS["conv_pool_dense"]
    layers = chain(input_shape, *specs)
    graph = network_graph(input_shape, layers)
    backend = get_backend(name, dtype="float64")
    params = {k: backend.to_numpy(v) for k, v in backend.compile(graph).init_params(backend.key(0)).items()}
    want = {k: tuple(v.shape) for k, v in sequential(layers).state_dict().items()}
    want = {"f." + k.replace(".1.", "."): v for k, v in want.items()}  # dense layers sit one level down there
    assert {k: v.shape for k, v in params.items()} == want
    for key, value in params.items():
        number = int(key.split(".")[1])
        bound = 1.0 / np.sqrt(np.prod(layers[number].weight_shape()[1:]))
        assert np.all(np.abs(value) <= bound), key
        if value.size >= 20:  # all of 20 uniform draws inside half the bound: probability 1e-6
            assert np.abs(value).max() > 0.5 * bound, key
