"""The numpy backend: the generic evaluator on numpy arrays, with no autodiff.

Energies, per-term/per-factor energies and local conditionals (all Gibbs needs) work;
the gradient methods raise an EbmError pointing to torch or jax. Keys are uint64
integers split with numpy's SeedSequence; each draw uses a fresh PCG64 generator.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import special

from ebmlang.errors import EbmError
from ebmlang.graph import reference_layers

from .base import Backend, CompiledGraph, seed_key, split_seed_key

_NUMPY_DTYPES = {"float32": np.float32, "float64": np.float64, "int32": np.int32,
                 "int64": np.int64, "bool": np.bool_}


class NumpyOps:
    """numpy functions under the backend `ops` names, plus a few activation functions."""

    def __init__(self, dtype: Any):
        self.dtype = dtype

    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    log1p = staticmethod(np.log1p)
    expm1 = staticmethod(np.expm1)
    sqrt = staticmethod(np.sqrt)
    abs = staticmethod(np.abs)
    square = staticmethod(np.square)
    sign = staticmethod(np.sign)
    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    tanh = staticmethod(np.tanh)
    power = staticmethod(np.power)
    mod = staticmethod(np.mod)
    round = staticmethod(np.round)
    minimum = staticmethod(np.minimum)
    maximum = staticmethod(np.maximum)
    clip = staticmethod(np.clip)
    isfinite = staticmethod(np.isfinite)
    logical_and = staticmethod(np.logical_and)
    logical_or = staticmethod(np.logical_or)

    def sigmoid(self, x):
        return special.expit(x)

    def softplus(self, x):
        return np.logaddexp(0.0, x).astype(np.result_type(x), copy=False)

    @staticmethod
    def relu(x):
        return np.maximum(x, 0)

    def silu(self, x):
        return x * special.expit(x)

    def gelu(self, x):
        return (0.5 * x * (1.0 + special.erf(x / np.sqrt(2.0)))).astype(np.result_type(x), copy=False)

    @staticmethod
    def elu(x):
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))

    @staticmethod
    def identity(x):
        return x

    def where(self, condition, x, y):
        return np.where(condition, np.asarray(x, self.dtype), np.asarray(y, self.dtype))

    def blend(self, mask, x, y):
        return self.where(mask, x, y)

    def as_float(self, x):
        return np.asarray(x, self.dtype)

    @staticmethod
    def as_int(x):
        return np.asarray(x).astype(np.int64)

    @staticmethod
    def sum(x, axis=None):
        return np.sum(x, axis=axis)

    @staticmethod
    def mean(x, axis=None):
        return np.mean(x, axis=axis)

    @staticmethod
    def prod(x, axis=None):
        return np.prod(x, axis=axis)

    @staticmethod
    def max(x, axis=None):
        return np.max(x, axis=axis)

    @staticmethod
    def min(x, axis=None):
        return np.min(x, axis=axis)

    @staticmethod
    def logsumexp(x, axis=-1):
        top = np.max(x, axis=axis, keepdims=True)
        top = np.where(np.isfinite(top), top, 0.0)
        with np.errstate(divide="ignore"):
            return np.squeeze(top, axis) + np.log(np.sum(np.exp(x - top), axis=axis))

    @staticmethod
    def softmax(x, axis=-1):
        with np.errstate(invalid="ignore"):   # an all -inf slice is NaN, as in torch and JAX, without a warning
            return special.softmax(x, axis=axis)

    all = staticmethod(np.all)
    any = staticmethod(np.any)
    argmin = staticmethod(np.argmin)
    argmax = staticmethod(np.argmax)

    @staticmethod
    def max_argmax(x, axis):
        """(max, argmax) along `axis`."""
        index = np.argmax(x, axis=axis)
        return np.take_along_axis(x, np.expand_dims(index, axis), axis).squeeze(axis), index
    cumsum = staticmethod(np.cumsum)

    @staticmethod
    def contiguous(x):
        """`x` laid out row-major (a copy only when it is not already)."""
        return np.ascontiguousarray(x)

    @staticmethod
    def stack(xs, axis=0):
        return np.stack(list(xs), axis=axis)

    @staticmethod
    def unstack(x):
        """The slices of `x` along its first axis (views)."""
        return list(x)

    @staticmethod
    def concatenate(xs, axis=0):
        return np.concatenate(list(xs), axis=axis)

    @staticmethod
    def reshape(x, shape):
        return np.reshape(x, tuple(shape))

    @staticmethod
    def broadcast_to(x, shape):
        return np.broadcast_to(x, tuple(shape))

    swapaxes = staticmethod(np.swapaxes)

    @staticmethod
    def roll(x, shifts, axes):
        return np.roll(x, shifts, axes)

    def zeros(self, shape):
        return np.zeros(tuple(shape), self.dtype)

    zeros_like = staticmethod(np.zeros_like)
    ones_like = staticmethod(np.ones_like)
    full_like = staticmethod(np.full_like)

    @staticmethod
    def arange(start, stop=None):
        return np.arange(start, stop) if stop is not None else np.arange(start)

    @staticmethod
    def take(x, index, axis=-1):
        return np.take(x, index, axis=axis)

    @staticmethod
    def take_along_axis(x, index, axis=-1):
        return np.take_along_axis(x, index, axis=axis)

    @staticmethod
    def index_add(target, index, values):
        """`target` with `values` added at `index` along the last axis (repeats accumulate)."""
        out = np.array(target, copy=True)
        np.add.at(np.moveaxis(out, -1, 0), index, np.moveaxis(values, -1, 0))
        return out

    @staticmethod
    def vecdot(x, y):
        """sum(x * y, axis=-1) without the product as a temporary."""
        return np.vecdot(x, y)

    matmul = staticmethod(np.matmul)
    @staticmethod
    def einsum(subscripts, *operands):
        # numpy contracts left to right unless asked to optimise the order (opt_einsum's, as torch and JAX).
        return np.einsum(subscripts, *operands, optimize=True)

    @staticmethod
    def linear(x, weight, bias):
        return x @ weight.T + bias

    conv = staticmethod(reference_layers.conv)
    avg_pool = staticmethod(reference_layers.avg_pool)
    max_pool = staticmethod(reference_layers.max_pool)
    largest_singular_value = staticmethod(reference_layers.largest_singular_value)


class NumpyBackend(Backend):
    """numpy arrays (device "cpu") in float32 or float64; `jit` is the identity."""

    name = "numpy"

    def __init__(self, device: str | None = None, dtype: str = "float32"):
        if device not in (None, "cpu"):
            raise EbmError(f"the numpy backend runs on 'cpu' only, not '{device}'")
        super().__init__("cpu", dtype)
        self.np_dtype = _NUMPY_DTYPES[self.dtype]
        self._ops = NumpyOps(self.np_dtype)

    @property
    def ops(self) -> NumpyOps:
        return self._ops

    def asarray(self, x: Any, dtype: str | None = None) -> np.ndarray:
        target = _NUMPY_DTYPES[dtype] if isinstance(dtype, str) else (dtype or self.np_dtype)
        return np.asarray(x, dtype=target)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.array(x)

    def fori_loop(self, count, body, carry):
        carry = np.array(carry, copy=True)
        for index in range(count):
            carry = body(index, carry)
        return carry

    def write_column(self, array, index, values):
        array[:, index] = values
        return array

    def set_flat(self, array, flat_indices, values):
        flat = np.array(array, copy=True).reshape(np.shape(array)[0], -1)
        flat[:, np.asarray(flat_indices)] = values
        return flat.reshape(np.shape(array))

    def key(self, seed: int) -> int:
        return seed_key(seed)

    def split(self, key: int, num: int = 2) -> tuple[int, ...]:
        return split_seed_key(key, num)

    def uniform(self, key: int, shape) -> np.ndarray:
        return np.random.default_rng(key).random(tuple(shape), dtype=self.np_dtype)

    def normal(self, key: int, shape) -> np.ndarray:
        return np.random.default_rng(key).standard_normal(tuple(shape), dtype=self.np_dtype)

    def categorical(self, key: int, logits: np.ndarray) -> np.ndarray:
        return self.gumbel_argmax(self.uniform(key, np.shape(logits)), logits)

    def gumbel_argmax(self, uniform: np.ndarray, logits: np.ndarray) -> np.ndarray:
        uniform = uniform.astype(np.result_type(logits))
        tiny = np.finfo(uniform.dtype).tiny
        with np.errstate(divide="ignore"):
            gumbel = -np.log(-np.log(np.maximum(uniform, tiny)))
        return np.argmax(logits + gumbel, axis=-1)

    def randint(self, key: int, shape, low: int, high: int) -> np.ndarray:
        return np.random.default_rng(key).integers(low, high, tuple(shape))

    def jit(self, fn: Callable) -> Callable:
        return fn


class NumpyCompiledGraph(CompiledGraph):
    """A factor graph on numpy: energies and conditionals; no gradients."""

    def energy_and_grad_state(self, state, params, groups):
        raise self._no_gradients()

    def grad_params(self, state, params, weights=None):
        raise self._no_gradients()

    def _no_gradients(self) -> EbmError:
        return EbmError(
            "the numpy backend cannot differentiate energies",
            hint="compile with get_backend('torch') or get_backend('jax') for Langevin, HMC or learning",
        )


NumpyBackend.compiled_class = NumpyCompiledGraph
