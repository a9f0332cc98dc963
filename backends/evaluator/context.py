"""What one evaluation reads besides its plan: backend arrays, state, params and the
value prefix. The Evaluator and each node handler take it; CompiledGraph builds it per call.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EvalContext:
    """What a template evaluation reads besides its plan.

    arrays: backend arrays under the plan's keys (index arrays, data, masks, constants).
    state: group -> flattened state [*prefix, size] (prefix [batch] or [batch, 1]).
    params: name -> param array in its declared shape.
    prefix: the leading shape every template value is broadcast to.
    free_values: the block domain's values [K] for local conditionals, else None.
    packed: group -> class arrays [*prefix, *grid[:-1], runs] of packed groups (PackedGroup).
    """

    arrays: Mapping[str, Any]
    state: Mapping[str, Any]
    params: Mapping[str, Any]
    prefix: tuple[int, ...]
    free_values: Any = None
    packed: Mapping[str, tuple] | None = None
