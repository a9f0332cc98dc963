"""The resource budget: how much memory one structure of a model may take.

Every stage that would allocate in proportion to what the source asks for -- index
sets and ground factors, variable and param groups, network layers, discrete tables,
the conditionals of a sampler -- first computes the size and asks `Budget.check`,
which refuses with a located `EbmError` naming the declaration and the figure. A
valid program therefore cannot allocate without limit: a 560-byte source asking
for 3^24 index tuples is an error in milliseconds, not 4 GiB later.

The default suits a machine with a few GiB free; `ebm.load(..., budget="8GiB")` and
`--budget 8GiB` raise it. Like `errors`, it sits below every stage.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ebmlang.errors import EbmError, Span

DEFAULT_BUDGET_BYTES = 2 * 2 ** 30
_UNITS = {"": 1, "b": 1, "kb": 10 ** 3, "mb": 10 ** 6, "gb": 10 ** 9, "tb": 10 ** 12,
          "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}


def format_bytes(size: float) -> str:
    for unit, scale in (("TiB", 2 ** 40), ("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if size >= scale:
            figure = size / scale
            return f"{figure:.3g} {unit}" if figure < 1e6 else f"{size:.3g} bytes"
    return f"{int(size)} bytes"


@dataclass(frozen=True)
class Budget:
    """At most `bytes` for any one structure a model allocates."""

    bytes: int = DEFAULT_BUDGET_BYTES

    def check(self, size_bytes: float, what: str, span: Span | None = None, source: str | None = None) -> None:
        """Refuse `what` (e.g. "the index set of term 'e'") when it would take `size_bytes`."""
        if size_bytes > self.bytes:
            raise EbmError(f"{what} would take {format_bytes(size_bytes)}, more than the budget of "
                           f"{format_bytes(self.bytes)}", span, source=source,
                           hint="make it smaller, or raise the budget if the machine has the memory: "
                                "ebm.load(..., budget=\"16GiB\") or `--budget 16GiB`")


def as_budget(value) -> Budget:
    """A `Budget` from None (the default), a Budget, a number of bytes or a text such as "4GiB"."""
    if value is None:
        return Budget()
    if isinstance(value, Budget):
        return value
    if isinstance(value, bool):
        raise EbmError(f"a budget is a size such as \"4GiB\" or a number of bytes, got {value!r}")
    if isinstance(value, (int, float)):
        size = float(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", value)
        if match is None or match.group(2).lower() not in _UNITS:
            raise EbmError(f"cannot read the budget {value!r}", expected="a size such as 512MiB, 4GiB or 8GB")
        size = float(match.group(1)) * _UNITS[match.group(2).lower()]
    else:
        raise EbmError(f"a budget is a size such as \"4GiB\" or a number of bytes, got {type(value).__name__}")
    if not size >= 1 or size != size or size == float("inf"):
        raise EbmError(f"a budget must be a positive, finite size, got {value!r}")
    return Budget(int(size))
