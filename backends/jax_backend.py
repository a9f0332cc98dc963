"""The JAX backend: energies, gradients and local conditionals are `jax.jit`-compiled.

float64 is switched on with `jax.config.update("jax_enable_x64", True)` when (and only
when) a float64 JaxBackend is created -- a process-wide setting, since arrays made
outside a context manager would otherwise silently fall back to 32 bits. float32
backends keep working afterwards: they cast every array explicitly.

The IR's index arrays are passed to the jitted kernels as arguments (not closed over),
so large lattices do not become constants inside the compiled program.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ebmlang.errors import EbmError

from .base import Backend, CompiledGraph, init_params
from .jax_layers import JaxLayerOps


class JaxOps(JaxLayerOps):
    """jax.numpy under numpy names, plus the extras the evaluator uses."""

    def __init__(self, dtype: Any):
        self.dtype = dtype

    exp = staticmethod(jnp.exp)
    log = staticmethod(jnp.log)
    log1p = staticmethod(jnp.log1p)
    expm1 = staticmethod(jnp.expm1)
    sqrt = staticmethod(jnp.sqrt)
    abs = staticmethod(jnp.abs)
    square = staticmethod(jnp.square)
    sign = staticmethod(jnp.sign)
    sin = staticmethod(jnp.sin)
    cos = staticmethod(jnp.cos)
    tanh = staticmethod(jnp.tanh)
    sigmoid = staticmethod(jax.nn.sigmoid)
    softplus = staticmethod(jax.nn.softplus)
    relu = staticmethod(jax.nn.relu)
    silu = staticmethod(jax.nn.silu)
    gelu = staticmethod(partial(jax.nn.gelu, approximate=False))  # torch's default
    elu = staticmethod(jax.nn.elu)
    power = staticmethod(jnp.power)
    mod = staticmethod(jnp.mod)
    round = staticmethod(jnp.round)
    minimum = staticmethod(jnp.minimum)
    maximum = staticmethod(jnp.maximum)
    clip = staticmethod(jnp.clip)
    isfinite = staticmethod(jnp.isfinite)
    logical_and = staticmethod(jnp.logical_and)
    logical_or = staticmethod(jnp.logical_or)

    @staticmethod
    def identity(x):
        return x

    def where(self, condition, x, y):
        return jnp.where(condition, jnp.asarray(x, self.dtype), jnp.asarray(y, self.dtype))

    def blend(self, mask, x, y):
        return self.where(mask, x, y)

    def as_float(self, x):
        return jnp.asarray(x, self.dtype)

    @staticmethod
    def as_int(x):
        return jnp.asarray(x, jnp.int32)

    sum = staticmethod(jnp.sum)
    mean = staticmethod(jnp.mean)
    prod = staticmethod(jnp.prod)
    max = staticmethod(jnp.max)
    min = staticmethod(jnp.min)
    all = staticmethod(jnp.all)
    any = staticmethod(jnp.any)
    argmin = staticmethod(jnp.argmin)
    argmax = staticmethod(jnp.argmax)

    @staticmethod
    def max_argmax(x, axis):
        """(max, argmax) along `axis`."""
        return jnp.max(x, axis=axis), jnp.argmax(x, axis=axis)
    cumsum = staticmethod(jnp.cumsum)

    @staticmethod
    def logsumexp(x, axis=-1):
        return jax.nn.logsumexp(x, axis=axis)

    @staticmethod
    def softmax(x, axis=-1):
        return jax.nn.softmax(x, axis=axis)

    @staticmethod
    def contiguous(x):
        """`x` as it is: XLA chooses layouts itself."""
        return x

    @staticmethod
    def stack(xs, axis=0):
        return jnp.stack(list(xs), axis=axis)

    @staticmethod
    def concatenate(xs, axis=0):
        return jnp.concatenate(list(xs), axis=axis)

    @staticmethod
    def reshape(x, shape):
        return jnp.reshape(x, tuple(shape))

    @staticmethod
    def broadcast_to(x, shape):
        return jnp.broadcast_to(x, tuple(shape))

    swapaxes = staticmethod(jnp.swapaxes)

    @staticmethod
    def roll(x, shifts, axes):
        return jnp.roll(x, shifts, axes)

    def zeros(self, shape):
        return jnp.zeros(tuple(shape), self.dtype)

    zeros_like = staticmethod(jnp.zeros_like)
    ones_like = staticmethod(jnp.ones_like)
    full_like = staticmethod(jnp.full_like)

    @staticmethod
    def arange(start, stop=None):
        return jnp.arange(start, stop, dtype=jnp.int32) if stop is not None \
            else jnp.arange(start, dtype=jnp.int32)

    @staticmethod
    def take(x, index, axis=-1):
        # Plan indices are checked at compile time, so clamping never changes a value.
        return jnp.take(x, index, axis=axis, mode="clip")

    @staticmethod
    def take_along_axis(x, index, axis=-1):
        return jnp.take_along_axis(x, index, axis=axis, mode="clip")

    @staticmethod
    def index_add(target, index, values):
        """`target` with `values` added at `index` along the last axis (repeats accumulate)."""
        return target.at[..., index].add(values)

    @staticmethod
    def vecdot(x, y):
        """sum(x * y, axis=-1) (XLA fuses the product into the reduction)."""
        return jnp.sum(x * y, axis=-1)

    matmul = staticmethod(jnp.matmul)
    einsum = staticmethod(jnp.einsum)

    @staticmethod
    def linear(x, weight, bias):
        return x @ weight.T + bias


class JaxBackend(Backend):
    """jax arrays on `device` (None: JAX's default device; or a platform such as
    "cpu", "gpu", optionally "gpu:1") in float32 or float64."""

    name = "jax"
    index_dtype = "int32"

    def __init__(self, device: str | None = None, dtype: str = "float32"):
        super().__init__(device, dtype)
        if self.dtype == "float64" and not jax.config.jax_enable_x64:
            jax.config.update("jax_enable_x64", True)
        self.jax_dtype = jnp.float64 if self.dtype == "float64" else jnp.float32
        self.jax_device = _find_device(device)
        self.device = str(self.jax_device)
        self._ops = JaxOps(self.jax_dtype)

    @property
    def ops(self) -> JaxOps:
        return self._ops

    def asarray(self, x: Any, dtype: str | None = None) -> jax.Array:
        target = {"float32": jnp.float32, "float64": jnp.float64, "int32": jnp.int32,
                  "int64": jnp.int64, "bool": jnp.bool_}.get(dtype, self.jax_dtype) \
            if dtype is None or isinstance(dtype, str) else dtype
        target = jax.dtypes.canonicalize_dtype(target)  # int64 is int32 without x64
        if isinstance(x, jax.Array):  # concrete or traced: keep its device
            return x if x.dtype == target else x.astype(target)
        # Constants made while tracing must stay concrete: they are cached across calls.
        with jax.ensure_compile_time_eval():
            return jax.device_put(np.asarray(x, dtype=target), self.jax_device)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def fori_loop(self, count, body, carry):
        return jax.lax.fori_loop(0, count, body, carry)

    def scan(self, body, carry, xs, reverse=False):
        return jax.lax.scan(body, carry, tuple(xs), reverse=reverse)

    def write_column(self, array, index, values):
        return array.at[:, index].set(values.astype(array.dtype))

    def set_flat(self, array, flat_indices, values):
        flat = array.reshape(array.shape[0], -1)
        index = jnp.asarray(np.asarray(flat_indices), jnp.int32)
        return flat.at[:, index].set(values.astype(flat.dtype)).reshape(array.shape)

    def key(self, seed: int) -> jax.Array:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise EbmError(f"a random seed must be an integer, got {type(seed).__name__}")
        seed = int(seed) % 2**64
        key = jax.random.key(seed % 2**32)
        # Without x64 a key holds 32 bits of seed: the high word is folded in, so seeds
        # that differ only above bit 32 give different runs (below it, keys are as before).
        return jax.random.fold_in(key, seed >> 32) if seed >> 32 else key

    def split(self, key: jax.Array, num: int = 2) -> tuple:
        return tuple(jax.random.split(key, num))

    def uniform(self, key, shape):
        return jax.random.uniform(key, tuple(shape), self.jax_dtype)

    def normal(self, key, shape):
        return jax.random.normal(key, tuple(shape), self.jax_dtype)

    def categorical(self, key, logits):
        return jax.random.categorical(key, logits, axis=-1)

    def gumbel_argmax(self, uniform, logits):
        tiny = jnp.finfo(logits.dtype).tiny
        gumbel = -jnp.log(-jnp.log(jnp.maximum(uniform.astype(logits.dtype), tiny)))
        return jnp.argmax(logits + gumbel, axis=-1)

    def randint(self, key, shape, low, high):
        return jax.random.randint(key, tuple(shape), int(low), int(high))

    def jit(self, fn: Callable) -> Callable:
        return jax.jit(fn)

    def value_and_grad(self, fn: Callable) -> Callable:
        return jax.jit(jax.value_and_grad(fn))

    def inner_grad(self, fn: Callable) -> Callable:
        return jax.grad(lambda x, *args: jnp.sum(fn(x, *args)))

    def value_aux_and_grad(self, fn: Callable) -> Callable:
        differentiated = jax.jit(jax.value_and_grad(fn, has_aux=True))

        def value_aux_and_grad(x, *args):
            (value, aux), grads = differentiated(x, *args)
            return value, aux, grads

        return value_aux_and_grad


def _find_device(device: str | None):
    if device is None:
        return jax.devices()[0]
    platform, _, number = str(device).partition(":")
    platform = {"cuda": "gpu"}.get(platform, platform)
    try:
        devices = jax.devices(platform)
    except RuntimeError:
        devices = []
    if not devices:
        raise EbmError(
            f"jax has no '{device}' device",
            hint="available: " + ", ".join(str(d) for d in jax.devices()),
        )
    return devices[int(number) if number else 0]


class JaxCompiledGraph(CompiledGraph):
    """A factor graph on JAX: jitted kernels, `jax.grad` gradients, `function()` export."""

    backend: JaxBackend

    def init_params(self, key):
        # One traced program instead of an eager dispatch (and compile) per draw.
        return self._kernel("init", partial(init_params, self.graph, self.backend))(key)

    def energy_and_grad_state(self, state, params, groups):
        groups = self.check_groups(groups)
        state, params = self.inputs(state, params)
        read = tuple(g for g in groups if g in state)
        kernel = self._kernel(("grad_state", read), partial(self._grad_state_pure, read))
        energy, grads = kernel(self.arrays, state, params)
        return energy, self.complete_grads(groups, grads, energy.shape[0])

    def grad_params(self, state, params, weights=None):
        state, params = self.inputs(state, params)
        if weights is not None:
            weights = self.backend.asarray(weights)
        return self._kernel("grad_params", self._grad_params_pure)(
            self.arrays, state, params, weights
        )

    def _grad_state_pure(self, groups, arrays, state, params):
        def total(moving):
            energy = self.energy_pure(arrays, {**state, **moving}, params)
            return jnp.sum(energy), energy

        moving = {g: state[g] for g in groups}
        (_, energy), grads = jax.value_and_grad(total, has_aux=True)(moving)
        return energy, grads

    def _grad_params_pure(self, arrays, state, params, weights):
        def objective(params):
            energy = self.energy_pure(arrays, state, params)
            return jnp.mean(energy) if weights is None else jnp.sum(energy * weights)

        return jax.grad(objective)(params)

    def function(self) -> Callable[[Mapping[str, Any], Mapping[str, Any]], jax.Array]:
        """A pure, jitted fn(state, params) -> energy [batch] (no Python-side checks),
        for jax.grad / vmap / export."""
        arrays = self.arrays
        self.check_externs()
        return jax.jit(lambda state, params: self.energy_pure(arrays, state, params))


JaxBackend.compiled_class = JaxCompiledGraph
