"""Replay buffer (Du & Mordatch 2019) and short-run Langevin chains."""
from __future__ import annotations

import numpy as np
import pytest
from continuous_helpers import GaussianPotential, TorchAdapter, assert_mean_variance

from ebmlang.errors import EbmError
from ebmlang.inference.replay import ReplayBuffer, short_run_langevin


def constant_buffer(bk, value: float, capacity: int = 100, reinit_prob: float = 0.05) -> ReplayBuffer:
    """A buffer whose every entry is `value` (outside the noise range [-1, 1])."""
    buffer = ReplayBuffer.create(bk, bk.key(0), capacity, (3,), reinit_prob=reinit_prob)
    return buffer.push(bk.asarray(np.full((capacity, 3), value)))


def test_create_fills_with_the_requested_noise(bk):
    uniform = bk.to_numpy(ReplayBuffer.create(bk, bk.key(0), 5000, (2,), init="uniform", low=2.0, high=4.0).data)
    assert uniform.shape == (5000, 2)
    assert uniform.min() >= 2.0 and uniform.max() <= 4.0
    # Mean of 10000 uniforms on [2, 4]: SE = sqrt(1/3 / 10000) = 0.0058; 5 SE.
    assert abs(uniform.mean() - 3.0) < 0.03
    normal = bk.to_numpy(ReplayBuffer.create(bk, bk.key(0), 5000, (2,), init="normal", std=3.0).data)
    # Variance of 10000 normals with var 9: SE = 9 sqrt(2 / 10000) = 0.13; 5 SE.
    assert abs(normal.var() - 9.0) < 0.65 and abs(normal.mean()) < 0.15


def test_sample_restarts_about_reinit_prob_of_the_chains(bk):
    buffer = constant_buffer(bk, 10.0, reinit_prob=0.05)
    starts = bk.to_numpy(buffer.sample(bk.key(1), 20000))
    assert starts.shape == (20000, 3)
    restarted = starts[:, 0] != 10.0
    # Binomial(20000, 0.05): sd 0.0015; 5 sd.
    assert abs(restarted.mean() - 0.05) < 0.0077
    # A restarted chain is fresh noise in every coordinate, a kept one is a buffer row.
    assert np.all(np.abs(starts[restarted]) <= 1.0)
    np.testing.assert_array_equal(starts[~restarted], 10.0)


@pytest.mark.parametrize("reinit_prob, expected_restarts", [(0.0, 0), (1.0, 500)])
def test_reinit_prob_extremes(bk, reinit_prob, expected_restarts):
    starts = bk.to_numpy(constant_buffer(bk, 10.0, reinit_prob=reinit_prob).sample(bk.key(2), 500))
    assert int((starts[:, 0] != 10.0).sum()) == expected_restarts


def test_sample_draws_entries_uniformly(bk):
    capacity = 20
    buffer = ReplayBuffer.create(bk, bk.key(0), capacity, (1,), reinit_prob=0.0)
    buffer = buffer.push(bk.asarray(np.arange(capacity, dtype=float)[:, None]))
    drawn = bk.to_numpy(buffer.sample(bk.key(3), 40000))[:, 0].astype(int)
    counts = np.bincount(drawn, minlength=capacity)
    # Chi-square with 19 degrees of freedom: P(> 50) ~ 1e-4.
    chi2 = ((counts - 2000) ** 2 / 2000).sum()
    assert chi2 < 50, counts


def test_push_puts_newest_first_and_drops_the_oldest(bk):
    buffer = ReplayBuffer.create(bk, bk.key(0), 5, (1,))
    first = buffer.push(bk.asarray([[1.0], [2.0], [3.0]]))
    second = first.push(bk.asarray([[4.0], [5.0], [6.0]]))
    np.testing.assert_array_equal(bk.to_numpy(second.data)[:, 0], [4.0, 5.0, 6.0, 1.0, 2.0])
    assert second.capacity == 5
    # Pure: the earlier buffers are unchanged.
    np.testing.assert_array_equal(bk.to_numpy(first.data)[:3, 0], [1.0, 2.0, 3.0])
    with pytest.raises(EbmError, match="shape"):
        second.push(bk.asarray(np.zeros((2, 2))))


