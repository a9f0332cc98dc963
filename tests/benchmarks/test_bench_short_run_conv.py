"""The short_run_conv workload's contenders compute the same maths.

Their random streams differ (torch's generator, JAX's keys, ebmlang's own key splits), so
one training iteration's numbers cannot be compared; what each contender computes from
given params and given starting chains can: the energy of a batch and its gradient in
the pixels, and the 60 SGLD steps of the recipe with the noise turned off (gradient
clipping, step and clamp to [0, 1]), from the same params on every contender.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.kernels import short_run as kernels  # noqa: E402
from benchmarks.kernels import short_run_conv as conv  # noqa: E402
from benchmarks.workloads import short_run_conv as workload  # noqa: E402

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
pytest.importorskip("sklearn")
import ebmlang  # noqa: E402
from ebmlang.inference.potential import ModelPotential  # noqa: E402
from ebmlang.inference.replay import short_run_langevin  # noqa: E402

NOISELESS = replace(kernels.Recipe(), noise=0.0)
# Five 60-step SGLD programs compiled (two hand-written JAX, ebmlang JAX) and run: ~20 s on a busy machine.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setting():
    """The hand-written torch network (seed 0) and 16 digits beside 16 uniform-noise images."""
    torch.set_num_threads(1)
    net = conv.torch_conv(0)
    digits = workload.make_problem(smoke=True)[:16]
    noise = np.random.default_rng(0).random((16, *conv.IMAGE), dtype=np.float32)
    return net, np.concatenate([digits, noise])


def ebmlang_model(backend: str, net):
    model = ebmlang.load(workload.EXAMPLE, backend=backend, seed=1)
    return model.set_params({f"f.{name}": value.detach().numpy() for name, value in net.state_dict().items()})


def energies_and_pixel_grads(setting) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    net, x = setting
    out = {}
    xt = torch.from_numpy(x).requires_grad_(True)
    energy = net(xt).squeeze(-1)
    out["torch (hand-written)"] = energy, torch.autograd.grad(energy.sum(), xt)[0]

    params = conv.jax_params_from_torch(net.state_dict())
    for channels_last in (True, False):
        _, energy_fn = conv.jax_conv(channels_last)
        out[f"JAX (hand-written, channels_last={channels_last})"] = (
            energy_fn(params, x), jax.grad(lambda v, f=energy_fn: f(params, v).sum())(x))

    module = ebmlang_model("torch", net).to_torch()
    xt = torch.from_numpy(x).requires_grad_(True)
    energy = module({"x": xt})
    out["ebmlang (torch)"] = energy, torch.autograd.grad(energy.sum(), xt)[0]

    fn, params = ebmlang_model("jax", net).to_jax()
    out["ebmlang (jax)"] = fn({"x": x}, params), jax.grad(lambda v: fn({"x": v}, params).sum())(x)
    return {name: (np.asarray(e.detach() if hasattr(e, "detach") else e), np.asarray(g))
            for name, (e, g) in out.items()}


def test_every_contender_has_the_same_energy_and_pixel_gradient(setting) -> None:
    results = energies_and_pixel_grads(setting)
    energy, grad = results["torch (hand-written)"]
    assert energy.shape == (32,) and grad.shape == (32, *conv.IMAGE)
    assert np.ptp(energy) > 1e-3 and np.abs(grad).max() > 1e-4  # not a degenerate comparison
    for name, (other_energy, other_grad) in results.items():
        np.testing.assert_allclose(other_energy, energy, rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(other_grad, grad, rtol=1e-4, atol=1e-7, err_msg=name)


def noiseless_sgld(setting) -> dict[str, np.ndarray]:
    net, x = setting
    out = {}
    for p in net.parameters():
        p.requires_grad_(False)
    out["torch (hand-written)"] = kernels.torch_sgld(net, torch.from_numpy(x), NOISELESS, torch.Generator())
    for p in net.parameters():
        p.requires_grad_(True)

    params = conv.jax_params_from_torch(net.state_dict())
    for channels_last in (True, False):
        _, energy_fn = conv.jax_conv(channels_last)
        out[f"JAX (hand-written, channels_last={channels_last})"] = jax.jit(kernels.jax_sgld(energy_fn, NOISELESS))(
            params, x, jax.random.key(0))

    for backend in ("torch", "jax"):
        # What fit's chains run: the model's potential over x (clamped, not transformed) and
        # short_run_langevin with the recipe's settings, here without noise.
        model = ebmlang_model(backend, net)
        bk = model.backend
        potential = ModelPotential(model.compiled, model.params, {}, ("x",), transform_bounded=False)
        start = potential.pack({"x": bk.asarray(x)})
        moved = short_run_langevin(bk, bk.key(0), start, potential, NOISELESS.sgld_steps, NOISELESS.step_size,
                                   0.0, NOISELESS.grad_clip, bounds=(0.0, 1.0))
        out[f"ebmlang ({backend})"] = bk.to_numpy(potential.unpack(moved)["x"])
    return {name: np.asarray(v.detach() if hasattr(v, "detach") else v) for name, v in out.items()}


def test_every_contender_runs_the_same_noiseless_sgld(setting) -> None:
    _, x = setting
    results = noiseless_sgld(setting)
    reference = results["torch (hand-written)"]
    assert reference.shape == x.shape and np.abs(reference - x).max() > 0.05  # the chains moved
    assert reference.min() >= 0.0 and reference.max() <= 1.0
    for name, chains in results.items():
        np.testing.assert_allclose(chains, reference, atol=1e-4, err_msg=name)


def test_the_smoke_recipe_is_the_small_one_and_the_full_one_igebms() -> None:
    from benchmarks.workloads.short_run import langevin_overrides

    assert workload.recipe(smoke=False) == kernels.Recipe()
    assert langevin_overrides(workload.recipe(smoke=False)) is None
    assert langevin_overrides(workload.recipe(smoke=True)) == {"steps": 5, "buffer_size": 500}
