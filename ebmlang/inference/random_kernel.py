"""A Markov kernel split at its randomness, so that backends can compile the rest.

`kernel.draw(key, state)` makes every random number one step uses; `kernel.move(state,
draws, context)` is the deterministic remainder. Calling the kernel composes the two.
JAX traces both halves as one program; torch cannot trace its seeded generators, so
`Backend.jit_step(draw, move)` compiles only `move` there.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RandomKernel:
    """`kernel(key, state, context) = move(state, draw(key, state), context)`; `context`
    is what the move reads besides the state (a potential, or a model's params).

    A dataclass, not a tuple: `jax.jit(kernel)` needs a weak reference to it.

    traceable: False when `move`'s control flow reads array values on the host (NUTS's
    trajectory loop on torch): a compiler would break its graph at every such test and
    recompile per tree depth, so it runs as written."""

    draw: Callable[[Any, Any], Any]
    move: Callable[[Any, Any, Any], tuple[Any, Any]]
    traceable: bool = True

    def __call__(self, key: Any, state: Any, context: Any) -> tuple[Any, Any]:
        return self.move(state, self.draw(key, state), context)
