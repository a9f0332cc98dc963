"""Networks written in the language (`param f : network(...)`, #18) used as a newcomer
would: two spellings of one model agree, a network adds to `.ebm` terms as a product of
experts, weights round-trip through safetensors across backends and load from a PyTorch
`nn.Sequential`'s state_dict, `fit` trains them (and `train=` freezes them), and sampled
images respect their bounds."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ebmlang as ebm
from ebmlang.errors import EbmError

BACKENDS = ["torch", "jax"]

AS_NETWORK = """
observed x[6] : real
latent y : categorical(3)
param f : network([6] -> dense(4) -> tanh -> dense(3))
energy logits = -f(x)[y]
"""
AS_MLP = AS_NETWORK.replace("network([6] -> dense(4) -> tanh -> dense(3))", "mlp(6 -> 4 -> 3, tanh)")

CONV = """
latent x[1, 6, 6] : real in [0, 1]
param f : network([1, 6, 6] -> conv(4, 3, padding=1) -> swish -> conv(8, 3, stride=2, padding=1) -> swish
                  -> avgpool(3) -> dense(1), spectral_norm)
energy image = f(x)
"""
PRIOR = """
latent x[1, 6, 6] : real in [0, 1]
param a = 0.7
energy smooth = a * sum(i in 0..5, j in 0..6) (x[0, i + 1, j] - x[0, i, j])^2
"""


def images(count, seed=0):
    return np.random.default_rng(seed).random((count, 1, 6, 6))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_network_of_dense_layers_is_the_mlp_it_spells(backend):
    """nn.Sequential numbering: the network's second dense layer is f.2 (the tanh is f.1);
    the mlp's is f.1. Mapped onto each other, the two models give the same energies."""
    network = ebm.loads(AS_NETWORK, backend=backend, seed=3)
    mlp = ebm.loads(AS_MLP, backend=backend, seed=0)
    weights = network.param_values()
    assert sorted(weights) == ["f.0.bias", "f.0.weight", "f.2.bias", "f.2.weight"]
    mlp.set_params({k.replace("f.2.", "f.1."): v for k, v in weights.items()})
    x = np.random.default_rng(1).normal(size=(7, 6))
    for label in range(3):
        state = {"x": x, "y": np.full(7, label)}
        np.testing.assert_allclose(network.energy(state), mlp.energy(state), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_network_composes_with_ebm_terms_as_a_sum_of_energies(backend):
    network = ebm.loads(CONV, backend=backend, seed=1)
    prior = ebm.loads(PRIOR, backend=backend)
    product = network * prior
    one_file = ebm.loads(CONV + PRIOR.split("\n", 2)[2], backend=backend)  # both terms in one model
    one_file.set_params(network.param_values())
    x = images(5)
    want = network.energy({"x": x}) + prior.energy({"x": x})
    np.testing.assert_allclose(product.energy({"x": x}), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one_file.energy({"x": x}), want, rtol=1e-5, atol=1e-6)


def test_weights_round_trip_through_safetensors_across_backends(tmp_path):
    trained = ebm.loads(CONV, backend="torch", seed=2)
    trained.fit({"x": images(64)}, method="pcd", recipe="igebm", epochs=1, batch_size=32, seed=0, progress=False,
                langevin={"steps": 5, "buffer_size": 100})
    path = tmp_path / "conv.safetensors"
    trained.save(path)
    x = images(4, seed=9)
    fresh = ebm.loads(CONV, backend="jax", seed=5)
    assert not np.allclose(fresh.energy({"x": x}), trained.energy({"x": x}))  # fresh weights differ
    for backend in BACKENDS:
        loaded = ebm.load(path, backend=backend)
        assert sorted(loaded.params) == sorted(trained.params)
        np.testing.assert_allclose(loaded.energy({"x": x}), trained.energy({"x": x}), rtol=1e-5, atol=1e-6)


def test_weights_load_from_a_pytorch_sequential_state_dict():
    """The layouts are PyTorch's: a state_dict of the nn.Sequential the chain names loads
    with an `f.` prefix and gives the module's outputs."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.SiLU(),
                                 torch.nn.Conv2d(4, 8, 3, stride=2, padding=1), torch.nn.SiLU(),
                                 torch.nn.AvgPool2d(3), torch.nn.Flatten(), torch.nn.Linear(8, 1))
    source = CONV.replace("avgpool(3) -> dense(1), spectral_norm", "avgpool(3) -> flatten -> dense(1)")
    for backend in BACKENDS:
        model = ebm.loads(source, backend=backend)
        model.set_params({f"f.{k}": v.numpy() for k, v in module.state_dict().items()})
        x = images(3)
        with torch.no_grad():
            want = module(torch.as_tensor(x, dtype=torch.float32)).numpy()[:, 0]
        np.testing.assert_allclose(model.energy({"x": x}), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_trains_the_network_and_train_freezes_the_rest(backend):
    source = CONV + "param b = 0.5\nenergy offset = b * x[0, 0, 0]\n"
    model = ebm.loads(source, backend=backend, seed=0).observe("x")
    before = model.param_values()
    model.fit({"x": images(64)}, train=["f"], method="pcd", recipe="igebm", epochs=1, batch_size=32, seed=0,
              progress=False, langevin={"steps": 5, "buffer_size": 100})
    after = model.param_values()
    assert sorted(after) == sorted(before) and after["b"] == before["b"]
    for key in before:
        if key.startswith("f."):
            assert not np.allclose(after[key], before[key]), key


@pytest.mark.parametrize("backend", BACKENDS)
def test_sampled_images_stay_inside_their_bounds_for_every_chain(backend):
    model = ebm.loads(CONV, backend=backend, seed=0)
    draws = model.sample(chains=3, steps=30, method="mala", seed=0, progress=False)["x"]
    assert draws.shape[0] == 3 and draws.shape[-3:] == (1, 6, 6)
    assert np.all(np.isfinite(draws)) and draws.min() >= 0.0 and draws.max() <= 1.0


def test_a_state_of_the_wrong_shape_is_a_clear_error():
    model = ebm.loads(CONV)
    with pytest.raises(EbmError) as caught:
        model.energy({"x": np.zeros((2, 1, 5, 5))})
    assert "x" in str(caught.value) and "Traceback" not in str(caught.value)
