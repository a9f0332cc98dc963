"""Kernel form: determinism, jit, pure state updates, config errors, and identities."""
from __future__ import annotations

import numpy as np
import pytest
from continuous_helpers import GaussianPotential, JaxAdapter, first_step, make_step, start_chains

from ebmlang.errors import EbmError
from ebmlang.inference.continuous import run_chain
from ebmlang.inference.hmc import HMCConfig, build_hmc_kernel, hmc_init
from ebmlang.inference.langevin import MALAConfig, ULAConfig, build_mala_kernel, build_ula_kernel, mala_init, ula_init
from ebmlang.inference.rwmh import RWMHConfig, build_rwmh_kernel, rwmh_init

KERNELS = {
    "ula": (ula_init, build_ula_kernel, ULAConfig(step_size=0.1)),
    "mala": (mala_init, build_mala_kernel, MALAConfig(step_size=0.3, num_warmup=5)),
    "hmc": (hmc_init, build_hmc_kernel, HMCConfig(step_size=0.3, num_integration_steps=4, num_warmup=5,
                                                    step_size_jitter=0.1)),
    "rwmh": (rwmh_init, build_rwmh_kernel, RWMHConfig(scale=0.7)),
}


def chain_runner(bk, name, jit):
    """run(seed, steps) -> positions [steps, 32, 2], from one start, one built kernel."""
    init, build, config = KERNELS[name]
    potential = GaussianPotential(bk, [0.0, 1.0], [[1.0, 0.5], [0.5, 2.0]])
    state = init(bk, bk.normal(bk.key(0), (32, 2)), potential, config)
    kernel = build(bk, config)
    step = (lambda k, s: kernel(k, s, potential))
    step = bk.jit(step) if jit else step
    return lambda seed, steps=10: run_chain(bk, step, bk.key(seed), state, steps)[1].positions


@pytest.mark.parametrize("name", list(KERNELS))
def test_same_key_same_samples_different_key_different(bk, name):
    run = chain_runner(bk, name, jit=True)
    first = run(1)
    np.testing.assert_array_equal(first, run(1))
    assert not np.allclose(first, run(2))
    # The chains do move (a kernel that never moved would pass the lines above).
    moved = np.any(np.diff(first, axis=0) != 0, axis=(0, 2))
    assert moved.mean() > 0.5


@pytest.mark.parametrize("name", list(KERNELS))
def test_jitted_kernel_matches_eager_kernel(name):
    bk = JaxAdapter()  # jit is a JAX matter; torch runs eagerly
    eager = chain_runner(bk, name, jit=False)(3, steps=4)
    jitted = chain_runner(bk, name, jit=True)(3, steps=4)
    np.testing.assert_allclose(eager, jitted, rtol=1e-5, atol=1e-5)


def test_kernels_leave_the_input_state_alone(bk):
    potential = GaussianPotential(bk, [0.0], [[1.0]])
    config = MALAConfig(step_size=0.5, num_warmup=3)
    state = mala_init(bk, bk.asarray([[0.5], [1.5]]), potential, config)
    before = [bk.to_numpy(a).copy() for a in (state.position, state.step_size, state.adaptation.count)]
    new_state, _ = make_step(bk, build_mala_kernel(bk, config), potential)(bk.key(0), state)
    after = [bk.to_numpy(a) for a in (state.position, state.step_size, state.adaptation.count)]
    for old, same in zip(before, after):
        np.testing.assert_array_equal(old, same)
    np.testing.assert_array_equal(bk.to_numpy(new_state.adaptation.count), 1.0)


class FixedNoise:
    """A backend whose normal draws are a given array (to put two kernels on one path)."""

    def __init__(self, bk, noise):
        self.inner, self.noise, self.ops = bk, noise, bk.ops

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def normal(self, key, shape):
        return self.noise


def test_one_step_hmc_is_mala(bk):
    """HMC with one leapfrog step of eps is MALA with step eps^2 / 2: the same proposal
    for the same noise, and the same Metropolis acceptance probability."""
    potential = GaussianPotential(bk, [1.0, -1.0], [[1.0, 0.8], [0.8, 2.0]])
    start = bk.normal(bk.key(0), (256, 2))
    fixed = FixedNoise(bk, bk.normal(bk.key(1), (256, 2)))
    eps = 0.9
    hmc_config = HMCConfig(step_size=eps, num_integration_steps=1)
    mala_config = MALAConfig(step_size=eps ** 2 / 2)
    _, _, hmc_info = first_step(fixed, hmc_init, build_hmc_kernel, hmc_config, start, potential, bk.key(2))
    _, _, mala_info = first_step(fixed, mala_init, build_mala_kernel, mala_config, start, potential, bk.key(2))
    hmc_rate, mala_rate = bk.to_numpy(hmc_info.acceptance_rate), bk.to_numpy(mala_info.acceptance_rate)
    np.testing.assert_allclose(hmc_rate, mala_rate, rtol=1e-4, atol=1e-5)
    assert 0.05 < mala_rate.mean() < 0.95  # a step size where the ratio matters


def test_rwmh_needs_only_energy(bk):
    class EnergyOnly:
        def energy(self, x):
            return bk.ops.sum(bk.ops.abs(x), axis=-1)  # not differentiable at 0

    config = RWMHConfig(scale=1.0)
    _, state, info = first_step(bk, rwmh_init, build_rwmh_kernel, config, bk.asarray(np.zeros((8, 3))),
                                EnergyOnly(), bk.key(0))
    assert bk.to_numpy(state.position).shape == (8, 3)


def test_run_chain_discards_and_thins(bk):
    init, build, config = KERNELS["mala"]
    potential = GaussianPotential(bk, [0.0], [[1.0]])
    state = start_chains(bk, init, bk.normal(bk.key(0), (4, 1)), potential, config)
    step = make_step(bk, build(bk, config), potential)
    final, trace = run_chain(bk, step, bk.key(1), state, 10, num_discard=4, thin=2)
    assert trace.positions.shape == (3, 4, 1)  # steps 4, 6, 8 of 0..9
    assert set(trace.info) == {"acceptance_rate", "is_accepted", "is_divergent", "step_size"}
    assert trace.info["is_accepted"].shape == (3, 4)
    np.testing.assert_array_equal(bk.to_numpy(final.adaptation.count), 5.0)  # num_warmup = 5


@pytest.mark.parametrize("make, setting", [
    (lambda: ULAConfig(step_size=0.0), "step_size"),
    (lambda: ULAConfig(temperature=-1.0), "temperature"),
    (lambda: MALAConfig(target_accept=1.0), "target_accept"),
    (lambda: MALAConfig(num_warmup=-3), "num_warmup"),
    (lambda: HMCConfig(num_integration_steps=2.5), "num_integration_steps"),
    (lambda: HMCConfig(inverse_mass=[1.0, 0.0]), "inverse_mass"),
    (lambda: HMCConfig(step_size_jitter=1.0), "step_size_jitter"),
    (lambda: RWMHConfig(scale=float("nan")), "scale"),
    (lambda: RWMHConfig(bounds=(1.0, 0.0)), "empty"),
])
def test_bad_settings_are_errors_with_hints(make, setting):
    with pytest.raises(EbmError, match=setting) as caught:
        make()
    assert caught.value.hint
