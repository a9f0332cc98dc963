"""Backends compile a factor graph to batched energy functions: numpy, torch, jax.

`get_backend(name)` finds a backend through the `ebmlang.backends` entry-point group, so
a new backend is one module plus one entry point in its package's metadata.
"""
from __future__ import annotations

from importlib.metadata import entry_points

from ebmlang.errors import EbmError, did_you_mean

from .base import OPS_NAMES, Backend, CompiledGraph

ENTRY_POINT_GROUP = "ebmlang.backends"

__all__ = ["Backend", "CompiledGraph", "OPS_NAMES", "available_backends", "get_backend"]


def available_backends() -> tuple[str, ...]:
    """Names of every installed backend."""
    return tuple(sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)))


def get_backend(name: str, device: str | None = None, dtype: str = "float32", **options) -> Backend:
    """A new backend by entry-point name, e.g. get_backend("torch", device="cuda", dtype="float64").

    options go to the backend's constructor (torch: compile=True).
    """
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        names = available_backends()
        raise EbmError(
            f"unknown backend '{name}'",
            expected="one of " + ", ".join(names),
            hint=did_you_mean(name, names),
        )
    try:
        backend_class = found[0].load()
    except ImportError as error:
        raise EbmError(
            f"backend '{name}' could not be imported: {error}",
            hint=f"install the library the '{name}' backend needs",
        ) from None
    try:
        return backend_class(device=device, dtype=dtype, **options)
    except TypeError as error:
        raise EbmError(f"backend '{name}' does not take these options: {error}") from None
