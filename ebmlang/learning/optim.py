"""Optimisers from the backend's own library, behind one small interface.

torch: `torch.optim.Adam` / `SGD`; JAX: `optax.adam` / `sgd` (learning rate injected so
schedules can change it). Both expose their state as a flat dict of numpy arrays, which
is what a training checkpoint stores (safetensors holds arrays only, never pickles).

Learning-rate schedules and global-norm gradient clipping live here too.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import numpy as np

from ebmlang.errors import EbmError

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = (None, "cosine", "step")


def make_optimizer(backend, name: str, params: Mapping[str, object], lr: float, momentum: float = 0.0):
    """An optimiser over the named backend arrays `params`."""
    if name not in OPTIMIZERS:
        raise EbmError(f"unknown optimizer '{name}'", expected=" or ".join(OPTIMIZERS))
    if backend.name == "torch":
        return TorchOptimizer(params, name, lr, momentum)
    if backend.name == "jax":
        return OptaxOptimizer(params, name, lr, momentum)
    raise EbmError(f"the {backend.name} backend cannot train parameters (it has no gradients)",
                   hint="load the model with backend='torch' or backend='jax' to fit it")


class TorchOptimizer:
    """torch.optim on detached copies of the params (the leaves it updates in place)."""

    def __init__(self, params: Mapping[str, object], name: str, lr: float, momentum: float):
        import torch

        self.names = list(params)
        self.leaves = [params[n].detach().clone() for n in self.names]
        if name == "adam":
            self.optimizer = torch.optim.Adam(self.leaves, lr=lr)
        else:
            self.optimizer = torch.optim.SGD(self.leaves, lr=lr, momentum=momentum)

    def step(self, grads: Mapping[str, object], lr: float) -> dict:
        """One update with the given gradients; returns the new params by name."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        for name, leaf in zip(self.names, self.leaves):
            leaf.grad = grads[name].detach().to(leaf.dtype)
        self.optimizer.step()
        return dict(zip(self.names, self.leaves))

    def params(self) -> dict:
        return dict(zip(self.names, self.leaves))

    def set_params(self, params: Mapping[str, object]) -> None:
        import torch

        with torch.no_grad():
            for name, leaf in zip(self.names, self.leaves):
                leaf.copy_(params[name])

    def state_arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for index, entries in self.optimizer.state_dict()["state"].items():
            for key, value in entries.items():
                out[f"{self.names[index]}/{key}"] = np.asarray(value.detach().cpu().numpy())
        return out

    def load_state_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        import torch

        state_dict = self.optimizer.state_dict()
        restored: dict[int, dict] = {}
        for key, value in arrays.items():
            name, _, field = key.rpartition("/")
            if name not in self.names:
                raise EbmError(f"the checkpoint's optimizer state names an unknown param '{name}'",
                               hint="resume with the same model and the same train= list")
            restored.setdefault(self.names.index(name), {})[field] = torch.as_tensor(value)
        state_dict["state"] = restored
        self.optimizer.load_state_dict(state_dict)


_UPDATES: dict = {}


def _jitted_update(transform):
    """One optax step as one compiled program: eagerly, Adam's tree maps are ~80 small
    dispatches per step, more than the gradient itself costs on a small network."""
    import jax
    import optax

    def update(current, state, grads, lr):
        state.hyperparams["learning_rate"] = lr
        updates, state = transform.update(grads, state, current)
        return optax.apply_updates(current, updates), state

    return jax.jit(update)


