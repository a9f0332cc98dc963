"""Stage entry point: a factor graph to batched energy functions on a backend."""
from __future__ import annotations

from ebmlang.backends import Backend, CompiledGraph, get_backend
from ebmlang.errors import EbmError
from ebmlang.graph.ir import FactorGraph


def compile_graph(
    graph: FactorGraph,
    backend: str | Backend = "torch",
    device: str | None = None,
    dtype: str = "float32",
    **options,
) -> CompiledGraph:
    """Compile `graph` for `backend` (a name -- "torch", "jax", "numpy" -- or a Backend).

    device, dtype and options (torch: compile=True) only apply when `backend` is a name.
    """
    if not isinstance(graph, FactorGraph):
        raise EbmError(
            f"compile_graph takes a FactorGraph, got {type(graph).__name__}",
            hint="lower a checked program first: lower_program(check_program(parse_source(...)))",
        )
    if isinstance(backend, Backend):
        if device is not None or options or dtype != "float32":
            raise EbmError(
                "device, dtype and options are fixed by the Backend object passed in",
                hint="pass a backend name instead, or configure the Backend when creating it",
            )
        return backend.compile(graph)
    return get_backend(backend, device=device, dtype=dtype, **options).compile(graph)
