"""Scopes and values: what every piece of model lowering passes around.

A `_Scope` holds the index variables bound where an expression is lowered; a
`Value` is what an expression lowers to (a compile-time array or an IR node).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ebmlang.graph import ir
from ebmlang.language import ast


@dataclass(frozen=True)
class _Scope:
    """Where an expression is lowered: the index variables bound so far.

    depth: number of enclosing reductions that stay inside the factor.
    indices: index name -> int64 array of ndim depth+1, broadcastable to
      [num_ground, *inner] (size-1 axes where an index does not vary).
    valid: bool array (same convention) marking real positions, False on the
      padding of inner axes whose length varies; None when all are real.
    """

    depth: int
    indices: dict[str, np.ndarray]
    valid: np.ndarray | None = None

    @property
    def leaf_shape(self) -> tuple[int, ...]:
        return (1,) * (self.depth + 1)


_ROOT_SCOPE = _Scope(0, {})


def _walk_ast(node):
    """Every AST expression node under `node` (parents first)."""
    if node is None:
        return
    if isinstance(node, (ast.Expr, ast.IndexSet)):
        yield node
    if dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            if f.name in ("span", "ty", "func_span"):
                continue
            value = getattr(node, f.name)
            if isinstance(value, tuple):
                for item in value:
                    if dataclasses.is_dataclass(item):
                        yield from _walk_ast(item)
            elif dataclasses.is_dataclass(value):
                yield from _walk_ast(value)


Value = np.ndarray | ir.Node  # a compile-time array or an IR node
