"""A Model's energy in the user's own training code: `Model.to_torch()` and `Model.to_jax()`.

    module = m.to_torch()                 # nn.Module: module(state) -> energy [batch]
    fn, params = m.to_jax()               # pure fn(state, params) -> energy [batch]

Both run the model's compiled graph (backends/): on the model's own backend when it is
the one asked for, else compiled on demand for it (same dtype, default device) and kept.
States are dicts {variable: array [batch, *shape]}; names and shapes are checked (an
EbmError at the declaration), never left to fail deep in the backend.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ebmlang.errors import EbmError


def compiled_for(model, backend_name: str):
    """The model's graph compiled for `backend_name`: its own compiled graph when it runs
    there, else one compiled on demand (the model's dtype, the backend's default device),
    kept on the model for the next export."""
    if model.backend_name == backend_name:
        return model.compiled
    if backend_name not in model._exports:
        from ebmlang.backends.compile import compile_graph

        compiled = compile_graph(model.graph, backend=backend_name, dtype=model.backend.dtype)
        try:
            compiled.check_externs()
        except EbmError:
            names = ", ".join(f"'{name}'" for name in model.graph.externs)
            raise EbmError(f"model {model.name} calls extern {names}, implemented for the {model.backend_name} "
                           f"backend: exporting it to {backend_name} needs a {backend_name} implementation",
                           hint=f"load the model with backend='{backend_name}' and call "
                                f"register_extern(name, fn) with a {backend_name} function") from None
        model._exports[backend_name] = compiled
    return model._exports[backend_name]


def to_torch(model):
    """An `nn.Module` whose forward(state) returns the energy of each row [batch]; its
    parameters are the model's, sharing memory when the model runs on torch."""
    import torch

    compiled = compiled_for(model, "torch")
    shared = compiled is model.compiled
    module = compiled.module(model.params if shared else model.param_values())
    if shared:
        # The model's own tensors as the module's Parameters (one memory, no copy): a
        # user's optimiser steps are the model's new values at once.
        for name, safe in module.param_names.items():
            module.params[safe] = torch.nn.Parameter(model.params[name])
    return module


def to_jax(model):
    """(fn, params): fn(state, params) -> energy [batch], pure, jittable and differentiable
    in both arguments; params {name: jax array} holds the model's current values."""
    compiled = compiled_for(model, "jax")
    shared = compiled is model.compiled
    params = compiled.check_params(model.params if shared else model.param_values(), compiled.convert)
    pure = compiled.function()

    def energy(state: Mapping[str, Any], params: Mapping[str, Any]):
        """Energy of each row of `state` ({variable: array [batch, *shape]}) under `params`.
        Names and shapes are checked when called or traced (shapes are static under jit)."""
        return pure(compiled.check_state(state, compiled.convert), compiled.check_params(params, compiled.convert))

    energy.__qualname__ = energy.__name__ = f"{model.name}_energy"
    return energy, params


def param_mapping(values) -> dict:
    """What `Model.set_params` takes positionally as {name: value}: a dict, or the module
    that `to_torch()` returned (its current values under their ebmlang names)."""
    if values is None:
        return {}
    if callable(getattr(values, "named_params", None)):
        return dict(values.named_params())
    if isinstance(values, Mapping):
        return dict(values)
    raise EbmError(f"set_params takes a dict {{name: value}} or the module of to_torch(), "
                   f"got {type(values).__name__}", hint="e.g. m.set_params({'w': trained_w}) or m.set_params(w=...)")


def plain_value(value):
    """A value numpy can read: a torch tensor detached and on the CPU (a Parameter that
    requires grad, or one on a GPU, is refused by np.asarray)."""
    if callable(getattr(value, "detach", None)) and callable(getattr(value, "cpu", None)):
        return value.detach().cpu()
    return value


def same_memory(value, current) -> bool:
    """Whether `value` is already the model's tensor `current` (the module of `to_torch`
    shares it): then there is nothing to copy, and the two stay one."""
    pointer = getattr(value, "data_ptr", None)
    if not callable(pointer) or not callable(getattr(current, "data_ptr", None)):
        return False
    return (pointer() == current.data_ptr() and value.shape == current.shape and value.dtype == current.dtype
            and value.device == current.device and value.stride() == current.stride())
