"""Network experts (#18): `extern net : network(IN -> OUT)` implemented by a torch module or a
JAX (apply_fn, params) pair -- differentiable, its weights model params (fit, train=,
save / load in safetensors), composing with `.ebm` terms as a product of experts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ebmlang as ebm
from ebmlang.errors import EbmError

NET = """
extern net : network([1, 3, 3] -> 1)
latent x[1, 3, 3] : real
energy neural = net(x)
"""

QUADRATIC = """
latent x[1, 3, 3] : real
energy quadratic = 0.5 * sum(i in 0..3, j in 0..3) x[0, i, j]^2
"""

BOTH = """
extern net : network([1, 3, 3] -> 1)
latent x[1, 3, 3] : real
energy neural = net(x)
energy quadratic = 0.5 * sum(i in 0..3, j in 0..3) x[0, i, j]^2
"""

EXPERTS = """
extern net : network([1, 3, 3] -> 1)
model Neural {
    latent x[1, 3, 3] : real
    energy neural = net(x)
}
model Prior {
    latent x[1, 3, 3] : real
    energy quadratic = 0.5 * sum(i in 0..3, j in 0..3) x[0, i, j]^2
}
model Both = Neural * Prior
"""


def torch_module(seed=0, out=1, hidden=6):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(9, hidden), torch.nn.Tanh(),
                               torch.nn.Linear(hidden, out))


def jax_network(seed=0, out=1, hidden=6):
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    params = {"hidden": {"w": rng.normal(size=(9, hidden)) * 0.5, "b": rng.normal(size=hidden) * 0.1},
              "out": {"w": rng.normal(size=(hidden, out)) * 0.5, "b": np.zeros(out)}}

    def apply(p, x):
        h = jnp.tanh(x.reshape(x.shape[0], -1) @ p["hidden"]["w"] + p["hidden"]["b"])
        return h @ p["out"]["w"] + p["out"]["b"]

    return apply, params


def network(backend, seed=0, out=1, hidden=6):
    return (torch_module if backend == "torch" else jax_network)(seed, out, hidden)


def states(n=4, seed=1):
    return np.random.default_rng(seed).normal(size=(n, 1, 3, 3))


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_gradients_of_state_and_weights_agree_with_finite_differences(backend):
    m = ebm.loads(BOTH, backend=backend, dtype="float64", networks={"net": network(backend)})
    assert sorted(k for k in m.params if k.startswith("net.")) and all(
        k.startswith("net.") for k in m.params)
    x = states()
    state = {"x": m.backend.asarray(x)}
    energy, grads = m.compiled.energy_and_grad_state(state, m.params, ("x",))
    grad_x = m.backend.to_numpy(grads["x"])
    step = 1e-6
    for flat in (0, 4, 8):
        bump = np.zeros(9)
        bump[flat] = step
        bump = bump.reshape(1, 1, 3, 3)
        numeric = (m.energy(x=x + bump) - m.energy(x=x - bump)) / (2 * step)
        np.testing.assert_allclose(grad_x.reshape(4, 9)[:, flat], numeric, rtol=1e-6, atol=1e-7)
    grad_w = {k: m.backend.to_numpy(v) for k, v in m.compiled.grad_params(state, m.params).items()}
    values = m.param_values()
    for name in sorted(values):
        index = (0,) * values[name].ndim
        shifted = []
        for sign in (1, -1):
            changed = values[name].copy()
            changed[index] += sign * step
            m.set_params({name: changed})
            shifted.append(m.energy(x=x).mean())
        m.set_params({name: values[name]})
        numeric = (shifted[0] - shifted[1]) / (2 * step)
        np.testing.assert_allclose(grad_w[name][index], numeric, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_network_and_ebm_terms_add_up_in_one_model_and_as_a_product_of_experts(backend):
    x = states()
    net = network(backend)
    alone = ebm.loads(NET, backend=backend, dtype="float64", networks={"net": net}).energy(x=x)
    prior = ebm.loads(QUADRATIC, backend=backend, dtype="float64").energy(x=x)
    both = ebm.loads(BOTH, backend=backend, dtype="float64", networks={"net": net})
    np.testing.assert_allclose(both.energy(x=x), alone + prior, rtol=1e-10)
    terms = both.term_energies(x=x)
    np.testing.assert_allclose(terms["neural"], alone, rtol=1e-10)
    # `model Both = Neural * Prior` in the .ebm file: the network's weights are `Neural.net.*`
    written = ebm.loads(EXPERTS, backend=backend, dtype="float64", networks={"net": net})
    assert all(k.startswith("Neural.net.") for k in written.params)
    assert ebm.loads(EXPERTS, model="Prior").params == {}  # a block that never calls the network lacks it
    np.testing.assert_allclose(written.energy(x=x), alone + prior, rtol=1e-10)
    # and from Python: A * B carries the module and the trained weights over
    a = ebm.loads(NET, backend=backend, dtype="float64", networks={"net": net})
    a.set_params({k: v * 1.5 for k, v in a.param_values().items()})
    product = a * ebm.loads(QUADRATIC, backend=backend, dtype="float64")
    np.testing.assert_allclose(product.energy(x=x), a.energy(x=x) + prior, rtol=1e-10)


def test_a_scalar_network_may_return_batch_or_batch_by_one():
    class Squeezed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = torch_module()

        def forward(self, x):
            return self.inner(x)[:, 0]

    x = states()
    squeezed = ebm.loads(NET, dtype="float64", networks={"net": Squeezed()})
    kept = ebm.loads(NET, dtype="float64", networks={"net": torch_module()})
    np.testing.assert_allclose(squeezed.energy(x=x), kept.energy(x=x))
    assert sorted(squeezed.params) == ["net.inner.1.bias", "net.inner.1.weight",
                                       "net.inner.3.bias", "net.inner.3.weight"]


def test_a_vector_network_is_indexed_by_a_categorical_variable():
    source = """
    extern classifier : network(9 -> 3)
    observed x[9] : real
    latent y : categorical(3)
    energy logits = -classifier(x)[y]
    """
    m = ebm.loads(source, dtype="float64", networks={"classifier": torch_module(out=3)})
    x = states(2).reshape(2, 9)
    with torch.no_grad():
        logits = torch_module(out=3)(torch.tensor(x, dtype=torch.float32)).numpy()
    got = m.energy(x=x, y=np.array([2, 0]))
    np.testing.assert_allclose(got, -logits[[0, 1], [2, 0]], rtol=1e-5)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_sampling_uses_gradients_and_argmin_minimises(backend):
    m = ebm.loads(BOTH, backend=backend, dtype="float64", networks={"net": network(backend)})
    plan = str(m.plan("sample"))
    assert "x: nuts" in plan and "rwmh" not in plan
    assert "lbfgs" in str(m.plan("argmin"))
    draws = m.sample(chains=2, steps=40, method="mala", progress=False)
    assert np.isfinite(draws["x"]).all()
    best = m.argmin()
    x = np.asarray(best["x"]).reshape(1, 1, 3, 3)
    _, grads = m.compiled.energy_and_grad_state({"x": m.backend.asarray(x)}, m.params, ("x",))
    assert np.abs(m.backend.to_numpy(grads["x"])).max() < 1e-4
    assert m.energy(x=x)[0] <= m.energy(x=np.zeros((1, 1, 3, 3)))[0] + 1e-9


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_fit_trains_the_network_weights_and_train_freezes_them(backend):
    source = BOTH.replace("energy quadratic", "param s = 1.0\nenergy quadratic").replace("0.5 *", "0.5 * s *")
    data = {"x": np.random.default_rng(2).normal(0.5, 0.7, size=(64, 1, 3, 3))}
    m = ebm.loads(source, backend=backend, dtype="float64", networks={"net": network(backend)})
    before = m.param_values()
    m.fit(data, method="dsm", epochs=2, batch_size=32, lr=1e-2, progress=False)
    after = m.param_values()
    assert any(not np.allclose(before[k], after[k]) for k in before if k.startswith("net."))
    frozen = ebm.loads(source, backend=backend, dtype="float64", networks={"net": network(backend)})
    frozen.fit(data, method="dsm", epochs=2, batch_size=32, lr=1e-2, progress=False, train=["s"])
    kept = frozen.param_values()
    assert all(np.array_equal(before[k], kept[k]) for k in before if k.startswith("net."))
    assert not np.isclose(kept["s"], before["s"])


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_weights_round_trip_through_a_safetensors_checkpoint(tmp_path, backend):
    from safetensors.numpy import load_file

    m = ebm.loads(BOTH, backend=backend, dtype="float64", networks={"net": network(backend, seed=0)})
    m.set_params({k: v + 0.25 for k, v in m.param_values().items()})
    path = tmp_path / "model.safetensors"
    m.save(path)
    stored = load_file(str(path))
    assert set(stored) == set(m.params)
    x = states()
    # the stored weights win over the fresh module's; its architecture is checked against them
    loaded = ebm.load(path, backend=backend, dtype="float64", networks={"net": network(backend, seed=5)})
    np.testing.assert_allclose(loaded.energy(x=x), m.energy(x=x), rtol=1e-10)
    later = ebm.load(path, backend=backend, dtype="float64")
    with pytest.raises(EbmError, match="no module registered"):
        later.energy(x=x)
    later.register_network("net", network(backend, seed=5))
    np.testing.assert_allclose(later.energy(x=x), m.energy(x=x), rtol=1e-10)
    weights = later.network_weights("net")
    assert set(weights) == {k[len("net."):] for k in m.params}
    with pytest.raises(EbmError, match="do not fit the module"):
        ebm.load(path, backend=backend, networks={"net": network(backend, hidden=4)})


def test_a_module_is_only_ever_called_as_code_from_python(tmp_path):
    """Nothing in a .ebm file or a checkpoint runs code: the metadata holds source text and
    the arrays are plain tensors."""
    from safetensors import safe_open

    m = ebm.loads(NET, dtype="float64", networks={"net": torch_module()})
    path = tmp_path / "m.safetensors"
    m.save(path)
    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata()
    assert "Sequential" not in "".join(metadata.values())
    assert b"\x80\x04" not in path.read_bytes()[:64]  # no pickle protocol header


def test_errors_name_the_declaration_and_say_what_to_do():
    with pytest.raises(EbmError) as unregistered:
        ebm.loads(NET, dtype="float64").energy(x=states())
    text = str(unregistered.value)
    assert "network 'net' has no module registered" in text and "register_network('net'" in text
    assert "| energy neural = net(x)" in text

    class Wrong(torch.nn.Module):
        def forward(self, x):
            return x.reshape(x.shape[0], -1)[:, :2]

    with pytest.raises(EbmError) as wrong_shape:
        ebm.loads(NET, networks={"net": Wrong()})
    text = str(wrong_shape.value)
    assert "returned shape [2, 2]" in text and "declaration says 1 output" in text
    assert "extern net : network([1, 3, 3] -> 1)" in text

    with pytest.raises(EbmError, match="must be a torch.nn.Module"):
        ebm.loads(NET, networks={"net": jax_network()})
    with pytest.raises(EbmError, match=r"must be an equinox Module or a pair \(apply_fn, params\)"):
        ebm.loads(NET, backend="jax", networks={"net": torch_module()})
    with pytest.raises(EbmError, match="is not a network"):
        ebm.loads(NET, networks={"nett": torch_module()})
    with pytest.raises(EbmError, match="failed on an input of shape"):
        ebm.loads(NET, networks={"net": torch.nn.Linear(4, 1)})


def test_declaration_errors_are_located():
    with pytest.raises(EbmError, match="takes 9 inputs .shape .1, 3, 3.. but is given 4"):
        ebm.loads("extern net : network([1, 3, 3] -> 1)\nlatent y[4] : real\nenergy e = net(y)")
    with pytest.raises(EbmError, match="unknown extern kind 'netwrk'"):
        ebm.loads("extern net : netwrk(4 -> 1)\nlatent y[4] : real\nenergy e = net(y)")
    with pytest.raises(EbmError, match="an input shape and an output size"):
        ebm.loads("extern net : network(4 -> 8 -> 1)\nlatent y[4] : real\nenergy e = net(y)")
    with pytest.raises(EbmError, match="a vector of 3 values, not a scalar"):
        ebm.loads("extern net : network(4 -> 3)\nlatent y[4] : real\nenergy e = net(y)")


def test_an_equinox_module_is_a_network_as_it_is():
    """An equinox Module registers directly on JAX: its float arrays become the params
    (by path), it maps one example and is vmapped, and fit trains the weights."""
    eqx = pytest.importorskip("equinox")
    import jax

    mlp = eqx.nn.MLP(9, 1, 6, 1, activation=jax.nn.tanh, key=jax.random.PRNGKey(0))
    source = "extern net : network(9 -> 1)\nlatent x[9] : real\nenergy neural = net(x)\n"
    model = ebm.loads(source, backend="jax", networks={"net": mlp})
    assert sorted(model.params) == ["net.layers.0.bias", "net.layers.0.weight", "net.layers.1.bias",
                                    "net.layers.1.weight"]
    x = np.random.default_rng(0).normal(size=(4, 9)).astype(np.float32)
    want = np.array([float(mlp(row)[0]) for row in x])  # equinox itself, one example at a time
    np.testing.assert_allclose(model.energy({"x": x}), want, rtol=1e-5, atol=1e-6)
    trained = ebm.loads(source, backend="jax", networks={"net": mlp}).observe("x")
    before = trained.param_values()
    trained.fit({"x": np.random.default_rng(1).normal(size=(64, 9))}, method="dsm", epochs=1, progress=False)
    assert not np.allclose(trained.param_values()["net.layers.0.weight"], before["net.layers.0.weight"])
