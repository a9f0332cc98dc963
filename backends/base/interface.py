"""The `Backend` interface: what one array library provides (arrays, explicit-key
randomness, `jit`, differentiation) and the names of its numpy-like `ops` namespace.

A backend subclasses `Backend` and names its `CompiledGraph` subclass (compiled.py) as
`compiled_class`; `compile` builds one.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ebmlang.errors import EbmError
from ebmlang.graph.ir import FactorGraph

FLOAT_DTYPES = ("float32", "float64")

# The names every backend's `ops` namespace provides, with numpy semantics
# (`axis` keywords, broadcasting). Inference kernels may use any of them.
# `blend(mask, x, y)` is `where` for finite x and y (arrays or numbers): a backend may
# compute it arithmetically (torch's `where` on CPU is several times slower than `lerp`).
OPS_NAMES = (
    # elementwise
    "exp", "log", "log1p", "expm1", "sqrt", "abs", "square", "sign", "sin", "cos", "tanh",
    "sigmoid", "softplus", "relu", "silu", "gelu", "elu", "identity", "power", "mod", "round",
    "where", "blend", "minimum", "maximum", "clip", "isfinite", "logical_and", "logical_or",
    "as_float", "as_int",
    # reductions
    "sum", "mean", "prod", "max", "min", "logsumexp", "softmax", "all", "any",
    "argmin", "argmax", "cumsum",
    # shapes and construction
    "stack", "concatenate", "reshape", "broadcast_to", "swapaxes", "roll",
    "zeros", "zeros_like", "ones_like", "full_like", "arange",
    # indexing
    "take", "take_along_axis", "index_add",
    # linear algebra
    "matmul", "einsum", "linear", "vecdot",
    # networks written in the language (channels first, PyTorch's weight layouts)
    "conv", "avg_pool", "max_pool", "largest_singular_value",
)


def check_dtype(dtype: str) -> str:
    """The float dtype name, or an EbmError listing the supported ones."""
    name = str(dtype).replace("torch.", "")
    if name not in FLOAT_DTYPES:
        raise EbmError(
            f"unsupported dtype '{dtype}'", expected="one of " + ", ".join(FLOAT_DTYPES)
        )
    return name


class Backend(ABC):
    """Array primitives, randomness and compilation for one array library.

    name: the entry-point name ("numpy", "torch", "jax").
    device: where arrays live (backend-specific string, e.g. "cpu", "cuda:0").
    dtype: "float32" or "float64" -- the float dtype of states, params and energies.
    ops: a namespace of numpy-like functions on this backend's arrays (OPS_NAMES).
    """

    name: str = "abstract"
    compiled_class: type["CompiledGraph"]
    index_dtype: str = "int64"  # integer dtype of the IR's index arrays on this backend

    def __init__(self, device: str | None = None, dtype: str = "float32"):
        self.dtype = check_dtype(dtype)
        self.device = device
        self.externs: dict[str, Callable] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r}, dtype={self.dtype!r})"

    # -- arrays --------------------------------------------------------------

    @property
    @abstractmethod
    def ops(self) -> Any:
        """The numpy-like namespace over this backend's arrays."""

    @abstractmethod
    def asarray(self, x: Any, dtype: str | None = None) -> Any:
        """`x` as a backend array; dtype defaults to the backend float dtype
        ("float32", "float64", "int32", "int64" or "bool" otherwise)."""

    @abstractmethod
    def to_numpy(self, x: Any) -> np.ndarray:
        """A numpy copy of a backend array (detached from any autodiff graph)."""

    def zeros(self, shape: tuple[int, ...]) -> Any:
        return self.asarray(np.zeros(shape))

    def full(self, shape: tuple[int, ...], value: float) -> Any:
        return self.asarray(np.full(shape, value))

    def take(self, values: Any, labels: Any) -> Any:
        """`values[labels]`: entries of a 1-D array at integer labels of any shape
        (e.g. domain values at labels drawn by `categorical`)."""
        return self.ops.reshape(
            self.ops.take(values, self.ops.reshape(labels, (-1,)), 0), tuple(labels.shape)
        )

    @abstractmethod
    def set_flat(self, array: Any, flat_indices: Any, values: Any) -> Any:
        """A copy of `array` [batch, *shape] whose entries at `flat_indices` (into the
        flattened shape) are `values` [batch, n]; the input is left unchanged."""

    # -- loops over sites ----------------------------------------------------------

    @abstractmethod
    def fori_loop(self, count: int, body: Callable, carry: Any) -> Any:
        """`carry = body(i, carry)` for i = 0 .. count-1 (carry: an array), the loop of a
        sequential scan: `jax.lax.fori_loop` on JAX, a plain loop elsewhere. The loop owns
        its carry -- numpy and torch copy it on entry, so `write_column` in the body may
        update it in place -- and nothing is differentiated through it."""

    def scan(self, body: Callable, carry: Any, xs: tuple, reverse: bool = False) -> tuple[Any, Any]:
        """`carry, ys[i] = body(carry, xs[.][i])` along the leading axis of the arrays `xs`
        (last to first when `reverse`), with the outputs stacked: `jax.lax.scan` on JAX, a
        plain loop elsewhere (differentiable on torch)."""
        count = int(xs[0].shape[0])
        outputs: list = [None] * count
        slices = list(zip(*(self.ops.unstack(x) for x in xs)))
        for i in (reversed(range(count)) if reverse else range(count)):
            carry, outputs[i] = body(carry, slices[i])
        if not isinstance(outputs[0], tuple):
            return carry, self.ops.stack(outputs, 0)
        return carry, tuple(self.ops.stack([out[k] for out in outputs], 0) for k in range(len(outputs[0])))

    @abstractmethod
    def write_column(self, array: Any, index: Any, values: Any) -> Any:
        """`array` [batch, n] with column `index` set to `values` [batch]; only inside a
        `fori_loop` body, on its carry (in place where the backend allows)."""

    # -- randomness (explicit keys) --------------------------------------------

    @abstractmethod
    def key(self, seed: int) -> Any:
        """A random key from an integer seed."""

    @abstractmethod
    def split(self, key: Any, num: int = 2) -> tuple:
        """`num` new independent keys from `key`."""

    @abstractmethod
    def uniform(self, key: Any, shape: tuple[int, ...]) -> Any:
        """Uniform draws in [0, 1) of the backend float dtype."""

    @abstractmethod
    def normal(self, key: Any, shape: tuple[int, ...]) -> Any:
        """Standard normal draws of the backend float dtype."""

    @abstractmethod
    def categorical(self, key: Any, logits: Any) -> Any:
        """Integer labels drawn with probabilities softmax(logits) over the last axis."""

    @abstractmethod
    def gumbel_argmax(self, uniform: Any, logits: Any) -> Any:
        """argmax over the last axis of logits + Gumbel noise made from `uniform` (draws in
        [0, 1) of the logits' shape): a categorical draw given its random numbers."""

    @abstractmethod
    def randint(self, key: Any, shape: tuple[int, ...], low: int, high: int) -> Any:
        """Integers uniform in [low, high)."""

    # -- transformation ----------------------------------------------------------

    @abstractmethod
    def jit(self, fn: Callable) -> Callable:
        """`fn` compiled for this backend where that is possible (identity otherwise)."""

    def jit_step(self, draw: Callable, move: Callable) -> Callable:
        """`step(key, state, *args) = move(state, draw(key, state), *args)`, compiled where
        possible: a random step split into its draws and a deterministic move, so that a
        backend whose random numbers cannot be traced still compiles the move."""
        return self.jit(lambda key, state, *args: move(state, draw(key, state), *args))

    def fused_step(self, draw: Callable, move: Callable) -> Callable:
        """`jit_step` for the steps of a long run: where the backend does not compile, it may
        still record the move's operations once and replay them (torch: torch_fusion.py)."""
        return self.jit_step(draw, move)

    def value_and_grad(self, fn: Callable) -> Callable:
        """`fn(x, *args) -> scalar` turned into `(x, *args) -> (value, grad wrt x)`;
        `x` may be an array or a dict of arrays."""
        raise EbmError(
            f"the {self.name} backend cannot differentiate",
            hint="use get_backend('torch') or get_backend('jax') for gradients",
        )

    def inner_grad(self, fn: Callable) -> Callable:
        """`fn(x, *args) -> array` turned into `(x, *args) -> gradient of sum(fn) wrt x`
        (x an array or a dict of arrays) that can itself be differentiated: score
        matching differentiates an energy's gradient in its states with respect to its
        params (and, for Hessian-vector products, in the states again)."""
        raise EbmError(
            f"the {self.name} backend cannot differentiate",
            hint="use get_backend('torch') or get_backend('jax') for gradients",
        )

    def value_aux_and_grad(self, fn: Callable) -> Callable:
        """`fn(x, *args) -> (scalar, aux)` turned into `(x, *args) -> (value, aux, grad wrt x)`;
        aux (arrays) is returned as computed, outside the differentiation."""
        raise EbmError(
            f"the {self.name} backend cannot differentiate",
            hint="use get_backend('torch') or get_backend('jax') for gradients",
        )

    # -- externs and compilation ---------------------------------------------------

    def register_extern(self, name: str, fn: Callable) -> None:
        """Implement `extern name` for every graph compiled by this backend.
        `fn` takes and returns this backend's arrays and must broadcast elementwise."""
        if not callable(fn):
            raise EbmError(f"extern '{name}' must be registered with a callable")
        self.externs[name] = fn

    def compile(self, graph: FactorGraph) -> "CompiledGraph":
        """The batched energy functions of `graph` on this backend."""
        return self.compiled_class(graph, self)

    def convert_arrays(self, arrays: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Plan arrays (numpy) as backend arrays, keeping integer and boolean kinds."""
        out = {}
        for key, value in arrays.items():
            if value.dtype == bool:
                out[key] = self.asarray(value, "bool")
            elif np.issubdtype(value.dtype, np.integer):
                out[key] = self.asarray(value, self.index_dtype)
            else:
                out[key] = self.asarray(value)
        return out
