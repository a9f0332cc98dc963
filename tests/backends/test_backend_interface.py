"""The backend interface around the evaluator: lookup, ops, keys and randomness, param
initialisation, input errors, externs, export, torch.compile and the lattice fast paths."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from backend_testing import BUMP, backend, compiled_hand, hand_model
from scipy import special, stats

from ebmlang.backends import OPS_NAMES, available_backends, get_backend
from ebmlang.backends.compile import compile_graph
from ebmlang.backends.evaluator import classify_index, plan_graph
from ebmlang.errors import EbmError

NAMES = ["numpy", "torch", "jax"]


# -- lookup -------------------------------------------------------------------


def test_every_backend_is_found_through_its_entry_point():
    assert set(NAMES) <= set(available_backends())
    for name in NAMES:
        found = get_backend(name, dtype="float64")
        assert found.name == name and found.dtype == "float64"


def test_an_unknown_backend_lists_the_available_ones():
    with pytest.raises(EbmError, match="unknown backend 'torhc'") as error:
        get_backend("torhc")
    assert "torch" in error.value.expected and "jax" in error.value.expected
    assert error.value.hint == "did you mean 'torch'?"


@pytest.mark.parametrize("name", NAMES)
def test_unsupported_dtype_is_an_error(name):
    with pytest.raises(EbmError, match="unsupported dtype 'float16'"):
        get_backend(name, dtype="float16")


def test_unavailable_devices_are_errors():
    if not torch.cuda.is_available():
        with pytest.raises(EbmError, match="CUDA is not available"):
            get_backend("torch", device="cuda")
    with pytest.raises(EbmError, match="jax has no 'tpu' device"):
        get_backend("jax", device="tpu")
    with pytest.raises(EbmError, match="cpu' only"):
        get_backend("numpy", device="cuda")
    with pytest.raises(EbmError, match="does not take these options"):
        get_backend("jax", compile=True)


def test_compile_graph_takes_a_name_or_a_backend():
    graph = hand_model("rbm").graph
    assert compile_graph(graph, "numpy").backend.name == "numpy"
    chosen = get_backend("jax", dtype="float64")
    assert compile_graph(graph, chosen).backend is chosen
    with pytest.raises(EbmError, match="fixed by the Backend"):
        compile_graph(graph, chosen, dtype="float64")
    with pytest.raises(EbmError, match="takes a FactorGraph"):
        compile_graph("model.ebm")


# -- ops ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_ops_provide_every_documented_name(name):
    ops = backend(name, "float64").ops
    missing = [op for op in OPS_NAMES if not callable(getattr(ops, op, None))]
    assert not missing


X = np.array([[-1.5, 0.25, 2.0], [0.5, -0.75, 3.0]])
Y = np.array([[2.0, 1.0, -1.0], [0.5, 0.5, 4.0]])
INDEX = np.array([2, 0])
# op name -> (call, numpy expectation)
OP_CASES = {
    "exp": (lambda o, a: o.exp(a(X)), np.exp(X)),
    "log1p": (lambda o, a: o.log1p(o.abs(a(X))), np.log1p(np.abs(X))),
    "expm1": (lambda o, a: o.expm1(a(X)), np.expm1(X)),
    "sign": (lambda o, a: o.sign(a(X)), np.sign(X)),
    "sigmoid": (lambda o, a: o.sigmoid(a(X)), special.expit(X)),
    "softplus": (lambda o, a: o.softplus(a(X)), np.logaddexp(0, X)),
    "silu": (lambda o, a: o.silu(a(X)), X * special.expit(X)),
    "gelu": (lambda o, a: o.gelu(a(X)), 0.5 * X * (1 + special.erf(X / np.sqrt(2)))),
    "elu": (lambda o, a: o.elu(a(X)), np.where(X > 0, X, np.expm1(X))),
    "mod": (lambda o, a: o.mod(a(X), a(Y)), np.mod(X, Y)),
    "power": (lambda o, a: o.power(o.abs(a(X)), a(Y)), np.power(np.abs(X), Y)),
    "where": (lambda o, a: o.where(a(X) > 0, a(X), a(Y)), np.where(X > 0, X, Y)),
    "clip": (lambda o, a: o.clip(a(X), -1.0, 1.0), np.clip(X, -1, 1)),
    "minimum": (lambda o, a: o.minimum(a(X), a(Y)), np.minimum(X, Y)),
    "sum": (lambda o, a: o.sum(a(X), axis=1), X.sum(1)),
    "sum_all": (lambda o, a: o.sum(a(X)), X.sum()),
    "mean": (lambda o, a: o.mean(a(X), axis=0), X.mean(0)),
    "prod": (lambda o, a: o.prod(a(X), axis=1), X.prod(1)),
    "max": (lambda o, a: o.max(a(X), axis=1), X.max(1)),
    "min": (lambda o, a: o.min(a(X), axis=0), X.min(0)),
    "logsumexp": (lambda o, a: o.logsumexp(a(X), axis=1), special.logsumexp(X, axis=1)),
    "softmax": (lambda o, a: o.softmax(a(X), axis=1), special.softmax(X, axis=1)),
    "argmax": (lambda o, a: o.argmax(a(X), axis=1), X.argmax(1)),
    "argmin": (lambda o, a: o.argmin(a(X), axis=0), X.argmin(0)),
    "cumsum": (lambda o, a: o.cumsum(a(X), axis=1), X.cumsum(1)),
    "stack": (lambda o, a: o.stack([a(X), a(Y)], axis=1), np.stack([X, Y], 1)),
    "concatenate": (lambda o, a: o.concatenate([a(X), a(Y)], axis=0), np.concatenate([X, Y])),
    "swapaxes": (lambda o, a: o.swapaxes(a(X), 0, 1), X.T),
    "roll": (lambda o, a: o.roll(a(X), (1,), (1,)), np.roll(X, 1, 1)),
    "take": (lambda o, a: o.take(a(X), a(INDEX, "int64"), -1), X[:, INDEX]),
    "take_along_axis": (lambda o, a: o.take_along_axis(a(X), a(INDEX[:, None], "int64"), -1), X[[0, 1], INDEX][:, None]),
    "index_add": (lambda o, a: o.index_add(o.zeros((2, 2)), a(np.array([1, 1, 0]), "int64"), a(X)),
                  np.stack([X[:, 2], X[:, 0] + X[:, 1]], 1)),
    "einsum": (lambda o, a: o.einsum("ij,ij->i", a(X), a(Y)), (X * Y).sum(1)),
    "vecdot": (lambda o, a: o.vecdot(a(X), a(Y[0])), X @ Y[0]),
    "linear": (lambda o, a: o.linear(a(X), a(Y), a(np.array([1.0, -1.0]))), X @ Y.T + [1.0, -1.0]),
    "isfinite": (lambda o, a: o.isfinite(o.log(a(X))), X > 0),
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", sorted(OP_CASES))
def test_ops_follow_numpy(name, case):
    chosen = backend(name, "float64")
    call, want = OP_CASES[case]
    with np.errstate(all="ignore"):
        got = chosen.to_numpy(call(chosen.ops, chosen.asarray))
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_take_and_set_flat(name):
    chosen = backend(name, "float64")
    values = chosen.asarray(np.array([-1.0, 1.0]))
    labels = chosen.asarray(np.array([[1, 0, 1]]), "int64")
    np.testing.assert_array_equal(chosen.to_numpy(chosen.take(values, labels)), [[1.0, -1.0, 1.0]])
    original = np.zeros((2, 2, 3))
    array = chosen.asarray(original)
    updated = chosen.set_flat(array, np.array([1, 5]), chosen.asarray(np.array([[7.0, 8.0], [9.0, 10.0]])))
    want = original.copy().reshape(2, -1)
    want[:, [1, 5]] = [[7, 8], [9, 10]]
    np.testing.assert_array_equal(chosen.to_numpy(updated), want.reshape(2, 2, 3))
    np.testing.assert_array_equal(chosen.to_numpy(array), original)  # the input is not modified


# -- keys and randomness ---------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_the_same_key_gives_the_same_numbers(name):
    chosen = backend(name, "float32")
    logits = chosen.asarray(np.zeros((5, 4)))
    draws = []
    for _ in range(2):
        first, second, third, fourth = chosen.split(chosen.key(123), 4)
        draws.append([chosen.to_numpy(x) for x in (
            chosen.uniform(first, (3, 4)), chosen.normal(second, (5,)),
            chosen.categorical(third, logits), chosen.randint(fourth, (6,), 2, 9))])
    for a, b in zip(*draws):
        np.testing.assert_array_equal(a, b)
    assert draws[0][0].dtype == np.float32
    other = chosen.to_numpy(chosen.uniform(chosen.split(chosen.key(124), 4)[0], (3, 4)))
    assert not np.array_equal(other, draws[0][0])
    left, right = chosen.split(chosen.key(5))
    assert not np.array_equal(chosen.to_numpy(chosen.normal(left, (8,))), chosen.to_numpy(chosen.normal(right, (8,))))


@pytest.mark.parametrize("name", NAMES)
def test_random_draws_have_the_right_distributions(name):
    chosen = backend(name, "float64")
    keys = chosen.split(chosen.key(2024), 4)
    n = 20000
    uniform = chosen.to_numpy(chosen.uniform(keys[0], (n,)))
    normal = chosen.to_numpy(chosen.normal(keys[1], (n,)))
    integers = chosen.to_numpy(chosen.randint(keys[2], (n,), -2, 3))
    assert uniform.min() >= 0.0 and uniform.max() < 1.0
    assert set(np.unique(integers)) == {-2, -1, 0, 1, 2}
    # Kolmogorov-Smirnov at n = 20000: a correct generator fails with probability 1e-6.
    assert stats.kstest(uniform, "uniform").pvalue > 1e-6
    assert stats.kstest(normal, "norm").pvalue > 1e-6
    # categorical: frequencies of 20000 draws from softmax([0, 1, 2, -inf]) by chi-square.
    logits = chosen.asarray(np.tile([0.0, 1.0, 2.0, -np.inf], (n, 1)))
    labels = chosen.to_numpy(chosen.categorical(keys[3], logits))
    counts = np.bincount(labels, minlength=4)
    assert counts[3] == 0
    expected = special.softmax([0.0, 1.0, 2.0]) * n
    assert stats.chisquare(counts[:3], expected).pvalue > 1e-6
    # gumbel_argmax: the same law from uniforms drawn outside (what Gibbs sweeps use); one
    # uniform per label, and uniforms of exactly 0 (tiny, not -inf noise) stay valid.
    uniforms = chosen.uniform(chosen.split(keys[3], 2)[1], (n, 4))
    labels = chosen.to_numpy(chosen.gumbel_argmax(uniforms, logits))
    counts = np.bincount(labels, minlength=4)
    assert counts[3] == 0 and stats.chisquare(counts[:3], expected).pvalue > 1e-6
    zero = chosen.to_numpy(chosen.gumbel_argmax(chosen.asarray(np.zeros((1, 4))), logits[:1]))
    assert zero.tolist() == [2]  # equal (huge) noise everywhere: the largest logit wins


@pytest.mark.parametrize("name", NAMES)
def test_init_params_follow_each_initialiser(name):
    chosen = backend(name, "float64")
    graph = hand_model("rbm").graph
    compiled = compiled_hand("rbm", name, "float64")
    params = {k: chosen.to_numpy(v) for k, v in compiled.init_params(chosen.key(0)).items()}
    again = {k: chosen.to_numpy(v) for k, v in compiled.init_params(chosen.key(0)).items()}
    other = {k: chosen.to_numpy(v) for k, v in compiled.init_params(chosen.key(1)).items()}
    assert set(params) == {"W", "b", "c"}
    for key in params:
        np.testing.assert_array_equal(params[key], again[key])
        assert params[key].shape == graph.params[key].shape
    assert not np.array_equal(params["W"], other["W"])
    np.testing.assert_array_equal(params["b"], np.zeros(5))  # value 0 broadcast
    assert np.all(np.abs(params["c"]) <= 0.1)  # uniform(-0.1, 0.1)


@pytest.mark.parametrize("name", NAMES)
def test_mlp_init_is_pytorch_default_and_bounds_clip(name):
    from ir_builders import span

    from ebmlang.graph.ir import REAL, FactorGraph, ParamGroup, ParamInit, VariableGroup

    at = span("init.ebm", 1)
    graph = FactorGraph(
        "Init", {"x": VariableGroup("x", (2,), REAL, False, at)},
        {"f": ParamGroup("f", (), ParamInit("mlp", layer_sizes=(400, 300, 2)), at),
         "s": ParamGroup("s", (2000,), ParamInit("normal", args=(1.0, 2.0)), at, bounds=(0.0, 3.0))},
        (), (),
    )
    chosen = backend(name, "float64")
    params = {k: chosen.to_numpy(v) for k, v in chosen.compile(graph).init_params(chosen.key(3)).items()}
    assert set(params) == {"f.0.weight", "f.0.bias", "f.1.weight", "f.1.bias", "s"}
    assert params["f.0.weight"].shape == (300, 400) and params["f.1.bias"].shape == (2,)
    weight = params["f.0.weight"].ravel()
    bound = 1 / np.sqrt(400)
    assert np.all(np.abs(weight) <= bound) and np.all(np.abs(params["f.1.weight"]) <= 1 / np.sqrt(300))
    # U(-b, b): 120000 draws, KS test at p > 1e-6
    assert stats.kstest(weight, "uniform", args=(-bound, 2 * bound)).pvalue > 1e-6
    assert params["s"].min() == 0.0 and params["s"].max() == 3.0  # N(1, 2) clipped into [0, 3]


# -- input errors -----------------------------------------------------------------------


def _ising_inputs():
    hand = hand_model("ising")
    rng = np.random.default_rng(0)
    return hand.sample_state(rng, 2), hand.params(rng)


@pytest.mark.parametrize("name", NAMES)
def test_a_missing_group_points_at_its_declaration(name):
    _, params = _ising_inputs()
    with pytest.raises(EbmError) as error:
        compiled_hand("ising", name, "float32").energy({}, params)
    text = str(error.value)
    assert "ising.ebm:2:1: error: state has no values for variable group 's'" in text
    assert "   2 | // line 2" in text and "^^^" in text
    assert "[batch, 4, 4]" in error.value.hint


@pytest.mark.parametrize("name", NAMES)
def test_bad_shapes_and_names_are_errors(name):
    state, params = _ising_inputs()
    compiled = compiled_hand("ising", name, "float32")
    with pytest.raises(EbmError, match=r"state\['s'\] has shape \(2, 16\); expected \[batch, 4, 4\]"):
        compiled.energy({"s": state["s"].reshape(2, 16)}, params)
    with pytest.raises(EbmError, match="not a variable group") as error:
        compiled.energy({**state, "ss": state["s"]}, params)
    assert error.value.hint == "did you mean 's'?"
    with pytest.raises(EbmError, match="params has no entry 'J'") as error:
        compiled.energy(state, {"h": params["h"]})
    assert error.value.span.line == 3
    with pytest.raises(EbmError, match=r"params\['h'\] has shape \(2,\); expected \(\)"):
        compiled.energy(state, {**params, "h": np.zeros(2)})


def test_batch_sizes_must_agree():
    hand = hand_model("rbm")
    state = hand.sample_state(np.random.default_rng(0), 4)
    state["v"] = state["v"][:3]
    with pytest.raises(EbmError, match="has batch 4 but other groups have 3|has batch 3 but other groups have 4"):
        compiled_hand("rbm", "torch", "float32").energy(state, hand.params(np.random.default_rng(0)))


def test_errors_from_planning_point_at_the_template():
    from ir_builders import span

    from ebmlang.graph.ir import REAL, FactorGraph, FactorTemplate, Slot, VariableGroup

    at = span("bad.ebm", 2)
    graph = FactorGraph(
        "Bad", {"x": VariableGroup("x", (3,), REAL, False, at)}, {},
        (FactorTemplate("t", "t", Slot(at, "x", np.array([0, 3])), 2, span=at),), ("t",),
        file="bad.ebm", source="latent x[3] : real\nenergy t[i in 0..2] = x[i + 2]\n",
    )
    with pytest.raises(EbmError, match="index out of range for variable group 'x' of size 3") as error:
        backend("torch", "float32").compile(graph)
    assert "bad.ebm:2:1" in str(error.value) and "energy t[i in 0..2]" in str(error.value)


# -- externs -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_a_missing_extern_says_how_to_register_it(name):
    hand = hand_model("extern")
    compiled = backend(name, "float64").compile(hand.graph)
    state, params = hand.sample_state(np.random.default_rng(0), 2), hand.params(np.random.default_rng(0))
    with pytest.raises(EbmError, match="extern 'bump' has no implementation") as error:
        compiled.energy(state, params)
    assert "register_extern('bump'" in error.value.hint and error.value.span.line == 4


@pytest.mark.parametrize("name", NAMES)
def test_externs_register_per_backend_or_per_graph(name):
    hand = hand_model("extern")
    chosen = get_backend(name, dtype="float64")
    state, params = hand.sample_state(np.random.default_rng(0), 3), hand.params(np.random.default_rng(0))
    chosen.register_extern("bump", BUMP[name])
    compiled = chosen.compile(hand.graph)
    np.testing.assert_allclose(chosen.to_numpy(compiled.energy(state, params)), hand.energy(state, params), rtol=1e-12)
    # a graph's own registration wins, and replacing it takes effect (jitted kernels are rebuilt)
    compiled.register_extern("bump", lambda t: 2 * BUMP[name](t))
    np.testing.assert_allclose(chosen.to_numpy(compiled.energy(state, params)), 2 * hand.energy(state, params), rtol=1e-12)


# -- export -----------------------------------------------------------------------------------


def test_torch_module_matches_energy_and_trains():
    hand = hand_model("classifier")
    rng = np.random.default_rng(1)
    state, params = hand.sample_state(rng, 5), hand.params(rng)
    compiled = compiled_hand("classifier", "torch", "float32")
    module = compiled.module(params)
    assert isinstance(module, torch.nn.Module)
    names = {name for name, _ in module.named_parameters()}
    assert names == {f"params.{k.replace('.', '__')}" for k in params}
    assert set(module.state_dict()) == names  # IR arrays are non-persistent buffers
    energy = module(state)
    np.testing.assert_allclose(energy.detach().numpy(), compiled.energy(state, params).numpy(), rtol=1e-6)
    energy.mean().backward()
    grads = compiled.grad_params(state, params)
    for key, safe in module.param_names.items():
        np.testing.assert_allclose(module.params[safe].grad.numpy(), grads[key].numpy(), rtol=1e-5, atol=1e-7)
    double = module.double()(state)
    assert double.dtype == torch.float64
    rounded = {k: v.astype(np.float32).astype(np.float64) for k, v in params.items()}  # the module's values
    np.testing.assert_allclose(double.detach().numpy(), hand.energy(state, rounded), rtol=1e-10)


def test_torch_module_draws_params_when_none_are_given():
    compiled = compiled_hand("rbm", "torch", "float32")
    module = compiled.module(key=compiled.backend.key(4))
    drawn = compiled.init_params(compiled.backend.key(4))
    for key, value in module.named_params().items():
        np.testing.assert_array_equal(value.detach().numpy(), drawn[key].numpy())


def test_jax_function_is_pure_and_differentiable():
    hand = hand_model("ring_gmm")
    rng = np.random.default_rng(3)
    state, params = hand.sample_state(rng, 4), hand.params(rng)
    compiled = compiled_hand("ring_gmm", "jax", "float64")
    energy_fn = compiled.function()
    state_j = {k: jnp.asarray(v) for k, v in state.items()}
    params_j = {k: jnp.asarray(v) for k, v in params.items()}
    np.testing.assert_allclose(np.asarray(energy_fn(state_j, params_j)), hand.energy(state, params), rtol=1e-12)
    grad = jax.grad(lambda p: energy_fn(state_j, p).mean())(params_j)
    want = compiled.grad_params(state, params)
    for key in params:
        np.testing.assert_allclose(np.asarray(grad[key]), np.asarray(want[key]), rtol=1e-12)
    batched = jax.vmap(lambda x: energy_fn({"x": x[None]}, params_j)[0])(state_j["x"])
    np.testing.assert_allclose(np.asarray(batched), hand.energy(state, params), rtol=1e-12)


# -- jit ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["ising", "ring_gmm", "classifier", "potts"])
def test_torch_compile_captures_each_kernel_as_one_graph(model):
    hand = hand_model(model)
    compiled = compiled_hand(model, "torch", "float32")
    state, params = compiled.inputs(hand.sample_state(np.random.default_rng(0), 3), hand.params(np.random.default_rng(0)))
    explained = torch._dynamo.explain(compiled.energy_pure)(compiled.arrays, state, params)
    assert explained.graph_break_count == 0 and explained.graph_count == 1
    discrete = [g for g, v in hand.graph.variables.items() if v.domain.is_discrete and not v.observed]
    if discrete:
        block = compiled._block(discrete[0], np.array([0]))
        explained = torch._dynamo.explain(block.kernel)(block.arrays, state, params)
        assert explained.graph_break_count == 0


def test_torch_compile_option_gives_the_same_numbers():
    hand = hand_model("ring_gmm")
    state, params = hand.sample_state(np.random.default_rng(0), 6), hand.params(np.random.default_rng(0))
    # dynamo's "eager" backend: graph capture without inductor's (slow) C++ build
    chosen = get_backend("torch", dtype="float64", compile={"backend": "eager"})
    compiled = chosen.compile(hand.graph)
    np.testing.assert_allclose(compiled.energy(state, params).numpy(), hand.energy(state, params), rtol=1e-12)
    _, grads = compiled.energy_and_grad_state(state, params, ("x",))
    _, eager = compiled_hand("ring_gmm", "torch", "float64").energy_and_grad_state(state, params, ("x",))
    np.testing.assert_allclose(grads["x"].numpy(), eager["x"].numpy(), rtol=1e-12)


def test_torch_compile_specialises_shapes_unless_told_otherwise(monkeypatch):
    # A dynamic-shape program (dynamo's choice after a second shape) ran the L=256 Ising
    # sweep 4x slower than a specialised one: compile=True asks for static shapes.
    seen = []
    monkeypatch.setattr(torch, "compile", lambda fn, **options: seen.append(options) or fn)
    get_backend("torch", compile=True).jit(lambda x: x)
    get_backend("torch", compile={"mode": "max-autotune"}).jit(lambda x: x)
    get_backend("torch", compile={"dynamic": True}).jit(lambda x: x)
    assert seen == [{"dynamic": False}, {"dynamic": False, "mode": "max-autotune"}, {"dynamic": True}]


def test_torch_compile_failure_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken_compile(fn, **options):
        def fails(*args, **kwargs):
            raise RuntimeError("no C++ compiler")
        return fails

    monkeypatch.setattr(torch, "compile", broken_compile)
    hand = hand_model("ising")
    state, params = _ising_inputs()
    compiled = get_backend("torch", dtype="float64", compile=True).compile(hand.graph)
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*no C\\+\\+ compiler.*running eagerly"):
        energy = compiled.energy(state, params)
    np.testing.assert_allclose(energy.numpy(), hand.energy(state, params), rtol=1e-12)
    np.testing.assert_allclose(compiled.energy(state, params).numpy(), hand.energy(state, params), rtol=1e-12)


def test_float64_jax_leaves_float32_jax_in_float32():
    hand = hand_model("ring_gmm")
    state, params = hand.sample_state(np.random.default_rng(0), 2), hand.params(np.random.default_rng(0))
    assert compiled_hand("ring_gmm", "jax", "float64").energy(state, params).dtype == jnp.float64
    assert compiled_hand("ring_gmm", "jax", "float32").energy(state, params).dtype == jnp.float32
    assert compiled_hand("ring_gmm", "jax", "float32").init_params(backend("jax", "float32").key(0))["mu"].dtype == jnp.float32


# -- fast paths -------------------------------------------------------------------------------


def test_lattice_indices_are_recognised():
    grid = np.arange(12).reshape(3, 4)
    assert classify_index(grid.reshape(-1), (3, 4)).kind == "identity"
    rolled = classify_index(np.roll(grid, (-1, 2), axis=(0, 1)).reshape(-1), (3, 4))
    assert rolled.kind == "roll" and rolled.shifts == (2, 2)
    box = classify_index(grid[1:, :3].reshape(-1), (3, 4))
    assert box.kind == "slice" and box.box == ((1, 3), (0, 3))
    assert classify_index(grid[:, ::2].reshape(-1), (3, 4)).kind == "gather"
    assert classify_index(grid.T.reshape(-1), (3, 4)).kind == "gather"
    assert classify_index(np.array([3, 1]), (3, 4)).kind == "gather"


def test_the_periodic_and_open_ising_use_rolls_and_slices():
    kinds = {p.template.name: sorted(a.kind for a in p.access.values()) for p in plan_graph(hand_model("ising").graph)}
    assert kinds["coupling"] == ["identity", "roll", "roll", "scalar"]
    kinds = {p.template.name: sorted(a.kind for a in p.access.values()) for p in plan_graph(hand_model("ising_open").graph)}
    assert kinds["coupling"] == ["scalar", "slice", "slice"]


def test_rolls_move_only_the_shifted_axes():
    grid = np.arange(12).reshape(3, 4)
    rolled = classify_index(np.roll(grid, -1, axis=0).reshape(-1), (3, 4))
    assert rolled.kind == "roll" and rolled.shifts == (2,) and rolled.axes == (-2,)


def test_invariant_factors_are_peeled_off_products():
    from ir_builders import span

    from ebmlang.backends.evaluator import scaled_sum
    from ebmlang.graph.ir import Apply, Constant, ParamRef, Slot

    at = span("peel.ebm", 1)
    J, a, b = ParamRef(at, "J"), Slot(at, "s", np.arange(3)), Slot(at, "s", np.array([1, 2, 0]))
    peeled = scaled_sum(Apply(at, "mul", (Apply(at, "mul", (Apply(at, "neg", (J,)), a)), b)))
    assert peeled.scalars == (J,) and peeled.negate
    assert peeled.core.fn == "mul" and peeled.core.args == (a, b)
    two = Constant(at, 2.0)
    assert scaled_sum(Apply(at, "mul", (two, J))).core is None  # all invariant: total = value * rows
    plain = Apply(at, "add", (a, b))
    assert scaled_sum(plain).core is plain and not scaled_sum(plain).scalars


def test_templates_sharing_a_factor_are_summed_in_one_reduction():
    from backend_testing import EXAMPLES, example_graph

    from ebmlang.backends.evaluator import group_totals

    ising = [p for p in EXAMPLES if p.endswith("ising.ebm")][0]
    groups = group_totals(plan_graph(example_graph(ising)))
    assert [[p.template.name for p in g.plans] for g in groups] == [["coupling#0", "coupling#1"], ["field"]]


def test_templates_with_different_scalars_or_sizes_stay_apart():
    from ir_builders import span

    from ebmlang.backends.evaluator import group_totals
    from ebmlang.graph.ir import (
        SPIN,
        Apply,
        FactorGraph,
        FactorTemplate,
        ParamGroup,
        ParamInit,
        ParamRef,
        Slot,
        VariableGroup,
    )

    at = span("apart.ebm", 1)
    shared = np.arange(4)

    def coupling(name, scalar, partner, rows=4):
        body = Apply(at, "mul", (ParamRef(at, scalar), Apply(at, "mul", (Slot(at, "s", shared[:rows]), Slot(at, "s", partner[:rows])))))
        return FactorTemplate(name, name, body, rows, ("i",), span=at)

    scalar = ParamInit("value", value=np.array(0.5))
    graph = FactorGraph(
        "Apart", {"s": VariableGroup("s", (4,), SPIN, False, at)},
        {"J": ParamGroup("J", (), scalar, at), "K": ParamGroup("K", (), ParamInit("value", value=np.array(-2.0)), at)},
        (coupling("a", "J", np.array([1, 2, 3, 0])), coupling("b", "K", np.array([2, 3, 0, 1])),
         coupling("c", "J", np.array([3, 0, 1, 2])), coupling("d", "J", np.array([1, 2, 3]), rows=3)),
        ("a", "b", "c", "d"),
    )
    groups = group_totals(plan_graph(graph))
    assert sorted(tuple(p.template.name for p in g.plans) for g in groups) == [("a", "c"), ("b",), ("d",)]
    state = {"s": np.array([[1.0, -1.0, -1.0, 1.0], [1.0, 1.0, -1.0, -1.0]])}
    for name in NAMES:
        compiled = backend(name, "float64").compile(graph)
        params = compiled.init_params(backend(name, "float64").key(0))
        templates = compiled.template_energies(state, params)
        want = sum(backend(name, "float64").to_numpy(v).sum(-1) for v in templates.values())
        np.testing.assert_allclose(backend(name, "float64").to_numpy(compiled.energy(state, params)), want, rtol=1e-12)


def test_a_template_without_variables_counts_once_per_ground_factor():
    from ir_builders import span

    from ebmlang.graph.ir import (
        REAL,
        Apply,
        Constant,
        FactorGraph,
        FactorTemplate,
        ParamGroup,
        ParamInit,
        ParamRef,
        Slot,
        VariableGroup,
    )

    at = span("count.ebm", 1)
    graph = FactorGraph(
        "Count", {"x": VariableGroup("x", (2,), REAL, False, at)},
        {"w": ParamGroup("w", (), ParamInit("value", value=np.array(1.5)), at)},
        (FactorTemplate("flat", "flat", Apply(at, "mul", (Constant(at, 2.0), ParamRef(at, "w"))), 3, ("i",), span=at),
         FactorTemplate("pull", "pull", Apply(at, "square", (Slot(at, "x", np.arange(2)),)), 2, ("i",), span=at)),
        ("flat", "pull"),
    )
    for name in NAMES:
        compiled = backend(name, "float64").compile(graph)
        params = compiled.init_params(backend(name, "float64").key(0))
        energy = backend(name, "float64").to_numpy(compiled.energy({"x": np.ones((2, 2))}, params))
        np.testing.assert_allclose(energy, [9.0 + 2.0, 9.0 + 2.0])


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_value_and_grad_differentiates_arrays_and_dicts(name):
    chosen = backend(name, "float64")
    ops = chosen.ops
    x = chosen.asarray(np.array([1.0, -2.0, 3.0]))
    value, grad = chosen.value_and_grad(lambda v, scale: scale * ops.sum(v * v))(x, 2.0)
    assert float(chosen.to_numpy(value)) == pytest.approx(28.0)
    np.testing.assert_allclose(chosen.to_numpy(grad), [4.0, -8.0, 12.0])
    tree = {"a": x, "b": chosen.asarray(np.array([0.5]))}
    value, grads = chosen.value_and_grad(lambda t: ops.sum(t["a"]) * ops.sum(t["b"]))(tree)
    np.testing.assert_allclose(chosen.to_numpy(grads["a"]), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(chosen.to_numpy(grads["b"]), [2.0])


def test_numpy_value_and_grad_is_an_error():
    with pytest.raises(EbmError, match="cannot differentiate"):
        backend("numpy", "float64").value_and_grad(lambda v: v)


@pytest.mark.parametrize("name", NAMES)
def test_blend_is_where_for_finite_values(name):
    # torch computes blend with lerp: exact at weights 0 and 1, for arrays (broadcast
    # masks included) and numbers alike.
    chosen = backend(name, "float64")
    ops = chosen.ops
    mask = X > 0
    row_mask = np.array([True, False, True])
    cases = [
        (mask, X, Y, np.where(mask, X, Y)),
        (row_mask, X, Y, np.where(row_mask, X, Y)),
        (mask, 1.0, -1.0, np.where(mask, 1.0, -1.0)),
        (mask, X, 3.0, np.where(mask, X, 3.0)),
        (mask, -2.0, Y, np.where(mask, -2.0, Y)),
        (mask, X * 1e-9, Y + 1e8, np.where(mask, X * 1e-9, Y + 1e8)),  # no x - y + y rounding
        (mask, 0.1, 1e8, np.where(mask, 0.1, 1e8)),
    ]
    for m, x, y, want in cases:
        x_in = chosen.asarray(x) if isinstance(x, np.ndarray) else x
        y_in = chosen.asarray(y) if isinstance(y, np.ndarray) else y
        got = chosen.to_numpy(ops.blend(chosen.asarray(m, "bool"), x_in, y_in))
        assert np.array_equal(got, want)
