"""The torch backend: eager by default, `compile=True` wraps the hot kernels in torch.compile.

Keys are uint64 integers (numpy SeedSequence splitting); each draw seeds a fresh
`torch.Generator` on the backend's device, so the same key gives the same numbers.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ebmlang.errors import EbmError

from .base import Backend, CompiledGraph, seed_key, split_seed_key
from .torch_einsum import matmul_einsum
from .torch_layers import TorchLayerOps

_TORCH_DTYPES = {
    "float32": torch.float32, "float64": torch.float64, "int32": torch.int32,
    "int64": torch.int64, "bool": torch.bool,
}


class TorchOps(TorchLayerOps):
    """numpy-style functions over torch tensors (`axis` keywords, numpy names)."""

    def __init__(self, dtype: torch.dtype, device: torch.device):
        self.dtype = dtype
        self.device = device

    def _tensor(self, x: Any) -> torch.Tensor:
        if isinstance(x, torch.Tensor):
            return x
        return torch.as_tensor(x, dtype=self.dtype, device=self.device)

    # elementwise
    exp = staticmethod(torch.exp)
    log = staticmethod(torch.log)
    log1p = staticmethod(torch.log1p)
    expm1 = staticmethod(torch.expm1)
    sqrt = staticmethod(torch.sqrt)
    abs = staticmethod(torch.abs)
    square = staticmethod(torch.square)
    sign = staticmethod(torch.sign)
    sin = staticmethod(torch.sin)
    cos = staticmethod(torch.cos)
    tanh = staticmethod(torch.tanh)
    sigmoid = staticmethod(torch.sigmoid)
    softplus = staticmethod(F.softplus)
    relu = staticmethod(torch.relu)
    silu = staticmethod(F.silu)
    gelu = staticmethod(F.gelu)
    elu = staticmethod(F.elu)
    round = staticmethod(torch.round)
    isfinite = staticmethod(torch.isfinite)
    logical_and = staticmethod(torch.logical_and)
    logical_or = staticmethod(torch.logical_or)

    identity = staticmethod(lambda x: x)

    def power(self, x, y):
        return torch.pow(x, y) if isinstance(x, torch.Tensor) else torch.pow(self._tensor(x), y)

    def mod(self, x, y):
        return torch.remainder(self._tensor(x), y)

    def where(self, condition, x, y):
        if not isinstance(x, torch.Tensor) and not isinstance(y, torch.Tensor):
            # Two Python numbers would give torch's default dtype, not the backend's.
            x = torch.as_tensor(x, dtype=self.dtype, device=condition.device)
        return torch.where(condition, x, y)

    def blend(self, mask, x, y):
        """`where` for finite x, y: lerp(y, x, mask) is exact at weights 0 and 1."""
        weight = mask.to(self.dtype)
        x, y = (
            v.to(self.dtype) if isinstance(v, torch.Tensor)
            else torch.full((), float(v), dtype=self.dtype, device=weight.device)
            for v in (x, y)
        )
        if x.dim() == 0 and y.dim() == 0:  # lerp needs one operand with the result's shape
            y = y.expand(weight.shape)
        return torch.lerp(y, x, weight)

    def minimum(self, x, y):
        return torch.minimum(self._tensor(x), self._tensor(y))

    def maximum(self, x, y):
        return torch.maximum(self._tensor(x), self._tensor(y))

    @staticmethod
    def clip(x, low=None, high=None):
        return torch.clamp(x, low, high)

    def as_float(self, x):
        return x if x.dtype == self.dtype else x.to(self.dtype)

    @staticmethod
    def as_int(x):
        return x.to(torch.int64)

    # reductions
    @staticmethod
    def sum(x, axis=None):
        return torch.sum(x) if axis is None else torch.sum(x, dim=axis)

    @staticmethod
    def mean(x, axis=None):
        return torch.mean(x) if axis is None else torch.mean(x, dim=axis)

    @staticmethod
    def prod(x, axis=None):
        return torch.prod(x) if axis is None else torch.prod(x, dim=axis)

    @staticmethod
    def max(x, axis=None):
        return torch.amax(x) if axis is None else torch.amax(x, dim=axis)

    @staticmethod
    def min(x, axis=None):
        return torch.amin(x) if axis is None else torch.amin(x, dim=axis)

    @staticmethod
    def logsumexp(x, axis=-1):
        return torch.logsumexp(x, dim=axis)

    @staticmethod
    def softmax(x, axis=-1):
        return torch.softmax(x, dim=axis)

    @staticmethod
    def all(x, axis=None):
        return torch.all(x) if axis is None else torch.all(x, dim=axis)

    @staticmethod
    def any(x, axis=None):
        return torch.any(x) if axis is None else torch.any(x, dim=axis)

    @staticmethod
    def argmin(x, axis=None):
        return torch.argmin(x, dim=axis)

    @staticmethod
    def argmax(x, axis=None):
        return torch.argmax(x, dim=axis)

    @staticmethod
    def max_argmax(x, axis):
        """(max, argmax) along `axis` in one pass."""
        values, indices = torch.max(x, dim=axis)
        return values, indices

    @staticmethod
    def cumsum(x, axis=0):
        return torch.cumsum(x, dim=axis)

    # shapes and construction
    @staticmethod
    def contiguous(x):
        """`x` laid out row-major (a copy only when it is not already)."""
        return x.contiguous()

    @staticmethod
    def stack(xs, axis=0):
        return torch.stack(list(xs), dim=axis)

    @staticmethod
    def unstack(x):
        """The slices of `x` along its first axis (views, made in one call)."""
        return x.unbind(0)

    @staticmethod
    def concatenate(xs, axis=0):
        return torch.cat(list(xs), dim=axis)

    # Most reshapes and broadcasts on the sampling path are to the shape the array has:
    # skipping those saves a dispatch each, a good part of a small step's time.
    @staticmethod
    def reshape(x, shape):
        shape = tuple(shape)
        return x if x.shape == shape else torch.reshape(x, shape)

    @staticmethod
    def broadcast_to(x, shape):
        shape = tuple(shape)
        return x if x.shape == shape else torch.broadcast_to(x, shape)

    @staticmethod
    def swapaxes(x, a, b):
        return torch.transpose(x, a, b)

    @staticmethod
    def roll(x, shifts, axes):
        return torch.roll(x, shifts, axes)

    def zeros(self, shape):
        return torch.zeros(tuple(shape), dtype=self.dtype, device=self.device)

    zeros_like = staticmethod(torch.zeros_like)
    ones_like = staticmethod(torch.ones_like)
    full_like = staticmethod(torch.full_like)

    def arange(self, start, stop=None):
        if stop is None:
            start, stop = 0, start
        return torch.arange(start, stop, device=self.device)

    # indexing
    @staticmethod
    def take(x, index, axis=-1):
        return torch.index_select(x, axis, index)

    @staticmethod
    def take_along_axis(x, index, axis=-1):
        if index.dim() == x.dim() and all(i == n for d, (i, n) in enumerate(zip(index.shape, x.shape))
                                           if d != axis % x.dim()):
            return torch.gather(x, axis, index)   # no broadcasting to work out: a third faster on small tensors
        return torch.take_along_dim(x, index, dim=axis)

    @staticmethod
    def index_add(target, index, values):
        """`target` with `values` added at `index` along the last axis (repeats accumulate)."""
        return torch.index_add(target, -1, index, values)

    # linear algebra
    @staticmethod
    def vecdot(x, y):
        """sum(x * y, axis=-1) without the product as a temporary."""
        return torch.linalg.vecdot(x, y)

    matmul = staticmethod(torch.matmul)
    einsum = staticmethod(matmul_einsum)
    linear = staticmethod(F.linear)


class TorchBackend(Backend):
    """torch arrays on `device` ("cpu", "cuda", "cuda:1", ...) in float32 or float64.

    compile=True wraps energies (and so state and param gradients) and local conditionals
    in torch.compile; a dict instead of True is passed to torch.compile as keyword
    arguments (e.g. {"mode": "max-autotune"} or {"backend": "eager"}; `dynamic=False` unless the
    dict says otherwise: each input shape gets its own specialised program). When compiling
    fails the kernel warns once and runs eagerly.
    """

    name = "torch"

    def __init__(
        self, device: str | None = None, dtype: str = "float32", compile: bool | dict = False
    ):
        super().__init__(device, dtype)
        device = torch.device(device or "cpu")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise EbmError(
                f"torch device '{device}' was asked for but CUDA is not available",
                hint="use device='cpu'",
            )
        self.torch_device = device
        self.device = str(device)
        self.torch_dtype = _TORCH_DTYPES[self.dtype]
        # Static shapes unless asked otherwise: dynamo would otherwise turn a kernel
        # dynamic after its second input shape (say, a second lattice size), and the
        # dynamic program ran 4x slower than the specialised ones here.
        self.compile_options = {"dynamic": False, **compile} if isinstance(compile, Mapping) else (
            {"dynamic": False} if compile else None)
        self._ops = TorchOps(self.torch_dtype, device)

    @property
    def ops(self) -> TorchOps:
        return self._ops

    def asarray(self, x: Any, dtype: str | None = None) -> torch.Tensor:
        target = _TORCH_DTYPES[dtype] if isinstance(dtype, str) else (dtype or self.torch_dtype)
        if isinstance(x, torch.Tensor):  # .to would return x itself too, after a dispatch
            return x if x.dtype == target and x.device == self.torch_device else x.to(self.torch_device, target)
        array = np.asarray(x)
        if not array.flags.writeable:  # torch refuses to share read-only memory; copy it
            array = array.copy()
        return torch.as_tensor(array, dtype=target, device=self.torch_device)

    def to_numpy(self, x: Any) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy()
        return np.asarray(x)

    def zeros(self, shape):
        return torch.zeros(tuple(shape), dtype=self.torch_dtype, device=self.torch_device)

    def full(self, shape, value):
        return torch.full(tuple(shape), float(value), dtype=self.torch_dtype, device=self.torch_device)

    def fori_loop(self, count, body, carry):
        if self.compile_options is None:
            return _site_loop(count, body, carry)
        # Traced, a loop over units would unroll into thousands of ops: dynamo skips it
        # (disable() imports dynamo, which compiling has loaded anyway).
        return torch.compiler.disable(_site_loop)(count, body, carry)

    def write_column(self, array, index, values):
        array[:, index] = values
        return array

    def set_flat(self, array, flat_indices, values):
        index = torch.as_tensor(np.array(flat_indices, dtype=np.int64), device=array.device)
        flat = array.reshape(array.shape[0], -1).clone()
        flat[:, index] = values.to(flat.dtype)
        return flat.reshape(array.shape)

    # randomness
    def key(self, seed: int) -> int:
        return seed_key(seed)

    def split(self, key: int, num: int = 2) -> tuple[int, ...]:
        return split_seed_key(key, num)

    def _generator(self, key: int) -> torch.Generator:
        return torch.Generator(device=self.torch_device).manual_seed(int(key))

    def uniform(self, key: int, shape) -> torch.Tensor:
        return torch.rand(tuple(shape), generator=self._generator(key), dtype=self.torch_dtype,
                          device=self.torch_device)

    def normal(self, key: int, shape) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=self._generator(key), dtype=self.torch_dtype,
                           device=self.torch_device)

    def categorical(self, key: int, logits: torch.Tensor) -> torch.Tensor:
        # Gumbel-max: one uniform per entry keeps the draw a pure function of the key.
        return self.gumbel_argmax(self.uniform(key, tuple(logits.shape)), logits)

    def gumbel_argmax(self, uniform: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        uniform = uniform.to(logits.dtype)
        tiny = torch.finfo(logits.dtype).tiny
        perturbed = logits - torch.log(-torch.log(uniform.clamp_min(tiny)))
        # torch.argmax over a short last axis is slow on CPU; comparing columns (two labels)
        # or max().indices picks the same label from the same numbers.
        if perturbed.shape[-1] == 2:
            return (perturbed[..., 1] > perturbed[..., 0]).to(torch.int64)
        return perturbed.max(dim=-1).indices

    def randint(self, key: int, shape, low: int, high: int) -> torch.Tensor:
        return torch.randint(int(low), int(high), tuple(shape), generator=self._generator(key),
                             device=self.torch_device)

    # transformation
    def jit(self, fn: Callable) -> Callable:
        return fn if self.compile_options is None else CompiledOrEager(fn, self.compile_options)

    def jit_step(self, draw: Callable, move: Callable) -> Callable:
        # A seeded torch.Generator breaks dynamo's graph: draw eagerly, compile the move.
        compiled_move = self.jit(move)
        return lambda key, state, *args: compiled_move(state, draw(key, state), *args)

    def fused_step(self, draw: Callable, move: Callable) -> Callable:
        from ebmlang.backends.torch_fusion import traced_step  # eager: replay the recorded move

        return self.jit_step(draw, move) if self.compile_options is not None else traced_step(draw, move)

    def value_and_grad(self, fn: Callable) -> Callable:
        def value_and_grad(x, *args):
            leaves = {k: v.detach().requires_grad_(True) for k, v in x.items()} \
                if isinstance(x, Mapping) else x.detach().requires_grad_(True)
            inputs = list(leaves.values()) if isinstance(leaves, Mapping) else [leaves]
            with torch.enable_grad():
                value = fn(leaves, *args)
                grads = _grad(value, inputs)
            grads = [torch.zeros_like(i) if g is None else g for i, g in zip(inputs, grads)]
            if isinstance(leaves, Mapping):
                return value.detach(), dict(zip(leaves, grads))
            return value.detach(), grads[0]

        return value_and_grad

    def inner_grad(self, fn: Callable) -> Callable:
        def inner_grad(x, *args):
            # A state already in a graph (a noisy copy of data, an outer inner_grad's leaf)
            # is differentiated where it is; a plain one becomes a leaf.
            own = {k: v if v.requires_grad else v.detach().requires_grad_(True) for k, v in x.items()} \
                if isinstance(x, Mapping) else (x if x.requires_grad else x.detach().requires_grad_(True))
            inputs = list(own.values()) if isinstance(own, Mapping) else [own]
            with torch.enable_grad():
                grads = torch.autograd.grad(fn(own, *args).sum(), inputs, create_graph=True, allow_unused=True)
            grads = [torch.zeros_like(i) if g is None else g for i, g in zip(inputs, grads)]
            return dict(zip(own, grads)) if isinstance(own, Mapping) else grads[0]

        return inner_grad

    def value_aux_and_grad(self, fn: Callable) -> Callable:
        def value_aux_and_grad(x, *args):
            leaves = {k: v.detach().requires_grad_(True) for k, v in x.items()}
            inputs = list(leaves.values())
            with torch.enable_grad():
                value, aux = fn(leaves, *args)
                grads = _grad(value, inputs)
            grads = {k: torch.zeros_like(i) if g is None else g for (k, i), g in zip(leaves.items(), grads)}
            return value.detach(), _detached(aux), grads

        return value_aux_and_grad


def _detached(tree):
    if isinstance(tree, Mapping):
        return {k: _detached(v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(_detached(v) for v in tree)
    return tree.detach() if isinstance(tree, torch.Tensor) else tree


class CompiledOrEager:
    """`torch.compile(fn)`, falling back to `fn` (with one warning) if compiling fails."""

    def __init__(self, fn: Callable, options: Mapping[str, Any]):
        self.fn = fn
        self.compiled: Callable | None = torch.compile(fn, **options)

    def __call__(self, *args, **kwargs):
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except EbmError:
                raise
            except Exception as error:  # any compiler failure: run eagerly from now on
                warnings.warn(
                    f"torch.compile failed ({type(error).__name__}: {error}); running eagerly",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self.compiled = None
        return self.fn(*args, **kwargs)


class TorchCompiledGraph(CompiledGraph):
    """A factor graph on torch: autograd gradients and `module()` export."""

    backend: TorchBackend

    def energy_and_grad_state(self, state, params, groups):
        groups = self.check_groups(groups)
        state, params = self.inputs(state, params)
        if self.backend.compile_options is not None:
            read = tuple(g for g in groups if g in state)
            kernel = self._kernel(("grad_state", read), partial(self._grad_state_pure, read))
            energy, grads = kernel(self.arrays, state, params)
            return energy, self.complete_grads(groups, grads, energy.shape[0])
        leaves = {g: state[g].detach().requires_grad_(True) for g in groups if g in state}
        state = {**state, **leaves}
        params = {k: v.detach() for k, v in params.items()}
        with torch.enable_grad():
            energy = self._kernel("energy", self.energy_pure)(self.arrays, state, params)
            grads = _grad(energy.sum(), list(leaves.values()))
        grads = {
            g: torch.zeros_like(leaves[g]) if grad is None else grad
            for g, grad in zip(leaves, grads)
        }
        return energy.detach(), self.complete_grads(groups, grads, energy.shape[0])

    def _grad_state_pure(self, groups, arrays, state, params):
        """(energy, {group: gradient}) through torch.func, which dynamo traces whole (a
        torch.autograd.grad call would break the compiled graph in two)."""

        def total(moving):
            energy = self.energy_pure(arrays, {**state, **moving}, params)
            return energy.sum(), energy

        moving = {g: state[g] for g in groups}
        grads, (_, energy) = torch.func.grad_and_value(total, has_aux=True)(moving)
        return energy, grads

    def grad_params(self, state, params, weights=None):
        state, params = self.inputs(state, params)
        leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        state = {k: v.detach() for k, v in state.items()}
        with torch.enable_grad():
            energy = self._kernel("energy", self.energy_pure)(self.arrays, state, leaves)
            if weights is None:
                objective = energy.mean()
            else:
                objective = (energy * self.backend.asarray(weights)).sum()
            grads = _grad(objective, list(leaves.values()))
        return {
            name: torch.zeros_like(leaves[name]) if grad is None else grad
            for name, grad in zip(leaves, grads)
        }

    def module(self, params: Mapping[str, Any] | None = None, key: Any = None) -> "EnergyModule":
        """An `nn.Module` whose forward(state) returns the energy [batch].

        Params become nn.Parameters (a ParameterDict whose names map '.' to '__'); the IR's
        arrays are buffers, so `.to(device)` / `.double()` move the whole model. Without
        `params`, they are drawn with `key` (default: key(0)).
        """
        if params is None:
            params = self.init_params(key if key is not None else self.backend.key(0))
        self.check_externs()
        return EnergyModule(self, self.check_params(params, self.convert))


def _grad(output: torch.Tensor, inputs: list[torch.Tensor]) -> tuple:
    """d output / d inputs (None where unused); nothing to do without inputs."""
    if not inputs or not output.requires_grad:
        return (None,) * len(inputs)
    return torch.autograd.grad(output, inputs, allow_unused=True)


class EnergyModule(torch.nn.Module):
    """A compiled graph as an nn.Module: forward(state dict) -> energy [batch]."""

    def __init__(self, compiled: TorchCompiledGraph, params: Mapping[str, torch.Tensor]):
        super().__init__()
        self.compiled = compiled
        self.param_names = {name: name.replace(".", "__") for name in params}
        self.params = torch.nn.ParameterDict(
            {safe: torch.nn.Parameter(params[name].detach().clone())
             for name, safe in self.param_names.items()}
        )
        self.buffer_names = {key: f"ir_{number}" for number, key in enumerate(compiled.arrays)}
        for key, buffer in self.buffer_names.items():
            self.register_buffer(buffer, compiled.arrays[key].clone(), persistent=False)
        # Follows .to(dtype) of the module: the dtype states are converted to.
        self.register_buffer("dtype_probe", torch.zeros((), dtype=compiled.backend.torch_dtype),
                             persistent=False)

    def named_params(self) -> dict[str, torch.Tensor]:
        """The params under their ebmlang names (`f.0.weight`, ...)."""
        return {name: self.params[safe] for name, safe in self.param_names.items()}

    def forward(self, state: Mapping[str, Any]) -> torch.Tensor:
        probe = self.dtype_probe
        state = self.compiled.check_state(
            state, lambda v: torch.as_tensor(v, dtype=probe.dtype, device=probe.device)
        )
        arrays = {key: getattr(self, buffer) for key, buffer in self.buffer_names.items()}
        return self.compiled.energy_pure(arrays, state, self.named_params())


TorchBackend.compiled_class = TorchCompiledGraph


def _site_loop(count, body, carry):
    with torch.no_grad():
        carry = carry.detach().clone()
        for index in range(count):
            carry = body(index, carry)
    return carry