class OptaxOptimizer:
    """optax over a dict of jax arrays; the learning rate is an injected hyperparameter."""

    def __init__(self, params: Mapping[str, object], name: str, lr: float, momentum: float):
        try:
            import optax
        except ImportError:  # pragma: no cover - optax is a core dependency
            raise EbmError("training on the jax backend needs optax", hint="pip install optax") from None
        self.optax = optax
        self.kind = (name, float(momentum))  # what the transform is, for caches of compiled steps
        self.names = list(params)
        self.current = {n: params[n] for n in self.names}
        if name == "adam":
            self.transform = optax.inject_hyperparams(optax.adam)(learning_rate=lr)
        else:
            self.transform = optax.inject_hyperparams(optax.sgd)(learning_rate=lr,
                                                                 momentum=momentum or None)
        self.state = self.transform.init(self.current)
        # One compiled update per kind of transform (the rate is an argument), shared by fits.
        self._update = _UPDATES.setdefault(self.kind, _jitted_update(self.transform))

    def step(self, grads: Mapping[str, object], lr: float) -> dict:
        import jax.numpy as jnp

        grads = {n: grads[n] for n in self.names}
        self.current, self.state = self._update(self.current, self.state, grads, jnp.asarray(lr, dtype=jnp.float32))
        return dict(self.current)

    def set_params(self, params: Mapping[str, object]) -> None:
        self.current = {n: params[n] for n in self.names}

    def params(self) -> dict:
        return dict(self.current)

    def state_arrays(self) -> dict[str, np.ndarray]:
        import jax

        leaves = jax.tree_util.tree_leaves(self.state)
        return {f"leaf{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}

    def load_state_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        import jax
        import jax.numpy as jnp

        leaves, treedef = jax.tree_util.tree_flatten(self.state)
        if len(arrays) != len(leaves):
            raise EbmError(f"the checkpoint's optimizer state has {len(arrays)} arrays, expected {len(leaves)}",
                           hint="resume with the same optimizer and the same train= list")
        restored = [jnp.asarray(arrays[f"leaf{i}"], dtype=leaf.dtype) for i, leaf in enumerate(leaves)]
        self.state = jax.tree_util.tree_unflatten(treedef, restored)


def scheduled_lr(lr: float, schedule, epoch: int, epochs: int, step_fraction: float = 0.0) -> float:
    """The learning rate during `epoch` (0-based), `step_fraction` of the way through it.

    None: constant. "cosine": lr * (1 + cos(pi * t)) / 2 over the run (t in [0, 1)).
    "step": lr divided by 10 after 50% and again after 75% of the epochs.
    A callable is called as schedule(epoch) -> lr.
    """
    if schedule is None:
        return float(lr)
    if callable(schedule):
        rate = schedule(epoch)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
                or not 0 <= rate < math.inf:
            raise EbmError(f"lr_schedule({epoch}) returned {rate!r}, not a learning rate",
                           expected="a non-negative, finite number")
        return float(rate)
    progress = (epoch + step_fraction) / max(epochs, 1)
    if schedule == "cosine":
        return float(lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "step":
        return float(lr) * (0.1 ** ((epoch >= epochs * 0.5) + (epoch >= epochs * 0.75)))
    raise EbmError(f"unknown lr_schedule '{schedule}'", expected="None, 'cosine', 'step' or a callable")


def global_norm(backend, grads: Mapping[str, object]) -> float:
    """The joint L2 norm, read back once (squares as dot products: no temporaries)."""
    if not grads:
        return 0.0
    return math.sqrt(float(backend.to_numpy(_squared_norm(backend)(dict(grads)))))


@functools.lru_cache(maxsize=16)
def _squared_norm(backend):
    """sum of squares over a dict of arrays, compiled once per backend (JAX: one program
    instead of three small dispatches per parameter array)."""
    ops = backend.ops

    def squared(grads):
        return ops.sum(ops.stack([ops.vecdot(g, g) for g in (ops.reshape(v, (-1,)) for v in grads.values())]))

    return backend.jit(squared)


def clip_by_global_norm(backend, grads: dict, max_norm: float | None) -> tuple[dict, float]:
    """Gradients scaled so their joint L2 norm is at most `max_norm`; also the norm before."""
    norm = global_norm(backend, grads)
    if max_norm is None or norm <= max_norm or not math.isfinite(norm):
        return grads, norm
    scale = max_norm / norm
    return {k: g * scale for k, g in grads.items()}, norm
