"""Steps split at their randomness (`RandomKernel`, `Backend.jit_step`) and torch.compile.

Every sampler step is `move(state, draw(key, state), context)`. On torch with
compile=... the move runs under torch.compile while the seeded generators draw eagerly,
so the move must be one dynamo graph (a break would silently fall back to eager
pieces) and must give the numbers the eager step gives from the same key.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ebmlang
from ebmlang.backends import get_backend
from ebmlang.cli.showcase import EXAMPLES
from ebmlang.graph import structure
from ebmlang.inference import hmc, langevin, rwmh
from ebmlang.inference.gibbs import build_gibbs_kernel, build_gibbs_sweep, gibbs_blocks
from ebmlang.inference.potential import ModelPotential
from ebmlang.inference.run import record_chains
from ebmlang.inference.steppers import CarriedStepper, jitted_gibbs_sweep

# dynamo's graph capture without inductor's C++ build: same graphs, fast tests.
CAPTURE_ONLY = {"backend": "eager"}

RING = """
const K = 8
const R = 4.0
param sigma = 0.5
latent x[2] : real
energy mixture = -logsumexp(k in 0..K) (-((x[0] - R*cos(2*pi*k/K))^2 + (x[1] - R*sin(2*pi*k/K))^2) / (2*sigma^2))
"""

# Binary, categorical and real variables in one model: a Gibbs sweep over z and c
# alternates with a continuous kernel over x.
MIXED = """
const N = 6
latent z[N] : binary
latent c[N] : categorical(3)
latent x[N] : real
param J = 0.8
energy chain = -sum(i in 0..N-1) J * (2*z[i] - 1) * (2*z[i+1] - 1)
energy labels = -sum(i in 0..N-1) [c[i] == c[i+1]]
energy fit = 0.5 * sum(i in 0..N) (x[i] - 2*z[i] - 0.5*[c[i] == 2])^2
"""

KERNELS = {
    "ula": (langevin.ula_init, langevin.build_ula_kernel, langevin.ULAConfig(step_size=0.05)),
    "mala": (langevin.mala_init, langevin.build_mala_kernel, langevin.MALAConfig(step_size=0.05, num_warmup=3)),
    "hmc": (hmc.hmc_init, hmc.build_hmc_kernel, hmc.HMCConfig(step_size=0.05, num_integration_steps=3,
                                                                step_size_jitter=0.2)),
    "rwmh": (rwmh.rwmh_init, rwmh.build_rwmh_kernel, rwmh.RWMHConfig(scale=0.3, num_warmup=3)),
}


def ring_kernel(name: str, backend):
    model = ebmlang.loads(RING, backend=backend)
    potential = ModelPotential(model.compiled, model.params, {}, ("x",))
    init, build, config = KERNELS[name]
    start = np.random.default_rng(0).normal(0.0, 3.0, (64, 2))
    state = init(model.backend, model.backend.asarray(start), potential, config)
    return model.backend, build(model.backend, config), state, potential


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_every_continuous_move_is_one_torch_graph(name):
    bk, kernel, state, potential = ring_kernel(name, get_backend("torch", compile=CAPTURE_ONLY))
    draws = kernel.draw(bk.key(1), state)
    explained = torch._dynamo.explain(kernel.move)(state, draws, potential)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_a_kernel_is_its_move_of_its_draws(name):
    """The split changes no numbers: calling the kernel, or drawing then moving, from the
    same key gives the same step (bit for bit), and another key gives another step."""
    bk, kernel, state, potential = ring_kernel(name, "torch")
    called, _ = kernel(bk.key(3), state, potential)
    split, _ = kernel.move(state, kernel.draw(bk.key(3), state), potential)
    other, _ = kernel(bk.key(4), state, potential)
    torch.testing.assert_close(called.position, split.position, rtol=0, atol=0)
    assert not torch.equal(called.position, other.position)


@pytest.mark.parametrize("source", ["ising", "mixed"])
def test_gibbs_moves_are_one_torch_graph(source):
    if source == "ising":
        model = ebmlang.load(EXAMPLES / "ising.ebm",
                             backend=get_backend("torch", compile=CAPTURE_ONLY))
        state = {"s": model.backend.asarray(np.ones((4,) + model.graph.variables["s"].shape))}
    else:
        model = ebmlang.loads(MIXED, backend=get_backend("torch", compile=CAPTURE_ONLY))
        state = {g: model.backend.asarray(np.ones((4,) + v.shape)) for g, v in model.graph.variables.items()}
    blocks = gibbs_blocks(model.graph, structure.colouring(model.graph).classes)
    sweep = build_gibbs_sweep(model.compiled, blocks)
    carry = sweep.init(state)
    explained = torch._dynamo.explain(sweep.move)(carry, sweep.draw(model.backend.key(0), carry), model.params)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons
    kernel = build_gibbs_kernel(model.compiled, blocks)
    explained = torch._dynamo.explain(kernel.move)(state, kernel.draw(model.backend.key(0), state), model.params)
    assert explained.graph_break_count == 0


def sample_mixed(backend, steps: int = 30, method=None):
    model = ebmlang.loads(MIXED, backend=backend)
    return model.sample(chains=16, steps=steps, burn_in=0, seed=7, progress=False, method=method)


@pytest.mark.parametrize("method", ["mala", None])
def test_compiled_sampling_of_a_mixed_model_repeats_eager_sampling(method):
    """Model.sample with torch compile=... (Gibbs over z and c, MALA or the plan's NUTS over
    x): the same seed gives the same chains as eager torch. float64 and 30 steps, so the
    compiled graph's reordered arithmetic (1e-16 per op) cannot flip a discrete draw.
    NUTS's trajectory loop tests values on the host, so it runs uncompiled (compiling it
    recompiled at every tree depth until dynamo's limit)."""
    eager = sample_mixed(get_backend("torch", dtype="float64"), method=method)
    compiled = sample_mixed(ebmlang.get_backend("torch", dtype="float64", compile=CAPTURE_ONLY),
                            method=method)  # as README
    assert [b.method for b in eager.plan.blocks] == ["gibbs", method or "nuts"]
    for name in ("z", "c"):
        np.testing.assert_array_equal(compiled.draws[name], eager.draws[name])
    np.testing.assert_allclose(compiled.draws["x"], eager.draws["x"], rtol=1e-10, atol=1e-12)


