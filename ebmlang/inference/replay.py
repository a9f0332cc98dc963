"""Short-run Langevin chains started from a replay buffer (Du & Mordatch, 2019).

Training an EBM by contrastive divergence needs negative samples every step. Du &
Mordatch keep the end points of past chains in a buffer and start most new chains
there (so chains are effectively long-run across training steps), but start a small
fraction (5%) from fresh noise so the sampler keeps exploring. The chains themselves
are a few dozen SGLD steps with a step size and a noise scale set independently,
gradients clipped elementwise:

    x <- x - step_size * clip(grad E(x) / T, -c, c) + noise_scale * N(0, I)

(with noise_scale = sqrt(2 step_size) this is ULA at temperature T).

The buffer is an immutable value: `sample` reads it, `push` returns a new buffer.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.inference.continuous import Array, ArrayBackend, Key, Potential, per_chain

NOISE_KINDS = ("uniform", "normal")


def draw_noise(
    bk: ArrayBackend, key: Key, shape: tuple[int, ...], init: str, low: float, high: float, std: float
) -> Array:
    """Noise of `shape`: uniform on [low, high] or normal(0, std), as `init` says."""
    if init == "normal":
        return std * bk.normal(key, shape)
    return low + (high - low) * bk.uniform(key, shape)


@dataclass(frozen=True, eq=False)
class ReplayBuffer:
    """Past samples `data` [capacity, *sample_shape], newest first.

    init: the noise that fills the buffer and restarts chains -- "uniform" on
    [low, high] or "normal" with mean 0 and standard deviation `std`.
    reinit_prob: the chance that a sampled chain starts from fresh noise instead.
    """

    bk: ArrayBackend
    data: Array
    reinit_prob: float = 0.05
    init: str = "uniform"
    low: float = -1.0
    high: float = 1.0
    std: float = 1.0

    @classmethod
    def create(
        cls,
        bk: ArrayBackend,
        key: Key,
        capacity: int,
        sample_shape: Sequence[int],
        *,
        reinit_prob: float = 0.05,
        init: str = "uniform",
        low: float = -1.0,
        high: float = 1.0,
        std: float = 1.0,
    ) -> "ReplayBuffer":
        """A buffer of `capacity` noise samples of shape `sample_shape` (e.g. (D,))."""
        if int(capacity) != capacity or capacity < 1:
            raise EbmError(f"a replay buffer needs a capacity of at least 1, got {capacity!r}",
                           hint="pass capacity=10000, say")
        if not 0.0 <= reinit_prob <= 1.0:
            raise EbmError(f"the reinitialisation probability must lie in [0, 1], got {reinit_prob!r}",
                           hint="Du & Mordatch use reinit_prob=0.05")
        if init not in NOISE_KINDS:
            raise EbmError(f"unknown replay-buffer noise '{init}'", expected=" or ".join(NOISE_KINDS),
                           hint="init='uniform' (on [low, high]) or init='normal' (std)")
        if init == "uniform" and not low < high:
            raise EbmError(f"uniform noise needs low < high, got [{low}, {high}]",
                           hint="pass low=-1.0, high=1.0, say")
        if init == "normal" and not std > 0:
            raise EbmError(f"normal noise needs std > 0, got {std!r}", hint="pass std=1.0, say")
        data = draw_noise(bk, key, (int(capacity),) + tuple(sample_shape), init, low, high, std)
        return cls(bk, data, float(reinit_prob), init, float(low), float(high), float(std))

    @property
    def capacity(self) -> int:
        return int(self.data.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[1:])

    def noise(self, key: Key, n: int) -> Array:
        """`n` fresh noise samples [n, *sample_shape]."""
        return draw_noise(self.bk, key, (n,) + self.sample_shape, self.init, self.low, self.high, self.std)

    def sample(self, key: Key, n: int) -> Array:
        """`n` chain starts [n, *sample_shape]: buffer entries drawn uniformly with
        replacement, each replaced by fresh noise with probability `reinit_prob`."""
        index_key, restart_key, noise_key = self.bk.split(key, 3)
        picked = self.data[self._indices(self.bk.uniform(index_key, (n,)))]
        restart = self.bk.uniform(restart_key, (n,)) < self.reinit_prob
        return self.bk.ops.where(per_chain(restart, picked), self.noise(noise_key, n), picked)

    def _indices(self, uniform: Array):
        """floor(uniform * capacity) (at most capacity - 1) as float64 arithmetic gives it:
        on JAX an integer array made on the device (no host round trip, so `sample`
        traces into a compiled training step), elsewhere on the host (the backend
        interface has no integer dtype). Both give the same indices from the same draws."""
        if getattr(self.bk, "name", "") == "jax":
            return _jax_indices(self.capacity)(uniform)
        uniform = np.asarray(self.bk.to_numpy(uniform), dtype=np.float64)
        return np.minimum((uniform * self.capacity).astype(np.int64), self.capacity - 1)

    def push(self, samples: Array) -> "ReplayBuffer":
        """A new buffer with `samples` at the front, the oldest entries dropped."""
        if tuple(samples.shape[1:]) != self.sample_shape:
            raise EbmError(f"samples of shape {tuple(samples.shape[1:])} pushed to a replay buffer of "
                           f"shape {self.sample_shape}", hint="push arrays [n, *sample_shape]")
        merged = self.bk.ops.concatenate([samples, self.data], axis=0)
        return replace(self, data=merged[: self.capacity])


@functools.cache
def _jax_indices(capacity: int):
    """JAX: a jitted `uniform -> floor(uniform * capacity)` (int32, at most capacity - 1)
    equal to the host's float64 arithmetic. float64 draws: that arithmetic itself. float32
    draws are m / 2^23 with m < 2^23 (JAX sets the 23 mantissa bits), so the index is
    floor(m * capacity / 2^23), whose 37-bit product float32 would round: it is computed
    exactly in uint32 pieces instead, m = mh 2^12 + ml and capacity = ch 2^12 + cl:

        m * capacity = 2^24 mh ch + 2^12 (mh cl + ml ch + (ml cl >> 12)) + (ml cl mod 2^12),

    so floor(m * capacity / 2^23) = 2 mh ch + (mh cl + ml ch + (ml cl >> 12)) >> 11, every
    term below 2^32 for capacities below 2^31."""
    import jax
    import jax.numpy as jnp

    if not 1 <= capacity < 2 ** 31:
        raise EbmError(f"a replay buffer's capacity must lie in [1, 2^31), got {capacity}")

    def indices(uniform):
        if uniform.dtype == jnp.float64:
            index = (uniform * capacity).astype(jnp.int64)
        else:
            m = (uniform.astype(jnp.float32) * 2.0 ** 23).astype(jnp.uint32)  # exact: m < 2^23
            mh, ml = m >> 12, m & 0xFFF
            ch, cl = jnp.uint32(capacity >> 12), jnp.uint32(capacity & 0xFFF)
            index = (2 * mh * ch + ((mh * cl + ml * ch + ((ml * cl) >> 12)) >> 11)).astype(jnp.int32)
        return jnp.minimum(index, capacity - 1)

    return jax.jit(indices)


def short_run_langevin(
    bk: ArrayBackend,
    key: Key,
    x0: Array,
    potential: Potential,
    steps: int,
    step_size: float,
    noise_scale: float,
    grad_clip: float | None = None,
    *,
    temperature: float = 1.0,
    bounds: tuple[float, float] | None = None,
) -> Array:
    """Run `steps` SGLD steps from `x0` [n, *shape] and return the final samples.

    grad_clip: clip each gradient entry of E / T to [-grad_clip, grad_clip].
    bounds: clamp the samples into [low, high] after every step (images in [0, 1]); numbers,
    or backend arrays that broadcast against a position (one bound per coordinate).
    A chain that ends anywhere non-finite is returned at its start `x0` instead (a NaN
    would spread to the buffer and from there into every later chain); checked once at
    the end, as a chain that is not finite stays so (a NaN energy makes its whole
    gradient NaN), so the steps themselves carry no test.
    """
    if steps < 0 or step_size < 0 or noise_scale < 0 or temperature <= 0:
        raise EbmError(
            f"short-run Langevin got steps={steps}, step_size={step_size}, noise_scale={noise_scale}, "
            f"temperature={temperature}",
            expected="steps, step_size and noise_scale >= 0 and temperature > 0",
            hint="Du & Mordatch use 60 steps of step_size=10 with noise_scale=0.005",
        )
    if grad_clip is not None and not grad_clip > 0:
        raise EbmError(f"grad_clip must be positive, got {grad_clip!r}",
                       hint="pass grad_clip=None to disable it")
    if bounds is not None and isinstance(bounds[0], (int, float)):
        bounds = (float(bounds[0]), float(bounds[1]))
    if steps == 0:
        return x0
    settings = SGLDSettings(int(steps), float(step_size), float(noise_scale),
                            None if grad_clip is None else float(grad_clip), 1.0 / float(temperature))
    if not hasattr(potential, "cache_key"):  # a bare potential: step it as it is
        return sgld_steps(bk, settings, bk.split(key, steps), x0, potential, bounds, python_loop)
    if getattr(bk, "name", "") == "jax":
        return _jitted_sgld(bk, settings, potential, bounds is None)(key, x0, potential.params, potential.context,
                                                                     bounds)
    # Elsewhere one step at a time, each through the backend's fused step (eager torch
    # records the step's operations after its first calls and replays them).
    step = _fused_sgld_step(bk, settings, potential, bounds is None)
    x = x0
    for step_key in bk.split(key, steps):
        x = step(step_key, x, potential.params, potential.context, bounds)
    return keep_finite_chains(bk.ops, x, x0)


@dataclass(frozen=True)
class SGLDSettings:
    steps: int
    step_size: float
    noise_scale: float
    grad_clip: float | None
    inverse_temperature: float


def python_loop(steps: int, body, x):
    for i in range(steps):
        x = body(i, x)
    return x


def sgld_move(ops, settings: SGLDSettings, potential: Potential, bounds):
    """One SGLD step as a deterministic `move(x, noise) -> x` (noise ~ N(0, I) drawn outside)."""

    def move(x, noise):
        _, grad = potential.energy_and_grad(x)
        if settings.inverse_temperature != 1.0:
            grad = grad * settings.inverse_temperature
        if settings.grad_clip is not None:
            grad = ops.clip(grad, -settings.grad_clip, settings.grad_clip)
        x = x - settings.step_size * grad + settings.noise_scale * noise
        return x if bounds is None else ops.clip(x, *bounds)

    return move


def keep_finite_chains(ops, x: Array, x0: Array) -> Array:
    """`x`, with every chain that is anywhere non-finite back at its start in `x0`."""
    finite = ops.isfinite(x)
    for _ in range(len(tuple(x.shape)) - 1):
        finite = ops.all(finite, axis=-1)
    return ops.where(per_chain(finite, x), x, x0)


def sgld_steps(bk: ArrayBackend, settings: SGLDSettings, keys, x0: Array, potential: Potential, bounds, loop) -> Array:
    """`settings.steps` SGLD steps from `x0`, step i drawing its noise from `keys[i]`, run by
    `loop(steps, body, x)` (a Python loop, or `lax.fori_loop` under jit)."""
    shape = tuple(x0.shape)
    move = sgld_move(bk.ops, settings, potential, bounds)
    x = loop(settings.steps, lambda i, x: move(x, bk.normal(keys[i], shape)), x0)
    return keep_finite_chains(bk.ops, x, x0)


def _fused_sgld_step(bk: ArrayBackend, settings: SGLDSettings, potential, unbounded: bool):
    """`step(key, x, params, context, bounds) -> x` through `bk.fused_step`, cached like
    `_jitted_sgld` so that every training step reuses one recording."""
    template = potential.with_inputs({}, {})

    def build():
        def move(x, noise, params, context, bounds):
            return sgld_move(bk.ops, settings, template.with_inputs(params, context), bounds)(x, noise)

        return bk.fused_step(lambda key, x: bk.normal(key, tuple(x.shape)), move)

    return potential.compiled.memo(("short-run langevin step", potential.cache_key(), settings, unbounded), build)


def _jitted_sgld(bk: ArrayBackend, settings: SGLDSettings, potential, unbounded: bool):
    """JAX: the whole run as one jitted `lax.fori_loop` (one dispatch instead of one per
    operation per step), cached per compiled graph, potential kind and settings; the
    params, context and bounds are its arguments, so training steps reuse it."""
    import jax

    template = potential.with_inputs({}, {})

    def build():
        def run(key, x0, params, context, bounds):
            keys = jax.random.split(key, settings.steps)  # as bk.split, but one array to index
            return sgld_steps(bk, settings, keys, x0, template.with_inputs(params, context), bounds,
                              lambda n, body, x: jax.lax.fori_loop(0, n, body, x))

        return jax.jit(run)

    return potential.compiled.memo(("short-run langevin", potential.cache_key(), settings, unbounded), build)
