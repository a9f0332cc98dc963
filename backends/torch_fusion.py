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

It traces only after `TRACE_AFTER` calls with one input signature (shapes, dtypes,
and the values of non-tensor inputs), so short runs never pay the tracing (about a
second); a move that reads tensor values on the host (which fake tensors refuse), or
returns something other than tensors, stays eager for good.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.utils import _pytree as pytree

# Calls with one signature before the move is traced: a sampling run of a few dozen
# steps stays eager; a long run pays a trace of about a second once.
TRACE_AFTER = 64


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

    def __init__(self, move: Callable, trace_after: int = TRACE_AFTER):
        self.move = move
        self.trace_after = int(trace_after)
        self.calls: dict[tuple, int] = {}
        self.graphs: dict[tuple, Any] = {}  # signature -> (graph, output spec) or None (eager)

    def __call__(self, *args):
        leaves, spec = pytree.tree_flatten(args)
        signature = (spec, tuple(_leaf_key(leaf) for leaf in leaves))
        if signature not in self.graphs:
            count = self.calls.get(signature, 0) + 1
            self.calls[signature] = count
            if count < self.trace_after:
                return self.move(*args)
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


def traced_step(draw: Callable, move: Callable, trace_after: int = TRACE_AFTER) -> Callable:
    """`step(key, state, *args) = move(state, draw(key, state), *args)`, the draws eager
    (seeded generators cannot be traced) and the move a `TracedMove`."""
    traced = TracedMove(move, trace_after)
    return lambda key, state, *args: traced(state, draw(key, state), *args)