def test_short_run_langevin_clips_gradients_exactly(bk):
    """No noise: gradient descent on x^2 / 2 from 100 with gradients clipped to 1 moves
    exactly step_size per step."""
    potential = GaussianPotential(bk, [0.0], [[1.0]])
    x = short_run_langevin(bk, bk.key(0), bk.asarray([[100.0], [-100.0], [0.5]]), potential,
                           steps=10, step_size=0.1, noise_scale=0.0, grad_clip=1.0)
    np.testing.assert_allclose(bk.to_numpy(x)[:, 0], [99.0, -99.0, 0.5 * 0.9 ** 10], rtol=1e-5)


def test_short_run_langevin_with_langevin_noise_is_ula(bk):
    """noise_scale = sqrt(2 step) makes it ULA: from N(0, 1) on E = (x - 3)^2 / 2 at T = 2,
    after 800 steps of 0.05 the law is N(3, 2 / (1 - 0.05 / 4)), up to a residual bias of
    (1 - 0.025)^800 ~ 1e-9 from the start."""
    potential = GaussianPotential(bk, [3.0], [[1.0]])
    x0 = bk.normal(bk.key(0), (20000, 1))
    x = short_run_langevin(bk, bk.key(1), x0, potential, steps=800, step_size=0.05,
                           noise_scale=np.sqrt(0.1), temperature=2.0)
    # 20000 independent chains: the ESS is exactly 20000.
    assert_mean_variance(bk.to_numpy(x), 3.0, 2.0 / (1 - 0.05 / 4), ess=20000)


def test_short_run_langevin_bounds_and_non_finite_gradients(bk):
    class NaNBelowZero:
        def energy_and_grad(self, x):
            ops = bk.ops
            grad = ops.where(x < 0, ops.full_like(x, float("nan")), ops.ones_like(x))
            return ops.sum(x, axis=-1), grad

    x = short_run_langevin(bk, bk.key(0), bk.asarray([[0.5], [-0.5]]), NaNBelowZero(),
                           steps=3, step_size=0.1, noise_scale=0.0)
    # The chain at -0.5 has a NaN gradient: it ends where it started; the other descends.
    np.testing.assert_allclose(bk.to_numpy(x)[:, 0], [0.2, -0.5], atol=1e-6)
    potential = GaussianPotential(bk, [5.0], [[1.0]])
    x = short_run_langevin(bk, bk.key(0), bk.asarray(np.zeros((100, 1))), potential, steps=50,
                           step_size=0.5, noise_scale=1.0, bounds=(0.0, 1.0))
    values = bk.to_numpy(x)
    assert values.min() >= 0.0 and values.max() <= 1.0


def test_short_run_langevin_is_deterministic_and_jits(bk):
    potential = GaussianPotential(bk, [0.0, 1.0], np.eye(2))
    x0 = bk.normal(bk.key(0), (64, 2))

    def run(key, start):
        return short_run_langevin(bk, key, start, potential, steps=5, step_size=0.1, noise_scale=0.05,
                                  grad_clip=0.5)

    first, again = bk.to_numpy(run(bk.key(7), x0)), bk.to_numpy(bk.jit(run)(bk.key(7), x0))
    np.testing.assert_allclose(first, again, rtol=1e-5, atol=1e-6)
    assert not np.allclose(first, bk.to_numpy(run(bk.key(8), x0)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(capacity=0), "capacity"),
    (dict(reinit_prob=1.5), "reinitialisation"),
    (dict(init="laplace"), "noise"),
    (dict(init="uniform", low=1.0, high=1.0), "low < high"),
    (dict(init="normal", std=0.0), "std"),
])
def test_bad_buffer_settings_are_errors_with_hints(kwargs, message):
    bk = TorchAdapter()  # argument checks happen before any array work: one backend suffices
    settings = dict(capacity=10, sample_shape=(2,)) | kwargs
    with pytest.raises(EbmError, match=message) as caught:
        ReplayBuffer.create(bk, bk.key(0), settings.pop("capacity"), settings.pop("sample_shape"), **settings)
    assert caught.value.hint


def test_bad_short_run_settings_are_errors():
    bk = TorchAdapter()
    potential = GaussianPotential(bk, [0.0], [[1.0]])
    with pytest.raises(EbmError, match="short-run"):
        short_run_langevin(bk, bk.key(0), bk.asarray([[0.0]]), potential, steps=-1, step_size=0.1, noise_scale=0.1)
    with pytest.raises(EbmError, match="grad_clip"):
        short_run_langevin(bk, bk.key(0), bk.asarray([[0.0]]), potential, steps=1, step_size=0.1, noise_scale=0.1,
                           grad_clip=0.0)
