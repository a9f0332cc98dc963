"""Chains sharded over 4 simulated CPU devices give the one-device samples.

XLA reads --xla_force_host_platform_device_count only when JAX starts, so the runs
happen in one subprocess (tests/scale/sharded_runs.py) and are compared here.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
# A subprocess that starts JAX on 4 simulated devices and samples five models: about 12 s.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("sharded") / "runs.npz"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, str(HERE / "sharded_runs.py"), str(out)], env=env,
                          capture_output=True, text=True, timeout=600, cwd=HERE.parents[1])
    assert done.returncode == 0, done.stderr[-4000:]
    with np.load(out) as arrays:
        return {k: arrays[k] for k in arrays.files}


def test_four_devices_shard_the_chain_axis(runs):
    assert int(runs["device_count"]) == 4
    assert int(runs["ising_devices"]) == 4
    assert runs["ising_spec"].tolist() == ["chains"]


def test_gibbs_on_four_devices_equals_one_device(runs):
    # Chains never interact in a Gibbs sweep and threefry is partitionable: bit-identical.
    np.testing.assert_array_equal(runs["ising_sharded"], runs["ising_single"])
    np.testing.assert_allclose(runs["ising_energy_sharded"], runs["ising_energy_single"], rtol=0, atol=1e-4)


def test_mala_with_shared_adaptation_agrees_to_rounding(runs):
    # Shared dual averaging takes the mean acceptance over chains: a cross-device
    # all-reduce whose summation order differs from one device's, i.e. last-bit
    # differences (float64: ~1e-16 relative) that 120 steps amplify to ~1e-14 at most;
    # an accept/reject flip (an O(1) difference) would fail this.
    np.testing.assert_allclose(runs["mala_adapted_sharded"], runs["mala_adapted_single"], rtol=0, atol=1e-9)
    assert runs["mala_adapted_sharded"].shape == (8, 90, 2)
    # NUTS (the automatic choice) runs on the mesh: its trajectories' lengths differ per
    # chain, so the draws are not compared; they are finite and centred on the mean (1, -1).
    nuts = runs["nuts_sharded"]
    assert nuts.shape == (8, 90, 2) and np.all(np.isfinite(nuts))
    assert np.all(np.abs(nuts.reshape(-1, 2).mean(0) - [1.0, -1.0]) < 0.5)


def test_mixed_gibbs_and_mala_on_four_devices(runs):
    # burn_in=0: no step-size adaptation, so nothing mixes chains across devices and
    # both the Gibbs and the MALA half of each sweep are bit-identical.
    np.testing.assert_array_equal(runs["mixed_z_sharded"], runs["mixed_z_single"])
    np.testing.assert_array_equal(runs["mixed_x_sharded"], runs["mixed_x_single"])


def test_chains_must_split_evenly(runs):
    message = str(runs["uneven_error"])
    assert "6 chains do not split evenly over 4 devices" in message
    assert "e.g. 8" in message


def test_sharded_sampling_refuses_an_argmin_method_as_model_sample_does(runs):
    # The checks are the ones Model.sample makes (inference.run.check_sample_request).
    message = str(runs["annealing_error_sharded"])
    assert "method 'annealed_gibbs' does not apply to sample on this model" in message
    assert message == str(runs["annealing_error_single"])
