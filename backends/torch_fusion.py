"""Eager torch sampler steps replayed as the operation list they record.

An eager MALA or HMC step on torch costs mostly Python: the evaluator walks the IR,
checks inputs, builds dicts, and the kernel's own arithmetic adds ~100 small tensor
operations, each a few microseconds of dispatch. `torch.compile` removes that but
compiles for seconds and changes rounding. `TracedMove` instead records the
deterministic half of a step (`move(state, draws, *args)`, its random numbers drawn
outside) once with `make_fx` on fake tensors, hands the recorded graph of ATen
operations to TorchScript's interpreter (`torch.jit.trace`, which runs each operation
from C++: about half the dispatch cost of calling them from Python) and runs that: the
same operations in the same order, so the same numbers, without the Python that chose
them.

It traces a signature (shapes, dtypes, and the values of non-tensor inputs) only once
its eager calls have taken `TRACE_AFTER_SECONDS` in all, about what the tracing itself
costs: a run too short to win that time back never pays it, a long one loses at most
the same again. (When it traces depends on the clock; what it computes does not: the
replay gives the eager step's numbers bit for bit.) A move that reads tensor values on
the host (which fake tensors refuse), or returns something other than tensors, stays
eager for good.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.utils import _pytree as pytree

# Eager seconds with one signature before the move is traced (tracing takes about that).
TRACE_AFTER_SECONDS = 1.0


def _leaf_key(leaf: Any) -> tuple:
    if isinstance(leaf, torch.Tensor):
        return ("tensor", tuple(leaf.shape), leaf.dtype, leaf.device, leaf.requires_grad)
    try:
        hash(leaf)
    except TypeError:
        return ("object", id(leaf))
    return ("value", type(leaf), leaf)


class TracedMove:
    """`move(*args)`, run eagerly at first and as its recorded ATen graph later."""

    def __init__(self, move: Callable, trace_after: int | None = None):
        """trace_after: trace after this many calls instead of after TRACE_AFTER_SECONDS of
        eager calls (tests pin the moment this way)."""
        self.move = move
        self.trace_after = trace_after
        self.calls: dict[tuple, int] = {}
        self.seconds: dict[tuple, float] = {}
        self.graphs: dict[tuple, Any] = {}  # signature -> (graph, output spec) or None (eager)

    def __call__(self, *args):
        leaves, spec = pytree.tree_flatten(args)
        signature = (spec, tuple(_leaf_key(leaf) for leaf in leaves))
        if signature not in self.graphs:
            count = self.calls.get(signature, 0) + 1
            self.calls[signature] = count
            spent = self.seconds.get(signature, 0.0)
            if (count < self.trace_after) if self.trace_after is not None else (spent < TRACE_AFTER_SECONDS):
                started = time.perf_counter()
                out = self.move(*args)
                self.seconds[signature] = spent + time.perf_counter() - started
                return out
            self.graphs[signature] = self._trace(leaves, spec)
        entry = self.graphs[signature]
        if entry is None:
            return self.move(*args)
        graph, out_spec = entry
        return pytree.tree_unflatten(graph(*[leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]), out_spec)

    def _trace(self, leaves: list, spec):
        from torch.fx.experimental.proxy_tensor import make_fx

        positions = [i for i, leaf in enumerate(leaves) if isinstance(leaf, torch.Tensor)]
        out_specs = []

        def flat_move(*tensors):
            full = list(leaves)
            for i, tensor in zip(positions, tensors):
                full[i] = tensor
            out_leaves, out_spec = pytree.tree_flatten(self.move(*pytree.tree_unflatten(full, spec)))
            if not all(isinstance(leaf, torch.Tensor) for leaf in out_leaves):
                raise TypeError("the move returns something other than tensors")
            out_specs.append(out_spec)
            return out_leaves

        tensors = [leaves[i] for i in positions]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                graph = make_fx(flat_move, tracing_mode="fake", _allow_non_fake_inputs=True)(*tensors)
        except Exception:  # a value read on the host, a non-tensor output: stay eager
            return None
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                graph = torch.jit.trace(graph, tensors, check_trace=False)
        except Exception:  # TorchScript refuses an operation: replay the FX graph from Python
            pass
        return graph, out_specs[-1]


class TracedStep:
    """`step(key, state, *args) = move(state, draw(key, state), *args)`, the draws eager
    (seeded generators cannot be traced) and the move a `TracedMove`."""

    def __init__(self, draw: Callable, move: Callable, trace_after: int | None = None):
        self.draw = draw
        self.traced = TracedMove(move, trace_after)

    def __call__(self, key, state, *args):
        return self.traced(state, self.draw(key, state), *args)

    @property
    def recorded(self) -> bool:
        """Whether some input signature's move now runs as its recording."""
        return any(entry is not None for entry in self.traced.graphs.values())


def traced_step(draw: Callable, move: Callable, trace_after: int | None = None) -> TracedStep:
    return TracedStep(draw, move, trace_after)