def ising_sweeps_and_mala_steps(backend) -> tuple[np.ndarray, np.ndarray]:
    """Spins after four Gibbs sweeps of examples/ising.ebm and ring positions after four
    MALA steps, each stepped through `backend.jit_step` from fixed keys."""
    model = ebmlang.load(EXAMPLES / "ising.ebm", backend=backend)
    blocks = gibbs_blocks(model.graph, structure.colouring(model.graph).classes)
    sweep = build_gibbs_sweep(model.compiled, blocks)
    step = backend.jit_step(sweep.draw, sweep.move)
    spins = np.where(np.random.default_rng(1).random((8,) + model.graph.variables["s"].shape) < 0.5, -1.0, 1.0)
    carry = sweep.init({"s": backend.asarray(spins)})
    for key in backend.split(backend.key(2), 4):
        carry = step(key, carry, model.params)

    bk, kernel, state, potential = ring_kernel("mala", backend)
    mala = bk.jit_step(kernel.draw, lambda s, d: kernel.move(s, d, potential))
    for key in bk.split(bk.key(5), 4):
        state, _ = mala(key, state)
    return backend.to_numpy(sweep.finish(carry)["s"]), bk.to_numpy(state.position)


def test_inductor_compiles_the_ising_sweep_and_the_mala_step():
    """The real compiler (inductor, C++), which `compile=True` runs in the benchmarks,
    gives eager torch's numbers from the same keys (float64)."""
    eager_spins, eager_positions = ising_sweeps_and_mala_steps(get_backend("torch", dtype="float64"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spins, positions = ising_sweeps_and_mala_steps(get_backend("torch", dtype="float64", compile=True))
    fallbacks = [str(w.message) for w in caught if "torch.compile failed" in str(w.message)]
    assert not fallbacks, fallbacks  # compiled for real, not the eager fallback
    np.testing.assert_array_equal(spins, eager_spins)
    np.testing.assert_allclose(positions, eager_positions, rtol=1e-10, atol=1e-12)


SHIFTED_GAUSSIAN = """
param mu = 0.0
latent x[50] : real
energy centre = 0.5 * sum(i in 0..50) (x[i] - mu)^2
"""


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_later_runs_reuse_the_jitted_steps_and_read_the_current_params(backend):
    """The jitted steps are kept per graph (`CompiledGraph.memo`) so a second run does not
    retrace or recompile; params are arguments, so a set_params between runs is seen.
    x ~ N(mu, 1) per coordinate: the mean over 8 chains x 300 draws x 50 coordinates has
    a standard error below 0.01 even at an ESS of 1 in 20 draws, so 0.1 is > 10 se."""
    model = ebmlang.loads(SHIFTED_GAUSSIAN, backend=backend)
    first = model.sample(chains=8, steps=400, seed=0, progress=False)
    kept = dict(model.compiled._memo)
    assert any(key[0] == "continuous step" for key in kept)
    model.set_params(mu=3.0)
    second = model.sample(chains=8, steps=400, seed=0, progress=False)
    assert model.compiled._memo.keys() == kept.keys()
    assert all(model.compiled._memo[key] is step for key, step in kept.items())
    assert abs(first["x"].mean()) < 0.1
    assert abs(second["x"].mean() - 3.0) < 0.1


def test_a_carried_sweep_records_what_stepping_the_state_records():
    """record_chains keeps a lone Gibbs sweep's packed carry between recorded draws; the
    draws and energies must be those of stepping the dense state each time (same keys)."""
    model = ebmlang.load(EXAMPLES / "ising.ebm", backend="torch")
    blocks = gibbs_blocks(model.graph)
    sweep = jitted_gibbs_sweep(model, blocks, {}, 1.0)
    assert isinstance(sweep, CarriedStepper)
    start = {"s": model.backend.asarray(np.where(np.random.default_rng(2).random((3, 32, 32)) < 0.5, -1.0, 1.0))}
    runs = [
        record_chains(model, [stepper], dict(start), ["s"], seed=4, steps=13, burn_in=3, thin=4, progress=False,
                      label="")
        for stepper in (sweep, lambda key, state: sweep(key, state))
    ]
    (carried_state, carried, carried_energy), (dense_state, dense, dense_energy) = runs
    assert carried["s"].shape == (3, 3, 32, 32)  # draws after steps 3, 7, 11; step 12 unrecorded
    np.testing.assert_array_equal(carried["s"], dense["s"])
    np.testing.assert_array_equal(carried_energy, dense_energy)
    np.testing.assert_array_equal(carried_state["s"].numpy(), dense_state["s"].numpy())


def test_a_backend_object_fixes_device_and_dtype():
    backend = ebmlang.get_backend("torch", dtype="float64")
    assert ebmlang.loads(RING, backend=backend, dtype="float64", device="cpu").backend is backend
    with pytest.raises(ebmlang.EbmError, match="dtype='float32' was asked for, but the Backend passed in uses "
                                              "dtype='float64'"):
        ebmlang.loads(RING, backend=backend, dtype="float32")
    assert ebmlang.loads(RING, backend=ebmlang.get_backend("jax"), device="cpu").backend.device == "cpu:0"
    assert ebmlang.loads(RING, dtype="float64").backend.dtype == "float64"  # by name, as before
